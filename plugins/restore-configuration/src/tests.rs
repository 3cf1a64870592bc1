//! Native tests through the fake host, answering with the exact outputs of `lab/PROTOCOL.md`.
//! A recording wrapper around the fake host keeps every file operation and exec in order, with
//! what was written, so the tests see the saved configuration and its removal.

use biztalk_common::testing::{
    self, REG_NAME, REG_SERVER, UNCONFIGURATION_LOG, join_input as input, unconfiguration_ops,
};
use drover_sdk::HostApi;
use serde_json::{Value, json};

use super::*;

/// The fake host, with every file operation and exec recorded in order.
type Recorder = testing::Recorder<RestoreConfiguration>;

const SERVER: &str = "PRDBTS02";
const XML: &str = r"C:\Drover\restore-PRDBTS02.xml";
const UNRESTORE_LOG: &str = r"C:\Drover\unrestore-PRDBTS02.log";
const CSCRIPT: &str = r"C:\Windows\SysWOW64\cscript.exe";
const SCRIPT: &str =
    r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\RestoreConfig.vbe";
/// What the script prints when it succeeded: nothing ("should exit without displaying any
/// errors", Microsoft Learn's "How to Recover the BizTalk Group").
const SUCCESS: &str = "";

/// The file written to the target, before the host fills in the two secret references.
fn saved() -> String {
    testing::saved_xml(SERVER)
}

fn recorder() -> Recorder {
    Recorder::new(SERVER, "Ent-Pa55")
}

/// Scripts of this plugin's own runs.
trait Scripts {
    /// Scripts the RestoreConfig.vbe run.
    fn restore(&self, output: ExecOutput);
    /// Scripts a RestoreConfig.vbe run that fails, saying `stderr`.
    fn restore_fails(&self, stderr: &str);
}

impl Scripts for Recorder {
    fn restore(&self, output: ExecOutput) {
        self.host.script_exec(SERVER, CSCRIPT, &["//nologo", SCRIPT, XML], output);
    }

    fn restore_fails(&self, stderr: &str) {
        self.restore(ExecOutput { exit_code: Some(1), stderr: stderr.into(), ..Default::default() });
    }
}

fn restore_op() -> String {
    format!(r#"exec {CSCRIPT} //nologo "{SCRIPT}" {XML}"#)
}

#[test]
fn restores_a_server_that_is_not_joined() {
    let rec = recorder();
    rec.not_joined();
    rec.restore(ExecOutput::exited(0, SUCCESS));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        "restored the configuration of PRDBTS02 with RestoreConfig.vbe; joined to the group on PRDSQL01/BizTalkMgmtDb"
    );
    assert_eq!(
        outcome.output,
        json!({
            "joined_to": "PRDSQL01/BizTalkMgmtDb",
            "computer_name": "PRDBTS02",
            "output_excerpt": ""
        })
    );
    assert_eq!(
        rec.ops(),
        [REG_SERVER, &format!("write {XML}"), &restore_op(), &format!("remove {XML}"), REG_SERVER, REG_NAME]
    );
    // The exact argv: the 32-bit script host, //nologo, the script, the saved file.
    let call = rec.host.exec_calls().into_iter().find(|c| c.program == CSCRIPT).expect("cscript ran");
    assert_eq!(call.args, ["//nologo", SCRIPT, XML]);
    assert_eq!(call.target, SERVER);
    assert!(rec.host.unused_scripts().is_empty(), "{:?}", rec.host.unused_scripts());
    assert_eq!(rec.host.file(SERVER, XML), None, "the saved file holds passwords and must be gone");
    let labels: Vec<&str> = outcome.evidence.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "registry MgmtDBServer",
            r"saved configuration C:\Drover\restore-PRDBTS02.xml",
            "RestoreConfig.vbe",
            "removed the saved configuration",
            "registry MgmtDBServer",
            "registry MgmtDBName",
        ]
    );
}

