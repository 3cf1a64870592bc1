//! Native tests through the fake host, answering with the exact outputs of `lab/PROTOCOL.md`.
//! A recording wrapper around the fake host keeps every file operation in order, with what was
//! written, so the tests see the rendered XML and its removal.

use biztalk_common::testing::{
    self, JOIN_XML as RENDERED, REG_NAME, REG_SERVER, UNCONFIGURATION_LOG, join_input as input,
    unconfiguration_ops,
};
use serde_json::json;

use super::*;

/// The fake host, with every file operation and exec recorded in order.
type Recorder = testing::Recorder<JoinGroup>;

const SERVER: &str = "DRBTS02";
const XML: &str = r"C:\Drover\join-DRBTS02.xml";
const LOG: &str = r"C:\Drover\join-DRBTS02.log";
const UNJOIN_LOG: &str = r"C:\Drover\unjoin-DRBTS02.log";
const ENTSSO_PASSWORD: &str = "Ent&S5o<pass>";

/// A successful join's log, in the form of the 2018 capture (`lab/PROTOCOL.md`).
const SUCCESS_LOG: &str =
    "[2026-11-22 10:15:01:0000 Info Configuration Framework]Building feature XML for: SSOServer,Engine
[2026-11-22 10:15:01:0000 Info Configuration Framework]Validating feature: SSOServer,Engine
[2026-11-22 10:15:02:0000 Info Configuration Framework]Configuring feature: SSOServer,Engine
[2026-11-22 10:15:04:0000 Info Configuration Framework]Configuring feature: WMI
[2026-11-22 10:15:05:0000 Info Configuration Framework]Configuring feature: Engine,BTSCfg
[2026-11-22 10:15:06:0000 Info Configuration Framework]Configuring feature: RulesEngine
";

/// The 2006 capture's SQL failure, word for word.
const UNREACHABLE_LOG: &str = "[10:15:05 Error ConfigHelper] [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.
[10:15:05 Error ConfigHelper] SQL error: 08001 Native error code: 17
[10:15:05 Error ConfigHelper] c:\\depotsetupv2\\private\\common\\configwizard\\confighelper\\sqlhelper.cpp(1176): FAILED hr = 80004005
";

fn recorder() -> Recorder {
    Recorder::new(SERVER, ENTSSO_PASSWORD)
}

/// Scripts of this plugin's own runs.
trait Scripts {
    /// Scripts the join's Configuration.exe run: exit code and the log it writes.
    fn configuration(&self, exit: i32, log: Option<&str>);
    /// Scripts the ENTSSO probe: in the SSO system on `PRDSQL01/SSODB`, or in none.
    fn sso(&self, joined: bool);
    /// Scripts the probes of a server in no group and no SSO system.
    fn fresh(&self);
}

impl Scripts for Recorder {
    fn fresh(&self) {
        self.not_joined();
        self.sso(false);
    }

    fn sso(&self, joined: bool) {
        sso::tests::sso_probe_on(self, SERVER, joined);
    }

    fn configuration(&self, exit: i32, log: Option<&str>) {
        let args = ["/S", XML, "/L", LOG];
        match log {
            Some(log) => self.host.script_exec_writing(
                SERVER,
                CONFIGURATION_EXE,
                &args,
                ExecOutput::exited(exit, ""),
                LOG,
                log,
            ),
            None => self.host.script_exec(SERVER, CONFIGURATION_EXE, &args, ExecOutput::exited(exit, "")),
        }
    }
}

/// The recorded op of the ENTSSO probe (`Server`; `Database` when it is there).
const SSO_SERVER: &str = r"exec reg query HKLM\SOFTWARE\Microsoft\ENTSSO\SQL /v Server";
const SSO_DB: &str = r"exec reg query HKLM\SOFTWARE\Microsoft\ENTSSO\SQL /v Database";

