//! One plugin call: what goes in ([`StepCall`], [`CallEnv`]) and what comes out ([`CallReport`]).
//! These types carry no wasmtime or WIT types, so the scheduler and the CLI depend on them alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CallError;
use crate::grants::{Grants, Refusal};
use crate::secrets::{MapSecrets, SecretSource};
use crate::target::TargetSet;

/// Which export to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `apply`: make the change.
    Apply,
    /// `check`: say what would change; the host refuses writes.
    Check,
    /// `compensate`: undo.
    Compensate,
}

impl Mode {
    /// The export's name, as the journal stores an attempt's mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Apply => "apply",
            Mode::Check => "check",
            Mode::Compensate => "compensate",
        }
    }

    /// The mode named `text`.
    pub fn parse(text: &str) -> Option<Mode> {
        [Mode::Apply, Mode::Check, Mode::Compensate].into_iter().find(|m| m.as_str() == text)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a run the call happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepContext {
    /// The run; empty outside a run.
    pub run_id: String,
    /// The step instance.
    pub step_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across attempts and resumes.
    pub idempotency_key: String,
    /// The step instance's target.
    pub target: Option<String>,
}

impl StepContext {
    /// A context for a call outside any run (`drover plugin run`, benchmarks).
    pub fn standalone(target: Option<String>) -> Self {
        StepContext {
            run_id: String::new(),
            step_key: "standalone".into(),
            attempt: 1,
            idempotency_key: "standalone".into(),
            target,
        }
    }
}

/// A call to make.
#[derive(Debug, Clone)]
pub struct StepCall {
    /// Which export.
    pub mode: Mode,
    /// Where in the run.
    pub context: StepContext,
    /// The input; validated against the plugin's input schema before the call.
    pub input: Value,
    /// What the step may do.
    pub grants: Grants,
    /// Wall-time limit; the host's default when absent.
    pub timeout: Option<Duration>,
}

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Diagnostics.
    Debug,
    /// Progress.
    Info,
    /// Worth reading.
    Warn,
    /// A failure.
    Error,
}

/// A log line a plugin wrote, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// Audit record of one target call, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetCallRecord {
    /// The target.
    pub target: String,
    /// Which call.
    pub call: TargetCall,
    /// The program or path.
    pub what: String,
    /// Program arguments with secret references as written (values never appear).
    pub args: Vec<String>,
    /// The exit code, for exec.
    pub exit_code: Option<i32>,
    /// How long it took.
    pub duration_ms: u64,
    /// Bytes of stdout (exec) or of the file read.
    pub stdout_bytes: usize,
    /// Bytes of stderr (exec) or written.
    pub stderr_bytes: usize,
    /// The transport's error, if the call failed.
    pub error: Option<String>,
}

/// The host calls that act on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetCall {
    /// `exec`: a program run.
    Exec,
    /// `read-file`.
    ReadFile,
    /// `write-file`.
    WriteFile,
    /// `remove-file`.
    RemoveFile,
}

impl std::fmt::Display for TargetCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetCall::Exec => "exec",
            TargetCall::ReadFile => "read-file",
            TargetCall::WriteFile => "write-file",
            TargetCall::RemoveFile => "remove-file",
        })
    }
}

/// A piece of evidence for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// What was looked at or done.
    pub label: String,
    /// The command run, if any.
    pub command: Option<String>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Relevant output.
    pub excerpt: String,
}

/// A successful call's result, validated and redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    /// Something changed (check: would change).
    pub changed: bool,
    /// One line for the operator.
    pub summary: String,
    /// The output, matching the declared schema.
    pub output: Value,
    /// Evidence.
    pub evidence: Vec<Evidence>,
}

/// Everything one call produced, whether it succeeded or not.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The outcome or the cause of failure.
    pub result: Result<CallOutcome, CallError>,
    /// Log lines, in order.
    pub logs: Vec<LogRecord>,
    /// What the guest wrote to stdout (capped).
    pub stdout: String,
    /// What the guest wrote to stderr (capped).
    pub stderr: String,
    /// Every target call.
    pub target_calls: Vec<TargetCallRecord>,
    /// Every refused host call.
    pub refusals: Vec<Refusal>,
    /// Wall time of the call, instantiation included.
    pub duration: Duration,
}

/// Receives what a plugin does as it happens (progress display, journal). All methods default
/// to doing nothing.
pub trait CallObserver: Send + Sync {
    /// A log line.
    fn log(&self, _record: &LogRecord) {}
    /// A heartbeat.
    fn heartbeat(&self, _progress: Option<f32>, _message: &str) {}
    /// A target call finished.
    fn target_call(&self, _record: &TargetCallRecord) {}
    /// A host call was refused.
    fn refusal(&self, _refusal: &Refusal) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl CallObserver for NoObserver {}

/// What one step instance's checkpoints hold: the host caps both (`plugin/imports.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateUsage {
    /// Keys.
    pub keys: usize,
    /// Bytes of keys and values together.
    pub bytes: usize,
}

/// Durable checkpoints of one step instance (`state-get` / `state-set`).
#[async_trait]
pub trait StepStateStore: Send + Sync {
    /// Reads a key: `None` when it was never set. An error means the checkpoints could not be
    /// read; the host fails the attempt with it rather than letting the plugin take the key for
    /// absent.
    async fn get(&self, key: &str) -> Result<Option<String>, String>;
    /// Writes a key; durable when this returns.
    async fn set(&self, key: &str, value: &str) -> Result<(), String>;
    /// What the instance's checkpoints other than `except` hold.
    async fn usage(&self, except: &str) -> Result<StateUsage, String>;
}

/// Checkpoints in memory: for calls outside a run.
#[derive(Debug, Default)]
pub struct MemoryState(Mutex<BTreeMap<String, String>>);

#[async_trait]
impl StepStateStore for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned())
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key.into(), value.into());
        Ok(())
    }

    async fn usage(&self, except: &str) -> Result<StateUsage, String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let others = map.iter().filter(|(k, _)| k.as_str() != except);
        Ok(others.fold(StateUsage::default(), |u, (k, v)| StateUsage {
            keys: u.keys + 1,
            bytes: u.bytes + k.len() + v.len(),
        }))
    }
}

/// The world a call runs against.
#[derive(Clone)]
pub struct CallEnv {
    /// Reachable targets.
    pub targets: TargetSet,
    /// Where secret values come from.
    pub secrets: Arc<dyn SecretSource>,
    /// Step-scoped checkpoints.
    pub state: Arc<dyn StepStateStore>,
    /// Live events.
    pub observer: Arc<dyn CallObserver>,
}

impl Default for CallEnv {
    fn default() -> Self {
        CallEnv {
            targets: TargetSet::new(),
            secrets: Arc::new(MapSecrets::new()),
            state: Arc::new(MemoryState::default()),
            observer: Arc::new(NoObserver),
        }
    }
}
