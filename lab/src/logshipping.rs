//! BizTalk log shipping in the lab (issue 18, L1; `lab/PROTOCOL.md`, "DR SQL and log
//! shipping"): the source's backup history (`adm_BackupHistory` of `BizTalkMgmtDb` on
//! `PRDSQL01`), each DR SQL instance's restore state (the log-shipped databases, the last
//! restored set, the imported history) and its three SQL Server Agent jobs with their history,
//! and what moves them: the Backup BizTalk Server job's run (`drover-lab backup`, which is also
//! when the destinations' scheduled jobs run), a job started by hand, `sp_LogShippingClean`,
//! `sp_ForceFullBackup` and the disaster (`drover-lab disaster`).
//!
//! This module owns the model and its rules; `sqlcmd`'s answers are
//! [`crate::programs::sql_logshipping`]'s, the faults' words [`crate::fault`]'s.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::state::{Fault, Lab, Site};

/// The job that copies the source's backup history (Microsoft Learn, "How to Restore Your
/// Databases", step 2, spells the three with ` - `).
pub const GET_BACKUP_HISTORY: &str = "BTS Log Shipping - Get Backup History";
/// The job that restores every shipped set but the newest log set.
pub const RESTORE_DATABASES: &str = "BTS Log Shipping - Restore Databases";
/// The job that restores the newest log set to its mark and recovers the databases.
pub const RESTORE_TO_MARK: &str = "BTS Log Shipping - Restore To Mark";
/// The log-shipped databases of the lab's group.
pub const SHIPPED_DATABASES: [&str; 5] =
    ["BizTalkDTADb", "BizTalkMgmtDb", "BizTalkMsgBoxDb", "BizTalkRuleEngineDb", "SSODB"];
/// The source's SQL Server Agent jobs that Restore To Mark recreates on the destination
/// (Microsoft Learn, "How to Back Up and Restore SQL Agent Jobs", the BizTalk Server jobs).
pub const SOURCE_JOBS: [&str; 12] = [
    "Backup BizTalk Server (BizTalkMgmtDb)",
    "CleanupBTFExpiredEntriesJob_BizTalkMgmtDb",
    "DTA Purge and Archive (BizTalkDTADb)",
    "MessageBox_DeadProcesses_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_Message_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb",
    "MessageBox_Parts_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_UpdateStats_BizTalkMsgBoxDb",
    "Operations_OperateOnInstances_OnMaster_BizTalkMsgBoxDb",
    "PurgeSubscriptionsJob_BizTalkMsgBoxDb",
    "Rules_Database_Cleanup_BizTalkRuleEngineDb",
    "TrackedMessages_Copy_BizTalkMsgBoxDb",
];
/// The source's job that takes the backups.
pub const BACKUP_JOB: &str = "Backup BizTalk Server (BizTalkMgmtDb)";
/// Its steps (Microsoft Learn, "How to Configure the Backup BizTalk Server Job").
pub const BACKUP_STEPS: [&str; 4] =
    ["Set Compression Option", "BackupFull", "MarkAndBackupLog", "Clear Backup History"];
/// The account the destinations' SQL Server Agent runs its steps as.
pub const AGENT_ACCOUNT: &str = r"CONTOSO\svc-sqlagent";
/// The Backup BizTalk Server job's log mark name (its default, `BTS`).
pub const LOG_MARK_NAME: &str = "BTS";
/// Where the source's backups go (the Backup BizTalk Server job's destination path).
pub const BACKUP_PATH: &str = r"\\PRDSQL01\BizTalkBackup";

/// Log shipping from the source to the DR SQL instances.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogShipping {
    /// The source SQL Server (its name is also its source id for `sp_LogShippingClean`).
    pub source: String,
    /// `adm_BackupHistory`, one entry per backup set, oldest first.
    pub history: Vec<BackupSet>,
    /// `adm_ForceFullBackup`: the next run of the Backup BizTalk Server job makes a full set.
    #[serde(default)]
    pub force_full: bool,
    /// The source's SQL Server Agent: the BizTalk jobs.
    #[serde(default)]
    pub source_agent: Agent,
    /// The DR SQL instances restoring the source's backups, by server name.
    pub destinations: BTreeMap<String, Destination>,
    /// The disaster, once declared by `drover-lab disaster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster: Option<Disaster>,
}

/// A backup set of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupSet {
    /// `BackupSetId`.
    pub id: u64,
    /// Full (`db`) or log (`lg`).
    pub kind: BackupKind,
    /// `MarkName`: `BTS_<yyyy>_<MM>_<dd>_<HH>_<mm>_<ss>_<fff>`, UTC.
    pub mark: String,
    /// `BackupDateTime`, RFC 3339 UTC.
    pub backed_up: String,
    /// Where the set's files went: kept for a recovered destination's own sets (F14), not for
    /// the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `BackupType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// `db`: a full backup set.
    Full,
    /// `lg`: a marked log backup set.
    Log,
}

