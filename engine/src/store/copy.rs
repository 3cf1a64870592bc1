//! Copying the runs of one journal into another, whatever their backends (`drover journal
//! copy`): SQLite to PostgreSQL when a team moves to a shared journal, PostgreSQL to SQLite for an
//! archive. A run is read in one snapshot ([`Store::run_copy`]) and written in one transaction
//! (one [`Store::apply`]): its row, step instances, attempts, checkpoints, and its events and
//! operator commands exactly as stored (kind, actor, time and data text, applied or not, in
//! order), never read as this build's types, so what a newer drover wrote is kept. The plugin
//! components go first, so a copied run never lacks the code it pinned.
//!
//! Leases are not copied: a copied run is driven by whoever takes it next in the destination
//! (`drover resume`, a worker), which settles attempts its last driver left running by their
//! effect class, as after a crash. Events and commands get the destination's numbers (`seq`), in
//! the source's order: their numbers are positions in a whole journal, not in a run.
//!
//! **Invariant:** nothing is written while a run of the source is being driven (its lease has not
//! expired), and a run the destination holds already is never written again: one equal to the
//! source's (copied before, by a copy that was interrupted, say) is skipped, and one that differs
//! stops the copy before it writes anything. So a copy stopped at any point leaves whole runs,
//! and running it again finishes it.

use crate::journal::RunId;
use crate::plugin::Sha256Digest;

use super::{AttemptState, Change, LeaseRecord, RunCopy, Store, StoreError};

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Runs of the source are being driven: their drivers would write what the copy misses.
    #[error("{}", driven_message(.runs, *.copied))]
    Driven {
        /// Each run, and its lease.
        runs: Vec<(RunId, LeaseRecord)>,
        /// How many runs this copy wrote before it stopped.
        copied: usize,
    },
    /// Runs the destination holds already differ from the source's.
    #[error("{}", differs_message(.destination, .runs))]
    Differs {
        /// The destination, as people see it.
        destination: String,
        /// Each run, and what of it differs.
        runs: Vec<(RunId, Vec<&'static str>)>,
    },
    /// A plugin component's bytes do not match the digest they are stored under.
    #[error(
        "the plugin component {name} {version} stored under sha256 {sha256} in {source_journal} does not match its digest: the source journal is damaged; no run was copied"
    )]
    DamagedComponent {
        /// The journal it is in.
        source_journal: String,
        /// Its digest.
        sha256: String,
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
    },
}

fn driven_message(runs: &[(RunId, LeaseRecord)], copied: usize) -> String {
    let lines: Vec<String> = runs
        .iter()
        .map(|(run, l)| format!("run {run} is driven by process {} of {} on {}", l.pid, l.user, l.host))
        .collect();
    let done = match copied {
        0 => "nothing was copied".to_string(),
        n => format!("the {n} runs before it were copied whole"),
    };
    format!(
        "{}; a copy would miss what its driver writes next, so {done}: stop the driver (`drover worker`, \
         `drover run`, `drover resume`) or let it finish, then copy again (a driver that died leaves its lease \
         to expire first)",
        lines.join("; ")
    )
}

