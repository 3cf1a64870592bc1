//! Which runs need a worker, read from the journal through `Store`'s reads only (so it means the
//! same on every backend):
//! - running or compensating with no live lease: new (`run --detach`), or its driver died or
//!   stopped renewing (the lease expired). A run with no lease at all is taken only once it was
//!   seen so by two scans in a row: a foreground `drover run` takes its new run's lease right
//!   after recording it, and keeps it. A lease not expired yet whose holder ran on this machine
//!   (this boot) and is gone is taken over at once (its OS lock is free); a holder that only
//!   looked gone (another PID namespace) is not suspected again once a drive found its lock held;
//! - waiting, failed or ended with operator commands queued and not applied (a command queued
//!   while a driver held the lease, or a `compensate`);
//! - waiting with a retry timer due;
//! - waiting with something a person did while nobody drove it (an approval, retry or skip
//!   applied at once by `drover approve` …), which only the run machine can tell from a person's
//!   gate still closed: the machine is asked whether driving would move the run, and a run it says
//!   would only wait again is remembered by the states of its instances and left alone until they
//!   change. So a run waiting only for a person is never driven in a loop.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};

use crate::journal::RunId;
use crate::store::{LeaseRecord, RunRecord, RunState, StepRecord, StepState, Store, StoreError};

use super::super::RunOutcome;
use super::super::clock::Clock;
use super::super::machine::Machine;

/// Why a run needs a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// No process ever drove it, or its driver released the lease without ending it.
    Unleased,
    /// Its driver stopped renewing its lease (dead, stopped, unreachable).
    LeaseExpired {
        /// The driver's process id.
        pid: u32,
        /// Its host.
        host: String,
    },
    /// Operator commands are queued for it.
    Requests(usize),
    /// Its lease has not expired, but its holder ran on this machine (this boot) and is gone:
    /// the lease's OS lock is free, and the lease is taken over at once.
    HolderGone {
        /// The dead holder's process id.
        pid: u32,
    },
    /// A retry timer is due.
    RetryDue,
    /// Someone moved it on while nobody drove it (an approval, a retry, a skip).
    Moved,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Unleased => f.write_str("not driven"),
            Need::LeaseExpired { pid, host } => write!(f, "lease of process {pid} on {host} expired"),
            Need::HolderGone { pid } => write!(f, "its driver, process {pid} of this machine, is gone"),
            Need::Requests(n) => write!(f, "{n} operator command(s) queued"),
            Need::RetryDue => f.write_str("a retry is due"),
            Need::Moved => f.write_str("moved on by an operator"),
        }
    }
}

/// Finds runs that need a worker; remembers waiting runs that need nobody.
#[derive(Default)]
pub(super) struct Scanner {
    /// Waiting runs the machine found would only wait again, by a digest of their instances.
    quiet: HashMap<RunId, u64>,
    /// Runs with no lease at all in the last scan.
    unleased: HashSet<RunId>,
    /// Runs with no lease at all in this scan.
    unleased_now: HashSet<RunId>,
    /// Lease holders of this machine that looked gone, by run, until a drive tells.
    suspects: HashMap<RunId, String>,
    /// Lease holders that looked gone but whose lease could not be taken (the lock was held:
    /// a process of another PID namespace), by run: not suspected again.
    live: HashMap<RunId, String>,
}

impl Scanner {
    /// The runs needing a worker, oldest first, except those `skip` names (being driven here,
    /// or backing off after an error).
    pub(super) fn scan(
        &mut self,
        store: &Store,
        clock: &dyn Clock,
        skip: impl Fn(RunId) -> bool,
    ) -> Result<Vec<(RunRecord, Need)>, StoreError> {
        let runs = store.runs()?;
        self.quiet.retain(|id, _| runs.iter().any(|r| r.id == *id && r.state == RunState::Waiting));
        let driven = |r: &RunRecord| matches!(r.state, RunState::Running | RunState::Compensating);
        self.live.retain(|id, _| runs.iter().any(|r| r.id == *id && driven(r)));
        let mut found = Vec::new();
        self.unleased_now.clear();
        // `runs` is newest first.
        for run in runs.into_iter().rev().filter(|r| !skip(r.id)) {
            if let Some(need) = self.need(store, clock, &run)? {
                found.push((run, need));
            }
        }
        std::mem::swap(&mut self.unleased, &mut self.unleased_now);
        Ok(found)
    }

