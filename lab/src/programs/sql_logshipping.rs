//! `sqlcmd` for BizTalk log shipping (issue 18, L1; `lab/PROTOCOL.md`, "DR SQL and log
//! shipping"): the queries and procedure calls the failover plugin sends to the source SQL
//! Server and to the DR SQL instances, word for word as `biztalk_common::logshipping` (in
//! `plugins/`) builds them, answered from [`crate::logshipping`]. Every command line is
//! `sqlcmd -S <server> -E -b -h -1 -W -s | -Q <query>`; any other query is not this module's.
//!
//! A SQL Server error is printed as sqlcmd prints it, on stdout, `Msg <n>, Level <l>, State
//! <s>, Server <server>[, Procedure <p>], Line <n>` and the message, and `-b` makes the exit
//! code 1.

use super::sqlcmd::{refused, server_and_query, unquote};
use super::{Ctx, Output};
use crate::logshipping::{self, DbState, Invoker};

/// The destination's last restored set and its mark.
pub const LAST_RESTORED_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 h.BackupSetId, h.MarkName FROM master.dbo.bts_LogShippingHistory h JOIN master.dbo.bts_LogShippingLastRestoreSet l ON l.BackupSetId = h.BackupSetId ORDER BY h.BackupSetId DESC";
/// The newest complete log set the destination imported.
pub const SHIPPED_LOG_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 BackupSetId, MarkName FROM master.dbo.bts_LogShippingHistory WHERE BackupType = 'lg' AND SetComplete = 1 ORDER BY BackupSetId DESC";
/// The source's newest complete log set.
pub const SOURCE_LOG_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 BackupSetId, MarkName, CONVERT(varchar(23), BackupDateTime, 126) FROM BizTalkMgmtDb.dbo.adm_BackupHistory WHERE BackupType = 'lg' AND SetComplete = 1 ORDER BY BackupSetId DESC";
/// The log-shipping jobs: name, enabled, running.
pub const JOBS: &str = "SET NOCOUNT ON; SELECT j.name, j.enabled, CASE WHEN EXISTS (SELECT 1 FROM msdb.dbo.sysjobactivity a WHERE a.job_id = j.job_id AND a.session_id = (SELECT MAX(s.session_id) FROM msdb.dbo.syssessions s) AND a.start_execution_date IS NOT NULL AND a.stop_execution_date IS NULL) THEN 1 ELSE 0 END FROM msdb.dbo.sysjobs j WHERE j.name LIKE 'BTS%Log Shipping%' ORDER BY j.name";
/// Every SQL Server Agent job: name, enabled, running.
pub const ALL_JOBS: &str = "SET NOCOUNT ON; SELECT j.name, j.enabled, CASE WHEN EXISTS (SELECT 1 FROM msdb.dbo.sysjobactivity a WHERE a.job_id = j.job_id AND a.session_id = (SELECT MAX(s.session_id) FROM msdb.dbo.syssessions s) AND a.start_execution_date IS NOT NULL AND a.stop_execution_date IS NULL) THEN 1 ELSE 0 END FROM msdb.dbo.sysjobs j ORDER BY j.name";
/// The user databases and their states.
pub const DATABASE_STATES: &str =
    "SET NOCOUNT ON; SELECT name, state_desc FROM sys.databases WHERE database_id > 4 ORDER BY name";
