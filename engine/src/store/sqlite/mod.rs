//! The run journal in SQLite, the embedded default. One writer thread owns the write connection
//! and commits whatever changes are queued together in one transaction (group commit); reads use
//! their own connection.
//!
//! **Invariant:** only this module talks to SQLite; rusqlite types never leave it.
//!
//! **Invariant:** the event journal is append-only (enforced by triggers), and every change to the
//! current-state tables is committed in the same transaction as the event that explains it.
//!
//! **Invariant:** opening checks the file (read-only, corrupt, empty, damaged, newer schema)
//! before writing a single byte to it; a journal appears at its path only complete, with its
//! schema; a command that only reads opens the journal read-only and never creates or migrates
//! it.
//!
//! **Invariant:** the write-ahead log is checked against SQLite's index of it before it is
//! copied into the database and before a command reports what it committed (`wal.rs`).

mod pragmas;
mod sql;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use super::{
    AttemptRecord, Change, EventRecord, Fence, LeaseRecord, PluginComponentRecord, RequestRecord, RunCopy,
    RunRecord, StepRecord, StoreError,
};
use crate::journal::RunId;

pub use pragmas::Durability;

/// Migrations, in order; the schema version is the number of migrations applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_lease_boot.sql"),
    include_str!("migrations/0003_plugins.sql"),
];

/// The newest schema version of an SQLite journal this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open SQLite journal.
pub(super) struct SqliteStore {
    path: PathBuf,
    /// Declared before the writer so it closes first: the writer's close is then the last one,
    /// which checkpoints the log and removes it.
    reader: Mutex<Connection>,
    writer: writer::Writer,
    /// A reader's migrated copy of a journal of an older schema, removed on drop (after `reader`,
    /// which reads it, is closed).
    _snapshot: Option<tempfile::TempDir>,
    /// Dropped last, once `reader` is closed.
    _tidy: Tidy,
}

/// For a reader whose connection made SQLite's `-wal` and `-shm` beside a journal that had none:
/// removes them again when the store closes, the way SQLite does: a read-write open and close,
/// which removes them only if no other process has the journal open, after the log is checked
/// (`wal::Guard::before_close`; a damaged log is left as it is).
struct Tidy(Option<PathBuf>);

impl Drop for Tidy {
    fn drop(&mut self) {
        let Some(path) = self.0.take() else { return };
        if wal::read_note(&path).is_some() {
            return;
        }
        let Ok(conn) = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE) else { return };
        // Another process writing: this close is not the last, it removes nothing; do not wait.
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        wal::Guard::new(path).before_close(&conn);
        let _ = conn.close();
    }
}

