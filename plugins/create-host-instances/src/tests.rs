//! Native tests through the SDK's fake host, with the lab's answers of `lab/PROTOCOL.md`. The
//! helpers at the top are shared with the compensation's tests.

use biztalk_common::wmi;
use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use super::*;

pub(crate) const TARGET: &str = "DRBTS01";
pub(crate) const ACCOUNT: &str = "CONTOSO\\svc-bts";

pub(crate) fn host() -> FakeHost {
    FakeHost::new()
        .with_target(TARGET)
        .with_context(Context { target: Some(TARGET.into()), ..Context::for_test(Mode::Apply) })
}

pub(crate) fn row(host: &str, server: &str, configuration: u8, disabled: bool, service: u8) -> Value {
    json!({
        "Name": format!("Microsoft BizTalk Server {host} {server}"),
        "HostName": host,
        "HostType": 1,
        "RunningServer": server,
        "Logon": ACCOUNT,
        "ConfigurationState": configuration,
        "IsDisabled": disabled,
        "ServiceState": service,
    })
}

/// A production instance: installed, enabled, running.
pub(crate) fn live(host: &str, server: &str) -> Value {
    row(host, server, 1, false, 4)
}

/// A DR instance as the creation script leaves it: installed, disabled, stopped.
pub(crate) fn standby(host: &str, server: &str) -> Value {
    row(host, server, 1, true, 1)
}

/// The lab's production instances.
pub(crate) fn production() -> Vec<Value> {
    vec![
        live("ReceiveHost", "PRDBTS01"),
        live("SendHost", "PRDBTS01"),
        live("SendHost", "PRDBTS02"),
        live("ProcessingHost", "PRDBTS02"),
    ]
}

/// What `ConvertTo-Json -Compress` prints: nothing, one object, or an array.
pub(crate) fn answer(rows: &[Value]) -> ExecOutput {
    match rows {
        [] => ExecOutput::exited(0, ""),
        [one] => ExecOutput::exited(0, format!("{one}\r\n")),
        many => ExecOutput::exited(0, format!("{}\r\n", Value::Array(many.to_vec()))),
    }
}

pub(crate) fn failing(stderr: &str) -> ExecOutput {
    ExecOutput { exit_code: Some(1), stderr: stderr.as_bytes().to_vec(), ..Default::default() }
}

pub(crate) fn argv(script: &str) -> Vec<String> {
    powershell::args(script)
}

