//! `drover journal …`: the journal as a whole. `drover journal copy --to <FILE|URL>` copies every
//! run of the journal in effect (`--db`) into another one, of either backend: an SQLite journal
//! into the PostgreSQL database a team will share, or a PostgreSQL journal into an SQLite file
//! for an archive. The rules (what is copied, when it refuses, running it again) are
//! `drover_engine::store::copy`'s.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use drover_engine::run::{Clock as _, SystemClock};
use drover_engine::store::copy::{self, Progress};
use drover_engine::store::{Location, Store};
use serde_json::json;

use crate::{CliError, Exit, Global, context, output};

/// Journal commands.
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Copy every run of the journal (`--db`) and its plugin components into another journal.
    ///
    /// Each run goes in one transaction with its steps, attempts, events, checkpoints and operator
    /// commands, as stored; leases are not copied. A run being driven stops the copy before it
    /// writes anything. Runs the destination holds already are skipped when equal to the source's
    /// (run the copy again after an interruption) and refused when not; other runs there are left
    /// alone. See docs/operations.md.
    Copy(CopyArgs),
}

/// Arguments of `drover journal copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The destination: an SQLite file (created if missing) or a PostgreSQL URL
    /// (`postgres://user@host/database`; the database must exist).
    #[arg(long, value_name = "FILE|URL")]
    pub to: PathBuf,
}

/// Runs a journal command.
pub async fn run(global: &Global, command: JournalCommand) -> Result<Exit, CliError> {
    match command {
        JournalCommand::Copy(args) => copy(global, args).await,
    }
}

async fn copy(global: &Global, args: CopyArgs) -> Result<Exit, CliError> {
    let from = context::journal(global);
    let to = Location::parse(args.to.as_os_str());
    if same_journal(&from, &to) {
        return Err(CliError::Usage(format!(
            "--to names the journal in effect ({from}): copy it somewhere else"
        )));
    }
    let clock = SystemClock::default();
    let source = context::read_store(global)?;
    let runs = copy::runs_to_copy(&source, clock.now_ms())?;
    // Opened only now: a refused copy creates no destination.
    let destination = Store::open_at(&to, context::durability(global))?;
    let quiet = global.quiet || global.json;
    let outcome = copy::copy_runs(
        &source,
        &destination,
        &runs,
        || clock.now_ms(),
        |step| {
            if quiet {
                return;
            }
            match step {
                Progress::Copying { n, total, run_id, events } => {
                    eprintln!("run {n} of {total}: {run_id}: copying ({events} events)");
                }
                Progress::Skipped { n, total, run_id } => {
                    eprintln!("run {n} of {total}: {run_id}: in the destination already, skipped");
                }
            }
        },
    )
    .await?;
    destination.verify().await?;
    if global.json {
        output::json(&json!({
            "source": source.location(),
            "destination": destination.location(),
            "copied": outcome.copied,
            "skipped": outcome.skipped,
            "events": outcome.events,
            "plugin_components": outcome.plugin_components,
        }))?;
    } else {
        let there = match outcome.skipped.len() {
            0 => String::new(),
            n => format!("; {} there already, skipped", count(n, "run")),
        };
        println!(
            "copied {} ({}) and {} from {} to {}{there}",
            count(outcome.copied.len(), "run"),
            count(outcome.events, "event"),
            count(outcome.plugin_components, "plugin component"),
            source.location(),
            destination.location(),
        );
    }
    Ok(Exit::Success)
}

/// Whether two locations name one journal (one file, however spelt, or one URL).
fn same_journal(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Sqlite(x), Location::Sqlite(y)) => {
            x == y || std::fs::canonicalize(x).is_ok_and(|x| std::fs::canonicalize(y).is_ok_and(|y| x == y))
        }
        _ => a == b,
    }
}

/// `1 run`, `2 runs`.
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
