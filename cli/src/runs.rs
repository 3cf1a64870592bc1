//! `drover runs`: the runs in the journal, newest first.

use clap::Args;

use crate::{CliError, Exit, Global, context, output, status::format_ms};

/// Arguments of `drover runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {}

pub fn run(global: &Global, _args: RunsArgs) -> Result<Exit, CliError> {
    let store = context::read_store(global)?;
    let runs = store.runs()?;
    if global.json {
        output::json(&drover_engine::documents::runs(&store)?)?;
        return Ok(Exit::Success);
    }
    if runs.is_empty() {
        println!("no runs in {}", context::journal(global));
        return Ok(Exit::Success);
    }
    println!("{:32}  {:10}  {:24}  {:20}  STARTED BY", "RUN", "STATE", "WORKFLOW", "CREATED");
    for r in &runs {
        println!(
            "{:32}  {:10}  {:24}  {:20}  {}",
            r.id,
            r.state.to_string(),
            format!("{} {}", r.workflow, r.workflow_version),
            format_ms(r.created_at),
            r.started_by
        );
    }
    Ok(Exit::Success)
}
