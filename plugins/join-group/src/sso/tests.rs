//! The DR site's SSO server in waiting through the fake host: joined through Enterprise SSO
//! alone, the backup staged byte for byte, and the leftover of an interrupted attempt removed.

use biztalk_common::testing::{self, NOT_FOUND, join_input};
use serde_json::{Value, json};

use super::*;
use crate::JoinGroup;

type Recorder = testing::Recorder<JoinGroup>;

const SERVER: &str = "DRSSO01";
const SECRET_SERVER: &str = "PRDSSO01";
const BACKUP: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak";
const XML: &str = r"C:\Drover\sso-DRSSO01.xml";
const LOG: &str = r"C:\Drover\sso-DRSSO01.log";
/// Not text: the backup is binary, and must arrive unchanged.
const SECRET: &[u8] = b"ENTSSO master secret\x00\xff\xfe";

const SUCCESS_LOG: &str =
    "[2026-11-22 10:15:01:0000 Info Configuration Framework]Configuring feature: SSOServer,Engine\n";

fn recorder() -> Recorder {
    Recorder::new(SERVER, "Sso-Pa55")
        .map_host(|h| h.with_target(SECRET_SERVER).with_file(SECRET_SERVER, BACKUP, SECRET))
}

fn input() -> Value {
    let mut input = join_input();
    input["installed_features"] = json!(["SSOServer", "SSOAdmin"]);
    input["sso_server"] = json!({"secret_backup": {"server": SECRET_SERVER, "path": BACKUP}});
    input
}

/// Scripts the ENTSSO membership probe of [`SERVER`].
fn sso_probe(rec: &Recorder, joined: bool) {
    sso_probe_on(rec, SERVER, joined);
}

/// Scripts the ENTSSO membership probe of `server`: in the SSO system on `PRDSQL01/SSODB`, or in
/// none.
pub(crate) fn sso_probe_on(rec: &Recorder, server: &str, joined: bool) {
    let answer = |value: &str, data: &str| {
        ExecOutput::exited(
            0,
            format!(
                "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\ENTSSO\\SQL\n    {value}    REG_SZ    {data}\n\n"
            ),
        )
    };
    let args = |value: &str| reg::query_args(ENTSSO_SQL_KEY, value);
    let run = |value: &str, output: ExecOutput| {
        let args = args(value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rec.host.script_exec(server, reg::PROGRAM, &args, output);
    };
    if joined {
        run("Server", answer("Server", "PRDSQL01"));
        run("Database", answer("Database", "SSODB"));
    } else {
        run("Server", ExecOutput { exit_code: Some(1), stderr: NOT_FOUND.into(), ..Default::default() });
    }
}

#[test]
fn a_fresh_server_joins_sso_alone_and_holds_the_backup_byte_for_byte() {
    let rec = recorder();
    sso_probe(&rec, false);
    rec.host.script_exec_writing(
        SERVER,
        CONFIGURATION_EXE,
        &["/S", XML, "/L", LOG],
        ExecOutput::exited(0, ""),
        LOG,
        SUCCESS_LOG,
    );
    sso_probe(&rec, true);
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(outcome.changed);
    assert!(outcome.summary.contains("ready to be promoted at failover"), "{}", outcome.summary);
    assert_eq!(rec.host.file(SERVER, BACKUP).as_deref(), Some(SECRET), "the backup is staged unchanged");
    assert_eq!(rec.host.file(SERVER, XML), None, "the rendered configuration is removed");
    let written = rec.written.borrow();
    let (_, xml) = written.iter().find(|(path, _)| path == XML).expect("the configuration was written");
    assert!(xml.contains(r#"<Feature Name="SSOServer,Engine""#), "{xml}");
    assert!(!xml.contains(r#"Feature Name="WMI""#), "SSO alone, no group: {xml}");
    assert_eq!(outcome.output["secret_backup"]["staged_at"], BACKUP);
}

#[test]
fn a_joined_server_loses_the_leftover_of_an_interrupted_attempt_and_nothing_else_runs() {
    // Killed after Configuration.exe joined, before the file was removed: it holds the password.
    let rec = recorder()
        .map_host(|h| h.with_file(SERVER, XML, "<Configuration/>").with_file(SERVER, BACKUP, SECRET));
    sso_probe(&rec, true);
    let check = rec.call(Mode::Check, input()).unwrap();
    assert!(check.changed, "check says the leftover would go: {}", check.summary);
    assert!(
        check.summary.contains(&format!("remove the leftover configuration file {XML}")),
        "{}",
        check.summary
    );
    sso_probe(&rec, true);
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(rec.host.file(SERVER, XML), None, "the leftover is gone");
    assert!(!rec.ops().iter().any(|op| op.contains("Configuration.exe")), "{:?}", rec.ops());
}

#[test]
fn a_master_secret_out_of_reach_stops_the_dr_sso_server_naming_the_restore() {
    let rec = recorder();
    sso_probe(&rec, false);
    let log = "[10:15:01 Warning SSOServerCfg] Failed to retrieve master secrets. Verify that the master secret server name is correct and that it is available. Secret Server Name: PRDSSO01 Error Code: 0xC0002919, Could not load secrets from the registry of the master secret server.
[10:15:01 Error SSOServerCfg] 0xC0002A1F : Cannot perform encryption or decryption because the secret is not available from the master secret server. See the event log for related errors.
";
    rec.host.script_exec_writing(
        SERVER,
        CONFIGURATION_EXE,
        &["/S", XML, "/L", LOG],
        ExecOutput::exited(1, ""),
        LOG,
        log,
    );
    let StepError::Permanent(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(
        message.starts_with(
            "configuration of DRSSO01 failed: the Enterprise SSO master secret cannot be retrieved from the master secret server PRDSSO01"
        ),
        "{message}"
    );
    assert!(message.contains("ssoconfig -restoreSecret"), "{message}");
    assert_eq!(rec.host.file(SERVER, XML), None, "the rendered configuration is removed");
    assert_eq!(rec.host.file(SERVER, BACKUP), None, "nothing staged before the join");
}
