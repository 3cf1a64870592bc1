//! Native tests through the SDK's fake host, with the lab's answers of `lab/PROTOCOL.md`.

use biztalk_common::wmi;
use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use super::*;

const TARGET: &str = "DRBTS01";
const ACCOUNT: &str = "CONTOSO\\svc-bts";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(TARGET)
        .with_context(Context { target: Some(TARGET.into()), ..Context::for_test(Mode::Apply) })
}

fn row(host: &str, server: &str, configuration: u8, disabled: bool, service: u8) -> Value {
    json!({
        "Name": format!("Microsoft BizTalk Server {host} {server}"),
        "HostName": host,
        "RunningServer": server,
        "ConfigurationState": configuration,
        "IsDisabled": disabled,
        "ServiceState": service,
    })
}

/// A production instance: installed, enabled, running.
fn live(host: &str, server: &str) -> Value {
    row(host, server, 1, false, 4)
}

/// A DR instance as the creation script leaves it: installed, disabled, stopped.
fn standby(host: &str, server: &str) -> Value {
    row(host, server, 1, true, 1)
}

/// The lab's production instances.
fn production() -> Vec<Value> {
    vec![
        live("ReceiveHost", "PRDBTS01"),
        live("SendHost", "PRDBTS01"),
        live("SendHost", "PRDBTS02"),
        live("ProcessingHost", "PRDBTS02"),
    ]
}

/// What `ConvertTo-Json -Compress` prints: nothing, one object, or an array.
fn answer(rows: &[Value]) -> ExecOutput {
    match rows {
        [] => ExecOutput::exited(0, ""),
        [one] => ExecOutput::exited(0, format!("{one}\r\n")),
        many => ExecOutput::exited(0, format!("{}\r\n", Value::Array(many.to_vec()))),
    }
}

fn failing(stderr: &str) -> ExecOutput {
    ExecOutput { exit_code: Some(1), stderr: stderr.as_bytes().to_vec(), ..Default::default() }
}

fn argv(script: &str) -> Vec<String> {
    powershell::args(script)
}

