//! The rows of the run journal as plain Rust values, and [`Change`], the unit of writing. Callers
//! build changes; only this module's siblings turn them into SQL.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{Actor, Event, PinnedPlugins, Request, RunId, UnreadableRequest};
use crate::plugin::{FailureClass, Mode};

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Being driven, or ready to be.
    Running,
    /// Nothing can progress without an operator (approval, needs-operator).
    Waiting,
    /// Every step finished, none failed.
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
    /// Undoing what it changed, in reverse dependency order (after a failure under `on-failure =
    /// "compensate"`, or because an operator asked).
    Compensating,
    /// What it changed and could undo was undone.
    Compensated,
}

/// A step instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Its dependencies have not finished.
    Pending,
    /// May start when limits allow.
    Ready,
    /// An attempt is under way.
    Running,
    /// Done.
    Succeeded,
    /// Failed for good (until an operator retries it).
    Failed,
    /// Not run: `when` was false, an upstream step failed, or an operator skipped it.
    Skipped,
    /// The run was cancelled before it finished.
    Cancelled,
    /// Waiting for an approval or a retry timer.
    Waiting,
    /// An operator must decide (an interrupted irreversible step, a plugin's request).
    NeedsOperator,
    /// Succeeded, and its compensation is due (or running) now that the run is compensated.
    Compensating,
    /// Succeeded, then its compensation undid it.
    Compensated,
    /// Its compensation failed: an operator retries it or marks it done.
    CompensationFailed,
}

impl StepState {
    /// Finished: nothing more will happen to it without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed
                | StepState::Skipped
                | StepState::Cancelled
                | StepState::Compensated
        )
    }
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $ty {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub(crate) fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(RunState {
    Running = "running",
    Waiting = "waiting",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
    Compensating = "compensating",
    Compensated = "compensated",
});
text_enum!(StepState {
    Pending = "pending",
    Ready = "ready",
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
    Skipped = "skipped",
    Cancelled = "cancelled",
    Waiting = "waiting",
    NeedsOperator = "needs-operator",
    Compensating = "compensating",
    Compensated = "compensated",
    CompensationFailed = "compensation-failed",
});

/// A run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version.
    pub workflow_version: String,
    /// Where the workflow was read from.
    pub source_path: String,
    /// The validated workflow, pinned.
    pub definition: Value,
    /// Params with defaults applied.
    pub params: Value,
    /// The inventory, pinned.
    pub inventory: Value,
    /// Its sha256.
    pub inventory_digest: String,
    /// The plugin of each plugin step.
    pub plugins: PinnedPlugins,
    /// State.
    pub state: RunState,
    /// OS user who started it.
    pub started_by: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch.
    pub finished_at: Option<i64>,
}

/// A step instance, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// The run.
    pub run_id: RunId,
    /// `id` or `id[item]`.
    pub key: String,
    /// Index of its step in the definition.
    pub step_index: usize,
    /// The fan-out item.
    pub item: Option<Value>,
    /// The instance's target.
    pub target: Option<String>,
    /// State.
    pub state: StepState,
    /// Attempts started.
    pub attempts: u32,
    /// Why it waits, was skipped, failed or needs an operator.
    pub reason: Option<String>,
    /// A retry timer, ms since the epoch.
    pub retry_at: Option<i64>,
    /// Output.
    pub output: Option<Value>,
    /// Whether the last attempt changed something.
    pub changed: Option<bool>,
    /// The plugin's one-line summary.
    pub summary: Option<String>,
    /// Evidence for the report.
    pub evidence: Option<Value>,
    /// ms since the epoch.
    pub started_at: Option<i64>,
    /// ms since the epoch.
    pub finished_at: Option<i64>,
}

/// An attempt's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptState {
    /// Intent recorded; the plugin was called or is about to be.
    Running,
    /// The plugin succeeded.
    Succeeded,
    /// The plugin failed.
    Failed,
    /// The process died during the attempt.
    Interrupted,
    /// An operator cancelled the run and the attempt was stopped.
    Cancelled,
}

