//! `drover report` through the real binary: the Markdown report of a run with an approval, an
//! evidence-bearing step, a skipped one and a failure, as an insta snapshot (times, ids and
//! digests filtered out).

use drover_tests::{Sandbox, stderr, stdout, wasm};

#[test]
fn the_markdown_report_of_a_run_with_an_approval_a_skip_and_a_failure() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.app1]\ntransport = \"local\"\nos = \"linux\"\n");
    let wf = sandbox.write(
        "recovery.toml",
        r#"
name = "recovery"
version = "2.1.0"
[params.sql-server]
type = "string"
default = "SQLPROD01"
[[steps]]
id = "probe"
plugin = "fixture-plugin-for-tests"
grants = { targets = ["app1"], programs = ["sh"] }
with = { behave = "exec", target = "app1", program = "sh", args = ["-c", "echo 'MgmtDBServer    REG_SZ    {{ params.sql_server }}'"] }
[[steps]]
id = "go"
approval = { prompt = "Switch to the DR site?" }
needs = ["probe"]
[[steps]]
id = "optional"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
when = "params.sql_server == 'nothing'"
with = { behave = "ok" }
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
on-failure = "continue"
with = { behave = "fail", kind = "permanent", message = "SQLPROD01 refused the login" }
"#,
    );
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "waits at the gate: {}", stderr(&out));
    let run = sandbox.last_run();
    let out = sandbox.run(&["approve", &run, "go", "--comment", "change board said yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert_eq!(out.status.code(), Some(1), "one step fails: {}", stderr(&out));
    let out = sandbox.run(&["report", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    let user = sandbox.status(&run)["started_by"].as_str().unwrap().to_string();
    let home = sandbox.path().display().to_string();
    insta::with_settings!({ filters => vec![
        (r"run_[0-9a-z]{26}", "[run]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]"),
        (r"\| \d+(\.\d)? m?s \|", "| [duration] |"),
        (r"\*\*\d+(\.\d)? m?s\*\*", "**[duration]**"),
        (r"`[0-9a-f]{16}…`", "`[sha256]…`"),
        (r"`[0-9a-f]{64}`", "`[sha256]`"),
        (home.as_str(), "[home]"),
        (user.as_str(), "[user]"),
    ]}, {
        insta::assert_snapshot!(report);
    });
}

#[test]
fn the_html_report_is_one_self_contained_file() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "");
    let wf = sandbox.write(
        "wf.toml",
        "name = \"html\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"fixture-plugin-for-tests\"\nwith = { behave = \"ok\" }\n\
         [[steps]]\nid = \"b\"\nplugin = \"fixture-plugin-for-tests\"\nneeds = [\"a\"]\non-failure = \"continue\"\n\
         with = { behave = \"fail\", kind = \"permanent\", message = \"<script>alert(1)</script>\" }\n",
    );
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = sandbox.last_run();
    let file = sandbox.path().join("report.html");
    let out = sandbox.run(&["report", &run, "--format", "html", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    for external in ["http://", "https://", "src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(external), "{external:?} in the report: it must need nothing outside itself");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "plugin text is escaped");
    assert_eq!(html.matches("<svg ").count(), 2, "the DAG and the timeline");
}

/// A drill with phases, an approval gate approved through the CLI, a manual list and a data-loss
/// window declared by a step's output: the report states the window, each phase's times, the
/// approval and what stays manual, and its times agree with the journal (`drover events`).
#[test]
fn a_drill_report_states_the_data_loss_window_phases_approvals_and_manual_work() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE, wasm::NOOP]);
    let inv = sandbox.write("inventory.toml", "");
    let wf = sandbox.write(
        "drill.toml",
        r#"
name = "failover-drill"
version = "1.0.0"
[params.mark]
type = "string"
default = "2026-12-07T09:14:00Z"
[report]
manual = ["Redirect clients: DNS and aliases", "BAM: update the references by hand"]
rpo = "steps.declare.output.rpo"
[[steps]]
id = "declare"
plugin = "fixture-plugin-for-tests"
phase = "Declare the disaster"
with = { behave = "output", output = { rpo = { recovery_point = "{{ params.mark }}", failure_time = "2026-12-07T10:20:30+01:00" } } }
[[steps]]
id = "go"
approval = { prompt = "Fail over to the DR site?" }
needs = ["declare"]
phase = "Declare the disaster"
[[steps]]
id = "restore"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
for-each = ["BizTalkMgmtDb", "BizTalkMsgBoxDb"]
phase = "Restore databases"
with = { behave = "ok" }
[[steps]]
id = "bam"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
when = "false"
phase = "Restore databases"
with = { behave = "ok" }
[[steps]]
id = "start-hosts"
plugin = "noop"
needs = ["restore"]
phase = "Activate"
"#,
    );
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "waits at the gate: {}", stderr(&out));
    let run = sandbox.last_run();
    // Before the approval: the gate waits, the run is measured to its last event.
    let waiting = report_json(&sandbox, &run);
    let objectives = &waiting["objectives"];
    assert_eq!(objectives["timing"]["ended"], false);
    assert_eq!(objectives["gates"][0]["decision"], "waiting");
    let out = sandbox.run(&["approve", &run, "go", "--comment", "bridge call: go"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    let user = sandbox.status(&run)["started_by"].as_str().unwrap().to_string();

    // The structured report against the journal.
    let report = report_json(&sandbox, &run);
    let o = &report["objectives"];
    let events = journal(&sandbox, &run);
    let at = |kind: &str, key: Option<&str>| -> i64 {
        let e = events
            .iter()
            .find(|e| e["kind"] == kind && e["step_key"].as_str() == key)
            .unwrap_or_else(|| panic!("no {kind} event for {key:?}"));
        e["at"].as_i64().unwrap()
    };
    let (created, waits, approved) =
        (at("run-created", None), at("waiting-for-approval", Some("go")), at("approved", Some("go")));
    let ended = at("run-succeeded", None);
    let gate = &o["gates"][0];
    assert_eq!(
        (gate["key"].as_str(), gate["decision"].as_str(), gate["by"].as_str(), gate["comment"].as_str()),
        (Some("go"), Some("approved"), Some(user.as_str()), Some("bridge call: go"))
    );
    assert_eq!((gate["waiting_since"].as_i64(), gate["at"].as_i64()), (Some(waits), Some(approved)));
    assert_eq!(gate["waited_ms"].as_i64(), Some(approved - waits));
    let timing = &o["timing"];
    assert_eq!(timing["ended"], true);
    assert_eq!(report["started_at"].as_i64(), Some(created));
    assert_eq!(timing["until"].as_i64(), report["finished_at"].as_i64());
    assert!(timing["until"].as_i64().unwrap() >= ended);
    assert_eq!(timing["elapsed_ms"].as_i64(), Some(timing["until"].as_i64().unwrap() - created));
    assert_eq!(timing["at_gates_ms"].as_i64(), Some(approved - waits), "one gate: its wait");

    let phases = o["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Declare the disaster", "Restore databases", "Activate"]);
    let span =
        |p: &serde_json::Value| (p["started_at"].as_i64().unwrap(), p["finished_at"].as_i64().unwrap());
    let spans: Vec<(i64, i64)> = phases.iter().map(span).collect();
    let mut previous = created;
    for (phase, (start, end)) in names.iter().zip(&spans) {
        assert!(previous <= *start && start <= end, "{phase} runs after the one before it: {spans:?}");
        previous = *end;
    }
    assert!(previous <= timing["until"].as_i64().unwrap());
    assert_eq!(spans[0].1, approved, "the first phase ends with its gate's approval");
    assert_eq!(phases[0]["at_gates_ms"].as_i64(), Some(approved - waits));
    assert_eq!(
        spans[1].0,
        at("attempt-started", Some("restore[BizTalkMgmtDb]"))
            .min(at("attempt-started", Some("restore[BizTalkMsgBoxDb]"))),
        "a phase starts with its first attempt"
    );
    assert_eq!(phases[1]["states"], "2 succeeded, 1 skipped");

    // The rendered reports.
    let out = sandbox.run(&["report", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    let md = stdout(&out);
    for line in [
        "| data-loss window (RPO) | **6 min 30 s** |",
        "| recovery point | 2026-12-07T09:14:00Z |",
        "| failure time | 2026-12-07T09:20:30Z |",
        "| measured by | `steps.declare.output.rpo` |",
        "- Redirect clients: DNS and aliases\n- BAM: update the references by hand\n- `bam` skipped: when `false` is false\n",
    ] {
        assert!(md.contains(line), "{line:?} in\n{md}");
    }
    let row = |prefix: &str| {
        md.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in\n{md}"))
    };
    assert!(row("| elapsed (RTO as measured) | **").contains("(run created to run ended, "));
    assert!(!row("| waiting at approval gates | ").ends_with("|  |"));
    for phase in names {
        let cells: Vec<&str> = row(&format!("| {phase} | ")).split(" | ").collect();
        assert!(
            cells[4] != "not finished" && !cells[5].is_empty(),
            "{phase} has an end and an elapsed time: {cells:?}"
        );
    }
    let approval = row("| go | Fail over to the DR site? | ");
    assert!(
        approval.contains(&format!("| approved | {user} | ")) && approval.ends_with("| bridge call: go |"),
        "{approval}"
    );
    assert!(!md.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));

    let file = sandbox.path().join("drill.html");
    let out = sandbox.run(&["report", &run, "--format", "html", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&file).unwrap();
    for text in [
        "<td class=\"k\">data-loss window (RPO)</td><td><strong>6 min 30 s</strong></td>",
        "<h3>Phases</h3>",
        "<td>Restore databases</td><td>2 succeeded, 1 skipped</td>",
        "<li>Redirect clients: DNS and aliases</li>",
        "<td>bridge call: go</td>",
        "<title>waiting for approval: approved after ",
    ] {
        assert!(html.contains(text), "{text:?} in the HTML report");
    }
}

fn report_json(sandbox: &Sandbox, run: &str) -> serde_json::Value {
    let out = sandbox.run(&["report", run, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("report --json")
}

fn journal(sandbox: &Sandbox, run: &str) -> Vec<serde_json::Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event")).collect()
}
