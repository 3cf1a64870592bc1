//! `workflows/dr-failover.toml` against trouble on the way (issue 18): the driving `drover`
//! SIGKILLed at seeded random points of the failover and resumed each time, an interrupted
//! `UpdateDatabase.vbs` taken to an operator, and production's servers dead to WMI.
//!
//! Every test starts from the same lab, prepared once per test binary by `dr-site-preparation`
//! and failed by `drover-lab disaster` (its state file is copied into each test's sandbox), and
//! goes through the failover's three gates as an operator does: `drover run` or `drover resume`
//! stops with exit code 4, `drover status` shows what waits, `drover approve`, `drover resume`.
//! The lab each ends in is compared with the lab after one uninterrupted failover, less the SQL
//! Agent jobs' recorded history (its times are the wall clock's; the runs of Restore To Mark are
//! counted instead).
//!
//! Kill points come from the journal's progress (`drover_tests::kill`): once a process made one or
//! two step instances succeed, or started the first attempt of Restore To Mark or UpdateDatabase.vbs
//! (counted as two, so kills land inside them too), then within 150 ms. The seed is
//! printed; `DROVER_TORTURE_SEED` replays it and `DROVER_TORTURE_POINTS` sets how many kills (6).

use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use drover_tests::kill::{self, KillPoint, Rng};
use drover_tests::lab::{self, LabRun};
use drover_tests::{stderr, stdout};
use serde_json::Value;

const FAILED_AT: &str = "2026-11-22T10:07:30Z";
const GATES: [&str; 3] = ["declare", "point-of-no-return", "start-processing"];
/// The failover's irreversible step instances whose effect the lab records: Restore To Mark and
/// UpdateDatabase.vbs (both must reach the lab exactly once).
const ONCE: [&str; 2] = ["restore-to-mark", "update-database[DRBTS01]"];
const RESTORE_TO_MARK_JOB: &str = "BTS Log Shipping - Restore To Mark";
/// How many processes a failover may take before the test calls it stuck: three gates, a few
/// operator retries and every kill each end one.
const MAX_PROCESSES: usize = 60;

/// The state file of a lab prepared by `dr-site-preparation` and failed at [`FAILED_AT`], made
/// once per test binary (the preparation is what takes time).
fn failed_state() -> &'static [u8] {
    static FAILED: OnceLock<Vec<u8>> = OnceLock::new();
    FAILED.get_or_init(|| {
        let lab = LabRun::prepared_for_failover();
        lab.disaster(FAILED_AT);
        lab.state_file()
    })
}

/// A fresh sandbox with the failover's plugins, on a copy of [`failed_state`].
fn failed_lab() -> LabRun {
    let lab = LabRun::new("dr-failover.toml", &[]).into_failover();
    lab.set_state(failed_state());
    lab
}

/// The lab after one uninterrupted failover, made once per test binary, [`comparable`].
fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let lab = failed_lab();
        let driven = drive(&lab, None, None);
        assert!(driven.operator.iter().all(|a| matches!(a, Action::Approved(_))), "{:?}", driven.operator);
        comparable(lab.state())
    })
}

/// A lab state less what legitimately differs between two failovers: the SQL Agent jobs'
/// recorded history (times of the wall clock; a re-run read-only or idempotent step may add rows).
fn comparable(mut state: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("history") && map.contains_key("enabled") {
                    map.remove("history");
                }
                map.remove("next-history-id");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut state);
    state
}

fn failure_param() -> String {
    format!("failure-time={FAILED_AT}")
}

/// What the test, as the operator, did when a process stopped with exit code 4.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Approved the gate waiting in `drover status`.
    Approved(String),
    /// Retried an interrupted irreversible step after looking at the lab, which showed its effect
    /// (`true`) or not.
    Retried(String, bool),
    /// Ran Restore To Mark by hand and retried its step, as the step asks when it cannot tell
    /// whether its killed attempt started the job (the job's history shows no run).
    RanRestoreToMarkByHand,
}

/// A failover driven to its end.
struct Driven {
    run: String,
    operator: Vec<Action>,
    kills: usize,
}

