//! `bts-update-database` and `bts-update-registry` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use super::*;
use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::{Value, json};

const DR: &str = "DRBTS01";
const RESTORE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore";
const QUERY: &str = "SET NOCOUNT ON; SELECT SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName FROM BizTalkMgmtDb.dbo.adm_Group";
const KEY: &str = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(DR)
        .with_context(Context { target: Some(DR.into()), ..Context::for_test(Mode::Apply) })
}

fn input() -> Value {
    json!({ "old_sql_server": "PRDSQL01", "new_sql_server": "DRSQL01" })
}

fn xml_path() -> String {
    format!(r"{RESTORE}\SampleUpdateInfo.xml")
}

fn group(host: &FakeHost, output: ExecOutput) {
    host.script_exec(
        DR,
        "sqlcmd",
        &["-S", "DRSQL01", "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", QUERY],
        output,
    );
}

fn row(server: &str) -> ExecOutput {
    ExecOutput::exited(0, format!("{server}|BizTalkMsgBoxDb|{server}|BizTalkDTADb\r\n"))
}

fn script(host: &FakeHost, name: &str, output: ExecOutput) {
    let path = xml_path();
    let script = format!(r"{RESTORE}\{name}");
    host.script_exec(DR, r"C:\Windows\System32\cscript.exe", &["//nologo", &script, &path], output);
}

fn failed(stderr: &str) -> ExecOutput {
    ExecOutput { stderr: stderr.as_bytes().to_vec(), ..ExecOutput::exited(1, "") }
}

fn mgmt_db_server(host: &FakeHost, server: &str) {
    host.script_exec(
        DR,
        "reg",
        &["query", KEY, "/v", "MgmtDBServer", "/reg:32"],
        ExecOutput::exited(
            0,
            format!("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\BizTalk Server\\3.0\\Administration\r\n    MgmtDBServer    REG_SZ    {server}\r\n\r\n"),
        ),
    );
}

#[test]
fn update_database_runs_once_with_the_rendered_file_and_verifies_the_record() {
    let host = host();
    group(&host, row("PRDSQL01"));
    script(&host, "UpdateDatabase.vbs", ExecOutput::exited(0, ""));
    group(&host, row("DRSQL01"));

    let outcome = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap();

    assert!(outcome.changed);
    let written = host.file(DR, &xml_path()).expect("the file is on the server");
    let rendered = UpdateInfo::whole_group("PRDSQL01", "DRSQL01").render();
    assert_eq!(written, rendered.as_bytes());
    assert_eq!(outcome.output["update_info_sha256"], sha256_hex(rendered.as_bytes()));
    assert_eq!(outcome.output["ran"], true);
    assert_eq!(
        outcome.output["before"],
        "MessageBox on PRDSQL01/BizTalkMsgBoxDb, tracking on PRDSQL01/BizTalkDTADb"
    );
    assert_eq!(
        outcome.output["after"],
        "MessageBox on DRSQL01/BizTalkMsgBoxDb, tracking on DRSQL01/BizTalkDTADb"
    );
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert_eq!(outcome.evidence.len(), 4, "query, file, script, query");
}

#[test]
fn update_database_already_run_changes_nothing_and_writes_nothing() {
    let host = host();
    group(&host, row("DRSQL01"));
    let outcome = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.output["ran"], false);
    assert!(outcome.summary.contains("UpdateDatabase.vbs not run again"), "{}", outcome.summary);
    assert!(host.file(DR, &xml_path()).is_none());
    assert_eq!(host.exec_calls().len(), 1);
}

#[test]
fn check_reads_only_and_says_it_would_run() {
    let host = host();
    group(&host, row("PRDSQL01"));
    let outcome = host.call::<UpdateDatabase>(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        "would run UpdateDatabase.vbs on DRBTS01 (MessageBox on PRDSQL01/BizTalkMsgBoxDb, tracking on PRDSQL01/BizTalkDTADb)"
    );
    assert!(host.file(DR, &xml_path()).is_none());
}

#[test]
fn a_record_moved_in_part_stops_for_an_operator() {
    let host = host();
    group(&host, ExecOutput::exited(0, "DRSQL01|BizTalkMsgBoxDb|PRDSQL01|BizTalkDTADb\r\n"));
    let err = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("cannot tell whether to run it"), "{err}");
    assert_eq!(host.exec_calls().len(), 1, "nothing ran");
}

