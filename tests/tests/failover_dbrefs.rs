//! The failover's database references and SSO (issue 18, P2; docs/biztalk.md, "Failover
//! activation: the BizTalk side", F6 to F8) end to end: a lab prepared by
//! `workflows/dr-site-preparation.toml`, production failed with `drover-lab disaster`, the DR SQL
//! Server's databases recovered ONLINE with the Restore To Mark job (`sp_start_job` through
//! `drover-lab exec DRSQL01 -- sqlcmd …`, the command line of `biztalk_common::logshipping`), then
//! a small workflow written here: `bts-update-database` on DRBTS01, `bts-update-registry` on
//! every DR runtime server, `sso-secret` on DRSSO01. Under `msoledbsql-provider` the first step
//! stops with Microsoft's fix; with a wrong backup password the SSO step stops naming the backup;
//! then the group's record, the registry and SSO point at DR, and a further run changes nothing:
//! UpdateDatabase.vbs reached the database exactly once (the lab records its runs).

use drover_tests::lab::{self, LabRun};
use drover_tests::{stderr, stdout, wasm};
use serde_json::Value;

const BACKUP: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak";
/// The lab's backup password (`drover_lab::activation::SECRET_BACKUP_PASSWORD`).
const BACKUP_PASSWORD: &str = "Contoso-SSO-Backup-2020!";
const PASSWORD_VAR: &str = "DROVER_SECRET_SSO_SECRET_BACKUP_PASSWORD";
const BTS_KEY: &str = r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration";
const SSO_KEY: &str = r"SOFTWARE\Microsoft\ENTSSO\SQL";
const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

const WORKFLOW: &str = r#"
name = "failover-dbrefs"
version = "1.0.0"
description = "F6-F8: the group's databases, the DR servers' registry and the DR master secret server point at the DR site"

[[steps]]
id = "update-database"
plugin = "bts-update-database@^1"
for-each = ["DRBTS01"]
grants = { programs = ["sqlcmd", 'C:\Windows\System32\cscript.exe'], read-only = ["sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT?*"] }
with = { old_sql_server = "PRDSQL01", new_sql_server = "DRSQL01" }

[[steps]]
id = "update-registry"
plugin = "bts-update-registry@^1"
needs = ["update-database"]
for-each = "dr-runtime"
grants = { programs = ["reg", 'C:\Windows\System32\cscript.exe'], read-only = ["reg query **"] }
with = { old_sql_server = "PRDSQL01", new_sql_server = "DRSQL01" }

[[steps]]
id = "sso"
plugin = "sso-secret@^1"
needs = ["update-registry"]
for-each = "dr-sso"
grants = { targets = ["DRBTS01"], programs = ["reg", "sc.exe", "powershell.exe", 'C:\Program Files\Common Files\Enterprise Single Sign-On\ssomanage.exe', 'C:\Program Files\Common Files\Enterprise Single Sign-On\ssoconfig.exe'], secrets = ["sso-secret-backup-password"], read-only = ["reg query **", "sc.exe query **"] }
with = { sql_server = "DRSQL01", backup_file = 'C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak', group_server = "DRBTS01" }
"#;

/// A prepared lab after the disaster, its DR databases recovered.
fn failed_over_sql() -> (LabRun, String) {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let out = lab.run(&[]);
    assert!(out.status.success(), "DR site preparation: {}{}", stdout(&out), stderr(&out));
    lab.sandbox.install(&wasm::FAILOVER_DBREFS);
    let out = lab.lab(&["disaster"]);
    assert!(out.status.success(), "drover-lab disaster: {}", stderr(&out));
    lab.restore_to_mark();
    let workflow = lab.sandbox.write("failover-dbrefs.toml", WORKFLOW);
    (lab, workflow)
}

/// Runs the workflow with `password` as the backup's password.
fn run(lab: &LabRun, workflow: &str, password: &str) -> std::process::Output {
    lab.drover(&["--quiet", "run", workflow, "--inventory", &lab.inventory])
        .env(PASSWORD_VAR, password)
        .output()
        .expect("drover run")
}

fn why(instance: &Value) -> String {
    assert_eq!(instance["state"], "failed", "{instance:#}");
    instance["why"].as_str().unwrap_or_default().to_owned()
}

fn reg<'a>(state: &'a Value, server: &str, key: &str, value: &str) -> &'a Value {
    &state["servers"][server]["registry"][key][value]["data"]
}

