//! The driver: one process moving one run forward. It keeps the run's step instances in memory,
//! and each turn of its loop commits, in one transaction, the outcomes that arrived, the steps
//! that became ready, and the intents of the attempts it is about to start; only then does it
//! call the plugins.
//!
//! The attempts in flight are futures the driver polls itself (a `FuturesUnordered`), not
//! spawned tasks: a finished attempt is seen in the same poll that finishes it, with no hand-off
//! between threads. Plugins spend their time waiting on their targets, so one task suffices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::grants::{Allow, ExecPattern, Grants, Refusal};
use crate::inventory::Inventory;
use crate::plugin::{
    CallEnv, CallError, CallObserver, CallReport, Canceller, Effect, FailureClass, LoadedPlugin, Mode,
    StepCall, StepContext, TargetCallRecord,
};
use crate::store::{AttemptRecord, AttemptState, Change, RunRecord, RunState, StepRecord, StepState};
use crate::target::{TargetSet, orphans};
use crate::workflow::model::{ForEach, OnFailure, StepKind, Workflow};
use crate::workflow::template;

use super::checkpoints::Checkpoints;
use super::clock::backoff;
use super::lease::{Lease, LeaseHandle};
use super::operator;
use super::{RunContext, RunError, RunOutcome};

/// How often queued operator commands are looked for while the run is being driven.
const POLL: Duration = Duration::from_millis(250);

/// Takes the lease of `run_id` and drives the run until it ends or only an operator can move it.
pub(super) async fn drive(ctx: &RunContext, run_id: &str) -> Result<RunOutcome, RunError> {
    let lease = Lease::acquire_for(ctx.store.clone(), ctx.clock.clone(), run_id, ctx.lease_ttl).await?;
    let run = ctx.store.run(run_id)?;
    let result = match Driver::load(ctx, run, lease.handle()).await {
        // Watched: a turn that never ends (a wedged computation) stops the lease's renewal.
        Ok(driver) => lease.handle().watch(driver.run()).await,
        Err(e) => Err(e),
    };
    let released = lease.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// Something an attempt in flight did that the journal records.
enum Observed {
    TargetCall { key: String, attempt: u32, record: TargetCallRecord },
    Refusal { key: String, attempt: u32, refusal: Refusal },
    Heartbeat { key: String, progress: Option<f32>, message: String },
}

/// Passes what an attempt does to the driver, which journals it in its next commit.
struct JournalObserver {
    key: String,
    attempt: u32,
    tx: std::sync::mpsc::Sender<Observed>,
}

impl CallObserver for JournalObserver {
    fn target_call(&self, record: &TargetCallRecord) {
        let (key, attempt) = (self.key.clone(), self.attempt);
        let _ = self.tx.send(Observed::TargetCall { key, attempt, record: record.clone() });
    }

    fn refusal(&self, refusal: &Refusal) {
        let (key, attempt) = (self.key.clone(), self.attempt);
        let _ = self.tx.send(Observed::Refusal { key, attempt, refusal: refusal.clone() });
    }

    fn heartbeat(&self, progress: Option<f32>, message: &str) {
        let key = self.key.clone();
        let _ = self.tx.send(Observed::Heartbeat { key, progress, message: message.to_string() });
    }
}

/// An attempt that finished.
struct Done {
    key: String,
    number: u32,
    report: CallReport,
}

/// An attempt about to start.
struct Start {
    key: String,
    number: u32,
    call: StepCall,
    plugin: Arc<LoadedPlugin>,
}

struct Driver<'c> {
    ctx: &'c RunContext,
    run_id: String,
    run_state: RunState,
    wf: Workflow,
    params: Value,
    inventory: Inventory,
    inventory_json: Value,
    targets: TargetSet,
    plugins: Vec<Option<Arc<LoadedPlugin>>>,
    /// Position of each step in the topological order.
    order_pos: Vec<usize>,
    instances: BTreeMap<String, StepRecord>,
    keys_by_step: Vec<Vec<String>>,
    expanded: Vec<bool>,
    /// Ready instances by (topological position, key).
    ready: BTreeSet<(usize, String)>,
    /// Retry timers: (due time, key) of instances waiting on one.
    timers: BTreeSet<(i64, String)>,
    /// Per step: instances not finished yet, and one failed or cancelled instance if any.
    open_by_step: Vec<usize>,
    failed_by_step: Vec<BTreeSet<String>>,
    /// Per step: whether its `with` holds templates (else it is the input as it stands).
    templated: Vec<bool>,
    running_by_step: Vec<u32>,
    running_by_target: HashMap<String, u32>,
    running: usize,
    /// A step failed with `on-failure = stop`: start nothing new.
    stopping: bool,
    cancelled: bool,
    /// Who cancelled the run, and their comment: the attempts the cancel stops are theirs.
    cancelled_by: Option<(String, Value)>,
    /// Stops the attempts in flight when the run is cancelled.
    canceller: Canceller,
    changes: Vec<Change>,
    /// The attempts in flight.
    in_flight: FuturesUnordered<BoxFuture<'static, Done>>,
    /// The lease every commit is fenced by.
    lease: LeaseHandle,
    /// True once the lease is lost: stop at once, dropping the attempts in flight.
    lease_lost: tokio::sync::watch::Receiver<bool>,
    /// Target calls and refusals of attempts in flight, as they happen, for the journal.
    observed_tx: std::sync::mpsc::Sender<Observed>,
    observed_rx: std::sync::mpsc::Receiver<Observed>,
    /// The last heartbeat of each running instance, for the live display.
    heartbeats: HashMap<String, (Option<f32>, String)>,
    /// When the live display last got a snapshot.
    last_snapshot: Option<std::time::Instant>,
    last_poll: i64,
}

