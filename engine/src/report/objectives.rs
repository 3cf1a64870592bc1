//! What a failover or drill is judged by, from the journal: the data-loss window (a step's
//! output against the failure time), the elapsed time of the run and of each phase with the time
//! spent waiting at approval gates apart, who let each gate pass and when, and what still needs
//! a person. [`build`] reads only the pinned definition, the step instances, their attempts and
//! the events, like the rest of the report; it computes, and adds no text of its own that a
//! secret could hide in.
//!
//! Times come from the journal only: a run that has not ended is measured to its last event,
//! never to the clock of whoever makes the report.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::StepReport;
use crate::journal::Event;
use crate::store::{EventRecord, RunRecord};
use crate::workflow::{RpoSource, StepKind, Workflow};

/// The run's elapsed time (the RTO as measured).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Timing {
    /// From the run's creation to `until` (ms).
    pub elapsed_ms: i64,
    /// Whether the run ended at `until`; else `until` is its last journal event.
    pub ended: bool,
    /// The end of the measure (ms since the epoch).
    pub until: i64,
    /// Time during which at least one approval gate waited for an operator (ms), overlaps
    /// counted once.
    pub at_gates_ms: i64,
}

impl Timing {
    /// The elapsed time without the time at gates.
    pub fn working_ms(&self) -> i64 {
        (self.elapsed_ms - self.at_gates_ms).max(0)
    }
}

/// One phase: the steps that name it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PhaseReport {
    /// The phase's name, as the workflow gives it.
    pub name: String,
    /// Its step instances, in report order.
    pub steps: Vec<String>,
    /// The first attempt's start or gate's wait among them.
    pub started_at: Option<i64>,
    /// The last attempt's end or gate's decision among them.
    pub finished_at: Option<i64>,
    /// Whether every instance of the phase is done (succeeded or skipped).
    pub done: bool,
    /// Of its span, the time during which one of its gates waited (ms).
    pub at_gates_ms: i64,
    /// Its instances by state: `2 succeeded, 1 skipped`.
    pub states: String,
}

impl PhaseReport {
    /// From its start to its end, once it has both.
    pub fn elapsed_ms(&self) -> Option<i64> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// An approval gate's instance and what became of it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GateReport {
    /// The instance key.
    pub key: String,
    /// The question it asked: its prompt as rendered when the gate was reached (from the
    /// journal), else as written.
    pub prompt: String,
    /// Who may approve it (anyone when empty).
    pub approvers: Vec<String>,
    /// When it began to wait.
    pub waiting_since: Option<i64>,
    /// `approved`, `skipped`, `cancelled`, `waiting`, or the instance's state.
    pub decision: String,
    /// The operator who decided.
    pub by: Option<String>,
    /// When.
    pub at: Option<i64>,
    /// The operator's comment.
    pub comment: Option<String>,
    /// How long it waited (to its decision, or to the end of the measure).
    pub waited_ms: Option<i64>,
}

/// Something a person still has to do or look at.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ManualItem {
    /// The step instance it is about; none for the workflow's own `report.manual` lines.
    pub step_key: Option<String>,
    /// The instance's state (`skipped`, `needs-operator`, `failed`, `not reached`, …).
    pub state: Option<String>,
    /// What to do, or why the instance did not run.
    pub what: String,
}

/// The data-loss window: how much committed work the recovery lost.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DataLoss {
    /// Where it was read (`steps.declare.output.rpo`), if the workflow says.
    pub source: Option<String>,
    /// The last transaction restored (ms since the epoch).
    pub recovery_point: Option<i64>,
    /// When production failed (ms since the epoch).
    pub failure_time: Option<i64>,
    /// Why it was not measured, when it was not.
    pub not_measured: Option<String>,
}

impl DataLoss {
    /// The window, failure time minus recovery point, once both are known.
    pub fn window_ms(&self) -> Option<i64> {
        if self.not_measured.is_some() {
            return None;
        }
        Some(self.failure_time? - self.recovery_point?)
    }
}