/// Asserts that the rendered file was removed, and only the ENTSSO probe of a failed run came
/// after.
#[track_caller]
fn assert_removed_then_probed(rec: &Recorder) {
    let ops = rec.ops();
    assert_eq!(ops[ops.len() - 2..], [format!("remove {XML}"), SSO_SERVER.to_string()], "{ops:?}");
    assert_eq!(rec.host.file(SERVER, XML), None, "{XML} must be gone");
}

const CONFIGURE: &str = r#"exec C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe /S C:\Drover\join-DRBTS02.xml /L C:\Drover\join-DRBTS02.log"#;

#[test]
fn joins_a_server_that_is_not_joined() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(0, Some(SUCCESS_LOG));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.summary, "joined DRBTS02 to the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(outcome.output["joined_to"], "PRDSQL01/BizTalkMgmtDb");
    assert_eq!(
        outcome.output["features"],
        json!(["SSOServer,Engine", "WMI", "Engine,BTSCfg", "RulesEngine"])
    );
    assert!(outcome.output["log_excerpt"].as_str().unwrap().starts_with(
        "[2026-11-22 10:15:01:0000 Info Configuration Framework]Building feature XML for: SSOServer,Engine"
    ));
    assert_eq!(
        rec.ops(),
        [
            REG_SERVER,
            SSO_SERVER,
            &format!("remove {LOG}"),
            &format!("write {XML}"),
            CONFIGURE,
            &format!("read {LOG}"),
            &format!("remove {XML}"),
            REG_SERVER,
            REG_NAME,
        ]
    );
    assert!(rec.host.unused_scripts().is_empty(), "{:?}", rec.host.unused_scripts());
    assert_eq!(rec.host.file(SERVER, XML), None, "the rendered file holds passwords and must be gone");
    let labels: Vec<&str> = outcome.evidence.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "registry MgmtDBServer",
            "registry ENTSSO Server",
            r"rendered configuration C:\Drover\join-DRBTS02.xml",
            "Configuration.exe",
            r"configuration log C:\Drover\join-DRBTS02.log",
            "removed the rendered configuration",
            "registry MgmtDBServer",
            "registry MgmtDBName",
        ]
    );
}

#[test]
fn renders_the_join_template_with_secret_references() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(0, Some(SUCCESS_LOG));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.call(Mode::Apply, input()).unwrap();
    let written = rec.written.borrow();
    assert_eq!(written.len(), 1);
    let (path, xml) = &written[0];
    assert_eq!(path, XML);
    assert_eq!(xml, RENDERED);
    for answer in [
        r#"<Answer Value="Join" GUID="{B9432756-1620-4bec-8CD9-E6D0B7805AA5}" Selected="Yes" />"#,
        r#"<Answer Value="Join" GUID="{4D12E6A3-552E-4936-9DD3-59E1190FA324}" Selected="Yes" />"#,
        r#"<Answer Value="No" GUID="{D9164C48-8179-4a40-912D-1BF4C3EFE70B}" Selected="Yes" />"#,
        r#"<Answer Value="No" GUID="{5782A1A5-8578-4942-9CBB-E443A15A0B99}" Selected="Yes" />"#,
        "<Password>@@secret:entsso-password:xml@@</Password>",
        "<Password>@@secret:rules-engine-password:xml@@</Password>",
    ] {
        assert!(xml.contains(answer), "{answer} missing");
    }
    assert_eq!(xml.matches("Selected=\"Yes\"").count(), 4);
    assert!(!xml.contains(ENTSSO_PASSWORD) && !xml.contains("Ent&amp;S5o"));
    assert!(!rec.ops().iter().any(|op| op.starts_with("secret ")), "the plugin must never reveal a secret");
}

#[test]
fn named_secrets_and_a_separate_rules_server_are_rendered() {
    let mut input = input();
    input["group"]["rules_server"] = json!("PRDSQL02");
    input["service_accounts"]["entsso"]["password_secret"] = json!("prod.entsso_pw");
    let settings = join_settings(&serde_json::from_value(input).unwrap());
    assert_eq!(settings.entsso.password_secret, "prod.entsso_pw");
    assert_eq!(settings.rules_engine.password_secret, "rules-engine-password");
    assert_eq!(settings.rules_db.server, "PRDSQL02");
    assert_eq!(settings.sso_db.name, "SSODB");
}

