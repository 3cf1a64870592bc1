//! `drover events --json` is an API people script against: the shape of every kind of event
//! (its actor, and each field's JSON type, nested) is held by insta snapshots, so a change to the
//! journal's types that changes what scripts read fails here. Values that change from run to run
//! (times, ids, process ids, durations, messages) are not in the snapshots, only their types.
//!
//! Two journals are described: the demo recovery (`workflows/dr-site-preparation.toml` on the
//! lab, killed during a join and resumed, so the recovery of a reversible step is in it), and a
//! set of fixture runs that reach every other kind: approval, retries, failures, skips, refusals,
//! a rejected request, operator commands, cancels, interrupted attempts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drover_tests::lab::LabRun;
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// How long a state the test waits for may take to appear.
const DEADLINE: Duration = Duration::from_secs(120);

/// The JSON types seen at one place of the events of one kind, merged over all its events.
#[derive(Debug, Default)]
struct Shape {
    /// `null`, `boolean`, `integer`, `number`, `string`, and `absent` for an object field some
    /// of the events lack.
    scalars: BTreeSet<&'static str>,
    /// The elements of arrays, merged (none when every array seen was empty).
    elements: Option<Box<Shape>>,
    /// Whether an array was seen.
    array: bool,
    /// The fields of objects, merged.
    fields: Option<BTreeMap<String, Shape>>,
    /// How many objects were merged.
    objects: usize,
}

impl Shape {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Null => {
                self.scalars.insert("null");
            }
            Value::Bool(_) => {
                self.scalars.insert("boolean");
            }
            Value::Number(n) => {
                self.scalars.insert(if n.is_f64() { "number" } else { "integer" });
            }
            Value::String(_) => {
                self.scalars.insert("string");
            }
            Value::Array(items) => {
                self.array = true;
                for item in items {
                    self.elements.get_or_insert_default().add(item);
                }
            }
            Value::Object(map) => {
                let first = self.objects == 0;
                self.objects += 1;
                let fields = self.fields.get_or_insert_default();
                for (name, shape) in fields.iter_mut() {
                    if !map.contains_key(name) {
                        shape.scalars.insert("absent");
                    }
                }
                for (name, value) in map {
                    let shape = fields.entry(name.clone()).or_insert_with(|| {
                        let mut shape = Shape::default();
                        if !first {
                            shape.scalars.insert("absent");
                        }
                        shape
                    });
                    shape.add(value);
                }
            }
        }
    }

    fn render(&self) -> String {
        let mut kinds: Vec<String> = self.scalars.iter().map(|s| s.to_string()).collect();
        if self.array {
            kinds.push(match &self.elements {
                Some(elements) => format!("array<{}>", elements.render()),
                None => "array<>".into(),
            });
        }
        if let Some(fields) = &self.fields {
            let inner: Vec<String> =
                fields.iter().map(|(name, shape)| format!("{name}: {}", shape.render())).collect();
            kinds.push(format!("{{{}}}", inner.join(", ")));
        }
        kinds.join(" | ")
    }
}

/// One line per (kind, actor kind): the event's fields and their types, `data` nested. The actor
/// is `engine` or, for anyone else, `operator`.
fn describe(events: &[Value]) -> String {
    let mut by_kind: BTreeMap<(String, &str), Shape> = BTreeMap::new();
    for event in events {
        let kind = event["kind"].as_str().expect("every event has a kind").to_string();
        let actor = match event["actor"].as_str() {
            Some("engine") => "engine",
            Some(_) => "operator",
            None => "no actor",
        };
        by_kind.entry((kind, actor)).or_default().add(event);
    }
    by_kind.iter().map(|((kind, actor), shape)| format!("{kind} ({actor}): {}\n", shape.render())).collect()
}

/// `drover --json events RUN`, one event per line.
fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    let out = sandbox.run(&["--json", "events", run]);
    assert!(out.status.success(), "drover events: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event as JSON")).collect()
}

/// The newest run of `workflow`, once there is one.
fn newest_run(sandbox: &Sandbox, workflow: &str) -> Option<String> {
    let runs = sandbox.run(&["runs", "--json"]);
    let runs = serde_json::from_slice::<Value>(&runs.stdout).ok()?;
    runs.as_array()?
        .iter()
        .find(|r| r["workflow"] == workflow)
        .and_then(|r| r["run"].as_str().map(String::from))
}

