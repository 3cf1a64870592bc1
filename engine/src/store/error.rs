//! Store errors, split by what the operator does about them.

use std::path::PathBuf;

/// Why the run journal could not be opened, read or written. `path` is the journal as people see
/// it: an SQLite file, or a PostgreSQL URL with its password redacted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database file (or its folder) cannot be written.
    #[error(
        "the database {path} is read-only: check the file's and folder's permissions (an SQLite file), whether the server is a standby or the role may write (PostgreSQL), or pass another --db"
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// Not an SQLite database, or damaged.
    #[error("the database {path} is corrupt or not a Drover database: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// No journal at the path, and the command only reads one (it never creates a journal).
    #[error(
        "no journal at {path}: nothing has run with it yet, or the journal is elsewhere: point drover at it with --db or DROVER_DB (the default is <home>/drover.db, home from --home or DROVER_HOME)"
    )]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// A zero-length file where the journal should be. Drover never leaves one (a new journal
    /// appears with its schema), so it is not taken for a new journal: it may be a journal that
    /// something outside drover truncated.
    #[error(
        "the database {path} is an empty file, not a Drover journal (drover never leaves an empty journal): if it should hold runs, restore it from a backup; to start a new journal there, remove the file"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Something outside drover changed the journal's files while drover used them: commits this
    /// process made are not all readable any more. Found by checking the write-ahead log against
    /// SQLite's own index of it (see `store/sqlite/wal.rs`); recorded in a `-damaged` file beside the
    /// journal, so every later command refuses it too.
    #[error(
        "the journal {path} was damaged by something outside drover ({detail}); drover stopped without copying the damaged log into the database: move the journal and its -wal, -shm and -damaged files aside for inspection and restore the journal from a backup, or remove only the -damaged file to go on with what SQLite can still read (the commits after the damage are lost; see docs/operations.md)"
    )]
    Damaged {
        /// The journal.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Written by a newer Drover.
    #[error(
        "the database {path} has schema version {found}, newer than this drover understands ({supported}): use a newer drover"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// Another process holds the journal's lock for longer than SQLite waits: a drover stopped
    /// (SIGSTOP, a debugger) inside a commit or while it opened or closed the journal, or a
    /// foreign program. A command that only reads waits for no commit, only for a file held
    /// exclusively: SQLite holds it so while a new journal switches to its write-ahead log, and
    /// while the last connection to close copies the log into the database and removes it.
    #[error(
        "the database {path} is locked by another process: a drover stopped inside a commit or while it opened or closed the journal, or another program, holds it; continue or end that process and try again"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The disk is full.
    #[error("the disk holding {path} is full: free space and resume")]
    Full {
        /// The file.
        path: PathBuf,
    },
    /// Something the store did not expect: a bug or an unusual SQLite failure.
    #[error("database error on {path}: {detail}")]
    Other {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The PostgreSQL server does not answer (it is down, restarting, or out of reach), or the
    /// connection broke while a commit was under way, so whether it committed is unknown.
    #[error("the journal {path} cannot be reached: {detail}")]
    Unreachable {
        /// The journal's URL, without its password.
        path: PathBuf,
        /// What the client said.
        detail: String,
    },
    /// A record the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the run's state (approving a step that does not wait, say).
    #[error("{0}")]
    Conflict(String),
    /// This process no longer holds the run's lease: another process took it over, and nothing
    /// this one wanted to write was written.
    #[error("run {run_id}: this process lost its lease; another process drives the run now")]
    Fenced {
        /// The run.
        run_id: crate::journal::RunId,
    },
    /// The writer thread is gone (the process is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
}

impl StoreError {
    /// Classifies an SQLite error on `path`.
    pub(crate) fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) if is_read_only(&path) => {
                StoreError::ReadOnly { path }
            }
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path },
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt { path, detail: e.to_string() }
            }
            Some(ErrorCode::DiskFull) => StoreError::Full { path },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
            _ => StoreError::Other { path, detail: e.to_string() },
        }
    }
}

fn is_read_only(path: &std::path::Path) -> bool {
    std::fs::metadata(path).map(|m| m.permissions().readonly()).unwrap_or(false)
}
