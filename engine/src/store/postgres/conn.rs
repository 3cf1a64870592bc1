//! The connections of a PostgreSQL journal, each owned by a thread of its own (as SQLite's writer
//! owns its connection): rust-postgres's blocking client runs tokio-postgres on a runtime of its
//! own, which must not be entered from the engine's async tasks, so callers hand the thread
//! closures over a channel and wait for the reply.
//!
//! **Invariant:** a connection that breaks is made again with capped exponential backoff for up
//! to [`RECONNECT_FOR`]; a read is then repeated, and so is a write whose transaction had not
//! reached `COMMIT` (the server rolled it back). A write whose `COMMIT` got no answer is never
//! repeated: whether it committed is unknown, and the caller gets
//! [`StoreError::Unreachable`] saying so.
//!
//! **Invariant:** the [`RECONNECT_FOR`] window is one per outage of a thread's connection
//! ([`Outage`]), not one per job: the jobs queued behind the one that waited it out get a single
//! connection attempt each, until one connects. Otherwise every read or commit queued during a
//! long outage waited its own 30 s, and a worker learnt only minutes later that it could not
//! renew its leases.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls, Statement};
use tokio::sync::oneshot;

use super::super::StoreError;

/// How long a broken connection is tried again before callers get [`StoreError::Unreachable`]
/// (counted from when it broke, whatever the jobs waiting meanwhile):
/// long enough for a server restart or a failover of the database, short enough that a lease
/// (15 s by default) held by a writer that cannot commit expires and another process takes over.
pub(super) const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// The first wait before connecting again; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

/// A connection and its prepared statements.
pub(super) struct Conn {
    pub client: Client,
    statements: Statements,
}

impl Conn {
    /// The statement for `sql`, prepared once per connection.
    pub fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        self.statements.get(&mut self.client, sql)
    }
}

/// How to connect, and what to call the journal in errors.
#[derive(Clone)]
pub(super) struct Connector {
    config: Config,
    /// The URL without its password.
    pub name: PathBuf,
}

impl Connector {
    pub fn new(config: Config, name: PathBuf) -> Connector {
        Connector { config, name }
    }

    /// Connects once.
    pub fn connect(&self) -> Result<Conn, StoreError> {
        self.config
            .connect(NoTls)
            .map(|client| Conn { client, statements: Statements(HashMap::new()) })
            .map_err(|e| self.error(&e))
    }

    /// Connects, trying again with backoff until `deadline` (once when it has passed).
    fn connect_until(&self, deadline: Instant) -> Result<Conn, StoreError> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.connect() {
                Ok(conn) => return Ok(conn),
                Err(e @ StoreError::Unreachable { .. }) if Instant::now() + backoff < deadline => {
                    tracing::warn!(journal = %self.name.display(), error = %e, "cannot reach the journal; trying again");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Classifies a client error.
    pub fn error(&self, e: &postgres::Error) -> StoreError {
        super::classify(&self.name, e)
    }
}

/// Whether an error means the connection is gone (rather than the statement failing).
pub(super) fn is_connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // The server is shutting down or restarting, or the connection failed.
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code == "57P01" || code == "57P02" || code == "57P03"
        }
        // No SQLSTATE: an I/O error of the client.
        None => e.as_db_error().is_none(),
    }
}

/// Since when a thread's connection has been broken, if it is: the jobs of one outage share its
/// [`RECONNECT_FOR`] window.
#[derive(Default)]
struct Outage(Option<Instant>);

impl Outage {
    /// Until when a job may wait for the connection, at `now`.
    fn deadline(&self, now: Instant) -> Instant {
        self.0.unwrap_or(now) + RECONNECT_FOR
    }

    /// The connection broke (or could not be made) at `now`: the outage starts then unless it
    /// had already.
    fn broke(&mut self, now: Instant) {
        self.0.get_or_insert(now);
    }

    /// The server answered: the outage is over.
    fn over(&mut self) {
        self.0 = None;
    }
}

type ReadJob = Box<dyn FnOnce(&mut Option<Conn>, &mut Outage, &Connector) + Send>;

/// A thread that owns the connection reads go through.
pub(super) struct Reader {
    sender: Option<mpsc::Sender<ReadJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    pub fn start(conn: Conn, connector: Connector) -> Reader {
        let (sender, receiver) = mpsc::channel::<ReadJob>();
        let thread = std::thread::Builder::new()
            .name("drover-pg-reader".into())
            .spawn(move || {
                let mut conn = Some(conn);
                let mut outage = Outage::default();
                while let Ok(job) = receiver.recv() {
                    job(&mut conn, &mut outage, &connector);
                }
            })
            .expect("start the journal's reader thread");
        Reader { sender: Some(sender), thread: Some(thread) }
    }

