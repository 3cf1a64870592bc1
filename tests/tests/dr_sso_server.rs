//! The DR site's Enterprise SSO master secret server in the DR-site preparation
//! (`workflows/dr-site-preparation.toml`, seed B: "including the disaster recovery Enterprise
//! Single Sign-On Master Secret server"): against a fresh lab, DRSSO01 joins the production SSO
//! system alone (SSO, answered Join: No to "Is this the master secret server?"), is no member of
//! the group and runs no host instance, holds a copy of the master secret's backup read from
//! production for its promotion at failover, and production's master secret server stays the
//! one; a second run changes nothing; without the backup the run stops saying how to make one.

use drover_tests::lab::LabRun;
use drover_tests::{stderr, stdout};
use serde_json::Value;

const DR_SSO: &str = "DRSSO01";
const BACKUP: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak";
const ENTSSO_SQL: &str = r"SOFTWARE\Microsoft\ENTSSO\SQL";

fn file<'a>(state: &'a Value, server: &str, path: &str) -> &'a Value {
    &state["servers"][server]["files"][path.to_lowercase()]["contents"]
}

#[test]
fn the_dr_sso_server_joins_the_sso_system_only_and_holds_the_secret_backup() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let before = lab.state();
    assert!(before["servers"][DR_SSO]["registry"].get(ENTSSO_SQL).is_none(), "not configured yet");
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let after = lab.state();
    let server = &after["servers"][DR_SSO];

    // In the production SSO system, through Enterprise SSO alone.
    assert_eq!(server["registry"][ENTSSO_SQL]["Server"]["data"], "PRDSQL01");
    assert_eq!(server["registry"][ENTSSO_SQL]["Database"]["data"], "SSODB");
    assert_eq!(server["configured-features"], serde_json::json!(["SSOServer,Engine"]));
    let entsso = server["services"].as_array().unwrap().iter().find(|s| s["name"] == "ENTSSO").unwrap();
    assert_eq!((&entsso["start-type"], &entsso["state"]), (&"auto".into(), &"running".into()), "{entsso}");
    assert_eq!(entsso["account"], r"CONTOSO\svc-sso");
    // Not the master secret server, not a runtime member.
    let group = &after["group"];
    assert_eq!(group["master-secret-server"], "PRDSSO01", "production keeps the master secret");
    assert!(!group["members"].as_array().unwrap().iter().any(|m| m == DR_SSO), "not a group member");
    assert!(!group["host-instances"].to_string().contains(DR_SSO), "no host instance");
    assert!(!after["joins"].to_string().contains(DR_SSO), "no group join");
    assert!(server["registry"].to_string().find("MgmtDB").is_none(), "no group membership in its registry");
    // Ready to be promoted: the backup of the master secret, byte for byte, and the way to use it.
    assert_eq!(file(&after, DR_SSO, BACKUP), file(&before, "PRDSSO01", BACKUP), "the backup is staged");
    assert!(!file(&after, DR_SSO, BACKUP).is_null());
    assert_eq!(
        after["servers"]["PRDSSO01"], before["servers"]["PRDSSO01"],
        "production's SSO server untouched"
    );
    let step = lab.last_instance("sso-server[DRSSO01]");
    assert_eq!(step["state"], "succeeded", "{step:#}");
    let ready = &step["output"]["secret_backup"];
    assert_eq!(ready["staged_at"], BACKUP, "{step:#}");
    assert!(ready["promote_with"].to_string().contains("ssoconfig -restoreSecret"), "{ready}");
    assert!(!server["files"].to_string().contains(".xml"), "the rendered configuration is gone");

    // Again: nothing to do, nothing changes.
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let again = lab.last_instance("sso-server[DRSSO01]");
    assert_eq!(again["state"], "succeeded");
    let run = lab.sandbox.last_run();
    let events = stdout(&lab.sandbox.run(&["events", &run, "--ndjson"]));
    let changed = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "attempt-succeeded" && e["step_key"] == "sso-server[DRSSO01]")
        .any(|e| e["data"]["changed"] == true);
    assert!(!changed, "the second run reported a change");
    assert_eq!(lab.state()["servers"][DR_SSO], after["servers"][DR_SSO], "the second run changed DRSSO01");
}

#[test]
fn without_the_master_secret_backup_the_dr_sso_server_is_not_called_ready() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let out = lab.lab(&["exec", "PRDSSO01", "--", "rm", "-f", BACKUP]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let step = lab.last_instance("sso-server[DRSSO01]");
    assert_eq!(step["state"], "failed", "{step:#}");
    let why = step["why"].as_str().unwrap();
    assert!(why.contains(&format!("no master secret backup at PRDSSO01:{BACKUP}")), "{why}");
    assert!(why.contains("ssoconfig -backupSecret"), "says how to make one: {why}");
    // It joined the SSO system first; the backup is what is missing.
    assert_eq!(
        lab.state()["servers"][DR_SSO]["configured-features"],
        serde_json::json!(["SSOServer,Engine"])
    );
}