impl<'c> Driver<'c> {
    async fn load(ctx: &'c RunContext, run: RunRecord, lease: LeaseHandle) -> Result<Driver<'c>, RunError> {
        let definition_error = |message: String| RunError::Definition { run_id: run.id.clone(), message };
        // Read from the pinned values, not from copies of them: a long workflow's definition is large.
        let wf = super::pinned_workflow(&run.definition)
            .map_err(|e| definition_error(format!("the pinned workflow cannot be read: {e}")))?;
        let inventory = Inventory::deserialize(&run.inventory)
            .map_err(|e| definition_error(format!("the pinned inventory cannot be read: {e}")))?;
        // Steps often share a plugin: load each pinned (version, digest) once.
        let mut loaded: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
        let mut plugins = Vec::with_capacity(wf.steps.len());
        for step in &wf.steps {
            plugins.push(match step.plugin() {
                None => None,
                Some((reference, _)) => {
                    let pinned = run.plugins[&step.id].to_string();
                    if let Some(plugin) = loaded.get(&pinned) {
                        Some(plugin.clone())
                    } else {
                        let plugin = load_pinned(ctx, &run, &step.id, &reference.name).await?;
                        loaded.insert(pinned, plugin.clone());
                        Some(plugin)
                    }
                }
            });
        }
        let mut order_pos = vec![0; wf.steps.len()];
        for (pos, &idx) in wf.order.iter().enumerate() {
            order_pos[idx] = pos;
        }
        let templated = wf.steps.iter().map(|s| has_templates(&s.with)).collect();
        let (observed_tx, observed_rx) = std::sync::mpsc::channel();
        let step_count = wf.steps.len();
        let mut driver = Driver {
            ctx,
            run_id: run.id.clone(),
            run_state: run.state,
            targets: inventory.targets(),
            inventory_json: run.inventory.clone(),
            params: run.params.clone(),
            keys_by_step: vec![Vec::new(); wf.steps.len()],
            expanded: vec![false; wf.steps.len()],
            running_by_step: vec![0; wf.steps.len()],
            plugins,
            order_pos,
            wf,
            inventory,
            instances: BTreeMap::new(),
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            open_by_step: vec![0; step_count],
            failed_by_step: vec![BTreeSet::new(); step_count],
            templated,
            running_by_target: HashMap::new(),
            running: 0,
            stopping: false,
            cancelled: run.state == RunState::Cancelled,
            cancelled_by: None,
            canceller: Canceller::default(),
            changes: Vec::new(),
            in_flight: FuturesUnordered::new(),
            lease_lost: lease.lost(),
            lease,
            observed_tx,
            observed_rx,
            heartbeats: HashMap::new(),
            last_snapshot: None,
            last_poll: 0,
        };
        for record in ctx.store.steps(&run.id)? {
            driver.index(record);
        }
        Ok(driver)
    }

    /// Adds or replaces an instance in memory, keeping the indexes right.
    fn index(&mut self, record: StepRecord) {
        let idx = record.step_index;
        self.expanded[idx] = true;
        let pos = self.order_pos[idx];
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
            StepState::Waiting => {
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
        self.instances.insert(record.key.clone(), record);
    }

    /// Records a new state of an instance: in memory, and as a change for the next commit.
    fn put(&mut self, record: StepRecord) {
        self.changes.push(Change::PutStep(Box::new(record.clone())));
        self.index(record);
    }

    fn event(&mut self, step_key: Option<&str>, kind: &str, data: Value) {
        self.changes.push(Change::Event {
            run_id: self.run_id.clone(),
            at: self.ctx.clock.now_ms(),
            step_key: step_key.map(str::to_string),
            kind: kind.into(),
            actor: "engine".into(),
            data: data.to_string(),
        });
    }

    async fn flush(&mut self) -> Result<(), RunError> {
        if !self.changes.is_empty() {
            let changes = coalesce(std::mem::take(&mut self.changes));
            self.lease.commit(&self.ctx.store, changes).await?;
        }
        Ok(())
    }

    fn progress(&self, text: &str) {
        self.ctx.progress.line(&self.run_id, text);
    }

    /// Hands the live display where every step stands, at most every `SNAPSHOT_EVERY` unless
    /// `now` (the run is over).
    fn snapshot(&mut self, now: bool) {
        if !self.ctx.progress.wants_snapshots()
            || (!now && self.last_snapshot.is_some_and(|t| t.elapsed() < super::SNAPSHOT_EVERY))
        {
            return;
        }
        self.last_snapshot = Some(std::time::Instant::now());
        let mut steps = Vec::new();
        for &idx in &self.wf.order {
            let keys = &self.keys_by_step[idx];
            if keys.is_empty() {
                continue;
            }
            let mut p = super::StepProgress {
                id: self.wf.steps[idx].id.clone(),
                total: keys.len(),
                done: 0,
                failed: 0,
                waiting_for_slot: 0,
                waiting: 0,
                running: Vec::new(),
            };
            for record in keys.iter().filter_map(|k| self.instances.get(k)) {
                match record.state {
                    StepState::Failed | StepState::Cancelled => {
                        p.done += 1;
                        p.failed += 1;
                    }
                    s if s.is_terminal() => p.done += 1,
                    StepState::Ready => p.waiting_for_slot += 1,
                    StepState::Waiting | StepState::NeedsOperator => p.waiting += 1,
                    StepState::Running => p.running.push(super::RunningInstance {
                        key: record.key.clone(),
                        started_at: record.started_at.unwrap_or_default(),
                        heartbeat: self.heartbeats.get(&record.key).cloned(),
                    }),
                    _ => {}
                }
            }
            steps.push(p);
        }
        self.ctx.progress.snapshot(&self.run_id, &steps);
    }

    async fn run(mut self) -> Result<RunOutcome, RunError> {
        match self.run_state {
            RunState::Succeeded => return Ok(RunOutcome::Succeeded),
            RunState::Cancelled => return Ok(RunOutcome::Cancelled),
            _ => {}
        }
        self.set_run_state(RunState::Running, None);
        self.event(None, "driving", json!({ "pid": std::process::id() }));
        self.apply_requests()?;
        self.recover_interrupted().await?;
        loop {
            if *self.lease_lost.borrow() {
                return Err(RunError::LeaseLost { run_id: self.run_id.clone() });
            }
            self.journal_observed();
            let now = self.ctx.clock.now_ms();
            if now - self.last_poll >= POLL.as_millis() as i64 {
                self.apply_requests()?;
            }
            self.fire_timers(now);
            self.expand();
            let starts = self.pick_starts();
            self.flush().await?;
            // The intents just committed under the lease; a process stopped since (SIGSTOP) for
            // longer than the lease lives must not act on a target before its next commit fails.
            if !starts.is_empty() && !self.lease.valid() {
                return Err(RunError::LeaseLost { run_id: self.run_id.clone() });
            }
            for start in starts {
                self.launch(start);
            }
            if self.running == 0
                && let Some(outcome) = self.settle()
            {
                self.flush().await?;
                self.snapshot(true);
                return Ok(outcome);
            }
            self.snapshot(false);
            let wait = self.next_timer().map_or(POLL, |at| {
                Duration::from_millis((at - now).clamp(1, POLL.as_millis() as i64) as u64)
            });
            tokio::select! {
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    // What the attempts did goes into the journal before how they ended.
                    self.journal_observed();
                    self.complete(done);
                    // Others that finished meanwhile join the same commit.
                    while let Some(Some(done)) = futures_util::FutureExt::now_or_never(self.in_flight.next()) {
                        self.complete(done);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = self.lease_lost.changed() => {}
            }
        }
    }

    fn set_run_state(&mut self, state: RunState, finished_at: Option<i64>) {
        if self.run_state != state || finished_at.is_some() {
            self.run_state = state;
            self.changes.push(Change::SetRunState { run_id: self.run_id.clone(), state, finished_at });
        }
    }

    /// Applies queued operator commands (approve, retry, skip, cancel).
    fn apply_requests(&mut self) -> Result<(), RunError> {
        self.last_poll = self.ctx.clock.now_ms();
        let requests = self.ctx.store.pending_requests(&self.run_id)?;
        for request in requests {
            let now = self.ctx.clock.now_ms();
            let applied = operator::apply(&self.wf, &mut self.instances, &request, now);
            match applied {
                Ok(effect) => {
                    for key in &effect.changed_keys {
                        if let Some(record) = self.instances.get(key).cloned() {
                            self.index(record);
                        }
                    }
                    self.changes.extend(effect.changes);
                    if effect.cancel {
                        self.cancelled = true;
                        self.stop_in_flight(&request);
                    }
                    if effect.resumes_run {
                        self.stopping = false;
                    }
                }
                Err(message) => {
                    self.changes.push(Change::Event {
                        run_id: self.run_id.clone(),
                        at: now,
                        step_key: request.step_key.clone(),
                        kind: "request-rejected".into(),
                        actor: request.actor.clone(),
                        data: json!({ "request": request.kind, "reason": message }).to_string(),
                    });
                }
            }
            self.changes.push(Change::RequestApplied { seq: request.seq, at: now });
        }
        Ok(())
    }

    /// Stops the attempts in flight for a cancel: each ends at once as cancelled by its operator.
    fn stop_in_flight(&mut self, request: &crate::store::RequestRecord) {
        if self.cancelled_by.is_none() {
            let comment = request.data.get("comment").cloned().unwrap_or(Value::Null);
            self.cancelled_by = Some((request.actor.clone(), comment));
        }
        self.canceller.cancel();
        if self.running > 0 {
            self.progress(&format!(
                "cancelled by {}: stopping {} running attempt(s)",
                request.actor, self.running
            ));
        }
    }

    /// Settles attempts that were running when the previous driver died.
    async fn recover_interrupted(&mut self) -> Result<(), RunError> {
        let interrupted: Vec<AttemptRecord> = self
            .ctx
            .store
            .attempts(&self.run_id)?
            .into_iter()
            .filter(|a| a.state == AttemptState::Running)
            .collect();
        for mut attempt in interrupted {
            let now = self.ctx.clock.now_ms();
            let Some(mut record) = self.instances.get(&attempt.step_key).cloned() else { continue };
            attempt.state = AttemptState::Interrupted;
            attempt.finished_at = Some(now);
            attempt.error = Some("the process driving the run stopped during this attempt".into());
            self.changes.push(Change::PutAttempt(attempt.clone()));
            let key = attempt.step_key.clone();
            self.event(Some(&key), "attempt-interrupted", json!({ "attempt": attempt.number }));
            let Some(plugin) = self.plugins[record.step_index].clone() else { continue };
            match plugin.info.effect {
                Effect::ReadOnly | Effect::Idempotent => {
                    record.state = StepState::Ready;
                    record.reason = Some(format!(
                        "attempt {} was interrupted; running it again ({})",
                        attempt.number, plugin.info.effect
                    ));
                    self.put(record);
                }
                Effect::Irreversible => {
                    record.state = StepState::NeedsOperator;
                    record.reason = Some(format!(
                        "attempt {} of this irreversible step was interrupted at {}; it may or may not have taken effect. \
                         Check the target, then `drover retry {} {key}` to run it again, or `drover skip {} {key} --output <json>` to mark it done",
                        attempt.number, attempt.started_at, self.run_id, self.run_id
                    ));
                    self.event(Some(&key), "needs-operator", json!({ "reason": record.reason }));
                    self.progress(&format!("{key}: needs an operator (interrupted irreversible step)"));
                    self.put(record);
                }
                Effect::Reversible => self.recover_by_check(record, plugin, attempt.number).await?,
            }
        }
        self.flush().await
    }

    /// A reversible step's `check` decides whether its interrupted attempt took effect.
    async fn recover_by_check(
        &mut self,
        mut record: StepRecord,
        plugin: Arc<LoadedPlugin>,
        interrupted: u32,
    ) -> Result<(), RunError> {
        let key = record.key.clone();
        let input = match self.render_input(&record) {
            Ok(input) => input,
            Err(message) => {
                record.state = StepState::NeedsOperator;
                record.reason = Some(format!(
                    "attempt {interrupted} was interrupted and its input cannot be rendered again: {message}"
                ));
                self.put(record);
                return Ok(());
            }
        };
        record.attempts += 1;
        let number = record.attempts;
        let started = self.ctx.clock.now_ms();
        self.changes.push(Change::PutAttempt(AttemptRecord {
            run_id: self.run_id.clone(),
            step_key: key.clone(),
            number,
            mode: "check".into(),
            state: AttemptState::Running,
            started_at: started,
            finished_at: None,
            error: None,
            error_class: None,
        }));
        self.put(record.clone());
        // The takeover and the check's intent are on record before any wait: a process killed
        // while waiting leaves the check to be recovered, and a stopped previous driver whose
        // children wait on it is woken by an operator who sees that this process drives now.
        self.flush().await?;
        // What the interrupted attempt left running (a bridge's child) could still make the
        // change after the check looked: wait for it, up to the step's timeout, then kill it.
        let limit = self.wf.steps[record.step_index].timeout.unwrap_or(self.ctx.host.limits().timeout);
        let marker = orphans::marker(&self.run_id, &key, interrupted);
        let leftovers = orphans::settle(&marker, limit).await;
        if leftovers.found > 0 {
            let data = json!({
                "attempt": interrupted,
                "processes": leftovers.found,
                "killed": leftovers.killed,
                "waited_ms": u64::try_from(leftovers.waited.as_millis()).unwrap_or(u64::MAX),
            });
            self.event(Some(&key), "leftover-processes", data);
            self.progress(&format!(
                "{key}: waited {:.1}s for {} leftover processes of attempt {interrupted}{}",
                leftovers.waited.as_secs_f64(),
                leftovers.found,
                match leftovers.killed {
                    0 => String::new(),
                    n => format!(", killed {n} still running at the step's timeout"),
                }
            ));
        }
        if !self.lease.valid() {
            return Err(RunError::LeaseLost { run_id: self.run_id.clone() });
        }
        let call = self.step_call(&record, number, input, Mode::Check);
        let report = self.ctx.host.call(&plugin, call, self.call_env(&key)).await;
        let now = self.ctx.clock.now_ms();
        let (state, error) = match &report.result {
            Ok(outcome) if !outcome.changed => {
                record.state = StepState::Succeeded;
                record.output = Some(outcome.output.clone());
                record.changed = Some(false);
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
            run_id: self.run_id.clone(),
            step_key: key.clone(),
            number,
            mode: "check".into(),
            state,
            started_at: started,
            finished_at: Some(now),
            error,
            error_class: None,
        }));
        self.event(
            Some(&key),
            "recovered-by-check",
            json!({ "interrupted": interrupted, "state": record.state }),
        );
        self.put(record);
        Ok(())
    }

    fn fire_timers(&mut self, now: i64) {
        let due: Vec<StepRecord> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| self.instances[key].clone())
            .collect();
        for mut record in due {
            record.state = StepState::Ready;
            record.retry_at = None;
            let key = record.key.clone();
            self.put(record);
            self.event(Some(&key), "retry-due", json!({}));
        }
    }

    fn next_timer(&self) -> Option<i64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The template scope for an instance: params, upstream outputs, item, target.
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
            run_id: self.run_id.clone(),
        }
    }

    /// Whether a step with `on-failure = stop` has a failed or cancelled instance: then nothing
    /// new is expanded (an operator's retry of that instance may still run), whichever process
    /// drives the run.
    fn halted(&self) -> bool {
        self.wf
            .steps
            .iter()
            .zip(&self.failed_by_step)
            .any(|(s, f)| s.on_failure == OnFailure::Stop && !f.is_empty())
    }

    /// The failed instance a step must not run after: one of a need's, or, for a need whose
    /// instances were all skipped because of a failure upstream, the one upstream of it.
    fn failed_upstream(&self, idx: usize) -> Option<String> {
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

    /// Expands every step whose needs have all finished into its instances.
    fn expand(&mut self) {
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
            // Not the whole step: its `upstream` set and its plugin's schemas make a clone cost
            // in proportion to the workflow, on every expansion.
            let step = &self.wf.steps[idx];
            let (id, when) = (step.id.clone(), step.when.clone());
            let approval = match &step.kind {
                StepKind::Approval { prompt, .. } => Some(prompt.clone()),
                StepKind::Plugin { .. } => None,
            };
            if let Some(failed) = failed_need {
                let record = self.new_instance(
                    idx,
                    id.clone(),
                    None,
                    None,
                    StepState::Skipped,
                    Some(format!("needs {failed}, which failed")),
                );
                self.event(Some(&id), "step-skipped", json!({ "reason": record.reason }));
                self.put(record);
                continue;
            }
            let items: Result<Vec<Option<Value>>, String> = match &self.wf.steps[idx].for_each {
                None => Ok(vec![None]),
                Some(ForEach::Group(group)) => {
                    Ok(self.inventory.expand(group).into_iter().map(|s| Some(Value::String(s))).collect())
                }
                Some(ForEach::List(list)) => {
                    let scope = self.scope(None, None);
                    list.iter()
                        .map(|v| template::render(v, &scope).map(Some).map_err(|e| format!("for-each: {e}")))
                        .collect()
                }
            };
            // Items that give one key would collapse into one instance: the step fails instead.
            let items = items.and_then(|items| match crate::workflow::model::duplicate_instance_key(&id, &items) {
                Some((first, second, key)) => Err(format!(
                    "for-each: items {first} and {second} both give the instance key `{key}`: each item must give its own key"
                )),
                None => Ok(items),
            });
            let items = match items {
                Ok(items) => items,
                Err(message) => {
                    let record =
                        self.new_instance(idx, id.clone(), None, None, StepState::Failed, Some(message));
                    self.event(Some(&id), "step-failed", json!({ "reason": record.reason }));
                    self.put(record);
                    self.fail_policy(idx);
                    continue;
                }
            };
            for (n, item) in items.into_iter().enumerate() {
                let (key, target) = instance_key(&id, item.as_ref(), n, &self.inventory);
                let when_ok = match &when {
                    None => Ok(true),
                    Some(expr) => template::eval_when(expr, &self.scope(item.as_ref(), target.as_deref()))
                        .map_err(|e| format!("when `{expr}`: {e}")),
                };
                let (state, reason, kind) = match (when_ok, &approval) {
                    (Err(message), _) => (StepState::Failed, Some(message), "step-failed"),
                    (Ok(false), _) => (
                        StepState::Skipped,
                        Some(format!("when `{}` is false", when.as_deref().unwrap_or(""))),
                        "step-skipped",
                    ),
                    (Ok(true), Some(prompt)) => {
                        (StepState::Waiting, Some(format!("approval: {prompt}")), "waiting-for-approval")
                    }
                    (Ok(true), None) => (StepState::Ready, None, "step-ready"),
                };
                let record = self.new_instance(idx, key.clone(), item, target, state, reason.clone());
                self.put(record);
                self.event(Some(&key), kind, json!({ "reason": reason }));
                if state == StepState::Failed {
                    self.fail_policy(idx);
                }
            }
        }
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
            run_id: self.run_id.clone(),
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
            finished_at: if state.is_terminal() { Some(self.ctx.clock.now_ms()) } else { None },
        }
    }

    fn fail_policy(&mut self, idx: usize) {
        if self.wf.steps[idx].on_failure == OnFailure::Stop {
            self.stopping = true;
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

    /// Chooses ready instances to start within the limits, and records their intents.
    fn pick_starts(&mut self) -> Vec<Start> {
        let mut starts = Vec::new();
        if self.stopping || self.cancelled {
            return starts;
        }
        let limit = self.wf.limits.concurrency as usize;
        if self.running >= limit {
            return starts;
        }
        // Only as many candidates as could start; per-step and per-target limits may skip some,
        // so look a bounded way past that.
        let room = limit - self.running;
        let candidates: Vec<(usize, String)> = self.ready.iter().take(room * 8 + 64).cloned().collect();
        for (pos, key) in candidates {
            if self.running >= limit {
                break;
            }
            let mut record = self.instances[&key].clone();
            let idx = record.step_index;
            let step = &self.wf.steps[idx];
            if step.concurrency.step.is_some_and(|n| self.running_by_step[idx] >= n) {
                continue;
            }
            if let (Some(n), Some(target)) = (step.concurrency.per_target, &record.target)
                && self.running_by_target.get(target).copied().unwrap_or(0) >= n
            {
                continue;
            }
            let Some(plugin) = self.plugins[idx].clone() else { continue };
            self.ready.remove(&(pos, key.clone()));
            let input = match self.render_input(&record) {
                Ok(input) => input,
                Err(message) => {
                    record.state = StepState::Failed;
                    record.reason = Some(message.clone());
                    record.finished_at = Some(self.ctx.clock.now_ms());
                    self.event(Some(&key), "step-failed", json!({ "reason": message }));
                    self.put(record);
                    self.fail_policy(idx);
                    continue;
                }
            };
            let now = self.ctx.clock.now_ms();
            record.attempts += 1;
            record.state = StepState::Running;
            record.reason = None;
            record.started_at.get_or_insert(now);
            let number = record.attempts;
            self.changes.push(Change::PutAttempt(AttemptRecord {
                run_id: self.run_id.clone(),
                step_key: key.clone(),
                number,
                mode: "apply".into(),
                state: AttemptState::Running,
                started_at: now,
                finished_at: None,
                error: None,
                error_class: None,
            }));
            self.event(Some(&key), "attempt-started", json!({ "attempt": number }));
            let call = self.step_call(&record, number, input, Mode::Apply);
            self.running += 1;
            self.running_by_step[idx] += 1;
            if let Some(target) = &record.target {
                *self.running_by_target.entry(target.clone()).or_default() += 1;
            }
            self.put(record);
            starts.push(Start { key, number, call, plugin });
        }
        starts
    }

    fn step_call(&self, record: &StepRecord, number: u32, input: Value, mode: Mode) -> StepCall {
        let step = &self.wf.steps[record.step_index];
        StepCall {
            mode,
            context: StepContext {
                run_id: self.run_id.clone(),
                step_key: record.key.clone(),
                attempt: number,
                idempotency_key: format!("{}/{}", self.run_id, record.key),
                target: record.target.clone(),
            },
            input,
            grants: grants_of(step, &self.inventory, record.target.as_deref()),
            timeout: step.timeout,
        }
    }

    fn call_env(&self, key: &str) -> CallEnv {
        CallEnv {
            targets: self.targets.clone(),
            secrets: self.ctx.secrets.clone(),
            state: Arc::new(Checkpoints {
                store: self.ctx.store.clone(),
                lease: self.lease.clone(),
                run_id: self.run_id.clone(),
                step_key: key.into(),
            }),
            observer: Arc::new(JournalObserver {
                key: key.into(),
                attempt: self.instances.get(key).map_or(0, |r| r.attempts),
                tx: self.observed_tx.clone(),
            }),
        }
    }

    /// Records the target calls and refusals reported since the last turn, one event each.
    fn journal_observed(&mut self) {
        while let Ok(observed) = self.observed_rx.try_recv() {
            match observed {
                Observed::TargetCall { key, attempt, record } => {
                    let data = merge(json!({ "attempt": attempt }), json!(record));
                    self.event(Some(&key), "target-call", data);
                }
                Observed::Heartbeat { key, progress, message } => {
                    self.heartbeats.insert(key, (progress, message));
                }
                Observed::Refusal { key, attempt, refusal } => {
                    let data =
                        merge(json!({ "attempt": attempt, "message": refusal.to_string() }), json!(refusal));
                    self.event(Some(&key), "refused", data);
                }
            }
        }
    }

    fn launch(&mut self, start: Start) {
        let env = self.call_env(&start.key);
        let host = self.ctx.host.clone();
        let cancel = self.canceller.token();
        self.progress(&format!("{}: started (attempt {})", start.key, start.number));
        self.in_flight.push(Box::pin(async move {
            let report = host.call_cancellable(&start.plugin, start.call, env, cancel).await;
            Done { key: start.key, number: start.number, report }
        }));
    }

    /// Records a finished attempt and what it means for its step.
    fn complete(&mut self, done: Done) {
        let now = self.ctx.clock.now_ms();
        let mut record = self.instances[&done.key].clone();
        let idx = record.step_index;
        self.heartbeats.remove(&done.key);
        self.running -= 1;
        self.running_by_step[idx] -= 1;
        if let Some(target) = &record.target
            && let Some(n) = self.running_by_target.get_mut(target)
        {
            *n -= 1;
        }
        // Only the retry policy is needed: the step itself may hold a long `for-each` list.
        let retry = self.wf.steps[idx].retry;
        let report = done.report;
        let audit = json!({
            "attempt": done.number,
            "duration_ms": report.duration.as_millis() as u64,
            "logs": report.logs,
            "target_calls": report.target_calls.len(),
            "refusals": report.refusals.len(),
        });
        let (attempt_state, error, class) = match &report.result {
            Ok(_) => (AttemptState::Succeeded, None, None),
            Err(e @ CallError::Cancelled { .. }) => (AttemptState::Cancelled, Some(e.to_string()), None),
            Err(e) => (AttemptState::Failed, Some(e.to_string()), Some(e.class())),
        };
        self.changes.push(Change::PutAttempt(AttemptRecord {
            run_id: self.run_id.clone(),
            step_key: done.key.clone(),
            number: done.number,
            mode: "apply".into(),
            state: attempt_state,
            started_at: record.started_at.unwrap_or(now),
            finished_at: Some(now),
            error: error.clone(),
            error_class: class.map(|c| {
                serde_json::to_value(c).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
            }),
        }));
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
                self.progress(&format!("{}: succeeded, {verdict}: {}", done.key, outcome.summary));
                self.event(
                    Some(&done.key),
                    "attempt-succeeded",
                    merge(audit, json!({ "changed": outcome.changed, "summary": outcome.summary })),
                );
            }
            Err(e) => {
                let message = e.to_string();
                match e.class() {
                    // The run was cancelled: a stopped attempt, or one that failed meanwhile, ends
                    // its step; the operator's cancel is what the journal says ended it.
                    _ if self.cancelled => {
                        let (actor, comment) =
                            self.cancelled_by.clone().unwrap_or_else(|| ("engine".into(), Value::Null));
                        record.state = StepState::Cancelled;
                        record.reason =
                            Some(format!("run cancelled by {actor} during attempt {}", done.number));
                        record.finished_at = Some(now);
                        self.progress(&format!(
                            "{}: cancelled by {actor} (attempt {} stopped)",
                            done.key, done.number
                        ));
                        self.changes.push(Change::Event {
                            run_id: self.run_id.clone(),
                            at: now,
                            step_key: Some(done.key.clone()),
                            kind: "attempt-cancelled".into(),
                            actor,
                            data: merge(audit, json!({ "error": message, "comment": comment })).to_string(),
                        });
                    }
                    FailureClass::Retryable if record.attempts < retry.attempts => {
                        let delay = backoff(&retry, record.attempts + 1, self.ctx.clock.jitter(retry.jitter));
                        record.state = StepState::Waiting;
                        record.retry_at = Some(super::clock::after(now, delay));
                        record.reason = Some(format!(
                            "retry {} of {} in {:.1}s after: {message}",
                            record.attempts + 1,
                            retry.attempts,
                            delay.as_secs_f64()
                        ));
                        self.progress(&format!(
                            "{}: {}",
                            done.key,
                            record.reason.as_deref().unwrap_or_default()
                        ));
                        self.event(
                            Some(&done.key),
                            "retry-scheduled",
                            merge(audit, json!({ "error": message, "retry_at": record.retry_at })),
                        );
                    }
                    FailureClass::NeedsOperator => {
                        record.state = StepState::NeedsOperator;
                        record.reason = Some(message.clone());
                        self.progress(&format!("{}: needs an operator: {message}", done.key));
                        self.event(
                            Some(&done.key),
                            "needs-operator",
                            merge(audit, json!({ "error": message })),
                        );
                    }
                    _ => {
                        record.state = StepState::Failed;
                        record.reason = Some(message.clone());
                        record.finished_at = Some(now);
                        self.progress(&format!("{}: failed: {message}", done.key));
                        self.event(
                            Some(&done.key),
                            "attempt-failed",
                            merge(audit, json!({ "error": message })),
                        );
                        self.fail_policy(idx);
                    }
                }
            }
        }
        self.put(record);
    }

    /// With nothing running: decides whether the run has ended or waits for an operator.
    fn settle(&mut self) -> Option<RunOutcome> {
        let now = self.ctx.clock.now_ms();
        if self.cancelled {
            self.set_run_state(RunState::Cancelled, Some(now));
            self.event(None, "run-cancelled", json!({}));
            return Some(RunOutcome::Cancelled);
        }
        if self.next_timer().is_some() && !self.stopping {
            return None;
        }
        if !self.ready.is_empty() && !self.stopping {
            return None;
        }
        let failures: Vec<(String, String)> = self
            .instances
            .values()
            .filter(|r| r.state == StepState::Failed)
            .map(|r| (r.key.clone(), r.reason.clone().unwrap_or_default()))
            .collect();
        let all_done =
            self.expanded.iter().all(|&e| e) && self.instances.values().all(|r| r.state.is_terminal());
        if all_done || self.stopping || self.halted() {
            if failures.is_empty() && all_done {
                self.set_run_state(RunState::Succeeded, Some(now));
                self.event(None, "run-succeeded", json!({}));
                return Some(RunOutcome::Succeeded);
            }
            if !failures.is_empty() {
                self.set_run_state(RunState::Failed, Some(now));
                self.event(None, "run-failed", json!({ "failures": failures }));
                return Some(RunOutcome::Failed { failures });
            }
        }
        let waiting: Vec<(String, String)> = self
            .instances
            .values()
            .filter(|r| matches!(r.state, StepState::Waiting | StepState::NeedsOperator))
            .map(|r| (r.key.clone(), r.reason.clone().unwrap_or_default()))
            .collect();
        if self.ctx.wait_for_operator && !waiting.is_empty() {
            self.set_run_state(RunState::Waiting, None);
            return None;
        }
        self.set_run_state(RunState::Waiting, None);
        self.event(None, "run-waiting", json!({ "waiting": waiting }));
        Some(RunOutcome::Waiting { waiting })
    }
}