fn powershell(host: &FakeHost, script: &str, output: ExecOutput) {
    let args = argv(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.script_exec(TARGET, "powershell.exe", &args, output);
}

fn query(host: &FakeHost, rows: &[Value]) {
    powershell(host, wmi::HOST_INSTANCES, answer(rows));
}

fn create_script(host_name: &str, server: &str) -> String {
    wmi::create_host_instance(host_name, server, ACCOUNT, "@@secret:bts-host-password@@")
}

fn create(host: &FakeHost, host_name: &str, server: &str, output: ExecOutput) {
    powershell(host, &create_script(host_name, server), output);
}

fn input(mapping: &[(&str, &str)]) -> Value {
    let mapping: Vec<Value> = mapping.iter().map(|(p, d)| json!({"production": p, "dr": d})).collect();
    json!({ "mapping": mapping, "logon": { "account": ACCOUNT, "password_secret": "bts-host-password" } })
}

fn one_to_one() -> Value {
    input(&[("PRDBTS01", "DRBTS01"), ("PRDBTS02", "DRBTS02")])
}

const NEW: [(&str, &str); 4] = [
    ("ReceiveHost", "DRBTS01"),
    ("SendHost", "DRBTS01"),
    ("SendHost", "DRBTS02"),
    ("ProcessingHost", "DRBTS02"),
];

fn after_creation() -> Vec<Value> {
    let mut rows = production();
    rows.extend(NEW.iter().map(|(h, s)| standby(h, s)));
    rows
}

fn sent(host: &FakeHost) -> Vec<Vec<String>> {
    host.exec_calls().into_iter().map(|c| c.args).collect()
}

#[test]
fn creates_the_missing_instances_installed_and_disabled() {
    let host = host();
    query(&host, &production());
    for (h, s) in NEW {
        create(&host, h, s, ExecOutput::exited(0, ""));
    }
    query(&host, &after_creation());

    let outcome = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();

    assert!(outcome.changed);
    let mut expected = vec![argv(wmi::HOST_INSTANCES)];
    expected.extend(NEW.iter().map(|(h, s)| argv(&create_script(h, s))));
    expected.push(argv(wmi::HOST_INSTANCES));
    assert_eq!(sent(&host), expected);
    assert!(host.exec_calls().iter().all(|c| c.program == "powershell.exe" && c.target == TARGET));
    assert_eq!(
        host.exec_calls()[1].args[3],
        r#"$sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'DRBTS01'; $sh.HostName = 'ReceiveHost'; $sh.Map(); $hi = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_HostInstance").CreateInstance(); $hi.Name = 'Microsoft BizTalk Server ReceiveHost DRBTS01'; $hi.IsDisabled = $true; $hi.Install('CONTOSO\svc-bts', '@@secret:bts-host-password@@', $true, $false)"#
    );
    assert_eq!(outcome.output["created"], 4);
    assert_eq!(outcome.output["warnings"], json!([]));
    assert_eq!(
        outcome.output["instances"][1],
        json!({
            "host": "SendHost", "server": "DRBTS01", "production_servers": ["PRDBTS01"], "action": "created",
            "configuration_state": "installed", "is_disabled": true, "service_state": "stopped"
        })
    );
    assert_eq!(outcome.summary, "created 4 of 4 DR host instances (installed, disabled, not started)");
    assert_eq!(outcome.evidence.len(), 6);
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn a_second_run_changes_nothing_and_sends_no_creation() {
    let host = host();
    query(&host, &after_creation());
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(sent(&host), [argv(wmi::HOST_INSTANCES)]);
    assert_eq!(outcome.output["created"], 0);
    assert!(outcome.output["instances"].as_array().unwrap().iter().all(|i| i["action"] == "present"));
}

#[test]
fn check_only_reads_and_says_what_would_be_created() {
    let host = host();
    query(&host, &production());
    let outcome = host.call::<CreateHostInstances>(Mode::Check, one_to_one()).unwrap();
    assert!(outcome.changed);
    assert_eq!(sent(&host), [argv(wmi::HOST_INSTANCES)]);
    assert_eq!(outcome.output["created"], 4);
    assert_eq!(outcome.output["instances"][0]["action"], "would-create");
    assert_eq!(outcome.output["instances"][0]["configuration_state"], Value::Null);
    assert!(outcome.summary.starts_with("would create 4 of 4"), "{}", outcome.summary);
}

#[test]
fn check_of_the_post_state_says_nothing_would_change() {
    let host = host();
    query(&host, &after_creation());
    assert!(!host.call::<CreateHostInstances>(Mode::Check, one_to_one()).unwrap().changed);
}

#[test]
fn warns_when_a_dr_server_carries_more_than_its_production_counterpart() {
    let host = host();
    query(&host, &production());
    for (h, s) in [("ReceiveHost", "DRBTS01"), ("SendHost", "DRBTS01"), ("ProcessingHost", "DRBTS01")] {
        create(&host, h, s, ExecOutput::exited(0, ""));
    }
    let mut after = production();
    after.extend([
        standby("ReceiveHost", "DRBTS01"),
        standby("SendHost", "DRBTS01"),
        standby("ProcessingHost", "DRBTS01"),
    ]);
    query(&host, &after);

    let two_on_one = input(&[("PRDBTS01", "DRBTS01"), ("PRDBTS02", "DRBTS01")]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, two_on_one).unwrap();

    let warning = "DRBTS01 will carry 3 host instances, more than its production counterpart (PRDBTS01: 2, PRDBTS02: 2); check it can take the load (seed B7: avoid overloading the DR servers)";
    assert_eq!(outcome.output["warnings"], json!([warning]));
    assert!(outcome.summary.ends_with(&format!("; 1 warning(s): {warning}")), "{}", outcome.summary);
    assert_eq!(outcome.output["instances"][1]["production_servers"], json!(["PRDBTS01", "PRDBTS02"]));
    assert_eq!(outcome.output["created"], 3);
    assert!(host.logs().iter().any(|(level, line)| *level == Level::Warn && line == warning));
}

#[test]
fn warns_when_a_production_server_has_no_mapping() {
    let host = host();
    query(&host, &production());
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    let mut after = production();
    after.extend([standby("ReceiveHost", "DRBTS01"), standby("SendHost", "DRBTS01")]);
    query(&host, &after);

    let outcome = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap();

    assert_eq!(
        outcome.output["warnings"],
        json!([
            "production server PRDBTS02 has no DR mapping: its host instances (SendHost, ProcessingHost) get no DR counterpart"
        ])
    );
    assert_eq!(outcome.output["created"], 2);
}

#[test]
fn an_instance_in_a_failed_state_needs_an_operator() {
    let host = host();
    let mut rows = production();
    rows.push(row("SendHost", "DRBTS01", 3, true, 1));
    query(&host, &rows);
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("Microsoft BizTalk Server SendHost DRBTS01 (uninstall failed)"), "{err}");
    assert_eq!(sent(&host).len(), 1, "nothing is created");
}

#[test]
fn an_existing_enabled_instance_is_a_warning() {
    let host = host();
    let mut rows = after_creation();
    rows[5] = row("SendHost", "DRBTS01", 1, false, 4);
    query(&host, &rows);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(
        outcome.output["warnings"],
        json!([
            "Microsoft BizTalk Server SendHost DRBTS01 exists but is enabled and running: a DR host instance must be disabled and stopped"
        ])
    );
}

#[test]
fn given_production_instances_are_used_as_they_are() {
    let host = host();
    query(&host, &[]);
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(&host, &[standby("SendHost", "DRBTS01")]);
    let mut given = input(&[("PRDBTS01", "DRBTS01")]);
    given["production_instances"] = json!([{ "host": "SendHost", "server": "PRDBTS01" }]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, given).unwrap();
    assert_eq!(outcome.output["created"], 1);
    assert_eq!(outcome.output["warnings"], json!([]));
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn the_password_secret_defaults_and_can_be_renamed() {
    let host = host();
    query(&host, &[live("SendHost", "PRDBTS01")]);
    let script = wmi::create_host_instance("SendHost", "DRBTS01", ACCOUNT, "@@secret:other-pass@@");
    powershell(&host, &script, ExecOutput::exited(0, ""));
    query(&host, &[live("SendHost", "PRDBTS01"), standby("SendHost", "DRBTS01")]);
    let mut renamed = input(&[("PRDBTS01", "DRBTS01")]);
    renamed["logon"] = json!({ "account": ACCOUNT, "password_secret": "other-pass" });
    host.call::<CreateHostInstances>(Mode::Apply, renamed).unwrap();
    assert!(host.unused_scripts().is_empty());

    let mut defaulted = input(&[]);
    defaulted["logon"] = json!({ "account": ACCOUNT });
    let plugin_input: Input = serde_json::from_value(defaulted).unwrap();
    assert_eq!(plugin_input.logon.password_secret, "bts-host-password");
}

#[test]
fn an_unjoined_target_is_permanent() {
    let host = host();
    powershell(
        &host,
        wmi::HOST_INSTANCES,
        failing("Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\""),
    );
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("DRBTS01 is not joined to a BizTalk group"), "{err}");
}

#[test]
fn an_unreachable_target_is_retryable() {
    let host = host();
    let args = argv(wmi::HOST_INSTANCES);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.script_exec_error(
        TARGET,
        "powershell.exe",
        &args,
        HostError::new(HostErrorKind::Retryable, "DRBTS01 did not answer"),
    );
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err}");
}

