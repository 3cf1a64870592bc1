//! `drover worker` stopped by SIGTERM while it drives a run: it exits 0 at once, saying it left the
//! run, without waiting for the attempt in flight; another worker takes the run over, settles the
//! interrupted attempt (the fixture is idempotent: run again) and finishes it.
//!
//! Every wait is on something observable: the journal through `drover status` and `drover
//! events`, the worker's log and exit.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// Starts `drover worker --poll 100ms` with a 2 s lease, its stderr in `<name>.log`.
fn worker(sandbox: &Sandbox, name: &str) -> Child {
    let log = std::fs::File::create(sandbox.path().join(format!("{name}.log"))).expect("create a log");
    sandbox
        .drover()
        .env("DROVER_LEASE_TTL", "2s")
        .args(["worker", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn drover worker")
}

/// Waits until `done()`, failing with `what` after ten minutes (a stuck test, not a slow one).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(600), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run's events, from `drover events --ndjson`.
fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "events failed: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event")).collect()
}

#[test]
fn sigterm_stops_a_worker_at_once_and_the_next_worker_finishes_its_run() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let effects = sandbox.path().join("effects.log");
    let release = sandbox.path().join("release");
    let inv = sandbox
        .write("inventory.toml", "[servers.here]\ntransport = \"local\"\n[groups]\none = [\"here\"]\n");
    // Its one step waits inside its attempt until the test creates `release`.
    let wf = sandbox.write(
        "held.toml",
        &format!(
            "name = \"held\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"held\"\nplugin = \"fixture-plugin-for-tests\"\n\
             for-each = \"one\"\ngrants = {{ programs = [\"sh\"] }}\n\
             with = {{ behave = \"effect\", file = \"{}\", until = \"{}\" }}\n",
            effects.display(),
            release.display()
        ),
    );
    let out = sandbox.run(&["run", "--detach", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = stdout(&out).trim().to_string();

    let mut first = worker(&sandbox, "first");
    let started = |events: &[Value]| events.iter().filter(|e| e["kind"] == "attempt-started").count();
    wait_until("the first worker started the step's attempt", || started(&events(&sandbox, &run)) == 1);
    assert_eq!(sandbox.status(&run)["driven_by"]["pid"], first.id());

    let term = std::process::Command::new("kill").args(["-s", "TERM", &first.id().to_string()]).status();
    assert!(term.expect("run kill").success());
    // It does not wait for the attempt, which waits for `release` for up to a minute.
    let exit = first.wait().expect("reap the first worker");
    assert_eq!(exit.code(), Some(0), "{exit}");
    let log = std::fs::read_to_string(sandbox.path().join("first.log")).unwrap();
    assert!(log.contains(&format!("took {run}")), "{log}");
    assert!(log.contains("stopping: 1 run(s) being driven are left for the next worker"), "{log}");
    assert_eq!(sandbox.status(&run)["state"], "running", "the run is left as a crash leaves it");

    let mut second = worker(&sandbox, "second");
    wait_until("the second worker started the attempt again", || started(&events(&sandbox, &run)) == 2);
    std::fs::write(&release, "").unwrap();
    wait_until("the run succeeded", || sandbox.status(&run)["state"] == "succeeded");
    assert!(second.try_wait().unwrap().is_none(), "the second worker still runs");
    let _ = second.kill();
    let _ = second.wait();

    let journal = events(&sandbox, &run);
    let drivers: Vec<u64> = journal
        .iter()
        .filter(|e| e["kind"] == "driving")
        .map(|e| e["data"]["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(drivers, [u64::from(first.id()), u64::from(second.id())]);
    let interrupted: Vec<&Value> = journal.iter().filter(|e| e["kind"] == "attempt-interrupted").collect();
    assert_eq!(interrupted.len(), 1, "the first worker's attempt was settled as interrupted");
    assert_eq!(interrupted[0]["data"]["attempt"], 1);
    // The stopped worker's attempt died with it: the effect is the second attempt's alone.
    assert_eq!(std::fs::read_to_string(&effects).unwrap(), "held[here] 2\n");
}