/// The objectives part of a report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Objectives {
    /// The run's elapsed time.
    pub timing: Timing,
    /// Phases in the order their first step is written.
    pub phases: Vec<PhaseReport>,
    /// Every approval gate's instance, in report order.
    pub gates: Vec<GateReport>,
    /// The workflow's manual work, then every instance skipped or left for an operator.
    pub manual: Vec<ManualItem>,
    /// The data-loss window.
    pub data_loss: DataLoss,
}

/// Gathers the objectives of a run from its journal; `steps` are the report's instances in
/// report order, `outputs` each instance's output by key.
pub(super) fn build(
    run: &RunRecord,
    wf: Option<&Workflow>,
    steps: &[StepReport],
    outputs: &BTreeMap<String, Value>,
    events: &[EventRecord],
) -> Objectives {
    let last_event = events.iter().map(|e| e.at).max().unwrap_or(run.created_at);
    let until = run.finished_at.unwrap_or(last_event.max(run.created_at));
    let gates = gates(wf, steps, events, until);
    let spans: BTreeMap<&str, (i64, i64)> = gates
        .iter()
        .filter_map(|g| Some((g.key.as_str(), (g.waiting_since?, g.at.unwrap_or(until)))))
        .collect();
    let timing = Timing {
        elapsed_ms: until - run.created_at,
        ended: run.finished_at.is_some(),
        until,
        at_gates_ms: union_ms(spans.values().copied(), run.created_at, until),
    };
    Objectives {
        timing,
        phases: phases(wf, steps, &spans, until),
        manual: manual(wf, steps, run.finished_at.is_some()),
        data_loss: data_loss(wf, outputs),
        gates,
    }
}

fn gates(wf: Option<&Workflow>, steps: &[StepReport], events: &[EventRecord], until: i64) -> Vec<GateReport> {
    let Some(wf) = wf else { return Vec::new() };
    let mut out = Vec::new();
    for s in steps {
        let Some(StepKind::Approval { prompt, approvers }) = wf.step(&s.step).map(|st| &st.kind) else {
            continue;
        };
        let mine = events.iter().filter(|e| e.step_key.as_deref() == Some(s.key.as_str()));
        let waiting = mine.clone().find(|e| e.kind == "waiting-for-approval");
        let waiting_since = waiting.map(|e| e.at);
        // The prompt as the gate rendered it when it was reached, else as written.
        let shown = waiting
            .and_then(|e| e.data.get("reason")?.as_str()?.strip_prefix("approval: "))
            .unwrap_or(prompt);
        let decided =
            mine.clone().rev().find(|e| matches!(e.kind.as_str(), "approved" | "skipped-by-operator"));
        // A gate the run skipped without asking (its `when` false, a need failed) asked nobody.
        if waiting.is_none() && decided.is_none() && s.state == "skipped" {
            continue;
        }
        let cancelled = (s.state == "cancelled")
            .then(|| events.iter().rev().find(|e| e.kind == "cancel-requested"))
            .flatten();
        let (decision, by, at, comment) = match decided.or(cancelled) {
            Some(e) => {
                let decision = match e.event() {
                    Ok(Event::Approved { .. }) => "approved",
                    Ok(Event::SkippedByOperator { .. }) => "skipped",
                    _ => "cancelled",
                };
                let comment = e.data.get("comment").and_then(Value::as_str).map(str::to_string);
                (decision.to_string(), Some(e.actor.to_string()), Some(e.at), comment)
            }
            None => (s.state.clone(), None, None, None),
        };
        let waited_ms = waiting_since.map(|from| at.unwrap_or(until) - from);
        out.push(GateReport {
            key: s.key.clone(),
            prompt: shown.to_string(),
            approvers: approvers.clone(),
            waiting_since,
            decision,
            by,
            at,
            comment,
            waited_ms,
        });
    }
    out
}

