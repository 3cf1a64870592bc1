//! Inputs at their bounds, through the real binary: durations too long for the clock, fan-out
//! items that would share an instance key, and files with no end.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    sandbox.write("inventory.toml", "");
    sandbox
}

fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    stdout(&sandbox.run(&["events", run, "--ndjson"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

/// Kills a child this test started when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A run pinned by a build that did not bound durations (the definition is edited in the journal,
/// as such a build would have written it) resumes without a panic: the attempt runs under its
/// huge timeout, and its retry is scheduled a day ahead (the longest retry delay), not wrapped into
/// the past and run at once.
#[test]
fn a_run_pinned_with_huge_durations_resumes_and_schedules_its_retry_ahead() {
    let sandbox = sandbox();
    let wf = sandbox.write(
        "wf.toml",
        r#"
name = "pinned"
version = "1.0.0"
[[steps]]
id = "gate"
approval = { prompt = "go?" }
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
needs = ["gate"]
timeout = "1m"
retry = { attempts = 3, initial = "1s", max = "1m", jitter = 0.0 }
with = { behave = "fail", kind = "retryable", message = "sql01 unreachable" }
"#,
    );
    let inv = sandbox.path().join("inventory.toml");
    let out = sandbox.run(&["run", &wf, "--inventory", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "waits at the gate: {}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();

    // What the issue's workflow pinned before validation bounded durations.
    let db = rusqlite::Connection::open(sandbox.db_path()).unwrap();
    let text: String =
        db.query_row("SELECT definition FROM runs WHERE id = ?1", [&run], |row| row.get(0)).unwrap();
    let mut definition: Value = serde_json::from_str(&text).unwrap();
    let step = &mut definition["workflow"]["steps"][1];
    assert_eq!(step["id"], "flaky");
    step["timeout"] = "18446744073709551615s".into();
    step["retry"]["initial"] = "300000000years".into();
    step["retry"]["max"] = "300000000years".into();
    db.execute("UPDATE runs SET definition = ?1 WHERE id = ?2", (definition.to_string(), &run)).unwrap();
    drop(db);

    let out = sandbox.run(&["approve", &run, "gate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut resume = Reaped(
        sandbox
            .drover()
            .args(["resume", &run])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // The driver waits for the retry it scheduled; wait for that to be journaled.
    let started = Instant::now();
    let scheduled = loop {
        if let Some(e) = events(&sandbox, &run).into_iter().find(|e| e["kind"] == "retry-scheduled") {
            break e;
        }
        if let Some(exit) = resume.0.try_wait().unwrap() {
            let out = output_of(&mut resume.0);
            panic!("resume ended ({exit}) before scheduling the retry: {out}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no retry was scheduled");
        std::thread::sleep(Duration::from_millis(50));
    };
    let at = scheduled["at"].as_i64().unwrap();
    let retry_at = scheduled["data"]["retry_at"].as_i64().unwrap();
    let day = 24 * 60 * 60 * 1000;
    assert!(
        (day - 5_000..=day + 5_000).contains(&(retry_at - at)),
        "retry at {retry_at}, {} ms after the event at {at}",
        retry_at - at
    );
    assert!(resume.0.try_wait().unwrap().is_none(), "the driver still waits for the retry");
    let status = sandbox.status(&run);
    let flaky = instance(&status, "flaky");
    assert_eq!(flaky["attempts"], 1, "{flaky:#}");
    assert_eq!(flaky["state"], "waiting", "{flaky:#}");
    assert_eq!(events(&sandbox, &run).iter().filter(|e| e["kind"] == "attempt-started").count(), 1);
}

/// Stdout and stderr of a child that has ended.
fn output_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut text);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// Items of a templated `for-each` that render to one key (`"1"` and `1` both make `s[1]`) fail
/// the step with a reason naming the key, instead of collapsing into one instance.
#[test]
fn templated_for_each_items_with_one_key_fail_the_step() {
    let sandbox = sandbox();
    let wf = sandbox.write(
        "wf.toml",
        r#"
name = "dup"
version = "1.0.0"
[params.a]
type = "string"
default = "1"
[params.b]
type = "integer"
default = 1
[[steps]]
id = "s"
plugin = "fixture-plugin-for-tests"
for-each = ["{{ params.a }}", "{{ params.b }}"]
with = { behave = "ok" }
"#,
    );
    let inv = sandbox.path().join("inventory.toml");
    let out = sandbox.run(&["validate", &wf]);
    assert!(out.status.success(), "templated items are only known when they render: {}", stderr(&out));
    let out = sandbox.run(&["run", &wf, "--inventory", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    let status = sandbox.status(&run);
    let s = instance(&status, "s");
    assert_eq!(s["state"], "failed", "{s:#}");
    let reason = "for-each: items 0 and 1 both give the instance key `s[1]`: each item must give its own key";
    assert!(s["why"].as_str().unwrap().starts_with(reason), "{s:#}");
    let events = events(&sandbox, &run);
    let failed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "step-failed").collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0]["data"]["reason"], reason);
    assert_eq!(events.iter().filter(|e| e["kind"] == "attempt-started").count(), 0, "no instance ran");
}

/// Files with no end are refused after the size limit, naming the file and the limit, with exit
/// code 2; a regular file over the limit is refused without being read.
#[test]
fn input_files_are_read_up_to_a_limit() {
    let sandbox = sandbox();
    let wf = sandbox.write(
        "wf.toml",
        "name = \"w\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"fixture-plugin-for-tests\"\nwith = { behave = \"ok\" }\n",
    );
    let inv = sandbox.write("inventory.toml", "");
    let big = sandbox.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(16 * 1024 * 1024 + 1).unwrap();
    let big = big.to_str().unwrap();
    let limit = "the file is larger than 16 MiB, the limit for an input file";
    let cases: [(&[&str], String); 5] = [
        (&["validate", "/dev/zero"], format!("cannot read workflow file /dev/zero: {limit}")),
        (&["validate", big], format!("cannot read workflow file {big}: {limit}")),
        (
            &["validate", &wf, "--inventory", "/dev/zero"],
            format!("cannot read inventory file /dev/zero: {limit}"),
        ),
        (
            &["run", &wf, "--inventory", &inv, "--plan", "/dev/zero"],
            format!("cannot read the plan /dev/zero: {limit}"),
        ),
        (
            &["plugin", "run", "fixture-plugin-for-tests", "--input", "@/dev/zero"],
            format!("cannot read --input file /dev/zero: {limit}"),
        ),
    ];
    for (args, message) in cases {
        let started = Instant::now();
        let out = sandbox.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(stderr(&out).trim_end(), format!("error: {message}"), "{args:?}");
        assert!(started.elapsed() < Duration::from_secs(60), "{args:?} took {:?}", started.elapsed());
    }
    // A timeout too long for the clock, on the command line.
    let out = sandbox.run(&["plugin", "run", "fixture-plugin-for-tests", "--timeout", "1e30"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: --timeout 1000000000000000000000000000000 is longer than the limit of 604800 seconds (7days), as a step's timeout"
    );
}
