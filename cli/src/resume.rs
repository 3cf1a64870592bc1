//! `drover resume`: drive a run on, after a crash, a stop or an operator command.

use clap::Args;
use drover_engine::display::visible;
use drover_engine::journal::RunId;
use drover_engine::run::{self, RunContext, RunOutcome};
use drover_engine::store::RunState;

use crate::{CliError, Exit, Global, context, output};

/// Arguments of `drover resume`.
#[derive(Debug, Args)]
#[command(
    after_help = "Finished steps never run again. An attempt interrupted by a crash is run again for read-only \
and idempotent plugins, decided by the plugin's check for reversible ones, and put in needs-operator for irreversible \
ones. Only one process drives a run at a time: a second resume refuses and names the holder."
)]
pub struct ResumeArgs {
    /// The run to resume.
    #[arg(value_name = "RUN", required_unless_present = "all", conflicts_with = "all")]
    pub run: Option<RunId>,
    /// Resume every unfinished run, one after the other.
    #[arg(long)]
    pub all: bool,
    /// Keep waiting while the run waits for an approval, instead of exiting with code 4.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(global: &Global, args: ResumeArgs) -> Result<Exit, CliError> {
    let ctx = context::run_context(global, args.wait)?;
    let runs: Vec<RunId> = match args.run {
        Some(run) => vec![run],
        None => ctx
            .store
            .runs()?
            .into_iter()
            .filter(|r| matches!(r.state, RunState::Running | RunState::Waiting))
            .map(|r| r.id)
            .collect(),
    };
    let mut worst = Exit::Success;
    for run_id in runs {
        let exit = drive(global, &ctx, run_id).await?;
        if exit != Exit::Success && (worst == Exit::Success || exit == Exit::Failure) {
            worst = exit;
        }
    }
    Ok(worst)
}

/// Drives `run_id` and prints how it ended.
pub(super) async fn drive(global: &Global, ctx: &RunContext, run_id: RunId) -> Result<Exit, CliError> {
    if !global.quiet && !global.json {
        eprintln!("driving {run_id}");
    }
    let outcome = run::resume(ctx, run_id).await?;
    // Nothing is reported of a run whose journal does not hold what was committed.
    ctx.store.verify().await?;
    if global.json {
        output::json(&serde_json::json!({ "run": run_id, "outcome": outcome }))?;
    }
    Ok(match outcome {
        RunOutcome::Succeeded => {
            if !global.json {
                println!("run {run_id} succeeded");
            }
            Exit::Success
        }
        RunOutcome::Failed { failures } => {
            if !global.json {
                println!("run {run_id} failed:");
                for (key, why) in &failures {
                    println!("  {}: {}", visible(key), visible(why));
                }
                for (key, _) in &failures {
                    println!("fix the cause, then `drover retry {run_id} {}`", visible(key));
                }
                println!("and `drover resume {run_id}`");
            }
            Exit::Failure
        }
        RunOutcome::Waiting { waiting } => {
            if !global.json {
                println!("run {run_id} waits for an operator:");
                for (key, why) in &waiting {
                    println!("  {}: {}", visible(key), visible(why));
                }
                // The exact command for each instance it knows waits: a gate is approved, anything
                // else (needs-operator) is retried or skipped.
                for (key, why) in &waiting {
                    let key = visible(key);
                    if why.starts_with("approval") {
                        println!("approve with `drover approve {run_id} {key}`");
                    } else {
                        println!(
                            "retry with `drover retry {run_id} {key}`, or skip it with `drover skip {run_id} {key} --output JSON`"
                        );
                    }
                }
                println!("then `drover resume {run_id}`");
            }
            Exit::Waiting
        }
        RunOutcome::Cancelled => {
            if !global.json {
                println!("run {run_id} was cancelled");
            }
            Exit::Failure
        }
        RunOutcome::Compensated { compensated, left_as_is, failures } => {
            if !global.json {
                println!("run {run_id} was compensated: {} step instance(s) undone", compensated.len());
                for (key, why) in &failures {
                    println!("  failed first: {}: {}", visible(key), visible(why));
                }
                for key in &compensated {
                    println!("  compensated: {}", visible(key));
                }
                for (key, why) in &left_as_is {
                    println!("  left as is: {}: {}", visible(key), visible(why));
                }
            }
            Exit::Failure
        }
    })
}