pub(crate) fn powershell(host: &FakeHost, script: &str, output: ExecOutput) {
    let args = argv(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.script_exec(TARGET, "powershell.exe", &args, output);
}

pub(crate) fn query(host: &FakeHost, rows: &[Value]) {
    powershell(host, wmi::HOST_INSTANCES, answer(rows));
}

pub(crate) fn create_script(host_name: &str, server: &str) -> String {
    wmi::create_host_instance(host_name, server, ACCOUNT)
}

pub(crate) fn create(host: &FakeHost, host_name: &str, server: &str, output: ExecOutput) {
    powershell(host, &create_script(host_name, server), output);
}

pub(crate) fn input(mapping: &[(&str, &str)]) -> Value {
    let mapping: Vec<Value> = mapping.iter().map(|(p, d)| json!({"production": p, "dr": d})).collect();
    json!({ "mapping": mapping })
}

pub(crate) fn one_to_one() -> Value {
    input(&[("PRDBTS01", "DRBTS01"), ("PRDBTS02", "DRBTS02")])
}

pub(crate) const NEW: [(&str, &str); 4] = [
    ("ReceiveHost", "DRBTS01"),
    ("SendHost", "DRBTS01"),
    ("SendHost", "DRBTS02"),
    ("ProcessingHost", "DRBTS02"),
];

pub(crate) fn after_creation() -> Vec<Value> {
    let mut rows = production();
    rows.extend(NEW.iter().map(|(h, s)| standby(h, s)));
    rows
}

pub(crate) fn sent(host: &FakeHost) -> Vec<Vec<String>> {
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
        r#"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'DRBTS01'; $sh.HostName = 'ReceiveHost'; $sh.Map(); $hi = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_HostInstance").CreateInstance(); $hi.Name = 'Microsoft BizTalk Server ReceiveHost DRBTS01'; $hi.IsDisabled = $true; $hi.Install('CONTOSO\svc-bts', $password, $true, $false)"#
    );
    // The password goes in the script's standard input, as a reference the host fills in; no
    // command line carries it.
    // One secret per host: bts-host-<host in lower case>.
    for (call, (h, _)) in host.exec_calls()[1..5].iter().zip(NEW) {
        let reference = format!("@@secret:bts-host-{}@@", h.to_lowercase());
        assert_eq!(call.stdin.as_deref(), Some(reference.as_bytes()));
    }
    assert!(host.command_lines().iter().all(|line| !line.contains("@@secret:")));
    assert_eq!(outcome.output["created"], 4);
    assert_eq!(outcome.output["warnings"], json!([]));
    assert_eq!(
        outcome.output["instances"][1],
        json!({
            "host": "SendHost", "server": "DRBTS01", "production_servers": ["PRDBTS01"], "action": "created",
            "logon": ACCOUNT, "host_type": "in-process",
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
fn warns_when_production_servers_running_the_same_hosts_are_consolidated_on_one_dr_server() {
    // The common N:1 case: both production servers run SendHost and ReceiveHost; DRBTS01 carries
    // as many hosts as each of them, but does the work of both.
    let host = host();
    let prod = vec![
        live("ReceiveHost", "PRDBTS01"),
        live("SendHost", "PRDBTS01"),
        live("ReceiveHost", "PRDBTS02"),
        live("SendHost", "PRDBTS02"),
    ];
    query(&host, &prod);
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    let mut after = prod.clone();
    after.extend([standby("ReceiveHost", "DRBTS01"), standby("SendHost", "DRBTS01")]);
    query(&host, &after);

    let two_on_one = input(&[("PRDBTS01", "DRBTS01"), ("PRDBTS02", "DRBTS01")]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, two_on_one).unwrap();

    let warning = "DRBTS01 takes over 2 production servers (PRDBTS01: 2, PRDBTS02: 2): the work of 4 production host instances on 2; check it can take the load (seed B7: avoid overloading the DR servers)";
    assert_eq!(outcome.output["warnings"], json!([warning]));
    assert_eq!(outcome.output["created"], 2);
}

#[test]
fn warns_when_a_dr_server_carries_more_than_its_production_counterpart() {
    // 1:1, but DRBTS01 already carries a host PRDBTS01 does not run.
    let host = host();
    let prod = vec![live("ReceiveHost", "PRDBTS01"), live("SendHost", "PRDBTS01")];
    let extra = standby("ProcessingHost", "DRBTS01");
    let mut before = prod.clone();
    before.push(extra.clone());
    query(&host, &before);
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    let mut after = before.clone();
    after.extend([standby("ReceiveHost", "DRBTS01"), standby("SendHost", "DRBTS01")]);
    query(&host, &after);
    let mut one = input(&[("PRDBTS01", "DRBTS01")]);
    one["production_instances"] =
        json!([{"host": "ReceiveHost", "server": "PRDBTS01"}, {"host": "SendHost", "server": "PRDBTS01"}]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, one).unwrap();
    let warning = "DRBTS01 will carry 3 host instances, more than its production counterpart (PRDBTS01: 2); check it can take the load (seed B7: avoid overloading the DR servers)";
    assert_eq!(outcome.output["warnings"], json!([warning]));
}

#[test]
fn warns_when_production_servers_running_different_hosts_are_consolidated() {
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

    let warning = "DRBTS01 takes over 2 production servers (PRDBTS01: 2, PRDBTS02: 2): the work of 4 production host instances on 3; check it can take the load (seed B7: avoid overloading the DR servers)";
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
    let prod = [live("SendHost", "PRDBTS01"), live("ReceiveHost", "PRDBTS01")];
    query(&host, &prod);
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    let mut after = prod.to_vec();
    after.push(standby("SendHost", "DRBTS01"));
    query(&host, &after);
    let mut given = input(&[("PRDBTS01", "DRBTS01")]);
    given["production_instances"] = json!([{ "host": "SendHost", "server": "PRDBTS01" }]);
    let outcome = host.call::<CreateHostInstances>(Mode::Apply, given).unwrap();
    assert_eq!(outcome.output["created"], 1);
    assert_eq!(outcome.output["warnings"], json!([]));
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn the_password_secret_is_named_per_host_and_can_be_mapped() {
    let host = host();
    query(&host, &[live("SendHost", "PRDBTS01"), live("ReceiveHost", "PRDBTS01")]);
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    create(&host, "ReceiveHost", "DRBTS01", ExecOutput::exited(0, ""));
    query(
        &host,
        &[
            live("SendHost", "PRDBTS01"),
            live("ReceiveHost", "PRDBTS01"),
            standby("SendHost", "DRBTS01"),
            standby("ReceiveHost", "DRBTS01"),
        ],
    );
    let mut mapped = input(&[("PRDBTS01", "DRBTS01")]);
    mapped["password_secrets"] = json!({ "receivehost": "svc-bts-password" });
    host.call::<CreateHostInstances>(Mode::Apply, mapped).unwrap();
    assert!(host.unused_scripts().is_empty());
    let calls = host.exec_calls();
    assert_eq!(calls[1].stdin.as_deref(), Some(&b"@@secret:bts-host-sendhost@@"[..]), "the convention");
    assert_eq!(calls[2].stdin.as_deref(), Some(&b"@@secret:svc-bts-password@@"[..]), "as mapped");

    let plugin_input: Input = serde_json::from_value(input(&[])).unwrap();
    assert_eq!(
        plugin_input.password_secret("BizTalkServerIsolatedHost"),
        "bts-host-biztalkserverisolatedhost"
    );
    let old = json!({ "mapping": [], "logon": { "account": ACCOUNT } });
    assert!(serde_json::from_value::<Input>(old).is_err(), "one logon for every host is gone");
}

#[test]
fn each_host_runs_as_its_production_instances_do() {
    // The isolated host runs under its own account (the Windows group of isolated hosts), the
    // in-process ones under another: each DR instance is installed with its host's.
    let host = host();
    let isolated = "BizTalkServerIsolatedHost";
    let ihost = "CONTOSO\\svc-bts-ihost";
    let mut prod = live(isolated, "PRDBTS01");
    prod["HostType"] = json!(2);
    prod["Logon"] = json!(ihost);
    prod["ServiceState"] = json!(8);
    query(&host, &[live("SendHost", "PRDBTS01"), prod.clone()]);
    create(&host, "SendHost", "DRBTS01", ExecOutput::exited(0, ""));
    powershell(&host, &wmi::create_host_instance(isolated, "DRBTS01", ihost), ExecOutput::exited(0, ""));
    let mut dr = standby(isolated, "DRBTS01");
    dr["HostType"] = json!(2);
    dr["Logon"] = json!(ihost);
    dr["ServiceState"] = json!(8);
    query(&host, &[live("SendHost", "PRDBTS01"), prod, standby("SendHost", "DRBTS01"), dr]);

    let outcome = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap();

    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    let calls = host.exec_calls();
    assert!(calls[1].args[3].ends_with("$hi.Install('CONTOSO\\svc-bts', $password, $true, $false)"));
    assert!(calls[2].args[3].ends_with("$hi.Install('CONTOSO\\svc-bts-ihost', $password, $true, $false)"));
    assert_eq!(calls[2].stdin.as_deref(), Some(&b"@@secret:bts-host-biztalkserverisolatedhost@@"[..]));
    // Verified although WMI cannot tell the isolated instance's state (8, Unknown).
    assert_eq!(outcome.output["created"], 2);
    assert_eq!(outcome.output["instances"][1]["host_type"], "isolated");
    assert_eq!(outcome.output["instances"][1]["logon"], ihost);
    assert_eq!(outcome.output["instances"][1]["service_state"], "unknown");
    assert_eq!(outcome.output["warnings"], json!([]), "an isolated standby instance is no warning");
}

#[test]
fn a_host_under_several_production_accounts_needs_an_operator_before_anything_runs() {
    let host = host();
    let mut other = live("SendHost", "PRDBTS02");
    other["Logon"] = json!("CONTOSO\\svc-bts-2");
    query(&host, &[live("SendHost", "PRDBTS01"), other]);
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(
        err.message().contains(
            "the production instances of host SendHost run under 2 accounts (CONTOSO\\svc-bts on PRDBTS01, CONTOSO\\svc-bts-2 on PRDBTS02)"
        ),
        "{err}"
    );
    assert_eq!(host.exec_calls().len(), 1, "only the query ran");
}

#[test]
fn a_host_without_a_production_logon_needs_an_operator() {
    let host = host();
    let mut bare = live("SendHost", "PRDBTS01");
    bare["Logon"] = Value::Null;
    query(&host, &[bare]);
    let err = host.call::<CreateHostInstances>(Mode::Check, input(&[("PRDBTS01", "DRBTS01")])).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("no production instance of host SendHost has a logon account"), "{err}");
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
fn a_query_failure_drover_does_not_know_needs_an_operator_with_the_raw_text() {
    let host = host();
    powershell(&host, wmi::HOST_INSTANCES, failing("Get-CimInstance : Zugriff verweigert"));
    let err = host.call::<CreateHostInstances>(Mode::Apply, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(
        err.message()
            .starts_with("reading MSBTS_HostInstance on DRBTS01 answered in a way Drover does not recognise"),
        "{err}"
    );
    assert!(err.message().contains("Zugriff verweigert"), "the raw text: {err}");
}

#[test]
fn host_instances_that_are_not_json_need_an_operator() {
    let host = host();
    powershell(&host, wmi::HOST_INSTANCES, ExecOutput::exited(0, "WARNING: the provider is not loaded\n"));
    let err = host.call::<CreateHostInstances>(Mode::Check, one_to_one()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("WARNING: the provider is not loaded"), "{err}");
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
            "the password secret bts-host-receivehost of host ReceiveHost (CONTOSO\\svc-bts) is empty",
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
fn a_secret_name_a_workflow_cannot_grant_is_refused_before_anything_runs() {
    let host = host();
    let mut bad = one_to_one();
    bad["password_secrets"] = json!({ "SendHost": "not a name" });
    let err = host.call::<CreateHostInstances>(Mode::Apply, bad).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)));
    assert!(err.message().contains("\"not a name\" (host SendHost) is not a secret name"), "{err}");
    assert!(host.exec_calls().is_empty());
}

#[test]
fn an_unrecognized_install_failure_needs_an_operator_naming_the_account() {
    let host = host();
    query(&host, &[live("ReceiveHost", "PRDBTS01")]);
    create(&host, "ReceiveHost", "DRBTS01", failing("Exception calling \"Install\" : \"something new\""));
    let err = host.call::<CreateHostInstances>(Mode::Apply, input(&[("PRDBTS01", "DRBTS01")])).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().contains("as CONTOSO\\svc-bts (the logon of the production instances of ReceiveHost, password from secret bts-host-receivehost)"), "{err}");
    assert!(err.message().contains("something new"), "the raw text: {err}");
}

#[test]
fn describes_itself_as_idempotent() {
    let describe = <CreateHostInstances as Plugin>::describe();
    assert_eq!(describe.name(), "create-host-instances");
    assert_eq!(
        describe.version(),
        "2.0.0",
        "1.1: repair mode; 1.2: compensation; 2.0: logons copied from production, a secret per host"
    );
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

/// Repair mode (docs/biztalk.md, "Host instances of a replaced server"): PRDBTS02 was rebuilt under its own name and joined again; the step runs
/// on it.
mod repair {
    use super::*;

    const REPLACED: &str = "PRDBTS02";

    fn host() -> FakeHost {
        FakeHost::new()
            .with_target(REPLACED)
            .with_context(Context { target: Some(REPLACED.into()), ..Context::for_test(Mode::Apply) })
    }

    fn powershell(host: &FakeHost, script: &str, output: ExecOutput) {
        let args = argv(script);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        host.script_exec(REPLACED, "powershell.exe", &args, output);
    }

    fn query(host: &FakeHost, rows: &[Value]) {
        powershell(host, wmi::HOST_INSTANCES, answer(rows));
    }

    /// `sc.exe query BTSSvc$<host>` on the replaced server: present (stopped) or 1060.
    fn service(host: &FakeHost, host_name: &str, present: bool) {
        let name = format!("BTSSvc${host_name}");
        let output = if present {
            ExecOutput::exited(
                0,
                format!(
                    "\nSERVICE_NAME: {name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : 1  STOPPED\n        WIN32_EXIT_CODE    : 0  (0x0)\n        SERVICE_EXIT_CODE  : 0  (0x0)\n        CHECKPOINT         : 0x0\n        WAIT_HINT          : 0x0\n"
                ),
            )
        } else {
            ExecOutput::exited(
                36,
                "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n",
            )
        };
        host.script_exec(REPLACED, "sc.exe", &["query", &name], output);
    }

    fn install_script(host_name: &str, disabled: bool) -> String {
        wmi::install_host_instance(host_name, REPLACED, ACCOUNT, disabled)
    }

    fn install(host: &FakeHost, host_name: &str, disabled: bool) {
        powershell(host, &install_script(host_name, disabled), ExecOutput::exited(0, ""));
    }

    /// The group's rows after the replacement: PRDBTS02's instances installed, enabled and
    /// stopped (nothing runs on the new computer).
    fn rows() -> Vec<Value> {
        vec![
            live("ReceiveHost", "PRDBTS01"),
            live("SendHost", "PRDBTS01"),
            row("SendHost", REPLACED, 1, false, 1),
            row("ProcessingHost", REPLACED, 1, false, 1),
        ]
    }

    fn input() -> Value {
        let mut input = super::input(&[(REPLACED, REPLACED)]);
        input["repair"] = json!(true);
        input
    }

    #[test]
    fn instances_whose_service_is_missing_are_installed_again_keeping_is_disabled() {
        let host = host();
        query(&host, &rows());
        service(&host, "SendHost", false);
        service(&host, "ProcessingHost", false);
        install(&host, "SendHost", false);
        install(&host, "ProcessingHost", false);
        query(&host, &rows());
        service(&host, "SendHost", true);
        service(&host, "ProcessingHost", true);

        let outcome = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap();

        assert!(outcome.changed);
        let sc_queries = ["sc.exe query BTSSvc$SendHost", "sc.exe query BTSSvc$ProcessingHost"];
        let lines = host.command_lines();
        assert_eq!(lines.len(), 8, "{lines:#?}");
        assert_eq!(lines[1..3], sc_queries);
        assert_eq!(lines[6..8], sc_queries, "verified: the services exist now");
        let calls = host.exec_calls();
        assert_eq!(calls[0].args, argv(wmi::HOST_INSTANCES));
        assert_eq!(calls[5].args, argv(wmi::HOST_INSTANCES));
        assert_eq!(calls[3].args, argv(&install_script("SendHost", false)));
        assert_eq!(calls[4].args, argv(&install_script("ProcessingHost", false)));
        assert!(calls[3].args[3].contains("$hi.IsDisabled = $false;"), "the row's IsDisabled is kept");
        assert_eq!(
            calls[3].stdin.as_deref(),
            Some(&b"@@secret:bts-host-sendhost@@"[..]),
            "the host's secret"
        );
        assert!(calls.iter().all(|c| c.target == REPLACED));
        assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
        assert_eq!(outcome.output["repaired"], 2);
        assert_eq!(outcome.output["created"], 0);
        assert_eq!(outcome.output["warnings"], json!([]), "PRDBTS01 is not the server being replaced");
        assert_eq!(
            outcome.output["instances"][0],
            json!({
                "host": "SendHost", "server": "PRDBTS02", "production_servers": ["PRDBTS02"],
                "logon": ACCOUNT, "host_type": "in-process", "action": "repaired",
                "configuration_state": "installed", "is_disabled": false, "service_state": "stopped"
            })
        );
        assert_eq!(outcome.output["instances"].as_array().unwrap().len(), 2);
        assert_eq!(
            outcome.summary,
            "installed 2 of 2 host instances again (Windows service missing) and created 0; the services are stopped"
        );
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let host = host();
        query(&host, &rows());
        service(&host, "SendHost", true);
        service(&host, "ProcessingHost", true);
        let outcome = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap();
        assert!(!outcome.changed);
        assert_eq!(outcome.output["repaired"], 0);
        assert!(outcome.output["instances"].as_array().unwrap().iter().all(|i| i["action"] == "present"));
        assert_eq!(host.exec_calls().len(), 3, "only queries");
        assert!(host.unused_scripts().is_empty());
    }

    #[test]
    fn only_the_missing_service_is_installed_again_and_a_disabled_row_stays_disabled() {
        let host = host();
        let mut rows = rows();
        rows[3] = row("ProcessingHost", REPLACED, 1, true, 1);
        query(&host, &rows);
        service(&host, "SendHost", true);
        service(&host, "ProcessingHost", false);
        install(&host, "ProcessingHost", true);
        query(&host, &rows);
        service(&host, "ProcessingHost", true);
        let outcome = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap();
        assert!(outcome.changed);
        assert_eq!(outcome.output["repaired"], 1);
        assert_eq!(outcome.output["instances"][0]["action"], "present");
        assert_eq!(outcome.output["instances"][1]["action"], "repaired");
        assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    }

    #[test]
    fn check_says_what_would_be_installed_again_and_installs_nothing() {
        let host = host();
        query(&host, &rows());
        service(&host, "SendHost", false);
        service(&host, "ProcessingHost", true);
        let outcome = host.call::<CreateHostInstances>(Mode::Check, input()).unwrap();
        assert!(outcome.changed);
        assert_eq!(outcome.output["repaired"], 1);
        assert_eq!(outcome.output["instances"][0]["action"], "would-repair");
        assert!(
            outcome.summary.starts_with("would install 1 of 2 host instances again"),
            "{}",
            outcome.summary
        );
        assert_eq!(host.exec_calls().len(), 3);
    }

    #[test]
    fn isolated_hosts_have_no_service_to_look_for() {
        let host = host();
        let mut rows = rows();
        rows[3]["HostType"] = json!(2);
        rows[3]["ServiceState"] = json!(8);
        query(&host, &rows);
        service(&host, "SendHost", true);
        let outcome = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap();
        assert!(!outcome.changed);
        assert!(host.unused_scripts().is_empty());
        assert!(!host.command_lines().iter().any(|c| c.contains("BTSSvc$ProcessingHost")));
    }

    #[test]
    fn a_service_query_that_fails_otherwise_is_permanent() {
        let host = host();
        query(&host, &rows());
        host.script_exec(
            REPLACED,
            "sc.exe",
            &["query", "BTSSvc$SendHost"],
            ExecOutput::exited(5, "[SC] OpenService FAILED 5:\n\nAccess is denied.\n"),
        );
        let err = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap_err();
        assert_eq!(
            err,
            StepError::permanent(
                "querying service BTSSvc$SendHost on PRDBTS02 failed: sc.exe failed with 5: Access is denied."
            )
        );
    }

    #[test]
    fn a_service_still_missing_after_the_installation_is_permanent() {
        let host = host();
        query(&host, &rows());
        service(&host, "SendHost", false);
        service(&host, "ProcessingHost", true);
        install(&host, "SendHost", false);
        query(&host, &rows());
        service(&host, "SendHost", false);
        let err = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap_err();
        assert_eq!(
            err,
            StepError::permanent(
                "the service BTSSvc$SendHost still does not exist on PRDBTS02 after installing Microsoft BizTalk Server SendHost PRDBTS02"
            )
        );
    }

    #[test]
    fn a_row_in_a_failed_state_still_needs_an_operator() {
        let host = host();
        let mut rows = rows();
        rows[2] = row("SendHost", REPLACED, 2, false, 1);
        query(&host, &rows);
        let err = host.call::<CreateHostInstances>(Mode::Apply, input()).unwrap_err();
        assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
        assert_eq!(host.exec_calls().len(), 1, "nothing else runs");
    }

    #[test]
    fn a_missing_row_is_created_with_the_production_instances_is_disabled() {
        // A replacement under another name: PRDBTS02's rows are what PRDBTS03 must carry.
        let host = FakeHost::new()
            .with_target("PRDBTS03")
            .with_context(Context { target: Some("PRDBTS03".into()), ..Context::for_test(Mode::Apply) });
        let args = |script: &str| argv(script);
        let ps = |script: &str, output: ExecOutput| {
            let a = args(script);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            host.script_exec("PRDBTS03", "powershell.exe", &a, output);
        };
        let before = rows();
        ps(wmi::HOST_INSTANCES, answer(&before));
        let script = |h: &str| wmi::install_host_instance(h, "PRDBTS03", ACCOUNT, false);
        ps(&script("SendHost"), ExecOutput::exited(0, ""));
        ps(&script("ProcessingHost"), ExecOutput::exited(0, ""));
        let mut after = before.clone();
        after.extend([
            row("SendHost", "PRDBTS03", 1, false, 1),
            row("ProcessingHost", "PRDBTS03", 1, false, 1),
        ]);
        ps(wmi::HOST_INSTANCES, answer(&after));
        for h in ["SendHost", "ProcessingHost"] {
            host.script_exec(
                "PRDBTS03",
                "sc.exe",
                &["query", &format!("BTSSvc${h}")],
                ExecOutput::exited(
                    0,
                    format!("\nSERVICE_NAME: BTSSvc${h}\n        STATE              : 1  STOPPED\n"),
                ),
            );
        }
        let mut input = super::input(&[(REPLACED, "PRDBTS03")]);
        input["repair"] = json!(true);
        let outcome = host.call::<CreateHostInstances>(Mode::Apply, input).unwrap();
        assert_eq!(outcome.output["created"], 2);
        assert_eq!(outcome.output["repaired"], 0);
        assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    }
}
