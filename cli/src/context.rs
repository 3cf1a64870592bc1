//! Building what run commands need from the global options: the journal, the plugin host, the
//! registry, the clock, secrets and progress output.

use std::sync::Arc;

use clap::ValueEnum;
use drover_engine::plugin::registry::Registry;
use drover_engine::plugin::{HostConfig, PluginHost};
use drover_engine::run::{NoProgress, Progress, RunContext, SystemClock};
use drover_engine::secrets::{EnvSecrets, FileSecrets, Layered, SecretSource};
use drover_engine::store::{Durability, Location, Store};

use crate::{CliError, Global};

/// How hard each commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    /// A commit survives power loss (fsync per commit).
    Full,
    /// A commit survives a crash of drover, not necessarily power loss; faster.
    Normal,
}

/// The journal in effect: `--db` (an SQLite file or a PostgreSQL URL), or `<home>/drover.db`.
pub fn journal(global: &Global) -> Location {
    match &global.db {
        Some(db) => Location::parse(db.as_os_str()),
        None => Location::Sqlite(global.home().join("drover.db")),
    }
}

/// How hard each commit tries to reach the disk (`--synchronous`).
pub fn durability(global: &Global) -> Durability {
    match global.synchronous {
        Synchronous::Full => Durability::Full,
        Synchronous::Normal => Durability::Normal,
    }
}

/// Opens the journal.
pub fn store(global: &Global) -> Result<Arc<Store>, CliError> {
    Ok(Arc::new(Store::open_at(&journal(global), durability(global))?))
}

/// Opens the journal for a command that only reads it: never created, migrated or written, and
/// readable when it is read-only (an archived journal).
pub fn read_store(global: &Global) -> Result<Store, CliError> {
    Ok(Store::open_at_read_only(&journal(global))?)
}

/// Secrets from `DROVER_SECRET_<NAME>` variables, then the secrets file if one is given.
pub fn secrets(global: &Global) -> Result<Arc<dyn SecretSource>, CliError> {
    let mut sources: Vec<Box<dyn SecretSource>> = vec![Box::new(EnvSecrets)];
    if let Some(path) = &global.secrets {
        sources.push(Box::new(FileSecrets::load(path).map_err(|e| CliError::Usage(e.to_string()))?));
    }
    Ok(Arc::new(Layered(sources)))
}

/// Everything a run command needs.
pub fn run_context(global: &Global, wait_for_operator: bool) -> Result<RunContext, CliError> {
    let store = store(global)?;
    let host = PluginHost::new(HostConfig { cache_dir: Some(global.cache_dir()), ..HostConfig::default() })?;
    let progress: Arc<dyn Progress> = if global.quiet || global.json {
        Arc::new(NoProgress)
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Arc::new(crate::progress::Bars::new())
    } else {
        Arc::new(crate::progress::Lines)
    };
    Ok(RunContext {
        store,
        host: Arc::new(host),
        registry: Registry::new(global.plugin_dir()),
        clock: Arc::new(SystemClock::default()),
        secrets: secrets(global)?,
        wait_for_operator,
        progress,
        lease_ttl: crate::env::lease_ttl().map_err(CliError::Usage)?,
    })
}
