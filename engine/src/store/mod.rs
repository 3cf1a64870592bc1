//! The run journal in SQLite. One writer thread owns the write connection and commits whatever
//! changes are queued together in one transaction (group commit); reads use their own connection.
//!
//! **Invariant:** only this module talks to SQLite; rusqlite types never leave it.
//!
//! **Invariant:** the event journal is append-only (enforced by triggers), and every change to the
//! current-state tables is committed in the same transaction as the event that explains it.
//!
//! **Invariant:** opening checks the file (read-only, corrupt, newer schema) before writing a
//! single byte to it.

mod error;
mod pragmas;
mod records;
mod sql;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

pub use error::StoreError;
pub use pragmas::Durability;
pub use records::{
    AttemptRecord, AttemptState, Change, EventRecord, LeaseRecord, RequestRecord, RunRecord, RunState,
    StepRecord, StepState,
};

/// Migrations, in order; the schema version is the number of migrations applied.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open run journal.
pub struct Store {
    path: PathBuf,
    /// Declared before the writer so it closes first: the writer's close is then the last one,
    /// which checkpoints the log and removes it.
    reader: Mutex<Connection>,
    writer: writer::Writer,
}

impl Store {
    /// Opens (creating if needed) the journal at `path`, checks it and applies migrations.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let err = |e| StoreError::from_sqlite(path, e);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Other {
                path: path.into(),
                detail: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let existed = path.exists();
        if existed {
            check_existing(path)?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(err)?;
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(err)? {
            return Err(StoreError::ReadOnly { path: path.into() });
        }
        for (name, value, _why) in pragmas::PRAGMAS {
            conn.pragma_update(None, name, value).map_err(err)?;
        }
        conn.pragma_update(None, "synchronous", durability.pragma()).map_err(err)?;
        migrate(&conn, path)?;
        let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        reader.pragma_update(None, "busy_timeout", "5000").map_err(err)?;
        Ok(Store {
            path: path.into(),
            reader: Mutex::new(reader),
            writer: writer::Writer::start(conn, path.into()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions committed through this store so far (for benchmarks and diagnostics).
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Applies `changes` atomically; returns when they are committed (and, with
    /// [`Durability::Full`], on disk).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.writer
            .run(move |conn| sql::apply(conn, &changes).map_err(|e| StoreError::from_sqlite(&path, e)))
            .await
    }

    /// Takes the lease of `run_id` for `me` if it is free, expired, or held by a dead process on
    /// this host; otherwise returns the live holder.
    pub async fn acquire_lease(
        &self,
        run_id: &str,
        me: LeaseRecord,
        now: i64,
    ) -> Result<Result<(), LeaseRecord>, StoreError> {
        let run_id = run_id.to_string();
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::acquire_lease(conn, &run_id, &me, now).map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    /// Extends the lease; false if it is no longer ours.
    pub async fn renew_lease(&self, run_id: &str, holder: &str, expires_at: i64) -> Result<bool, StoreError> {
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::renew_lease(conn, &run_id, &holder, expires_at)
                    .map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, run_id: &str, holder: &str) -> Result<(), StoreError> {
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::release_lease(conn, &run_id, &holder).map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| StoreError::from_sqlite(&self.path, e))
    }

    /// A run.
    pub fn run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        self.read(|c| sql::run(c, run_id))?
            .ok_or_else(|| StoreError::NotFound(format!("no run {run_id} in {}", self.path.display())))
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.read(sql::runs)
    }

    /// Every step instance of a run, in insertion order of their keys' steps.
    pub fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.read(|c| sql::steps(c, run_id))
    }

    /// Every attempt of a run.
    pub fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(|c| sql::attempts(c, run_id))
    }

    /// The run's events after `after` (0 for all), in order.
    pub fn events(&self, run_id: &str, after: i64) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|c| sql::events(c, run_id, after))
    }

    /// Operator commands not applied yet.
    pub fn pending_requests(&self, run_id: &str) -> Result<Vec<RequestRecord>, StoreError> {
        self.read(|c| sql::pending_requests(c, run_id))
    }

    /// The current lease holder, if any.
    pub fn lease(&self, run_id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(|c| sql::lease(c, run_id))
    }

    /// A checkpoint value.
    pub fn checkpoint(&self, run_id: &str, step_key: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| sql::checkpoint(c, run_id, step_key, key))
    }
}

