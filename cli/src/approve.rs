//! `drover approve`: let a run pass an approval gate.

use clap::Args;
use drover_engine::journal::{Request, RunId};

use crate::{CliError, Exit, Global};

/// Arguments of `drover approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// The approval step.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Why, for the record (shown in the report).
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: ApproveArgs) -> Result<Exit, CliError> {
    crate::retry::send(global, args.run, Request::Approve { step: args.step, comment: args.comment }).await
}