/// Runs the failover (`run`, or a new one) to its end, as an operator: approves each gate `drover
/// status` shows waiting, and retries an interrupted irreversible step after looking at the lab.
/// With `kills` (a generator and how many kills may land), every process is SIGKILLed at a point
/// drawn from its progress, what its target commands left running killed with it, and the run
/// resumed.
fn drive(lab: &LabRun, run: Option<&str>, mut kills: Option<(&mut Rng, usize)>) -> Driven {
    let db = lab.sandbox.db_path();
    // First attempts only: a retry counted too would draw the next kill into it again and again.
    let irreversible_starts = format!(
        "kind = 'attempt-started' AND json_extract(data, '$.attempt') = 1 AND step_key IN ('{}')",
        ONCE.join("', '")
    );
    let progress = || kill::instances_succeeded(&db) + 2 * kill::events(&db, &irreversible_starts);
    let mut driven = Driven { run: run.unwrap_or_default().to_owned(), operator: Vec::new(), kills: 0 };
    for _ in 0..MAX_PROCESSES {
        let from = progress();
        let mut child = spawn(lab, (!driven.run.is_empty()).then_some(driven.run.as_str()));
        let killed = match &mut kills {
            Some((rng, budget)) if driven.kills < *budget => {
                KillPoint::draw(rng, Duration::from_millis(150)).kill(&mut child, from, progress)
            }
            _ => false,
        };
        let status = child.wait().expect("reap drover");
        if driven.run.is_empty() {
            driven.run = lab.sandbox.last_run();
        }
        if killed {
            driven.kills += 1;
            kill::kill_leftovers(&driven.run);
            continue;
        }
        match status.code() {
            Some(0) => return driven,
            Some(4) => driven.operator.push(operate(lab, &driven.run)),
            _ => panic!("drover ended with {status}: {}", run_status(lab, &driven.run)),
        }
    }
    panic!("the failover did not end within {MAX_PROCESSES} processes: {}", run_status(lab, &driven.run))
}

/// `drover run` of the failover, or `drover resume <run>`, output dropped.
fn spawn(lab: &LabRun, run: Option<&str>) -> Child {
    let failure = failure_param();
    let mut cmd = match run {
        None => {
            lab.drover(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory, "--param", &failure])
        }
        Some(run) => lab.drover(&["--quiet", "resume", run]),
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn drover")
}

/// `drover status <run>`, for a failure message.
fn run_status(lab: &LabRun, run: &str) -> String {
    stdout(&lab.sandbox.run(&["status", run]))
}

/// The operator's move when the run waits: an interrupted irreversible step first (the lab is
/// looked at as `docs/operations.md` says, then the step retried: its plugin reads the lab first
/// and does not run the script again), else the gate that waits.
fn operate(lab: &LabRun, run: &str) -> Action {
    let instances = lab::instances(&lab.sandbox.status(run));
    if let Some(stuck) = instances.iter().find(|i| i["state"] == "needs-operator") {
        let key = stuck["key"].as_str().expect("a key").to_owned();
        let why = stuck["why"].as_str().unwrap_or_default();
        let retry = |comment: &str| {
            let out = lab.drover(&["retry", run, &key, "--comment", comment]).output().expect("drover retry");
            assert!(out.status.success(), "drover retry {key}: {}", stderr(&out));
        };
        if why.contains("irreversible step was interrupted") && why.contains("drover retry") {
            let took_effect = took_effect(&lab.state(), &key);
            retry(&format!("looked at the lab: {key} took effect: {took_effect}"));
            return Action::Retried(key, took_effect);
        }
        // The retry of an interrupted Restore To Mark that found its own record of starting the
        // job, and no run of it: the operator checks the job's history, runs it by hand, retries.
        assert!(
            key == "restore-to-mark" && why.contains("whether it started is unclear"),
            "{key} waits for an operator for another reason: {stuck:#}"
        );
        assert_eq!(lab::job_runs(&lab.state(), "DRSQL01", RESTORE_TO_MARK_JOB), 0, "{why}");
        lab.restore_to_mark();
        retry("no run in the job's history: ran Restore To Mark by hand");
        return Action::RanRestoreToMarkByHand;
    }
    let gate = instances
        .iter()
        .find(|i| i["state"] == "waiting")
        .unwrap_or_else(|| panic!("exit code 4 with nothing waiting: {instances:#?}"));
    let gate = gate["key"].as_str().expect("a key").to_owned();
    assert!(GATES.contains(&gate.as_str()), "{gate} waits");
    let out =
        lab.drover(&["approve", run, &gate, "--comment", "bridge call"]).output().expect("drover approve");
    assert!(out.status.success(), "drover approve {gate}: {}", stderr(&out));
    Action::Approved(gate)
}

