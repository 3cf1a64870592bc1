//! The `drover` binary: parses the command line, sets up logging to stderr, runs the command
//! and turns its result into an exit code. All behaviour lives in the `cli` modules.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Exit, UsageError};
use drover_engine::plugin::registry::RegistryError;
use drover_engine::run::RunError;
use drover_engine::store::StoreError;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let default = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env(cli::env::DROVER_LOG).unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| drover_engine::secrets::RedactingWriter(std::io::stderr()))
        .with_target(false)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            let message = e.to_string();
            eprintln!("error: {message}");
            // Error types that already print their source in their message are not repeated.
            for cause in e.chain().skip(1).map(|c| c.to_string()).filter(|c| !message.contains(c.as_str())) {
                eprintln!("  caused by: {cause}");
            }
            exit_for(&e).into()
        }
    }
}

/// Dies quietly when stdout is closed (`drover plugin list | head`), as Unix tools do, instead of
/// panicking in `println!`.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The exit code for an error that ended a command.
fn exit_for(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<UsageError>().is_some() {
        return Exit::Usage;
    }
    if let Some(RegistryError::NotInstalled { .. }) = e.downcast_ref::<RegistryError>() {
        return Exit::NotFound;
    }
    let store = match e.downcast_ref::<RunError>() {
        Some(RunError::LeaseHeld { .. } | RunError::LeaseLost { .. }) => return Exit::Busy,
        Some(RunError::Registry(RegistryError::NotInstalled { .. })) => return Exit::NotFound,
        Some(RunError::Store(store)) => Some(store),
        _ => e.downcast_ref::<StoreError>(),
    };
    match store {
        Some(StoreError::NotFound(_)) => Exit::NotFound,
        Some(
            StoreError::ReadOnly { .. }
            | StoreError::Corrupt { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::Full { .. },
        ) => Exit::Database,
        _ => Exit::Failure,
    }
}