/// A DR SQL instance restoring the source's backups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Destination {
    /// The newest backup set id Get Backup History has imported (`bts_LogShippingHistory`).
    pub imported: u64,
    /// `bts_LogShippingLastRestoreSet`: the last set restored to every database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restored: Option<u64>,
    /// The databases restored here and their state; none after `sp_LogShippingClean`.
    pub databases: BTreeMap<String, DbState>,
    /// The mark Restore To Mark recovered the databases to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_mark: Option<String>,
    /// A log set whose backup file is missing here (the `logshipping-gap` fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_set: Option<u64>,
    /// SQL Server Agent jobs: the three log-shipping jobs, and the source's once recreated.
    pub jobs: Vec<AgentJob>,
    /// The next `sysjobhistory.instance_id`.
    #[serde(default)]
    pub next_history_id: u64,
    /// The BizTalk group's record as Restore To Mark recovered it here: a copy of production's
    /// at the mark, which the DR site's scripts and WMI calls then change (through
    /// [`Lab::group_on`]); dropped with the databases by `sp_LogShippingClean`. Production's own
    /// record stays [`Lab::group`], so a drill leaves it untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Box<crate::state::Group>>,
    /// Once recovered, the sets its own Backup BizTalk Server job took (its `adm_BackupHistory`
    /// after the recovered mark; [`crate::backup_job::run_recovered`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupSet>,
    /// Once recovered, `sp_ForceFullBackup` ran here: its job's next run makes a full set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_full: bool,
}

/// A SQL Server Agent and its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Agent {
    /// The jobs.
    pub jobs: Vec<AgentJob>,
    /// The next `sysjobhistory.instance_id`.
    #[serde(default)]
    pub next_history_id: u64,
}

/// A database's `state_desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DbState {
    /// Restored `WITH NORECOVERY`: waiting for more logs.
    Restoring,
    /// Recovered.
    Online,
}

impl DbState {
    /// `sys.databases.state_desc`.
    pub fn state_desc(self) -> &'static str {
        match self {
            DbState::Restoring => "RESTORING",
            DbState::Online => "ONLINE",
        }
    }
}

/// A SQL Server Agent job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentJob {
    /// `sysjobs.name`.
    pub name: String,
    /// `sysjobs.enabled`.
    pub enabled: bool,
    /// `sysjobhistory`, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryRow>,
    /// `sysjobsteps`: kept for the Backup BizTalk Server job only (the others' one step is
    /// named after the job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<crate::backup_job::JobStep>,
}

/// A `sysjobhistory` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HistoryRow {
    /// `instance_id`.
    pub instance_id: u64,
    /// `step_id`: 0 for the job's outcome.
    pub step_id: u32,
    /// `run_status`: 0 failed, 1 succeeded.
    pub run_status: u8,
    /// `run_date`, `yyyyMMdd`.
    pub run_date: u32,
    /// `run_time`, `HHmmss`.
    pub run_time: u32,
    /// `message`.
    pub message: String,
}

/// The disaster: production stopped answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Disaster {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The servers that went down (every production server).
    pub servers: Vec<String>,
}

/// Who started a job run (its outcome message says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoker<'a> {
    /// `sp_start_job` by this account.
    User(&'a str),
    /// The job's schedule.
    Schedule,
}

/// Why `drover-lab backup` or `disaster` cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogShippingError {
    /// The source does not answer.
    #[error("the source SQL Server {0} does not answer: no backup is taken")]
    SourceDown(String),
    /// Declared twice.
    #[error("the disaster was already declared at {0}")]
    AlreadyDeclared(String),
}

/// The first full set's time in the fresh lab; a log set every 15 minutes follows.
const FRESH_FULL: &str = "2026-11-22T09:00:01Z";
/// Log sets in the fresh lab after the full one.
const FRESH_LOGS: u64 = 4;

/// The fresh lab's log shipping: `PRDSQL01` has a full set (1) and four log sets (2-5), one
/// every 15 minutes; `DRSQL01` imported all five, restored 1-4 (the newest log set is never
/// restored automatically) and its databases are RESTORING; its three jobs are enabled.
pub fn fresh(source: &str, destinations: &[&str]) -> LogShipping {
    let start = humantime::parse_rfc3339(FRESH_FULL).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut history = vec![backup_set(1, BackupKind::Full, start)];
    for n in 1..=FRESH_LOGS {
        history.push(backup_set(n + 1, BackupKind::Log, start + Duration::from_secs(15 * 60 * n)));
    }
    let newest = history.last().map_or(0, |s| s.id);
    let destination = Destination {
        imported: newest,
        last_restored: Some(newest - 1),
        databases: SHIPPED_DATABASES.iter().map(|db| ((*db).to_owned(), DbState::Restoring)).collect(),
        recovered_mark: None,
        missing_set: None,
        jobs: [GET_BACKUP_HISTORY, RESTORE_DATABASES, RESTORE_TO_MARK]
            .map(|name| AgentJob { name: name.into(), enabled: true, history: Vec::new(), steps: Vec::new() })
            .to_vec(),
        next_history_id: 1,
        group: None,
        backups: Vec::new(),
        force_full: false,
    };
    let source_agent = Agent {
        jobs: SOURCE_JOBS
            .map(|name| AgentJob {
                name: name.into(),
                enabled: true,
                history: Vec::new(),
                steps: if name == BACKUP_JOB {
                    crate::backup_job::default_steps(BACKUP_PATH)
                } else {
                    Vec::new()
                },
            })
            .to_vec(),
        next_history_id: 1,
    };
    LogShipping {
        source: source.to_owned(),
        history,
        force_full: false,
        source_agent,
        destinations: destinations.iter().map(|d| ((*d).to_owned(), destination.clone())).collect(),
        disaster: None,
    }
}

