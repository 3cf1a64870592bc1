//! `drover plugin …` end to end: the real binary, real plugin components, a throwaway home.

use std::path::{Path, PathBuf};

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

fn json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = sandbox.run(&all);
    assert!(out.status.success(), "drover {args:?} failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("--json prints JSON")
}

fn installed(sandbox: &Sandbox) -> Vec<String> {
    json(sandbox, &["plugin", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            format!("{}@{}", p["info"]["name"].as_str().unwrap(), p["info"]["version"].as_str().unwrap())
        })
        .collect()
}

/// Every file below `dir`, to prove a refused install left nothing behind.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            all.push(entry.path());
            all.extend(tree(&entry.path()));
        }
    }
    all.sort();
    all
}

#[test]
fn install_list_info_and_remove() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["plugin", "install", wasm::NOOP]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("installed noop 1.0.0 (read-only, sha256 "), "{}", stdout(&out));
    let again = sandbox.run(&["plugin", "install", wasm::NOOP]);
    assert!(stdout(&again).starts_with("already installed noop 1.0.0"), "{}", stdout(&again));

    let list = stdout(&sandbox.run(&["plugin", "list"]));
    assert!(list.lines().next().unwrap().starts_with("NAME"), "{list}");
    assert!(list.contains("noop  1.0.0       read-only"), "{list}");

    let info = json(&sandbox, &["plugin", "info", "noop"]);
    assert_eq!(info["info"]["effect"], "read-only");
    assert_eq!(info["info"]["input_schema"]["properties"]["label"]["type"][0], "string", "{info:#}");
    assert!(Path::new(info["path"].as_str().unwrap()).exists());
    let text = stdout(&sandbox.run(&["plugin", "info", "noop"]));
    assert!(
        text.starts_with("noop 1.0.0\n  does nothing; echoes its label\neffect:       read-only\n"),
        "{text}"
    );

    let out = sandbox.run(&["plugin", "remove", "noop"]);
    assert_eq!(stdout(&out), "removed noop 1.0.0\n");
    assert!(installed(&sandbox).is_empty());
    let out = sandbox.run(&["plugin", "info", "noop"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "error: plugin noop is not installed (no version of it is); install it with `drover plugin install <file.wasm>`\n"
    );
}

/// A component of another world: it exports `run` (like a command), not `describe`.
const OTHER_WORLD: &str = r#"(component
  (core module $m (func (export "run")))
  (core instance $i (instantiate $m))
  (func $run (canon lift (core func $i "run")))
  (export "run" (func $run)))"#;

#[test]
fn refused_installs_name_the_cause_and_leave_the_installed_set_unchanged() {
    let sandbox = Sandbox::new();
    assert!(sandbox.run(&["plugin", "install", wasm::NOOP]).status.success());
    let before = tree(&sandbox.path().join("plugins"));
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cases = [
        (
            write("text.wasm", b"not wasm"),
            "not a WebAssembly component: the file does not start with the wasm magic bytes",
        ),
        (
            write("module.wasm", &wat::parse_str("(module)").unwrap()),
            "a core WebAssembly module, not a component",
        ),
        (
            write("other-world.wasm", &wat::parse_str(OTHER_WORLD).unwrap()),
            "not a Drover step plugin (world drover:plugin/step@0.1.0)",
        ),
        (wasm::INCOMPLETE.to_string(), "describe is incomplete or invalid:\n  - name is empty\n"),
    ];
    for (file, expected) in &cases {
        let out = sandbox.run(&["plugin", "install", file]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with(&format!("error: cannot install {file}: ")), "{err}");
        assert!(err.contains(expected), "{expected:?} not in {err}");
        assert_eq!(tree(&sandbox.path().join("plugins")), before, "{file} changed the installed set");
    }
    assert_eq!(installed(&sandbox), ["noop@1.0.0"]);
}

