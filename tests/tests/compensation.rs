//! Compensation end to end on the BizTalk lab: a DR-site preparation fails after every join and
//! the host instances succeeded (the lab denies access to one host service), and compensation
//! undoes what the run changed, downstream steps first: the host services' start modes, the host
//! instances, then the joins. Asked for by an operator (`drover compensate`) or by the workflow
//! (`on-failure = "compensate"`), and with SIGKILL at random points of the compensation.

use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::kill::{self, KillPoint, Rng};
use drover_tests::lab::LabRun;
use drover_tests::{stderr, stdout};

const DR: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

/// A lab run of the DR-site preparation that failed at `disable-host-services[DRBTS01]`, after
/// the joins and the host instances succeeded; `workflow_text` edits the workflow first.
fn failed_run(edit: impl Fn(&str) -> String) -> (LabRun, std::process::Output) {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    let text = std::fs::read_to_string(&lab.workflow).expect("the workflow");
    lab.workflow = lab.sandbox.write("dr-site-preparation.toml", &edit(&text));
    lab.fault(&["access-denied", "DRBTS01", "BTSSvc$ReceiveHost"]);
    let out = lab.run(&[]);
    (lab, out)
}

/// The journal's compensation events of the run, as (step key, kind), in order.
fn compensation_events(lab: &LabRun) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(lab.sandbox.db_path()).expect("open the journal");
    let mut stmt = db
        .prepare("SELECT step_key, kind FROM events WHERE kind LIKE 'compensate-%' ORDER BY seq")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("events").map(|r| r.expect("row")).collect()
}

/// Checks the lab and the journal after a compensation: the run is compensated, what it
/// changed was undone once each, downstream steps before what they need.
fn assert_compensated(lab: &LabRun) {
    let run = lab.sandbox.last_run();
    let status = lab.sandbox.status(&run);
    assert_eq!(status["state"], "compensated", "{status:#}");

    let group = lab.group();
    assert_eq!(group.members, ["PRDBTS01", "PRDBTS02"], "the DR servers left the group: {group:?}");
    for server in DR {
        assert!(group.hosts_on(server).is_empty(), "no host instance left on {server}: {group:?}");
        assert_eq!(
            group.unjoins.iter().filter(|s| *s == server).count(),
            1,
            "{server} unjoined once: {group:?}"
        );
    }
    let mut uninstalled = group.uninstalls.clone();
    uninstalled.sort();
    uninstalled.dedup();
    assert_eq!(uninstalled.len(), group.uninstalls.len(), "no host instance uninstalled twice: {group:?}");
    assert!(
        !group.uninstalls.is_empty(),
        "the host instances were removed by their own compensation: {group:?}"
    );

    // Each compensation finished once, and in reverse dependency order.
    let events = compensation_events(lab);
    let done: Vec<&str> = events
        .iter()
        .filter(|(_, kind)| kind == "compensate-succeeded")
        .map(|(key, _)| key.as_str())
        .collect();
    let mut unique = done.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), done.len(), "no compensation finished twice: {done:?}");
    let position = |prefix: &str| -> Vec<usize> {
        done.iter().enumerate().filter(|(_, k)| k.starts_with(prefix)).map(|(i, _)| i).collect()
    };
    let (hosts, joins) = (position("host-instances["), position("join["));
    assert_eq!(joins.len(), 3, "every join was compensated: {done:?}");
    assert_eq!(hosts.len(), 1, "the host instances were compensated: {done:?}");
    assert!(hosts.iter().all(|h| joins.iter().all(|j| h < j)), "host instances before the joins: {done:?}");
    for key in position("disable-host-services[") {
        assert!(key < hosts[0], "host services before the host instances: {done:?}");
    }

    // What cannot be undone is named, with why.
    let instances: Vec<serde_json::Value> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|s| s["instances"].as_array().cloned().unwrap_or_default())
        .collect();
    for instance in &instances {
        let key = instance["key"].as_str().unwrap_or_default();
        if key.starts_with("join[") || key.starts_with("host-instances[") {
            assert_eq!(instance["state"], "compensated", "{instance:#}");
        }
        if key.starts_with("stage-assemblies[") && instance["state"] == "succeeded" {
            let why = instance["why"].as_str().unwrap_or_default();
            assert!(why.starts_with("left as is: plugin deploy-assemblies"), "{instance:#}");
        }
    }
}

#[test]
fn compensate_undoes_the_joins_and_host_instances_of_a_failed_run_in_reverse_order() {
    let (lab, out) = failed_run(str::to_string);
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();
    assert!(lab.group().unjoins.is_empty(), "nothing is undone before an operator asks");

    let out =
        lab.drover(&["compensate", &run, "--comment", "abandon this DR site"]).output().expect("compensate");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a compensated run is not a success: {text}{}", stderr(&out));
    assert!(text.contains(&format!("run {run} was compensated")), "{text}");
    assert!(text.contains("compensated: join[DRBTS01]"), "{text}");
    assert_compensated(&lab);

    // Once compensated, a run is over: nothing more to compensate.
    let out = lab.drover(&["compensate", &run]).output().expect("compensate again");
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("compensated already"), "{}", stderr(&out));

    // Status and the report show it.
    let out = lab.drover(&["status", &run]).output().expect("status");
    let text = stdout(&out);
    assert!(text.contains("compensated"), "{text}");
    let report = lab.sandbox.path().join("report.html");
    let out = lab
        .drover(&["report", &run, "--format", "html", "--output", report.to_str().unwrap()])
        .output()
        .expect("report");
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&report).expect("the report");
    assert!(html.contains("compensated"), "the report shows the compensation");
}

#[test]
fn a_workflow_with_on_failure_compensate_undoes_itself_when_it_fails() {
    let (lab, out) = failed_run(|text| format!("on-failure = \"compensate\"\n{text}"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_compensated(&lab);
}

#[test]
fn sigkill_at_random_points_of_the_compensation_ends_in_the_same_lab_state() {
    let (lab, out) = failed_run(str::to_string);
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();
    let db = lab.sandbox.db_path();
    // Progress: compensations finished, and compensation attempts started (a kill then lands
    // inside one).
    let progress = || kill::events(&db, "kind IN ('compensate-succeeded', 'compensate-started')");
    let mut rng = Rng(kill::seed());
    let (mut kills, mut first) = (0, true);
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the compensation did not finish ({kills} kills)"
        );
        let from = progress();
        let args: Vec<&str> =
            if first { vec!["--quiet", "compensate", &run] } else { vec!["--quiet", "resume", &run] };
        first = false;
        let mut child =
            lab.drover(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn drover");
        let killed = KillPoint::draw(&mut rng, Duration::from_millis(150)).kill(&mut child, from, progress);
        let status = child.wait().expect("reap drover");
        if killed {
            kills += 1;
            continue;
        }
        assert_eq!(status.code(), Some(1), "a compensated run ends with exit 1, got {status}");
        break;
    }
    eprintln!("{kills} kills during the compensation");
    assert!(kills > 0, "at least one kill landed during the compensation");
    assert_compensated(&lab);
}
