//! What the engine knows about a plugin: its validated `describe` ([`PluginInfo`]), its content
//! digest, and references like `join-group@^1.2`. Raw WIT records are validated here into these
//! types; nothing downstream sees an unvalidated `describe`.

use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::bindings::drover::plugin::types as wit;

/// What running a step does to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Never changes anything.
    ReadOnly,
    /// Running it twice equals running it once.
    Idempotent,
    /// `check` tells whether it is done; may be compensated.
    Reversible,
    /// Cannot be repeated or undone.
    Irreversible,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::ReadOnly => "read-only",
            Effect::Idempotent => "idempotent",
            Effect::Reversible => "reversible",
            Effect::Irreversible => "irreversible",
        })
    }
}

/// What a plugin declares it needs from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    /// Runs programs or moves files on targets.
    pub targets: bool,
    /// Programs it runs.
    pub programs: Vec<String>,
    /// Secrets it reads or references.
    pub secrets: Vec<String>,
}

/// A plugin's validated `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Kebab-case name.
    pub name: String,
    /// Semantic version.
    pub version: Version,
    /// One line about what it does.
    pub description: String,
    /// Effect class.
    pub effect: Effect,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output.
    pub output_schema: Value,
    /// What it needs.
    pub capabilities: Capabilities,
    /// Whether it implements `compensate`.
    pub compensable: bool,
    /// The toolkit it was built with.
    pub sdk: String,
}

impl PluginInfo {
    /// Validates a raw `describe`, reporting every problem at once.
    pub(crate) fn from_wit(raw: wit::PluginInfo) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if let Err(p) = check_name(&raw.name) {
            problems.push(p);
        }
        let version = Version::parse(&raw.version)
            .map_err(|e| problems.push(format!("version {:?} is not a semantic version: {e}", raw.version)))
            .ok();
        if raw.description.trim().is_empty() {
            problems.push("description is empty: say in one line what the step does".into());
        }
        let input_schema = schema("input-schema", &raw.input_schema, &mut problems);
        let output_schema = schema("output-schema", &raw.output_schema, &mut problems);
        for program in &raw.capabilities.programs {
            if program.trim().is_empty() {
                problems.push("capabilities.programs contains an empty name".into());
            }
        }
        for secret in &raw.capabilities.secrets {
            if !crate::secrets::is_name(secret) {
                problems.push(format!(
                    "capabilities.secrets: {secret:?} is not a secret name (letters, digits, - _ .)"
                ));
            }
        }
        match (version, input_schema, output_schema) {
            (Some(version), Some(input_schema), Some(output_schema)) if problems.is_empty() => {
                Ok(PluginInfo {
                    name: raw.name,
                    version,
                    description: raw.description,
                    effect: match raw.effect {
                        wit::EffectClass::ReadOnly => Effect::ReadOnly,
                        wit::EffectClass::Idempotent => Effect::Idempotent,
                        wit::EffectClass::Reversible => Effect::Reversible,
                        wit::EffectClass::Irreversible => Effect::Irreversible,
                    },
                    input_schema,
                    output_schema,
                    capabilities: Capabilities {
                        targets: raw.capabilities.targets,
                        programs: raw.capabilities.programs,
                        secrets: raw.capabilities.secrets,
                    },
                    compensable: raw.compensable,
                    sdk: raw.sdk,
                })
            }
            _ => Err(problems),
        }
    }
}

fn schema(field: &str, text: &str, problems: &mut Vec<String>) -> Option<Value> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{field} is not JSON: {e}"));
            return None;
        }
    };
    if let Err(e) = jsonschema::validator_for(&value) {
        problems.push(format!("{field} is not a valid JSON Schema: {e}"));
        return None;
    }
    Some(value)
}

/// Checks a plugin name: lowercase kebab-case, starting with a letter, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else if name.is_empty() {
        Err("name is empty".into())
    } else {
        Err(format!(
            "name {name:?} is not lowercase kebab-case (a-z, 0-9, -, starting with a letter, at most 64)"
        ))
    }
}

/// The SHA-256 of a plugin's bytes: its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for Sha256Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| format!("{s:?} is not a sha256 digest: {e}"))?;
        Ok(Sha256Digest(out))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A reference to an installed plugin: `name`, or `name@<semver requirement>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// Which versions will do (`*` when none was given).
    pub req: VersionReq,
}

impl FromStr for PluginRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, req) = match s.split_once('@') {
            Some((name, req)) => {
                let req = VersionReq::parse(req)
                    .map_err(|e| format!("{req:?} in {s:?} is not a semver requirement: {e}"))?;
                (name, req)
            }
            None => (s, VersionReq::STAR),
        };
        check_name(name)?;
        Ok(PluginRef { name: name.into(), req })
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.req == VersionReq::STAR {
            f.write_str(&self.name)
        } else {
            write!(f, "{}@{}", self.name, self.req)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_refs_parse_with_and_without_requirement() {
        let r: PluginRef = "join-group@^1.2".parse().unwrap();
        assert_eq!(r.name, "join-group");
        assert!(r.req.matches(&Version::new(1, 3, 0)));
        assert!(!r.req.matches(&Version::new(2, 0, 0)));
        assert_eq!(r.to_string(), "join-group@^1.2");
        assert_eq!("noop".parse::<PluginRef>().unwrap().req, VersionReq::STAR);
        assert!("Bad_Name".parse::<PluginRef>().unwrap_err().contains("kebab-case"));
        assert!("x@not-a-req".parse::<PluginRef>().unwrap_err().contains("not a semver requirement"));
    }

    #[test]
    fn digest_round_trips() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(d.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
    }

    #[test]
    fn describe_problems_are_all_reported() {
        let raw = wit::PluginInfo {
            name: "".into(),
            version: "one".into(),
            description: " ".into(),
            effect: wit::EffectClass::ReadOnly,
            input_schema: "{".into(),
            output_schema: r#"{"type": 12}"#.into(),
            capabilities: wit::Capabilities { targets: false, programs: vec![], secrets: vec!["a b".into()] },
            compensable: false,
            sdk: "x".into(),
        };
        let problems = PluginInfo::from_wit(raw).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("output-schema is not a valid JSON Schema")));
    }
}
