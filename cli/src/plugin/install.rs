//! `drover plugin install`: validate and install plugin files.

use std::path::PathBuf;

use clap::Args;

use crate::{CliError, Exit, Global, output};

/// Arguments of `drover plugin install`.
#[derive(Debug, Args)]
#[command(
    after_help = "A plugin is installed only if it is a WebAssembly component of the drover:plugin/step world \
this drover speaks, with a complete describe. Installing the same bytes twice is a no-op; a version never changes."
)]
pub struct InstallArgs {
    /// Plugin component files (`.wasm`) to install.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub async fn run(global: &Global, args: InstallArgs) -> Result<Exit, CliError> {
    let registry = super::registry(global);
    let host = super::host(global)?;
    let mut done = Vec::new();
    for file in &args.files {
        let (installed, new) = registry.install(&host, file).await?;
        if !global.json {
            let verb = if new { "installed" } else { "already installed" };
            println!(
                "{verb} {} {} ({}, sha256 {})",
                installed.info.name,
                installed.info.version,
                installed.info.effect,
                output::short_digest(&installed.sha256)
            );
        }
        done.push(serde_json::json!({ "new": new, "plugin": installed }));
    }
    if global.json {
        output::json(&done)?;
    }
    Ok(Exit::Success)
}
