//! Forward work: expanding steps into instances once their needs finished, choosing which ready
//! instances start within the limits, and what a finished attempt means for its instance
//! (succeeded, retried after a backoff, failed, needs an operator, cancelled).

use serde_json::Value;

use crate::journal::{Actor, AttemptAudit, AttemptCancelled, Event, NeedsOperator};
use crate::plugin::{CallError, CallReport, FailureClass, Mode};
use crate::store::{AttemptRecord, AttemptState, Change, StepRecord, StepState};
use crate::workflow::model::StepKind;
use crate::workflow::template;

use super::super::clock::{after, backoff};
use super::super::instance;
use super::{Launch, Machine};

impl Machine {
    /// Expands every step whose needs have all finished into its instances.
    pub fn expand(&mut self) {
        if self.stopping || self.cancelled || self.halted() {
            return;
        }
        for pos in 0..self.wf.order.len() {
            let idx = self.wf.order[pos];
            if self.expanded[idx] {
                continue;
            }
            let needs = &self.wf.steps[idx].needs;
            if needs.iter().any(|&n| !self.expanded[n] || self.open_by_step[n] > 0) {
                continue;
            }
            let failed_need = self.failed_upstream(idx);
            self.expanded[idx] = true;
            // Not the whole step: its plugin's schemas make a clone cost in proportion to the
            // workflow, on every expansion.
            let step = &self.wf.steps[idx];
            let (id, when) = (step.id.clone(), step.when.clone());
            let approval = match &step.kind {
                StepKind::Approval { prompt, .. } => Some(prompt.clone()),
                StepKind::Plugin { .. } => None,
            };
            if let Some(failed) = failed_need {
                let reason = format!("needs {failed}, which failed");
                let record = self.new_instance(idx, id.clone(), None, None, StepState::Skipped, Some(reason));
                self.event(Some(&id), Event::StepSkipped { reason: record.reason.clone() });
                self.put(record);
                continue;
            }
            let items = {
                let step = &self.wf.steps[idx];
                let scope = if matches!(step.for_each, Some(crate::workflow::model::ForEach::List(_))) {
                    self.scope(None, None)
                } else {
                    empty_scope()
                };
                instance::items(step, &self.inventory, &scope)
            };
            let items = match items {
                Ok(items) => items,
                Err(message) => {
                    let record =
                        self.new_instance(idx, id.clone(), None, None, StepState::Failed, Some(message));
                    self.event(Some(&id), Event::StepFailed { reason: record.reason.clone() });
                    self.put(record);
                    self.fail_policy(idx);
                    continue;
                }
            };
            for (n, item) in items.into_iter().enumerate() {
                let (key, target) = instance::instance_key(&id, item.as_ref(), n, &self.inventory);
                let when_ok = match &when {
                    None => Ok(true),
                    Some(expr) => template::eval_when(expr, &self.scope(item.as_ref(), target.as_deref()))
                        .map_err(|e| format!("when `{expr}`: {e}")),
                };
                let (state, reason) = match (when_ok, &approval) {
                    (Err(message), _) => (StepState::Failed, Some(message)),
                    (Ok(false), _) => (
                        StepState::Skipped,
                        Some(format!("when `{}` is false", when.as_deref().unwrap_or(""))),
                    ),
                    (Ok(true), Some(prompt)) => (
                        StepState::Waiting,
                        Some(self.approval_reason(prompt, item.as_ref(), target.as_deref())),
                    ),
                    (Ok(true), None) => (StepState::Ready, None),
                };
                let record = self.new_instance(idx, key.clone(), item, target, state, reason.clone());
                self.put(record);
                let event = match state {
                    StepState::Failed => Event::StepFailed { reason },
                    StepState::Skipped => Event::StepSkipped { reason },
                    StepState::Waiting => Event::WaitingForApproval { reason },
                    _ => Event::StepReady { reason },
                };
                self.event(Some(&key), event);
                if state == StepState::Failed {
                    self.fail_policy(idx);
                }
            }
        }
    }

    /// The waiting reason of an approval instance: `approval: ` and its prompt rendered over the
    /// instance's scope. A prompt that does not render (a value missing from an output) is shown
    /// as written with the reason: the gate still waits, so the operator can still approve it,
    /// skip it or cancel the run.
    pub(super) fn approval_reason(&self, prompt: &str, item: Option<&Value>, target: Option<&str>) -> String {
        if !template::is_template(prompt) {
            return format!("approval: {prompt}");
        }
        match template::render_text(prompt, &self.scope(item, target)) {
            Ok(text) => format!("approval: {text}"),
            Err(e) => format!("approval: {prompt} (the prompt did not render: {})", e.message()),
        }
    }

