//! Unit tests of `logshipping-reprotect` through the fake host, answered as `lab/PROTOCOL.md`
//! ("Re-protect") says a recovered DR SQL Server answers.

use biztalk_common::backup_job::{job_steps, update_job_step};
use biztalk_common::logshipping::{self, BACKUP_JOB};
use drover_sdk::prelude::*;
use drover_sdk::testing::FakeHost;
use serde_json::json;

use crate::SQLCMD;
use crate::reprotect::Reprotect;

const DR: &str = "DRSQL01";
const NEW: &str = r"\\DRBAK01\BizTalkBackup";
const ONLINE: &str = "BizTalkDTADb|ONLINE\r\nBizTalkMgmtDb|ONLINE\r\nBizTalkMsgBoxDb|ONLINE\r\nBizTalkRuleEngineDb|ONLINE\r\nSSODB|ONLINE\r\n";
const FULL_OLD: &str = r"exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, '\\PRDSQL01\BizTalkBackup' /* location of backup files */";
const FULL_NEW: &str = r"exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, '\\DRBAK01\BizTalkBackup' /* location of backup files */";
const LOG_OLD: &str = r"exec [dbo].[sp_MarkAll] 'BTS', '\\PRDSQL01\BizTalkBackup'";
const LOG_NEW: &str = r"exec [dbo].[sp_MarkAll] 'BTS', '\\DRBAK01\BizTalkBackup'";
const CLEANUP: &str = "MessageBox_Message_Cleanup_BizTalkMsgBoxDb";
const DTA: &str = "DTA Purge and Archive (BizTalkDTADb)";

fn ok(host: &FakeHost, query: &str, stdout: &str) {
    let argv = logshipping::sqlcmd(DR, query);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    host.script_exec(DR, SQLCMD, &args, ExecOutput::exited(0, stdout));
}

fn steps(full: &str, log: &str) -> String {
    format!(
        "1|Set Compression Option|exec [dbo].[sp_SetBackupCompression] @bCompression = 0\r\n2|BackupFull|{full}\r\n3|MarkAndBackupLog|{log}\r\n4|Clear Backup History|exec [dbo].[sp_DeleteBackupHistory] @DaysToKeep=14\r\n"
    )
}

/// A recovered DRSQL01: the backup job `backup` enabled or not, steps as given, the DTA job and
/// the cleanup job disabled, a DBA's own job disabled too.
fn recovered(backup: bool, full: &str, log: &str, dta: bool) -> FakeHost {
    let host = FakeHost::new().with_target(DR);
    ok(&host, logshipping::DATABASE_STATES, ONLINE);
    let jobs = format!(
        "Backup BizTalk Server (BizTalkMgmtDb)|{}|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\nDBA - Index maintenance|0|0\r\n{DTA}|{}|0\r\n{CLEANUP}|0|0\r\n",
        u8::from(backup),
        u8::from(dta)
    );
    ok(&host, logshipping::ALL_JOBS, &jobs);
    ok(&host, &job_steps(BACKUP_JOB), &steps(full, log));
    ok(&host, &logshipping::job_history(BACKUP_JOB), "");
    ok(&host, &logshipping::job_history(DTA), "");
    host
}

fn input() -> serde_json::Value {
    json!({"instance": DR, "backup_path": NEW})
}

#[test]
fn reprotect_declares_itself_idempotent() {
    assert_eq!(<Reprotect as Plugin>::describe().effect(), Effect::Idempotent);
    assert_eq!(<Reprotect as Plugin>::describe().name(), "logshipping-reprotect");
}

