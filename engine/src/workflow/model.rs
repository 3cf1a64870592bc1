//! The validated workflow: what the scheduler runs. Every value here has been checked (DAG
//! acyclic, plugins resolved, durations parsed, limits positive), and nothing here knows about
//! TOML, JSON or source positions. A [`Workflow`] is serialized as JSON and pinned in the run
//! journal when a run starts, so a resumed run executes exactly the definition it began with.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plugin::{Effect, PluginInfo, PluginRef};

/// A validated workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Kebab-case name.
    pub name: String,
    /// Semantic version of the workflow definition.
    pub version: Version,
    /// What it does, if the file says.
    pub description: Option<String>,
    /// Run-time parameters, in file order.
    pub params: Vec<Param>,
    /// Run-wide limits.
    pub limits: RunLimits,
    /// The file's run-level `on-failure`. It is already the [`Step::on_failure`] of every step
    /// that sets none; [`OnFailure::Compensate`] here also compensates a run that ends failed
    /// whichever step failed (see [`Workflow::compensates`]). Absent from definitions pinned
    /// before it existed, which read as [`OnFailure::Stop`].
    #[serde(default)]
    pub on_failure: OnFailure,
    /// What the recovery report adds: the manual work list and where the data-loss window is
    /// measured. Left out of the pinned definition when empty, so definitions pinned before it
    /// existed, and their digests, stay as they were.
    #[serde(default, skip_serializing_if = "ReportSpec::is_empty")]
    pub report: ReportSpec,
    /// The steps, in file order; [`Step::needs`] and [`Workflow::order`] index into it.
    pub steps: Vec<Step>,
    /// A topological order of step indices: every step comes after the steps it needs, and
    /// otherwise in file order.
    pub order: Vec<usize>,
}

impl Workflow {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The param with this name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether a run that failed compensates: the run-level `on-failure` is `compensate`, or one
    /// of the steps with a failed instance (`failed`, indices into [`Workflow::steps`]) says
    /// `compensate`.
    pub fn compensates(&self, failed: impl IntoIterator<Item = usize>) -> bool {
        self.on_failure == OnFailure::Compensate
            || failed
                .into_iter()
                .any(|i| self.steps.get(i).is_some_and(|s| s.on_failure == OnFailure::Compensate))
    }
}

/// What the recovery report adds to a run's journal (the file's `[report]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportSpec {
    /// What stays for a person after the run, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manual: Vec<String>,
    /// Where the data-loss window is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoSource>,
}

impl ReportSpec {
    /// Whether the file said nothing of the report.
    pub fn is_empty(&self) -> bool {
        self.manual.is_empty() && self.rpo.is_none()
    }
}

/// The output of a step that holds the data-loss window: `recovery_point` and `failure_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpoSource {
    /// The step's id; it does not fan out.
    pub step: String,
    /// Keys from its output to the object (empty: the output itself).
    pub path: Vec<String>,
}

impl fmt::Display for RpoSource {
    /// As written in the file: `steps.declare.output.rpo`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "steps.{}.output", self.step.replace('-', "_"))?;
        self.path.iter().try_for_each(|key| write!(f, ".{key}"))
    }
}

/// A run-time parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Kebab-case name (`params.<name with _>` in templates).
    pub name: String,
    /// The type its value must have.
    pub kind: ParamType,
    /// The value used when the run gives none; `None` makes the param required at run time.
    pub default: Option<Value>,
    /// What it is for.
    pub description: Option<String>,
}

/// The type of a param's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A table.
    Object,
}

impl ParamType {
    /// Whether `value` has this type.
    pub fn matches(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Array => value.is_array(),
            ParamType::Object => value.is_object(),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        })
    }
}

/// Limits that hold for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// How many step instances may run at once.
    pub concurrency: u32,
}

impl RunLimits {
    /// The default run-wide concurrency.
    pub const DEFAULT_CONCURRENCY: u32 = 8;
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { concurrency: Self::DEFAULT_CONCURRENCY }
    }
}

/// A validated step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Kebab-case id, unique in the workflow (`steps.<id with _>` in templates).
    pub id: String,
    /// What the step does.
    pub kind: StepKind,
    /// Indices of the steps it directly needs, in file order of the `needs` list.
    pub needs: Vec<usize>,
    /// Fan-out: one step instance per item.
    pub for_each: Option<ForEach>,
    /// The condition (a template expression); false skips the step.
    pub when: Option<String>,
    /// The plugin's input, with templates still in its strings (rendered per instance).
    pub with: Value,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
    /// Wall-time limit of one attempt.
    #[serde(with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Limits of concurrently running instances of this step.
    pub concurrency: StepConcurrency,
    /// What a failure of this step does to the run: its own `on-failure`, else the run-level
    /// one, else [`OnFailure::Stop`].
    pub on_failure: OnFailure,
    /// What the step may do on targets.
    pub grants: GrantsSpec,
    /// The recovery phase it belongs to, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

impl Step {
    /// Whether the step fans out into one instance per item.
    pub fn fans_out(&self) -> bool {
        self.for_each.is_some()
    }