    /// The failed instance a step must not run after: one of a need's, or, for a need whose
    /// instances were all skipped because of a failure upstream, the one upstream of it.
    pub(super) fn failed_upstream(&self, idx: usize) -> Option<String> {
        self.wf.steps[idx].needs.iter().find_map(|&n| {
            self.failed_by_step[n].iter().next().cloned().or_else(|| {
                let keys = &self.keys_by_step[n];
                let skipped = !keys.is_empty()
                    && keys
                        .iter()
                        .all(|k| self.instances.get(k).is_some_and(|r| r.state == StepState::Skipped));
                if skipped { self.failed_upstream(n) } else { None }
            })
        })
    }

    fn new_instance(
        &self,
        idx: usize,
        key: String,
        item: Option<Value>,
        target: Option<String>,
        state: StepState,
        reason: Option<String>,
    ) -> StepRecord {
        StepRecord {
            run_id: self.run_id,
            key,
            step_index: idx,
            item,
            target,
            state,
            attempts: 0,
            reason,
            retry_at: None,
            output: None,
            changed: None,
            summary: None,
            evidence: None,
            started_at: None,
            finished_at: if state.is_terminal() { Some(self.now()) } else { None },
        }
    }

    /// Chooses ready instances to start within the limits, and records their intents. Once
    /// compensation began, the compensations whose turn it is.
    pub fn starts(&mut self) -> Vec<Launch> {
        if self.cancelled {
            return Vec::new();
        }
        if self.compensation.is_some() {
            return self.compensation_starts();
        }
        let mut starts = Vec::new();
        let limit = self.wf.limits.concurrency as usize;
        if self.stopping || self.running.len() >= limit {
            return starts;
        }
        // Only as many candidates as could start; per-step and per-target limits may skip some,
        // so look a bounded way past that.
        let room = limit - self.running.len();
        let candidates: Vec<(usize, String)> = self.ready.iter().take(room * 8 + 64).cloned().collect();
        for (pos, key) in candidates {
            if self.running.len() >= limit {
                break;
            }
            let mut record = self.instances[&key].clone();
            let idx = record.step_index;
            if !self.fits(idx, record.target.as_ref()) || self.wf.steps[idx].plugin().is_none() {
                continue;
            }
            self.ready.remove(&(pos, key.clone()));
            let input = match self.render_input(&record) {
                Ok(input) => input,
                Err(message) => {
                    record.state = StepState::Failed;
                    record.reason = Some(message.clone());
                    record.finished_at = Some(self.now());
                    self.event(Some(&key), Event::StepFailed { reason: Some(message) });
                    self.put(record);
                    self.fail_policy(idx);
                    continue;
                }
            };
            let now = self.now();
            record.attempts += 1;
            record.state = StepState::Running;
            record.reason = None;
            record.started_at.get_or_insert(now);
            let number = record.attempts;
            self.changes.push(Change::PutAttempt(self.intent(&key, number, Mode::Apply, now)));
            self.event(Some(&key), Event::AttemptStarted { attempt: number });
            let call = self.step_call(&record, number, input, Mode::Apply);
            self.count_running(&record);
            self.put(record);
            starts.push(Launch { key, number, step_index: idx, call });
        }
        starts
    }

    /// The intent of attempt `number` of `key` in `mode`.
    pub(super) fn intent(&self, key: &str, number: u32, mode: Mode, now: i64) -> AttemptRecord {
        AttemptRecord {
            run_id: self.run_id,
            step_key: key.to_string(),
            number,
            mode,
            state: AttemptState::Running,
            started_at: now,
            finished_at: None,
            error: None,
            error_class: None,
        }
    }

    /// Ends attempt `number` of `key` (in `mode`, started at `started`) as its report says:
    /// succeeded, cancelled, or failed with its class.
    pub(super) fn end_attempt(
        &mut self,
        key: &str,
        number: u32,
        mode: Mode,
        started: i64,
        report: &CallReport,
    ) {
        let (state, error, error_class) = match &report.result {
            Ok(_) => (AttemptState::Succeeded, None, None),
            Err(e @ CallError::Cancelled { .. }) => (AttemptState::Cancelled, Some(e.to_string()), None),
            Err(e) => (AttemptState::Failed, Some(e.to_string()), Some(e.class())),
        };
        let finished_at = Some(self.now());
        let ended = AttemptRecord {
            state,
            finished_at,
            error,
            error_class,
            ..self.intent(key, number, mode, started)
        };
        self.changes.push(Change::PutAttempt(ended));
    }

