//! The failover's SQL side (issue 18, fidelity review §4.2 F0, F2, F3) against the lab: a small
//! workflow, written here into the test sandbox (the real `dr-failover.toml` comes later), runs
//! the log-shipping plugins after `drover-lab disaster` took production down (its plan first,
//! through the read-only grants: only Restore To Mark would change anything): measure (F0:
//! the sets on DRSQL01, production gone, the data-loss window the recovery report shows), catch up
//! (F2) and Restore To Mark (F3: the two log-shipping jobs disabled, every BizTalk database
//! ONLINE at the newest mark). A second run changes nothing. Under the lab's faults: a lagging
//! instance is caught up before Restore To Mark; a gap in the log chain stops the catch-up naming
//! the instance and SQL Server's error; Restore To Mark failing stops with the job's message,
//! leaves the databases RESTORING, and a retry after the fix recovers them.
//!
//! The drill (X2): with production still answering, the same steps recover DRSQL01, measure says
//! production is alive, and `logshipping-clean` drops the recovered databases and forces a full
//! backup at the source, so that the next backup reseeds DRSQL01 (its databases RESTORING again).
//!
//! The SQL side needs nothing of the DR-site preparation: a fresh lab already ships logs to
//! DRSQL01 (`lab/PROTOCOL.md`, "DR SQL and log shipping").

use std::process::Command;

use drover_tests::lab::{self, LabRun};
use drover_tests::{lab_bin, stderr, stdout, wasm};
use serde_json::Value;

const DR_SQL: &str = "DRSQL01";
const FAILED_AT: &str = "2026-11-22T10:07:30Z";
const NEWEST_MARK: &str = "BTS_2026_11_22_10_00_01_000";
const READS: &str = r#"read-only = ["sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT*"]"#;

fn workflow() -> String {
    let grants = lab::DR_SQL_GRANTS;
    let recovery = lab::sql_recovery_steps(Some("measure"));
    format!(
        r#"name = "failover-sql"
version = "1.0.0"
description = "The failover's SQL side: measure log shipping, catch up, Restore To Mark"

[params.failure-time]
type = "string"
description = "When production failed (RFC 3339 with a zone), as declared at the gate"

[report]
rpo = "steps.measure.output.rpo"

[[steps]]
id = "measure"
plugin = "logshipping-measure@^1"
phase = "Declare"
{grants}
with = {{ destinations = ["DRSQL01"], source = "PRDSQL01", failure_time = "{{{{ params.failure_time }}}}" }}
{recovery}"#
    )
}

