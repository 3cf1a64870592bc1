//! `drover worker` on a PostgreSQL journal (issue 19): three workers drive a fan-out run while the
//! server is restarted twice at seeded points of the run's progress (`pg_ctl restart -m fast`:
//! every session is cut, transactions in flight rolled back; then a stop long enough that the
//! driving worker's lease expires, and a start). The workers reconnect and stay up, the run
//! succeeds, and the journal and the steps' effects show that no two workers drove the run at
//! once across the restarts; SIGTERM then stops each worker cleanly.
//!
//! Every wait is on something observable (the journal through `psql`, a worker's log); the
//! restart points come from the journal's progress and a seed (`DROVER_TORTURE_SEED` replays one).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use drover_tests::kill::{self, Rng};
use drover_tests::postgres::PgCluster;
use drover_tests::workers::{
    Worker, assert_driven_once, detach, driving_pids, effects, events, fan_workflow, fleet_inventory,
    wait_until,
};
use drover_tests::{Sandbox, wasm};
use serde_json::Value;

/// Servers the fan-out step runs on: enough that both restarts land mid-run.
const FLEET: usize = 400;

/// The run's step instances: the fleet, `first` and `last`.
const INSTANCES: usize = FLEET + 2;

/// What every worker logs when the restart cut its connection (`store/postgres/conn.rs`).
const RECONNECTING: &str = "the journal's connection broke";

/// What a driving worker logs when its lease expires unrenewed (`run/lease.rs`).
const LEASE_GIVEN_UP: &str = "cannot renew the lease before it expires";

/// The time leases are measured in: ms since the epoch.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

#[test]
fn workers_reconnect_after_postgres_restarts_mid_run_and_no_run_is_driven_by_two_at_once() {
    let mut rng = Rng(kill::seed());
    let cluster = PgCluster::start();
    let sandbox = Sandbox::with_db(PathBuf::from(cluster.url()));
    sandbox.install(&[wasm::FIXTURE]);
    let effects_path = sandbox.path().join("effects.log");
    let inv = sandbox.write("inventory.toml", &fleet_inventory(FLEET));
    let wf = sandbox.write("fan.toml", &fan_workflow(&effects_path));
    let mut workers: Vec<Worker> =
        (0..3).map(|i| Worker::start(&sandbox, &format!("worker-{i}"), &[])).collect();
    let pids: BTreeSet<u32> = workers.iter().map(Worker::pid).collect();
    let run = detach(&sandbox, &wf, &inv);
    let succeeded = || -> usize {
        let sql = format!("SELECT count(*) FROM steps WHERE run_id = '{run}' AND state = 'succeeded'");
        cluster.psql(&sql).parse().expect("a count")
    };
    let state = || cluster.psql(&format!("SELECT state FROM runs WHERE id = '{run}'"));

    // Two restarts at seeded points of the run's progress (instances succeeded), each within
    // 150 ms of it: inside plugin calls, commits and lease renewals in flight. The first is
    // `pg_ctl restart`, over before the lease (2 s) expires. The second keeps the server down
    // until the worker driving the run gave it up (its heartbeat could not renew the lease in
    // time, or its driving stopped on the journal error; the journal's reconnecting gives up
    // after 30 s), so when the server is back the run changes hands while that worker's commits
    // may still be queued: the case where two drivers could overlap.
    let first_at = 50 + rng.below(100) as usize;
    let second_at = first_at + 50 + rng.below(100) as usize;
    let mut restarts = Vec::new();
    for (n, at) in [first_at, second_at].into_iter().enumerate() {
        wait_until(&format!("{at} instances succeeded"), || succeeded() >= at);
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let before = succeeded();
        assert_eq!(state(), "running", "the restart at {before} instances succeeded lands mid-run");
        let took = Instant::now();
        if n == 0 {
            cluster.restart();
        } else {
            let mut holder = None;
            wait_until("a worker holds a live lease of the run", || {
                holder = cluster
                    .psql(&format!(
                        "SELECT pid FROM leases WHERE run_id = '{run}' AND expires_at > {}",
                        now_ms()
                    ))
                    .parse::<u32>()
                    .ok();
                holder.is_some()
            });
            let holder =
                workers.iter().find(|w| Some(w.pid()) == holder).expect("the lease holder is a worker");
            let stopped_driving = format!("{run}: driving stopped");
            let signs = [LEASE_GIVEN_UP, stopped_driving.as_str()];
            let gave_up = || -> Vec<usize> {
                let log = holder.log();
                signs.iter().map(|sign| log.matches(sign).count()).collect()
            };
            let before_stop = gave_up();
            cluster.stop();
            wait_until("the driving worker gave the run up", || gave_up() != before_stop);
            let seen: Vec<&str> = signs
                .iter()
                .zip(gave_up().iter().zip(&before_stop))
                .filter(|(_, (a, b))| a != b)
                .map(|(s, _)| *s)
                .collect();
            eprintln!("worker {} holding the lease while the server was down: {seen:?}", holder.pid());
            cluster.start_again();
        }
        eprintln!(
            "restarted PostgreSQL at {before} of {INSTANCES} instances succeeded in {:?}",
            took.elapsed()
        );
        restarts.push(before);
    }
    assert!(restarts.iter().all(|&n| n < INSTANCES), "both restarts before the run's end: {restarts:?}");

    wait_until("the run succeeded", || state() == "succeeded");
    // They rode the outages out: each felt its connection cut and none exited.
    for worker in &mut workers {
        worker.assert_alive();
        assert!(
            worker.log().contains(RECONNECTING),
            "worker {} never reconnected: {}",
            worker.pid(),
            worker.log()
        );
    }

    // Every instance succeeded and nobody holds the run any more.
    let status = sandbox.status(&run);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert!(status["driven_by"].is_null(), "the last driver released the lease: {status:#}");
    let instances: Vec<&Value> =
        status["steps"].as_array().unwrap().iter().flat_map(|s| s["instances"].as_array().unwrap()).collect();
    assert_eq!(instances.len(), INSTANCES);
    assert!(instances.iter().all(|i| i["state"] == "succeeded"), "every instance succeeded: {status:#}");

    // Only the workers drove it, and one at a time: no attempt started twice, no instance run
    // again after it succeeded, no effect but from an attempt the journal started, a repeated
    // effect only from an attempt the journal says was interrupted.
    let journal = events(&sandbox, &run);
    let drivers = driving_pids(&journal);
    let strangers: Vec<u32> = drivers.iter().copied().filter(|p| !pids.contains(p)).collect();
    assert!(strangers.is_empty(), "driven by {drivers:?}, workers {pids:?}");
    // Taken again after the second outage at least (by whichever worker came first).
    assert!(drivers.len() >= 2, "the run was taken again after its lease expired: {drivers:?}");
    let repeats = assert_driven_once(&journal, &effects(&effects_path), INSTANCES);

    // SIGTERM stops each worker cleanly, with nothing left to drive.
    for worker in &mut workers {
        let exit = worker.terminate();
        let log = worker.log();
        assert!(exit.success(), "worker {} exited {exit} on SIGTERM: {log}", worker.pid());
        assert!(log.contains("stopped; 0 run(s) left for the next worker"), "{log}");
    }
    println!(
        "restarts at {restarts:?} instances succeeded; driven by {drivers:?}; {} interrupted attempts, {} effects repeated",
        repeats.interrupted, repeats.repeated
    );
}
