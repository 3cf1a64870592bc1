//! `sso-secret` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use super::*;
use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::{Value, json};

const SSO: &str = "DRSSO01";
const BTS: &str = "DRBTS01";
const DIR: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On";
const BACKUP: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(SSO)
        .with_target(BTS)
        .with_context(Context { target: Some(SSO.into()), ..Context::for_test(Mode::Apply) })
}

fn input() -> Value {
    json!({ "sql_server": "DRSQL01", "backup_file": BACKUP, "group_server": BTS })
}

fn failed(stderr: &str) -> ExecOutput {
    ExecOutput { stderr: stderr.as_bytes().to_vec(), ..ExecOutput::exited(1, "") }
}

fn sso_sql(host: &FakeHost, server: &str) {
    host.script_exec(
        SSO,
        "reg",
        &["query", r"HKLM\SOFTWARE\Microsoft\ENTSSO\SQL", "/v", "Server"],
        ExecOutput::exited(
            0,
            format!("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\ENTSSO\\SQL\r\n    Server    REG_SZ    {server}\r\n\r\n"),
        ),
    );
}

fn set_db(host: &FakeHost) {
    host.script_exec(
        SSO,
        &format!(r"{DIR}\ssoconfig.exe"),
        &["-setDB", "DRSQL01", "SSODB"],
        ExecOutput::exited(0, "The operation completed successfully.\r\n"),
    );
}

fn display(host: &FakeHost, secret_server: &str) {
    host.script_exec(
        SSO,
        &format!(r"{DIR}\ssomanage.exe"),
        &["-displaydb"],
        ExecOutput::exited(
            0,
            format!(
                "Using SSO server on this computer\r\n\r\nSQL Server: DRSQL01\r\nSingle Sign-On database: SSODB\r\nSingle Sign-On Secret Server name: {secret_server}\r\nSingle Sign-On Administrators account: CONTOSO\\SSO Administrators\r\nSingle Sign-On Affiliate Administrators account: CONTOSO\\SSO Affiliate Administrators\r\n"
            ),
        ),
    );
}

fn ps(host: &FakeHost, server: &str, script: &str, output: ExecOutput) {
    let args = powershell::args(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.script_exec(server, "powershell.exe", &args, output);
}

fn group(host: &FakeHost, sso_server_name: &str) {
    ps(
        host,
        BTS,
        processing::GROUP_SETTING,
        ExecOutput::exited(
            0,
            format!(
                r#"{{"Name":"BizTalkGroup","MgmtDbServerName":"DRSQL01","MgmtDbName":"BizTalkMgmtDb","SubscriptionDBServerName":"DRSQL01","SubscriptionDBName":"BizTalkMsgBoxDb","TrackingDBServerName":"DRSQL01","TrackingDBName":"BizTalkDTADb","RuleEngineDBServerName":"DRSQL01","RuleEngineDBName":"BizTalkRuleEngineDb","SSOServerName":"{sso_server_name}"}}"#
            ),
        ),
    );
}

fn update_db(host: &FakeHost) {
    host.script_exec(
        SSO,
        &format!(r"{DIR}\ssomanage.exe"),
        &["-updatedb", r"C:\Drover\secret-server.xml"],
        ExecOutput::exited(
            0,
            "Using SSO server on this computer\r\n\r\nThe operation completed successfully.\r\n",
        ),
    );
}

fn restart(host: &FakeHost) {
    host.script_exec(
        SSO,
        "sc.exe",
        &["stop", "ENTSSO"],
        ExecOutput::exited(0, "\nSERVICE_NAME: ENTSSO\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : 3  STOP_PENDING\n"),
    );
    host.script_exec(
        SSO,
        "sc.exe",
        &["start", "ENTSSO"],
        ExecOutput::exited(0, "\nSERVICE_NAME: ENTSSO\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : 2  START_PENDING\n"),
    );
}

fn restore(host: &FakeHost, output: ExecOutput) {
    ps(host, SSO, &sso_secret::restore_secret_script(BACKUP), output);
}

/// DRSSO01 as DR site preparation left it, after the disaster and UpdateRegistry.vbs on DRBTS01.
fn promotion(host: &FakeHost) {
    sso_sql(host, "PRDSQL01");
    set_db(host);
    display(host, "PRDSSO01");
    group(host, "PRDSSO01");
    update_db(host);
    restart(host);
}

#[test]
fn promotes_the_dr_sso_server_with_the_password_on_stdin() {
    let host = host();
    promotion(&host);
    restore(&host, ExecOutput::exited(0, ""));
    ps(&host, BTS, &processing::set_sso_server_name(SSO), ExecOutput::exited(0, ""));
    display(&host, SSO);
    group(&host, SSO);

    let outcome = host.call::<SsoSecret>(Mode::Apply, input()).unwrap();

    assert!(outcome.changed);
    assert_eq!(
        outcome.output["actions"],
        json!(["set-db", "update-secret-server", "restart-entsso", "restore-secret", "set-sso-server-name"])
    );
    assert_eq!(outcome.output["secret_server"], SSO);
    assert_eq!(outcome.output["sso_server_name"], SSO);
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    let file = host.file(SSO, r"C:\Drover\secret-server.xml").expect("the secret-server file");
    assert_eq!(file, sso_secret::secret_server_file(SSO).as_bytes());
    let calls = host.exec_calls();
    let restore = calls.iter().find(|c| c.args.iter().any(|a| a.contains("RestoreSecret"))).unwrap();
    assert_eq!(restore.stdin.as_deref(), Some(&b"@@secret:sso-secret-backup-password@@"[..]));
    assert!(calls.iter().all(|c| !c.args.iter().any(|a| a.contains("@@secret"))), "never an argument");
}

#[test]
fn a_promoted_server_changes_nothing() {
    let host = host();
    sso_sql(&host, "DRSQL01");
    display(&host, SSO);
    group(&host, SSO);
    let outcome = host.call::<SsoSecret>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["actions"], json!([]));
    assert_eq!(host.exec_calls().len(), 3, "reads only");
}

