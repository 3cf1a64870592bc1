//! The `drover` binary: parses the command line, sets up logging to stderr, runs the command
//! and turns its result into an exit code. The arguments and the dispatch are in `command`, one
//! module per subcommand; all workflow behaviour lives in the `drover_engine` library.

mod approve;
mod cancel;
mod command;
mod compensate;
mod completions;
mod context;
mod env;
mod error;
mod events;
mod exit;
mod graph;
mod inventory;
mod journal;
mod output;
mod plan;
mod plugin;
mod progress;
mod report;
mod resume;
mod retry;
mod run;
mod runs;
mod serve;
mod skip;
mod status;
mod users;
mod validate;
mod worker;
mod workflow;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use command::{Cli, Global};
use error::CliError;
use exit::Exit;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let default = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env(env::DROVER_LOG).unwrap_or_else(|_| EnvFilter::new(default));
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
    match runtime.block_on(command::run(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            let message = e.to_string();
            // Errors may quote plugin or target text: its control characters are shown, not sent.
            eprintln!("error: {}", drover_engine::display::visible(&message));
            // Error types that already print their source in their message are not repeated.
            let causes = std::iter::successors(std::error::Error::source(&e), |c| c.source());
            for cause in causes.map(|c| c.to_string()).filter(|c| !message.contains(c.as_str())) {
                eprintln!("  caused by: {}", drover_engine::display::visible(&cause));
            }
            e.exit().into()
        }
    }
}

/// Dies quietly when stdout is closed (`drover plugin list | head`), as Unix tools do, instead of
/// panicking in `println!`.
#[expect(unsafe_code, reason = "std has no safe way to set a signal's disposition")]
fn restore_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
