//! `drover plugin remove`: uninstall plugin versions.

use clap::Args;

use crate::{CliError, Exit, Global, output};

/// Arguments of `drover plugin remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// `name` (every version) or `name@<semver requirement>` (every matching version).
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
}

pub fn run(global: &Global, args: RemoveArgs) -> Result<Exit, CliError> {
    let removed = super::registry(global).remove(&super::parse_ref(&args.plugin)?)?;
    if global.json {
        output::json(&removed)?;
    } else {
        for r in &removed {
            println!("removed {} {}", r.info.name, r.info.version);
        }
    }
    Ok(Exit::Success)
}