#[test]
fn a_version_never_changes_its_bytes() {
    let sandbox = Sandbox::new();
    assert!(sandbox.run(&["plugin", "install", wasm::NOOP]).status.success());
    // The same component with a custom section appended: other bytes, same name and version.
    let mut bytes = std::fs::read(wasm::NOOP).unwrap();
    bytes.extend_from_slice(&[0, 6, 5, b'e', b'x', b't', b'r', b'a']);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("noop-rebuilt.wasm");
    std::fs::write(&file, &bytes).unwrap();
    let out = sandbox.run(&["plugin", "install", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("noop 1.0.0 is already installed with sha256 "), "{err}");
    assert!(err.contains("a version never changes"), "{err}");
}

#[test]
fn versions_install_side_by_side_and_resolve_as_semver_says() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "plugin",
        "install",
        wasm::FIXTURE,
        wasm::FIXTURE_1_2_0,
        wasm::FIXTURE_1_2_5,
        wasm::FIXTURE_2_0_0,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = "fixture-plugin-for-tests";
    assert_eq!(
        installed(&sandbox),
        [format!("{name}@1.0.0"), format!("{name}@1.2.0"), format!("{name}@1.2.5"), format!("{name}@2.0.0")]
    );
    for (req, expected) in [
        ("", "2.0.0"),
        ("@^1", "1.2.5"),
        ("@~1.2", "1.2.5"),
        ("@=1.0.0", "1.0.0"),
        ("@>=1.1, <1.2.5", "1.2.0"),
    ] {
        let info = json(&sandbox, &["plugin", "info", &format!("{name}{req}")]);
        assert_eq!(info["info"]["version"], expected, "{name}{req}");
    }
    let out = sandbox.run(&["plugin", "info", &format!("{name}@~1.3")]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        format!(
            "error: no installed version of {name} matches ~1.3; installed: 1.0.0, 1.2.0, 1.2.5, 2.0.0\n"
        )
    );
    // A call runs the version the requirement picks.
    let run = json(&sandbox, &["plugin", "run", &format!("{name}@~1.2"), "--input", r#"{"behave":"ok"}"#]);
    assert_eq!(run["version"], "1.2.5");
    let out = sandbox.run(&["plugin", "remove", &format!("{name}@<2")]);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert_eq!(installed(&sandbox), [format!("{name}@2.0.0")]);
}

#[test]
fn plugin_run_prints_outcome_logs_evidence_and_target_calls() {
    let sandbox = Sandbox::new();
    assert!(sandbox.run(&["plugin", "install", wasm::FIXTURE]).status.success());
    let input = r#"{"behave":"exec","target":"local","program":"sh","args":["-c","echo checked"]}"#;
    let out =
        sandbox.run(&["plugin", "run", "fixture-plugin-for-tests", "--target", "local", "--input", input]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("fixture-plugin-for-tests 1.0.0 · apply · "), "{text}");
    assert!(text.contains("changed: ran it\n"), "{text}");
    assert!(
        text.contains("evidence:\n  fixture exec: sh -c \"echo checked\" (exit 0)\n    checked\n"),
        "{text}"
    );
    assert!(text.contains("target calls:\n  exec sh on local: exit 0, "), "{text}");

    let log = json(
        &sandbox,
        &["plugin", "run", "fixture-plugin-for-tests", "--input", r#"{"behave":"log","message":"hi"}"#],
    );
    assert_eq!(log["ok"], true);
    assert_eq!(log["logs"][0]["message"], "hi");
    assert_eq!(log["stdout"], "to stdout\n");
}

#[test]
fn plugin_run_of_a_failing_plugin_exits_1_with_the_cause() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "plugin",
        "run",
        wasm::FIXTURE,
        "--input",
        r#"{"behave":"endless-loop"}"#,
        "--timeout",
        "0.5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: plugin fixture-plugin-for-tests timed out after 0.5s and was stopped\n");
    let out = sandbox.run(&["plugin", "run", wasm::FIXTURE, "--input", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: --input is not JSON: "), "{}", stderr(&out));
    // Undeclared program: the author's loop grants only what the plugin declares.
    let input = r#"{"behave":"exec","target":"local","program":"rm","args":["-rf","/tmp/nothing"]}"#;
    let out = sandbox.run(&["plugin", "run", wasm::FIXTURE, "--target", "local", "--input", input]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("program rm is not granted to this step (granted programs: echo, sh)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_tampered_installed_plugin_is_refused() {
    let sandbox = Sandbox::new();
    assert!(sandbox.run(&["plugin", "install", wasm::NOOP]).status.success());
    let file = sandbox.path().join("plugins/noop/1.0.0/plugin.wasm");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0, 2, 1, b'x']);
    std::fs::write(&file, bytes).unwrap();
    let out = sandbox.run(&["plugin", "run", "noop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is damaged: its sha256 is "), "{}", stderr(&out));
}
