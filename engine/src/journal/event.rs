//! [`Event`]: what the event journal can say, one variant per kind, and [`Actor`], who did it.
//!
//! `drover events --json` prints each event as `{seq, run_id, at, step_key, kind, actor, data}`;
//! `kind` is the variant's name in kebab-case and `data` its fields, exactly as serde writes them
//! here. Scripts read that, so a field is never renamed or retyped: a new field or kind is added
//! instead. `docs/events.md` is generated from these types and their doc comments
//! ([`super::reference`]).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::grants::Refusal;
use crate::plugin::{LogRecord, TargetCallRecord};
use crate::store::StepState;

/// One entry of the event journal: a run or a step instance moved, or someone asked it to.
///
/// Each variant's documentation says when it is written and by whom; its fields are the event's
/// `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
pub enum Event {
    /// `drover run` created the run and pinned its definition. Actor: the user who started it.
    RunCreated {
        /// The workflow's name.
        workflow: String,
        /// The workflow's version.
        version: String,
        /// The params, defaults applied.
        params: Value,
    },
    /// A process took the run's lease and drives it: at the start of a run and of every resume.
    Driving {
        /// The driving process.
        pid: u32,
    },
    /// A step's needs finished and its instance waits at an approval gate.
    WaitingForApproval {
        /// `approval: <the step's prompt, rendered>`; a prompt that did not render is given as
        /// written, followed by ` (the prompt did not render: <why>)`.
        reason: Option<String>,
    },
    /// A step's needs finished and its instance may start when the limits allow.
    StepReady {
        /// Always null.
        reason: Option<String>,
    },
    /// A step instance will not run: its `when` was false, or a step it needs failed.
    StepSkipped {
        /// Why.
        reason: Option<String>,
    },
    /// A step instance failed before any attempt: its `for-each`, `when` or `with` cannot be
    /// evaluated.
    StepFailed {
        /// Why.
        reason: Option<String>,
    },
    /// An attempt's intent was committed; its plugin is called next.
    AttemptStarted {
        /// The attempt's number (1, 2, …).
        attempt: u32,
    },
    /// An attempt's plugin called a target (a program run, a file read, written or removed).
    /// Written before the outcome of its attempt.
    TargetCall {
        /// The attempt's number.
        attempt: u32,
        /// The call.
        #[serde(flatten)]
        call: TargetCallRecord,
    },
    /// The host refused an attempt's call (a missing grant); the attempt fails.
    Refused {
        /// The attempt's number.
        attempt: u32,
        /// What was refused and why, as the plugin was told.
        message: String,
        /// The refusal.
        #[serde(flatten)]
        refusal: Refusal,
    },
    /// An attempt succeeded, and with it its step instance.
    AttemptSucceeded {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// Whether it changed something.
        changed: bool,
        /// The plugin's one-line summary.
        summary: String,
    },
    /// An attempt failed for good: its step instance failed.
    AttemptFailed {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// Why.
        error: String,
    },
    /// An attempt failed and may succeed later: another runs at `retry_at`.
    RetryScheduled {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// Why it failed.
        error: String,
        /// When the next attempt may start (ms since the epoch).
        retry_at: Option<i64>,
    },
    /// A step instance waits for an operator (`drover retry` or `drover skip`): its plugin asked
    /// for one, or an irreversible step's attempt was interrupted.
    NeedsOperator(NeedsOperator),
    /// An attempt was stopped because the run was cancelled. Actor: the operator who cancelled.
    AttemptCancelled(AttemptCancelled),
    /// A resume found an attempt the previous driver left running: it is over, with no outcome.
    AttemptInterrupted {
        /// The attempt's number.
        attempt: u32,
    },
    /// Before judging an interrupted attempt of a reversible step, the driver waited for the
    /// processes that attempt had started on this machine.
    LeftoverProcesses {
        /// The interrupted attempt.
        attempt: u32,
        /// Processes found.
        processes: usize,
        /// Of those, still running at the step's timeout, and killed.
        killed: usize,
        /// How long the driver waited (ms).
        waited_ms: u64,
    },
    /// The plugin's `check` judged an interrupted attempt of a reversible step.
    RecoveredByCheck {
        /// The interrupted attempt.
        interrupted: u32,
        /// The instance's state after the check: `succeeded` (the attempt took effect), `ready`
        /// (it did not: the step is applied again) or `needs-operator` (the check failed).
        #[schemars(with = "String")]
        state: StepState,
    },
    /// A retry timer is due: the step instance is ready again.
    RetryDue {},
    /// Every step finished and none failed.
    RunSucceeded {},
    /// The run ended with failed steps.
    RunFailed {
        /// `[step key, why]` of every failed instance.
        failures: Vec<(String, String)>,
    },
    /// Nothing can move without an operator; the driving process stopped.
    RunWaiting {
        /// `[step key, why]` of every instance waiting for an operator or a timer.
        waiting: Vec<(String, String)>,
    },
    /// The run ended cancelled, nothing of it running any more.
    RunCancelled {},
    /// `drover cancel` was applied: every unfinished instance is cancelled, running attempts are
    /// stopped. Actor: the operator.
    CancelRequested {
        /// The operator's comment.
        comment: Option<String>,
    },
    /// `drover approve` let an approval gate pass. Actor: the operator.
    Approved {
        /// The operator's comment.
        comment: Option<String>,
    },
    /// `drover retry` made a failed, cancelled or needs-operator instance ready again. Actor:
    /// the operator.
    RetryRequested {
        /// The operator's comment.
        comment: Option<String>,
    },
    /// `drover skip` marked an instance done without running it. Actor: the operator.
    SkippedByOperator {
        /// The operator's comment.
        comment: Option<String>,
        /// The output later steps see.
        output: Value,
    },
    /// An operator command that was valid when queued no longer fit the run when the driving
    /// process applied it. Actor: the operator who sent it.
    RequestRejected {
        /// The command (`approve`, `retry`, `skip`, `cancel`, `compensate`).
        request: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `drover compensate` was applied. Actor: the operator.
    CompensationRequested {
        /// The operator's comment.
        comment: Option<String>,
    },
    /// Compensation began: forward work stopped, unfinished instances were cancelled, and what the
    /// run changed and can undo is to be compensated, latest in dependency order first. Actor:
    /// the engine (the run failed under `on-failure = "compensate"`) or the operator who asked.
    CompensationStarted {
        /// Why: the instances that failed, or who asked.
        reason: String,
        /// The instances to compensate.
        compensate: Vec<String>,
        /// The instances that changed something and will not be undone, and why.
        left_as_is: Vec<LeftAsIs>,
    },
    /// A compensation's intent was committed; the plugin's `compensate` is called next.
    CompensateStarted {
        /// The attempt's number (attempts of an instance are numbered across modes).
        attempt: u32,
    },
    /// A compensation succeeded: the instance is compensated.
    CompensateSucceeded {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// Whether it changed something.
        changed: bool,
        /// The plugin's one-line summary.
        summary: String,
    },
    /// A compensation failed, or could not start (then there is no attempt): the instance waits
    /// for an operator (`drover retry` runs it again, `drover skip` marks it undone by hand).
    CompensateFailed {
        /// The attempt, when one ran.
        #[serde(flatten)]
        audit: Option<AttemptAudit>,
        /// Why.
        error: String,
    },
    /// Every compensation finished: the run ended compensated.
    RunCompensated {
        /// The instances compensated.
        compensated: Vec<String>,
        /// The instances that changed something and were not undone, and why.
        left_as_is: Vec<LeftAsIs>,
    },
}

/// An instance compensation leaves as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeftAsIs {
    /// The instance.
    pub key: String,
    /// Why it is not undone (its plugin cannot compensate, it is irreversible, …).
    pub why: String,
}