#[test]
fn an_already_joined_server_is_left_alone() {
    let rec = recorder();
    rec.joined("prdsql01", "BizTalkMgmtDb");
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.summary, "DRBTS02 is already joined to the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(
        outcome.output,
        json!({"joined_to": "PRDSQL01/BizTalkMgmtDb", "features": [], "log_excerpt": ""})
    );
    // Only the probe, and the removal of a leftover from an interrupted attempt: no write, no
    // Configuration.exe.
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME, &format!("remove {XML}")]);
    assert!(rec.written.borrow().is_empty());
    assert_eq!(outcome.evidence.len(), 2);
    assert_eq!(outcome.evidence[0].command.as_deref(), Some(&REG_SERVER["exec ".len()..]));
    assert_eq!(
        outcome.evidence[0].excerpt,
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    prdsql01"
    );
}

#[test]
fn a_server_of_another_group_is_a_permanent_error() {
    let rec = recorder();
    rec.joined("OTHERSQL", "BizTalkMgmtDb");
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "DRBTS02 is joined to another group OTHERSQL/BizTalkMgmtDb; unconfigure it first"
        )
    );
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME]);
}

#[test]
fn an_unreachable_sql_server_is_retryable_and_the_file_is_removed() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(1, Some(UNREACHABLE_LOG));
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::retryable(
            "configuration of DRBTS02 failed: the group's SQL Server did not answer: [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.\nSQL error: 08001 Native error code: 17\nc:\\depotsetupv2\\private\\common\\configwizard\\confighelper\\sqlhelper.cpp(1176): FAILED hr = 80004005"
        )
    );
    assert_removed_then_probed(&rec);
}

#[test]
fn a_refused_logon_is_permanent() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(
        1,
        Some("[10:15:05 Error ConfigHelper] Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n[10:15:05 Error ConfigHelper] SQL error: 28000 Native error code: 18456\n"),
    );
    let StepError::Permanent(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(
        message.starts_with("configuration of DRBTS02 failed: SQL Server refused the logon"),
        "{message}"
    );
    assert!(message.ends_with("SQL error: 28000 Native error code: 18456"), "{message}");
}

/// Errors Drover has no source for (the lab's own wording) need an operator, with the raw log.
#[test]
fn an_error_drover_does_not_know_needs_an_operator_with_the_log() {
    let rec = recorder();
    rec.fresh();
    let log = "[10:15:05 Error ConfigHelper] The password of ENTSSO is empty.\n";
    rec.configuration(1, Some(log));
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::needs_operator(
            "Configuration.exe on DRBTS02 answered in a way Drover does not recognise (it failed with exit code 1 and errors Drover does not know); read its output, then retry or skip the step by hand\nexit code: 1\nlog C:\\Drover\\join-DRBTS02.log:\n  [10:15:05 Error ConfigHelper] The password of ENTSSO is empty.\nstdout: (empty)\nstderr: (empty)"
        )
    );
    assert_removed_then_probed(&rec);
}

#[test]
fn a_failed_exit_without_log_needs_an_operator() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(1, None);
    let StepError::NeedsOperator(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(message.contains("(it failed with exit code 1 and no Error line in its log)"), "{message}");
    assert!(message.contains("log C:\\Drover\\join-DRBTS02.log: (empty)"), "{message}");
    assert_eq!(rec.host.file(SERVER, XML), None);
}

