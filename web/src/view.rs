//! A run's view: the parts of the run page, rendered from the journal. The page is drawn from one
//! [`RunView`] when it is loaded and redrawn from the next ones the live stream sends, so a page
//! kept open and one loaded afresh show the same thing. The report part is the HTML report's own
//! rendering (`report::sections`).

use std::fmt::Write as _;
use std::sync::Arc;

use drover_engine::documents::{self, RunStatus};
use drover_engine::journal::RunId;
use drover_engine::report::{self, Report, esc, format_time};
use drover_engine::run::Clock;
use drover_engine::store::{RunState, StepState, Store};
use serde::Serialize;

use crate::error::ApiError;

/// Events shown on the page; the API and the report have them all.
const EVENTS_SHOWN: usize = 100;

/// Everything the run page shows, as HTML fragments (what the live stream sends).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunView {
    /// The run.
    pub run: String,
    /// The page's title.
    pub title: String,
    /// The last journal event seen (0 before any).
    pub seq: i64,
    /// The run's state.
    pub state: String,
    /// When the run was created (ms since the epoch), the start of the RTO clock.
    pub created_at: i64,
    /// When it ended, the end of the RTO clock.
    pub finished_at: Option<i64>,
    /// What is waiting for a person, with the forms that move it on.
    pub actions: String,
    /// Changes only when the set of things to act on does: the page keeps a form someone is
    /// typing into as long as this stays the same.
    pub actions_sig: String,
    /// Every step instance with its state and why it waits.
    pub now: String,
    /// The HTML report's body.
    pub report: String,
    /// The latest events.
    pub events: String,
}

/// Builds the view of `run_id` from the journal. Blocking: call it off the async threads.
pub fn build(store: &Store, run_id: RunId, clock: Arc<dyn Clock>) -> Result<RunView, ApiError> {
    let run = store.run(run_id)?;
    let events = store.events(run_id, 0)?;
    let seq = events.last().map_or(0, |e| e.seq);
    let status = documents::status(store, run_id, clock)?;
    let report = Report::build(store, run_id)?;
    let ended = matches!(run.state, RunState::Succeeded | RunState::Cancelled | RunState::Compensated);
    let (actions, actions_sig) = actions(&status, &report, ended);
    let mut events_html = String::new();
    let _ = write_events(&mut events_html, &events[events.len().saturating_sub(EVENTS_SHOWN)..]);
    Ok(RunView {
        run: run_id.to_string(),
        title: format!("{} {}", report.workflow, report.version),
        seq,
        state: run.state.to_string(),
        created_at: run.created_at,
        finished_at: run.finished_at,
        actions: shown(actions),
        actions_sig,
        now: shown(now(&status)),
        report: report::sections(&report),
        events: shown(events_html),
    })
}

/// Text from plugins and targets with its control characters made visible (`display`).
fn shown(text: String) -> String {
    drover_engine::display::visible(&text).into_owned()
}

/// The table of every step instance: state, attempts, and why it waits. Each row carries its key
/// and state as `data-` attributes, for people's tools and the browser tests.
fn now(status: &RunStatus) -> String {
    let mut out = String::new();
    let _ = (|| -> std::fmt::Result {
        writeln!(
            out,
            "<table class=\"now\"><tr><th>step</th><th>target</th><th>state</th><th>attempts</th><th>why it waits / summary</th></tr>"
        )?;
        for step in &status.steps {
            if step.instances.is_empty() {
                let waits = if step.waits_for.is_empty() {
                    String::new()
                } else {
                    format!("waits for {}", step.waits_for.join(", "))
                };
                writeln!(
                    out,
                    "<tr data-step-key=\"{id}\" data-state=\"pending\"><td><code>{id}</code></td><td></td><td class=\"pending\">pending</td><td></td><td class=\"muted\">{}</td></tr>",
                    esc(&waits),
                    id = esc(&step.id),
                )?;
                continue;
            }
            for i in &step.instances {
                let text = i.why.as_deref().or(i.summary.as_deref()).unwrap_or("");
                writeln!(
                    out,
                    "<tr data-step-key=\"{key}\" data-state=\"{state}\"><td><code>{key}</code></td><td>{target}</td><td class=\"{state}\">{state}</td><td>{attempts}</td><td>{text}</td></tr>",
                    key = esc(&i.key),
                    state = i.state,
                    target = esc(i.target.as_deref().unwrap_or("")),
                    attempts = i.attempts,
                    text = esc(text),
                )?;
            }
        }
        writeln!(out, "</table>")
    })();
    out
}

