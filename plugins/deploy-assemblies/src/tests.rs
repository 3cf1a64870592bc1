//! Native tests through the SDK's fake host, with the lab's answers of `lab/PROTOCOL.md`.

use drover_sdk::HostApi;
use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use super::*;

const TARGET: &str = "DRBTS01";
const MSI: &str = "C:\\Staging\\Contoso.Orders.msi";
const DIR: &str = "C:\\Program Files\\Contoso\\Orders";
const TOKEN: &str = "31bf3856ad364e35";
const NAMES: [&str; 2] = ["Contoso.Orders.Schemas", "Contoso.Orders.Maps"];

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(TARGET)
        .with_context(Context { target: Some(TARGET.into()), ..Context::for_test(Mode::Apply) })
}

/// `gacutil /l` output listing `name` at `versions`.
fn listing(name: &str, versions: &[&str]) -> ExecOutput {
    let mut out = "Microsoft (R) .NET Global Assembly Cache Utility.  Version 4.0.30319.0\nCopyright (c) Microsoft Corporation.  All rights reserved.\n\nThe Global Assembly Cache contains the following assemblies:\n".to_string();
    for version in versions {
        out.push_str(&format!(
            "  {name}, Version={version}, Culture=neutral, PublicKeyToken={TOKEN}, processorArchitecture=MSIL\n"
        ));
    }
    out.push_str(&format!("\nNumber of items = {}\n", versions.len()));
    ExecOutput::exited(0, out)
}

fn gac_answers(host: &FakeHost, versions: &[&str]) {
    for name in NAMES {
        host.script_exec(TARGET, "gacutil", &["/l", name], listing(name, versions));
    }
}

fn msiexec(host: &FakeHost, code: i32) {
    let targetdir = format!("TARGETDIR={DIR}");
    host.script_exec(TARGET, "msiexec", &["/i", MSI, "/qn", &targetdir], ExecOutput::exited(code, ""));
}

fn input(import_app: Option<&str>) -> Value {
    let assemblies: Vec<Value> =
        NAMES.iter().map(|n| json!({"name": n, "version": "1.0.0.0", "public_key_token": TOKEN})).collect();
    json!({ "packages": [ { "msi": MSI, "target_dir": DIR, "assemblies": assemblies, "import_app": import_app } ] })
}

fn gac_lines() -> Vec<String> {
    NAMES.iter().map(|n| format!("gacutil /l {n}")).collect()
}

#[test]
fn installs_a_package_whose_assemblies_are_missing_then_verifies() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 0);
    gac_answers(&host, &["1.0.0.0"]);

    let outcome = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap();

    assert!(outcome.changed);
    let calls: Vec<(String, Vec<String>)> =
        host.exec_calls().into_iter().map(|c| (c.program, c.args)).collect();
    assert_eq!(
        calls[2],
        ("msiexec".into(), vec!["/i".into(), MSI.into(), "/qn".into(), format!("TARGETDIR={DIR}")])
    );
    let mut lines = gac_lines();
    lines.push(format!("msiexec /i {MSI} /qn \"TARGETDIR={DIR}\""));
    lines.extend(gac_lines());
    assert_eq!(host.command_lines(), lines);
    assert_eq!(
        outcome.output["packages"][0],
        json!({
            "msi": MSI, "installed": true, "imported_app": null,
            "assemblies": [
                {"assembly": "Contoso.Orders.Schemas, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35", "present_before": false, "present": true, "found_before": []},
                {"assembly": "Contoso.Orders.Maps, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35", "present_before": false, "present": true, "found_before": []},
            ]
        })
    );
    assert_eq!(outcome.summary, "installed 1 of 1 packages on DRBTS01");
    assert_eq!(outcome.evidence.len(), 5);
    assert_eq!(outcome.evidence[2].exit_code, Some(0));
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn a_second_run_changes_nothing_and_runs_no_installer() {
    let host = host();
    gac_answers(&host, &["1.0.0.0"]);
    let outcome = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap();
    assert!(!outcome.changed);
    assert_eq!(host.command_lines(), gac_lines());
    assert_eq!(outcome.output["packages"][0]["installed"], false);
    assert_eq!(outcome.summary, "installed 0 of 1 packages on DRBTS01");
}

#[test]
fn check_only_lists_the_gac() {
    let host = host();
    gac_answers(&host, &[]);
    let outcome = host.call::<DeployAssemblies>(Mode::Check, input(Some("Contoso.Orders"))).unwrap();
    assert!(outcome.changed);
    assert_eq!(host.command_lines(), gac_lines());
    assert_eq!(outcome.output["packages"][0]["installed"], true);
    assert_eq!(outcome.output["packages"][0]["imported_app"], "Contoso.Orders");
    assert_eq!(
        outcome.summary,
        "would install 1 of 1 packages on DRBTS01; would import 1 application(s) into the group"
    );
}