/// The phases the workflow names, in order; one whose every step instance was skipped is left
/// out (it did not happen), one not reached yet is kept.
fn phases(
    wf: Option<&Workflow>,
    steps: &[StepReport],
    gate_spans: &BTreeMap<&str, (i64, i64)>,
    until: i64,
) -> Vec<PhaseReport> {
    let Some(wf) = wf else { return Vec::new() };
    let mut names: Vec<&str> = Vec::new();
    for step in &wf.steps {
        if let Some(phase) = step.phase.as_deref()
            && !names.contains(&phase)
        {
            names.push(phase);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let ids: BTreeSet<&str> =
                wf.steps.iter().filter(|s| s.phase.as_deref() == Some(name)).map(|s| s.id.as_str()).collect();
            let instances: Vec<&StepReport> =
                steps.iter().filter(|s| ids.contains(s.step.as_str())).collect();
            // A phase the run skipped whole (a drill's clean-up in a failover) did not happen.
            if ids.iter().all(|id| instances.iter().any(|s| s.step == *id))
                && instances.iter().all(|s| s.state == "skipped")
            {
                return None;
            }
            let mut spans: Vec<(i64, i64)> = Vec::new();
            let mut gates: Vec<(i64, i64)> = Vec::new();
            for s in &instances {
                if let Some(&span) = gate_spans.get(s.key.as_str()) {
                    spans.push(span);
                    gates.push(span);
                }
                for a in s.attempts.iter().filter(|a| a.mode != "compensate") {
                    spans.push((a.started_at, a.finished_at.unwrap_or(until)));
                }
            }
            let started_at = spans.iter().map(|s| s.0).min();
            let finished_at = spans.iter().map(|s| s.1).max();
            let done = ids.iter().all(|id| instances.iter().any(|s| s.step == *id))
                && instances.iter().all(|s| matches!(s.state.as_str(), "succeeded" | "skipped"));
            let at_gates_ms = match (started_at, finished_at) {
                (Some(from), Some(to)) => union_ms(gates.into_iter(), from, to),
                _ => 0,
            };
            Some(PhaseReport {
                name: name.to_string(),
                steps: instances.iter().map(|s| s.key.clone()).collect(),
                started_at,
                finished_at: if done { finished_at } else { None },
                done,
                at_gates_ms,
                states: tally(&instances),
            })
        })
        .collect()
}

/// `2 succeeded, 1 skipped`, in the order states first appear.
fn tally(instances: &[&StepReport]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in instances {
        match counts.iter_mut().find(|(state, _)| *state == s.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((&s.state, 1)),
        }
    }
    if counts.is_empty() {
        return "not reached".into();
    }
    counts.iter().map(|(state, n)| format!("{n} {state}")).collect::<Vec<_>>().join(", ")
}

fn manual(wf: Option<&Workflow>, steps: &[StepReport], ended: bool) -> Vec<ManualItem> {
    let mut out: Vec<ManualItem> = wf
        .map(|wf| wf.report.manual.iter())
        .into_iter()
        .flatten()
        .map(|what| ManualItem { step_key: None, state: None, what: what.clone() })
        .collect();
    for s in steps {
        let left = matches!(
            s.state.as_str(),
            "skipped" | "needs-operator" | "failed" | "cancelled" | "waiting" | "compensation-failed"
        );
        if left {
            out.push(ManualItem {
                step_key: Some(s.key.clone()),
                state: Some(s.state.clone()),
                what: s.summary.clone().unwrap_or_default(),
            });
        }
    }
    if let Some(wf) = wf.filter(|_| ended) {
        for &i in &wf.order {
            let id = &wf.steps[i].id;
            if !steps.iter().any(|s| s.step == *id) {
                out.push(ManualItem {
                    step_key: Some(id.clone()),
                    state: Some("not reached".into()),
                    what: "the run ended before this step began".into(),
                });
            }
        }
    }
    out
}

