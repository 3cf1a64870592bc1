//! [`RunId`]: a run's id, `run_` and a ULID in lowercase (`run_01j9zq4k8m3v6t2x0a5b7c9d1e`).
//! It sorts by creation time, is printed and parsed in one place, and is 16 bytes to copy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefix of every run id.
const PREFIX: &str = "run_";

/// A run's id: `run_<ulid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(ulid::Ulid);

/// A text that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a run id: a run id is `run_` and 26 letters and digits (`drover runs` lists them)")]
pub struct InvalidRunId {
    /// The text given.
    pub text: String,
}

impl RunId {
    /// A new id, from the time now and randomness.
    pub fn generate() -> RunId {
        RunId(ulid::Ulid::generate())
    }

    /// The id made of `ulid` (for tests and tools that need a fixed id).
    pub const fn from_ulid(ulid: ulid::Ulid) -> RunId {
        RunId(ulid)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ulid = [0; ulid::ULID_LEN];
        let ulid = self.0.array_to_str(&mut ulid);
        ulid.make_ascii_lowercase();
        let mut text = [0; PREFIX.len() + ulid::ULID_LEN];
        text[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        text[PREFIX.len()..].copy_from_slice(ulid.as_bytes());
        // Padded as a `str` is, so tables can align ids.
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for RunId {
    type Err = InvalidRunId;

    /// Reads `run_<ulid>`, the ULID in either case.
    fn from_str(text: &str) -> Result<RunId, InvalidRunId> {
        text.strip_prefix(PREFIX)
            .and_then(|ulid| ulid::Ulid::from_string(ulid).ok())
            .map(RunId)
            .ok_or_else(|| InvalidRunId { text: text.to_string() })
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for RunId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^run_[0-9a-z]{26}$",
            "description": "A run's id: `run_` and a ULID in lowercase."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_prints_as_it_was_generated_and_reads_back() {
        let id = RunId::generate();
        let text = id.to_string();
        assert!(text.starts_with("run_") && text.len() == 30, "{text}");
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<RunId>(), Ok(id));
        assert_eq!(text.to_uppercase().replace("RUN_", "run_").parse::<RunId>(), Ok(id));
        assert_eq!(serde_json::to_value(id).expect("serialize"), serde_json::Value::String(text.clone()));
        assert_eq!(serde_json::from_value::<RunId>(text.into()).expect("deserialize"), id);
    }

    #[test]
    fn ids_made_before_the_type_read_as_they_were_written() {
        // As `run::start` wrote them: `format!("run_{}", ulid.to_string().to_lowercase())`.
        let text = "run_01kbs0pw9kx8vqa1jjzfb1f2fe";
        assert_eq!(text.parse::<RunId>().expect("an id").to_string(), text);
    }

    #[test]
    fn what_is_not_an_id_is_refused_naming_it() {
        for text in [
            "",
            "run_",
            "01kbs0pw9kx8vqa1jjzfb1f2fe",
            "run_01kbs0pw9kx8vqa1jjzfb1f2f",
            "run-01kbs0pw9kx8vqa1jjzfb1f2fe",
        ] {
            let error = text.parse::<RunId>().expect_err(text);
            assert!(error.to_string().contains(&format!("`{text}` is not a run id")), "{error}");
        }
        assert!(serde_json::from_value::<RunId>("run_x".into()).is_err());
    }
}
