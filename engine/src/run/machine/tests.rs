//! Unit tests of the run machine: a fake clock, workflows built in memory, plugin outcomes made
//! up; no wasm, SQLite or processes.
//!
//! Every test drives a [`Machine`] through a small harness ([`H`]) that commits the machine's
//! changes into an in-memory journal keeping the store's rules (an attempt's intent is written
//! once, only a running attempt ends, a succeeded instance only moves on to compensation, a
//! compensated one never changes), so a transition the real store would refuse fails the test.
//! A crash is a new machine built from that journal, as a process taking the run over sees it.
//!
//! This file holds the harness; the cases are in its modules: `forward` (fan-out, limits,
//! retries, timeouts, on-failure), `operator` (approvals, retry, skip, cancel, why an instance
//! waits), `recovery` (settling interrupted attempts by effect class) and `compensation`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semver::{Version, VersionReq};
use serde_json::{Value, json};

use crate::inventory::{Inventory, Server, TransportSpec};
use crate::journal::{Actor, Request, RunId};
use crate::plugin::{
    CallError, CallOutcome, CallReport, Capabilities, Effect, FailureClass, Mode, PluginInfo, PluginRef,
};
use crate::store::{AttemptRecord, AttemptState, Change, RequestRecord, RunState, StepRecord, StepState};
use crate::workflow::model::{
    ForEach, GrantsSpec, OnFailure, RetryPolicy, RunLimits, Step, StepConcurrency, StepKind, Workflow,
};

use super::super::RunOutcome;
use super::super::clock::Clock;
use super::explain::worst;
use super::{Check, Launch, Machine, Pinned, RequestEffect};

mod compensation;
mod forward;
mod operator;
mod recovery;

const RUN: RunId = RunId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 42));
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// The fake clock
// ---------------------------------------------------------------------------------------------

/// A clock whose time the test sets and whose jitter is a fixed factor.
struct FakeClock {
    now: Mutex<i64>,
    jitter: Mutex<f64>,
}

impl FakeClock {
    fn at(now: i64) -> FakeClock {
        FakeClock { now: Mutex::new(now), jitter: Mutex::new(1.0) }
    }

    fn set(&self, now: i64) {
        *self.now.lock().unwrap() = now;
    }

    fn advance(&self, ms: i64) {
        *self.now.lock().unwrap() += ms;
    }

    fn set_jitter(&self, factor: f64) {
        *self.jitter.lock().unwrap() = factor;
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        *self.now.lock().unwrap()
    }

    fn jitter(&self, _jitter: f64) -> f64 {
        *self.jitter.lock().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows built in memory
// ---------------------------------------------------------------------------------------------

/// The describe of plugin `p-<id>` of a step: its effect, whether it implements `compensate`,
/// output an object.
fn info(name: &str, effect: Effect, compensable: bool) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: Version::new(1, 0, 0),
        description: format!("{name} for tests"),
        effect,
        input_schema: json!({ "type": "object" }),
        output_schema: json!({ "type": "object" }),
        capabilities: Capabilities::default(),
        compensable,
        sdk: "drover-sdk 0.1.0".into(),
    }
}

/// A workflow under construction: each modifier applies to the step added last.
struct Flow {
    steps: Vec<(Step, Option<OnFailure>, Vec<String>)>,
    limits: RunLimits,
    on_failure: OnFailure,
    inventory: Inventory,
    params: Value,
}

fn flow() -> Flow {
    Flow {
        steps: Vec::new(),
        limits: RunLimits::default(),
        on_failure: OnFailure::Stop,
        inventory: Inventory::default(),
        params: json!({}),
    }
}

impl Flow {
    fn step(mut self, id: &str, kind: StepKind) -> Self {
        let step = Step {
            id: id.into(),
            kind,
            needs: Vec::new(),
            for_each: None,
            when: None,
            with: json!({}),
            retry: RetryPolicy { attempts: 1, ..RetryPolicy::default() },
            timeout: None,
            concurrency: StepConcurrency::default(),
            on_failure: OnFailure::Stop,
            grants: GrantsSpec::default(),
            phase: None,
        };
        self.steps.push((step, None, Vec::new()));
        self
    }

