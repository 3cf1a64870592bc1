//! `logshipping-restore-to-mark` (F3, irreversible): recovers the log-shipped databases of every
//! DR SQL instance to the mark of the newest imported log set ("How to Restore Your Databases":
//! disable Get Backup History and Restore Databases, then start Restore To Mark; it restores the
//! last log set to its mark, recovers the databases and recreates the source's SQL Server Agent
//! jobs). Recovered databases take no more logs: it must never run twice.
//!
//! Per instance, from what SQL Server shows (`sys.databases`):
//!
//! - every log-shipped database `ONLINE`: recovered before this step ran, no change (`already`);
//!   or by an earlier attempt of this step instance, interrupted after it started the job (its
//!   mark is in the step's state): no change by this attempt, but `already` is false, so that
//!   the steps a workflow runs only after a recovery (`when = "not …already"`) still run in
//!   this run;
//! - every one `RESTORING`: the two jobs are disabled (when enabled), the newest outcome of
//!   Restore To Mark in `sysjobhistory` is recorded in the step's state, the job is started and its
//!   run read back. Failed: permanent, with the job's message and SQL Server's errors (the
//!   databases stay `RESTORING`). Succeeded: every database must be `ONLINE`, else an operator
//!   looks. No outcome yet: retryable; the next attempt reads the run it started;
//! - no database (cleaned): permanent; a mix of states, or an earlier attempt that started (or was
//!   about to start) the job and left no outcome while the job is not running: the state is
//!   unclear, an operator decides.
//!
//! `check` reads the states, jobs and history only.

use biztalk_common::logshipping::{self, DatabaseState};
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catch_up::validate;
use crate::sql::Sql;
use crate::{SetOut, jobs};

/// The plugin.
#[derive(Default)]
pub struct RestoreToMark;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The DR SQL instances (log-shipping destinations), each a server of the inventory.
    pub destinations: Vec<String>,
    /// When production failed, RFC 3339 with a zone, as the operator declared it: with it the
    /// output's `rpo` is the data-loss window of the mark actually recovered to (after a quiesce,
    /// a newer one than the declare gate measured).
    #[serde(default)]
    pub failure_time: Option<String>,
}

/// A database and its `state_desc`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Database {
    /// Its name.
    pub name: String,
    /// `ONLINE`, `RESTORING`…
    pub state: String,
}

/// One instance after the step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Recovered {
    /// The instance.
    pub instance: String,
    /// Its user databases.
    pub databases: Vec<Database>,
    /// The log set whose mark it was recovered to (the newest imported).
    pub recovered_to: Option<SetOut>,
    /// Recovered before this step ran: not by an earlier attempt of this step instance (one
    /// interrupted after starting the job), so a workflow can tell a run that recovered the
    /// databases, and must finish the activation, from a later run over an activated site.
    pub already: bool,
}

/// Output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Each instance, in input order.
    pub instances: Vec<Recovered>,
    /// The data-loss window for the recovery report (`[report] rpo`): the oldest mark the
    /// instances were recovered to, against `failure_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<crate::measure::Rpo>,
}

