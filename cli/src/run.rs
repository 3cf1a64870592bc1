//! `drover run`: start a run of a workflow and drive it.

use std::path::PathBuf;

use clap::Args;
use drover_engine::run::{self, NewRun};

use crate::{CliError, Exit, Global, context, output, resume, workflow};

/// Arguments of `drover run`.
#[derive(Debug, Args)]
#[command(
    after_help = "The run's definition, params, inventory and plugin digests are pinned in the journal when it \
starts, so `drover resume` executes exactly what it began with, whatever happens to the files afterwards. With \
--detach the run is only recorded (its id printed), for `drover worker` processes to drive.

Example:
  drover run workflows/dr-site-preparation.toml --inventory workflows/lab-inventory.toml --param sql-server=SQLPROD01"
)]
pub struct RunArgs {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,
    /// The inventory of servers and groups.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// A param value, `name=value` (repeatable); parsed as the param's declared type.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Keep waiting while the run waits for an approval, instead of exiting with code 4.
    #[arg(long)]
    pub wait: bool,
    /// Record the run and return at once, without driving it: prints its id; `drover worker`
    /// processes sharing the journal drive it.
    #[arg(long, conflicts_with = "wait")]
    pub detach: bool,
    /// A plan saved by `drover plan --save`: check again first, and start only if every step
    /// would do what the plan says (the targets have not drifted).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

pub async fn run(global: &Global, args: RunArgs) -> Result<Exit, CliError> {
    let overrides = crate::plan::overrides(&args.params)?;
    if let Some(path) = &args.plan {
        let text = drover_engine::input_file::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read the plan {}: {e}", path.display())))?;
        let saved: drover_engine::run::plan::Plan = serde_json::from_str(&text).map_err(|e| {
            CliError::Usage(format!("{} is not a plan saved by `drover plan --save`: {e}", path.display()))
        })?;
        let fresh = crate::plan::make(global, &args.workflow, &args.inventory, &args.params).await?;
        let drift = drover_engine::run::plan::drift(&saved, &fresh);
        if !drift.is_empty() {
            eprintln!("error: the targets drifted from the plan {}; nothing was started:", path.display());
            for line in &drift {
                eprintln!("  {line}");
            }
            eprintln!("make a new plan with `drover plan … --save {}` and review it", path.display());
            return Ok(Exit::Failure);
        }
    }
    let inventory = workflow::inventory(global, &args.inventory)?;
    let wf = workflow::load(global, &args.workflow, Some(&inventory))?;
    let params = run::resolve_params(&wf, &overrides).map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = context::run_context(global, args.wait)?;
    let source_path = args.workflow.canonicalize().unwrap_or(args.workflow.clone()).display().to_string();
    let run_id = run::start(&ctx, NewRun { workflow: wf, source_path, params, inventory }).await?;
    if args.detach {
        // Nothing is reported of a run whose journal does not hold what was committed.
        ctx.store.verify().await?;
        if global.json {
            output::json(&serde_json::json!({ "run": run_id }))?;
        } else {
            println!("{run_id}");
        }
        return Ok(Exit::Success);
    }
    if !global.quiet && !global.json {
        eprintln!("started {run_id}");
    }
    resume::drive(global, &ctx, run_id).await
}
