//! Native tests through the fake host, answering with the exact outputs of `lab/PROTOCOL.md`.

use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use super::*;
use crate::probes::compare_versions;

const SERVER: &str = "DRBTS01";
const NOT_FOUND: &str = "ERROR: The system was unable to find the specified registry key or value.\n";

/// One scripted command: program, argv, answer.
type Answer = (&'static str, Vec<String>, ExecOutput);

fn ps(script: &str) -> Vec<String> {
    biztalk_common::powershell::args(script)
}

fn reg_q(key: &str, value: &str) -> Vec<String> {
    biztalk_common::reg::query_args(key, value)
}

fn reg_found(key: &str, value: &str, kind: &str, data: &str) -> ExecOutput {
    let long = key.replacen("HKLM\\", "HKEY_LOCAL_MACHINE\\", 1);
    ExecOutput::exited(0, format!("\n{long}\n    {value}    {kind}    {data}\n\n"))
}

fn failed(code: i32, stderr: &str) -> ExecOutput {
    ExecOutput { exit_code: Some(code), stderr: stderr.as_bytes().to_vec(), ..Default::default() }
}

fn sqlcmd_args() -> Vec<String> {
    ["-S", "PRDSQL01", "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"].map(String::from).to_vec()
}

fn net_args(group: &str) -> Vec<String> {
    vec!["group".into(), group.into(), "/domain".into()]
}

fn group_present(group: &str) -> ExecOutput {
    ExecOutput::exited(
        0,
        format!(
            "Group name     {group}\nComment        \n\nMembers\n\n-------------------------------------------------------------------------------\nsvc-sso\nThe command completed successfully.\n\n"
        ),
    )
}

/// A fresh DR server of the lab: every prerequisite present.
fn healthy_server() -> Vec<Answer> {
    use biztalk_common::{powershell as p, reg as r};
    let mut answers: Vec<Answer> = vec![
        (
            "powershell.exe",
            ps(p::OPERATING_SYSTEM),
            ExecOutput::exited(
                0,
                "{\"Caption\":\"Microsoft Windows Server 2019 Datacenter\",\"Version\":\"10.0.17763\",\"BuildNumber\":\"17763\"}\r\n",
            ),
        ),
        (
            "powershell.exe",
            ps(p::COMPUTER_SYSTEM),
            ExecOutput::exited(
                0,
                "{\"Name\":\"DRBTS01\",\"TotalPhysicalMemory\":17179869184,\"NumberOfLogicalProcessors\":4}\r\n",
            ),
        ),
        (
            "powershell.exe",
            ps(p::VOLUME_C),
            ExecOutput::exited(
                0,
                "{\"DriveLetter\":\"C\",\"FileSystemType\":\"NTFS\",\"SizeRemaining\":128849018880}\r\n",
            ),
        ),
        (
            "reg",
            reg_q(r::NET_FRAMEWORK_FULL, r::RELEASE),
            reg_found(r::NET_FRAMEWORK_FULL, "Release", "REG_DWORD", "0x80eb1"),
        ),
        (
            "reg",
            reg_q(r::VC_RUNTIME_X86, r::INSTALLED),
            reg_found(r::VC_RUNTIME_X86, "Installed", "REG_DWORD", "0x1"),
        ),
        (
            "reg",
            reg_q(r::VC_RUNTIME_X64, r::INSTALLED),
            reg_found(r::VC_RUNTIME_X64, "Installed", "REG_DWORD", "0x1"),
        ),
        (
            "reg",
            reg_q(r::MSOLEDBSQL, r::INSTALLED_VERSION),
            reg_found(r::MSOLEDBSQL, "InstalledVersion", "REG_SZ", "18.6.7.0"),
        ),
        (
            "powershell.exe",
            ps(p::DTC_NETWORK_SETTING),
            ExecOutput::exited(
                0,
                "{\"InboundTransactionsEnabled\":true,\"OutboundTransactionsEnabled\":true,\"RemoteClientAccessEnabled\":true,\"AuthenticationLevel\":\"Mutual\"}\r\n",
            ),
        ),
        ("sqlcmd", sqlcmd_args(), ExecOutput::exited(0, "          1\n\n(1 rows affected)\n")),
    ];
    for group in DEFAULT_DOMAIN_GROUPS {
        answers.push(("net", net_args(group), group_present(group)));
    }
    answers.push((
        "reg",
        reg_q(r::SESSION_ENVIRONMENT, r::BTSINSTALLPATH),
        reg_found(
            r::SESSION_ENVIRONMENT,
            "BTSINSTALLPATH",
            "REG_SZ",
            r"C:\Program Files (x86)\Microsoft BizTalk Server\",
        ),
    ));
    answers.push(("powershell.exe", ps(p::BIZTALK_FILE_VERSION), ExecOutput::exited(0, "3.13.717.0\r\n")));
    answers.push(("whoami", whoami_args(), ExecOutput::exited(0, whoami_groups(true))));
    answers.push(("sqlcmd", sysadmin_args(), ExecOutput::exited(0, "1\r\n")));
    answers.push(("powershell.exe", ps(&p::test_dtc("PRDSQL01")), ExecOutput::exited(0, "")));
    answers
}

fn whoami_args() -> Vec<String> {
    ["/groups", "/fo", "csv"].map(String::from).to_vec()
}

/// `whoami /groups /fo csv` of the lab, with or without `BUILTIN\Administrators`.
fn whoami_groups(admin: bool) -> String {
    let mut out = String::from(
        "\"Group Name\",\"Type\",\"SID\",\"Attributes\"\r\n\"Everyone\",\"Well-known group\",\"S-1-1-0\",\"Mandatory group, Enabled by default, Enabled group\"\r\n",
    );
    if admin {
        out.push_str("\"BUILTIN\\Administrators\",\"Alias\",\"S-1-5-32-544\",\"Mandatory group, Enabled by default, Enabled group, Group owner\"\r\n");
    }
    out.push_str("\"BUILTIN\\Users\",\"Alias\",\"S-1-5-32-545\",\"Mandatory group, Enabled by default, Enabled group\"\r\n");
    out
}

fn sysadmin_args() -> Vec<String> {
    ["-S", "PRDSQL01", "-E", "-Q", "SET NOCOUNT ON; SELECT IS_SRVROLEMEMBER('sysadmin')", "-h", "-1", "-W"]
        .map(String::from)
        .to_vec()
}

const REFERENCE: &str = "PRDBTS01";

/// The answers of the CU inventory for `level`, as `ConvertTo-Json -Compress` prints them.
fn cu_answer(level: u32) -> ExecOutput {
    let rows: Vec<String> = (1..=level)
        .map(|n| format!("{{\"DisplayName\":\"Microsoft BizTalk Server 2020 Cumulative Update {n}\"}}"))
        .collect();
    let text = match rows.len() {
        0 => String::new(),
        1 => format!("{}\n", rows[0]),
        _ => format!("[{}]\n", rows.join(",")),
    };
    ExecOutput::exited(0, text)
}

fn edition_answer(edition: &str) -> ExecOutput {
    let key = r"HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0";
    ExecOutput::exited(0, format!("\n{key}\n    ProductEdition    REG_SZ    {edition}\n\n"))
}

fn edition_args() -> Vec<String> {
    biztalk_common::reg::query_args_32(
        biztalk_common::reg::BIZTALK_PRODUCT,
        biztalk_common::reg::PRODUCT_EDITION,
    )
}

/// A host on which the target is at `cu` and `edition`, and the reference at CU 6, Enterprise.
fn host_with_reference(answers: &[Answer], cu: u32, edition: &str) -> FakeHost {
    use biztalk_common::powershell as p;
    let host = host_with(answers).with_target(REFERENCE);
    let script = ps(p::BIZTALK_CUMULATIVE_UPDATES);
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let reg = edition_args();
    let reg: Vec<&str> = reg.iter().map(String::as_str).collect();
    host.script_exec(REFERENCE, "powershell.exe", &script, cu_answer(6));
    host.script_exec(REFERENCE, "reg", &reg, edition_answer("Enterprise"));
    host.script_exec(SERVER, "powershell.exe", &script, cu_answer(cu));
    host.script_exec(SERVER, "reg", &reg, edition_answer(edition));
    host
}

fn with_reference(mut input: Value) -> Value {
    input["reference_server"] = json!(REFERENCE);
    input
}

/// Replaces the answer to `program args`.
fn answer(answers: &mut [Answer], program: &str, args: &[String], output: ExecOutput) {
    let found = answers.iter_mut().find(|(p, a, _)| *p == program && a.as_slice() == args);
    found.expect("a scripted command").2 = output;
}

fn host_with(answers: &[Answer]) -> FakeHost {
    let host = FakeHost::new()
        .with_target(SERVER)
        .with_context(Context { target: Some(SERVER.into()), ..Context::for_test(Mode::Apply) });
    for (program, args, output) in answers {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        host.script_exec(SERVER, program, &args, output.clone());
    }
    host
}

fn input() -> Value {
    json!({ "sql_server": "PRDSQL01", "expected_biztalk_version": "3.13.717.0" })
}

fn check<'a>(output: &'a Value, id: &str) -> &'a Value {
    let checks = output["checks"].as_array().expect("checks");
    checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in {output}"))
}