/// Waits until the newest run of `workflow` journals an event for which `wanted` holds, and
/// returns the run; fails with the driver's output if the driver ends first.
fn wait_for(
    sandbox: &Sandbox,
    child: &mut Child,
    workflow: &str,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        if let Some(run) = newest_run(sandbox, workflow)
            && events(sandbox, &run).iter().any(&wanted)
        {
            return run;
        }
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            if let Some(mut pipe) = child.stdout.take() {
                pipe.read_to_string(&mut out).unwrap();
            }
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_string(&mut out).unwrap();
            }
            panic!("drover ended before journaling {what}: {out}");
        }
        assert!(started.elapsed() < DEADLINE, "no {what} within {}s", DEADLINE.as_secs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_demo_recovery_killed_during_a_join_journals_the_same_event_shapes() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let mut child = lab
        .drover(&["--quiet", "run", &lab.workflow, "--inventory", &lab.inventory])
        .env("DROVER_LAB_JOIN_DELAY_MS", "1500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The join's intent is journaled before the plugin runs: killed now, the attempt is
    // interrupted, and the resume settles it by the plugin's check (join-group is reversible).
    let run = wait_for(&lab.sandbox, &mut child, "dr-site-preparation", "the join of DRBTS01", |e| {
        e["kind"] == "attempt-started" && e["step_key"] == "join[DRBTS01]"
    });
    kill(child);
    let out = lab.drover(&["--quiet", "resume", &run]).output().unwrap();
    assert!(out.status.success(), "resume completes: {}{}", stdout(&out), stderr(&out));
    let events = events(&lab.sandbox, &run);
    assert!(events.iter().any(|e| e["kind"] == "recovered-by-check"), "{events:#?}");
    insta::assert_snapshot!("demo_recovery_event_shapes", describe(&events));
}

/// The fixture's workflow reaching most kinds: an approval, a retried step, a failure and the
/// step it skips, a false `when`, a plugin asking for an operator, a refused host call and a
/// `with` that cannot be rendered.
fn vocabulary_workflow(effects: &str) -> String {
    format!(
        r#"
name = "vocabulary"
version = "1.0.0"
[[steps]]
id = "gate"
approval = {{ prompt = "Go on?" }}
[[steps]]
id = "flaky"
plugin = "fixture-plugin-for-tests"
for-each = ["here"]
grants = {{ programs = ["sh"] }}
retry = {{ attempts = 2, initial = "10ms", factor = 1.0, max = "10ms", jitter = 0.0 }}
with = {{ behave = "flaky", file = "{effects}", succeed-at = 2 }}
[[steps]]
id = "broken"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
with = {{ behave = "fail", kind = "permanent", message = "disk F: missing" }}
[[steps]]
id = "after-broken"
plugin = "fixture-plugin-for-tests"
needs = ["broken"]
with = {{ behave = "ok" }}
[[steps]]
id = "optional"
plugin = "fixture-plugin-for-tests"
when = "1 == 2"
with = {{ behave = "ok" }}
[[steps]]
id = "unsure"
plugin = "fixture-plugin-for-tests"
with = {{ behave = "fail", kind = "needs-operator", message = "the join may have half happened" }}
[[steps]]
id = "refusing"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
with = {{ behave = "ignore-denial" }}
[[steps]]
id = "unrenderable"
plugin = "fixture-plugin-for-tests"
needs = ["gate"]
on-failure = "continue"
with = {{ behave = "ok", note = "{{{{ steps.gate.output.nothing.deeper }}}}" }}
"#
    )
}

/// Workflow `name`: a one-instance step on server `here` that appends to `effects` once
/// `release` exists.
fn held_workflow(name: &str, plugin: &str, effects: &str, release: &str) -> String {
    format!(
        r#"
name = "{name}"
version = "1.0.0"
[[steps]]
id = "held"
plugin = "{plugin}"
for-each = ["here"]
grants = {{ programs = ["sh"] }}
with = {{ behave = "effect", file = "{effects}", until = "{release}" }}
"#
    )
}

#[test]
fn the_fixture_runs_journal_the_same_event_shapes() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE, wasm::FIXTURE_IRREVERSIBLE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\nos = \"linux\"\n");
    let effects = sandbox.path().join("effects.log").display().to_string();
    let release = sandbox.path().join("release").display().to_string();
    let mut all = Vec::new();
    let ok = |out: &std::process::Output| assert!(out.status.success(), "{}{}", stdout(out), stderr(out));

    // Everything but the gate settles; the run waits for the approval and the operator.
    let wf = sandbox.write("vocabulary.toml", &vocabulary_workflow(&effects));
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    ok(&sandbox.run(&["approve", &run, "gate", "--comment", "go"]));
    ok(&sandbox.run(&["retry", &run, "broken", "--comment", "once more"]));
    ok(&sandbox.run(&[
        "skip",
        &run,
        "unsure",
        "--output",
        r#"{"ok": true}"#,
        "--comment",
        "checked by hand",
    ]));
    // A request valid when queued but not when applied (the gate passed meanwhile) is rejected
    // by the process that applies it, and journaled so.
    let db = rusqlite::Connection::open(sandbox.db_path()).unwrap();
    let user = sandbox.status(&run)["started_by"].as_str().unwrap().to_string();
    db.execute(
        "INSERT INTO requests (run_id, kind, step_key, data, actor, at) VALUES (?1, 'approve', 'gate', '{\"comment\":null}', ?2, 0)",
        [&run, &user],
    )
    .unwrap();
    drop(db);
    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    all.extend(events(&sandbox, &run));

    // A cancel stops the attempt in flight.
    let wf = sandbox.write(
        "endless.toml",
        "name = \"endless\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"spin\"\nplugin = \"fixture-plugin-for-tests\"\ntimeout = \"1h\"\nwith = { behave = \"endless-loop\" }\n",
    );
    let mut child = sandbox
        .drover()
        .args(["--quiet", "run", &wf, "--inventory", &inv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run =
        wait_for(&sandbox, &mut child, "endless", "attempt-started", |e| e["kind"] == "attempt-started");
    ok(&sandbox.run(&["cancel", &run, "--comment", "stop it"]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    all.extend(events(&sandbox, &run));

    // A cancel of a run whose driver died ends the attempt it left running.
    let wf =
        sandbox.write("held.toml", &held_workflow("held", "fixture-plugin-for-tests", &effects, &release));
    let mut child = sandbox
        .drover()
        .args(["--quiet", "run", &wf, "--inventory", &inv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_for(&sandbox, &mut child, "held", "attempt-started", |e| e["kind"] == "attempt-started");
    kill(child);
    ok(&sandbox.run(&["cancel", &run, "--comment", "abandoned"]));
    all.extend(events(&sandbox, &run));

    // An interrupted irreversible attempt waits for an operator; retried, it runs again.
    let wf = sandbox.write(
        "held-irreversible.toml",
        &held_workflow("held-irreversible", "fixture-irreversible", &effects, &release),
    );
    let mut child = sandbox
        .drover()
        .args(["--quiet", "run", &wf, "--inventory", &inv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_for(&sandbox, &mut child, "held-irreversible", "attempt-started", |e| {
        e["kind"] == "attempt-started"
    });
    kill(child);
    std::fs::write(&release, "").unwrap();
    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    ok(&sandbox.run(&["retry", &run, "held[here]"]));
    ok(&sandbox.run(&["--quiet", "resume", &run]));
    all.extend(events(&sandbox, &run));

    let kinds: BTreeSet<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "approved",
        "attempt-cancelled",
        "attempt-failed",
        "attempt-interrupted",
        "cancel-requested",
        "needs-operator",
        "refused",
        "request-rejected",
        "retry-due",
        "retry-requested",
        "retry-scheduled",
        "run-cancelled",
        "run-failed",
        "run-waiting",
        "skipped-by-operator",
        "step-failed",
        "step-skipped",
        "waiting-for-approval",
    ] {
        assert!(kinds.contains(kind), "no {kind} event: {kinds:?}");
    }
    insta::assert_snapshot!("fixture_event_shapes", describe(&all));
}

#[test]
fn a_run_id_that_is_not_one_is_refused_before_the_journal_is_opened() {
    let sandbox = Sandbox::new();
    for command in ["status", "events", "report", "resume", "cancel"] {
        let out = sandbox.run(&[command, "run-42"]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(stderr(&out).contains("`run-42` is not a run id"), "{command}: {}", stderr(&out));
    }
    assert!(!sandbox.db_path().exists(), "a journal was made");
}
