//! The run machine: where a run's step instances stand and every rule that moves them, with no
//! I/O. It is told what happened (an attempt finished, a timer is due, an operator asked, the
//! previous driver died) and answers with the journal changes that record it, the attempts to
//! start, and lines for people. Time and jitter come from a [`Clock`], so a fake clock tests it
//! without wasm, SQLite or processes.
//!
//! The driver ([`super::driver`]) owns one machine per run and does the I/O around it: the lease,
//! committing [`Machine::take_changes`] before calling a plugin, the plugin calls themselves.
//! `drover status`, `drover plan` and the report use the same rules ([`explain`]).
//!
//! **Invariant:** every state change of an instance goes through [`Machine::put`], which keeps the
//! indexes (ready set, timers, counts per step) true and queues the change for the journal.
//!
//! **Invariant:** an instance that succeeded only ever moves on to compensation
//! ([`StepState::Compensating`]); one that was compensated never changes again.

mod compensate;
pub mod explain;
mod forward;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::inventory::Inventory;
use crate::journal::{Actor, Event, Request, RunId};
use crate::plugin::{Mode, StepCall, StepContext};
use crate::store::{Change, RequestRecord, RunRecord, RunState, StepRecord, StepState};
use crate::workflow::model::{OnFailure, StepKind, Workflow};
use crate::workflow::template;

use super::clock::Clock;
use super::{RunOutcome, StepProgress};

pub use recovery::Check;

/// An attempt the driver is to start, its intent already among the machine's changes.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The step instance.
    pub key: String,
    /// The attempt's number.
    pub number: u32,
    /// Index of its step in the workflow.
    pub step_index: usize,
    /// What to call (its mode is `apply` or `compensate`).
    pub call: StepCall,
}

/// What a run's pinned record gives the machine.
pub struct Pinned {
    /// The run id.
    pub run_id: RunId,
    /// The run's state as stored.
    pub state: RunState,
    /// The validated workflow.
    pub workflow: Workflow,
    /// The inventory.
    pub inventory: Inventory,
    /// The inventory as JSON, for templates.
    pub inventory_json: Value,
    /// The params, defaults applied.
    pub params: Value,
}

/// What applying an operator request means for the attempts in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestEffect {
    /// The driver must stop its attempts in flight (a cancel, or a compensation asked for while
    /// steps run).
    pub stop_in_flight: bool,
}

/// One run's step instances and the rules that move them.
pub struct Machine {
    run_id: RunId,
    clock: Arc<dyn Clock>,
    run_state: RunState,
    wf: Workflow,
    params: Value,
    inventory: Inventory,
    inventory_json: Value,
    /// Position of each step in the topological order.
    order_pos: Vec<usize>,
    instances: BTreeMap<String, StepRecord>,
    keys_by_step: Vec<Vec<String>>,
    expanded: Vec<bool>,
    /// Ready instances by (topological position, key).
    ready: BTreeSet<(usize, String)>,
    /// Retry timers: (due time, key) of instances waiting on one.
    timers: BTreeSet<(i64, String)>,
    /// Per step: instances not finished yet, and the failed or cancelled ones.
    open_by_step: Vec<usize>,
    failed_by_step: Vec<BTreeSet<String>>,
    /// Per step: whether its `with` holds templates (else it is the input as it stands).
    templated: Vec<bool>,
    running_by_step: Vec<u32>,
    running_by_target: HashMap<String, u32>,
    /// The instances with an attempt in flight.
    running: BTreeSet<String>,
    /// A step failed with `on-failure = stop` (or `compensate`): start nothing new forward.
    stopping: bool,
    cancelled: bool,
    /// Who cancelled the run, and their comment: the attempts the cancel stops are theirs.
    cancelled_by: Option<(Actor, Option<String>)>,
    /// Compensation, once it began: the instances still to compensate, by step.
    compensation: Option<compensate::Compensation>,
    changes: Vec<Change>,
    notes: Vec<String>,
}

