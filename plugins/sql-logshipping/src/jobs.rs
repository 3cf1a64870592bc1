//! A destination's log-shipping jobs: found however the installation spelled them
//! (`logshipping::JOBS`, `find_job`), enabled or disabled, started, and their run read back from
//! `sysjobhistory`. SQL Server Agent runs a started job on its own; the run this plugin started is
//! the first outcome row newer than the newest one before `sp_start_job`.

use biztalk_common::logshipping::{self, JobState, LastRun, StartAnswer};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;

use crate::sql::{Answer, Sql};

/// The log-shipping jobs of `instance`.
pub fn list(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<Vec<JobState>, StepError> {
    sql.read(ctx, instance, instance, logshipping::JOBS, "log-shipping jobs", logshipping::parse_jobs)
}

/// Every SQL Server Agent job of `instance`, read through `via` (the instance itself, or a DR
/// server for the source).
pub fn list_all(ctx: &Ctx, sql: &mut Sql, via: &str, instance: &str) -> Result<Vec<JobState>, StepError> {
    sql.read(ctx, via, instance, logshipping::ALL_JOBS, "SQL Server Agent jobs", logshipping::parse_jobs)
}

/// The installed job matching `wanted`'s documented name; a permanent error naming the jobs found
/// when there is none.
pub fn find(jobs: &[JobState], instance: &str, wanted: &str) -> Result<JobState, StepError> {
    logshipping::find_job(jobs, wanted).cloned().ok_or_else(|| {
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        StepError::permanent(format!(
            "no job like '{wanted}' on {instance} (its log-shipping jobs: {}); is it a log-shipping destination?",
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        ))
    })
}

/// The newest run of `job` on `instance`, `None` when it never ran or its newest run has no outcome.
pub fn last_run(ctx: &Ctx, sql: &mut Sql, instance: &str, job: &str) -> Result<Option<LastRun>, StepError> {
    sql.read(
        ctx,
        instance,
        instance,
        &logshipping::job_history(job),
        &format!("history of {job}"),
        logshipping::parse_last_run,
    )
}

/// The newest outcome row's id of `job` (0 when none): a run started after this has a larger one.
pub fn newest_outcome(ctx: &Ctx, sql: &mut Sql, instance: &str, job: &str) -> Result<u64, StepError> {
    Ok(last_run(ctx, sql, instance, job)?.map_or(0, |run| run.outcome.instance_id))
}

/// Starts `job` on `instance`. SQL Server Agent's refusal to start a running job (22022) is
/// retryable; another refusal permanent.
pub fn start(ctx: &Ctx, sql: &mut Sql, instance: &str, job: &str) -> Result<(), StepError> {
    let (answer, ran) =
        sql.run(ctx, instance, instance, &logshipping::start_job(job), &format!("start {job}"))?;
    let stdout = match answer {
        Answer::Rows(stdout) => stdout,
        Answer::Sql(error) => return Err(refused(instance, job, &error)),
        Answer::Unreachable(line) => {
            return Err(StepError::retryable(format!("{instance} does not answer ({line})")));
        }
    };
    match logshipping::parse_start_job(job, &stdout) {
        Some(StartAnswer::Started) => Ok(()),
        Some(StartAnswer::Refused(error)) => Err(refused(instance, job, &error)),
        None => Err(unrecognized::program(
            "sqlcmd sp_start_job",
            instance,
            "no 'started successfully' line",
            &ran,
        )),
    }
}

fn refused(instance: &str, job: &str, error: &logshipping::SqlError) -> StepError {
    let text = format!(
        "SQL Server Agent on {instance} refused to start '{job}': error {}: {}",
        error.number, error.message
    );
    if error.number == 22022 { StepError::retryable(text) } else { StepError::permanent(text) }
}

/// The run of `job` newer than `before`: `None` while it has no outcome row yet.
pub fn run_after(
    ctx: &Ctx,
    sql: &mut Sql,
    instance: &str,
    job: &str,
    before: u64,
) -> Result<Option<LastRun>, StepError> {
    Ok(last_run(ctx, sql, instance, job)?.filter(|run| run.outcome.instance_id > before))
}

/// The failed steps' messages of a run, joined, or the outcome's message when no step row failed.
pub fn failure_text(run: &LastRun) -> String {
    let steps: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s.status == logshipping::RunStatus::Failed)
        .map(|s| s.message.as_str())
        .collect();
    if steps.is_empty() { run.outcome.message.clone() } else { steps.join(" / ") }
}

/// Sets `job` enabled or disabled when it is not already; whether it changed.
pub fn set_enabled(
    ctx: &Ctx,
    sql: &mut Sql,
    instance: &str,
    job: &JobState,
    enabled: bool,
) -> Result<bool, StepError> {
    if job.enabled == enabled {
        return Ok(false);
    }
    let verb = if enabled { "enable" } else { "disable" };
    sql.exec(ctx, instance, &logshipping::update_job(&job.name, enabled), &format!("{verb} {}", job.name))?;
    Ok(true)
}