#[test]
fn a_healthy_server_passes_every_check() {
    let answers = healthy_server();
    let host = host_with(&answers);
    let outcome = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.output["failed"], 0);
    assert_eq!(outcome.output["warnings"], 0);
    let checks = outcome.output["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 16 + DEFAULT_DOMAIN_GROUPS.len());
    assert!(checks.iter().all(|c| c["status"] == "pass" && c["mandatory"] == true), "{checks:#?}");
    assert_eq!(
        check(&outcome.output, "dotnet"),
        &json!({"id": "dotnet", "status": "pass", "expected": "release at least 461808 (.NET Framework 4.7.2)", "actual": "release 528049", "mandatory": true})
    );
    assert_eq!(
        check(&outcome.output, "os-build")["actual"],
        "build 17763 (Microsoft Windows Server 2019 Datacenter)"
    );
    assert_eq!(check(&outcome.output, "memory")["actual"], "16.0 GiB");
    assert_eq!(check(&outcome.output, "c-free-space")["actual"], "120.0 GiB free");
    assert_eq!(check(&outcome.output, "computer-name")["actual"], "DRBTS01 (7 characters)");
    assert_eq!(check(&outcome.output, "biztalk-version")["actual"], "BTSNTSvc.exe 3.13.717.0");
    assert_eq!(check(&outcome.output, "domain-group:SSO Administrators")["actual"], "present");
    assert_eq!(outcome.evidence.len(), answers.len());
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn sends_exactly_the_protocol_command_lines() {
    let host = host_with(&healthy_server());
    host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap();
    let lines = host.command_lines();
    assert_eq!(
        lines[..4],
        [
            "powershell.exe -NoProfile -NonInteractive -Command \"Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber | ConvertTo-Json -Compress\"",
            "powershell.exe -NoProfile -NonInteractive -Command \"Get-CimInstance Win32_ComputerSystem | Select-Object Name, TotalPhysicalMemory, NumberOfLogicalProcessors | ConvertTo-Json -Compress\"",
            "powershell.exe -NoProfile -NonInteractive -Command \"Get-Volume -DriveLetter C | Select-Object DriveLetter, FileSystemType, SizeRemaining | ConvertTo-Json -Compress\"",
            "reg query \"HKLM\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full\" /v Release",
        ]
    );
    assert!(lines.contains(&"sqlcmd -S PRDSQL01 -E -d BizTalkMgmtDb -Q \"select 1\" -h -1".to_string()));
    assert!(lines.contains(&"net group \"BizTalk Isolated Host Users\" /domain".to_string()));
    let calls = host.exec_calls();
    assert!(calls.iter().all(|c| c.target == SERVER));
    let tail: Vec<&str> = lines[lines.len() - 4..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            r#"powershell.exe -NoProfile -NonInteractive -Command "(Get-Item \"$env:BTSINSTALLPATH\BTSNTSvc.exe\").VersionInfo.FileVersion""#,
            "whoami /groups /fo csv",
            r#"sqlcmd -S PRDSQL01 -E -Q "SET NOCOUNT ON; SELECT IS_SRVROLEMEMBER('sysadmin')" -h -1 -W"#,
            r#"powershell.exe -NoProfile -NonInteractive -Command "Test-Dtc -LocalComputerName \"$env:COMPUTERNAME\" -RemoteComputerName 'PRDSQL01'""#,
        ]
    );
}

