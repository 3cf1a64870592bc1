//! The workflow file as written: serde types that mirror the TOML (or JSON) one to one, with
//! the source position of every value an error may point at. These types own the file format
//! and its JSON Schema (their doc comments are its descriptions); they check nothing beyond
//! shape and are turned into [`super::model`] types by [`validate`](mod@super::validate), never
//! handed to the scheduler.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

use super::model::{OnFailure, ParamType};

/// Names and ids: lowercase words of letters and digits joined by single dashes.
pub const KEBAB_CASE: &str = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$";

/// The TOML field name under which a TOML date or time reaches a deserializer.
const TOML_DATETIME_FIELD: &str = "$__toml_private_datetime";

/// A Drover workflow: a DAG of steps run against the servers of an inventory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "Drover workflow")]
pub struct Document {
    /// The JSON Schema this file follows, for editors; Drover ignores it.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Kebab-case name of the workflow (`dr-site-preparation`).
    #[schemars(with = "String", pattern(KEBAB_CASE), length(max = 64))]
    pub name: Spanned<String>,
    /// Semantic version of the workflow definition (`1.0.0`).
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// What the workflow does.
    pub description: Option<String>,
    /// Run-time parameters by kebab-case name; in templates `params.<name>` with `-` as `_`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ParamFile>")]
    pub params: BTreeMap<Spanned<String>, ParamFile>,
    /// Run-wide limits.
    pub limits: Option<LimitsFile>,
    /// What a failed step does to the run, for steps that set no `on-failure` of their own:
    /// `stop` (default), `continue` or `compensate`; `compensate` here also compensates a run
    /// that ends failed, whichever step failed.
    #[schemars(with = "Option<OnFailure>")]
    pub on_failure: Option<Spanned<OnFailure>>,
    /// What the recovery report says beyond the journal's steps: what stays manual, and where
    /// the data-loss window is measured.
    pub report: Option<ReportFile>,
    /// The steps; their order in the file only breaks ties between steps ready at once.
    #[serde(default)]
    pub steps: Vec<StepFile>,
}

/// What the recovery report adds to a run's steps.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Report")]
pub struct ReportFile {
    /// What stays for a person after the run, one line each (`Redirect clients: DNS and
    /// aliases`); the report lists them, then every step instance skipped or left needing an
    /// operator.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub manual: Vec<Spanned<String>>,
    /// Where the data-loss window is measured: `steps.<id>.output` and optional `.<key>`s, naming
    /// an object with `recovery_point` (the last transaction restored) and `failure_time`, each an
    /// RFC 3339 time (`2026-12-07T09:14:00Z`, `2026-12-07T10:14:00+01:00`); the step must not fan
    /// out.
    #[schemars(with = "Option<String>")]
    pub rpo: Option<Spanned<String>>,
}

/// A run-time parameter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Param")]
pub struct ParamFile {
    /// The type its value must have.
    #[serde(rename = "type")]
    #[schemars(with = "ParamType")]
    pub kind: Spanned<ParamType>,
    /// The value used when the run gives none; without one the run must give a value.
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<Spanned<FileValue>>,
    /// What the param is for.
    pub description: Option<String>,
}

/// Limits that hold for the whole run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Limits")]
pub struct LimitsFile {
    /// How many step instances may run at once in the whole run (default 8).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub concurrency: Option<Spanned<u32>>,
}