/// `sp_ForceFullBackup` on the source.
pub const FORCE_FULL_BACKUP: &str = "EXEC BizTalkMgmtDb.dbo.sp_ForceFullBackup";
/// `sp_start_job @job_name = N'<job>'`.
const START_JOB: (&str, &str) = ("EXEC msdb.dbo.sp_start_job @job_name = ", "");
/// `sp_start_job @job_name = N'<job>', @step_name = N'<step>'`.
const START_JOB_AT: (&str, &str) = ("EXEC msdb.dbo.sp_start_job @job_name = ", ", @step_name = ");
/// `sp_stop_job @job_name = N'<job>'`.
const STOP_JOB: (&str, &str) = ("EXEC msdb.dbo.sp_stop_job @job_name = ", "");
/// `sp_update_job @job_name = N'<job>', @enabled = 0|1`.
const UPDATE_JOB: (&str, &str) = ("EXEC msdb.dbo.sp_update_job @job_name = ", ", @enabled = ");
/// `sp_delete_job @job_name = N'<job>'`.
const DELETE_JOB: (&str, &str) = ("EXEC msdb.dbo.sp_delete_job @job_name = ", "");
/// The newest ten history rows of a job.
const JOB_HISTORY: (&str, &str) = (
    "SET NOCOUNT ON; SELECT TOP 10 h.instance_id, h.step_id, h.run_status, h.run_date, h.run_time, h.message FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id WHERE j.name = ",
    " ORDER BY h.instance_id DESC",
);
/// `sp_LogShippingClean N'<source id>'`.
const CLEAN: (&str, &str) = ("EXEC master.dbo.sp_LogShippingClean ", "");

/// `sqlcmd <args…>` when they are one of this module's command lines.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let (server, query) = server_and_query(args)?;
    let request = Request::of(query)?;
    if let Err(why) = ctx.connect_sql(server) {
        return Some(refused(why));
    }
    let server = ctx.lab.server_name(server).unwrap_or_else(|| server.to_owned());
    Some(request.answer(ctx, &server))
}

/// One of the command lines, read.
enum Request {
    LastRestoredSet,
    ShippedLogSet,
    SourceLogSet,
    Jobs,
    AllJobs,
    DatabaseStates,
    ForceFullBackup,
    StartJob(String, Option<String>),
    StopJob(String),
    UpdateJob(String, bool),
    DeleteJob(String),
    JobHistory(String),
    Clean(String),
}

/// The literal between `prefix` and `suffix` of `query`, and what follows the suffix.
fn between<'q>(query: &'q str, (prefix, suffix): (&str, &str)) -> Option<(String, &'q str)> {
    let rest = query.strip_prefix(prefix)?;
    if suffix.is_empty() {
        return Some((unquote(rest)?, ""));
    }
    let at = rest.rfind(suffix)?;
    Some((unquote(&rest[..at])?, &rest[at + suffix.len()..]))
}

impl Request {
    fn of(query: &str) -> Option<Request> {
        Some(match query {
            LAST_RESTORED_SET => Request::LastRestoredSet,
            SHIPPED_LOG_SET => Request::ShippedLogSet,
            SOURCE_LOG_SET => Request::SourceLogSet,
            JOBS => Request::Jobs,
            ALL_JOBS => Request::AllJobs,
            DATABASE_STATES => Request::DatabaseStates,
            FORCE_FULL_BACKUP => Request::ForceFullBackup,
            _ => {
                if let Some((job, "")) = between(query, START_JOB) {
                    Request::StartJob(job, None)
                } else if let Some((job, step)) = between(query, START_JOB_AT) {
                    Request::StartJob(job, Some(unquote(step)?))
                } else if let Some((job, "")) = between(query, STOP_JOB) {
                    Request::StopJob(job)
                } else if let Some((job, flag)) = between(query, UPDATE_JOB) {
                    match flag {
                        "0" => Request::UpdateJob(job, false),
                        "1" => Request::UpdateJob(job, true),
                        _ => return None,
                    }
                } else if let Some((job, "")) = between(query, DELETE_JOB) {
                    Request::DeleteJob(job)
                } else if let Some((job, "")) = between(query, JOB_HISTORY) {
                    Request::JobHistory(job)
                } else if let Some((source, "")) = between(query, CLEAN) {
                    Request::Clean(source)
                } else {
                    return None;
                }
            }
        })
    }

