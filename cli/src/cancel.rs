//! `drover cancel`: stop a run.

use clap::Args;
use drover_engine::run::operator::Command;
use serde_json::json;

use crate::{CliError, Exit, Global};

/// Arguments of `drover cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: CancelArgs) -> Result<Exit, CliError> {
    crate::retry::send(global, &args.run, Command::Cancel, None, json!({ "comment": args.comment })).await
}