text_enum!(AttemptState {
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
    Interrupted = "interrupted",
    Cancelled = "cancelled"
});

/// An attempt, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// The run.
    pub run_id: RunId,
    /// The step instance.
    pub step_key: String,
    /// 1, 2, …
    pub number: u32,
    /// The export it called: `apply`, `check` (recovering an interrupted attempt) or `compensate`.
    pub mode: Mode,
    /// State.
    pub state: AttemptState,
    /// ms since the epoch.
    pub started_at: i64,
    /// ms since the epoch.
    pub finished_at: Option<i64>,
    /// The failure, if any.
    pub error: Option<String>,
    /// The failure's class.
    pub error_class: Option<FailureClass>,
}

/// An event of the journal, as `drover events --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EventRecord {
    /// Its position in the journal: increasing, across runs.
    pub seq: i64,
    /// The run (`run_` and a ULID).
    #[schemars(with = "String")]
    pub run_id: RunId,
    /// When it was written (ms since the epoch).
    pub at: i64,
    /// The step instance it is about (`id`, or `id[item]` for an instance of a `for-each`), or
    /// null for the run.
    pub step_key: Option<String>,
    /// What happened: one of the kinds below.
    pub kind: String,
    /// Who: `engine`, or the OS user who ran the command.
    #[schemars(with = "String")]
    pub actor: Actor,
    /// The kind's fields, below.
    pub data: Value,
}

impl EventRecord {
    /// The event, typed; an error for a kind this build does not know (a newer drover wrote it)
    /// or data of another shape.
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        Event::from_parts(&self.kind, &self.data)
    }
}

/// An operator command waiting to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Position in the queue.
    pub seq: i64,
    /// The run.
    pub run_id: RunId,
    /// The command, or why its row is none this build knows (it is rejected when applied).
    pub request: Result<Request, UnreadableRequest>,
    /// OS user.
    pub actor: String,
    /// ms since the epoch.
    pub at: i64,
}

impl RequestRecord {
    /// The command's name, even when it is none this build knows.
    pub fn kind(&self) -> &str {
        match &self.request {
            Ok(request) => request.kind(),
            Err(unreadable) => &unreadable.kind,
        }
    }
}

/// The holder of a run's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// Random id of the driving process.
    pub holder: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its OS user.
    pub user: String,
    /// ms since the epoch.
    pub expires_at: i64,
    /// The boot of the machine it runs on (`/proc/sys/kernel/random/boot_id`); empty when
    /// unknown, as in leases written before schema version 2.
    pub boot_id: String,
}

/// Proof that a process still holds a run's lease, checked inside every transaction it commits
/// for the run ([`super::Store::apply_fenced`]): a process whose lease was taken over commits
/// nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The run.
    pub run_id: RunId,
    /// The holder id the lease row must still carry.
    pub holder: String,
}

/// One change to the journal. A list of changes is applied atomically.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new run.
    InsertRun(Box<RunRecord>),
    /// A run's state changes.
    SetRunState {
        /// The run.
        run_id: RunId,
        /// New state.
        state: RunState,
        /// Set when it ended.
        finished_at: Option<i64>,
    },
    /// Inserts or updates a step instance; a succeeded instance only moves on to `compensating`
    /// and a compensated one never changes again (the commit fails instead).
    PutStep(Box<StepRecord>),
    /// Records an attempt: one in state `running` is its intent and is inserted (the commit fails
    /// if that attempt number exists); any other state ends a running attempt (the commit fails
    /// if it is not running any more).
    PutAttempt(AttemptRecord),
    /// Appends an event ([`Change::event`]).
    Event(NewEvent),
    /// Writes a checkpoint value.
    SetCheckpoint {
        /// The run.
        run_id: RunId,
        /// The step instance.
        step_key: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Queues an operator command.
    Request {
        /// The run.
        run_id: RunId,
        /// The command.
        request: Request,
        /// OS user.
        actor: String,
        /// ms since the epoch.
        at: i64,
    },
    /// Marks a queued command applied.
    RequestApplied {
        /// Its position.
        seq: i64,
        /// ms since the epoch.
        at: i64,
    },
    /// Appends an event exactly as another journal stored it (`drover journal copy`): its kind,
    /// actor and data are written as they are, never read as an [`Event`], so a copy keeps what a
    /// newer drover wrote. Its `seq` is ignored: the journal numbers it.
    StoredEvent(StoredEvent),
    /// Queues an operator command exactly as another journal stored it, applied (with its
    /// `applied_at`) or not. Its `seq` is ignored: the journal numbers it.
    StoredRequest(StoredRequest),
}

