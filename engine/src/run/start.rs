//! Starting a run: params resolved against the workflow's declarations, and the definition,
//! params, inventory and plugin digests pinned in the journal so a resumed run executes exactly
//! what it began with.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::inventory::Inventory;
use crate::journal::{Actor, Event, PinnedPlugin, PinnedPlugins, RunId};
use crate::plugin::Sha256Digest;
use crate::plugin::registry::Installed;
use crate::store::{Change, RunRecord, RunState};
use crate::workflow::model::{ParamType, Workflow};

use super::{RunContext, RunError, whoami};

/// A run to create.
pub struct NewRun {
    /// The validated workflow.
    pub workflow: Workflow,
    /// Where it was read from.
    pub source_path: String,
    /// Params, resolved with [`resolve_params`].
    pub params: Value,
    /// The inventory.
    pub inventory: Inventory,
}

/// Applies `--param name=value` overrides to the workflow's defaults, parsing each value as its
/// declared type; reports every problem at once.
pub fn resolve_params(workflow: &Workflow, overrides: &[(String, String)]) -> Result<Value, RunError> {
    let mut values = Map::new();
    let mut problems = Vec::new();
    for (name, text) in overrides {
        let Some(param) = workflow.param(name) else {
            let known: Vec<&str> = workflow.params.iter().map(|p| p.name.as_str()).collect();
            problems.push(format!(
                "--param {name}: the workflow has no param {name} (params: {})",
                known.join(", ")
            ));
            continue;
        };
        let parsed = match param.kind {
            ParamType::String => Ok(Value::String(text.clone())),
            ParamType::Integer => text.parse::<i64>().map(Value::from).map_err(|e| e.to_string()),
            ParamType::Number => text.parse::<f64>().map(Value::from).map_err(|e| e.to_string()),
            ParamType::Boolean => text.parse::<bool>().map(Value::from).map_err(|e| e.to_string()),
            ParamType::Array | ParamType::Object => {
                serde_json::from_str::<Value>(text).map_err(|e| e.to_string()).and_then(|v| {
                    if param.kind.matches(&v) { Ok(v) } else { Err(format!("not a JSON {}", param.kind)) }
                })
            }
        };
        match parsed {
            Ok(v) => {
                values.insert(name.clone(), v);
            }
            Err(e) => problems.push(format!("--param {name}={text}: not a {} ({e})", param.kind)),
        }
    }
    for param in &workflow.params {
        if !values.contains_key(&param.name) {
            match &param.default {
                Some(default) => {
                    values.insert(param.name.clone(), default.clone());
                }
                None => problems.push(format!(
                    "param {} is required: pass --param {}=<{}>",
                    param.name, param.name, param.kind
                )),
            }
        }
    }
    if problems.is_empty() { Ok(Value::Object(values)) } else { Err(RunError::Params(problems.join("\n"))) }
}

/// Stores the component of an installed plugin in the journal, content-addressed, unless the
/// journal has it: before the run that pins it exists, so every process driving the run (a
/// worker on a machine where it was never installed) can load the pinned bytes.
async fn journal_component(ctx: &RunContext, installed: &Installed) -> Result<(), RunError> {
    let digest = installed.sha256.to_string();
    if ctx.store.has_plugin_component(&digest)? {
        return Ok(());
    }
    let bytes = std::fs::read(&installed.path).map_err(|e| {
        RunError::Plugin(format!(
            "cannot read plugin {} at {}: {e}",
            installed.info.name,
            installed.path.display()
        ))
    })?;
    if Sha256Digest::of(&bytes) != installed.sha256 {
        return Err(RunError::Plugin(format!(
            "plugin {} {} at {} changed since it was installed (its sha256 is no longer {digest}): install it again",
            installed.info.name,
            installed.info.version,
            installed.path.display()
        )));
    }
    let version = installed.info.version.to_string();
    ctx.store.put_plugin_component(&digest, &installed.info.name, &version, bytes).await?;
    Ok(())
}

/// Creates the run in the journal and returns its id. Drive it with [`super::resume`].
pub async fn start(ctx: &RunContext, new: NewRun) -> Result<RunId, RunError> {
    let run_id = RunId::generate();
    let mut plugins = PinnedPlugins::new();
    // Steps often share a plugin: read each name's installed versions once.
    let mut installed_versions = std::collections::HashMap::new();
    // Each component is put in the journal once, however many steps use it.
    let mut journaled = std::collections::HashSet::new();
    for step in &new.workflow.steps {
        let Some((reference, info)) = step.plugin() else { continue };
        let versions = match installed_versions.entry(reference.name.as_str()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(ctx.registry.versions(&reference.name)?),
        };
        let installed = versions.iter().find(|i| i.info.version == info.version).ok_or_else(|| {
            RunError::Plugin(format!(
                "step {}: plugin {} {} is no longer installed",
                step.id, info.name, info.version
            ))
        })?;
        plugins.steps.insert(
            step.id.clone(),
            PinnedPlugin { name: info.name.clone(), version: info.version.clone(), sha256: installed.sha256 },
        );
        if journaled.insert(installed.sha256) {
            journal_component(ctx, installed).await?;
        }
    }
    let inventory = serde_json::to_value(&new.inventory).map_err(|e| RunError::Params(e.to_string()))?;
    let definition = super::pin::pin(&new.workflow).map_err(|e| RunError::Params(e.to_string()))?;
    let (user, _) = whoami();
    let now = ctx.clock.now_ms();
    let record = RunRecord {
        id: run_id,
        workflow: new.workflow.name.clone(),
        workflow_version: new.workflow.version.to_string(),
        source_path: new.source_path,
        definition,
        params: new.params.clone(),
        inventory_digest: hex::encode(Sha256::digest(inventory.to_string().as_bytes())),
        inventory,
        plugins,
        state: RunState::Running,
        started_by: user.clone(),
        created_at: now,
        finished_at: None,
    };
    ctx.store
        .apply(vec![
            Change::InsertRun(Box::new(record)),
            Change::event(
                run_id,
                now,
                None,
                Actor::Operator(user),
                &Event::RunCreated {
                    workflow: new.workflow.name.clone(),
                    version: new.workflow.version.to_string(),
                    params: new.params,
                },
            ),
        ])
        .await?;
    Ok(run_id)
}