/// A backup set taken at `at`.
fn backup_set(id: u64, kind: BackupKind, at: SystemTime) -> BackupSet {
    BackupSet {
        id,
        kind,
        mark: mark_name(at),
        backed_up: humantime::format_rfc3339_millis(at).to_string(),
        location: None,
    }
}

/// `BTS_<yyyy>_<MM>_<dd>_<HH>_<mm>_<ss>_<fff>` for `at`.
pub fn mark_name(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_millis(at).to_string(); // 2026-11-22T09:00:01.000Z
    let digits: String = text.chars().map(|c| if c.is_ascii_digit() { c } else { '_' }).collect();
    format!("{LOG_MARK_NAME}_{}", digits.trim_end_matches('_'))
}

/// `yyyyMMdd` and `HHmmss` of `at`, as `sysjobhistory` keeps them.
fn run_date_time(at: SystemTime) -> (u32, u32) {
    let text = humantime::format_rfc3339_seconds(at).to_string(); // 2026-11-22T10:15:01Z
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(8.min(digits.len()));
    (date.parse().unwrap_or(0), time.parse().unwrap_or(0))
}

impl LogShipping {
    /// The newest complete log set the destination imported.
    fn newest_log(&self, imported: u64) -> Option<&BackupSet> {
        self.history.iter().rev().find(|s| s.kind == BackupKind::Log && s.id <= imported)
    }

    /// A set by id.
    pub fn set(&self, id: u64) -> Option<&BackupSet> {
        self.history.iter().find(|s| s.id == id)
    }

    /// The source's newest complete log set.
    pub fn source_log_set(&self) -> Option<&BackupSet> {
        self.newest_log(u64::MAX)
    }
}

impl Lab {
    /// The DR SQL instance `server` as a log-shipping destination (canonical name).
    pub fn destination_name(&self, server: &str) -> Option<String> {
        self.log_shipping.destinations.keys().find(|k| k.eq_ignore_ascii_case(server)).cloned()
    }

    /// Whether `server` went down with production (`drover-lab disaster`).
    pub fn server_down(&self, server: &str) -> bool {
        self.log_shipping
            .disaster
            .as_ref()
            .is_some_and(|d| d.servers.iter().any(|s| s.eq_ignore_ascii_case(server)))
    }

    /// A log-shipped database's state on a DR SQL instance, or `None` when it is not there.
    pub fn database_state(&self, server: &str, db: &str) -> Option<DbState> {
        let name = self.destination_name(server)?;
        let destination = self.log_shipping.destinations.get(&name)?;
        destination.databases.iter().find(|(d, _)| d.eq_ignore_ascii_case(db)).map(|(_, s)| *s)
    }

    /// How many sets the `logshipping-lag` fault holds `server`'s scheduled restores back.
    fn lag(&self, server: &str) -> Option<u32> {
        self.faults.iter().find_map(|f| match f {
            Fault::LogShippingLag { server: s, sets } if s.eq_ignore_ascii_case(server) => Some(*sets),
            _ => None,
        })
    }

    /// Whether the `restore-to-mark-fails` fault fails `server`'s Restore To Mark.
    fn restore_to_mark_fails(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::RestoreToMarkFails { server: s } if s.eq_ignore_ascii_case(server)))
    }
}

