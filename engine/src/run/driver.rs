//! The driver: one process moving one run forward. The rules live in the run machine
//! ([`super::machine`]); the driver does the I/O around it. Each turn of its loop applies queued
//! operator commands, fires due timers, expands steps, and takes the attempts to start; it then
//! commits, in one transaction under the lease, everything the machine recorded (outcomes that
//! arrived, instances that became ready, intents), and only then calls the plugins.
//!
//! The attempts in flight are futures the driver polls itself (a `FuturesUnordered`), not
//! spawned tasks: a finished attempt is seen in the same poll that finishes it, with no hand-off
//! between threads. Plugins spend their time waiting on their targets, so one task suffices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;

use crate::grants::Refusal;
use crate::journal::{Event, RunId};
use crate::plugin::{
    CallEnv, CallObserver, CallReport, Canceller, LoadedPlugin, Sha256Digest, TargetCallRecord,
};
use crate::store::RunRecord;
use crate::target::{TargetSet, orphans};

use super::checkpoints::Checkpoints;
use super::lease::{Lease, LeaseHandle};
use super::machine::{Check, Launch, Machine};
use super::{RunContext, RunError, RunOutcome};

/// How often queued operator commands are looked for while the run is being driven.
const POLL: Duration = Duration::from_millis(250);

