//! Every environment variable and default location the CLI reads, in one place.

use std::path::PathBuf;

/// Drover's home: plugins, compile cache and databases live below it.
pub const DROVER_HOME: &str = "DROVER_HOME";
/// Overrides `<home>/plugins`.
pub const DROVER_PLUGIN_DIR: &str = "DROVER_PLUGIN_DIR";
/// Overrides `<home>/cache`.
pub const DROVER_CACHE_DIR: &str = "DROVER_CACHE_DIR";
/// Where `drover plugin new` finds the SDK crate (a checkout's `sdk/` folder).
pub const DROVER_SDK_PATH: &str = "DROVER_SDK_PATH";
/// The run journal: an SQLite file or a PostgreSQL URL [default: <home>/drover.db].
pub const DROVER_DB: &str = "DROVER_DB";
/// `full` (default) or `normal`: how hard each commit of the journal tries to reach the disk.
pub const DROVER_SYNCHRONOUS: &str = "DROVER_SYNCHRONOUS";
/// A TOML file of `name = "value"` secrets, readable by its owner only. Environment variables
/// `DROVER_SECRET_<NAME>` take precedence over it.
pub const DROVER_SECRETS_FILE: &str = "DROVER_SECRETS_FILE";
/// Log filter for stderr, in `tracing` syntax (`info`, `drover_engine=debug`).
pub const DROVER_LOG: &str = "DROVER_LOG";
/// How long a run's lease lives without renewal (`15s` by default, at least `1s`): a driver that
/// stopped renewing (a stopped process, another machine) is taken over after this long.
pub const DROVER_LEASE_TTL: &str = "DROVER_LEASE_TTL";

/// The lease time to live from [`DROVER_LEASE_TTL`], or the default.
pub fn lease_ttl() -> Result<std::time::Duration, String> {
    let Some(text) = std::env::var_os(DROVER_LEASE_TTL).filter(|v| !v.is_empty()) else {
        return Ok(drover_engine::run::LEASE_TTL);
    };
    let text = text.to_string_lossy();
    let ttl = humantime::parse_duration(&text)
        .map_err(|e| format!("{DROVER_LEASE_TTL}={text:?} is not a duration such as `15s`: {e}"))?;
    if ttl < std::time::Duration::from_secs(1) || ttl > std::time::Duration::from_secs(24 * 3600) {
        return Err(format!("{DROVER_LEASE_TTL}={text:?} must be between 1s and 24h"));
    }
    Ok(ttl)
}

/// The default home: `$XDG_DATA_HOME/drover`, else `~/.local/share/drover`.
pub fn default_home() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("drover");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local").join("share").join("drover")
}

/// The SDK folder of the source tree this binary was built from, if it is still there.
pub fn built_in_sdk_path() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"));
    path.join("Cargo.toml").exists().then(|| path.canonicalize().unwrap_or(path))
}
