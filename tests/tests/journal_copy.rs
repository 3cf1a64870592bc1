//! `drover journal copy` through the real binary: runs made in an SQLite journal (one succeeded
//! with checkpoints, one waiting at its second approval gate after the first was approved) are
//! copied into a PostgreSQL journal that holds the first already (as a copy stopped after it
//! leaves it: it is skipped), where `status --json`, `events --json` and `report` read the same as
//! in the SQLite one (event numbers aside: they are positions in a whole journal), and the waiting
//! run is approved and finished. The copy is run again and skips what it copied; once the run
//! changed in PostgreSQL, a copy refuses it; a copy back to SQLite (an archive) reads the same as
//! PostgreSQL. A run being driven stops a copy before it creates anything, and a plugin component
//! that does not match its digest stops it before any run.

use std::process::Output;

use drover_engine::store::copy::differences;
use drover_engine::store::{Location, Store};
use drover_tests::postgres::PgCluster;
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

const INVENTORY: &str = "[servers.here]\ntransport = \"local\"\n";

const DONE: &str = r#"
name = "done"
version = "1.0.0"
[[steps]]
id = "count"
plugin = "fixture-plugin-for-tests"
with = { behave = "state" }
[[steps]]
id = "say"
plugin = "fixture-plugin-for-tests"
needs = ["count"]
with = { behave = "say", text = "ünïcode ✓ and \"quotes\"" }
"#;

const GATED: &str = r#"
name = "gated"
version = "2.0.0"
[[steps]]
id = "probe"
plugin = "fixture-plugin-for-tests"
with = { behave = "ok" }
[[steps]]
id = "declare"
approval = { prompt = "Declare the disaster?" }
needs = ["probe"]
[[steps]]
id = "count"
plugin = "fixture-plugin-for-tests"
needs = ["declare"]
with = { behave = "state" }
[[steps]]
id = "switch"
approval = { prompt = "Switch to the DR site?" }
needs = ["count"]
[[steps]]
id = "finish"
plugin = "fixture-plugin-for-tests"
needs = ["switch"]
with = { behave = "ok" }
"#;

/// A home whose journal is an SQLite file in it, whatever `DROVER_TEST_JOURNAL` says: these tests
/// copy from SQLite.
fn sqlite_sandbox() -> Sandbox {
    let mut sandbox = Sandbox::with_db(std::path::PathBuf::new());
    sandbox.db = Some(sandbox.path().join("drover.db"));
    sandbox
}

/// `drover --db <db> args…`.
fn on(sandbox: &Sandbox, db: &str, args: &[&str]) -> Output {
    let mut all = vec!["--db", db];
    all.extend_from_slice(args);
    sandbox.run(&all)
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed ({}): {}{}", out.status, stdout(&out), stderr(&out));
    out
}