/// What every event about a finished attempt says of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttemptAudit {
    /// The attempt's number (1, 2, …).
    pub attempt: u32,
    /// Its wall time, the plugin's instantiation included (ms).
    pub duration_ms: u64,
    /// The plugin's log lines, in order, secrets redacted.
    pub logs: Vec<LogRecord>,
    /// How many target calls it made (each is a `target-call` event).
    pub target_calls: usize,
    /// How many of its host calls were refused (each is a `refused` event).
    pub refusals: usize,
}

/// Why a step instance needs an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NeedsOperator {
    /// The plugin failed its attempt asking for an operator.
    Failed {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// The plugin's message.
        error: String,
    },
    /// An attempt of an irreversible step was interrupted: it may or may not have taken effect.
    Interrupted {
        /// What happened and what the operator can do.
        reason: Option<String>,
    },
}

/// How a cancel ended an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AttemptCancelled {
    /// The driving process stopped the attempt in flight.
    Stopped {
        /// The attempt.
        #[serde(flatten)]
        audit: AttemptAudit,
        /// How it ended.
        error: String,
        /// The cancelling operator's comment.
        comment: Option<String>,
    },
    /// No process drove the run: `drover cancel` ended the attempt a dead driver left running.
    Ended {
        /// The attempt's number.
        attempt: u32,
        /// Always true: the attempt was interrupted by its driver's end.
        interrupted: bool,
    },
}

