//! Terminal escape sequences in what plugins and targets say (a summary, a log line, a
//! heartbeat, an evidence excerpt, a failure message, a fan-out item that becomes a step key)
//! never reach the operator's terminal or the reports raw: the progress lines, `drover run`'s
//! verdict, `drover status`, `drover events` and both reports show them as visible text, JSON
//! output escapes them, and the journal keeps what the plugin said.

use drover_tests::{Sandbox, stderr, stdout, wasm};

const ESC: u8 = 0x1b;

/// Fails with the text (shown with escapes visible) if it holds a raw ESC or another control
/// character a terminal acts on.
fn assert_no_raw_escapes(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let raw: Vec<char> = text.chars().filter(|c| c.is_control() && !matches!(c, '\n' | '\t')).collect();
    assert!(
        !bytes.contains(&ESC) && raw.is_empty(),
        "{what} holds raw control characters {raw:?}:\n{}",
        text.escape_debug()
    );
}

#[test]
fn escape_sequences_from_plugins_are_shown_not_sent_to_the_terminal_or_the_reports() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    // Clear the screen, set the window title, ring the bell, move the cursor home.
    let wf = sandbox.write(
        "escapes.toml",
        r#"
name = "escapes"
version = "1.0.0"
[limits]
concurrency = 1

[[steps]]
id = "say"
plugin = "fixture-plugin-for-tests"
with = { behave = "say", text = "\u001b[2J\u001b]0;owned\u0007\u001b[H all is well" }

[[steps]]
id = "shell"
needs = ["say"]
plugin = "fixture-plugin-for-tests"
grants = { targets = ["here"], programs = ["sh"] }
with = { behave = "exec", target = "here", program = "sh", args = ["-c", "printf '\\033[31mred\\033[0m\\r\\n'"] }

[[steps]]
id = "item"
needs = ["shell"]
plugin = "fixture-plugin-for-tests"
for-each = ["\u001b[5mblink"]
with = { behave = "ok" }

[[steps]]
id = "fail"
needs = ["item"]
plugin = "fixture-plugin-for-tests"
with = { behave = "fail", message = "\u001b[2Jnothing to see\u009b31m" }
"#,
    );
    let out = sandbox.run(&["run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(1), "the last step fails: {}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();

    // What the operator sees while the run is driven, and its verdict.
    assert!(
        stderr(&out).contains("say: succeeded, changed: \\u{1b}[2J\\u{1b}]0;owned\\u{7}"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("item[\\u{1b}[5mblink]"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fixture-plugin-for-tests failed (Permanent): \\u{1b}[2Jnothing"),
        "{}",
        stdout(&out)
    );
    assert_no_raw_escapes("the progress lines of `drover run`", &out.stderr);
    assert_no_raw_escapes("the verdict of `drover run`", &out.stdout);

    let status = sandbox.run(&["status", &run]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("— \\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{1b}[H all is well"),
        "{}",
        stdout(&status)
    );
    assert_no_raw_escapes("`drover status`", &status.stdout);

    let events = sandbox.run(&["events", &run]);
    assert_no_raw_escapes("`drover events`", &events.stdout);
    // JSON escapes C0 controls itself; DEL, C1 (a CSI as U+009B) and bidi controls too, here.
    let ndjson = sandbox.run(&["events", &run, "--ndjson"]);
    assert_no_raw_escapes("`drover events --ndjson`", &ndjson.stdout);
    let json = sandbox.run(&["status", &run, "--json"]);
    assert_no_raw_escapes("`drover status --json`", &json.stdout);

    let markdown = sandbox.run(&["report", &run]);
    assert!(markdown.status.success(), "{}", stderr(&markdown));
    assert!(
        stdout(&markdown).contains("\\u{1b}[31mred\\u{1b}[0m"),
        "the evidence excerpt: {}",
        stdout(&markdown)
    );
    assert_no_raw_escapes("the Markdown report", &markdown.stdout);
    let html_path = sandbox.path().join("report.html");
    let html = sandbox.run(&["report", &run, "--format", "html", "-o", html_path.to_str().unwrap()]);
    assert!(html.status.success(), "{}", stderr(&html));
    assert_no_raw_escapes("the HTML report", &std::fs::read(&html_path).unwrap());

    // The journal keeps what the plugin said: it is evidence.
    let json = sandbox.status(&run);
    let say = &json["steps"][0]["instances"][0];
    assert_eq!(say["summary"], "\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}[H all is well");
    let shell = &json["steps"][1]["instances"][0];
    assert_eq!(shell["output"]["stdout"], "\u{1b}[31mred\u{1b}[0m\r\n");
    let fail = &json["steps"][3]["instances"][0];
    assert!(fail["why"].as_str().unwrap().contains("\u{1b}[2Jnothing to see\u{9b}31m"), "{fail}");
}