/// What the read commands print of `run` from journal `db`: `status --json`, `events --json`
/// without the event numbers (checked to increase), and the Markdown report.
fn views(sandbox: &Sandbox, db: &str, run: &str) -> (Value, Vec<Value>, String) {
    let status: Value =
        serde_json::from_slice(&ok(on(sandbox, db, &["status", run, "--json"]), "status").stdout)
            .expect("status");
    let events = stdout(&ok(on(sandbox, db, &["events", run, "--json"]), "events"));
    let mut seqs = Vec::new();
    let events: Vec<Value> = events
        .lines()
        .map(|line| {
            let mut event: Value = serde_json::from_str(line).expect("an event as JSON");
            seqs.push(event["seq"].as_i64().expect("seq"));
            event.as_object_mut().expect("an object").remove("seq");
            event
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events out of order in {db}: {seqs:?}");
    let report = stdout(&ok(on(sandbox, db, &["report", run]), "report"));
    (status, events, report)
}

fn copy_json(sandbox: &Sandbox, from: &str, to: &str) -> Value {
    let out = ok(on(sandbox, from, &["journal", "copy", "--to", to, "--json"]), "journal copy");
    serde_json::from_slice(&out.stdout).expect("journal copy --json")
}

#[test]
fn runs_copied_from_sqlite_to_postgres_read_the_same_and_the_waiting_one_finishes_there() {
    let pg = PgCluster::start();
    let url = pg.url();
    let sandbox = sqlite_sandbox();
    sandbox.install(&[wasm::FIXTURE]);
    let sqlite = sandbox.db_path().display().to_string();
    let inv = sandbox.write("inventory.toml", INVENTORY);
    let done_wf = sandbox.write("done.toml", DONE);
    let gated_wf = sandbox.write("gated.toml", GATED);

    let out = sandbox.run(&["--quiet", "run", &done_wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}", stderr(&out));
    let done = sandbox.last_run();
    // The destination then holds `done` whole, as a copy stopped after its first run leaves it.
    let first = copy_json(&sandbox, &sqlite, &url);
    assert_eq!(first["copied"], serde_json::json!([done]), "{first}");
    assert_eq!(first["plugin_components"], 1, "the fixture's component: {first}");
    let out = sandbox.run(&["--quiet", "run", &gated_wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "waits at the first gate: {}", stderr(&out));
    let gated = sandbox.last_run();
    ok(sandbox.run(&["approve", &gated, "declare", "--comment", "bridge call"]), "approve");
    let out = sandbox.run(&["--quiet", "resume", &gated]);
    assert_eq!(out.status.code(), Some(4), "waits at the second gate: {}", stderr(&out));

    // Copied again: `done` is skipped, `gated` copied. Progress on stderr, the summary on stdout.
    let out = ok(on(&sandbox, &sqlite, &["journal", "copy", "--to", &url]), "journal copy");
    let progress = stderr(&out);
    assert!(
        progress.contains(&format!("run 1 of 2: {done}: in the destination already, skipped")),
        "{progress}"
    );
    assert!(progress.contains(&format!("run 2 of 2: {gated}: copying")), "{progress}");
    let summary = stdout(&out);
    assert!(summary.starts_with("copied 1 run ("), "{summary}");
    assert!(summary.contains(" events) and 0 plugin components from "), "{summary}");
    assert!(summary.ends_with("; 1 run there already, skipped\n"), "{summary}");

    for run in [&done, &gated] {
        let (status, events, report) = views(&sandbox, &sqlite, run);
        let (pg_status, pg_events, pg_report) = views(&sandbox, &url, run);
        assert_eq!(pg_status, status, "status --json of {run}");
        assert_eq!(pg_events, events, "events --json of {run}");
        assert_eq!(pg_report, report, "report of {run}");
    }
    let runs = |db: &str| stdout(&ok(on(&sandbox, db, &["runs", "--json"]), "runs"));
    assert_eq!(runs(&url), runs(&sqlite));
    // Below the commands: every row of each run, events and commands as stored, the checkpoints
    // the `state` steps wrote, and the approval applied in SQLite with its time.
    let open = |db: &str| Store::open_at_read_only(&Location::parse(db.as_ref())).expect("open");
    let (from, to) = (open(&sqlite), open(&url));
    for run in [&done, &gated] {
        let id = run.parse().expect("a run id");
        let (ours, theirs) = (from.run_copy(id).unwrap().unwrap(), to.run_copy(id).unwrap().unwrap());
        assert_eq!(differences(&ours, &theirs), Vec::<&str>::new(), "{run}");
        assert_eq!(theirs.checkpoints.len(), 1, "{run}: {:?}", theirs.checkpoints);
        assert_eq!(theirs.lease, None, "{run}: leases are not copied");
    }
    let gated_copy = to.run_copy(gated.parse().unwrap()).unwrap().unwrap();
    let applied: Vec<_> =
        gated_copy.requests.iter().map(|r| (r.kind.as_str(), r.applied_at.is_some())).collect();
    assert_eq!(applied, [("approve", true)]);
    drop((from, to));

    // Run again (as after an interruption): everything is there already.
    let again = copy_json(&sandbox, &sqlite, &url);
    assert_eq!(again["copied"], Value::Array(vec![]), "{again}");
    assert_eq!(again["skipped"], serde_json::json!([done, gated]), "{again}");
    assert_eq!(again["plugin_components"], 0, "{again}");

    // The waiting run goes on in PostgreSQL: approved there and finished. The plugin comes from
    // the journal or the sandbox's installation, as for any run.
    ok(on(&sandbox, &url, &["approve", &gated, "switch"]), "approve in PostgreSQL");
    let out = on(&sandbox, &url, &["--quiet", "resume", &gated]);
    assert!(out.status.success(), "resume in PostgreSQL: {}", stderr(&out));
    let status: Value =
        serde_json::from_slice(&on(&sandbox, &url, &["status", &gated, "--json"]).stdout).expect("status");
    assert_eq!(status["state"], "succeeded", "{status}");
    // `count` ran once, in SQLite: its output came with the copy and it did not run again.
    let count =
        &status["steps"].as_array().unwrap().iter().find(|s| s["id"] == "count").unwrap()["instances"][0];
    assert_eq!(
        (&count["output"]["counter"], &count["attempts"]),
        (&Value::from(1), &Value::from(1)),
        "{count}"
    );

    // The run changed in PostgreSQL since it was copied: copying SQLite's again is refused whole.
    let out = on(&sandbox, &sqlite, &["journal", "copy", "--to", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let refusal = stderr(&out);
    assert!(refusal.contains(&format!("run {gated} (its run row, step instances")), "{refusal}");
    assert!(refusal.contains("holds runs of the source in another state"), "{refusal}");
    assert!(refusal.contains("nothing was copied"), "{refusal}");
    assert!(!refusal.contains(&done.to_string()), "only the run that differs is named: {refusal}");

    // PostgreSQL back to SQLite, for an archive: it reads as PostgreSQL does.
    let archive = sandbox.path().join("archive.db").display().to_string();
    let back = copy_json(&sandbox, &url, &archive);
    assert_eq!(back["copied"], serde_json::json!([done, gated]), "{back}");
    for run in [&done, &gated] {
        assert_eq!(views(&sandbox, &archive, run), views(&sandbox, &url, run), "{run} in the archive");
    }
}

#[test]
fn a_run_being_driven_stops_the_copy_before_it_creates_anything() {
    let sandbox = sqlite_sandbox();
    sandbox.install(&[wasm::FIXTURE]);
    let mut held = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut held.child);
    let pid = held.child.id();
    let destination = sandbox.path().join("copy.db");
    let to = destination.display().to_string();

    let out = sandbox.run(&["journal", "copy", "--to", &to]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let refusal = stderr(&out);
    assert!(refusal.contains(&format!("run {run} is driven by process {pid} of ")), "{refusal}");
    assert!(refusal.contains("nothing was copied"), "{refusal}");
    assert!(!destination.exists(), "a refused copy created {to}");

    // Once the driver finished, the copy goes ahead.
    std::fs::write(&held.release, "").expect("release the step");
    let exit = held.child.wait().expect("the driver ends");
    assert!(exit.success(), "the held run ends well: {exit}");
    let out = sandbox.run(&["--json", "journal", "copy", "--to", &to]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(summary["copied"], serde_json::json!([run]), "{summary}");
    let state = |db: &str| {
        serde_json::from_slice::<Value>(&sandbox.run(&["--db", db, "status", &run, "--json"]).stdout)
            .expect("status")["state"]
            .clone()
    };
    assert_eq!(state(&to), "succeeded");
    assert_eq!(state(&sandbox.db_path().display().to_string()), "succeeded");

    // The same journal as the destination is a mistake, said so.
    let out = sandbox.run(&["journal", "copy", "--to", &sandbox.db_path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_plugin_component_that_does_not_match_its_digest_stops_the_copy_before_any_run() {
    let sandbox = sqlite_sandbox();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", INVENTORY);
    let wf = sandbox.write("done.toml", DONE);
    ok(sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]), "run");
    rusqlite::Connection::open(sandbox.db_path())
        .expect("open the journal")
        .execute("UPDATE plugin_components SET bytes = CAST('not the plugin' AS BLOB)", [])
        .expect("scribble on the journal's component");
    let to = sandbox.path().join("copy.db").display().to_string();
    let out = sandbox.run(&["journal", "copy", "--to", &to]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let refusal = stderr(&out);
    assert!(refusal.contains("fixture-plugin-for-tests 1.0.0 stored under sha256 "), "{refusal}");
    assert!(refusal.contains("does not match its digest"), "{refusal}");
    let runs = ok(on(&sandbox, &to, &["runs", "--json"]), "runs in the destination");
    assert_eq!(stdout(&runs).trim(), "[]");
}
