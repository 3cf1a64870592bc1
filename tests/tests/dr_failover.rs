//! `workflows/dr-failover.toml` end to end (issue 18): a lab prepared by
//! `workflows/dr-site-preparation.toml`, production failed with `drover-lab disaster`, then the
//! failover's plan (reads only, changes nothing, stops at the declare gate as a run would, and
//! names Restore To Mark and UpdateDatabase.vbs as irreversible) and its run with its three gates
//! approved through the CLI as an operator does (`drover run` stops at a gate with exit code 4,
//! the gate waits in `drover status`, `drover approve`, `drover resume`). Afterwards the DR SQL
//! Server's databases are ONLINE at the newest mark, the group's record and every DR server's
//! registry name the DR SQL Server, the DR SSO server holds the master secret and is the group's
//! SSO server, the DR host instances run with the receive locations as production had them, and
//! the recovery report states the data-loss window, the phases, who approved each gate and what
//! stays manual. A second run changes nothing: F5 is skipped (it would stop the processing the
//! first run started), UpdateDatabase.vbs ran once. With production still answering, the measure
//! step says so before the declare gate, and refusing there (`drover cancel`) changes nothing.

use std::process::{Command, Output};

use drover_tests::lab::{self, LabRun, receive_locations};
use drover_tests::{lab_bin, stderr, stdout};
use serde_json::Value;

const FAILED_AT: &str = "2026-11-22T10:07:30Z";
const NEWEST_MARK: &str = "BTS_2026_11_22_10_00_01_000";
const BTS_KEY: &str = r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration";
const SSO_KEY: &str = r"SOFTWARE\Microsoft\ENTSSO\SQL";
const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];
const GATES: [&str; 3] = ["declare", "point-of-no-return", "start-processing"];

/// A lab prepared by dr-site-preparation, production still running, with the failover's plugins
/// installed and `workflows/dr-failover.toml` as its workflow.
fn prepared_lab() -> LabRun {
    LabRun::prepared_for_failover()
}

/// [`prepared_lab`], production gone at [`FAILED_AT`].
fn failed_lab() -> LabRun {
    let lab = prepared_lab();
    lab.disaster(FAILED_AT);
    lab
}

fn failure_param() -> String {
    format!("failure-time={FAILED_AT}")
}

/// Runs the failover to its end as an operator does: each time the run stops at a gate (exit
/// code 4), the gate must be the one waiting in `drover status`, then it is approved and the run
/// resumed. Returns the run's id and its last output.
fn run_through_gates(lab: &LabRun) -> (String, Output) {
    run_through(lab, &[&failure_param()], &GATES, |_| {})
}

/// [`run_through_gates`] with `params` and `gates`, calling `at_gate` with each gate's name
/// while it waits.
fn run_through(
    lab: &LabRun,
    params: &[&str],
    gates: &[&str],
    mut at_gate: impl FnMut(&str),
) -> (String, Output) {
    let mut out = lab.run(params);
    let run = lab.sandbox.last_run();
    for &gate in gates {
        assert_eq!(out.status.code(), Some(4), "waits at {gate}: {}{}", stdout(&out), stderr(&out));
        let waiting = lab.last_instance(gate);
        assert_eq!(waiting["state"], "waiting", "{waiting:#}");
        at_gate(gate);
        let approved =
            lab.drover(&["approve", &run, gate, "--comment", &format!("bridge call: {gate}")]).output();
        let approved = approved.expect("drover approve");
        assert!(approved.status.success(), "{}", stderr(&approved));
        out = lab.drover(&["--quiet", "resume", &run]).output().expect("drover resume");
    }
    (run, out)
}

fn reg<'a>(state: &'a Value, server: &str, key: &str, value: &str) -> &'a Value {
    &state["servers"][server]["registry"][key][value]["data"]
}

