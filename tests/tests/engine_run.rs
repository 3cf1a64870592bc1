//! The durable engine through the real binary: approval gates across restarts, one driver per
//! run, and clear refusals of databases it must not touch.

use std::time::Duration;

use drover_tests::{HeldRun, Sandbox, stderr, stdout, wasm};

const EMPTY_INVENTORY: &str = "";

const GATE: &str = r#"
name = "gate"
version = "1.0.0"

[[steps]]
id = "before"
plugin = "noop@^1"

[[steps]]
id = "gate"
approval = { prompt = "Go on with the DR site?" }
needs = ["before"]

[[steps]]
id = "after"
plugin = "noop"
needs = ["gate"]
with = { label = "approved by {{ steps.gate.output.approved_by }}" }
"#;

#[test]
fn an_approval_gate_waits_across_a_restart_then_approve_lets_the_run_finish() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::NOOP]);
    let wf = sandbox.write("gate.toml", GATE);
    let inv = sandbox.write("inventory.toml", EMPTY_INVENTORY);

    let out = sandbox.run(&["run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "waits: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("gate: approval: Go on with the DR site?"), "{}", stdout(&out));
    let run = sandbox.last_run();

    // A new process finds the gate still closed.
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let status = stdout(&sandbox.run(&["status", &run]));
    assert!(status.contains("… gate (approval): waiting"), "{status}");
    assert!(status.contains(&format!("`drover approve {run} gate`")), "{status}");
    assert!(status.contains("○ after (noop): pending — waits for gate"), "{status}");

    let out = sandbox.run(&["approve", &run, "gate", "--comment", "change board said yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), format!("run {run} succeeded\n"));

    let status = sandbox.status(&run);
    assert_eq!(status["state"], "succeeded");
    let after = &status["steps"][2]["instances"][0];
    let user = status["steps"][1]["instances"][0]["output"]["approved_by"].as_str().unwrap().to_string();
    assert_eq!(after["output"]["label"], format!("approved by {user}"));
    let events = stdout(&sandbox.run(&["events", &run, "--ndjson"]));
    let approved: Vec<&str> = events.lines().filter(|l| l.contains("\"kind\":\"approved\"")).collect();
    assert_eq!(approved.len(), 1, "{events}");
    assert!(
        approved[0].contains("change board said yes")
            && approved[0].contains(&format!("\"actor\":\"{user}\"")),
        "{}",
        approved[0]
    );
}

#[test]
fn a_second_process_refuses_to_drive_a_run_that_is_being_driven() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let HeldRun { child: mut first, effects, release } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    let out = sandbox.run(&["resume", &run]);
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: run {run} is being driven by process {} of ", first.id())),
        "{err}"
    );
    std::fs::write(&release, "").unwrap();
    let status = first.wait().unwrap();
    assert!(status.success(), "the first process finished the run");
    assert_eq!(std::fs::read_to_string(&effects).unwrap().lines().count(), 1, "the step ran once");
}

#[test]
fn a_process_that_loses_its_lease_stops_driving_and_a_resume_finishes_the_run() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let HeldRun { child: mut first, effects, release } = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut first);
    // Another holder takes the lease over (as after a clock jump made it look expired).
    let db = rusqlite::Connection::open(sandbox.path().join("drover.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("UPDATE leases SET holder = 'someone-else', pid = 1 WHERE run_id = ?1", [&run]).unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains(&format!("run {run}: this process lost its lease")), "{}", stderr(&out));
    assert!(!effects.exists(), "the interrupted attempt was stopped before its effect");
    // The other holder goes away; a resume re-runs the interrupted (idempotent) attempt.
    db.execute("UPDATE leases SET expires_at = 0 WHERE run_id = ?1", [&run]).unwrap();
    std::fs::write(&release, "").unwrap();
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&effects).unwrap().lines().count(),
        1,
        "the step's effect happened once"
    );
}

