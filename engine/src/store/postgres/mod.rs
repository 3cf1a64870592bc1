//! The run journal in a shared PostgreSQL database, for workers on several machines or at both
//! sites (`docs/operations.md`). The client is rust-postgres (`postgres`, the blocking face of
//! `tokio-postgres`): the pure-Rust client the Rust PostgreSQL ecosystem is built on, maintained
//! for a decade, with no libpq to install. Its blocking face fits the store's shape: reads are
//! synchronous and writes go through one writer thread, as on SQLite, so each connection lives on
//! a thread of its own (`conn.rs`).
//!
//! **Invariant:** the schema is the SQLite journal's, table for table, and every statement keeps
//! SQLite's semantics (`sql.rs`): the conformance suite holds both to the same behaviour.
//!
//! **Invariant:** opening checks before it writes: an unreachable server, a read-only server (a
//! standby) and a newer schema are refused; a command that only reads never creates or migrates
//! the tables, and its connection is read-only.
//!
//! **Invariant:** migrations run under a transaction-scoped advisory lock, so processes opening a
//! new database at once migrate it once.

mod conn;
mod sql;

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use conn::{Conn, Connector, JobError, Reader, Writer};
use sql::{ApplyError, ReadError, Tx};

use super::{
    AttemptRecord, Change, EventRecord, Fence, LeaseRecord, PgUrl, PluginComponentRecord, RequestRecord,
    RunCopy, RunRecord, StepRecord, StoreError,
};
use crate::journal::RunId;

/// Migrations, in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// The newest schema version this build knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock migrations run under ("drov").
const MIGRATION_LOCK: i64 = 0x6472_6f76;

/// How long connecting may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open PostgreSQL journal.
pub(super) struct PgStore {
    name: PathBuf,
    /// The journal's id (`drover_journal`), when it has one.
    journal_id: Option<String>,
    reader: Reader,
    writer: Writer,
}

/// Classifies a client error on the journal `name`.
fn classify(name: &std::path::Path, e: &postgres::Error) -> StoreError {
    let path = name.to_path_buf();
    // The client's own text; the URL (and its password) is not in it.
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    if conn::is_connection_lost(e) {
        return StoreError::Unreachable { path, detail };
    }
    match e.code().map(|c| c.code()) {
        // read_only_sql_transaction, insufficient_privilege
        Some("25006" | "42501") => StoreError::ReadOnly { path },
        // disk_full
        Some("53100") => StoreError::Full { path },
        // lock_not_available
        Some("55P03") => StoreError::Locked { path },
        _ => StoreError::Other { path, detail },
    }
}

impl PgStore {
    fn connector(url: &PgUrl) -> Result<Connector, StoreError> {
        let name = PathBuf::from(url.redacted());
        let mut config = postgres::Config::from_str(url.secret_text()).map_err(|e| StoreError::Other {
            path: name.clone(),
            detail: format!("not a PostgreSQL URL drover can read: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("drover");
        }
        Ok(Connector::new(config, name))
    }

    /// Opens the journal for a command that writes: refuses a read-only server, creates the
    /// tables on first use and migrates them.
    pub fn open(url: &PgUrl) -> Result<PgStore, StoreError> {
        off_runtime(|| PgStore::open_here(url))
    }

    fn open_here(url: &PgUrl) -> Result<PgStore, StoreError> {
        let connector = Self::connector(url)?;
        let name = connector.name.clone();
        let mut first = connector.connect()?;
        let pg = |e: postgres::Error| classify(&name, &e);
        let read_only: String = first.client.query_one("SHOW transaction_read_only", &[]).map_err(pg)?.get(0);
        if read_only == "on" {
            return Err(StoreError::ReadOnly { path: name });
        }
        migrate(&mut first, &name)?;
        let journal_id = journal_id(&mut first).map_err(pg)?;
        let writer = Writer::start(first, connector.clone());
        let reader = Reader::start(connector.connect()?, connector);
        Ok(PgStore { name, journal_id, reader, writer })
    }

    /// Opens the journal for a command that only reads: nothing is created or migrated, and the
    /// session is read-only. A database without Drover's tables is [`StoreError::Missing`].
    pub fn open_read_only(url: &PgUrl) -> Result<PgStore, StoreError> {
        off_runtime(|| PgStore::open_read_only_here(url))
    }

    fn open_read_only_here(url: &PgUrl) -> Result<PgStore, StoreError> {
        let connector = Self::connector(url)?;
        let name = connector.name.clone();
        let mut conn = connector.connect()?;
        let pg = |e: postgres::Error| classify(&name, &e);
        conn.client.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").map_err(pg)?;
        let version = schema_version(&mut conn).map_err(pg)?;
        match version {
            None | Some(0) => return Err(StoreError::Missing { path: name }),
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema { path: name, found: v, supported: SCHEMA_VERSION });
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(StoreError::Other {
                    path: name,
                    detail: format!(
                        "the journal has schema version {v}, older than this drover's ({SCHEMA_VERSION}); a command that writes (resume, say) migrates it"
                    ),
                });
            }
            Some(_) => {}
        }
        let journal_id = journal_id(&mut conn).map_err(pg)?;
        let reader = Reader::start(conn, connector);
        Ok(PgStore { writer: Writer::read_only(name.clone()), name, journal_id, reader })
    }

