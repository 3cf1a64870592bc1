//! `restart-services` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::json;

use super::*;

const DR: &str = "DRBTS01";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(DR)
        .with_context(Context { target: Some(DR.into()), ..Context::for_test(Mode::Apply) })
}

fn restart_answers(host: &FakeHost, name: &str, output: ExecOutput) {
    let script = restart::restart_service(name);
    host.script_exec(DR, "powershell.exe", &["-NoProfile", "-NonInteractive", "-Command", &script], output);
}

fn qc(host: &FakeHost, start_type: &str) {
    host.script_exec(
        DR,
        "sc.exe",
        &["qc", RULE_ENGINE],
        ExecOutput::exited(
            0,
            format!(
                "[SC] QueryServiceConfig SUCCESS\n\nSERVICE_NAME: RuleEngineUpdateService\n        TYPE               : 10  WIN32_OWN_PROCESS\n        START_TYPE         : {start_type}\n        ERROR_CONTROL      : 1   NORMAL\n        BINARY_PATH_NAME   : C:\\svc.exe\n        LOAD_ORDER_GROUP   :\n        TAG                : 0\n        DISPLAY_NAME       : Rule Engine Update Service\n        DEPENDENCIES       :\n        SERVICE_START_NAME : CONTOSO\\svc-bts\n"
            ),
        ),
    );
}

fn failed(stderr: &str) -> ExecOutput {
    ExecOutput { stderr: stderr.as_bytes().to_vec(), ..ExecOutput::exited(1, "") }
}

#[test]
fn wmi_restarts_then_the_rule_engine_with_its_start_mode_set_back() {
    let host = host();
    restart_answers(&host, WINMGMT, ExecOutput::exited(0, ""));
    qc(&host, "4   DISABLED");
    host.script_exec(
        DR,
        "sc.exe",
        &["config", RULE_ENGINE, "start=", "auto"],
        ExecOutput::exited(0, "[SC] ChangeServiceConfig SUCCESS\n"),
    );
    restart_answers(&host, RULE_ENGINE, ExecOutput::exited(0, ""));

    let outcome = host.call::<RestartServices>(Mode::Apply, json!({})).unwrap();

    assert!(outcome.changed);
    assert_eq!(
        outcome.summary,
        "restarted winmgmt and RuleEngineUpdateService (start mode disabled -> auto) on DRBTS01"
    );
    assert_eq!(outcome.output["winmgmt"], "restarted");
    assert_eq!(outcome.output["rule_engine"], "restarted");
    assert_eq!(outcome.output["rule_engine_previous_start_mode"], "disabled");
    assert_eq!(outcome.output["rule_engine_start_mode"], "auto");
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    let lines = host.command_lines();
    assert!(lines[0].contains("Restart-Service -Name 'winmgmt' -Force"), "WMI first: {lines:?}");
    assert_eq!(outcome.evidence.len(), 4);
}

#[test]
fn a_second_run_restarts_again_and_says_so_and_check_only_reads() {
    let host = host();
    restart_answers(&host, WINMGMT, ExecOutput::exited(0, ""));
    qc(&host, "2   AUTO_START");
    restart_answers(&host, RULE_ENGINE, ExecOutput::exited(0, ""));
    let outcome = host.call::<RestartServices>(Mode::Apply, json!({})).unwrap();
    assert!(outcome.changed, "WMI's cache cannot be read: a restart every time");
    assert_eq!(outcome.summary, "restarted winmgmt and RuleEngineUpdateService on DRBTS01");
    assert!(!host.command_lines().iter().any(|l| l.contains("config")), "{:?}", host.command_lines());

    let host = self::host();
    qc(&host, "4   DISABLED");
    let outcome = host.call::<RestartServices>(Mode::Check, json!({})).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["winmgmt"], "would-restart");
    assert_eq!(outcome.output["rule_engine"], "would-restart");
    assert!(outcome.summary.contains("cannot be read"), "{}", outcome.summary);
    assert_eq!(host.command_lines().len(), 1, "sc.exe qc only: {:?}", host.command_lines());
}

#[test]
fn without_the_rule_engine_or_without_its_service_only_wmi_restarts() {
    let host = host();
    restart_answers(&host, WINMGMT, ExecOutput::exited(0, ""));
    let outcome = host.call::<RestartServices>(Mode::Apply, json!({ "rule_engine": false })).unwrap();
    assert_eq!(outcome.output["rule_engine"], "not-asked");
    assert_eq!(host.command_lines().len(), 1);

    let host = self::host();
    restart_answers(&host, WINMGMT, ExecOutput::exited(0, ""));
    host.script_exec(
        DR,
        "sc.exe",
        &["qc", RULE_ENGINE],
        ExecOutput::exited(
            1060,
            "[SC] OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n",
        ),
    );
    let outcome = host.call::<RestartServices>(Mode::Apply, json!({})).unwrap();
    assert_eq!(outcome.output["rule_engine"], "not-installed");
    assert_eq!(
        outcome.output["warnings"][0],
        "RuleEngineUpdateService is not installed on DRBTS01: nothing to restart"
    );
}

#[test]
fn failures_stop_the_step_and_an_unknown_answer_needs_an_operator() {
    let err = host()
        .call::<RestartServices>(Mode::Apply, json!({ "rule_engine_start_mode": "disabled" }))
        .unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");

    let host = self::host();
    restart_answers(&host, WINMGMT, ExecOutput::exited(0, ""));
    qc(&host, "2   AUTO_START");
    restart_answers(
        &host,
        RULE_ENGINE,
        failed(
            "Restart-Service : Service 'Rule Engine Update Service (RuleEngineUpdateService)' cannot be stopped due to the following error: Cannot stop RuleEngineUpdateService service on computer '.'.\n",
        ),
    );
    let err = host.call::<RestartServices>(Mode::Apply, json!({})).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("Cannot stop RuleEngineUpdateService service"), "{}", err.message());

    let host = self::host();
    restart_answers(&host, WINMGMT, failed("Accès refusé.\n"));
    let err = host.call::<RestartServices>(Mode::Apply, json!({})).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err:?}");
    assert!(err.message().contains("Accès refusé."), "{}", err.message());
}
