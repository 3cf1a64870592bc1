//! The processes Drover starts on targets, seen from outside: what environment and command line
//! they get (no secret, no `DROVER_*` but the attempt's marker), and what becomes of them when
//! the driver is killed (its children die with it; what they left running is waited for before a
//! reversible step's check judges the interrupted attempt).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::kill::{dead, marked_processes};
use drover_tests::lab::{LabRun, SECRETS};
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// What a target command may find in its environment: the allow-list of
/// `engine/src/target/process.rs` and the attempt's marker.
fn allowed(name: &str) -> bool {
    const KEPT: [&str; 9] =
        ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TERM", "TMPDIR", "SSH_AUTH_SOCK"];
    KEPT.contains(&name) || name.starts_with("LC_") || name == "DROVER_ATTEMPT"
}

/// Everything Drover wrote about `run` that a secret could leak into: the journal's files,
/// events, status and the reports.
fn written_by_drover(sandbox: &Sandbox, run: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for args in [
        vec!["--json", "events", run],
        vec!["events", run, "--ndjson"],
        vec!["status", run, "--json"],
        vec!["status", run],
        vec!["report", run],
        vec!["report", run, "--json"],
    ] {
        let out = sandbox.run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        seen.push((format!("drover {}", args.join(" ")), stdout(&out)));
    }
    let db = sandbox.db_path();
    let mut files = 0;
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            files += 1;
            seen.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    assert!(files > 0, "the journal {} was searched", db.display());
    seen
}

#[test]
fn a_step_without_a_secret_grant_finds_no_secret_in_its_environment() {
    const VALUE: &str = "s3cret-In-Env-7Yq";
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    let wf = sandbox.write(
        "wf.toml",
        r#"
name = "environment"
version = "1.0.0"
[[steps]]
id = "env"
plugin = "fixture-plugin-for-tests"
grants = { targets = ["here"], programs = ["env"] }
with = { behave = "exec", target = "here", program = "env" }
"#,
    );
    let out = sandbox
        .drover()
        .args(["-vv", "run", &wf, "--inventory", &inv])
        .env("DROVER_SECRET_SOMETHING", VALUE)
        .env("AN_UNLISTED_VARIABLE", "kept-out")
        .env("LC_TIME", "C")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    let mut seen = written_by_drover(&sandbox, &run);
    seen.push(("run stdout".into(), stdout(&out)));
    seen.push(("run stderr (-vv logs)".into(), stderr(&out)));
    for (what, text) in &seen {
        assert!(!text.contains(VALUE), "the secret is in {what}:\n{text}");
    }
    let status = sandbox.status(&run);
    let env = status["steps"][0]["instances"][0]["output"]["stdout"]
        .as_str()
        .expect("the output of env")
        .to_string();
    let names: BTreeSet<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
    assert!(names.contains("PATH") && names.contains("LC_TIME"), "allowed variables are kept: {names:?}");
    let unexpected: Vec<&&str> = names.iter().filter(|n| !allowed(n)).collect();
    assert!(unexpected.is_empty(), "only the allow-list reaches a target command: {unexpected:?}\n{env}");
    assert!(
        env.lines().any(|l| l == format!("DROVER_ATTEMPT={run}/env#1")),
        "the command carries its attempt's marker:\n{env}"
    );
}

/// Records every command the lab run starts, then runs it: its arguments (NUL-separated) in
/// `<dir>/call.*.argv` and the environment it was started with in `<dir>/call.*.env`.
const RECORDER: &str = r#"#!/bin/sh
f=$(mktemp "$DROVER_TEST_CALLS/call.XXXXXXXX") || exit 70
printf '%s\0' "$0" "$@" > "$f.argv"
cat "/proc/$$/environ" > "$f.env"
exec "$@"
"#;

#[test]
fn no_target_process_of_the_lab_run_gets_a_secret_in_its_environment_or_command_line() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let calls = lab.sandbox.path().join("calls");
    std::fs::create_dir(&calls).unwrap();
    let recorder =
        lab.script("recorder.sh", &RECORDER.replace("$DROVER_TEST_CALLS", &calls.display().to_string()));
    lab.wrap_exec(&[&recorder]);
    let out = lab.drover(&["-vv", "run", &lab.workflow, "--inventory", &lab.inventory]).output().unwrap();
    assert!(out.status.success(), "the lab run: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();

    let mut recorded = 0;
    let mut findings = Vec::new();
    for entry in std::fs::read_dir(&calls).unwrap() {
        let path = entry.unwrap().path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { continue };
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes).replace('\0', "\n");
        match ext {
            "argv" => recorded += 1,
            "env" => {
                for name in text.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)) {
                    if !allowed(name) {
                        findings.push(format!("{}: the variable {name}", path.display()));
                    }
                }
            }
            _ => continue,
        }
        for (_, value) in SECRETS {
            if text.contains(value) {
                findings.push(format!("{}: the secret {value}:\n{text}", path.display()));
            }
        }
    }
    // 128 commands when this was written; a handful would mean the wrapper was bypassed.
    assert!(recorded >= 100, "every target command was recorded, {recorded} were");
    assert!(
        findings.is_empty(),
        "secrets or foreign variables reached target processes:\n{}",
        findings.join("\n")
    );

    let mut seen = written_by_drover(&lab.sandbox, &run);
    seen.push(("run stdout".into(), stdout(&out)));
    seen.push(("run stderr (-vv logs)".into(), stderr(&out)));
    for (what, text) in seen {
        for (_, value) in SECRETS {
            assert!(!text.contains(value), "the secret {value} is in {what}");
        }
    }
}