/// Finds and loads the exact plugin bytes the run pinned for a step.
async fn load_pinned(
    ctx: &RunContext,
    run: &RunRecord,
    step_id: &str,
    name: &str,
) -> Result<Arc<LoadedPlugin>, RunError> {
    let pinned = &run.plugins[step_id];
    let (version, sha256) =
        (pinned["version"].as_str().unwrap_or_default(), pinned["sha256"].as_str().unwrap_or_default());
    let installed = ctx
        .registry
        .versions(name)?
        .into_iter()
        .find(|i| i.info.version.to_string() == version && i.sha256.to_string() == sha256)
        .ok_or_else(|| {
            RunError::Plugin(format!(
                "run {} pinned plugin {name} {version} (sha256 {sha256}) for step {step_id}, and it is not installed any more: install that exact file again",
                run.id
            ))
        })?;
    Ok(ctx.registry.load(&ctx.host, &installed).await?)
}

/// The key of a step's `n`th instance for `item` (`id`, `id[DRBTS01]`, `id[3]`), and its target:
/// the item when it names a server of the inventory.
pub(super) fn instance_key(
    id: &str,
    item: Option<&Value>,
    n: usize,
    inventory: &Inventory,
) -> (String, Option<String>) {
    let key = crate::workflow::model::instance_key(id, item, n);
    let target = match item {
        Some(Value::String(s)) if inventory.servers.contains_key(s) => Some(s.clone()),
        _ => None,
    };
    (key, target)
}

/// What the workflow grants one instance of `step`: its targets (groups expanded, and always
/// the instance's own target), programs, secrets and read-only program runs.
pub(super) fn grants_of(
    step: &crate::workflow::model::Step,
    inventory: &Inventory,
    target: Option<&str>,
) -> Grants {
    let mut targets: Vec<String> = step
        .grants
        .targets
        .iter()
        .flat_map(|t| if t == "*" { vec![t.clone()] } else { inventory.expand(t) })
        .collect();
    targets.extend(target.map(str::to_string));
    Grants {
        targets: Allow::of(targets),
        programs: Allow::of(step.grants.programs.iter().cloned()),
        secrets: Allow::of(step.grants.secrets.iter().cloned()),
        read_only: step.grants.read_only.iter().filter_map(|p| ExecPattern::parse(p).ok()).collect(),
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

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}