impl Plugin for RestoreToMark {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("logshipping-restore-to-mark", env!("CARGO_PKG_VERSION"), Effect::Irreversible)
            .description(
                "disables the log-shipping jobs and recovers the DR SQL databases with Restore To Mark (F3)",
            )
            .program(crate::SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input.destinations)?;
        let failure_time = failure_time(&input)?;
        let mut sql = Sql::default();
        let mut output = Output::default();
        let mut pending = Vec::new();
        for instance in &input.destinations {
            let databases = states(ctx, &mut sql, instance)?;
            let online = judge(instance, &databases)?;
            if !online {
                let all = jobs::list(ctx, &mut sql, instance)?;
                jobs::find(&all, instance, logshipping::RESTORE_TO_MARK)?;
                pending.push(instance.clone());
            }
            let recovered_to = newest_imported(ctx, &mut sql, instance)?;
            let already = online && !started_here(ctx, instance);
            output.instances.push(Recovered { instance: instance.clone(), databases, recovered_to, already });
        }
        output.rpo = rpo(&output.instances, failure_time);
        let outcome = if pending.is_empty() {
            Outcome::unchanged(output, "every DR SQL instance is recovered already")
        } else {
            let summary = format!(
                "would disable the log-shipping jobs and run Restore To Mark on {}",
                pending.join(", ")
            );
            Outcome::changed(output, summary)
        };
        Ok(sql.attach(outcome))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input.destinations)?;
        let failure_time = failure_time(&input)?;
        let mut sql = Sql::default();
        let mut output = Output::default();
        let mut recovered = Vec::new();
        let mut earlier = Vec::new();
        for instance in &input.destinations {
            let mut databases = states(ctx, &mut sql, instance)?;
            let online = judge(instance, &databases)?;
            let already = online && !started_here(ctx, instance);
            if online && !already {
                // An earlier attempt of this step started the job and was interrupted: it ran.
                earlier.push(instance.clone());
            }
            if !online {
                recover(ctx, &mut sql, instance)?;
                databases = states(ctx, &mut sql, instance)?;
                let not_online: Vec<String> = databases
                    .iter()
                    .filter(|d| d.state != "ONLINE")
                    .map(|d| format!("{} {}", d.name, d.state))
                    .collect();
                if databases.is_empty() || !not_online.is_empty() {
                    return Err(StepError::needs_operator(format!(
                        "Restore To Mark succeeded on {instance} but its databases are not all ONLINE ({}); look at the instance before going on",
                        if databases.is_empty() { "none".to_owned() } else { not_online.join(", ") }
                    )));
                }
                recovered.push(instance.clone());
            }
            let recovered_to = newest_imported(ctx, &mut sql, instance)?;
            output.instances.push(Recovered { instance: instance.clone(), databases, recovered_to, already });
        }
        output.rpo = rpo(&output.instances, failure_time);
        let outcome = if recovered.is_empty() && !earlier.is_empty() {
            let summary = format!(
                "an earlier attempt of this step recovered the databases of {} ONLINE; Restore To Mark not run again",
                earlier.join(", ")
            );
            Outcome::unchanged(output, summary)
        } else if recovered.is_empty() {
            Outcome::unchanged(
                output,
                "every DR SQL instance was recovered already; Restore To Mark not run again",
            )
        } else {
            let summary =
                format!("Restore To Mark recovered the databases of {} ONLINE", recovered.join(", "));
            Outcome::changed(output, summary)
        };
        Ok(sql.attach(outcome))
    }
}

/// The input's failure time, checked; `None` when absent or empty.
fn failure_time(input: &Input) -> Result<Option<String>, StepError> {
    let time = input.failure_time.clone().filter(|t| !t.trim().is_empty());
    if let Some(t) = &time
        && !crate::measure::is_rfc3339(t)
    {
        return Err(StepError::permanent(format!(
            "failure_time `{t}` is not an RFC 3339 time with a zone (2026-11-22T10:07:00Z)"
        )));
    }
    Ok(time)
}

/// The oldest mark recovered to, with a time, against the failure time.
fn rpo(instances: &[Recovered], failure_time: Option<String>) -> Option<crate::measure::Rpo> {
    let oldest = instances.iter().filter_map(|i| i.recovered_to.as_ref()).min_by_key(|s| s.id)?;
    let recovery_point = oldest.marked_at.clone()?;
    Some(crate::measure::Rpo { recovery_point, failure_time })
}