#[test]
fn the_failover_moves_the_group_to_the_dr_site_through_three_approved_gates_and_reports_its_objectives() {
    let lab = failed_lab();
    // BizTalk's WMI provider keeps reading the database it read before UpdateRegistry.vbs until
    // WMI restarts (F9).
    lab.fault(&["wmi-caches-group"]);

    // The plan reads only (LabRun::plan fails the test if the lab's state changed) and names
    // what cannot be undone.
    let plan = lab.plan(&[&failure_param()], None);
    let effect = |key: &str| {
        let entry = plan["entries"].as_array().unwrap().iter().find(|e| e["key"] == key);
        entry.unwrap_or_else(|| panic!("no plan entry {key}: {plan:#}"))["effect"].as_str().map(str::to_owned)
    };
    assert_eq!(effect("restore-to-mark").as_deref(), Some("irreversible"), "{plan:#}");
    assert_eq!(effect("update-database[DRBTS01]").as_deref(), Some("irreversible"), "{plan:#}");
    assert_eq!(effect("measure").as_deref(), Some("read-only"), "{plan:#}");
    // Measure reads the DR SQL Server; the plan stops at the declare gate, as a run would.
    let verdicts = drover_tests::lab::verdicts(&plan);
    assert_eq!(verdicts[0], ("measure".to_owned(), "no-change".to_owned()), "{plan:#}");
    assert_eq!(verdicts[1], ("declare".to_owned(), "would-wait".to_owned()), "{plan:#}");
    assert!(verdicts.iter().all(|(_, v)| v != "would-change"), "{plan:#}");
    let text = lab
        .drover(&["plan", &lab.workflow, "--inventory", &lab.inventory, "--param", &failure_param()])
        .output()
        .expect("drover plan");
    let text = stdout(&text);
    let irreversible = text
        .lines()
        .find(|l| l.starts_with("irreversible, cannot be undone or repeated once started: "))
        .unwrap_or_else(|| panic!("no list of irreversible steps in\n{text}"));
    assert!(irreversible.contains("restore-to-mark"), "{irreversible}");
    assert!(irreversible.contains("update-database[DRBTS01]"), "{irreversible}");
    // A drill's clean-up is no part of a failover: skipped, so not listed.
    assert_eq!(verdicts.iter().find(|(k, _)| k == "drill-clean").map(|(_, v)| v.as_str()), Some("skipped"));
    assert!(!irreversible.contains("drill-clean"), "{irreversible}");

    let locations_before = receive_locations(&lab.state());
    assert!(locations_before.iter().any(|(_, disabled)| !disabled), "{locations_before:?}");
    let (run, out) = run_through_gates(&lab);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The DR SQL Server's databases recovered at the newest mark; the group, every DR server's
    // registry and SSO point at the DR site.
    let state = lab.state();
    let dest = &state["log-shipping"]["destinations"]["DRSQL01"];
    assert_eq!(dest["recovered-mark"], NEWEST_MARK, "{dest:#}");
    let dbs = dest["databases"].as_object().expect("DRSQL01's databases");
    assert!(dbs.values().all(|s| s == "ONLINE"), "{dbs:?}");
    // The DR site works on the copy Restore To Mark recovered; production's record is as the
    // disaster left it.
    let group = lab::current_group(&state);
    assert_eq!(state["group"]["mgmt-server"], "PRDSQL01");
    assert_eq!(group["mgmt-server"], "DRSQL01");
    assert_eq!(group["sso-server"], "DRSQL01");
    for db in ["messagebox", "tracking", "rule-engine"] {
        assert_eq!(group["activation"][db]["server"], "DRSQL01", "{db}");
    }
    for server in DR_RUNTIME {
        assert_eq!(reg(&state, server, BTS_KEY, "MgmtDBServer"), "DRSQL01", "{server}");
        assert_eq!(reg(&state, server, SSO_KEY, "Server"), "DRSQL01", "{server}");
    }
    assert_eq!(group["master-secret-server"], "DRSSO01");
    assert_eq!(group["activation"]["sso-server-name"], "DRSSO01");
    // Holding the secret is DRSSO01's registry's, kept on production's record.
    assert!(state["group"]["activation"]["secret-holders"].to_string().contains("DRSSO01"));
    let runs = &group["activation"]["update-database-runs"];
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    // F9: the rule engine update service runs again at DR, its start mode set back; WMI, which
    // kept reading production's database (wmi-caches-group), was restarted before SSO used it.
    for server in DR_RUNTIME {
        let rules = lab.service(server, "RuleEngineUpdateService");
        assert_eq!(rules, Some(("auto".to_owned(), "running".to_owned())), "{server}");
        assert!(
            state["servers"][server]["wmi-mgmt-cache"].is_null(),
            "{server}: {:#}",
            state["servers"][server]
        );
    }

    // Processing at DR: the receive locations production had enabled were disabled before the
    // host instances started, then enabled again; every in-process DR host instance runs.
    let enabled: Vec<String> =
        locations_before.iter().filter(|(_, disabled)| !disabled).map(|(n, _)| n.clone()).collect();
    let safe = lab.last_instance("safe-processing[DRBTS01]");
    assert_eq!(safe["output"]["disabled"], serde_json::json!(enabled), "{safe:#}");
    assert_eq!(receive_locations(&state), locations_before);
    let isolated: Vec<&str> = state["group"]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["host-type"] == 2)
        .filter_map(|h| h["name"].as_str())
        .collect();
    let group = lab.group();
    let dr: Vec<_> =
        group.host_instances.iter().filter(|i| DR_RUNTIME.contains(&i.server.as_str())).collect();
    assert!(!dr.is_empty(), "{group:?}");
    for i in dr.iter().filter(|i| !isolated.contains(&i.host.as_str())) {
        assert!(!i.is_disabled && i.service_state == "running", "{i:?}");
    }

    // The recovery report: the data-loss window from the measure step, the phases, every gate.
    let report = lab.drover(&["report", &run, "--json"]).output().expect("drover report --json");
    assert!(report.status.success(), "{}", stderr(&report));
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let o = &report["objectives"];
    assert_eq!(o["data_loss"]["source"], "steps.restore_to_mark.output.rpo", "{o:#}");
    let window =
        o["data_loss"]["failure_time"].as_i64().unwrap() - o["data_loss"]["recovery_point"].as_i64().unwrap();
    assert_eq!(window, (7 * 60 + 29) * 1000, "10:00:01 to 10:07:30: {o:#}");
    let phases: Vec<&str> =
        o["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        ["Declare", "Restore databases", "Database references", "SSO", "Processing", "Re-protect"]
    );
    assert!(o["phases"].as_array().unwrap().iter().all(|p| p["done"] == true), "{o:#}");
    let user = lab.sandbox.status(&run)["started_by"].as_str().unwrap().to_owned();
    let gates: Vec<(&str, &str, &str)> = o["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (g["key"].as_str().unwrap(), g["decision"].as_str().unwrap(), g["by"].as_str().unwrap_or(""))
        })
        .collect();
    let expected: Vec<(&str, &str, &str)> = GATES.iter().map(|g| (*g, "approved", user.as_str())).collect();
    assert_eq!(gates, expected);
    let md = stdout(&lab.drover(&["report", &run]).output().expect("drover report"));
    for line in [
        "| data-loss window (RPO) | **7 min 29 s** |",
        "- Redirect clients: DNS and aliases (F13)\n",
        "- Apply the DR bindings and re-enter the passwords exports strip, at the start-processing gate (F10)\n",
    ] {
        assert!(md.contains(line), "{line:?} in\n{md}");
    }
    // Only the failover's own work changed anything: preparation left the DR services stopped
    // and DRSQL01 had restored every set but the newest, so nothing was caught up.
    let mut changed = lab.changed_steps();
    changed.sort();
    let expected = [
        "enable-processing[DRBTS01]",
        "logins",
        "reprotect",
        "restart-services[DRBTS01]",
        "restart-services[DRBTS02]",
        "restart-services[DRBTS03]",
        "restore-to-mark",
        "safe-processing[DRBTS01]",
        "sso[DRSSO01]",
        "start-hosts[DRBTS01]",
        "update-database[DRBTS01]",
        "update-registry[DRBTS01]",
        "update-registry[DRBTS02]",
        "update-registry[DRBTS03]",
    ];
    assert_eq!(changed, expected);

    // Again: everything is in place, nothing changes, UpdateDatabase.vbs ran once.
    let before = lab.state();
    let (again, out) = run_through_gates(&lab);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_ne!(again, run);
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    let after = lab.state();
    assert_eq!(after["log-shipping"]["destinations"], before["log-shipping"]["destinations"]);
    assert_eq!(after["group"], before["group"]);
    assert_eq!(receive_locations(&after), locations_before);
    // F5 runs only in the run that recovered the databases: here it would stop the DR host
    // instances that now process on purpose.
    let f5 = lab.last_instance("stop-dr-services[DRBTS01]");
    assert_eq!(f5["state"], "skipped", "{f5:#}");
    assert_eq!(after["servers"], before["servers"], "the second run changed a DR server");
}

