//! The `drover` command line: argument types (clap derive, doc comments as help) and dispatch.
//! Each command lives in its own module and returns an [`Exit`]; data goes to stdout, logs to
//! stderr.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::{self, Exit};
use crate::{
    CliError, approve, cancel, compensate, completions, context, env, events, graph, inventory, journal,
    plan, plugin, report, resume, retry, run, runs, serve, skip, status, users, validate, worker,
};

/// Drover runs disaster-recovery runbooks as durable workflows of sandboxed WebAssembly steps.
#[derive(Debug, Parser)]
#[command(name = "drover", version, after_help = exit::help())]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Drover's home directory (plugins, cache, databases).
    #[arg(long, global = true, env = env::DROVER_HOME, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Directory of installed plugins [default: <home>/plugins].
    #[arg(long, global = true, env = env::DROVER_PLUGIN_DIR, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Directory of compiled plugin code [default: <home>/cache].
    #[arg(long, global = true, env = env::DROVER_CACHE_DIR, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The run journal: an SQLite file, or a shared PostgreSQL database given by URL
    /// (`postgres://user@host/database`; see docs/operations.md) [default: <home>/drover.db].
    #[arg(long, global = true, env = env::DROVER_DB, value_name = "FILE|URL")]
    pub db: Option<PathBuf>,
    /// How hard each journal commit tries to reach the disk: `full` survives power loss,
    /// `normal` survives a crash of drover and is faster.
    #[arg(long, global = true, env = env::DROVER_SYNCHRONOUS, value_enum, default_value = "full")]
    pub synchronous: context::Synchronous,
    /// Secrets file: `name = "value"` lines, mode 600. `DROVER_SECRET_<NAME>` variables take
    /// precedence over it.
    #[arg(long, global = true, env = env::DROVER_SECRETS_FILE, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Print data as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// The home directory in effect.
    pub fn home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(env::default_home)
    }

    /// The plugin directory in effect.
    pub fn plugin_dir(&self) -> PathBuf {
        self.plugin_dir.clone().unwrap_or_else(|| self.home().join("plugins"))
    }

    /// The compile cache directory in effect.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.home().join("cache"))
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a workflow file (and its inventory): every error at once, with file, line and column.
    Validate(validate::ValidateArgs),
    /// Draw a workflow's steps and dependencies as Mermaid or Graphviz dot.
    Graph(graph::GraphArgs),
    /// Check what a run would do, changing nothing (every plugin's `check`).
    Plan(plan::PlanArgs),
    /// Start a run of a workflow and drive it.
    Run(run::RunArgs),
    /// Drive a run on after a crash, a stop or an operator command.
    Resume(resume::ResumeArgs),
    /// Drive every run needing work from a shared journal, until stopped (SIGTERM, SIGINT).
    Worker(worker::WorkerArgs),
    /// Show a run's steps: state, attempts, and why each unfinished step waits.
    Status(status::StatusArgs),
    /// List runs.
    Runs(runs::RunsArgs),
    /// Let a run pass an approval gate.
    Approve(approve::ApproveArgs),
    /// Run a failed, cancelled or needs-operator step again (then `drover resume`).
    Retry(retry::RetryArgs),
    /// Mark a step done without running it, giving its output.
    Skip(skip::SkipArgs),
    /// Cancel a run.
    Cancel(cancel::CancelArgs),
    /// Undo what a run changed: compensate its finished steps in reverse dependency order.
    Compensate(compensate::CompensateArgs),
    /// Print a run's event journal.
    Events(events::EventsArgs),
    /// Serve the web view: the runs, live run pages, the JSON API, and approvals from the browser.
    Serve(serve::ServeArgs),
    /// Write a run's recovery report for auditors (Markdown or self-contained HTML).
    Report(report::ReportArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Install, inspect, scaffold and try out step plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Check an inventory's servers: reachable, logged on, shell, second hop.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Work on the journal as a whole: copy it into another (SQLite to PostgreSQL, or back).
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Manage the users of `drover serve`: who may log in to the web view and act.
    #[command(subcommand)]
    Users(users::UsersCommand),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Validate(args) => validate::run(global, args),
        Command::Graph(args) => graph::run(global, args),
        Command::Plan(args) => plan::run(global, args).await,
        Command::Run(args) => run::run(global, args).await,
        Command::Resume(args) => resume::run(global, args).await,
        Command::Worker(args) => worker::run(global, args).await,
        Command::Status(args) => status::run(global, args),
        Command::Runs(args) => runs::run(global, args),
        Command::Approve(args) => approve::run(global, args).await,
        Command::Retry(args) => retry::run(global, args).await,
        Command::Skip(args) => skip::run(global, args).await,
        Command::Cancel(args) => cancel::run(global, args).await,
        Command::Compensate(args) => compensate::run(global, args).await,
        Command::Events(args) => events::run(global, args),
        Command::Report(args) => report::run(global, args),
        Command::Completions(args) => completions::run(args),
        Command::Plugin(command) => plugin::run(global, command).await,
        Command::Inventory(command) => inventory::run(global, command).await,
        Command::Journal(command) => journal::run(global, command).await,
        Command::Serve(args) => serve::run(global, args).await,
        Command::Users(command) => users::run(global, command),
    }
}
