//! `drover plugin list`: the installed plugins.

use clap::Args;

use crate::{CliError, Exit, Global, output};

/// Arguments of `drover plugin list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

pub fn run(global: &Global, _args: ListArgs) -> Result<Exit, CliError> {
    let installed = super::registry(global).list()?;
    if global.json {
        output::json(&installed)?;
        return Ok(Exit::Success);
    }
    if installed.is_empty() {
        println!("no plugins installed in {}", global.plugin_dir().display());
        return Ok(Exit::Success);
    }
    let width = installed.iter().map(|i| i.info.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:10}  {:12}  {:12}  DESCRIPTION", "NAME", "VERSION", "EFFECT", "SHA256");
    for i in &installed {
        println!(
            "{:width$}  {:10}  {:12}  {:12}  {}",
            i.info.name,
            i.info.version.to_string(),
            i.info.effect.to_string(),
            output::short_digest(&i.sha256),
            i.info.description
        );
    }
    Ok(Exit::Success)
}
