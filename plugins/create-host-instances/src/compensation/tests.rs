//! The compensation through the SDK's fake host, with the lab's answers of `lab/PROTOCOL.md`:
//! `apply` and `compensate` share the fake host's durable state, as they share a step instance's.

use biztalk_common::wmi;
use drover_sdk::HostApi;
use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use super::CREATED;
use crate::tests::*;
use crate::*;

fn remove_script(host_name: &str, server: &str) -> String {
    wmi::remove_host_instance(host_name, server)
}

fn remove(host: &FakeHost, host_name: &str, server: &str, output: ExecOutput) {
    powershell(host, &remove_script(host_name, server), output);
}

/// Records `instances` as created by the step instance, as `apply` does.
fn recorded(host: &FakeHost, instances: &[(&str, &str)]) {
    let list: Vec<Value> = instances.iter().map(|(h, s)| json!({"host": h, "server": s})).collect();
    host.state_set(CREATED, &Value::Array(list).to_string()).unwrap();
}

fn record_of(host: &FakeHost) -> Value {
    host.state_get(CREATED).map_or(Value::Null, |s| serde_json::from_str(&s).unwrap())
}

fn compensate(host: &FakeHost) -> Result<Outcome<Value>, StepError> {
    host.call::<CreateHostInstances>(Mode::Compensate, one_to_one())
}

fn actions(outcome: &Outcome<Value>) -> Vec<(String, String, String)> {
    outcome.output["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let text = |k: &str| i[k].as_str().unwrap_or_default().to_string();
            (text("host"), text("server"), text("action"))
        })
        .collect()
}