#[test]
fn missing_prerequisites_fail_listing_every_failure() {
    use biztalk_common::{powershell as p, reg as r};
    let mut answers = healthy_server();
    answer(&mut answers, "reg", &reg_q(r::NET_FRAMEWORK_FULL, r::RELEASE), failed(1, NOT_FOUND));
    answer(&mut answers, "reg", &reg_q(r::VC_RUNTIME_X86, r::INSTALLED), failed(1, NOT_FOUND));
    answer(
        &mut answers,
        "reg",
        &reg_q(r::MSOLEDBSQL, r::INSTALLED_VERSION),
        reg_found(r::MSOLEDBSQL, "InstalledVersion", "REG_SZ", "18.2.3.0"),
    );
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::DTC_NETWORK_SETTING),
        ExecOutput::exited(
            0,
            "{\"InboundTransactionsEnabled\":false,\"OutboundTransactionsEnabled\":false,\"RemoteClientAccessEnabled\":true,\"AuthenticationLevel\":\"Mutual\"}",
        ),
    );
    answer(
        &mut answers,
        "net",
        &net_args("BizTalk Application Users"),
        failed(2, "The group name could not be found.\n"),
    );
    let host = host_with(&answers);
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    let StepError::Permanent(message) = err else { panic!("expected a permanent error, got {err:?}") };
    assert_eq!(
        message,
        "5 mandatory prerequisites not met on DRBTS01: \
         dotnet (expected release at least 461808 (.NET Framework 4.7.2), found not installed); \
         vcredist-x86 (expected Installed = 1, found not installed); \
         oledb (expected MSOLEDBSQL 18.3 or later, found 18.2.3.0); \
         msdtc (expected network DTC inbound and outbound transactions enabled, found inbound false, outbound false); \
         domain-group:BizTalk Application Users (expected present, found absent)"
    );
    // Every probe still ran: the failures did not stop the later checks.
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert_eq!(host.logs().iter().filter(|(level, _)| *level == Level::Warn).count(), 5);
}