#[test]
fn renders_the_saved_configuration_with_secret_references_and_the_computer_name() {
    let rec = recorder();
    rec.not_joined();
    rec.restore(ExecOutput::exited(0, SUCCESS));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.call(Mode::Apply, input()).unwrap();
    let written = rec.written.borrow();
    assert_eq!(written.len(), 1);
    let (path, xml) = &written[0];
    assert_eq!(path, XML);
    assert_eq!(*xml, saved());
    assert!(!xml.contains("Ent-Pa55"));
    assert!(!rec.ops().iter().any(|op| op.starts_with("secret ")), "the plugin must never reveal a secret");
}

#[test]
fn a_saved_file_given_as_text_is_written_as_it_is() {
    let rec = recorder();
    rec.not_joined();
    rec.restore(ExecOutput::exited(0, SUCCESS));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    let saved = saved().replace("svc-sso", "svc-sso-2");
    let input = json!({
        "group": { "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" },
        "saved_configuration": saved,
        "restore_script": SCRIPT,
    });
    let outcome = rec.call(Mode::Apply, input).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["computer_name"], "");
    assert_eq!(rec.written.borrow()[0].1, saved);
    assert_eq!(rec.host.file(SERVER, XML), None);
}

#[test]
fn another_computer_name_is_written_when_asked() {
    let rec = recorder();
    rec.not_joined();
    rec.restore_fails("RestoreConfig failed: The configuration file was saved on computer PRDBTS09, not on PRDBTS02. Standard Edition requires a computer with the same name.\n");
    let mut input = input();
    input["computer_name"] = json!("PRDBTS09");
    let err = rec.call(Mode::Apply, input).unwrap_err();
    let StepError::NeedsOperator(message) = err else { panic!("{err:?}") };
    assert!(message.ends_with("stderr:\n  RestoreConfig failed: The configuration file was saved on computer PRDBTS09, not on PRDBTS02. Standard Edition requires a computer with the same name."), "{message}");
    assert!(rec.written.borrow()[0].1.contains(r#"<Configuration ComputerName="PRDBTS09">"#));
    assert_eq!(rec.host.file(SERVER, XML), None);
}

#[test]
fn an_already_joined_server_is_left_alone() {
    let rec = recorder();
    rec.joined("prdsql01", "bizTalkMgmtDb");
    let outcome = rec.call(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.summary, "PRDBTS02 is already joined to the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(
        outcome.output,
        json!({"joined_to": "PRDSQL01/BizTalkMgmtDb", "computer_name": "", "output_excerpt": ""})
    );
    // Only the probe, and the removal of a leftover from an interrupted attempt.
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME, &format!("remove {XML}")]);
    assert!(rec.written.borrow().is_empty());
}

#[test]
fn a_server_of_another_group_is_a_permanent_error() {
    let rec = recorder();
    rec.joined("OTHERSQL", "BizTalkMgmtDb");
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "PRDBTS02 is joined to OTHERSQL/BizTalkMgmtDb, another group; unconfigure it first"
        )
    );
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME]);
}

