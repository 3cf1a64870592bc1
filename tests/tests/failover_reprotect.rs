//! Re-protect after a failover (issue 18, F14) against the lab: a small workflow, written here
//! into the test sandbox, runs the failover's SQL steps after `drover-lab disaster` took
//! production down (catch-up, Restore To Mark: see failover_sql.rs) and then
//! `logshipping-reprotect` on the recovered DRSQL01. The Backup BizTalk Server job Restore To Mark
//! recreated still writes to production's dead share; after the step both its steps write to the
//! new location, a full backup is forced, and the BizTalk jobs production kept disabled are
//! enabled, but `MessageBox_Message_Cleanup_*` (Microsoft: keep it disabled). The lab's next
//! backup (`drover-lab backup`) then takes a full set and a log set into DRSQL01's own history at
//! the new location. A second run changes nothing, and a plan after it says so.

use std::process::Command;

use drover_tests::lab::{self, LabRun};
use drover_tests::{lab_bin, stderr, stdout, wasm};
use serde_json::{Value, json};

const DR_SQL: &str = "DRSQL01";
const FAILED_AT: &str = "2026-11-22T10:07:30Z";
const NEW_PATH: &str = r"\\DRBAK01\BizTalkBackup";
const OLD_PATH: &str = r"\\PRDSQL01\BizTalkBackup";
const BACKUP_JOB: &str = "Backup BizTalk Server (BizTalkMgmtDb)";
const DTA_PURGE: &str = "DTA Purge and Archive (BizTalkDTADb)";
const MSG_CLEANUP: &str = "MessageBox_Message_Cleanup_BizTalkMsgBoxDb";

fn workflow() -> String {
    let grants = lab::DR_SQL_GRANTS;
    let recovery = lab::sql_recovery_steps(None);
    format!(
        r#"name = "failover-reprotect"
version = "1.0.0"
description = "The failover's SQL side, then re-protect the new production"
{recovery}
[[steps]]
id = "reprotect"
plugin = "logshipping-reprotect@^1"
phase = "Re-protect"
needs = ["restore-to-mark"]
{grants}
with = {{ instance = "DRSQL01", backup_path = '{NEW_PATH}' }}
"#
    )
}

/// A fresh lab whose production kept two BizTalk jobs disabled (as Microsoft ships them: "Enabled
/// by default: No"), then gone at [`FAILED_AT`].
fn failed_over_lab() -> LabRun {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.sandbox.install(&wasm::LOGSHIPPING);
    lab.sandbox.install(&[wasm::LOGSHIPPING_REPROTECT]);
    lab.workflow = lab.sandbox.write("failover-reprotect.toml", &workflow());
    let mut state: Value = serde_json::from_slice(&lab.state_file()).expect("the lab's state");
    let jobs = state["log-shipping"]["source-agent"]["jobs"].as_array_mut().expect("the source's jobs");
    for job in jobs.iter_mut().filter(|j| j["name"] == DTA_PURGE || j["name"] == MSG_CLEANUP) {
        job["enabled"] = json!(false);
    }
    lab.set_state(&serde_json::to_vec_pretty(&state).expect("a state"));
    lab.disaster(FAILED_AT);
    lab
}

fn destination(lab: &LabRun) -> Value {
    lab.state()["log-shipping"]["destinations"][DR_SQL].clone()
}