/// A log in a form Drover does not read (another version's, a localised one) is never a
/// success, even with exit code 0 and the registry agreeing.
#[test]
fn a_success_in_words_drover_does_not_know_needs_an_operator() {
    for log in [
        "[2026-11-22 10:15:01] Info  ConfigHelper: Feature SSO configured successfully\n",
        "Konfiguration abgeschlossen.\n",
        "[10:15:01 Error ConfigHelper] something odd\n",
    ] {
        let rec = recorder();
        rec.fresh();
        rec.configuration(0, Some(log));
        let StepError::NeedsOperator(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
        assert!(
            message.starts_with(
                "Configuration.exe on DRBTS02 answered in a way Drover does not recognise (it exited 0 "
            ),
            "{message}"
        );
        assert!(message.contains(log.trim_end()), "the raw log is in the message: {message}");
        assert!(!rec.ops().contains(&REG_NAME.to_string()), "not verified as a success: {:?}", rec.ops());
    }
}

#[test]
fn a_lost_connection_during_configuration_still_removes_the_file() {
    let rec = recorder();
    rec.fresh();
    rec.host.script_exec_error(
        SERVER,
        CONFIGURATION_EXE,
        &["/S", XML, "/L", LOG],
        HostError::new(HostErrorKind::Retryable, "connection to DRBTS02 lost"),
    );
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(err, StepError::retryable("connection to DRBTS02 lost"));
    assert_removed_then_probed(&rec);
}

#[test]
fn a_file_that_cannot_be_removed_fails_the_step() {
    let rec = recorder();
    rec.fail_xml_removal.set(true);
    rec.fresh();
    rec.configuration(0, Some(SUCCESS_LOG));
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::retryable(
            r"joined, but C:\Drover\join-DRBTS02.xml (it holds passwords) could not be removed: DRBTS02 did not answer"
        )
    );
    // The retry finds the server joined and removes the leftover.
    rec.fail_xml_removal.set(false);
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    assert!(!rec.call(Mode::Apply, input()).unwrap().changed);
    assert_eq!(rec.host.file(SERVER, XML), None);
}

#[test]
fn a_configuration_error_names_a_failed_removal_too() {
    let rec = recorder();
    rec.fail_xml_removal.set(true);
    rec.fresh();
    rec.configuration(1, Some(UNREACHABLE_LOG));
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    let StepError::Retryable(message) = err else { panic!("{err:?}") };
    assert!(
        message.starts_with("configuration of DRBTS02 failed: the group's SQL Server did not answer"),
        "{message}"
    );
    assert!(
        message.ends_with(r"; also, C:\Drover\join-DRBTS02.xml (it holds passwords) could not be removed: DRBTS02 did not answer"),
        "{message}"
    );
}

#[test]
fn a_success_the_registry_does_not_confirm_is_permanent() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(0, Some(SUCCESS_LOG));
    rec.not_joined();
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "Configuration.exe succeeded but DRBTS02 is not joined to any group, not joined to PRDSQL01/BizTalkMgmtDb"
        )
    );
}

#[test]
fn check_only_probes() {
    let rec = recorder();
    rec.fresh();
    let outcome = rec.call(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.summary, "would join DRBTS02 to the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(rec.ops(), [REG_SERVER, SSO_SERVER]);

    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    assert!(!rec.call(Mode::Check, input()).unwrap().changed);
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME, r"read C:\Drover\join-DRBTS02.xml"]);

    // Joined, but an interrupted attempt left the rendered file: apply has something to do.
    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    drover_sdk::HostApi::write_file(&rec.host, SERVER, r"C:\Drover\join-DRBTS02.xml", b"<Configuration/>")
        .unwrap();
    let outcome = rec.call(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        r"DRBTS02 is joined; would remove the leftover configuration file C:\Drover\join-DRBTS02.xml"
    );

    let rec = recorder();
    rec.joined("OTHERSQL", "OtherMgmtDb");
    assert!(matches!(rec.call(Mode::Check, input()), Err(StepError::Permanent(_))));
}