/// One step of the workflow: a plugin call or an approval gate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Step")]
pub struct StepFile {
    /// Kebab-case id, unique in the workflow; in templates `steps.<id>` with `-` as `_`.
    #[schemars(with = "String", pattern(KEBAB_CASE), length(max = 64))]
    pub id: Spanned<String>,
    /// The plugin to call, `name@<semver requirement>` (`join-group@^1.2`); or `approval`.
    #[schemars(with = "Option<String>")]
    pub plugin: Option<Spanned<String>>,
    /// Makes the step an approval gate that waits for an operator; or `plugin`.
    #[schemars(with = "Option<ApprovalFile>")]
    pub approval: Option<Spanned<ApprovalFile>>,
    /// Ids of the steps that must finish before this one starts.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub needs: Vec<Spanned<String>>,
    /// Fan-out: one instance per server of an inventory group (a string) or per list value.
    #[schemars(with = "Option<ForEachFile>")]
    pub for_each: Option<Spanned<ForEachFile>>,
    /// An expression without braces (`params.join and steps.check.output.ok`); false skips.
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// Wall-time limit of one attempt, a duration such as `90s` or `10m`, at most `7days`
    /// (default `30m`).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// How failed attempts are retried.
    pub retry: Option<RetryFile>,
    /// Limits of concurrently running instances of this step.
    pub concurrency: Option<StepConcurrencyFile>,
    /// What a failure of this step does to the run: `stop`, `continue` or `compensate`
    /// (default: the top-level `on-failure`, else `stop`).
    #[schemars(with = "Option<OnFailure>")]
    pub on_failure: Option<Spanned<OnFailure>>,
    /// What the step may do on targets; `*` grants all.
    pub grants: Option<GrantsFile>,
    /// The recovery phase the step belongs to (`Restore databases`), for the report, which gives
    /// each phase its start, end and elapsed time; the steps of a phase need not be consecutive.
    #[schemars(with = "Option<String>")]
    pub phase: Option<Spanned<String>>,
    /// The plugin's input: any table; its strings are templates (`{{ params.sql_server }}`).
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub with: Option<Spanned<FileValue>>,
}

/// An approval gate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Approval")]
pub struct ApprovalFile {
    /// The question shown to the operator; a template (`{{ steps.measure.output.rpo }}`) rendered
    /// when the gate is reached, over what `with` would see there.
    #[schemars(with = "String")]
    pub prompt: Spanned<String>,
    /// OS users who may approve (as `drover approve` sees them: `$USER`); anyone when absent.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub approvers: Vec<Spanned<String>>,
}

/// Exponential backoff between failed attempts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Retry")]
pub struct RetryFile {
    /// Attempts in all, the first included (default 1: no retry).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub attempts: Option<Spanned<u32>>,
    /// Delay before the second attempt, at most `1day` (default `1s`).
    #[schemars(with = "Option<String>")]
    pub initial: Option<Spanned<String>>,
    /// Each delay is the previous one times this (default 2).
    #[schemars(with = "Option<f64>", range(min = 1))]
    pub factor: Option<Spanned<f64>>,
    /// Upper bound of a delay, at most `1day` (default `5m`).
    #[schemars(with = "Option<String>")]
    pub max: Option<Spanned<String>>,
    /// Each delay varies randomly by up to this fraction of itself, 0 to 1 (default 0.1).
    #[schemars(with = "Option<f64>", range(min = 0, max = 1))]
    pub jitter: Option<Spanned<f64>>,
}

/// Limits of concurrently running instances of one step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "StepConcurrency")]
pub struct StepConcurrencyFile {
    /// Instances of this step running at once.
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub step: Option<Spanned<u32>>,
    /// Attempts running at once against the same target, of any step: this step starts one
    /// on a target only while fewer than this many run there.
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub per_target: Option<Spanned<u32>>,
}

/// What a step may do on targets.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(rename = "Grants")]
pub struct GrantsFile {
    /// Targets (server or group names) it may act on.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub targets: Vec<Spanned<String>>,
    /// Programs it may run on them (`sc.exe`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub programs: Vec<Spanned<String>>,
    /// Secrets it may reference or read.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub secrets: Vec<Spanned<String>>,
    /// Program runs that change nothing, allowed in check mode (`drover plan`): words matched
    /// one by one against the argv (`*` any characters, `?` one; a last word `**` any further
    /// words), such as `reg query **` or `sc.exe qc *`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub read_only: Vec<Spanned<String>>,
}

/// `for-each`: an inventory group name, or a list of values.
#[derive(Debug, Clone, PartialEq)]
pub enum ForEachFile {
    /// The servers of this inventory group.
    Group(String),
    /// These values.
    List(Vec<Spanned<FileValue>>),
}