/// Whether the lab shows the effect of step instance `key`: the databases recovered at a mark,
/// UpdateDatabase.vbs's run, a server's registry naming the DR SQL Server.
fn took_effect(state: &Value, key: &str) -> bool {
    match key {
        "restore-to-mark" => lab::job_runs(state, "DRSQL01", RESTORE_TO_MARK_JOB) > 0,
        "update-database[DRBTS01]" => !lab::update_database_runs(state).is_empty(),
        _ => {
            let server = key.strip_prefix("update-registry[").and_then(|k| k.strip_suffix(']'));
            let server =
                server.unwrap_or_else(|| panic!("{key} is not an irreversible step of the failover"));
            let key = r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration";
            state["servers"][server]["registry"][key]["MgmtDBServer"]["data"] == "DRSQL01"
        }
    }
}

/// The checks every failover must pass however it was interrupted: the run succeeded, the lab
/// ends as after an uninterrupted failover, Restore To Mark and UpdateDatabase.vbs reached the lab
/// once, and a step the operator retried after its effect was there changed nothing the second
/// time.
fn check_end(lab: &LabRun, driven: &Driven, what: &str) {
    let status = lab.sandbox.status(&driven.run);
    assert_eq!(status["state"], "succeeded", "{what}: {status:#}");
    let state = lab.state();
    let runs = lab::update_database_runs(&state);
    assert_eq!(runs.len(), 1, "UpdateDatabase.vbs reached the database once ({what}): {runs:?}");
    assert!(runs[0]["changed"].as_u64().is_some_and(|n| n > 0), "and moved the group: {runs:?}");
    let restored = lab::job_runs(&state, "DRSQL01", RESTORE_TO_MARK_JOB);
    assert_eq!(restored, 1, "Restore To Mark ran once ({what})");
    check_state(state, what);
    let changed = changed_by_last_attempt(lab, &driven.run);
    for action in &driven.operator {
        let key = match action {
            Action::Retried(key, true) => key.as_str(),
            Action::RanRestoreToMarkByHand => "restore-to-mark",
            _ => continue,
        };
        assert_eq!(changed.get(key), Some(&false), "{key} retried after it took effect ({what})");
    }
}

/// Fails unless `state` is the lab after an uninterrupted failover ([`reference`]), less what
/// [`comparable`] strips; names where they differ.
fn check_state(state: Value, what: &str) {
    let differences = differences(&comparable(state), reference(), "");
    assert!(
        differences.is_empty(),
        "the lab ends unlike an uninterrupted failover ({what}): {differences:#?}"
    );
}

/// Where two JSON values differ, as paths with both sides.
fn differences(got: &Value, want: &Value, path: &str) -> Vec<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let keys: std::collections::BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    differences(
                        &g.get(k).cloned().unwrap_or_default(),
                        &w.get(k).cloned().unwrap_or_default(),
                        &format!("{path}/{k}"),
                    )
                })
                .collect()
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .flat_map(|(i, (g, w))| differences(g, w, &format!("{path}/{i}")))
            .collect(),
        _ if got == want => Vec::new(),
        _ => vec![format!("{path}: {got} instead of {want}")],
    }
}