/// Production still answers (no disaster): a failover is refused as a split brain before the
/// declare gate, naming what to do; once the operator says production was quiesced by hand, the
/// declare gate asks, showing the measurement, and an operator who cancels there changes nothing
/// at either site; the report records the refusal with who and why.
#[test]
fn with_production_alive_a_failover_is_refused_as_a_split_brain_unless_quiesced() {
    let lab = prepared_lab();
    let before = lab.state();

    let out = lab.run(&[&failure_param()]);
    assert!(!out.status.success(), "refused: {}{}", stdout(&out), stderr(&out));
    let measure = lab.last_instance("measure");
    let why = measure["why"].as_str().unwrap_or_default();
    assert_eq!(measure["state"], "failed", "{measure:#}");
    assert!(why.contains("production's PRDSQL01 still answers") && why.contains("split brain"), "{why}");
    assert!(why.contains("source-quiesced=true"), "{why}");
    assert!(lab.last_instances().iter().all(|i| i["key"] != "declare" || i["state"] == "skipped"));
    assert_eq!(lab.state(), before, "a refused failover changed the lab");

    let out = lab.run(&[&failure_param(), "source-quiesced=true"]);
    assert_eq!(out.status.code(), Some(4), "waits at the declare gate: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();
    let declare = lab.last_instance("declare");
    assert_eq!(declare["state"], "waiting");
    let asked = declare["why"].as_str().unwrap_or_default();
    assert!(asked.contains("Declare the disaster and fail over to the DR site?"), "{asked}");
    assert!(
        asked.contains("Recovery point: log set") && asked.contains("Production's PRDSQL01 answers"),
        "{asked}"
    );

    let comment = "production answers: no split brain";
    let out = lab.drover(&["cancel", &run, "--comment", comment]).output().expect("drover cancel");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.state(), before, "refusing at the declare gate changed the lab");
    let report = lab.drover(&["report", &run, "--json"]).output().expect("drover report --json");
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let gate = &report["objectives"]["gates"][0];
    assert_eq!(
        (gate["key"].as_str(), gate["decision"].as_str()),
        (Some("declare"), Some("cancelled")),
        "{gate:#}"
    );
    assert_eq!(gate["comment"], comment, "{gate:#}");
}

