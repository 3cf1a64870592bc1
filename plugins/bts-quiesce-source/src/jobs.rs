//! F1 step 3 through `sqlcmd` from the step's target: the Backup BizTalk Server job started at
//! its `MarkAndBackupLog` step once more (the last mark), then every BizTalk SQL Server Agent job
//! of the source disabled (`sp_update_job @enabled = 0`) and any running one stopped
//! (`sp_stop_job`), each recorded before its change; then each DR SQL instance's Get Backup
//! History started where it has not imported the source's newest log set, so that catch-up and
//! Restore To Mark reach the last mark. Command lines and parsers are
//! `biztalk_common::logshipping`'s, the runner `sql_logshipping::sql::Sql`.
//!
//! Which jobs are BizTalk's: the names of Microsoft Learn's "Database Structure and Jobs" (and
//! KB 919776), whose database suffix follows the names given at configuration, so they are
//! matched by prefix ([`is_biztalk_job`]).

use biztalk_common::logshipping::{self, JobState, StartAnswer};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;
use sql_logshipping::SetOut;
use sql_logshipping::sql::{Answer, Sql};

use crate::{Destination, Input, Session};

/// Durable-state key of the jobs this step disabled.
pub const DISABLED: &str = "disabled-jobs";
/// Durable-state key of the jobs this step stopped.
pub const STOPPED: &str = "stopped-jobs";
/// Durable-state key of the source's newest log set id before this step started the last mark.
const MARK_AFTER: &str = "mark-after-set";
/// Durable-state key: the last mark was taken by this step instance.
const MARK_DONE: &str = "mark-taken";

/// Whether `name` is one of BizTalk Server's SQL Server Agent jobs (matched by the start of its
/// name, as re-protect matches them).
pub use biztalk_common::backup_job::is_biztalk_job;

/// What the SQL side did (check mode: would do).
#[derive(Debug, Default)]
pub struct SqlOutcome {
    /// Jobs disabled by this call.
    pub disabled: Vec<String>,
    /// Jobs stopped by this call.
    pub stopped: Vec<String>,
    /// The last mark taken by this call.
    pub mark_taken: bool,
    /// The source's newest complete log set afterwards.
    pub last_mark: Option<SetOut>,
    /// The DR SQL instances.
    pub destinations: Vec<Destination>,
}

struct Source<'a> {
    on: String,
    name: &'a str,
}

impl Source<'_> {
    fn newest(&self, ctx: &Ctx, sql: &mut Sql) -> Result<Option<SetOut>, StepError> {
        let set = sql.read(
            ctx,
            &self.on,
            self.name,
            logshipping::SOURCE_LOG_SET,
            "source's newest log set",
            logshipping::parse_source_set,
        )?;
        Ok(set.map(|s| SetOut::from(&s.set)))
    }

    fn jobs(&self, ctx: &Ctx, sql: &mut Sql) -> Result<Vec<JobState>, StepError> {
        let all = sql.read(
            ctx,
            &self.on,
            self.name,
            logshipping::ALL_JOBS,
            "SQL Server Agent jobs",
            logshipping::parse_jobs,
        )?;
        Ok(all.into_iter().filter(|j| is_biztalk_job(&j.name)).collect())
    }

    /// The newest run of `job`, `None` when it never ran.
    fn last_run(
        &self,
        ctx: &Ctx,
        sql: &mut Sql,
        job: &str,
    ) -> Result<Option<logshipping::LastRun>, StepError> {
        sql.read(
            ctx,
            &self.on,
            self.name,
            &logshipping::job_history(job),
            &format!("history of {job}"),
            logshipping::parse_last_run,
        )
    }
}