impl<'de> Deserialize<'de> for ForEachFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ForEachFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an inventory group name or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ForEachFile, E> {
                Ok(ForEachFile::Group(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ForEachFile, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ForEachFile::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ForEachFile {
    fn schema_name() -> Cow<'static, str> {
        "ForEach".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
        json_schema!({
            "description": "An inventory group name, or a list of values.",
            "anyOf": [
                { "type": "string", "description": "The servers of this inventory group." },
                { "type": "array", "description": "These values; string values may be templates." }
            ]
        })
    }
}

/// A value in a workflow file (`with`, param defaults, `for-each` items), with the position of
/// every element kept.
#[derive(Debug, Clone, PartialEq)]
pub enum FileValue {
    /// A string (in `with`, a template). TOML dates and times arrive as strings too.
    String(String),
    /// A whole number.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// A list.
    Array(Vec<Spanned<FileValue>>),
    /// A table.
    Table(BTreeMap<String, Spanned<FileValue>>),
}

impl FileValue {
    /// The value as JSON, positions dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            FileValue::String(s) => Value::String(s.clone()),
            FileValue::Integer(i) => Value::from(*i),
            FileValue::Float(f) => Value::from(*f),
            FileValue::Boolean(b) => Value::Bool(*b),
            FileValue::Array(items) => Value::Array(items.iter().map(|i| i.get_ref().to_json()).collect()),
            FileValue::Table(table) => {
                Value::Object(table.iter().map(|(k, v)| (k.clone(), v.get_ref().to_json())).collect())
            }
        }
    }

    /// The value at a JSON-pointer-like path of keys and indices, with its position.
    pub fn lookup<'a>(
        this: &'a Spanned<FileValue>,
        path: impl IntoIterator<Item = PathSegment<'a>>,
    ) -> Option<&'a Spanned<FileValue>> {
        let mut current = this;
        for segment in path {
            current = match (current.get_ref(), segment) {
                (FileValue::Table(t), PathSegment::Key(k)) => t.get(k)?,
                (FileValue::Array(a), PathSegment::Index(i)) => a.get(i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// The kind of value, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            FileValue::String(_) => "string",
            FileValue::Integer(_) => "integer",
            FileValue::Float(_) => "number",
            FileValue::Boolean(_) => "boolean",
            FileValue::Array(_) => "array",
            FileValue::Table(_) => "table",
        }
    }
}

/// One step of a path into a [`FileValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSegment<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

impl<'de> Deserialize<'de> for FileValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileValue, E> {
                Ok(FileValue::Boolean(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileValue, E> {
                Ok(FileValue::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileValue, E> {
                i64::try_from(v)
                    .map(FileValue::Integer)
                    .map_err(|_| E::custom(format!("integer {v} is too large (at most {})", i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FileValue, E> {
                Ok(FileValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileValue, E> {
                Ok(FileValue::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FileValue, E> {
                Ok(FileValue::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FileValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(FileValue::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileValue, A::Error> {
                let mut table = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == TOML_DATETIME_FIELD {
                        return Ok(FileValue::String(map.next_value::<String>()?));
                    }
                    let value = map.next_value::<Spanned<FileValue>>()?;
                    table.insert(key, value);
                }
                Ok(FileValue::Table(table))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for FileValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_positions_and_dates_become_strings() {
        let text = "id = \"a\"\nfor-each = [\"x\", 2]\nwith = { when = 1979-05-27, list = [1.5, true], t = { s = \"{{ item }}\" } }\n";
        let step: StepFile = toml::from_str(text).expect("a step");
        let with = step.with.expect("with");
        assert_eq!(
            with.get_ref().to_json(),
            serde_json::json!({ "when": "1979-05-27", "list": [1.5, true], "t": { "s": "{{ item }}" } })
        );
        let s = FileValue::lookup(&with, [PathSegment::Key("t"), PathSegment::Key("s")]).expect("t.s");
        assert_eq!(&text[s.span()], "\"{{ item }}\"");
        let Some(ForEachFile::List(items)) = step.for_each.map(Spanned::into_inner) else { panic!("a list") };
        assert_eq!(
            items.iter().map(|i| i.get_ref().clone()).collect::<Vec<_>>(),
            [FileValue::String("x".into()), FileValue::Integer(2)]
        );
    }
}