impl Event {
    /// The event's kind, as the journal stores it (`attempt-started`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunCreated { .. } => "run-created",
            Event::Driving { .. } => "driving",
            Event::WaitingForApproval { .. } => "waiting-for-approval",
            Event::StepReady { .. } => "step-ready",
            Event::StepSkipped { .. } => "step-skipped",
            Event::StepFailed { .. } => "step-failed",
            Event::AttemptStarted { .. } => "attempt-started",
            Event::TargetCall { .. } => "target-call",
            Event::Refused { .. } => "refused",
            Event::AttemptSucceeded { .. } => "attempt-succeeded",
            Event::AttemptFailed { .. } => "attempt-failed",
            Event::RetryScheduled { .. } => "retry-scheduled",
            Event::NeedsOperator(_) => "needs-operator",
            Event::AttemptCancelled(_) => "attempt-cancelled",
            Event::AttemptInterrupted { .. } => "attempt-interrupted",
            Event::LeftoverProcesses { .. } => "leftover-processes",
            Event::RecoveredByCheck { .. } => "recovered-by-check",
            Event::RetryDue {} => "retry-due",
            Event::RunSucceeded {} => "run-succeeded",
            Event::RunFailed { .. } => "run-failed",
            Event::RunWaiting { .. } => "run-waiting",
            Event::RunCancelled {} => "run-cancelled",
            Event::CancelRequested { .. } => "cancel-requested",
            Event::Approved { .. } => "approved",
            Event::RetryRequested { .. } => "retry-requested",
            Event::SkippedByOperator { .. } => "skipped-by-operator",
            Event::RequestRejected { .. } => "request-rejected",
            Event::CompensationRequested { .. } => "compensation-requested",
            Event::CompensationStarted { .. } => "compensation-started",
            Event::CompensateStarted { .. } => "compensate-started",
            Event::CompensateSucceeded { .. } => "compensate-succeeded",
            Event::CompensateFailed { .. } => "compensate-failed",
            Event::RunCompensated { .. } => "run-compensated",
        }
    }

    /// The event's `data` as JSON text, as the journal stores it.
    pub fn data_json(&self) -> String {
        // Adjacently tagged, an event serializes as `{"kind":"<kind>","data":<data>}`: the data is
        // what lies between that prefix and the closing brace. Cut out rather than built as a
        // `Value` and written again: a fan-out's turn makes thousands of events.
        let text = serde_json::to_string(self).unwrap_or_default();
        let prefix = format!("{{\"kind\":\"{}\",\"data\":", self.kind());
        match text.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix('}')) {
            Some(data) => data.to_string(),
            None => serde_json::to_value(self).map(|v| v["data"].to_string()).unwrap_or_else(|_| "{}".into()),
        }
    }

    /// The event a journal row holds, if its kind is one this build knows and its data fits.
    pub fn from_parts(kind: &str, data: &Value) -> Result<Event, serde_json::Error> {
        let mut row = serde_json::Map::new();
        row.insert("kind".into(), Value::String(kind.into()));
        row.insert("data".into(), data.clone());
        Event::deserialize(Value::Object(row))
    }
}

/// Who wrote an event: the engine itself, or an operator (the OS user who ran the command).
///
/// Stored and printed as a string: `engine`, or the user's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The driving process.
    Engine,
    /// A person, by OS user name.
    Operator(String),
}

/// How the journal writes [`Actor::Engine`].
const ENGINE: &str = "engine";

impl Actor {
    /// The actor as stored: `engine` or the user name.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::Engine => ENGINE,
            Actor::Operator(user) => user,
        }
    }

    /// Whether a person, not the engine, acted.
    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Operator(_))
    }
}

impl From<&str> for Actor {
    fn from(text: &str) -> Actor {
        if text == ENGINE { Actor::Engine } else { Actor::Operator(text.to_string()) }
    }
}

impl From<String> for Actor {
    fn from(text: String) -> Actor {
        if text == ENGINE { Actor::Engine } else { Actor::Operator(text) }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Actor, D::Error> {
        String::deserialize(deserializer).map(Actor::from)
    }
}

impl JsonSchema for Actor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Actor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`engine`, or the OS user who ran the command."
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::grants::Missing;
    use crate::plugin::{LogLevel, TargetCall};