    /// The journal's id: letters and digits only, so it can name a folder.
    pub fn journal_id(&self) -> Option<&str> {
        self.journal_id.as_deref()
    }

    pub fn location(&self) -> std::path::Display<'_> {
        self.name.display()
    }

    pub async fn verify(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(sql::Db::query(c, "SELECT 1", &[])?.len())).map(|_| ())
    }

    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Conn) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let read = self.reader.read(move |c| match f(c) {
            Ok(t) => Ok(Ok(t)),
            Err(ReadError::Pg(e)) => Err(e),
            Err(ReadError::Unreadable(u)) => Ok(Err(u)),
        })?;
        read.map_err(|u| sql::unreadable(&self.name, u))
    }

    /// Runs `f` in the writer's next commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Tx<'_, '_>) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.run(move |tx, statements| f(&mut Tx { tx, statements })).await
    }

    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.write(move |tx| sql::apply(tx, &changes).map_err(apply_error)).await
    }

    pub async fn apply_fenced(
        &self,
        fence: &Fence,
        expires_at: i64,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        let fence = fence.clone();
        self.write(move |tx| {
            if !sql::fence(tx, &fence, expires_at)? {
                return Err(JobError::Store(StoreError::Fenced { run_id: fence.run_id }));
            }
            sql::apply(tx, &changes).map_err(apply_error)
        })
        .await
    }

    pub async fn acquire_lease(
        &self,
        run_id: RunId,
        me: LeaseRecord,
        now: i64,
        os_locked: bool,
    ) -> Result<Result<(), LeaseRecord>, StoreError> {
        let name = self.name.clone();
        self.write(move |tx| {
            sql::acquire_lease(tx, run_id, &me, now, os_locked).map_err(|e| read_job_error(&name, e))
        })
        .await
    }

    pub async fn renew_lease(
        &self,
        run_id: RunId,
        holder: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.write(move |tx| Ok(sql::renew_lease(tx, run_id, &holder, expires_at)?)).await
    }

    pub async fn release_lease(&self, run_id: RunId, holder: &str) -> Result<(), StoreError> {
        let holder = holder.to_string();
        self.write(move |tx| Ok(sql::release_lease(tx, run_id, &holder)?)).await
    }

    pub async fn put_plugin_component(
        &self,
        sha256: String,
        name: String,
        version: String,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| Ok(sql::put_plugin_component(tx, &sha256, &name, &version, &bytes)?)).await
    }

    pub fn has_plugin_component(&self, sha256: &str) -> Result<bool, StoreError> {
        let sha256 = sha256.to_string();
        self.read(move |c| sql::has_plugin_component(c, &sha256))
    }

    pub fn plugin_components(&self) -> Result<Vec<PluginComponentRecord>, StoreError> {
        self.read(sql::plugin_components)
    }

    pub fn run_copy(&self, run_id: RunId) -> Result<Option<RunCopy>, StoreError> {
        self.read(move |c| sql::run_copy(c, run_id))
    }

    pub fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sha256 = sha256.to_string();
        self.read(move |c| sql::plugin_component(c, &sha256))
    }

    pub fn run(&self, run_id: RunId) -> Result<RunRecord, StoreError> {
        self.read(move |c| sql::run(c, run_id))?
            .ok_or_else(|| StoreError::NotFound(format!("no run {run_id} in {}", self.name.display())))
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.read(sql::runs)
    }

    pub fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.read(move |c| sql::steps(c, run_id))
    }

    pub fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(move |c| sql::attempts(c, run_id))
    }

    pub fn events(&self, run_id: RunId, after: i64) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |c| sql::events(c, run_id, after))
    }

    pub fn pending_requests(&self, run_id: RunId) -> Result<Vec<RequestRecord>, StoreError> {
        self.read(move |c| sql::pending_requests(c, run_id))
    }

    pub fn lease(&self, run_id: RunId) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(move |c| sql::lease(c, run_id))
    }

    pub fn checkpoint(&self, run_id: RunId, step_key: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (step_key, key) = (step_key.to_string(), key.to_string());
        self.read(move |c| sql::checkpoint(c, run_id, &step_key, &key))
    }

    pub fn checkpoint_usage(
        &self,
        run_id: RunId,
        step_key: &str,
        except: &str,
    ) -> Result<(usize, usize), StoreError> {
        let (step_key, except) = (step_key.to_string(), except.to_string());
        self.read(move |c| sql::checkpoint_usage(c, run_id, &step_key, &except))
    }
}

