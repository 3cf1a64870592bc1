//! Quiescing a production that still runs before the failover (issue 18, F1; fidelity review
//! §4.2; Microsoft Learn, "Stopping Application Processing on the Source System") against the
//! lab: on a lab that `dr-site-preparation` prepared, production alive, a small workflow written
//! here runs `bts-quiesce-source` on PRDBTS01, then the failover's SQL steps (catch-up, Restore To
//! Mark). Its plan first, through the read-only grants: the quiesce step would change something, the
//! SQL steps after it cannot tell before its mark, the lab does not change. Then the run: production's receive locations are
//! disabled, its host instances, ENTSSO and rule engine services stopped, its BizTalk SQL Agent
//! jobs disabled, and the log set the quiesce step marked last is the one DRSQL01 recovers to; the
//! step's output records what it stopped. A second run changes nothing, in the lab either.
//!
//! With a host instance production's account may not stop (`access-denied`), the step stops for
//! an operator with Windows' answer after disabling the receive locations and stopping the
//! others; no mark is taken while an instance runs and the jobs stay enabled. Retried once the
//! rights are fixed, it finishes, its output naming what both attempts stopped.

use drover_tests::lab::{self, LabRun};
use drover_tests::{stderr, stdout, wasm};
use serde_json::Value;

const READS: &str = r#"read-only = ["powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*", "sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT*", "sc.exe query *"]"#;
const QUIESCE: &str = "quiesce-source[PRDBTS01]";

fn workflow() -> String {
    let recovery = lab::sql_recovery_steps(Some("quiesce-source"));
    format!(
        r#"name = "failover-quiesce"
version = "1.0.0"
description = "A planned failover's start: quiesce production, catch up, Restore To Mark"

[[steps]]
id = "quiesce-source"
plugin = "bts-quiesce-source@^1"
phase = "Quiesce production"
for-each = ["PRDBTS01"]
grants = {{ targets = ["PRDBTS02"], programs = ["powershell.exe", "sqlcmd", "sc.exe"], {READS} }}
with = {{ servers = "{{{{ inventory.groups['prod-runtime'] }}}}", source_sql = "PRDSQL01", destinations = ["DRSQL01"] }}
{recovery}"#
    )
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().expect("a list").iter().map(|v| v.as_str().expect("a string").to_owned()).collect()
}

/// Production's own record of the group (a failover never changes it but through production).
fn production_locations(state: &Value) -> Vec<(String, bool)> {
    state["group"]["activation"]["receive-locations"]
        .as_array()
        .expect("production's receive locations")
        .iter()
        .map(|l| (l["name"].as_str().unwrap_or_default().to_owned(), l["is-disabled"] == true))
        .collect()
}

#[test]
fn a_running_production_is_quiesced_and_the_dr_site_recovers_to_the_mark_it_took() {
    let mut lab = LabRun::prepared_for_failover();
    lab.sandbox.install(&[wasm::FAILOVER_QUIESCE]);
    lab.workflow = lab.sandbox.write("failover-quiesce.toml", &workflow());
    let before = lab.state();
    assert!(production_locations(&before).iter().any(|(_, disabled)| !disabled), "production receives");

    let plan = lab.plan(&[], None);
    // What follows the quiesce depends on the mark it would take: the plan cannot tell yet.
    let expected =
        [(QUIESCE, "would-change"), ("catch-up", "cannot-tell"), ("restore-to-mark", "cannot-tell")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(lab::verdicts(&plan), expected, "{plan:#}");

    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), [QUIESCE, "catch-up", "restore-to-mark"]);

    let state = lab.state();
    // Production answers, but processes nothing.
    assert!(
        production_locations(&state).iter().all(|(_, disabled)| *disabled),
        "{:?}",
        production_locations(&state)
    );
    for instance in state["group"]["host-instances"].as_array().expect("host instances") {
        if instance["server"].as_str().is_some_and(|s| s.starts_with("PRD")) {
            assert_ne!(instance["service-state"], "running", "{instance}");
        }
    }
    for server in ["PRDBTS01", "PRDBTS02"] {
        for service in ["ENTSSO", "RuleEngineUpdateService", "BTSSvc$SendHost"] {
            let (_, running) = lab::service_of(&state, server, service).expect("the service");
            assert_eq!(running, "stopped", "{service} on {server}");
        }
    }
    let source_jobs = state["log-shipping"]["source-agent"]["jobs"].as_array().expect("the source's jobs");
    assert_eq!(source_jobs.len(), 12);
    assert!(source_jobs.iter().all(|j| j["enabled"] == false), "{source_jobs:#?}");

    // What the step recorded, and the mark it took: the set DRSQL01 recovered to.
    let quiesce = lab.last_instance(QUIESCE);
    let output = &quiesce["output"];
    assert_eq!(strings(&output["receive_locations_disabled"]), ["RL.Orders.File", "RL.Orders.Http"]);
    assert_eq!(
        strings(&output["host_instances_stopped"]),
        [
            "Microsoft BizTalk Server ReceiveHost PRDBTS01",
            "Microsoft BizTalk Server SendHost PRDBTS01",
            "Microsoft BizTalk Server SendHost PRDBTS02",
            "Microsoft BizTalk Server ProcessingHost PRDBTS02",
        ]
    );
    assert_eq!(output["jobs_disabled"].as_array().map(Vec::len), Some(12));
    assert_eq!(output["services_stopped"].as_array().map(Vec::len), Some(4), "{output:#}");
    assert_eq!(output["mark_taken"], true);
    let history = state["log-shipping"]["history"].as_array().expect("the source's history");
    let newest = history.last().expect("a backup set");
    let before_history = before["log-shipping"]["history"].as_array().expect("history").len();
    assert_eq!(history.len(), before_history + 1, "one more set, from MarkAndBackupLog");
    assert_eq!(newest["kind"], "log");
    assert_eq!(output["last_mark"]["mark"], newest["mark"]);
    assert_eq!(output["destinations"][0]["history_imported"], true);
    let dr = &state["log-shipping"]["destinations"]["DRSQL01"];
    assert_eq!(dr["recovered-mark"], newest["mark"], "DRSQL01 recovered to the quiesce's mark");
    assert!(dr["databases"].as_object().expect("databases").values().all(|s| s == "ONLINE"));
    let restored = lab.last_instance("restore-to-mark");
    assert_eq!(restored["output"]["instances"][0]["recovered_to"]["mark"], newest["mark"]);
    // What Restore To Mark recovered holds production at the mark: its receive locations disabled.
    let recovered = dr["group"]["activation"]["receive-locations"].as_array().expect("the recovered copy");
    assert!(recovered.iter().all(|l| l["is-disabled"] == true));

    // Again: production is quiesced, DRSQL01 recovered; nothing changes, in the lab either.
    let before_second = lab.state();
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    assert_eq!(lab.state(), before_second);
    let again = lab.last_instance(QUIESCE);
    assert_eq!(again["output"]["mark_taken"], false);
    assert!(
        again["summary"].as_str().is_some_and(|s| s.starts_with("production is quiesced already")),
        "{again:#}"
    );
}

