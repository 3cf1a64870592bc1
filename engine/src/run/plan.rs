//! Check mode: what a run would do, without doing it. Every step instance's plugin runs its
//! `check` against the real targets. The host, not the plugin, keeps this read-only: in check
//! mode it refuses file writes and removals, state writes, and every program run that does not
//! match the step's `grants.read-only` patterns.
//!
//! A plan writes nothing to the journal. A step whose needs would change something (or whose
//! outcome cannot be told) is not checked: its check would see the state before that change.
//! A saved plan lets `drover run --plan` refuse to start when a fresh check disagrees with it
//! (the targets drifted since the plan was approved).
//!
//! An approval gate's prompt is rendered over the params, the inventory and the gate's item and
//! target; a prompt that reads a step's output (which a plan does not have) is shown as written,
//! saying so.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::inventory::Inventory;
use crate::plugin::registry::Registry;
use crate::plugin::{CallEnv, Effect, Mode, NoObserver, PluginHost, StepCall, StepContext};
use crate::secrets::SecretSource;
use crate::workflow::model::{Step, StepKind, Workflow};
use crate::workflow::template;

use super::RunError;
use super::instance::{grants_of, instance_key, items};

/// What one step instance would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Its check says nothing would change.
    NoChange,
    /// Its check says something would change.
    WouldChange,
    /// Skipped by its `when`.
    Skipped,
    /// An approval gate: the run would wait for an operator.
    WouldWait,
    /// Not known: the check failed or was refused, or the step runs after a change.
    CannotTell,
}

impl Verdict {
    /// Whether steps after this one can still be checked meaningfully.
    fn settled(self) -> bool {
        matches!(self, Verdict::NoChange | Verdict::Skipped)
    }
}

/// One step instance of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanEntry {
    /// Instance key, as a run would name it.
    pub key: String,
    /// Its target, if any.
    pub target: Option<String>,
    /// What it would do.
    pub verdict: Verdict,
    /// The plugin's summary, or why the verdict is what it is.
    pub summary: String,
    /// The check's output, when it ran.
    pub output: Option<Value>,
    /// Host calls the host refused during the check.
    pub refusals: Vec<String>,
    /// What running it does, as its plugin declares it; absent for approval gates (and in plans
    /// saved before it was recorded). An irreversible step is one an operator must see before
    /// approving a run: it cannot be undone or repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
}

/// A plan: what a run of this workflow with these params on this inventory would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// Workflow name.
    pub workflow: String,
    /// Its version.
    pub version: String,
    /// sha256 of the workflow definition.
    pub definition_digest: String,
    /// The params, defaults applied.
    pub params: Value,
    /// sha256 of the inventory.
    pub inventory_digest: String,
    /// Every step instance, in the order a run would reach them.
    pub entries: Vec<PlanEntry>,
}

/// What a plan needs: the plugin host, the installed plugins and the secrets.
pub struct PlanContext {
    /// Runs the checks.
    pub host: Arc<PluginHost>,
    /// Installed plugins.
    pub registry: Registry,
    /// Secret values for references in inputs.
    pub secrets: Arc<dyn SecretSource>,
}

