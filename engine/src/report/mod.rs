//! The recovery report: what an auditor reads after a run. [`Report::build`] gathers it from the
//! journal alone (the run's pinned definition, params, inventory digest and plugins, its step
//! instances, attempts and events), so a report can be made at any time, by any process, and
//! says only what was recorded. [`objectives`] adds what a failover is judged by (the data-loss
//! window, elapsed times by phase with gate waits apart, approvals, what stays manual).
//! [`markdown`] and [`html`] render it.
//!
//! Invariant: everything in a report comes from the journal, which holds redacted text only; the
//! report adds no value of its own that a secret could hide in.
//!
//! Invariant: a rendered report holds no control character but line feed and tab: the escape
//! sequences plugin output may carry are shown as text ([`crate::display::visible`]).

mod html;
mod markdown;
pub mod objectives;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::journal::{Event, RunId};
use crate::store::{AttemptRecord, EventRecord, RunRecord, StepRecord, Store, StoreError};

pub use html::{STYLE, esc, html, sections, title};
pub use markdown::markdown;
pub use objectives::Objectives;

/// A rendered report with the control characters of plugin and target text (escape sequences)
/// made visible: a report shows them, it never carries them to a terminal or a viewer.
fn shown(text: String) -> String {
    match crate::display::visible(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

/// A run's report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// The run id.
    pub run: String,
    /// Workflow name and version.
    pub workflow: String,
    /// Its version.
    pub version: String,
    /// Where the workflow was read from.
    pub source_path: String,
    /// The run's state.
    pub state: String,
    /// Who started it.
    pub started_by: String,
    /// When (ms since the epoch).
    pub started_at: i64,
    /// When it ended, if it did.
    pub finished_at: Option<i64>,
    /// The params, defaults applied.
    pub params: Value,
    /// sha256 of the pinned inventory.
    pub inventory_digest: String,
    /// Per step id: plugin name, version and sha256.
    pub plugins: BTreeMap<String, PinnedPlugin>,
    /// Step instances in workflow order.
    pub steps: Vec<StepReport>,
    /// Operator actions, in order.
    pub operator_actions: Vec<OperatorAction>,
    /// The workflow's steps in order, each with the ids it needs (for the DAG).
    pub graph: Vec<(String, Vec<String>)>,
    /// The data-loss window, elapsed times, approvals and what stays manual.
    pub objectives: Objectives,
}

/// A plugin as the run pinned it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PinnedPlugin {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of the component.
    pub sha256: String,
}

/// One step instance.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepReport {
    /// Instance key (`id` or `id[item]`).
    pub key: String,
    /// The step id.
    pub step: String,
    /// Its target, if any.
    pub target: Option<String>,
    /// Final state.
    pub state: String,
    /// `Some(true)` changed, `Some(false)` no change, `None` not known (did not succeed).
    pub changed: Option<bool>,
    /// The plugin's one-line summary, or why it was skipped, failed or waits.
    pub summary: Option<String>,
    /// First attempt start.
    pub started_at: Option<i64>,
    /// End.
    pub finished_at: Option<i64>,
    /// Every attempt.
    pub attempts: Vec<AttemptReport>,
    /// Evidence the plugin returned.
    pub evidence: Vec<Value>,
    /// Target calls made (from the audit events).
    pub target_calls: usize,
}

/// One attempt.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AttemptReport {
    /// 1, 2, …
    pub number: u32,
    /// `apply`, `check` (recovery after a crash) or `compensate`.
    pub mode: String,
    /// Its state.
    pub state: String,
    /// Start.
    pub started_at: i64,
    /// End.
    pub finished_at: Option<i64>,
    /// The failure, if any.
    pub error: Option<String>,
}

/// An operator's action.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OperatorAction {
    /// When.
    pub at: i64,
    /// Who (OS user).
    pub actor: String,
    /// What (`approved`, `retry-requested`, `skipped`, `cancel-requested`, …).
    pub kind: String,
    /// On which step instance.
    pub step_key: Option<String>,
    /// The operator's comment.
    pub comment: Option<String>,
}

impl Report {
    /// Gathers the report of `run_id` from the journal.
    pub fn build(store: &Store, run_id: RunId) -> Result<Report, StoreError> {
        let run = store.run(run_id)?;
        let steps = store.steps(run_id)?;
        let attempts = store.attempts(run_id)?;
        let events = store.events(run_id, 0)?;
        Ok(assemble(run, steps, attempts, events))
    }
}