/// [`workflow`] and the drill's clean-up after Restore To Mark.
fn drill_workflow() -> String {
    format!(
        r#"{}
[[steps]]
id = "clean"
plugin = "logshipping-clean@^1"
phase = "Clean up"
needs = ["restore-to-mark"]
grants = {{ targets = ["DRSQL01"], programs = ["sqlcmd"], {READS} }}
with = {{ destinations = ["DRSQL01"], source = "PRDSQL01" }}
"#,
        workflow().replace(r#"name = "failover-sql""#, r#"name = "drill-sql""#)
    )
}

/// A fresh lab with the log-shipping plugins and the workflow above, under `faults`, production
/// gone at [`FAILED_AT`].
fn failed_over_lab(faults: &[&[&str]]) -> LabRun {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.sandbox.install(&wasm::LOGSHIPPING);
    lab.workflow = lab.sandbox.write("failover-sql.toml", &workflow());
    for fault in faults {
        lab.fault(fault);
    }
    lab.disaster(FAILED_AT);
    lab
}

/// The declared failure time, as the lab recorded it.
fn failure_param(lab: &LabRun) -> String {
    let at = lab.state()["log-shipping"]["disaster"]["at"].as_str().expect("the disaster's time").to_owned();
    assert_eq!(at, FAILED_AT);
    format!("failure-time={at}")
}

fn destination(lab: &LabRun) -> Value {
    lab.state()["log-shipping"]["destinations"][DR_SQL].clone()
}

fn databases(dest: &Value) -> Vec<(String, String)> {
    let map = dest["databases"].as_object().expect("the databases");
    map.iter().map(|(name, state)| (name.clone(), state.as_str().unwrap_or_default().to_owned())).collect()
}

fn job<'a>(dest: &'a Value, name: &str) -> &'a Value {
    dest["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn changed_steps(lab: &LabRun) -> Vec<String> {
    let run = lab.sandbox.last_run();
    stdout(&lab.sandbox.run(&["events", &run, "--ndjson"]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "attempt-succeeded" && e["data"]["changed"] == true)
        .map(|e| e["step_key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_failover_recovers_drsql01_to_the_newest_mark_and_measures_the_data_loss_window() {
    let lab = failed_over_lab(&[]);
    // The plan reads through the read-only grants and changes nothing (LabRun::plan checks).
    let plan = lab.plan(&[&failure_param(&lab)], None);
    let expected = [("measure", "no-change"), ("catch-up", "no-change"), ("restore-to-mark", "would-change")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(drover_tests::lab::verdicts(&plan), expected, "{plan:#}");
    // The plan names what cannot be undone, as each plugin declares it.
    let effects: Vec<(&str, &str)> = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["effect"].as_str().unwrap_or("none")))
        .collect();
    assert_eq!(
        effects,
        [("measure", "read-only"), ("catch-up", "idempotent"), ("restore-to-mark", "irreversible")],
        "{plan:#}"
    );
    let param = failure_param(&lab);
    let text = lab
        .drover(&["plan", &lab.workflow, "--inventory", &lab.inventory, "--param", &param])
        .output()
        .expect("drover plan");
    let text = stdout(&text);
    assert!(text.contains("~ restore-to-mark: would change (irreversible): "), "{text}");
    assert!(
        text.contains("irreversible, cannot be undone or repeated once started: restore-to-mark\n"),
        "{text}"
    );

    let out = lab.run(&[&failure_param(&lab)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let dest = destination(&lab);
    let dbs = databases(&dest);
    assert_eq!(dbs.len(), 5, "{dbs:?}");
    assert!(dbs.iter().all(|(_, state)| state == "ONLINE"), "{dbs:?}");
    assert_eq!(dest["recovered-mark"], NEWEST_MARK);
    assert_eq!(job(&dest, "BTS Log Shipping - Get Backup History")["enabled"], false);
    assert_eq!(job(&dest, "BTS Log Shipping - Restore Databases")["enabled"], false);
    assert_eq!(
        job(&dest, "BTS Log Shipping - Restore To Mark")["history"].as_array().unwrap().len(),
        2,
        "one run"
    );

    let measure = lab.last_instance("measure");
    let output = &measure["output"];
    assert_eq!(output["production_alive"], false, "{output:#}");
    assert_eq!(output["agree"], true);
    assert_eq!(output["instances"][0]["last_restored"]["id"], 4);
    assert_eq!(output["recovery_set"]["mark"], NEWEST_MARK);
    assert_eq!(output["rpo"]["recovery_point"], "2026-11-22T10:00:01.000Z");
    assert_eq!(output["rpo"]["failure_time"], FAILED_AT);
    let restored = lab.last_instance("restore-to-mark");
    assert_eq!(restored["output"]["instances"][0]["recovered_to"]["mark"], NEWEST_MARK);
    assert_eq!(changed_steps(&lab), ["restore-to-mark"]);

    let run = lab.sandbox.last_run();
    let report = stdout(&lab.drover(&["report", &run]).output().expect("drover report"));
    assert!(report.contains("| data-loss window (RPO) | **7 min 29 s** |"), "{report}");

    // Again: everything is in place; Restore To Mark is not run twice.
    let out = lab.run(&[&failure_param(&lab)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(changed_steps(&lab), Vec::<String>::new());
    assert_eq!(destination(&lab), dest, "the second run changed DRSQL01");
    assert_eq!(lab.last_instance("restore-to-mark")["output"]["instances"][0]["already"], true);
}

#[test]
fn a_lagging_instance_is_caught_up_before_restore_to_mark() {
    let lab = failed_over_lab(&[&["logshipping-lag", DR_SQL, "2"]]);
    let out = lab.run(&[&failure_param(&lab)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let measured = lab.last_instance("measure");
    assert_eq!(measured["output"]["instances"][0]["last_restored"]["id"], 2, "{measured:#}");
    let caught = lab.last_instance("catch-up");
    assert_eq!(caught["output"]["caught_up"], serde_json::json!([DR_SQL]), "{caught:#}");
    assert_eq!(caught["output"]["restored_set"]["id"], 4);
    let dest = destination(&lab);
    assert!(job(&dest, "BTS Log Shipping - Restore Databases")["history"].as_array().unwrap().len() >= 2);
    assert!(databases(&dest).iter().all(|(_, state)| state == "ONLINE"));
    assert_eq!(dest["recovered-mark"], NEWEST_MARK);
}

#[test]
fn a_gap_in_the_log_chain_stops_the_catch_up_naming_the_instance_and_sqls_error() {
    let lab = failed_over_lab(&[&["logshipping-lag", DR_SQL, "2"], &["logshipping-gap", DR_SQL]]);
    let out = lab.run(&[&failure_param(&lab)]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let step = lab.last_instance("catch-up");
    assert_eq!(step["state"], "failed", "{step:#}");
    let why = step["why"].as_str().unwrap();
    assert!(why.contains("the log chain has a gap on DRSQL01"), "{why}");
    assert!(why.contains("too recent to apply to the database") && why.contains("(Error 4305)"), "{why}");
    let dest = destination(&lab);
    assert!(databases(&dest).iter().all(|(_, state)| state == "RESTORING"), "Restore To Mark never ran");
    assert!(job(&dest, "BTS Log Shipping - Restore To Mark")["history"].as_array().unwrap().is_empty());
}

#[test]
fn restore_to_mark_failing_stops_with_the_jobs_message_and_a_retry_after_the_fix_recovers() {
    let lab = failed_over_lab(&[&["restore-to-mark-fails", DR_SQL]]);
    let out = lab.run(&[&failure_param(&lab)]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let step = lab.last_instance("restore-to-mark");
    assert_eq!(step["state"], "failed", "{step:#}");
    let why = step["why"].as_str().unwrap();
    assert!(
        why.contains("'BTS Log Shipping - Restore To Mark' failed on DRSQL01 (SQL Server errors 3201, 3013)"),
        "{why}"
    );
    assert!(why.contains("Operating system error 53(The network path was not found.)"), "{why}");
    let dest = destination(&lab);
    assert!(databases(&dest).iter().all(|(_, state)| state == "RESTORING"), "{dest:#}");
    assert_eq!(
        job(&dest, "BTS Log Shipping - Restore Databases")["enabled"],
        false,
        "disabled before the job ran"
    );

    // The share is back: the retry starts the job again, which recovers the databases.
    let out = lab.lab(&["fault", "clear", "restore-to-mark-fails", DR_SQL]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = lab.sandbox.last_run();
    let out =
        lab.drover(&["retry", &run, "restore-to-mark", "--comment", "share reachable"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.drover(&["--quiet", "resume", &run]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dest = destination(&lab);
    assert!(databases(&dest).iter().all(|(_, state)| state == "ONLINE"), "{dest:#}");
    assert_eq!(dest["recovered-mark"], NEWEST_MARK);
}

#[test]
fn the_drill_recovers_drsql01_then_cleans_it_and_log_shipping_reseeds_it() {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.sandbox.install(&wasm::LOGSHIPPING);
    lab.workflow = lab.sandbox.write("drill-sql.toml", &drill_workflow());
    let out = lab.run(&[&format!("failure-time={FAILED_AT}")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let measured = lab.last_instance("measure");
    assert_eq!(measured["output"]["production_alive"], true, "{measured:#}");
    assert_eq!(measured["output"]["sets_behind_source"], 0);
    assert!(measured["summary"].as_str().unwrap().contains("production's PRDSQL01 still answers"));
    assert_eq!(lab.last_instance("restore-to-mark")["state"], "succeeded");

    let clean = lab.last_instance("clean");
    assert_eq!(clean["output"]["full_backup_forced"], true, "{clean:#}");
    assert_eq!(clean["output"]["instances"][0]["dropped"].as_array().unwrap().len(), 5);
    let state = lab.state();
    assert_eq!(state["log-shipping"]["force-full"], true, "sp_ForceFullBackup at the source");
    let dest = &state["log-shipping"]["destinations"][DR_SQL];
    assert!(databases(dest).is_empty(), "dropped: {dest:#}");
    assert_eq!(job(dest, "BTS Log Shipping - Get Backup History")["enabled"], true);
    assert_eq!(job(dest, "BTS Log Shipping - Restore Databases")["enabled"], true);

    // Time passes: the source's next backup is a full set, which DRSQL01 imports and restores.
    let out = Command::new(lab_bin())
        .args(["backup", "--state", &lab.state])
        .env("DROVER_LAB_NOW", "2026-11-22T10:15:01Z")
        .output()
        .expect("run drover-lab backup");
    assert!(out.status.success(), "drover-lab backup: {}", stderr(&out));
    let state = lab.state();
    let full = state["log-shipping"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["kind"] == "full")
        .cloned();
    let dest = &state["log-shipping"]["destinations"][DR_SQL];
    assert_eq!(dest["last-restored"], full.expect("a new full set")["id"], "{dest:#}");
    let dbs = databases(dest);
    assert_eq!(dbs.len(), 5);
    assert!(dbs.iter().all(|(_, state)| state == "RESTORING"), "reseeded: {dbs:?}");
}
