//! `drover approve`: let a run pass an approval gate. The text output repeats the question the
//! gate asked (its prompt as rendered when the gate was reached), so the record of the command
//! shows what was approved.

use clap::Args;
use drover_engine::journal::{Request, RunId};
use drover_engine::store::StepState;

use crate::{CliError, Exit, Global, context};

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
    let asked = (!global.json).then(|| asked(global, args.run, &args.step)).flatten();
    let exit =
        crate::retry::send(global, args.run, Request::Approve { step: args.step, comment: args.comment })
            .await?;
    if let Some(prompt) = asked {
        println!("the gate asked: {}", drover_engine::display::visible(&prompt));
    }
    Ok(exit)
}

/// The question gate `key` of `run` waits with, if it waits; nothing when it cannot be read (the
/// request itself says what is wrong).
fn asked(global: &Global, run: RunId, key: &str) -> Option<String> {
    let store = context::read_store(global).ok()?;
    let record =
        store.steps(run).ok()?.into_iter().find(|r| r.key == key && r.state == StepState::Waiting)?;
    record.reason?.strip_prefix("approval: ").map(str::to_string)
}
