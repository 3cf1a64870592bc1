//! `drover plugin new`: scaffold a plugin crate that builds, tests and installs as it is.

use std::path::{Path, PathBuf};

use clap::Args;
use drover_engine::plugin::check_name;

use crate::{CliError, Exit, Global, env};

/// Arguments of `drover plugin new`.
#[derive(Debug, Args)]
#[command(after_help = "Then:
  cd <name>
  cargo test                                        # the plugin's logic, natively, against a fake host
  cargo build --release --target wasm32-wasip2      # the component
  drover plugin install target/wasm32-wasip2/release/<name_with_underscores>.wasm")]
pub struct NewArgs {
    /// The plugin's name: lowercase kebab-case, e.g. `ensure-line`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to create the crate [default: ./<NAME>].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The `sdk/` folder of a Drover checkout, used as the drover-sdk dependency
    /// [default: the one this drover was built from].
    #[arg(long, env = env::DROVER_SDK_PATH, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");
const GITIGNORE: &str = "/target\n";

pub fn run(global: &Global, args: NewArgs) -> Result<Exit, CliError> {
    check_name(&args.name)
        .map_err(|e| CliError::Usage(format!("cannot name a plugin {:?}: {e}", args.name)))?;
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CliError::Usage(format!("{} already exists and is not empty", dir.display())));
    }
    let sdk = match args.sdk_path.or_else(env::built_in_sdk_path) {
        Some(sdk) if sdk.join("Cargo.toml").exists() => {
            sdk.canonicalize().map_err(CliError::io("resolve", &sdk))?
        }
        Some(sdk) => {
            return Err(CliError::Usage(format!(
                "{} is not the sdk/ folder of a Drover checkout",
                sdk.display()
            )));
        }
        None => {
            return Err(CliError::Usage(format!(
                "cannot find drover-sdk: pass --sdk-path <checkout>/sdk or set {} (drover-sdk is not published on crates.io yet)",
                env::DROVER_SDK_PATH
            )));
        }
    };
    let type_name: String = args
        .name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{name}}", &args.name)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &toml_string(&sdk))
    };
    write(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write(&dir.join("src").join("lib.rs"), &fill(LIB_RS))?;
    write(&dir.join(".gitignore"), GITIGNORE)?;
    if global.json {
        crate::output::json(&serde_json::json!({ "name": args.name, "path": dir }))?;
    } else {
        println!("created plugin crate {} in {}", args.name, dir.display());
        println!("next: cd {} && cargo test && cargo build --release --target wasm32-wasip2", dir.display());
    }
    Ok(Exit::Success)
}

fn toml_string(path: &Path) -> String {
    path.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(CliError::io("create", parent))?;
    }
    std::fs::write(path, text).map_err(CliError::io("write", path))
}