/// Takes the lease of `run_id` and drives the run until it ends or only an operator can move it.
pub(super) async fn drive(ctx: &RunContext, run_id: RunId) -> Result<RunOutcome, RunError> {
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

struct Driver<'c> {
    ctx: &'c RunContext,
    machine: Machine,
    targets: TargetSet,
    /// The pinned plugin of each plugin step, by step index.
    plugins: Vec<Option<Arc<LoadedPlugin>>>,
    /// Stops the attempts in flight when the run is cancelled.
    canceller: Canceller,
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
        let records = ctx.store.steps(run.id)?;
        let machine = Machine::for_run(&run, records, ctx.clock.clone())
            .map_err(|message| RunError::Definition { run_id: run.id, message })?;
        let workflow = machine.workflow();
        // Steps often share a plugin: load each pinned (version, digest) once.
        let mut loaded: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
        let mut plugins = Vec::with_capacity(workflow.steps.len());
        for step in &workflow.steps {
            plugins.push(match step.plugin() {
                None => None,
                Some((reference, _)) => {
                    let pinned =
                        run.plugins.steps.get(&step.id).map(|p| p.sha256.to_string()).unwrap_or_default();
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
        let targets = machine.inventory().targets(ctx.secrets.as_ref());
        let (observed_tx, observed_rx) = std::sync::mpsc::channel();
        Ok(Driver {
            ctx,
            machine,
            targets,
            plugins,
            canceller: Canceller::default(),
            in_flight: FuturesUnordered::new(),
            lease_lost: lease.lost(),
            lease,
            observed_tx,
            observed_rx,
            heartbeats: HashMap::new(),
            last_snapshot: None,
            last_poll: 0,
        })
    }

    fn run_id(&self) -> RunId {
        self.machine.run_id()
    }

    /// Commits what the machine recorded, under the lease, and shows its lines.
    async fn flush(&mut self) -> Result<(), RunError> {
        for note in self.machine.take_notes() {
            self.ctx.progress.line(self.machine.run_id(), &note);
        }
        if self.machine.has_changes() {
            let changes = self.machine.take_changes();
            self.lease.commit(&self.ctx.store, changes).await?;
        }
        Ok(())
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
        let steps = self.machine.progress(&self.heartbeats);
        self.ctx.progress.snapshot(self.machine.run_id(), &steps);
    }

    async fn run(mut self) -> Result<RunOutcome, RunError> {
        // A run that ended moves again only if a command asks (a compensation).
        self.apply_requests()?;
        if let Some(outcome) = self.machine.ended() {
            self.flush().await?;
            return Ok(outcome);
        }
        self.machine.begin(std::process::id());
        self.recover_interrupted().await?;
        loop {
            if *self.lease_lost.borrow() {
                return Err(RunError::LeaseLost { run_id: self.run_id() });
            }
            self.journal_observed();
            let now = self.ctx.clock.now_ms();
            if now - self.last_poll >= POLL.as_millis() as i64 {
                self.apply_requests()?;
            }
            self.machine.fire_timers(now);
            self.machine.expand();
            let starts = self.machine.starts();
            self.flush().await?;
            // The intents just committed under the lease; a process stopped since (SIGSTOP) for
            // longer than the lease lives must not act on a target before its next commit fails.
            if !starts.is_empty() && !self.lease.valid() {
                return Err(RunError::LeaseLost { run_id: self.run_id() });
            }
            for start in starts {
                self.launch(start);
            }
            if self.in_flight.is_empty()
                && let Some(outcome) = self.machine.settle(self.ctx.wait_for_operator)
            {
                self.flush().await?;
                self.snapshot(true);
                return Ok(outcome);
            }
            self.snapshot(false);
            let wait = self.machine.next_timer().map_or(POLL, |at| {
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

    fn complete(&mut self, done: Done) {
        self.heartbeats.remove(&done.key);
        self.machine.complete(&done.key, done.number, done.report);
    }

    /// Applies queued operator commands (approve, retry, skip, cancel, compensate).
    fn apply_requests(&mut self) -> Result<(), RunError> {
        self.last_poll = self.ctx.clock.now_ms();
        for request in self.ctx.store.pending_requests(self.machine.run_id())? {
            if self.machine.apply_request(&request).stop_in_flight {
                self.canceller.cancel();
                // Later attempts (compensations) get a token of their own.
                if !self.machine.cancelled() {
                    self.canceller = Canceller::default();
                }
            }
        }
        Ok(())
    }

    /// Settles attempts that were running when the previous driver died: the machine decides by
    /// effect class; reversible steps' checks run here.
    async fn recover_interrupted(&mut self) -> Result<(), RunError> {
        let attempts = self.ctx.store.attempts(self.machine.run_id())?;
        let checks = self.machine.interrupted(attempts);
        // The takeover and the checks' intents are on record before any wait: a process killed
        // while waiting leaves the check to be recovered, and a stopped previous driver whose
        // children wait on it is woken by an operator who sees that this process drives now.
        self.flush().await?;
        for check in checks {
            self.recover_by_check(check).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Runs a reversible step's `check` to decide whether its interrupted attempt took effect.
    async fn recover_by_check(&mut self, check: Check) -> Result<(), RunError> {
        let Some(plugin) = self.plugins[check.step_index].clone() else { return Ok(()) };
        // What the interrupted attempt left running (a bridge's child) could still make the
        // change after the check looked: wait for it, up to the step's timeout, then kill it.
        let limit = check.timeout.unwrap_or(self.ctx.host.limits().timeout);
        let marker = orphans::marker(&self.run_id().to_string(), &check.key, check.interrupted);
        let leftovers = orphans::settle(&marker, limit).await;
        self.machine.leftovers(&check, leftovers.found, leftovers.killed, leftovers.waited);
        if !self.lease.valid() {
            return Err(RunError::LeaseLost { run_id: self.run_id() });
        }
        let env = self.call_env(&check.key, check.number);
        let report = self.ctx.host.call(&plugin, check.call.clone(), env).await;
        self.machine.checked(&check, report);
        Ok(())
    }

    fn call_env(&self, key: &str, attempt: u32) -> CallEnv {
        CallEnv {
            targets: self.targets.clone(),
            secrets: self.ctx.secrets.clone(),
            state: Arc::new(Checkpoints {
                store: self.ctx.store.clone(),
                lease: self.lease.clone(),
                run_id: self.run_id(),
                step_key: key.into(),
            }),
            observer: Arc::new(JournalObserver { key: key.into(), attempt, tx: self.observed_tx.clone() }),
        }
    }

    /// Records the target calls and refusals reported since the last turn, one event each.
    fn journal_observed(&mut self) {
        while let Ok(observed) = self.observed_rx.try_recv() {
            match observed {
                Observed::TargetCall { key, attempt, record } => {
                    self.machine.record(&key, Event::TargetCall { attempt, call: record });
                }
                Observed::Heartbeat { key, progress, message } => {
                    self.heartbeats.insert(key, (progress, message));
                }
                Observed::Refusal { key, attempt, refusal } => {
                    let message = refusal.to_string();
                    self.machine.record(&key, Event::Refused { attempt, message, refusal });
                }
            }
        }
    }

    fn launch(&mut self, start: Launch) {
        let Some(plugin) = self.plugins[start.step_index].clone() else { return };
        let env = self.call_env(&start.key, start.number);
        let host = self.ctx.host.clone();
        let cancel = self.canceller.token();
        let what = match start.call.mode {
            crate::plugin::Mode::Compensate => "compensation attempt",
            _ => "attempt",
        };
        self.ctx
            .progress
            .line(self.machine.run_id(), &format!("{}: started ({what} {})", start.key, start.number));
        let (key, number) = (start.key, start.number);
        self.in_flight.push(Box::pin(async move {
            let report = host.call_cancellable(&plugin, start.call, env, cancel).await;
            Done { key, number, report }
        }));
    }
}

/// Finds and loads the exact plugin bytes the run pinned for a step.
async fn load_pinned(
    ctx: &RunContext,
    run: &RunRecord,
    step_id: &str,
    name: &str,
) -> Result<Arc<LoadedPlugin>, RunError> {
    let pinned = run.plugins.steps.get(step_id).ok_or_else(|| RunError::Definition {
        run_id: run.id,
        message: format!("step {step_id} has no pinned plugin"),
    })?;
    let installed = ctx
        .registry
        .versions(name)?
        .into_iter()
        .find(|i| i.info.version == pinned.version && i.sha256 == pinned.sha256);
    if let Some(installed) = installed {
        return Ok(ctx.registry.load(&ctx.host, &installed).await?);
    }
    // Not installed here (a worker on another machine): the copy the journal keeps.
    let Some(bytes) = ctx.store.plugin_component(&pinned.sha256.to_string())? else {
        return Err(RunError::Plugin(format!(
            "run {} pinned plugin {name} {} (sha256 {}) for step {step_id}; it is not installed here and the journal holds no copy of it (runs started before schema version 3 kept none): install that exact file",
            run.id, pinned.version, pinned.sha256
        )));
    };
    let digest = Sha256Digest::of(&bytes);
    if digest != pinned.sha256 {
        return Err(RunError::Plugin(format!(
            "run {} pinned plugin {name} {} (sha256 {}) for step {step_id}, but the journal's copy of it has sha256 {digest}: it was damaged, and was not loaded; install that exact file",
            run.id, pinned.version, pinned.sha256
        )));
    }
    tracing::info!(run = %run.id, plugin = %name, version = %pinned.version, "loading the plugin from the journal's copy");
    ctx.host.load(&bytes).await.map_err(|e| {
        RunError::Plugin(format!(
            "plugin {name} {} from the journal's copy cannot be loaded: {e}",
            pinned.version
        ))
    })
}
