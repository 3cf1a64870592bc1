//! A run keeps the components of the plugins it pins in the journal, content-addressed, so a
//! process on a machine where the plugin was never installed (a worker at the other site) drives
//! it with the exact bytes pinned, and bytes that no longer match the pinned sha256 are never
//! loaded.
//!
//! Each test starts a run from one Drover home, where the fixture plugin is installed, and drives
//! it on from another home with no plugins, sharing only the journal.

use drover_tests::{Sandbox, stderr, stdout, wasm};

const WORKFLOW: &str = r#"
name = "carried"
version = "1.0.0"

[[steps]]
id = "first"
plugin = "fixture-plugin-for-tests"
grants = { programs = ["sh"] }
for-each = "all"
with = { behave = "effect", file = "EFFECTS" }

[[steps]]
id = "go"
approval = { prompt = "go on?" }
needs = ["first"]

[[steps]]
id = "second"
plugin = "fixture-plugin-for-tests"
grants = { programs = ["sh"] }
for-each = "all"
needs = ["go"]
with = { behave = "effect", file = "EFFECTS" }
"#;

/// Starts the run in a home with the plugin installed, up to its approval gate, and approves it.
/// Returns that home, a second home with no plugins on the same journal, the run and the
/// effects file.
fn started_elsewhere() -> (Sandbox, Sandbox, String, std::path::PathBuf) {
    let first = Sandbox::new();
    let journal = first.db_path();
    first.install(&[wasm::FIXTURE]);
    let effects = first.path().join("effects.log");
    let wf = first.write("carried.toml", &WORKFLOW.replace("EFFECTS", &effects.display().to_string()));
    let inv =
        first.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n[groups]\nall = [\"here\"]\n");
    let out = first.run(&["run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(4), "the run waits at its gate: {}", stderr(&out));
    let run = first.last_run();
    let out = first.run(&["approve", &run, "go"]);
    assert!(out.status.success(), "approve: {}", stderr(&out));
    let second = Sandbox::with_db(journal);
    let listed = second.run(&["plugin", "list"]);
    assert!(!stdout(&listed).contains("fixture-plugin-for-tests"), "{}", stdout(&listed));
    (first, second, run, effects)
}

#[test]
fn a_process_without_the_plugin_installed_drives_the_run_with_the_journals_copy() {
    let (_first, second, run, effects) = started_elsewhere();
    let out = second.run(&["resume", &run]);
    assert!(out.status.success(), "resume without the plugin installed: {}\n{}", stdout(&out), stderr(&out));
    assert_eq!(second.status(&run)["state"], "succeeded");
    let ran = std::fs::read_to_string(&effects).expect("the effects file");
    assert_eq!(ran.lines().collect::<Vec<_>>(), ["first[here] 1", "second[here] 1"]);
    // Nothing was installed in the second home: the copy was only loaded.
    let listed = second.run(&["plugin", "list"]);
    assert!(!stdout(&listed).contains("fixture-plugin-for-tests"), "{}", stdout(&listed));
}

#[test]
fn a_damaged_copy_in_the_journal_is_never_loaded() {
    let (first, second, run, effects) = started_elsewhere();
    let conn = rusqlite::Connection::open(first.db_path()).expect("open the journal");
    let changed = conn
        .execute("UPDATE plugin_components SET bytes = CAST('not the plugin' AS BLOB)", [])
        .expect("scribble on the journal's copy");
    assert_eq!(changed, 1, "the journal holds one copy of the fixture");
    drop(conn);
    let out = second.run(&["resume", &run]);
    assert!(!out.status.success(), "resumed with a damaged copy: {}", stdout(&out));
    let error = stderr(&out);
    assert!(
        error.contains("the journal's copy of it has sha256") && error.contains("was not loaded"),
        "{error}"
    );
    let ran = std::fs::read_to_string(&effects).expect("the effects file");
    assert_eq!(ran.lines().collect::<Vec<_>>(), ["first[here] 1"], "the second step ran");
    // The home where the plugin is installed still drives it with its own file.
    let out = first.run(&["resume", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
}