impl Machine {
    /// A machine for a run as the journal holds it: its pinned definition and its instances.
    pub fn new(pinned: Pinned, records: Vec<StepRecord>, clock: Arc<dyn Clock>) -> Machine {
        let wf = pinned.workflow;
        let step_count = wf.steps.len();
        let mut order_pos = vec![0; step_count];
        for (pos, &idx) in wf.order.iter().enumerate() {
            order_pos[idx] = pos;
        }
        let templated = wf.steps.iter().map(|s| has_templates(&s.with)).collect();
        let mut machine = Machine {
            run_id: pinned.run_id,
            clock,
            run_state: pinned.state,
            params: pinned.params,
            inventory: pinned.inventory,
            inventory_json: pinned.inventory_json,
            order_pos,
            instances: BTreeMap::new(),
            keys_by_step: vec![Vec::new(); step_count],
            expanded: vec![false; step_count],
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            open_by_step: vec![0; step_count],
            failed_by_step: vec![BTreeSet::new(); step_count],
            templated,
            running_by_step: vec![0; step_count],
            running_by_target: HashMap::new(),
            running: BTreeSet::new(),
            stopping: false,
            cancelled: pinned.state == RunState::Cancelled,
            cancelled_by: None,
            compensation: None,
            changes: Vec::new(),
            notes: Vec::new(),
            wf,
        };
        for record in records {
            machine.index(record);
        }
        machine.compensation = compensate::Compensation::resumed(&machine);
        if machine.compensation.is_some() {
            machine.stopping = true;
        }
        machine
    }

    /// A machine for `run` and its instances as the journal holds them; the error says what of
    /// the pinned definition cannot be read.
    pub fn for_run(
        run: &RunRecord,
        records: Vec<StepRecord>,
        clock: Arc<dyn Clock>,
    ) -> Result<Machine, String> {
        use serde::Deserialize;
        let workflow = super::pinned_workflow(&run.definition)
            .map_err(|e| format!("the pinned workflow cannot be read: {e}"))?;
        let inventory = Inventory::deserialize(&run.inventory)
            .map_err(|e| format!("the pinned inventory cannot be read: {e}"))?;
        let pinned = Pinned {
            run_id: run.id,
            state: run.state,
            workflow,
            inventory,
            inventory_json: run.inventory.clone(),
            params: run.params.clone(),
        };
        Ok(Machine::new(pinned, records, clock))
    }

    /// The run id.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The workflow.
    pub fn workflow(&self) -> &Workflow {
        &self.wf
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The run's state as the machine last set it.
    pub fn run_state(&self) -> RunState {
        self.run_state
    }

    /// An instance.
    pub fn instance(&self, key: &str) -> Option<&StepRecord> {
        self.instances.get(key)
    }

    /// Every instance, by key.
    pub fn instances(&self) -> &BTreeMap<String, StepRecord> {
        &self.instances
    }

    /// How many attempts are in flight.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Whether the run was cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// Who cancelled the run and their comment, once a cancel was applied.
    pub fn cancelled_by(&self) -> Option<&(Actor, Option<String>)> {
        self.cancelled_by.as_ref()
    }

    /// The changes made since the last call, for the journal, in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        coalesce(std::mem::take(&mut self.changes))
    }

    /// Whether changes wait to be committed.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Lines for people made since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The run is being driven by process `pid`: records it.
    pub fn begin(&mut self, pid: u32) {
        let state = if self.compensation.is_some() { RunState::Compensating } else { RunState::Running };
        self.set_run_state(state, None);
        self.event(None, Event::Driving { pid });
    }

    /// Whether there is nothing left for any process to do: the run ended for good.
    pub fn is_over(&self) -> bool {
        matches!(self.run_state, RunState::Succeeded | RunState::Cancelled | RunState::Compensated)
    }

    /// How the run ended, if it did, without recording anything.
    pub fn ended(&self) -> Option<RunOutcome> {
        Some(match self.run_state {
            RunState::Succeeded => RunOutcome::Succeeded,
            RunState::Cancelled => RunOutcome::Cancelled,
            RunState::Compensated => RunOutcome::Compensated {
                compensated: (self.instances.values())
                    .filter(|r| r.state == StepState::Compensated)
                    .map(|r| r.key.clone())
                    .collect(),
                left_as_is: self.left_as_is_all(),
                failures: self.failures(),
            },
            _ => return None,
        })
    }