/// `drover-lab backup`: every recovered destination's enabled Backup BizTalk Server job runs
/// ([`crate::backup_job::run_recovered`]); the source's runs once at `now` if it is
/// enabled (a full set first when one was forced, then a marked log set), then every
/// destination's enabled scheduled jobs run: Get Backup History, then Restore Databases (unless
/// `logshipping-lag` holds it). Time passing, in the lab, is this.
pub fn backup(lab: &mut Lab, now: SystemTime) -> Result<(), LogShippingError> {
    let source = lab.log_shipping.source.clone();
    // A recovered destination's own Backup BizTalk Server job runs too, source or not (F14).
    let recovered: Vec<String> = lab
        .log_shipping
        .destinations
        .iter()
        .filter(|(name, d)| {
            crate::backup_job::recovered(lab, name)
                && d.jobs.iter().any(|j| j.name == BACKUP_JOB && j.enabled)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in &recovered {
        run_job(lab, name, BACKUP_JOB, Invoker::Schedule, now);
    }
    if !lab.sql_reachable(&source) {
        return if recovered.is_empty() { Err(LogShippingError::SourceDown(source)) } else { Ok(()) };
    }
    let agent = &lab.log_shipping.source_agent;
    if agent.jobs.iter().find(|j| j.name == BACKUP_JOB).is_none_or(|j| j.enabled) {
        run_job(lab, &source, BACKUP_JOB, Invoker::Schedule, now);
    }
    let at = lab.log_shipping.history.last().and_then(|s| humantime::parse_rfc3339_weak(&s.backed_up).ok());
    let at = at.map_or(now, |at| at.max(now));
    let destinations: Vec<String> = lab.log_shipping.destinations.keys().cloned().collect();
    for name in destinations {
        let enabled = |lab: &Lab, job: &str| {
            lab.log_shipping.destinations[&name].jobs.iter().any(|j| j.name == job && j.enabled)
        };
        if enabled(lab, GET_BACKUP_HISTORY) {
            run_job(lab, &name, GET_BACKUP_HISTORY, Invoker::Schedule, at);
        }
        if enabled(lab, RESTORE_DATABASES) && lab.lag(&name).is_none() {
            run_job(lab, &name, RESTORE_DATABASES, Invoker::Schedule, at);
        }
    }
    Ok(())
}

/// The source's Backup BizTalk Server job at `now`: a full set first when one was forced
/// (unless started at its `MarkAndBackupLog` step), then a marked log set; a set is never older
/// than the one before it (one second later, if the clock is not later).
fn take_backup(lab: &mut Lab, now: SystemTime, log_only: bool) -> StepResult {
    let shipping = &mut lab.log_shipping;
    let last = shipping.history.last().and_then(|s| humantime::parse_rfc3339_weak(&s.backed_up).ok());
    let mut at = match last {
        Some(last) if last >= now => last + Duration::from_secs(1),
        _ => now,
    };
    let mut id = shipping.history.last().map_or(0, |s| s.id);
    if !log_only && std::mem::take(&mut shipping.force_full) {
        id += 1;
        shipping.history.push(backup_set(id, BackupKind::Full, at));
        at += Duration::from_secs(1);
    }
    shipping.history.push(backup_set(id + 1, BackupKind::Log, at));
    Ok(())
}

/// `drover-lab disaster`: every production server stops answering at `now` (the source SQL
/// Server as under `sql-unreachable`, the others to every command).
pub fn disaster(lab: &mut Lab, now: SystemTime) -> Result<(), LogShippingError> {
    if let Some(d) = &lab.log_shipping.disaster {
        return Err(LogShippingError::AlreadyDeclared(d.at.clone()));
    }
    let servers: Vec<String> =
        lab.servers.iter().filter(|(_, s)| s.site == Site::Prod).map(|(n, _)| n.clone()).collect();
    for name in &servers {
        if let Some(sql) = lab.servers.get_mut(name).and_then(|s| s.sql.as_mut()) {
            sql.reachable = false;
        }
    }
    lab.log_shipping.disaster =
        Some(Disaster { at: humantime::format_rfc3339_seconds(now).to_string(), servers });
    Ok(())
}

/// What a fault does to the state when it is set (`logshipping-lag` moves the instance back,
/// `logshipping-gap` loses the next log set's file) or cleared (the gap's file is back).
pub fn on_fault_set(lab: &mut Lab, fault: &Fault) {
    match fault {
        Fault::LogShippingLag { server, sets } => {
            let shipping = &mut lab.log_shipping;
            let Some(destination) = shipping.destinations.get_mut(server) else { return };
            let Some(last) = destination.last_restored else { return };
            // Not behind the newest full set before it: its logs must follow a full restore.
            let floor = shipping.history.iter().rev().find(|s| s.kind == BackupKind::Full && s.id <= last);
            let floor = floor.map_or(last, |s| s.id);
            destination.last_restored = Some(last.saturating_sub(u64::from(*sets)).max(floor));
        }
        Fault::LogShippingGap { server } => {
            let shipping = &mut lab.log_shipping;
            let Some(destination) = shipping.destinations.get_mut(server) else { return };
            let after = destination.last_restored.unwrap_or(0);
            let next_log = shipping.history.iter().find(|s| s.kind == BackupKind::Log && s.id > after);
            // The next log set to restore, or the next one the source will take.
            let missing = next_log.map_or_else(|| shipping.history.last().map_or(1, |s| s.id + 1), |s| s.id);
            destination.missing_set = Some(missing);
        }
        _ => {}
    }
}

/// After faults were cleared: a destination without a `logshipping-gap` fault has its files.
pub fn on_faults_cleared(lab: &mut Lab) {
    let gaps: Vec<String> = lab
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::LogShippingGap { server } => Some(server.clone()),
            _ => None,
        })
        .collect();
    for (name, destination) in &mut lab.log_shipping.destinations {
        if !gaps.contains(name) {
            destination.missing_set = None;
        }
    }
}

/// `sp_ForceFullBackup` on the source.
pub fn force_full_backup(lab: &mut Lab) {
    lab.log_shipping.force_full = true;
}

/// `sp_LogShippingClean` on `server` for `source_id`: drops the restored databases and forgets
/// the last restored set; `false` when `source_id` is not this destination's source.
pub fn clean(lab: &mut Lab, server: &str, source_id: &str) -> bool {
    if !lab.log_shipping.source.eq_ignore_ascii_case(source_id) {
        return false;
    }
    let Some(destination) = lab.log_shipping.destinations.get_mut(server) else { return false };
    destination.databases.clear();
    destination.last_restored = None;
    destination.recovered_mark = None;
    destination.group = None;
    sync_databases(lab, server);
    true
}

/// Keeps a destination's database list ([`crate::state::SqlInstance::databases`]) equal to what
/// log shipping restored there; the source's are its own.
fn sync_databases(lab: &mut Lab, server: &str) {
    let Some(destination) = lab.log_shipping.destinations.get(server) else { return };
    let names: Vec<String> = destination.databases.keys().cloned().collect();
    if let Some(sql) = lab.servers.get_mut(server).and_then(|s| s.sql.as_mut()) {
        sql.databases = names;
    }
}

/// How a job step ended: success, or the SQL Server errors it met.
type StepResult = Result<(), String>;

/// Runs `job` on `server` (a destination or the source) to its end at `now` (the lab's jobs
/// finish at once) and records its history; `false` when the server has no such job.
pub fn run_job(lab: &mut Lab, server: &str, job: &str, invoker: Invoker<'_>, now: SystemTime) -> bool {
    run_job_from(lab, server, job, None, invoker, now)
}