fn assemble(
    run: RunRecord,
    steps: Vec<StepRecord>,
    attempts: Vec<AttemptRecord>,
    events: Vec<EventRecord>,
) -> Report {
    let wf = crate::run::pinned_workflow(&run.definition).ok();
    let order: Vec<String> =
        wf.as_ref().map(|wf| wf.order.iter().map(|&i| wf.steps[i].id.clone()).collect()).unwrap_or_default();
    let step_ids: Vec<String> =
        wf.as_ref().map(|wf| wf.steps.iter().map(|s| s.id.clone()).collect()).unwrap_or_default();
    let graph = wf
        .as_ref()
        .map(|wf| {
            wf.order
                .iter()
                .map(|&i| {
                    let needs = wf.steps[i].needs.iter().map(|&n| wf.steps[n].id.clone()).collect();
                    (wf.steps[i].id.clone(), needs)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut by_key: BTreeMap<String, Vec<AttemptReport>> = BTreeMap::new();
    for a in attempts {
        by_key.entry(a.step_key.clone()).or_default().push(AttemptReport {
            number: a.number,
            mode: a.mode.to_string(),
            state: a.state.as_str().to_string(),
            started_at: a.started_at,
            finished_at: a.finished_at,
            error: a.error,
        });
    }
    let outputs: BTreeMap<String, Value> =
        steps.iter().filter_map(|s| Some((s.key.clone(), s.output.clone()?))).collect();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    let mut operator_actions = Vec::new();
    for e in &events {
        if let Some(key) = &e.step_key
            && matches!(e.event(), Ok(Event::TargetCall { .. }))
        {
            *calls.entry(key.clone()).or_default() += 1;
        }
        if e.actor.is_operator() {
            operator_actions.push(OperatorAction {
                at: e.at,
                actor: e.actor.to_string(),
                kind: e.kind.clone(),
                step_key: e.step_key.clone(),
                comment: e.data.get("comment").and_then(Value::as_str).map(str::to_string),
            });
        }
    }
    let position = |index: usize| {
        let id = step_ids.get(index).cloned().unwrap_or_default();
        (order.iter().position(|o| *o == id).unwrap_or(usize::MAX), id)
    };
    let mut step_reports: Vec<(usize, StepReport)> = steps
        .into_iter()
        .map(|s| {
            let (pos, id) = position(s.step_index);
            let mut attempts = by_key.remove(&s.key).unwrap_or_default();
            attempts.sort_by_key(|a| a.number);
            let evidence = s.evidence.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
            let summary = s.summary.clone().or(s.reason.clone());
            let report = StepReport {
                target_calls: calls.get(&s.key).copied().unwrap_or(0),
                key: s.key,
                step: id,
                target: s.target,
                state: s.state.as_str().to_string(),
                changed: s.changed,
                summary,
                started_at: s.started_at,
                finished_at: s.finished_at,
                attempts,
                evidence,
            };
            (pos, report)
        })
        .collect();
    step_reports.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
    let step_reports: Vec<StepReport> = step_reports.into_iter().map(|(_, s)| s).collect();
    let objectives = objectives::build(&run, wf.as_ref(), &step_reports, &outputs, &events);
    let plugins = run
        .plugins
        .steps
        .into_iter()
        .map(|(step, p)| {
            (
                step,
                PinnedPlugin { name: p.name, version: p.version.to_string(), sha256: p.sha256.to_string() },
            )
        })
        .collect();
    Report {
        run: run.id.to_string(),
        workflow: run.workflow,
        version: run.workflow_version,
        source_path: run.source_path,
        state: run.state.as_str().to_string(),
        started_by: run.started_by,
        started_at: run.created_at,
        finished_at: run.finished_at,
        params: run.params,
        inventory_digest: run.inventory_digest,
        plugins,
        steps: step_reports,
        operator_actions,
        graph,
        objectives,
    }
}

/// `2026-11-22T10:15:04Z`.
pub fn format_time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn format_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(850), "850 ms");
        assert_eq!(format_duration(12_345), "12.3 s");
        assert_eq!(format_duration(245_000), "4 min 05 s");
        assert_eq!(format_duration(7_380_000), "2 h 03 min");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }
}