#[test]
fn creation_failures_are_classified() {
    let cases = [
        (
            "Exception calling \"Map\" : \"The server 'DRBTS01' is not a member of the group.\"",
            "DRBTS01 is not a member of the group; join it",
        ),
        (
            "Exception calling \"Map\" : \"The host 'ReceiveHost' does not exist.\"",
            "host ReceiveHost does not exist in the group",
        ),
        (
            "Exception calling \"Install\" : \"The password is empty.\"",
            "the password secret bts-host-password is empty",
        ),
    ];
    for (stderr, message) in cases {
        let host = host();
        query(&host, &[live("ReceiveHost", "PRDBTS01")]);
        create(&host, "ReceiveHost", "DRBTS01", failing(stderr));
        let err =
            host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap_err();
        assert!(matches!(err, StepError::Permanent(_)), "{err}");
        assert!(err.message().contains(message), "{err}");
    }
}

#[test]
fn an_instance_that_already_exists_at_creation_is_verified_instead() {
    let host = host();
    query(&host, &[live("ReceiveHost", "PRDBTS01")]);
    create(
        &host,
        "ReceiveHost",
        "DRBTS01",
        failing(
            "Exception calling \"Install\" : \"Another object with the same key properties already exists.\"",
        ),
    );
    query(&host, &[live("ReceiveHost", "PRDBTS01"), standby("ReceiveHost", "DRBTS01")]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap();
    assert_eq!(outcome.output["instances"][0]["action"], "created");
}

#[test]
fn a_creation_that_ends_in_a_failed_state_needs_an_operator() {
    let host = host();
    query(&host, &[live("ReceiveHost", "PRDBTS01")]);
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(&host, &[live("ReceiveHost", "PRDBTS01"), row("ReceiveHost", "DRBTS01", 2, true, 1)]);
    let err = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("install failed"), "{err}");
}

#[test]
fn a_creation_that_leaves_no_instance_is_permanent() {
    let host = host();
    query(&host, &[live("ReceiveHost", "PRDBTS01")]);
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(&host, &[live("ReceiveHost", "PRDBTS01")]);
    let err = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("not in MSBTS_HostInstance after its creation"), "{err}");
}

#[test]
fn an_empty_account_is_refused_before_anything_runs() {
    let host = host();
    let mut bad = one_to_one();
    bad["logon"]["account"] = json!(" ");
    let err = host.call::<CreateHostInstances>(Mode::Apply, bad).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)));
    assert!(host.exec_calls().is_empty());
}

#[test]
fn describes_itself_as_idempotent() {
    let describe = <CreateHostInstances as Plugin>::describe();
    assert_eq!(describe.name(), "create-host-instances");
    assert_eq!(describe.version(), "1.0.0");
    assert_eq!(describe.effect(), Effect::Idempotent);
}

#[test]
fn the_output_schema_names_the_enumerations() {
    let schema = schemars::schema_for!(Output).to_value().to_string();
    assert!(schema.contains("uninstall-failed") && schema.contains("would-create"), "{schema}");
}

#[test]
fn names_the_dr_servers_no_production_server_maps_to() {
    let host = host();
    let mut after = production();
    after.extend(NEW.iter().map(|(h, s)| standby(h, s)));
    query(&host, &after);
    query(&host, &after);
    let mut input = one_to_one();
    input["dr_servers"] = json!(["DRBTS01", "DRBTS02", "DRBTS03"]);

    let outcome = host.call::<CreateHostInstances>(Mode::Apply, input).unwrap();

    assert_eq!(
        outcome.output["warnings"],
        json!([
            "the DR site has 3 runtime servers for 2 mapped production servers: DRBTS03 carries no host instance"
        ])
    );
    assert_eq!(outcome.output["created"], 0);
}
