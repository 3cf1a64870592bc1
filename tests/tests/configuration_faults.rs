//! Failures of the configuration itself (issue 17, part 3): what happens when Configuration.exe
//! joins a server and Enterprise SSO cannot give it the master secret, or when an earlier
//! configuration stopped half-way. Each test sets a `drover-lab fault`, runs the real workflow of
//! `workflows/` against the lab, reads the failed step's `why` in `drover status --json` and the
//! exit code, then plays the administrator's fix and shows that the run finishes:
//!
//! - `sso-stopped PRDSSO01`: the master secret server's ENTSSO is stopped; every join stops,
//!   retryable, naming PRDSSO01 and how to start it; started (cleared), the run completes;
//! - `master-secret-unavailable [<server>]`: the secret cannot be retrieved; the DR SSO server
//!   (dr-site-preparation) and the rebuilt server's join from its exported configuration
//!   (server-replacement) stop, permanent, naming `ssoconfig -restoreSecret`; restored, they
//!   complete;
//! - `join-fails-after-sso DRBTS01`: Configuration.exe configures SSO, then fails on the group;
//!   the join stops naming the half-configured server, a retry does not run Configuration.exe
//!   over it again, and once the administrator unconfigured it (`Configuration.exe /U`) the
//!   retry joins it and a second run changes nothing.

use drover_tests::lab::LabRun;
use drover_tests::{stderr, stdout};
use serde_json::Value;

const DR: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];
const ADMINISTRATION: &str = "SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration";
const ENTSSO_SQL: &str = "SOFTWARE\\Microsoft\\ENTSSO\\SQL";
const CONFIGURATION_EXE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe";

/// The state and `why` of the step instance `key` of the newest run.
fn instance(lab: &LabRun, key: &str) -> (String, String) {
    let found = lab.last_instance(key);
    (found["state"].as_str().unwrap().to_string(), found["why"].as_str().unwrap_or_default().to_string())
}

/// Runs the workflow and expects it to fail (exit 1) at `key`; its `why`, which names the way on.
fn run_fails_at(lab: &LabRun, params: &[&str], key: &str) -> String {
    let out = lab.run(params);
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let (state, why) = instance(lab, key);
    assert_eq!(state, "failed", "{key}: {why}");
    let run = lab.sandbox.last_run();
    assert!(why.contains(&format!("drover retry {run} {key}")), "the way on is named: {why}");
    why
}

