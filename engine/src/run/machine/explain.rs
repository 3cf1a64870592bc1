//! Why an instance waits and what moves it on, and the state a step shows: one definition for
//! `drover status`, the live display and the report.

use crate::store::{StepRecord, StepState};
use crate::workflow::model::{OnFailure, StepKind};

use super::Machine;

/// The state a step shows for its instances: the worst of them. Failed, then needs-operator,
/// compensation-failed, cancelled, running, compensating, waiting, ready; all skipped is
/// skipped, all compensated is compensated, anything else finished is succeeded.
pub fn worst(states: impl IntoIterator<Item = StepState>) -> StepState {
    const ORDER: [StepState; 8] = [
        StepState::Failed,
        StepState::NeedsOperator,
        StepState::CompensationFailed,
        StepState::Cancelled,
        StepState::Running,
        StepState::Compensating,
        StepState::Waiting,
        StepState::Ready,
    ];
    let states: Vec<StepState> = states.into_iter().collect();
    if let Some(state) = ORDER.into_iter().find(|s| states.contains(s)) {
        return state;
    }
    if states.is_empty() {
        return StepState::Pending;
    }
    for uniform in [StepState::Skipped, StepState::Compensated] {
        if states.iter().all(|&s| s == uniform) {
            return uniform;
        }
    }
    StepState::Succeeded
}

impl Machine {
    /// Why instance `key` is where it is, and what moves it on; `None` for one that finished
    /// with nothing to say. `driven` tells whether a process holds the run's lease now.
    pub fn why(&self, key: &str, driven: bool) -> Option<String> {
        let record = self.instances.get(key)?;
        let id = &self.run_id;
        let undriven = !driven && !self.is_over();
        Some(match record.state {
            StepState::Ready | StepState::Running | StepState::Compensating if undriven => {
                format!("no process drives the run — `drover resume {id}`")
            }
            StepState::Waiting | StepState::Compensating if record.retry_at.is_some() => format!(
                "retry timer: next attempt at {} ({})",
                crate::report::format_time(record.retry_at.unwrap_or_default()),
                record.reason.clone().unwrap_or_default()
            ),
            StepState::Waiting => {
                let by = match &self.wf.steps[record.step_index].kind {
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
            StepState::Ready => self.slot(record),
            StepState::Compensating if self.running.contains(key) => "compensating".into(),
            StepState::Compensating => match self.compensating_after(record) {
                Some(after) => format!("compensates after {after}"),
                None => self.slot(record).replace("ready;", "compensation ready;"),
            },
            StepState::NeedsOperator => format!(
                "needs an operator: {} — `drover retry {id} {key}` or `drover skip {id} {key} --output <json>`",
                record.reason.clone().unwrap_or_default()
            ),
            StepState::CompensationFailed => format!(
                "{} — `drover retry {id} {key}` to compensate again, or `drover skip {id} {key}` once undone by hand",
                record.reason.clone().unwrap_or_default()
            ),
            StepState::Failed => {
                format!("{} — `drover retry {id} {key}`", record.reason.clone().unwrap_or_default())
            }
            StepState::Succeeded if self.compensation.is_some() => {
                self.left_as_is(record).map(|why| format!("left as is: {why}"))?
            }
            StepState::Skipped | StepState::Cancelled => record.reason.clone()?,
            _ => return None,
        })
    }

    /// The downstream compensations a compensating instance waits for, named by step.
    fn compensating_after(&self, record: &StepRecord) -> Option<String> {
        let mut waiting = self.compensation.as_ref()?.waiting_on(record.step_index);
        waiting.sort_by_key(|&idx| self.order_pos[idx]);
        let names: Vec<&str> = waiting.into_iter().map(|idx| self.wf.steps[idx].id.as_str()).collect();
        (!names.is_empty()).then(|| names.join(", "))
    }

    /// Which concurrency limit keeps a ready instance waiting, and who holds its slots.
    fn slot(&self, record: &StepRecord) -> String {
        let step = &self.wf.steps[record.step_index];
        // In flight here, or running as the journal says (for a reader such as `drover status`).
        let running: Vec<&StepRecord> = (self.instances.values())
            .filter(|r| r.state == StepState::Running || self.running.contains(&r.key))
            .collect();
        let names = |holders: Vec<&&StepRecord>| {
            let mut keys: Vec<&str> = holders.iter().map(|r| r.key.as_str()).take(3).collect();
            if holders.len() > 3 {
                keys.push("…");
            }
            keys.join(", ")
        };
        let same_step: Vec<&&StepRecord> =
            running.iter().filter(|r| r.step_index == record.step_index).collect();
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
        if all.len() >= self.wf.limits.concurrency as usize {
            return format!(
                "ready; waits for a slot: run limit {} in use by {}",
                self.wf.limits.concurrency,
                names(all)
            );
        }
        "ready; starts on the driver's next turn".to_string()
    }

    /// Why step `idx` has no instance yet: the upstream steps it waits for, or the failure or
    /// compensation that keeps it from starting.
    pub fn why_not_started(&self, idx: usize) -> String {
        let id = &self.run_id;
        if self.compensation.is_some() {
            return "not run: the run is being compensated".into();
        }
        // Before its failures: a cancelled run takes no `retry`.
        if self.cancelled {
            return "not run: the run was cancelled".into();
        }
        let needs = self.unfinished_needs(idx);
        if !needs.is_empty() {
            return format!("waits for {}", needs.join(", "));
        }
        let failed: Vec<&str> = self.wf.steps[idx]
            .needs
            .iter()
            .flat_map(|&n| self.failed_by_step[n].iter())
            .map(String::as_str)
            .collect();
        if let Some(key) = failed.first() {
            return format!("will not start while {} failed — `drover retry {id} {key}`", failed.join(", "));
        }
        let halted: Vec<&str> = self
            .instances
            .values()
            .filter(|r| {
                r.state == StepState::Failed && self.wf.steps[r.step_index].on_failure != OnFailure::Continue
            })
            .map(|r| r.key.as_str())
            .collect();
        match halted.first() {
            Some(key) => format!(
                "the run stopped starting steps when {} failed (on-failure = {}) — `drover retry {id} {key}`",
                halted.join(", "),
                on_failure_name(self.wf.steps[self.instances[*key].step_index].on_failure)
            ),
            None => format!("starts when the run is driven — `drover resume {id}`"),
        }
    }

    /// The steps step `idx` needs that have not finished.
    pub fn unfinished_needs(&self, idx: usize) -> Vec<String> {
        self.wf.steps[idx]
            .needs
            .iter()
            .filter(|&&n| !self.expanded[n] || self.open_by_step[n] > 0)
            .map(|&n| self.wf.steps[n].id.clone())
            .collect()
    }

    /// The state step `idx` shows: the worst of its instances ([`worst`]).
    pub fn step_state(&self, idx: usize) -> StepState {
        worst(self.keys_by_step[idx].iter().filter_map(|k| self.instances.get(k)).map(|r| r.state))
    }

    /// The keys of step `idx`'s instances, in the order they were made.
    pub fn keys_of(&self, idx: usize) -> &[String] {
        &self.keys_by_step[idx]
    }
}

fn on_failure_name(policy: OnFailure) -> &'static str {
    match policy {
        OnFailure::Stop => "stop",
        OnFailure::Continue => "continue",
        OnFailure::Compensate => "compensate",
    }
}