    fn answer(self, ctx: &mut Ctx<'_>, server: &str) -> Output {
        let lab = &mut *ctx.lab;
        let destination = lab.destination_name(server);
        let shipping = &lab.log_shipping;
        let here = destination.as_ref().and_then(|d| shipping.destinations.get(d));
        match self {
            Request::LastRestoredSet | Request::ShippedLogSet | Request::Clean(_) if here.is_none() => {
                not_a_destination(server, &self)
            }
            Request::LastRestoredSet => {
                let here = here.expect("checked");
                let set =
                    here.last_restored.filter(|_| !here.databases.is_empty()).and_then(|id| shipping.set(id));
                Output::ok(set.map_or_else(String::new, |s| format!("{}|{}\r\n", s.id, s.mark)))
            }
            Request::ShippedLogSet => {
                let imported = here.expect("checked").imported;
                let set = shipping
                    .history
                    .iter()
                    .rev()
                    .find(|s| s.kind == logshipping::BackupKind::Log && s.id <= imported);
                Output::ok(set.map_or_else(String::new, |s| format!("{}|{}\r\n", s.id, s.mark)))
            }
            Request::SourceLogSet => {
                let newest = match here {
                    None if shipping.source.eq_ignore_ascii_case(server) => u64::MAX,
                    Some(here) if here.databases.get("BizTalkMgmtDb") == Some(&DbState::Online) => {
                        here.last_restored.unwrap_or(0)
                    }
                    Some(here) if here.databases.contains_key("BizTalkMgmtDb") => return in_restore(server),
                    _ => return no_database(server),
                };
                let set = shipping
                    .history
                    .iter()
                    .rev()
                    .find(|s| s.kind == logshipping::BackupKind::Log && s.id <= newest);
                Output::ok(set.map_or_else(String::new, |s| {
                    format!("{}|{}|{}\r\n", s.id, s.mark, style_126(&s.backed_up))
                }))
            }
            Request::Jobs | Request::AllJobs => {
                let all = matches!(self, Request::AllJobs);
                let jobs = logshipping::agent_jobs(lab, server).unwrap_or_default();
                let mut jobs: Vec<_> = jobs
                    .iter()
                    .filter(|j| all || (j.name.starts_with("BTS") && j.name.contains("Log Shipping")))
                    .collect();
                jobs.sort_by_key(|j| j.name.to_lowercase());
                // The lab's jobs finish as they start: none is ever running.
                Output::ok(
                    jobs.iter()
                        .map(|j| format!("{}|{}|0\r\n", j.name, u8::from(j.enabled)))
                        .collect::<String>(),
                )
            }
            Request::DatabaseStates => {
                let mut rows: Vec<(String, &str)> = match here {
                    Some(here) => here.databases.iter().map(|(n, s)| (n.clone(), s.state_desc())).collect(),
                    None => lab
                        .servers
                        .get(server)
                        .and_then(|s| s.sql.as_ref())
                        .map(|sql| sql.databases.iter().map(|d| (d.clone(), "ONLINE")).collect())
                        .unwrap_or_default(),
                };
                rows.sort_by_key(|(name, _)| name.to_lowercase());
                Output::ok(rows.iter().map(|(n, s)| format!("{n}|{s}\r\n")).collect::<String>())
            }
            Request::ForceFullBackup => match here {
                None if shipping.source.eq_ignore_ascii_case(server) => {
                    logshipping::force_full_backup(lab);
                    Output::ok("")
                }
                // A recovered destination is the new production: its own job's next run (F14).
                Some(here) if here.databases.get("BizTalkMgmtDb") == Some(&DbState::Online) => {
                    if let Some(here) =
                        destination.as_ref().and_then(|d| lab.log_shipping.destinations.get_mut(d))
                    {
                        here.force_full = true;
                    }
                    Output::ok("")
                }
                Some(here) if here.databases.contains_key("BizTalkMgmtDb") => in_restore(server),
                _ => no_database(server),
            },
            Request::JobHistory(job) => {
                let jobs = logshipping::agent_jobs(lab, server).unwrap_or_default();
                let found = jobs.iter().find(|j| j.name.eq_ignore_ascii_case(&job));
                let rows =
                    found.map(|j| j.history.iter().rev().take(10).collect::<Vec<_>>()).unwrap_or_default();
                Output::ok(
                    rows.iter()
                        .map(|r| {
                            format!(
                                "{}|{}|{}|{}|{}|{}\r\n",
                                r.instance_id, r.step_id, r.run_status, r.run_date, r.run_time, r.message
                            )
                        })
                        .collect::<String>(),
                )
            }
            Request::StartJob(job, _)
            | Request::UpdateJob(job, _)
            | Request::StopJob(job)
            | Request::DeleteJob(job)
                if !logshipping::agent_jobs(lab, server)
                    .is_some_and(|jobs| jobs.iter().any(|j| j.name.eq_ignore_ascii_case(&job))) =>
            {
                no_such("@job_name", &job, server)
            }
            Request::StartJob(job, Some(step))
                if !logshipping::job_steps(&canonical_job(lab, server, &job))
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&step)) =>
            {
                no_such("@step_name", &step, server)
            }
            Request::StartJob(job, step) => {
                let account = ctx.account.clone();
                logshipping::run_job_from(
                    ctx.lab,
                    server,
                    &job,
                    step.as_deref(),
                    Invoker::User(&account),
                    ctx.now,
                );
                Output::ok(format!("Job '{job}' started successfully.\r\n"))
            }
            Request::StopJob(job) => Output::stdout(
                1,
                format!(
                    "Msg 22022, Level 16, State 1, Server {server}, Line 1\r\nSQLServerAgent Error: Request to stop job {} (from User {}) refused because the job is not currently running.\r\n",
                    canonical_job(lab, server, &job),
                    ctx.account
                ),
            ),
            Request::UpdateJob(job, enabled) => {
                if let Some((jobs, _)) = logshipping::agent_mut(lab, server)
                    && let Some(j) = jobs.iter_mut().find(|j| j.name.eq_ignore_ascii_case(&job))
                {
                    j.enabled = enabled;
                }
                Output::ok("")
            }
            Request::DeleteJob(job) => {
                if let Some((jobs, _)) = logshipping::agent_mut(lab, server) {
                    jobs.retain(|j| !j.name.eq_ignore_ascii_case(&job));
                }
                Output::ok("")
            }
            Request::Clean(source) => {
                let name = destination.expect("checked");
                if logshipping::clean(lab, &name, &source) {
                    Output::ok("")
                } else {
                    sql_error(
                        50000,
                        server,
                        Some("sp_LogShippingClean"),
                        1,
                        &format!("No log shipping is configured for the source '{source}' on this server."),
                    )
                }
            }
        }
    }
}