impl SqliteStore {
    /// Opens the journal at `path` for a command that writes: creates it if no file is there,
    /// checks it and applies migrations.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        let err = |e| StoreError::from_sqlite(path, e);
        refuse_damaged(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Other {
                path: path.into(),
                detail: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        if !path.exists() {
            create(path)?;
        }
        check_existing(path)?;
        // No CREATE: the journal exists, with its schema.
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(err)?;
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
        Ok(SqliteStore {
            path: path.into(),
            reader: Mutex::new(reader),
            writer: writer::Writer::start(conn, path.into()),
            _snapshot: None,
            _tidy: Tidy(None),
        })
    }

    /// Opens the journal at `path` for a command that only reads it (`runs`, `status`, `events`,
    /// `report`). Nothing is created, migrated or written: a missing file is
    /// [`StoreError::Missing`], and every write through this store fails with
    /// [`StoreError::ReadOnly`].
    ///
    /// A journal that nobody can be writing (the file or its folder is read-only to this process,
    /// and it has no log) is read `immutable`: no locks, no side files, so an archived journal on
    /// read-only media or in a read-only folder can be read. Otherwise an ordinary read-only
    /// connection reads it, with SQLite's locks and the log a live run writes (the `-wal` and
    /// `-shm` files it makes are removed again on close, unless another process has the journal
    /// open). A journal of an older schema is copied (`VACUUM INTO`, which reads only) into a
    /// private temporary file, and that copy is migrated and read.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let err = |e| StoreError::from_sqlite(path, e);
        refuse_damaged(path)?;
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { path: path.into() });
            }
            Err(e) => return Err(StoreError::Other { path: path.into(), detail: e.to_string() }),
        };
        if meta.len() == 0 {
            return Err(StoreError::Empty { path: path.into() });
        }
        let version = header_version(path)?;
        let log = std::fs::metadata(wal::log_path(path)).map_or(0, |m| m.len());
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let nobody_writes = log == 0 && (!writable(path, &meta) || !writable_folder(folder));
        let side_files = wal::log_path(path).exists() || wal::index_path(path).exists();
        let tidy = Tidy((!nobody_writes && !side_files).then(|| path.to_path_buf()));
        let conn = if nobody_writes {
            immutable(path).map_err(err)?
        } else {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
            conn.pragma_update(None, "busy_timeout", "5000").map_err(err)?;
            conn
        };
        quick_check(&conn, path).map_err(|e| match e {
            StoreError::Other { detail, .. } if log > 0 => StoreError::Other {
                path: path.into(),
                detail: format!(
                    "{detail}: the journal has a write-ahead log ({}), which a reader cannot use without \
                     write access to its folder; copy the journal with its -wal and -shm files to a \
                     writable folder and read it there",
                    wal::log_path(path).display()
                ),
            },
            e => e,
        })?;
        let live: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        let version = version.max(live);
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.into(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            refuse_foreign(&conn, path)?;
        }
        let (reader, snapshot) = if version < SCHEMA_VERSION { snapshot(&conn, path)? } else { (conn, None) };
        Ok(SqliteStore {
            path: path.into(),
            reader: Mutex::new(reader),
            writer: writer::Writer::read_only(path.into()),
            _snapshot: snapshot,
            _tidy: tidy,
        })
    }

    /// Checks that the journal on disk holds what this process committed: the write-ahead log
    /// against SQLite's index of it (`wal.rs`), copied into the database at once if something
    /// scratched it, then SQLite's `quick_check`. A command calls this before it reports what it
    /// did (a run's outcome, an operator command recorded). On damage the error is
    /// [`StoreError::Damaged`], the `-damaged` note is written and this process never copies the
    /// log into the database.
    pub async fn verify(&self) -> Result<(), StoreError> {
        // The check itself runs on the writer thread after this empty commit, outside any
        // transaction, where a checkpoint can run.
        self.writer
            .run(|_| {
                wal::request_check();
                Ok(())
            })
            .await
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
        self.writer.run(move |conn| sql::apply(conn, &changes).map_err(|e| apply_error(&path, e))).await
    }

    /// Applies `changes` atomically if, inside the same transaction, `fence` proves its holder
    /// still holds the run's lease (which is then extended to `expires_at`); otherwise nothing
    /// is written and the error is [`StoreError::Fenced`]. Every write of a driving process goes
    /// through here, so a process that lost its lease can never change the run again.
    pub async fn apply_fenced(
        &self,
        fence: &Fence,
        expires_at: i64,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fence = fence.clone();
        self.writer
            .run(move |conn| {
                if !sql::fence(conn, &fence, expires_at).map_err(|e| StoreError::from_sqlite(&path, e))? {
                    return Err(StoreError::Fenced { run_id: fence.run_id });
                }
                sql::apply(conn, &changes).map_err(|e| apply_error(&path, e))
            })
            .await
    }

    /// Takes the lease of `run_id` for `me` if it is free, expired, or held by a process of this
    /// boot that held the OS lock the caller now holds (`os_locked`: that process is dead);
    /// otherwise returns the live holder.
    pub async fn acquire_lease(
        &self,
        run_id: RunId,
        me: LeaseRecord,
        now: i64,
        os_locked: bool,
    ) -> Result<Result<(), LeaseRecord>, StoreError> {
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::acquire_lease(conn, run_id, &me, now, os_locked)
                    .map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    /// Extends the lease; false if it is no longer ours.
    pub async fn renew_lease(
        &self,
        run_id: RunId,
        holder: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::renew_lease(conn, run_id, &holder, expires_at)
                    .map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, run_id: RunId, holder: &str) -> Result<(), StoreError> {
        let holder = holder.to_string();
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::release_lease(conn, run_id, &holder).map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| StoreError::from_sqlite(&self.path, e))
    }

    /// A run.
    pub fn run(&self, run_id: RunId) -> Result<RunRecord, StoreError> {
        self.read(|c| sql::run(c, run_id))?
            .ok_or_else(|| StoreError::NotFound(format!("no run {run_id} in {}", self.path.display())))
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.read(sql::runs)
    }

    /// Every step instance of a run, in insertion order of their keys' steps.
    pub fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.read(|c| sql::steps(c, run_id))
    }

    /// Every attempt of a run.
    pub fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(|c| sql::attempts(c, run_id))
    }

    /// The run's events after `after` (0 for all), in order.
    pub fn events(&self, run_id: RunId, after: i64) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|c| sql::events(c, run_id, after))
    }

    /// Operator commands not applied yet.
    pub fn pending_requests(&self, run_id: RunId) -> Result<Vec<RequestRecord>, StoreError> {
        self.read(|c| sql::pending_requests(c, run_id))
    }

    /// The current lease holder, if any.
    pub fn lease(&self, run_id: RunId) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(|c| sql::lease(c, run_id))
    }

    /// A checkpoint value.
    pub fn checkpoint(&self, run_id: RunId, step_key: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| sql::checkpoint(c, run_id, step_key, key))
    }

    /// Stores a plugin component under its sha256 unless the journal has it; true if it was new.
    pub async fn put_plugin_component(
        &self,
        sha256: String,
        name: String,
        version: String,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let path = self.path.clone();
        self.writer
            .run(move |conn| {
                sql::put_plugin_component(conn, &sha256, &name, &version, &bytes)
                    .map_err(|e| StoreError::from_sqlite(&path, e))
            })
            .await
    }

    /// Whether a plugin component is stored under `sha256`.
    pub fn has_plugin_component(&self, sha256: &str) -> Result<bool, StoreError> {
        self.read(|c| sql::has_plugin_component(c, sha256))
    }

    /// The plugin components stored, by digest, without their bytes.
    pub fn plugin_components(&self) -> Result<Vec<PluginComponentRecord>, StoreError> {
        self.read(sql::plugin_components)
    }

    /// Everything of a run and its lease, in one snapshot; `None` for a run it does not hold.
    pub fn run_copy(&self, run_id: RunId) -> Result<Option<RunCopy>, StoreError> {
        self.read(|c| sql::run_copy(c, run_id))
    }

    /// The bytes of the plugin component stored under `sha256`.
    pub fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| sql::plugin_component(c, sha256))
    }

    /// How many checkpoint keys a step instance holds besides `except`, and their bytes (keys and
    /// values together).
    pub fn checkpoint_usage(
        &self,
        run_id: RunId,
        step_key: &str,
        except: &str,
    ) -> Result<(usize, usize), StoreError> {
        self.read(|c| sql::checkpoint_usage(c, run_id, step_key, except))
    }
}

