//! The seed workflows against the lab's servers reached as Windows servers over a real sshd
//! (`drover_tests::windows_lab`): every command travels as `powershell.exe -EncodedCommand`, files
//! through PowerShell, the logon by password (network credentials) or by key (none). Each ends
//! the lab exactly where the `command` transport ends it, survives a SIGKILL, never puts a secret
//! on a remote command line, and a key logon fails on the Kerberos double hop with a message that
//! says so.

use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::lab::{LabRun, SECRETS};
use drover_tests::windows_lab::{Logon, WindowsLab, logon_password};
use drover_tests::{stderr, stdout};
use serde_json::Value;

/// The lab's clock for both runs, so their states can be compared whole.
const NOW: (&str, &str) = ("DROVER_LAB_NOW", "2026-12-07T08:00:00Z");

/// The lab state a workflow leaves through the `command` transport.
fn through_the_command_transport(workflow: &str, init_args: &[&str], prepare: &[&[&str]]) -> Value {
    let mut lab = LabRun::new(workflow, init_args);
    lab.env.push((NOW.0.into(), NOW.1.into()));
    for args in prepare {
        let out = lab.lab(args);
        assert!(out.status.success(), "drover-lab {args:?}: {}", stderr(&out));
    }
    let out = lab.run(&[]);
    assert!(out.status.success(), "through the command transport: {}{}", stdout(&out), stderr(&out));
    lab.state()
}

/// A lab over SSH with a password logon, prepared with `prepare` (`drover-lab` commands).
fn windows_lab(workflow: &str, init_args: &[&str], prepare: &[&[&str]], env: &[(&str, &str)]) -> WindowsLab {
    let mut lab_env = vec![NOW];
    lab_env.extend_from_slice(env);
    let lab = WindowsLab::new(workflow, init_args, Logon::Password, &lab_env);
    for args in prepare {
        let out = lab.lab(args);
        assert!(out.status.success(), "drover-lab {args:?}: {}", stderr(&out));
    }
    lab
}

/// No secret value (the workflows' and the logon password) in any command line the lab's
/// servers received, nor in the journal, `status --json`, the events or the report.
fn assert_no_secret_anywhere(lab: &WindowsLab) {
    let log = lab.command_log();
    assert!(log.lines().count() > 20, "the servers received the run's commands:\n{log}");
    assert!(log.contains("-EncodedCommand"), "commands came as encoded PowerShell:\n{log}");
    let run = lab.run.sandbox.last_run();
    let places = [
        ("the remote command lines", log),
        (
            "the journal",
            String::from_utf8_lossy(&std::fs::read(lab.run.sandbox.db_path()).expect("journal")).into_owned(),
        ),
        ("status --json", lab.run.sandbox.status(&run).to_string()),
        ("events", stdout(&lab.run.sandbox.run(&["events", &run, "--ndjson"]))),
        ("the report", stdout(&lab.run.sandbox.run(&["report", &run]))),
    ];
    let password = logon_password();
    let secrets: Vec<&str> = SECRETS.iter().map(|(_, v)| *v).chain([password.as_str()]).collect();
    for (place, text) in &places {
        for secret in &secrets {
            assert!(!text.contains(secret), "a secret value is in {place}");
        }
    }
}

#[test]
fn dr_site_preparation_over_windows_ssh_ends_as_through_the_command_transport() {
    let expected = through_the_command_transport("dr-site-preparation.toml", &[], &[]);
    let lab = windows_lab("dr-site-preparation.toml", &[], &[], &[]);
    let out = lab.run.run(&[]);
    assert!(out.status.success(), "over ssh: {}{}\nsshd: {}", stdout(&out), stderr(&out), lab.sshd.log());
    assert_eq!(lab.run.state(), expected, "the lab differs from the command transport's");
    assert_no_secret_anywhere(&lab);
    // The host instances' password travelled on the channel's standard input to a PowerShell
    // that read it (its script as -EncodedCommand), and no command line holds it.
    let nested = lab
        .command_log()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|entry| {
            let argv = entry["argv"].as_array().cloned().unwrap_or_default();
            argv.first().is_some_and(|p| p == "powershell.exe") && argv.iter().any(|a| a == "-EncodedCommand")
        })
        .count();
    assert!(nested >= 3, "the host instances' scripts ran in a PowerShell of their own ({nested})");
}

#[test]
fn server_replacement_over_windows_ssh_ends_as_through_the_command_transport() {
    let replace: &[&str] = &["replace", "PRDBTS02"];
    let expected = through_the_command_transport("server-replacement.toml", &[], &[replace]);
    let lab = windows_lab("server-replacement.toml", &[], &[replace], &[]);
    let out = lab.run.run(&[]);
    assert!(out.status.success(), "over ssh: {}{}\nsshd: {}", stdout(&out), stderr(&out), lab.sshd.log());
    assert_eq!(lab.run.state(), expected, "the lab differs from the command transport's");
    assert_no_secret_anywhere(&lab);
}

#[test]
fn sigkill_during_a_join_over_windows_ssh_then_resume_ends_as_uninterrupted() {
    let expected = through_the_command_transport("dr-site-preparation.toml", &[], &[]);
    // The lab's joins take a while, so the kill lands inside one.
    let lab = windows_lab("dr-site-preparation.toml", &[], &[], &[("DROVER_LAB_JOIN_DELAY_MS", "800")]);
    let mut child = lab
        .run
        .drover(&["--quiet", "run", &lab.run.workflow, "--inventory", &lab.run.inventory])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start drover");
    // Kill drover once the join of DRBTS02 has started (its intent is journaled).
    let started = Instant::now();
    let run = loop {
        let runs = lab.run.sandbox.run(&["runs", "--json"]);
        let run = serde_json::from_slice::<Value>(&runs.stdout)
            .ok()
            .and_then(|v| v[0]["run"].as_str().map(String::from));
        if let Some(run) = run {
            let events = stdout(&lab.run.sandbox.run(&["events", &run, "--ndjson"]));
            if events.lines().any(|l| {
                l.contains("\"kind\":\"attempt-started\"") && l.contains("\"step_key\":\"join[DRBTS02]\"")
            }) {
                break run;
            }
        }
        if let Some(status) = child.try_wait().expect("poll drover") {
            panic!("drover ended ({status}) before the join of DRBTS02 started");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the join of DRBTS02 never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("SIGKILL drover");
    child.wait().expect("reap drover");
    let out = lab.run.drover(&["--quiet", "resume", &run]).output().expect("drover resume");
    assert!(out.status.success(), "resume completes: {}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.run.state(), expected, "the resumed run left the lab otherwise than an uninterrupted one");
    let joins: Vec<Value> = lab.run.state()["joins"].as_array().expect("joins").clone();
    assert_eq!(joins, ["DRBTS01", "DRBTS02", "DRBTS03"].map(Value::from).to_vec(), "no server joined twice");
}

#[test]
fn a_key_logon_fails_on_the_double_hop_and_says_so() {
    let lab = WindowsLab::new("dr-site-preparation.toml", &[], Logon::Key, &[NOW]);
    let out = lab.run.run(&[]);
    assert!(!out.status.success(), "a run without network credentials cannot reach SQL Server");
    let run = lab.run.sandbox.last_run();
    let status = stdout(&lab.run.sandbox.run(&["status", &run]));
    let said = format!("{status}{}", stderr(&out));
    assert!(said.contains("double hop"), "the failure names the cause:\n{said}");
    assert!(said.contains("password-secret"), "the failure says what to do:\n{said}");
    assert!(said.contains("ANONYMOUS LOGON"), "the failure shows what SQL Server said:\n{said}");
}
