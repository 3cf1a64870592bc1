//! Crash torture on the BizTalk lab: `workflows/dr-site-preparation.toml` is SIGKILLed at seeded
//! random points of its progress (`drover_tests::kill`: once the process made one or two step
//! instances succeed, then within 150 ms: inside plugin calls, commits, fan-out and joins),
//! resumed each time, and its end state compared with an uninterrupted run's: the lab ends the
//! same, every DR server was joined exactly once, and the journal keeps its invariants (each step
//! instance succeeded by exactly one apply attempt, none left running, attempts numbered without
//! gaps).
//!
//! `DROVER_TORTURE_SEED` replays a run, `DROVER_TORTURE_POINTS` sets how many kills (20 by
//! default); `cargo xtask torture --seed <s> --points <n>` runs it with both.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::kill::{self, KillPoint, Rng};
use drover_tests::lab::LabRun;
use drover_tests::stderr;
use serde_json::Value;

/// Fixed lab time, so the configuration logs of both runs read the same.
const LAB_NOW: &str = "2026-11-22T10:00:00Z";

/// The lab's state with what legitimately differs between runs removed: nothing, today (the
/// lab's clock is fixed); kept as the one place to say so if that changes.
fn comparable(state: Value) -> Value {
    state
}

/// The journal's invariants, read straight from the database file.
fn check_journal(lab: &LabRun, run: &str) {
    let db = rusqlite::Connection::open_with_flags(
        lab.sandbox.path().join("drover.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut attempts: BTreeMap<String, Vec<(u32, String, String)>> = BTreeMap::new();
    let mut stmt = db
        .prepare(
            "SELECT step_key, number, mode, state FROM attempts WHERE run_id = ?1 ORDER BY step_key, number",
        )
        .unwrap();
    let rows = stmt
        .query_map([run], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })
        .unwrap();
    for row in rows {
        let (key, number, mode, state) = row.unwrap();
        attempts.entry(key).or_default().push((number, mode, state));
    }
    let mut stmt = db.prepare("SELECT key, state FROM steps WHERE run_id = ?1").unwrap();
    let steps: Vec<(String, String)> =
        stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(steps.len(), 17, "every step instance of the workflow exists");
    for (key, state) in &steps {
        assert_eq!(state, "succeeded", "{key}");
        let list = &attempts[key];
        let numbers: Vec<u32> = list.iter().map(|a| a.0).collect();
        assert_eq!(numbers, (1..=list.len() as u32).collect::<Vec<_>>(), "{key}: attempts without gaps");
        assert!(list.iter().all(|a| a.2 != "running"), "{key}: an attempt left running: {list:?}");
        let applied = list.iter().filter(|a| a.1 == "apply" && a.2 == "succeeded").count();
        let checked = list.iter().filter(|a| a.1 == "check" && a.2 == "succeeded").count();
        assert!(
            applied == 1 || (applied == 0 && checked >= 1),
            "{key}: succeeded by exactly one apply (or settled by a check after a crash): {list:?}"
        );
    }
}

/// The seed (drawn when `DROVER_TORTURE_SEED` is unset) and how many points to torture at
/// (`DROVER_TORTURE_POINTS`, else `default`), printed so a run can be replayed.
fn seed_and_points(what: &str, default: usize) -> (u64, usize) {
    let seed = kill::seed();
    let points: usize =
        std::env::var("DROVER_TORTURE_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    eprintln!("{points} {what} points");
    (seed, points)
}

/// The lab's state after one uninterrupted run: what every tortured run must end in.
fn reference_state() -> Value {
    let reference = LabRun::new("dr-site-preparation.toml", &[]);
    let out = reference
        .drover(&["--quiet", "run", &reference.workflow, "--inventory", &reference.inventory])
        .env("DROVER_LAB_NOW", LAB_NOW)
        .output()
        .unwrap();
    assert!(out.status.success(), "the reference run: {}", stderr(&out));
    comparable(reference.state())
}

/// Whether torture of this kind is asked for: `DROVER_TORTURE_MODE` (`kill` or `stop`) picks
/// one for `cargo xtask torture`; unset, the suite runs both.
fn mode_wanted(mode: &str) -> bool {
    std::env::var("DROVER_TORTURE_MODE").map_or(true, |m| m == mode)
}

#[test]
fn dr_site_preparation_killed_at_random_instants_ends_as_an_uninterrupted_run() {
    if !mode_wanted("kill") {
        eprintln!("DROVER_TORTURE_MODE asks for another kind of torture");
        return;
    }
    let (seed, points) = seed_and_points("kill", 20);
    let mut rng = Rng(seed);
    let expected = reference_state();

    // The same, killed again and again, on fresh labs until `points` kills landed. A join holds
    // the lab a little, so kills land inside joins too.
    let mut kills = 0;
    let mut round = 0;
    while kills < points {
        round += 1;
        kills += tortured_round(&mut rng, &expected, seed, points - kills);
    }
    eprintln!("{kills} kills in {round} rounds");
}

/// One fresh lab, run and killed at up to `budget` instants until it finishes; checked against
/// `expected`. Returns the kills that landed on a live process.
fn tortured_round(rng: &mut Rng, expected: &Value, seed: u64, budget: usize) -> usize {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let db = lab.sandbox.path().join("drover.db");
    let started = Instant::now();
    let mut kills = 0;
    let mut run: Option<String> = None;
    // Step instances succeeded after each process ended: where the kills landed.
    let mut progress = Vec::new();
    loop {
        let from = kill::instances_succeeded(&db);
        let mut cmd = match &run {
            None => lab.drover(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory]),
            Some(id) => lab.drover(&["--quiet", "resume", id]),
        };
        let mut child = cmd
            .env("DROVER_LAB_NOW", LAB_NOW)
            .env("DROVER_LAB_JOIN_DELAY_MS", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut killed = false;
        // Kill at a point chosen by progress, not by time, so a busy machine changes nothing:
        // once this process made one or two step instances succeed (so every process moves the
        // run on), then within 150 ms.
        if kills < budget
            && KillPoint::draw(rng, Duration::from_millis(150))
                .kill(&mut child, from, || kill::instances_succeeded(&db))
        {
            kills += 1;
            killed = true;
        }
        let status = child.wait().unwrap();
        if run.is_none() {
            let runs: Value = serde_json::from_slice(&lab.sandbox.run(&["runs", "--json"]).stdout).unwrap();
            run = runs[0]["run"].as_str().map(String::from);
        }
        if let Some(id) = &run {
            let done = lab.sandbox.status(id)["steps"]
                .as_array()
                .map(|steps| {
                    steps
                        .iter()
                        .flat_map(|s| s["instances"].as_array().cloned().unwrap_or_default())
                        .filter(|i| i["state"] == "succeeded")
                        .count()
                })
                .unwrap_or(0);
            progress.push(done);
        }
        if !killed {
            if !status.success() {
                let why =
                    run.as_ref().map(|id| lab.sandbox.run(&["status", id])).map(|o| drover_tests::stdout(&o));
                panic!("a run or resume that was not killed failed: {status} (seed {seed}): {why:?}");
            }
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the run did not finish ({kills} kills)");
        // A kill during a join leaves the lab's own process finishing it; let its lock go.
        std::thread::sleep(Duration::from_millis(120));
    }
    let run = run.expect("the run was created");
    eprintln!("round: {kills} kills; instances done after each process: {progress:?}");
    assert_eq!(lab.sandbox.status(&run)["state"], "succeeded");
    let joins: Vec<String> =
        lab.state()["joins"].as_array().unwrap().iter().map(|j| j.as_str().unwrap().to_string()).collect();
    assert_eq!(joins, ["DRBTS01", "DRBTS02", "DRBTS03"], "each DR server joined exactly once (seed {seed})");
    assert_eq!(
        &comparable(lab.state()),
        expected,
        "the lab ends as after an uninterrupted run (seed {seed})"
    );
    check_journal(&lab, &run);
    kills
}

/// The lease time to live of the stop torture: a stopped driver is taken over after this long.
const STOP_TTL: &str = "1s";

/// Events of kind `driving` journaled by process `pid`.
fn driving_events_of(lab: &LabRun, pid: u32) -> i64 {
    let db = lab.sandbox.path().join("drover.db");
    kill::events(&db, &format!("kind = 'driving' AND json_extract(data, '$.pid') = {pid}"))
}

fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill").args(["-s", signal, &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal} {}", child.id());
}

#[test]
fn dr_site_preparation_stopped_and_taken_over_ends_as_an_uninterrupted_run() {
    if !mode_wanted("stop") {
        eprintln!("DROVER_TORTURE_MODE asks for another kind of torture");
        return;
    }
    let (seed, points) = seed_and_points("stop", 4);
    let mut rng = Rng(seed);
    let expected = reference_state();
    let mut stops = 0;
    let mut rounds = 0;
    while stops < points {
        rounds += 1;
        stops += stopped_round(&mut rng, &expected, seed);
        eprintln!("round {rounds}: {stops} stops so far, every round checked");
    }
    eprintln!("{stops} stops in {rounds} rounds");
}

/// One fresh lab: the run is stopped (SIGSTOP) at a random instant of live work, a resume takes
/// it over once the lease expired, the stopped driver is woken (SIGCONT) while the resume drives,
/// and the woken one must stop without harm. Returns 1 if the stop landed on a live process.
fn stopped_round(rng: &mut Rng, expected: &Value, seed: u64) -> usize {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let spawn = |args: &[&str]| spawn_stopped_torture(&lab, args);
    let mut first = spawn(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory]);
    let waiting = Instant::now();
    while driving_events_of(&lab, first.id()) == 0 && waiting.elapsed() < Duration::from_secs(30) {
        if first.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(rng.below(2500)));
    if first.try_wait().unwrap().is_some() {
        let out = first.wait_with_output().unwrap();
        assert!(out.status.success(), "an undisturbed run failed: {} (seed {seed})", stderr(&out));
        return 0;
    }
    signal(&first, "STOP");
    // A reader waits for no writer in WAL mode, except while a process holds the database file
    // exclusively: SQLite's last connection does so as it closes (copying the log into the
    // database and removing it), so a driver stopped there, after the run's last commit, keeps
    // every reader out until it goes on.
    let listed = lab.sandbox.run(&["runs", "--json"]);
    if !listed.status.success() {
        assert!(
            listed.status.code() == Some(6) && stderr(&listed).contains("is locked by another process"),
            "drover runs while the driver is stopped: {}: {} (seed {seed})",
            listed.status,
            stderr(&listed)
        );
        eprintln!("the stop landed in the driver's close of the journal; continuing the stopped driver");
        continue_stopped(&lab, first, None, expected, seed);
        return 1;
    }
    let runs: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let run = runs[0]["run"].as_str().expect("the run was created").to_string();

    // A resume retried until the stopped driver's lease expired and it took over. `None` when
    // the stop landed after the run's last commit: the resume then finds the run over.
    let started = Instant::now();
    let second = loop {
        let mut resume = spawn(&["--quiet", "resume", &run]);
        let ended = loop {
            if driving_events_of(&lab, resume.id()) > 0 {
                break None;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "a resume never drove (seed {seed})");
            if let Some(status) = resume.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(resume.stderr.as_mut().unwrap(), &mut err);
                break Some((status, err));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match ended {
            None => break Some(resume),
            Some((status, _)) if status.success() && lab.sandbox.status(&run)["state"] == "succeeded" => {
                break None;
            }
            // Stopped inside a commit, the driver holds the journal's write lock: nobody can
            // take over until it goes on, and it may go on (its lease was not taken).
            Some((status, err))
                if status.code() == Some(6) && err.contains("is locked by another process") =>
            {
                eprintln!("the stop landed inside a commit; continuing the stopped driver");
                continue_stopped(&lab, first, Some(&run), expected, seed);
                return 1;
            }
            Some((status, err)) => {
                assert_eq!(status.code(), Some(5), "a resume of a stopped driver's run: {err} (seed {seed})")
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never taken over (seed {seed})");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The stale driver wakes while the new one drives: it must notice and stop, writing nothing.
    signal(&first, "CONT");
    let stale = first.wait_with_output().unwrap();
    let expected_exit = if second.is_some() { Some(5) } else { Some(0) };
    assert_eq!(
        stale.status.code(),
        expected_exit,
        "the woken driver (its run taken over: {}): {} (seed {seed})",
        second.is_some(),
        stderr(&stale)
    );
    if let Some(mut second) = second {
        let status = second.wait().unwrap();
        if !status.success() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut err);
            panic!("the resume that took over failed: {status}: {err} (seed {seed})");
        }
    }
    check_end(&lab, &run, expected, seed);
    1
}

/// `drover args…` as the stop torture runs it: a short lease, standard output dropped, standard
/// error kept.
fn spawn_stopped_torture(lab: &LabRun, args: &[&str]) -> std::process::Child {
    lab.drover(args)
        .env("DROVER_LAB_NOW", LAB_NOW)
        .env("DROVER_LAB_JOIN_DELAY_MS", "100")
        .env("DROVER_LEASE_TTL", STOP_TTL)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ends a stop round whose stopped driver holds a lock nobody can get past: continues it and
/// checks the end. `run`: the run, or `None` when the driver held the journal exclusively (its
/// close, after the run's last commit: it must then end as the run succeeded).
fn continue_stopped(
    lab: &LabRun,
    first: std::process::Child,
    run: Option<&str>,
    expected: &Value,
    seed: u64,
) {
    signal(&first, "CONT");
    let out = first.wait_with_output().unwrap();
    let closing = run.is_none();
    let run = run.map_or_else(|| lab.sandbox.last_run(), String::from);
    // Stopped inside a poll for longer than its lease allows, it may also have let its lease go
    // (exit 5, nothing more written): a resume then finishes the run.
    if out.status.code() == Some(5) && !closing {
        let resumed = spawn_stopped_torture(lab, &["--quiet", "resume", &run]).wait_with_output().unwrap();
        assert!(resumed.status.success(), "the resume after it: {} (seed {seed})", stderr(&resumed));
    } else {
        assert!(out.status.success(), "the continued driver: {} (seed {seed})", stderr(&out));
    }
    check_end(lab, &run, expected, seed);
}

/// The checks at the end of a stop round: the run succeeded, the lab ends as after an
/// uninterrupted run, the journal keeps its invariants and ends with the run's success.
fn check_end(lab: &LabRun, run: &str, expected: &Value, seed: u64) {
    assert_eq!(lab.sandbox.status(run)["state"], "succeeded");
    let joins: Vec<String> =
        lab.state()["joins"].as_array().unwrap().iter().map(|j| j.as_str().unwrap().to_string()).collect();
    assert_eq!(joins, ["DRBTS01", "DRBTS02", "DRBTS03"], "each DR server joined exactly once (seed {seed})");
    assert_eq!(
        &comparable(lab.state()),
        expected,
        "the lab ends as after an uninterrupted run (seed {seed})"
    );
    check_journal(lab, run);
    // Nothing was journaled after the run succeeded.
    let events = lab.sandbox.run(&["events", run, "--ndjson"]);
    let last = String::from_utf8_lossy(&events.stdout).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("\"kind\":\"run-succeeded\""), "the journal ends with {last} (seed {seed})");
}