/// RestoreConfig.vbe's failure messages are not public: whatever it says on a failure, and any
/// text it prints on a success, needs an operator, with the raw output in the message.
#[test]
fn every_answer_but_silence_needs_an_operator_and_the_file_is_removed() {
    let cases = [
        (
            1,
            "",
            "RestoreConfig failed: Cannot connect to SQL Server PRDSQL01: Login timeout expired.\n",
            "it failed with exit code 1",
        ),
        (
            1,
            "",
            "C:\\Program Files (x86)\\Microsoft BizTalk Server\\Bins32\\Schema\\Restore\\RestoreConfig.vbe(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object\n",
            "it failed with exit code 1",
        ),
        (
            1,
            "",
            "RestoreConfig.vbe supports BizTalk Server Standard Edition only; this computer runs Enterprise Edition. Join it to the BizTalk group with the BizTalk Server Configuration tool.\n",
            "it failed with exit code 1",
        ),
        (
            0,
            "",
            "RestoreConfig.vbe(40, 5) Microsoft VBScript runtime error: Object required: 'objShell'\n",
            "it exited 0 but wrote to stderr",
        ),
        (
            0,
            "RestoreConfig completed successfully.\n",
            "",
            "it exited 0 but printed text Drover does not know",
        ),
        (0, "Konfiguration wiederhergestellt.\n", "", "it exited 0 but printed text Drover does not know"),
    ];
    for (code, stdout, stderr, why) in cases {
        let rec = recorder();
        rec.not_joined();
        rec.restore(ExecOutput {
            exit_code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..Default::default()
        });
        let err = rec.call(Mode::Apply, input()).unwrap_err();
        let raw = |label: &str, text: &str| match text.trim() {
            "" => format!("{label}: (empty)"),
            text => format!("{label}:\n  {text}"),
        };
        assert_eq!(
            err,
            StepError::needs_operator(format!(
                "RestoreConfig.vbe on PRDBTS02 answered in a way Drover does not recognise ({why}); read its output, then retry or skip the step by hand\nexit code: {code}\n{}\n{}",
                raw("stdout", stdout),
                raw("stderr", stderr)
            ))
        );
        rec.assert_removed_last(XML);
        assert!(!rec.ops().contains(&REG_NAME.to_string()), "never verified as a success");
    }
}

#[test]
fn a_lost_connection_during_the_restore_still_removes_the_file() {
    let rec = recorder();
    rec.not_joined();
    rec.host.script_exec_error(
        SERVER,
        CSCRIPT,
        &["//nologo", SCRIPT, XML],
        HostError::new(HostErrorKind::Retryable, "connection to PRDBTS02 lost"),
    );
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(err, StepError::retryable("connection to PRDBTS02 lost"));
    rec.assert_removed_last(XML);
}

#[test]
fn a_file_that_cannot_be_removed_fails_the_step_until_a_retry_removes_it() {
    let rec = recorder();
    rec.fail_xml_removal.set(true);
    rec.not_joined();
    rec.restore(ExecOutput::exited(0, SUCCESS));
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::retryable(
            r"restored, but C:\Drover\restore-PRDBTS02.xml (it holds passwords) could not be removed: PRDBTS02 did not answer"
        )
    );
    rec.fail_xml_removal.set(false);
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    assert!(!rec.call(Mode::Apply, input()).unwrap().changed);
    assert_eq!(rec.host.file(SERVER, XML), None);

    // A script error names the failed removal too.
    let rec = recorder();
    rec.fail_xml_removal.set(true);
    rec.not_joined();
    rec.restore_fails("RestoreConfig failed: The password of ENTSSO is empty.\n");
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    let StepError::NeedsOperator(message) = err else { panic!("{err:?}") };
    assert!(
        message.ends_with(r"The password of ENTSSO is empty.; also, C:\Drover\restore-PRDBTS02.xml (it holds passwords) could not be removed: PRDBTS02 did not answer"),
        "{message}"
    );
}

#[test]
fn a_success_the_registry_does_not_confirm_is_permanent() {
    let rec = recorder();
    rec.not_joined();
    rec.restore(ExecOutput::exited(0, SUCCESS));
    rec.not_joined();
    let err = rec.call(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "RestoreConfig.vbe succeeded but PRDBTS02 is not joined to any group, not joined to PRDSQL01/BizTalkMgmtDb"
        )
    );
}

#[test]
fn check_only_probes() {
    let rec = recorder();
    rec.not_joined();
    let outcome = rec.call(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        "would restore the configuration of PRDBTS02 with RestoreConfig.vbe (group on PRDSQL01/BizTalkMgmtDb)"
    );
    assert_eq!(rec.ops(), [REG_SERVER]);

    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    assert!(!rec.call(Mode::Check, input()).unwrap().changed);
    assert_eq!(rec.ops(), [REG_SERVER, REG_NAME, &format!("read {XML}")]);

    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    HostApi::write_file(&rec.host, SERVER, XML, b"<Configuration/>").unwrap();
    let outcome = rec.call(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        r"PRDBTS02 is joined; would remove the leftover configuration file C:\Drover\restore-PRDBTS02.xml"
    );

    let rec = recorder();
    rec.joined("OTHERSQL", "OtherMgmtDb");
    assert!(matches!(rec.call(Mode::Check, input()), Err(StepError::Permanent(_))));
}

