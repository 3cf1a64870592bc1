//! BizTalk log shipping on SQL Server (`lab/PROTOCOL.md`, "DR SQL and log shipping";
//! docs/biztalk.md, "Failover activation"): the exact `sqlcmd` command lines the failover plugin
//! sends to the production SQL Server (the source) and to each DR SQL instance (a destination),
//! and parsers of their answers.
//!
//! Every command is `sqlcmd -S <instance> -E -b -h -1 -W -s | -Q <query>`: Windows
//! authentication, `-b` so that a SQL error (severity above 10) exits 1, no column headers, no
//! trailing spaces, columns separated by `|`. Every query starts with `SET NOCOUNT ON` so that
//! no `(n rows affected)` line follows the rows. A value never holds `|` except a job step's
//! message, which is always the last column and is read whole.
//!
//! Pure functions only: the plugin runs the command lines and hands the output here.

use std::fmt;

/// The job that copies the source's backup history to the destination (Microsoft Learn, "How to
/// Restore Your Databases", step 2; "How to Configure the Destination System for Log Shipping"
/// spells it `BTS Log Shipping Get Backup History`: discover the names with [`JOBS`]).
pub const GET_BACKUP_HISTORY: &str = "BTS Log Shipping - Get Backup History";

/// The job that restores the shipped backups, all but the newest log set.
pub const RESTORE_DATABASES: &str = "BTS Log Shipping - Restore Databases";

/// The job that restores the newest log set to its mark, recovers the databases and recreates
/// the source's SQL Server Agent jobs.
pub const RESTORE_TO_MARK: &str = "BTS Log Shipping - Restore To Mark";

/// The source's job that takes the backups (and, on a recovered destination, the restored copy
/// of it that must be pointed at a new backup location and enabled).
pub const BACKUP_JOB: &str = "Backup BizTalk Server (BizTalkMgmtDb)";

/// The Backup BizTalk Server job's step that marks and backs up the logs: started on its own, it
/// takes one more log set whose mark holds everything before it.
pub const MARK_AND_BACKUP_LOG: &str = "MarkAndBackupLog";

/// The column separator (`-s`).
pub const SEPARATOR: char = '|';

/// The destination's last restored backup set: the set `bts_LogShippingLastRestoreSet` names,
/// with its mark from the imported history. One row `<BackupSetId>|<MarkName>`, or nothing
/// before any set was restored. Read with [`parse_backup_set`].
pub const LAST_RESTORED_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 h.BackupSetId, h.MarkName FROM master.dbo.bts_LogShippingHistory h JOIN master.dbo.bts_LogShippingLastRestoreSet l ON l.BackupSetId = h.BackupSetId ORDER BY h.BackupSetId DESC";

/// The newest complete log backup set the destination has imported from the source: the set
/// Restore To Mark recovers to. One row `<BackupSetId>|<MarkName>`, or nothing. Read with
/// [`parse_backup_set`].
pub const SHIPPED_LOG_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 BackupSetId, MarkName FROM master.dbo.bts_LogShippingHistory WHERE BackupType = 'lg' AND SetComplete = 1 ORDER BY BackupSetId DESC";

/// The source's newest complete log backup set (sent to the production SQL Server). One row
/// `<BackupSetId>|<MarkName>|<BackupDateTime, ISO 8601>`, or nothing. Read with
/// [`parse_source_set`].
pub const SOURCE_LOG_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 BackupSetId, MarkName, CONVERT(varchar(23), BackupDateTime, 126) FROM BizTalkMgmtDb.dbo.adm_BackupHistory WHERE BackupType = 'lg' AND SetComplete = 1 ORDER BY BackupSetId DESC";

