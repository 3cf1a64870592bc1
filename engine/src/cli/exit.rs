//! Exit codes of `drover`, documented in `--help` and `docs/`.

use std::process::ExitCode;

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
pub const EXIT_CODES_HELP: &str =
    "Exit codes: 0 done; 1 the operation failed; 2 bad command line or input; 3 not found.";