#[test]
fn a_wrong_password_is_permanent_naming_the_backup_and_the_secret() {
    let host = host();
    promotion(&host);
    restore(
        &host,
        failed(
            "Exception calling \"RestoreSecret\" : \"The password of the backup file is not correct.\"\r\n",
        ),
    );
    let err = host.call::<SsoSecret>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains(BACKUP), "{err}");
    assert!(err.message().contains("check that sso-secret-backup-password holds the password"), "{err}");
}

#[test]
fn after_a_failed_restore_the_next_run_restores_and_names_the_server() {
    // ssomanage -updatedb took effect before the restore failed.
    let host = host();
    sso_sql(&host, "DRSQL01");
    display(&host, SSO);
    group(&host, "PRDSSO01");
    restore(&host, ExecOutput::exited(0, ""));
    ps(&host, BTS, &processing::set_sso_server_name(SSO), ExecOutput::exited(0, ""));
    display(&host, SSO);
    group(&host, SSO);
    let outcome = host.call::<SsoSecret>(Mode::Apply, input()).unwrap();
    assert_eq!(outcome.output["actions"], json!(["restore-secret", "set-sso-server-name"]));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn check_reads_only() {
    let host = host();
    sso_sql(&host, "PRDSQL01");
    let outcome = host.call::<SsoSecret>(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["actions"], json!(["set-db"]));
    assert_eq!(host.exec_calls().len(), 1);
}

#[test]
fn a_stopped_sso_service_is_started_and_read_again() {
    let host = host();
    sso_sql(&host, "DRSQL01");
    host.script_exec(
        SSO,
        &format!(r"{DIR}\ssomanage.exe"),
        &["-displaydb"],
        failed("0xC0002A0F : Could not contact the SSO server 'DRSSO01'. Check that SSO is configured and that the SSO service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)\r\n"),
    );
    host.script_exec(
        SSO,
        "sc.exe",
        &["start", "ENTSSO"],
        ExecOutput::exited(0, "STATE : 2  START_PENDING\n"),
    );
    display(&host, SSO);
    group(&host, SSO);
    let outcome = host.call::<SsoSecret>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn wmi_before_update_registry_is_permanent_saying_so() {
    let host = host();
    sso_sql(&host, "DRSQL01");
    display(&host, SSO);
    ps(
        &host,
        BTS,
        processing::GROUP_SETTING,
        failed(
            "Get-CimInstance : [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.\r\n",
        ),
    );
    let err = host.call::<SsoSecret>(Mode::Apply, input()).unwrap_err();
    assert!(err.message().contains("run UpdateRegistry.vbs there first"), "{err}");
}

#[test]
fn describes_itself_as_idempotent() {
    let describe = <SsoSecret as Plugin>::describe();
    assert_eq!(describe.name(), "sso-secret");
    assert_eq!(describe.effect(), Effect::Idempotent);
}

#[test]
fn return_points_the_sso_service_back_at_production_once() {
    let host = host();
    sso_sql(&host, "DRSQL01");
    host.script_exec(
        SSO,
        &format!(r"{DIR}\ssoconfig.exe"),
        &["-setDB", "PRDSQL01", "SSODB"],
        ExecOutput::exited(0, "The operation completed successfully.\r\n"),
    );
    restart(&host);
    sso_sql(&host, "PRDSQL01");
    let back = json!({ "action": "return", "sql_server": "PRDSQL01" });
    let outcome = host.call::<SsoSecret>(Mode::Apply, back.clone()).unwrap();
    assert!(outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["actions"], json!(["set-db", "restart-entsso"]));
    assert_eq!(outcome.output["sql_server"], "PRDSQL01");
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());

    let host = self::host();
    sso_sql(&host, "PRDSQL01");
    let outcome = host.call::<SsoSecret>(Mode::Apply, back).unwrap();
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(host.exec_calls().len(), 1, "reads only");

    let host = self::host();
    let err = host.call::<SsoSecret>(Mode::Apply, json!({ "sql_server": "DRSQL01" })).unwrap_err();
    assert!(err.message().contains("backup_file is required to promote"), "{}", err.message());
}
