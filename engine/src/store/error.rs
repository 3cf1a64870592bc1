//! Store errors, split by what the operator does about them.

use std::path::PathBuf;

/// Why the run journal could not be opened, read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database file (or its folder) cannot be written.
    #[error(
        "the database {path} is read-only: check the file's and folder's permissions, or pass another --db"
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
    /// A record the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the run's state (approving a step that does not wait, say).
    #[error("{0}")]
    Conflict(String),
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
            _ => StoreError::Other { path, detail: e.to_string() },
        }
    }
}

fn is_read_only(path: &std::path::Path) -> bool {
    std::fs::metadata(path).map(|m| m.permissions().readonly()).unwrap_or(false)
}
