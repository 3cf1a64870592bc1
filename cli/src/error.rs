//! Why a command failed, as a type. Every command returns a [`CliError`]; each kind wraps the
//! library's own error, and [`CliError::exit`] picks the exit code by matching on it, never by
//! downcasting or by reading the message. Only `main` turns one into text and a code.

use std::path::PathBuf;

use drover_engine::plugin::LoadError;
use drover_engine::plugin::registry::RegistryError;
use drover_engine::run::RunError;
use drover_engine::store::StoreError;
use drover_engine::store::copy::CopyError;

use crate::exit::{Exit, store_exit};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input file is wrong; nothing was done.
    #[error("{0}")]
    Usage(String),
    /// The run journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Starting, driving or changing a run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The installed plugins could not be read or changed, or the one asked for is missing.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The plugin host could not start, or an installed plugin could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin file named on the command line is not a usable plugin.
    #[error("{path}: {source}")]
    PluginFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        source: LoadError,
    },
    /// A file or folder could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`write the report to`, `create`).
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Data could not be printed as JSON.
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `drover journal copy` stopped.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The users file of `drover serve` could not be read, written or changed.
    #[error(transparent)]
    Users(#[from] drover_web::auth::UsersError),
}

impl CliError {
    /// A failed file operation: `action` is what was being done, such as `write the plan to`.
    pub fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| CliError::Io { action, path, source }
    }

    /// The exit code this error ends the process with. No wildcard: a new kind of error, here
    /// or in the library, must be given its code.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Store(e) => store_exit(e),
            CliError::Run(e) => run_exit(e),
            CliError::Registry(e) => registry_exit(e),
            CliError::Load(_) | CliError::PluginFile { .. } | CliError::Io { .. } | CliError::Json(_) => {
                Exit::Failure
            }
            CliError::Copy(e) => copy_exit(e),
            CliError::Users(e) => users_exit(e),
        }
    }
}

/// The exit code of every way a users-file command fails.
fn users_exit(e: &drover_web::auth::UsersError) -> Exit {
    use drover_web::auth::UsersError;
    match e {
        UsersError::NoSuchUser { .. } => Exit::NotFound,
        UsersError::BadName(_) | UsersError::EmptyPassword => Exit::Usage,
        UsersError::Io { .. }
        | UsersError::Exposed { .. }
        | UsersError::Invalid { .. }
        | UsersError::Hash(_) => Exit::Failure,
    }
}

/// The exit code of every way a journal copy stops.
fn copy_exit(e: &CopyError) -> Exit {
    match e {
        CopyError::Store(store) => store_exit(store),
        CopyError::Driven { .. } => Exit::Busy,
        CopyError::Differs { .. } => Exit::Failure,
        CopyError::DamagedComponent { .. } => Exit::Database,
    }
}

/// The exit code of every kind of run error.
fn run_exit(e: &RunError) -> Exit {
    match e {
        RunError::Store(store) => store_exit(store),
        RunError::LeaseHeld { .. } | RunError::LeaseLost { .. } => Exit::Busy,
        RunError::Registry(registry) => registry_exit(registry),
        RunError::Plugin(_)
        | RunError::Params(_)
        | RunError::Definition { .. }
        | RunError::Operator(_)
        | RunError::NotApprover { .. } => Exit::Failure,
    }
}

/// The exit code of every kind of registry error.
fn registry_exit(e: &RegistryError) -> Exit {
    match e {
        RegistryError::NotInstalled { .. } => Exit::NotFound,
        RegistryError::Io { .. }
        | RegistryError::Invalid { .. }
        | RegistryError::Conflict { .. }
        | RegistryError::Damaged { .. } => Exit::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_installed() -> RegistryError {
        RegistryError::NotInstalled {
            reference: "noop@^1".parse().expect("a plugin reference"),
            installed: vec![],
        }
    }

    #[test]
    fn each_kind_of_error_picks_its_code_wherever_the_library_wraps_it() {
        let run_id = "run_01hzy2h6x3v8k9m4n5p6q7r8s9".parse().expect("a run id");
        let cases = [
            (CliError::Usage("--param x: expected NAME=VALUE".into()), Exit::Usage),
            (CliError::from(not_installed()), Exit::NotFound),
            (CliError::from(RunError::Registry(not_installed())), Exit::NotFound),
            (CliError::from(RunError::LeaseLost { run_id }), Exit::Busy),
            (CliError::from(RunError::Operator("the step is not failed".into())), Exit::Failure),
            (CliError::from(LoadError::NotWasm), Exit::Failure),
        ];
        for (error, exit) in cases {
            assert_eq!(error.exit(), exit, "{error}");
        }
    }

    #[test]
    fn a_journal_copy_exits_5_for_a_driven_run_1_for_a_differing_destination_and_6_for_a_journal() {
        let run_id: drover_engine::journal::RunId =
            "run_01hzy2h6x3v8k9m4n5p6q7r8s9".parse().expect("a run id");
        let holder = drover_engine::store::LeaseRecord {
            holder: "h".into(),
            host: "bts01".into(),
            pid: 42,
            user: "op".into(),
            expires_at: 1,
            boot_id: String::new(),
        };
        let cases = [
            (CopyError::Driven { runs: vec![(run_id, holder)], copied: 0 }, Exit::Busy),
            (
                CopyError::Differs { destination: "d".into(), runs: vec![(run_id, vec!["events"])] },
                Exit::Failure,
            ),
            (CopyError::Store(StoreError::ReadOnly { path: "/j.db".into() }), Exit::Database),
        ];
        for (error, exit) in cases {
            let error = CliError::from(error);
            assert_eq!(error.exit(), exit, "{error}");
        }
    }

    #[test]
    fn a_plugin_file_error_names_the_file() {
        let error = CliError::PluginFile { path: "step.wasm".into(), source: LoadError::NotWasm };
        assert!(error.to_string().starts_with("step.wasm: not a WebAssembly component"), "{error}");
    }
}