/// Whether the attempt that succeeded each step instance reported a change, from the journal.
fn changed_by_last_attempt(lab: &LabRun, run: &str) -> std::collections::BTreeMap<String, bool> {
    stdout(&lab.sandbox.run(&["events", run, "--ndjson"]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event"))
        .filter(|e| e["kind"] == "attempt-succeeded")
        .map(|e| (e["step_key"].as_str().unwrap_or_default().to_owned(), e["data"]["changed"] == true))
        .collect()
}

#[test]
fn sigkill_at_random_points_of_the_failover_then_resume_ends_as_an_uninterrupted_failover() {
    let seed = kill::seed();
    let points: usize = std::env::var("DROVER_TORTURE_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    eprintln!("{points} kill points");
    let mut rng = Rng(seed);
    let reference = reference();
    assert_eq!(lab::update_database_runs(reference).len(), 1);

    // Fresh failed labs, killed again and again until `points` kills landed.
    let started = Instant::now();
    let (mut kills, mut rounds) = (0, 0);
    while kills < points {
        rounds += 1;
        let lab = failed_lab();
        let driven = drive(&lab, None, Some((&mut rng, points - kills)));
        eprintln!("round {rounds}: {} kills, the operator: {:?}", driven.kills, driven.operator);
        check_end(&lab, &driven, &format!("seed {seed}"));
        kills += driven.kills;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{kills} kills in {rounds} rounds (seed {seed})"
        );
    }
}

/// Where the wrapper holds UpdateDatabase.vbs's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Before the script reaches the lab: the killed attempt did nothing.
    Before,
    /// After the script changed the lab and before `drover` hears of it.
    After,
}

/// A command prefix wrapper that, while the file `hold` exists, holds the command running
/// UpdateDatabase.vbs (before or after it runs) after creating the file `started`; every other
/// command, and every command once `hold` is gone, runs straight through.
const HOLD_SCRIPT: &str = r#"#!/bin/sh
hold="$(dirname "$0")/hold"; started="$(dirname "$0")/started"
case "$*" in
*UpdateDatabase.vbs*)
    if [ -e "$hold" ]; then
        if [ "$(cat "$hold")" = before ]; then
            touch "$started"
            while [ -e "$hold" ]; do sleep 0.02; done
            exec "$@"
        fi
        "$@"; rc=$?
        touch "$started"
        while [ -e "$hold" ]; do sleep 0.02; done
        exit $rc
    fi ;;
esac
exec "$@"
"#;