    /// Runs `f` on the reader's connection, again after a reconnection if the connection broke.
    pub fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Conn) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::channel();
        let job: ReadJob = Box::new(move |conn, outage, connector| {
            let _ = reply.send(with_retry(conn, outage, connector, |c| f(c)));
        });
        self.sender.as_ref().ok_or(StoreError::WriterGone)?.send(job).map_err(|_| StoreError::WriterGone)?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `f` on `conn`, connecting first if it is gone, and again on a fresh connection while
/// the failure is a lost connection, until the outage's [`RECONNECT_FOR`] has passed.
fn with_retry<T>(
    conn: &mut Option<Conn>,
    outage: &mut Outage,
    connector: &Connector,
    f: impl Fn(&mut Conn) -> Result<T, postgres::Error>,
) -> Result<T, StoreError> {
    loop {
        let c = match conn {
            Some(c) => c,
            None => match connector.connect_until(outage.deadline(Instant::now())) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    outage.broke(Instant::now());
                    return Err(e);
                }
            },
        };
        match f(c) {
            Ok(t) => {
                outage.over();
                return Ok(t);
            }
            Err(e) if is_connection_lost(&e) => {
                let now = Instant::now();
                outage.broke(now);
                *conn = None;
                if now >= outage.deadline(now) {
                    return Err(connector.error(&e));
                }
                tracing::warn!(journal = %connector.name.display(), error = %e, "the journal's connection broke; connecting again");
            }
            Err(e) => {
                // The server answered, if only to refuse.
                outage.over();
                return Err(connector.error(&e));
            }
        }
    }
}

/// What a write job returns inside its transaction.
pub(super) enum JobError {
    /// The client failed: a lost connection makes the whole transaction run again.
    Pg(postgres::Error),
    /// The job refused (a conflict, a fenced lease): its changes are rolled back.
    Store(StoreError),
}

impl From<postgres::Error> for JobError {
    fn from(e: postgres::Error) -> Self {
        JobError::Pg(e)
    }
}