fn job<'a>(dest: &'a Value, name: &str) -> &'a Value {
    dest["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

/// The location in the `BackupFull` and `MarkAndBackupLog` steps' commands of the backup job.
fn step_commands(dest: &Value) -> Vec<(String, String)> {
    job(dest, BACKUP_JOB)["steps"]
        .as_array()
        .expect("the backup job's steps")
        .iter()
        .filter(|s| s["name"] == "BackupFull" || s["name"] == "MarkAndBackupLog")
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["command"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_recovered_sql_server_backs_up_to_the_new_path_with_its_jobs_enabled_and_a_rerun_changes_nothing() {
    let lab = failed_over_lab();
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), ["restore-to-mark", "reprotect"]);

    let dest = destination(&lab);
    // Both steps write to the new location; only the location changed in their commands.
    let commands = step_commands(&dest);
    assert_eq!(commands.len(), 2, "{commands:?}");
    for (step, command) in &commands {
        assert!(
            command.contains(&format!("'{NEW_PATH}'")) && !command.contains(OLD_PATH),
            "{step}: {command}"
        );
    }
    assert!(
        commands[0]
            .1
            .starts_with("exec [dbo].[sp_BackupAllFull_Schedule] 'd' /* Frequency */, 'BTS' /* Name */, ")
    );
    assert_eq!(job(&dest, BACKUP_JOB)["enabled"], true);
    assert_eq!(dest["force-full"], true, "sp_ForceFullBackup on DRSQL01");
    assert_eq!(job(&dest, DTA_PURGE)["enabled"], true, "enabled by the step");
    assert_eq!(job(&dest, MSG_CLEANUP)["enabled"], false, "kept disabled, as Microsoft recommends");
    assert_eq!(
        job(&dest, "BTS Log Shipping - Restore Databases")["enabled"],
        false,
        "log shipping stays off"
    );

    let step = lab.last_instance("reprotect");
    let output = &step["output"];
    assert_eq!(
        output["steps_changed"],
        json!([
            {"step": "BackupFull", "from": OLD_PATH, "to": NEW_PATH},
            {"step": "MarkAndBackupLog", "from": OLD_PATH, "to": NEW_PATH},
        ]),
        "{output:#}"
    );
    assert_eq!(output["backup_path"], NEW_PATH);
    assert_eq!(output["full_backup_forced"], true);
    assert_eq!(
        output["jobs_enabled"],
        json!([DTA_PURGE]),
        "the backup job came back enabled, as production had it"
    );
    assert_eq!(output["jobs_kept_disabled"], json!([MSG_CLEANUP]));
    assert_eq!(output["last_runs"][0], json!({"job": BACKUP_JOB, "outcome": "not run yet"}));

    // Time passes: DRSQL01's own backup job takes a full set, then a log set, at the new location.
    let out = Command::new(lab_bin())
        .args(["backup", "--state", &lab.state])
        .env("DROVER_LAB_NOW", "2026-11-22T10:30:01Z")
        .output()
        .expect("drover-lab backup");
    assert!(out.status.success(), "production is gone, DRSQL01 backs up: {}", stderr(&out));
    let dest = destination(&lab);
    let sets: Vec<(&str, &str)> = dest["backups"]
        .as_array()
        .expect("DRSQL01's own backups")
        .iter()
        .map(|s| (s["kind"].as_str().unwrap_or_default(), s["location"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(sets, [("full", NEW_PATH), ("log", NEW_PATH)]);
    assert_eq!(dest["force-full"], Value::Null, "the forced full set was taken");
    let history = job(&dest, BACKUP_JOB)["history"].as_array().expect("history");
    assert_eq!(history.last().expect("a run")["run-status"], 1, "{history:#?}");

    // Again: the path is set, the jobs enabled; no second full backup is forced.
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    let again = lab.last_instance("reprotect");
    assert_eq!(again["output"]["full_backup_forced"], false, "{again:#}");
    assert_eq!(again["output"]["steps_changed"], json!([]));
    assert_eq!(again["output"]["last_runs"][0]["outcome"], "succeeded");
    assert_eq!(destination(&lab), dest, "the second run changed DRSQL01");

    // A plan, through the read-only grants, agrees and changes nothing (LabRun::plan checks).
    let plan = lab.plan(&[], None);
    let verdicts = drover_tests::lab::verdicts(&plan);
    assert!(verdicts.iter().all(|(_, v)| v == "no-change"), "{plan:#}");
}