    /// A drive of `run` ended with the run waiting for a person: it is not driven again until
    /// its instances change (or a command is queued, or a retry is due), whatever the machine
    /// says, so a run no drive can move on is never driven in a loop.
    pub(super) fn waited(&mut self, store: &Store, run: RunId) {
        if let Ok(instances) = store.steps(run) {
            self.quiet.insert(run, digest(&instances));
        }
    }

    /// A drive of `run` found its lease held: a holder suspected gone is alive after all.
    pub(super) fn held(&mut self, run: RunId) {
        if let Some(holder) = self.suspects.remove(&run) {
            self.live.insert(run, holder);
        }
    }

    fn need(
        &mut self,
        store: &Store,
        clock: &dyn Clock,
        run: &RunRecord,
    ) -> Result<Option<Need>, StoreError> {
        let now = clock.now_ms();
        if matches!(run.state, RunState::Running | RunState::Compensating) {
            return Ok(match store.lease(run.id)? {
                None => {
                    self.unleased_now.insert(run.id);
                    self.unleased.contains(&run.id).then_some(Need::Unleased)
                }
                Some(lease) if lease.expires_at <= now => {
                    Some(Need::LeaseExpired { pid: lease.pid, host: lease.host })
                }
                Some(lease) if self.live.get(&run.id) != Some(&lease.holder) && holder_gone(&lease) => {
                    self.suspects.insert(run.id, lease.holder);
                    Some(Need::HolderGone { pid: lease.pid })
                }
                Some(_) => None,
            });
        }
        let pending = store.pending_requests(run.id)?;
        if !pending.is_empty() {
            // A command queued for a live driver is that driver's to apply.
            let live = store.lease(run.id)?.is_some_and(|l| l.expires_at > now);
            return Ok((!live).then_some(Need::Requests(pending.len())));
        }
        if run.state != RunState::Waiting {
            return Ok(None);
        }
        let instances = store.steps(run.id)?;
        if instances.iter().any(|r| r.state == StepState::Waiting && r.retry_at.is_some_and(|at| at <= now)) {
            return Ok(Some(Need::RetryDue));
        }
        let digest = digest(&instances);
        if self.quiet.get(&run.id) == Some(&digest) {
            return Ok(None);
        }
        if would_move(run, instances, clock) {
            Ok(Some(Need::Moved))
        } else {
            self.quiet.insert(run.id, digest);
            Ok(None)
        }
    }
}