#[test]
fn the_group_registry_and_sso_move_to_dr_once_after_the_provider_fix_and_the_right_password() {
    let (lab, workflow) = failed_over_sql();

    // UpdateDatabase.vbs is declared irreversible, UpdateRegistry.vbs idempotent, so a plan and
    // the plugins' info say so; the plan reads only (the read-only grants cover the step's
    // checks) and changes nothing.
    for (plugin, effect) in [("bts-update-database", "irreversible"), ("bts-update-registry", "idempotent")] {
        let info = lab.drover(&["--json", "plugin", "info", plugin]).output().expect("plugin info");
        let info: Value = serde_json::from_slice(&info.stdout).expect("plugin info JSON");
        assert_eq!(info["info"]["effect"], effect, "{info:#}");
    }
    let before = lab.state();
    let plan = lab
        .drover(&["--json", "plan", &workflow, "--inventory", &lab.inventory])
        .env(PASSWORD_VAR, BACKUP_PASSWORD)
        .output()
        .expect("drover plan");
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let verdicts = drover_tests::lab::verdicts(&plan);
    assert_eq!(verdicts[0], ("update-database[DRBTS01]".to_string(), "would-change".to_string()), "{plan:#}");
    assert_eq!(lab.state(), before, "the plan changed the lab");

    // UpdateDatabase.vbs still opens SQLOLEDB: stopped with Microsoft's fix, nothing moved.
    lab.fault(&["msoledbsql-provider", "DRBTS01"]);
    let out = run(&lab, &workflow, BACKUP_PASSWORD);
    assert!(!out.status.success(), "{}", stdout(&out));
    let why_db = why(&lab.last_instance("update-database[DRBTS01]"));
    assert!(why_db.contains("Invalid connection string attribute"), "{why_db}");
    assert!(why_db.contains(r#"change conn.Provider = "SQLOLEDB" to "MSOLEDBSQL""#), "{why_db}");
    let state = lab.state();
    let recovered = lab::current_group(&state);
    assert_eq!(recovered["activation"]["messagebox"]["server"], "PRDSQL01");
    assert_eq!(recovered["activation"]["update-database-runs"], serde_json::json!([]));
    let out = lab.lab(&["fault", "clear", "msoledbsql-provider"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A wrong backup password: the databases and registries move, the SSO step stops naming the
    // backup and what to check.
    let out = run(&lab, &workflow, "not-the-password");
    assert!(!out.status.success(), "{}", stdout(&out));
    let why_sso = why(&lab.last_instance("sso[DRSSO01]"));
    assert!(why_sso.contains(BACKUP), "{why_sso}");
    assert!(why_sso.contains("check that sso-secret-backup-password holds the password"), "{why_sso}");
    assert!(!why_sso.contains("not-the-password"), "{why_sso}");
    let state = lab.state();
    assert!(
        !state["group"]["activation"]["secret-holders"].to_string().contains("DRSSO01"),
        "nothing restored"
    );

    // The right password: promoted.
    let out = run(&lab, &workflow, BACKUP_PASSWORD);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let state = lab.state();
    let group = lab::current_group(&state);
    assert_eq!(group["mgmt-server"], "DRSQL01");
    assert_eq!(group["sso-server"], "DRSQL01");
    assert_eq!(group["activation"]["messagebox"]["server"], "DRSQL01");
    assert_eq!(group["activation"]["tracking"]["server"], "DRSQL01");
    assert_eq!(group["activation"]["rule-engine"]["server"], "DRSQL01");
    for server in DR_RUNTIME {
        assert_eq!(reg(&state, server, BTS_KEY, "MgmtDBServer"), "DRSQL01", "{server}");
        assert_eq!(reg(&state, server, SSO_KEY, "Server"), "DRSQL01", "{server}");
    }
    assert_eq!(reg(&state, "DRSSO01", SSO_KEY, "Server"), "DRSQL01");
    assert_eq!(group["master-secret-server"], "DRSSO01");
    assert_eq!(group["activation"]["sso-server-name"], "DRSSO01");
    assert!(state["group"]["activation"]["secret-holders"].to_string().contains("DRSSO01"));
    assert_eq!(lab.changed_steps(), ["sso[DRSSO01]"], "only the SSO step had work left");
    let sso = lab.last_instance("sso[DRSSO01]");
    assert_eq!(sso["output"]["secret_server"], "DRSSO01", "{sso:#}");
    let db = lab.last_instance("update-database[DRBTS01]");
    assert_eq!(db["output"]["ran"], false, "ran in the run before: {db:#}");
    let hash = &db["output"]["update_info_sha256"];
    for server in DR_RUNTIME {
        let file = &state["servers"][server]["files"][r"c:\program files (x86)\microsoft biztalk server\bins32\schema\restore\sampleupdateinfo.xml"]
            ["contents"];
        assert!(file.as_str().is_some_and(|f| f.contains(r#"newDBServer="DRSQL01""#)), "{server}: {file}");
        assert_eq!(
            &lab.last_instance(&format!("update-registry[{server}]"))["output"]["update_info_sha256"],
            hash
        );
    }

    // Again: nothing changes, and UpdateDatabase.vbs reached the database once.
    let out = run(&lab, &workflow, BACKUP_PASSWORD);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    let runs = serde_json::Value::from(lab::update_database_runs(&lab.state()));
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["server"], "DRBTS01");
}
