//! Errors of the plugin host, split by what the caller does with them: [`LoadError`] means the
//! file is not a usable plugin (fix the file); [`CallError`] means one attempt failed (the
//! scheduler retries, stops or asks an operator according to [`CallError::class`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::grants::Refusal;

/// A file that is not a usable plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component: the file does not start with the wasm magic bytes")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "a core WebAssembly module, not a component: build the plugin with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    /// Wasmtime could not compile it.
    #[error("cannot compile the component: {0}")]
    Compile(String),
    /// Built against a contract version this host does not speak.
    #[error(
        "built against plugin contract drover:plugin@{found}, but this drover speaks drover:plugin@{supported}: rebuild the plugin with a drover-sdk for contract {supported}"
    )]
    ContractVersion {
        /// The version the component imports.
        found: String,
        /// The version this host speaks.
        supported: &'static str,
    },
    /// A component, but not of the step world.
    #[error("not a Drover step plugin (world drover:plugin/step@{supported}): {detail}")]
    WrongWorld {
        /// What wasmtime found missing or mismatched.
        detail: String,
        /// The version this host speaks.
        supported: &'static str,
    },
    /// `describe` trapped or could not run.
    #[error("describe failed: {0}")]
    DescribeFailed(String),
    /// `describe` returned something incomplete or invalid.
    #[error("describe is incomplete or invalid:\n  - {}", .0.join("\n  - "))]
    Describe(Vec<String>),
}

/// What the engine should do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Retry according to the step's policy.
    Retryable,
    /// Do not retry.
    Permanent,
    /// Stop and ask an operator.
    NeedsOperator,
}

impl FailureClass {
    /// The class's name, as the journal stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Retryable => "retryable",
            FailureClass::Permanent => "permanent",
            FailureClass::NeedsOperator => "needs-operator",
        }
    }

    /// The class named `text`, as the journal stores it.
    pub fn parse(text: &str) -> Option<FailureClass> {
        [FailureClass::Retryable, FailureClass::Permanent, FailureClass::NeedsOperator]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one plugin call failed. Every variant names the plugin and the cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error.
    #[error("plugin {plugin} failed ({class:?}): {message}")]
    Step {
        /// The plugin.
        plugin: String,
        /// The kind of error the plugin declared.
        class: FailureClass,
        /// Its message, secrets redacted.
        message: String,
    },
    /// The plugin asked for something the step was not granted.
    #[error("{0}")]
    Denied(Refusal),
    /// Ran past its time limit.
    #[error("plugin {plugin} timed out after {}s and was stopped", limit.as_secs_f64())]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit: Duration,
    },
    /// Tried to grow its memory past the cap.
    #[error("plugin {plugin} exceeded its memory limit of {} MiB (tried to grow to {} MiB) and was stopped", limit / (1024 * 1024), requested / (1024 * 1024))]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The cap in bytes.
        limit: usize,
        /// What it asked for in bytes.
        requested: usize,
    },
    /// Panicked (a Rust plugin's `panic!`).
    #[error("plugin {plugin} panicked: {message}")]
    Panic {
        /// The plugin.
        plugin: String,
        /// The panic message and location.
        message: String,
    },
    /// Trapped for another reason (unreachable, out of bounds, stack overflow).
    #[error("plugin {plugin} trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and the end of the plugin's stderr.
        message: String,
    },
    /// Produced more than a host limit allows.
    #[error("plugin {plugin} produced {what} over the limit of {limit} bytes")]
    TooLarge {
        /// The plugin.
        plugin: String,
        /// What was too large.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// Output that is not JSON.
    #[error("plugin {plugin} returned malformed output JSON: {message}")]
    MalformedOutput {
        /// The plugin.
        plugin: String,
        /// The parser's message.
        message: String,
    },
    /// Output that does not match the declared output schema.
    #[error("output of plugin {plugin} does not match its declared output schema: {}", errors.join("; "))]
    OutputSchema {
        /// The plugin.
        plugin: String,
        /// Each mismatch, with its JSON pointer.
        errors: Vec<String>,
    },
    /// Input that does not match the plugin's input schema; the plugin was not called.
    #[error("input does not match the input schema of plugin {plugin}: {}", errors.join("; "))]
    InputSchema {
        /// The plugin.
        plugin: String,
        /// Each mismatch, with its JSON pointer.
        errors: Vec<String>,
    },
    /// Stopped because the operator cancelled the run; nothing says how far it got.
    #[error("plugin {plugin} was stopped: the run was cancelled")]
    Cancelled {
        /// The plugin.
        plugin: String,
    },
    /// The step's checkpoints could not be read (`state-get`): the call was stopped there, so the
    /// plugin never took the key for absent.
    #[error("plugin {plugin} was stopped: its checkpoint {key} could not be read: {message}")]
    StateUnreadable {
        /// The plugin.
        plugin: String,
        /// The checkpoint key it asked for.
        key: String,
        /// Why the read failed.
        message: String,
    },
    /// The sandbox could not be set up.
    #[error("cannot start plugin {plugin}: {message}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// Why.
        message: String,
    },
}

impl CallError {
    /// What the engine should do next.
    pub fn class(&self) -> FailureClass {
        match self {
            CallError::Step { class, .. } => *class,
            CallError::Timeout { .. } | CallError::StateUnreadable { .. } => FailureClass::Retryable,
            _ => FailureClass::Permanent,
        }
    }
}
