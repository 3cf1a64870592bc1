//! Step plugins: loading WebAssembly components into a sandbox, calling them, and the on-disk
//! set of installed plugins.
//!
//! - [`bindings`]: the WIT contract bound once for the host.
//! - [`sandbox`]: [`PluginHost`], the only place guest code runs.
//! - [`outcome`]: the host's reading of what a call returned (size, JSON, output schema,
//!   redaction).
//! - [`imports`](self): the host calls a plugin can make, checked against grants.
//! - [`registry`]: installed plugins by name, version and sha256.
//!
//! **Invariant:** plugins never see SQLite, the file system or the network except through the
//! host calls of the contract, each checked against the step's grants.

pub mod bindings;
mod cache;
mod call;
mod capture;
mod error;
mod excerpt;
mod imports;
mod info;
pub mod outcome;
pub mod registry;
mod sandbox;

pub use cache::CacheStatus;
pub use call::{
    CallEnv, CallObserver, CallOutcome, CallReport, Evidence, LogLevel, LogRecord, MemoryState, Mode,
    NoObserver, StateUsage, StepCall, StepContext, StepStateStore, TargetCall, TargetCallRecord,
};
pub use error::{CallError, FailureClass, LoadError};
pub use info::{Capabilities, Effect, PluginInfo, PluginRef, Sha256Digest, check_name};
pub use sandbox::{CancelToken, Canceller, HostConfig, LoadedPlugin, PluginHost, SandboxLimits};
