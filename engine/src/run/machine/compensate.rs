//! Compensation (sagas): undoing what a run changed, when it failed under `on-failure =
//! "compensate"` or an operator asked (`drover compensate`).
//!
//! Once compensation begins, no forward work starts again. Every instance that succeeded and
//! changed something, of a plugin that implements `compensate` and is not irreversible, moves to
//! [`StepState::Compensating`]; its compensation runs once every compensation downstream of it
//! (steps that need it, directly or not) has finished: reverse dependency order. Instances of
//! other plugins are "left as is" and listed. A compensation that fails waits for an operator
//! ([`StepState::CompensationFailed`]: `drover retry` runs it again, `drover skip` marks it done by
//! hand). When none is left the run is [`RunState::Compensated`].
//!
//! **Invariant:** a compensation is journaled like forward work (intent before the call, outcome
//! after), and an instance once [`StepState::Compensated`] is never compensated again.

use crate::journal::{Actor, Event, LeftAsIs, Request};
use crate::plugin::{CallReport, Effect, Mode};
use crate::store::{Change, RequestRecord, RunState, StepRecord, StepState};
use crate::workflow::model::OnFailure;

use super::super::RunOutcome;
use super::forward::audit;
use super::{Launch, Machine};

/// Where compensation stands: per step, its instances still to compensate (or whose
/// compensation failed), and the steps that need each step.
#[derive(Debug, Clone)]
pub(super) struct Compensation {
    pending_by_step: Vec<usize>,
    dependents: Vec<Vec<usize>>,
}

impl Compensation {
    fn new(machine: &Machine) -> Compensation {
        let mut dependents = vec![Vec::new(); machine.wf.steps.len()];
        for (idx, step) in machine.wf.steps.iter().enumerate() {
            for &need in &step.needs {
                dependents[need].push(idx);
            }
        }
        let mut pending_by_step = vec![0; machine.wf.steps.len()];
        for record in machine.instances.values() {
            if pending(record.state) {
                pending_by_step[record.step_index] += 1;
            }
        }
        Compensation { pending_by_step, dependents }
    }

    /// The compensation a journal shows under way or done, if any.
    pub(super) fn resumed(machine: &Machine) -> Option<Compensation> {
        let began = matches!(machine.run_state, RunState::Compensating | RunState::Compensated)
            || machine.instances.values().any(|r| {
                matches!(
                    r.state,
                    StepState::Compensating | StepState::Compensated | StepState::CompensationFailed
                )
            });
        began.then(|| Compensation::new(machine))
    }

    /// Keeps the counts true as an instance of step `idx` moves from `old` to `new`.
    pub(super) fn index(&mut self, idx: usize, old: Option<StepState>, new: StepState) {
        if old.is_some_and(pending) {
            self.pending_by_step[idx] -= 1;
        }
        if pending(new) {
            self.pending_by_step[idx] += 1;
        }
    }

    /// The steps downstream of step `idx` (needing it, directly or not) that still have a
    /// compensation to finish: `idx` compensates once there is none.
    pub(super) fn waiting_on(&self, idx: usize) -> Vec<usize> {
        let mut seen = vec![false; self.dependents.len()];
        let mut stack: Vec<usize> = self.dependents[idx].clone();
        let mut waiting = Vec::new();
        while let Some(next) = stack.pop() {
            if std::mem::replace(&mut seen[next], true) {
                continue;
            }
            if self.pending_by_step[next] > 0 {
                waiting.push(next);
            }
            stack.extend(&self.dependents[next]);
        }
        waiting
    }

    /// Whether step `idx` may compensate now: no step downstream of it has a compensation left.
    fn clear(&self, idx: usize) -> bool {
        self.waiting_on(idx).is_empty()
    }

    fn any_pending(&self) -> bool {
        self.pending_by_step.iter().any(|&n| n > 0)
    }
}

/// Whether an instance in `state` still has a compensation to finish.
fn pending(state: StepState) -> bool {
    matches!(state, StepState::Compensating | StepState::CompensationFailed)
}

