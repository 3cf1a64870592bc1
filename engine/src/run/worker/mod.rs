//! The worker: a long-running process that drives every run needing work from a journal shared
//! with other workers (on this machine or, through PostgreSQL, on others). It polls the journal
//! ([`needs`] says which runs need work), takes the runs its [`Limits`] allow, and drives each
//! with [`super::resume`], several at once; the lease decides which worker drives a run.
//!
//! **Invariant:** a worker drives a run only through [`super::resume`]: it takes the run's lease
//! (a run whose lease another live process holds is skipped), settles interrupted attempts by
//! effect class as `drover resume` does, and commits only fenced by that lease. So two workers
//! never drive one run at once, and a run a dead worker left is taken over once its lease expired
//! (at once on the same machine, by the lease's OS lock).
//!
//! **Invariant:** it uses `Store`'s public reads and [`super::resume`] only, and keeps nothing of
//! its own in the journal: any number of workers may come and go.
//!
//! **Invariant:** journal errors never end the worker: the poll is retried with capped
//! exponential backoff, and a run whose driving failed is retried with its own backoff.
//!
//! **Invariant:** a run that only a person can move on is not driven again until something in
//! the journal changed for it (a command queued or applied, a retry due).
//!
//! Stopping (the `stop` future, SIGTERM or SIGINT in `drover worker`): no run is taken any more
//! and the runs being driven are dropped where they stand, as a crash would leave them: attempts
//! in flight stay running in the journal and their leases are not released; the caller exits,
//! which frees the leases' OS locks, so a worker on the same machine takes those runs over at
//! once and one elsewhere once the leases expired, settling the interrupted attempts by effect
//! class.

mod limits;
mod needs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::journal::RunId;
use crate::store::{RunRecord, StoreError};

use super::{RunContext, RunError, RunOutcome};

pub use limits::{Limits, servers_of};
pub use needs::Need;

/// The longest wait between two polls of a journal that cannot be read.
pub const MAX_JOURNAL_BACKOFF: Duration = Duration::from_secs(30);

/// The longest wait before a run whose driving failed is tried again.
pub const MAX_RUN_BACKOFF: Duration = Duration::from_secs(300);

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Runs driven at once.
    pub max_runs: usize,
    /// How often the journal is looked at for runs needing work.
    pub poll: Duration,
    /// Which runs it may take.
    pub limits: Limits,
}

/// What a worker does, for its log. The journal is the record; this is for people.
#[derive(Debug)]
pub enum WorkerEvent<'a> {
    /// It took a run.
    Took {
        /// The run.
        run: RunId,
        /// Its workflow.
        workflow: &'a str,
        /// Why it needed a worker.
        need: &'a Need,
    },
    /// Driving a run ended: it ended, or waits for a person.
    Finished {
        /// The run.
        run: RunId,
        /// How.
        outcome: &'a RunOutcome,
    },
    /// Driving a run failed; it is tried again after `retry_in`.
    Failed {
        /// The run.
        run: RunId,
        /// Why.
        error: &'a str,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// The journal cannot be read; looked at again after `retry_in`.
    JournalError {
        /// Why.
        error: &'a StoreError,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// The journal can be read again.
    JournalBack,
    /// Stopping: `driving` runs are left where they stand for the next worker.
    Stopping {
        /// The runs being driven.
        driving: usize,
    },
}

/// Receives what a worker does.
pub trait WorkerLog: Send + Sync {
    /// Something happened.
    fn event(&self, event: &WorkerEvent<'_>);
}

/// A run whose driving failed: not taken again before `not_before`.
struct Backoff {
    failures: u32,
    not_before: Instant,
}

/// `base` doubled per failure after the first, up to `max`.
fn backoff(base: Duration, failures: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(max)
}

/// A drive's run and how it ended.
type Driven = (RunId, Result<RunOutcome, RunError>);

/// Works until `stop` resolves, then returns how many runs it left being driven (see the
/// module's doc for what becomes of them). `ctx.wait_for_operator` is ignored: a run waiting
/// for a person is let go, and taken again once a person moved it.
pub async fn work(
    ctx: RunContext,
    options: WorkerOptions,
    log: Arc<dyn WorkerLog>,
    stop: impl std::future::Future<Output = ()>,
) -> usize {
    let mut worker = Worker {
        ctx: RunContext { wait_for_operator: false, ..ctx },
        max_runs: options.max_runs.max(1),
        options,
        log,
        scanner: needs::Scanner::default(),
        driving: JoinSet::new(),
        driven: HashMap::new(),
        backoffs: HashMap::new(),
        journal_failures: 0,
    };
    let mut next_poll = Instant::now();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                let left = worker.driving.len();
                worker.log.event(&WorkerEvent::Stopping { driving: left });
                worker.driving.shutdown().await;
                return left;
            }
            Some(joined) = worker.driving.join_next_with_id(), if !worker.driving.is_empty() => {
                worker.finished(joined);
                // A slot is free: look for work now.
                next_poll = next_poll.min(Instant::now());
            }
            () = tokio::time::sleep_until(next_poll) => {
                next_poll = Instant::now() + worker.poll();
            }
        }
    }
}