    /// A plugin step whose plugin (`p-<id>`) has this effect and no `compensate`.
    fn plugin(self, id: &str, effect: Effect) -> Self {
        self.plugin_with(id, effect, false)
    }

    /// A plugin step whose plugin has this effect and implements `compensate`.
    fn compensable(self, id: &str, effect: Effect) -> Self {
        self.plugin_with(id, effect, true)
    }

    fn plugin_with(self, id: &str, effect: Effect, compensable: bool) -> Self {
        let name = format!("p-{id}");
        let reference = PluginRef { name: name.clone(), req: VersionReq::STAR };
        self.step(id, StepKind::Plugin { reference, info: Box::new(info(&name, effect, compensable)) })
    }

    fn approval(self, id: &str, prompt: &str, approvers: &[&str]) -> Self {
        let approvers = approvers.iter().map(|a| a.to_string()).collect();
        self.step(id, StepKind::Approval { prompt: prompt.into(), approvers })
    }

    fn last(&mut self) -> &mut (Step, Option<OnFailure>, Vec<String>) {
        self.steps.last_mut().expect("a step to modify")
    }

    fn needs(mut self, ids: &[&str]) -> Self {
        self.last().2 = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    fn over_group(mut self, group: &str) -> Self {
        self.last().0.for_each = Some(ForEach::Group(group.into()));
        self
    }

    fn over_list(mut self, items: Value) -> Self {
        let Value::Array(items) = items else { panic!("a list") };
        self.last().0.for_each = Some(ForEach::List(items));
        self
    }

    fn when(mut self, expr: &str) -> Self {
        self.last().0.when = Some(expr.into());
        self
    }

    fn with(mut self, input: Value) -> Self {
        self.last().0.with = input;
        self
    }

    /// `attempts` in all, the first delay `initial_s` seconds, each next one twice the last.
    fn retry(mut self, attempts: u32, initial_s: u64) -> Self {
        self.last().0.retry = RetryPolicy {
            attempts,
            initial: Duration::from_secs(initial_s),
            factor: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.2,
        };
        self
    }

    fn timeout(mut self, secs: u64) -> Self {
        self.last().0.timeout = Some(Duration::from_secs(secs));
        self
    }

    fn step_limit(mut self, n: u32) -> Self {
        self.last().0.concurrency.step = Some(n);
        self
    }

    fn per_target(mut self, n: u32) -> Self {
        self.last().0.concurrency.per_target = Some(n);
        self
    }

    fn on_failure(mut self, policy: OnFailure) -> Self {
        self.last().1 = Some(policy);
        self
    }

    fn run_limit(mut self, n: u32) -> Self {
        self.limits.concurrency = n;
        self
    }

    fn run_on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Servers `names` (local transport) in group `group`.
    fn group(mut self, group: &str, names: &[&str]) -> Self {
        for name in names {
            let server =
                Server { site: None, os: None, transport: TransportSpec::Local, vars: BTreeMap::new() };
            self.inventory.servers.insert(name.to_string(), server);
        }
        self.inventory.groups.insert(group.into(), names.iter().map(|s| s.to_string()).collect());
        self
    }

    fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// The validated workflow as the validator would make it: `needs` as indices, every step's
    /// `on-failure` its own or the run's, a topological order (file order among equals).
    fn workflow(&self) -> Workflow {
        let ids: Vec<&str> = self.steps.iter().map(|(s, _, _)| s.id.as_str()).collect();
        let steps: Vec<Step> = self
            .steps
            .iter()
            .map(|(step, policy, needs)| Step {
                needs: needs
                    .iter()
                    .map(|n| ids.iter().position(|id| id == n).unwrap_or_else(|| panic!("no step {n}")))
                    .collect(),
                on_failure: policy.unwrap_or(self.on_failure),
                ..step.clone()
            })
            .collect();
        let mut order = Vec::new();
        while order.len() < steps.len() {
            let next = (0..steps.len())
                .find(|i| !order.contains(i) && steps[*i].needs.iter().all(|n| order.contains(n)))
                .expect("needs form a DAG");
            order.push(next);
        }
        Workflow {
            name: "machine-test".into(),
            version: Version::new(1, 0, 0),
            description: None,
            params: Vec::new(),
            limits: self.limits,
            on_failure: self.on_failure,
            report: Default::default(),
            steps,
            order,
        }
    }

    /// A machine over a new run of this workflow, driven by a process.
    fn start(self) -> H {
        let clock = Arc::new(FakeClock::at(T0));
        let mut h = H {
            m: Machine::new(self.pinned(RunState::Running), Vec::new(), clock.clone()),
            clock,
            journal: Journal::default(),
            flow: self,
            seq: 0,
        };
        h.m.begin(4242);
        h.commit();
        h
    }

    fn pinned(&self, state: RunState) -> Pinned {
        Pinned {
            run_id: RUN,
            state,
            workflow: self.workflow(),
            inventory: self.inventory.clone(),
            inventory_json: serde_json::to_value(&self.inventory).expect("inventory as JSON"),
            params: self.params.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin outcomes and operator requests
// ---------------------------------------------------------------------------------------------

fn report(result: Result<CallOutcome, CallError>) -> CallReport {
    CallReport {
        result,
        logs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        target_calls: Vec::new(),
        refusals: Vec::new(),
        duration: Duration::from_millis(40),
    }
}

/// A call that succeeded, with output `{"n": 1}`.
fn succeeded(changed: bool) -> CallReport {
    succeeded_with(changed, json!({ "n": 1 }))
}

fn succeeded_with(changed: bool, output: Value) -> CallReport {
    let summary = if changed { "made the change" } else { "already so" };
    report(Ok(CallOutcome { changed, summary: summary.into(), output, evidence: Vec::new() }))
}

/// A call whose plugin returned an error of this class: "plugin p failed (<class>): boom".
fn failed(class: FailureClass) -> CallReport {
    report(Err(CallError::Step { plugin: "p".into(), class, message: "boom".into() }))
}

fn timed_out(secs: u64) -> CallReport {
    report(Err(CallError::Timeout { plugin: "p".into(), limit: Duration::from_secs(secs) }))
}

/// A call stopped by a cancel (or a compensation asked for while it ran).
fn cancelled() -> CallReport {
    report(Err(CallError::Cancelled { plugin: "p".into() }))
}

// ---------------------------------------------------------------------------------------------
// The journal the machine's changes are committed to
// ---------------------------------------------------------------------------------------------

/// An event as `drover events` shows it.
#[derive(Debug, Clone)]
struct Ev {
    key: Option<String>,
    kind: String,
    actor: String,
    data: Value,
}

/// The run's rows as the store would hold them, with the store's refusals as panics.
#[derive(Default)]
struct Journal {
    steps: BTreeMap<String, StepRecord>,
    attempts: BTreeMap<(String, u32), AttemptRecord>,
    run_state: Option<RunState>,
    finished_at: Option<i64>,
    events: Vec<Ev>,
    applied: Vec<i64>,
    commits: Vec<Vec<Change>>,
}

impl Journal {
    fn apply(&mut self, changes: Vec<Change>) {
        for change in changes.iter().cloned() {
            match change {
                Change::PutStep(record) => {
                    if let Some(old) = self.steps.get(&record.key) {
                        let allowed = !matches!(old.state, StepState::Succeeded | StepState::Compensated)
                            || (old.state == StepState::Succeeded && record.state == StepState::Compensating);
                        assert!(
                            allowed,
                            "the store refuses {}: {} -> {}",
                            record.key, old.state, record.state
                        );
                    }
                    self.steps.insert(record.key.clone(), *record);
                }
                Change::PutAttempt(attempt) => {
                    let id = (attempt.step_key.clone(), attempt.number);
                    if attempt.state == AttemptState::Running {
                        assert!(!self.attempts.contains_key(&id), "the store refuses attempt {id:?} twice");
                        self.attempts.insert(id, attempt);
                    } else {
                        let intent = self.attempts.get_mut(&id);
                        let intent =
                            intent.filter(|a| a.state == AttemptState::Running).unwrap_or_else(|| {
                                panic!("the store refuses to end attempt {id:?}: not running")
                            });
                        intent.state = attempt.state;
                        intent.finished_at = attempt.finished_at;
                        intent.error = attempt.error;
                        intent.error_class = attempt.error_class;
                    }
                }
                Change::SetRunState { state, finished_at, .. } => {
                    self.run_state = Some(state);
                    self.finished_at = finished_at;
                }
                Change::Event(event) => {
                    let data = serde_json::from_str(event.data()).expect("event data is JSON");
                    let (kind, actor) = (event.kind().to_string(), event.actor.to_string());
                    self.events.push(Ev { key: event.step_key, kind, actor, data });
                }
                Change::RequestApplied { seq, .. } => self.applied.push(seq),
                other => panic!("the machine made a change it has no business making: {other:?}"),
            }
        }
        self.commits.push(changes);
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// A machine, its clock and its journal.
struct H {
    m: Machine,
    clock: Arc<FakeClock>,
    journal: Journal,
    flow: Flow,
    seq: i64,
}

impl H {
    /// Commits what the machine recorded since the last commit.
    fn commit(&mut self) {
        let changes = self.m.take_changes();
        self.journal.apply(changes);
    }

    /// One turn of the driver: fire due timers, expand, take the starts, commit.
    fn turn(&mut self) -> Vec<Launch> {
        self.m.fire_timers(self.clock.now_ms());
        self.m.expand();
        let launches = self.m.starts();
        self.commit();
        launches
    }

    /// A turn, and the keys it starts.
    fn starts(&mut self) -> Vec<String> {
        self.turn().into_iter().map(|l| l.key).collect()
    }

    /// The attempt of `key` in flight ends with `report`.
    fn finish(&mut self, key: &str, report: CallReport) {
        let number = self.m.instance(key).unwrap_or_else(|| panic!("no instance {key}")).attempts;
        self.m.complete(key, number, report);
        self.commit();
    }

    fn ok(&mut self, key: &str) {
        self.finish(key, succeeded(true));
    }

    /// Each of `keys` in turn is the one attempt a turn starts, and it succeeds.
    fn one_by_one(&mut self, keys: &[&str]) {
        for key in keys {
            assert_eq!(self.starts(), [*key], "the next to start alone");
            self.ok(key);
        }
    }

    fn settle(&mut self) -> Option<RunOutcome> {
        let outcome = self.m.settle(false);
        self.commit();
        outcome
    }

    /// An operator's command, applied by the machine.
    fn request(&mut self, kind: &str, key: Option<&str>, actor: &str, data: Value) -> RequestEffect {
        self.seq += 1;
        let request = RequestRecord {
            seq: self.seq,
            run_id: RUN,
            request: Request::from_parts(kind, key, &data),
            actor: actor.into(),
            at: self.clock.now_ms(),
        };
        let effect = self.m.apply_request(&request);
        self.commit();
        assert_eq!(self.journal.applied.last(), Some(&self.seq), "every request is marked applied");
        effect
    }

    /// `actor` asks for compensation.
    fn compensate(&mut self, actor: &str) -> RequestEffect {
        self.request("compensate", None, actor, json!({}))
    }

    /// Runs the run on: every attempt started succeeds with a change, until it settles.
    fn run_on(&mut self) -> RunOutcome {
        for _ in 0..100 {
            let launches = self.turn();
            for launch in &launches {
                self.ok(&launch.key);
            }
            if launches.is_empty()
                && let Some(outcome) = self.settle()
            {
                return outcome;
            }
        }
        panic!("the run never settled")
    }

    /// The process driving the run dies (what it did not commit is lost) and another takes it
    /// over: a new machine from the journal, the interrupted attempts settled. Returns the checks
    /// to run.
    fn crash_and_resume(&mut self) -> Vec<Check> {
        let records: Vec<StepRecord> = self.journal.steps.values().cloned().collect();
        let state = self.journal.run_state.unwrap_or(RunState::Running);
        self.m = Machine::new(self.flow.pinned(state), records, self.clock.clone());
        // As the driver does: a run that ended is not driven again.
        if self.m.ended().is_some() {
            return Vec::new();
        }
        self.m.begin(4343);
        let running: Vec<AttemptRecord> =
            self.journal.attempts.values().filter(|a| a.state == AttemptState::Running).cloned().collect();
        let checks = self.m.interrupted(running);
        self.commit();
        checks
    }

    fn record(&self, key: &str) -> &StepRecord {
        self.m.instance(key).unwrap_or_else(|| panic!("no instance {key}"))
    }

    fn state(&self, key: &str) -> StepState {
        let state = self.record(key).state;
        assert_eq!(
            self.journal.steps.get(key).map(|r| r.state),
            Some(state),
            "{key}: committed as it stands"
        );
        state
    }

    fn reason(&self, key: &str) -> String {
        self.record(key).reason.clone().unwrap_or_default()
    }

    /// Why `key` is where it is, for a run some process drives.
    fn why(&self, key: &str) -> String {
        self.m.why(key, true).unwrap_or_else(|| panic!("{key}: nothing to say"))
    }

    fn step_index(&self, id: &str) -> usize {
        self.m.workflow().steps.iter().position(|s| s.id == id).unwrap_or_else(|| panic!("no step {id}"))
    }

    /// The kinds of the events about `key` (`None`: about the run), in order.
    fn kinds(&self, key: Option<&str>) -> Vec<&str> {
        self.journal.events.iter().filter(|e| e.key.as_deref() == key).map(|e| e.kind.as_str()).collect()
    }

    /// The last event of this kind.
    fn event(&self, kind: &str) -> &Ev {
        self.journal.events.iter().rev().find(|e| e.kind == kind).unwrap_or_else(|| panic!("no {kind} event"))
    }

    fn count(&self, kind: &str, key: &str) -> usize {
        self.journal.events.iter().filter(|e| e.kind == kind && e.key.as_deref() == Some(key)).count()
    }

    fn attempt(&self, key: &str, number: u32) -> &AttemptRecord {
        self.journal
            .attempts
            .get(&(key.to_string(), number))
            .unwrap_or_else(|| panic!("no attempt {number} of {key}"))
    }

    /// The keys of the instances in `state`.
    fn in_state(&self, state: StepState) -> Vec<&str> {
        self.m.instances().values().filter(|r| r.state == state).map(|r| r.key.as_str()).collect()
    }
}

fn keys(launches: &[Launch]) -> Vec<&str> {
    launches.iter().map(|l| l.key.as_str()).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A chain `a -> b -> c` of reversible steps that implement `compensate`.
fn chain() -> Flow {
    flow()
        .compensable("a", Effect::Reversible)
        .compensable("b", Effect::Reversible)
        .needs(&["a"])
        .compensable("c", Effect::Reversible)
        .needs(&["b"])
}

// ---------------------------------------------------------------------------------------------
// Worst state
// ---------------------------------------------------------------------------------------------

#[test]
fn a_step_shows_the_worst_state_of_its_instances() {
    use StepState::*;
    assert_eq!(worst([Succeeded, Failed, Running]), Failed);
    assert_eq!(worst([Succeeded, Cancelled, Running]), Cancelled);
    assert_eq!(worst([Succeeded, NeedsOperator, Cancelled]), NeedsOperator);
    assert_eq!(worst([Compensated, CompensationFailed]), CompensationFailed);
    assert_eq!(worst([Skipped, Skipped]), Skipped);
    assert_eq!(worst([Skipped, Succeeded]), Succeeded);
    assert_eq!(worst([Compensated, Compensated]), Compensated);
    assert_eq!(worst([]), Pending);
}

#[test]
fn a_fan_out_step_shows_its_worst_instance_as_the_run_moves() {
    let mut h = flow().plugin("s", Effect::Idempotent).over_list(json!(["a", "b", "c"])).retry(2, 5).start();
    let s = h.step_index("s");
    assert_eq!(h.m.step_state(s), StepState::Pending, "not expanded yet");
    h.turn();
    assert_eq!(h.m.step_state(s), StepState::Running);
    h.ok("s[a]");
    h.finish("s[b]", failed(FailureClass::Retryable));
    assert_eq!(h.m.step_state(s), StepState::Running, "s[c] still runs; running is worse than waiting");
    h.ok("s[c]");
    assert_eq!(h.m.step_state(s), StepState::Waiting);
    h.clock.advance(5_000);
    h.turn();
    h.finish("s[b]", failed(FailureClass::Permanent));
    assert_eq!(h.m.step_state(s), StepState::Failed);
}