/// The log-shipping jobs of a destination, however the installation spelled them: one row
/// `<name>|<enabled 0/1>|<running 0/1>` each, by name. Running: started and not stopped in the
/// SQL Server Agent's current session. Read with [`parse_jobs`].
pub const JOBS: &str = "SET NOCOUNT ON; SELECT j.name, j.enabled, CASE WHEN EXISTS (SELECT 1 FROM msdb.dbo.sysjobactivity a WHERE a.job_id = j.job_id AND a.session_id = (SELECT MAX(s.session_id) FROM msdb.dbo.syssessions s) AND a.start_execution_date IS NOT NULL AND a.stop_execution_date IS NULL) THEN 1 ELSE 0 END FROM msdb.dbo.sysjobs j WHERE j.name LIKE 'BTS%Log Shipping%' ORDER BY j.name";

/// Every SQL Server Agent job of an instance (on the source: the BizTalk jobs to stop and
/// disable before a planned failover): one row `<name>|<enabled 0/1>|<running 0/1>` each, by
/// name. Read with [`parse_jobs`].
pub const ALL_JOBS: &str = "SET NOCOUNT ON; SELECT j.name, j.enabled, CASE WHEN EXISTS (SELECT 1 FROM msdb.dbo.sysjobactivity a WHERE a.job_id = j.job_id AND a.session_id = (SELECT MAX(s.session_id) FROM msdb.dbo.syssessions s) AND a.start_execution_date IS NOT NULL AND a.stop_execution_date IS NULL) THEN 1 ELSE 0 END FROM msdb.dbo.sysjobs j ORDER BY j.name";

/// The user databases of an instance and their states: one row `<name>|<state_desc>` each, by
/// name. Read with [`parse_database_states`].
pub const DATABASE_STATES: &str =
    "SET NOCOUNT ON; SELECT name, state_desc FROM sys.databases WHERE database_id > 4 ORDER BY name";

/// Asks the source's Backup BizTalk Server job for a full backup set on its next run.
pub const FORCE_FULL_BACKUP: &str = "EXEC BizTalkMgmtDb.dbo.sp_ForceFullBackup";

/// The `sqlcmd` argv (program first) that runs `query` on `instance`.
pub fn sqlcmd(instance: &str, query: &str) -> Vec<String> {
    ["sqlcmd", "-S", instance, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query]
        .map(str::to_owned)
        .to_vec()
}

/// `job` as a Transact-SQL Unicode literal.
pub(crate) fn literal(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

/// Starts `job` at its first step; the answer is read with [`parse_start_job`].
pub fn start_job(job: &str) -> String {
    format!("EXEC msdb.dbo.sp_start_job @job_name = {}", literal(job))
}

/// Starts `job` at its step `step`; answered as [`start_job`].
pub fn start_job_at(job: &str, step: &str) -> String {
    format!("EXEC msdb.dbo.sp_start_job @job_name = {}, @step_name = {}", literal(job), literal(step))
}

/// Stops `job`; SQL Server Agent refuses (error 22022) when it is not running, which
/// [`not_running`] recognises.
pub fn stop_job(job: &str) -> String {
    format!("EXEC msdb.dbo.sp_stop_job @job_name = {}", literal(job))
}

/// Whether sqlcmd's answer to [`stop_job`] is SQL Server Agent's refusal to stop a job that is
/// not running (nothing to stop).
pub fn not_running(stdout: &str) -> bool {
    sql_error(stdout).is_some_and(|e| {
        e.number == 22022 && e.message.ends_with("because the job is not currently running.")
    })
}

/// Enables or disables `job`; prints nothing.
pub fn update_job(job: &str, enabled: bool) -> String {
    format!("EXEC msdb.dbo.sp_update_job @job_name = {}, @enabled = {}", literal(job), u8::from(enabled))
}

/// Deletes `job` and its history (`sp_delete_job`); prints nothing.
pub fn delete_job(job: &str) -> String {
    format!("EXEC msdb.dbo.sp_delete_job @job_name = {}", literal(job))
}

/// The newest ten history rows of `job`, newest first: `<instance_id>|<step_id>|<run_status>|
/// <run_date>|<run_time>|<message>`. Read with [`parse_last_run`].
pub fn job_history(job: &str) -> String {
    format!(
        "SET NOCOUNT ON; SELECT TOP 10 h.instance_id, h.step_id, h.run_status, h.run_date, h.run_time, h.message FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id WHERE j.name = {} ORDER BY h.instance_id DESC",
        literal(job)
    )
}

/// Cleans the destination for the source `source_id`: drops the restored databases and forgets
/// the last restored set (Microsoft Learn, "Cleaning the Destination Environment"); prints
/// nothing.
pub fn log_shipping_clean(source_id: &str) -> String {
    format!("EXEC master.dbo.sp_LogShippingClean {}", literal(source_id))
}

/// An answer that is not in the form this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What was expected.
    pub expected: &'static str,
    /// The line that did not fit.
    pub line: String,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, read `{}`", self.expected, self.line)
    }
}

