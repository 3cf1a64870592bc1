//! The Backup BizTalk Server job's steps on a recovered SQL Server (F14, re-protect;
//! docs/biztalk.md, "Failover activation"; `lab/PROTOCOL.md`, "Re-protect"): the `sqlcmd`
//! queries that read a job's steps and change one step's command (`sp_update_jobstep`), the
//! BizTalk SQL Server Agent jobs Restore To Mark recreates, and the backup location in the
//! `BackupFull` and `MarkAndBackupLog` steps' commands, read and rewritten.
//!
//! Microsoft documents the commands ("How to Configure the Backup BizTalk Server Job") as
//! `exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */,
//! '<destination path>' /* location of backup files */, …` (the path is the third argument) and
//! `sp_MarkAll` with `@MarkName` and `@BackupPath` (the path is the second argument, or the one
//! named `@BackupPath`). The location is rewritten in place: every other argument, comment and
//! space of the command stays as it was.
//!
//! Pure functions only.

use std::fmt;

use crate::logshipping::{Unreadable, literal, rows};

/// The job's step that takes the full backups.
pub const BACKUP_FULL: &str = "BackupFull";

/// The job's step that marks and backs up the logs (Microsoft also spells it `MarkAndBackUpLog`:
/// step names are matched ignoring case).
pub use crate::logshipping::MARK_AND_BACKUP_LOG;

/// The BizTalk SQL Server Agent jobs of a group, by the start of their names (Microsoft Learn,
/// "How to Back Up and Restore SQL Agent Jobs"; the database part of a name differs per group):
/// the jobs Restore To Mark recreates on a destination. Any other job on the instance is not
/// BizTalk's and is left alone.
pub const BIZTALK_JOBS: [&str; 9] = [
    "Backup BizTalk Server",
    "CleanupBTFExpiredEntriesJob_",
    "DTA Purge and Archive",
    "MessageBox_",
    "Monitor BizTalk Server",
    "Operations_OperateOnInstances_OnMaster_",
    "PurgeSubscriptionsJob_",
    "Rules_Database_Cleanup_",
    "TrackedMessages_Copy_",
];

/// The BizTalk job Microsoft recommends keeping disabled (it is started by
/// `MessageBox_Message_ManageRefCountLog_*`; "Description of the SQL Server Agent jobs in
/// BizTalk Server").
pub const KEEP_DISABLED: &str = "MessageBox_Message_Cleanup_";

/// Whether `name` is one of [`BIZTALK_JOBS`].
pub fn is_biztalk_job(name: &str) -> bool {
    BIZTALK_JOBS.iter().any(|prefix| starts_with_ignoring_case(name, prefix))
}

/// Whether `name` starts with `prefix`, ignoring ASCII case.
pub fn starts_with_ignoring_case(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The steps of `job`: one row `<step_id>|<step_name>|<command>` each, in order, the command
/// on one line (its line breaks as spaces) and read whole. Read with [`parse_job_steps`].
pub fn job_steps(job: &str) -> String {
    format!(
        "SET NOCOUNT ON; SELECT s.step_id, s.step_name, REPLACE(REPLACE(s.command, CHAR(13), N' '), CHAR(10), N' ') FROM msdb.dbo.sysjobsteps s JOIN msdb.dbo.sysjobs j ON j.job_id = s.job_id WHERE j.name = {} ORDER BY s.step_id",
        literal(job)
    )
}

/// Sets the command of `job`'s step `step_id`; prints nothing.
pub fn update_job_step(job: &str, step_id: u32, command: &str) -> String {
    format!(
        "EXEC msdb.dbo.sp_update_jobstep @job_name = {}, @step_id = {step_id}, @command = {}",
        literal(job),
        literal(command)
    )
}

/// A job step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStep {
    /// `step_id`.
    pub id: u32,
    /// `step_name`.
    pub name: String,
    /// `command`, on one line.
    pub command: String,
}

