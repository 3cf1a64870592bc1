//! Kill `drover` with SIGKILL at random points of a 201-step run and resume each time: the run
//! completes, no succeeded step runs again, and an interrupted irreversible step waits for an
//! operator, whose `retry` finishes it. Side effects are counted in a file outside the engine.
//!
//! The kill points come from a seeded generator; the seed is printed, and `DROVER_TORTURE_SEED`
//! replays a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// A small deterministic generator (xorshift64*), enough for kill delays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

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

fn kill(mut child: Child) {
    // SIGKILL: no chance to clean up, exactly like a crash.
    child.kill().expect("kill drover");
    child.wait().expect("reap drover");
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

#[test]
fn sigkill_at_random_points_then_resume_completes_without_repeating_finished_steps() {
    let seed: u64 =
        std::env::var("DROVER_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("torture seed: {seed} (replay with DROVER_TORTURE_SEED={seed})");
    let mut rng = Rng(seed);
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE, wasm::FIXTURE_IRREVERSIBLE]);
    let effects = sandbox.path().join("effects.log");
    let wf = sandbox.write("torture.toml", &workflow(effects.to_str().unwrap()));
    let inv = sandbox.write("inventory.toml", &inventory());
    let spawn = |args: &[&str]| {
        sandbox.drover().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn drover")
    };

    // Kill at random instants, resuming each time, until the run finishes. The irreversible step
    // pauses 1.5 s, longer than any kill delay, so a kill lands inside its first attempt; the run
    // then waits for an operator, and after `retry` that one attempt is let through.
    let mut run: Option<String> = None;
    let (mut kills, mut retried) = (0, false);
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(600), "the run did not finish ({kills} kills)");
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
        }
        std::thread::sleep(Duration::from_millis(40 + rng.below(200)));
        match child.try_wait().expect("poll drover") {
            None => {
                kill(child);
                kills += 1;
            }
            Some(status) if status.code() == Some(0) => break,
            Some(status) => {
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
    println!("{kills} kills landed in a live drover");
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
