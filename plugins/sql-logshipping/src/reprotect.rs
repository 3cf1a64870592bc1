//! `logshipping-reprotect` (F14, idempotent): the recovered DR SQL Server, now production, backs
//! itself up again ("Next, configure the Backup BizTalk Server job to start writing backups to a
//! new destination server", How to Restore Your Databases). On the instance whose
//! `BizTalkMgmtDb` Restore To Mark recovered:
//!
//! 1. the `Backup BizTalk Server (BizTalkMgmtDb)` job Restore To Mark recreated gets the new
//!    backup location in its `BackupFull` and `MarkAndBackupLog` steps (`sp_update_jobstep
//!    @step_id, @command`, only the location's literal rewritten: `biztalk_common::backup_job`);
//!    while they change, the job is disabled, so no run takes a set half configured;
//! 2. `sp_ForceFullBackup`, so that its next run takes a full set in the new location (the first
//!    set of the new chain; Configure the Backup BizTalk Server Job, "sp_ForceFullBackup stored
//!    procedure");
//! 3. the job enabled (`sp_update_job @enabled = 1`);
//! 4. the other BizTalk jobs Restore To Mark recreated (`biztalk_common::backup_job::BIZTALK_JOBS`)
//!    enabled, but those named in `keep_disabled` (by default `MessageBox_Message_Cleanup_*`,
//!    which Microsoft recommends keeping disabled). Jobs that are not BizTalk's are left alone.
//!
//! A re-run finds the locations set and the jobs enabled and changes nothing: it forces a full
//! backup again only while the job is disabled or a step still writes elsewhere, and since the job
//! stays disabled from the first change until the force, an interrupted attempt is finished by the
//! next one. The jobs' first runs happen on their schedules, after the step: the output lists
//! each enabled job's newest run as it stands, for the operator to check later.
//!
//! Not done: configuring a new log-shipping destination for the new production (no new DR site
//! exists to ship to), and BAM (docs/biztalk.md, "F14, re-protect").

use biztalk_common::backup_job::{self, BACKUP_FULL, MARK_AND_BACKUP_LOG};
use biztalk_common::logshipping::{self, BACKUP_JOB, DatabaseState, JobState};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::jobs;
use crate::sql::Sql;

/// The plugin.
#[derive(Default)]
pub struct Reprotect;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The recovered DR SQL Server (the new production SQL Server), a server of the inventory by
    /// the name `sqlcmd -S` reaches it with (`DRSQL01`).
    pub instance: String,
    /// The new backup location for the Backup BizTalk Server job, a UNC path such as
    /// `\\DRBAK01\BizTalkBackup` (Microsoft: on a different computer than the databases).
    pub backup_path: String,
    /// The BizTalk jobs to leave disabled, by the start of their names (ignoring case).
    #[serde(default = "keep_disabled")]
    pub keep_disabled: Vec<String>,
}

fn keep_disabled() -> Vec<String> {
    vec![backup_job::KEEP_DISABLED.to_owned()]
}

/// A step whose location changed (in `check`: would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StepChange {
    /// The step's name as installed.
    pub step: String,
    /// The location it wrote to.
    pub from: String,
    /// The location it writes to now.
    pub to: String,
}

/// A job's newest run, as it stood after the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LastRun {
    /// The job.
    pub job: String,
    /// `succeeded`, `failed`, or `not run yet`.
    pub outcome: String,
}

/// Output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// The instance.
    pub instance: String,
    /// The backup location both steps write to.
    pub backup_path: String,
    /// The steps whose location changed.
    pub steps_changed: Vec<StepChange>,
    /// `sp_ForceFullBackup` ran (in `check`: would run).
    pub full_backup_forced: bool,
    /// The jobs enabled, the Backup BizTalk Server job first when it was disabled.
    pub jobs_enabled: Vec<String>,
    /// The jobs left disabled as `keep_disabled` says.
    pub jobs_kept_disabled: Vec<String>,
    /// Each enabled BizTalk job's newest run (its first run after the failover is on its
    /// schedule: check it later).
    pub last_runs: Vec<LastRun>,
}