/// A worker's state between polls.
struct Worker {
    ctx: RunContext,
    options: WorkerOptions,
    max_runs: usize,
    log: Arc<dyn WorkerLog>,
    scanner: needs::Scanner,
    /// The drives under way, as tasks.
    driving: JoinSet<Driven>,
    /// The run of each drive under way.
    driven: HashMap<tokio::task::Id, RunId>,
    backoffs: HashMap<RunId, Backoff>,
    /// Polls in a row the journal could not answer.
    journal_failures: u32,
}

impl Worker {
    /// Looks for runs needing work and takes what fits; returns how long until the next poll.
    fn poll(&mut self) -> Duration {
        if self.driving.len() >= self.max_runs {
            return self.options.poll;
        }
        match self.find() {
            Ok(taken) => {
                if self.journal_failures > 0 {
                    self.log.event(&WorkerEvent::JournalBack);
                }
                self.journal_failures = 0;
                for (run, need) in taken {
                    self.log.event(&WorkerEvent::Took { run: run.id, workflow: &run.workflow, need: &need });
                    self.take(run.id);
                }
                self.options.poll
            }
            Err(error) => {
                self.journal_failures += 1;
                let retry_in = backoff(self.options.poll, self.journal_failures, MAX_JOURNAL_BACKOFF);
                self.log.event(&WorkerEvent::JournalError { error: &error, retry_in });
                retry_in
            }
        }
    }

    /// The runs needing work that this worker may take, as many as its free slots.
    fn find(&mut self) -> Result<Vec<(RunRecord, Need)>, StoreError> {
        let now = Instant::now();
        let busy: Vec<RunId> = self.driven.values().copied().collect();
        let backoffs = &self.backoffs;
        let skip = |id: RunId| busy.contains(&id) || backoffs.get(&id).is_some_and(|b| b.not_before > now);
        let found = self.scanner.scan(&self.ctx.store, self.ctx.clock.as_ref(), skip)?;
        let mut taken = Vec::new();
        for (run, need) in found {
            if self.driving.len() + taken.len() >= self.max_runs {
                break;
            }
            let limits = &self.options.limits;
            let instances = if limits.is_empty() { Vec::new() } else { self.ctx.store.steps(run.id)? };
            if limits.admits(&run, &instances) {
                taken.push((run, need));
            } else {
                tracing::debug!(run = %run.id, %need, "not taken: this worker's limits exclude every server the run acts on");
            }
        }
        Ok(taken)
    }

    /// Drives `run` in a task of its own.
    fn take(&mut self, run: RunId) {
        let ctx = self.ctx.clone();
        let task = self.driving.spawn(async move {
            let result = super::resume(&ctx, run).await;
            // Nothing is reported of a run whose journal does not hold what was committed.
            let verified = match ctx.store.verify().await {
                Ok(()) => result,
                Err(e) => Err(e.into()),
            };
            (run, verified)
        });
        self.driven.insert(task.id(), run);
    }

    /// A drive ended: logs it, and backs the run off if it failed.
    fn finished(&mut self, joined: Result<(tokio::task::Id, Driven), tokio::task::JoinError>) {
        let (run, result) = match joined {
            Ok((_, (run, result))) => (
                run,
                result.map_err(|e| match e {
                    RunError::LeaseHeld { .. } => None,
                    e => Some(e.to_string()),
                }),
            ),
            Err(e) => match self.driven.get(&e.id()) {
                Some(&run) => (run, Err(Some(format!("driving stopped: {e}")))),
                None => return,
            },
        };
        self.driven.retain(|_, r| *r != run);
        match result {
            // Another process took the lease first: it drives the run.
            Err(None) => self.scanner.held(run),
            Ok(outcome) => {
                self.backoffs.remove(&run);
                if matches!(outcome, RunOutcome::Waiting { .. }) {
                    self.scanner.waited(&self.ctx.store, run);
                }
                self.log.event(&WorkerEvent::Finished { run, outcome: &outcome });
            }
            Err(Some(error)) => {
                let entry =
                    self.backoffs.entry(run).or_insert(Backoff { failures: 0, not_before: Instant::now() });
                entry.failures += 1;
                let retry_in = backoff(self.options.poll, entry.failures, MAX_RUN_BACKOFF);
                entry.not_before = Instant::now() + retry_in;
                self.log.event(&WorkerEvent::Failed { run, error: &error, retry_in });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_poll_and_is_capped() {
        let poll = Duration::from_secs(1);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(poll, n, MAX_JOURNAL_BACKOFF).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(poll, u32::MAX, MAX_RUN_BACKOFF), MAX_RUN_BACKOFF, "no overflow");
    }
}
