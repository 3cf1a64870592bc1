//! `logshipping-catch-up` (F2, idempotent): every DR SQL instance must have restored the same
//! backup set before Restore To Mark ("How to Restore Your Databases": run the restore job by
//! hand where a destination is behind). An instance is behind when it imported a log set it has
//! not restored other than the newest (Restore Databases never restores the newest log set: that
//! one is Restore To Mark's); BackupSetIds are consecutive, one per set, so behind means its last
//! restored set's id plus one is below its newest imported log set's id.
//!
//! On each instance behind: the installed Restore Databases job is found (whatever its
//! spelling), started with `sp_start_job` unless it is already running (retryable), and its run
//! read back from `sysjobhistory`. A failed run with SQL Server error 4305 is a gap in the log
//! chain: permanent, naming the instance and SQL Server's message (only a full set after the gap
//! repairs it). Another failure is permanent with the job's message; a run without an outcome yet
//! is retryable (give the step a retry policy). Afterwards every instance must have restored the
//! same set, or the step fails naming each one's.
//!
//! `check` reads the sets only and says which instances it would catch up.

use biztalk_common::logshipping;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::measure::{InstanceSets, sets};
use crate::sql::Sql;
use crate::{SetOut, jobs};

/// The plugin.
#[derive(Default)]
pub struct CatchUp;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The DR SQL instances (log-shipping destinations), each a server of the inventory.
    pub destinations: Vec<String>,
}

/// Output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Each instance's sets afterwards (in `check`: now).
    pub instances: Vec<InstanceSets>,
    /// The instances whose Restore Databases job this step ran (in `check`: would run).
    pub caught_up: Vec<String>,
    /// The set every instance has restored, when they agree.
    pub restored_set: Option<SetOut>,
}

impl Plugin for CatchUp {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("logshipping-catch-up", env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "runs Restore Databases on every DR SQL instance behind until all restored the same set (F2)",
            )
            .program(crate::SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input.destinations)?;
        let mut sql = Sql::default();
        let mut output = Output::default();
        for instance in &input.destinations {
            let now = sets(ctx, &mut sql, instance)?;
            if behind(&now) {
                output.caught_up.push(instance.clone());
            }
            output.instances.push(now);
        }
        output.restored_set = agreed(&output.instances);
        let outcome = if output.caught_up.is_empty() {
            Outcome::unchanged(output, "every DR SQL instance has restored all it can")
        } else {
            let summary = format!("would run Restore Databases on {}", output.caught_up.join(", "));
            Outcome::changed(output, summary)
        };
        Ok(sql.attach(outcome))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input.destinations)?;
        let mut sql = Sql::default();
        let mut output = Output::default();
        for instance in &input.destinations {
            let mut now = sets(ctx, &mut sql, instance)?;
            if behind(&now) {
                restore(ctx, &mut sql, instance)?;
                output.caught_up.push(instance.clone());
                now = sets(ctx, &mut sql, instance)?;
                if behind(&now) {
                    return Err(StepError::permanent(format!(
                        "{instance} is still behind after Restore Databases succeeded: restored {}, imported {}",
                        describe_set(&now.last_restored),
                        describe_set(&now.newest_imported)
                    )));
                }
            }
            output.instances.push(now);
        }
        let Some(set) = agreed(&output.instances) else {
            let each: Vec<String> = output
                .instances
                .iter()
                .map(|i| {
                    format!(
                        "{} restored {}, imported {}",
                        i.instance,
                        describe_set(&i.last_restored),
                        describe_set(&i.newest_imported)
                    )
                })
                .collect();
            return Err(StepError::permanent(format!(
                "the DR SQL instances did not restore the same set ({}); each must import the same history (Get Backup History) first",
                each.join("; ")
            )));
        };
        output.restored_set = Some(set.clone());
        let outcome = if output.caught_up.is_empty() {
            Outcome::unchanged(output, format!("every DR SQL instance has restored set {} already", set.id))
        } else {
            let summary = format!(
                "Restore Databases caught up {}: all restored set {}",
                output.caught_up.join(", "),
                set.id
            );
            Outcome::changed(output, summary)
        };
        Ok(sql.attach(outcome))
    }
}

/// A permanent error unless there is at least one destination and no name is blank.
pub fn validate(destinations: &[String]) -> Result<(), StepError> {
    if destinations.is_empty() {
        return Err(StepError::permanent("no DR SQL instance in `destinations`"));
    }
    if destinations.iter().any(|d| d.trim().is_empty()) {
        return Err(StepError::permanent("a DR SQL instance name in `destinations` is empty"));
    }
    Ok(())
}

/// Whether Restore Databases has sets to restore on this instance.
pub fn behind(sets: &InstanceSets) -> bool {
    match (&sets.last_restored, &sets.newest_imported) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(restored), Some(newest)) => restored.id + 1 < newest.id,
    }
}

/// The set every instance restored, when they all restored the same one.
fn agreed(instances: &[InstanceSets]) -> Option<SetOut> {
    let first = instances.first()?.last_restored.clone()?;
    instances.iter().all(|i| i.last_restored.as_ref() == Some(&first)).then_some(first)
}

fn describe_set(set: &Option<SetOut>) -> String {
    set.as_ref().map_or("no set".to_owned(), |s| format!("set {} ({})", s.id, s.mark))
}

/// Runs Restore Databases on `instance` and judges its run.
fn restore(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<(), StepError> {
    let all = jobs::list(ctx, sql, instance)?;
    let job = jobs::find(&all, instance, logshipping::RESTORE_DATABASES)?;
    if job.running {
        return Err(StepError::retryable(format!("'{}' is already running on {instance}", job.name)));
    }
    let before = jobs::newest_outcome(ctx, sql, instance, &job.name)?;
    ctx.info(format!("starting '{}' on {instance}", job.name));
    jobs::start(ctx, sql, instance, &job.name)?;
    let Some(run) = jobs::run_after(ctx, sql, instance, &job.name, before)? else {
        return Err(StepError::retryable(format!(
            "'{}' started on {instance} has not finished yet; the next attempt reads its outcome",
            job.name
        )));
    };
    if run.succeeded() {
        return Ok(());
    }
    let text = jobs::failure_text(&run);
    if run.errors().contains(&4305) {
        return Err(StepError::permanent(format!(
            "the log chain has a gap on {instance}: '{}' failed with SQL Server error 4305: {text} \
             (only a full backup set after the gap repairs it: sp_ForceFullBackup at the source, then \
             Get Backup History and Restore Databases; with the source gone, the DR site stops at its last restored set)",
            job.name
        )));
    }
    Err(StepError::permanent(format!("'{}' failed on {instance}: {text}", job.name)))
}