impl Plugin for Reprotect {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("logshipping-reprotect", env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description("points the recovered SQL Server's backup job at a new location, forces a full backup and enables the BizTalk jobs (F14)")
            .program(crate::SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        reprotect(ctx, input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        reprotect(ctx, input, true)
    }
}

fn reprotect(ctx: &Ctx, input: Input, apply: bool) -> StepResult<Output> {
    let instance = input.instance.trim().to_owned();
    let path = input.backup_path.trim().to_owned();
    if instance.is_empty() || path.is_empty() {
        return Err(StepError::permanent("the instance and the backup path must not be empty"));
    }
    let mut sql = Sql::default();
    recovered(ctx, &mut sql, &instance)?;
    let all = jobs::list_all(ctx, &mut sql, &instance, &instance)?;
    let Some(backup) = all.iter().find(|j| j.name.eq_ignore_ascii_case(BACKUP_JOB)).cloned() else {
        return Err(StepError::permanent(format!(
            "no '{BACKUP_JOB}' job on {instance}: Restore To Mark recreates it with the source's jobs; did it run here?"
        )));
    };
    let steps = sql.read(
        ctx,
        &instance,
        &instance,
        &backup_job::job_steps(&backup.name),
        &format!("steps of {}", backup.name),
        backup_job::parse_job_steps,
    )?;
    let mut updates = Vec::new();
    let mut output = Output { instance: instance.clone(), backup_path: path.clone(), ..Output::default() };
    for wanted in [BACKUP_FULL, MARK_AND_BACKUP_LOG] {
        let Some(step) = backup_job::find_step(&steps, wanted) else {
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            return Err(StepError::permanent(format!(
                "'{}' on {instance} has no step {wanted} (its steps: {})",
                backup.name,
                names.join(", ")
            )));
        };
        let unreadable = |why: backup_job::NoLocation| {
            let what = format!("the {} step's command of '{}'", step.name, backup.name);
            unrecognized::needs_operator(&what, &instance, &why.0, Some(0), &[("command", &step.command)])
        };
        let from = backup_job::backup_path(&step.command).map_err(unreadable)?;
        if !backup_job::same_path(&from, &path) {
            let command = backup_job::with_backup_path(&step.command, &path).map_err(unreadable)?;
            updates.push((step.id, command));
            output.steps_changed.push(StepChange { step: step.name.clone(), from, to: path.clone() });
        }
    }
    output.full_backup_forced = !updates.is_empty() || !backup.enabled;
    if apply {
        // Disabled while its steps change: an attempt interrupted here leaves it disabled, and
        // the next one forces the full backup and enables it.
        if !updates.is_empty() {
            jobs::set_enabled(ctx, &mut sql, &instance, &backup, false)?;
        }
        for (step_id, command) in &updates {
            let update = backup_job::update_job_step(&backup.name, *step_id, command);
            sql.exec(ctx, &instance, &update, &format!("sp_update_jobstep {} step {step_id}", backup.name))?;
        }
        if output.full_backup_forced {
            sql.exec(ctx, &instance, logshipping::FORCE_FULL_BACKUP, "sp_ForceFullBackup")?;
            let disabled = JobState { enabled: false, ..backup.clone() };
            jobs::set_enabled(ctx, &mut sql, &instance, &disabled, true)?;
        }
    }
    if !backup.enabled {
        output.jobs_enabled.push(backup.name.clone());
    }
    let others = all.iter().filter(|j| backup_job::is_biztalk_job(&j.name) && j.name != backup.name);
    for job in others {
        let keep = input.keep_disabled.iter().any(|p| backup_job::starts_with_ignoring_case(&job.name, p));
        if keep {
            if !job.enabled {
                output.jobs_kept_disabled.push(job.name.clone());
            }
            continue;
        }
        if !job.enabled {
            if apply {
                jobs::set_enabled(ctx, &mut sql, &instance, job, true)?;
            }
            output.jobs_enabled.push(job.name.clone());
        }
        output.last_runs.push(last_run(ctx, &mut sql, &instance, &job.name)?);
    }
    output.last_runs.insert(0, last_run(ctx, &mut sql, &instance, &backup.name)?);
    let changed = output.full_backup_forced || !output.jobs_enabled.is_empty();
    let verb = if apply { "" } else { "would " };
    let summary = if changed {
        let mut parts = Vec::new();
        if !output.steps_changed.is_empty() {
            parts.push(format!("{verb}point {} at {path}", backup.name));
        }
        if output.full_backup_forced {
            parts.push(format!("{verb}force a full backup"));
        }
        if !output.jobs_enabled.is_empty() {
            parts.push(format!("{verb}enable {} job(s)", output.jobs_enabled.len()));
        }
        format!("{instance}: {}", parts.join(", "))
    } else {
        format!("{instance} backs up to {path} and its BizTalk jobs are enabled: nothing to do")
    };
    let outcome =
        if changed { Outcome::changed(output, summary) } else { Outcome::unchanged(output, summary) };
    Ok(sql.attach(outcome))
}

/// A permanent error unless `BizTalkMgmtDb` on `instance` is `ONLINE` (recovered).
fn recovered(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<(), StepError> {
    let databases = sql.databases(ctx, instance)?;
    match databases.iter().find(|(name, _)| name.eq_ignore_ascii_case("BizTalkMgmtDb")) {
        Some((_, DatabaseState::Online)) => Ok(()),
        Some((_, state)) => Err(StepError::permanent(format!(
            "BizTalkMgmtDb on {instance} is {}, not recovered: re-protect runs after Restore To Mark",
            match state {
                DatabaseState::Restoring => "RESTORING",
                DatabaseState::Other(other) => other,
                DatabaseState::Online => "ONLINE",
            }
        ))),
        None => Err(StepError::permanent(format!("{instance} has no BizTalkMgmtDb database"))),
    }
}

fn last_run(ctx: &Ctx, sql: &mut Sql, instance: &str, job: &str) -> Result<LastRun, StepError> {
    let run = jobs::last_run(ctx, sql, instance, job)?;
    let outcome = match run {
        None => "not run yet".to_owned(),
        Some(run) if run.succeeded() => "succeeded".to_owned(),
        Some(run) => format!("failed: {}", jobs::failure_text(&run)),
    };
    Ok(LastRun { job: job.to_owned(), outcome })
}
