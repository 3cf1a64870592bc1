//! The failover's F9 (issue 18; docs/biztalk.md, "Failover activation") end to end, with the
//! lab's `wmi-caches-group` fault: BizTalk's WMI provider on each DR runtime server keeps the
//! management database it read before `UpdateRegistry.vbs` re-pointed the registry. A lab
//! prepared by `workflows/dr-site-preparation.toml`, production failed with `drover-lab
//! disaster`, Restore To Mark, then UpdateDatabase.vbs and UpdateRegistry.vbs run by hand
//! (`drover-lab exec`, as Restore To Mark is): a workflow that goes straight to the processing
//! steps fails on production's dead database; the same steps after `restart-services` on every DR
//! runtime server succeed, with the rule engine update service enabled and running again.

use std::io::Write;
use std::process::{Command, Stdio};

use drover_tests::lab::{LabRun, receive_locations};
use drover_tests::{lab_bin, stderr, stdout, wasm};

const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

/// BizTalk Server 2020's Restore folder, where the scripts and their file are.
const RESTORE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore";

/// `SampleUpdateInfo.xml` moving every database from PRDSQL01 to DRSQL01.
const UPDATE_INFO: &str = "<UpdateConfiguration>\r\n  <MessageBoxDB oldDBName=\"BizTalkMsgBoxDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMsgBoxDb\" newDBServer=\"DRSQL01\" IsMaster=\"1\" />\r\n  <TrackingDB oldDBName=\"BizTalkDTADb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkDTADb\" newDBServer=\"DRSQL01\" />\r\n  <ManagementDB oldDBName=\"BizTalkMgmtDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMgmtDb\" newDBServer=\"DRSQL01\" />\r\n  <RuleEngineDB oldDBName=\"BizTalkRuleEngineDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkRuleEngineDb\" newDBServer=\"DRSQL01\" />\r\n  <OtherDatabases>\r\n    <Database Name=\"SSO\" oldDBName=\"SSODB\" oldDBServer=\"PRDSQL01\" newDBName=\"SSODB\" newDBServer=\"DRSQL01\" />\r\n  </OtherDatabases>\r\n</UpdateConfiguration>\r\n";

