//! `drover worker`: drive every run needing work from the journal, for as long as it runs. The
//! engine's `run::worker` decides which runs and drives them; this file parses the limits, turns
//! SIGTERM and SIGINT into a stop, and prints one line per run taken and finished.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use drover_engine::display::visible;
use drover_engine::run::worker::{self, Limits, WorkerEvent, WorkerLog, WorkerOptions};
use drover_engine::run::{NoProgress, RunOutcome};

use crate::{CliError, Exit, Global, context};

/// Arguments of `drover worker`.
#[derive(Debug, Args)]
#[command(
    after_help = "Workers share the journal (--db): every run that needs work is driven by exactly one of them at \
a time, through the run's lease. A worker takes a run that is new (`drover run --detach`), whose driver died (once \
its lease expired; at once when that driver ran on this machine), that an operator moved on (approve, retry, skip, \
cancel, compensate: from any machine), or whose retry timer is due. A run waiting for a person is left alone until \
someone acts. Interrupted attempts are settled by effect class, as `drover resume` does.

Limits: --site and --target (each repeatable) take only runs acting on a server of one of the sites and whose name \
matches one of the globs (a run acts on the servers its steps are granted and fan out over). A worker without \
limits takes every run: a DR-site worker started without limits takes over everything once production is gone.

SIGTERM or SIGINT stops the worker at once: it takes no more runs, and the runs it drives are left as a crash \
leaves them, for the next worker (the same machine's at once, another machine's when the leases expire, \
DROVER_LEASE_TTL) to take over and settle. Journal errors are retried with backoff; the worker never exits on them.

Example: two workers sharing one journal, and a run recorded for them:
  drover --db /srv/drover/journal.db worker --max-runs 8 &
  drover --db /srv/drover/journal.db worker --site dr &
  drover --db /srv/drover/journal.db run --detach workflows/dr-failover.toml --inventory inventory.toml
  drover --db /srv/drover/journal.db status <RUN>"
)]
pub struct WorkerArgs {
    /// Runs driven at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_runs: u16,
    /// How often the journal is looked at for runs needing work (`500ms`, `2s`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_poll)]
    pub poll: Duration,
    /// Take only runs acting on a server of this site (repeatable).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Take only runs acting on a server whose name matches this glob (`DRBTS*`; repeatable).
    #[arg(long = "target", value_name = "GLOB")]
    pub targets: Vec<String>,
}

fn parse_poll(text: &str) -> Result<Duration, String> {
    let poll = humantime::parse_duration(text).map_err(|e| format!("not a duration such as `1s`: {e}"))?;
    if poll < Duration::from_millis(10) || poll > Duration::from_secs(3600) {
        return Err("must be between 10ms and 1h".into());
    }
    Ok(poll)
}

pub async fn run(global: &Global, args: WorkerArgs) -> Result<Exit, CliError> {
    // Progress lines of several runs at once would interleave: one line per run instead.
    let ctx = context::run_context(global, false)?;
    let ctx = drover_engine::run::RunContext { progress: Arc::new(NoProgress), ..ctx };
    let options = WorkerOptions {
        max_runs: usize::from(args.max_runs),
        poll: args.poll,
        limits: Limits { sites: args.sites, targets: args.targets },
    };
    let stop =
        stop_signal().map_err(|e| CliError::Usage(format!("cannot watch for SIGTERM and SIGINT: {e}")))?;
    if !global.quiet {
        eprintln!(
            "worker {}: polling the journal every {}",
            std::process::id(),
            humantime::format_duration(args.poll)
        );
    }
    let left = worker::work(ctx, options, Arc::new(Lines { quiet: global.quiet }), stop).await;
    if !global.quiet {
        eprintln!("worker {} stopped; {left} run(s) left for the next worker", std::process::id());
    }
    Ok(Exit::Success)
}

/// Resolves at the first SIGTERM or SIGINT.
pub(crate) fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// One line per run taken and finished on stderr (none with `--quiet`); journal errors always.
struct Lines {
    quiet: bool,
}

impl WorkerLog for Lines {
    fn event(&self, event: &WorkerEvent<'_>) {
        let line = match event {
            WorkerEvent::JournalError { error, retry_in } => {
                let error = error.to_string();
                let wait = humantime::format_duration(*retry_in);
                eprintln!("journal error, trying again in {wait}: {}", visible(&error));
                return;
            }
            _ if self.quiet => return,
            WorkerEvent::Took { run, workflow, need } => {
                format!("took {run} ({}): {need}", visible(workflow))
            }
            WorkerEvent::Finished { run, outcome } => match outcome {
                RunOutcome::Succeeded => format!("{run} succeeded"),
                RunOutcome::Failed { failures } => format!("{run} failed: {}", keys(failures)),
                RunOutcome::Waiting { waiting } => format!("{run} waits for an operator: {}", keys(waiting)),
                RunOutcome::Cancelled => format!("{run} was cancelled"),
                RunOutcome::Compensated { compensated, .. } => {
                    format!("{run} was compensated: {} step instance(s) undone", compensated.len())
                }
            },
            WorkerEvent::Failed { run, error, retry_in } => format!(
                "{run}: driving stopped, trying again in {}: {}",
                humantime::format_duration(*retry_in),
                visible(error)
            ),
            WorkerEvent::JournalBack => "the journal can be read again".to_string(),
            WorkerEvent::Stopping { driving } => {
                format!("stopping: {driving} run(s) being driven are left for the next worker")
            }
        };
        eprintln!("{line}");
    }
}

/// The step keys of a list of (key, why), for one line.
fn keys(list: &[(String, String)]) -> String {
    visible(&list.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")).into_owned()
}
