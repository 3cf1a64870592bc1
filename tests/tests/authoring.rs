//! `docs/plugin-authoring.md` works as written: every command in its `console` blocks runs, in
//! order, in an empty folder, and the plugin it creates ends up installed and doing its job.

use drover_tests::{drover_bin, workspace_root};

/// The guide as shell commands, in order: the `$ ` lines of its `console` blocks, and the
/// blocks after a `<!-- file: NAME -->` note written to NAME.
fn guide_commands() -> Vec<String> {
    let guide =
        std::fs::read_to_string(workspace_root().join("docs/plugin-authoring.md")).expect("the guide exists");
    let mut commands = Vec::new();
    let mut in_console = false;
    let mut file: Option<(String, Vec<String>, bool)> = None;
    for line in guide.lines().map(str::trim_end) {
        if let Some(name) = line.strip_prefix("<!-- file: ").and_then(|l| l.strip_suffix(" -->")) {
            file = Some((name.to_string(), Vec::new(), false));
            continue;
        }
        if let Some((name, body, started)) = &mut file {
            if !*started && line.starts_with("```") {
                *started = true;
            } else if *started && line == "```" {
                commands.push(format!("cat > {name} <<'GUIDE_EOF'\n{}\nGUIDE_EOF", body.join("\n")));
                file = None;
            } else if *started {
                body.push(line.to_string());
            }
            continue;
        }
        match line {
            "```console" => in_console = true,
            "```" => in_console = false,
            l if in_console => {
                if let Some(command) = l.strip_prefix("$ ") {
                    commands.push(command.to_string());
                }
            }
            _ => {}
        }
    }
    commands
}

#[test]
fn the_plugin_authoring_guide_runs_as_written() {
    let commands = guide_commands();
    assert!(commands.len() >= 9, "the guide lost its commands: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let bin_dir = drover_bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let script = format!(
        "set -euo pipefail\n{}",
        commands
            .iter()
            .map(|c| format!(
                "echo \"+ {}\"\n{c}\n",
                c.lines().next().unwrap_or_default().replace('"', "\\\"")
            ))
            .collect::<String>()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("DROVER_HOME", home.path())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the guide's commands failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("installed ensure-line 0.1.0 (idempotent, sha256 "), "{stdout}");
    assert!(stdout.contains("would change: would add the line to motd.txt"), "{stdout}");
    assert!(stdout.contains("changed: added the line to motd.txt"), "{stdout}");
    assert!(stdout.contains("no change: motd.txt already has the line"), "{stdout}");
    assert!(stdout.contains("test result: ok. 2 passed"), "the scaffold's own tests ran: {stdout}");
    assert!(stdout.contains("standby.toml: valid workflow standby-banner 1.0.0 with 1 steps"), "{stdout}");
    assert!(stdout.contains("succeeded\n"), "the workflow ran: {stdout}");
    let runs = stdout
        .lines()
        .filter(|l| l.starts_with("run_") && l.contains("succeeded   standby-banner 1.0.0"))
        .count();
    assert_eq!(runs, 1, "`drover runs` lists the run: {stdout}");
    let motd = std::fs::read_to_string(dir.path().join("ensure-line/motd.txt")).unwrap();
    assert_eq!(motd, "DR site: standby\n");
}