#[test]
fn check_of_the_post_state_says_nothing_would_change() {
    let host = host();
    gac_answers(&host, &["1.0.0.0"]);
    assert!(!host.call::<DeployAssemblies>(Mode::Check, input(None)).unwrap().changed);
}

#[test]
fn another_version_in_the_gac_does_not_count() {
    let host = host();
    gac_answers(&host, &["0.9.0.0"]);
    msiexec(&host, 0);
    gac_answers(&host, &["0.9.0.0", "1.0.0.0"]);
    let outcome = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.output["packages"][0]["assemblies"][0]["found_before"],
        json!(["Contoso.Orders.Schemas, Version=0.9.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"])
    );
}

#[test]
fn a_missing_package_is_permanent() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 1619);
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("package not found: C:\\Staging\\Contoso.Orders.msi on DRBTS01"), "{err}");
}

#[test]
fn another_installation_in_progress_is_retryable() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 1618);
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err}");
}

#[test]
fn other_installer_failures_are_permanent() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 1603);
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("exit code 1603"), "{err}");
}

#[test]
fn a_restart_request_is_a_warning() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 3010);
    gac_answers(&host, &["1.0.0.0"]);
    let outcome = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap();
    assert_eq!(
        outcome.output["warnings"],
        json!(["DRBTS01 asks for a restart to finish installing C:\\Staging\\Contoso.Orders.msi"])
    );
}

#[test]
fn an_assembly_still_missing_after_the_install_is_permanent() {
    let host = host();
    gac_answers(&host, &[]);
    msiexec(&host, 0);
    host.script_exec(TARGET, "gacutil", &["/l", NAMES[0]], listing(NAMES[0], &["1.0.0.0"]));
    host.script_exec(TARGET, "gacutil", &["/l", NAMES[1]], listing(NAMES[1], &[]));
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("the GAC still lacks Contoso.Orders.Maps, Version=1.0.0.0"), "{err}");
}

#[test]
fn imports_the_application_once_per_step_instance() {
    let host = host();
    gac_answers(&host, &["1.0.0.0"]);
    host.script_exec(
        TARGET,
        "BTSTask",
        &["ImportApp", &format!("/Package:{MSI}"), "/ApplicationName:Contoso.Orders", "/Overwrite"],
        ExecOutput::exited(0, "Microsoft (R) BizTalk Application Deployment Utility\n\nCommand succeeded with 0 errors, 0 warnings.\n"),
    );
    let outcome = host.call::<DeployAssemblies>(Mode::Apply, input(Some("Contoso.Orders"))).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.output["packages"][0]["imported_app"], "Contoso.Orders");
    assert_eq!(
        host.command_lines().last().unwrap(),
        &format!("BTSTask ImportApp /Package:{MSI} /ApplicationName:Contoso.Orders /Overwrite")
    );
    assert!(host.state_get(IMPORTED).is_some());

    gac_answers(&host, &["1.0.0.0"]);
    let again = host.call::<DeployAssemblies>(Mode::Apply, input(Some("Contoso.Orders"))).unwrap();
    assert!(!again.changed);
    assert!(host.command_lines().iter().filter(|l| l.starts_with("BTSTask")).count() == 1);
}

#[test]
fn a_failed_import_is_permanent_and_not_recorded() {
    let host = host();
    gac_answers(&host, &["1.0.0.0"]);
    host.script_exec_any(
        TARGET,
        "BTSTask",
        ExecOutput::exited(1, "Command failed with 1 errors, 0 warnings.\n"),
    );
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(Some("Contoso.Orders"))).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("importing application Contoso.Orders"), "{err}");
    assert!(host.state_get(IMPORTED).is_none());
}

#[test]
fn an_unreachable_target_is_retryable() {
    let host = host();
    host.script_exec_error(
        TARGET,
        "gacutil",
        &["/l", NAMES[0]],
        HostError::new(HostErrorKind::Retryable, "DRBTS01 did not answer"),
    );
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err}");
}

#[test]
fn a_missing_gacutil_is_permanent() {
    let host = host();
    host.script_exec(
        TARGET,
        "gacutil",
        &["/l", NAMES[0]],
        ExecOutput {
            exit_code: Some(9009),
            stderr: b"drover-lab: unsupported command: gacutil".to_vec(),
            ..Default::default()
        },
    );
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(err.message().contains("exit code 9009"), "{err}");
}

#[test]
fn a_package_without_assemblies_is_refused_before_anything_runs() {
    let host = host();
    let bad = json!({ "packages": [ { "msi": MSI, "target_dir": DIR, "assemblies": [] } ] });
    let err = host.call::<DeployAssemblies>(Mode::Apply, bad).unwrap_err();
    assert!(err.message().contains("lists no assemblies"), "{err}");
    assert!(host.exec_calls().is_empty());
}

#[test]
fn describes_itself_as_idempotent() {
    let describe = <DeployAssemblies as Plugin>::describe();
    assert_eq!(describe.name(), "deploy-assemblies");
    assert_eq!(describe.version(), "1.0.0");
    assert_eq!(describe.effect(), Effect::Idempotent);
}