/// Starts `job` (at `step`, when given) on `instance` from `on`; SQL Server Agent's refusal
/// because it already runs (22022) is retryable, another refusal permanent.
fn start(
    ctx: &Ctx,
    sql: &mut Sql,
    on: &str,
    instance: &str,
    job: &str,
    step: Option<&str>,
) -> Result<(), StepError> {
    let statement = match step {
        Some(step) => logshipping::start_job_at(job, step),
        None => logshipping::start_job(job),
    };
    let (answer, ran) = sql.run(ctx, on, instance, &statement, &format!("start {job}"))?;
    let refused = |e: &logshipping::SqlError| {
        let text = format!(
            "SQL Server Agent on {instance} refused to start '{job}': error {}: {}",
            e.number, e.message
        );
        if e.number == 22022 { StepError::retryable(text) } else { StepError::permanent(text) }
    };
    let stdout = match answer {
        Answer::Rows(stdout) => stdout,
        Answer::Sql(error) => return Err(refused(&error)),
        Answer::Unreachable(line) => {
            return Err(StepError::retryable(format!("{instance} does not answer ({line})")));
        }
    };
    match logshipping::parse_start_job(job, &stdout) {
        Some(StartAnswer::Started) => Ok(()),
        Some(StartAnswer::Refused(error)) => Err(refused(&error)),
        None => Err(unrecognized::program("sqlcmd sp_start_job", on, "no 'started successfully' line", &ran)),
    }
}

/// Step 3. `processing_stopped`: this step stopped processing (now or in an earlier attempt), so
/// the source's newest mark may not hold everything.
pub fn quiesce_jobs(
    session: &mut Session,
    input: &Input,
    processing_stopped: bool,
) -> Result<SqlOutcome, StepError> {
    let ctx = session.ctx;
    let source = Source { on: session.target.clone(), name: &input.source_sql };
    let mut sql = Sql::default();
    let result = quiesce_with(session, ctx, &source, &mut sql, input, processing_stopped);
    session.evidence.append(&mut sql.evidence);
    result
}

fn quiesce_with(
    session: &Session,
    ctx: &Ctx,
    source: &Source,
    sql: &mut Sql,
    input: &Input,
    processing_stopped: bool,
) -> Result<SqlOutcome, StepError> {
    let ours = source.jobs(ctx, sql)?;
    let Some(backup) = logshipping::find_job(&ours, logshipping::BACKUP_JOB).cloned() else {
        return Err(StepError::permanent(format!(
            "{} has no '{}' job: is it the SQL Server of the production group's management database?",
            source.name,
            logshipping::BACKUP_JOB
        )));
    };
    let mut out = SqlOutcome { last_mark: source.newest(ctx, sql)?, ..SqlOutcome::default() };
    let done: bool = ctx.state_get_json(MARK_DONE)?.unwrap_or(false);
    let after: Option<u64> = ctx.state_get_json(MARK_AFTER)?;
    let mark_needed = !done && (processing_stopped || backup.enabled || after.is_some());
    if mark_needed {
        out.mark_taken = true;
        if session.apply {
            out.last_mark = take_mark(ctx, source, sql, &backup, after, out.last_mark.take())?;
            ctx.state_set_json(MARK_DONE, &true)?;
        }
    }
    for job in ours.iter().filter(|j| j.enabled) {
        out.disabled.push(job.name.clone());
        if session.apply {
            session.record(DISABLED, job.name.clone())?;
            let statement = logshipping::update_job(&job.name, false);
            sql.exec_via(ctx, &source.on, source.name, &statement, &format!("disable {}", job.name))?;
        }
    }
    for job in ours.iter().filter(|j| j.running) {
        out.stopped.push(job.name.clone());
        if session.apply {
            session.record(STOPPED, job.name.clone())?;
            stop(ctx, source, sql, &job.name)?;
        }
    }
    for instance in &input.destinations {
        out.destinations.push(import(
            session,
            ctx,
            source,
            sql,
            instance,
            out.last_mark.as_ref(),
            mark_needed,
        )?);
    }
    Ok(out)
}