impl std::error::Error for Unreadable {}

/// The rows of an answer, split into at most `columns` fields (the last keeps any `|`).
pub(crate) fn rows(stdout: &str, columns: usize) -> impl Iterator<Item = Vec<&str>> {
    stdout
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .map(move |line| line.splitn(columns, SEPARATOR).collect())
}

/// A backup set: its id and its mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSet {
    /// `BackupSetId`.
    pub id: u64,
    /// `MarkName`: `<LogMarkName>_<yyyy>_<MM>_<dd>_<HH>_<mm>_<ss>_<fff>`, UTC.
    pub mark: String,
}

impl BackupSet {
    /// When the mark was placed, from its name ([`mark_time`]).
    pub fn mark_time(&self) -> Option<MarkTime> {
        mark_time(&self.mark)
    }
}

/// Reads [`LAST_RESTORED_SET`] or [`SHIPPED_LOG_SET`]: `None` when no row.
pub fn parse_backup_set(stdout: &str) -> Result<Option<BackupSet>, Unreadable> {
    let Some(row) = rows(stdout, 2).next() else { return Ok(None) };
    let unreadable = || Unreadable { expected: "<BackupSetId>|<MarkName>", line: row.join("|") };
    match row.as_slice() {
        [id, mark] if !mark.is_empty() => {
            Ok(Some(BackupSet { id: id.parse().map_err(|_| unreadable())?, mark: (*mark).to_owned() }))
        }
        _ => Err(unreadable()),
    }
}

/// The source's newest complete log set, with when it was backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    /// The set.
    pub set: BackupSet,
    /// `BackupDateTime` as SQL Server's style 126 writes it (`2026-11-22T10:00:01.000`; the
    /// Backup BizTalk Server job keeps UTC unless told to use local time).
    pub backed_up: String,
}

/// Reads [`SOURCE_LOG_SET`]: `None` when no row.
pub fn parse_source_set(stdout: &str) -> Result<Option<SourceSet>, Unreadable> {
    let Some(row) = rows(stdout, 3).next() else { return Ok(None) };
    let unreadable =
        || Unreadable { expected: "<BackupSetId>|<MarkName>|<BackupDateTime>", line: row.join("|") };
    match row.as_slice() {
        [id, mark, at] if !mark.is_empty() && !at.is_empty() => Ok(Some(SourceSet {
            set: BackupSet { id: id.parse().map_err(|_| unreadable())?, mark: (*mark).to_owned() },
            backed_up: (*at).to_owned(),
        })),
        _ => Err(unreadable()),
    }
}

/// A mark's time, UTC, as its name writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MarkTime {
    /// Year.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day, 1-31.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Millisecond.
    pub millisecond: u16,
}