#[test]
fn compensate_unconfigures_and_verifies() {
    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.unconfiguration(UNJOIN_LOG, Some(UNCONFIGURATION_LOG));
    rec.not_joined();
    let outcome = rec.call(Mode::Compensate, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.summary, "unconfigured DRBTS02; it left the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(outcome.output["joined_to"], "");
    assert_eq!(outcome.output["log_excerpt"], UNCONFIGURATION_LOG.trim_end());
    assert_eq!(rec.ops(), unconfiguration_ops(UNJOIN_LOG));
    assert!(rec.host.unused_scripts().is_empty());
}

#[test]
fn compensate_leaves_unjoined_and_foreign_servers_alone() {
    let rec = recorder();
    rec.not_joined();
    assert!(!rec.call(Mode::Compensate, input()).unwrap().changed);
    assert_eq!(rec.ops(), [REG_SERVER]);

    let rec = recorder();
    rec.joined("OTHERSQL", "BizTalkMgmtDb");
    let err = rec.call(Mode::Compensate, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "DRBTS02 is joined to another group OTHERSQL/BizTalkMgmtDb, not PRDSQL01/BizTalkMgmtDb; leaving it alone"
        )
    );
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME]);
}

#[test]
fn compensate_fails_when_the_server_stays_joined() {
    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.unconfiguration(UNJOIN_LOG, Some(UNCONFIGURATION_LOG));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    let err = rec.call(Mode::Compensate, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "Configuration.exe /U succeeded but DRBTS02 is still joined to PRDSQL01/BizTalkMgmtDb"
        )
    );
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let rec = recorder();
    let mut bad = input();
    bad["service_accounts"]["rules_engine"]["password_secret"] = json!("my secret");
    let err = rec.call(Mode::Apply, bad).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(r#"password_secret "my secret" is not a secret name (letters, digits, - _ .)"#)
    );
    let mut empty = input();
    empty["installed_features"] = json!([]);
    assert!(
        matches!(rec.call(Mode::Apply, empty), Err(StepError::Permanent(m)) if m.starts_with("installed_features is empty"))
    );
    assert!(rec.ops().is_empty());
    let mut unknown = input();
    unknown["group"]["msgbox_db"] = json!("x");
    assert!(rec.call(Mode::Apply, unknown).is_err());
}