/// What a drill may leave different in the lab: the history it records (backup sets and the
/// destinations' view of them, SQL Server Agent job history), the files the scripts read
/// (`SampleUpdateInfo.xml`, the secret-server file), which stay where they were written as on a
/// real server, and DRSSO01 among the servers holding the master secret: it restored production's
/// secret (whose backup and password preparation staged there anyway), and Enterprise SSO has no
/// command to forget it. Everything else must be as before.
fn less_history(state: &Value) -> Value {
    let mut state = state.clone();
    let holders = &mut state["group"]["activation"]["secret-holders"];
    holders.as_array_mut().expect("secret holders").retain(|s| s != "DRSSO01");
    // The Windows logins the drill created on DRSQL01 stay (the test checks they are the only
    // difference): server logins outlive the dropped databases, and a real failover needs them.
    state["servers"]["DRSQL01"]["sql"].as_object_mut().expect("DRSQL01's SQL Server").remove("logins");
    let shipping = &mut state["log-shipping"];
    for key in ["history", "force-full"] {
        shipping.as_object_mut().expect("log shipping").remove(key);
    }
    let strip = |agent: &mut Value| {
        let agent = agent.as_object_mut().expect("an agent");
        for key in ["next-history-id", "imported", "last-restored"] {
            agent.remove(key);
        }
        for job in agent.get_mut("jobs").and_then(Value::as_array_mut).into_iter().flatten() {
            job.as_object_mut().expect("a job").remove("history");
        }
    };
    strip(&mut shipping["source-agent"]);
    shipping["destinations"].as_object_mut().expect("destinations").values_mut().for_each(strip);
    for server in state["servers"].as_object_mut().expect("servers").values_mut() {
        if let Some(files) = server["files"].as_object_mut() {
            files.retain(|path, _| {
                !path.ends_with("sampleupdateinfo.xml") && !path.ends_with("secret-server.xml")
            });
        }
    }
    state
}