/// [`run_job`], started at the step `step` (`sp_start_job @step_name`) when given.
pub fn run_job_from(
    lab: &mut Lab,
    server: &str,
    job: &str,
    step: Option<&str>,
    invoker: Invoker<'_>,
    now: SystemTime,
) -> bool {
    let Some(jobs) = agent_jobs(lab, server) else { return false };
    let Some(job_name) = jobs.iter().find(|j| j.name.eq_ignore_ascii_case(job)).map(|j| j.name.clone())
    else {
        return false;
    };
    let is_destination = lab.log_shipping.destinations.contains_key(server);
    let result = match job_name.as_str() {
        GET_BACKUP_HISTORY if is_destination => get_backup_history(lab, server),
        RESTORE_DATABASES if is_destination => restore_databases(lab, server),
        RESTORE_TO_MARK if is_destination => restore_to_mark(lab, server),
        BACKUP_JOB if !is_destination => {
            take_backup(lab, now, step.is_some_and(|s| s.eq_ignore_ascii_case("MarkAndBackupLog")))
        }
        // Recreated by Restore To Mark: the recovered databases back themselves up (F14).
        BACKUP_JOB if crate::backup_job::recovered(lab, server) => {
            crate::backup_job::run_recovered(lab, server, now)
        }
        // The other BizTalk jobs are not modelled: they succeed and change nothing.
        _ => Ok(()),
    };
    sync_databases(lab, server);
    let last_step = job_steps(&job_name).last().copied().unwrap_or_default();
    let last_step = (job_steps(&job_name).len(), last_step.to_owned());
    record(lab, server, &job_name, last_step, invoker, now, result);
    true
}

/// The jobs of the SQL Server Agent of `server`: a destination's, or the source's.
pub fn agent_jobs<'a>(lab: &'a Lab, server: &str) -> Option<&'a [AgentJob]> {
    let shipping = &lab.log_shipping;
    match shipping.destinations.get(server) {
        Some(destination) => Some(&destination.jobs),
        None if shipping.source.eq_ignore_ascii_case(server) => Some(&shipping.source_agent.jobs),
        None => None,
    }
}

/// The jobs and the next history id of the SQL Server Agent of `server`, to change.
pub fn agent_mut<'a>(lab: &'a mut Lab, server: &str) -> Option<(&'a mut Vec<AgentJob>, &'a mut u64)> {
    let shipping = &mut lab.log_shipping;
    if shipping.destinations.contains_key(server) {
        let destination = shipping.destinations.get_mut(server)?;
        Some((&mut destination.jobs, &mut destination.next_history_id))
    } else if shipping.source.eq_ignore_ascii_case(server) {
        Some((&mut shipping.source_agent.jobs, &mut shipping.source_agent.next_history_id))
    } else {
        None
    }
}

/// The steps of a job, in order: the Backup BizTalk Server job's four, one for the others.
pub fn job_steps(job: &str) -> Vec<&str> {
    if job == BACKUP_JOB { BACKUP_STEPS.to_vec() } else { vec![step_name(job)] }
}

/// Appends the step row and the outcome row of a run (`last_step`: the step's number and name).
fn record(
    lab: &mut Lab,
    server: &str,
    job: &str,
    (step_id, step): (usize, String),
    invoker: Invoker<'_>,
    now: SystemTime,
    result: StepResult,
) {
    let Some((jobs, next_history_id)) = agent_mut(lab, server) else { return };
    let (run_date, run_time) = run_date_time(now);
    let first_id = (*next_history_id).max(1);
    *next_history_id = first_id + 2;
    let (status, step_message, verdict) = match result {
        Ok(()) => (1, format!("Executed as user: {AGENT_ACCOUNT}. The step succeeded."), "succeeded"),
        Err(errors) => {
            (0, format!("Executed as user: {AGENT_ACCOUNT}. {errors}  The step failed."), "failed")
        }
    };
    let by = match invoker {
        Invoker::User(account) => format!("User {account}"),
        Invoker::Schedule => "Schedule 1 (Every minute)".to_owned(),
    };
    let outcome = format!(
        "The job {verdict}.  The Job was invoked by {by}.  The last step to run was step {step_id} ({step})."
    );
    let Some(agent_job) = jobs.iter_mut().find(|j| j.name == job) else { return };
    let step_id = u32::try_from(step_id).unwrap_or(1);
    let row = |instance_id, step_id, message| HistoryRow {
        instance_id,
        step_id,
        run_status: status,
        run_date,
        run_time,
        message,
    };
    agent_job.history.push(row(first_id, step_id, step_message));
    agent_job.history.push(row(first_id + 1, 0, outcome));
}

/// The name of the job's (one) step.
fn step_name(job: &str) -> &str {
    job.strip_prefix("BTS Log Shipping - ").unwrap_or(job)
}

/// SQL Server's error 4305 and the RESTORE's 3013, as a job step reports them.
fn log_chain_error(missing: u64) -> String {
    let lsn = |set: u64| format!("{}000000{:04}00001", 42 + set, set * 8);
    format!(
        "The log in this backup set begins at LSN {}, which is too recent to apply to the database. An earlier log backup that includes LSN {} can be restored. [SQLSTATE 42000] (Error 4305)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013).",
        lsn(missing + 1),
        lsn(missing)
    )
}

/// SQL Server's error 3117: nothing left to roll forward (the databases were recovered).
const NOTHING_TO_ROLL_FORWARD: &str = "The log or differential backup cannot be restored because no files are ready to rollforward. [SQLSTATE 42000] (Error 3117)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013).";

