//! `drover plugin …`: the plugin author's and operator's view of installed plugins.

mod info;
mod install;
mod list;
mod new;
mod remove;
mod run;

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use drover_engine::plugin::registry::Registry;
use drover_engine::plugin::{HostConfig, LoadedPlugin, PluginHost, PluginRef};

use crate::{CliError, Exit, Global};

/// Plugin commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin component and install it by name, version and sha256.
    Install(install::InstallArgs),
    /// List installed plugins.
    List(list::ListArgs),
    /// Show an installed plugin: effect, capabilities, input and output schemas.
    Info(info::InfoArgs),
    /// Remove installed plugin versions.
    Remove(remove::RemoveArgs),
    /// Create a new plugin crate that builds as it is.
    New(new::NewArgs),
    /// Run one call of a plugin outside any workflow: the plugin author's loop.
    Run(run::RunArgs),
}

/// Runs a plugin command.
pub async fn run(global: &Global, command: PluginCommand) -> Result<Exit, CliError> {
    match command {
        PluginCommand::Install(args) => install::run(global, args).await,
        PluginCommand::List(args) => list::run(global, args),
        PluginCommand::Info(args) => info::run(global, args),
        PluginCommand::Remove(args) => remove::run(global, args),
        PluginCommand::New(args) => new::run(global, args),
        PluginCommand::Run(args) => run::run(global, args).await,
    }
}

fn registry(global: &Global) -> Registry {
    Registry::new(global.plugin_dir())
}

fn host(global: &Global) -> Result<PluginHost, CliError> {
    Ok(PluginHost::new(HostConfig { cache_dir: Some(global.cache_dir()), ..HostConfig::default() })?)
}

fn parse_ref(text: &str) -> Result<PluginRef, CliError> {
    text.parse().map_err(|e| {
        CliError::Usage(format!(
            "{text:?} is not a plugin reference (name or name@<semver requirement>): {e}"
        ))
    })
}

/// Loads `spec`: a `.wasm` file path, or the name (and requirement) of an installed plugin.
async fn load(global: &Global, host: &PluginHost, spec: &str) -> Result<Arc<LoadedPlugin>, CliError> {
    let path = Path::new(spec);
    if spec.ends_with(".wasm") || path.is_file() {
        return host
            .load_file(path)
            .await
            .map_err(|source| CliError::PluginFile { path: path.into(), source });
    }
    let registry = registry(global);
    let installed = registry.resolve(&parse_ref(spec)?)?;
    Ok(registry.load(host, &installed).await?)
}
