//! Exit codes of `drover`: the one list, documented in `--help` (generated from it) and
//! `docs/`. Which error gets which code is decided in `error.rs`, by the error's type.

use std::process::ExitCode;

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
    /// 6: the run journal cannot be used (read-only, corrupt, newer schema, disk full, unreachable).
    Database = 6,
}

impl Exit {
    /// Every exit code, in order.
    pub const ALL: [Exit; 7] = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::NotFound,
        Exit::Waiting,
        Exit::Busy,
        Exit::Database,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as `--help` says it. No wildcard: a new code must be described.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "done",
            Exit::Failure => "the operation failed",
            Exit::Usage => "bad command line or input",
            Exit::NotFound => "not found (a run, a plugin, the journal)",
            Exit::Waiting => "the run waits for an operator",
            Exit::Busy => "another process drives the run",
            Exit::Database => {
                "the journal cannot be used (read-only, corrupt, damaged, newer schema, disk full, locked, unreachable)"
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The exit-code list shown after `drover --help`, one code per line.
pub fn help() -> String {
    let lines: Vec<String> = Exit::ALL.iter().map(|e| format!("  {}  {}", e.code(), e.meaning())).collect();
    format!("Exit codes:\n{}", lines.join("\n"))
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
        | StoreError::Unreachable { .. }
        | StoreError::Other { .. }
        | StoreError::WriterGone => Exit::Database,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, CliError};
    use drover_engine::run::RunError;

    fn path() -> std::path::PathBuf {
        "/j.db".into()
    }

    /// The text `drover --help` prints, with its line wrapping undone (runs of white space as one
    /// space).
    fn help_text() -> String {
        let Err(help) = Cli::try_parse_from(["drover", "--help"]) else {
            panic!("--help parses as a request for help")
        };
        help.render().to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn help_lists_every_exit_code_with_its_meaning() {
        let help = help_text();
        for exit in Exit::ALL {
            let line = format!("{} {}", exit.code(), exit.meaning());
            assert!(help.contains(&line), "`drover --help` lacks exit code {exit:?} ({line:?}):\n{help}");
        }
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6], "ALL holds every code once, in order");
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
            StoreError::Unreachable {
                path: "postgres://drover:***@db/drover".into(),
                detail: "refused".into(),
            },
            StoreError::WriterGone,
        ];
        for fault in faults {
            for e in [CliError::from(fault.clone()), CliError::from(RunError::Store(fault.clone()))] {
                assert_eq!(e.exit(), Exit::Database, "{e}");
            }
        }
        assert_eq!(CliError::from(StoreError::Missing { path: path() }).exit(), Exit::NotFound);
    }
}