impl Change {
    /// Appends `event` to the journal of `run_id`, written by `actor` at `at`.
    pub fn event(run_id: RunId, at: i64, step_key: Option<&str>, actor: Actor, event: &Event) -> Change {
        Change::Event(NewEvent {
            run_id,
            at,
            step_key: step_key.map(str::to_string),
            actor,
            kind: event.kind(),
            data: event.data_json(),
        })
    }
}

/// An event to append, made from an [`Event`] by [`Change::event`]. Its data is serialized when
/// it is made, so a turn holding many events (a fan-out expanding) holds short strings rather
/// than the events themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The run.
    pub run_id: RunId,
    /// ms since the epoch.
    pub at: i64,
    /// The step instance.
    pub step_key: Option<String>,
    /// Who.
    pub actor: Actor,
    kind: &'static str,
    data: String,
}

impl NewEvent {
    /// Its kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Its data, as JSON text.
    pub fn data(&self) -> &str {
        &self.data
    }
}

/// An event exactly as the journal holds it: kind, actor and data as text, unread (what
/// `drover journal copy` moves; [`EventRecord`] is the typed view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the journal it was read from.
    pub seq: i64,
    /// The run.
    pub run_id: RunId,
    /// ms since the epoch.
    pub at: i64,
    /// The step instance.
    pub step_key: Option<String>,
    /// Its kind, as stored.
    pub kind: String,
    /// Who, as stored.
    pub actor: String,
    /// Its data, the JSON text as stored.
    pub data: String,
}

/// An operator command exactly as the journal holds it, applied or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// Its position in the journal it was read from.
    pub seq: i64,
    /// The run.
    pub run_id: RunId,
    /// The command's name, as stored.
    pub kind: String,
    /// The step it names.
    pub step_key: Option<String>,
    /// Its data, the JSON text as stored.
    pub data: String,
    /// OS user.
    pub actor: String,
    /// ms since the epoch.
    pub at: i64,
    /// When it was applied (ms since the epoch); none while it waits.
    pub applied_at: Option<i64>,
}

/// A checkpoint value of a step instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The step instance.
    pub step_key: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A plugin component the journal holds, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginComponentRecord {
    /// Its sha256 (hex), under which it is stored.
    pub sha256: String,
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
}

/// Everything the journal holds of one run, read in one snapshot ([`super::Store::run_copy`]):
/// what `drover journal copy` copies (all but the lease).
#[derive(Debug, Clone, PartialEq)]
pub struct RunCopy {
    /// The run.
    pub run: RunRecord,
    /// Its step instances.
    pub steps: Vec<StepRecord>,
    /// Its attempts.
    pub attempts: Vec<AttemptRecord>,
    /// Its events, in order, as stored.
    pub events: Vec<StoredEvent>,
    /// Its checkpoints, by step instance and key.
    pub checkpoints: Vec<CheckpointRecord>,
    /// Its operator commands, in order, applied or not.
    pub requests: Vec<StoredRequest>,
    /// Its lease at the moment of the snapshot (never copied).
    pub lease: Option<LeaseRecord>,
}
