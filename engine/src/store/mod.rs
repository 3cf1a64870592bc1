//! The run journal: one interface, [`Store`], over two backends: an SQLite file, the embedded
//! default (`sqlite/`), and a shared PostgreSQL database for teams whose workers run on several
//! machines or at both sites (`postgres/`). Callers never see which: reads are synchronous,
//! writes are async and return once committed, and both backends pass the same conformance suite
//! (`tests/tests/store_conformance.rs`).
//!
//! **Invariant:** only `sqlite/` talks to SQLite and only `postgres/` to PostgreSQL; neither
//! driver's types leave its module.
//!
//! **Invariant:** the event journal is append-only (enforced by triggers on both backends), and
//! every change to the current-state tables is committed in the same transaction as the event
//! that explains it.
//!
//! **Invariant (fencing):** [`Store::apply_fenced`] checks the lease inside the transaction that
//! writes, on both backends, so a process that lost its lease commits nothing.

pub mod copy;
mod error;
mod location;
mod postgres;
mod records;
mod sqlite;

use std::path::Path;

use crate::journal::RunId;

pub use error::StoreError;
pub use location::{Location, PgUrl, redact};
pub use records::{
    AttemptRecord, AttemptState, Change, CheckpointRecord, EventRecord, Fence, LeaseRecord,
    PluginComponentRecord, RequestRecord, RunCopy, RunRecord, RunState, StepRecord, StepState, StoredEvent,
    StoredRequest,
};
pub use sqlite::{Durability, SCHEMA_VERSION};