/// The store error of a list of changes that was not applied.
fn apply_error(path: &Path, e: sql::ApplyError) -> StoreError {
    match e {
        sql::ApplyError::Sqlite(e) => StoreError::from_sqlite(path, e),
        sql::ApplyError::Refused(message) => StoreError::Conflict(message),
    }
}

/// Refuses a journal found damaged before (its `-damaged` note exists).
fn refuse_damaged(path: &Path) -> Result<(), StoreError> {
    match wal::read_note(path) {
        Some(detail) => Err(StoreError::Damaged { path: path.into(), detail }),
        None => Ok(()),
    }
}

/// Creates a new journal at `path`, with its schema, such that no process ever finds a file at
/// `path` without one: it is built under a temporary name in the same folder and hard-linked into
/// place. A link, unlike a rename, fails when a file appeared at `path` meanwhile (another process
/// creating the journal at the same moment); that file is then used, and this one removed.
///
/// This is what lets [`check_existing`] refuse an empty file. SQLite itself leaves a database
/// file zero-length only between creating it and its first write; a journal built this way is
/// linked after its migrations committed, so an empty file at a journal's path was not left by
/// this drover: it may be a journal truncated by something else, and taking it for a new one
/// (as drover once did) would hide that. An older drover killed in that window left an empty file
/// too; it held nothing, and the error says to remove it.
fn create(path: &Path) -> Result<(), StoreError> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let err = |e| match StoreError::from_sqlite(path, e) {
        StoreError::Other { .. } if !writable_folder(folder) => StoreError::ReadOnly { path: path.into() },
        e => e,
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let building = folder.join(format!(".{name}.new-{}", ulid::Ulid::generate()));
    let built = (|| {
        let conn = Connection::open_with_flags(
            &building,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(err)?;
        migrate(&conn, path)?;
        conn.close().map_err(|(_, e)| err(e))
    })();
    let linked = built.and_then(|()| match std::fs::hard_link(&building, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // No hard links on this file system (FAT, some network mounts): a rename, which would
        // replace a journal another process linked in the same instant, hence the check first.
        Err(_) if !path.exists() => std::fs::rename(&building, path).map_err(|e| StoreError::Other {
            path: path.into(),
            detail: format!("cannot move the new journal into place: {e}"),
        }),
        Err(_) => Ok(()),
    });
    let _ = std::fs::remove_file(format!("{}-journal", building.display()));
    let _ = std::fs::remove_file(&building);
    // The new name is durable once the folder is.
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    linked
}

/// The schema version in the header of the SQLite file at `path` (read directly, no SQLite
/// connection), refusing a file that is not SQLite's or is of a newer schema.
fn header_version(path: &Path) -> Result<i64, StoreError> {
    let other = |detail: String| StoreError::Other { path: path.into(), detail };
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
    Ok(version)
}

/// Whether this process may write the file: its mode has a write bit (as root, the only thing
/// that stops a write; a 444 journal is refused for writing) and `access(2)` agrees.
fn writable(path: &Path, meta: &std::fs::Metadata) -> bool {
    !meta.permissions().readonly() && access_w(path)
}

/// Whether this process may create files in `folder` (the log and its index).
fn writable_folder(folder: &Path) -> bool {
    std::fs::metadata(folder).is_ok_and(|m| !m.permissions().readonly()) && access_w(folder)
}

#[expect(unsafe_code, reason = "std has no safe access(2)")]
fn access_w(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// A connection that reads the file alone, as it is: no locks, no `-wal` or `-shm` (and no log
/// read). Only for a file no process can be writing.
fn immutable(path: &Path) -> rusqlite::Result<Connection> {
    // In a URI, `?` and `#` would end the path, and `%` starts an escape.
    let escaped = path.display().to_string().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
    Connection::open_with_flags(
        format!("file:{escaped}?immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
}

/// SQLite's `quick_check`, as a store error.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| StoreError::from_sqlite(path, e))?;
    if check != "ok" {
        return Err(StoreError::Corrupt { path: path.into(), detail: format!("quick_check: {check}") });
    }
    Ok(())
}

/// Refuses a schema-less SQLite file that holds tables: someone else's database.
fn refuse_foreign(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| StoreError::from_sqlite(path, e))?;
    if tables > 0 {
        return Err(StoreError::Corrupt {
            path: path.into(),
            detail: "an SQLite database, but not Drover's".into(),
        });
    }
    Ok(())
}

/// For a reader of a journal of an older schema: a consistent copy (`VACUUM INTO`, which only
/// reads the journal) in a private temporary folder, migrated, opened read-only.
fn snapshot(conn: &Connection, path: &Path) -> Result<(Connection, Option<tempfile::TempDir>), StoreError> {
    let err = |e| StoreError::from_sqlite(path, e);
    let dir = tempfile::tempdir().map_err(|e| StoreError::Other {
        path: path.into(),
        detail: format!("cannot make a temporary copy to read a journal of an older schema: {e}"),
    })?;
    let copy = dir.path().join("journal.db");
    conn.execute("VACUUM INTO ?1", [copy.display().to_string()]).map_err(err)?;
    let writable = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(err)?;
    migrate(&writable, &copy)?;
    drop(writable);
    let reader = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    Ok((reader, Some(dir)))
}

/// Read-only checks of an existing file, before a writing command writes to it. Nothing here
/// creates a file either: the header is read directly, and the integrity check runs on an
/// `immutable` connection, which takes no locks and makes no `-wal` or `-shm` files.
fn check_existing(path: &Path) -> Result<(), StoreError> {
    let other = |detail: String| StoreError::Other { path: path.into(), detail };
    let meta = std::fs::metadata(path).map_err(|e| other(e.to_string()))?;
    if meta.permissions().readonly() {
        return Err(StoreError::ReadOnly { path: path.into() });
    }
    if meta.len() == 0 {
        return Err(StoreError::Empty { path: path.into() });
    }
    let version = header_version(path)?;
    let err = |e| StoreError::from_sqlite(path, e);
    // A `-wal` file means another process has the database open (or died with it open): its
    // latest commits are in the log, and a checkpoint may be copying pages into the file right
    // now, so the file alone is no consistent snapshot. Then check through an ordinary read-only
    // connection, which reads the log and takes the usual locks; the side files exist anyway.
    let conn = if wal::log_path(path).exists() {
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
            return quick_check(&conn, path);
        }
        conn
    } else {
        immutable(path).map_err(err)?
    };
    quick_check(&conn, path)?;
    if version == 0 {
        refuse_foreign(&conn, path)?;
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
    use std::os::unix::fs::FileExt as _;

    /// A store with `rows` rows of 2 kB committed one by one into a table of its own, so that
    /// pages are logged again and again; returns each logged frame's page number.
    async fn logged(db: &Path, rows: usize) -> (SqliteStore, Vec<u32>) {
        let store = SqliteStore::open(db, Durability::Normal).unwrap();
        for i in 0..rows {
            store
                .writer
                .run(move |c| {
                    let row = format!("{i} {}", "x".repeat(2000));
                    c.execute_batch("CREATE TABLE IF NOT EXISTS scratch (x TEXT)")
                        .and_then(|()| c.execute("INSERT INTO scratch VALUES (?1)", [row]))
                        .map_err(|e| StoreError::Other { path: "scratch".into(), detail: e.to_string() })
                })
                .await
                .unwrap();
        }
        let log = std::fs::read(wal::log_path(db)).unwrap();
        let pages =
            log[32..].chunks_exact(24 + 4096).map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]])).collect();
        (store, pages)
    }

    fn scribble_frame(db: &Path, frame: usize) {
        let file = std::fs::OpenOptions::new().write(true).open(wal::log_path(db)).unwrap();
        file.write_all_at(&[0x5a; 64], (32 + (frame - 1) * (24 + 4096) + 24 + 1000) as u64).unwrap();
    }

    fn rows(store: &SqliteStore) -> i64 {
        store.read(|c| c.query_row("SELECT count(*) FROM scratch", [], |r| r.get(0))).unwrap()
    }

    #[tokio::test]
    async fn the_writer_checks_and_checkpoints_the_log_every_1000_frames_and_stops_at_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let (store, pages) = logged(&db, 100).await;
        // A full leaf page, logged once and never again: its only frame is its latest version.
        let n =
            (1..pages.len()).find(|&n| pages.iter().filter(|&&p| p == pages[n - 1]).count() == 1).unwrap();
        scribble_frame(&db, n);
        let mut refused = None;
        for i in 0..2000 {
            let row = format!("more {i} {}", "y".repeat(2000));
            let done = store
                .writer
                .run(move |c| {
                    c.execute("INSERT INTO scratch VALUES (?1)", [row])
                        .map(|_| ())
                        .map_err(|e| StoreError::Other { path: "scratch".into(), detail: e.to_string() })
                })
                .await;
            if let Err(e) = done {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("the damage was never found");
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
        assert!(at < 1000, "found only after {at} more commits");
        assert!(wal::note_path(&db).exists());
        drop(store);
        // Undamaged, the log is checked and copied every 1000 frames: it never grows much past it.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let (store, _) = logged(&db, 1500).await;
        let frames = (std::fs::metadata(wal::log_path(&db)).unwrap().len() - 32) / (24 + 4096);
        assert!(frames < 1100, "the log holds {frames} frames");
        assert_eq!(rows(&store), 1500);
    }

    #[tokio::test]
    async fn verify_copies_a_log_scratched_only_where_a_checked_newer_version_supersedes_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let (store, pages) = logged(&db, 30).await;
        let superseded = (1..pages.len()).find(|&n| pages[n..].contains(&pages[n - 1])).unwrap();
        // Found intact, with the newer version of the page: damage to the older one after that
        // cannot have reached any page SQLite wrote.
        store.verify().await.unwrap();
        scribble_frame(&db, superseded);
        store.verify().await.unwrap();
        assert_eq!(std::fs::metadata(wal::log_path(&db)).unwrap().len(), 0, "the log was not copied");
        assert_eq!(rows(&store), 30);
        store.apply(Vec::new()).await.unwrap();
        drop(store);
        assert!(!wal::note_path(&db).exists());
        let reopened = SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(rows(&reopened), 30);
    }

    #[tokio::test]
    async fn verify_refuses_a_log_scratched_before_any_check_could_vouch_for_the_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let (store, pages) = logged(&db, 30).await;
        let superseded = (1..pages.len()).find(|&n| pages[n..].contains(&pages[n - 1])).unwrap();
        scribble_frame(&db, superseded);
        let e = store.verify().await.unwrap_err();
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
    }

    #[tokio::test]
    async fn verify_refuses_a_log_whose_latest_page_version_was_overwritten_and_so_does_every_later_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let (store, pages) = logged(&db, 30).await;
        scribble_frame(&db, pages.len());
        let damaged = |e: &StoreError| matches!(e, StoreError::Damaged { .. });
        let e = store.verify().await.unwrap_err();
        assert!(damaged(&e), "{e}");
        assert!(e.to_string().contains(&format!("frame {}", pages.len())), "{e}");
        let e = store.apply(Vec::new()).await.unwrap_err();
        assert!(damaged(&e), "a commit after the damage: {e}");
        let before = std::fs::read(&db).unwrap();
        drop(store);
        assert_eq!(std::fs::read(&db).unwrap(), before, "the damaged log was copied into the database");
        assert!(wal::log_path(&db).exists(), "the damaged log was not kept");
        let e = SqliteStore::open(&db, Durability::Full).err().unwrap();
        assert!(damaged(&e), "{e}");
        let e = SqliteStore::open_read_only(&db).err().unwrap();
        assert!(damaged(&e), "{e}");
    }

    #[test]
    fn closing_the_store_removes_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let store = SqliteStore::open(&db, Durability::Full).unwrap();
        assert!(store.runs().unwrap().is_empty());
        drop(store);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["j.db"]);
    }
}