/// What a person can do now: approve a waiting gate (with who may), retry or skip a failed or
/// stopped instance (skip with the output the later steps need), cancel the run. The forms are
/// drawn for everyone; the server refuses anyone not logged in, and the page hides them then.
fn actions(status: &RunStatus, report: &Report, ended: bool) -> (String, String) {
    let run = status.summary.run;
    let mut out = String::new();
    let mut sig = String::new();
    for step in &status.steps {
        for i in &step.instances {
            let key = esc(&i.key);
            let gate = report.objectives.gates.iter().find(|g| g.key == i.key);
            match (i.state, gate) {
                (StepState::Waiting, Some(gate)) => {
                    let approvers = &gate.approvers;
                    let _ = write!(sig, "approve {} ", i.key);
                    let who = if approvers.is_empty() {
                        "anyone logged in".to_string()
                    } else {
                        approvers.join(", ")
                    };
                    let _ = writeln!(
                        out,
                        "<div class=\"gate\" data-step-key=\"{key}\"><h3>Approval: <code>{key}</code></h3><p class=\"prompt\">{prompt}</p>\
<p class=\"muted\">May approve: {who}</p>\
<form class=\"action action-approve\" data-step-key=\"{key}\" data-url=\"/api/runs/{run}/approve\">\
<textarea name=\"comment\" rows=\"2\" placeholder=\"Comment for the record\"></textarea>\
<button type=\"submit\">Approve</button></form></div>",
                        prompt = esc(&gate.prompt),
                        who = esc(&who),
                    );
                }
                (
                    StepState::Failed
                    | StepState::NeedsOperator
                    | StepState::Cancelled
                    | StepState::CompensationFailed,
                    _,
                ) => {
                    let _ = write!(sig, "retry {} ", i.key);
                    let _ = writeln!(
                        out,
                        "<div class=\"stuck\" data-step-key=\"{key}\"><h3><code>{key}</code> is {state}</h3><p>{why}</p>\
<form class=\"action action-retry\" data-step-key=\"{key}\" data-url=\"/api/runs/{run}/retry\">\
<textarea name=\"comment\" rows=\"1\" placeholder=\"Comment for the record\"></textarea><button type=\"submit\">Retry</button></form>\
<form class=\"action action-skip\" data-step-key=\"{key}\" data-url=\"/api/runs/{run}/skip\">\
<textarea name=\"output\" rows=\"2\" placeholder=\"Output the later steps use, as JSON (checked against the plugin's output schema)\">{{}}</textarea>\
<textarea name=\"comment\" rows=\"1\" placeholder=\"Comment for the record\"></textarea><button type=\"submit\">Skip with this output</button></form></div>",
                        state = i.state,
                        why = esc(i.why.as_deref().or(i.summary.as_deref()).unwrap_or("")),
                    );
                }
                _ => {}
            }
        }
    }
    if !ended {
        let _ = write!(sig, "cancel");
        let _ = writeln!(
            out,
            "<details class=\"cancel\"><summary>Cancel the run</summary>\
<form class=\"action action-cancel\" data-url=\"/api/runs/{run}/cancel\">\
<textarea name=\"comment\" rows=\"1\" placeholder=\"Why, for the record\"></textarea><button type=\"submit\">Cancel run</button></form></details>"
        );
    }
    if out.is_empty() {
        out.push_str("<p class=\"muted\">Nothing waits for a person.</p>");
    }
    (out, sig)
}

fn write_events(out: &mut String, events: &[drover_engine::store::EventRecord]) -> std::fmt::Result {
    writeln!(
        out,
        "<table class=\"events\"><tr><th>seq</th><th>time (UTC)</th><th>event</th><th>step</th><th>by</th></tr>"
    )?;
    for e in events.iter().rev() {
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            e.seq,
            format_time(e.at),
            esc(&e.kind),
            esc(e.step_key.as_deref().unwrap_or("")),
            esc(e.actor.as_str()),
        )?;
    }
    writeln!(out, "</table>")
}
