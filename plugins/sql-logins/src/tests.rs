//! `sql-logins` against the fake host, answered as `lab/PROTOCOL.md` ("Logins on the DR SQL
//! Server") says a recovered DR SQL Server answers.

use biztalk_common::logins::{SERVER_LOGINS, create_windows_login, orphaned_users};
use biztalk_common::logshipping::{self, DATABASE_STATES};
use drover_sdk::testing::FakeHost;
use drover_sdk::{ExecOutput, Mode};
use serde_json::json;

use super::*;

const DR: &str = "DRSQL01";
const ONLINE: &str = "BizTalkDTADb|ONLINE\r\nBizTalkMgmtDb|ONLINE\r\nSSODB|ONLINE\r\n";
const LOGINS: &str = "BUILTIN\\Administrators|G\r\nCONTOSO\\BizTalk Server Administrators|G\r\nCONTOSO\\SSO Administrators|G\r\nsa|S\r\n";
const APP_USERS: &str = r"CONTOSO\BizTalk Application Users";
const IHOST_USERS: &str = r"CONTOSO\BizTalk Isolated Host Users";
const DTA_ORPHANS: &str =
    "bts_reporting|S\r\nCONTOSO\\BizTalk Application Users|G\r\nCONTOSO\\BizTalk Isolated Host Users|G\r\n";
const MGMT_ORPHANS: &str =
    "CONTOSO\\BizTalk Application Users|G\r\nCONTOSO\\BizTalk Isolated Host Users|G\r\n";

fn answer(host: &FakeHost, query: &str, output: ExecOutput) {
    let argv = logshipping::sqlcmd(DR, query);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    host.script_exec(DR, SQLCMD, &args, output);
}

fn ok(host: &FakeHost, query: &str, stdout: &str) {
    answer(host, query, ExecOutput::exited(0, stdout));
}

/// A recovered DRSQL01 whose users are orphaned as the fresh lab's are (in part).
fn recovered(logins: &str, dta: &str, mgmt: &str) -> FakeHost {
    let host = FakeHost::new().with_target(DR);
    ok(&host, DATABASE_STATES, ONLINE);
    ok(&host, SERVER_LOGINS, logins);
    ok(&host, &orphaned_users("BizTalkDTADb"), dta);
    ok(&host, &orphaned_users("BizTalkMgmtDb"), mgmt);
    ok(&host, &orphaned_users("SSODB"), "");
    host
}

fn input() -> serde_json::Value {
    json!({"instance": DR})
}

#[test]
fn it_declares_itself_idempotent() {
    assert_eq!(<SqlLogins as Plugin>::describe().effect(), Effect::Idempotent);
    assert_eq!(<SqlLogins as Plugin>::describe().name(), "sql-logins");
}

#[test]
fn check_only_reads_and_names_the_logins_apply_would_create() {
    let host = recovered(LOGINS, DTA_ORPHANS, MGMT_ORPHANS);
    let check = host.call::<SqlLogins>(Mode::Check, input()).expect("check");
    assert!(check.changed, "{}", check.summary);
    assert_eq!(check.output["created"], json!([APP_USERS, IHOST_USERS]));
    assert!(check.summary.contains("would create 2 Windows login(s)"), "{}", check.summary);
    assert_eq!(
        check.output["still_orphaned"],
        json!([{"database": "BizTalkDTADb", "user": "bts_reporting", "kind": "SQL Server login"}])
    );
    let writes: Vec<String> = host.command_lines().into_iter().filter(|c| !c.contains("SELECT")).collect();
    assert!(writes.is_empty(), "check only reads: {writes:?}");
}

