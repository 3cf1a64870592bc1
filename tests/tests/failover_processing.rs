//! The failover's processing (issue 18, P3; docs/biztalk.md, "Failover activation", F10 to F12)
//! end to end: a lab prepared by `workflows/dr-site-preparation.toml`, production failed with
//! `drover-lab disaster`, the DR SQL Server's databases recovered with the Restore To Mark job,
//! then a small workflow written here: the group's record and each DR runtime server's registry
//! pointed at DR (`bts-update-database`, `bts-update-registry`, so that WMI reads the group at
//! DR), every enabled receive
//! location disabled (`bts-receive-locations`), the DR host instances enabled and started
//! (`bts-start-hosts`), and the locations the disable step recorded enabled again. With ENTSSO
//! unable to start on DRBTS02 the host step stops naming it and the locations stay disabled;
//! retried and resumed after the fault is cleared, the run finishes. The lab ends
//! with the receive locations as production had them and host instances running on the DR
//! servers only; a second run changes nothing.

use drover_tests::lab::{LabRun, receive_locations};
use drover_tests::{stderr, stdout, wasm};

const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

const WORKFLOW: &str = r#"
name = "failover-processing"
version = "1.0.0"
description = "F6-F7 then F10-F12: WMI at DR, receive locations off, DR host instances started, receive locations back on"

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
id = "disable-receive-locations"
plugin = "bts-receive-locations@^1"
needs = ["update-registry"]
for-each = ["DRBTS01"]
grants = { programs = ["powershell.exe"], read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*"] }
with = { action = "disable", dr_servers = ["DRBTS01", "DRBTS02", "DRBTS03"] }

[[steps]]
id = "start-hosts"
plugin = "bts-start-hosts@^1"
needs = ["disable-receive-locations"]
for-each = ["DRBTS01"]
grants = { targets = ["DRBTS02", "DRBTS03"], programs = ["powershell.exe", "sc.exe"], read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*", "sc.exe qc *"] }
with = { servers = ["DRBTS01", "DRBTS02", "DRBTS03"] }

[[steps]]
id = "enable-receive-locations"
plugin = "bts-receive-locations@^1"
needs = ["start-hosts"]
for-each = ["DRBTS01"]
grants = { programs = ["powershell.exe"], read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*"] }
with = { action = "enable", names = "{{ steps.disable_receive_locations.outputs.DRBTS01.disabled | join(',') }}" }
"#;

fn run(lab: &LabRun, workflow: &str) -> std::process::Output {
    lab.drover(&["--quiet", "run", workflow, "--inventory", &lab.inventory]).output().expect("drover run")
}

#[test]
fn processing_starts_at_dr_with_the_receive_locations_off_then_restored_and_a_second_run_changes_nothing() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let out = lab.run(&[]);
    assert!(out.status.success(), "DR site preparation: {}{}", stdout(&out), stderr(&out));
    lab.sandbox.install(&wasm::FAILOVER_DBREFS);
    lab.sandbox.install(&wasm::FAILOVER_PROCESSING);
    let out = lab.lab(&["disaster"]);
    assert!(out.status.success(), "drover-lab disaster: {}", stderr(&out));
    lab.restore_to_mark();
    let workflow = lab.sandbox.write("failover-processing.toml", WORKFLOW);
    let before = lab.state();
    let locations_before = receive_locations(&before);
    let production_before: Vec<_> =
        lab.group().host_instances.into_iter().filter(|i| !DR_RUNTIME.contains(&i.server.as_str())).collect();
    assert!(locations_before.iter().any(|(_, disabled)| !disabled), "{locations_before:?}");

    // ENTSSO cannot start on DRBTS02: the host step stops naming it, the receive locations stay
    // disabled (nothing enters the group), and the run, retried and resumed once the fault is cleared, goes on
    // with the locations its disable step recorded.
    lab.fault(&["sso-stopped", "DRBTS02"]);
    let out = run(&lab, &workflow);
    assert!(!out.status.success(), "{}", stdout(&out));
    let failed = lab.last_instance("start-hosts[DRBTS01]");
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let why = failed["why"].as_str().unwrap_or_default();
    assert!(why.contains("ENTSSO") && why.contains("DRBTS02"), "{why}");
    assert!(receive_locations(&lab.state()).iter().all(|(_, disabled)| *disabled));
    let out = lab.lab(&["fault", "clear", "sso-stopped"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let failed_run = lab.sandbox.last_run();
    let out = lab
        .drover(&["--quiet", "retry", &failed_run, "start-hosts[DRBTS01]"])
        .output()
        .expect("drover retry");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = lab.drover(&["--quiet", "resume", &failed_run]).output().expect("drover resume");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The disable step turned off exactly the locations production had on; the enable step
    // turned them back on; the one production kept disabled stayed so throughout.
    let enabled: Vec<String> =
        locations_before.iter().filter(|(_, disabled)| !disabled).map(|(n, _)| n.clone()).collect();
    let disable = lab.last_instance("disable-receive-locations[DRBTS01]");
    assert_eq!(disable["output"]["disabled"], serde_json::json!(enabled), "{disable:#}");
    let enable = lab.last_instance("enable-receive-locations[DRBTS01]");
    assert_eq!(enable["output"]["changed"], serde_json::json!(enabled), "{enable:#}");
    let state = lab.state();
    assert_eq!(receive_locations(&state), locations_before);

    // Every in-process DR instance runs enabled; production's rows are as they were.
    let isolated: Vec<String> = state["group"]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["host-type"] == 2)
        .map(|h| h["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let group = lab.group();
    let dr: Vec<_> =
        group.host_instances.iter().filter(|i| DR_RUNTIME.contains(&i.server.as_str())).collect();
    assert!(!dr.is_empty(), "{group:?}");
    for i in &dr {
        assert!(!i.is_disabled, "{i:?}");
        if !isolated.contains(&i.host) {
            assert_eq!(i.service_state, "running", "{i:?}");
        }
    }
    let production: Vec<_> =
        group.host_instances.iter().filter(|i| !DR_RUNTIME.contains(&i.server.as_str())).cloned().collect();
    assert_eq!(production, production_before);
    let start = lab.last_instance("start-hosts[DRBTS01]");
    // Its second attempt reports every DR instance; those the first attempt started are unchanged.
    assert_eq!(start["output"]["instances"].as_array().map(Vec::len), Some(dr.len()), "{start:#}");
    // DR preparation left their services disabled; they start automatically now, as production's.
    for i in dr.iter().filter(|i| !isolated.contains(&i.host)) {
        let service = lab.service(&i.server, &format!("BTSSvc${}", i.host));
        assert_eq!(service, Some(("auto".to_owned(), "running".to_owned())), "{i:?}");
    }

    // Again: processing already runs at DR, so nothing is disabled, started or enabled.
    let out = run(&lab, &workflow);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    assert_eq!(receive_locations(&lab.state()), locations_before);
    assert_eq!(lab.group().host_instances, group.host_instances);

    // A plan reads only, through the documented read-only grants: disable and start have nothing
    // to do; enable cannot tell, since its names come from the disable step's output.
    let settled = lab.state();
    let plan =
        lab.drover(&["--json", "plan", &workflow, "--inventory", &lab.inventory]).output().expect("plan");
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let verdicts = drover_tests::lab::verdicts(&plan);
    for (key, verdict) in [
        ("disable-receive-locations[DRBTS01]", "no-change"),
        ("start-hosts[DRBTS01]", "no-change"),
        ("enable-receive-locations[DRBTS01]", "cannot-tell"),
    ] {
        assert!(verdicts.contains(&(key.to_owned(), verdict.to_owned())), "{key}: {plan:#}");
    }
    assert_eq!(lab.state(), settled, "the plan changed the lab");
}
