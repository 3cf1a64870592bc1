//! The documents of the command line's `--json` output that are built from more than one record:
//! the run list (`drover runs --json`) and a run's status (`drover status --json`). The command
//! line prints them and the web view's API returns them, so both say the same thing; their JSON
//! schemas (schemars) are in the API reference.
//!
//! A run's events (`drover events --json`) are the journal's `EventRecord`s as stored, and its
//! report (`drover report --json`) is `report::Report`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::journal::RunId;
use crate::run::machine::Machine;
use crate::run::{Clock, RunError};
use crate::store::{RunRecord, StepRecord, Store, StoreError};

/// One run of the list, newest first (`drover runs --json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunSummary {
    /// The run's id.
    #[schemars(with = "String")]
    pub run: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow's version.
    pub version: String,
    /// `running`, `waiting`, `succeeded`, `failed`, `cancelled`, `compensating`, `compensated`.
    #[schemars(with = "String")]
    pub state: crate::store::RunState,
    /// Who started it (`user@host`).
    pub started_by: String,
    /// When it was created, ms since the Unix epoch (UTC).
    pub created_at: i64,
    /// When it ended, ms since the Unix epoch; null while it has not.
    pub finished_at: Option<i64>,
}

impl RunSummary {
    fn of(r: &RunRecord) -> RunSummary {
        RunSummary {
            run: r.id,
            workflow: r.workflow.clone(),
            version: r.workflow_version.clone(),
            state: r.state,
            started_by: r.started_by.clone(),
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// The runs of the journal, newest first.
pub fn runs(store: &Store) -> Result<Vec<RunSummary>, StoreError> {
    Ok(store.runs()?.iter().map(RunSummary::of).collect())
}

/// A run's steps with the reason every unfinished instance waits (`drover status --json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunStatus {
    /// The run's id, workflow, state, who started it and when.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The process driving the run now (its lease is live); null when none does.
    pub driven_by: Option<Driver>,
    /// The workflow's steps in dependency order.
    pub steps: Vec<StepStatus>,
}

/// The process that holds a run's lease.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Driver {
    /// Its process id.
    pub pid: u32,
    /// The machine it runs on.
    pub host: String,
    /// The account it runs as.
    pub user: String,
}

/// One step of the workflow and its instances (one per target of a fan-out).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepStatus {
    /// The step's id in the workflow file.
    pub id: String,
    /// The state of its instances taken together (the worst one).
    #[schemars(with = "String")]
    pub state: crate::store::StepState,
    /// Its instances; none before the step was reached.
    pub instances: Vec<InstanceStatus>,
    /// The steps it needs that have not finished.
    pub waits_for: Vec<String>,
    /// `approval` for an approval gate, else the plugin reference.
    pub kind: String,
}

/// One step instance.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InstanceStatus {
    /// The instance's key: the step id, with `[target]` in a fan-out.
    pub key: String,
    /// `pending`, `ready`, `running`, `waiting`, `succeeded`, `failed`, `needs-operator`, `skipped`, `cancelled`, `compensating`, `compensated`, `compensation-failed`.
    #[schemars(with = "String")]
    pub state: crate::store::StepState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The inventory server it runs on, if any.
    pub target: Option<String>,
    /// Why it waits and the command that moves it on; null when it does not wait.
    pub why: Option<String>,
    /// The plugin's (or operator's) one-line summary.
    pub summary: Option<String>,
    /// Its output, as the plugin returned it (redacted).
    pub output: Option<Value>,
}

/// The status of run `run_id`, as the run machine explains it at `clock`'s now.
pub fn status(store: &Store, run_id: RunId, clock: Arc<dyn Clock>) -> Result<RunStatus, RunError> {
    let run = store.run(run_id)?;
    let steps = store.steps(run.id)?;
    let now = clock.now_ms();
    let machine = Machine::for_run(&run, steps, clock)
        .map_err(|message| RunError::Definition { run_id: run.id, message })?;
    // A lease past its expiry belongs to a process that stopped without releasing it.
    let lease = store.lease(run.id)?.filter(|l| l.expires_at > now);
    let driven = lease.is_some();
    let wf = machine.workflow();
    let steps = wf
        .order
        .iter()
        .map(|&i| {
            let instances = machine
                .keys_of(i)
                .iter()
                .filter_map(|k| machine.instance(k))
                .map(|r: &StepRecord| InstanceStatus {
                    key: r.key.clone(),
                    state: r.state,
                    attempts: r.attempts,
                    target: r.target.clone(),
                    why: machine.why(&r.key, driven),
                    summary: r.summary.clone(),
                    output: r.output.clone(),
                })
                .collect();
            let kind = match &wf.steps[i].kind {
                crate::workflow::StepKind::Plugin { reference, .. } => reference.to_string(),
                crate::workflow::StepKind::Approval { .. } => "approval".to_string(),
            };
            StepStatus {
                id: wf.steps[i].id.clone(),
                state: machine.step_state(i),
                instances,
                waits_for: machine.unfinished_needs(i),
                kind,
            }
        })
        .collect();
    Ok(RunStatus {
        summary: RunSummary::of(&run),
        driven_by: lease.map(|l| Driver { pid: l.pid, host: l.host, user: l.user }),
        steps,
    })
}

/// What became of an operator command (`drover approve|retry|skip|cancel --json`, and the web
/// API's answer to the same actions).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Delivered {
    /// The run.
    #[schemars(with = "String")]
    pub run: RunId,
    /// `approve`, `retry`, `skip`, `cancel` or `compensate`.
    pub command: String,
    /// The step instance it names, if any.
    pub step: Option<String>,
    /// Who sent it: the actor the journal records.
    pub by: String,
    /// `applied` (no process drove the run: done now), `queued` (the driving process applies it
    /// on its next poll) or `to-drive` (it takes a process driving the run: `drover resume`).
    pub delivery: String,
    /// The driving process, when queued.
    pub driver_pid: Option<u32>,
}

impl Delivered {
    /// The document of `delivery` of `command` by `by`.
    pub fn new(
        run: RunId,
        command: &crate::journal::Request,
        by: &str,
        delivery: &crate::run::operator::Delivery,
    ) -> Delivered {
        use crate::run::operator::Delivery;
        let (what, pid) = match delivery {
            Delivery::Applied => ("applied", None),
            Delivery::Queued { pid } => ("queued", Some(*pid)),
            Delivery::ToDrive => ("to-drive", None),
        };
        Delivered {
            run,
            command: command.kind().to_string(),
            step: command.step_key().map(str::to_string),
            by: by.to_string(),
            delivery: what.to_string(),
            driver_pid: pid,
        }
    }
}