/// A digest of the database file's bytes, and whether SQLite's side files exist.
fn snapshot(db: &std::path::Path) -> (u64, bool, bool) {
    use std::hash::{Hash, Hasher};
    let side = |ext: &str| {
        db.with_file_name(format!("{}-{ext}", db.file_name().unwrap().to_string_lossy())).exists()
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(db).unwrap().hash(&mut hasher);
    (hasher.finish(), side("wal"), side("shm"))
}

/// Commands that read the journal, and one that writes it.
const READERS_AND_A_WRITER: &[&[&str]] =
    &[&["runs"], &["status", "run_01kbs0pw9kx8vqa1jjzfb1f2fe"], &["resume", "--all"]];

fn refuses(sandbox: &Sandbox, db: &std::path::Path, commands: &[&[&str]], expected: &str) {
    let before = snapshot(db);
    for args in commands {
        let mut full = vec!["--db", db.to_str().unwrap()];
        full.extend(args.iter());
        let out = sandbox.run(&full);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {expected:?} not in {}", stderr(&out));
    }
    assert_eq!(snapshot(db), before, "the database was written to");
}

#[test]
fn a_read_only_database_is_refused_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let db = sandbox.path().join("ro.db");
    assert!(sandbox.run(&["--db", db.to_str().unwrap(), "resume", "--all"]).status.success());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let writers: &[&[&str]] = &[&["resume", "--all"], &["approve", "run_01kbs0pw9kx8vqa1jjzfb1f2fe", "gate"]];
    refuses(&sandbox, &db, writers, &format!("the database {} is read-only", db.display()));
    // Reading it is fine: an archived journal stays readable (store_faults.rs has more).
    let out = sandbox.run(&["--db", db.to_str().unwrap(), "runs"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_corrupt_database_is_refused_untouched() {
    let sandbox = Sandbox::new();
    let db = sandbox.path().join("garbage.db");
    std::fs::write(&db, b"this is not an sqlite database, just some text that is long enough".repeat(100))
        .unwrap();
    let expected = format!("the database {} is corrupt or not a Drover database", db.display());
    refuses(&sandbox, &db, READERS_AND_A_WRITER, &expected);
}

#[test]
fn a_database_of_a_newer_schema_is_refused_untouched() {
    let sandbox = Sandbox::new();
    let db = sandbox.path().join("newer.db");
    assert!(sandbox.run(&["--db", db.to_str().unwrap(), "resume", "--all"]).status.success());
    assert!(!snapshot(&db).1, "drover left its write-ahead log behind");
    // SQLite keeps user_version, the schema version, at byte 60 of the header, big-endian.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&db, bytes).unwrap();
    refuses(
        &sandbox,
        &db,
        READERS_AND_A_WRITER,
        &format!(
            "has schema version 99, newer than this drover understands ({})",
            drover_engine::store::SCHEMA_VERSION
        ),
    );
}

#[test]
fn only_a_named_approver_may_pass_a_gate_and_status_says_who() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let wf = sandbox.write(
        "gated.toml",
        r#"
name = "gated"
version = "1.0.0"
[[steps]]
id = "go"
approval = { prompt = "Switch to DR?", approvers = ["alice", "bob"] }
[[steps]]
id = "after"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
with = { behave = "ok" }
"#,
    );
    let inv = sandbox.write("inventory.toml", "");
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let run = sandbox.last_run();
    // `run` names the exact command for the gate it waits at.
    assert!(stdout(&out).contains(&format!("approve with `drover approve {run} go`")), "{}", stdout(&out));
    let status = stdout(&sandbox.run(&["status", &run]));
    assert!(
        status.contains(&format!("approval: Switch to DR? (by alice or bob) — `drover approve {run} go`")),
        "{status}"
    );
    let out = sandbox.drover().args(["approve", &run, "go"]).env("USER", "mallory").output().unwrap();
    assert_ne!(out.status.code(), Some(0), "mallory may not approve");
    assert!(stderr(&out).contains("only alice or bob may approve go; mallory may not"), "{}", stderr(&out));
    // Skipping a gate passes it too: the same approvers only.
    let out = sandbox
        .drover()
        .args(["skip", &run, "go", "--output", "{}"])
        .env("USER", "mallory")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "mallory may not skip the gate");
    assert!(stderr(&out).contains("only alice or bob may skip go; mallory may not"), "{}", stderr(&out));
    assert_eq!(sandbox.status(&run)["steps"][0]["instances"][0]["state"], "waiting");
    let out = sandbox
        .drover()
        .args(["approve", &run, "go", "--comment", "ok"])
        .env("USER", "bob")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sandbox.status(&run)["steps"][0]["instances"][0]["output"]["approved_by"], "bob");
}