#[test]
fn optional_checks_only_warn() {
    use biztalk_common::reg as r;
    let mut answers = healthy_server();
    answer(&mut answers, "reg", &reg_q(r::MSOLEDBSQL, r::INSTALLED_VERSION), failed(1, NOT_FOUND));
    answer(
        &mut answers,
        "net",
        &net_args("BizTalk Server B2B Operators"),
        failed(2, "The group name could not be found.\n"),
    );
    let host = host_with(&answers);
    let mut input = input();
    input["optional"] = json!(["oledb", "domain-group"]);
    let outcome = host.call::<PrerequisitesCheck>(Mode::Apply, input).unwrap();
    assert_eq!(outcome.output["failed"], 0);
    assert_eq!(outcome.output["warnings"], 2);
    assert_eq!(
        check(&outcome.output, "oledb"),
        &json!({"id": "oledb", "status": "warn", "expected": "MSOLEDBSQL 18.3 or later", "actual": "not installed", "mandatory": false})
    );
    assert_eq!(check(&outcome.output, "domain-group:BizTalk Server B2B Operators")["status"], "warn");
    assert_eq!(check(&outcome.output, "domain-group:SSO Administrators")["mandatory"], false);
    assert_eq!(check(&outcome.output, "dotnet")["mandatory"], true);
    assert_eq!(outcome.summary, "mandatory prerequisites met on DRBTS01; 2 optional not met");
}

