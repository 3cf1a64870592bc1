//! `drover plan` through the real binary: check mode against the BizTalk lab changes nothing
//! (the lab's state file stays byte for byte the same), reports what a fresh lab would see done
//! and no change on a prepared one; `drover run --plan` refuses to start after drift; a plugin
//! that tries to write or run an unmarked program during a plan is refused, and the plan says so.

use std::process::Command;

use drover_tests::lab::{LabRun, verdicts};
use drover_tests::{Sandbox, lab_bin, stderr, stdout, wasm};

#[test]
fn a_plan_changes_nothing_and_says_what_a_fresh_and_a_prepared_lab_would_see() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let fresh = verdicts(&lab.plan(&[], None));
    // 3 prerequisites, 3 joins, the SSO server, 3 + 1 + 3 service and host-instance steps, 3 stagings.
    assert_eq!(fresh.len(), 17, "{fresh:?}");
    for (key, verdict) in &fresh {
        let expected = if key.starts_with("prerequisites[") {
            "no-change"
        } else if key.starts_with("join[") {
            "would-change"
        } else {
            "cannot-tell"
        };
        assert_eq!(verdict, expected, "{key}");
    }
    let runs = lab.sandbox.run(&["runs", "--json"]);
    assert_eq!(runs.status.code(), Some(3), "a plan writes no run, nor a journal: {}", stderr(&runs));

    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let saved = lab.sandbox.path().join("plan.json").display().to_string();
    let prepared = lab.plan(&[], Some(&saved));
    for (key, verdict) in verdicts(&prepared) {
        assert_eq!(verdict, "no-change", "{key} on a prepared lab");
    }

    // Someone re-enables a service on a DR server: the saved plan no longer holds.
    let out = Command::new(lab_bin())
        .args([
            "exec",
            "--state",
            &lab.state,
            "DRBTS02",
            "--",
            "sc.exe",
            "config",
            "RuleEngineUpdateService",
            "start=",
            "auto",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let runs_before = stdout(&lab.sandbox.run(&["runs", "--json"]));
    let out = lab
        .drover(&["run", &lab.workflow, "--inventory", &lab.inventory, "--plan", &saved])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the targets drifted from the plan"), "{err}");
    assert!(err.contains("disable-services[DRBTS02]: planned no-change"), "{err}");
    assert_eq!(stdout(&lab.sandbox.run(&["runs", "--json"])), runs_before, "nothing was started");
}

#[test]
fn a_plugin_that_writes_or_runs_an_unmarked_program_during_a_plan_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\nos = \"linux\"\n");
    let marker = sandbox.path().join("written-by-the-plan");
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            r#"
name = "sneaky"
version = "1.0.0"
[[steps]]
id = "writes"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"] }}
with = {{ behave = "write-file", target = "here", path = "{0}", contents = "x" }}
[[steps]]
id = "runs"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], programs = ["sh"], read-only = ["sh -c true"] }}
with = {{ behave = "exec", target = "here", program = "sh", args = ["-c", "touch {0}"] }}
[[steps]]
id = "reads"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], programs = ["sh"], read-only = ["sh -c true"] }}
with = {{ behave = "exec", target = "here", program = "sh", args = ["-c", "true"] }}
"#,
            marker.display()
        ),
    );
    let out = sandbox.run(&["plan", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!marker.exists(), "the plan wrote to the target");
    let text = stdout(&out);
    assert!(
        text.contains("? writes: cannot tell: its check asked for something the host refuses in check mode"),
        "{text}"
    );
    assert!(text.contains("refused: plugin fixture-plugin-for-tests called write-file"), "{text}");
    assert!(text.contains("nothing may change in check mode"), "{text}");
    assert!(
        text.contains(&format!("`sh -c touch {}` is not marked read-only for this step", marker.display())),
        "{text}"
    );
    assert!(
        text.contains("✓ reads: no change") || text.contains("~ reads: would change"),
        "the marked run ran: {text}"
    );
}
