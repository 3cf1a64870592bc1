//! Checks a step's `with` against its plugin's input JSON Schema before the run, as far as the
//! input is known: a templated string's value is only known at run time, so templated values
//! are left out (and the "required" errors this causes for them ignored), and a list holding a
//! templated item is left out whole. Keys with templated values are still checked against the
//! keys the schema allows.

use std::collections::BTreeSet;
use std::ops::Range;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use toml::Spanned;

use super::file::{FileValue, PathSegment};
use super::template::is_template;

/// One way the input does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InputProblem {
    /// Where the offending value is in the file, when it is there.
    pub span: Option<Range<usize>>,
    /// `with.a.b[0]`.
    pub path: String,
    /// What is wrong, from the schema validator.
    pub message: String,
}

/// Checks the constant parts of `with` against `schema`.
pub(super) fn check(schema: &Value, with: Option<&Spanned<FileValue>>) -> Vec<InputProblem> {
    let Ok(validator) = jsonschema::validator_for(schema) else {
        // The registry validated the schema when the plugin was installed.
        return Vec::new();
    };
    let input = with.map_or_else(|| Value::Object(Map::new()), |w| w.get_ref().to_json());
    // (pointer of an object, key) for every templated value.
    let mut templated = BTreeSet::new();
    let without = strip(&input, "", &mut templated, false);
    let nulled = strip(&input, "", &mut BTreeSet::new(), true);

    let mut problems = Vec::new();
    let mut report = |pointer: &str, message: String| {
        let segments = pointer_segments(pointer);
        let span = with.and_then(|w| {
            let path = segments.iter().map(|s| match s {
                Seg::Key(k) => PathSegment::Key(k),
                Seg::Index(i) => PathSegment::Index(*i),
            });
            FileValue::lookup(w, path).map(|v| v.span())
        });
        let span = span.or_else(|| with.map(|w| w.span()));
        problems.push(InputProblem {
            span,
            path: display_path(&segments),
            message: lowercase_first(&message),
        });
    };

    for error in validator.iter_errors(&without) {
        let at = error.instance_path().as_str().to_owned();
        let has_templated = templated.iter().any(|(object, _)| *object == at);
        let skip = match error.kind() {
            ValidationErrorKind::Required { property } => {
                property.as_str().is_some_and(|p| templated.contains(&(at.clone(), p.to_owned())))
            }
            ValidationErrorKind::MinProperties { .. } => has_templated,
            _ => false,
        };
        if !skip {
            report(&at, error.to_string());
        }
    }
    // Templated keys the schema does not allow.
    for error in validator.iter_errors(&nulled) {
        if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
            let at = error.instance_path().as_str().to_owned();
            for key in unexpected {
                if templated.contains(&(at.clone(), key.clone())) {
                    report(&at, format!("additional properties are not allowed ('{key}' was unexpected)"));
                }
            }
        }
    }
    problems
}

/// A copy of `value` with every templated value removed (or, with `null_out`, set to null),
/// recording each as (pointer of its object, key). A list with a templated item is treated as
/// templated as a whole.
fn strip(value: &Value, pointer: &str, templated: &mut BTreeSet<(String, String)>, null_out: bool) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if is_unknown(v) {
                    templated.insert((pointer.to_owned(), k.clone()));
                    if null_out {
                        out.insert(k.clone(), Value::Null);
                    }
                } else {
                    let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.insert(k.clone(), strip(v, &child, templated, null_out));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| strip(v, &format!("{pointer}/{i}"), templated, null_out))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether a value is only known at run time.
fn is_unknown(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(is_unknown),
        _ => false,
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn pointer_segments(pointer: &str) -> Vec<Seg> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| {
            let s = s.replace("~1", "/").replace("~0", "~");
            match s.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(s),
            }
        })
        .collect()
}

fn display_path(segments: &[Seg]) -> String {
    let mut out = String::from("with");
    for s in segments {
        match s {
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// jsonschema capitalises some messages; ours start lowercase.
fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_ascii_uppercase() && second.is_ascii_lowercase() => {
            first.to_ascii_lowercase().to_string() + &message[1..]
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spanned(v: Value) -> Spanned<FileValue> {
        fn conv(v: &Value) -> Spanned<FileValue> {
            let value = match v {
                Value::String(s) => FileValue::String(s.clone()),
                Value::Bool(b) => FileValue::Boolean(*b),
                Value::Number(n) => {
                    n.as_i64().map_or(FileValue::Float(n.as_f64().unwrap_or(0.0)), FileValue::Integer)
                }
                Value::Array(a) => FileValue::Array(a.iter().map(conv).collect()),
                Value::Object(o) => FileValue::Table(o.iter().map(|(k, v)| (k.clone(), conv(v))).collect()),
                Value::Null => FileValue::Boolean(false),
            };
            Spanned::new(0..0, value)
        }
        conv(&v)
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "server": { "type": "string" },
                "port": { "type": "integer" },
                "hosts": { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            },
            "required": ["server", "port"],
            "additionalProperties": false
        })
    }

    #[test]
    fn templated_values_are_unknown_but_constants_are_checked() {
        let with =
            spanned(json!({ "server": "{{ item }}", "port": "{{ params.port }}", "hosts": ["{{ item }}"] }));
        assert_eq!(check(&schema(), Some(&with)), vec![]);
        let with = spanned(json!({ "server": "{{ item }}", "port": "1433", "extra": "{{ item }}" }));
        let problems: Vec<(String, String)> =
            check(&schema(), Some(&with)).into_iter().map(|p| (p.path, p.message)).collect();
        assert_eq!(
            problems,
            vec![
                ("with.port".to_owned(), "\"1433\" is not of type \"integer\"".to_owned()),
                (
                    "with".to_owned(),
                    "additional properties are not allowed ('extra' was unexpected)".to_owned()
                ),
            ]
        );
        let problems = check(&schema(), None);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.message.ends_with("is a required property")));
    }
}