/// Get Backup History: imports the source's history, or fails when the source does not answer.
fn get_backup_history(lab: &mut Lab, server: &str) -> StepResult {
    let source = lab.log_shipping.source.clone();
    if !lab.sql_reachable(&source) {
        return Err(format!(
            "Named Pipes Provider: Could not open a connection to SQL Server [53]. [SQLSTATE 42000] (Error 53)  OLE DB provider \"MSOLEDBSQL\" for linked server \"{source}\" returned message \"Login timeout expired\". [SQLSTATE 01000] (Error 7412)."
        ));
    }
    let newest = lab.log_shipping.history.last().map_or(0, |s| s.id);
    if let Some(destination) = lab.log_shipping.destinations.get_mut(server) {
        destination.imported = newest;
    }
    Ok(())
}

/// Restore Databases: restores every imported set after the last restored one but the newest
/// log set, starting from the newest full set when nothing is restored.
fn restore_databases(lab: &mut Lab, server: &str) -> StepResult {
    let shipping = &lab.log_shipping;
    let Some(destination) = shipping.destinations.get(server) else { return Ok(()) };
    if destination.databases.values().any(|s| *s == DbState::Online) {
        return Err(NOTHING_TO_ROLL_FORWARD.to_owned());
    }
    let Some(newest_log) = shipping.newest_log(destination.imported).map(|s| s.id) else { return Ok(()) };
    restore_chain(lab, server, newest_log - 1)
}

/// Restores the chain up to `target` (a set id) on `server`: a full set first when nothing is
/// restored, then every log set in order; a missing log set is repaired by a later full set
/// when one is there, and otherwise stops the chain with error 4305.
fn restore_chain(lab: &mut Lab, server: &str, target: u64) -> StepResult {
    let shipping = &mut lab.log_shipping;
    let Some(destination) = shipping.destinations.get_mut(server) else { return Ok(()) };
    let mut last = match destination.last_restored {
        Some(last) if !destination.databases.is_empty() => last,
        _ => {
            let full = shipping.history.iter().rev().find(|s| s.kind == BackupKind::Full && s.id <= target);
            let Some(full) = full else {
                return Err("No full backup set to restore was found. [SQLSTATE 42000] (Error 50000).".into());
            };
            destination.databases =
                SHIPPED_DATABASES.iter().map(|db| ((*db).to_owned(), DbState::Restoring)).collect();
            destination.last_restored = Some(full.id);
            full.id
        }
    };
    let start = last;
    for set in shipping.history.iter().filter(|s| s.id > start && s.id <= target) {
        if set.kind == BackupKind::Full {
            continue;
        }
        if destination.missing_set == Some(set.id) {
            let repair = shipping
                .history
                .iter()
                .find(|s| s.kind == BackupKind::Full && s.id > set.id && s.id <= target);
            match repair {
                Some(full) if full.id > last => {
                    last = full.id;
                    destination.last_restored = Some(full.id);
                    destination.missing_set = None;
                    continue;
                }
                _ => return Err(log_chain_error(set.id)),
            }
        }
        if set.id <= last {
            continue;
        }
        last = set.id;
        destination.last_restored = Some(set.id);
    }
    Ok(())
}

/// Restore To Mark: restores what is left up to the newest imported log set, that one to its
/// mark, recovers the databases and recreates the source's jobs as the source has them (disabled
/// ones stay disabled, the backup job keeps its steps and their backup location).
fn restore_to_mark(lab: &mut Lab, server: &str) -> StepResult {
    if lab.restore_to_mark_fails(server) {
        let shipping = &lab.log_shipping;
        let target = shipping.destinations.get(server).and_then(|d| shipping.newest_log(d.imported));
        let file = target.map_or_else(String::new, |s| {
            format!("{BACKUP_PATH}\\{}_BizTalkMgmtDb_Log_{}.bak", shipping.source, s.mark)
        });
        return Err(format!(
            "Cannot open backup device '{file}'. Operating system error 53(The network path was not found.). [SQLSTATE 42000] (Error 3201)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013)."
        ));
    }
    let shipping = &lab.log_shipping;
    let Some(destination) = shipping.destinations.get(server) else { return Ok(()) };
    if destination.databases.is_empty() || destination.databases.values().any(|s| *s == DbState::Online) {
        return Err(NOTHING_TO_ROLL_FORWARD.to_owned());
    }
    let Some(target) = shipping.newest_log(destination.imported).cloned() else {
        return Err(NOTHING_TO_ROLL_FORWARD.to_owned());
    };
    restore_chain(lab, server, target.id)?;
    let recovered = Box::new(lab.group.clone());
    // As the source's msdb defines them: enabled or not, with their steps.
    let source_jobs = lab.log_shipping.source_agent.jobs.clone();
    let Some(destination) = lab.log_shipping.destinations.get_mut(server) else { return Ok(()) };
    destination.last_restored = Some(target.id);
    destination.recovered_mark = Some(target.mark);
    destination.group = Some(recovered);
    for state in destination.databases.values_mut() {
        *state = DbState::Online;
    }
    for job in &source_jobs {
        if !destination.jobs.iter().any(|j| j.name == job.name) {
            destination.jobs.push(AgentJob { history: Vec::new(), ..job.clone() });
        }
    }
    Ok(())
}