fn data_loss(wf: Option<&Workflow>, outputs: &BTreeMap<String, Value>) -> DataLoss {
    let Some(source) = wf.and_then(|wf| wf.report.rpo.as_ref()) else {
        return DataLoss {
            source: None,
            recovery_point: None,
            failure_time: None,
            not_measured: Some("the workflow names no output that holds it (`report.rpo`)".into()),
        };
    };
    let mut loss = DataLoss {
        source: Some(source.to_string()),
        recovery_point: None,
        failure_time: None,
        not_measured: None,
    };
    match read_window(source, outputs) {
        Ok((recovery_point, failure_time)) => {
            loss.recovery_point = Some(recovery_point);
            loss.failure_time = Some(failure_time);
            if recovery_point > failure_time {
                loss.not_measured =
                    Some("the recovery point is later than the failure time: check both".into());
            }
        }
        Err(why) => loss.not_measured = Some(why),
    }
    loss
}

/// `(recovery point, failure time)` from the output `source` names.
fn read_window(source: &RpoSource, outputs: &BTreeMap<String, Value>) -> Result<(i64, i64), String> {
    let output = outputs
        .get(&source.step)
        .ok_or_else(|| format!("step `{}` has no output (it did not succeed)", source.step))?;
    let object =
        source.path.iter().try_fold(output, |value, key| value.get(key)).ok_or_else(|| {
            format!("the output of step `{}` has no `{}`", source.step, source.path.join("."))
        })?;
    let time = |field: &str| -> Result<i64, String> {
        let text = object
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{source}` has no `{field}` string"))?;
        parse_time(text).map_err(|e| format!("`{source}.{field}` {e}"))
    };
    Ok((time("recovery_point")?, time("failure_time")?))
}

/// An RFC 3339 time with its zone, `Z` or `±hh:mm`, as ms since the epoch.
pub(super) fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || "is not an RFC 3339 time with a zone (`2026-12-07T09:14:00Z`, `…+01:00`)".to_string();
    let (local, offset_s) = if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        (local, 0)
    } else {
        let at = text.len().checked_sub(6).filter(|&at| text.is_char_boundary(at)).ok_or_else(bad)?;
        let (local, zone) = text.split_at(at);
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let (hours, minutes) = zone[1..].split_once(':').ok_or_else(bad)?;
        let (hours, minutes): (i64, i64) =
            (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        (local, sign * (hours * 3600 + minutes * 60))
    };
    if !local.contains('T') && !local.contains('t') {
        return Err(bad());
    }
    let at = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?.as_millis();
    Ok(i64::try_from(ms).map_err(|_| bad())? - offset_s * 1000)
}

/// The time within `[from, to]` covered by at least one of `spans` (ms).
fn union_ms(spans: impl Iterator<Item = (i64, i64)>, from: i64, to: i64) -> i64 {
    let mut spans: Vec<(i64, i64)> =
        spans.map(|(a, b)| (a.max(from), b.min(to))).filter(|(a, b)| b > a).collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0, i64::MIN);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_a_zone_are_read_and_times_without_one_refused() {
        let utc = parse_time("2026-12-07T09:14:00Z").expect("utc");
        assert_eq!(parse_time("2026-12-07T10:14:00+01:00"), Ok(utc));
        assert_eq!(parse_time("2026-12-07T04:14:00-05:00"), Ok(utc));
        assert_eq!(parse_time("2026-12-07T09:14:00.250Z"), Ok(utc + 250));
        for bad in [
            "2026-12-07T09:14:00",
            "2026-12-07 09:14:00Z",
            "yesterday",
            "",
            "Z",
            "+01:00",
            "2026-12-07T09:14:00+1:0é",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} read as a time");
        }
    }

    #[test]
    fn overlapping_gate_waits_count_once_and_stay_within_the_measure() {
        assert_eq!(union_ms([(10, 20), (15, 30), (40, 50)].into_iter(), 0, 100), 30);
        assert_eq!(union_ms([(10, 20), (12, 18)].into_iter(), 0, 100), 10);
        assert_eq!(union_ms([(0, 200)].into_iter(), 50, 100), 50);
        assert_eq!(union_ms(std::iter::empty(), 0, 100), 0);
    }

    use crate::journal::{Actor, RunId};
    use crate::plugin::{PluginInfo, PluginRef};
    use crate::report::AttemptReport;
    use crate::store::RunState;
    use crate::workflow::{ValidationContext, load_text};

    const T0: i64 = 1_796_000_000_000;

    fn workflow() -> Workflow {
        let info: PluginInfo = serde_json::from_value(serde_json::json!({
            "name": "noop", "version": "1.0.0", "description": "does nothing", "effect": "read-only",
            "input_schema": {"type": "object"}, "output_schema": {"type": "object"},
            "capabilities": {"programs": [], "secrets": [], "targets": false},
            "compensable": false, "sdk": "drover-sdk 0.1.0"
        }))
        .expect("info");
        let resolve = |_: &PluginRef| Ok(info.clone());
        let text = r#"name = "w"
version = "1.0.0"
[report]
manual = ["Redirect clients: DNS and aliases", "BAM"]
rpo = "steps.declare.output.rpo"
[[steps]]
id = "declare"
plugin = "noop"
phase = "Prepare"
[[steps]]
id = "go"
approval = { prompt = "Fail over?" }
needs = ["declare"]
phase = "Prepare"
[[steps]]
id = "restore"
plugin = "noop"
needs = ["go"]
phase = "Restore"
[[steps]]
id = "optional"
plugin = "noop"
needs = ["go"]
when = "false"
phase = "Restore"
[[steps]]
id = "never"
plugin = "noop"
needs = ["restore"]
"#;
        load_text(
            std::path::Path::new("w.toml"),
            text,
            &ValidationContext { groups: None, plugins: &resolve },
        )
        .expect("valid")
    }

    fn run(state: RunState, finished_at: Option<i64>) -> RunRecord {
        RunRecord {
            id: RunId::generate(),
            workflow: "w".into(),
            workflow_version: "1.0.0".into(),
            source_path: "w.toml".into(),
            definition: Value::Null,
            params: serde_json::json!({}),
            inventory: Value::Null,
            inventory_digest: String::new(),
            plugins: Default::default(),
            state,
            started_by: "ops".into(),
            created_at: T0,
            finished_at,
        }
    }

    fn step(key: &str, state: &str, attempts: &[(i64, i64)], summary: &str) -> StepReport {
        StepReport {
            key: key.into(),
            step: key.into(),
            target: None,
            state: state.into(),
            changed: None,
            summary: Some(summary.into()),
            started_at: attempts.first().map(|a| T0 + a.0),
            finished_at: attempts.last().map(|a| T0 + a.1),
            attempts: attempts
                .iter()
                .enumerate()
                .map(|(n, &(from, to))| AttemptReport {
                    number: n as u32 + 1,
                    mode: "apply".into(),
                    state: "succeeded".into(),
                    started_at: T0 + from,
                    finished_at: Some(T0 + to),
                    error: None,
                })
                .collect(),
            evidence: Vec::new(),
            target_calls: 0,
        }
    }

    fn event(at: i64, key: Option<&str>, actor: &str, event: Event) -> EventRecord {
        EventRecord {
            seq: at,
            run_id: RunId::generate(),
            at: T0 + at,
            step_key: key.map(str::to_string),
            kind: event.kind().into(),
            actor: Actor::from(actor),
            data: serde_json::from_str(&event.data_json()).expect("data"),
        }
    }

    #[test]
    fn a_failover_is_measured_by_phase_gate_and_window_from_the_journal() {
        let wf = workflow();
        let run = run(RunState::Failed, Some(T0 + 10_000));
        let steps = vec![
            step("declare", "succeeded", &[(100, 600)], "declared"),
            step("go", "succeeded", &[], "approved by alice"),
            step("restore", "failed", &[(7_000, 7_500), (8_000, 9_000)], "log restore failed"),
            step("optional", "skipped", &[], "when `false` is false"),
        ];
        let events = vec![
            event(
                600,
                Some("go"),
                "engine",
                Event::WaitingForApproval { reason: Some("approval: Fail over? 6 min lost".into()) },
            ),
            event(6_600, Some("go"), "alice", Event::Approved { comment: Some("bridge call 14:02".into()) }),
            event(10_000, None, "engine", Event::RunFailed { failures: Vec::new() }),
        ];
        let outputs = BTreeMap::from([(
            "declare".to_string(),
            serde_json::json!({ "rpo": { "recovery_point": "2026-12-07T09:14:00Z", "failure_time": "2026-12-07T09:20:00Z" } }),
        )]);
        let o = build(&run, Some(&wf), &steps, &outputs, &events);

        assert_eq!(
            (o.timing.elapsed_ms, o.timing.at_gates_ms, o.timing.working_ms()),
            (10_000, 6_000, 4_000)
        );
        assert!(o.timing.ended);
        assert_eq!(o.data_loss.window_ms(), Some(6 * 60_000));
        assert_eq!(o.data_loss.source.as_deref(), Some("steps.declare.output.rpo"));

        let [prepare, restore] = o.phases.as_slice() else { panic!("two phases: {:?}", o.phases) };
        assert_eq!(
            (prepare.name.as_str(), prepare.started_at, prepare.finished_at),
            ("Prepare", Some(T0 + 100), Some(T0 + 6_600))
        );
        assert_eq!((prepare.elapsed_ms(), prepare.at_gates_ms), (Some(6_500), 6_000));
        assert_eq!(prepare.states, "2 succeeded");
        assert_eq!((restore.started_at, restore.finished_at, restore.done), (Some(T0 + 7_000), None, false));
        assert_eq!(restore.states, "1 failed, 1 skipped");

        let [gate] = o.gates.as_slice() else { panic!("one gate") };
        assert_eq!(gate.prompt, "Fail over? 6 min lost", "the prompt as the gate rendered it");
        assert_eq!(
            (gate.decision.as_str(), gate.by.as_deref(), gate.at, gate.waited_ms, gate.comment.as_deref()),
            ("approved", Some("alice"), Some(T0 + 6_600), Some(6_000), Some("bridge call 14:02"))
        );

        let manual: Vec<(Option<&str>, Option<&str>, &str)> =
            o.manual.iter().map(|m| (m.step_key.as_deref(), m.state.as_deref(), m.what.as_str())).collect();
        assert_eq!(
            manual,
            [
                (None, None, "Redirect clients: DNS and aliases"),
                (None, None, "BAM"),
                (Some("restore"), Some("failed"), "log restore failed"),
                (Some("optional"), Some("skipped"), "when `false` is false"),
                (Some("never"), Some("not reached"), "the run ended before this step began"),
            ]
        );
    }

    #[test]
    fn a_run_that_has_not_ended_is_measured_to_its_last_event_and_its_gate_still_waits() {
        let wf = workflow();
        let run = run(RunState::Waiting, None);
        let steps = vec![
            step("declare", "succeeded", &[(100, 600)], "declared"),
            step("go", "waiting", &[], "approval: Fail over?"),
        ];
        let events = vec![event(600, Some("go"), "engine", Event::WaitingForApproval { reason: None })];
        let o = build(&run, Some(&wf), &steps, &BTreeMap::new(), &events);
        assert_eq!(
            (o.timing.ended, o.timing.until, o.timing.elapsed_ms, o.timing.at_gates_ms),
            (false, T0 + 600, 600, 0)
        );
        assert_eq!((o.gates[0].decision.as_str(), o.gates[0].by.as_deref()), ("waiting", None));
        assert_eq!(
            o.gates[0].prompt, "Fail over?",
            "no rendered prompt in the journal: the prompt as written"
        );
        assert_eq!(
            o.data_loss.not_measured.as_deref(),
            Some("step `declare` has no output (it did not succeed)")
        );
        assert!(
            o.manual.iter().all(|m| m.state.as_deref() != Some("not reached")),
            "nothing is unreached before the end"
        );
    }

    /// A report around `objectives`, the rest empty, for the renderers.
    fn report(objectives: Objectives) -> crate::report::Report {
        crate::report::Report {
            run: "run_x".into(),
            workflow: "w".into(),
            version: "1.0.0".into(),
            source_path: "w.toml".into(),
            state: "cancelled".into(),
            started_by: "ops".into(),
            started_at: T0,
            finished_at: Some(T0 + 10_000),
            params: serde_json::json!({}),
            inventory_digest: String::new(),
            plugins: BTreeMap::new(),
            steps: Vec::new(),
            operator_actions: Vec::new(),
            graph: Vec::new(),
            objectives,
        }
    }

    #[test]
    fn a_gate_refused_by_cancelling_the_run_is_shown_with_who_and_why_in_both_formats() {
        let wf = workflow();
        let steps = vec![
            step("declare", "succeeded", &[(100, 600)], "declared"),
            step("go", "cancelled", &[], "cancelled by bob"),
        ];
        let events = vec![
            event(600, Some("go"), "engine", Event::WaitingForApproval { reason: None }),
            event(
                9_000,
                None,
                "bob",
                Event::CancelRequested { comment: Some("production | is <b>back</b>".into()) },
            ),
            event(10_000, None, "engine", Event::RunCancelled {}),
        ];
        let o =
            build(&run(RunState::Cancelled, Some(T0 + 10_000)), Some(&wf), &steps, &BTreeMap::new(), &events);
        let gate = &o.gates[0];
        assert_eq!(
            (gate.decision.as_str(), gate.by.as_deref(), gate.at, gate.waited_ms),
            ("cancelled", Some("bob"), Some(T0 + 9_000), Some(8_400))
        );
        assert_eq!(o.timing.at_gates_ms, 8_400);
        assert_eq!(
            (o.phases[0].finished_at, o.phases[0].elapsed_ms()),
            (None, None),
            "the phase did not finish"
        );

        let r = report(o);
        let md = crate::report::markdown(&r);
        for line in [
            "| data-loss window (RPO) | not measured: step `declare` has no output (it did not succeed) |\n",
            "| Prepare | 1 succeeded, 1 cancelled | 2026-11-30T",
            "| not finished |  | 8.4 s |\n",
            "| cancelled | bob | ",
            "| 8.4 s | production \\| is <b>back</b> |\n",
            "- `go` cancelled: cancelled by bob\n",
            "- `never` not reached: the run ended before this step began\n",
        ] {
            assert!(md.contains(line), "{line:?} in\n{md}");
        }
        let html = crate::report::html(&r);
        assert!(html.contains("<td>production | is &lt;b&gt;back&lt;/b&gt;</td>"), "{html}");
        assert!(html.contains("<span class=\"muted\">not measured: step `declare` has no output"), "{html}");
        assert!(!md.chars().chain(html.chars()).any(|c| c.is_control() && c != '\n' && c != '\t'));
    }

    fn outputs(value: Value) -> BTreeMap<String, Value> {
        BTreeMap::from([("declare".to_string(), value)])
    }

    #[test]
    fn the_window_is_read_from_the_named_output_or_said_not_measured() {
        let source = RpoSource { step: "declare".into(), path: vec!["rpo".into()] };
        let good = outputs(serde_json::json!({ "rpo": {
            "recovery_point": "2026-12-07T09:14:00Z", "failure_time": "2026-12-07T10:19:30+01:00" } }));
        let (point, failure) = read_window(&source, &good).expect("measured");
        assert_eq!(failure - point, 5 * 60_000 + 30_000);

        let missing = read_window(&source, &BTreeMap::new()).unwrap_err();
        assert_eq!(missing, "step `declare` has no output (it did not succeed)");
        let no_key = read_window(&source, &outputs(serde_json::json!({ "ok": true }))).unwrap_err();
        assert_eq!(no_key, "the output of step `declare` has no `rpo`");
        let no_zone = outputs(serde_json::json!({ "rpo": {
            "recovery_point": "2026-12-07T09:14:00", "failure_time": "2026-12-07T09:20:00Z" } }));
        assert!(
            read_window(&source, &no_zone)
                .unwrap_err()
                .starts_with("`steps.declare.output.rpo.recovery_point` is not")
        );
    }
}