fn differs_message(destination: &str, runs: &[(RunId, Vec<&'static str>)]) -> String {
    let lines: Vec<String> =
        runs.iter().map(|(run, what)| format!("run {run} (its {} differ)", what.join(", "))).collect();
    format!(
        "{destination} holds runs of the source in another state: {}; a run changed in one journal after it was \
         copied, so nothing was copied (a run is copied once, and then driven from one journal only)",
        lines.join("; ")
    )
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The runs copied, oldest first.
    pub copied: Vec<RunId>,
    /// The runs the destination held already, equal to the source's.
    pub skipped: Vec<RunId>,
    /// Events written.
    pub events: usize,
    /// Plugin components written (the destination lacked them).
    pub plugin_components: usize,
}

/// What the copy is doing, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Run `n` of `total` is being copied, with its `events`.
    Copying {
        /// 1-based.
        n: usize,
        /// Runs in the source.
        total: usize,
        /// The run.
        run_id: RunId,
        /// Its events.
        events: usize,
    },
    /// Run `n` of `total` is in the destination already, equal to the source's.
    Skipped {
        /// 1-based.
        n: usize,
        /// Runs in the source.
        total: usize,
        /// The run.
        run_id: RunId,
    },
}

/// The runs of `source`, oldest first, after checking that none is being driven at `now` (ms
/// since the epoch): a run whose lease has not expired is refused, with its holder named. Call it
/// before opening the destination, so a refused copy creates nothing.
pub fn runs_to_copy(source: &Store, now: i64) -> Result<Vec<RunId>, CopyError> {
    let mut runs: Vec<RunId> = source.runs()?.into_iter().map(|r| r.id).collect();
    runs.reverse();
    let mut driven = Vec::new();
    for &run_id in &runs {
        if let Some(lease) = source.lease(run_id)?.filter(|l| l.expires_at > now) {
            driven.push((run_id, lease));
        }
    }
    if driven.is_empty() { Ok(runs) } else { Err(CopyError::Driven { runs: driven, copied: 0 }) }
}

/// Copies `runs` (from [`runs_to_copy`]) and every plugin component from `source` into
/// `destination`, each run in one transaction, telling `progress` as it goes. Checks first, and
/// writes nothing if a run the destination holds differs from the source's; a run being driven
/// by the time it is copied stops the copy there (the runs before it are whole in the
/// destination, and a copy run again skips them).
pub async fn copy_runs(
    source: &Store,
    destination: &Store,
    runs: &[RunId],
    now: impl Fn() -> i64,
    mut progress: impl FnMut(Progress),
) -> Result<Outcome, CopyError> {
    let mut outcome = Outcome::default();
    let mut there = Vec::new();
    let mut differ = Vec::new();
    for &run_id in runs {
        let Some(theirs) = destination.run_copy(run_id)? else { continue };
        let ours = source.run_copy(run_id)?.ok_or_else(|| gone(source, run_id))?;
        let what = differences(&ours, &theirs);
        if what.is_empty() { there.push(run_id) } else { differ.push((run_id, what)) }
    }
    if !differ.is_empty() {
        return Err(CopyError::Differs { destination: destination.location(), runs: differ });
    }
    outcome.plugin_components = copy_components(source, destination).await?;
    let total = runs.len();
    for (i, &run_id) in runs.iter().enumerate() {
        let n = i + 1;
        if there.contains(&run_id) {
            progress(Progress::Skipped { n, total, run_id });
            outcome.skipped.push(run_id);
            continue;
        }
        let copy = source.run_copy(run_id)?.ok_or_else(|| gone(source, run_id))?;
        if let Some(lease) = copy.lease.clone().filter(|l| l.expires_at > now()) {
            return Err(CopyError::Driven { runs: vec![(run_id, lease)], copied: outcome.copied.len() });
        }
        progress(Progress::Copying { n, total, run_id, events: copy.events.len() });
        outcome.events += copy.events.len();
        destination.apply(copy.into_changes()).await?;
        outcome.copied.push(run_id);
    }
    Ok(outcome)
}

fn gone(source: &Store, run_id: RunId) -> CopyError {
    CopyError::Store(StoreError::NotFound(format!("no run {run_id} in {}", source.location())))
}

/// Writes the plugin components `destination` lacks, each checked against its digest first;
/// returns how many.
async fn copy_components(source: &Store, destination: &Store) -> Result<usize, CopyError> {
    let theirs: Vec<String> = destination.plugin_components()?.into_iter().map(|c| c.sha256).collect();
    let mut written = 0;
    for component in source.plugin_components()?.into_iter().filter(|c| !theirs.contains(&c.sha256)) {
        let bytes = source.plugin_component(&component.sha256)?.unwrap_or_default();
        if Sha256Digest::of(&bytes).to_string() != component.sha256 {
            return Err(CopyError::DamagedComponent {
                source_journal: source.location(),
                sha256: component.sha256,
                name: component.name,
                version: component.version,
            });
        }
        if destination
            .put_plugin_component(&component.sha256, &component.name, &component.version, bytes)
            .await?
        {
            written += 1;
        }
    }
    Ok(written)
}

/// What differs between two copies of a run, leaving aside the numbers of events and commands
/// and the lease: empty when they are the same run in the same state.
pub fn differences(a: &RunCopy, b: &RunCopy) -> Vec<&'static str> {
    let events = |c: &RunCopy| -> Vec<_> {
        c.events
            .iter()
            .map(|e| (e.at, e.step_key.clone(), e.kind.clone(), e.actor.clone(), e.data.clone()))
            .collect()
    };
    let requests = |c: &RunCopy| -> Vec<_> {
        c.requests
            .iter()
            .map(|r| {
                (r.kind.clone(), r.step_key.clone(), r.data.clone(), r.actor.clone(), r.at, r.applied_at)
            })
            .collect()
    };
    [
        ("run row", a.run == b.run),
        ("step instances", a.steps == b.steps),
        ("attempts", a.attempts == b.attempts),
        ("events", events(a) == events(b)),
        ("checkpoints", a.checkpoints == b.checkpoints),
        ("operator commands", requests(a) == requests(b)),
    ]
    .into_iter()
    .filter_map(|(what, same)| (!same).then_some(what))
    .collect()
}

impl RunCopy {
    /// The changes that write this run into another journal, in one transaction: the run, its
    /// step instances, each attempt (its intent, then its end unless it is still running), its
    /// events and commands as stored, in order, and its checkpoints. The lease is left out.
    pub fn into_changes(self) -> Vec<Change> {
        let mut changes = Vec::with_capacity(
            1 + self.steps.len()
                + 2 * self.attempts.len()
                + self.events.len()
                + self.checkpoints.len()
                + self.requests.len(),
        );
        let run_id = self.run.id;
        changes.push(Change::InsertRun(Box::new(self.run)));
        changes.extend(self.steps.into_iter().map(|s| Change::PutStep(Box::new(s))));
        for attempt in self.attempts {
            // An attempt is inserted only as an intent (running), and ended by a second change.
            let intent = super::AttemptRecord {
                state: AttemptState::Running,
                finished_at: None,
                error: None,
                error_class: None,
                ..attempt.clone()
            };
            let ended = attempt.state != AttemptState::Running;
            changes.push(Change::PutAttempt(intent));
            if ended {
                changes.push(Change::PutAttempt(attempt));
            }
        }
        changes.extend(self.events.into_iter().map(Change::StoredEvent));
        changes.extend(self.checkpoints.into_iter().map(|c| Change::SetCheckpoint {
            run_id,
            step_key: c.step_key,
            key: c.key,
            value: c.value,
        }));
        changes.extend(self.requests.into_iter().map(Change::StoredRequest));
        changes
    }
}