    /// The plugin reference and describe, for a plugin step.
    pub fn plugin(&self) -> Option<(&PluginRef, &PluginInfo)> {
        match &self.kind {
            StepKind::Plugin { reference, info } => Some((reference, &**info)),
            StepKind::Approval { .. } => None,
        }
    }

    /// Whether compensation may undo this step (see [`StepKind::compensable`]).
    pub fn compensable(&self) -> bool {
        self.kind.compensable()
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Calls a plugin.
    Plugin {
        /// The reference from the file (`name@^1.2`).
        #[serde(with = "plugin_ref")]
        reference: PluginRef,
        /// The installed plugin it resolved to when the workflow was validated.
        info: Box<PluginInfo>,
    },
    /// Waits for an operator to approve.
    Approval {
        /// The question shown to the operator, as written: a template rendered when the gate
        /// is reached.
        prompt: String,
        /// OS users who may approve; anyone when empty.
        #[serde(default)]
        approvers: Vec<String>,
    },
}

impl StepKind {
    /// Whether compensation may undo a step of this kind: it calls a plugin that implements
    /// `compensate` and is not irreversible. Compensation leaves every other step as is (and
    /// lists it).
    pub fn compensable(&self) -> bool {
        match self {
            StepKind::Plugin { info, .. } => info.compensable && info.effect != Effect::Irreversible,
            StepKind::Approval { .. } => false,
        }
    }
}

/// Where a step's fan-out items come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForEach {
    /// The servers of an inventory group; `item` is the server name.
    Group(String),
    /// A list of values; string items may be templates, rendered when the step becomes ready.
    List(Vec<Value>),
}

/// The longest `timeout` a step may have: 7 days. Validation refuses longer ones, so an attempt's
/// deadline is always a time the clock can reach.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest retry delay (`retry.initial`, `retry.max`): 1 day. Validation refuses longer
/// ones, and [`backoff`](crate::run::clock::backoff) never waits longer than this (times the
/// jitter), even for a definition pinned before the limit existed.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The key of instance `n` of step `id`: the id alone when the step does not fan out, `id[item]`
/// for a string, number or boolean item, `id[n]` for a list or table item. Keys name instances in
/// the journal and in `steps.<id>.outputs`, so the items of one fan-out must give distinct keys
/// (see [`duplicate_instance_key`]).
pub fn instance_key(id: &str, item: Option<&Value>, n: usize) -> String {
    match item {
        None => id.to_string(),
        Some(Value::String(s)) => format!("{id}[{s}]"),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => format!("{id}[{v}]"),
        Some(_) => format!("{id}[{n}]"),
    }
}

/// Two items of a fan-out of step `id` that give the same [`instance_key`] (`["1", 1]`), as
/// `(first index, second index, key)`; the first such pair in item order.
pub fn duplicate_instance_key(id: &str, items: &[Option<Value>]) -> Option<(usize, usize, String)> {
    let mut seen = std::collections::HashMap::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let key = instance_key(id, item.as_ref(), n);
        if let Some(&first) = seen.get(&key) {
            return Some((first, n, key));
        }
        seen.insert(key, n);
    }
    None
}

/// How failed attempts are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "duration")]
    pub initial: Duration,
    /// Each delay is the previous one times this.
    pub factor: f64,
    /// Upper bound of a delay.
    #[serde(with = "duration")]
    pub max: Duration,
    /// Each delay varies randomly by up to this fraction of itself.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(5 * 60),
            jitter: 0.1,
        }
    }
}

/// Limits of concurrently running instances of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepConcurrency {
    /// Instances of this step running at once.
    pub step: Option<u32>,
    /// Instances of this step running at once against the same target.
    pub per_target: Option<u32>,
}

/// What a failed step (its last attempt failed) does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Start no new step instance; instances already running finish, then the run ends failed.
    /// Nothing is undone.
    #[default]
    Stop,
    /// Skip the steps that need this one, directly or through others; steps that do not need it
    /// go on, and the run ends failed once they are done. Nothing is undone.
    Continue,
    /// As `stop`, then undo: once running instances finish, the `compensate` of each step that
    /// succeeded and changed something runs, in reverse dependency order; irreversible steps and
    /// steps whose plugin has no `compensate` are left as is. At run level, also compensate when
    /// the run ends failed, whichever step failed.
    Compensate,
}

impl OnFailure {
    /// Whether a failure stops the run from starting new step instances (`stop`, `compensate`).
    pub fn halts(self) -> bool {
        matches!(self, OnFailure::Stop | OnFailure::Compensate)
    }
}

/// What a step may do, as granted by the workflow (`*` grants all).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantsSpec {
    /// Targets it may act on (server or group names).
    pub targets: Vec<String>,
    /// Programs it may run on them.
    pub programs: Vec<String>,
    /// Secrets it may reference or read.
    pub secrets: Vec<String>,
    /// Program runs allowed in check mode (read-only patterns).
    #[serde(default)]
    pub read_only: Vec<String>,
}

/// `PluginRef` as its display string (`name@^1.2`).
mod plugin_ref {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::plugin::PluginRef;

    pub(super) fn serialize<S: Serializer>(r: &PluginRef, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(r)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PluginRef, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `Duration` as a humantime string (`1m 30s`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// `Option<Duration>` as a humantime string or null.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
