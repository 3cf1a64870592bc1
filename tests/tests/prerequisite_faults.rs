//! What stops a DR site preparation before anything is configured (issue 17, part 3): the
//! account Drover runs as lacking rights (local administrator, SQL `sysadmin`), a server at
//! another BizTalk cumulative update or edition than production, and MSDTC failing end to end
//! between a server and SQL Server. For each, a lab fault, the real `dr-site-preparation` run
//! against the lab, and what an administrator reads: the run exits 1, the prerequisites instance
//! of the faulted server has failed with a `why` that names the problem, the server and what to
//! do, and no server joined the group. The server replacement stops the same way before it joins
//! the rebuilt server again.

use drover_tests::lab::{LabRun, instances};
use drover_tests::{stderr, stdout};
use serde_json::Value;

/// Checks that the newest run of `lab` failed (exit 1) at the prerequisites of every server of
/// `servers`, with a `why` holding every part of `says` and the server's name, and that no join
/// ran and nobody joined the group since `joins_before`.
fn assert_stopped_before_the_join(
    lab: &LabRun,
    out: &std::process::Output,
    joins_before: &[String],
    servers: &[&str],
    says: &[&str],
) {
    assert_eq!(out.status.code(), Some(1), "the run fails: {}{}", stdout(out), stderr(out));
    let status = lab.sandbox.status(&lab.sandbox.last_run());
    let all = instances(&status);
    for server in servers {
        let key = format!("prerequisites[{server}]");
        let failed = all.iter().find(|i| i["key"] == key.as_str()).unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(failed["state"], "failed", "{failed:#}");
        let why = failed["why"].as_str().unwrap();
        for part in says.iter().chain([server]) {
            assert!(why.contains(part), "the status of {key} says {part:?}: {why}");
        }
    }
    let joined: Vec<&Value> = all
        .iter()
        .filter(|i| i["key"].as_str().unwrap().starts_with("join") && i["state"] == "succeeded")
        .collect();
    assert!(joined.is_empty(), "no join ran: {joined:#?}");
    assert_eq!(lab.group().joins, joins_before, "nobody joined the group");
}

/// Sets `fault`, runs the DR site preparation and checks that it stopped at the prerequisites of
/// every server of `servers` with a `why` holding every part of `says`, before any join.
fn stops_before_the_join(fault: &[&str], servers: &[&str], says: &[&str]) {
    let lab = LabRun::new("dr-site-preparation.toml", &[]);
    let joins_before = lab.group().joins;
    lab.fault(fault);
    let out = lab.run(&[]);
    assert_stopped_before_the_join(&lab, &out, &joins_before, servers, says);
}

#[test]
fn an_account_that_is_not_a_local_administrator_stops_before_the_join() {
    stops_before_the_join(
        &["not-local-admin", "DRBTS02"],
        &["DRBTS02"],
        &[
            "local-admin (expected the account Drover runs as in BUILTIN\\Administrators (S-1-5-32-544), enabled, found not a member",
            "make the account Drover runs as a local administrator of DRBTS02",
        ],
    );
}

#[test]
fn an_account_that_is_not_sysadmin_on_sql_server_stops_before_the_join() {
    stops_before_the_join(
        &["not-sysadmin", "PRDSQL01"],
        &["DRBTS01", "DRBTS02", "DRBTS03"],
        &[
            "sql-sysadmin (expected the account Drover runs as in the sysadmin role of PRDSQL01, found not sysadmin",
            "grant the account Drover runs as the sysadmin role on PRDSQL01",
        ],
    );
}

#[test]
fn a_dr_server_behind_productions_cumulative_update_stops_before_the_join() {
    stops_before_the_join(
        &["cu-level", "DRBTS03", "5"],
        &["DRBTS03"],
        &[
            "cu-level (expected CU 6, as on PRDBTS01, found CU 5",
            "install BizTalk Server 2020 Cumulative Update 6 on DRBTS03 before it joins",
        ],
    );
}

#[test]
fn a_dr_server_of_another_edition_stops_before_the_join() {
    stops_before_the_join(
        &["installed-edition", "DRBTS01", "developer"],
        &["DRBTS01"],
        &[
            "edition (expected Enterprise Edition, as on PRDBTS01, found Developer Edition",
            "Developer Edition is for development and test, not production",
        ],
    );
}

#[test]
fn msdtc_failing_between_a_server_and_sql_server_stops_before_the_join() {
    stops_before_the_join(
        &["dtc-blocked", "DRBTS02"],
        &["DRBTS02"],
        &[
            "msdtc-end-to-end (expected Test-Dtc propagates a transaction to PRDSQL01, found Test-Dtc : DTC security settings and firewall settings should be fixed",
            "MSDTC between DRBTS02 and PRDSQL01 fails end to end",
            "Troubleshooting Problems with MSDTC",
        ],
    );
}

#[test]
fn the_server_replacement_stops_before_joining_the_rebuilt_server_under_each_fault() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["not-local-admin", "PRDBTS02"],
            "local-admin (expected the account Drover runs as in BUILTIN\\Administrators",
        ),
        (
            &["not-sysadmin"],
            "sql-sysadmin (expected the account Drover runs as in the sysadmin role of PRDSQL01",
        ),
        (&["cu-level", "PRDBTS02", "4"], "cu-level (expected CU 6, as on PRDBTS01, found CU 4"),
        (&["installed-edition", "PRDBTS02", "standard"], "Standard Edition cannot join a BizTalk group"),
        (&["dtc-blocked", "PRDBTS02"], "MSDTC between PRDBTS02 and PRDSQL01 fails end to end"),
    ];
    for (fault, says) in cases {
        let lab = LabRun::new("server-replacement.toml", &[]);
        let out = lab.lab(&["replace", "PRDBTS02"]);
        assert!(out.status.success(), "drover-lab replace: {}", stderr(&out));
        let joins_before = lab.group().joins;
        lab.fault(fault);
        let out = lab.run(&[]);
        assert_stopped_before_the_join(&lab, &out, &joins_before, &["PRDBTS02"], &[says]);
    }
}
