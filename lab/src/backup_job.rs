//! The Backup BizTalk Server job's steps and, on a recovered DR SQL Server, its runs (issue 18,
//! F14; `lab/PROTOCOL.md`, "Re-protect"): the job's four steps with their commands as
//! Microsoft's "How to Configure the Backup BizTalk Server Job" shows them, the backup location
//! read from the `BackupFull` and `MarkAndBackupLog` commands, and the run of the job Restore To
//! Mark recreated on a destination, which takes its sets into that destination's own history.
//!
//! The source's runs stay [`crate::logshipping`]'s (they feed log shipping); `sqlcmd`'s answers
//! are [`crate::programs::sql_backup_job`]'s.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::logshipping::{self, BackupKind, BackupSet, DbState};
use crate::state::Lab;

/// The step that takes the full backups.
pub const BACKUP_FULL: &str = "BackupFull";
/// The step that marks and backs up the logs.
pub const MARK_AND_BACKUP_LOG: &str = "MarkAndBackupLog";

/// A SQL Server Agent job step (`msdb.dbo.sysjobsteps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobStep {
    /// `step_id`.
    pub id: u32,
    /// `step_name`.
    pub name: String,
    /// `command`.
    pub command: String,
}

/// The Backup BizTalk Server job's steps writing to `path`, as configured on the source.
pub fn default_steps(path: &str) -> Vec<JobStep> {
    let step = |id: u32, name: &str, command: String| JobStep { id, name: name.into(), command };
    vec![
        step(
            1,
            "Set Compression Option",
            "exec [dbo].[sp_SetBackupCompression] @bCompression = 0 /*0 - Do not use Compression, 1 - Use Compression */".into(),
        ),
        step(
            2,
            BACKUP_FULL,
            format!("exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, '{path}' /* location of backup files */"),
        ),
        step(3, MARK_AND_BACKUP_LOG, format!("exec [dbo].[sp_MarkAll] 'BTS', '{path}'")),
        step(4, "Clear Backup History", "exec [dbo].[sp_DeleteBackupHistory] @DaysToKeep=14".into()),
    ]
}

/// The location a `BackupFull` (third argument) or `MarkAndBackupLog` (second) command writes
/// to: its string literals after the procedure's name, `/* */` comments skipped.
pub fn location(command: &str) -> Option<String> {
    let lower = command.to_ascii_lowercase();
    let (procedure, wanted) = match lower.find("sp_backupallfull_schedule") {
        Some(at) => (at, 2),
        None => (lower.find("sp_markall")?, 1),
    };
    let mut rest = &command[procedure..];
    let mut strings = Vec::new();
    while let Some(at) = rest.find(['\'', '/']) {
        if rest[at..].starts_with("/*") {
            rest = &rest[at + rest[at..].find("*/")? + 2..];
            continue;
        }
        if rest.as_bytes()[at] == b'/' {
            rest = &rest[at + 1..];
            continue;
        }
        let mut text = String::new();
        let mut tail = &rest[at + 1..];
        loop {
            let end = tail.find('\'')?;
            text.push_str(&tail[..end]);
            tail = &tail[end + 1..];
            match tail.strip_prefix('\'') {
                Some(more) => {
                    text.push('\'');
                    tail = more;
                }
                None => break,
            }
        }
        strings.push(text);
        rest = tail;
    }
    strings.into_iter().nth(wanted)
}

/// The location the step `step` of `server`'s backup job writes to.
fn step_location(lab: &Lab, server: &str, step: &str) -> Option<String> {
    let jobs = logshipping::agent_jobs(lab, server)?;
    let job = jobs.iter().find(|j| j.name == logshipping::BACKUP_JOB)?;
    let step = job.steps.iter().find(|s| s.name.eq_ignore_ascii_case(step))?;
    location(&step.command)
}

/// Whether `server`'s databases were recovered by Restore To Mark (its `BizTalkMgmtDb` ONLINE).
pub fn recovered(lab: &Lab, server: &str) -> bool {
    lab.log_shipping
        .destinations
        .get(server)
        .is_some_and(|d| d.databases.get("BizTalkMgmtDb") == Some(&DbState::Online))
}