/// Reads [`job_steps`].
pub fn parse_job_steps(stdout: &str) -> Result<Vec<JobStep>, Unreadable> {
    rows(stdout, 3)
        .map(|row| match row.as_slice() {
            [id, name, command] if !name.is_empty() => match id.parse() {
                Ok(id) => Ok(JobStep { id, name: (*name).to_owned(), command: (*command).to_owned() }),
                Err(_) => {
                    Err(Unreadable { expected: "<step_id>|<step_name>|<command>", line: row.join("|") })
                }
            },
            _ => Err(Unreadable { expected: "<step_id>|<step_name>|<command>", line: row.join("|") }),
        })
        .collect()
}

/// The step named `name` (ignoring case).
pub fn find_step<'a>(steps: &'a [JobStep], name: &str) -> Option<&'a JobStep> {
    steps.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Why a step's command has no backup location Drover can read or rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoLocation(pub String);

impl fmt::Display for NoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string literal of a command: its byte span (quotes included) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Literal {
    start: usize,
    end: usize,
    text: String,
    /// The parameter it is assigned to (`@BackupPath = '…'`), if named.
    parameter: Option<String>,
}

/// The string literals of `command` after the procedure `procedure`, comments skipped.
fn literals(command: &str, procedure: &str) -> Result<Vec<Literal>, NoLocation> {
    let lower = command.to_ascii_lowercase();
    let Some(at) = lower.find(&procedure.to_ascii_lowercase()) else {
        return Err(NoLocation(format!("the command does not call {procedure}")));
    };
    let bytes = command.as_bytes();
    let mut found = Vec::new();
    let mut i = at + procedure.len();
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(close) = command[i + 2..].find("*/") else {
                    return Err(NoLocation("an unclosed /* comment".into()));
                };
                i += close + 4;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                return Err(NoLocation(
                    "a -- comment: read on one line it would hide the rest of the command".into(),
                ));
            }
            b'\'' => {
                let start = i;
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    let Some(rest) = command.get(j..) else {
                        return Err(NoLocation("an unclosed string".into()));
                    };
                    let Some(quote) = rest.find('\'') else {
                        return Err(NoLocation("an unclosed string".into()));
                    };
                    text.push_str(&rest[..quote]);
                    j += quote + 1;
                    if bytes.get(j) == Some(&b'\'') {
                        text.push('\'');
                        j += 1;
                    } else {
                        break;
                    }
                }
                let parameter = parameter_before(&command[..start]);
                found.push(Literal { start, end: j, text, parameter });
                i = j;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// The `@name` of `… @name = N` that ends `before` (the text before a literal), if any.
fn parameter_before(before: &str) -> Option<String> {
    let head = before.trim_end();
    let head = head.strip_suffix(['N', 'n']).unwrap_or(head).trim_end();
    let head = head.strip_suffix('=')?.trim_end();
    let name_start = head.rfind('@')?;
    let name = &head[name_start..];
    name[1..].chars().all(|c| c.is_alphanumeric() || c == '_').then(|| name.to_owned())
}

/// The literal holding the backup location of a `BackupFull` or `MarkAndBackupLog` command.
fn location(command: &str) -> Result<Literal, NoLocation> {
    let (procedure, position) = if command.to_ascii_lowercase().contains("sp_backupallfull_schedule") {
        ("sp_BackupAllFull_Schedule", 2)
    } else {
        ("sp_MarkAll", 1)
    };
    let found = literals(command, procedure)?;
    let named =
        found.iter().find(|l| l.parameter.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("@BackupPath")));
    named.or_else(|| found.get(position).filter(|l| l.parameter.is_none())).cloned().ok_or_else(|| {
        NoLocation(format!("{procedure} has no backup location (argument {}) in this command", position + 1))
    })
}

/// The backup location a `BackupFull` or `MarkAndBackupLog` step's command writes to.
pub fn backup_path(command: &str) -> Result<String, NoLocation> {
    location(command).map(|l| l.text)
}

/// `command` writing to `path` instead: only the location's literal changes.
pub fn with_backup_path(command: &str, path: &str) -> Result<String, NoLocation> {
    let at = location(command)?;
    Ok(format!("{}'{}'{}", &command[..at.start], path.replace('\'', "''"), &command[at.end..]))
}