#[test]
fn removes_what_apply_created_newest_first_then_verifies() {
    let host = host();
    query(&host, &production());
    for (h, s) in NEW {
        create(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &after_creation());
    host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();
    assert_eq!(
        record_of(&host),
        json!([
            {"host": "ReceiveHost", "server": "DRBTS01"},
            {"host": "SendHost", "server": "DRBTS01"},
            {"host": "SendHost", "server": "DRBTS02"},
            {"host": "ProcessingHost", "server": "DRBTS02"},
        ])
    );
    let applied = host.exec_calls().len();

    query(&host, &after_creation());
    for (h, s) in NEW.iter().rev() {
        remove(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &production());
    let outcome = compensate(&host).unwrap();

    let mut expected = vec![argv(wmi::HOST_INSTANCES)];
    expected.extend(NEW.iter().rev().map(|(h, s)| argv(&remove_script(h, s))));
    expected.push(argv(wmi::HOST_INSTANCES));
    assert_eq!(sent(&host)[applied..], expected);
    assert!(host.exec_calls()[applied..].iter().all(|c| c.target == TARGET && c.stdin.is_none()));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(outcome.changed);
    assert_eq!(outcome.output["removed"], 4);
    assert_eq!(
        outcome.output["instances"][1],
        json!({
            "host": "SendHost", "server": "DRBTS01", "production_servers": ["PRDBTS01"], "action": "removed",
            "logon": ACCOUNT, "host_type": "in-process",
            "configuration_state": null, "is_disabled": null, "service_state": null
        })
    );
    assert!(actions(&outcome).iter().all(|(_, _, a)| a == "removed"));
    assert_eq!(
        outcome.summary,
        "removed 4 of the 4 host instances this step created (uninstalled and unmapped)"
    );
    assert_eq!(outcome.evidence.len(), 6);
    assert_eq!(outcome.evidence[1].label, "remove Microsoft BizTalk Server ProcessingHost DRBTS02");
}

#[test]
fn instances_the_step_found_present_are_kept() {
    let host = host();
    let mut before = production();
    before.push(standby("SendHost", "DRBTS01"));
    query(&host, &before);
    for (h, s) in NEW.iter().filter(|(h, s)| (*h, *s) != ("SendHost", "DRBTS01")) {
        create(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &after_creation());
    host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();
    let applied = host.exec_calls().len();

    query(&host, &after_creation());
    for (h, s) in [("ProcessingHost", "DRBTS02"), ("SendHost", "DRBTS02"), ("ReceiveHost", "DRBTS01")] {
        remove(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &before);
    let outcome = compensate(&host).unwrap();

    assert!(
        !host.command_lines()[applied..]
            .iter()
            .any(|l| l.contains("'Microsoft BizTalk Server SendHost DRBTS01'")),
        "the instance the step did not create is never removed"
    );
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert_eq!(outcome.output["removed"], 3);
    assert_eq!(
        actions(&outcome).last().unwrap(),
        &("SendHost".to_string(), "DRBTS01".to_string(), "kept".to_string())
    );
    assert_eq!(outcome.output["instances"][3]["configuration_state"], "installed");
    assert_eq!(
        outcome.summary,
        "removed 3 of the 3 host instances this step created (uninstalled and unmapped); kept 1 it found present"
    );
}

#[test]
fn with_nothing_recorded_it_only_reads() {
    let host = host();
    query(&host, &after_creation());
    let outcome = compensate(&host).unwrap();
    assert!(!outcome.changed);
    assert_eq!(sent(&host), [argv(wmi::HOST_INSTANCES)]);
    assert_eq!(outcome.output["removed"], 0);
    assert!(actions(&outcome).iter().all(|(_, _, a)| a == "kept"));
    assert!(
        outcome.summary.starts_with("this step created no host instance; nothing to remove"),
        "{}",
        outcome.summary
    );
}

#[test]
fn a_second_compensation_changes_nothing() {
    let host = host();
    recorded(&host, &NEW);
    query(&host, &production());
    let outcome = compensate(&host).unwrap();
    assert!(!outcome.changed);
    assert_eq!(sent(&host), [argv(wmi::HOST_INSTANCES)]);
    assert!(actions(&outcome).iter().all(|(_, _, a)| a == "already-removed"));
    assert_eq!(
        outcome.summary,
        "removed 0 of the 4 host instances this step created (uninstalled and unmapped); 4 were gone already"
    );
}

#[test]
fn a_running_instance_is_refused_before_anything_is_removed() {
    let host = host();
    recorded(&host, &NEW[..2]);
    let mut rows = production();
    rows.push(standby("ReceiveHost", "DRBTS01"));
    rows.push(row("SendHost", "DRBTS01", 1, false, 4));
    query(&host, &rows);
    let err = compensate(&host).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("Microsoft BizTalk Server SendHost DRBTS01 (running)"), "{err}");
    assert!(err.message().contains("nothing was removed"), "{err}");
    assert_eq!(sent(&host), [argv(wmi::HOST_INSTANCES)]);
}

#[test]
fn a_stopping_instance_is_retryable() {
    let host = host();
    recorded(&host, &NEW[..1]);
    let mut rows = production();
    rows.push(row("ReceiveHost", "DRBTS01", 1, true, 3));
    query(&host, &rows);
    let err = compensate(&host).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err}");
    assert!(err.message().contains("stopping"), "{err}");
}

#[test]
fn an_isolated_host_has_no_service_to_be_stopped() {
    let host = host();
    recorded(&host, &NEW[..1]);
    let mut rows = production();
    let mut isolated = row("ReceiveHost", "DRBTS01", 1, true, 8);
    isolated["HostType"] = json!(2);
    rows.push(isolated);
    query(&host, &rows);
    remove(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(&host, &production());
    let outcome = compensate(&host).unwrap();
    assert_eq!(outcome.output["removed"], 1);
}

#[test]
fn a_recorded_instance_the_input_does_not_name_is_never_removed() {
    let host = host();
    recorded(&host, &[("SendHost", "PRDBTS01"), ("SendHost", "DRBTS01")]);
    let mut rows = production();
    rows.push(standby("SendHost", "DRBTS01"));
    query(&host, &rows);
    remove(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(&host, &production());
    let outcome = compensate(&host).unwrap();
    assert!(host.unused_scripts().is_empty());
    assert!(
        !host.command_lines().iter().any(|l| l.contains("SendHost PRDBTS01")),
        "{:?}",
        host.command_lines()
    );
    assert_eq!(outcome.output["removed"], 1);
}

#[test]
fn removal_failures_are_classified() {
    // (stderr, needs an operator (else permanent), message)
    let cases = [
        (
            "Exception calling \"Uninstall\" : \"The host instance 'Microsoft BizTalk Server ReceiveHost DRBTS01' must be stopped before it can be uninstalled.\"\n",
            true,
            "was started while compensation removed it",
        ),
        (
            "Exception calling \"Unmap\" : \"The server 'DRBTS01' is not a member of the group.\"\n",
            false,
            "DRBTS01 is no longer a member of the group",
        ),
        (
            "Get-WmiObject : Invalid namespace \"root\\MicrosoftBizTalkServer\"\n",
            false,
            "DRBTS01 is not joined to a BizTalk group",
        ),
        ("Access denied\n", false, "exit code Some(1): Access denied"),
    ];
    for (stderr, needs_operator, message) in cases {
        let host = host();
        recorded(&host, &NEW[..1]);
        let mut rows = production();
        rows.push(standby("ReceiveHost", "DRBTS01"));
        query(&host, &rows);
        remove(&host, "ReceiveHost", "DRBTS01", failing(stderr));
        let err = compensate(&host).unwrap_err();
        let class = if needs_operator {
            matches!(err, StepError::NeedsOperator(_))
        } else {
            matches!(err, StepError::Permanent(_))
        };
        assert!(class, "{stderr}: {err:?}");
        assert!(err.message().contains(message), "{err}");
    }
}

#[test]
fn an_instance_left_after_its_removal_fails_the_compensation() {
    for (left, needs_operator) in
        [(standby("ReceiveHost", "DRBTS01"), false), (row("ReceiveHost", "DRBTS01", 3, true, 1), true)]
    {
        let host = host();
        recorded(&host, &NEW[..1]);
        let mut rows = production();
        rows.push(standby("ReceiveHost", "DRBTS01"));
        query(&host, &rows);
        remove(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
        let mut after = production();
        after.push(left);
        query(&host, &after);
        let err = compensate(&host).unwrap_err();
        assert_eq!(matches!(err, StepError::NeedsOperator(_)), needs_operator, "{err}");
        assert!(err.message().contains("Microsoft BizTalk Server ReceiveHost DRBTS01"), "{err}");
    }
}

#[test]
fn apply_records_an_instance_before_it_sends_its_creation() {
    let host = host();
    query(&host, &production());
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    create(&host, "SendHost", "DRBTS01", failing("The RPC server is unavailable.\n"));
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "output it does not know: {err}");
    assert_eq!(
        record_of(&host),
        json!([{"host": "ReceiveHost", "server": "DRBTS01"}, {"host": "SendHost", "server": "DRBTS01"}])
    );
}

#[test]
fn a_retry_records_an_instance_once() {
    let host = host();
    recorded(&host, &NEW[..1]);
    query(&host, &production());
    for (h, s) in NEW {
        create(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &after_creation());
    host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();
    assert_eq!(record_of(&host).as_array().unwrap().len(), 4);
}

#[test]
fn declares_itself_compensable() {
    let describe = <CreateHostInstances as Plugin>::describe();
    assert!(format!("{describe:?}").contains("compensable: true"), "{describe:?}");
}
