//! `drover run`: start a run of a workflow and drive it.

use std::path::PathBuf;

use clap::Args;
use drover_engine::run::{self, NewRun};

use super::{Exit, Global, UsageError, context, resume, workflow};

/// Arguments of `drover run`.
#[derive(Debug, Args)]
#[command(
    after_help = "The run's definition, params, inventory and plugin digests are pinned in the journal when it \
starts, so `drover resume` executes exactly what it began with, whatever happens to the files afterwards.

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
}

pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<Exit> {
    let overrides = args
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| UsageError(format!("--param {p}: expected NAME=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inventory = workflow::inventory(global, &args.inventory)?;
    let wf = workflow::load(global, &args.workflow, Some(&inventory))?;
    let params = run::resolve_params(&wf, &overrides).map_err(|e| UsageError(e.to_string()))?;
    let ctx = context::run_context(global, args.wait)?;
    let source_path = args.workflow.canonicalize().unwrap_or(args.workflow.clone()).display().to_string();
    let run_id = run::start(&ctx, NewRun { workflow: wf, source_path, params, inventory }).await?;
    if !global.quiet && !global.json {
        eprintln!("started {run_id}");
    }
    resume::drive(global, &ctx, &run_id).await
}