impl MarkTime {
    /// RFC 3339 (`2026-11-22T10:00:01.000Z`).
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// The time in a mark name `<LogMarkName>_<yyyy>_<MM>_<dd>_<HH>_<mm>_<ss>_<fff>` (the last seven
/// `_` fields; the log mark name itself may hold `_`).
pub fn mark_time(mark: &str) -> Option<MarkTime> {
    let fields: Vec<&str> = mark.rsplitn(8, '_').collect();
    let [ms, s, mi, h, d, mo, y, name] = fields.as_slice() else { return None };
    if name.is_empty() {
        return None;
    }
    let n = |text: &str, len: usize| (text.len() == len).then(|| text.parse::<u16>().ok()).flatten();
    let time = MarkTime {
        year: n(y, 4)?,
        month: u8::try_from(n(mo, 2)?).ok().filter(|m| (1..=12).contains(m))?,
        day: u8::try_from(n(d, 2)?).ok().filter(|d| (1..=31).contains(d))?,
        hour: u8::try_from(n(h, 2)?).ok().filter(|h| *h < 24)?,
        minute: u8::try_from(n(mi, 2)?).ok().filter(|m| *m < 60)?,
        second: u8::try_from(n(s, 2)?).ok().filter(|s| *s < 60)?,
        millisecond: n(ms, 3)?,
    };
    Some(time)
}

/// A log-shipping job of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// Its name as installed.
    pub name: String,
    /// `sysjobs.enabled`.
    pub enabled: bool,
    /// Started and not stopped.
    pub running: bool,
}

/// Reads [`JOBS`].
pub fn parse_jobs(stdout: &str) -> Result<Vec<JobState>, Unreadable> {
    rows(stdout, 3)
        .map(|row| {
            let flag = |text: &str| match text {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            };
            match row.as_slice() {
                [name, enabled, running] if !name.is_empty() => match (flag(enabled), flag(running)) {
                    (Some(enabled), Some(running)) => {
                        Ok(JobState { name: (*name).to_owned(), enabled, running })
                    }
                    _ => Err(Unreadable { expected: "<name>|<0/1>|<0/1>", line: row.join("|") }),
                },
                _ => Err(Unreadable { expected: "<name>|<0/1>|<0/1>", line: row.join("|") }),
            }
        })
        .collect()
}

/// The installed job whose name, ignoring case, spaces and hyphens, is `wanted`'s: the
/// documentation spells the jobs with and without ` - ` (and once `BTS Server Log Shipping`).
pub fn find_job<'a>(jobs: &'a [JobState], wanted: &str) -> Option<&'a JobState> {
    let key = |name: &str| {
        name.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .replace("btsserverlogshipping", "btslogshipping")
            .trim_end_matches('s')
            .to_owned()
    };
    jobs.iter().find(|job| key(&job.name) == key(wanted))
}

/// `sysjobhistory.run_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// 0.
    Failed,
    /// 1.
    Succeeded,
    /// 2.
    Retry,
    /// 3.
    Canceled,
    /// 4.
    InProgress,
}

impl RunStatus {
    fn from_code(code: &str) -> Option<RunStatus> {
        Some(match code {
            "0" => RunStatus::Failed,
            "1" => RunStatus::Succeeded,
            "2" => RunStatus::Retry,
            "3" => RunStatus::Canceled,
            "4" => RunStatus::InProgress,
            _ => return None,
        })
    }
}

/// One `sysjobhistory` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// `instance_id`.
    pub instance_id: u64,
    /// `step_id`: 0 is the job's outcome.
    pub step_id: u32,
    /// `run_status`.
    pub status: RunStatus,
    /// `run_date`, `yyyyMMdd`.
    pub run_date: u32,
    /// `run_time`, `HHmmss` without leading zeros.
    pub run_time: u32,
    /// `message`.
    pub message: String,
}

/// A job's newest run: its outcome row (step 0) and its step rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// The outcome.
    pub outcome: HistoryRow,
    /// The steps that ran, newest first.
    pub steps: Vec<HistoryRow>,
}

impl LastRun {
    /// Whether the job succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome.status == RunStatus::Succeeded
    }

    /// The SQL Server error numbers the failed steps report (`(Error 4305)`), in order.
    pub fn errors(&self) -> Vec<u32> {
        self.steps
            .iter()
            .filter(|step| step.status == RunStatus::Failed)
            .flat_map(|step| error_numbers(&step.message))
            .collect()
    }
}