/// The operator retries every failed instance of the newest run, then resumes it: exit code.
fn retry_and_resume(lab: &LabRun) -> Option<i32> {
    let run = lab.sandbox.last_run();
    for failed in lab.last_instances().iter().filter(|i| i["state"] == "failed") {
        let key = failed["key"].as_str().unwrap();
        let out =
            lab.drover(&["retry", &run, key, "--comment", "fixed by the administrator"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = lab.drover(&["--quiet", "resume", &run]).output().unwrap();
    eprintln!("{}{}", stdout(&out), stderr(&out));
    out.status.code()
}

fn clear(lab: &LabRun, words: &[&str]) {
    let mut args = vec!["fault", "clear"];
    args.extend(words);
    let out = lab.lab(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `server`'s BizTalk group, as its 32-bit registry view names it.
fn mgmt_server(state: &Value, server: &str) -> Value {
    state["servers"][server]["registry"][ADMINISTRATION]["MgmtDBServer"]["data"].clone()
}

/// `server`'s SSO system, as the ENTSSO SQL values name it.
fn sso_server(state: &Value, server: &str) -> Value {
    state["servers"][server]["registry"][ENTSSO_SQL]["Server"]["data"].clone()
}

/// Every DR runtime server is in the group, each joined once, and DRSSO01 is in the SSO system.
fn assert_dr_site_joined(state: &Value) {
    for server in DR {
        assert_eq!(mgmt_server(state, server), "PRDSQL01", "{server} joined");
        let joins = state["joins"].as_array().unwrap();
        assert_eq!(joins.iter().filter(|j| *j == server).count(), 1, "{server} joined once: {joins:?}");
    }
    assert_eq!(sso_server(state, "DRSSO01"), "PRDSQL01", "DRSSO01 is in the SSO system");
    assert_eq!(state["group"]["master-secret-server"], "PRDSSO01");
}

#[test]
fn sso_stopped_on_the_master_secret_server_stops_the_joins_until_it_runs_again() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.fault(&["sso-stopped", "PRDSSO01"]);
    let why = run_fails_at(&lab, &[], "join[DRBTS01]");
    assert!(
        why.contains(
            "configuration of DRBTS01 failed: the Enterprise SSO service (ENTSSO) on the master secret server \
             PRDSSO01 is not running or does not answer, so DRBTS01 cannot join the SSO system; start ENTSSO on \
             PRDSSO01"
        ),
        "{why}"
    );
    assert!(
        why.contains("0xC0002A0F : Could not contact the SSO server 'PRDSSO01'."),
        "the log is quoted: {why}"
    );
    let state = lab.state();
    for server in DR {
        assert_eq!(state["servers"][server]["configured-features"], serde_json::json!([]), "{server}");
        assert!(sso_server(&state, server).is_null(), "{server}: nothing configured, not half");
    }
    assert_eq!(state["joins"], serde_json::json!([]));

    // ENTSSO runs again on PRDSSO01: the retried joins go through and the site is prepared.
    clear(&lab, &["sso-stopped"]);
    assert_eq!(retry_and_resume(&lab), Some(0), "the resumed run completes");
    assert_dr_site_joined(&lab.state());
}

#[test]
fn a_master_secret_out_of_reach_stops_the_dr_sso_server_until_it_is_restored() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.fault(&["master-secret-unavailable", "DRSSO01"]);
    let why = run_fails_at(&lab, &[], "sso-server[DRSSO01]");
    assert!(
        why.contains(
            "configuration of DRSSO01 failed: the Enterprise SSO master secret cannot be retrieved from the \
             master secret server PRDSSO01"
        ),
        "{why}"
    );
    assert!(why.contains("ssoconfig -restoreSecret <backup file>"), "{why}");
    for server in DR {
        assert_eq!(instance(&lab, &format!("join[{server}]")).0, "succeeded", "{server}");
    }
    assert!(sso_server(&lab.state(), "DRSSO01").is_null(), "DRSSO01 was not configured");

    // The secret restored on PRDSSO01: the DR SSO server joins.
    clear(&lab, &["master-secret-unavailable"]);
    assert_eq!(retry_and_resume(&lab), Some(0), "the resumed run completes");
    assert_dr_site_joined(&lab.state());
}

#[test]
fn a_master_secret_out_of_reach_stops_the_join_of_a_rebuilt_server_from_its_export() {
    let lab = LabRun::new("server-replacement.toml", &[]);
    let out = lab.lab(&["replace", "PRDBTS02"]);
    assert!(out.status.success(), "{}", stderr(&out));
    lab.fault(&["master-secret-unavailable"]);
    let why = run_fails_at(&lab, &[], "join[PRDBTS02]");
    assert!(
        why.contains(
            "configuration of PRDBTS02 failed: the Enterprise SSO master secret cannot be retrieved from the \
             master secret server PRDSSO01"
        ),
        "{why}"
    );
    assert_eq!(lab.state()["servers"]["PRDBTS02"]["configured-features"], serde_json::json!([]));

    clear(&lab, &["master-secret-unavailable"]);
    assert_eq!(retry_and_resume(&lab), Some(0), "the resumed run completes");
    let state = lab.state();
    assert_eq!(mgmt_server(&state, "PRDBTS02"), "PRDSQL01");
    assert_eq!(state["joins"], serde_json::json!(["PRDBTS02"]), "joined once");
    assert!(
        state["servers"]["PRDBTS02"]["configured-features"].as_array().unwrap().len() > 4,
        "from its export, not the template: {}",
        state["servers"]["PRDBTS02"]["configured-features"]
    );
}

#[test]
fn a_join_that_stopped_after_sso_is_not_run_again_until_the_server_is_unconfigured() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.fault(&["join-fails-after-sso", "DRBTS01"]);
    let why = run_fails_at(&lab, &[], "join[DRBTS01]");
    assert!(
        why.contains(
            "DRBTS01 is half-configured by an earlier configuration: Enterprise SSO is configured on it (SSO \
             system PRDSQL01/SSODB) but it is in no BizTalk group"
        ),
        "{why}"
    );
    assert!(why.contains("it stopped after configuring Enterprise SSO"), "{why}");
    assert!(why.contains("the BizTalk Server group could not be joined."), "the log is quoted: {why}");
    assert!(why.contains("Configuration.exe /U"), "the fix is named: {why}");
    let half = lab.state();
    assert_eq!(sso_server(&half, "DRBTS01"), "PRDSQL01", "SSO was configured");
    assert!(mgmt_server(&half, "DRBTS01").is_null(), "the group was not");

    // The fault is gone, but the server is still half-configured: the retry stops before
    // running Configuration.exe again, and leaves the server as it was.
    clear(&lab, &["join-fails-after-sso"]);
    assert_eq!(retry_and_resume(&lab), Some(1), "the retry stops again");
    let (state, why) = instance(&lab, "join[DRBTS01]");
    assert_eq!(state, "failed");
    assert!(why.contains("Drover does not run Configuration.exe over it again"), "{why}");
    assert!(!why.contains("it stopped after configuring"), "refused before running: {why}");
    assert_eq!(lab.state()["servers"]["DRBTS01"], half["servers"]["DRBTS01"], "DRBTS01 untouched");

    // The administrator unconfigures it; the retry joins it, and a second run changes nothing.
    let out =
        lab.lab(&["exec", "DRBTS01", "--", CONFIGURATION_EXE, "/U", "/L", r"C:\Drover\unconfigure.log"]);
    assert!(out.status.success(), "Configuration.exe /U: {}{}", stdout(&out), stderr(&out));
    assert!(sso_server(&lab.state(), "DRBTS01").is_null(), "SSO unconfigured");
    assert_eq!(retry_and_resume(&lab), Some(0), "the resumed run completes");
    let prepared = lab.state();
    assert_dr_site_joined(&prepared);

    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.state()["joins"], prepared["joins"], "the second run joined nothing");
}
