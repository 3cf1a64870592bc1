//! Targets through the real binary: the inventory file, grants enforced and journaled, secrets
//! kept out of everything Drover writes, limits across a fan-out over many servers, and a
//! workflow over SSH against a real `sshd` on 127.0.0.1.

use std::collections::BTreeMap;

use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect()
}

#[test]
fn inventory_problems_are_reported_with_positions_and_long_windows_names_warn() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let wf = sandbox.write(
        "wf.toml",
        "name = \"w\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"fixture-plugin-for-tests\"\nfor-each = \"dr\"\nwith = { behave = \"ok\" }\n",
    );
    let bad = sandbox.write(
        "bad.toml",
        "[sites.dr]\n[servers.DRBTS01]\nsite = \"dr\"\ntransport = \"winrm\"\n[groups]\nweb = [\"DRBTS09\"]\n",
    );
    let out = sandbox.run(&["validate", &wf, "--inventory", &bad]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "error: {bad}:4:13: server `DRBTS01`: unknown transport `winrm` (use `local`, `ssh` or `command`)\n\
             {bad}:6:8: group `web`: `DRBTS09` is not a server of this inventory"
        )
    );
    let long = sandbox.write(
        "long.toml",
        "[sites.dr]\n[servers.BIZTALK-DR-APP-SERVER1]\nsite = \"dr\"\ntransport = \"local\"\n",
    );
    let out = sandbox.run(&["validate", &wf, "--inventory", &long]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "warning: {long}:2:10: server `BIZTALK-DR-APP-SERVER1`: the name has 22 characters; Windows computer names longer than 15 break BizTalk configuration"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ungranted_targets_programs_and_secrets_are_refused_and_journaled() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write(
        "inventory.toml",
        "[servers.app1]\ntransport = \"local\"\n[servers.sql1]\ntransport = \"local\"\n",
    );
    let wf = sandbox.write(
        "wf.toml",
        r#"
name = "refusals"
version = "1.0.0"
[[steps]]
id = "program"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
grants = { targets = ["app1"], programs = ["sh"] }
with = { behave = "exec", target = "app1", program = "rm", args = ["-rf", "/tmp/x"] }
[[steps]]
id = "target"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
grants = { targets = ["app1"], programs = ["echo"] }
with = { behave = "exec", target = "sql1", program = "echo" }
[[steps]]
id = "secret"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
grants = { secrets = ["other"] }
with = { behave = "secret", name = "sql-admin" }
"#,
    );
    let out = sandbox
        .drover()
        .args(["run", &wf, "--inventory", &inv])
        .env("DROVER_SECRET_SQL_ADMIN", "pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    let refused: BTreeMap<String, Value> = events(&sandbox, &run)
        .into_iter()
        .filter(|e| e["kind"] == "refused")
        .map(|e| (e["step_key"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert_eq!(refused["program"]["missing"], "program");
    assert_eq!(refused["program"]["name"], "rm");
    assert_eq!(refused["target"]["missing"], "target");
    assert_eq!(refused["target"]["name"], "sql1");
    assert_eq!(refused["secret"]["missing"], "secret");
    assert_eq!(refused["secret"]["name"], "sql-admin");
    for (step, data) in &refused {
        assert_eq!(data["attempt"], 1, "{step}");
        assert!(data["message"].as_str().unwrap().contains("is not granted to this step"), "{step}: {data}");
    }
    let status = sandbox.status(&run);
    for step in status["steps"].as_array().unwrap() {
        assert_eq!(step["instances"][0]["state"], "failed", "{step}");
    }
}

#[test]
fn a_secret_leaked_every_way_is_found_nowhere_drover_writes() {
    use std::os::unix::fs::PermissionsExt;
    const VALUE: &str = "hunter2-Zq8xK";
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let secrets = sandbox.write("secrets.toml", &format!("sso-master = \"{VALUE}\"\n"));
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    let received = sandbox.path().join("received.txt");
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            r#"
name = "leaky"
version = "1.0.0"
[[steps]]
id = "leak"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], programs = ["sh"], secrets = ["sso-master"] }}
with = {{ behave = "secret", name = "sso-master", target = "here", file = "{}" }}
"#,
            received.display()
        ),
    );
    let out = sandbox.run(&["--secrets", &secrets, "-vv", "run", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read_to_string(&received).unwrap(), VALUE, "the target received the real value");
    let run = sandbox.last_run();
    let mut seen = vec![("run stdout", stdout(&out)), ("run stderr (-vv logs)", stderr(&out))];
    for args in [
        vec!["events", &run, "--ndjson"],
        vec!["status", &run, "--json"],
        vec!["status", &run],
        vec!["report", &run],
        vec!["report", &run, "--json"],
    ] {
        let out = sandbox.run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        seen.push(("drover output", stdout(&out)));
    }
    let report = stdout(&sandbox.run(&["report", &run]));
    assert!(
        report.contains("used [redacted sso-master]"),
        "the report shows the redacted summary:\n{report}"
    );
    // The journal holds what the plugin emitted, redacted.
    let events = events(&sandbox, &run);
    let logged = events.iter().find(|e| e["kind"] == "attempt-succeeded").expect("the attempt's event");
    assert!(logged.to_string().contains("the secret is [redacted sso-master]"), "{logged}");
    let call = events.iter().find(|e| e["kind"] == "target-call").expect("the exec was journaled");
    assert!(call["data"]["args"].to_string().contains("[redacted sso-master]"), "{call}");
    for file in std::fs::read_dir(sandbox.path()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "db" || e == "db-wal") {
            seen.push((
                "database file",
                String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
            ));
        }
    }
    assert!(seen.iter().any(|(what, _)| *what == "database file"), "the journal was searched");
    for (what, text) in &seen {
        assert!(!text.contains(VALUE), "the secret is in the {what}:\n{text}");
    }
}

