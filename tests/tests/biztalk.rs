//! The BizTalk DR-site preparation (`workflows/dr-site-preparation.toml`) against a fresh lab,
//! through the real `drover` and `drover-lab` binaries and the real plugin pack: the final state
//! of the lab, a second run that changes nothing, faults that fail the run until cleared (one of
//! them after the host instances were created, the hook of the compensation test), and a
//! SIGKILL in the middle of a join.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_tests::lab::{BTS_HOST_PASSWORD, ISOLATED_HOST_PASSWORD, LabRun, instances};
use drover_tests::{lab_bin, stderr, stdout, workspace_root};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DR: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];
const PRODUCTION: [&str; 3] = ["PRDBTS01", "PRDBTS02", "PRDSSO01"];

fn service<'a>(lab: &'a Value, server: &str, name: &str) -> Option<&'a Value> {
    lab["servers"][server]["services"].as_array().unwrap().iter().find(|s| s["name"] == name)
}

/// The lab after a successful DR-site preparation, as the issue states it.
fn assert_prepared(lab: &Value, before: &Value) {
    let group = &lab["group"];
    assert_eq!(group["master-secret-server"], "PRDSSO01", "no DR server became master secret server");
    for server in DR {
        let admin = &lab["servers"][server]["registry"]["SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration"];
        assert_eq!(admin["MgmtDBServer"]["data"], "PRDSQL01", "{server} joined the production group");
        assert_eq!(admin["MgmtDBName"]["data"], "BizTalkMgmtDb");
        assert!(group["members"].as_array().unwrap().iter().any(|m| m == server), "{server} is a member");
        for svc in lab["servers"][server]["services"].as_array().unwrap() {
            let name = svc["name"].as_str().unwrap();
            if name.starts_with("BTSSvc$") || name == "RuleEngineUpdateService" {
                assert_eq!(svc["start-type"], "disabled", "{server} {name}");
                assert_eq!(svc["state"], "stopped", "{server} {name}");
            }
        }
        let gac: Vec<&str> = lab["servers"][server]["gac"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert!(
            gac.contains(&"Contoso.Orders.Schemas") && gac.contains(&"Contoso.Orders.Maps"),
            "{server}: {gac:?}"
        );
    }
    // Host instances mirror production per the mapping, installed, disabled and stopped.
    let dr_instances: Vec<(String, String)> = group["host-instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["server"].as_str().unwrap().starts_with("DR"))
        .map(|i| {
            assert_eq!(i["configuration-state"], 1, "{i}");
            assert_eq!(i["is-disabled"], true, "{i}");
            assert_eq!(i["service-state"], "stopped", "{i}");
            let service = service(
                lab,
                i["server"].as_str().unwrap(),
                &format!("BTSSvc${}", i["host"].as_str().unwrap()),
            );
            // Each runs as its host's production instances: the isolated host has its own
            // account, and no Windows service (its work runs in IIS).
            // The password is its host's secret (bts-host-<host>).
            let password = if i["host"] == "BizTalkServerIsolatedHost" {
                assert_eq!(i["account"], "CONTOSO\\svc-bts-ihost", "{i}");
                assert!(service.is_none(), "an isolated host has no Windows service: {i}");
                ISOLATED_HOST_PASSWORD
            } else {
                assert_eq!(i["account"], "CONTOSO\\svc-bts", "{i}");
                assert!(service.is_some(), "the Windows service of {i} exists");
                BTS_HOST_PASSWORD
            };
            let sha = format!("{:x}", Sha256::digest(password.as_bytes()));
            assert_eq!(i["password-sha256"], sha.as_str(), "the instance got its host's password: {i}");
            (i["host"].as_str().unwrap().to_string(), i["server"].as_str().unwrap().to_string())
        })
        .collect();
    let mut expected = vec![
        ("ReceiveHost".to_string(), "DRBTS01".to_string()),
        ("SendHost".to_string(), "DRBTS01".to_string()),
        ("SendHost".to_string(), "DRBTS02".to_string()),
        ("ProcessingHost".to_string(), "DRBTS02".to_string()),
        ("BizTalkServerIsolatedHost".to_string(), "DRBTS01".to_string()),
    ];
    let mut found = dr_instances.clone();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
    // Production is untouched: its servers, and its host instances.
    for server in PRODUCTION {
        assert_eq!(lab["servers"][server], before["servers"][server], "{server} was changed");
    }
    let production_instances = |l: &Value| -> Vec<Value> {
        l["group"]["host-instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["server"].as_str().unwrap().starts_with("PRD"))
            .cloned()
            .collect()
    };
    assert_eq!(production_instances(lab), production_instances(before), "production host instances changed");
    // Every DR server was joined exactly once.
    let joins: Vec<&str> = lab["joins"].as_array().unwrap().iter().map(|j| j.as_str().unwrap()).collect();
    assert_eq!(joins, DR.to_vec(), "each DR server joined once, one at a time");
}

#[test]
fn dr_site_preparation_prepares_a_fresh_lab_and_a_second_run_changes_nothing() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let before = lab.state();
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let after = lab.state();
    assert_prepared(&after, &before);

    let run = lab.sandbox.last_run();
    let status = lab.sandbox.status(&run);
    let host_instances =
        instances(&status).into_iter().find(|i| i["key"] == "host-instances[DRBTS01]").unwrap();
    let warnings = host_instances["output"]["warnings"].to_string();
    assert!(
        warnings.contains("the DR site has 3 runtime servers for 2 mapped production servers: DRBTS03 carries no host instance"),
        "a DR site of another size is allowed and warned about: {warnings}"
    );
    // The rendered configuration file held passwords: it is gone, and they never reached the journal.
    for server in DR {
        let files = after["servers"][server]["files"].to_string();
        assert!(!files.contains(".xml"), "{server} still holds the rendered configuration: {files}");
    }
    let journal = lab.sandbox.journal_dump();
    assert!(journal.contains("DRBTS01"), "the dump holds the run");
    assert!(!journal.contains("Sso-Pa55-4-DR"), "a password is in the journal");

    // Again on the finished lab: every step reports no change, and the lab stays as it is.
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let second = lab.sandbox.status(&lab.sandbox.last_run());
    let all = instances(&second);
    // The last 1: the DR site's SSO master secret server in waiting (DRSSO01).
    assert_eq!(all.len(), 3 + 3 + 3 + 1 + 3 + 3 + 1, "every step instance ran");
    for i in &all {
        assert_eq!(i["state"], "succeeded", "{i}");
        assert!(!i["output"].is_null(), "{i}");
    }
    let changed: Vec<&Value> =
        all.iter().filter(|i| i["summary"].is_string() && step_changed(&lab, i)).collect();
    assert!(changed.is_empty(), "steps changed something on a prepared site: {changed:#?}");
    let mut again = lab.state();
    again["servers"].as_object_mut().unwrap().values_mut().for_each(|s| {
        s["files"] = Value::Null;
    });
    let mut expected = after.clone();
    expected["servers"].as_object_mut().unwrap().values_mut().for_each(|s| {
        s["files"] = Value::Null;
    });
    assert_eq!(again, expected, "the second run changed the lab (configuration logs aside)");
}

/// Whether the step instance reported a change (from the journal's `attempt-succeeded` event).
fn step_changed(lab: &LabRun, instance: &Value) -> bool {
    let run = lab.sandbox.last_run();
    let out = lab.sandbox.run(&["events", &run, "--ndjson"]);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "attempt-succeeded" && e["step_key"] == instance["key"])
        .any(|e| e["data"]["changed"] == true)
}

/// Runs with `fault` set: the run fails naming `cause`; cleared, `retry` and `resume` finish it.
fn fails_then_recovers(fault: &[&str], step: &str, cause: &str) {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let before = lab.state();
    let mut args = vec!["fault", "set"];
    args.extend(fault);
    let out = lab.lab(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();
    let status = lab.sandbox.status(&run);
    let failed = instances(&status).into_iter().find(|i| i["key"] == step).unwrap();
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let why = failed["why"].as_str().unwrap();
    assert!(why.contains(cause), "the status names the cause {cause:?}: {why}");
    assert!(why.contains(&format!("drover retry {run} {step}")), "and the way on: {why}");

    let out = lab.lab(&["fault", "clear", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The operator retries every failed instance (a fault may fail several), then resumes.
    for failed in instances(&status).iter().filter(|i| i["state"] == "failed") {
        let key = failed["key"].as_str().unwrap();
        let out = lab.drover(&["retry", &run, key, "--comment", "fault cleared"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = lab.drover(&["--quiet", "resume", &run]).output().unwrap();
    assert!(out.status.success(), "resume completes: {}{}", stdout(&out), stderr(&out));
    assert_prepared(&lab.state(), &before);
}

/// The hook of the compensation test: a service policy (`access-denied`) on a host instance's
/// service fails `disable-host-services[DRBTS01]` for good, after every join and the host
/// instances succeeded, and before that step changed anything on DRBTS01.
#[test]
fn a_denied_host_service_fails_the_run_after_the_joins_and_host_instances() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.fault(&["access-denied", "DRBTS01", "BTSSvc$ReceiveHost"]);
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let status = lab.sandbox.status(&lab.sandbox.last_run());
    let state = |key: &str| {
        let instance = instances(&status).into_iter().find(|i| i["key"] == key).unwrap();
        (
            instance["state"].as_str().unwrap().to_string(),
            instance["why"].as_str().unwrap_or_default().to_string(),
        )
    };
    for key in ["join[DRBTS01]", "join[DRBTS02]", "join[DRBTS03]", "host-instances[DRBTS01]"] {
        assert_eq!(state(key).0, "succeeded", "{key}");
    }
    let (failed, why) = state("disable-host-services[DRBTS01]");
    assert_eq!(failed, "failed");
    assert!(why.contains("Access is denied"), "{why}");

    let group = lab.group();
    for server in DR {
        assert!(group.members.iter().any(|m| m == server), "{server} joined: {group:?}");
    }
    assert_eq!(group.hosts_on("DRBTS01"), ["ReceiveHost", "SendHost", "BizTalkServerIsolatedHost"]);
    assert_eq!(group.hosts_on("DRBTS02"), ["SendHost", "ProcessingHost"]);
    assert!(group.unjoins.is_empty() && group.uninstalls.is_empty(), "nothing undone: {group:?}");
    assert_eq!(
        lab.service("DRBTS01", "BTSSvc$ReceiveHost"),
        Some(("auto".to_string(), "stopped".to_string())),
        "the denied change did not happen"
    );
}

#[test]
fn sql_unreachable_during_the_join_fails_the_run_until_cleared() {
    fails_then_recovers(
        &["join-sql-unreachable"],
        "join[DRBTS01]",
        "the group's SQL Server did not answer: [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.",
    );
}

#[test]
fn sql_unreachable_before_the_join_fails_the_prerequisites_until_cleared() {
    fails_then_recovers(&["sql-unreachable"], "prerequisites[DRBTS01]", "PRDSQL01");
}

#[test]
fn a_missing_prerequisite_fails_the_run_until_cleared() {
    fails_then_recovers(&["missing-prereq", "DRBTS02", "dotnet"], "prerequisites[DRBTS02]", "dotnet");
}

#[test]
fn a_service_that_will_not_stop_fails_the_run_until_cleared() {
    fails_then_recovers(
        &["service-stuck", "DRBTS03", "RuleEngineUpdateService"],
        "disable-services[DRBTS03]",
        "service RuleEngineUpdateService on DRBTS03 will not stop",
    );
}

#[test]
fn sigkill_during_a_join_then_resume_joins_no_server_twice() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let before = lab.state();
    let mut child = lab
        .drover(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory])
        .env("DROVER_LAB_JOIN_DELAY_MS", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill drover once the join of DRBTS02 has started (its intent is journaled).
    let started = Instant::now();
    loop {
        let runs = lab.sandbox.run(&["runs", "--json"]);
        let run = serde_json::from_slice::<Value>(&runs.stdout)
            .ok()
            .and_then(|v| v[0]["run"].as_str().map(String::from));
        if let Some(run) = run {
            let events = stdout(&lab.sandbox.run(&["events", &run, "--ndjson"]));
            if events.lines().any(|l| {
                l.contains("\"kind\":\"attempt-started\"") && l.contains("\"step_key\":\"join[DRBTS02]\"")
            }) {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the join of DRBTS02 never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let run = lab.sandbox.last_run();
    let out =
        lab.drover(&["--quiet", "resume", &run]).env("DROVER_LAB_JOIN_DELAY_MS", "200").output().unwrap();
    assert!(out.status.success(), "resume completes: {}{}", stdout(&out), stderr(&out));
    assert_prepared(&lab.state(), &before);
    let events = stdout(&lab.sandbox.run(&["events", &run, "--ndjson"]));
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"step_key\":\"join[DRBTS02]\"") && l.contains("recovered-by-check")),
        "the interrupted join was settled by the plugin's check:\n{events}"
    );
}

#[test]
fn the_committed_lab_inventory_is_the_one_drover_lab_init_writes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let written = dir.path().join("inventory.toml");
    let out = Command::new(lab_bin())
        .args(["init", "--state", state.to_str().unwrap(), "--inventory", written.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let body = |text: &str| -> String {
        text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n").trim().to_string()
    };
    let generated = std::fs::read_to_string(&written)
        .unwrap()
        .replace(&format!("{:?}", lab_bin().display().to_string()), "\"drover-lab\"")
        .replace(&format!("{:?}", state.display().to_string()), "\"lab.json\"");
    let committed = std::fs::read_to_string(workspace_root().join("workflows/lab-inventory.toml")).unwrap();
    assert_eq!(body(&committed), body(&generated), "workflows/lab-inventory.toml is stale: regenerate it");
}
