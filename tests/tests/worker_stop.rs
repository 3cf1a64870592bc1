//! `drover worker` stopped by SIGTERM while it drives a run: it exits 0 at once, saying it left the
//! run, without waiting for the attempt in flight; another worker takes the run over, settles the
//! interrupted attempt (the fixture is idempotent: run again) and finishes it.
//!
//! Every wait is on something observable: the journal through `drover status` and `drover
//! events`, the worker's log and exit.

use drover_tests::workers::{Worker, detach, driving_pids, events, wait_until};
use drover_tests::{Sandbox, wasm};
use serde_json::Value;

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
    let run = detach(&sandbox, &wf, &inv);

    let mut first = Worker::start(&sandbox, "first", &[]);
    let started = |events: &[Value]| events.iter().filter(|e| e["kind"] == "attempt-started").count();
    wait_until("the first worker started the step's attempt", || started(&events(&sandbox, &run)) == 1);
    assert_eq!(sandbox.status(&run)["driven_by"]["pid"], first.pid());

    // It does not wait for the attempt, which waits for `release` for up to a minute.
    let exit = first.terminate();
    assert_eq!(exit.code(), Some(0), "{exit}");
    let log = first.log();
    assert!(log.contains(&format!("took {run}")), "{log}");
    assert!(log.contains("stopping: 1 run(s) being driven are left for the next worker"), "{log}");
    assert_eq!(sandbox.status(&run)["state"], "running", "the run is left as a crash leaves it");

    let mut second = Worker::start(&sandbox, "second", &[]);
    wait_until("the second worker started the attempt again", || started(&events(&sandbox, &run)) == 2);
    std::fs::write(&release, "").unwrap();
    wait_until("the run succeeded", || sandbox.status(&run)["state"] == "succeeded");
    second.assert_alive();

    let journal = events(&sandbox, &run);
    assert_eq!(driving_pids(&journal), [first.pid(), second.pid()]);
    let interrupted: Vec<&Value> = journal.iter().filter(|e| e["kind"] == "attempt-interrupted").collect();
    assert_eq!(interrupted.len(), 1, "the first worker's attempt was settled as interrupted");
    assert_eq!(interrupted[0]["data"]["attempt"], 1);
    // The stopped worker's attempt died with it: the effect is the second attempt's alone.
    assert_eq!(std::fs::read_to_string(&effects).unwrap(), "held[here] 2\n");
}
