//! What each fuzz target checks, as plain functions of the input bytes: the cargo-fuzz targets in
//! `fuzz_targets/` call them, and `tests/tests/fuzz_corpus.rs` replays the committed corpus
//! through them on stable, so a crash found once stays fixed.
//!
//! Each function panics only when Drover breaks a promise on that input:
//! - [`workflow`]: parsing and validating any text as a workflow (TOML, or JSON when it starts
//!   with `{`) never panics; a rejected file gets at least one problem, each at a line and column
//!   that exist in the text; an accepted one has its `needs` pointing backwards in its order.
//! - [`inventory`]: the same for inventory files, warnings included.
//! - [`plugin_outcome`]: decoding a step's returned outcome never panics, and no value of a known
//!   secret survives in what it returns, success or error.

use std::collections::BTreeSet;
use std::path::Path;

use drover_engine::diagnostic::Diagnostic;
use drover_engine::inventory::{self, InventoryError};
use drover_engine::plugin::outcome::{self, RawOutcome};
use drover_engine::plugin::{Capabilities, Effect, Evidence, PluginInfo, PluginRef};
use drover_engine::secrets::{Redactor, SecretValue};
use drover_engine::workflow::{self, ValidationContext};
use serde_json::{Value, json};

/// Parses and validates `data` as a workflow file against one installed plugin, `noop`, and an
/// inventory with the groups `prod` and `dr`.
pub fn workflow(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new(if text.starts_with('{') { "fuzz.json" } else { "fuzz.toml" });
    let groups: BTreeSet<String> = ["prod".to_string(), "dr".to_string()].into();
    let resolve = |r: &PluginRef| {
        if r.name == "noop" && r.req.matches(&semver::Version::new(1, 0, 0)) {
            Ok(noop_info())
        } else {
            Err(format!("plugin {r} is not installed"))
        }
    };
    match workflow::load_text(path, text, &ValidationContext { groups: Some(&groups), plugins: &resolve }) {
        Ok(wf) => {
            assert!(!wf.steps.is_empty(), "a workflow without steps was accepted");
            let rank: Vec<usize> = {
                let mut rank = vec![0; wf.steps.len()];
                for (at, &step) in wf.order.iter().enumerate() {
                    rank[step] = at;
                }
                rank
            };
            assert_eq!(wf.order.len(), wf.steps.len(), "the order misses steps");
            for (i, step) in wf.steps.iter().enumerate() {
                for &need in &step.needs {
                    assert!(rank[need] < rank[i], "step {} runs before what it needs", step.id);
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a workflow was rejected without a reason");
            problems.iter().for_each(|d| assert_inside(text, d));
        }
    }
}

/// Parses `data` as an inventory file.
pub fn inventory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match inventory::parse(Path::new("fuzz-inventory.toml"), text) {
        Ok(loaded) => {
            loaded.warnings.iter().for_each(|d| assert_inside(text, d));
            for group in loaded.inventory.group_names() {
                let _ = loaded.inventory.expand(&group);
            }
            let _ = loaded.inventory.targets(&drover_engine::secrets::MapSecrets::new());
        }
        Err(InventoryError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "an inventory was rejected without a reason");
            problems.iter().for_each(|d| assert_inside(text, d));
        }
        Err(other) => panic!("parsing text gave a non-diagnostic error: {other}"),
    }
}

/// Decodes `data` as a step outcome. The input is split at NUL bytes into the secret the
/// redactor knows, the output JSON text, the summary, and an evidence label, command and excerpt.
/// The secret must not appear in anything decoded, nor in the error's message.
pub fn plugin_outcome(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0');
    let secret = parts.next().unwrap_or_default();
    // Only secrets that cannot occur in Drover's own fixed texts ("returned", "line 1 column 5",
    // the redaction marker): with a non-ASCII character, or six or more digits (a number leak).
    let digits = secret.len() >= 6 && secret.bytes().all(|b| b.is_ascii_digit());
    if !(digits || secret.chars().count() >= 4 && !secret.is_ascii()) || MARKER.contains(secret) {
        return;
    }
    let mut next = || parts.next().unwrap_or_default().to_string();
    let raw = RawOutcome {
        changed: secret.len() % 2 == 0,
        output: next(),
        summary: next(),
        evidence: vec![Evidence {
            label: next(),
            command: Some(next()),
            exit_code: Some(0),
            excerpt: next(),
        }],
    };
    let redactor = Redactor::new([("S".to_string(), SecretValue::new(secret))]);
    let schema = jsonschema::validator_for(&noop_info().output_schema).expect("the output schema is valid");
    match outcome::decode("fuzz", raw, &schema, &redactor, 1 << 16) {
        Ok(decoded) => {
            let mut texts = vec![decoded.summary.clone()];
            for e in &decoded.evidence {
                texts.extend([e.label.clone(), e.excerpt.clone()]);
                texts.extend(e.command.clone());
            }
            collect_texts(&decoded.output, &mut texts);
            for t in texts {
                assert!(!t.contains(secret), "secret {secret:?} survives in {t:?}");
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains(secret), "secret {secret:?} in error {message:?}");
        }
    }
}

/// What the redactor writes in place of the fuzz secret, named `S`.
const MARKER: &str = "[redacted S]";

/// Every string, object key and number of `value`, as text.
fn collect_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_texts(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_texts(v, out);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// A position must name a line of the text and a column at most one past that line's end.
fn assert_inside(text: &str, d: &Diagnostic) {
    assert!(!d.message.is_empty(), "a problem without a message at {}:{}", d.line, d.column);
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(d.line >= 1 && d.line <= lines.len(), "{d}: line {} of a {}-line text", d.line, lines.len());
    let width = lines[d.line - 1].chars().count();
    assert!(d.column >= 1 && d.column <= width + 1, "{d}: column {} on a line {width} wide", d.column);
}

fn noop_info() -> PluginInfo {
    PluginInfo {
        name: "noop".into(),
        version: semver::Version::new(1, 0, 0),
        description: "does nothing".into(),
        effect: Effect::Idempotent,
        input_schema: json!({
            "type": "object",
            "properties": {"message": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
            "additionalProperties": false
        }),
        output_schema: json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "items": {"type": "array"}},
            "required": ["name"]
        }),
        capabilities: Capabilities::default(),
        compensable: false,
        sdk: "fuzz".into(),
    }
}
