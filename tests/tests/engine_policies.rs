//! Step policies through the real binary: retries with backoff, `when`, `on-failure`, and the
//! operator's `skip` and `cancel`.

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    sandbox.write("inventory.toml", "");
    sandbox
}

fn run(sandbox: &Sandbox, workflow: &str) -> (std::process::Output, String) {
    let wf = sandbox.write("wf.toml", workflow);
    let inv = sandbox.path().join("inventory.toml");
    let out = sandbox.run(&["run", &wf, "--inventory", inv.to_str().unwrap()]);
    (out, sandbox.last_run())
}

fn instance<'a>(status: &'a Value, key: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["instances"].as_array().unwrap())
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no instance {key} in {status:#}"))
}

fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    stdout(&sandbox.run(&["events", run, "--ndjson"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_retryable_failure_is_retried_with_backoff_then_fails() {
    let sandbox = sandbox();
    let (out, run) = run(
        &sandbox,
        r#"
name = "retries"
version = "1.0.0"
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
retry = { attempts = 3, initial = "200ms", factor = 2.0, max = "1s", jitter = 0.0 }
with = { behave = "fail", kind = "retryable", message = "sql01 unreachable" }
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("flaky: plugin fixture-plugin-for-tests failed (Retryable): sql01 unreachable"),
        "{}",
        stdout(&out)
    );
    let status = sandbox.status(&run);
    assert_eq!(instance(&status, "flaky")["attempts"], 3);
    let started: Vec<i64> = events(&sandbox, &run)
        .iter()
        .filter(|e| e["kind"] == "attempt-started")
        .map(|e| e["at"].as_i64().unwrap())
        .collect();
    assert_eq!(started.len(), 3);
    // Delays of 200 ms, then 400 ms (no jitter).
    assert!(started[1] - started[0] >= 200, "{started:?}");
    assert!(started[2] - started[1] >= 400, "{started:?}");
}

#[test]
fn when_skips_and_on_failure_continue_skips_only_the_dependents() {
    let sandbox = sandbox();
    let (out, run) = run(
        &sandbox,
        r#"
name = "policies"
version = "1.0.0"
[params.join]
type = "boolean"
default = false
[[steps]]
id = "maybe"
plugin = "fixture-plugin-for-tests"
when = "params.join"
with = { behave = "ok" }
[[steps]]
id = "after-maybe"
plugin = "fixture-plugin-for-tests"
needs = ["maybe"]
with = { behave = "ok" }
[[steps]]
id = "breaks"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
with = { behave = "fail", kind = "permanent", message = "disk missing" }
[[steps]]
id = "after-breaks"
plugin = "fixture-plugin-for-tests"
needs = ["breaks"]
with = { behave = "ok" }
[[steps]]
id = "further-down"
plugin = "fixture-plugin-for-tests"
needs = ["after-breaks"]
with = { behave = "ok" }
"#,
    );
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    // The verdict names the exact command for the instance that failed.
    assert!(
        stdout(&out).contains(&format!("fix the cause, then `drover retry {run} breaks`")),
        "{}",
        stdout(&out)
    );
    let status = sandbox.status(&run);
    assert_eq!(instance(&status, "maybe")["state"], "skipped");
    assert_eq!(instance(&status, "maybe")["why"], "when `params.join` is false");
    assert_eq!(instance(&status, "after-maybe")["state"], "succeeded", "a skipped need counts as done");
    assert_eq!(instance(&status, "breaks")["state"], "failed");
    assert_eq!(instance(&status, "after-breaks")["state"], "skipped");
    assert_eq!(instance(&status, "after-breaks")["why"], "needs breaks, which failed");
    assert_eq!(
        instance(&status, "further-down")["state"],
        "skipped",
        "a failure skips everything downstream"
    );
    assert_eq!(instance(&status, "further-down")["why"], "needs breaks, which failed");
}

const STOPS: &str = r#"
name = "stops"
version = "1.0.0"
[[steps]]
id = "broken"
plugin = "fixture-plugin-for-tests"
with = { behave = "fail", kind = "permanent", message = "cannot" }
[[steps]]
id = "after"
plugin = "fixture-plugin-for-tests"
needs = ["broken"]
with = { behave = "ok" }
"#;

#[test]
fn skip_gives_a_failed_step_an_output_checked_against_its_schema() {
    let sandbox = sandbox();
    let (out, run) = run(&sandbox, STOPS);
    assert_eq!(out.status.code(), Some(1));
    let status = sandbox.status(&run);
    assert!(
        instance(&status, "broken")["why"]
            .as_str()
            .unwrap()
            .ends_with(&format!("`drover retry {run} broken`"))
    );

    let out = sandbox.run(&["skip", &run, "broken", "--output", r#"{"ok": "yes"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "--output does not match the output schema of plugin fixture-plugin-for-tests: at /ok: "
        ),
        "{}",
        stderr(&out)
    );

    let out =
        sandbox.run(&["skip", &run, "broken", "--output", r#"{"ok": true}"#, "--comment", "done by hand"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let status = sandbox.status(&run);
    assert_eq!(instance(&status, "broken")["state"], "skipped");
    assert_eq!(instance(&status, "after")["state"], "succeeded");
    assert!(
        events(&sandbox, &run)
            .iter()
            .any(|e| e["kind"] == "skipped-by-operator" && e["data"]["comment"] == "done by hand")
    );
}

#[test]
fn cancel_ends_a_waiting_run() {
    let sandbox = sandbox();
    let (out, run) = run(
        &sandbox,
        r#"
name = "cancel"
version = "1.0.0"
[[steps]]
id = "gate"
approval = { prompt = "Go?" }
[[steps]]
id = "after"
plugin = "fixture-plugin-for-tests"
needs = ["gate"]
with = { behave = "ok" }
"#,
    );
    assert_eq!(out.status.code(), Some(4));
    let out = sandbox.run(&["cancel", &run, "--comment", "drill over", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(
        (reply["command"].as_str(), reply["delivery"].as_str()),
        (Some("cancel"), Some("applied")),
        "{reply}"
    );
    let status = sandbox.status(&run);
    assert_eq!(status["state"], "cancelled");
    assert_eq!(instance(&status, "gate")["state"], "cancelled");
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), format!("run {run} was cancelled\n"));
    let out = sandbox.run(&["approve", &run, "gate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is cancelled: there is nothing to approve"), "{}", stderr(&out));
}
