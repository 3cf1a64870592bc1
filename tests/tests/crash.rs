//! Kill `drover` with SIGKILL at random points of a 201-step run and resume each time: the run
//! completes, no succeeded step runs again, and an interrupted irreversible step waits for an
//! operator, whose `retry` finishes it. Side effects are counted in a file outside the engine.
//!
//! The kill points are chosen by the journal's progress, not by time (`drover_tests::kill`): each
//! process is killed after it made one or two step instances succeed, or started the irreversible
//! step's attempt, then within 150 ms; so the test means the same on a busy machine. They come
//! from a seeded generator; the seed is printed, and `DROVER_TORTURE_SEED` replays a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::kill::{self, KillPoint, Rng};
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

fn workflow(effects: &str) -> String {
    let step = |id: &str, plugin: &str, needs: Option<String>, group: &str, pause: u32| {
        let needs = needs.map(|n| format!("needs = [\"{n}\"]\n")).unwrap_or_default();
        format!(
            "[[steps]]\nid = \"{id}\"\nplugin = \"{plugin}\"\nfor-each = \"{group}\"\n{needs}grants = {{ programs = [\"sh\"] }}\nwith = {{ behave = \"effect\", file = \"{effects}\", pause-ms = {pause} }}\n\n"
        )
    };
    let mut wf = String::from("name = \"torture\"\nversion = \"1.0.0\"\n\n[limits]\nconcurrency = 8\n\n");
    let mut previous: Option<String> = None;
    for i in 0..50 {
        let id = format!("c-{i:03}");
        wf.push_str(&step(&id, "fixture-plugin-for-tests", previous.clone(), "one", 20));
        previous = Some(id);
    }
    wf.push_str(&step("fan", "fixture-plugin-for-tests", previous, "fleet", 20));
    wf.push_str(&step("irreversible", "fixture-irreversible", Some("fan".into()), "one", 1500));
    previous = Some("irreversible".into());
    for i in 0..50 {
        let id = format!("d-{i:03}");
        wf.push_str(&step(&id, "fixture-plugin-for-tests", previous.clone(), "one", 20));
        previous = Some(id);
    }
    wf
}

fn inventory() -> String {
    let mut inv = String::new();
    let servers: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
    for s in servers.iter().chain(std::iter::once(&"here".to_string())) {
        let _ = writeln!(inv, "[servers.{s}]\ntransport = \"local\"\n");
    }
    let list = servers.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(inv, "[groups]\nfleet = [{list}]\none = [\"here\"]");
    inv
}

/// Instances of the run by key, from `drover status --json`.
fn instances(sandbox: &Sandbox, run: &str) -> BTreeMap<String, Value> {
    let status = sandbox.status(run);
    let mut all = BTreeMap::new();
    for step in status["steps"].as_array().expect("steps") {
        for instance in step["instances"].as_array().expect("instances") {
            all.insert(instance["key"].as_str().expect("key").to_string(), instance.clone());
        }
    }
    all
}

/// The journal's events that start an attempt of the irreversible step.
const IRREVERSIBLE_STARTS: &str = "kind = 'attempt-started' AND step_key = 'irreversible[here]'";

#[test]
fn sigkill_at_random_points_then_resume_completes_without_repeating_finished_steps() {
    let mut rng = Rng(kill::seed());
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE, wasm::FIXTURE_IRREVERSIBLE]);
    let effects = sandbox.path().join("effects.log");
    let wf = sandbox.write("torture.toml", &workflow(effects.to_str().unwrap()));
    let inv = sandbox.write("inventory.toml", &inventory());
    let spawn = |args: &[&str]| {
        sandbox.drover().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn drover")
    };

    // Kill at random points of progress, resuming each time, until the run finishes. Progress is
    // instances succeeded, and the start of an irreversible attempt counts as two: a process that
    // starts one is killed within 150 ms, inside its 1.5 s pause. The run then waits for an
    // operator, and after `retry` that one attempt is let through.
    let db = sandbox.db_path();
    let progress = || kill::instances_succeeded(&db) + 2 * kill::events(&db, IRREVERSIBLE_STARTS);
    let mut run: Option<String> = None;
    let (mut kills, mut retried) = (0, false);
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(600), "the run did not finish ({kills} kills)");
        let mut from = progress();
        let mut child = match &run {
            None => spawn(&["run", &wf, "--inventory", &inv]),
            Some(run) => spawn(&["resume", run]),
        };
        if retried && let Some(id) = &run {
            // Let the retried irreversible attempt finish before killing again.
            while child.try_wait().expect("poll drover").is_none()
                && instances(&sandbox, id)
                    .get("irreversible[here]")
                    .is_some_and(|i| i["state"] != "succeeded")
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            retried = false;
            from = progress();
        }
        let killed = KillPoint::draw(&mut rng, Duration::from_millis(150)).kill(&mut child, from, progress);
        let status = child.wait().expect("reap drover");
        match status {
            _ if killed => kills += 1,
            status if status.code() == Some(0) => break,
            status => {
                assert_eq!(status.code(), Some(4), "drover exited with {status}");
                let id = run.as_deref().expect("a run exists when it waits");
                let irreversible = instances(&sandbox, id)["irreversible[here]"].clone();
                assert_eq!(irreversible["state"], "needs-operator", "{irreversible:#}");
                assert!(
                    irreversible["why"].as_str().unwrap().contains("irreversible step was interrupted"),
                    "{irreversible:#}"
                );
                let out = sandbox.run(&[
                    "retry",
                    id,
                    "irreversible[here]",
                    "--comment",
                    "checked the target: not done",
                ]);
                assert!(out.status.success(), "{}", stderr(&out));
                retried = true;
            }
        }
        if run.is_none() {
            let out = sandbox.run(&["runs", "--json"]);
            run = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v[0]["run"].as_str().map(String::from));
        }
    }
    let run = run.expect("the run was created");
    println!("{kills} kills landed in a live drover, in {:.1} s", started.elapsed().as_secs_f64());
    assert!(kills >= 20, "only {kills} kills landed");
    let out = sandbox.run(&["status", &run]);
    assert!(stdout(&out).contains("· succeeded"), "{}", stdout(&out));

    let all = instances(&sandbox, &run);
    assert_eq!(all.len(), 201);
    let mut lines: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in std::fs::read_to_string(&effects).unwrap().lines() {
        let (key, attempt) = line.rsplit_once(' ').expect("key attempt");
        lines.entry(key.to_string()).or_default().push(attempt.parse().expect("attempt"));
    }
    for (key, instance) in &all {
        assert_eq!(instance["state"], "succeeded", "{key}: {instance:#}");
        let attempts = instance["attempts"].as_u64().unwrap() as u32;
        let executed = lines.get(key).cloned().unwrap_or_default();
        let of_success = executed.iter().filter(|&&a| a == attempts).count();
        assert_eq!(
            of_success, 1,
            "{key}: the succeeded attempt {attempts} left {of_success} effects ({executed:?})"
        );
        assert!(executed.iter().all(|&a| a <= attempts), "{key} ran after it succeeded: {executed:?}");
        assert!(executed.len() <= attempts as usize, "{key}: more effects than attempts: {executed:?}");
    }
    assert!(all["irreversible[here]"]["attempts"].as_u64().unwrap() >= 2, "interrupted, then retried");
    let events = stdout(&sandbox.run(&["events", &run, "--ndjson"]));
    assert!(events.contains("\"kind\":\"needs-operator\""), "the journal records the needs-operator state");
}