#[test]
fn a_fan_out_over_50_servers_keeps_to_the_per_target_and_run_limits() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let mut inventory = String::new();
    for i in 0..50 {
        inventory.push_str(&format!("[servers.srv{i:02}]\ntransport = \"local\"\nos = \"linux\"\n"));
    }
    inventory.push_str(&format!(
        "[groups]\nall = [{}]\n",
        (0..50).map(|i| format!("\"srv{i:02}\"")).collect::<Vec<_>>().join(", ")
    ));
    let inv = sandbox.write("inventory.toml", &inventory);
    let effects = sandbox.path().join("effects.log");
    // Two steps over the same 50 servers, free to run side by side, each limited to one
    // instance per server. `a` is slow and may hold only 4 of the 8 run slots, so `b`, quick,
    // keeps reaching servers `a` is still busy on.
    let step = |id: &str, limit: &str, pause: u32| {
        format!(
            "[[steps]]\nid = \"{id}\"\nplugin = \"fixture-plugin-for-tests\"\nfor-each = \"all\"\n\
             concurrency = {{ per-target = 1{limit} }}\ngrants = {{ programs = [\"sh\"] }}\n\
             with = {{ behave = \"effect\", file = \"{}\", pause-ms = {pause} }}\n",
            effects.display()
        )
    };
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            "name = \"fan\"\nversion = \"1.0.0\"\n[limits]\nconcurrency = 8\n{}{}",
            step("a", ", step = 4", 150),
            step("b", "", 10)
        ),
    );
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    // (time, +1 start / -1 end, target), ends first at equal times.
    let mut changes: Vec<(i64, i32, String)> = Vec::new();
    for e in events(&sandbox, &run) {
        let delta = match e["kind"].as_str().unwrap() {
            "attempt-started" => 1,
            "attempt-succeeded" | "attempt-failed" => -1,
            _ => continue,
        };
        let key = e["step_key"].as_str().unwrap();
        let target = key[key.find('[').unwrap() + 1..key.len() - 1].to_string();
        changes.push((e["at"].as_i64().unwrap(), delta, target));
    }
    assert_eq!(changes.len(), 200, "100 attempts started and ended");
    changes.sort_by_key(|(at, delta, _)| (*at, *delta));
    let (mut running, mut most) = (0, 0);
    let mut per_target: BTreeMap<String, i32> = BTreeMap::new();
    let mut most_per_target = 0;
    for (_, delta, target) in &changes {
        running += delta;
        most = most.max(running);
        let n = per_target.entry(target.clone()).or_default();
        *n += delta;
        most_per_target = most_per_target.max(*n);
    }
    assert!(most <= 8, "{most} attempts ran at once; the run limit is 8");
    assert_eq!(most, 8, "the run limit was reached (else the test proves little)");
    assert_eq!(most_per_target, 1, "one attempt per server at a time");
}