/// The job's name as the SQL Server Agent of `server` spells it.
fn canonical_job(lab: &crate::state::Lab, server: &str, job: &str) -> String {
    let jobs = logshipping::agent_jobs(lab, server).unwrap_or_default();
    jobs.iter().find(|j| j.name.eq_ignore_ascii_case(job)).map_or_else(|| job.to_owned(), |j| j.name.clone())
}

/// Error 14262: no job (or step) of that name.
pub(super) fn no_such(parameter: &str, name: &str, server: &str) -> Output {
    sql_error(
        14262,
        server,
        Some("sp_verify_job_identifiers"),
        67,
        &format!("The specified {parameter} ('{name}') does not exist."),
    )
}

/// SQL Server's style 126 of an RFC 3339 time: no zone, no milliseconds when they are 0.
fn style_126(rfc3339: &str) -> String {
    let text = rfc3339.trim_end_matches('Z');
    text.strip_suffix(".000").unwrap_or(text).to_owned()
}

/// An error as sqlcmd prints it, with `-b`'s exit code 1.
fn sql_error(number: u32, server: &str, procedure: Option<&str>, line: u32, message: &str) -> Output {
    let procedure = procedure.map(|p| format!(", Procedure {p}")).unwrap_or_default();
    Output::stdout(
        1,
        format!("Msg {number}, Level 16, State 1, Server {server}{procedure}, Line {line}\r\n{message}\r\n"),
    )
}

/// A log-shipping table or job asked of an instance that does not restore the source's backups.
fn not_a_destination(server: &str, request: &Request) -> Output {
    match request {
        Request::Clean(_) => sql_error(
            2812,
            server,
            None,
            1,
            "Could not find stored procedure 'master.dbo.sp_LogShippingClean'.",
        ),
        _ => sql_error(208, server, None, 1, "Invalid object name 'master.dbo.bts_LogShippingHistory'."),
    }
}