#[test]
fn apply_creates_the_windows_logins_and_reports_the_sql_login_for_a_person() {
    let host = recovered(LOGINS, DTA_ORPHANS, MGMT_ORPHANS);
    ok(&host, &create_windows_login(APP_USERS), "");
    ok(&host, &create_windows_login(IHOST_USERS), "");
    ok(&host, &orphaned_users("BizTalkDTADb"), "bts_reporting|S\r\n");
    ok(&host, &orphaned_users("BizTalkMgmtDb"), "");
    ok(&host, &orphaned_users("SSODB"), "");
    let outcome = host.call::<SqlLogins>(Mode::Apply, input()).expect("created");
    assert!(outcome.changed);
    let out = &outcome.output;
    assert_eq!(
        out["created"],
        json!([APP_USERS, IHOST_USERS]),
        "each login once, though two databases name it"
    );
    assert_eq!(out["databases"], json!(["BizTalkDTADb", "BizTalkMgmtDb", "SSODB"]));
    assert_eq!(out["still_orphaned"][0]["user"], "bts_reporting");
    let to_do = out["to_do"][0].as_str().expect("one line");
    assert!(to_do.starts_with("bts_reporting: recreate the SQL Server login on DRSQL01"), "{to_do}");
    assert!(to_do.contains("sp_help_revlogin"), "{to_do}");
    let lines = host.command_lines();
    assert_eq!(lines.iter().filter(|l| l.contains("CREATE LOGIN")).count(), 2, "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("bts_reporting")), "no SQL login is created");
    assert_eq!(outcome.evidence.len(), lines.len(), "every command is evidence");
}

#[test]
fn a_rerun_changes_nothing_and_a_login_created_meanwhile_counts_as_present() {
    let all = format!("{LOGINS}{APP_USERS}|G\r\n{IHOST_USERS}|G\r\n");
    let host = recovered(&all, "bts_reporting|S\r\n", "");
    let outcome = host.call::<SqlLogins>(Mode::Apply, input()).expect("nothing to do");
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["created"], json!([]));
    assert!(host.command_lines().iter().all(|l| l.contains("SELECT")), "only reads");

    let host = recovered(LOGINS, "", "CONTOSO\\BizTalk Application Users|G\r\n");
    let exists = "Msg 15025, Level 16, State 2, Server DRSQL01, Line 1\r\nThe server principal 'CONTOSO\\BizTalk Application Users' already exists.\r\n";
    answer(&host, &create_windows_login(APP_USERS), ExecOutput::exited(1, exists));
    let outcome = host.call::<SqlLogins>(Mode::Apply, input()).expect("present");
    assert!(!outcome.changed);
    assert_eq!(outcome.output["present"], json!([APP_USERS]));
}

#[test]
fn a_name_the_domain_does_not_know_stops_with_sql_servers_words() {
    let host = recovered(LOGINS, "", "");
    let unknown = "Msg 15401, Level 16, State 1, Server DRSQL01, Line 1\r\nWindows NT user or group 'CONTOSO\\Nobody' not found. Check the name again.\r\n";
    answer(&host, &create_windows_login(r"CONTOSO\Nobody"), ExecOutput::exited(1, unknown));
    let err = host
        .call::<SqlLogins>(Mode::Apply, json!({"instance": DR, "logins": [r"CONTOSO\Nobody"]}))
        .unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("Check the name again"), "{}", err.message());

    let err = FakeHost::new()
        .with_target(DR)
        .call::<SqlLogins>(Mode::Check, json!({"instance": DR, "logins": ["bts_reporting"]}))
        .unwrap_err();
    assert!(err.message().contains("not a Windows login"), "{}", err.message());
}

#[test]
fn a_database_still_restoring_stops_before_any_login() {
    let host = FakeHost::new().with_target(DR);
    ok(&host, DATABASE_STATES, "BizTalkMgmtDb|RESTORING\r\n");
    let err = host.call::<SqlLogins>(Mode::Check, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("BizTalkMgmtDb on DRSQL01 is RESTORING"), "{}", err.message());
}

#[test]
fn an_explicit_list_is_created_and_orphans_it_leaves_out_are_for_a_person() {
    let host = recovered(LOGINS, "", MGMT_ORPHANS);
    ok(&host, &create_windows_login(APP_USERS), "");
    ok(&host, &orphaned_users("BizTalkDTADb"), "");
    ok(&host, &orphaned_users("BizTalkMgmtDb"), "CONTOSO\\BizTalk Isolated Host Users|G\r\n");
    ok(&host, &orphaned_users("SSODB"), "");
    let outcome =
        host.call::<SqlLogins>(Mode::Apply, json!({"instance": DR, "logins": [APP_USERS]})).expect("created");
    assert_eq!(outcome.output["created"], json!([APP_USERS]));
    let to_do = outcome.output["to_do"][0].as_str().expect("one line");
    assert!(
        to_do.starts_with(r"CONTOSO\BizTalk Isolated Host Users: create the login on DRSQL01 (CREATE LOGIN"),
        "{to_do}"
    );
}
