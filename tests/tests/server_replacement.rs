//! The BizTalk server replacement (`workflows/server-replacement.toml`, seed A) against a lab in
//! which `drover-lab replace PRDBTS02` rebuilt PRDBTS02 as an unconfigured computer, through the
//! real `drover` and `drover-lab` binaries and the real plugin pack: Enterprise Edition joins the
//! group again, Standard Edition restores its saved configuration with RestoreConfig.vbe; either
//! way the host instances' services come back and the GAC is filled, and a second run changes
//! nothing.

use drover_tests::lab::{LabRun, verdicts};
use drover_tests::{stderr, stdout};
use serde_json::Value;

const REPLACED: &str = "PRDBTS02";
/// BizTalk's Administration key as the lab stores it: in the 32-bit registry view, where the
/// 32-bit RestoreConfig.vbe and Configuration.exe write it.
const ADMINISTRATION: &str = "SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration";

/// A lab (of `edition`) in which PRDBTS02 was replaced, and the server-replacement workflow.
fn replaced_lab(edition: &str) -> LabRun {
    let lab = LabRun::new("server-replacement.toml", &["--edition", edition]);
    let out = lab.lab(&["replace", REPLACED]);
    assert!(out.status.success(), "drover-lab replace: {}", stderr(&out));
    lab
}

/// Every step instance of the newest run, by key: (state, reported a change).
trait Instances {
    fn instances(&self) -> Vec<(String, String, bool)>;
}

impl Instances for LabRun {
    /// Every step instance of the newest run, by key: (state, reported a change).
    fn instances(&self) -> Vec<(String, String, bool)> {
        let run = self.sandbox.last_run();
        let status = self.sandbox.status(&run);
        let events = stdout(&self.sandbox.run(&["events", &run, "--ndjson"]));
        let changed = |key: &str| {
            events
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e["kind"] == "attempt-succeeded" && e["step_key"] == key)
                .any(|e| e["data"]["changed"] == true)
        };
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["instances"].as_array().unwrap().clone())
            .map(|i| {
                let key = i["key"].as_str().unwrap().to_string();
                let state = i["state"].as_str().unwrap().to_string();
                let changed = changed(&key);
                (key, state, changed)
            })
            .collect()
    }
}

fn service<'a>(lab: &'a Value, server: &str, name: &str) -> Option<&'a Value> {
    lab["servers"][server]["services"].as_array().unwrap().iter().find(|s| s["name"] == name)
}