    /// Records a finished attempt (`number` of `key`, started by [`Machine::starts`]) and what it
    /// means for its instance.
    pub fn complete(&mut self, key: &str, number: u32, report: CallReport) {
        let Some(mut record) = self.instances.get(key).cloned() else { return };
        self.count_finished(&record);
        if record.state == StepState::Compensating {
            return self.compensation_done(record, number, report);
        }
        let now = self.now();
        let idx = record.step_index;
        // Only the retry policy is needed: the step itself may hold a long `for-each` list.
        let retry = self.wf.steps[idx].retry;
        let audit = audit(number, &report);
        self.end_attempt(key, number, Mode::Apply, record.started_at.unwrap_or(now), &report);
        match report.result {
            Ok(outcome) => {
                record.state = StepState::Succeeded;
                record.output = Some(outcome.output);
                record.changed = Some(outcome.changed);
                record.summary = Some(outcome.summary.clone());
                record.evidence = serde_json::to_value(&outcome.evidence).ok();
                record.finished_at = Some(now);
                record.reason = None;
                let verdict = if outcome.changed { "changed" } else { "no change" };
                self.notes.push(format!("{key}: succeeded, {verdict}: {}", outcome.summary));
                let event =
                    Event::AttemptSucceeded { audit, changed: outcome.changed, summary: outcome.summary };
                self.event(Some(key), event);
                // It finished after compensation began: undone like the rest, before what it needs.
                if self.compensation.is_some() && self.compensable(&record) {
                    record.state = StepState::Compensating;
                    record.reason = Some("to be compensated (it finished after compensation began)".into());
                }
            }
            Err(e) => {
                let message = e.to_string();
                match e.class() {
                    // The run was cancelled: a stopped attempt, or one that failed meanwhile, ends
                    // its step; the operator's cancel is what the journal says ended it.
                    _ if self.cancelled => {
                        let (actor, comment) = self.cancelled_by.clone().unwrap_or((Actor::Engine, None));
                        record.state = StepState::Cancelled;
                        record.reason = Some(format!("run cancelled by {actor} during attempt {number}"));
                        record.finished_at = Some(now);
                        self.notes.push(format!("{key}: cancelled by {actor} (attempt {number} stopped)"));
                        let stopped = AttemptCancelled::Stopped { audit, error: message, comment };
                        self.event_by(Some(key), actor, Event::AttemptCancelled(stopped));
                    }
                    // Compensation began while it ran (and stopped it): no forward work goes on.
                    _ if self.compensation.is_some() => {
                        record.state = StepState::Cancelled;
                        record.reason =
                            Some(format!("stopped during attempt {number}: the run is being compensated"));
                        record.finished_at = Some(now);
                        self.notes
                            .push(format!("{key}: stopped (attempt {number}): the run is being compensated"));
                        let stopped = AttemptCancelled::Stopped { audit, error: message, comment: None };
                        self.event(Some(key), Event::AttemptCancelled(stopped));
                    }
                    FailureClass::Retryable if record.attempts < retry.attempts => {
                        let delay = backoff(&retry, record.attempts + 1, self.clock.jitter(retry.jitter));
                        record.state = StepState::Waiting;
                        record.retry_at = Some(after(now, delay));
                        record.reason = Some(format!(
                            "retry {} of {} in {:.1}s after: {message}",
                            record.attempts + 1,
                            retry.attempts,
                            delay.as_secs_f64()
                        ));
                        self.notes.push(format!("{key}: {}", record.reason.as_deref().unwrap_or_default()));
                        let event =
                            Event::RetryScheduled { audit, error: message, retry_at: record.retry_at };
                        self.event(Some(key), event);
                    }
                    FailureClass::NeedsOperator => {
                        record.state = StepState::NeedsOperator;
                        record.reason = Some(message.clone());
                        self.notes.push(format!("{key}: needs an operator: {message}"));
                        let event = Event::NeedsOperator(NeedsOperator::Failed { audit, error: message });
                        self.event(Some(key), event);
                    }
                    _ => {
                        record.state = StepState::Failed;
                        record.reason = Some(message.clone());
                        record.finished_at = Some(now);
                        self.notes.push(format!("{key}: failed: {message}"));
                        self.event(Some(key), Event::AttemptFailed { audit, error: message });
                        self.fail_policy(idx);
                    }
                }
            }
        }
        self.put(record);
    }
}

/// What the journal keeps of every finished attempt.
pub(super) fn audit(number: u32, report: &CallReport) -> AttemptAudit {
    AttemptAudit {
        attempt: number,
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        logs: report.logs.clone(),
        target_calls: report.target_calls.len(),
        refusals: report.refusals.len(),
    }
}

/// A scope with nothing in it, for expansions that render nothing.
fn empty_scope() -> template::Scope {
    template::Scope {
        params: Default::default(),
        steps: Default::default(),
        item: None,
        target: None,
        inventory: Value::Null,
        run_id: String::new(),
    }
}