#[test]
fn a_custom_work_dir_names_the_files() {
    let paths = Paths::new(r"D:\DR\work\", "DRBTS03");
    assert_eq!(paths.xml, r"D:\DR\work\join-DRBTS03.xml");
    assert_eq!(paths.log, r"D:\DR\work\join-DRBTS03.log");
    assert_eq!(paths.unjoin_log, r"D:\DR\work\unjoin-DRBTS03.log");
}

#[test]
fn describes_itself_as_reversible_and_compensable() {
    let d = <JoinGroup as Plugin>::describe();
    assert_eq!(d.name(), "join-group");
    assert_eq!(d.version(), "1.0.0");
    assert_eq!(d.effect(), Effect::Reversible);
}

/// What the lab's Configuration.exe writes when the master secret server's ENTSSO is stopped.
const SSO_STOPPED_LOG: &str = "[10:15:01 Error SSOServerCfg] 0xC0002A0F : Could not contact the SSO server 'PRDSSO01'. Check that SSO is configured and that the SSO service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)\n";

/// What it writes when the master secret cannot be retrieved.
const NO_SECRET_LOG: &str = "[10:15:01 Warning SSOServerCfg] Failed to retrieve master secrets. Verify that the master secret server name is correct and that it is available. Secret Server Name: PRDSSO01 Error Code: 0xC0002919, Could not load secrets from the registry of the master secret server.
[10:15:01 Error SSOServerCfg] 0xC0002A1F : Cannot perform encryption or decryption because the secret is not available from the master secret server. See the event log for related errors.
";

/// What it writes when the group feature fails after SSO was configured.
const STOPPED_AFTER_SSO_LOG: &str =
    "[2026-11-22 10:15:01:0000 Info Configuration Framework]Configuring feature: SSOServer,Engine
[2026-11-22 10:15:01:0000 Info Configuration Framework]Configuring feature: WMI
[10:15:01 Error ConfigHelper] Failed to configure feature WMI: the BizTalk Server group could not be joined.
";

#[test]
fn a_stopped_sso_service_on_the_master_secret_server_is_retryable_and_says_where_to_start_it() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(1, Some(SSO_STOPPED_LOG));
    rec.sso(false);
    let StepError::Retryable(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(
        message.starts_with(
            "configuration of DRBTS02 failed: the Enterprise SSO service (ENTSSO) on the master secret server \
             PRDSSO01 is not running or does not answer, so DRBTS02 cannot join the SSO system; start ENTSSO on \
             PRDSSO01"
        ),
        "{message}"
    );
    assert!(message.ends_with("0xC0002A0F : Could not contact the SSO server 'PRDSSO01'. Check that SSO is configured and that the SSO service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)"), "{message}");
    assert_removed_then_probed(&rec);
    assert!(rec.host.unused_scripts().is_empty(), "{:?}", rec.host.unused_scripts());
}

#[test]
fn a_master_secret_out_of_reach_is_permanent_and_names_the_restore() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(1, Some(NO_SECRET_LOG));
    rec.sso(false);
    let StepError::Permanent(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(
        message.starts_with(
            "configuration of DRBTS02 failed: the Enterprise SSO master secret cannot be retrieved from the master \
             secret server PRDSSO01 (ENTSSO events 10520/10521"
        ),
        "{message}"
    );
    assert!(message.contains("ssoconfig -restoreSecret <backup file>"), "{message}");
    assert!(message.ends_with("See the event log for related errors."), "{message}");
}

#[test]
fn a_half_configured_server_is_refused_before_configuration_exe_runs() {
    for mode in [Mode::Check, Mode::Apply] {
        let rec = recorder();
        rec.not_joined();
        rec.sso(true);
        let err = rec.call(mode, input()).unwrap_err();
        let StepError::Permanent(message) = err else { panic!("{err:?}") };
        assert_eq!(
            message,
            "DRBTS02 is half-configured by an earlier configuration: Enterprise SSO is configured on it (SSO system \
             PRDSQL01/SSODB) but it is in no BizTalk group (no MgmtDBServer in the 32-bit registry view), not the \
             group on PRDSQL01/BizTalkMgmtDb; unconfigure it on DRBTS02 (Configuration.exe /U /L <log>, or \
             Unconfigure Features in the BizTalk Server Configuration tool) and retry this step to join it again, or \
             finish the configuration in the Configuration tool, after which this step finds it joined; Drover does \
             not run Configuration.exe over it again"
        );
        assert_eq!(rec.ops(), [REG_SERVER, SSO_SERVER, SSO_DB], "nothing written, nothing run");
    }
}

#[test]
fn a_configuration_that_stops_after_sso_is_told_as_a_half_configured_server() {
    let rec = recorder();
    rec.fresh();
    rec.configuration(1, Some(STOPPED_AFTER_SSO_LOG));
    rec.sso(true);
    let StepError::Permanent(message) = rec.call(Mode::Apply, input()).unwrap_err() else { panic!() };
    assert!(message.starts_with("DRBTS02 is half-configured by an earlier configuration"), "{message}");
    assert!(
        message.contains(
            "; it stopped after configuring Enterprise SSO: Configuration.exe on DRBTS02 answered in a way Drover \
             does not recognise"
        ),
        "{message}"
    );
    assert!(
        message.contains("the BizTalk Server group could not be joined."),
        "the log is quoted: {message}"
    );
    assert_eq!(rec.host.file(SERVER, XML), None);
}

#[test]
fn a_registry_answer_drover_does_not_know_needs_an_operator() {
    let rec = recorder();
    let args =
        biztalk_common::reg::query_args_32(biztalk_common::reg::BIZTALK_ADMINISTRATION, "MgmtDBServer");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let denied = ExecOutput {
        exit_code: Some(1),
        stderr: "FEHLER: Zugriff verweigert\n".into(),
        ..Default::default()
    };
    rec.host.script_exec(SERVER, "reg", &args, denied);
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("on DRBTS02 answered in a way Drover does not recognise"), "{err}");
    assert!(err.message().contains("FEHLER: Zugriff verweigert"), "the raw text: {err}");
    assert!(!rec.ops().iter().any(|op| op.contains("Configuration.exe")), "nothing ran: {:?}", rec.ops());
}