/// An open run journal.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend the store has.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($store) => $call,
            Backend::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens the SQLite journal at `path` for a command that writes: creates it if no file is
    /// there, checks it and applies migrations.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Sqlite(sqlite::SqliteStore::open(path, durability)?) })
    }

    /// Opens the SQLite journal at `path` for a command that only reads it: nothing is created,
    /// migrated or written (see [`Store::open_at_read_only`]).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Sqlite(sqlite::SqliteStore::open_read_only(path)?) })
    }

    /// Opens the journal at `location` for a command that writes. An SQLite file is created if
    /// missing; a PostgreSQL database must exist, and gets Drover's tables on first use. Either is
    /// migrated to this build's schema; a newer schema, a read-only file or server (a standby),
    /// and an unreachable server are errors. `durability` applies to SQLite; PostgreSQL commits
    /// as its server is configured (`synchronous_commit`).
    pub fn open_at(location: &Location, durability: Durability) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open(path, durability),
            Location::Postgres(url) => {
                Ok(Store { backend: Backend::Postgres(postgres::PgStore::open(url)?) })
            }
        }
    }

    /// Opens the journal at `location` for a command that only reads it (`runs`, `status`,
    /// `events`, `report`): nothing is created, migrated or written, and every write through this
    /// store fails with [`StoreError::ReadOnly`]. A missing journal is [`StoreError::Missing`].
    pub fn open_at_read_only(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open_read_only(path),
            Location::Postgres(url) => {
                Ok(Store { backend: Backend::Postgres(postgres::PgStore::open_read_only(url)?) })
            }
        }
    }

    /// The journal's file, for an SQLite journal (leases keep OS locks beside it).
    pub fn local_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// The folder of the OS lock files that tell, on this machine, whether a lease's holder lives
    /// (`run/lease.rs`): `<journal>-leases` beside an SQLite file; for PostgreSQL a folder named by
    /// the journal's id (made with its tables, the same however the URL is spelled) under
    /// `drover-leases` in the temporary directory. `None` when the journal has no id (then only
    /// expiry tells).
    pub fn lease_lock_dir(&self) -> Option<std::path::PathBuf> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let name = s.path().file_name()?.to_string_lossy().into_owned();
                Some(s.path().with_file_name(format!("{name}-leases")))
            }
            Backend::Postgres(s) => Some(std::env::temp_dir().join("drover-leases").join(s.journal_id()?)),
        }
    }

    /// Where the journal is, as people see it: a file, or a URL without its password.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().display().to_string(),
            Backend::Postgres(s) => s.location().to_string(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Checks that the journal holds what this process committed before a command reports it:
    /// for SQLite the write-ahead log against SQLite's index of it, then `quick_check` (see
    /// `sqlite/wal.rs`); PostgreSQL acknowledges a commit only once it holds it, so there it
    /// checks that the server still answers.
    pub async fn verify(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.verify().await)
    }

    /// Transactions committed through this store so far (for benchmarks and diagnostics).
    pub fn commits(&self) -> u64 {
        dispatch!(self, s => s.commits())
    }

    /// Applies `changes` atomically; returns when they are committed.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        dispatch!(self, s => s.apply(changes).await)
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
        dispatch!(self, s => s.apply_fenced(fence, expires_at, changes).await)
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
        dispatch!(self, s => s.acquire_lease(run_id, me, now, os_locked).await)
    }

    /// Extends the lease; false if it is no longer ours.
    pub async fn renew_lease(
        &self,
        run_id: RunId,
        holder: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.renew_lease(run_id, holder, expires_at).await)
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, run_id: RunId, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.release_lease(run_id, holder).await)
    }

    /// Stores a plugin component under its sha256 (hex) unless the journal has it already; true
    /// if it was new. The caller computed `sha256` from `bytes`; a reader checks it again.
    pub async fn put_plugin_component(
        &self,
        sha256: &str,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let (sha256, name, version) = (sha256.to_string(), name.to_string(), version.to_string());
        dispatch!(self, s => s.put_plugin_component(sha256, name, version, bytes).await)
    }

    /// Whether a plugin component is stored under `sha256` (without reading its bytes).
    pub fn has_plugin_component(&self, sha256: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.has_plugin_component(sha256))
    }

    /// The plugin components the journal holds, by digest, without their bytes.
    pub fn plugin_components(&self) -> Result<Vec<PluginComponentRecord>, StoreError> {
        dispatch!(self, s => s.plugin_components())
    }

    /// Everything the journal holds of a run, read in one snapshot: its row, step instances,
    /// attempts, events and operator commands as stored, checkpoints, and its lease at that
    /// moment; `None` for a run it does not hold. `drover journal copy` copies it whole
    /// ([`copy`]) but for the lease.
    pub fn run_copy(&self, run_id: RunId) -> Result<Option<RunCopy>, StoreError> {
        dispatch!(self, s => s.run_copy(run_id))
    }

    /// The bytes stored under `sha256`, as stored (unchecked).
    pub fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.plugin_component(sha256))
    }

    /// A run.
    pub fn run(&self, run_id: RunId) -> Result<RunRecord, StoreError> {
        dispatch!(self, s => s.run(run_id))
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        dispatch!(self, s => s.runs())
    }

    /// Every step instance of a run, in insertion order of their keys' steps.
    pub fn steps(&self, run_id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        dispatch!(self, s => s.steps(run_id))
    }

    /// Every attempt of a run.
    pub fn attempts(&self, run_id: RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        dispatch!(self, s => s.attempts(run_id))
    }

    /// The run's events after `after` (0 for all), in order.
    pub fn events(&self, run_id: RunId, after: i64) -> Result<Vec<EventRecord>, StoreError> {
        dispatch!(self, s => s.events(run_id, after))
    }

    /// Operator commands not applied yet.
    pub fn pending_requests(&self, run_id: RunId) -> Result<Vec<RequestRecord>, StoreError> {
        dispatch!(self, s => s.pending_requests(run_id))
    }

    /// The current lease holder, if any.
    pub fn lease(&self, run_id: RunId) -> Result<Option<LeaseRecord>, StoreError> {
        dispatch!(self, s => s.lease(run_id))
    }

    /// A checkpoint value.
    pub fn checkpoint(&self, run_id: RunId, step_key: &str, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.checkpoint(run_id, step_key, key))
    }

    /// How many checkpoint keys a step instance holds besides `except`, and their bytes (keys and
    /// values together).
    pub fn checkpoint_usage(
        &self,
        run_id: RunId,
        step_key: &str,
        except: &str,
    ) -> Result<(usize, usize), StoreError> {
        dispatch!(self, s => s.checkpoint_usage(run_id, step_key, except))
    }
}
