//! The lease: one process drives a run at a time. Taken when driving starts, renewed by a
//! heartbeat and by every commit of the driver, released at the end.
//!
//! Two things decide whether a lease's holder is alive:
//! - **An OS lock** (`flock`) on `<run id>.lock` in the journal's folder of lock files
//!   ([`Store::lease_lock_dir`]: `<journal>-leases/` beside an SQLite file, a folder named by the
//!   journal's id in the temporary directory for PostgreSQL), held by the driving process
//!   for as long as it drives. The kernel releases it when the holder dies, whatever PID
//!   namespace or container the holder ran in, and a reused process id cannot hold it. A lease
//!   row records the boot it was taken on (`boot_id`) only when its holder holds that lock; a
//!   process of the same boot that gets the lock knows such a holder is dead and takes over at
//!   once.
//! - **Expiry**, the fallback for everything else (another machine sharing the journal, a lease
//!   taken without the OS lock, a journal older than schema version 2): a lease not renewed for
//!   its time to live may be taken over, even from a process that is only stopped (SIGSTOP).
//!
//! **Invariant (fencing):** every transaction a driving process commits for its run proves, inside
//! that transaction, that the lease row still names this process ([`Store::apply_fenced`]); a
//! process whose lease was taken over commits nothing more. Before it starts an attempt's plugin,
//! the driver also checks that its lease is still valid by its own clock ([`LeaseHandle::valid`]),
//! so a process woken after a long stop does not act on a target before its next commit fails.
//!
//! The heartbeat renews only while the driver makes progress: a driver stuck inside one turn
//! (busy on its thread, not awaiting) for [`STALL_TTLS`] times the time to live stops being
//! renewed ([`LeaseHandle::watch`]), so its lease expires and another process may take over.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::journal::RunId;
use crate::store::{Change, Fence, LeaseRecord, Store, StoreError};

use super::RunError;
use super::clock::Clock;

/// How long a lease lasts without a heartbeat, unless the run context says otherwise.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// How many times the time to live the driving code may stay busy in one poll before the
/// heartbeat stops renewing ([`LeaseHandle::watch`]).
pub const STALL_TTLS: i64 = 2;

/// Who this process is, for leases and events.
pub fn whoami() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", uid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    (user, host)
}

/// This boot of this machine: the same in every PID namespace and container of one kernel.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

#[expect(unsafe_code, reason = "std has no safe getuid(2)")]
fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The OS lock file of a run's lease in the journal's folder of lock files
/// ([`Store::lease_lock_dir`]; a run id is always a plain file name).
fn lock_path(dir: &Path, run_id: RunId) -> PathBuf {
    dir.join(format!("{run_id}.lock"))
}

/// Takes the OS lock of a run's lease without waiting: `Some` while held (until dropped), `None`
/// when another live process holds it or it cannot be made (then only expiry tells).
fn os_lock(dir: &Path, run_id: RunId) -> Option<File> {
    let path = lock_path(dir, run_id);
    let made = path.parent().map_or(Ok(()), std::fs::create_dir_all);
    // Lock files are never removed: removing one while another process waits on it would let
    // two processes each lock a file of that name.
    let file =
        made.and_then(|()| std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path));
    let file = match file {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(lock = %path.display(), error = %e, "cannot open the lease's lock file; only expiry tells whether a holder lives");
            return None;
        }
    };
    file.try_lock().ok().map(|()| file)
}

/// What a driving process needs of its lease: the fence its commits carry, whether it is still
/// valid by this process's clock, and whether it was lost. Cheap to clone.
#[derive(Clone)]
pub struct LeaseHandle {
    fence: Fence,
    clock: Arc<dyn Clock>,
    ttl_ms: i64,
    /// ms: until when no other process can take the lease over, as of the last renewal that
    /// committed.
    valid_until: Arc<AtomicI64>,
    lost: tokio::sync::watch::Receiver<bool>,
    /// ms: since when the driving code has been inside one poll ([`LeaseHandle::watch`]); 0 while
    /// it awaits.
    busy_since: Arc<AtomicI64>,
}