    /// Journals something an attempt in flight of `key` did (a target call, a refusal).
    pub fn record(&mut self, key: &str, event: Event) {
        self.event(Some(key), event);
    }

    /// Applies one queued operator command, or records why it was rejected; either way marks it
    /// applied.
    pub fn apply_request(&mut self, request: &RequestRecord) -> RequestEffect {
        let now = self.now();
        let mut effect = RequestEffect::default();
        let command = request.request.as_ref().ok();
        let step_key = command.and_then(Request::step_key);
        let forward_command =
            matches!(command, Some(Request::Retry { .. } | Request::Skip { .. } | Request::Approve { .. }));
        let compensation_failed = step_key.and_then(|k| self.instances.get(k)).map(|r| r.state)
            == Some(StepState::CompensationFailed);
        let compensate = matches!(command, Some(Request::Compensate { .. }));
        let applied = if compensate {
            self.request_compensation(request)
        } else if self.compensation.is_some() && forward_command && !compensation_failed {
            Err(format!(
                "run {} is being compensated: only a failed compensation can be retried or skipped",
                self.run_id
            ))
        } else {
            // `operator::apply` changes the records it is given in place: it gets copies of those
            // the command may change, so that `index` still sees their old states and keeps the
            // counts true.
            let mut copies: BTreeMap<String, StepRecord> = if matches!(command, Some(Request::Cancel { .. }))
            {
                let unfinished = self.instances.values().filter(|r| !r.state.is_terminal());
                unfinished.map(|r| (r.key.clone(), r.clone())).collect()
            } else {
                let named = step_key.iter().filter_map(|key| self.instances.get(*key));
                named.map(|r| (r.key.clone(), r.clone())).collect()
            };
            super::operator::apply(&self.wf, &mut copies, request, now).map(|applied| {
                for key in &applied.changed_keys {
                    if let Some(mut record) = copies.remove(key) {
                        if matches!(command, Some(Request::Retry { .. })) {
                            self.retried_gate_asks_again(&mut record);
                        }
                        self.index(record);
                    }
                }
                self.changes.extend(applied.changes);
                if applied.cancel {
                    self.cancelled = true;
                    if self.cancelled_by.is_none() {
                        let comment = command.and_then(Request::comment).map(str::to_string);
                        self.cancelled_by = Some((Actor::Operator(request.actor.clone()), comment));
                    }
                    if !self.running.is_empty() {
                        self.notes.push(format!(
                            "cancelled by {}: stopping {} running attempt(s)",
                            request.actor,
                            self.running.len()
                        ));
                    }
                    effect.stop_in_flight = true;
                }
                if applied.resumes_run {
                    self.stopping = self.compensation.is_some();
                }
            })
        };
        match applied {
            Ok(()) => {
                if compensate && !self.running.is_empty() {
                    effect.stop_in_flight = true;
                }
            }
            Err(message) => self.changes.push(super::operator::rejected(request, message, now)),
        }
        self.changes.push(Change::RequestApplied { seq: request.seq, at: now });
        effect
    }

