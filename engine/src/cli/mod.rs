//! The `drover` command line: argument types (clap derive, doc comments as help) and dispatch.
//! Each command lives in its own file and returns an [`Exit`]; data goes to stdout, logs to stderr.

pub mod env;
pub mod exit;
mod output;
mod plugin;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use exit::{Exit, UsageError};

/// Drover runs disaster-recovery runbooks as durable workflows of sandboxed WebAssembly steps.
#[derive(Debug, Parser)]
#[command(name = "drover", version, after_help = exit::EXIT_CODES_HELP)]
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
    /// Print data as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Install, inspect, scaffold and try out step plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Plugin(command) => plugin::run(&cli.global, command).await,
    }
}
