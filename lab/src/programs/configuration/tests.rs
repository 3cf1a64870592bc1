//! `Configuration.exe` against the fresh lab, with the join XML of `lab/tests/data/join.xml`.

use super::super::testing::{exec, exec_with_input, exec_without_credentials};
use crate::init::{ADMIN_KEY, ENTSSO_SQL_KEY, fresh_lab};
use crate::state::{Fault, Lab, RegValue, ServiceState, StartType, password_sha256};

const JOIN_XML: &str = include_str!("../../../tests/data/join.xml");
const EXE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe";
const XML: &str = r"C:\Drover\join.xml";
const LOG: &str = r"C:\Drover\Logs\join.log";

fn put(lab: &mut Lab, server: &str, xml: &str) {
    let argv = ["sh", "-c", r#"cat > "$1""#, "sh", XML];
    assert_eq!(exec_with_input(lab, server, &argv, xml.as_bytes()).code, 0);
}

/// Runs `/S` with `xml` on `server`; the exit code and the log.
fn join(lab: &mut Lab, server: &str, xml: &str) -> (i32, String) {
    put(lab, server, xml);
    let out = exec(lab, server, &[EXE, "/S", XML, "/L", LOG, "/noprogressbar"]);
    assert_eq!((out.stdout_text(), out.stderr_text()), (String::new(), String::new()));
    (out.code, exec(lab, server, &["cat", LOG]).stdout_text())
}

/// The log of a refused join: one ConfigHelper `Error` line, or for SQL Server not answering or
/// refusing the logon the three lines of the public capture's SQL failure.
fn error_log(message: &str) -> String {
    let sql = |first: &str, state: &str, native: u32| {
        format!(
            "[10:15:01 Error ConfigHelper] {first}\n[10:15:01 Error ConfigHelper] SQL error: {state} Native error code: {native}\n[10:15:01 Error ConfigHelper] c:\\depotsetupv2\\private\\common\\configwizard\\confighelper\\sqlhelper.cpp(1176): FAILED hr = 80004005\n"
        )
    };
    match message.strip_prefix("Cannot connect to SQL Server PRDSQL01: ") {
        Some(why) if why.starts_with("Login failed for user") => sql(why, "28000", 18456),
        Some(_) => sql(
            "[DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.",
            "08001",
            17,
        ),
        None => format!("[10:15:01 Error ConfigHelper] {message}\n"),
    }
}

#[test]
fn a_dr_server_joins() {
    let mut lab = fresh_lab();
    let (code, log) = join(&mut lab, "DRBTS01", JOIN_XML);
    assert_eq!(code, 0, "{log}");
    let mut expected = String::new();
    for feature in ["SSOServer,Engine", "WMI", "Engine,BTSCfg", "RulesEngine", "BAMTools"] {
        for line in [
            format!("Building feature XML for: {feature}"),
            format!("Validating feature: {feature}"),
            format!("Configuring feature: {feature}"),
        ] {
            expected.push_str(&format!("[2026-11-22 10:15:01:0000 Info Configuration Framework]{line}\n"));
        }
    }
    assert_eq!(log, expected);

    let server = &lab.servers["DRBTS01"];
    assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBServer"), Some(&RegValue::Sz("PRDSQL01".into())));
    assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBName"), Some(&RegValue::Sz("BizTalkMgmtDb".into())));
    let entsso = server.service("ENTSSO").expect("ENTSSO");
    assert_eq!((entsso.start_type, entsso.state), (StartType::Auto, ServiceState::Running));
    assert_eq!(entsso.account, r"CONTOSO\svc-sso");
    assert_eq!(entsso.password_sha256, Some(password_sha256("sso-P@ss")));
    let rules = server.service("RuleEngineUpdateService").expect("RuleEngineUpdateService");
    assert_eq!(rules.account, r"CONTOSO\svc-bre");
    assert_eq!(rules.password_sha256, Some(password_sha256("bre-P@ss")));
    assert_eq!(lab.group.members, ["PRDBTS01", "PRDBTS02", "DRBTS01"]);
    assert_eq!(lab.group.master_secret_server.as_deref(), Some("PRDSSO01"));
    assert_eq!(lab.group.host_instances.len(), 5, "HOST and ISOHOST answered No");

    // Again: every feature is skipped.
    let (code, log) = join(&mut lab, "DRBTS01", JOIN_XML);
    assert_eq!(code, 0);
    assert_eq!(
        log.lines()
            .map(|l| l.split_once("Configuration Framework]").map(|(_, m)| m).unwrap_or(l))
            .collect::<Vec<_>>(),
        [
            "Feature SSO is already configured; skipped",
            "Feature WMI is already configured; skipped",
            "Feature Runtime is already configured; skipped",
            "Feature RulesEngine is already configured; skipped",
            "Feature BAMTools is already configured; skipped",
        ]
    );
    assert_eq!(lab.group.members.len(), 3);
}

#[test]
fn an_escaped_password_is_taken_exactly_and_one_that_broke_out_of_cdata_fails() {
    let mut lab = fresh_lab();
    let escaped = JOIN_XML.replace(
        "<Password>sso-P@ss</Password>",
        "<Password> a]]&gt;b&lt;/Password&gt;&amp;&quot;&apos;&#10; </Password>",
    );
    let (code, log) = join(&mut lab, "DRBTS01", &escaped);
    assert_eq!(code, 0, "{log}");
    let entsso = lab.servers["DRBTS01"].service("ENTSSO").expect("ENTSSO");
    assert_eq!(entsso.password_sha256, Some(password_sha256(" a]]>b</Password>&\"'\n ")), "untrimmed");

    // A password `a]]>b` filled raw into a CDATA section breaks out of it: the document is not
    // well-formed, where a lenient reader would take `ab]]>` and join.
    let mut lab = fresh_lab();
    let broken = JOIN_XML.replace("<Password>sso-P@ss</Password>", "<Password><![CDATA[a]]>b]]></Password>");
    let (code, log) = join(&mut lab, "DRBTS01", &broken);
    assert_eq!(code, 1);
    let refused =
        error_log(r"The configuration file C:\Drover\join.xml is not valid: ']]>' in character data");
    assert!(log.starts_with(refused.trim_end()), "{log}");
    assert!(lab.joins.is_empty() && !lab.is_member("DRBTS01"), "nothing was configured");
}

#[test]
fn a_long_computer_name_is_refused_first() {
    let mut lab = fresh_lab();
    let server = lab.servers["DRBTS03"].clone();
    lab.servers.insert("DRBTS03REPLACEMENT".into(), server);
    lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
    let (code, log) = join(&mut lab, "DRBTS03REPLACEMENT", JOIN_XML);
    assert_eq!(
        (code, log),
        (1, error_log("The computer name DRBTS03REPLACEMENT is longer than 15 characters."))
    );
    assert!(!lab.is_member("DRBTS03REPLACEMENT"));
}

#[test]
fn a_second_master_secret_server_is_refused() {
    let mut lab = fresh_lab();
    let xml = JOIN_XML
        .replace(
            r#"<Answer Value="Join" GUID="{B9432756"#,
            r#"<Answer Value="Join" Selected="No" GUID="{B9432756"#,
        )
        .replace(r#"Selected="Yes" />"#, "/>")
        .replace(
            r#"GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}">"#,
            r#"GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}" Selected="Yes">"#,
        );
    let (code, log) = join(&mut lab, "DRBTS01", &xml);
    assert_eq!(
        (code, log),
        (1, error_log("A master secret server already exists for this SSO system (PRDSSO01)."))
    );
}

#[test]
fn the_wrong_databases_are_refused() {
    let mut lab = fresh_lab();
    let xml = JOIN_XML.replace("<Database>SSODB</Database>", "<Database>SSODB2</Database>");
    assert_eq!(
        join(&mut lab, "DRBTS01", &xml),
        (1, error_log("The SSO database PRDSQL01/SSODB2 does not exist."))
    );
    let xml = JOIN_XML.replacen(
        "<Server>PRDSQL01</Server>\n      <Database>BizTalkMgmtDb",
        "<Server>DRSQL01</Server>\n      <Database>BizTalkMgmtDb",
        1,
    );
    assert_eq!(
        join(&mut lab, "DRBTS01", &xml),
        (1, error_log("The BizTalk Management database DRSQL01/BizTalkMgmtDb does not exist."))
    );
}

#[test]
fn an_unreachable_sql_server_fails_the_join() {
    let mut lab = fresh_lab();
    lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
    let (code, log) = join(&mut lab, "DRBTS02", JOIN_XML);
    assert_eq!((code, log), (1, error_log("Cannot connect to SQL Server PRDSQL01: Login timeout expired.")));
    let server = &lab.servers["DRBTS02"];
    assert!(server.reg_value(ADMIN_KEY, "MgmtDBServer").is_none(), "nothing configured");
    assert_eq!(server.service("ENTSSO").map(|s| s.state), Some(ServiceState::Stopped));
    assert!(!lab.is_member("DRBTS02"));
}

#[test]
fn a_session_without_network_credentials_cannot_join_or_leave() {
    let anonymous =
        "Cannot connect to SQL Server PRDSQL01: Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.";
    let mut lab = fresh_lab();
    put(&mut lab, "DRBTS02", JOIN_XML);
    let out = exec_without_credentials(&mut lab, "DRBTS02", &[EXE, "/S", XML, "/L", LOG], b"");
    assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (1, String::new(), String::new()));
    assert_eq!(exec(&mut lab, "DRBTS02", &["cat", LOG]).stdout_text(), error_log(anonymous));
    assert!(!lab.is_member("DRBTS02") && lab.joins.is_empty(), "nothing configured");

    let out = exec_without_credentials(&mut lab, "PRDBTS02", &[EXE, "/U", "/L", LOG], b"");
    assert_eq!(out.code, 1);
    assert_eq!(exec(&mut lab, "PRDBTS02", &["cat", LOG]).stdout_text(), error_log(anonymous));
    assert!(lab.is_member("PRDBTS02") && lab.unjoins.is_empty(), "still in the group");

    // Unreachable is found before any logon is tried.
    lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
    let out = exec_without_credentials(&mut lab, "DRBTS02", &[EXE, "/S", XML, "/L", LOG], b"");
    assert_eq!(out.code, 1);
    assert_eq!(
        exec(&mut lab, "DRBTS02", &["cat", LOG]).stdout_text(),
        error_log("Cannot connect to SQL Server PRDSQL01: Login timeout expired.")
    );
}

#[test]
fn empty_or_unfilled_passwords_are_refused() {
    let mut lab = fresh_lab();
    let xml = JOIN_XML.replace("<Password>sso-P@ss</Password>", "<Password />");
    assert_eq!(join(&mut lab, "DRBTS01", &xml), (1, error_log("The password of ENTSSO is empty.")));
    let xml = JOIN_XML.replace("bre-P@ss", "@@secret:bre_password");
    assert_eq!(
        join(&mut lab, "DRBTS01", &xml),
        (1, error_log("The password of {6ABAD351-9C7B-423e-9FDE-3A5C52441C00} is empty."))
    );
}

#[test]
fn a_server_of_another_group_is_refused() {
    let mut lab = fresh_lab();
    let server = lab.servers.get_mut("DRBTS01").expect("DRBTS01");
    server.set_reg_value(ADMIN_KEY, "MgmtDBServer", RegValue::Sz("OTHERSQL".into()));
    server.set_reg_value(ADMIN_KEY, "MgmtDBName", RegValue::Sz("BizTalkMgmtDb".into()));
    assert_eq!(
        join(&mut lab, "DRBTS01", JOIN_XML),
        (1, error_log("This computer is already joined to the BizTalk group on OTHERSQL/BizTalkMgmtDb."))
    );
}

#[test]
fn a_missing_or_broken_file_fails() {
    let mut lab = fresh_lab();
    let out = exec(&mut lab, "DRBTS01", &[EXE, "/S", r"C:\nope.xml", "/L", LOG]);
    assert_eq!(out.code, 1);
    assert_eq!(
        exec(&mut lab, "DRBTS01", &["cat", LOG]).stdout_text(),
        error_log(r"The configuration file C:\nope.xml does not exist.")
    );
    let (code, log) = join(&mut lab, "DRBTS01", "<Configuration><Feature></Configuration>");
    assert_eq!(code, 1);
    assert!(
        log.contains("Error ConfigHelper] The configuration file C:\\Drover\\join.xml is not valid: "),
        "{log}"
    );
}

#[test]
fn host_yes_creates_the_default_host_instance() {
    let mut lab = fresh_lab();
    let xml = JOIN_XML
        .replace(r#"<Answer Value="No" GUID="{D9164C48-8179-4a40-912D-1BF4C3EFE70B}" Selected="Yes" />"#, "")
        .replace(
            r#"<Answer Value="Yes" GUID="{8E714C78-05B8-45d1-9B50-D737EF7AD682}">"#,
            r#"<Answer Value="Yes" GUID="{8E714C78-05B8-45d1-9B50-D737EF7AD682}" Selected="Yes">"#,
        )
        .replace(
            r#"<NTService ID="{B64F63FA-E24E-4991-86F0-ED9F65B68A98}"><UserName /><Domain /><Password /></NTService>"#,
            r#"<NTService ID="{B64F63FA-E24E-4991-86F0-ED9F65B68A98}"><UserName>svc-bts</UserName><Domain>CONTOSO</Domain><Password>x</Password></NTService>"#,
        );
    assert_eq!(join(&mut lab, "DRBTS01", &xml).0, 0);
    assert!(lab.group.hosts.iter().any(|h| h.name == "BizTalkServerApplication" && h.host_type == 1));
    let instance = lab.group.host_instances.last().expect("instance");
    assert_eq!(instance.name, "Microsoft BizTalk Server BizTalkServerApplication DRBTS01");
    let service = lab.servers["DRBTS01"].service("BTSSvc$BizTalkServerApplication").expect("service");
    assert_eq!(service.account, r"CONTOSO\svc-bts");
}

#[test]
fn unconfigure_leaves_the_group() {
    let mut lab = fresh_lab();
    let out = exec(&mut lab, "PRDBTS02", &[EXE, "/U", "/L", LOG]);
    assert_eq!(out.code, 0);
    let log = exec(&mut lab, "PRDBTS02", &["cat", LOG]).stdout_text();
    assert!(
        log.starts_with(
            "[2026-11-22 10:15:01:0000 Info Configuration Framework]Unconfiguring feature: RulesEngine\n"
        ),
        "{log}"
    );
    assert!(log.ends_with("Info Configuration Framework]Unconfiguring feature: SSOServer,Engine\n"), "{log}");
    let server = &lab.servers["PRDBTS02"];
    assert!(server.reg_value(ADMIN_KEY, "MgmtDBServer").is_none());
    assert!(server.service("BTSSvc$SendHost").is_none() && server.service("BTSSvc$ProcessingHost").is_none());
    assert!(!lab.is_member("PRDBTS02"));
    assert!(lab.group.host_instances.iter().all(|i| i.server != "PRDBTS02"));
    assert_eq!(lab.group.host_instances.len(), 3, "PRDBTS01's, its isolated host's included");
    assert_eq!(lab.unjoins, ["PRDBTS02"]);
    assert!(lab.uninstalls.is_empty(), "removed with the server, not uninstalled one by one");
    // Unconfiguring a server that is not joined changes nothing and is not listed.
    assert_eq!(exec(&mut lab, "PRDBTS02", &[EXE, "/U", "/L", LOG]).code, 0);
    assert_eq!(lab.unjoins, ["PRDBTS02"]);
    // And it can join again.
    assert_eq!(join(&mut lab, "PRDBTS02", JOIN_XML).0, 0);
    assert!(lab.is_member("PRDBTS02"));
}

#[test]
fn other_command_lines_are_unsupported() {
    let mut lab = fresh_lab();
    for argv in [
        vec![EXE, "/S", XML],
        vec![EXE, "/s", XML, "/l", LOG],
        vec![EXE, "/S", XML, "/U", "/L", LOG],
        vec![EXE, "/H"],
        vec![EXE],
    ] {
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).code, 9009, "{argv:?}");
    }
}

