//! The host's reading of what a step call returned: the size limit, the output parsed as JSON and
//! checked against the plugin's declared output schema, then every text redacted.
//!
//! **Invariant:** nothing a plugin returns reaches the journal except through [`decode`], so a
//! [`CallOutcome`] holds no value of a secret the redactor knows, in any string, object key or
//! number of its output, its summary or its evidence.
//!
//! This is a pure function of its inputs (no wasmtime), which is what lets the fuzz target
//! `plugin_outcome` drive it directly.

use serde_json::Value;

use super::call::{CallOutcome, Evidence};
use super::error::CallError;
use crate::secrets::Redactor;

/// A step's outcome as the plugin returned it: nothing checked, nothing redacted.
#[derive(Debug, Clone, Default)]
pub struct RawOutcome {
    /// Whether the plugin says something changed.
    pub changed: bool,
    /// Its one-line summary.
    pub summary: String,
    /// Its output, as JSON text.
    pub output: String,
    /// Its evidence.
    pub evidence: Vec<Evidence>,
}

/// Checks and redacts `raw`: the total size against `output_limit`, the output as JSON against
/// `output_schema`, then every text through `redactor` (error messages included).
pub fn decode(
    plugin: &str,
    raw: RawOutcome,
    output_schema: &jsonschema::Validator,
    redactor: &Redactor,
    output_limit: usize,
) -> Result<CallOutcome, CallError> {
    let redact = |s: &str| redactor.redact(s);
    let size = raw.output.len()
        + raw.summary.len()
        + raw
            .evidence
            .iter()
            .map(|e| e.label.len() + e.excerpt.len() + e.command.as_ref().map_or(0, String::len))
            .sum::<usize>();
    if size > output_limit {
        return Err(CallError::TooLarge {
            plugin: plugin.to_string(),
            what: format!("{size} bytes of output"),
            limit: output_limit,
        });
    }
    let output: Value = serde_json::from_str(&raw.output).map_err(|e| CallError::MalformedOutput {
        plugin: plugin.to_string(),
        message: redact(&e.to_string()),
    })?;
    if let Err(errors) = schema_errors(output_schema, &output) {
        return Err(CallError::OutputSchema {
            plugin: plugin.to_string(),
            errors: errors.iter().map(|e| redact(e)).collect(),
        });
    }
    Ok(CallOutcome {
        changed: raw.changed,
        summary: redact(&raw.summary),
        output: redact_value(redactor, output),
        evidence: raw
            .evidence
            .into_iter()
            .map(|e| Evidence {
                label: redact(&e.label),
                command: e.command.as_deref().map(redact),
                exit_code: e.exit_code,
                excerpt: redact(&e.excerpt),
            })
            .collect(),
    })
}

/// Every way `value` fails `validator`, each with its JSON pointer.
pub(crate) fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Result<(), Vec<String>> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// `value` with every secret redacted in its strings, object keys and numbers.
fn redact_value(redactor: &Redactor, value: Value) -> Value {
    if redactor.is_empty() {
        return value;
    }
    match value {
        Value::String(s) => Value::String(redactor.redact(&s)),
        // A secret made of digits (a PIN, a port) must not survive as a number: the number
        // becomes the redacted text, even though the output then no longer has its declared type.
        Value::Number(n) => {
            let text = n.to_string();
            let redacted = redactor.redact(&text);
            if redacted == text { Value::Number(n) } else { Value::String(redacted) }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact_value(redactor, v)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter().map(|(k, v)| (redactor.redact(&k), redact_value(redactor, v))).collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;
    use serde_json::json;

    fn decode_output(output: &str, secret: &str) -> Result<CallOutcome, CallError> {
        let schema = jsonschema::validator_for(&json!({"type": "object"})).unwrap();
        let redactor = Redactor::new([("pin".to_string(), SecretValue::new(secret))]);
        let raw =
            RawOutcome { output: output.into(), summary: format!("used {secret}"), ..RawOutcome::default() };
        decode("p", raw, &schema, &redactor, 1024)
    }

    #[test]
    fn a_secret_is_redacted_from_strings_keys_numbers_and_the_summary() {
        let out =
            decode_output(r#"{"text": "pin 4711!", "4711": true, "n": 4711, "m": 47110}"#, "4711").unwrap();
        assert_eq!(
            out.output,
            json!({"text": "pin [redacted pin]!", "[redacted pin]": true, "n": "[redacted pin]", "m": "[redacted pin]0"})
        );
        assert_eq!(out.summary, "used [redacted pin]");
    }

    #[test]
    fn output_over_the_limit_or_not_json_or_off_schema_is_refused() {
        let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(2000));
        assert!(matches!(decode_output(&big, "zzzz"), Err(CallError::TooLarge { .. })));
        assert!(matches!(decode_output("{", "zzzz"), Err(CallError::MalformedOutput { .. })));
        assert!(matches!(decode_output("[1]", "zzzz"), Err(CallError::OutputSchema { .. })));
    }
}
