//! Server replacement (`workflows/server-replacement.toml`, seed A) from the configuration file
//! exported from the failed server before it failed: against a lab in which `drover-lab replace
//! PRDBTS02` rebuilt PRDBTS02, the join reads PRDBTS02's export from where `drover-lab init` keeps
//! the exports (PRDSQL01), so every feature it had comes back (BAM tools, EDI/AS2, the BAM
//! runtime, not only the template's four), the export on the share keeps no password, a feature
//! that cannot be configured stops the run for an operator naming it, and an export that is
//! missing or belongs to another computer is refused before anything is configured.

use std::io::Write as _;
use std::process::{Command, Stdio};

use drover_tests::lab::LabRun;
use drover_tests::{lab_bin, stderr, stdout};
use serde_json::Value;

const REPLACED: &str = "PRDBTS02";
const EXPORTS: &str = r"D:\BizTalkBackup\Configuration";

/// The `Feature Name`s of the exported configuration of PRDBTS02 that `drover-lab init` keeps.
const EXPORTED_FEATURES: [&str; 7] =
    ["SSOServer,Engine", "WMI", "Engine,BTSCfg", "RulesEngine", "MOT", "BAMTools", "MsEDIAS2"];

/// A lab in which PRDBTS02 was replaced (`replace_args` go to `drover-lab replace`).
fn replaced_lab(replace_args: &[&str]) -> LabRun {
    let lab = LabRun::new("server-replacement.toml", &[]);
    let mut args = vec!["replace", REPLACED];
    args.extend(replace_args);
    let out = lab.lab(&args);
    assert!(out.status.success(), "drover-lab replace: {}", stderr(&out));
    lab
}

/// The step instances of the newest run in `state`: (key, why).
fn instances_in(lab: &LabRun, state: &str) -> Vec<(String, String)> {
    lab.last_instances()
        .into_iter()
        .filter(|i| i["state"] == state)
        .map(|i| (i["key"].as_str().unwrap().to_owned(), i["why"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn configured(state: &Value) -> &Value {
    &state["servers"][REPLACED]["configured-features"]
}

#[test]
fn every_feature_of_the_exported_file_comes_back_and_the_export_keeps_no_password() {
    let lab = replaced_lab(&[]);
    let export_before = lab.state()["servers"]["PRDSQL01"]["files"].clone();
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let state = lab.state();
    assert_eq!(configured(&state), &serde_json::json!(EXPORTED_FEATURES), "not only the template's four");
    assert_eq!(state["joins"], serde_json::json!([REPLACED]), "joined once");
    // The file Configuration.exe read had the passwords; the export on the share still has none,
    // and the rendered file is gone from the server.
    let entsso =
        state["servers"][REPLACED]["services"].as_array().unwrap().iter().find(|s| s["name"] == "ENTSSO");
    assert!(entsso.unwrap()["password-sha256"].is_string(), "ENTSSO got its password");
    assert_eq!(state["servers"]["PRDSQL01"]["files"], export_before, "the export is untouched");
    assert!(!state["servers"][REPLACED]["files"].to_string().contains(".xml"));
    let events = stdout(&lab.sandbox.run(&["events", &lab.sandbox.last_run(), "--ndjson"]));
    assert!(
        events.contains(
            r#"from its exported configuration PRDSQL01:D:\\BizTalkBackup\\Configuration\\PRDBTS02.xml"#
        ),
        "the join names the file it configured from:\n{events}"
    );

    // Again: nothing to do, nothing changes.
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.state(), state, "the second run changed the lab");
}

#[test]
fn a_feature_that_does_not_come_back_stops_the_run_for_an_operator() {
    // Setup on the new computer left the BAM tools out: the rest is configured, BAM is named.
    let lab = replaced_lab(&["--without-feature", "BAMTools"]);
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(4), "waiting for an operator: {}{}", stdout(&out), stderr(&out));
    let stopped = instances_in(&lab, "needs-operator");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    let (key, why) = &stopped[0];
    assert_eq!(key, "join[PRDBTS02]");
    assert!(
        why.contains("these features of its exported configuration were not configured: BAMTools"),
        "{why}"
    );
    assert!(why.contains("not installed on this computer"), "the log's warning is quoted: {why}");
    let state = lab.state();
    let expected: Vec<&str> = EXPORTED_FEATURES.into_iter().filter(|f| *f != "BAMTools").collect();
    assert_eq!(configured(&state), &serde_json::json!(expected), "the other features came back");
}

/// Writes `contents` to `path` on `server` through the lab's file call.
fn put(lab: &LabRun, server: &str, path: &str, contents: &[u8]) {
    let mut child = Command::new(lab_bin())
        .args(["exec", "--state", &lab.state, server, "--", "sh", "-c", r#"cat > "$1""#, "sh", path])
        .stdin(Stdio::piped())
        .spawn()
        .expect("drover-lab exec");
    child.stdin.take().expect("stdin").write_all(contents).expect("write");
    assert!(child.wait().expect("wait").success());
}

#[test]
fn an_export_that_is_missing_or_of_another_computer_is_refused_before_anything_is_configured() {
    let lab = replaced_lab(&[]);
    // No export where the workflow is told to look.
    let out = lab.run(&[r"exports-folder=D:\Elsewhere"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let failed = instances_in(&lab, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "join[PRDBTS02]");
    assert!(
        failed[0]
            .1
            .contains(r"no configuration file exported from PRDBTS02 at PRDSQL01:D:\Elsewhere\PRDBTS02.xml"),
        "{failed:?}"
    );

    // PRDBTS01's export where PRDBTS02's belongs: it names another computer.
    let first = lab.lab(&["exec", "PRDSQL01", "--", "cat", &format!(r"{EXPORTS}\PRDBTS01.xml")]);
    assert!(first.status.success(), "{}", stderr(&first));
    put(&lab, "PRDSQL01", &format!(r"{EXPORTS}\PRDBTS02.xml"), &first.stdout);
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let failed = instances_in(&lab, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].1.contains("it was exported from PRDBTS01, not PRDBTS02"), "{failed:?}");

    // Nothing was configured either time.
    let state = lab.state();
    assert_eq!(configured(&state), &serde_json::json!([]));
    assert_eq!(state["joins"], serde_json::json!([]), "no join ran");
}
