//! `drover cancel` stops attempts in flight, and a template cannot wedge the driver: a plugin
//! spinning in a loop and a target command sleeping for an hour are both stopped as soon as the
//! driving process applies the cancel (the run ends cancelled, the attempt is journaled as
//! cancelled by the operator), and a template that would loop for ever fails its step with its
//! budget named.
//!
//! Every step here has an hour's timeout: a test that passes ends long before it, and one whose
//! stop does not work fails at its 60 s deadline saying so, instead of hanging.

use std::io::Read as _;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// How long a process that should stop at once may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Starts `drover run` of `workflow` in the background, its output piped.
fn start(sandbox: &Sandbox, workflow: &str) -> Child {
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    sandbox
        .drover()
        .args(["run", workflow, "--inventory", &inv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover run")
}

/// Waits for `child` to exit within [`DEADLINE`]; kills it and fails with `why` otherwise.
fn wait_for_exit(mut child: Child, why: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "drover run did not end within {}s: {why}\nstdout:\n{}\nstderr:\n{}",
                DEADLINE.as_secs(),
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The run's events, from `drover events --ndjson`.
fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event as JSON")).collect()
}

/// Waits until the newest run journals an event of `kind`, and returns the run; fails with the
/// driver's output if the driver ends first.
fn wait_for_event(sandbox: &Sandbox, child: &mut Child, kind: &str) -> String {
    let started = Instant::now();
    loop {
        let runs = sandbox.run(&["runs", "--json"]);
        let run = serde_json::from_slice::<Value>(&runs.stdout)
            .ok()
            .and_then(|v| v[0]["run"].as_str().map(String::from));
        if let Some(run) = run
            && events(sandbox, &run).iter().any(|e| e["kind"] == kind)
        {
            return run;
        }
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
            panic!("drover run ended before journaling {kind}: {out}");
        }
        assert!(started.elapsed() < DEADLINE, "no {kind} event within {}s", DEADLINE.as_secs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `drover cancel`, then what the cancelled run looks like: it ended cancelled, its one instance
/// is cancelled, its attempt was stopped and journaled as the operator's doing.
fn cancel_and_check(sandbox: &Sandbox, child: Child, run: &str, key: &str) {
    let out = sandbox.run(&["cancel", run, "--comment", "stop it"]);
    assert!(out.status.success(), "cancel: {}{}", stdout(&out), stderr(&out));
    let out = wait_for_exit(child, "the cancel did not stop the attempt in flight");
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("run {run} was cancelled")), "{}", stdout(&out));
    assert!(stderr(&out).contains(&format!("{key}: cancelled by ")), "{}", stderr(&out));

    let status = sandbox.status(run);
    assert_eq!(status["state"], "cancelled");
    assert_eq!(status["steps"][0]["instances"][0]["state"], "cancelled");
    let events = events(sandbox, run);
    let requested = events.iter().find(|e| e["kind"] == "cancel-requested").expect("cancel-requested");
    let stopped = events.iter().find(|e| e["kind"] == "attempt-cancelled").expect("attempt-cancelled");
    assert_eq!(stopped["step_key"], key);
    assert_eq!(stopped["actor"], requested["actor"], "the operator who cancelled stopped the attempt");
    assert_eq!(stopped["data"]["comment"], "stop it");
    assert!(events.iter().any(|e| e["kind"] == "run-cancelled"), "{events:?}");
    let text = stdout(&sandbox.run(&["status", run]));
    assert!(
        text.contains(&format!("run cancelled by {} during attempt 1", requested["actor"].as_str().unwrap())),
        "{text}"
    );

    let db = rusqlite::Connection::open(sandbox.path().join("drover.db")).unwrap();
    let (state, error): (String, String) = db
        .query_row("SELECT state, error FROM attempts WHERE run_id = ?1", [run], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "cancelled");
    assert!(error.contains("was stopped: the run was cancelled"), "{error}");
    let report = stdout(&sandbox.run(&["report", run]));
    assert!(
        report.contains("- attempt 1 cancelled: plugin fixture-plugin-for-tests was stopped"),
        "{report}"
    );
}

#[test]
fn cancel_stops_a_plugin_spinning_in_a_loop() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let wf = sandbox.write(
        "spin.toml",
        r#"
name = "spin"
version = "1.0.0"
[[steps]]
id = "spin"
plugin = "fixture-plugin-for-tests"
timeout = "1h"
with = { behave = "endless-loop" }
"#,
    );
    let mut child = start(&sandbox, &wf);
    let run = wait_for_event(&sandbox, &mut child, "attempt-started");
    cancel_and_check(&sandbox, child, &run, "spin");
}

#[test]
fn cancel_kills_a_target_command_in_flight() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let pid_file = sandbox.path().join("sleep.pid");
    let wf = sandbox.write(
        "sleep.toml",
        &format!(
            r#"
name = "sleep"
version = "1.0.0"
[[steps]]
id = "sleep"
plugin = "fixture-plugin-for-tests"
timeout = "1h"
grants = {{ targets = ["here"], programs = ["sh"] }}
with = {{ behave = "exec", target = "here", program = "sh", args = ["-c", "echo $$ > {}.tmp && mv {}.tmp {} && exec sleep 3600"] }}
"#,
            pid_file.display(),
            pid_file.display(),
            pid_file.display()
        ),
    );
    let mut child = start(&sandbox, &wf);
    let run = wait_for_event(&sandbox, &mut child, "attempt-started");
    let started = Instant::now();
    while !pid_file.exists() {
        assert!(started.elapsed() < DEADLINE, "the target command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    cancel_and_check(&sandbox, child, &run, "sleep");
    // The command was killed with the attempt: gone, or a zombie waiting to be reaped.
    let started = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.trim().chars().next()));
        if matches!(state, None | Some('Z' | 'X')) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "sleep {pid} still runs after the cancel (state {state:?})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_template_that_would_loop_for_ever_fails_its_step_with_its_budget_named() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    // Renders nothing, so only the instruction budget can stop it (not the output cap).
    let endless = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let wf = sandbox.write(
        "endless.toml",
        &format!(
            r#"
name = "endless"
version = "1.0.0"
[[steps]]
id = "with"
plugin = "fixture-plugin-for-tests"
timeout = "1h"
with = {{ behave = "ok", note = "{endless}" }}

[[steps]]
id = "items"
plugin = "fixture-plugin-for-tests"
timeout = "1h"
on-failure = "continue"
for-each = ["{endless}"]
with = {{ behave = "ok" }}
"#
        ),
    );
    let validate = sandbox.run(&["validate", &wf]);
    assert!(validate.status.success(), "the workflow is valid: {}", stderr(&validate));
    let child = start(&sandbox, &wf);
    let out = wait_for_exit(child, "rendering a template wedged the driver");
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("with: rendering `with`: cannot render"), "{text}");
    assert!(text.contains("items: for-each: cannot render"), "{text}");
    assert_eq!(text.matches("the template ran out of fuel after 5000000 instructions").count(), 2, "{text}");
}