#[test]
fn an_unknown_answer_stops_for_an_operator_with_the_raw_text() {
    let host = host();
    group(&host, failed("Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : something new."));
    let err = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("cannot tell whether UpdateDatabase.vbs already ran"), "{err}");
    assert!(err.message().contains("something new"), "{err}");
}

#[test]
fn databases_still_restoring_are_permanent() {
    let host = host();
    group(
        &host,
        ExecOutput::exited(
            1,
            "Msg 927, Level 14, State 2, Server DRSQL01, Line 1\r\nDatabase 'BizTalkMgmtDb' cannot be opened. It is in the middle of a restore.\r\n",
        ),
    );
    let err = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("Restore To Mark"), "{err}");
}

#[test]
fn the_provider_error_is_permanent_with_microsofts_fix() {
    let host = host();
    group(&host, row("PRDSQL01"));
    script(
        &host,
        "UpdateDatabase.vbs",
        failed(&format!(
            r"{RESTORE}\UpdateDatabase.vbs(1, 1) Microsoft OLE DB Provider for SQL Server: Invalid connection string attribute"
        )),
    );
    let err = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains(r#"change conn.Provider = "SQLOLEDB" to "MSOLEDBSQL""#), "{err}");
    assert!(err.message().contains(r"Restore\UpdateDatabase.vbs"), "{err}");
}

#[test]
fn a_script_that_leaves_the_record_unchanged_is_permanent() {
    let host = host();
    group(&host, row("PRDSQL01"));
    script(&host, "UpdateDatabase.vbs", ExecOutput::exited(0, ""));
    group(&host, row("PRDSQL01"));
    let err = host.call::<UpdateDatabase>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("exited 0 but the group's record still points at PRDSQL01"), "{err}");
}

#[test]
fn update_registry_runs_when_mgmt_db_server_is_production_and_verifies() {
    let host = host();
    mgmt_db_server(&host, "PRDSQL01");
    script(&host, "UpdateRegistry.vbs", ExecOutput::exited(0, ""));
    mgmt_db_server(&host, "DRSQL01");
    let outcome = host.call::<UpdateRegistry>(Mode::Apply, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["before"], "MgmtDBServer = PRDSQL01");
    assert_eq!(outcome.output["after"], "MgmtDBServer = DRSQL01");
    let rendered = UpdateInfo::whole_group("PRDSQL01", "DRSQL01").render();
    assert_eq!(
        host.file(DR, &xml_path()).unwrap(),
        rendered.as_bytes(),
        "the same file as UpdateDatabase.vbs's"
    );
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn update_registry_already_done_changes_nothing() {
    let host = host();
    mgmt_db_server(&host, "drsql01");
    let outcome = host.call::<UpdateRegistry>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(host.exec_calls().len(), 1);
}

#[test]
fn update_registry_on_a_server_of_another_group_or_none_is_permanent() {
    let host = host();
    mgmt_db_server(&host, "OTHERSQL");
    let err = host.call::<UpdateRegistry>(Mode::Apply, input()).unwrap_err();
    assert!(err.message().contains("names OTHERSQL, neither PRDSQL01 nor DRSQL01"), "{err}");
    let host = super::tests::host();
    host.script_exec(
        DR,
        "reg",
        &["query", KEY, "/v", "MgmtDBServer", "/reg:32"],
        failed("ERROR: The system was unable to find the specified registry key or value.\r\n"),
    );
    let err = host.call::<UpdateRegistry>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("not joined"), "{err}");
}

#[test]
fn the_same_server_twice_is_refused() {
    let host = host();
    let mut same = input();
    same["new_sql_server"] = json!("prdsql01");
    let err = host.call::<UpdateRegistry>(Mode::Apply, same).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(host.exec_calls().is_empty());
}

#[test]
fn update_database_is_irreversible_and_update_registry_idempotent() {
    let database = <UpdateDatabase as Plugin>::describe();
    assert_eq!((database.name(), database.effect()), ("bts-update-database", Effect::Irreversible));
    let registry = <UpdateRegistry as Plugin>::describe();
    assert_eq!((registry.name(), registry.effect()), ("bts-update-registry", Effect::Idempotent));
}
