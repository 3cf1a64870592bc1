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
