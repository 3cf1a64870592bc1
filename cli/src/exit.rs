//! Exit codes of `drover`, documented in `--help` and `docs/`, and the one mapping from the
//! error that ended a command to its code: by the error's type, never by its text.

use std::process::ExitCode;

use drover_engine::plugin::registry::RegistryError;
use drover_engine::run::RunError;
use drover_engine::store::StoreError;

/// What the process tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Success = 0,
    /// 1: the operation ran and failed (a plugin call failed, a file was refused).
    Failure = 1,
    /// 2: the command line or an input was wrong; nothing was done.
    Usage = 2,
    /// 3: what was asked for does not exist (a plugin not installed, a run unknown).
    NotFound = 3,
    /// 4: the run waits for an operator (an approval, a step that needs an operator).
    Waiting = 4,
    /// 5: another process drives the run.
    Busy = 5,
    /// 6: the run journal cannot be used (read-only, corrupt, newer schema, disk full).
    Database = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// An error that is the caller's mistake: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Text for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 done; 1 the operation failed; 2 bad command line or input; 3 not found (a run, a plugin, the journal); 4 the run waits for an operator; 5 another process drives the run; 6 the journal cannot be used (read-only, corrupt, empty, damaged, newer schema, disk full, locked).";

/// The exit code for an error that ended a command.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<UsageError>().is_some() {
        return Exit::Usage;
    }
    if let Some(RegistryError::NotInstalled { .. }) = e.downcast_ref::<RegistryError>() {
        return Exit::NotFound;
    }
    match e.downcast_ref::<RunError>() {
        Some(RunError::LeaseHeld { .. } | RunError::LeaseLost { .. }) => return Exit::Busy,
        Some(RunError::Registry(RegistryError::NotInstalled { .. })) => return Exit::NotFound,
        Some(RunError::Store(store)) => return store_exit(store),
        _ => {}
    }
    // A store error as the error itself, under context, or as the source of another.
    match e.chain().find_map(|cause| cause.downcast_ref::<StoreError>()) {
        Some(store) => store_exit(store),
        None => Exit::Failure,
    }
}

/// The exit code of every kind of store error. No wildcard: a new kind must be given its code.
pub fn store_exit(e: &StoreError) -> Exit {
    match e {
        StoreError::NotFound(_) | StoreError::Missing { .. } => Exit::NotFound,
        // Both mean another process changed the run under this one: it lost its lease, or the
        // journal refused to rewrite what another process recorded.
        StoreError::Fenced { .. } | StoreError::Conflict(_) => Exit::Busy,
        StoreError::ReadOnly { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Empty { .. }
        | StoreError::Damaged { .. }
        | StoreError::NewerSchema { .. }
        | StoreError::Full { .. }
        | StoreError::Locked { .. }
        | StoreError::Other { .. }
        | StoreError::WriterGone => Exit::Database,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> std::path::PathBuf {
        "/j.db".into()
    }

    #[test]
    fn every_journal_fault_exits_6_however_it_is_wrapped() {
        let faults = [
            StoreError::ReadOnly { path: path() },
            StoreError::Corrupt { path: path(), detail: "x".into() },
            StoreError::Empty { path: path() },
            StoreError::Damaged { path: path(), detail: "x".into() },
            StoreError::NewerSchema { path: path(), found: 9, supported: 1 },
            StoreError::Full { path: path() },
            StoreError::Other { path: path(), detail: "database is locked".into() },
            StoreError::WriterGone,
        ];
        for fault in faults {
            let bare = anyhow::Error::from(fault.clone());
            let in_run = anyhow::Error::from(RunError::Store(fault.clone()));
            let with_context = anyhow::Error::from(fault.clone()).context("while reading the run");
            for e in [bare, in_run, with_context] {
                assert_eq!(exit_for(&e), Exit::Database, "{e:#}");
            }
        }
        let missing = anyhow::Error::from(StoreError::Missing { path: path() });
        assert_eq!(exit_for(&missing), Exit::NotFound);
    }
}