#[test]
fn a_host_instance_that_refuses_to_stop_holds_the_mark_back_and_a_retry_finishes_with_the_whole_record() {
    let mut lab = LabRun::prepared_for_failover();
    lab.sandbox.install(&[wasm::FAILOVER_QUIESCE]);
    lab.workflow = lab.sandbox.write("failover-quiesce.toml", &workflow());
    let history_before = lab.state()["log-shipping"]["history"].as_array().expect("history").len();

    // The account may not stop ProcessingHost's service on PRDBTS02: the step stops for an
    // operator with Windows' answer, after the receive locations and the other instances; no
    // mark is taken while an instance still runs, no job is touched, nothing is restored at DR.
    lab.fault(&["access-denied", "PRDBTS02", "BTSSvc$ProcessingHost"]);
    let out = lab.run(&[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let failed = lab.last_instance(QUIESCE);
    let why = failed["why"].as_str().unwrap_or_default();
    assert!(why.contains("ProcessingHost PRDBTS02") && why.contains("Access is denied."), "{failed:#}");
    let state = lab.state();
    assert!(production_locations(&state).iter().all(|(_, disabled)| *disabled));
    assert_eq!(state["log-shipping"]["history"].as_array().expect("history").len(), history_before);
    let source_jobs = state["log-shipping"]["source-agent"]["jobs"].as_array().expect("the source's jobs");
    assert!(source_jobs.iter().all(|j| j["enabled"] == true), "{source_jobs:#?}");
    assert_eq!(lab::job_runs(&state, "DRSQL01", "BTS Log Shipping - Restore To Mark"), 0);

    // The operator fixes the rights and retries: the step finishes, its output naming what the
    // first attempt stopped as well, and DRSQL01 recovers to the mark taken after it.
    let out = lab.lab(&["fault", "clear", "access-denied"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = lab.sandbox.last_run();
    let out = lab.drover(&["--quiet", "retry", &run, QUIESCE]).output().expect("drover retry");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = lab.drover(&["--quiet", "resume", &run]).output().expect("drover resume");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let output = lab.last_instance(QUIESCE)["output"].clone();
    assert_eq!(strings(&output["receive_locations_disabled"]), ["RL.Orders.File", "RL.Orders.Http"]);
    assert_eq!(output["host_instances_stopped"].as_array().map(Vec::len), Some(4), "{output:#}");
    let state = lab.state();
    let newest = state["log-shipping"]["history"].as_array().and_then(|h| h.last().cloned()).expect("a set");
    assert_eq!(state["log-shipping"]["history"].as_array().map(Vec::len), Some(history_before + 1));
    assert_eq!(output["last_mark"]["mark"], newest["mark"]);
    assert_eq!(state["log-shipping"]["destinations"]["DRSQL01"]["recovered-mark"], newest["mark"]);
}
