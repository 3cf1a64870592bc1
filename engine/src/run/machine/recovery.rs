//! Settling the attempts a dead driver left running, by the effect class of their plugin:
//! read-only and idempotent steps run again, an irreversible one waits for an operator, and a
//! reversible one is decided by its plugin's `check` (the driver runs it: [`Check`]). An
//! interrupted compensation runs again (a compensation is idempotent).

use crate::journal::{Event, NeedsOperator};
use crate::plugin::{CallReport, Effect, Mode, StepCall};
use crate::store::{AttemptRecord, AttemptState, Change, StepState};

use super::Machine;

/// A `check` the driver must run to settle an interrupted attempt of a reversible step; its
/// intent is already among the machine's changes.
#[derive(Debug, Clone)]
pub struct Check {
    /// The step instance.
    pub key: String,
    /// Index of its step.
    pub step_index: usize,
    /// The interrupted attempt.
    pub interrupted: u32,
    /// The check's own attempt number.
    pub number: u32,
    /// The call (mode `check`).
    pub call: StepCall,
    /// The step's timeout, if it sets one: how long its leftovers may be waited for.
    pub timeout: Option<std::time::Duration>,
    /// When its intent was recorded (ms since the epoch).
    pub started_at: i64,
}

impl Machine {
    /// Settles `attempts`, the ones the journal shows running when this process took the run
    /// over. Returns the checks to run for reversible steps, in order.
    pub fn interrupted(&mut self, attempts: Vec<AttemptRecord>) -> Vec<Check> {
        let mut checks = Vec::new();
        for mut attempt in attempts.into_iter().filter(|a| a.state == AttemptState::Running) {
            let now = self.now();
            let Some(mut record) = self.instances.get(&attempt.step_key).cloned() else { continue };
            attempt.state = AttemptState::Interrupted;
            attempt.finished_at = Some(now);
            attempt.error = Some("the process driving the run stopped during this attempt".into());
            let (number, mode) = (attempt.number, attempt.mode);
            self.changes.push(Change::PutAttempt(attempt.clone()));
            let key = attempt.step_key.clone();
            self.event(Some(&key), Event::AttemptInterrupted { attempt: number });
            if mode == Mode::Compensate || record.state == StepState::Compensating {
                record.reason =
                    Some(format!("compensation attempt {number} was interrupted; compensating again"));
                self.put(record);
                continue;
            }
            let Some((_, info)) = self.wf.steps[record.step_index].plugin() else { continue };
            match info.effect {
                Effect::ReadOnly | Effect::Idempotent => {
                    let effect = info.effect;
                    record.state = StepState::Ready;
                    record.reason =
                        Some(format!("attempt {number} was interrupted; running it again ({effect})"));
                    self.put(record);
                }
                Effect::Irreversible => {
                    record.state = StepState::NeedsOperator;
                    record.reason = Some(format!(
                        "attempt {number} of this irreversible step was interrupted at {}; it may or may not have taken effect. \
                         Check the target, then `drover retry {} {key}` to run it again, or `drover skip {} {key} --output <json>` to mark it done",
                        crate::report::format_time(attempt.started_at),
                        self.run_id,
                        self.run_id
                    ));
                    let event =
                        Event::NeedsOperator(NeedsOperator::Interrupted { reason: record.reason.clone() });
                    self.event(Some(&key), event);
                    self.notes.push(format!("{key}: needs an operator (interrupted irreversible step)"));
                    self.put(record);
                }
                Effect::Reversible => match self.render_input(&record) {
                    Err(message) => {
                        record.state = StepState::NeedsOperator;
                        record.reason = Some(format!(
                            "attempt {number} was interrupted and its input cannot be rendered again: {message}"
                        ));
                        self.put(record);
                    }
                    Ok(input) => {
                        record.attempts += 1;
                        let check_number = record.attempts;
                        self.changes.push(Change::PutAttempt(self.intent(
                            &key,
                            check_number,
                            Mode::Check,
                            now,
                        )));
                        let call = self.step_call(&record, check_number, input, Mode::Check);
                        let step_index = record.step_index;
                        let timeout = self.wf.steps[step_index].timeout;
                        self.put(record);
                        checks.push(Check {
                            key,
                            step_index,
                            interrupted: number,
                            number: check_number,
                            call,
                            timeout,
                            started_at: now,
                        });
                    }
                },
            }
        }
        checks
    }

    /// The leftover processes of an interrupted attempt that recovery waited for (and killed,
    /// past the step's timeout).
    pub fn leftovers(&mut self, check: &Check, found: usize, killed: usize, waited: std::time::Duration) {
        if found == 0 {
            return;
        }
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let event =
            Event::LeftoverProcesses { attempt: check.interrupted, processes: found, killed, waited_ms };
        self.event(Some(&check.key), event);
        self.notes.push(format!(
            "{}: waited {:.1}s for {found} leftover processes of attempt {}{}",
            check.key,
            waited.as_secs_f64(),
            check.interrupted,
            match killed {
                0 => String::new(),
                n => format!(", killed {n} still running at the step's timeout"),
            }
        ));
    }

    /// What a recovery check found: the interrupted attempt took effect (the instance succeeded),
    /// it did not (apply again), or the check failed (an operator decides).
    pub fn checked(&mut self, check: &Check, report: CallReport) {
        let Some(mut record) = self.instances.get(&check.key).cloned() else { return };
        let now = self.now();
        let interrupted = check.interrupted;
        let (state, error) = match &report.result {
            Ok(outcome) if !outcome.changed => {
                record.state = StepState::Succeeded;
                record.output = Some(outcome.output.clone());
                // The interrupted attempt made the change (as far as anyone can tell): what the
                // run changed is what a compensation undoes.
                record.changed = Some(true);
                record.summary =
                    Some(format!("attempt {interrupted} had already taken effect: {}", outcome.summary));
                record.finished_at = Some(now);
                record.reason = None;
                (AttemptState::Succeeded, None)
            }
            Ok(_) => {
                record.state = StepState::Ready;
                record.reason = Some(format!(
                    "attempt {interrupted} was interrupted and check says the change is not there; applying again"
                ));
                (AttemptState::Succeeded, None)
            }
            Err(e) => {
                record.state = StepState::NeedsOperator;
                record.reason = Some(format!("attempt {interrupted} was interrupted and check failed: {e}"));
                (AttemptState::Failed, Some(e.to_string()))
            }
        };
        self.changes.push(Change::PutAttempt(AttemptRecord {
            state,
            finished_at: Some(now),
            error,
            ..self.intent(&check.key, check.number, Mode::Check, check.started_at)
        }));
        self.event(Some(&check.key), Event::RecoveredByCheck { interrupted, state: record.state });
        self.put(record);
    }
}