impl Machine {
    /// Whether a failed run compensates instead of ending failed: the run says so, or a failed
    /// instance's step does.
    pub(super) fn compensates_on_failure(&self) -> bool {
        self.wf.on_failure == OnFailure::Compensate
            || self.instances.values().any(|r| {
                r.state == StepState::Failed
                    && self.wf.steps[r.step_index].on_failure == OnFailure::Compensate
            })
    }

    /// Why an instance that succeeded is not compensated, or `None` if it is to be.
    pub fn left_as_is(&self, record: &StepRecord) -> Option<String> {
        let (_, info) = self.wf.steps[record.step_index].plugin()?;
        if record.changed != Some(true) {
            return None;
        }
        if info.effect == Effect::Irreversible {
            return Some(format!("plugin {} is irreversible: never compensated automatically", info.name));
        }
        if !info.compensable {
            return Some(format!("plugin {} cannot compensate", info.name));
        }
        None
    }

    /// Every succeeded instance that changed something and will not be compensated, with why.
    pub fn left_as_is_all(&self) -> Vec<(String, String)> {
        self.instances
            .values()
            .filter(|r| matches!(r.state, StepState::Succeeded))
            .filter_map(|r| self.left_as_is(r).map(|why| (r.key.clone(), why)))
            .collect()
    }

    /// Whether `record` is to be compensated once compensation begins.
    pub(super) fn compensable(&self, record: &StepRecord) -> bool {
        record.state == StepState::Succeeded
            && record.changed == Some(true)
            && self.wf.steps[record.step_index].plugin().is_some()
            && self.left_as_is(record).is_none()
    }

    /// An operator asked for compensation: it begins now (attempts in flight are stopped and
    /// end cancelled).
    pub(super) fn request_compensation(&mut self, request: &RequestRecord) -> Result<(), String> {
        if self.run_state == RunState::Compensated {
            return Err(format!("run {} was compensated already", self.run_id));
        }
        if self.compensation.is_some() && !self.cancelled {
            return Err(format!("run {} is being compensated already", self.run_id));
        }
        let comment = request.request.as_ref().ok().and_then(Request::comment).map(str::to_string);
        let actor = Actor::Operator(request.actor.clone());
        self.event_by(None, actor.clone(), Event::CompensationRequested { comment });
        if self.cancelled {
            // A cancelled run ends its drive at once; compensating it means un-cancelling it.
            self.cancelled = false;
            self.cancelled_by = None;
            if self.compensation.is_some() {
                // Cancelled during its compensation: the compensations left go on.
                self.notes.push(format!("compensation resumed by {}", request.actor));
                self.set_run_state(RunState::Compensating, None);
                return Ok(());
            }
        }
        self.begin_compensation(&format!("requested by {}", request.actor), actor);
        Ok(())
    }

    /// Compensation begins: forward work stops for good, unfinished instances are cancelled, and
    /// what the run changed is marked to be compensated.
    pub(super) fn begin_compensation(&mut self, reason: &str, actor: Actor) {
        let now = self.now();
        self.stopping = true;
        self.compensation = Some(Compensation::new(self));
        let unfinished: Vec<StepRecord> = self
            .instances
            .values()
            .filter(|r| !r.state.is_terminal() && !self.running.contains(&r.key))
            .cloned()
            .collect();
        for mut record in unfinished {
            record.state = StepState::Cancelled;
            record.reason = Some(format!("not run: the run is being compensated ({reason})"));
            record.retry_at = None;
            record.finished_at = Some(now);
            self.put(record);
        }
        let to_compensate: Vec<StepRecord> =
            self.instances.values().filter(|r| self.compensable(r)).cloned().collect();
        let keys: Vec<String> = to_compensate.iter().map(|r| r.key.clone()).collect();
        for mut record in to_compensate {
            record.state = StepState::Compensating;
            record.reason = Some(format!("to be compensated ({reason})"));
            self.put(record);
        }
        let left = self.left_as_is_all();
        self.notes.push(format!(
            "compensating ({reason}): {} step instance(s) to undo, {} left as is",
            keys.len(),
            left.len()
        ));
        let left_as_is = left.into_iter().map(|(key, why)| LeftAsIs { key, why }).collect();
        let event = Event::CompensationStarted { reason: reason.to_string(), compensate: keys, left_as_is };
        self.event_by(None, actor, event);
        self.set_run_state(RunState::Compensating, None);
    }