/// Whether two backup locations are the same folder: Windows paths ignore case, and a trailing
/// backslash names the same folder.
pub fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('\\').eq_ignore_ascii_case(b.trim_end_matches('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r"exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, '\\PRDSQL01\BizTalkBackup' /* location of backup files */";
    const LOG: &str = r"exec [dbo].[sp_MarkAll] 'BTS', '\\PRDSQL01\BizTalkBackup'";

    #[test]
    fn the_location_is_the_documented_argument_and_only_it_changes() {
        assert_eq!(backup_path(FULL).as_deref(), Ok(r"\\PRDSQL01\BizTalkBackup"));
        assert_eq!(backup_path(LOG).as_deref(), Ok(r"\\PRDSQL01\BizTalkBackup"));
        assert_eq!(
            with_backup_path(FULL, r"\\DRBAK01\O'Neil").as_deref(),
            Ok(
                r"exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, '\\DRBAK01\O''Neil' /* location of backup files */"
            )
        );
        let rewritten = with_backup_path(LOG, r"\\DRBAK01\BizTalkBackup").expect("rewritten");
        assert_eq!(rewritten, r"exec [dbo].[sp_MarkAll] 'BTS', '\\DRBAK01\BizTalkBackup'");
        assert_eq!(
            backup_path(&with_backup_path(FULL, "m:\\It''s").expect("ok")).as_deref(),
            Ok("m:\\It''s")
        );
        let named = "exec [dbo].[sp_MarkAll] @MarkName = N'BTS', @BackupPath = N'm:\\Logs'";
        assert_eq!(backup_path(named).as_deref(), Ok("m:\\Logs"));
        assert_eq!(
            with_backup_path(named, "n:\\").as_deref(),
            Ok("exec [dbo].[sp_MarkAll] @MarkName = N'BTS', @BackupPath = N'n:\\'")
        );
        let commented = "exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* it's daily */, 'BTS', 'm:\\B', '0'";
        assert_eq!(backup_path(commented).as_deref(), Ok("m:\\B"), "a quote in a comment is no string");
    }

    #[test]
    fn commands_drover_cannot_rewrite_say_why() {
        assert!(
            backup_path("exec [dbo].[sp_BackupAllFull_Schedule] 'd', 'BTS'").is_err(),
            "no third argument"
        );
        assert!(backup_path("exec dbo.sp_Other 'a', 'b'").is_err());
        assert!(backup_path("exec [dbo].[sp_MarkAll] 'BTS', -- the share\n 'm:\\B'").is_err());
        assert!(backup_path("exec [dbo].[sp_MarkAll] 'BTS', 'm:\\B").is_err());
        assert!(same_path(r"\\DRBAK01\BizTalkBackup\", r"\\drbak01\bizTalkbackup"));
    }

    #[test]
    fn steps_are_read_with_their_commands_whole() {
        let steps = parse_job_steps(&format!(
            "1|Set Compression Option|exec [dbo].[sp_SetBackupCompression] @bCompression = 0\r\n2|BackupFull|{FULL}\r\n3|MarkAndBackUpLog|exec x 'a|b'\r\n"
        ))
        .expect("readable");
        assert_eq!(steps.len(), 3);
        assert_eq!(find_step(&steps, BACKUP_FULL).map(|s| (s.id, s.command.as_str())), Some((2, FULL)));
        assert_eq!(find_step(&steps, MARK_AND_BACKUP_LOG).map(|s| s.command.as_str()), Some("exec x 'a|b'"));
        assert!(parse_job_steps("two|BackupFull|x").is_err());
        assert_eq!(
            update_job_step(crate::logshipping::BACKUP_JOB, 3, LOG),
            r"EXEC msdb.dbo.sp_update_jobstep @job_name = N'Backup BizTalk Server (BizTalkMgmtDb)', @step_id = 3, @command = N'exec [dbo].[sp_MarkAll] ''BTS'', ''\\PRDSQL01\BizTalkBackup'''"
        );
        assert!(
            job_steps("Backup BizTalk Server (BizTalkMgmtDb)")
                .ends_with("WHERE j.name = N'Backup BizTalk Server (BizTalkMgmtDb)' ORDER BY s.step_id")
        );
        assert!(
            is_biztalk_job("DTA Purge and Archive (BizTalkDTADb)")
                && !is_biztalk_job("syspolicy_purge_history")
        );
    }
}
