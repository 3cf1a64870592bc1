//! `drover retry`: run a failed, cancelled or needs-operator step again. Also the delivery of
//! every operator command (shared by approve, skip and cancel).

use clap::Args;
use drover_engine::journal::{Request, RunId};
use drover_engine::run::operator::{self, Delivery};

use crate::{CliError, Exit, Global, context};

/// Arguments of `drover retry`.
#[derive(Debug, Args)]
#[command(
    after_help = "The step becomes ready again; `drover resume RUN` runs it (a process already driving the run \
picks it up by itself)."
)]
pub struct RetryArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// The step instance, e.g. `join-group[DRBTS02]`.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: RetryArgs) -> Result<Exit, CliError> {
    send(global, args.run, Request::Retry { step: args.step, comment: args.comment }).await
}

/// Delivers an operator command and says what became of it.
pub(super) async fn send(global: &Global, run: RunId, request: Request) -> Result<Exit, CliError> {
    let ctx = context::run_context(global, false)?;
    let (user, _) = drover_engine::run::whoami();
    let (what, step) = (request.kind(), request.step_key().map(str::to_string));
    let delivery = operator::request(&ctx.operators(), run, request.clone(), &user).await?;
    ctx.store.verify().await?;
    if global.json {
        crate::output::json(&drover_engine::documents::Delivered::new(run, &request, &user, &delivery))?;
        return Ok(Exit::Success);
    }
    let target = step.map(|s| format!(" {s}")).unwrap_or_default();
    match delivery {
        Delivery::Applied => {
            println!("{what}{target} recorded for {run} (by {user}); `drover resume {run}` to go on")
        }
        Delivery::Queued { pid } => println!(
            "{what}{target} queued for {run} (by {user}); process {pid}, which drives it, applies it"
        ),
        Delivery::ToDrive => {
            println!("{what}{target} queued for {run} (by {user}); `drover resume {run}` applies it")
        }
    }
    Ok(Exit::Success)
}
