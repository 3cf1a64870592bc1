//! Operator commands: approve, retry, skip, cancel. A command is validated against the run's
//! current state, queued in the journal, and applied either by the process driving the run (on
//! its next poll) or, when no process drives it, by the command itself under the run's lease.
//! Both paths use [`apply`], so a command means the same thing either way.
//!
//! A cancel ends every unfinished instance but the running ones; those are the driving process's
//! to stop (it interrupts their attempts at once and journals them as cancelled by the operator),
//! or, when no process drives the run, attempts a dead driver left running, ended here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::journal::{Actor, AttemptCancelled, Event, Request, RunId};
use crate::store::{AttemptState, Change, RequestRecord, RunState, StepRecord, StepState};
use crate::workflow::model::{StepKind, Workflow};

use std::sync::Arc;
use std::time::Duration;

use super::lease::Lease;
use super::{Clock, RunContext, RunError};
use crate::store::Store;

/// What applying a command did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Changes to commit.
    pub changes: Vec<Change>,
    /// Instances it changed (already updated in the map given to [`apply`]).
    pub changed_keys: Vec<String>,
    /// The run is cancelled.
    pub cancel: bool,
    /// The run may go on (a retry after a failure).
    pub resumes_run: bool,
}

/// Applies one queued command to the instances (updated in place) and returns the changes.
pub fn apply(
    wf: &Workflow,
    instances: &mut BTreeMap<String, StepRecord>,
    request: &RequestRecord,
    now: i64,
) -> Result<Applied, String> {
    let command = request.request.as_ref().map_err(ToString::to_string)?;
    let comment = command.comment().map(str::to_string);
    let mut applied = Applied::default();
    let actor = Actor::Operator(request.actor.clone());
    let event =
        |key: Option<&str>, event: Event| Change::event(request.run_id, now, key, actor.clone(), &event);
    if let Request::Cancel { .. } = command {
        for record in instances.values_mut() {
            // Running ones are the driver's to stop; compensating ones succeeded, and a succeeded
            // instance only ever moves on to compensation: they stay to be undone.
            let keep = matches!(
                record.state,
                StepState::Running | StepState::Compensating | StepState::CompensationFailed
            );
            if !record.state.is_terminal() && !keep {
                record.state = StepState::Cancelled;
                record.reason = Some(format!("run cancelled by {}", request.actor));
                record.finished_at = Some(now);
                applied.changes.push(Change::PutStep(Box::new(record.clone())));
                applied.changed_keys.push(record.key.clone());
            }
        }
        applied.changes.push(event(None, Event::CancelRequested { comment }));
        applied.cancel = true;
        return Ok(applied);
    }
    if let Request::Compensate { .. } = command {
        // The run machine begins compensation when it applies the request: nothing to do here.
        return Ok(applied);
    }
    let key = command.step_key().ok_or("the command names no step")?;
    let record = instances.get_mut(key).ok_or_else(|| {
        format!(
            "run {} has no step instance {key} (yet): `drover status {}` lists them",
            request.run_id, request.run_id
        )
    })?;
    let step = &wf.steps[record.step_index];
    match command {
        Request::Approve { .. } => {
            let StepKind::Approval { approvers, .. } = &step.kind else {
                return Err(format!("{key} is not an approval step"));
            };
            if !approvers.is_empty() && !approvers.contains(&request.actor) {
                return Err(format!(
                    "only {} may approve {key}; {} may not",
                    approvers.join(" or "),
                    request.actor
                ));
            }
            if record.state != StepState::Waiting {
                return Err(format!("{key} is {}, not waiting for approval", record.state));
            }
            record.state = StepState::Succeeded;
            record.output = Some(json!({ "approved_by": request.actor, "comment": comment }));
            record.summary = Some(format!("approved by {}", request.actor));
            record.reason = None;
            record.finished_at = Some(now);
            applied.changes.push(event(Some(key), Event::Approved { comment }));
        }
        Request::Retry { .. } if record.state == StepState::CompensationFailed => {
            record.state = StepState::Compensating;
            record.reason = Some(format!("compensation retry requested by {}", request.actor));
            applied.changes.push(event(Some(key), Event::RetryRequested { comment }));
        }
        Request::Skip { .. } if record.state == StepState::CompensationFailed => {
            record.state = StepState::Compensated;
            record.summary = Some(format!("compensation skipped by {}: undone by hand", request.actor));
            record.reason = None;
            record.finished_at = Some(now);
            applied.changes.push(event(Some(key), Event::SkippedByOperator { comment, output: Value::Null }));
        }
        Request::Retry { .. } => {
            if !matches!(record.state, StepState::Failed | StepState::NeedsOperator | StepState::Cancelled) {
                return Err(format!(
                    "{key} is {}: only failed, cancelled or needs-operator steps can be retried",
                    record.state
                ));
            }
            if matches!(step.kind, StepKind::Approval { .. }) {
                record.state = StepState::Waiting;
            } else {
                record.state = StepState::Ready;
            }
            record.reason = Some(format!("retry requested by {}", request.actor));
            record.finished_at = None;
            applied.resumes_run = true;
            applied.changes.push(event(Some(key), Event::RetryRequested { comment }));
        }
        Request::Skip { output, .. } => {
            if let StepKind::Approval { approvers, .. } = &step.kind
                && !approvers.is_empty()
                && !approvers.contains(&request.actor)
            {
                return Err(format!(
                    "only {} may skip {key}; {} may not",
                    approvers.join(" or "),
                    request.actor
                ));
            }
            if matches!(
                record.state,
                StepState::Succeeded | StepState::Running | StepState::Compensating | StepState::Compensated
            ) {
                return Err(format!("{key} is {}: it cannot be skipped", record.state));
            }
            if let StepKind::Plugin { info, .. } = &step.kind {
                let validator = jsonschema::validator_for(&info.output_schema).map_err(|e| e.to_string())?;
                let errors: Vec<String> = validator
                    .iter_errors(output)
                    .map(|e| {
                        let at = e.instance_path().to_string();
                        if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
                    })
                    .collect();
                if !errors.is_empty() {
                    return Err(format!(
                        "--output does not match the output schema of plugin {}: {}",
                        info.name,
                        errors.join("; ")
                    ));
                }
            }
            record.state = StepState::Skipped;
            record.output = Some(output.clone());
            record.summary = Some(format!("skipped by {}", request.actor));
            record.reason = Some(format!("skipped by {}", request.actor));
            record.finished_at = Some(now);
            applied.resumes_run = true;
            applied
                .changes
                .push(event(Some(key), Event::SkippedByOperator { comment, output: output.clone() }));
        }
        Request::Cancel { .. } | Request::Compensate { .. } => unreachable!("handled above"),
    }
    applied.changes.push(Change::PutStep(Box::new(record.clone())));
    applied.changed_keys.push(key.to_string());
    Ok(applied)
}

