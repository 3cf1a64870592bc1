//! `drover worker` through the real binary: runs recorded with `run --detach` are driven by
//! worker processes sharing one journal; an approval given by another command while a worker
//! runs lets it finish the run, and a foreground `drover run` keeps its own run; three workers
//! drive a 1,000-instance fan-out while two of them are SIGKILLed holding its lease, and no
//! finished step runs again; a worker limited to a site leaves a run on other servers to a worker
//! without limits.
//!
//! Every wait is on something observable (the journal, a worker's log); the kill points come
//! from the journal's progress and a seed (`DROVER_TORTURE_SEED` replays one).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use drover_tests::kill::{self, Rng};
use drover_tests::workers::{
    Worker, assert_driven_once, detach, drivers, effect_step, effects, events, fan_workflow, fleet_inventory,
    wait_until,
};
use drover_tests::{Sandbox, stderr, wasm};
use serde_json::Value;

/// The run's state as the journal has it (`None` before the journal or the run exists).
fn run_state(db: &Path, run: &str) -> Option<String> {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT state FROM runs WHERE id = ?1", [run], |r| r.get(0)))
        .ok()
}

const ONE_SERVER: &str = "[servers.here]\ntransport = \"local\"\n[groups]\none = [\"here\"]\n";

#[test]
fn a_detached_run_is_driven_by_a_worker_and_an_approval_from_another_command_lets_it_finish() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let db = sandbox.db_path();
    let effects_path = sandbox.path().join("effects.log");
    let inv = sandbox.write("inventory.toml", ONE_SERVER);
    let plain = sandbox.write(
        "plain.toml",
        &format!(
            "name = \"plain\"\nversion = \"1.0.0\"\n\n{}",
            effect_step("work", "one", None, &effects_path)
        ),
    );
    let gated = sandbox.write(
        "gated.toml",
        &format!(
            "name = \"gated\"\nversion = \"1.0.0\"\n\n{}[[steps]]\nid = \"gate\"\napproval = {{ prompt = \"Go on?\" }}\nneeds = [\"before\"]\n\n{}",
            effect_step("before", "one", None, &effects_path),
            effect_step("after", "one", Some("gate"), &effects_path)
        ),
    );

    // Detached: recorded, not driven; `--json` gives the id too.
    let out = sandbox.run(&["run", "--detach", "--json", &plain, "--inventory", &inv]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first: Value = serde_json::from_slice(&out.stdout).expect("run --detach --json");
    let first = first["run"].as_str().expect("{ \"run\": … }").to_string();
    assert_eq!(run_state(&db, &first).as_deref(), Some("running"));
    assert!(events(&sandbox, &first).iter().all(|e| e["kind"] != "driving"), "a detached run is not driven");
    assert!(effects(&effects_path).is_empty());

    let mut worker = Worker::start(&sandbox, "worker", &[]);
    wait_until("the worker finished the first run", || {
        run_state(&db, &first).as_deref() == Some("succeeded")
    });
    assert_eq!(drivers(&sandbox, &first), [worker.pid()]);

    // A run with a gate waits for a person; the worker lets it go and does not drive it again.
    let second = detach(&sandbox, &gated, &inv);
    wait_until("the second run waits at its gate", || run_state(&db, &second).as_deref() == Some("waiting"));
    let status = sandbox.status(&second);
    assert!(status["driven_by"].is_null(), "nobody holds a waiting run: {status:#}");
    let gate =
        &status["steps"].as_array().unwrap().iter().find(|s| s["id"] == "gate").unwrap()["instances"][0];
    assert_eq!(gate["state"], "waiting", "{status:#}");

    let out = sandbox.run(&["approve", &second, "gate", "--comment", "from another command"]);
    assert!(out.status.success(), "approve failed: {}", stderr(&out));
    wait_until("the worker finished the approved run", || {
        run_state(&db, &second).as_deref() == Some("succeeded")
    });
    worker.assert_alive();
    // Driven up to the gate, then once more after the approval: never while only a person could
    // move it on.
    assert_eq!(drivers(&sandbox, &second), [worker.pid(), worker.pid()], "{}", worker.log());
    let ran = effects(&effects_path);
    assert_eq!(ran.get("work[here]"), Some(&vec![1]), "{ran:?}");
    for key in ["before[here]", "after[here]"] {
        assert_eq!(ran.get(key), Some(&vec![1]), "{key} ran once: {ran:?}");
    }

    // A foreground `drover run` keeps the run it records: the worker leaves it alone.
    let foreground = sandbox
        .drover()
        .args(["run", &plain, "--inventory", &inv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover run");
    let pid = foreground.id();
    let out = foreground.wait_with_output().expect("wait for drover run");
    assert!(out.status.success(), "drover run failed: {}", stderr(&out));
    let third = sandbox.last_run();
    assert_eq!(drivers(&sandbox, &third), [pid], "{}", worker.log());
    worker.assert_alive();

    let log = worker.log();
    assert!(!log.contains(&format!("took {third}")), "{log}");
    assert!(log.contains(&format!("took {first}")) && log.contains(&format!("{first} succeeded")), "{log}");
    assert!(log.contains(&format!("{second} waits for an operator: gate")), "{log}");
    assert!(log.contains(&format!("{second} succeeded")), "{log}");
}

#[test]
fn three_workers_drive_a_thousand_instance_fan_out_while_two_are_killed_and_nothing_finished_runs_again() {
    let mut rng = Rng(kill::seed());
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let db = sandbox.db_path();
    let effects_path = sandbox.path().join("effects.log");
    let inv = sandbox.write("inventory.toml", &fleet_inventory(1000));
    let wf = sandbox.write("fan.toml", &fan_workflow(&effects_path));
    let mut workers: Vec<Worker> =
        (0..3).map(|i| Worker::start(&sandbox, &format!("worker-{i}"), &[])).collect();
    let pids: BTreeSet<u32> = workers.iter().map(Worker::pid).collect();
    let run = detach(&sandbox, &wf, &inv);

    // Two kills, each of the worker holding the lease, at seeded points of the journal's progress
    // (instances succeeded), then within 150 ms: inside plugin calls and commits in flight.
    let first_at = 50 + rng.below(400) as i64;
    let second_at = first_at + 50 + rng.below(400) as i64;
    let mut killed = Vec::new();
    for at in [first_at, second_at] {
        wait_until(&format!("{at} instances succeeded"), || kill::instances_succeeded(&db) >= at);
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let holder = sandbox.status(&run)["driven_by"]["pid"].as_u64().map(|p| p as u32);
        let holder = holder.unwrap_or_else(|| panic!("nobody drives the run at {at} instances succeeded"));
        let worker = workers.iter_mut().find(|w| w.pid() == holder);
        let worker = worker.unwrap_or_else(|| panic!("the holder {holder} is none of the workers {pids:?}"));
        worker.kill();
        killed.push(holder);
        eprintln!(
            "killed worker {holder} holding the lease at {} instances succeeded",
            kill::instances_succeeded(&db)
        );
    }
    wait_until("the run succeeded", || run_state(&db, &run).as_deref() == Some("succeeded"));
    let survivor = workers.iter_mut().find(|w| !killed.contains(&w.pid())).expect("one worker left");
    survivor.assert_alive();

    // Every worker drove the run in turn: each took it over from the one killed before it.
    let driven_by: BTreeSet<u32> = drivers(&sandbox, &run).into_iter().collect();
    assert_eq!(driven_by, pids, "the three workers drove the run");

    // The journal: every instance succeeded, and none got an attempt after its succeeded one.
    let status = sandbox.status(&run);
    let instances: Vec<&Value> =
        status["steps"].as_array().unwrap().iter().flat_map(|s| s["instances"].as_array().unwrap()).collect();
    assert_eq!(instances.len(), 1002);
    assert!(instances.iter().all(|i| i["state"] == "succeeded"), "every instance succeeded");
    let repeats = assert_driven_once(&events(&sandbox, &run), &effects(&effects_path), 1002);
    println!(
        "kills at {first_at} and {second_at} instances succeeded; {} interrupted attempts, {} effects repeated",
        repeats.interrupted, repeats.repeated
    );
}

#[test]
fn a_worker_limited_to_a_site_leaves_other_runs_to_a_worker_without_limits() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let db = sandbox.db_path();
    let effects_path = sandbox.path().join("effects.log");
    let inv = sandbox.write(
        "inventory.toml",
        "[sites.production]\n[sites.dr]\n\
         [servers.PROD01]\nsite = \"production\"\ntransport = \"local\"\n\
         [servers.DR01]\nsite = \"dr\"\ntransport = \"local\"\n",
    );
    let on = |site: &str| {
        sandbox.write(
            &format!("{site}.toml"),
            &format!(
                "name = \"on-{site}\"\nversion = \"1.0.0\"\n\n{}",
                effect_step("work", site, None, &effects_path)
            ),
        )
    };
    let (production, dr) = (on("production"), on("dr"));

    let mut limited = Worker::start(&sandbox, "limited", &["--site", "dr"]);
    let production_run = detach(&sandbox, &production, &inv);
    let dr_run = detach(&sandbox, &dr, &inv);
    // The limited worker takes the DR run and, having looked at the production run, declines it.
    wait_until("the limited worker finished the DR run", || {
        run_state(&db, &dr_run).as_deref() == Some("succeeded")
    });
    let declined = format!("run={production_run}");
    wait_until("the limited worker declined the production run", || {
        limited.log().lines().any(|l| l.contains(&declined) && l.contains("limits exclude"))
    });
    assert_eq!(run_state(&db, &production_run).as_deref(), Some("running"));
    assert!(drivers(&sandbox, &production_run).is_empty(), "{}", limited.log());

    let unlimited = Worker::start(&sandbox, "unlimited", &[]);
    wait_until("the unlimited worker finished the production run", || {
        run_state(&db, &production_run).as_deref() == Some("succeeded")
    });
    limited.assert_alive();
    assert_eq!(drivers(&sandbox, &dr_run), [limited.pid()]);
    assert_eq!(drivers(&sandbox, &production_run), [unlimited.pid()]);
    assert!(!limited.log().contains(&format!("took {production_run}")), "{}", limited.log());
    let ran = effects(&effects_path);
    assert_eq!(ran.get("work[DR01]"), Some(&vec![1]), "{ran:?}");
    assert_eq!(ran.get("work[PROD01]"), Some(&vec![1]), "{ran:?}");
}