#[test]
fn compensate_unconfigures_and_verifies() {
    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.unconfiguration(UNRESTORE_LOG, Some(UNCONFIGURATION_LOG));
    rec.not_joined();
    let outcome = rec.call(Mode::Compensate, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.summary, "unconfigured PRDBTS02; it left the group on PRDSQL01/BizTalkMgmtDb");
    assert_eq!(outcome.output["joined_to"], "");
    assert_eq!(outcome.output["output_excerpt"], UNCONFIGURATION_LOG.trim_end());
    assert_eq!(rec.ops(), unconfiguration_ops(UNRESTORE_LOG));
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
            "PRDBTS02 is joined to OTHERSQL/BizTalkMgmtDb, another group than PRDSQL01/BizTalkMgmtDb; leaving it alone"
        )
    );

    let rec = recorder();
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    rec.unconfiguration(UNRESTORE_LOG, Some(UNCONFIGURATION_LOG));
    rec.joined("PRDSQL01", "BizTalkMgmtDb");
    let err = rec.call(Mode::Compensate, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "Configuration.exe /U succeeded but PRDBTS02 is still joined to PRDSQL01/BizTalkMgmtDb"
        )
    );
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let rec = recorder();
    let refused = |input: Value, start: &str| {
        let err = rec.call(Mode::Apply, input).unwrap_err();
        assert!(matches!(&err, StepError::Permanent(m) if m.starts_with(start)), "{err}");
    };
    let mut bad = input();
    bad["service_accounts"]["rules_engine"]["password_secret"] = json!("my secret");
    refused(bad, r#"password_secret "my secret" is not a secret name"#);
    let mut empty = input();
    empty["installed_features"] = json!([]);
    refused(empty, "installed_features is empty");
    let mut both = input();
    both["saved_configuration"] = json!(saved());
    refused(both, "give either service_accounts");
    let neither = json!({ "group": { "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" } });
    refused(neither, "give service_accounts and installed_features");
    let not_xml = json!({
        "group": { "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" },
        "saved_configuration": "PRDBTS02.cfg",
    });
    refused(not_xml, "saved_configuration is not a BizTalk configuration file");
    let raw = json!({
        "group": { "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" },
        "saved_configuration": saved().replace("@@secret:entsso-password:xml@@", "<![CDATA[@@secret:entsso-password@@]]>"),
    });
    refused(
        raw,
        "saved_configuration references secret entsso-password raw; write @@secret:entsso-password:xml@@",
    );
    let mut script = input();
    script["restore_script"] = json!(r"C:\Restore\UpdateRegistry.vbs");
    refused(script, r#"restore_script "C:\\Restore\\UpdateRegistry.vbs" is not a path to RestoreConfig.vbe"#);
    assert!(rec.ops().is_empty());
}

#[test]
fn describes_itself_as_reversible_and_compensable() {
    let d = <RestoreConfiguration as Plugin>::describe();
    assert_eq!(d.name(), "restore-configuration");
    assert_eq!(d.version(), "1.0.0");
    assert_eq!(d.effect(), Effect::Reversible);
}

#[test]
fn the_service_accounts_are_a_plain_object_in_the_input_schema() {
    let schema = schemars::schema_for!(Input).to_value();
    let accounts = &schema["properties"]["service_accounts"];
    assert!(accounts.get("anyOf").is_none(), "{accounts}");
    assert!(!schema["required"].as_array().unwrap().iter().any(|r| r == "service_accounts"));
}