#[test]
fn an_unknown_optional_id_is_refused_before_anything_runs() {
    let host = host_with(&[]);
    let mut input = input();
    input["optional"] = json!(["oledb", "dotnett"]);
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input).unwrap_err();
    assert!(
        matches!(&err, StepError::Permanent(m) if m.starts_with("optional names unknown checks: dotnett;")),
        "{err}"
    );
    assert!(host.exec_calls().is_empty());
}

#[test]
fn an_unreachable_target_is_retryable() {
    let host = FakeHost::new()
        .with_target(SERVER)
        .with_context(Context { target: Some(SERVER.into()), ..Context::for_test(Mode::Apply) });
    let args = ps(biztalk_common::powershell::OPERATING_SYSTEM);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.script_exec_error(
        SERVER,
        "powershell.exe",
        &args,
        HostError::new(HostErrorKind::Retryable, "DRBTS01 did not answer: connection refused"),
    );
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert_eq!(err, StepError::retryable("DRBTS01 did not answer: connection refused"));
}

#[test]
fn json_answers_may_be_an_array_or_empty() {
    use biztalk_common::powershell as p;
    let mut answers = healthy_server();
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::OPERATING_SYSTEM),
        ExecOutput::exited(
            0,
            "[{\"Caption\":\"Microsoft Windows Server 2022 Datacenter\",\"Version\":\"10.0.20348\",\"BuildNumber\":\"20348\"}]",
        ),
    );
    answer(&mut answers, "powershell.exe", &ps(p::VOLUME_C), ExecOutput::exited(0, ""));
    let host = host_with(&answers);
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err.message(),
        "2 mandatory prerequisites not met on DRBTS01: \
         c-free-space (expected at least 10.0 GiB free, found could not be read: unexpected PowerShell JSON output: expected one row, got 0); \
         c-ntfs (expected NTFS, found could not be read: unexpected PowerShell JSON output: expected one row, got 0)"
    );
}

#[test]
fn platform_limits_are_enforced() {
    use biztalk_common::powershell as p;
    let mut answers = healthy_server();
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::OPERATING_SYSTEM),
        ExecOutput::exited(
            0,
            "{\"Caption\":\"Microsoft Windows Server 2012 R2 Standard\",\"Version\":\"6.3.9600\",\"BuildNumber\":\"9600\"}",
        ),
    );
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::COMPUTER_SYSTEM),
        ExecOutput::exited(
            0,
            "{\"Name\":\"DRBIZTALKSERVER01\",\"TotalPhysicalMemory\":2147483648,\"NumberOfLogicalProcessors\":2}",
        ),
    );
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::VOLUME_C),
        ExecOutput::exited(
            0,
            "{\"DriveLetter\":\"C\",\"FileSystemType\":\"ReFS\",\"SizeRemaining\":5368709120}",
        ),
    );
    let host = host_with(&answers);
    let message = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err().message().to_string();
    assert!(message.starts_with("5 mandatory prerequisites not met on DRBTS01: "), "{message}");
    for part in [
        "os-build (expected build 14393, 17763 or 20348 (Windows Server 2016, 2019, 2022), found build 9600 (Microsoft Windows Server 2012 R2 Standard))",
        "memory (expected at least 4.0 GiB, found 2.0 GiB)",
        "computer-name (expected at most 15 characters, found DRBIZTALKSERVER01 (17 characters))",
        "c-free-space (expected at least 10.0 GiB free, found 5.0 GiB free)",
        "c-ntfs (expected NTFS, found ReFS)",
    ] {
        assert!(message.contains(part), "{part} missing from {message}");
    }
}

