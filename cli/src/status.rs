//! `drover status`: a run's steps as a tree, with the reason every unfinished step waits and the
//! command that moves it on. Text from plugins is shown with its control characters visible.

use std::collections::BTreeMap;

use clap::Args;
use drover_engine::run::RunError;
use drover_engine::store::{RunRecord, RunState, StepRecord, StepState};
use drover_engine::workflow::model::OnFailure;
use drover_engine::workflow::{StepKind, Workflow};
use serde_json::json;

use crate::{CliError, Exit, Global, context, output};

/// Prints a line of the text view with control characters made visible: summaries, reasons and
/// keys come from plugins and targets (`drover_engine::display`).
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", drover_engine::display::visible(&format!($($arg)*)))
    };
}

/// Arguments of `drover status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: String,
}

/// Why an unfinished instance waits, and what moves it on. `running` are the instances running
/// now; `driven` tells whether a process holds the run's lease.
fn why(
    run: &RunRecord,
    wf: &Workflow,
    record: &StepRecord,
    running: &[&StepRecord],
    driven: bool,
) -> Option<String> {
    let id = &run.id;
    let key = &record.key;
    let undriven = !driven && !matches!(run.state, RunState::Succeeded | RunState::Cancelled);
    Some(match record.state {
        StepState::Ready | StepState::Running if undriven => {
            format!("no process drives the run — `drover resume {id}`")
        }
        StepState::Waiting if record.retry_at.is_some() => format!(
            "retry timer: next attempt at {} ({})",
            format_ms(record.retry_at.unwrap_or_default()),
            record.reason.clone().unwrap_or_default()
        ),
        StepState::Waiting => {
            let by = match &wf.steps[record.step_index].kind {
                StepKind::Approval { approvers, .. } if !approvers.is_empty() => {
                    format!(" (by {})", approvers.join(" or "))
                }
                _ => String::new(),
            };
            format!(
                "{}{by} — `drover approve {id} {key}`",
                record.reason.clone().unwrap_or_else(|| "approval".into())
            )
        }
        StepState::Ready => slot(wf, record, running),
        StepState::NeedsOperator => format!(
            "needs an operator: {} — `drover retry {id} {key}` or `drover skip {id} {key} --output <json>`",
            record.reason.clone().unwrap_or_default()
        ),
        StepState::Failed => {
            format!("{} — `drover retry {id} {key}`", record.reason.clone().unwrap_or_default())
        }
        StepState::Skipped | StepState::Cancelled => record.reason.clone()?,
        _ => return None,
    })
}

/// Which concurrency limit keeps a ready instance waiting, and who holds its slots.
fn slot(wf: &Workflow, record: &StepRecord, running: &[&StepRecord]) -> String {
    let step = &wf.steps[record.step_index];
    let names = |holders: Vec<&&StepRecord>| {
        let mut keys: Vec<&str> = holders.iter().map(|r| r.key.as_str()).take(3).collect();
        if holders.len() > 3 {
            keys.push("…");
        }
        keys.join(", ")
    };
    let same_step: Vec<&&StepRecord> = running.iter().filter(|r| r.step_index == record.step_index).collect();
    if let Some(limit) = step.concurrency.step.filter(|&n| same_step.len() >= n as usize) {
        return format!("ready; waits for a slot: step limit {limit} in use by {}", names(same_step));
    }
    if let (Some(limit), Some(target)) = (step.concurrency.per_target, &record.target) {
        let on_target: Vec<&&StepRecord> =
            running.iter().filter(|r| r.target.as_ref() == Some(target)).collect();
        if on_target.len() >= limit as usize {
            return format!(
                "ready; waits for a slot: per-target limit {limit} on {target} in use by {}",
                names(on_target)
            );
        }
    }
    let all: Vec<&&StepRecord> = running.iter().collect();
    if all.len() >= wf.limits.concurrency as usize {
        return format!(
            "ready; waits for a slot: run limit {} in use by {}",
            wf.limits.concurrency,
            names(all)
        );
    }
    "ready; starts on the driver's next turn".to_string()
}