#[test]
fn a_replaced_server_joins_again_once() {
    let mut lab = fresh_lab();
    crate::replace::replace(&mut lab, "PRDBTS02", None).expect("replaced");
    let (code, log) = join(&mut lab, "PRDBTS02", JOIN_XML);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Info Configuration Framework]Configuring feature: WMI"), "{log}");
    let server = &lab.servers["PRDBTS02"];
    assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBServer"), Some(&RegValue::Sz("PRDSQL01".into())));
    assert_eq!(lab.group.members, ["PRDBTS01", "PRDBTS02"], "still listed once");
    assert_eq!(lab.joins, ["PRDBTS02"]);
    assert_eq!(lab.group.host_instances.len(), 5, "its rows stay");
    assert!(server.service("BTSSvc$SendHost").is_none(), "a join re-creates no host-instance service");

    let (code, _) = join(&mut lab, "PRDBTS02", JOIN_XML);
    assert_eq!(code, 0);
    assert_eq!(lab.joins, ["PRDBTS02"], "already configured: not joined twice");
}

#[test]
fn standard_edition_cannot_join_a_group() {
    let mut lab = crate::init::fresh_lab_of(crate::state::Edition::Standard);
    crate::replace::replace(&mut lab, "PRDBTS02", None).expect("replaced");
    assert_eq!(
        join(&mut lab, "PRDBTS02", JOIN_XML),
        (
            1,
            error_log(
                "BizTalk Server Standard Edition cannot join an existing BizTalk group. Restore the saved configuration of this computer with RestoreConfig.vbe."
            )
        )
    );
    assert!(lab.servers["PRDBTS02"].reg_value(ADMIN_KEY, "MgmtDBServer").is_none());
    assert!(lab.joins.is_empty());
    // A configured server of a Standard Edition group is already joined: nothing to refuse.
    assert_eq!(join(&mut lab, "PRDBTS01", JOIN_XML).0, 0);
}