#[test]
fn unreachable_sql_and_a_wrong_biztalk_version_fail() {
    use biztalk_common::powershell as p;
    let mut answers = healthy_server();
    answer(
        &mut answers,
        "sqlcmd",
        &sqlcmd_args(),
        failed(1, "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n"),
    );
    answer(
        &mut answers,
        "powershell.exe",
        &ps(p::BIZTALK_FILE_VERSION),
        ExecOutput::exited(0, "3.13.2.0\r\n"),
    );
    let host = host_with(&answers);
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err.message(),
        "2 mandatory prerequisites not met on DRBTS01: \
         sql (expected PRDSQL01 answers on BizTalkMgmtDb with Windows authentication, found Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired. (exit code 1)); \
         biztalk-version (expected BTSNTSvc.exe 3.13.717.0, found BTSNTSvc.exe 3.13.2.0)"
    );
}

#[test]
fn without_biztalk_the_version_is_not_asked() {
    use biztalk_common::{powershell as p, reg as r};
    let mut answers = healthy_server();
    answer(&mut answers, "reg", &reg_q(r::SESSION_ENVIRONMENT, r::BTSINSTALLPATH), failed(1, NOT_FOUND));
    answers.retain(|(_, args, _)| *args != ps(p::BIZTALK_FILE_VERSION));
    let host = host_with(&answers);
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err.message(),
        "2 mandatory prerequisites not met on DRBTS01: \
         biztalk-install-path (expected BTSINSTALLPATH set, found not installed (no BTSINSTALLPATH)); \
         biztalk-version (expected BTSNTSvc.exe 3.13.717.0, found not installed (no BTSINSTALLPATH))"
    );
    assert!(!host.command_lines().iter().any(|l| l.contains("BTSNTSvc")));
}

#[test]
fn check_mode_probes_the_same_way_and_changes_nothing() {
    let host = host_with(&healthy_server());
    let mut input = input();
    input["domain_groups"] = json!(["SSO Administrators"]);
    let outcome = host.call::<PrerequisitesCheck>(Mode::Check, input).unwrap();
    assert!(!outcome.changed);
    assert_eq!(outcome.output["checks"].as_array().unwrap().len(), 17);
    assert_eq!(outcome.summary, "all 17 prerequisites met on DRBTS01");
}

#[test]
fn a_step_without_target_is_refused() {
    let err = FakeHost::new().call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(m) if m.contains("has no target")));
}

#[test]
fn versions_compare_numerically() {
    use std::cmp::Ordering;
    assert_eq!(compare_versions("18.6.7.0", "18.3"), Some(Ordering::Greater));
    assert_eq!(compare_versions("18.3", "18.3.0.0"), Some(Ordering::Equal));
    assert_eq!(compare_versions("18.10", "18.9"), Some(Ordering::Greater));
    assert_eq!(compare_versions("18.x", "18.3"), None);
}

#[test]
fn describes_itself_as_read_only_with_its_programs() {
    let d = <PrerequisitesCheck as Plugin>::describe();
    assert_eq!(d.name(), "prerequisites-check");
    assert_eq!(d.version(), "1.0.0");
    assert_eq!(d.effect(), Effect::ReadOnly);
}

#[test]
fn an_account_that_is_not_a_local_administrator_fails_saying_so() {
    let mut answers = healthy_server();
    answer(&mut answers, "whoami", &whoami_args(), ExecOutput::exited(0, whoami_groups(false)));
    let err = host_with(&answers).call::<PrerequisitesCheck>(Mode::Apply, input()).unwrap_err();
    assert_eq!(
        err,
        StepError::permanent(
            "1 mandatory prerequisite not met on DRBTS01: local-admin (expected the account Drover runs as in \
             BUILTIN\\Administrators (S-1-5-32-544), enabled, found not a member; make the account Drover runs as a \
             local administrator of DRBTS01: Configuration.exe and the WMI host-instance Install need one)"
        )
    );
}