fn states(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<Vec<Database>, StepError> {
    Ok(sql
        .databases(ctx, instance)?
        .into_iter()
        .map(|(name, state)| {
            let state = match state {
                DatabaseState::Online => "ONLINE".to_owned(),
                DatabaseState::Restoring => "RESTORING".to_owned(),
                DatabaseState::Other(other) => other,
            };
            Database { name, state }
        })
        .collect())
}

/// `true` when every database is ONLINE, `false` when every one is RESTORING; otherwise an error.
fn judge(instance: &str, databases: &[Database]) -> Result<bool, StepError> {
    if databases.is_empty() {
        return Err(StepError::permanent(format!(
            "{instance} has no log-shipped databases (cleaned with sp_LogShippingClean?): nothing to recover to a mark"
        )));
    }
    if databases.iter().all(|d| d.state == "ONLINE") {
        return Ok(true);
    }
    if databases.iter().all(|d| d.state == "RESTORING") {
        return Ok(false);
    }
    let each: Vec<String> = databases.iter().map(|d| format!("{} {}", d.name, d.state)).collect();
    Err(StepError::needs_operator(format!(
        "the databases of {instance} are neither all RESTORING nor all ONLINE ({}): whether Restore To Mark ran is unclear; recover them by hand or restore them again, then retry or skip the step",
        each.join(", ")
    )))
}

fn newest_imported(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<Option<SetOut>, StepError> {
    let set = sql.read(
        ctx,
        instance,
        instance,
        logshipping::SHIPPED_LOG_SET,
        "newest imported log set",
        logshipping::parse_backup_set,
    )?;
    Ok(set.as_ref().map(SetOut::from))
}

/// The step-state key holding the newest outcome of Restore To Mark before this step started it.
fn checkpoint(instance: &str) -> String {
    format!("restore-to-mark-started:{instance}")
}

/// Whether an attempt of this step instance started (or was about to start) Restore To Mark on
/// `instance`.
fn started_here(ctx: &Ctx, instance: &str) -> bool {
    ctx.state_get(&checkpoint(instance)).is_some()
}

/// Disables the two jobs, starts Restore To Mark and judges its run; or, after an earlier attempt
/// of this step started it, reads that run.
fn recover(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<(), StepError> {
    let all = jobs::list(ctx, sql, instance)?;
    let job = jobs::find(&all, instance, logshipping::RESTORE_TO_MARK)?;
    let recorded = ctx.state_get(&checkpoint(instance)).and_then(|v| v.parse::<u64>().ok());
    let before = match recorded {
        Some(before) if earlier_attempt(ctx, sql, instance, &job, before)? => before,
        _ => {
            for wanted in [logshipping::GET_BACKUP_HISTORY, logshipping::RESTORE_DATABASES] {
                let other = jobs::find(&all, instance, wanted)?;
                if jobs::set_enabled(ctx, sql, instance, &other, false)? {
                    ctx.info(format!("disabled '{}' on {instance}", other.name));
                }
            }
            if job.running {
                return Err(StepError::needs_operator(format!(
                    "'{}' is already running on {instance}, not started by this step: let it finish and look at its outcome, then retry or skip the step",
                    job.name
                )));
            }
            let before = jobs::newest_outcome(ctx, sql, instance, &job.name)?;
            ctx.state_set(&checkpoint(instance), &before.to_string())?;
            ctx.info(format!("starting '{}' on {instance}", job.name));
            jobs::start(ctx, sql, instance, &job.name)?;
            before
        }
    };
    let Some(run) = jobs::run_after(ctx, sql, instance, &job.name, before)? else {
        return Err(StepError::retryable(format!(
            "'{}' started on {instance} has not finished yet; the next attempt reads its outcome",
            job.name
        )));
    };
    if run.succeeded() {
        return Ok(());
    }
    let errors: Vec<String> = run.errors().iter().map(u32::to_string).collect();
    let gap = if run.errors().contains(&4305) { "the log chain has a gap: " } else { "" };
    Err(StepError::permanent(format!(
        "{gap}'{}' failed on {instance} (SQL Server errors {}): {}; its databases stay RESTORING. Fix the cause, then retry the step",
        job.name,
        if errors.is_empty() { "none given".to_owned() } else { errors.join(", ") },
        jobs::failure_text(&run)
    )))
}

/// An earlier attempt recorded that it was starting the job, and the databases are still
/// RESTORING. `true`: its run is still going (the caller waits for it); `false`: its run failed,
/// which changed nothing, so the job may start again. A run that succeeded with the databases
/// still RESTORING, or no trace of a run while the job is not running, is unclear: an operator
/// decides.
fn earlier_attempt(
    ctx: &Ctx,
    sql: &mut Sql,
    instance: &str,
    job: &logshipping::JobState,
    before: u64,
) -> Result<bool, StepError> {
    match jobs::run_after(ctx, sql, instance, &job.name, before)? {
        Some(run) if run.succeeded() => Err(StepError::needs_operator(format!(
            "'{}' succeeded on {instance} in an earlier attempt, yet the databases are still RESTORING: look at the instance; recover the databases by hand or skip the step",
            job.name
        ))),
        Some(_) => Ok(false),
        None if job.running => Ok(true),
        None => Err(StepError::needs_operator(format!(
            "an earlier attempt was starting '{}' on {instance}, which has no run since and is not running, and the databases are still RESTORING: \
             whether it started is unclear. Look at the job's history; run it by hand, then retry the step (it finds the databases ONLINE and changes nothing), or skip it",
            job.name
        ))),
    }
}