    /// When the next retry timer is due.
    pub fn next_timer(&self) -> Option<i64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Makes the instances whose retry timer is due by `now` ready.
    pub fn fire_timers(&mut self, now: i64) {
        let due: Vec<StepRecord> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| self.instances[key].clone())
            .collect();
        for mut record in due {
            // A compensation's retry stays compensating; forward work becomes ready.
            if record.state != StepState::Compensating {
                record.state = StepState::Ready;
            }
            record.retry_at = None;
            let key = record.key.clone();
            self.put(record);
            self.event(Some(&key), Event::RetryDue {});
        }
    }

    /// With nothing running: decides whether the run has ended, waits for an operator, or goes on
    /// (`None` with work to do). `wait_for_operator` keeps a run that only an operator can move
    /// as the driver's to wait on, instead of ending the drive.
    pub fn settle(&mut self, wait_for_operator: bool) -> Option<RunOutcome> {
        if !self.running.is_empty() {
            return None;
        }
        let now = self.now();
        if self.cancelled {
            self.set_run_state(RunState::Cancelled, Some(now));
            self.event(None, Event::RunCancelled {});
            return Some(RunOutcome::Cancelled);
        }
        if self.compensation.is_some() {
            return self.settle_compensation(wait_for_operator);
        }
        if self.next_timer().is_some() && !self.stopping {
            return None;
        }
        if !self.ready.is_empty() && !self.stopping {
            return None;
        }
        let failures = self.failures();
        let all_done =
            self.expanded.iter().all(|&e| e) && self.instances.values().all(|r| r.state.is_terminal());
        if all_done || self.stopping || self.halted() {
            if failures.is_empty() && all_done {
                self.set_run_state(RunState::Succeeded, Some(now));
                self.event(None, Event::RunSucceeded {});
                return Some(RunOutcome::Succeeded);
            }
            if !failures.is_empty() {
                if self.compensates_on_failure() {
                    let reason = format!(
                        "{} failed",
                        failures.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                    );
                    self.begin_compensation(&reason, Actor::Engine);
                    return None;
                }
                self.set_run_state(RunState::Failed, Some(now));
                self.event(None, Event::RunFailed { failures: failures.clone() });
                return Some(RunOutcome::Failed { failures });
            }
        }
        self.wait(wait_for_operator)
    }

    /// The run waits for an operator: ends the drive unless `wait_for_operator`.
    fn wait(&mut self, wait_for_operator: bool) -> Option<RunOutcome> {
        let waiting: Vec<(String, String)> = self
            .instances
            .values()
            .filter(|r| {
                matches!(
                    r.state,
                    StepState::Waiting | StepState::NeedsOperator | StepState::CompensationFailed
                )
            })
            .map(|r| (r.key.clone(), r.reason.clone().unwrap_or_default()))
            .collect();
        self.set_run_state(RunState::Waiting, None);
        if wait_for_operator && !waiting.is_empty() {
            return None;
        }
        self.event(None, Event::RunWaiting { waiting: waiting.clone() });
        Some(RunOutcome::Waiting { waiting })
    }

    /// The failed instances and why.
    fn failures(&self) -> Vec<(String, String)> {
        self.instances
            .values()
            .filter(|r| r.state == StepState::Failed)
            .map(|r| (r.key.clone(), r.reason.clone().unwrap_or_default()))
            .collect()
    }

    /// Where every started step stands, for a live display; `heartbeats` are the running
    /// instances' last ones.
    pub fn progress(&self, heartbeats: &HashMap<String, (Option<f32>, String)>) -> Vec<StepProgress> {
        let mut steps = Vec::new();
        for &idx in &self.wf.order {
            let keys = &self.keys_by_step[idx];
            if keys.is_empty() {
                continue;
            }
            let mut p = StepProgress {
                id: self.wf.steps[idx].id.clone(),
                total: keys.len(),
                done: 0,
                failed: 0,
                waiting_for_slot: 0,
                waiting: 0,
                running: Vec::new(),
            };
            for record in keys.iter().filter_map(|k| self.instances.get(k)) {
                if self.running.contains(&record.key) {
                    p.running.push(super::RunningInstance {
                        key: record.key.clone(),
                        started_at: record.started_at.unwrap_or_default(),
                        heartbeat: heartbeats.get(&record.key).cloned(),
                    });
                    continue;
                }
                match record.state {
                    StepState::Failed | StepState::Cancelled | StepState::CompensationFailed => {
                        p.done += 1;
                        p.failed += 1;
                    }
                    s if s.is_terminal() => p.done += 1,
                    StepState::Ready | StepState::Compensating => p.waiting_for_slot += 1,
                    StepState::Waiting | StepState::NeedsOperator => p.waiting += 1,
                    _ => {}
                }
            }
            steps.push(p);
        }
        steps
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn set_run_state(&mut self, state: RunState, finished_at: Option<i64>) {
        if self.run_state != state || finished_at.is_some() {
            self.run_state = state;
            self.changes.push(Change::SetRunState { run_id: self.run_id, state, finished_at });
        }
    }

    /// Adds or replaces an instance in memory, keeping the indexes right.
    fn index(&mut self, record: StepRecord) {
        let idx = record.step_index;
        self.expanded[idx] = true;
        let pos = self.order_pos[idx];
        let old_state = self.instances.get(&record.key).map(|r| r.state);
        match self.instances.get(&record.key) {
            Some(old) => {
                self.ready.remove(&(pos, old.key.clone()));
                if let Some(at) = old.retry_at {
                    self.timers.remove(&(at, old.key.clone()));
                }
                if !old.state.is_terminal() {
                    self.open_by_step[idx] -= 1;
                }
            }
            None => self.keys_by_step[idx].push(record.key.clone()),
        }
        match record.state {
            StepState::Ready => {
                self.ready.insert((pos, record.key.clone()));
            }
            StepState::Waiting | StepState::Compensating => {
                if let Some(at) = record.retry_at {
                    self.timers.insert((at, record.key.clone()));
                }
            }
            StepState::Failed | StepState::Cancelled => {
                self.failed_by_step[idx].insert(record.key.clone());
            }
            _ => {}
        }
        if !record.state.is_terminal() {
            self.open_by_step[idx] += 1;
        }
        if !matches!(record.state, StepState::Failed | StepState::Cancelled) {
            self.failed_by_step[idx].remove(&record.key);
        }
        if let Some(compensation) = &mut self.compensation {
            compensation.index(idx, old_state, record.state);
        }
        self.instances.insert(record.key.clone(), record);
    }

    /// Records a new state of an instance: in memory, and as a change for the next commit.
    fn put(&mut self, record: StepRecord) {
        self.changes.push(Change::PutStep(Box::new(record.clone())));
        self.index(record);
    }

    fn event(&mut self, step_key: Option<&str>, event: Event) {
        self.event_by(step_key, Actor::Engine, event);
    }

    fn event_by(&mut self, step_key: Option<&str>, actor: Actor, event: Event) {
        self.changes.push(Change::event(self.run_id, self.now(), step_key, actor, &event));
    }

    /// Whether a step with `on-failure = stop` (or `compensate`) has a failed or cancelled
    /// instance: then nothing new is expanded (an operator's retry of that instance may still
    /// run), whichever process drives the run.
    fn halted(&self) -> bool {
        self.wf
            .steps
            .iter()
            .zip(&self.failed_by_step)
            .any(|(s, f)| s.on_failure != OnFailure::Continue && !f.is_empty())
    }

    fn fail_policy(&mut self, idx: usize) {
        if self.wf.steps[idx].on_failure != OnFailure::Continue {
            self.stopping = true;
        }
    }

    /// The template scope for an instance: params, upstream outputs, item, target.
    /// An approval gate a retry made wait again asks its prompt again, rendered anew, with the
    /// retry's reason after it.
    fn retried_gate_asks_again(&self, record: &mut StepRecord) {
        let StepKind::Approval { prompt, .. } = &self.wf.steps[record.step_index].kind else { return };
        if record.state != StepState::Waiting {
            return;
        }
        let asks = self.approval_reason(prompt, record.item.as_ref(), record.target.as_deref());
        record.reason = Some(match record.reason.take() {
            Some(retried) => format!("{asks} ({retried})"),
            None => asks,
        });
    }

    fn scope(&self, item: Option<&Value>, target: Option<&str>) -> template::Scope {
        let mut steps = BTreeMap::new();
        for (idx, step) in self.wf.steps.iter().enumerate() {
            if !self.expanded[idx] {
                continue;
            }
            let records = self.keys_by_step[idx].iter().filter_map(|k| self.instances.get(k));
            if step.fans_out() {
                let outputs =
                    records.filter_map(|r| r.output.clone().map(|o| (item_key(&r.key), o))).collect();
                steps.insert(step.id.clone(), template::StepOutput::FanOut(outputs));
            } else if let Some(record) = records.into_iter().next() {
                steps.insert(
                    step.id.clone(),
                    template::StepOutput::Single(record.output.clone().unwrap_or(Value::Null)),
                );
            }
        }
        template::Scope {
            params: self.params.as_object().cloned().unwrap_or_default(),
            steps,
            item: item.cloned(),
            target: target.map(str::to_string),
            inventory: self.inventory_json.clone(),
            run_id: self.run_id.to_string(),
        }
    }

    fn render_input(&self, record: &StepRecord) -> Result<Value, String> {
        if !self.templated[record.step_index] {
            return Ok(self.wf.steps[record.step_index].with.clone());
        }
        let scope = self.scope(record.item.as_ref(), record.target.as_deref());
        template::render(&self.wf.steps[record.step_index].with, &scope)
            .map_err(|e| format!("rendering `with`: {e}"))
    }

    fn step_call(&self, record: &StepRecord, number: u32, input: Value, mode: Mode) -> StepCall {
        let step = &self.wf.steps[record.step_index];
        StepCall {
            mode,
            context: StepContext {
                run_id: self.run_id.to_string(),
                step_key: record.key.clone(),
                attempt: number,
                idempotency_key: format!("{}/{}", self.run_id, record.key),
                target: record.target.clone(),
            },
            input,
            grants: super::instance::grants_of(step, &self.inventory, record.target.as_deref()),
            timeout: step.timeout,
        }
    }

    /// Counts an attempt of `record` as in flight.
    fn count_running(&mut self, record: &StepRecord) {
        self.running.insert(record.key.clone());
        self.running_by_step[record.step_index] += 1;
        if let Some(target) = &record.target {
            *self.running_by_target.entry(target.clone()).or_default() += 1;
        }
    }

    /// Counts an attempt of `record` as finished.
    fn count_finished(&mut self, record: &StepRecord) {
        if self.running.remove(&record.key) {
            self.running_by_step[record.step_index] -= 1;
            if let Some(target) = &record.target
                && let Some(n) = self.running_by_target.get_mut(target)
            {
                *n -= 1;
            }
        }
    }

    /// Whether one more attempt of an instance of step `idx` on `target` fits the limits.
    fn fits(&self, idx: usize, target: Option<&String>) -> bool {
        let step = &self.wf.steps[idx];
        if self.running.len() >= self.wf.limits.concurrency as usize {
            return false;
        }
        if step.concurrency.step.is_some_and(|n| self.running_by_step[idx] >= n) {
            return false;
        }
        !matches!((step.concurrency.per_target, target),
            (Some(n), Some(target)) if self.running_by_target.get(target).copied().unwrap_or(0) >= n)
    }
}

/// Keeps only the last state of each step instance among `changes`: one turn often moves an
/// instance twice (ready, then running), and only the row it ends in needs writing. Events keep
/// the history.
fn coalesce(mut changes: Vec<Change>) -> Vec<Change> {
    // In place, with borrowed keys: a fan-out's expansion is one turn of many thousand changes.
    let mut keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::new();
        changes
            .iter()
            .rev()
            .map(|change| match change {
                Change::PutStep(record) => seen.insert(record.key.as_str()),
                _ => true,
            })
            .collect()
    };
    keep.reverse();
    let mut keep = keep.into_iter();
    changes.retain(|_| keep.next().unwrap_or(true));
    changes
}

/// Whether any string in `value` is a template.
fn has_templates(value: &Value) -> bool {
    match value {
        Value::String(s) => template::is_template(s),
        Value::Array(items) => items.iter().any(has_templates),
        Value::Object(map) => map.values().any(has_templates),
        _ => false,
    }
}

/// The item part of a fan-out key: `join[DRBTS01]` -> `DRBTS01`.
fn item_key(key: &str) -> String {
    key.split_once('[').map_or(key, |(_, rest)| rest.strip_suffix(']').unwrap_or(rest)).to_string()
}