    fn audit() -> AttemptAudit {
        AttemptAudit {
            attempt: 2,
            duration_ms: 15,
            logs: vec![LogRecord { level: LogLevel::Info, message: "probing".into() }],
            target_calls: 1,
            refusals: 0,
        }
    }

    /// One event of every kind, with the data the engine wrote for it before the types existed
    /// (the `json!` it was built with).
    pub(crate) fn samples() -> Vec<(Event, Value)> {
        let audit_json = json!({
            "attempt": 2, "duration_ms": 15, "logs": [{ "level": "info", "message": "probing" }],
            "target_calls": 1, "refusals": 0,
        });
        let with_audit = |more: Value| {
            let mut data = audit_json.clone();
            data.as_object_mut().expect("object").extend(more.as_object().cloned().unwrap_or_default());
            data
        };
        let call = TargetCallRecord {
            target: "DRBTS01".into(),
            call: TargetCall::Exec,
            what: "sc.exe".into(),
            args: vec!["query".into()],
            exit_code: Some(0),
            duration_ms: 3,
            stdout_bytes: 10,
            stderr_bytes: 0,
            error: None,
        };
        let refusal = Refusal {
            plugin: "join-group".into(),
            call: "exec sc.exe on DRBTS09".into(),
            missing: Missing::Target,
            name: "DRBTS09".into(),
            granted: "DRBTS01".into(),
        };
        let pairs = vec![("DRBTS01".to_string(), "refused".to_string())];
        vec![
            (
                Event::RunCreated {
                    workflow: "w".into(),
                    version: "1.0.0".into(),
                    params: json!({ "a": 1 }),
                },
                json!({ "workflow": "w", "version": "1.0.0", "params": { "a": 1 } }),
            ),
            (Event::Driving { pid: 42 }, json!({ "pid": 42 })),
            (
                Event::WaitingForApproval { reason: Some("approval: go?".into()) },
                json!({ "reason": "approval: go?" }),
            ),
            (Event::StepReady { reason: None }, json!({ "reason": null })),
            (Event::StepSkipped { reason: Some("when".into()) }, json!({ "reason": "when" })),
            (Event::StepFailed { reason: Some("bad".into()) }, json!({ "reason": "bad" })),
            (Event::AttemptStarted { attempt: 1 }, json!({ "attempt": 1 })),
            (
                Event::TargetCall { attempt: 1, call: call.clone() },
                json!({
                    "attempt": 1, "target": "DRBTS01", "call": "exec", "what": "sc.exe", "args": ["query"],
                    "exit_code": 0, "duration_ms": 3, "stdout_bytes": 10, "stderr_bytes": 0, "error": null,
                }),
            ),
            (
                Event::Refused { attempt: 1, message: refusal.to_string(), refusal: refusal.clone() },
                json!({
                    "attempt": 1, "message": refusal.to_string(), "plugin": "join-group",
                    "call": "exec sc.exe on DRBTS09", "missing": "target", "name": "DRBTS09", "granted": "DRBTS01",
                }),
            ),
            (
                Event::AttemptSucceeded { audit: audit(), changed: true, summary: "joined".into() },
                with_audit(json!({ "changed": true, "summary": "joined" })),
            ),
            (
                Event::AttemptFailed { audit: audit(), error: "no".into() },
                with_audit(json!({ "error": "no" })),
            ),
            (
                Event::RetryScheduled { audit: audit(), error: "later".into(), retry_at: Some(7) },
                with_audit(json!({ "error": "later", "retry_at": 7 })),
            ),
            (
                Event::NeedsOperator(NeedsOperator::Failed { audit: audit(), error: "unsure".into() }),
                with_audit(json!({ "error": "unsure" })),
            ),
            (
                Event::NeedsOperator(NeedsOperator::Interrupted { reason: Some("interrupted".into()) }),
                json!({ "reason": "interrupted" }),
            ),
            (
                Event::AttemptCancelled(AttemptCancelled::Stopped {
                    audit: audit(),
                    error: "stopped".into(),
                    comment: Some("stop it".into()),
                }),
                with_audit(json!({ "error": "stopped", "comment": "stop it" })),
            ),
            (
                Event::AttemptCancelled(AttemptCancelled::Ended { attempt: 1, interrupted: true }),
                json!({ "attempt": 1, "interrupted": true }),
            ),
            (Event::AttemptInterrupted { attempt: 1 }, json!({ "attempt": 1 })),
            (
                Event::LeftoverProcesses { attempt: 1, processes: 2, killed: 0, waited_ms: 40 },
                json!({ "attempt": 1, "processes": 2, "killed": 0, "waited_ms": 40 }),
            ),
            (
                Event::RecoveredByCheck { interrupted: 1, state: StepState::Succeeded },
                json!({ "interrupted": 1, "state": "succeeded" }),
            ),
            (Event::RetryDue {}, json!({})),
            (Event::RunSucceeded {}, json!({})),
            (Event::RunFailed { failures: pairs.clone() }, json!({ "failures": [["DRBTS01", "refused"]] })),
            (Event::RunWaiting { waiting: pairs }, json!({ "waiting": [["DRBTS01", "refused"]] })),
            (Event::RunCancelled {}, json!({})),
            (Event::CancelRequested { comment: None }, json!({ "comment": null })),
            (Event::Approved { comment: Some("yes".into()) }, json!({ "comment": "yes" })),
            (Event::RetryRequested { comment: None }, json!({ "comment": null })),
            (
                Event::SkippedByOperator { comment: None, output: json!({ "ok": true }) },
                json!({ "comment": null, "output": { "ok": true } }),
            ),
            (
                Event::RequestRejected { request: "approve".into(), reason: "not waiting".into() },
                json!({ "request": "approve", "reason": "not waiting" }),
            ),
            (Event::CompensationRequested { comment: Some("undo".into()) }, json!({ "comment": "undo" })),
            (
                Event::CompensationStarted {
                    reason: "probe failed".into(),
                    compensate: vec!["join[DRBTS01]".into()],
                    left_as_is: vec![LeftAsIs { key: "probe".into(), why: "read-only".into() }],
                },
                json!({
                    "reason": "probe failed", "compensate": ["join[DRBTS01]"],
                    "left_as_is": [{ "key": "probe", "why": "read-only" }],
                }),
            ),
            (Event::CompensateStarted { attempt: 2 }, json!({ "attempt": 2 })),
            (
                Event::CompensateSucceeded { audit: audit(), changed: true, summary: "left".into() },
                with_audit(json!({ "changed": true, "summary": "left" })),
            ),
            (
                Event::CompensateFailed { audit: Some(audit()), error: "busy".into() },
                with_audit(json!({ "error": "busy" })),
            ),
            (
                Event::CompensateFailed { audit: None, error: "no input".into() },
                json!({ "error": "no input" }),
            ),
            (
                Event::RunCompensated {
                    compensated: vec!["join[DRBTS01]".into()],
                    left_as_is: vec![LeftAsIs { key: "probe".into(), why: "read-only".into() }],
                },
                json!({
                    "compensated": ["join[DRBTS01]"], "left_as_is": [{ "key": "probe", "why": "read-only" }],
                }),
            ),
        ]
    }

