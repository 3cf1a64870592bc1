//! `drover validate`: check a workflow without running it.

use std::path::PathBuf;

use clap::Args;

use crate::{CliError, Exit, Global, output, workflow};

/// Arguments of `drover validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The workflow file (TOML, or JSON with the same schema).
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,
    /// Check `for-each` groups against this inventory.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

pub fn run(global: &Global, args: ValidateArgs) -> Result<Exit, CliError> {
    let inventory = args.inventory.as_deref().map(|p| workflow::inventory(global, p)).transpose()?;
    let wf = workflow::load(global, &args.workflow, inventory.as_ref())?;
    if global.json {
        output::json(
            &serde_json::json!({ "valid": true, "name": wf.name, "version": wf.version.to_string(), "steps": wf.steps.len() }),
        )?;
    } else {
        println!(
            "{}: valid workflow {} {} with {} steps",
            args.workflow.display(),
            wf.name,
            wf.version,
            wf.steps.len()
        );
    }
    Ok(Exit::Success)
}
