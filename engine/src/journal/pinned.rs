//! [`PinnedPlugins`]: the exact plugin each plugin step of a run runs, pinned when the run
//! started (name, version, sha256), so a resume runs the same bytes or refuses.
//!
//! Stored as `{"format": 2, "steps": {<step id>: {"name", "version", "sha256"}}}`. Runs started
//! before the format was versioned stored the steps table alone; it reads as format 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::plugin::Sha256Digest;

/// The format of pinned plugins this build writes.
pub const PINNED_PLUGINS_FORMAT: u32 = 2;

/// The plugins a run pinned, by step id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinnedPlugins {
    /// The format they were stored in: 1 for runs from before it was recorded.
    pub format: u32,
    /// Step id to plugin.
    pub steps: BTreeMap<String, PinnedPlugin>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedPlugin {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: semver::Version,
    /// The sha256 of its component: what a resume loads.
    pub sha256: Sha256Digest,
}

impl PinnedPlugins {
    /// An empty table in this build's format.
    pub fn new() -> PinnedPlugins {
        PinnedPlugins { format: PINNED_PLUGINS_FORMAT, steps: BTreeMap::new() }
    }
}

impl Default for PinnedPlugins {
    fn default() -> Self {
        PinnedPlugins::new()
    }
}

impl<'de> Deserialize<'de> for PinnedPlugins {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PinnedPlugins, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(deserializer)?;
        // A step id is never a number's key: a number under `format` is the format.
        let format = match value.get("format") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                D::Error::custom(format!("pinned plugins of format {n}: not a format this build knows"))
            })?,
            _ => 1,
        };
        let steps = match format {
            1 => value,
            PINNED_PLUGINS_FORMAT => value.get("steps").cloned().unwrap_or(Value::Null),
            n => {
                return Err(D::Error::custom(format!(
                    "pinned plugins of format {n}, written by a newer drover (this one reads formats 1 to {PINNED_PLUGINS_FORMAT})"
                )));
            }
        };
        let steps = BTreeMap::<String, PinnedPlugin>::deserialize(steps).map_err(D::Error::custom)?;
        Ok(PinnedPlugins { format, steps })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn pinned_plugins_read_back_as_written() {
        let mut pinned = PinnedPlugins::new();
        pinned.steps.insert(
            "join".into(),
            PinnedPlugin {
                name: "join-group".into(),
                version: semver::Version::new(1, 2, 0),
                sha256: SHA.parse().expect("digest"),
            },
        );
        let written = serde_json::to_value(&pinned).expect("serialize");
        assert_eq!(
            written,
            json!({ "format": 2, "steps": { "join": { "name": "join-group", "version": "1.2.0", "sha256": SHA } } })
        );
        assert_eq!(serde_json::from_value::<PinnedPlugins>(written).expect("read"), pinned);
    }

    #[test]
    fn a_table_from_before_the_format_reads_as_format_1() {
        // A step may be called `format`: its value is a plugin, not a number.
        let old = json!({
            "join": { "name": "join-group", "version": "1.2.0", "sha256": SHA },
            "format": { "name": "noop", "version": "1.0.0", "sha256": SHA },
        });
        let pinned: PinnedPlugins = serde_json::from_value(old).expect("read");
        assert_eq!(pinned.format, 1);
        assert_eq!(pinned.steps["join"].version, semver::Version::new(1, 2, 0));
        assert_eq!(pinned.steps["format"].name, "noop");
        assert_eq!(serde_json::from_value::<PinnedPlugins>(json!({})).expect("empty").steps.len(), 0);
    }

    #[test]
    fn a_newer_format_or_a_damaged_table_is_refused_saying_so() {
        let newer = serde_json::from_value::<PinnedPlugins>(json!({ "format": 3, "steps": {} }));
        assert!(newer.expect_err("newer").to_string().contains("written by a newer drover"));
        let damaged = serde_json::from_value::<PinnedPlugins>(json!({ "join": { "name": "x" } }));
        assert!(damaged.is_err());
    }
}
