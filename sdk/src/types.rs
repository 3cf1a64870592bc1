//! The plain Rust types a plugin author works with: metadata, context, outcomes, errors and
//! target requests. They mirror the WIT records without exposing the generated bindings.

use std::fmt;

use serde::Serialize;

/// What running the step does to the world; decides what Drover does with an interrupted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Looks, never changes anything.
    ReadOnly,
    /// Running it twice has the effect of running it once.
    Idempotent,
    /// `check` tells whether the change is there; `compensate` may undo it.
    Reversible,
    /// Cannot be undone or safely repeated.
    Irreversible,
}

/// What the host asks of the plugin in this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make the change.
    Apply,
    /// Say what `apply` would change, changing nothing.
    Check,
    /// Undo what `apply` did.
    Compensate,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Useful when something goes wrong.
    Debug,
    /// Normal progress.
    Info,
    /// Something the operator should read.
    Warn,
    /// Something failed.
    Error,
}

/// Where in a run a call happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The run id; empty outside a run.
    pub run_id: String,
    /// The step instance, e.g. `join-group[DRBTS02]`.
    pub step_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable for the step instance across attempts and resumes.
    pub idempotency_key: String,
    /// The target this step instance is about, when it has one.
    pub target: Option<String>,
    /// What is asked.
    pub mode: Mode,
}

impl Context {
    /// A context for tests and examples: run `run_test`, step `step`, attempt 1.
    pub fn for_test(mode: Mode) -> Self {
        Context {
            run_id: "run_test".into(),
            step_key: "step".into(),
            attempt: 1,
            idempotency_key: "run_test/step".into(),
            target: None,
            mode,
        }
    }
}

/// A piece of evidence for the recovery report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    /// What was looked at or done.
    pub label: String,
    /// The command that was run, if any.
    pub command: Option<String>,
    /// Its exit code, if any.
    pub exit_code: Option<i32>,
    /// The relevant lines of its output.
    pub excerpt: String,
}

impl Evidence {
    /// Evidence that is an observation, not a command.
    pub fn note(label: impl Into<String>, excerpt: impl Into<String>) -> Self {
        Evidence { label: label.into(), excerpt: excerpt.into(), ..Default::default() }
    }

    /// Evidence of a program run through [`crate::Ctx::exec`].
    pub fn from_exec(label: impl Into<String>, request: &ExecRequest, output: &ExecOutput) -> Self {
        Evidence {
            label: label.into(),
            command: Some(request.command_line()),
            exit_code: output.exit_code,
            excerpt: excerpt(&output.stdout_lossy(), 20),
        }
    }
}

/// The first `max_lines` non-empty lines of `text`, for evidence excerpts.
pub fn excerpt(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = lines.iter().take(max_lines).copied().collect::<Vec<_>>().join("\n");
    if lines.len() > max_lines {
        out.push_str(&format!("\n… {} more lines", lines.len() - max_lines));
    }
    out
}

/// The result of a call that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// Something changed (or, in check mode, would change).
    pub changed: bool,
    /// One line for the operator.
    pub summary: String,
    /// The typed output.
    pub output: T,
    /// Evidence for the report.
    pub evidence: Vec<Evidence>,
}

impl<T> Outcome<T> {
    /// Something changed (in check mode: would change).
    pub fn changed(output: T, summary: impl Into<String>) -> Self {
        Outcome { changed: true, summary: summary.into(), output, evidence: Vec::new() }
    }

    /// Nothing changed (in check mode: nothing would).
    pub fn unchanged(output: T, summary: impl Into<String>) -> Self {
        Outcome { changed: false, summary: summary.into(), output, evidence: Vec::new() }
    }

    /// Adds a piece of evidence.
    pub fn with_evidence(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }
}

/// Why a call failed, and what the engine should do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// Transient: the engine may retry.
    Retryable(String),
    /// Retrying cannot help.
    Permanent(String),
    /// A person has to look first.
    NeedsOperator(String),
}

impl StepError {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError::Retryable(message.into())
    }
    /// A failure retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError::Permanent(message.into())
    }
    /// A failure a person has to look at.
    pub fn needs_operator(message: impl Into<String>) -> Self {
        StepError::NeedsOperator(message.into())
    }
    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            StepError::Retryable(m) | StepError::Permanent(m) | StepError::NeedsOperator(m) => m,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            StepError::Retryable(_) => "retryable",
            StepError::Permanent(_) => "permanent",
            StepError::NeedsOperator(_) => "needs operator",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for StepError {}

/// Why a host call did not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostErrorKind {
    /// Not granted to this step.
    Denied,
    /// Transient: trying again may help.
    Retryable,
    /// Retrying cannot help.
    Permanent,
    /// The secret, file or key does not exist.
    NotFound,
    /// Over a host limit.
    TooLarge,
}

/// A failed host call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// What kind of failure.
    pub kind: HostErrorKind,
    /// What the host said.
    pub message: String,
}

impl HostError {
    /// A host error of `kind`.
    pub fn new(kind: HostErrorKind, message: impl Into<String>) -> Self {
        HostError { kind, message: message.into() }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

/// A host error becomes a step error: retryable if the host said retrying may help.
impl From<HostError> for StepError {
    fn from(e: HostError) -> Self {
        match e.kind {
            HostErrorKind::Retryable => StepError::Retryable(e.message),
            _ => StepError::Permanent(e.message),
        }
    }
}

/// A program to run on a target; build it with [`crate::Ctx::exec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecRequest {
    /// Inventory name of the target.
    pub target: String,
    /// The program.
    pub program: String,
    /// Its arguments. Never secret references: the host refuses them (command lines can be
    /// read by other users of the target); put secrets in `stdin`.
    pub args: Vec<String>,
    /// Standard input; may contain [`crate::secret_ref`]s.
    pub stdin: Option<Vec<u8>>,
    /// Kill it after this many milliseconds; the host's default when absent.
    pub timeout_ms: Option<u32>,
}

impl ExecRequest {
    /// The command line as a person would type it, for evidence.
    pub fn command_line(&self) -> String {
        let mut line = self.program.clone();
        for arg in &self.args {
            line.push(' ');
            if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains('"') {
                line.push('"');
                line.push_str(&arg.replace('"', "\\\""));
                line.push('"');
            } else {
                line.push_str(arg);
            }
        }
        line
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Absent when the program was killed by a signal.
    pub exit_code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Output beyond the host's limit was dropped.
    pub truncated: bool,
    /// How long it ran.
    pub duration_ms: u64,
}

impl ExecOutput {
    /// A program that exited with `code` and printed `stdout`: handy in tests.
    pub fn exited(code: i32, stdout: impl Into<String>) -> Self {
        ExecOutput { exit_code: Some(code), stdout: stdout.into().into_bytes(), ..Default::default() }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