// Configuration failures (E2)
#[test]
fn a_stopped_sso_service_on_the_master_secret_server_fails_the_join_before_anything_is_configured() {
    let mut lab = fresh_lab();
    lab.faults.push(Fault::SsoStopped { server: "PRDSSO01".into() });
    let before = lab.servers["DRBTS01"].clone();
    let (code, log) = join(&mut lab, "DRBTS01", JOIN_XML);
    assert_eq!(code, 1);
    assert_eq!(
        log,
        "[10:15:01 Error SSOServerCfg] 0xC0002A0F : Could not contact the SSO server 'PRDSSO01'. Check that SSO is configured and that the SSO service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)\n"
    );
    let mut after = lab.servers["DRBTS01"].clone();
    after.files.clear();
    let mut expected = before;
    expected.files.clear();
    assert_eq!(after, expected, "nothing was configured");
    let query = exec(&mut lab, "PRDSSO01", &["sc.exe", "query", "ENTSSO"]).stdout_text();
    assert!(query.contains("1  STOPPED"), "sc query shows the service stopped: {query}");
    lab.faults.clear();
    let query = exec(&mut lab, "PRDSSO01", &["sc.exe", "query", "ENTSSO"]).stdout_text();
    assert!(query.contains("4  RUNNING"), "{query}");
    assert_eq!(join(&mut lab, "DRBTS01", JOIN_XML).0, 0, "cleared, the join goes through");
}

