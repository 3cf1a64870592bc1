//! `drover inventory check` against the lab's servers reached as Windows servers over a real sshd
//! (`drover_tests::windows_lab`): every server ready with a password logon, the second hop
//! refused with a key logon, and a server nobody answers for reported unreachable; the exit code
//! says whether all are ready.

use drover_tests::windows_lab::{Logon, WindowsLab};
use drover_tests::{stderr, stdout};
use serde_json::Value;

fn check(lab: &WindowsLab, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["--json", "inventory", "check", &lab.run.inventory, "--sql", "PRDSQL01"];
    args.extend(extra);
    let out = lab.run.drover(&args).output().expect("drover inventory check");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), json, stderr(&out))
}

fn server<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["servers"].as_array().expect("servers").iter().find(|s| s["server"] == name).expect("the server")
}

#[test]
fn every_server_of_a_password_logon_is_ready_with_powershell_and_the_second_hop() {
    let lab = WindowsLab::new("dr-site-preparation.toml", &[], Logon::Password, &[]);
    let (code, report, err) = check(&lab, &[]);
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(report["ready"], true);
    let servers = report["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 9, "every server of the lab");
    for s in servers {
        assert_eq!(s["transport"], "ssh", "{s}");
        assert_eq!(s["reachable"]["verdict"], "yes", "{s}");
        assert_eq!(s["authenticated"]["verdict"], "yes", "{s}");
        assert_eq!(
            s["shell"],
            serde_json::json!({"verdict": "yes", "detail": "PowerShell 5.1.17763.5576"}),
            "{s}"
        );
        assert_eq!(
            s["second-hop"],
            serde_json::json!({"verdict": "yes", "detail": "reaches PRDSQL01 as CONTOSO\\drover-win"}),
            "{s}"
        );
        assert!(s["elapsed-ms"].is_u64(), "{s}");
    }
}

#[test]
fn a_key_logon_is_reported_without_the_second_hop_and_the_table_says_why() {
    let lab = WindowsLab::new("dr-site-preparation.toml", &[], Logon::Key, &[]);
    let (code, report, _) = check(&lab, &[]);
    assert_eq!(code, Some(1), "not ready: {report:#}");
    let dr = server(&report, "DRBTS01");
    assert_eq!(dr["shell"]["verdict"], "yes", "{dr}");
    assert_eq!(dr["second-hop"]["verdict"], "no", "{dr}");
    let why = dr["second-hop"]["detail"].as_str().expect("why");
    assert!(why.contains("DRBTS01") && why.contains("double hop"), "{why}");

    // The table, for people: the same verdict and the reason below it.
    let out = lab
        .run
        .drover(&["inventory", "check", &lab.run.inventory, "--sql", "PRDSQL01"])
        .output()
        .expect("drover inventory check");
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(table.lines().next().is_some_and(|l| l.starts_with("SERVER")), "{table}");
    assert!(table.contains("DRBTS01: second hop: no: DRBTS01 (ssh to"), "{table}");
    assert!(table.contains("0 of 9 servers ready"), "{table}");
}

#[test]
fn a_server_nobody_answers_for_is_unreachable_and_the_others_are_still_checked() {
    let lab = WindowsLab::new("dr-site-preparation.toml", &[], Logon::Password, &[]);
    let nobody = drover_tests::sshd::free_ports(1)[0];
    let text = std::fs::read_to_string(&lab.run.inventory).expect("inventory");
    let port = lab.ports.iter().find(|(s, _)| s == "DRBTS03").map(|(_, p)| *p).expect("DRBTS03's port");
    let moved = text.replace(&format!("port = {port}"), &format!("port = {nobody}"));
    assert_ne!(moved, text, "the inventory names DRBTS03's port");
    std::fs::write(&lab.run.inventory, moved).expect("rewrite the inventory");
    let (code, report, _) = check(&lab, &["--jobs", "2"]);
    assert_eq!(code, Some(1), "{report:#}");
    let gone = server(&report, "DRBTS03");
    assert_eq!(gone["reachable"]["verdict"], "no", "{gone}");
    assert!(gone["reachable"]["detail"].as_str().is_some_and(|d| d.contains("Connection refused")), "{gone}");
    assert_eq!(gone["authenticated"]["verdict"], "skipped", "{gone}");
    assert_eq!(server(&report, "DRBTS02")["second-hop"]["verdict"], "yes");
}