/// The readable lines of `drover-lab show` for log shipping.
pub fn render(lab: &Lab) -> String {
    use std::fmt::Write as _;
    let shipping = &lab.log_shipping;
    let mut out = String::new();
    let set = |id: Option<u64>| {
        id.and_then(|id| shipping.set(id))
            .map_or_else(|| "(none)".to_owned(), |s| format!("{} {}", s.id, s.mark))
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "log shipping from      {}",
        if shipping.source.is_empty() { "(none)" } else { &shipping.source }
    );
    let _ = writeln!(out, "  newest log set       {}", set(shipping.source_log_set().map(|s| s.id)));
    let _ = writeln!(out, "  full backup forced   {}", if shipping.force_full { "yes" } else { "no" });
    let jobs = |jobs: &[AgentJob]| {
        jobs.iter()
            .map(|j| format!("{} ({})", j.name, if j.enabled { "enabled" } else { "disabled" }))
            .collect::<Vec<_>>()
    };
    let _ = writeln!(out, "  source jobs          {}", jobs(&shipping.source_agent.jobs).join(", "));
    let disaster = shipping
        .disaster
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), |d| format!("{} ({})", d.at, d.servers.join(", ")));
    let _ = writeln!(out, "  disaster             {disaster}");
    for (name, d) in &shipping.destinations {
        let _ = writeln!(out, "  to {name}");
        let _ = writeln!(out, "    imported           {}", set(Some(d.imported)));
        let _ = writeln!(out, "    last restored      {}", set(d.last_restored));
        let _ = writeln!(out, "    recovered at mark  {}", d.recovered_mark.as_deref().unwrap_or("(none)"));
        let dbs: Vec<String> = d.databases.iter().map(|(n, s)| format!("{n} {}", s.state_desc())).collect();
        let _ = writeln!(
            out,
            "    databases          {}",
            if dbs.is_empty() { "(none)".to_owned() } else { dbs.join(", ") }
        );
        if let Some(missing) = d.missing_set {
            let _ = writeln!(out, "    missing log set    {missing}");
        }
        let _ = writeln!(out, "    jobs               {}", jobs(&d.jobs).join(", "));
        if let Some(newest) = d.backups.last() {
            let _ = writeln!(
                out,
                "    own backups        {} (newest {} {} to {})",
                d.backups.len(),
                newest.id,
                newest.mark,
                newest.location.as_deref().unwrap_or("?")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::fresh_lab;
    use crate::programs::testing::now;

    fn dr(lab: &Lab) -> &Destination {
        &lab.log_shipping.destinations["DRSQL01"]
    }

    #[test]
    fn show_tells_where_log_shipping_stands() {
        let mut lab = fresh_lab();
        let text = render(&lab);
        assert!(
            text.starts_with(
                "log shipping from      PRDSQL01\n  newest log set       5 BTS_2026_11_22_10_00_01_000\n"
            ),
            "{text}"
        );
        assert!(text.contains("  to DRSQL01\n    imported           5 BTS_2026_11_22_10_00_01_000\n    last restored      4 BTS_2026_11_22_09_45_01_000\n"), "{text}");
        disaster(&mut lab, now()).expect("disaster");
        assert!(render(&lab).contains(
            "  disaster             2026-11-22T10:15:01Z (PRDBTS01, PRDBTS02, PRDSQL01, PRDSSO01)\n"
        ));
    }

    #[test]
    fn the_fresh_lab_ships_to_drsql01() {
        let lab = fresh_lab();
        let shipping = &lab.log_shipping;
        assert_eq!(shipping.history.len(), 5);
        assert_eq!(shipping.history[0].kind, BackupKind::Full);
        assert_eq!(shipping.history[4].mark, "BTS_2026_11_22_10_00_01_000");
        assert_eq!((dr(&lab).imported, dr(&lab).last_restored), (5, Some(4)));
        assert_eq!(lab.database_state("drsql01", "SSODB"), Some(DbState::Restoring));
        assert_eq!(lab.servers["DRSQL01"].sql.as_ref().map(|s| s.databases.len()), Some(5));
    }

    #[test]
    fn a_backup_ships_and_restores_all_but_the_newest_log() {
        let mut lab = fresh_lab();
        backup(&mut lab, now()).expect("backup");
        assert_eq!(
            lab.log_shipping.history.last().map(|s| s.mark.as_str()),
            Some("BTS_2026_11_22_10_15_01_000")
        );
        assert_eq!((dr(&lab).imported, dr(&lab).last_restored), (6, Some(5)));
        backup(&mut lab, now()).expect("a second backup at the same clock");
        assert_eq!(
            lab.log_shipping.history.last().map(|s| s.mark.as_str()),
            Some("BTS_2026_11_22_10_15_02_000")
        );
        let restore = dr(&lab).jobs.iter().find(|j| j.name == RESTORE_DATABASES).expect("job");
        assert_eq!(restore.history.len(), 4, "a step row and an outcome row per run");
        assert!(restore.history[1].message.contains("invoked by Schedule 1"));
    }

    #[test]
    fn lag_holds_the_schedule_and_a_manual_run_catches_up() {
        let mut lab = fresh_lab();
        let fault = Fault::LogShippingLag { server: "DRSQL01".into(), sets: 2 };
        on_fault_set(&mut lab, &fault);
        lab.faults.push(fault);
        assert_eq!(dr(&lab).last_restored, Some(2));
        backup(&mut lab, now()).expect("backup");
        assert_eq!((dr(&lab).imported, dr(&lab).last_restored), (6, Some(2)), "imported, not restored");
        assert!(run_job(&mut lab, "DRSQL01", RESTORE_DATABASES, Invoker::User("CONTOSO\\drover"), now()));
        assert_eq!(dr(&lab).last_restored, Some(5));
    }

    #[test]
    fn a_gap_fails_with_4305_until_a_full_set_follows_it() {
        let mut lab = fresh_lab();
        let fault = Fault::LogShippingGap { server: "DRSQL01".into() };
        on_fault_set(&mut lab, &fault);
        lab.faults.push(fault);
        assert_eq!(dr(&lab).missing_set, Some(5));
        backup(&mut lab, now()).expect("backup");
        let restore = dr(&lab).jobs.iter().find(|j| j.name == RESTORE_DATABASES).expect("job");
        assert_eq!(restore.history[0].run_status, 0);
        assert!(restore.history[0].message.contains("(Error 4305)"), "{}", restore.history[0].message);
        assert_eq!(dr(&lab).last_restored, Some(4));
        force_full_backup(&mut lab);
        backup(&mut lab, now()).expect("full then log");
        backup(&mut lab, now()).expect("another log");
        assert_eq!(dr(&lab).missing_set, None, "repaired by the full set");
        assert_eq!(dr(&lab).last_restored, Some(8), "full 7 and log 8 restored, 9 waits");
    }

    #[test]
    fn restore_to_mark_recovers_at_the_newest_shipped_mark() {
        let mut lab = fresh_lab();
        disaster(&mut lab, now()).expect("disaster");
        assert!(!lab.sql_reachable("PRDSQL01") && lab.server_down("PRDBTS01") && !lab.server_down("DRBTS01"));
        assert_eq!(backup(&mut lab, now()), Err(LogShippingError::SourceDown("PRDSQL01".into())));
        assert!(run_job(&mut lab, "DRSQL01", GET_BACKUP_HISTORY, Invoker::User("CONTOSO\\drover"), now()));
        let history = &dr(&lab).jobs[0].history;
        assert!(history[0].message.contains("(Error 7412)"));
        assert!(run_job(&mut lab, "DRSQL01", RESTORE_TO_MARK, Invoker::User("CONTOSO\\drover"), now()));
        assert_eq!(dr(&lab).recovered_mark.as_deref(), Some("BTS_2026_11_22_10_00_01_000"));
        assert_eq!(lab.database_state("DRSQL01", "BizTalkMgmtDb"), Some(DbState::Online));
        assert_eq!(dr(&lab).jobs.len(), 15, "the source's twelve jobs recreated");
        run_job(&mut lab, "DRSQL01", RESTORE_DATABASES, Invoker::Schedule, now());
        let restore = dr(&lab).jobs.iter().find(|j| j.name == RESTORE_DATABASES).expect("job");
        assert!(restore.history[0].message.contains("(Error 3117)"));
    }

    #[test]
    fn clean_and_a_forced_full_backup_reseed_the_destination() {
        let mut lab = fresh_lab();
        run_job(&mut lab, "DRSQL01", RESTORE_TO_MARK, Invoker::User("CONTOSO\\drover"), now());
        // A drill: production's record stays as it is, the recovered copy is DR's to change.
        let production = lab.group.clone();
        assert_eq!(dr(&lab).group.as_deref(), Some(&production), "a copy at the mark");
        lab.group_on_mut("drsql01").mgmt_server = "DRSQL01".into();
        assert_eq!((lab.group_on("PRDSQL01"), &lab.group), (&production, &production));
        assert_eq!(lab.group_on("DRSQL01").mgmt_server, "DRSQL01");
        assert!(!clean(&mut lab, "DRSQL01", "ELSEWHERE"));
        assert!(clean(&mut lab, "DRSQL01", "prdsql01"));
        assert_eq!((dr(&lab).group.as_ref(), lab.group_on("DRSQL01")), (None, &production), "dropped");
        assert_eq!(lab.database_state("DRSQL01", "SSODB"), None);
        assert_eq!(lab.servers["DRSQL01"].sql.as_ref().map(|s| s.databases.len()), Some(0));
        force_full_backup(&mut lab);
        backup(&mut lab, now()).expect("full and log");
        assert_eq!(
            (dr(&lab).last_restored, dr(&lab).imported),
            (Some(6), 7),
            "the new full set, its log waits"
        );
        assert_eq!(lab.database_state("DRSQL01", "SSODB"), Some(DbState::Restoring));
        let source = lab.servers["PRDSQL01"].sql.as_ref().map(|s| s.databases.len());
        assert_eq!(source, Some(5), "the source's backup job keeps its databases");
    }

    #[test]
    fn restore_to_mark_fails_under_its_fault_and_changes_nothing() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::RestoreToMarkFails { server: "DRSQL01".into() });
        run_job(&mut lab, "DRSQL01", RESTORE_TO_MARK, Invoker::User("CONTOSO\\drover"), now());
        let job = dr(&lab).jobs.iter().find(|j| j.name == RESTORE_TO_MARK).expect("job");
        assert!(job.history[0].message.contains("(Error 3201)"), "{}", job.history[0].message);
        assert!(job.history[0].message.contains(
            r"\\PRDSQL01\BizTalkBackup\PRDSQL01_BizTalkMgmtDb_Log_BTS_2026_11_22_10_00_01_000.bak"
        ));
        assert_eq!(lab.database_state("DRSQL01", "SSODB"), Some(DbState::Restoring));
    }
}