/// The Backup BizTalk Server job Restore To Mark recreated on the destination `server`, run at
/// `now`: a full set when `sp_ForceFullBackup` asked for one, then a marked log set, each into
/// the destination's own history with the location its step writes to. A location on a server
/// that is down (`\\PRDSQL01\…` after the disaster) fails the step with error 3201.
pub fn run_recovered(lab: &mut Lab, server: &str, now: SystemTime) -> Result<(), String> {
    let Some(destination) = lab.log_shipping.destinations.get(server) else { return Ok(()) };
    let full = destination.force_full;
    let steps: &[(BackupKind, &str)] = if full {
        &[(BackupKind::Full, BACKUP_FULL), (BackupKind::Log, MARK_AND_BACKUP_LOG)]
    } else {
        &[(BackupKind::Log, MARK_AND_BACKUP_LOG)]
    };
    let mut taken = Vec::new();
    let last = destination.backups.last().map_or(destination.last_restored.unwrap_or(0), |s| s.id);
    let newest = destination.backups.last().and_then(|s| humantime::parse_rfc3339_weak(&s.backed_up).ok());
    let mut at = match newest {
        Some(newest) if newest >= now => newest + std::time::Duration::from_secs(1),
        _ => now,
    };
    for (id, (kind, step)) in (last + 1..).zip(steps) {
        let Some(path) = step_location(lab, server, step) else {
            return Err(format!("The {step} step has no backup location. [SQLSTATE 42000] (Error 50000)."));
        };
        let mark = logshipping::mark_name(at);
        let word = if *kind == BackupKind::Full { "Full" } else { "Log" };
        let file = format!("{}\\{server}_BizTalkMgmtDb_{word}_{mark}.bak", path.trim_end_matches('\\'));
        if unc_server(&path).is_some_and(|host| lab.server_down(host)) {
            let verb = if *kind == BackupKind::Full { "BACKUP DATABASE" } else { "BACKUP LOG" };
            return Err(format!(
                "Cannot open backup device '{file}'. Operating system error 53(The network path was not found.). [SQLSTATE 42000] (Error 3201)  {verb} is terminating abnormally. [SQLSTATE 42000] (Error 3013)."
            ));
        }
        taken.push(BackupSet {
            id,
            kind: *kind,
            mark,
            backed_up: humantime::format_rfc3339_millis(at).to_string(),
            location: Some(path),
        });
        at += std::time::Duration::from_secs(1);
    }
    if let Some(destination) = lab.log_shipping.destinations.get_mut(server) {
        destination.backups.extend(taken);
        destination.force_full = false;
    }
    Ok(())
}

/// The server of a UNC path `\\<server>\<share>…`.
fn unc_server(path: &str) -> Option<&str> {
    path.strip_prefix(r"\\")?.split('\\').next().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::fresh_lab;
    use crate::logshipping::{BACKUP_JOB, Invoker, RESTORE_TO_MARK, backup, disaster, run_job};
    use crate::programs::testing::now;

    #[test]
    fn the_location_is_read_from_either_step() {
        let steps = default_steps(r"\\PRDSQL01\BizTalkBackup");
        assert_eq!(location(&steps[1].command).as_deref(), Some(r"\\PRDSQL01\BizTalkBackup"));
        assert_eq!(location(&steps[2].command).as_deref(), Some(r"\\PRDSQL01\BizTalkBackup"));
        assert_eq!(location("exec [dbo].[sp_MarkAll] 'BTS', 'm:\\O''Neil'").as_deref(), Some("m:\\O'Neil"));
        assert_eq!(location(&steps[0].command), None);
        assert_eq!(unc_server(r"\\DRBAK01\BizTalkBackup"), Some("DRBAK01"));
    }

    #[test]
    fn the_recovered_job_fails_on_the_dead_share_and_backs_up_once_pointed_elsewhere() {
        let mut lab = fresh_lab();
        disaster(&mut lab, now()).expect("disaster");
        run_job(&mut lab, "DRSQL01", RESTORE_TO_MARK, Invoker::User("CONTOSO\\drover"), now());
        assert!(recovered(&lab, "DRSQL01"));
        backup(&mut lab, now()).expect("DRSQL01's recreated job runs, production's cannot");
        let dr = &lab.log_shipping.destinations["DRSQL01"];
        let job = dr.jobs.iter().find(|j| j.name == BACKUP_JOB).expect("recreated");
        assert_eq!(job.steps.len(), 4, "recreated with its steps");
        let failed = &job.history[0];
        assert_eq!(failed.run_status, 0);
        assert!(
            failed.message.contains(
                r"'\\PRDSQL01\BizTalkBackup\DRSQL01_BizTalkMgmtDb_Log_BTS_2026_11_22_10_15_01_000.bak'"
            ),
            "{}",
            failed.message
        );
        assert!(dr.backups.is_empty());
        let job = lab
            .log_shipping
            .destinations
            .get_mut("DRSQL01")
            .and_then(|d| d.jobs.iter_mut().find(|j| j.name == BACKUP_JOB));
        let job = job.expect("recreated");
        job.steps = default_steps(r"\\DRBAK01\BizTalkBackup");
        lab.log_shipping.destinations.get_mut("DRSQL01").expect("dr").force_full = true;
        backup(&mut lab, now()).expect("backed up");
        let dr = &lab.log_shipping.destinations["DRSQL01"];
        let kinds: Vec<(u64, BackupKind, Option<&str>)> =
            dr.backups.iter().map(|s| (s.id, s.kind, s.location.as_deref())).collect();
        let at = Some(r"\\DRBAK01\BizTalkBackup");
        assert_eq!(kinds, [(6, BackupKind::Full, at), (7, BackupKind::Log, at)], "after the recovered set 5");
        assert!(!dr.force_full);
        backup(&mut lab, now()).expect("a log set");
        assert_eq!(
            lab.log_shipping.destinations["DRSQL01"].backups.last().map(|s| (s.id, s.kind)),
            Some((8, BackupKind::Log))
        );
    }
}