/// A slow command bridge: the real command runs in a child shell, not exec'd, which first takes
/// its time when the command is a join (`Configuration.exe /S`), as a remote configuration does.
/// Joins are logged as `start <bridge pid> <words>` and `done <exit code> <words>`: side effects
/// counted outside the engine.
const SLOW_BRIDGE: &str = r#"#!/bin/sh
sh -c '
log=$0
case "$*" in *"Configuration.exe /S "*) join=yes ;; *) join=no ;; esac
if [ $join = yes ]; then printf "start %s %s\n" "$PPID" "$*" >> "$log"; sleep 1.5; fi
"$@"; code=$?
if [ $join = yes ]; then printf "done %s %s\n" "$code" "$*" >> "$log"; fi
exit $code' "$BRIDGE_LOG" "$@"
"#;

fn joins_logged(log: &Path, what: &str, server: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(what) && l.contains(&format!(" {server} -- ")))
        .count()
}

#[test]
fn a_killed_driver_takes_its_children_along_and_the_recovery_waits_for_their_leftovers() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let log = lab.sandbox.path().join("bridge.log");
    let bridge = lab.script("bridge.sh", &SLOW_BRIDGE.replace("$BRIDGE_LOG", &log.display().to_string()));
    lab.wrap_exec(&[&bridge]);
    let before = lab.state();
    let mut driver = lab
        .drover(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Kill the driver once the bridge has started the join of DRBTS02.
    let started = Instant::now();
    let bridge_pid: u32 = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("start ") && l.contains(" DRBTS02 -- ")) {
            break line.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("the bridge's pid");
        }
        assert!(driver.try_wait().unwrap().is_none(), "the run ended before the join of DRBTS02");
        assert!(started.elapsed() < Duration::from_secs(120), "the join of DRBTS02 never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    driver.kill().unwrap();
    driver.wait().unwrap();

    // The bridge, the driver's child, dies with it, while the join it started runs on.
    let killed = Instant::now();
    while !dead(bridge_pid) {
        assert!(killed.elapsed() < Duration::from_secs(30), "the bridge {bridge_pid} outlived the driver");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        joins_logged(&log, "done", "DRBTS02"),
        0,
        "the bridge died with the driver, not when its join ended"
    );

    // Resume at once: the recovery waits for the leftover join before the check judges it.
    let run = lab.sandbox.last_run();
    let out = lab.drover(&["--quiet", "resume", &run]).output().unwrap();
    assert!(out.status.success(), "resume completes: {}{}", stdout(&out), stderr(&out));
    let left = marked_processes(&format!("{run}/"));
    assert!(left.is_empty(), "processes of the run outlived its recovery: {left:?}");

    let text = std::fs::read_to_string(&log).unwrap();
    for server in ["DRBTS01", "DRBTS02", "DRBTS03"] {
        assert_eq!(joins_logged(&log, "start", server), 1, "{server} joined once:\n{text}");
        assert_eq!(joins_logged(&log, "done 0", server), 1, "{server} joined once:\n{text}");
    }
    let state = lab.state();
    assert_eq!(state["joins"], serde_json::json!(["DRBTS01", "DRBTS02", "DRBTS03"]), "{before}");

    let events: Vec<Value> = stdout(&lab.sandbox.run(&["events", &run, "--ndjson"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_join =
        |kind: &str| events.iter().find(|e| e["kind"] == kind && e["step_key"] == "join[DRBTS02]").cloned();
    let waited = of_join("leftover-processes").expect("the wait for leftovers was journaled");
    assert_eq!(waited["data"]["attempt"], 1, "{waited}");
    assert!(waited["data"]["processes"].as_u64().unwrap_or(0) >= 1, "{waited}");
    assert_eq!(waited["data"]["killed"], 0, "the leftover join ended on its own: {waited}");
    let recovered = of_join("recovered-by-check").expect("the check settled the interrupted join");
    assert!(waited["seq"].as_u64() < recovered["seq"].as_u64(), "the check came after the wait: {recovered}");
}
