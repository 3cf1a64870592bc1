//! Leases under attack, through the real binary: a driver that lost its lease while stopped
//! writes nothing when it wakes, a driver in another PID namespace cannot take a live run over,
//! and a dead holder whose process id now belongs to another process does not block a resume.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{HeldRun, Sandbox, stderr, stdout, wasm};

/// The lease time to live these tests run with, so a takeover after expiry takes seconds.
const TTL: &str = "2s";

/// Events of `run` as JSON values.
fn events(sandbox: &Sandbox, run: &str) -> Vec<serde_json::Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "events: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event")).collect()
}

/// Waits until some run of the sandbox has an event of `kind`; returns that run.
fn wait_for_event(sandbox: &Sandbox, driver: &mut Child, kind: &str) -> String {
    let started = Instant::now();
    loop {
        let runs = sandbox.run(&["runs", "--json"]);
        if let Some(run) = serde_json::from_slice::<serde_json::Value>(&runs.stdout)
            .ok()
            .and_then(|v| v[0]["run"].as_str().map(String::from))
            && events(sandbox, &run).iter().any(|e| e["kind"] == kind)
        {
            return run;
        }
        if let Some(exit) = driver.try_wait().unwrap() {
            panic!("the driver ended ({exit}) before a {kind} event");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {kind} event within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill").args(["-s", signal, &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal} {}", child.id());
}

#[test]
fn a_driver_woken_after_its_lease_was_taken_over_writes_nothing_and_stops() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let effects = sandbox.path().join("effects.log");
    let wf = sandbox.write(
        "flaky.toml",
        &format!(
            r#"
name = "flaky"
version = "1.0.0"
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
grants = {{ programs = ["sh"] }}
for-each = "all"
retry = {{ attempts = 3, initial = "6s", jitter = 0 }}
with = {{ behave = "flaky", succeed-at = 2, file = "{}" }}
"#,
            effects.display()
        ),
    );
    let inv = sandbox
        .write("inventory.toml", "[servers.here]\ntransport = \"local\"\n[groups]\nall = [\"here\"]\n");
    let mut first = sandbox
        .drover()
        .args(["run", &wf, "--inventory", &inv])
        .env("DROVER_LEASE_TTL", TTL)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first attempt failed; the driver waits for its retry timer. Stop it there.
    let run = wait_for_event(&sandbox, &mut first, "retry-scheduled");
    signal(&first, "STOP");

    // Once its lease expired, a resume takes the run over and finishes it.
    let started = Instant::now();
    let finished = loop {
        let out = sandbox.drover().args(["resume", &run]).env("DROVER_LEASE_TTL", TTL).output().unwrap();
        match out.status.code() {
            Some(5) => {
                assert!(started.elapsed() < Duration::from_secs(60), "never taken over: {}", stderr(&out));
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => break out,
        }
    };
    assert!(finished.status.success(), "{}{}", stdout(&finished), stderr(&finished));
    let before: Vec<serde_json::Value> = events(&sandbox, &run);
    assert_eq!(before.last().unwrap()["kind"], "run-succeeded");

    // The stale driver wakes, finds its lease gone, and stops without a single write.
    signal(&first, "CONT");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("lost its lease"), "{}", stderr(&out));
    let after = events(&sandbox, &run);
    assert_eq!(after.len(), before.len(), "the stale driver journaled {:#?}", &after[before.len()..]);
    let status = sandbox.status(&run);
    assert_eq!(status["state"], "succeeded");
    let instance = &status["steps"][0]["instances"][0];
    assert_eq!(instance["state"], "succeeded", "{instance:#}");
    assert_eq!(instance["output"]["attempt"], 2, "{instance:#}");
    assert_eq!(
        std::fs::read_to_string(&effects).unwrap(),
        "flaky[here] 2\n",
        "the effect happened once, in the second attempt"
    );
}

/// Whether `unshare` can make a PID namespace here (it needs root, as the suite has).
fn unshare_works() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-p", "-f", "--mount-proc", "true"])
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("unshare -p -f --mount-proc fails here: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn a_resume_from_another_pid_namespace_cannot_take_a_live_run_over() {
    if let Err(why) = unshare_works() {
        panic!("this test runs a resume in a new PID namespace and needs root: {why}");
    }
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let HeldRun { child: mut first, effects, release } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    for _ in 0..4 {
        let mut resume = Command::new("unshare");
        resume.args(["-p", "-f", "--mount-proc"]).arg(drover_tests::drover_bin()).args(["resume", &run]);
        for (key, value) in sandbox.drover().get_envs() {
            match value {
                Some(value) => resume.env(key, value),
                None => resume.env_remove(key),
            };
        }
        let out = resume.current_dir(sandbox.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(5), "taken over: {}{}", stdout(&out), stderr(&out));
        assert!(stderr(&out).contains("is being driven by process"), "{}", stderr(&out));
    }
    std::fs::write(&release, "").unwrap();
    let status = first.wait().unwrap();
    assert!(status.success(), "the first process finished the run");
    assert_eq!(std::fs::read_to_string(&effects).unwrap().lines().count(), 1, "the step ran once");
}

#[test]
fn a_dead_holder_whose_pid_is_reused_is_taken_over_at_once() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let HeldRun { child: mut first, effects, release } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    first.kill().unwrap();
    first.wait().unwrap();
    // The dead holder's process id now names a live process (pid 1), and its lease has long to
    // run: neither may keep a resume waiting.
    let db = rusqlite::Connection::open(sandbox.path().join("drover.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("UPDATE leases SET pid = 1, expires_at = expires_at + 3600000 WHERE run_id = ?1", [&run])
        .unwrap();
    drop(db);
    std::fs::write(&release, "").unwrap();
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read_to_string(&effects).unwrap().lines().count(), 1);
}

#[test]
fn a_lease_from_another_boot_is_taken_over_only_once_expired() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let HeldRun { child: mut first, effects, release } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    first.kill().unwrap();
    first.wait().unwrap();
    let db_path = sandbox.path().join("drover.db");
    let db = rusqlite::Connection::open(&db_path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    // As if the holder ran on another machine sharing the journal: its OS lock proves nothing.
    db.execute(
        "UPDATE leases SET boot_id = 'another-machine', expires_at = expires_at + 3600000 WHERE run_id = ?1",
        [&run],
    )
    .unwrap();
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
    db.execute("UPDATE leases SET expires_at = 0 WHERE run_id = ?1", [&run]).unwrap();
    drop(db);
    std::fs::write(&release, "").unwrap();
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read_to_string(&effects).unwrap().lines().count(), 1);
    assert!(lock_dir(&db_path).join(format!("{run}.lock")).exists(), "the lease's OS lock file");
}

fn lock_dir(db: &Path) -> std::path::PathBuf {
    db.with_file_name(format!("{}-leases", db.file_name().unwrap().to_string_lossy()))
}