/// The numbers of `(Error <n>)` in a job step's message.
pub fn error_numbers(message: &str) -> Vec<u32> {
    message
        .split("(Error ")
        .skip(1)
        .filter_map(|rest| rest.split(')').next().and_then(|n| n.trim().parse().ok()))
        .collect()
}

/// Reads [`job_history`]: the newest run, `None` when the job never ran (or the newest run
/// has no outcome row yet: it is running).
pub fn parse_last_run(stdout: &str) -> Result<Option<LastRun>, Unreadable> {
    let mut history = Vec::new();
    for row in rows(stdout, 6) {
        let unreadable = || Unreadable {
            expected: "<instance_id>|<step_id>|<run_status>|<run_date>|<run_time>|<message>",
            line: row.join("|"),
        };
        let [instance_id, step_id, status, date, time, message] = row.as_slice() else {
            return Err(unreadable());
        };
        history.push(HistoryRow {
            instance_id: instance_id.parse().map_err(|_| unreadable())?,
            step_id: step_id.parse().map_err(|_| unreadable())?,
            status: RunStatus::from_code(status).ok_or_else(unreadable)?,
            run_date: date.parse().map_err(|_| unreadable())?,
            run_time: time.parse().map_err(|_| unreadable())?,
            message: (*message).to_owned(),
        });
    }
    let mut rows = history.into_iter();
    let Some(outcome) = rows.next().filter(|row| row.step_id == 0) else { return Ok(None) };
    let steps = rows.take_while(|row| row.step_id != 0).collect();
    Ok(Some(LastRun { outcome, steps }))
}

/// A SQL Server error as sqlcmd prints it: `Msg <n>, Level <l>, State <s>, Server <server>[,
/// Procedure <p>], Line <n>` and the message on the next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// The error number.
    pub number: u32,
    /// The severity level.
    pub level: u32,
    /// The message.
    pub message: String,
}

/// The first SQL Server error in sqlcmd's output, if any.
pub fn sql_error(output: &str) -> Option<SqlError> {
    let mut lines = output.lines().map(|line| line.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Msg ") else { continue };
        let mut fields = rest.split(", ");
        let number = fields.next().and_then(|n| n.parse().ok());
        let level = fields.next().and_then(|l| l.strip_prefix("Level ")).and_then(|l| l.parse().ok());
        if let (Some(number), Some(level)) = (number, level) {
            let message = lines.next().unwrap_or_default().to_owned();
            return Some(SqlError { number, level, message });
        }
    }
    None
}

/// What `sp_start_job` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAnswer {
    /// `Job '<name>' started successfully.`
    Started,
    /// SQL Server refused (14262: no such job; 22022: SQL Server Agent refused, e.g. the job is
    /// already running).
    Refused(SqlError),
}

/// Reads the answer to [`start_job`]`(job)` (stdout, with `-b` exit 1 on a refusal); `None` for
/// anything else.
pub fn parse_start_job(job: &str, stdout: &str) -> Option<StartAnswer> {
    if let Some(error) = sql_error(stdout) {
        return Some(StartAnswer::Refused(error));
    }
    let expected = format!("Job '{job}' started successfully.");
    stdout.lines().any(|line| line.trim_end_matches('\r') == expected).then_some(StartAnswer::Started)
}

/// A database's `state_desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseState {
    /// `ONLINE`.
    Online,
    /// `RESTORING`: being restored, as every log-shipped database is until recovered.
    Restoring,
    /// Another state (`RECOVERING`, `RECOVERY_PENDING`, `SUSPECT`, `EMERGENCY`, `OFFLINE`…).
    Other(String),
}

