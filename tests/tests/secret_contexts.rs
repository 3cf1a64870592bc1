//! Secret references filled for their context, through the real binaries: passwords that break
//! out of a PowerShell literal (`'`, `"`, `$(…)`) or an XML CDATA section (`]]>`, `<`) reach the
//! lab exactly as they are, and no target command line carries one; a value XML cannot hold fails
//! the join with a message naming the secret and the context; a reference in a command line is
//! refused before anything runs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use drover_tests::lab::LabRun;
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;
use sha2::Digest;

const DR: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

/// Breaks out of `'…'` in PowerShell (and would run a command inside `"…"`).
const HOST_PASSWORD: &str = r#"Bts'Pa55"$(Remove-Item C:\ -Recurse)`n"#;
/// Breaks out of `<![CDATA[…]]>` and of element text.
const SSO_PASSWORD: &str = "Sso]]><Pa55&amp;</Password>\"'";
/// Line breaks and tabs: an XML reader normalises them unless they are escaped.
const RULES_PASSWORD: &str = "Bre\tPa55\r\n]]>";

fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The lab's inventory with every server's command prefix wrapped by `/bin/sh`, which appends
/// the whole command line of every target process (NUL-separated words, one record a line) to
/// `log` before running it: what any user of the server could read in its process list.
fn logging_inventory(lab: &LabRun, log: &Path) -> String {
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    let mut inventory: toml::Table = toml::from_str(&text).unwrap();
    let script = format!(r#"printf '%s\0' "$@" >> '{0}'; printf '\n' >> '{0}'; exec "$@""#, log.display());
    for (_, server) in inventory["servers"].as_table_mut().unwrap().iter_mut() {
        let prefix = server["command"].as_array().unwrap().clone();
        let mut wrapped: Vec<toml::Value> =
            ["/bin/sh", "-c", &script, "sh"].map(|w| toml::Value::String(w.into())).to_vec();
        wrapped.extend(prefix);
        server["command"] = toml::Value::Array(wrapped);
    }
    let path = lab.sandbox.path().join("logging-inventory.toml");
    std::fs::write(&path, toml::to_string(&inventory).unwrap()).unwrap();
    path.display().to_string()
}

/// `drover run` of the lab's workflow through `inventory` with these three passwords (`host` for
/// every host's secret).
fn run_with(lab: &LabRun, inventory: &str, host: &str, sso: &str, rules: &str) -> std::process::Output {
    lab.drover(&["--quiet", "run", &lab.workflow, "--inventory", inventory])
        .env("DROVER_SECRET_BTS_HOST_RECEIVEHOST", host)
        .env("DROVER_SECRET_BTS_HOST_SENDHOST", host)
        .env("DROVER_SECRET_BTS_HOST_PROCESSINGHOST", host)
        .env("DROVER_SECRET_BTS_HOST_BIZTALKSERVERISOLATEDHOST", host)
        .env("DROVER_SECRET_ENTSSO_PASSWORD", sso)
        .env("DROVER_SECRET_RULES_ENGINE_PASSWORD", rules)
        .output()
        .unwrap()
}

fn service<'a>(lab: &'a Value, server: &str, name: &str) -> &'a Value {
    lab["servers"][server]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{server} has no service {name}"))
}

#[test]
fn passwords_that_break_out_of_their_quoting_arrive_exactly_and_on_no_command_line() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let log = lab.sandbox.path().join("command-lines.log");
    let inventory = logging_inventory(&lab, &log);
    let out = run_with(&lab, &inventory, HOST_PASSWORD, SSO_PASSWORD, RULES_PASSWORD);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let state = lab.state();

    // The host instances were created with exactly the host password.
    let created: Vec<&Value> = state["group"]["host-instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["server"].as_str().unwrap().starts_with("DR"))
        .collect();
    assert_eq!(created.len(), 5, "{created:#?}");
    for instance in created {
        assert_eq!(instance["password-sha256"], sha256(HOST_PASSWORD), "{instance}");
        if instance["host"] == "BizTalkServerIsolatedHost" {
            continue; // no Windows service
        }
        let server = instance["server"].as_str().unwrap();
        let name = format!("BTSSvc${}", instance["host"].as_str().unwrap());
        assert_eq!(service(&state, server, &name)["password-sha256"], sha256(HOST_PASSWORD));
    }
    // Every DR server joined with exactly the SSO and rules engine passwords.
    for server in DR {
        assert_eq!(service(&state, server, "ENTSSO")["password-sha256"], sha256(SSO_PASSWORD), "{server}");
        assert_eq!(
            service(&state, server, "RuleEngineUpdateService")["password-sha256"],
            sha256(RULES_PASSWORD),
            "{server}"
        );
    }
    assert_eq!(state["joins"], serde_json::json!(DR), "each DR server joined once");

    // No target process had a password, or a reference to one, on its command line.
    let lines = String::from_utf8(std::fs::read(&log).unwrap()).unwrap();
    let creations = lines.lines().filter(|l| l.contains("MSBTS_HostInstance\").CreateInstance()")).count();
    assert_eq!(creations, 5, "the creation scripts went through the wrapper:\n{lines}");
    for (name, password) in [("host", HOST_PASSWORD), ("SSO", SSO_PASSWORD), ("rules engine", RULES_PASSWORD)]
    {
        assert!(!lines.contains(password), "the {name} password is on a command line");
    }
    assert!(!lines.contains("@@secret:"), "a secret reference is on a command line:\n{lines}");
}