/// What became of an operator command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// No process drove the run: the command was applied at once.
    Applied,
    /// A process drives the run and will apply it on its next poll.
    Queued {
        /// The driving process.
        pid: u32,
    },
    /// It takes a process driving the run (a compensation runs plugins): `drover resume`
    /// applies it.
    ToDrive,
}

/// What delivering an operator command needs: the journal, the clock and the lease time. Every
/// front end (the command line, the web view) builds one; a [`RunContext`] gives its own.
#[derive(Clone)]
pub struct Operators {
    /// The journal.
    pub store: Arc<Store>,
    /// Time, for the request's record and the lease.
    pub clock: Arc<dyn Clock>,
    /// How long the lease taken to apply a command lasts.
    pub lease_ttl: Duration,
}

impl RunContext {
    /// What delivering operator commands for this context needs.
    pub fn operators(&self) -> Operators {
        Operators { store: self.store.clone(), clock: self.clock.clone(), lease_ttl: self.lease_ttl }
    }
}

/// Validates an operator command against the run's state, queues it, and applies it at once if no
/// process drives the run. `actor` is who sends it: the approvers a gate names are checked against
/// it.
pub async fn request(
    ctx: &Operators,
    run_id: RunId,
    command: Request,
    actor: &str,
) -> Result<Delivery, RunError> {
    let run = ctx.store.run(run_id)?;
    let compensate = matches!(command, Request::Compensate { .. });
    if compensate && matches!(run.state, RunState::Compensating | RunState::Compensated) {
        return Err(RunError::Operator(format!("run {run_id} is {}: it is compensated already", run.state)));
    }
    if !compensate && matches!(run.state, RunState::Succeeded | RunState::Cancelled | RunState::Compensated) {
        return Err(RunError::Operator(format!(
            "run {run_id} is {}: there is nothing to {}",
            run.state,
            command.kind()
        )));
    }
    let wf: Workflow =
        super::pinned_workflow(&run.definition).map_err(|e| RunError::Definition { run_id, message: e })?;
    let now = ctx.clock.now_ms();
    let request =
        RequestRecord { seq: 0, run_id, request: Ok(command.clone()), actor: actor.into(), at: now };
    let mut instances: BTreeMap<String, StepRecord> =
        ctx.store.steps(run_id)?.into_iter().map(|r| (r.key.clone(), r)).collect();
    // Passing a gate, by approving or by skipping it, is for the approvers it names.
    if let Request::Approve { step: key, .. } | Request::Skip { step: key, .. } = &command
        && let Some(record) = instances.get(key)
        && let StepKind::Approval { approvers, .. } = &wf.steps[record.step_index].kind
        && !approvers.is_empty()
        && !approvers.iter().any(|a| a == actor)
    {
        return Err(RunError::NotApprover {
            command: command.kind(),
            step: key.clone(),
            actor: actor.into(),
            approvers: approvers.clone(),
        });
    }
    apply(&wf, &mut instances.clone(), &request, now).map_err(RunError::Operator)?;
    ctx.store.apply(vec![Change::Request { run_id, request: command, actor: actor.into(), at: now }]).await?;
    if compensate {
        // Compensating runs plugins: the process that drives the run applies it.
        return Ok(match ctx.store.lease(run_id)? {
            Some(lease) if lease.expires_at > now => Delivery::Queued { pid: lease.pid },
            _ => Delivery::ToDrive,
        });
    }
    let lease = match Lease::acquire_for(ctx.store.clone(), ctx.clock.clone(), run_id, ctx.lease_ttl).await {
        Ok(lease) => lease,
        Err(RunError::LeaseHeld { pid, .. }) => return Ok(Delivery::Queued { pid }),
        Err(e) => return Err(e),
    };
    // Under the lease, the state cannot change under us: apply every queued command.
    let mut changes = Vec::new();
    let mut cancelled = false;
    let mut cancelled_by = None;
    let mut resumes = false;
    for pending in ctx.store.pending_requests(run_id)? {
        if matches!(pending.request, Ok(Request::Compensate { .. })) {
            continue; // the driver's to apply
        }
        match apply(&wf, &mut instances, &pending, now) {
            Ok(applied) => {
                changes.extend(applied.changes);
                if applied.cancel && cancelled_by.is_none() {
                    cancelled_by = Some(pending.actor.clone());
                }
                cancelled |= applied.cancel;
                resumes |= applied.resumes_run;
            }
            Err(reason) => changes.push(rejected(&pending, reason, now)),
        }
        changes.push(Change::RequestApplied { seq: pending.seq, at: now });
    }
    if cancelled {
        let actor = cancelled_by.unwrap_or_else(|| actor.to_string());
        changes.extend(end_interrupted(ctx, run_id, &mut instances, &actor, now)?);
        changes.push(Change::SetRunState { run_id, state: RunState::Cancelled, finished_at: Some(now) });
    } else if resumes && run.state == RunState::Failed {
        changes.push(Change::SetRunState { run_id, state: RunState::Waiting, finished_at: None });
    }
    let result = lease.handle().commit(&ctx.store, changes).await;
    lease.release().await?;
    result?;
    Ok(Delivery::Applied)
}