type Output = Box<dyn std::any::Any + Send>;
type Work = Box<dyn Fn(&mut postgres::Transaction<'_>, &mut Statements) -> Result<Output, JobError> + Send>;

/// The statements prepared on a connection, usable on it and inside its transactions.
pub(super) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// The statement for `sql`, prepared once per connection (through the connection itself or
    /// one of its transactions).
    pub fn get(
        &mut self,
        client: &mut impl postgres::GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Output, StoreError>>,
}

/// The thread that owns the write connection: commits every job queued at that moment in one
/// transaction (group commit), each in its own savepoint so a failing job does not take the
/// others down, as SQLite's writer does.
pub(super) struct Writer {
    commits: Arc<AtomicU64>,
    sender: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set for a store opened read-only: every job fails with [`StoreError::ReadOnly`].
    read_only: Option<PathBuf>,
}

impl Writer {
    pub fn start(conn: Conn, connector: Connector) -> Writer {
        let (sender, receiver) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let thread = std::thread::Builder::new()
            .name("drover-pg-writer".into())
            .spawn(move || write_loop(conn, &connector, &receiver, &counter))
            .expect("start the journal's writer thread");
        Writer { commits, sender: Some(sender), thread: Some(thread), read_only: None }
    }

    /// A writer that refuses every job.
    pub fn read_only(name: PathBuf) -> Writer {
        Writer { commits: Arc::default(), sender: None, thread: None, read_only: Some(name) }
    }

    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` in the next commit; resolves after the commit.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl Fn(&mut postgres::Transaction<'_>, &mut Statements) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if let Some(name) = &self.read_only {
            return Err(StoreError::ReadOnly { path: name.clone() });
        }
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |tx, statements| f(tx, statements).map(|t| Box::new(t) as Output));
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        sender.send(Job { work, reply }).map_err(|_| StoreError::WriterGone)?;
        let output = answer.await.map_err(|_| StoreError::WriterGone)??;
        Ok(*output.downcast::<T>().expect("the writer returns what the job produced"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How one attempt at committing a batch ended.
enum Attempt {
    /// Committed (or every job failed alone and nothing needed committing): each job's result.
    Done(Vec<Result<Output, StoreError>>),
    /// The connection broke before `COMMIT`: nothing was committed; run the batch again.
    Again(postgres::Error),
    /// The whole batch failed.
    Failed(StoreError),
}

fn write_loop(conn: Conn, connector: &Connector, receiver: &mpsc::Receiver<Job>, commits: &AtomicU64) {
    let mut conn = Some(conn);
    let mut outage = Outage::default();
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let results = loop {
            let Conn { client, statements } = match &mut conn {
                Some(c) => c,
                None => match connector.connect_until(outage.deadline(Instant::now())) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        outage.broke(Instant::now());
                        break (0..jobs.len()).map(|_| Err(e.clone())).collect();
                    }
                },
            };
            match attempt(client, statements, &jobs, connector, commits) {
                Attempt::Done(results) => {
                    outage.over();
                    break results;
                }
                Attempt::Again(e) => {
                    let now = Instant::now();
                    outage.broke(now);
                    conn = None;
                    if now >= outage.deadline(now) {
                        let e = connector.error(&e);
                        break (0..jobs.len()).map(|_| Err(e.clone())).collect();
                    }
                    tracing::warn!(journal = %connector.name.display(), error = %e, "the journal's connection broke before a commit; committing again on a new one");
                }
                Attempt::Failed(e) => {
                    if matches!(e, StoreError::Unreachable { .. }) {
                        outage.broke(Instant::now());
                        conn = None;
                    } else {
                        outage.over();
                    }
                    break (0..jobs.len()).map(|_| Err(e.clone())).collect();
                }
            }
        };
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

fn attempt(
    client: &mut Client,
    statements: &mut Statements,
    jobs: &[Job],
    connector: &Connector,
    commits: &AtomicU64,
) -> Attempt {
    let lost_or = |e: postgres::Error| {
        if is_connection_lost(&e) { Attempt::Again(e) } else { Attempt::Failed(connector.error(&e)) }
    };
    let mut tx = match client.transaction() {
        Ok(tx) => tx,
        Err(e) => return lost_or(e),
    };
    let mut results = Vec::with_capacity(jobs.len());
    if let [job] = jobs {
        // Alone in its commit, a job needs no savepoint: its failure rolls everything back.
        match (job.work)(&mut tx, statements) {
            Ok(output) => results.push(Ok(output)),
            Err(JobError::Pg(e)) if is_connection_lost(&e) => return Attempt::Again(e),
            Err(JobError::Pg(e)) => return Attempt::Done(vec![Err(connector.error(&e))]),
            Err(JobError::Store(e)) => return Attempt::Done(vec![Err(e)]),
        }
    } else {
        for job in jobs {
            let mut savepoint = match tx.savepoint("job") {
                Ok(s) => s,
                Err(e) => return lost_or(e),
            };
            let result = (job.work)(&mut savepoint, statements);
            let ended = match &result {
                Ok(_) => savepoint.commit(),
                Err(_) => savepoint.rollback(),
            };
            match (result, ended) {
                (Err(JobError::Pg(e)), _) | (_, Err(e)) if is_connection_lost(&e) => {
                    return Attempt::Again(e);
                }
                (Err(JobError::Pg(e)), _) => results.push(Err(connector.error(&e))),
                (Err(JobError::Store(e)), _) => results.push(Err(e)),
                (Ok(output), Ok(())) => results.push(Ok(output)),
                (Ok(_), Err(e)) => results.push(Err(connector.error(&e))),
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            Attempt::Done(results)
        }
        Err(e) if is_connection_lost(&e) => Attempt::Failed(StoreError::Unreachable {
            path: connector.name.clone(),
            detail: format!(
                "the connection broke while the server committed ({e}); whether the commit happened is unknown, so it was not repeated"
            ),
        }),
        Err(e) => Attempt::Failed(connector.error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_of_one_outage_share_its_window_and_the_next_outage_gets_a_new_one() {
        let start = Instant::now();
        let mut outage = Outage::default();
        assert_eq!(
            outage.deadline(start),
            start + RECONNECT_FOR,
            "a healthy connection: the job's own window"
        );
        outage.broke(start);
        // A job queued behind the one that waited the outage out gets no window of its own.
        let later = start + RECONNECT_FOR + Duration::from_secs(5);
        outage.broke(later);
        assert_eq!(outage.deadline(later), start + RECONNECT_FOR);
        assert!(outage.deadline(later) < later, "past: one connection attempt, no waiting");
        outage.over();
        assert_eq!(outage.deadline(later), later + RECONNECT_FOR, "the server answered: a new window");
    }
}
