//! `drover skip`: mark a step done without running it.

use clap::Args;
use drover_engine::journal::{Request, RunId};
use serde_json::Value;

use crate::{CliError, Exit, Global};

/// Arguments of `drover skip`.
#[derive(Debug, Args)]
#[command(
    after_help = "The output is checked against the plugin's output schema, so steps that use it still get what \
they expect."
)]
pub struct SkipArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// The step instance.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// The step's output as JSON (what later steps will see).
    #[arg(long, value_name = "JSON")]
    pub output: String,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: SkipArgs) -> Result<Exit, CliError> {
    let output: Value = serde_json::from_str(&args.output)
        .map_err(|e| CliError::Usage(format!("--output is not JSON: {e}")))?;
    crate::retry::send(global, args.run, Request::Skip { step: args.step, comment: args.comment, output })
        .await
}
