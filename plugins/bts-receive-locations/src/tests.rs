//! `bts-receive-locations` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use super::*;
use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::json;

const DR: &str = "DRBTS01";
const FILE: &str = r#"{"Name":"RL.Orders.File","ReceivePortName":"RP.Orders","HostName":"ReceiveHost","AdapterName":"FILE","IsDisabled":false}"#;
const HTTP: &str = r#"{"Name":"RL.Orders.Http","ReceivePortName":"RP.Orders","HostName":"BizTalkServerIsolatedHost","AdapterName":"WCF-BasicHttp","IsDisabled":false}"#;
const SFTP: &str = r#"{"Name":"RL.Invoices.Sftp","ReceivePortName":"RP.Invoices","HostName":"ReceiveHost","AdapterName":"SFTP","IsDisabled":true}"#;

fn host(mode: Mode) -> FakeHost {
    FakeHost::new()
        .with_target(DR)
        .with_context(Context { target: Some(DR.into()), ..Context::for_test(mode) })
}

fn ps(host: &FakeHost, script: &str, output: ExecOutput) {
    host.script_exec(DR, "powershell.exe", &["-NoProfile", "-NonInteractive", "-Command", script], output);
}

fn list(host: &FakeHost, rows: &[&str]) {
    ps(host, processing::RECEIVE_LOCATIONS, ExecOutput::exited(0, format!("[{}]\r\n", rows.join(","))));
}

fn disabled(row: &str) -> String {
    row.replace(r#""IsDisabled":false"#, r#""IsDisabled":true"#)
}

#[test]
fn disable_disables_the_enabled_ones_records_them_and_enable_restores_them() {
    let host = host(Mode::Apply);
    list(&host, &[FILE, HTTP, SFTP]);
    ps(&host, &processing::disable_receive_location("RL.Orders.File"), ExecOutput::exited(0, ""));
    ps(&host, &processing::disable_receive_location("RL.Orders.Http"), ExecOutput::exited(0, ""));
    list(&host, &[&disabled(FILE), &disabled(HTTP), SFTP]);

    let outcome = host.call::<BtsReceiveLocations>(Mode::Apply, json!({ "action": "disable" })).unwrap();

    assert!(outcome.changed);
    assert_eq!(outcome.output["disabled"], json!(["RL.Orders.File", "RL.Orders.Http"]));
    assert_eq!(outcome.output["changed"], json!(["RL.Orders.File", "RL.Orders.Http"]));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());

    // Compensation of the same step instance enables the recorded ones only (not RL.Invoices.Sftp).
    list(&host, &[&disabled(FILE), &disabled(HTTP), SFTP]);
    ps(&host, &processing::enable_receive_location("RL.Orders.File"), ExecOutput::exited(0, ""));
    ps(&host, &processing::enable_receive_location("RL.Orders.Http"), ExecOutput::exited(0, ""));
    list(&host, &[FILE, HTTP, SFTP]);
    let outcome = host.call::<BtsReceiveLocations>(Mode::Compensate, json!({ "action": "disable" })).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["changed"], json!(["RL.Orders.File", "RL.Orders.Http"]));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn already_disabled_is_no_change_and_check_only_reads() {
    let host = host(Mode::Check);
    list(&host, &[&disabled(FILE), SFTP]);
    let outcome = host.call::<BtsReceiveLocations>(Mode::Check, json!({ "action": "disable" })).unwrap();
    assert!(!outcome.changed, "{}", outcome.summary);

    list(&host, &[FILE, SFTP]);
    let outcome = host.call::<BtsReceiveLocations>(Mode::Check, json!({ "action": "disable" })).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["changed"], json!(["RL.Orders.File"]));
    assert_eq!(host.command_lines().len(), 2, "only the two queries ran");
}

#[test]
fn disable_leaves_processing_alone_once_a_dr_host_instance_runs() {
    let host = host(Mode::Apply);
    let rows = r#"[{"Name":"Microsoft BizTalk Server ReceiveHost DRBTS01","HostName":"ReceiveHost","HostType":1,"RunningServer":"DRBTS01","Logon":"CONTOSO\\svc-bts","ConfigurationState":1,"IsDisabled":false,"ServiceState":4},{"Name":"Microsoft BizTalk Server ReceiveHost PRDBTS01","HostName":"ReceiveHost","HostType":1,"RunningServer":"PRDBTS01","Logon":"CONTOSO\\svc-bts","ConfigurationState":1,"IsDisabled":false,"ServiceState":8}]"#;
    ps(&host, wmi::HOST_INSTANCES, ExecOutput::exited(0, rows));
    list(&host, &[FILE, SFTP]);
    let input = json!({ "action": "disable", "dr_servers": ["DRBTS01", "DRBTS02"] });
    let outcome = host.call::<BtsReceiveLocations>(Mode::Apply, input).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.output["running"], json!(["Microsoft BizTalk Server ReceiveHost DRBTS01"]));
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn enable_takes_the_joined_names_and_skips_the_enabled_ones() {
    let host = host(Mode::Apply);
    list(&host, &[FILE, &disabled(HTTP), SFTP]);
    ps(&host, &processing::enable_receive_location("RL.Orders.Http"), ExecOutput::exited(0, ""));
    list(&host, &[FILE, HTTP, SFTP]);
    let input = json!({ "action": "enable", "names": "RL.Orders.File,RL.Orders.Http" });
    let outcome = host.call::<BtsReceiveLocations>(Mode::Apply, input).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["changed"], json!(["RL.Orders.Http"]));

    list(&host, &[FILE, HTTP, SFTP]);
    let input = json!({ "action": "enable", "names": ["RL.Orders.File", "RL.Orders.Http"] });
    assert!(!host.call::<BtsReceiveLocations>(Mode::Apply, input).unwrap().changed);

    list(&host, &[FILE]);
    let input = json!({ "action": "enable", "names": "" });
    assert!(!host.call::<BtsReceiveLocations>(Mode::Apply, input).unwrap().changed);
}

#[test]
fn an_unknown_name_is_permanent_and_an_unknown_answer_needs_an_operator() {
    let host = host(Mode::Apply);
    list(&host, &[FILE]);
    let err = host
        .call::<BtsReceiveLocations>(Mode::Apply, json!({ "action": "enable", "names": ["RL.Nope"] }))
        .unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("RL.Nope"));

    list(&host, &[FILE]);
    ps(
        &host,
        &processing::disable_receive_location("RL.Orders.File"),
        ExecOutput {
            stderr: b"Exception calling \"Disable\" : \"Something new\"\n".to_vec(),
            ..ExecOutput::exited(1, "")
        },
    );
    let err = host.call::<BtsReceiveLocations>(Mode::Apply, json!({ "action": "disable" })).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err:?}");
    assert!(err.message().contains("Something new"));
}
