//! Printing data: JSON for `--json`, text for people. Everything here writes to stdout.

use serde::Serialize;

use crate::CliError;

/// Prints `value` as pretty JSON, with the control characters JSON leaves raw escaped too (plugin
/// text may hold them; see `drover_engine::display`).
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    println!("{}", drover_engine::display::json(&serde_json::to_string_pretty(value)?));
    Ok(())
}

/// The first 12 hex digits of a digest, as shown in tables.
pub fn short_digest(digest: &impl std::fmt::Display) -> String {
    digest.to_string().chars().take(12).collect()
}

/// `text` indented by `spaces` on every line.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}