#[test]
fn an_account_that_is_not_sysadmin_fails_naming_the_sql_server() {
    let mut answers = healthy_server();
    answer(&mut answers, "sqlcmd", &sysadmin_args(), ExecOutput::exited(0, "0\r\n"));
    let message = host_with(&answers)
        .call::<PrerequisitesCheck>(Mode::Apply, input())
        .unwrap_err()
        .message()
        .to_string();
    assert_eq!(
        message,
        "1 mandatory prerequisite not met on DRBTS01: sql-sysadmin (expected the account Drover runs as in the \
         sysadmin role of PRDSQL01, found not sysadmin; grant the account Drover runs as the sysadmin role on \
         PRDSQL01 (joining writes the group's and SSO's databases))"
    );
}

#[test]
fn msdtc_failing_end_to_end_fails_pointing_at_microsofts_troubleshooting() {
    use biztalk_common::powershell as p;
    let mut answers = healthy_server();
    let error = "Test-Dtc : DTC security settings and firewall settings should be fixed in order to complete the transactions propagation test.\n";
    answer(&mut answers, "powershell.exe", &ps(&p::test_dtc("PRDSQL01")), failed(1, error));
    let message = host_with(&answers)
        .call::<PrerequisitesCheck>(Mode::Apply, input())
        .unwrap_err()
        .message()
        .to_string();
    assert!(message.starts_with("1 mandatory prerequisite not met on DRBTS01: msdtc-end-to-end (expected Test-Dtc propagates a transaction to PRDSQL01, found Test-Dtc : DTC security settings"), "{message}");
    assert!(message.contains("MSDTC between DRBTS01 and PRDSQL01 fails end to end"), "{message}");
    assert!(message.contains("\"Troubleshooting Problems with MSDTC\" (https://learn.microsoft.com/biztalk/core/troubleshooting-problems-with-msdtc)"), "{message}");
}

#[test]
fn with_a_reference_server_the_cu_level_and_edition_are_compared() {
    let host = host_with_reference(&healthy_server(), 6, "Enterprise");
    let outcome = host.call::<PrerequisitesCheck>(Mode::Apply, with_reference(input())).unwrap();
    assert_eq!(check(&outcome.output, "cu-level")["expected"], "CU 6, as on PRDBTS01");
    assert_eq!(check(&outcome.output, "cu-level")["actual"], "CU 6");
    assert_eq!(check(&outcome.output, "edition")["actual"], "Enterprise Edition");
    assert!(host.exec_calls().iter().any(|c| c.target == REFERENCE));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn a_server_behind_productions_cumulative_update_fails_naming_both_levels() {
    let host = host_with_reference(&healthy_server(), 5, "Enterprise");
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, with_reference(input())).unwrap_err();
    assert_eq!(
        err.message(),
        "1 mandatory prerequisite not met on DRBTS01: cu-level (expected CU 6, as on PRDBTS01, found CU 5; install \
         BizTalk Server 2020 Cumulative Update 6 on DRBTS01 before it joins: every server of a group runs the same CU)"
    );
    let host = host_with_reference(&healthy_server(), 0, "Enterprise");
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, with_reference(input())).unwrap_err();
    assert!(err.message().contains("found no cumulative update (RTM)"), "{err}");
}

#[test]
fn another_edition_fails_naming_both() {
    let host = host_with_reference(&healthy_server(), 6, "Developer");
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, with_reference(input())).unwrap_err();
    assert_eq!(
        err.message(),
        "1 mandatory prerequisite not met on DRBTS01: edition (expected Enterprise Edition, as on PRDBTS01, found \
         Developer Edition; Developer Edition is for development and test, not production: install BizTalk Server \
         2020 Enterprise Edition on DRBTS01 before it joins)"
    );
    let host = host_with_reference(&healthy_server(), 6, "Standard");
    let err = host.call::<PrerequisitesCheck>(Mode::Apply, with_reference(input())).unwrap_err();
    assert!(err.message().contains("Standard Edition cannot join a BizTalk group"), "{err}");
}
