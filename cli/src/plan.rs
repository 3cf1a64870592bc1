//! `drover plan`: check mode. Every step's plugin runs its `check` against the real targets,
//! and the host refuses anything that could change them.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use drover_engine::display::visible;
use drover_engine::plugin::registry::Registry;
use drover_engine::plugin::{Effect, HostConfig, PluginHost};
use drover_engine::run::plan::{self, Plan, PlanContext, Verdict};
use drover_engine::run::{self};

use crate::{CliError, Exit, Global, context, output, workflow};

/// Arguments of `drover plan`.
#[derive(Debug, Args)]
#[command(after_help = "Nothing is written to the targets or the journal: in check mode the host refuses \
file writes and removals, and runs only the programs a step's `grants.read-only` patterns mark read-only. \
A step that runs after one that would change something is not checked (its check would see the state \
before that change).

Save a plan and run it later only if nothing drifted:
  drover plan recovery.toml --inventory inventory.toml --save plan.json
  drover run recovery.toml --inventory inventory.toml --plan plan.json")]
pub struct PlanArgs {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,
    /// The inventory of servers and groups.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// A param value, `name=value` (repeatable); parsed as the param's declared type.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Write the plan as JSON to this file, for `drover run --plan`.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

/// `name=value` pairs of `--param`.
pub fn overrides(params: &[String]) -> Result<Vec<(String, String)>, CliError> {
    params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CliError::Usage(format!("--param {p}: expected NAME=VALUE")))
        })
        .collect()
}

/// Makes the plan of `workflow` with `params` on `inventory`.
pub async fn make(
    global: &Global,
    workflow_path: &std::path::Path,
    inventory_path: &std::path::Path,
    params: &[String],
) -> Result<Plan, CliError> {
    let overrides = overrides(params)?;
    let inventory = workflow::inventory(global, inventory_path)?;
    let wf = workflow::load(global, workflow_path, Some(&inventory))?;
    let params = run::resolve_params(&wf, &overrides).map_err(|e| CliError::Usage(e.to_string()))?;
    let host = PluginHost::new(HostConfig { cache_dir: Some(global.cache_dir()), ..HostConfig::default() })?;
    let ctx = PlanContext {
        host: Arc::new(host),
        registry: Registry::new(global.plugin_dir()),
        secrets: context::secrets(global)?,
    };
    Ok(plan::plan(&ctx, &wf, &params, &inventory).await?)
}

pub async fn run(global: &Global, args: PlanArgs) -> Result<Exit, CliError> {
    let plan = make(global, &args.workflow, &args.inventory, &args.params).await?;
    if let Some(path) = &args.save {
        let text = serde_json::to_string_pretty(&plan)? + "\n";
        std::fs::write(path, text).map_err(CliError::io("write the plan to", path))?;
    }
    if global.json {
        output::json(&plan)?;
        return Ok(Exit::Success);
    }
    println!("plan of {} {} ({} step instances)", plan.workflow, plan.version, plan.entries.len());
    for e in &plan.entries {
        let (mark, verdict) = match e.verdict {
            Verdict::NoChange => ("✓", "no change"),
            Verdict::WouldChange => ("~", "would change"),
            Verdict::Skipped => ("-", "skipped"),
            Verdict::WouldWait => ("⏸", "would wait"),
            Verdict::CannotTell => ("?", "cannot tell"),
        };
        let effect = if e.effect == Some(Effect::Irreversible) { " (irreversible)" } else { "" };
        println!("{mark} {}: {verdict}{effect}: {}", visible(&e.key), visible(&e.summary));
        for refusal in &e.refusals {
            println!("    refused: {}", visible(&refusal.to_string()));
        }
    }
    let count = |v: Verdict| plan.entries.iter().filter(|e| e.verdict == v).count();
    println!(
        "{} no change, {} would change, {} cannot tell, {} would wait, {} skipped",
        count(Verdict::NoChange),
        count(Verdict::WouldChange),
        count(Verdict::CannotTell),
        count(Verdict::WouldWait),
        count(Verdict::Skipped)
    );
    let irreversible: Vec<String> = plan
        .entries
        .iter()
        // A step the plan skips (its `when` false with these params) will not run.
        .filter(|e| e.effect == Some(Effect::Irreversible) && e.verdict != Verdict::Skipped)
        .map(|e| visible(&e.key).to_string())
        .collect();
    if !irreversible.is_empty() {
        println!("irreversible, cannot be undone or repeated once started: {}", irreversible.join(", "));
    }
    if let Some(path) = &args.save {
        println!(
            "saved to {}: `drover run … --plan {}` starts only if nothing drifted",
            path.display(),
            path.display()
        );
    }
    Ok(Exit::Success)
}