impl LeaseHandle {
    /// Runs `driving` (the driver's loop) under watch: the heartbeat stops renewing while one
    /// poll of it has been busy on its thread for longer than [`STALL_TTLS`] times the time to
    /// live, so a driver wedged in a computation lets its lease expire and another process may
    /// take the run over. Awaiting (a target command, a commit) is not being busy.
    pub async fn watch<F: std::future::Future>(&self, driving: F) -> F::Output {
        let mut driving = std::pin::pin!(driving);
        std::future::poll_fn(|cx| {
            self.busy_since.store(self.clock.now_ms().max(1), Ordering::Release);
            let polled = driving.as_mut().poll(cx);
            self.busy_since.store(0, Ordering::Release);
            polled
        })
        .await
    }

    /// Commits `changes` fenced by this lease, which the same commit renews. A lost lease is
    /// [`RunError::LeaseLost`], and nothing was written.
    pub async fn commit(&self, store: &Store, changes: Vec<Change>) -> Result<(), RunError> {
        let expires = self.clock.now_ms().saturating_add(self.ttl_ms);
        match store.apply_fenced(&self.fence, expires, changes).await {
            Ok(()) => {
                self.valid_until.fetch_max(expires, Ordering::AcqRel);
                Ok(())
            }
            Err(StoreError::Fenced { run_id }) => Err(RunError::LeaseLost { run_id }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether no other process can have taken the lease over yet, by this process's clock.
    pub fn valid(&self) -> bool {
        self.clock.now_ms() < self.valid_until.load(Ordering::Acquire)
    }

    /// The fence its commits carry.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Turns true when the lease is lost; the driver must stop.
    pub fn lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.clone()
    }
}

/// A held lease; renewed in the background until released or dropped.
pub struct Lease {
    store: Arc<Store>,
    handle: LeaseHandle,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The OS lock, when this process could take it; released when the lease is dropped.
    _os_lock: Option<File>,
}

impl Lease {
    /// Takes the lease of `run_id` with the default time to live, or says who holds it.
    pub async fn acquire(store: Arc<Store>, clock: Arc<dyn Clock>, run_id: RunId) -> Result<Lease, RunError> {
        Lease::acquire_for(store, clock, run_id, LEASE_TTL).await
    }

    /// Takes the lease of `run_id`, valid for `ttl` without renewal, or says who holds it.
    pub async fn acquire_for(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        run_id: RunId,
        ttl: Duration,
    ) -> Result<Lease, RunError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        // Renew five times per time to live, so a late heartbeat or two do not lose the lease.
        let every = (ttl / 5).max(Duration::from_millis(10));
        let (user, host) = whoami();
        let holder = format!("{}-{}", std::process::id(), ulid::Ulid::generate());
        let os_lock = store.lease_lock_dir().and_then(|dir| os_lock(&dir, run_id));
        let me = LeaseRecord {
            holder: holder.clone(),
            host,
            pid: std::process::id(),
            user,
            expires_at: clock.now_ms().saturating_add(ttl_ms),
            // Only a holder of the OS lock may be declared dead by it.
            boot_id: os_lock.as_ref().and_then(|_| boot_id()).unwrap_or_default(),
        };
        let valid_until = Arc::new(AtomicI64::new(me.expires_at));
        let busy_since = Arc::new(AtomicI64::new(0));
        if let Err(current) = store.acquire_lease(run_id, me, clock.now_ms(), os_lock.is_some()).await? {
            return Err(RunError::LeaseHeld {
                run_id,
                pid: current.pid,
                host: current.host,
                user: current.user,
                expires_in_ms: current.expires_at - clock.now_ms(),
            });
        }
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let handle = LeaseHandle {
            fence: Fence { run_id, holder: holder.clone() },
            clock: clock.clone(),
            ttl_ms,
            valid_until: valid_until.clone(),
            lost,
            busy_since: busy_since.clone(),
        };
        let heartbeat = {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let busy = busy_since.load(Ordering::Acquire);
                    if busy != 0 && clock.now_ms().saturating_sub(busy) > ttl_ms.saturating_mul(STALL_TTLS) {
                        tracing::error!(run = %run_id, busy_ms = clock.now_ms() - busy, "the driver is stuck in one turn; letting the lease expire");
                        break;
                    }
                    let expires = clock.now_ms().saturating_add(ttl_ms);
                    match store.renew_lease(run_id, &holder, expires).await {
                        Ok(true) => {
                            valid_until.fetch_max(expires, Ordering::AcqRel);
                        }
                        Ok(false) => {
                            tracing::error!(run = %run_id, "the lease was taken over by another process");
                            break;
                        }
                        Err(e)
                            if clock.now_ms().saturating_add(every.as_millis() as i64)
                                >= valid_until.load(Ordering::Acquire) =>
                        {
                            tracing::error!(run = %run_id, error = %e, "cannot renew the lease before it expires");
                            break;
                        }
                        Err(e) => tracing::warn!(run = %run_id, error = %e, "cannot renew the lease"),
                    }
                }
                let _ = lost_tx.send(true);
            })
        };
        Ok(Lease { store, handle, heartbeat, _os_lock: os_lock })
    }

    /// What the driving code needs of the lease.
    pub fn handle(&self) -> LeaseHandle {
        self.handle.clone()
    }

    /// Turns true when the lease is lost; the driver must stop.
    pub fn lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.handle.lost()
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<(), RunError> {
        self.heartbeat.abort();
        let fence = self.handle.fence.clone();
        self.store.release_lease(fence.run_id, &fence.holder).await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sqlite_journals_lock_files_lie_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("drover.db"), Default::default()).unwrap();
        let run: RunId = "run_01kbs0pw9kx8vqa1jjzfb1f2fe".parse().unwrap();
        assert_eq!(
            lock_path(&store.lease_lock_dir().unwrap(), run),
            dir.path().join("drover.db-leases/run_01kbs0pw9kx8vqa1jjzfb1f2fe.lock")
        );
    }

    #[test]
    fn the_os_lock_is_held_once_and_freed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j.db-leases");
        let (one, two) = (RunId::generate(), RunId::generate());
        let first = os_lock(&journal, one).expect("a free lock is taken");
        assert!(os_lock(&journal, one).is_none(), "a held lock is refused");
        assert!(os_lock(&journal, two).is_some(), "another run's lock is its own");
        drop(first);
        assert!(os_lock(&journal, one).is_some(), "a dropped lock is free again");
    }

    /// A driver stuck inside one poll (a computation that never yields) stops the heartbeat, so
    /// its lease is lost; one that awaits just as long keeps it.
    #[test]
    fn a_driver_stuck_in_one_turn_lets_its_lease_go_and_one_that_awaits_keeps_it() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(&dir.path().join("j.db"), Default::default()).unwrap());
            let clock: Arc<dyn Clock> = Arc::new(super::super::SystemClock::new(1));
            let ttl = Duration::from_millis(300);
            let stall = Duration::from_millis(3 * 300 * STALL_TTLS as u64);

            let awaiting =
                Lease::acquire_for(store.clone(), clock.clone(), RunId::generate(), ttl).await.unwrap();
            awaiting.handle().watch(tokio::time::sleep(stall)).await;
            assert!(!*awaiting.lost().borrow(), "a driver that awaits keeps its lease");

            let stuck =
                Lease::acquire_for(store.clone(), clock.clone(), RunId::generate(), ttl).await.unwrap();
            // The stimulus: one poll busy on its thread for three times the bound.
            stuck.handle().watch(async { std::thread::sleep(stall) }).await;
            let mut lost = stuck.lost();
            let seen = tokio::time::timeout(Duration::from_secs(30), lost.wait_for(|&l| l)).await;
            assert!(matches!(seen, Ok(Ok(_))), "the stuck driver's lease was not let go");
        });
    }
}
