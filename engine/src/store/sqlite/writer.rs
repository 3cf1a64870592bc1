//! The single writer: a thread that owns the write connection, takes jobs over a channel, and
//! commits every job queued at that moment in one transaction (group commit), each job in its
//! own savepoint so a failing job does not take the others down. The log is checked before it
//! is checkpointed and before the connection closes (`wal.rs`); once it is found damaged, every
//! later job fails.

use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, wal};

type Output = Box<dyn Any + Send>;

/// What a job does inside the commit.
type Work = Box<dyn FnOnce(&Connection) -> Result<Output, StoreError> + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Output, StoreError>>,
}

/// Most jobs in one commit.
const MAX_BATCH: usize = 512;

pub(super) struct Writer {
    commits: Arc<AtomicU64>,
    sender: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set for a store opened read-only: every job fails with [`StoreError::ReadOnly`].
    read_only: Option<PathBuf>,
}

impl Writer {
    pub(super) fn start(conn: Connection, path: PathBuf) -> Writer {
        let (sender, receiver) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let thread = std::thread::Builder::new()
            .name("drover-db-writer".into())
            .spawn(move || run(conn, path, receiver, &counter))
            .expect("start the database writer thread");
        Writer { commits, sender: Some(sender), thread: Some(thread), read_only: None }
    }

    /// A writer that refuses every job: the store of a command that only reads `path`.
    pub(super) fn read_only(path: PathBuf) -> Writer {
        Writer { commits: Arc::default(), sender: None, thread: None, read_only: Some(path) }
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` in the next commit; resolves after the commit.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if let Some(path) = &self.read_only {
            return Err(StoreError::ReadOnly { path: path.clone() });
        }
        let (reply, rx) = oneshot::channel();
        let work = Box::new(move |conn: &Connection| f(conn).map(|t| Box::new(t) as Output));
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        sender.send(Job { work, reply }).map_err(|_| StoreError::WriterGone)?;
        let output = rx.await.map_err(|_| StoreError::WriterGone)??;
        Ok(*output.downcast::<T>().expect("the writer returns what the job produced"))
    }
}

impl Drop for Writer {
    /// Waits for queued jobs and closes the connection, so the log is checkpointed and removed.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a transaction-control statement through the statement cache: they run several times per
/// commit, and parsing them each time shows in the per-step cost.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run(conn: Connection, path: PathBuf, receiver: mpsc::Receiver<Job>, commits: &AtomicU64) {
    let fail = |e: rusqlite::Error| StoreError::from_sqlite(&path, e);
    let mut guard = wal::Guard::new(path.clone());
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Some(e) = guard.refusal() {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            continue;
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            let e = fail(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            continue;
        }
        let mut done = Vec::with_capacity(jobs.len());
        if jobs.len() == 1 {
            // Alone in its commit, a job needs no savepoint: its failure rolls back the whole
            // transaction below.
            let job = jobs.pop().expect("one job");
            let result = (job.work)(&conn);
            done.push((job.reply, result));
        } else {
            for job in jobs {
                let saved = exec(&conn, "SAVEPOINT job").map_err(fail);
                let result = saved.and_then(|()| (job.work)(&conn));
                if result.is_err() {
                    let _ = exec(&conn, "ROLLBACK TO job");
                }
                let _ = exec(&conn, "RELEASE job");
                done.push((job.reply, result));
            }
        }
        let failed_alone = done.len() == 1 && done[0].1.is_err();
        let commit = if failed_alone { Ok(()) } else { exec(&conn, "COMMIT").map_err(fail) };
        if commit.is_err() || failed_alone {
            let _ = exec(&conn, "ROLLBACK");
        } else {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        // Nothing is reported committed while the log it went into is found damaged.
        let commit = commit.and_then(|()| if failed_alone { Ok(()) } else { guard.after_commit(&conn) });
        for (reply, result) in done {
            let _ = reply.send(match &commit {
                Ok(()) => result,
                Err(e) => Err(e.clone()),
            });
        }
    }
    guard.before_close(&conn);
}