/// Starts `MarkAndBackupLog` once (unless an earlier attempt's run already took a newer set than
/// `after`) and returns the new newest set.
fn take_mark(
    ctx: &Ctx,
    source: &Source,
    sql: &mut Sql,
    backup: &JobState,
    after: Option<u64>,
    newest: Option<SetOut>,
) -> Result<Option<SetOut>, StepError> {
    let before = after.unwrap_or_else(|| newest.as_ref().map_or(0, |s| s.id));
    if newest.as_ref().is_some_and(|s| s.id > before) {
        return Ok(newest);
    }
    if after.is_none() {
        ctx.state_set_json(MARK_AFTER, &before)?;
    }
    if backup.running {
        return Err(StepError::retryable(format!(
            "'{}' is running on {}; try again once it finished, then its newest mark is taken again",
            backup.name, source.name
        )));
    }
    let last_before = source.last_run(ctx, sql, &backup.name)?.map_or(0, |r| r.outcome.instance_id);
    start(ctx, sql, &source.on, source.name, &backup.name, Some(logshipping::MARK_AND_BACKUP_LOG))?;
    let newest = source.newest(ctx, sql)?;
    if newest.as_ref().is_some_and(|s| s.id > before) {
        return Ok(newest);
    }
    match source.last_run(ctx, sql, &backup.name)? {
        Some(run) if run.outcome.instance_id > last_before && !run.succeeded() => {
            Err(StepError::permanent(format!(
                "the last log backup failed: '{}' on {}: {}",
                backup.name,
                source.name,
                sql_logshipping::jobs::failure_text(&run)
            )))
        }
        _ => Err(StepError::retryable(format!(
            "'{}' started at {} on {} has not recorded a new log set yet; try again once it finished",
            backup.name,
            logshipping::MARK_AND_BACKUP_LOG,
            source.name
        ))),
    }
}

fn stop(ctx: &Ctx, source: &Source, sql: &mut Sql, job: &str) -> Result<(), StepError> {
    let (answer, _) =
        sql.run(ctx, &source.on, source.name, &logshipping::stop_job(job), &format!("stop {job}"))?;
    match answer {
        Answer::Rows(_) => Ok(()),
        // Finished between the read and the stop: nothing to stop.
        Answer::Sql(error)
            if error.number == 22022
                && error.message.ends_with("because the job is not currently running.") =>
        {
            Ok(())
        }
        Answer::Sql(error) => Err(StepError::permanent(format!(
            "stopping '{job}' on {}: SQL Server error {}: {}",
            source.name, error.number, error.message
        ))),
        Answer::Unreachable(line) => {
            Err(StepError::retryable(format!("stopping '{job}': {} does not answer ({line})", source.name)))
        }
    }
}

/// Makes `instance` import the source's newest set (`newest`) with its Get Backup History job
/// when it has not; `pending_mark`: in check mode, a mark would be taken first.
fn import(
    session: &Session,
    ctx: &Ctx,
    source: &Source,
    sql: &mut Sql,
    instance: &str,
    newest: Option<&SetOut>,
    pending_mark: bool,
) -> Result<Destination, StepError> {
    let read = |sql: &mut Sql| -> Result<Option<SetOut>, StepError> {
        let set = sql.read(
            ctx,
            &source.on,
            instance,
            logshipping::SHIPPED_LOG_SET,
            "newest imported log set",
            logshipping::parse_backup_set,
        )?;
        Ok(set.as_ref().map(SetOut::from))
    };
    let imported = read(sql)?;
    let behind = |set: &Option<SetOut>| newest.is_some_and(|n| set.as_ref().is_none_or(|s| s.id < n.id));
    let mut out = Destination {
        instance: instance.to_owned(),
        history_imported: behind(&imported) || (pending_mark && !session.apply),
        newest_imported: imported,
    };
    if !session.apply || !behind(&out.newest_imported) {
        return Ok(out);
    }
    let jobs =
        sql.read(ctx, &source.on, instance, logshipping::JOBS, "log-shipping jobs", logshipping::parse_jobs)?;
    let job = sql_logshipping::jobs::find(&jobs, instance, logshipping::GET_BACKUP_HISTORY)?;
    if !job.running {
        start(ctx, sql, &source.on, instance, &job.name, None)?;
    }
    out.newest_imported = read(sql)?;
    if behind(&out.newest_imported) {
        return Err(StepError::retryable(format!(
            "{instance} has not imported log set {} yet ('{}' started); try again once it finished",
            newest.map_or(0, |n| n.id),
            job.name
        )));
    }
    Ok(out)
}