    #[test]
    fn every_kind_writes_the_data_the_engine_wrote_before_the_types_and_reads_it_back() {
        let samples = samples();
        for (event, data) in &samples {
            let written: Value = serde_json::from_str(&event.data_json()).expect("data is JSON");
            assert_eq!(&written, data, "{}", event.kind());
            let tagged = serde_json::to_value(event).expect("serialize");
            assert_eq!(tagged["kind"], event.kind(), "kind() is the serde tag");
            assert_eq!(
                &Event::from_parts(event.kind(), data).unwrap_or_else(|e| panic!("{}: {e}", event.kind())),
                event
            );
        }
        let kinds: std::collections::BTreeSet<&str> = samples.iter().map(|(e, _)| e.kind()).collect();
        assert_eq!(kinds.len(), 33, "a sample of every kind");
    }

    #[test]
    fn an_unknown_kind_or_data_of_another_shape_is_an_error_not_a_guess() {
        assert!(Event::from_parts("compensated-twice", &json!({})).is_err());
        assert!(Event::from_parts("attempt-started", &json!({ "attempt": "one" })).is_err());
    }

    #[test]
    fn the_engine_is_the_actor_named_engine_and_anyone_else_an_operator() {
        assert_eq!(Actor::from("engine"), Actor::Engine);
        assert_eq!(Actor::from("alice"), Actor::Operator("alice".into()));
        assert_eq!(serde_json::to_value(Actor::Engine).expect("serialize"), json!("engine"));
        assert_eq!(
            serde_json::from_value::<Actor>(json!("bob")).expect("read"),
            Actor::Operator("bob".into())
        );
        assert!(Actor::from("bob").is_operator() && !Actor::Engine.is_operator());
    }
}