#[test]
fn a_workflow_runs_programs_and_moves_files_over_ssh_and_classifies_ssh_failures() {
    use drover_tests::sshd::Sshd;
    let sshd = Sshd::start();
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = |name: &str, port: u16, key: &std::path::Path| {
        format!(
            "[servers.{name}]\ntransport = \"ssh\"\nos = \"linux\"\n\
             ssh = {{ host = \"127.0.0.1\", port = {port}, user = \"{}\", identity-file = \"{}\", known-hosts = \"{}\", connect-timeout = \"5s\" }}\n",
            sshd.user(),
            key.display(),
            sshd.known_hosts().display()
        )
    };
    let inv = sandbox.write(
        "inventory.toml",
        &format!(
            "{}{}{}",
            server("box", sshd.port(), &sshd.client_key()),
            server("down", closed_port, &sshd.client_key()),
            server("stranger", sshd.port(), &sshd.wrong_key())
        ),
    );
    let remote = sshd.dir().join("remote dir");
    std::fs::create_dir_all(&remote).unwrap();
    let file = remote.join("BTSConfig.xml");
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            r#"
name = "over-ssh"
version = "1.0.0"
[[steps]]
id = "exec"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["box"], programs = ["sh"] }}
with = {{ behave = "exec", target = "box", program = "sh", args = ["-c", "echo \"$1 on $(hostname)\"; exit 3", "sh", "it's a word"] }}
[[steps]]
id = "files"
plugin = "fixture-plugin-for-tests"
needs = ["exec"]
grants = {{ targets = ["box"] }}
with = {{ behave = "write-file", target = "box", path = "{}", contents = "<Configuration>\n</Configuration>\n" }}
[[steps]]
id = "unreachable"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
grants = {{ targets = ["down"], programs = ["true"] }}
with = {{ behave = "exec", target = "down", program = "true" }}
[[steps]]
id = "wrong-key"
plugin = "fixture-plugin-for-tests"
on-failure = "continue"
grants = {{ targets = ["stranger"], programs = ["true"] }}
with = {{ behave = "exec", target = "stranger", program = "true" }}
"#,
            file.display()
        ),
    );
    let out = sandbox.run(&["run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(1), "two steps fail: {}{}", stdout(&out), stderr(&out));
    let run = sandbox.last_run();
    let status = sandbox.status(&run);
    let instance = |key: &str| {
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["instances"].as_array().unwrap().clone())
            .find(|i| i["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {status:#}"))
    };
    let exec = instance("exec");
    assert_eq!(exec["state"], "succeeded", "{exec:#}\n{}", sshd.log());
    assert_eq!(exec["output"]["exit"], 3);
    assert!(exec["output"]["stdout"].as_str().unwrap().starts_with("it's a word on "), "{exec:#}");
    let files = instance("files");
    assert_eq!(files["state"], "succeeded", "{files:#}");
    assert_eq!(files["output"]["read_back"], "<Configuration>\n</Configuration>\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "<Configuration>\n</Configuration>\n");
    // An unreachable port: retryable, with ssh's own words; a key the server refuses: permanent.
    let failures: BTreeMap<String, Value> = events(&sandbox, &run)
        .into_iter()
        .filter(|e| e["kind"] == "attempt-failed")
        .map(|e| (e["step_key"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    let down = failures["unreachable"]["error"].as_str().unwrap();
    assert!(down.contains("(Retryable)") && down.contains("Connection refused"), "{down}");
    let stranger = failures["wrong-key"]["error"].as_str().unwrap();
    assert!(stranger.contains("(Permanent)") && stranger.contains("Permission denied"), "{stranger}");
    // Every call over SSH is in the journal.
    let calls: Vec<Value> =
        events(&sandbox, &run).into_iter().filter(|e| e["kind"] == "target-call").collect();
    let kinds: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c["step_key"].as_str().unwrap(), c["data"]["call"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("exec", "exec")), "{kinds:?}");
    assert!(kinds.contains(&("files", "write-file")) && kinds.contains(&("files", "read-file")), "{kinds:?}");
    let exec_call = calls.iter().find(|c| c["step_key"] == "exec").unwrap();
    assert_eq!(exec_call["data"]["target"], "box");
    assert_eq!(exec_call["data"]["exit_code"], 3);
}