#[test]
fn cancelling_a_run_whose_driver_died_ends_its_interrupted_attempt_too() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let drover_tests::HeldRun { child: mut first, effects, .. } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    wait_for_event(&sandbox, &mut first, "attempt-started");
    first.kill().unwrap();
    first.wait().unwrap();
    // No process drives the run now: the cancel is applied at once, by `drover cancel` itself.
    let out = sandbox.run(&["cancel", &run, "--comment", "abandoned"]);
    assert!(out.status.success(), "cancel: {}{}", stdout(&out), stderr(&out));
    let status = sandbox.status(&run);
    assert_eq!(status["state"], "cancelled");
    let instance = &status["steps"][0]["instances"][0];
    assert_eq!(instance["state"], "cancelled", "nothing of a cancelled run shows as running: {instance}");
    let stopped = events(&sandbox, &run).into_iter().find(|e| e["kind"] == "attempt-cancelled");
    assert_eq!(stopped.expect("attempt-cancelled")["data"]["interrupted"], true);
    let db = rusqlite::Connection::open(sandbox.path().join("drover.db")).unwrap();
    let state: String =
        db.query_row("SELECT state FROM attempts WHERE run_id = ?1", [&run], |r| r.get(0)).unwrap();
    assert_eq!(state, "cancelled");
    assert!(!effects.exists(), "the step was never released");
}
