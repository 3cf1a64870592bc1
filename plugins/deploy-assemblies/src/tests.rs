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

/// What the GAC probe prints for `name` at `versions` (`lab/PROTOCOL.md`): one file a line.
fn listing(name: &str, versions: &[&str]) -> ExecOutput {
    let out: String = versions
        .iter()
        .map(|v| {
            format!(
                "C:\\Windows\\Microsoft.NET\\assembly\\GAC_MSIL\\{name}\\v4.0_{v}__{TOKEN}\\{name}.dll\r\n"
            )
        })
        .collect();
    ExecOutput::exited(0, out)
}

/// The probe's argv words after `powershell.exe`.
fn probe_argv(name: &str) -> Vec<String> {
    gac::probe_args(name)
}

/// Scripts the probe's answer for `name`.
fn probe(host: &FakeHost, name: &str, output: ExecOutput) {
    let argv = probe_argv(name);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    host.script_exec(TARGET, "powershell.exe", &args, output);
}

fn gac_answers(host: &FakeHost, versions: &[&str]) {
    for name in NAMES {
        probe(host, name, listing(name, versions));
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

/// The command line of `powershell.exe <args>` as the evidence shows it.
fn powershell_line(args: Vec<String>) -> String {
    let request = ExecRequest {
        target: TARGET.into(),
        program: "powershell.exe".into(),
        args,
        stdin: None,
        timeout_ms: None,
    };
    request.command_line()
}

fn gac_lines() -> Vec<String> {
    NAMES.iter().map(|n| powershell_line(gac::probe_args(n))).collect()
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
    probe(&host, NAMES[0], listing(NAMES[0], &["1.0.0.0"]));
    probe(&host, NAMES[1], listing(NAMES[1], &[]));
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
fn an_import_without_either_summary_line_needs_an_operator_and_is_not_recorded() {
    let host = host();
    gac_answers(&host, &["1.0.0.0"]);
    host.script_exec_any(TARGET, "BTSTask", ExecOutput::exited(0, "Befehl erfolgreich abgeschlossen.\n"));
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(Some("Contoso.Orders"))).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(err.message().starts_with("BTSTask ImportApp of Contoso.Orders on DRBTS01 answered"), "{err}");
    assert!(err.message().contains("Befehl erfolgreich abgeschlossen."), "{err}");
    assert!(host.state_get(IMPORTED).is_none());
}

#[test]
fn an_unreachable_target_is_retryable() {
    let host = host();
    let argv = probe_argv(NAMES[0]);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    host.script_exec_error(
        TARGET,
        "powershell.exe",
        &args,
        HostError::new(HostErrorKind::Retryable, "DRBTS01 did not answer"),
    );
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err}");
}

#[test]
fn a_failed_probe_needs_an_operator_with_what_powershell_said() {
    let host = host();
    let denied = "Get-ChildItem : Access to the path 'C:\\Windows\\Microsoft.NET\\assembly\\GAC_MSIL\\Contoso.Orders.Schemas' is denied.\r\n";
    probe(
        &host,
        NAMES[0],
        ExecOutput { exit_code: Some(1), stderr: denied.as_bytes().to_vec(), ..Default::default() },
    );
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    // The probe only reads folders every account can read: a failure is not one Drover knows.
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(
        err.message().starts_with(
            "the GAC probe for Contoso.Orders.Schemas on DRBTS01 answered in a way Drover does not recognise"
        ),
        "{err}"
    );
    assert!(
        err.message().contains("exit code: 1\nstdout: (empty)\nstderr:\n  Get-ChildItem : Access"),
        "{err}"
    );
    assert!(err.message().contains("is denied."), "{err}");
}

#[test]
fn an_answer_that_is_not_a_list_of_gac_files_needs_an_operator() {
    let host = host();
    probe(&host, NAMES[0], ExecOutput::exited(0, "True\r\n"));
    let err = host.call::<DeployAssemblies>(Mode::Apply, input(None)).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err}");
    assert!(
        err.message().contains("(unexpected answer from the GAC probe: `True` is not a GAC file path)"),
        "{err}"
    );
    assert!(err.message().contains("stdout:\n  True"), "the raw answer: {err}");
}

const DLL: &str = "C:\\Staging\\Contoso.Common.dll";

fn file_input() -> Value {
    json!({ "files": [ { "path": DLL, "assembly": { "name": "Contoso.Common", "version": "2.0.0.0", "public_key_token": TOKEN } } ] })
}

fn gac_install(host: &FakeHost, output: ExecOutput) {
    let argv = gac::install_args(DLL);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    host.script_exec(TARGET, "powershell.exe", &args, output);
}

#[test]
fn a_loose_file_is_installed_with_gacinstall_then_verified() {
    let host = host();
    probe(&host, "Contoso.Common", listing("Contoso.Common", &[]));
    gac_install(&host, ExecOutput::exited(0, ""));
    probe(&host, "Contoso.Common", listing("Contoso.Common", &["2.0.0.0"]));
    let outcome = host.call::<DeployAssemblies>(Mode::Apply, file_input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(
        outcome.output["files"][0],
        json!({"path": DLL, "installed": true, "assembly": {"assembly": "Contoso.Common, Version=2.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35", "present_before": false, "present": true, "found_before": []}})
    );
    assert_eq!(host.command_lines()[1], powershell_line(gac::install_args(DLL)));
    assert_eq!(
        outcome.summary,
        "installed 0 of 0 packages on DRBTS01; installed 1 of 1 assembly files into the GAC"
    );
    assert!(host.unused_scripts().is_empty());

    probe(&host, "Contoso.Common", listing("Contoso.Common", &["2.0.0.0"]));
    let again = host.call::<DeployAssemblies>(Mode::Apply, file_input()).unwrap();
    assert!(!again.changed);
    assert_eq!(host.command_lines().len(), 4, "no second GacInstall");
}

#[test]
fn gacinstall_that_installed_nothing_is_permanent() {
    let host = host();
    probe(&host, "Contoso.Common", listing("Contoso.Common", &["1.0.0.0"]));
    gac_install(&host, ExecOutput::exited(0, ""));
    probe(&host, "Contoso.Common", listing("Contoso.Common", &["1.0.0.0"]));
    let err = host.call::<DeployAssemblies>(Mode::Apply, file_input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
    assert!(
        err.message().starts_with("after GacInstall of C:\\Staging\\Contoso.Common.dll on DRBTS01, the GAC still lacks Contoso.Common, Version=2.0.0.0"),
        "{err}"
    );
}

#[test]
fn check_of_a_loose_file_only_reads_the_gac() {
    let host = host();
    probe(&host, "Contoso.Common", listing("Contoso.Common", &[]));
    let outcome = host.call::<DeployAssemblies>(Mode::Check, file_input()).unwrap();
    assert!(outcome.changed);
    assert_eq!(host.command_lines().len(), 1);
    assert_eq!(outcome.output["files"][0]["installed"], true);
}

#[test]
fn a_name_the_script_cannot_carry_is_refused_before_anything_runs() {
    let host = host();
    let bad = json!({ "files": [ { "path": DLL, "assembly": { "name": "Contoso'; Remove-Item C:\\", "version": "1.0.0.0", "public_key_token": TOKEN } } ] });
    let err = host.call::<DeployAssemblies>(Mode::Apply, bad).unwrap_err();
    assert!(err.message().contains("is not a simple name"), "{err}");
    assert!(host.exec_calls().is_empty());
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