    /// The compensations whose turn it is, within the limits, with their intents recorded.
    pub(super) fn compensation_starts(&mut self) -> Vec<Launch> {
        let Some(compensation) = &self.compensation else { return Vec::new() };
        // Forward attempts in flight when compensation began (being stopped) end first: what they
        // did decides what is compensated, and a step is undone only after what needs it.
        if self.running.iter().any(|k| self.instances.get(k).is_some_and(|r| r.state == StepState::Running)) {
            return Vec::new();
        }
        // Latest in topological order first: downstream steps are undone before what they need.
        let mut candidates: Vec<(usize, String)> = self
            .instances
            .values()
            .filter(|r| {
                r.state == StepState::Compensating && r.retry_at.is_none() && !self.running.contains(&r.key)
            })
            .filter(|r| compensation.clear(r.step_index))
            .map(|r| (self.order_pos[r.step_index], r.key.clone()))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut starts = Vec::new();
        for (_, key) in candidates {
            let mut record = self.instances[&key].clone();
            let idx = record.step_index;
            if !self.fits(idx, record.target.as_ref()) {
                continue;
            }
            let now = self.now();
            let input = match self.render_input(&record) {
                Ok(input) => input,
                Err(message) => {
                    record.state = StepState::CompensationFailed;
                    record.reason = Some(format!("compensation cannot start: {message}"));
                    self.event(Some(&key), Event::CompensateFailed { audit: None, error: message });
                    self.put(record);
                    continue;
                }
            };
            record.attempts += 1;
            record.reason = Some("compensating".into());
            let number = record.attempts;
            self.changes.push(Change::PutAttempt(self.intent(&key, number, Mode::Compensate, now)));
            self.event(Some(&key), Event::CompensateStarted { attempt: number });
            let call = self.step_call(&record, number, input, Mode::Compensate);
            self.count_running(&record);
            self.put(record);
            starts.push(Launch { key, number, step_index: idx, call });
        }
        starts
    }

    /// Records a finished compensation.
    pub(super) fn compensation_done(&mut self, mut record: StepRecord, number: u32, report: CallReport) {
        let now = self.now();
        let key = record.key.clone();
        let audit = audit(number, &report);
        self.end_attempt(&key, number, Mode::Compensate, now, &report);
        match report.result {
            Ok(outcome) => {
                record.state = StepState::Compensated;
                record.reason = None;
                record.summary = Some(format!("compensated: {}", outcome.summary));
                record.finished_at = Some(now);
                self.notes.push(format!("{key}: compensated: {}", outcome.summary));
                let event =
                    Event::CompensateSucceeded { audit, changed: outcome.changed, summary: outcome.summary };
                self.event(Some(&key), event);
            }
            Err(e) => {
                let message = e.to_string();
                record.state = StepState::CompensationFailed;
                record.reason = Some(format!("compensation failed: {message}"));
                self.notes.push(format!("{key}: compensation failed: {message}"));
                self.event(Some(&key), Event::CompensateFailed { audit: Some(audit), error: message });
            }
        }
        self.put(record);
    }

    /// With nothing running during compensation: goes on, waits for an operator, or ends the
    /// run compensated.
    pub(super) fn settle_compensation(&mut self, wait_for_operator: bool) -> Option<RunOutcome> {
        let compensation = self.compensation.as_ref()?;
        let startable = self.instances.values().any(|r| {
            r.state == StepState::Compensating && r.retry_at.is_none() && compensation.clear(r.step_index)
        });
        if startable {
            return None;
        }
        if compensation.any_pending() {
            return self.wait(wait_for_operator);
        }
        let now = self.now();
        let compensated: Vec<String> = self
            .instances
            .values()
            .filter(|r| r.state == StepState::Compensated)
            .map(|r| r.key.clone())
            .collect();
        let left_as_is = self.left_as_is_all();
        let failures = self.failures();
        self.set_run_state(RunState::Compensated, Some(now));
        let left =
            left_as_is.iter().map(|(key, why)| LeftAsIs { key: key.clone(), why: why.clone() }).collect();
        self.event(None, Event::RunCompensated { compensated: compensated.clone(), left_as_is: left });
        Some(RunOutcome::Compensated { compensated, left_as_is, failures })
    }
}
