//! The failover's logins (issue 18, fidelity review §4.2 F4) against the lab: a small workflow,
//! written here into the test sandbox, runs the SQL steps of a failover after `drover-lab
//! disaster` took production down (measure, catch up, Restore To Mark, as failover_sql.rs does)
//! and then `sql-logins` on DRSQL01. The DR SQL Server was prepared without some of the logins
//! production's has (`lab/PROTOCOL.md`, "Logins on the DR SQL Server"), so the recovered
//! databases' users of those logins are orphaned: the step creates the Windows ones and reports
//! the SQL Server login's users for a person (sp_help_revlogin). A second run changes nothing.

use drover_tests::lab::{self, LabRun, verdicts};
use drover_tests::{stderr, stdout, wasm};
use serde_json::{Value, json};

const DR_SQL: &str = "DRSQL01";
const FAILED_AT: &str = "2026-11-22T10:07:30Z";
/// The logins the DR site was prepared without that the step creates.
const CREATED: [&str; 4] = [
    r"CONTOSO\BizTalk Application Users",
    r"CONTOSO\BizTalk Isolated Host Users",
    r"CONTOSO\BizTalk Server Operators",
    r"CONTOSO\svc-bre",
];

fn workflow() -> String {
    let grants = lab::DR_SQL_GRANTS;
    let recovery = lab::sql_recovery_steps(Some("measure"));
    format!(
        r#"name = "failover-logins"
version = "1.0.0"
description = "The failover's SQL side, then the logins the recovered databases' users need"

[params.failure-time]
type = "string"
description = "When production failed (RFC 3339 with a zone), as declared at the gate"

[[steps]]
id = "measure"
plugin = "logshipping-measure@^1"
phase = "Declare"
{grants}
with = {{ destinations = ["DRSQL01"], source = "PRDSQL01", failure_time = "{{{{ params.failure_time }}}}" }}
{recovery}
[[steps]]
id = "logins"
plugin = "sql-logins@^1"
phase = "Restore databases"
needs = ["restore-to-mark"]
{grants}
with = {{ instance = "DRSQL01" }}
"#
    )
}

/// DRSQL01's logins as the lab keeps them: `(name, kind)`.
fn dr_logins(lab: &LabRun) -> Vec<(String, String)> {
    let state = lab.state();
    let logins = state["servers"][DR_SQL]["sql"]["logins"].as_array().expect("DRSQL01's logins").clone();
    logins
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or_default().to_owned(),
                l["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has(logins: &[(String, String)], name: &str) -> bool {
    logins.iter().any(|(n, _)| n == name)
}

#[test]
fn after_restore_to_mark_the_missing_windows_logins_are_created_once_and_the_sql_logins_users_reported() {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    lab.sandbox.install(&wasm::LOGSHIPPING);
    lab.sandbox.install(&[wasm::SQL_LOGINS]);
    lab.workflow = lab.sandbox.write("failover-logins.toml", &workflow());
    lab.disaster(FAILED_AT);
    let before = dr_logins(&lab);
    for name in CREATED.iter().chain(&["bts_reporting"]) {
        assert!(!has(&before, name), "the fresh DR SQL Server lacks {name}: {before:?}");
    }
    let param = format!("failure-time={FAILED_AT}");
    // The plan reads through the read-only grants (LabRun::plan checks the lab is unchanged): the
    // logins are read once Restore To Mark has recovered the databases.
    let plan = lab.plan(&[&param], None);
    assert_eq!(verdicts(&plan).last(), Some(&("logins".to_owned(), "cannot-tell".to_owned())), "{plan:#}");

    let out = lab.run(&[&param]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let after = dr_logins(&lab);
    for name in CREATED {
        assert!(has(&after, name), "{name} created: {after:?}");
    }
    assert!(after.contains(&(r"CONTOSO\svc-bre".to_owned(), "windows-user".to_owned())), "{after:?}");
    assert!(!has(&after, "bts_reporting"), "a SQL Server login is never created");
    assert_eq!(after.len(), before.len() + CREATED.len());

    let logins = lab.last_instance("logins");
    let output = &logins["output"];
    assert_eq!(output["created"], json!(CREATED), "{output:#}");
    assert_eq!(
        output["still_orphaned"],
        json!([{"database": "BizTalkDTADb", "user": "bts_reporting", "kind": "SQL Server login"}])
    );
    let to_do = output["to_do"][0].as_str().unwrap_or_default();
    assert!(to_do.starts_with("bts_reporting: recreate the SQL Server login on DRSQL01"), "{to_do}");
    assert!(to_do.contains("sp_help_revlogin"), "{to_do}");
    assert_eq!(lab.changed_steps(), ["restore-to-mark", "logins"]);
    // What SQL Server now says: only the SQL Server login's user is orphaned.
    let orphans = lab.sqlcmd(
        DR_SQL,
        "SET NOCOUNT ON; SELECT dp.name, dp.type FROM [BizTalkDTADb].sys.database_principals dp LEFT JOIN sys.server_principals sp ON sp.sid = dp.sid WHERE dp.type IN ('S', 'U', 'G') AND dp.authentication_type IN (1, 3) AND sp.sid IS NULL ORDER BY dp.name",
    );
    assert_eq!(orphans, "bts_reporting|S\r\n");

    // A plan now: the logins are there, and only reads run.
    let plan = lab.plan(&[&param], None);
    assert_eq!(verdicts(&plan).last(), Some(&("logins".to_owned(), "no-change".to_owned())), "{plan:#}");

    // Again: the logins are there; nothing is created twice.
    let out = lab.run(&[&param]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(lab.changed_steps(), Vec::<String>::new());
    assert_eq!(dr_logins(&lab), after, "the second run changed DRSQL01's logins");
    let again: Value = lab.last_instance("logins")["output"].clone();
    assert_eq!(again["created"], json!([]), "{again:#}");
    // Derived from the orphans, of which no Windows one is left: nothing is wanted.
    assert_eq!(again["present"], json!([]));
    assert_eq!(again["still_orphaned"], output["still_orphaned"]);
}