/// The lab after a successful replacement, against the lab as `replace` left it.
fn assert_restored(lab: &Value, before: &Value) {
    let server = &lab["servers"][REPLACED];
    let admin = &server["registry"][ADMINISTRATION];
    assert_eq!(admin["MgmtDBServer"]["data"], "PRDSQL01", "{REPLACED} is configured again");
    assert_eq!(admin["MgmtDBName"]["data"], "BizTalkMgmtDb");
    assert_eq!(service(lab, REPLACED, "ENTSSO").unwrap()["state"], "running");
    let group = &lab["group"];
    assert_eq!(group["members"], serde_json::json!(["PRDBTS01", "PRDBTS02"]), "listed once");
    assert_eq!(lab["joins"], serde_json::json!([REPLACED]), "joined once");
    assert_eq!(group["master-secret-server"], "PRDSSO01");

    // Its host instances: the same rows, installed, IsDisabled as before, and their services back.
    let rows = |l: &Value| -> Vec<Value> {
        l["group"]["host-instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["server"] == REPLACED)
            .cloned()
            .collect()
    };
    let (now, then) = (rows(lab), rows(before));
    assert_eq!(now.len(), 2, "{now:#?}");
    for (row, old) in now.iter().zip(&then) {
        assert_eq!((&row["name"], &row["host"]), (&old["name"], &old["host"]));
        assert_eq!(row["configuration-state"], 1, "{row}");
        assert_eq!(row["is-disabled"], false, "a production instance stays enabled: {row}");
        assert_eq!(row["service-state"], "stopped", "{row}");
        let name = format!("BTSSvc${}", row["host"].as_str().unwrap());
        let svc = service(lab, REPLACED, &name).unwrap_or_else(|| panic!("{name} exists again"));
        assert_eq!((&svc["start-type"], &svc["state"]), (&"auto".into(), &"stopped".into()), "{svc}");
        assert_eq!(svc["account"], "CONTOSO\\svc-bts");
    }
    let gac: Vec<&str> =
        server["gac"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(gac, ["Contoso.Orders.Schemas", "Contoso.Orders.Maps"]);
    // The configuration files held passwords: none is left.
    let files = server["files"].to_string();
    assert!(!files.contains(".xml"), "{REPLACED} still holds a configuration file: {files}");

    // Nothing else changed: the other servers, and the other server's host instances.
    for (name, other) in lab["servers"].as_object().unwrap() {
        if name != REPLACED {
            assert_eq!(other, &before["servers"][name], "{name} was changed");
        }
    }
    let others = |l: &Value| -> Vec<Value> {
        l["group"]["host-instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["server"] != REPLACED)
            .cloned()
            .collect()
    };
    assert_eq!(others(lab), others(before), "the other server's host instances changed");
    assert_eq!(lab["edition"], before["edition"]);
}

/// Runs the workflow twice: the first restores the server (with `expected`: the step instances
/// and their states), the second changes nothing.
fn restores_then_changes_nothing(edition: &str, params: &[&str], expected: &[(&str, &str)]) -> LabRun {
    let lab = replaced_lab(edition);
    let before = lab.state();
    assert!(
        before["servers"][REPLACED]["registry"].get(ADMINISTRATION).is_none(),
        "replaced: not configured"
    );
    // What a plan sees first: platform fine, the configuration to restore, the rest after it.
    let first_plan = verdicts(&lab.plan(params, None));
    assert_eq!(first_plan.len(), expected.len());
    for (key, verdict) in &first_plan {
        let skipped = expected.iter().any(|(k, s)| k == key && *s == "skipped");
        let want = match key.as_str() {
            _ if skipped => "skipped",
            k if k.starts_with("prerequisites[") => "no-change",
            k if k.starts_with("join[") || k.starts_with("restore-configuration[") => "would-change",
            _ => "cannot-tell",
        };
        assert_eq!(verdict, want, "{key}");
    }
    let out = lab.run(params);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let after = lab.state();
    assert_restored(&after, &before);
    let first = lab.instances();
    let states: Vec<(&str, &str)> = first.iter().map(|(k, s, _)| (k.as_str(), s.as_str())).collect();
    assert_eq!(states, expected);
    for (key, state, changed) in &first {
        let should_change = state == "succeeded" && !key.starts_with("prerequisites");
        assert_eq!(*changed, should_change, "{key} reported changed = {changed}");
    }
    let db = std::fs::read(lab.sandbox.path().join("drover.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("Sso-Pa55-4-R"), "a password is in the journal");
    for (key, verdict) in verdicts(&lab.plan(params, None)) {
        let skipped = expected.iter().any(|(k, s)| *k == key && *s == "skipped");
        assert_eq!(verdict, if skipped { "skipped" } else { "no-change" }, "{key} on a restored server");
    }

    // Again on the restored server: every step reports no change, and the lab stays as it is.
    let out = lab.run(params);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let second = lab.instances();
    let states: Vec<(&str, &str)> = second.iter().map(|(k, s, _)| (k.as_str(), s.as_str())).collect();
    assert_eq!(states, expected);
    let changed: Vec<&String> = second.iter().filter(|(_, _, c)| *c).map(|(k, _, _)| k).collect();
    assert!(changed.is_empty(), "steps changed something on a restored server: {changed:?}");
    assert_eq!(lab.state(), after, "the second run changed the lab");
    lab
}

#[test]
fn enterprise_edition_joins_the_replaced_server_again() {
    restores_then_changes_nothing(
        "enterprise",
        &[],
        &[
            ("prerequisites[PRDBTS02]", "succeeded"),
            ("join[PRDBTS02]", "succeeded"),
            ("restore-configuration[PRDBTS02]", "skipped"),
            ("host-instances[PRDBTS02]", "succeeded"),
            ("assemblies[PRDBTS02]", "succeeded"),
        ],
    );
}

#[test]
fn standard_edition_restores_the_saved_configuration() {
    let lab = restores_then_changes_nothing(
        "standard",
        &["edition=standard"],
        &[
            ("prerequisites[PRDBTS02]", "succeeded"),
            ("join[PRDBTS02]", "skipped"),
            ("restore-configuration[PRDBTS02]", "succeeded"),
            ("host-instances[PRDBTS02]", "succeeded"),
            ("assemblies[PRDBTS02]", "succeeded"),
        ],
    );
    // The first run's restore ran RestoreConfig.vbe through the 32-bit script host.
    let first = lab.sandbox.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&first.stdout).unwrap();
    let first_run = runs.as_array().unwrap().last().unwrap()["run"].as_str().unwrap().to_string();
    let events = stdout(&lab.sandbox.run(&["events", &first_run, "--ndjson"]));
    let restores: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["data"]["what"] == r"C:\Windows\SysWOW64\cscript.exe")
        .collect();
    assert_eq!(restores.len(), 1, "RestoreConfig.vbe ran once, under the 32-bit cscript:\n{events}");
    let data = &restores[0]["data"];
    assert_eq!((&data["target"], &data["exit_code"]), (&REPLACED.into(), &0.into()), "{data}");
    assert_eq!(
        data["args"],
        serde_json::json!([
            "//nologo",
            r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\RestoreConfig.vbe",
            r"C:\Drover\restore-PRDBTS02.xml"
        ])
    );
}

/// The wrong edition's tool answers in words no public source backs (the lab's own): the plugins
/// do not guess a class for them. The run stops for an operator (exit 4), the status shows the
/// tool's raw answer, and nothing was configured.
#[test]
fn an_answer_drover_does_not_recognise_waits_for_an_operator_with_the_raw_text() {
    // Standard Edition's path on an Enterprise group: RestoreConfig.vbe refuses.
    let lab = replaced_lab("enterprise");
    let out = lab.run(&["edition=standard"]);
    assert_eq!(out.status.code(), Some(4), "waiting for an operator: {}{}", stdout(&out), stderr(&out));
    let restore = lab.last_instance("restore-configuration[PRDBTS02]");
    assert_eq!(restore["state"], "needs-operator", "{restore:#}");
    let why = restore["why"].as_str().unwrap();
    assert!(
        why.contains("RestoreConfig.vbe on PRDBTS02 answered in a way Drover does not recognise (it failed with exit code 1)"),
        "{why}"
    );
    assert!(
        why.contains("stderr:\n  RestoreConfig.vbe supports BizTalk Server Standard Edition only"),
        "the raw text: {why}"
    );
    let after = lab.state();
    assert!(after["servers"][REPLACED]["registry"].get(ADMINISTRATION).is_none(), "nothing configured");
    assert!(!after["servers"][REPLACED]["files"].to_string().contains(".xml"), "the saved file is gone");

    // Enterprise Edition's path on a Standard group: the Configuration tool refuses the join.
    let lab = replaced_lab("standard");
    let out = lab.run(&[]);
    assert_eq!(out.status.code(), Some(4), "waiting for an operator: {}{}", stdout(&out), stderr(&out));
    let join = lab.last_instance("join[PRDBTS02]");
    assert_eq!(join["state"], "needs-operator", "{join:#}");
    let why = join["why"].as_str().unwrap();
    assert!(
        why.contains("Configuration.exe on PRDBTS02 answered in a way Drover does not recognise"),
        "{why}"
    );
    assert!(
        why.contains(
            "Error ConfigHelper] BizTalk Server Standard Edition cannot join an existing BizTalk group"
        ),
        "the raw log: {why}"
    );
}
