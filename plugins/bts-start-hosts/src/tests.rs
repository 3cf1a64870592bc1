//! `bts-start-hosts` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use super::*;
use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::json;

const DR: &str = "DRBTS01";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(DR)
        .with_target("DRBTS02")
        .with_context(Context { target: Some(DR.into()), ..Context::for_test(Mode::Apply) })
}

fn ps(host: &FakeHost, script: &str, output: ExecOutput) {
    host.script_exec(DR, "powershell.exe", &["-NoProfile", "-NonInteractive", "-Command", script], output);
}

fn row(host: &str, server: &str, host_type: u8, disabled: bool, state: u8) -> String {
    format!(
        r#"{{"Name":"Microsoft BizTalk Server {host} {server}","HostName":"{host}","HostType":{host_type},"RunningServer":"{server}","Logon":"CONTOSO\\svc-bts","ConfigurationState":1,"IsDisabled":{disabled},"ServiceState":{state}}}"#
    )
}

fn instances(host: &FakeHost, rows: &[String]) {
    ps(host, wmi::HOST_INSTANCES, ExecOutput::exited(0, format!("[{}]\r\n", rows.join(","))));
}

fn qc(host: &FakeHost, server: &str, name: &str, start_type: &str) {
    host.script_exec(
        server,
        "sc.exe",
        &["qc", name],
        ExecOutput::exited(
            0,
            format!(
                "[SC] QueryServiceConfig SUCCESS\n\nSERVICE_NAME: {name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n        START_TYPE         : {start_type}\n        ERROR_CONTROL      : 1   NORMAL\n        BINARY_PATH_NAME   : C:\\svc.exe\n        LOAD_ORDER_GROUP   :\n        TAG                : 0\n        DISPLAY_NAME       : {name}\n        DEPENDENCIES       : ENTSSO\n        SERVICE_START_NAME : CONTOSO\\svc-bts\n"
            ),
        ),
    );
}

fn input() -> serde_json::Value {
    json!({ "servers": ["DRBTS01", "DRBTS02"] })
}

#[test]
fn dr_instances_are_enabled_their_services_set_to_auto_and_started_production_left_alone() {
    let host = host();
    let prod = row("ReceiveHost", "PRDBTS01", 1, false, 8);
    instances(
        &host,
        &[
            prod.clone(),
            row("ReceiveHost", "DRBTS01", 1, true, 1),
            row("BizTalkServerIsolatedHost", "DRBTS02", 2, true, 1),
        ],
    );
    qc(&host, DR, "BTSSvc$ReceiveHost", "4   DISABLED");
    host.script_exec(
        DR,
        "sc.exe",
        &["config", "BTSSvc$ReceiveHost", "start=", "auto"],
        ExecOutput::exited(0, "[SC] ChangeServiceConfig SUCCESS\n"),
    );
    ps(&host, &processing::set_host_instance_disabled("ReceiveHost", DR, false), ExecOutput::exited(0, ""));
    ps(&host, &processing::start_host_instance("ReceiveHost", DR), ExecOutput::exited(0, ""));
    ps(
        &host,
        &processing::set_host_instance_disabled("BizTalkServerIsolatedHost", "DRBTS02", false),
        ExecOutput::exited(0, ""),
    );
    instances(
        &host,
        &[
            prod,
            row("ReceiveHost", "DRBTS01", 1, false, 4),
            row("BizTalkServerIsolatedHost", "DRBTS02", 2, false, 1),
        ],
    );

    let outcome = host.call::<BtsStartHosts>(Mode::Apply, input()).unwrap();

    assert!(outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["started"], 2);
    assert_eq!(outcome.output["instances"][0]["action"], "started");
    assert_eq!(outcome.output["instances"][0]["service_enabled"], true);
    assert_eq!(outcome.output["instances"][0]["service_state"], "running");
    assert_eq!(outcome.output["instances"][1]["action"], "enabled");
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(!host.command_lines().iter().any(|l| l.contains("PRDBTS01") && !l.contains("Get-CimInstance")));
}

#[test]
fn running_and_enabled_is_no_change_and_check_only_reads() {
    let host = host();
    instances(
        &host,
        &[
            row("ReceiveHost", "DRBTS01", 1, false, 4),
            row("BizTalkServerIsolatedHost", "DRBTS02", 2, false, 1),
        ],
    );
    let outcome = host.call::<BtsStartHosts>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.output["instances"][0]["action"], "unchanged");

    instances(&host, &[row("SendHost", "DRBTS02", 1, true, 1)]);
    qc(&host, "DRBTS02", "BTSSvc$SendHost", "4   DISABLED");
    let outcome = host.call::<BtsStartHosts>(Mode::Check, input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(host.command_lines().len(), 3, "queries only: {:?}", host.command_lines());
}

#[test]
fn an_unanswering_dr_server_is_permanent_and_an_unknown_refusal_needs_an_operator() {
    let host = host();
    instances(&host, &[row("SendHost", "DRBTS02", 1, false, 8)]);
    let err = host.call::<BtsStartHosts>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("DRBTS02"));

    instances(&host, &[row("SendHost", "DRBTS01", 1, false, 1)]);
    qc(&host, DR, "BTSSvc$SendHost", "2   AUTO_START");
    ps(
        &host,
        &processing::start_host_instance("SendHost", DR),
        ExecOutput {
            stderr: b"Exception calling \"Start\" : \"Access is denied.\"\n".to_vec(),
            ..ExecOutput::exited(1, "")
        },
    );
    let err = host.call::<BtsStartHosts>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err:?}");
    assert!(err.message().contains("Access is denied."));
}