/// Error 927: the database is being restored.
pub(super) fn in_restore(server: &str) -> Output {
    Output::stdout(
        1,
        format!(
            "Msg 927, Level 14, State 2, Server {server}, Line 1\r\nDatabase 'BizTalkMgmtDb' cannot be opened. It is in the middle of a restore.\r\n"
        ),
    )
}

/// Error 911: no such database here.
pub(super) fn no_database(server: &str) -> Output {
    Output::stdout(
        1,
        format!(
            "Msg 911, Level 16, State 1, Server {server}, Line 1\r\nDatabase 'BizTalkMgmtDb' does not exist. Make sure that the name is entered correctly.\r\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_without_credentials};
    use super::*;
    use crate::init::fresh_lab;
    use crate::logshipping::{GET_BACKUP_HISTORY, RESTORE_DATABASES, RESTORE_TO_MARK};
    use crate::state::{Fault, Lab};

    /// The plugin's module, whose command lines the lab must accept word for word.
    const PLUGIN: &str = include_str!("../../../plugins/biztalk-common/src/logshipping.rs");

    fn sql(lab: &mut Lab, server: &str, query: &str) -> Output {
        exec(lab, "DRBTS01", &["sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query])
    }

    fn start(job: &str) -> String {
        format!("{}N'{job}'", START_JOB.0)
    }

    fn text(out: &Output) -> (i32, String) {
        (out.code, out.stdout_text() + &out.stderr_text())
    }

    #[test]
    fn the_queries_are_the_plugins_word_for_word() {
        for query in [
            LAST_RESTORED_SET,
            SHIPPED_LOG_SET,
            SOURCE_LOG_SET,
            JOBS,
            ALL_JOBS,
            DATABASE_STATES,
            FORCE_FULL_BACKUP,
        ] {
            assert!(PLUGIN.contains(&format!("\"{query}\"")), "{query}");
        }
        for (prefix, suffix) in
            [START_JOB, START_JOB_AT, STOP_JOB, UPDATE_JOB, DELETE_JOB, JOB_HISTORY, CLEAN]
        {
            assert!(PLUGIN.contains(prefix) && PLUGIN.contains(suffix), "{prefix}");
        }
        assert!(
            PLUGIN.contains(
                r#"["sqlcmd", "-S", instance, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query]"#
            )
        );
    }

    #[test]
    fn the_destination_reports_its_sets_jobs_and_databases() {
        let mut lab = fresh_lab();
        assert_eq!(
            text(&sql(&mut lab, "DRSQL01", LAST_RESTORED_SET)),
            (0, "4|BTS_2026_11_22_09_45_01_000\r\n".into())
        );
        assert_eq!(
            text(&sql(&mut lab, "drsql01", SHIPPED_LOG_SET)),
            (0, "5|BTS_2026_11_22_10_00_01_000\r\n".into())
        );
        assert_eq!(
            text(&sql(&mut lab, "PRDSQL01", SOURCE_LOG_SET)),
            (0, "5|BTS_2026_11_22_10_00_01_000|2026-11-22T10:00:01\r\n".into())
        );
        assert_eq!(
            text(&sql(&mut lab, "DRSQL01", JOBS)),
            (
                0,
                "BTS Log Shipping - Get Backup History|1|0\r\nBTS Log Shipping - Restore Databases|1|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\n".into()
            )
        );
        assert_eq!(
            text(&sql(&mut lab, "DRSQL01", DATABASE_STATES)),
            (
                0,
                "BizTalkDTADb|RESTORING\r\nBizTalkMgmtDb|RESTORING\r\nBizTalkMsgBoxDb|RESTORING\r\nBizTalkRuleEngineDb|RESTORING\r\nSSODB|RESTORING\r\n".into()
            )
        );
        assert!(
            sql(&mut lab, "PRDSQL01", DATABASE_STATES).stdout_text().contains("BizTalkMgmtDb|ONLINE\r\n")
        );
        let out = sql(&mut lab, "DRSQL01", SOURCE_LOG_SET);
        assert_eq!(text(&out).0, 1);
        assert!(out.stdout_text().starts_with("Msg 927, Level 14"), "a restoring database cannot be opened");
        assert!(sql(&mut lab, "PRDSQL01", LAST_RESTORED_SET).stdout_text().contains("Msg 208"));
    }

    #[test]
    fn jobs_start_enable_and_keep_their_history() {
        let mut lab = fresh_lab();
        let update = format!("{}N'{GET_BACKUP_HISTORY}'{}0", UPDATE_JOB.0, UPDATE_JOB.1);
        assert_eq!(text(&sql(&mut lab, "DRSQL01", &update)), (0, String::new()));
        assert!(
            sql(&mut lab, "DRSQL01", JOBS)
                .stdout_text()
                .starts_with("BTS Log Shipping - Get Backup History|0|0\r\n")
        );
        let out = sql(&mut lab, "DRSQL01", &start(RESTORE_TO_MARK));
        assert_eq!(
            text(&out),
            (0, "Job 'BTS Log Shipping - Restore To Mark' started successfully.\r\n".into())
        );
        let history = format!("{}N'{RESTORE_TO_MARK}'{}", JOB_HISTORY.0, JOB_HISTORY.1);
        assert_eq!(
            text(&sql(&mut lab, "DRSQL01", &history)),
            (
                0,
                "2|0|1|20261122|101501|The job succeeded.  The Job was invoked by User CONTOSO\\drover.  The last step to run was step 1 (Restore To Mark).\r\n1|1|1|20261122|101501|Executed as user: CONTOSO\\svc-sqlagent. The step succeeded.\r\n".into()
            )
        );
        assert!(sql(&mut lab, "DRSQL01", DATABASE_STATES).stdout_text().contains("SSODB|ONLINE\r\n"));
        let out = sql(&mut lab, "DRSQL01", &start("BTS Log Shipping Restore Database"));
        assert_eq!(
            text(&out),
            (
                1,
                "Msg 14262, Level 16, State 1, Server DRSQL01, Procedure sp_verify_job_identifiers, Line 67\r\nThe specified @job_name ('BTS Log Shipping Restore Database') does not exist.\r\n".into()
            )
        );
        let bad = format!("{}N'{RESTORE_DATABASES}'{}2", UPDATE_JOB.0, UPDATE_JOB.1);
        assert_eq!(sql(&mut lab, "DRSQL01", &bad).code, 9009, "only 0 or 1");
    }

    #[test]
    fn the_sources_jobs_are_stopped_and_disabled_and_its_last_mark_taken() {
        let mut lab = fresh_lab();
        let jobs = sql(&mut lab, "PRDSQL01", ALL_JOBS).stdout_text();
        assert_eq!(jobs.lines().count(), 12);
        assert!(jobs.starts_with(
            "Backup BizTalk Server (BizTalkMgmtDb)|1|0\r\nCleanupBTFExpiredEntriesJob_BizTalkMgmtDb|1|0\r\n"
        ));
        assert_eq!(sql(&mut lab, "PRDSQL01", JOBS).stdout_text(), "", "no log-shipping job at the source");
        let backup = "Backup BizTalk Server (BizTalkMgmtDb)";
        let stop = format!("{}N'{backup}'", STOP_JOB.0);
        assert_eq!(
            text(&sql(&mut lab, "PRDSQL01", &stop)),
            (
                1,
                "Msg 22022, Level 16, State 1, Server PRDSQL01, Line 1\r\nSQLServerAgent Error: Request to stop job Backup BizTalk Server (BizTalkMgmtDb) (from User CONTOSO\\drover) refused because the job is not currently running.\r\n".into()
            )
        );
        crate::logshipping::force_full_backup(&mut lab);
        let last_mark = format!("{}N'{backup}'{}N'MarkAndBackupLog'", START_JOB_AT.0, START_JOB_AT.1);
        assert_eq!(sql(&mut lab, "PRDSQL01", &last_mark).code, 0);
        assert_eq!(
            text(&sql(&mut lab, "PRDSQL01", SOURCE_LOG_SET)),
            (0, "6|BTS_2026_11_22_10_15_01_000|2026-11-22T10:15:01\r\n".into()),
            "a log set only, from that step"
        );
        assert_eq!(lab.log_shipping.history.len(), 6, "no full set from that step");
        let history = format!("{}N'{backup}'{}", JOB_HISTORY.0, JOB_HISTORY.1);
        assert!(
            sql(&mut lab, "PRDSQL01", &history)
                .stdout_text()
                .contains("The last step to run was step 4 (Clear Backup History).")
        );
        let bad_step = format!("{}N'{backup}'{}N'Backup'", START_JOB_AT.0, START_JOB_AT.1);
        assert_eq!(
            text(&sql(&mut lab, "PRDSQL01", &bad_step)),
            (
                1,
                "Msg 14262, Level 16, State 1, Server PRDSQL01, Procedure sp_verify_job_identifiers, Line 67\r\nThe specified @step_name ('Backup') does not exist.\r\n".into()
            )
        );
        let disable = format!("{}N'{backup}'{}0", UPDATE_JOB.0, UPDATE_JOB.1);
        assert_eq!(sql(&mut lab, "PRDSQL01", &disable).code, 0);
        crate::logshipping::backup(&mut lab, super::super::testing::now()).expect("time passes");
        assert_eq!(lab.log_shipping.history.len(), 6, "the disabled job took no backup");
        assert_eq!(
            lab.log_shipping.destinations["DRSQL01"].last_restored,
            Some(5),
            "the destination caught up"
        );
    }

    #[test]
    fn a_gap_fails_the_restore_job_with_the_log_chain_error() {
        let mut lab = fresh_lab();
        crate::fault::set(&mut lab, Fault::LogShippingGap { server: "DRSQL01".into() });
        crate::logshipping::backup(&mut lab, super::super::testing::now()).expect("backup");
        let out = sql(&mut lab, "DRSQL01", &start(RESTORE_DATABASES));
        assert_eq!(out.code, 0, "sp_start_job only starts the job");
        let history = format!("{}N'{RESTORE_DATABASES}'{}", JOB_HISTORY.0, JOB_HISTORY.1);
        let rows = sql(&mut lab, "DRSQL01", &history).stdout_text();
        let newest: Vec<&str> = rows.lines().take(2).collect();
        assert!(
            newest[0].starts_with("6|0|0|20261122|101501|The job failed.  The Job was invoked by User"),
            "{rows}"
        );
        assert!(
            newest[1].contains("which is too recent to apply to the database")
                && newest[1].contains("(Error 4305)")
        );
    }

    #[test]
    fn clean_force_full_and_the_disaster() {
        let mut lab = fresh_lab();
        let clean = |source: &str| format!("{}N'{source}'", CLEAN.0);
        assert_eq!(sql(&mut lab, "DRSQL01", &clean("NOSUCH")).code, 1);
        assert_eq!(text(&sql(&mut lab, "DRSQL01", &clean("PRDSQL01"))), (0, String::new()));
        assert_eq!(text(&sql(&mut lab, "DRSQL01", DATABASE_STATES)), (0, String::new()));
        assert_eq!(text(&sql(&mut lab, "DRSQL01", LAST_RESTORED_SET)), (0, String::new()));
        assert_eq!(text(&sql(&mut lab, "PRDSQL01", FORCE_FULL_BACKUP)), (0, String::new()));
        assert!(lab.log_shipping.force_full);
        crate::logshipping::disaster(&mut lab, super::super::testing::now()).expect("disaster");
        let out = sql(&mut lab, "PRDSQL01", SOURCE_LOG_SET);
        assert_eq!(
            text(&out),
            (1, "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n".into())
        );
        let out = exec_without_credentials(
            &mut lab,
            "DRBTS01",
            &["sqlcmd", "-S", "DRSQL01", "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", JOBS],
            b"",
        );
        assert_eq!(out.code, 1, "the second hop");
    }
}
