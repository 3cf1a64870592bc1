//! `drover plugin info`: everything about one installed plugin.

use clap::Args;

use crate::{CliError, Exit, Global, output};

/// Arguments of `drover plugin info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// `name` or `name@<semver requirement>`; the highest matching version is shown.
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
}

pub fn run(global: &Global, args: InfoArgs) -> Result<Exit, CliError> {
    let installed = super::registry(global).resolve(&super::parse_ref(&args.plugin)?)?;
    if global.json {
        let mut value = serde_json::to_value(&installed)?;
        value["path"] = installed.path.display().to_string().into();
        output::json(&value)?;
        return Ok(Exit::Success);
    }
    let info = &installed.info;
    let list = |items: &[String]| if items.is_empty() { "none".to_string() } else { items.join(", ") };
    println!("{} {}", info.name, info.version);
    println!("  {}", info.description);
    println!("effect:       {}{}", info.effect, if info.compensable { " (compensable)" } else { "" });
    println!("targets:      {}", if info.capabilities.targets { "yes" } else { "no" });
    println!("programs:     {}", list(&info.capabilities.programs));
    println!("secrets:      {}", list(&info.capabilities.secrets));
    println!("built with:   {}", info.sdk);
    println!("sha256:       {}", installed.sha256);
    println!("file:         {}", installed.path.display());
    println!("input schema:\n{}", output::indent(&serde_json::to_string_pretty(&info.input_schema)?, 2));
    println!("output schema:\n{}", output::indent(&serde_json::to_string_pretty(&info.output_schema)?, 2));
    Ok(Exit::Success)
}