#[test]
fn a_master_secret_out_of_reach_fails_the_join_of_that_server_only() {
    let mut lab = fresh_lab();
    lab.faults.push(Fault::MasterSecretUnavailable { server: Some("DRBTS02".into()) });
    let (code, log) = join(&mut lab, "DRBTS02", JOIN_XML);
    assert_eq!(code, 1);
    assert_eq!(
        log,
        "[10:15:01 Warning SSOServerCfg] Failed to retrieve master secrets. Verify that the master secret server name is correct and that it is available. Secret Server Name: PRDSSO01 Error Code: 0xC0002919, Could not load secrets from the registry of the master secret server.\n\
         [10:15:01 Error SSOServerCfg] 0xC0002A1F : Cannot perform encryption or decryption because the secret is not available from the master secret server. See the event log for related errors.\n"
    );
    assert!(lab.servers["DRBTS02"].configured_features.is_empty());
    assert_eq!(join(&mut lab, "DRBTS01", JOIN_XML).0, 0, "another server is not held");
}

#[test]
fn a_group_feature_failing_after_sso_leaves_a_half_configured_server_that_unconfigure_cleans() {
    let mut lab = fresh_lab();
    lab.faults.push(Fault::JoinFailsAfterSso { server: "DRBTS01".into() });
    let (code, log) = join(&mut lab, "DRBTS01", JOIN_XML);
    assert_eq!(code, 1);
    assert!(log.contains("Configuring feature: SSOServer,Engine\n"), "{log}");
    assert!(
        log.ends_with(
            "[10:15:01 Error ConfigHelper] Failed to configure feature WMI: the BizTalk Server group could not be joined.\n"
        ),
        "{log}"
    );
    let server = &lab.servers["DRBTS01"];
    assert_eq!(server.configured_features, ["SSOServer,Engine"]);
    assert_eq!(server.reg_value(ENTSSO_SQL_KEY, "Server"), Some(&RegValue::Sz("PRDSQL01".into())));
    assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBServer"), None, "not in the group");
    assert!(!lab.group.members.iter().any(|m| m == "DRBTS01") && lab.joins.is_empty());

    // Unconfigured, the server is clean again; with the fault gone it joins.
    lab.faults.clear();
    assert_eq!(exec(&mut lab, "DRBTS01", &[EXE, "/U", "/L", LOG]).code, 0);
    let server = &lab.servers["DRBTS01"];
    assert!(server.configured_features.is_empty());
    assert_eq!(server.reg_value(ENTSSO_SQL_KEY, "Server"), None);
    assert_eq!(join(&mut lab, "DRBTS01", JOIN_XML).0, 0);
    assert_eq!(lab.joins, ["DRBTS01"]);
}