/// Runs `f` on a thread of its own: the blocking client starts a runtime of its own to connect,
/// which panics on a thread that drives async tasks (as the caller's may).
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap_or(Err(StoreError::WriterGone)))
}

fn apply_error(e: ApplyError) -> JobError {
    match e {
        ApplyError::Pg(e) => JobError::Pg(e),
        ApplyError::Refused(message) => JobError::Store(StoreError::Conflict(message)),
    }
}

fn read_job_error(name: &std::path::Path, e: ReadError) -> JobError {
    match e {
        ReadError::Pg(e) => JobError::Pg(e),
        ReadError::Unreadable(u) => JobError::Store(sql::unreadable(name, u)),
    }
}

/// The journal's id, if it has one made of letters and digits.
fn journal_id(conn: &mut Conn) -> Result<Option<String>, postgres::Error> {
    let row = conn.client.query_opt("SELECT id FROM drover_journal LIMIT 1", &[])?;
    Ok(row
        .map(|r| r.get::<_, String>(0))
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())))
}

/// The journal's schema version: `None` when the database has no Drover tables.
fn schema_version(conn: &mut Conn) -> Result<Option<i64>, postgres::Error> {
    let exists: Option<String> =
        conn.client.query_one("SELECT to_regclass('drover_schema')::TEXT", &[])?.get(0);
    if exists.is_none() {
        return Ok(None);
    }
    let row = conn.client.query_opt("SELECT version FROM drover_schema", &[])?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

/// Creates Drover's tables on first use and applies the migrations the journal lacks, in one
/// transaction under [`MIGRATION_LOCK`]; refuses a newer schema and a database holding tables of
/// another program by the names Drover uses.
fn migrate(conn: &mut Conn, name: &std::path::Path) -> Result<(), StoreError> {
    let pg = |e: postgres::Error| classify(name, &e);
    let mut tx = conn.client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS drover_schema (version BIGINT NOT NULL)").map_err(pg)?;
    let version: i64 =
        tx.query_opt("SELECT version FROM drover_schema", &[]).map_err(pg)?.map_or(0, |r| r.get(0));
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { path: name.into(), found: version, supported: SCHEMA_VERSION });
    }
    if version == SCHEMA_VERSION {
        return tx.commit().map_err(pg);
    }
    if version == 0 {
        let foreign: Option<String> =
            tx.query_one("SELECT to_regclass('runs')::TEXT", &[]).map_err(pg)?.get(0);
        if foreign.is_some() {
            return Err(StoreError::Corrupt {
                path: name.into(),
                detail: "the database holds a table `runs` that is not Drover's: give drover a database of its own"
                    .into(),
            });
        }
    }
    for migration in &MIGRATIONS[version as usize..] {
        tx.batch_execute(migration).map_err(pg)?;
    }
    tx.execute("DELETE FROM drover_schema", &[]).map_err(pg)?;
    tx.execute("INSERT INTO drover_schema (version) VALUES ($1)", &[&SCHEMA_VERSION]).map_err(pg)?;
    tx.commit().map_err(pg)
}