#[test]
fn a_password_xml_cannot_hold_fails_the_join_naming_the_secret_not_the_value() {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let unholdable = "Sso\u{1}Pa55";
    let out = run_with(&lab, &lab.inventory, "Bts-Pa55", unholdable, "Bre-Pa55");
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(&out), stderr(&out));
    let run = lab.sandbox.last_run();
    let status = lab.sandbox.status(&run);
    let join = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["instances"].as_array().unwrap().clone())
        .find(|i| i["key"] == "join[DRBTS01]")
        .unwrap();
    assert_eq!(join["state"], "failed", "{join:#}");
    let why = join["why"].as_str().unwrap();
    assert!(
        why.contains(
            "secret entsso-password cannot be filled in the xml context: its value holds a character XML 1.0 cannot represent"
        ),
        "{why}"
    );
    assert!(!status.to_string().contains("Sso\\u0001Pa55"), "the value is not shown");
    let state = lab.state();
    assert_eq!(state["joins"], serde_json::json!([]), "no server joined with a mangled password");
    let files = state["servers"]["DRBTS01"]["files"].to_string();
    assert!(!files.contains(".xml"), "nothing was written: {files}");
}

#[test]
fn a_secret_reference_in_a_command_line_is_refused_and_nothing_runs() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    let ran = sandbox.path().join("ran.txt");
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            r#"
name = "argv"
version = "1.0.0"
[[steps]]
id = "leak"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], programs = ["sh"], secrets = ["sql-admin"] }}
with = {{ behave = "exec", target = "here", program = "sh", args = ["-c", "echo \"$1\" > '{}'", "sh", "@@secret:sql-admin@@"] }}
"#,
            ran.display()
        ),
    );
    let out = sandbox
        .drover()
        .args(["run", &wf, "--inventory", &inv])
        .env("DROVER_SECRET_SQL_ADMIN", "pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(!ran.exists(), "the program ran");
    let status = sandbox.status(&sandbox.last_run());
    let why = status["steps"][0]["instances"][0]["why"].as_str().unwrap();
    assert!(
        why.contains(
            "exec sh on here: the command line references secret sql-admin; other users of the target can read command lines, so pass secrets in stdin or a file"
        ),
        "{why}"
    );
}

#[test]
fn stdin_and_files_take_references_escaped_for_their_context() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let value = "a]]>b<c&d\"e'f";
    let secrets = sandbox.write("secrets.toml", &format!("pw = {}\n", toml::Value::String(value.into())));
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    let xml = sandbox.path().join("config.xml");
    let piped = sandbox.path().join("piped.txt");
    let wf = sandbox.write(
        "wf.toml",
        &format!(
            r#"
name = "contexts"
version = "1.0.0"
[[steps]]
id = "xml"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], secrets = ["pw"] }}
with = {{ behave = "write-file", target = "here", path = '{}', contents = "<P a=\"@@secret:pw:xml@@\">@@secret:pw:xml@@</P>" }}
[[steps]]
id = "stdin"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], programs = ["sh"], secrets = ["pw"] }}
with = {{ behave = "exec", target = "here", program = "sh", args = ["-c", "cat > '{}'"], stdin = "@@secret:pw@@" }}
"#,
            xml.display(),
            piped.display()
        ),
    );
    let out = sandbox.run(&["--secrets", &secrets, "run", &wf, "--inventory", &inv]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let escaped = "a]]&gt;b&lt;c&amp;d&quot;e&apos;f";
    assert_eq!(std::fs::read_to_string(&xml).unwrap(), format!("<P a=\"{escaped}\">{escaped}</P>"));
    assert_eq!(std::fs::read_to_string(&piped).unwrap(), value, "stdin takes the value as it is");

    // An unknown context is an error, not text sent as it is.
    let wf = sandbox.write(
        "unknown.toml",
        &format!(
            r#"
name = "unknown-context"
version = "1.0.0"
[[steps]]
id = "json"
plugin = "fixture-plugin-for-tests"
grants = {{ targets = ["here"], secrets = ["pw"] }}
with = {{ behave = "write-file", target = "here", path = '{}', contents = "@@secret:pw:json@@" }}
"#,
            sandbox.path().join("unknown.txt").display()
        ),
    );
    let out = sandbox.run(&["--secrets", &secrets, "run", &wf, "--inventory", &inv]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let status = sandbox.status(&sandbox.last_run());
    let why = status["steps"][0]["instances"][0]["why"].as_str().unwrap();
    assert!(
        why.contains("the reference to secret pw names an unknown context \"json\" (known: xml)"),
        "{why}"
    );
    assert!(!sandbox.path().join("unknown.txt").exists());
}
