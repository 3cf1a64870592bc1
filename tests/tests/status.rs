//! `drover status` while a run is in every waiting state at once (a retry timer, a failure, a
//! step that needs an operator, an approval gate, a step pending on it, a running step and one
//! waiting for its slot), as an insta snapshot; and the progress lines of a run when stderr is
//! not a terminal.

use std::process::Stdio;
use std::time::{Duration, Instant};

use drover_tests::{Sandbox, stderr, stdout, wasm};

fn filters(sandbox: &Sandbox, run: &str) -> Vec<(String, String)> {
    vec![
        (regex_escape(run), "[run]".into()),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".into(), "[time]".into()),
        (r"process \d+ of .+ on \S+".into(), "process [pid] of [user] on [host]".into()),
        (r"started by .+ at".into(), "started by [user] at".into()),
        (regex_escape(&sandbox.path().display().to_string()), "[home]".into()),
    ]
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() || c == '_' { c.to_string() } else { format!("\\{c}") })
        .collect()
}

#[test]
fn status_names_every_reason_a_step_waits_and_the_command_that_moves_it_on() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\nos = \"linux\"\n");
    let release = sandbox.path().join("release");
    let effects = sandbox.path().join("effects.log");
    let wf = sandbox.write(
        "waits.toml",
        &format!(
            r#"
name = "waits"
version = "1.0.0"
[limits]
concurrency = 1
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
retry = {{ attempts = 3, initial = "1h", factor = 2.0, max = "2h", jitter = 0.0 }}
with = {{ behave = "fail", kind = "retryable", message = "SQLPROD01 unreachable" }}
[[steps]]
id = "broken"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
with = {{ behave = "fail", kind = "permanent", message = "disk F: missing" }}
[[steps]]
id = "unsure"
plugin = "fixture-plugin-for-tests"
with = {{ behave = "fail", kind = "needs-operator", message = "the join may have half happened" }}
[[steps]]
id = "gate"
approval = {{ prompt = "Fail over to the DR site?" }}
[[steps]]
id = "after-gate"
plugin = "fixture-plugin-for-tests"
needs = ["gate"]
with = {{ behave = "ok" }}
[[steps]]
id = "after-broken"
plugin = "fixture-plugin-for-tests"
needs = ["broken"]
with = {{ behave = "ok" }}
[[steps]]
id = "hold"
plugin = "fixture-plugin-for-tests"
for-each = ["here"]
grants = {{ programs = ["sh"] }}
with = {{ behave = "effect", file = "{}", until = "{}" }}
[[steps]]
id = "queued"
plugin = "fixture-plugin-for-tests"
with = {{ behave = "ok" }}
"#,
            effects.display(),
            release.display()
        ),
    );
    let mut child = sandbox
        .drover()
        .args(["--quiet", "run", &wf, "--inventory", &inv])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (run, status) = loop {
        let runs = sandbox.run(&["runs", "--json"]);
        let run = serde_json::from_slice::<serde_json::Value>(&runs.stdout)
            .ok()
            .and_then(|v| v[0]["run"].as_str().map(String::from));
        if let Some(run) = run {
            let out = sandbox.run(&["status", &run]);
            let text = stdout(&out);
            if text.contains("▶ hold[here]: running")
                && text.contains("queued (fixture-plugin-for-tests): ready")
            {
                break (run, text);
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before reaching the waiting states");
        assert!(started.elapsed() < Duration::from_secs(60), "the run never reached the waiting states");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The driver would now wait an hour for the retry timer: stop it.
    child.kill().unwrap();
    child.wait().unwrap();
    let settings = {
        let mut s = insta::Settings::clone_current();
        for (pattern, replacement) in filters(&sandbox, &run) {
            s.add_filter(&pattern, replacement);
        }
        s
    };
    settings.bind(|| insta::assert_snapshot!("status_while_waiting", status));
}

#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.a1]\ntransport = \"local\"\nos = \"linux\"\n[servers.a2]\ntransport = \"local\"\nos = \"linux\"\n[groups]\napps = [\"a1\", \"a2\"]\n");
    let wf = sandbox.write(
        "progress.toml",
        r#"
name = "progress"
version = "1.0.0"
[limits]
concurrency = 1
[[steps]]
id = "check"
plugin = "fixture-plugin-for-tests"
for-each = "apps"
with = { behave = "ok" }
[[steps]]
id = "retry-once"
plugin = "fixture-plugin-for-tests"
needs = ["check"]
on-failure = "continue"
with = { behave = "fail", kind = "permanent", message = "refused by a2" }
"#,
    );
    let out = sandbox.run(&["run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = sandbox.last_run();
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in filters(&sandbox, &run) {
        settings.add_filter(&pattern, replacement);
    }
    settings.bind(|| insta::assert_snapshot!("progress_not_a_terminal", stderr(&out)));
}