/// Every leaf of `value` by its path (`servers.DRSQL01.sql.databases[0]`).
fn flatten(value: &Value) -> std::collections::BTreeMap<String, Value> {
    fn walk(path: String, value: &Value, out: &mut std::collections::BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(format!("{path}.{k}"), v, out)),
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(n, v)| walk(format!("{path}[{n}]"), v, out))
            }
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(String::new(), value, &mut out);
    out
}

/// Production's record of the group, less what is not the record's but a server's: the state of
/// each host instance's service (the drill starts the DR ones; every copy shows the service as it
/// is) and which servers hold the master secret (DRSSO01's registry, once it restored it).
fn production_record(state: &Value) -> Value {
    let mut group = state["group"].clone();
    group["activation"].as_object_mut().expect("activation").remove("secret-holders");
    for i in group["host-instances"].as_array_mut().expect("host instances") {
        i.as_object_mut().expect("a host instance").remove("service-state");
    }
    group
}

/// A drill on a prepared lab, production running: the same activation on the DR SQL Server's
/// recovered copy of the group (four gates, the declare gate stating the drill's cost), production
/// never touched; then the clean-up prepares the DR site again, and once the next backups re-seed
/// DRSQL01 the lab is what it was, less the recorded history.
#[test]
fn a_drill_rehearses_the_failover_on_the_dr_copy_then_leaves_the_lab_as_it_was() {
    let lab = prepared_lab();
    lab.fault(&["wmi-caches-group"]);
    let before = lab.state();
    // The drill's plan on the healthy lab reads only (LabRun::plan checks the lab is unchanged),
    // stops at the declare gate and names the drill's irreversible steps, its clean-up's too.
    let plan = lab.plan(&["mode=drill", &failure_param()], None);
    let verdicts = drover_tests::lab::verdicts(&plan);
    assert_eq!(verdicts[0], ("measure".to_owned(), "no-change".to_owned()), "{plan:#}");
    assert!(verdicts.iter().all(|(_, v)| v != "would-change"), "{plan:#}");
    assert_eq!(
        verdicts.iter().find(|(k, _)| k == "enable-processing[DRBTS01]").map(|(_, v)| v.as_str()),
        Some("skipped")
    );
    let text = lab
        .drover(&[
            "plan",
            &lab.workflow,
            "--inventory",
            &lab.inventory,
            "--param",
            "mode=drill",
            "--param",
            &failure_param(),
        ])
        .output()
        .expect("drover plan");
    let text = stdout(&text);
    let irreversible = text.lines().find(|l| l.starts_with("irreversible, ")).unwrap_or_default();
    for step in ["restore-to-mark", "update-database[DRBTS01]", "drill-clean"] {
        assert!(irreversible.contains(step), "{step} in {text}");
    }
    let gates = ["declare", "point-of-no-return", "start-processing", "drill-end"];
    let (run, out) = run_through(&lab, &["mode=drill", &failure_param()], &gates, |gate| match gate {
        "declare" => {
            let asked = lab.last_instance("declare")["why"].as_str().unwrap_or_default().to_owned();
            assert!(asked.contains("Start the drill"), "{asked}");
            assert!(
                asked.contains("Drill cost:") && asked.contains("a window without DR protection"),
                "{asked}"
            );
        }
        "drill-end" => {
            // Activated at DR, on the copy: production's record and servers are as they were.
            let state = lab.state();
            let copy = lab::current_group(&state);
            assert_eq!(
                (copy["mgmt-server"].as_str(), copy["sso-server"].as_str()),
                (Some("DRSQL01"), Some("DRSQL01"))
            );
            assert_eq!(copy["master-secret-server"], "DRSSO01");
            assert_eq!(
                production_record(&state),
                production_record(&before),
                "production's record changed during the drill"
            );
            for (name, server) in before["servers"].as_object().expect("servers") {
                if server["site"] == "prod" {
                    assert_eq!(&state["servers"][name], server, "{name} changed during the drill");
                }
            }
            assert!(
                receive_locations(&state).iter().all(|(_, disabled)| *disabled),
                "kept disabled in a drill"
            );
            let dr = lab.group();
            let at_dr: Vec<_> = dr
                .host_instances
                .iter()
                .filter(|i| DR_RUNTIME.contains(&i.server.as_str()) && i.host != "BizTalkServerIsolatedHost")
                .collect();
            assert!(
                !at_dr.is_empty() && at_dr.iter().all(|i| i.service_state == "running" && !i.is_disabled),
                "{dr:?}"
            );
            for server in DR_RUNTIME {
                assert_eq!(reg(&state, server, BTS_KEY, "MgmtDBServer"), "DRSQL01", "{server}");
            }
        }
        _ => {}
    });
    assert!(out.status.success(), "the drill ends: {}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.last_instance("enable-processing[DRBTS01]")["state"], "skipped");
    let clean = lab.last_instance("drill-clean");
    assert_eq!(clean["output"]["full_backup_forced"], true, "{clean:#}");
    assert_eq!(
        clean["output"]["instances"][0]["deleted_jobs"].as_array().map(Vec::len),
        Some(12),
        "{clean:#}"
    );
    let state = lab.state();
    assert!(state["log-shipping"]["destinations"]["DRSQL01"]["group"].is_null(), "the copy is dropped");
    assert_eq!(state["log-shipping"]["force-full"], true, "sp_ForceFullBackup at the source");

    // Time passes: the source's next backup is a full set, which DRSQL01 restores.
    let out = Command::new(lab_bin())
        .args(["backup", "--state", &lab.state])
        .env("DROVER_LAB_NOW", "2026-11-22T10:30:01Z")
        .output()
        .expect("run drover-lab backup");
    assert!(out.status.success(), "drover-lab backup: {}", stderr(&out));
    let after = lab.state();
    // The only logins the drill left on DRSQL01 are the Windows logins its logins step created.
    let names = |state: &Value| -> Vec<String> {
        let logins = state["servers"]["DRSQL01"]["sql"]["logins"].as_array().cloned().unwrap_or_default();
        let mut names: Vec<String> =
            logins.iter().filter_map(|l| l["name"].as_str().map(str::to_owned)).collect();
        names.sort();
        names
    };
    let created = lab.last_instance("logins")["output"]["created"].clone();
    let created: Vec<String> = serde_json::from_value(created).expect("the created logins");
    assert!(!created.is_empty(), "the prepared DR SQL Server lacks some of production's logins");
    let mut expected = names(&before);
    expected.extend(created);
    expected.sort();
    assert_eq!(names(&after), expected);
    let dbs = after["log-shipping"]["destinations"]["DRSQL01"]["databases"].as_object().expect("re-seeded");
    assert!(dbs.len() == 5 && dbs.values().all(|s| s == "RESTORING"), "{dbs:?}");
    let (left, right) = (less_history(&before), less_history(&after));
    let (left, right) = (flatten(&left), flatten(&right));
    let diff: Vec<String> = left
        .iter()
        .filter(|(path, value)| right.get(*path) != Some(value))
        .map(|(path, value)| {
            format!(
                "{path}: before {value}, after {}",
                right.get(path).map_or("nothing".into(), ToString::to_string)
            )
        })
        .chain(
            right
                .iter()
                .filter(|(path, _)| !left.contains_key(*path))
                .map(|(path, value)| format!("{path}: before nothing, after {value}")),
        )
        .collect();
    assert!(diff.is_empty(), "the drill left the lab different:\n{}", diff.join("\n"));

    // The report measures the drill: its phases, four approvals and the data-loss window.
    let report = lab.drover(&["report", &run, "--json"]).output().expect("drover report --json");
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let gates_reported = report["objectives"]["gates"].as_array().map(Vec::len);
    assert_eq!(gates_reported, Some(4), "{:#}", report["objectives"]);
    let phases: Vec<&str> = report["objectives"]["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(phases.contains(&"Drill clean-up"), "{phases:?}");
}

/// Production still answers and the operator asks the run to quiesce it (`quiesce-source=true`):
/// after the declare gate, production's receive locations are disabled, its host instances and
/// services stopped, its BizTalk jobs disabled after a last marked log backup, which the DR site
/// imports and recovers to; at DR the receive locations production had enabled are enabled again,
/// and the report's data-loss window starts at that last mark, not at the one measured before.
#[test]
fn a_failover_of_a_live_production_quiesces_it_first_and_recovers_to_its_last_mark() {
    let lab = prepared_lab();
    let before = lab.state();
    let locations_before = receive_locations(&before);
    // The operator declares the failure at the moment of the decision (here: a fixed time after
    // any mark the lab's clock can take).
    let declared = "failure-time=2099-01-01T00:00:00Z";
    let (run, out) = run_through(&lab, &["quiesce-source=true", declared], &GATES, |_| {});
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let quiesce = lab.last_instance("quiesce-source[PRDBTS01]");
    assert_eq!(quiesce["output"]["mark_taken"], true, "{quiesce:#}");
    let last_mark = quiesce["output"]["last_mark"]["mark"].as_str().expect("the last mark").to_owned();
    let state = lab.state();
    // Production answers, quiesced: nothing enabled, nothing running, its jobs off.
    assert!(
        state["group"]["activation"]["receive-locations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["is-disabled"] == true)
    );
    let running: Vec<&Value> = state["group"]["host-instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["server"].as_str().is_some_and(|s| s.starts_with("PRD")) && i["service-state"] == "running"
        })
        .collect();
    assert!(running.is_empty(), "{running:#?}");
    let source_jobs = state["log-shipping"]["source-agent"]["jobs"].as_array().unwrap();
    assert!(source_jobs.iter().all(|j| j["enabled"] == false), "{source_jobs:#?}");
    // DR recovered to that mark, and processes as production did before the quiesce.
    assert_eq!(state["log-shipping"]["destinations"]["DRSQL01"]["recovered-mark"], last_mark.as_str());
    assert_eq!(receive_locations(&state), locations_before);
    let enabled = lab.last_instance("enable-quiesced[DRBTS01]");
    assert_eq!(enabled["state"], "succeeded", "{enabled:#}");

    let report = lab.drover(&["report", &run, "--json"]).output().expect("drover report --json");
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let loss = &report["objectives"]["data_loss"];
    let measured = lab.last_instance("measure")["output"]["rpo"]["recovery_point"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let recovered = lab.last_instance("restore-to-mark")["output"]["rpo"].clone();
    assert_ne!(
        recovered["recovery_point"].as_str(),
        Some(measured.as_str()),
        "the quiesce's mark is newer: {recovered:#}"
    );
    assert_eq!(loss["source"], "steps.restore_to_mark.output.rpo", "{loss:#}");
    assert!(loss["recovery_point"].as_i64().is_some() && loss["not_measured"].is_null(), "{loss:#}");
}
