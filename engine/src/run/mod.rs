//! Running workflows durably: starting a run (pinning its definition, params, inventory and
//! plugin digests), driving it ([`driver`]), resuming it after a crash, and the operator commands
//! that move it on ([`operator`]); [`worker`] drives every run needing work from a shared
//! journal.
//!
//! **Invariant:** an attempt's intent is committed before its plugin is called, and its outcome
//! is committed before anything that depends on it starts.
//!
//! **Invariant:** a step that succeeded is never run again; an interrupted attempt of an
//! `irreversible` plugin is never re-run without an operator's `retry`.
//!
//! **Invariant:** one process drives a run at a time (the lease).

mod checkpoints;
pub mod clock;
mod driver;
pub mod instance;
mod lease;
pub mod machine;
pub mod operator;
mod pin;
pub mod plan;
mod start;
pub mod worker;

use std::sync::Arc;

use serde::Serialize;

use crate::journal::RunId;
use crate::plugin::PluginHost;
use crate::plugin::registry::{Registry, RegistryError};
use crate::secrets::SecretSource;
use crate::store::{Store, StoreError};

pub use clock::{Clock, SystemClock};
pub use instance::{grants_of, instance_key};
pub use lease::{LEASE_TTL, Lease, LeaseHandle, whoami};
pub use pin::pinned_workflow;
pub use start::{NewRun, resolve_params, start};

/// What driving a run needs.
#[derive(Clone)]
pub struct RunContext {
    /// The journal.
    pub store: Arc<Store>,
    /// Runs the plugins.
    pub host: Arc<PluginHost>,
    /// Installed plugins.
    pub registry: Registry,
    /// Time and jitter.
    pub clock: Arc<dyn Clock>,
    /// Secret values.
    pub secrets: Arc<dyn SecretSource>,
    /// Keep driving while only an operator can move the run on (approvals), instead of returning.
    pub wait_for_operator: bool,
    /// Progress lines for people.
    pub progress: Arc<dyn Progress>,
    /// How long a lease lives without renewal ([`LEASE_TTL`] unless set otherwise): another
    /// process may take over a run whose driver stopped renewing for this long.
    pub lease_ttl: std::time::Duration,
}

/// Receives what happens, for display. The journal is the record; this is only for people.
pub trait Progress: Send + Sync {
    /// A line worth showing.
    fn line(&self, _run_id: RunId, _text: &str) {}
    /// Whether [`Progress::snapshot`] is wanted (building one costs a pass over the instances).
    fn wants_snapshots(&self) -> bool {
        false
    }
    /// Where every started step stands, at most every [`SNAPSHOT_EVERY`] while the run is driven.
    fn snapshot(&self, _run_id: RunId, _steps: &[StepProgress]) {}
}

/// How often a driver hands [`Progress::snapshot`] a fresh picture.
pub const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Where one step stands, for a live display.
#[derive(Debug, Clone, PartialEq)]
pub struct StepProgress {
    /// The step id.
    pub id: String,
    /// Its instances so far.
    pub total: usize,
    /// Finished ones (succeeded, skipped, failed, cancelled).
    pub done: usize,
    /// Failed or cancelled ones.
    pub failed: usize,
    /// Ready ones waiting for a slot under a concurrency limit.
    pub waiting_for_slot: usize,
    /// Ones waiting for an operator or a retry timer.
    pub waiting: usize,
    /// The running ones.
    pub running: Vec<RunningInstance>,
}

/// A running step instance.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningInstance {
    /// Its key.
    pub key: String,
    /// When its attempt started (ms since the epoch).
    pub started_at: i64,
    /// The plugin's last heartbeat: progress between 0 and 1 if it knows, and a message.
    pub heartbeat: Option<(Option<f32>, String)>,
}

/// Shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// How driving a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum RunOutcome {
    /// Every step finished and none failed.
    Succeeded,
    /// A step failed.
    Failed {
        /// The failed steps and why.
        failures: Vec<(String, String)>,
    },
    /// Only an operator can move it on.
    Waiting {
        /// Step key and what it waits for.
        waiting: Vec<(String, String)>,
    },
    /// Cancelled by an operator.
    Cancelled,
    /// What the run changed was compensated (after a failure, or because an operator asked).
    Compensated {
        /// The instances whose compensation ran.
        compensated: Vec<String>,
        /// Instances that changed something and were not compensated, and why.
        left_as_is: Vec<(String, String)>,
        /// The failed steps, if a failure started the compensation.
        failures: Vec<(String, String)>,
    },
}

/// Why a run could not be started, resumed or changed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process drives the run.
    #[error(
        "run {run_id} is being driven by process {pid} of {user} on {host}; its lease expires in {}s unless renewed. Wait for it, or stop that process",
        (expires_in_ms.max(&0) + 999) / 1000
    )]
    LeaseHeld {
        /// The run.
        run_id: RunId,
        /// Holder's pid.
        pid: u32,
        /// Holder's host.
        host: String,
        /// Holder's user.
        user: String,
        /// Until the lease expires.
        expires_in_ms: i64,
    },
    /// This process lost the lease while driving, and stopped.
    #[error(
        "run {run_id}: this process lost its lease (taken over, or not renewable in time) and stopped driving; `drover status {run_id}` shows who drives it now"
    )]
    LeaseLost {
        /// The run.
        run_id: RunId,
    },
    /// A plugin the run pinned is gone or changed.
    #[error("{0}")]
    Plugin(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Params do not fit the workflow.
    #[error("{0}")]
    Params(String),
    /// The run's stored definition cannot be read back.
    #[error("run {run_id}: {message}")]
    Definition {
        /// The run.
        run_id: RunId,
        /// What is wrong.
        message: String,
    },
    /// An operator command does not fit the run's state.
    #[error("{0}")]
    Operator(String),
    /// An approval (or a skip of a gate) from someone the gate does not name.
    #[error("only {} may {command} {step}; {actor} may not", approvers.join(" or "))]
    NotApprover {
        /// `approve` or `skip`.
        command: &'static str,
        /// The gate's instance key.
        step: String,
        /// Who tried.
        actor: String,
        /// Who may.
        approvers: Vec<String>,
    },
}

/// Resumes a run: takes the lease, settles attempts interrupted by a crash, and drives it on.
pub async fn resume(ctx: &RunContext, run_id: RunId) -> Result<RunOutcome, RunError> {
    driver::drive(ctx, run_id).await
}
