//! `drover compensate`: undo what a run changed. The `compensate` of every step instance that
//! succeeded and changed something runs, in reverse dependency order; instances of plugins that
//! cannot compensate (or are irreversible) are left as is and listed.

use clap::Args;
use drover_engine::journal::{Request, RunId};
use drover_engine::run::operator::{self, Delivery};

use crate::{CliError, Exit, Global, context};

/// Arguments of `drover compensate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Compensation is journaled and resumable like forward work: after a crash, `drover resume RUN` \
goes on with it, and a compensation that finished never runs again. Steps still running are stopped first. A \
compensation that fails waits for an operator: `drover retry RUN STEP` runs it again, `drover skip RUN STEP` marks it \
done once undone by hand. A workflow with `on-failure = \"compensate\"` does this by itself when the run fails."
)]
pub struct CompensateArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(global: &Global, args: CompensateArgs) -> Result<Exit, CliError> {
    let ctx = context::run_context(global, false)?;
    let (user, _) = drover_engine::run::whoami();
    let request = Request::Compensate { comment: args.comment };
    let delivery = operator::request(&ctx.operators(), args.run, request, &user).await?;
    match delivery {
        Delivery::Queued { pid } => {
            if !global.quiet {
                println!(
                    "compensate queued for {} (by {user}); process {pid}, which drives it, applies it",
                    args.run
                );
            }
            Ok(Exit::Success)
        }
        // Nobody drives the run: this process does, through the compensation.
        Delivery::ToDrive | Delivery::Applied => crate::resume::drive(global, &ctx, args.run).await,
    }
}