/// Kills `drover` while UpdateDatabase.vbs is held ([`Hold`]); then `resume` must leave the step
/// to an operator, not run the script again by itself, and after the operator looked at the lab
/// and retried, the failover completes with one run of the script.
fn interrupted_update_database(hold: Hold) {
    let lab = failed_lab();
    let wrapper = lab.script("hold.sh", HOLD_SCRIPT);
    lab.wrap_exec(&[&wrapper]);
    let hold_file = lab.sandbox.write("hold", if hold == Hold::Before { "before" } else { "after" });
    let started_file = lab.sandbox.path().join("started");

    // To the point of no return and past it, as an operator.
    let out = lab.run(&[&failure_param()]);
    let run = lab.sandbox.last_run();
    for gate in &GATES[..2] {
        assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(operate(&lab, &run), Action::Approved((*gate).to_owned()));
        if *gate == "declare" {
            let out = lab.drover(&["--quiet", "resume", &run]).output().expect("drover resume");
            assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
        }
    }
    // The resume that runs Restore To Mark, then UpdateDatabase.vbs: killed while the script is
    // held.
    let mut child = spawn(&lab, Some(&run));
    let waiting = Instant::now();
    while !started_file.exists() {
        if let Some(status) = child.try_wait().expect("poll drover") {
            panic!(
                "the resume ended ({status}) before UpdateDatabase.vbs started: {}",
                run_status(&lab, &run)
            );
        }
        assert!(waiting.elapsed() < Duration::from_secs(120), "UpdateDatabase.vbs never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL drover");
    child.wait().expect("reap drover");
    kill::kill_leftovers(&run);
    std::fs::remove_file(&hold_file).expect("let go of the hold");
    let reached = lab::update_database_runs(&lab.state()).len();
    assert_eq!(reached, usize::from(hold == Hold::After), "the held script's run in the lab");

    // Resume: the interrupted irreversible step waits for an operator; the script did not run.
    let out = lab.drover(&["--quiet", "resume", &run]).output().expect("drover resume");
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let step = lab.last_instance("update-database[DRBTS01]");
    assert_eq!(step["state"], "needs-operator", "{step:#}");
    let why = step["why"].as_str().unwrap_or_default();
    assert!(why.contains("irreversible step was interrupted"), "{why}");
    assert!(why.contains("may or may not have taken effect") && why.contains("drover retry"), "{why}");
    let text = stdout(&lab.drover(&["status", &run]).output().expect("drover status"));
    assert!(text.contains("irreversible step was interrupted"), "{text}");
    assert_eq!(
        lab::update_database_runs(&lab.state()).len(),
        reached,
        "resume ran UpdateDatabase.vbs by itself"
    );
    assert!(!took_effect(&lab.state(), "update-registry[DRBTS01]"), "nothing ran past it");

    // The operator looks at the lab, retries, and goes on through the last gate.
    assert_eq!(
        operate(&lab, &run),
        Action::Retried("update-database[DRBTS01]".to_owned(), hold == Hold::After)
    );
    let mut driven = drive(&lab, Some(&run), None);
    assert_eq!(driven.operator, [Action::Approved("start-processing".to_owned())]);
    driven.operator.insert(0, Action::Retried("update-database[DRBTS01]".to_owned(), hold == Hold::After));
    check_end(&lab, &driven, &format!("held {hold:?}"));
    let step = lab.last_instance("update-database[DRBTS01]");
    assert_eq!(step["attempts"], 2, "the interrupted attempt and the operator's retry: {step:#}");
    if hold == Hold::After {
        let summary = step["summary"].as_str().unwrap_or_default();
        assert!(summary.contains("not run again"), "{summary}");
    }
}

#[test]
fn an_update_database_killed_before_the_script_ran_waits_for_an_operator_whose_retry_runs_it_once() {
    interrupted_update_database(Hold::Before);
}

#[test]
fn an_update_database_killed_after_the_script_ran_waits_for_an_operator_and_the_retry_does_not_run_it_again()
{
    interrupted_update_database(Hold::After);
}

/// Production's servers dead to WMI (`dead-production-wmi`: Start, Stop and Put of their host
/// instances fail with "The RPC server is unavailable", their state reads unknown; a real
/// provider waits minutes for each before failing). The failover completes as without the fault:
/// the processing steps act on the DR servers' host instances only and never call WMI on
/// production's, whose rows stay as they were. After `drover-lab disaster` the lab already treats
/// production's servers so; the fault is set as well, so the test holds whichever way the lab
/// expresses production's loss.
#[test]
fn with_production_dead_to_wmi_the_failover_completes_on_the_dr_servers_only() {
    const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];
    let lab = failed_lab();
    lab.fault(&["dead-production-wmi"]);
    let production = |state: &Value| {
        let group = lab::LabGroup::of(state);
        let rows = group.host_instances.into_iter().filter(|i| !DR_RUNTIME.contains(&i.server.as_str()));
        rows.map(|i| (i.host, i.server, i.configuration_state, i.is_disabled)).collect::<Vec<_>>()
    };
    let before = production(&lab.state());
    assert!(!before.is_empty(), "the group has production host instances");

    let driven = drive(&lab, None, None);
    let gates: Vec<Action> = GATES.iter().map(|g| Action::Approved((*g).to_owned())).collect();
    assert_eq!(driven.operator, gates, "only the gates stopped the run");
    let mut state = lab.state();
    assert_eq!(production(&state), before, "production's host instances changed");
    let started = lab.last_instance("start-hosts[DRBTS01]");
    let servers: Vec<&str> = started["output"]["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("{started:#}"))
        .iter()
        .filter_map(|i| i["server"].as_str())
        .collect();
    assert!(!servers.is_empty() && servers.iter().all(|s| DR_RUNTIME.contains(s)), "{started:#}");
    // No call failed but the measure step's look at production's SQL Server, which is gone.
    let events = stdout(&lab.sandbox.run(&["events", &driven.run, "--ndjson"]));
    let failed: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event"))
        .filter(|e| e["kind"] == "target-call")
        .filter(|e| e["data"]["error"].is_string() || e["data"]["exit_code"].as_i64().is_some_and(|c| c != 0))
        .collect();
    assert!(
        failed.iter().all(|e| e["step_key"] == "measure" && e["data"]["args"][1] == "PRDSQL01"),
        "{failed:#?}"
    );
    // Otherwise the lab ends as without the fault.
    let faults = state["faults"].as_array_mut().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    faults.clear();
    check_state(state, "dead-production-wmi");
}