/// Read-only checks of an existing file, before anything writes to it. Nothing here creates a
/// file either: the header is read directly, and the integrity check runs on an `immutable`
/// connection, which takes no locks and makes no `-wal` or `-shm` files.
fn check_existing(path: &Path) -> Result<(), StoreError> {
    let other = |detail: String| StoreError::Other { path: path.into(), detail };
    let meta = std::fs::metadata(path).map_err(|e| other(e.to_string()))?;
    if meta.permissions().readonly() {
        return Err(StoreError::ReadOnly { path: path.into() });
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| other(e.to_string()))?;
    let read = std::io::Read::read(&mut file, &mut header).map_err(|e| other(e.to_string()))?;
    if read < 100 || &header[..16] != b"SQLite format 3\0" {
        return Err(StoreError::Corrupt { path: path.into(), detail: "not an SQLite database".into() });
    }
    // The schema version (PRAGMA user_version) is stored big-endian at offset 60 of the header.
    let version = i64::from(u32::from_be_bytes([header[60], header[61], header[62], header[63]]));
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { path: path.into(), found: version, supported: SCHEMA_VERSION });
    }
    let err = |e| StoreError::from_sqlite(path, e);
    // A `-wal` file means another process has the database open (or died with it open): its
    // latest commits are in the log, and a checkpoint may be copying pages into the file right
    // now, so the file alone is no consistent snapshot. Then check through an ordinary read-only
    // connection, which reads the log and takes the usual locks; the side files exist anyway.
    let wal = path.with_file_name(format!("{}-wal", path.file_name().unwrap_or_default().to_string_lossy()));
    let conn = if wal.exists() {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        conn.pragma_update(None, "busy_timeout", "5000").map_err(err)?;
        let live: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if live > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.into(),
                found: live,
                supported: SCHEMA_VERSION,
            });
        }
        if live > 0 {
            let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
            if check != "ok" {
                return Err(StoreError::Corrupt {
                    path: path.into(),
                    detail: format!("quick_check: {check}"),
                });
            }
            return Ok(());
        }
        conn
    } else {
        let uri = format!("file:{}?immutable=1", path.display());
        Connection::open_with_flags(&uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
            .map_err(err)?
    };
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
    if check != "ok" {
        return Err(StoreError::Corrupt { path: path.into(), detail: format!("quick_check: {check}") });
    }
    if version == 0 {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(err)?;
        if tables > 0 {
            return Err(StoreError::Corrupt {
                path: path.into(),
                detail: "an SQLite database, but not Drover's".into(),
            });
        }
    }
    Ok(())
}

/// Applies the migrations this database lacks, each in its own write transaction. The version
/// is read again inside that transaction: two processes opening a new database at once (a run
/// starting while `drover runs` looks) must not both apply the same migration.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::from_sqlite(path, e);
    let version = |conn: &Connection| conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    if version(conn).map_err(err)? as usize >= MIGRATIONS.len() {
        return Ok(());
    }
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let next = index as i64 + 1;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let applied = version(conn).and_then(|current| {
            if current >= next {
                return Ok(());
            }
            conn.execute_batch(&format!("{migration}\nPRAGMA user_version = {next};"))
        });
        let committed = applied.and_then(|()| conn.execute_batch("COMMIT"));
        if let Err(e) = committed {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_the_store_removes_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let store = Store::open(&db, Durability::Full).unwrap();
        assert!(store.runs().unwrap().is_empty());
        drop(store);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["j.db"]);
    }

    #[test]
    fn processes_opening_a_new_database_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    Store::open(&db, Durability::Full).map(|s| s.runs().map(|r| r.len()))
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().unwrap();
            assert!(matches!(opened, Ok(Ok(0))), "{opened:?}");
        }
    }
}