pub fn run(global: &Global, args: StatusArgs) -> Result<Exit, CliError> {
    let store = context::read_store(global)?;
    let run = store.run(&args.run)?;
    let steps = store.steps(&run.id)?;
    let wf: Workflow = drover_engine::run::pinned_workflow(&run.definition)
        .map_err(|message| RunError::Definition { run_id: run.id.to_string(), message })?;
    // A lease past its expiry belongs to a process that stopped without releasing it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let lease = store.lease(&run.id)?.filter(|l| l.expires_at > now);
    let running: Vec<&StepRecord> = steps.iter().filter(|s| s.state == StepState::Running).collect();
    let driven = lease.is_some();
    let mut by_step: BTreeMap<usize, Vec<&StepRecord>> = BTreeMap::new();
    for s in &steps {
        by_step.entry(s.step_index).or_default().push(s);
    }
    if global.json {
        let items: Vec<_> = wf
            .order
            .iter()
            .map(|&i| {
                let instances: Vec<_> = by_step.get(&i).map(|v| v.as_slice()).unwrap_or_default().iter().map(|r| {
                    json!({ "key": r.key, "state": r.state, "attempts": r.attempts, "target": r.target,
                            "why": why(&run, &wf, r, &running, driven), "summary": r.summary, "output": r.output })
                }).collect();
                json!({ "id": wf.steps[i].id, "instances": instances, "waits_for": pending_needs(&wf, i, &by_step) })
            })
            .collect();
        output::json(
            &json!({ "run": run.id, "workflow": run.workflow, "version": run.workflow_version, "state": run.state,
                              "started_by": run.started_by, "created_at": run.created_at, "finished_at": run.finished_at,
                              "driven_by": lease.map(|l| json!({"pid": l.pid, "host": l.host, "user": l.user})), "steps": items }),
        )?;
        return Ok(Exit::Success);
    }
    say!("{} · {} {} · {}", run.id, run.workflow, run.workflow_version, run.state);
    say!("started by {} at {}", run.started_by, format_ms(run.created_at));
    if let Some(l) = lease {
        say!("driven by process {} of {} on {}", l.pid, l.user, l.host);
    }
    for &i in &wf.order {
        let step = &wf.steps[i];
        let kind = match &step.kind {
            StepKind::Plugin { reference, .. } => reference.to_string(),
            StepKind::Approval { .. } => "approval".to_string(),
        };
        match by_step.get(&i) {
            None => say!("○ {} ({kind}): pending — {}", step.id, pending_why(&run, &wf, i, &by_step)),
            Some(instances) => {
                let fan = instances.len() > 1 || step.fans_out();
                if fan {
                    let done = instances.iter().filter(|r| r.state.is_terminal()).count();
                    say!(
                        "{} {} ({kind}): {done}/{} done",
                        mark(summary_state(instances)),
                        step.id,
                        instances.len()
                    );
                }
                for r in instances {
                    let indent = if fan { "  " } else { "" };
                    let attempts = if r.attempts > 0 {
                        format!(", {} attempt{}", r.attempts, if r.attempts == 1 { "" } else { "s" })
                    } else {
                        String::new()
                    };
                    let label = if fan { r.key.clone() } else { format!("{} ({kind})", r.key) };
                    let mut line = format!("{indent}{} {label}: {}{attempts}", mark(r.state), r.state);
                    if let Some(summary) = r.summary.as_deref().filter(|s| !s.is_empty()) {
                        line.push_str(&format!(" — {summary}"));
                    }
                    say!("{line}");
                    if let Some(why) = why(&run, &wf, r, &running, driven) {
                        say!("{indent}    {why}");
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// Why a step has no instance yet: the upstream steps it waits for, or the failure that keeps
/// it from starting.
fn pending_why(
    run: &RunRecord,
    wf: &Workflow,
    i: usize,
    by_step: &BTreeMap<usize, Vec<&StepRecord>>,
) -> String {
    let needs = pending_needs(wf, i, by_step);
    if !needs.is_empty() {
        return format!("waits for {}", needs.join(", "));
    }
    let failed: Vec<&str> = wf.steps[i]
        .needs
        .iter()
        .flat_map(|n| by_step.get(n).into_iter().flatten())
        .filter(|r| matches!(r.state, StepState::Failed | StepState::Cancelled))
        .map(|r| r.key.as_str())
        .collect();
    match failed.first() {
        Some(key) => {
            format!("will not start while {} failed — `drover retry {} {key}`", failed.join(", "), run.id)
        }
        None => {
            let halted: Vec<&str> = by_step
                .values()
                .flatten()
                .filter(|r| {
                    r.state == StepState::Failed && wf.steps[r.step_index].on_failure == OnFailure::Stop
                })
                .map(|r| r.key.as_str())
                .collect();
            match halted.first() {
                Some(key) => format!(
                    "the run stopped starting steps when {} failed (on-failure = stop) — `drover retry {} {key}`",
                    halted.join(", "),
                    run.id
                ),
                None => format!("starts when the run is driven — `drover resume {}`", run.id),
            }
        }
    }
}

fn pending_needs(wf: &Workflow, i: usize, by_step: &BTreeMap<usize, Vec<&StepRecord>>) -> Vec<String> {
    wf.steps[i]
        .needs
        .iter()
        .filter(|&&n| by_step.get(&n).is_none_or(|v| v.iter().any(|r| !r.state.is_terminal())))
        .map(|&n| wf.steps[n].id.clone())
        .collect()
}

fn summary_state(instances: &[&StepRecord]) -> StepState {
    for state in [
        StepState::Failed,
        StepState::NeedsOperator,
        StepState::Running,
        StepState::Waiting,
        StepState::Ready,
    ] {
        if instances.iter().any(|r| r.state == state) {
            return state;
        }
    }
    if instances.iter().all(|r| r.state == StepState::Skipped) {
        StepState::Skipped
    } else {
        StepState::Succeeded
    }
}

fn mark(state: StepState) -> &'static str {
    match state {
        StepState::Succeeded => "✓",
        StepState::Failed => "✗",
        StepState::Running => "▶",
        StepState::Skipped => "↷",
        StepState::Cancelled => "⊘",
        StepState::NeedsOperator => "!",
        StepState::Waiting => "…",
        StepState::Ready | StepState::Pending => "○",
    }
}

/// A UTC time for people, from ms since the epoch.
pub(super) fn format_ms(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}