/// The processing steps (F10, F11) straight after F7.
const PROCESSING: &str = r#"
[[steps]]
id = "safe-processing"
plugin = "bts-receive-locations@^1"
NEEDS
for-each = ["DRBTS01"]
grants = { programs = ["powershell.exe"], read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*"] }
with = { action = "disable", dr_servers = ["DRBTS01", "DRBTS02", "DRBTS03"] }

[[steps]]
id = "start-hosts"
plugin = "bts-start-hosts@^1"
needs = ["safe-processing"]
for-each = ["DRBTS01"]
grants = { targets = ["DRBTS02", "DRBTS03"], programs = ["powershell.exe", "sc.exe"], read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*", "sc.exe qc *"] }
with = { servers = ["DRBTS01", "DRBTS02", "DRBTS03"] }
"#;

/// F9 on every DR runtime server, as the lead's dr-failover.toml step would run it.
const RESTART: &str = r#"
[[steps]]
id = "restart-services"
plugin = "restart-services@^1"
for-each = "dr-runtime"
grants = { programs = ["powershell.exe", "sc.exe"], read-only = ["sc.exe qc *"] }
"#;

fn workflow(name: &str, with_f9: bool) -> String {
    let header =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"F9 or not, then F10-F11\"\n");
    let needs = if with_f9 { "needs = [\"restart-services\"]" } else { "" };
    let restart = if with_f9 { RESTART } else { "" };
    format!("{header}{restart}{}", PROCESSING.replace("NEEDS", needs))
}

/// `drover-lab exec <server> -- <argv>` with `input` on its standard input; fails the test if it
/// fails.
fn exec(lab: &LabRun, server: &str, argv: &[&str], input: &[u8]) {
    let mut child = Command::new(lab_bin())
        .args(["exec", "--state", &lab.state, server, "--"])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run drover-lab exec");
    child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    let out = child.wait_with_output().expect("drover-lab exec");
    assert!(out.status.success(), "{argv:?} on {server}: {}{}", stdout(&out), stderr(&out));
}

/// F6 on DRBTS01 and F7 on every DR runtime server, by hand, with the 64-bit script host.
fn update_database_and_registry(lab: &LabRun) {
    let xml = format!(r"{RESTORE}\SampleUpdateInfo.xml");
    let cscript = r"C:\Windows\System32\cscript.exe";
    for server in DR_RUNTIME {
        exec(lab, server, &["sh", "-c", r#"cat > "$1""#, "sh", &xml], UPDATE_INFO.as_bytes());
    }
    exec(lab, "DRBTS01", &[cscript, "//nologo", &format!(r"{RESTORE}\UpdateDatabase.vbs"), &xml], b"");
    for server in DR_RUNTIME {
        exec(lab, server, &[cscript, "//nologo", &format!(r"{RESTORE}\UpdateRegistry.vbs"), &xml], b"");
    }
}

fn run(lab: &LabRun, workflow: &str) -> std::process::Output {
    lab.drover(&["--quiet", "run", workflow, "--inventory", &lab.inventory]).output().expect("drover run")
}

#[test]
fn with_wmi_caching_the_group_processing_fails_on_the_old_database_until_restart_services_runs() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let out = lab.run(&[]);
    assert!(out.status.success(), "DR site preparation: {}{}", stdout(&out), stderr(&out));
    lab.sandbox.install(&wasm::FAILOVER_PROCESSING);
    lab.sandbox.install(&[wasm::RESTART_SERVICES]);
    let out = lab.lab(&["disaster"]);
    assert!(out.status.success(), "drover-lab disaster: {}", stderr(&out));
    lab.restore_to_mark();
    lab.fault(&["wmi-caches-group"]);
    update_database_and_registry(&lab);
    let state = lab.state();
    for server in DR_RUNTIME {
        let dr = &state["servers"][server];
        assert_eq!(
            dr["registry"][r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration"]["MgmtDBServer"]
                ["data"],
            "DRSQL01",
            "{server}"
        );
        assert_eq!(dr["wmi-mgmt-cache"], "PRDSQL01", "{server}: WMI still reads what it read at start");
        assert_eq!(
            lab.service(server, "RuleEngineUpdateService"),
            Some(("disabled".into(), "stopped".into()))
        );
    }
    let locations_before = receive_locations(&state);
    assert!(locations_before.iter().any(|(_, disabled)| !disabled), "{locations_before:?}");

    // Without F9: WMI on DRBTS01 reaches production's management database, which is gone.
    let without = lab.sandbox.write("without-f9.toml", &workflow("without-f9", false));
    let out = run(&lab, &without);
    assert!(!out.status.success(), "{}", stdout(&out));
    let failed = lab.last_instance("safe-processing[DRBTS01]");
    assert_eq!(failed["state"], "needs-operator", "{failed:#}");
    let why = failed["why"].as_str().unwrap_or_default();
    assert!(why.contains("SQL Server does not exist or access denied."), "{why}");
    assert_eq!(receive_locations(&lab.state()), locations_before, "nothing disabled");

    // With F9 first, the same steps succeed: WMI reads the group at DR.
    let with = lab.sandbox.write("with-f9.toml", &workflow("with-f9", true));
    let out = run(&lab, &with);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for server in DR_RUNTIME {
        let restart = lab.last_instance(&format!("restart-services[{server}]"));
        assert_eq!(restart["output"]["winmgmt"], "restarted", "{restart:#}");
        assert_eq!(restart["output"]["rule_engine"], "restarted", "{restart:#}");
        assert_eq!(restart["output"]["rule_engine_previous_start_mode"], "disabled", "{restart:#}");
        assert_eq!(lab.service(server, "RuleEngineUpdateService"), Some(("auto".into(), "running".into())));
    }
    let state = lab.state();
    for server in DR_RUNTIME {
        assert!(state["servers"][server].get("wmi-mgmt-cache").is_none(), "{server}: cache dropped");
    }
    assert!(
        receive_locations(&state).iter().all(|(_, disabled)| *disabled),
        "{:?}",
        receive_locations(&state)
    );
    let running: Vec<_> = lab
        .group()
        .host_instances
        .into_iter()
        .filter(|i| DR_RUNTIME.contains(&i.server.as_str()) && i.service_state == "running")
        .collect();
    assert!(!running.is_empty(), "DR host instances started");
}