/// A gate whose prompt reads a param and the output of the step it needs.
const DECLARE: &str = r#"
name = "declare"
version = "1.0.0"

[params.dr-site]
type = "string"
default = "Lisbon"

[[steps]]
id = "measure"
plugin = "noop@^1"
with = { label = "7 min 29 s" }

[[steps]]
id = "declare"
approval = { prompt = "Fail over to {{ params.dr_site }}? Data-loss window {{ steps.measure.output.label }}" }
needs = ["measure"]
"#;

#[test]
fn a_gate_shows_its_prompt_rendered_in_plan_run_status_approve_and_the_report() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::NOOP]);
    let wf = sandbox.write("declare.toml", DECLARE);
    let inv = sandbox.write("inventory.toml", EMPTY_INVENTORY);
    let rendered = "Fail over to Lisbon? Data-loss window 7 min 29 s";

    // A plan has no outputs: the prompt is shown as written, saying so.
    let out = sandbox.run(&["plan", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains(
            "declare: would wait: approval: Fail over to {{ params.dr_site }}? Data-loss window \
             {{ steps.measure.output.label }} (shown as written: the run renders it when it reaches the gate; \
             now `steps.measure` is undefined)"
        ),
        "{plan}"
    );
    // Params alone are known: the plan renders the prompt.
    let known = sandbox.write("known.toml", &DECLARE.replace("{{ steps.measure.output.label }}", "unknown"));
    let out = sandbox.run(&["plan", &known, "--inventory", &inv, "--param", "dr-site=Porto"]);
    assert!(
        stdout(&out)
            .contains("declare: would wait: approval: Fail over to Porto? Data-loss window unknown\n"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = sandbox.run(&["run", &wf, "--inventory", &inv, "--param", "dr-site=Lisbon"]);
    assert_eq!(out.status.code(), Some(4), "waits: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("declare: approval: {rendered}")), "{}", stdout(&out));
    let run = sandbox.last_run();
    let status = stdout(&sandbox.run(&["status", &run]));
    assert!(status.contains(&format!("approval: {rendered} — `drover approve {run} declare`")), "{status}");
    let events = stdout(&sandbox.run(&["events", &run, "--ndjson"]));
    assert!(events.contains(&format!("\"reason\":\"approval: {rendered}\"")), "{events}");

    let out = sandbox.run(&["approve", &run, "declare"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with(&format!("the gate asked: {rendered}\n")), "{}", stdout(&out));
    let out = sandbox.run(&["resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&sandbox.run(&["report", &run]));
    assert!(report.contains(rendered), "{report}");
    assert!(!report.contains("{{"), "the report shows the rendered prompt, not the template: {report}");
}

#[test]
fn validate_refuses_a_prompt_naming_a_step_the_gate_does_not_need() {
    let sandbox = Sandbox::new();
    let wf = sandbox.write("declare.toml", &DECLARE.replace("steps.measure", "steps.measur"));
    let out = sandbox.run(&["validate", &wf]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains(&format!("{wf}:16:23: step `declare` uses `steps.measur`, which is not a step")),
        "{}",
        stderr(&out)
    );
}