fn digest(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Checks every step instance of `wf` against the targets of `inventory`.
pub async fn plan(
    ctx: &PlanContext,
    wf: &Workflow,
    params: &Value,
    inventory: &Inventory,
) -> Result<Plan, RunError> {
    let inventory_json = serde_json::to_value(inventory).map_err(|e| RunError::Params(e.to_string()))?;
    let targets = inventory.targets(ctx.secrets.as_ref());
    let mut by_step: BTreeMap<usize, Vec<Verdict>> = BTreeMap::new();
    let mut entries = Vec::new();
    for &idx in &wf.order {
        let step = &wf.steps[idx];
        let scope = |item: Option<&Value>, target: Option<&str>| template::Scope {
            params: params.as_object().cloned().unwrap_or_default(),
            steps: BTreeMap::new(),
            item: item.cloned(),
            target: target.map(str::to_string),
            inventory: inventory_json.clone(),
            run_id: "plan".into(),
        };
        let unsettled_need = step.needs.iter().find_map(|n| {
            let worst = by_step.get(n)?.iter().find(|v| !v.settled())?;
            let what = match worst {
                Verdict::WouldChange => "which would change something",
                Verdict::WouldWait => "which would wait for an approval",
                _ => "whose outcome cannot be told",
            };
            Some(format!("runs after `{}`, {what}: it can be checked once that has run", wf.steps[*n].id))
        });
        // The plugin's declared effect, for every instance whatever its verdict; a plugin that is
        // not installed leaves it unknown here and fails the check below.
        let effect = step
            .plugin()
            .and_then(|(reference, _)| ctx.registry.resolve(reference).ok())
            .map(|i| i.info.effect);
        // Expanded as a run expands it: the same instances, keys and duplicate-key refusal.
        let items = items(step, inventory, &scope(None, None));
        let items = match items {
            Ok(items) => items,
            Err(message) => {
                let entry = PlanEntry { effect, ..cannot_tell(step.id.clone(), None, message) };
                by_step.entry(idx).or_default().push(entry.verdict);
                entries.push(entry);
                continue;
            }
        };
        for (n, item) in items.iter().enumerate() {
            let (key, target) = instance_key(&step.id, item.as_ref(), n, inventory);
            let scope = scope(item.as_ref(), target.as_deref());
            // A `when` that is false on what the plan knows (the params, the inventory) skips the
            // step however its needs end: a drill's steps in a failover's plan.
            let skipped = step
                .when
                .as_deref()
                .is_some_and(|expr| matches!(template::eval_when(expr, &scope), Ok(false)));
            let mut entry = match (&unsettled_need, &step.kind) {
                _ if skipped => entry(
                    key,
                    target,
                    Verdict::Skipped,
                    format!("when `{}` is false", step.when.as_deref().unwrap_or_default()),
                    None,
                ),
                (Some(why), _) => cannot_tell(key, target, why.clone()),
                (None, StepKind::Approval { prompt, .. }) => {
                    let summary = match template::render_text(prompt, &scope) {
                        Ok(text) => format!("approval: {text}"),
                        Err(e) => format!(
                            "approval: {prompt} (shown as written: the run renders it when it reaches the gate; \
                             now {})",
                            e.message()
                        ),
                    };
                    entry(key, target, Verdict::WouldWait, summary, None)
                }
                (None, StepKind::Plugin { .. }) => {
                    match step.when.as_deref().map(|expr| template::eval_when(expr, &scope)) {
                        Some(Ok(false)) => entry(
                            key,
                            target,
                            Verdict::Skipped,
                            format!("when `{}` is false", step.when.as_deref().unwrap_or_default()),
                            None,
                        ),
                        Some(Err(e)) => cannot_tell(key, target, format!("when: {e}")),
                        _ => match template::render(&step.with, &scope) {
                            Err(e) => cannot_tell(
                                key,
                                target,
                                format!("its input depends on what runs before it: {e}"),
                            ),
                            Ok(input) => check(ctx, step, key, target, input, inventory, &targets).await?,
                        },
                    }
                }
            };
            entry.effect = effect;
            by_step.entry(idx).or_default().push(entry.verdict);
            entries.push(entry);
        }
    }
    Ok(Plan {
        workflow: wf.name.clone(),
        version: wf.version.to_string(),
        definition_digest: digest(wf),
        params: params.clone(),
        inventory_digest: digest(inventory),
        entries,
    })
}

fn entry(
    key: String,
    target: Option<String>,
    verdict: Verdict,
    summary: String,
    output: Option<Value>,
) -> PlanEntry {
    PlanEntry { key, target, verdict, summary, output, refusals: Vec::new(), effect: None }
}

fn cannot_tell(key: String, target: Option<String>, why: String) -> PlanEntry {
    entry(key, target, Verdict::CannotTell, why, None)
}

async fn check(
    ctx: &PlanContext,
    step: &Step,
    key: String,
    target: Option<String>,
    input: Value,
    inventory: &Inventory,
    targets: &crate::target::TargetSet,
) -> Result<PlanEntry, RunError> {
    let Some((reference, _)) = step.plugin() else {
        return Ok(cannot_tell(key, target, "not a plugin step".into()));
    };
    let installed = ctx.registry.resolve(reference)?;
    let plugin = ctx.registry.load(&ctx.host, &installed).await?;
    let call = StepCall {
        mode: Mode::Check,
        context: StepContext {
            run_id: "plan".into(),
            step_key: key.clone(),
            attempt: 1,
            idempotency_key: format!("plan/{key}"),
            target: target.clone(),
        },
        input,
        grants: grants_of(step, inventory, target.as_deref()),
        timeout: step.timeout,
    };
    let env = CallEnv {
        targets: targets.clone(),
        secrets: ctx.secrets.clone(),
        state: Arc::new(crate::plugin::MemoryState::default()),
        observer: Arc::new(NoObserver),
    };
    let report = ctx.host.call(&plugin, call, env).await;
    let refusals: Vec<String> = report.refusals.iter().map(ToString::to_string).collect();
    let mut entry = match report.result {
        Ok(outcome) if outcome.changed => {
            entry(key, target, Verdict::WouldChange, outcome.summary, Some(outcome.output))
        }
        Ok(outcome) => entry(key, target, Verdict::NoChange, outcome.summary, Some(outcome.output)),
        Err(_) if !refusals.is_empty() => {
            cannot_tell(key, target, "its check asked for something the host refuses in check mode".into())
        }
        Err(e) => cannot_tell(key, target, format!("its check failed: {e}")),
    };
    entry.refusals = refusals;
    Ok(entry)
}

/// How a fresh plan differs from a saved one: one line per difference, none when they agree.
pub fn drift(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut found = Vec::new();
    for (what, a, b) in [
        (
            "workflow",
            format!("{} {}", saved.workflow, saved.version),
            format!("{} {}", fresh.workflow, fresh.version),
        ),
        ("workflow definition", saved.definition_digest.clone(), fresh.definition_digest.clone()),
        ("params", saved.params.to_string(), fresh.params.to_string()),
        ("inventory", saved.inventory_digest.clone(), fresh.inventory_digest.clone()),
    ] {
        if a != b {
            found.push(format!("the {what} changed since the plan"));
        }
    }
    let before: BTreeMap<&str, &PlanEntry> = saved.entries.iter().map(|e| (e.key.as_str(), e)).collect();
    for now in &fresh.entries {
        match before.get(now.key.as_str()) {
            None => found.push(format!("{}: not in the plan", now.key)),
            Some(then) if then.verdict != now.verdict || then.output != now.output => found.push(format!(
                "{}: planned {} ({}), now {} ({})",
                now.key,
                json!(then.verdict).as_str().unwrap_or_default(),
                then.summary,
                json!(now.verdict).as_str().unwrap_or_default(),
                now.summary
            )),
            Some(_) => {}
        }
    }
    for then in &saved.entries {
        if !fresh.entries.iter().any(|e| e.key == then.key) {
            found.push(format!("{}: planned, but no longer part of the run", then.key));
        }
    }
    found
}