/// Whether the holder of a live `lease` ran on this machine, in this boot, and its process is
/// gone (or a zombie). Only a hint: the lease's OS lock decides when the lease is taken (a
/// holder in another PID namespace may look gone here and still hold it).
fn holder_gone(lease: &LeaseRecord) -> bool {
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    if lease.boot_id.is_empty() || lease.boot_id != this_boot.trim() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{}/stat", lease.pid)) {
        Err(_) => true,
        // `pid (comm) S …`: the state follows the last `)`.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A digest of where every instance of a run stands.
fn digest(instances: &[StepRecord]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for r in instances {
        (&r.key, r.state.as_str(), r.retry_at, r.attempts).hash(&mut hasher);
    }
    hasher.finish()
}

/// A clock stopped at one time, with no jitter: the machine asked by [`would_move`] sees one
/// instant.
struct Frozen(i64);

impl Clock for Frozen {
    fn now_ms(&self) -> i64 {
        self.0
    }

    fn jitter(&self, _jitter: f64) -> f64 {
        1.0
    }
}

/// Whether driving the waiting `run` now would do more than wait again: the run machine, built
/// as a driver builds it, fires its due timers, expands, and is asked whether that recorded
/// anything (an instance, an attempt to start) and how it would settle. Nothing is written. A
/// run the machine cannot read is driven, so that the driver reports why.
fn would_move(run: &RunRecord, instances: Vec<StepRecord>, clock: &dyn Clock) -> bool {
    let now = clock.now_ms();
    let Ok(mut machine) = Machine::for_run(run, instances, std::sync::Arc::new(Frozen(now))) else {
        return true;
    };
    // What building it recorded is not what driving would add.
    machine.take_changes();
    machine.fire_timers(now);
    machine.expand();
    // A new instance (the next gate, rendered) or an attempt to start is for a driver to record.
    if !machine.starts().is_empty() || machine.has_changes() {
        return true;
    }
    !matches!(machine.settle(false), Some(RunOutcome::Waiting { .. }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::journal::{PinnedPlugins, Request};
    use crate::store::Change;

    const NOW: i64 = 1_700_000_000_000;

    fn record(state: RunState, created_at: i64) -> RunRecord {
        RunRecord {
            id: RunId::generate(),
            workflow: "w".into(),
            workflow_version: "1.0.0".into(),
            source_path: "w.toml".into(),
            definition: json!({}),
            params: json!({}),
            inventory: json!({}),
            inventory_digest: String::new(),
            plugins: PinnedPlugins::new(),
            state,
            started_by: "alice".into(),
            created_at,
            finished_at: None,
        }
    }

    /// A waiting instance `key` of `run_id`, with no attempt and no timer.
    fn waiting(run_id: RunId, key: &str) -> StepRecord {
        StepRecord {
            run_id,
            key: key.into(),
            step_index: 0,
            item: None,
            target: None,
            state: StepState::Waiting,
            attempts: 0,
            reason: Some("waits".into()),
            retry_at: None,
            output: None,
            changed: None,
            summary: None,
            evidence: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn store(dir: &Path) -> Store {
        Store::open(&dir.join("j.db"), Default::default()).unwrap()
    }

    fn lease(expires_at: i64) -> LeaseRecord {
        LeaseRecord {
            holder: format!("h-{expires_at}"),
            host: "elsewhere".into(),
            pid: 4242,
            user: "bob".into(),
            expires_at,
            boot_id: String::new(),
        }
    }

    fn needs(scanner: &mut Scanner, store: &Store) -> Vec<(RunId, Need)> {
        let found = scanner.scan(store, &Frozen(NOW), |_| false).unwrap();
        found.into_iter().map(|(run, need)| (run.id, need)).collect()
    }

    #[tokio::test]
    async fn runs_without_a_live_driver_need_a_worker_and_a_new_one_after_a_whole_poll() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let (new, live, expired, done) = (
            record(RunState::Running, NOW - 3),
            record(RunState::Running, NOW - 2),
            record(RunState::Compensating, NOW - 1),
            record(RunState::Succeeded, NOW),
        );
        let ids = [new.id, live.id, expired.id, done.id];
        store
            .apply(
                vec![new, live, expired, done].into_iter().map(|r| Change::InsertRun(Box::new(r))).collect(),
            )
            .await
            .unwrap();
        assert!(store.acquire_lease(ids[1], lease(NOW + 1000), NOW, false).await.unwrap().is_ok());
        assert!(store.acquire_lease(ids[2], lease(NOW), NOW - 5000, false).await.unwrap().is_ok());
        let mut scanner = Scanner::default();
        let expired_need = Need::LeaseExpired { pid: 4242, host: "elsewhere".into() };
        // The first scan sees the new run without a lease: its `drover run` may be about to take it.
        assert_eq!(needs(&mut scanner, &store), [(ids[2], expired_need.clone())]);
        // Still without a lease a scan later: nobody drives it. Oldest first.
        assert_eq!(needs(&mut scanner, &store), [(ids[0], Need::Unleased), (ids[2], expired_need)]);
        // What `skip` names is left out.
        let found = scanner.scan(&store, &Frozen(NOW), |id| id != ids[1]).unwrap();
        assert!(found.is_empty(), "only the live run is looked at, and it has a driver");
    }

    #[tokio::test]
    async fn queued_commands_and_due_retries_wake_a_waiting_run_and_a_failed_run_stays_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let (asked, retrying, failed) = (
            record(RunState::Waiting, NOW - 3),
            record(RunState::Waiting, NOW - 2),
            record(RunState::Failed, NOW - 1),
        );
        let ids = [asked.id, retrying.id, failed.id];
        let step = StepRecord { attempts: 1, retry_at: Some(NOW), ..waiting(ids[1], "flaky") };
        let approve = Request::Approve { step: "gate".into(), comment: None };
        store
            .apply(vec![
                Change::InsertRun(Box::new(asked)),
                Change::InsertRun(Box::new(retrying)),
                Change::InsertRun(Box::new(failed)),
                Change::Request { run_id: ids[0], request: approve, actor: "carol".into(), at: NOW },
                Change::PutStep(Box::new(step)),
            ])
            .await
            .unwrap();
        let mut scanner = Scanner::default();
        assert_eq!(needs(&mut scanner, &store), [(ids[0], Need::Requests(1)), (ids[1], Need::RetryDue)]);
        // A command queued for a live driver is that driver's.
        assert!(store.acquire_lease(ids[0], lease(NOW + 1000), NOW, false).await.unwrap().is_ok());
        assert_eq!(needs(&mut scanner, &store), [(ids[1], Need::RetryDue)]);
    }

    /// Two gates in a row: the run waits at the first; nothing but a person moves it on, and once
    /// the first is approved with nobody driving (as `drover approve` applies it), the second
    /// gate is for a driver to record.
    #[test]
    fn a_run_waiting_at_a_gate_would_only_wait_again_until_someone_approves_it() {
        use crate::workflow::validate::{ValidationContext, load_text};
        let resolve = |r: &crate::plugin::PluginRef| Err(format!("no plugin {r}"));
        let text = "name = \"g\"\nversion = \"1.0.0\"\n\
                    [[steps]]\nid = \"first\"\napproval = { prompt = \"one?\" }\n\
                    [[steps]]\nid = \"second\"\napproval = { prompt = \"two?\" }\nneeds = [\"first\"]\n";
        let wf = load_text(Path::new("g.toml"), text, &ValidationContext { groups: None, plugins: &resolve })
            .expect("a valid workflow");
        let mut run = record(RunState::Running, NOW);
        run.definition = super::super::super::pin::pin(&wf).unwrap();
        // What a driver leaves: the first gate waiting.
        let mut driver = Machine::for_run(&run, Vec::new(), std::sync::Arc::new(Frozen(NOW))).unwrap();
        driver.begin(1);
        driver.expand();
        assert!(driver.starts().is_empty());
        assert!(matches!(driver.settle(false), Some(RunOutcome::Waiting { .. })));
        run.state = RunState::Waiting;
        let waiting: Vec<StepRecord> = driver.instances().values().cloned().collect();
        assert_eq!(waiting.len(), 1, "{waiting:?}");

        assert!(!would_move(&run, waiting.clone(), &Frozen(NOW + 60_000)), "only a person moves it on");
        let mut approved = waiting;
        approved[0].state = StepState::Succeeded;
        assert!(would_move(&run, approved, &Frozen(NOW + 60_000)), "the second gate is a driver's to record");
    }

    #[tokio::test]
    async fn a_live_lease_of_a_gone_holder_of_this_machine_is_taken_at_once_unless_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let (gone, alive) = (record(RunState::Running, NOW - 2), record(RunState::Running, NOW - 1));
        let ids = [gone.id, alive.id];
        store
            .apply(vec![Change::InsertRun(Box::new(gone)), Change::InsertRun(Box::new(alive))])
            .await
            .unwrap();
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_string();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let here = |pid: u32| LeaseRecord { pid, boot_id: boot.clone(), ..lease(NOW + 60_000) };
        assert!(store.acquire_lease(ids[0], here(dead_pid), NOW, false).await.unwrap().is_ok());
        assert!(store.acquire_lease(ids[1], here(std::process::id()), NOW, false).await.unwrap().is_ok());
        let mut scanner = Scanner::default();
        assert_eq!(needs(&mut scanner, &store), [(ids[0], Need::HolderGone { pid: dead_pid })]);
        // The drive found the lease held after all (the lock of a holder in another PID namespace).
        scanner.held(ids[0]);
        assert!(needs(&mut scanner, &store).is_empty());
    }

    #[tokio::test]
    async fn a_run_a_drive_left_waiting_is_not_driven_again_until_its_instances_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // Its definition cannot be read: the machine would have it driven, to report why.
        let run = record(RunState::Waiting, NOW);
        let id = run.id;
        let gate = waiting(id, "gate");
        store
            .apply(vec![Change::InsertRun(Box::new(run)), Change::PutStep(Box::new(gate.clone()))])
            .await
            .unwrap();
        let mut scanner = Scanner::default();
        assert_eq!(needs(&mut scanner, &store), [(id, Need::Moved)]);
        scanner.waited(&store, id);
        assert!(needs(&mut scanner, &store).is_empty(), "left alone after a drive that only waited");
        let approved = StepRecord { state: StepState::Succeeded, finished_at: Some(NOW), ..gate };
        store.apply(vec![Change::PutStep(Box::new(approved))]).await.unwrap();
        assert_eq!(needs(&mut scanner, &store), [(id, Need::Moved)], "its instances changed");
    }
}