/// Reads [`DATABASE_STATES`]: name and state, by name.
pub fn parse_database_states(stdout: &str) -> Result<Vec<(String, DatabaseState)>, Unreadable> {
    rows(stdout, 2)
        .map(|row| match row.as_slice() {
            [name, state] if !name.is_empty() && !state.is_empty() => {
                let state = match *state {
                    "ONLINE" => DatabaseState::Online,
                    "RESTORING" => DatabaseState::Restoring,
                    other => DatabaseState::Other(other.to_owned()),
                };
                Ok(((*name).to_owned(), state))
            }
            _ => Err(Unreadable { expected: "<name>|<state_desc>", line: row.join("|") }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_names_as_transact_sql_literals() {
        let argv = sqlcmd("DRSQL01", &start_job(RESTORE_DATABASES));
        assert_eq!(
            argv,
            [
                "sqlcmd",
                "-S",
                "DRSQL01",
                "-E",
                "-b",
                "-h",
                "-1",
                "-W",
                "-s",
                "|",
                "-Q",
                "EXEC msdb.dbo.sp_start_job @job_name = N'BTS Log Shipping - Restore Databases'"
            ]
        );
        assert_eq!(
            update_job(GET_BACKUP_HISTORY, false),
            "EXEC msdb.dbo.sp_update_job @job_name = N'BTS Log Shipping - Get Backup History', @enabled = 0"
        );
        assert_eq!(log_shipping_clean("O'Hara"), "EXEC master.dbo.sp_LogShippingClean N'O''Hara'");
        assert_eq!(
            start_job_at(BACKUP_JOB, MARK_AND_BACKUP_LOG),
            "EXEC msdb.dbo.sp_start_job @job_name = N'Backup BizTalk Server (BizTalkMgmtDb)', @step_name = N'MarkAndBackupLog'"
        );
        assert_eq!(
            stop_job(BACKUP_JOB),
            "EXEC msdb.dbo.sp_stop_job @job_name = N'Backup BizTalk Server (BizTalkMgmtDb)'"
        );
        let refused = "Msg 22022, Level 16, State 1, Server PRDSQL01, Line 1\r\nSQLServerAgent Error: Request to stop job Backup BizTalk Server (BizTalkMgmtDb) (from User CONTOSO\\drover) refused because the job is not currently running.\r\n";
        assert!(not_running(refused));
        assert!(!not_running(
            "Msg 14262, Level 16, State 1, Server PRDSQL01, Line 1\r\nThe specified @job_name ('x') does not exist.\r\n"
        ));
        assert!(
            job_history(RESTORE_TO_MARK).contains("WHERE j.name = N'BTS Log Shipping - Restore To Mark'")
        );
    }

    #[test]
    fn backup_sets_and_their_marks() {
        let set = parse_backup_set("4|BTS_2026_11_22_09_45_01_000\r\n").expect("readable").expect("a set");
        assert_eq!(set, BackupSet { id: 4, mark: "BTS_2026_11_22_09_45_01_000".into() });
        assert_eq!(set.mark_time().expect("a time").rfc3339(), "2026-11-22T09:45:01.000Z");
        assert_eq!(parse_backup_set(""), Ok(None), "nothing restored yet");
        assert!(parse_backup_set("four|BTS").is_err());
        assert!(parse_backup_set("4").is_err());
        let source = parse_source_set("5|My_Mark_2026_11_22_10_00_01_517|2026-11-22T10:00:01.517\r\n")
            .expect("readable")
            .expect("a set");
        assert_eq!(source.backed_up, "2026-11-22T10:00:01.517");
        assert_eq!(source.set.mark_time().map(|t| t.millisecond), Some(517));
        assert!(parse_source_set("5|BTS_2026_11_22_10_00_01_517").is_err());
        assert_eq!(mark_time("2026_11_22_10_00_01_517"), None, "no mark name before the time");
        assert_eq!(mark_time("BTS_2026_13_22_10_00_01_517"), None, "month 13");
    }

    #[test]
    fn jobs_are_found_however_the_documentation_spells_them() {
        let jobs = parse_jobs(
            "BTS Log Shipping - Get Backup History|0|0\r\nBTS Log Shipping Restore Database|1|1\r\nBTS Log Shipping - Restore To Mark|1|0\r\n",
        )
        .expect("readable");
        assert_eq!(jobs.len(), 3);
        let restore = find_job(&jobs, RESTORE_DATABASES).expect("found");
        assert_eq!((restore.enabled, restore.running), (true, true));
        assert!(!find_job(&jobs, GET_BACKUP_HISTORY).expect("found").enabled);
        let server = [JobState {
            name: "BTS Server Log Shipping Restore Databases".into(),
            enabled: true,
            running: false,
        }];
        assert!(find_job(&server, RESTORE_DATABASES).is_some());
        assert!(find_job(&jobs[..1], RESTORE_TO_MARK).is_none());
        assert!(parse_jobs("BTS Log Shipping - Restore To Mark|yes|0").is_err());
    }

    #[test]
    fn the_newest_run_is_the_first_outcome_and_the_steps_before_the_next() {
        let stdout = "\
12|0|0|20261122|101501|The job failed.  The Job was invoked by User CONTOSO\\drover.  The last step to run was step 1 (Restore Databases).\r
11|1|0|20261122|101501|Executed as user: CONTOSO\\svc-sql. The log in this backup set begins at LSN 6000000001, which is too recent to apply to the database. An earlier log backup that includes LSN 5000000001 can be restored. [SQLSTATE 42000] (Error 4305)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013).  The step failed.\r
10|0|1|20261122|100001|The job succeeded.|with a bar\r
9|1|1|20261122|100001|Executed as user: CONTOSO\\svc-sql. The step succeeded.\r
";
        let run = parse_last_run(stdout).expect("readable").expect("a run");
        assert!(!run.succeeded());
        assert_eq!((run.outcome.instance_id, run.outcome.run_time), (12, 101501));
        assert_eq!(run.steps.len(), 1);
        assert_eq!(run.errors(), [4305, 3013]);
        assert_eq!(parse_last_run(""), Ok(None));
        let running = "13|1|1|20261122|101501|Executed as user: CONTOSO\\svc-sql. The step succeeded.\r\n";
        assert_eq!(parse_last_run(running), Ok(None), "no outcome yet");
        assert!(parse_last_run("12|0|7|20261122|101501|x").is_err(), "run_status 7");
        let older = parse_last_run(&stdout.lines().skip(2).collect::<Vec<_>>().join("\n")).expect("ok");
        assert_eq!(older.expect("a run").outcome.message, "The job succeeded.|with a bar");
    }

    #[test]
    fn start_job_answers() {
        assert_eq!(
            parse_start_job(
                RESTORE_TO_MARK,
                "Job 'BTS Log Shipping - Restore To Mark' started successfully.\r\n"
            ),
            Some(StartAnswer::Started)
        );
        let refused = "Msg 14262, Level 16, State 1, Server DRSQL01, Procedure sp_verify_job_identifiers, Line 41\r\nThe specified @job_name ('BTS Log Shipping - Restore To Mark') does not exist.\r\n";
        assert_eq!(
            parse_start_job(RESTORE_TO_MARK, refused),
            Some(StartAnswer::Refused(SqlError {
                number: 14262,
                level: 16,
                message: "The specified @job_name ('BTS Log Shipping - Restore To Mark') does not exist."
                    .into()
            }))
        );
        assert_eq!(parse_start_job(RESTORE_TO_MARK, "Auftrag gestartet.\r\n"), None);
        assert_eq!(sql_error("Msg x, Level 16"), None);
    }

    #[test]
    fn database_states() {
        let states =
            parse_database_states("BizTalkDTADb|RESTORING\r\nBizTalkMgmtDb|ONLINE\r\nSSODB|SUSPECT\r\n")
                .expect("readable");
        assert_eq!(
            states,
            [
                ("BizTalkDTADb".to_owned(), DatabaseState::Restoring),
                ("BizTalkMgmtDb".to_owned(), DatabaseState::Online),
                ("SSODB".to_owned(), DatabaseState::Other("SUSPECT".into())),
            ]
        );
        assert!(parse_database_states("BizTalkDTADb").is_err());
    }
}