#[test]
fn the_backup_job_writes_to_the_new_path_a_full_backup_is_forced_and_the_jobs_enabled() {
    let host = recovered(true, FULL_OLD, LOG_OLD, false);
    let check = host.call::<Reprotect>(Mode::Check, input()).expect("check");
    assert!(check.changed, "{}", check.summary);
    assert!(check.summary.contains("would point"), "{}", check.summary);
    let writes: Vec<String> = host.command_lines().into_iter().filter(|c| !c.contains("SELECT")).collect();
    assert!(writes.is_empty(), "check only reads: {writes:?}");

    let host = recovered(true, FULL_OLD, LOG_OLD, false);
    ok(&host, &logshipping::update_job(BACKUP_JOB, false), "");
    ok(&host, &update_job_step(BACKUP_JOB, 2, FULL_NEW), "");
    ok(&host, &update_job_step(BACKUP_JOB, 3, LOG_NEW), "");
    ok(&host, logshipping::FORCE_FULL_BACKUP, "");
    ok(&host, &logshipping::update_job(BACKUP_JOB, true), "");
    ok(&host, &logshipping::update_job(DTA, true), "");
    let outcome = host.call::<Reprotect>(Mode::Apply, input()).expect("re-protected");
    assert!(outcome.changed);
    let out = &outcome.output;
    assert_eq!(
        out["steps_changed"][0],
        json!({"step": "BackupFull", "from": r"\\PRDSQL01\BizTalkBackup", "to": NEW})
    );
    assert_eq!(out["steps_changed"][1]["step"], "MarkAndBackupLog");
    assert_eq!(out["full_backup_forced"], true);
    assert_eq!(
        out["jobs_enabled"],
        json!([DTA]),
        "the backup job was enabled already; the DBA's job is not BizTalk's"
    );
    assert_eq!(out["jobs_kept_disabled"], json!([CLEANUP]));
    assert_eq!(out["last_runs"][0], json!({"job": BACKUP_JOB, "outcome": "not run yet"}));
    let lines = host.command_lines();
    let order: Vec<usize> =
        ["@enabled = 0", "sp_update_jobstep", "sp_ForceFullBackup", "(BizTalkMgmtDb)', @enabled = 1"]
            .iter()
            .map(|w| lines.iter().position(|l| l.contains(w)).unwrap_or_else(|| panic!("{w} not run")))
            .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "disabled, steps, force, enabled: {lines:#?}");
    assert_eq!(outcome.evidence.len(), lines.len(), "every command is evidence");
}

#[test]
fn a_rerun_finds_everything_done_and_an_interrupted_attempt_is_finished() {
    let host = recovered(true, FULL_NEW, &LOG_NEW.replace("DRBAK01", "drbak01"), true);
    let outcome = host.call::<Reprotect>(Mode::Apply, input()).expect("nothing to do");
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["full_backup_forced"], false);
    assert!(host.command_lines().iter().all(|l| l.contains("SELECT")), "only reads");

    // Interrupted after the steps changed, before the force: the job is still disabled.
    let host = recovered(false, FULL_NEW, LOG_NEW, true);
    ok(&host, logshipping::FORCE_FULL_BACKUP, "");
    ok(&host, &logshipping::update_job(BACKUP_JOB, true), "");
    let outcome = host.call::<Reprotect>(Mode::Apply, input()).expect("finished");
    assert!(outcome.changed);
    assert_eq!(outcome.output["steps_changed"], json!([]));
    assert_eq!(outcome.output["full_backup_forced"], true);
    assert_eq!(outcome.output["jobs_enabled"], json!([BACKUP_JOB]));
}

#[test]
fn an_unrecovered_instance_or_an_unreadable_command_stops() {
    let host = FakeHost::new().with_target(DR);
    ok(&host, logshipping::DATABASE_STATES, "BizTalkMgmtDb|RESTORING\r\n");
    let err = host.call::<Reprotect>(Mode::Check, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("RESTORING, not recovered"), "{}", err.message());

    let odd = "exec [dbo].[sp_BackupAllFull_Schedule] 'd', 'BTS', -- the share\r\n";
    let host = recovered(true, odd, LOG_OLD, true);
    let err = host.call::<Reprotect>(Mode::Check, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err:?}");
    assert!(err.message().contains("-- the share"), "the raw command: {}", err.message());
}
