//! `drover cancel`: stop a run.

use clap::Args;
use drover_engine::journal::{Request, RunId};

use crate::{CliError, Exit, Global};

/// Arguments of `drover cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: CancelArgs) -> Result<Exit, CliError> {
    crate::retry::send(global, args.run, Request::Cancel { comment: args.comment }).await
}