/// The attempts a dead driver left running, and their instances, ended by a cancel applied while
/// no process drives the run: nothing of a cancelled run shows as running.
fn end_interrupted(
    ctx: &Operators,
    run_id: RunId,
    instances: &mut BTreeMap<String, StepRecord>,
    actor: &str,
    now: i64,
) -> Result<Vec<Change>, RunError> {
    let mut changes = Vec::new();
    for mut attempt in ctx.store.attempts(run_id)?.into_iter().filter(|a| a.state == AttemptState::Running) {
        attempt.state = AttemptState::Cancelled;
        attempt.finished_at = Some(now);
        attempt.error = Some(format!(
            "the process driving the run stopped during this attempt; the run was then cancelled by {actor}"
        ));
        changes.push(Change::event(
            run_id,
            now,
            Some(&attempt.step_key),
            Actor::Operator(actor.into()),
            &Event::AttemptCancelled(AttemptCancelled::Ended { attempt: attempt.number, interrupted: true }),
        ));
        if let Some(record) = instances.get_mut(&attempt.step_key).filter(|r| r.state == StepState::Running) {
            record.state = StepState::Cancelled;
            record.reason = Some(format!(
                "run cancelled by {actor} after its driver stopped during attempt {}",
                attempt.number
            ));
            record.finished_at = Some(now);
            changes.push(Change::PutStep(Box::new(record.clone())));
        }
        changes.push(Change::PutAttempt(attempt));
    }
    Ok(changes)
}

/// The `request-rejected` event of a queued command that no longer fits the run (or that this
/// build cannot read), by the operator who sent it.
pub(crate) fn rejected(request: &RequestRecord, reason: String, now: i64) -> Change {
    let step_key = request.request.as_ref().ok().and_then(Request::step_key);
    Change::event(
        request.run_id,
        now,
        step_key,
        Actor::Operator(request.actor.clone()),
        &Event::RequestRejected { request: request.kind().to_string(), reason },
    )
}
