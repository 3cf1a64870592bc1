//! `powershell.exe -NoProfile -NonInteractive -Command <script>` (`lab/PROTOCOL.md`, "PowerShell
//! queries"): the version and platform probes, the three `root/MicrosoftBizTalkServer` queries (only on a
//! server joined to the group), the WMI script that creates a host instance, which reads the
//! password from its standard input (never from its command line), and the one that removes it
//! (`uninstall`), and the cumulative-update inventory and `Test-Dtc` (`prereq`). The BizTalk scripts read the management database as the session's user, so
//! they fail without network credentials ([`super::hop`]). Each script is one argv word matched exactly; JSON answers are what
//! `ConvertTo-Json -Compress` prints (an object for one row, an array for several, nothing for
//! none) followed by PowerShell's newline.
//!
//! It does not interpret PowerShell: anything but these scripts is an unsupported command.

pub mod gac;
pub mod prereq;
// Failover, BizTalk side (issue 18, L2)
pub mod processing;
// Failover, WMI restart (issue 18, F9)
pub mod services;
pub mod uninstall;

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::hop::ANONYMOUS_LOGIN_FAILED;
use super::{Ctx, Output};
use crate::init::{ENVIRONMENT_KEY, host_service};
use crate::state::{Host, HostInstance, Prereq, RegValue, ServiceState, StartType, password_sha256};

/// `Win32_OperatingSystem`.
pub const OS_SCRIPT: &str = "Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber | ConvertTo-Json -Compress";
/// `Win32_ComputerSystem`.
pub const COMPUTER_SCRIPT: &str = "Get-CimInstance Win32_ComputerSystem | Select-Object Name, TotalPhysicalMemory, NumberOfLogicalProcessors | ConvertTo-Json -Compress";
/// `Get-Volume`.
pub const VOLUME_SCRIPT: &str = "Get-Volume -DriveLetter C | Select-Object DriveLetter, FileSystemType, SizeRemaining | ConvertTo-Json -Compress";
/// `Get-DtcNetworkSetting`.
pub const DTC_SCRIPT: &str = "Get-DtcNetworkSetting -DtcName Local | Select-Object InboundTransactionsEnabled, OutboundTransactionsEnabled, RemoteClientAccessEnabled, AuthenticationLevel | ConvertTo-Json -Compress";
/// The file version of `BTSNTSvc.exe`.
pub const FILE_VERSION_SCRIPT: &str =
    r#"(Get-Item "$env:BTSINSTALLPATH\BTSNTSvc.exe").VersionInfo.FileVersion"#;
/// The PowerShell version probe.
pub const VERSION_SCRIPT: &str = "$PSVersionTable.PSVersion.ToString()";
/// Windows PowerShell's version on the lab's servers (Windows Server 2019).
pub const POWERSHELL_VERSION: &str = "5.1.17763.5576";
/// `MSBTS_Server`.
pub const SERVERS_SCRIPT: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_Server | Select-Object Name | ConvertTo-Json -Compress";
/// `MSBTS_HostSetting`.
pub const HOSTS_SCRIPT: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostSetting | Select-Object Name, HostType | ConvertTo-Json -Compress";
/// `MSBTS_HostInstance`, with the host's type and the instance's logon account.
pub const HOST_INSTANCES_SCRIPT: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostInstance | Select-Object Name, HostName, HostType, RunningServer, Logon, ConfigurationState, IsDisabled, ServiceState | ConvertTo-Json -Compress";
/// `ServiceState` 8 (Unknown): what WMI reports for an isolated host's instance, which has no
/// Windows service (the administration console shows "Status Unavailable").
const SERVICE_STATE_UNKNOWN: u8 = 8;

/// The host-instance creation script, with `{server}`, `{host}`, `{name}` and `{account}`
/// standing for single-quoted PowerShell strings and `{disabled}` for `$true` or `$false`. The
/// password is the script's whole standard input, read as UTF-8. It starts with
/// `$ErrorActionPreference = 'Stop'`, so a failing `Map` ends it before `Install`.
pub const CREATE_HOST_INSTANCE_TEMPLATE: &str = r#"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = '{server}'; $sh.HostName = '{host}'; $sh.Map(); $hi = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_HostInstance").CreateInstance(); $hi.Name = '{name}'; $hi.IsDisabled = {disabled}; $hi.Install('{account}', $password, $true, $false)"#;

/// The quoted placeholders (a single-quoted string each) and the boolean one.
const PLACEHOLDERS: [&str; 4] = ["server", "host", "name", "account"];
const DISABLED: &str = "{disabled}";

/// The creation template as a regex ([`template_regex`]).
static CREATE_HOST_INSTANCE: LazyLock<Regex> =
    LazyLock::new(|| template_regex(CREATE_HOST_INSTANCE_TEMPLATE, &PLACEHOLDERS));

/// A script template as a regex: literal text escaped, each `'{placeholder}'` of `quoted` a named
/// group matching a single-quoted string in which a quote is doubled, `{disabled}` a `$true` or
/// `$false`.
fn template_regex(template: &str, quoted: &[&str]) -> Regex {
    let mut pattern = String::from("^");
    let mut rest = template;
    let next = |rest: &str| {
        let quoted = quoted
            .iter()
            .filter_map(|p| rest.find(&format!("'{{{p}}}'")).map(|at| (at, p.len() + 4, Some(*p))));
        quoted.chain(rest.find(DISABLED).map(|at| (at, DISABLED.len(), None))).min()
    };
    while let Some((at, len, placeholder)) = next(rest) {
        pattern.push_str(&regex::escape(&rest[..at]));
        match placeholder {
            Some(name) => pattern.push_str(&format!("'(?P<{name}>(?:[^']|'')*)'")),
            None => pattern.push_str(r"\$(?P<disabled>true|false)"),
        }
        rest = &rest[at + len..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Regex::new(&pattern).expect("the template makes a valid regex")
}

/// Renders the host-instance creation script (what a plugin sends), quoting as PowerShell does;
/// the password goes in its standard input.
pub fn create_host_instance_script(server: &str, host: &str, account: &str, disabled: bool) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    CREATE_HOST_INSTANCE_TEMPLATE
        .replace("{server}", &quote(server))
        .replace("{host}", &quote(host))
        .replace("{name}", &quote(&HostInstance::name_for(host, server)))
        .replace(DISABLED, if disabled { "$true" } else { "$false" })
        .replace("{account}", &quote(account))
}

/// `powershell.exe -NoProfile -NonInteractive -Command <script>`, or the same script as
/// `-EncodedCommand <base64 of UTF-16LE>` (what the ssh transport sends to a Windows server:
/// Windows PowerShell 5.1 cannot pass a script's quotes and spaces to a program intact).
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let [no_profile, non_interactive, command, given] = args else { return None };
    if no_profile != "-NoProfile" || non_interactive != "-NonInteractive" {
        return None;
    }
    let decoded;
    let script = match command.as_str() {
        "-Command" => given,
        "-EncodedCommand" => {
            decoded = crate::windows::cmd::decode(given)?;
            &decoded
        }
        _ => return None,
    };
    let this = ctx.this();
    let platform = &this.platform;
    match script.as_str() {
        OS_SCRIPT => Some(json(&[Os {
            caption: &platform.os_caption,
            version: &platform.os_version,
            build_number: &platform.build_number,
        }])),
        COMPUTER_SCRIPT => Some(json(&[ComputerSystem {
            name: &ctx.server,
            total_physical_memory: platform.total_physical_memory,
            number_of_logical_processors: platform.logical_processors,
        }])),
        VOLUME_SCRIPT => Some(json(&[Volume {
            drive_letter: "C",
            file_system_type: &platform.c_file_system,
            size_remaining: platform.c_free_bytes,
        }])),
        DTC_SCRIPT => {
            let broken = ctx.lab.prereq_missing(&ctx.server, Prereq::Msdtc);
            Some(json(&[Dtc {
                inbound_transactions_enabled: platform.dtc.inbound && !broken,
                outbound_transactions_enabled: platform.dtc.outbound && !broken,
                remote_client_access_enabled: platform.dtc.remote_client_access,
                authentication_level: &platform.dtc.authentication_level,
            }]))
        }
        FILE_VERSION_SCRIPT => {
            let dir = match this.reg_value(ENVIRONMENT_KEY, "BTSINSTALLPATH") {
                Some(RegValue::Sz(dir)) => dir.as_str(),
                _ => "",
            };
            Some(match (&platform.biztalk_file_version, dir) {
                (Some(version), dir) if !dir.is_empty() => Output::ok(format!("{version}\n")),
                _ => Output::stderr(
                    1,
                    format!("Get-Item : Cannot find path '{dir}\\BTSNTSvc.exe' because it does not exist.\n"),
                ),
            })
        }
        VERSION_SCRIPT => Some(Output::ok(format!("{POWERSHELL_VERSION}\r\n"))),
        SERVERS_SCRIPT | HOSTS_SCRIPT | HOST_INSTANCES_SCRIPT if !ctx.lab.is_configured(&ctx.server) => {
            Some(Output::stderr(1, "Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"\n"))
        }
        // BizTalk's WMI provider reads the management database as the session's user.
        SERVERS_SCRIPT | HOSTS_SCRIPT | HOST_INSTANCES_SCRIPT if ctx.second_hop().is_err() => {
            Some(Output::stderr(1, format!("Get-CimInstance : {ANONYMOUS_LOGIN_FAILED}\n")))
        }
        SERVERS_SCRIPT => {
            let rows: Vec<_> = ctx.wmi_group().members.iter().map(|name| BtsServer { name }).collect();
            Some(json(&rows))
        }
        HOSTS_SCRIPT => {
            let rows: Vec<_> = ctx
                .wmi_group()
                .hosts
                .iter()
                .map(|h| HostSetting { name: &h.name, host_type: h.host_type })
                .collect();
            Some(json(&rows))
        }
        HOST_INSTANCES_SCRIPT => {
            let group = ctx.wmi_group();
            let rows: Vec<_> = group
                .host_instances
                .iter()
                .map(|i| {
                    let host_type = host_type_of(&group.hosts, &i.host);
                    HostInstanceRow {
                        name: &i.name,
                        host_name: &i.host,
                        host_type,
                        running_server: &i.server,
                        logon: &i.account,
                        configuration_state: i.configuration_state,
                        is_disabled: i.is_disabled,
                        // Failover, BizTalk side (issue 18, L2): a production server that is
                        // gone (`dead-production-wmi`) cannot tell its instance's state.
                        service_state: if host_type == 2 || ctx.lab.wmi_unreachable(&i.server) {
                            SERVICE_STATE_UNKNOWN
                        } else {
                            i.service_state.code()
                        },
                    }
                })
                .collect();
            Some(json(&rows))
        }
        _ => create_host_instance(ctx, script)
            .or_else(|| uninstall::remove_host_instance(ctx, script))
            .or_else(|| gac::run(ctx, script))
            .or_else(|| prereq::run(ctx, script))
            // Failover, BizTalk side (issue 18, L2)
            .or_else(|| processing::run(ctx, script))
            // Failover, WMI restart (issue 18, F9)
            .or_else(|| services::run(ctx, script)),
    }
}

/// The `HostType` of `host` (1 in-process, 2 isolated; in-process when the group has no such
/// host).
fn host_type_of(hosts: &[Host], host: &str) -> u8 {
    hosts.iter().find(|h| h.name.eq_ignore_ascii_case(host)).map_or(1, |h| h.host_type)
}

/// Whether `account` (`DOMAIN\user`) is a member of the domain group `group` of the lab.
fn in_group(lab: &crate::state::Lab, account: &str, group: &str) -> bool {
    let Some((domain, user)) = account.split_once('\\') else { return false };
    domain.eq_ignore_ascii_case(&lab.domain)
        && lab
            .domain_groups
            .iter()
            .find(|(g, _)| g.eq_ignore_ascii_case(group))
            .is_some_and(|(_, members)| members.iter().any(|m| m.eq_ignore_ascii_case(user)))
}

/// The creation script's password: the whole standard input, decoded as UTF-8 (a byte-order mark
/// dropped, invalid bytes replaced, as `StreamReader` does).
fn read_password(ctx: &mut Ctx<'_>) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    ctx.stdin.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

/// `ConvertTo-Json -Compress` of the rows, as printed.
fn json<T: Serialize>(rows: &[T]) -> Output {
    let text = match rows {
        [] => return Output::ok(""),
        [one] => serde_json::to_string(one),
        many => serde_json::to_string(many),
    };
    match text {
        Ok(text) => Output::ok(format!("{text}\n")),
        Err(e) => Output::stderr(1, format!("ConvertTo-Json : {e}\n")),
    }
}

/// The WMI host-instance creation script, the password read from standard input. An instance
/// that exists, installed, whose Windows service is missing on its server (the server was
/// rebuilt, docs/biztalk.md, "Host instances of a replaced server") is installed again: its service is created and the row takes the script's
/// `IsDisabled` and logon.
fn create_host_instance(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    let captures = CREATE_HOST_INSTANCE.captures(script)?;
    let value = |name: &str| captures.name(name).map(|m| m.as_str().replace("''", "'")).unwrap_or_default();
    let (server, host, name, account) = (value("server"), value("host"), value("name"), value("account"));
    let disabled = value("disabled") == "true";
    if name != HostInstance::name_for(&host, &server) {
        // The protocol fixes the name; another one is a script the lab does not know.
        return None;
    }
    let fail = |message: String| Some(Output::stderr(1, format!("{message}\n")));
    let password = match read_password(ctx) {
        Ok(password) => password,
        Err(e) => return fail(format!("Exception calling \"ReadToEnd\" : \"{e}\"")),
    };
    if !ctx.lab.is_configured(&ctx.server) {
        return fail(
            r#"Cannot convert value "root\MicrosoftBizTalkServer:MSBTS_ServerHost" to type "System.Management.ManagementClass". Error: "Invalid namespace ""#
                .to_owned(),
        );
    }
    if ctx.second_hop().is_err() {
        return fail(format!(r#"Exception calling "Map" : "{ANONYMOUS_LOGIN_FAILED}""#));
    }
    let Some(host) = ctx.lab.group.hosts.iter().find(|h| h.name.eq_ignore_ascii_case(&host)).cloned() else {
        return fail(format!(r#"Exception calling "Map" : "The host '{host}' does not exist.""#));
    };
    let Some(server) = ctx.lab.group.members.iter().find(|m| m.eq_ignore_ascii_case(&server)).cloned() else {
        return fail(format!(
            r#"Exception calling "Map" : "The server '{server}' is not a member of the group.""#
        ));
    };
    let service_name = HostInstance::service_name(&host.name);
    let service_missing = host.host_type == 1
        && ctx.lab.servers.get(&server).is_some_and(|s| s.service(&service_name).is_none());
    let existing =
        ctx.lab.group.host_instances.iter().position(|i| i.host == host.name && i.server == server);
    let repair = match existing {
        Some(at) if ctx.lab.group.host_instances[at].configuration_state == 1 && service_missing => Some(at),
        Some(_) => {
            return fail(
                r#"Exception calling "Install" : "Another object with the same key properties already exists.""#
                    .into(),
            );
        }
        None => None,
    };
    // An unfilled secret reference means the host did not fill the password in.
    if password.is_empty() || password.contains(super::configuration::UNFILLED_SECRET) {
        return fail(r#"Exception calling "Install" : "The password is empty.""#.into());
    }
    // The account must be a member of the host's Windows group (MSBTS_HostInstanceSetting.
    // NTGroupName); the wording is the lab's own (`lab/PROTOCOL.md`).
    if !in_group(ctx.lab, &account, host.nt_group()) {
        return fail(format!(
            r#"Exception calling "Install" : "The account '{account}' is not a member of the Windows group '{}' of host '{}'.""#,
            host.nt_group(),
            host.name
        ));
    }
    let instance = HostInstance {
        name: HostInstance::name_for(&host.name, &server),
        host: host.name.clone(),
        server: server.clone(),
        configuration_state: 1,
        is_disabled: disabled,
        service_state: ServiceState::Stopped,
        account: account.clone(),
        password_sha256: Some(password_sha256(&password)),
    };
    match repair {
        Some(at) => ctx.lab.group.host_instances[at] = instance,
        None => ctx.lab.group.host_instances.push(instance),
    }
    if host.host_type == 1
        && let Some(target) = ctx.lab.servers.get_mut(&server)
    {
        let mut service = host_service(&host.name, &account, StartType::Auto, ServiceState::Stopped);
        service.password_sha256 = Some(password_sha256(&password));
        target.services.retain(|s| !s.name.eq_ignore_ascii_case(&service.name));
        target.services.push(service);
    }
    Some(Output::ok(""))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Os<'a> {
    caption: &'a str,
    version: &'a str,
    build_number: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ComputerSystem<'a> {
    name: &'a str,
    total_physical_memory: u64,
    number_of_logical_processors: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Volume<'a> {
    drive_letter: &'a str,
    file_system_type: &'a str,
    size_remaining: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Dtc<'a> {
    inbound_transactions_enabled: bool,
    outbound_transactions_enabled: bool,
    remote_client_access_enabled: bool,
    authentication_level: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BtsServer<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostSetting<'a> {
    name: &'a str,
    host_type: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostInstanceRow<'a> {
    name: &'a str,
    host_name: &'a str,
    host_type: u8,
    running_server: &'a str,
    logon: &'a str,
    configuration_state: u8,
    is_disabled: bool,
    service_state: u8,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_with_input, exec_without_credentials};
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::{Fault, Lab};

    fn ps(lab: &mut Lab, server: &str, script: &str) -> Output {
        exec(lab, server, &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    #[test]
    fn platform_probes() {
        let mut lab = fresh_lab();
        let cases = [
            (
                OS_SCRIPT,
                r#"{"Caption":"Microsoft Windows Server 2019 Datacenter","Version":"10.0.17763","BuildNumber":"17763"}"#,
            ),
            (
                COMPUTER_SCRIPT,
                r#"{"Name":"DRBTS01","TotalPhysicalMemory":17179869184,"NumberOfLogicalProcessors":4}"#,
            ),
            (VOLUME_SCRIPT, r#"{"DriveLetter":"C","FileSystemType":"NTFS","SizeRemaining":128849018880}"#),
            (
                DTC_SCRIPT,
                r#"{"InboundTransactionsEnabled":true,"OutboundTransactionsEnabled":true,"RemoteClientAccessEnabled":true,"AuthenticationLevel":"Mutual"}"#,
            ),
            (FILE_VERSION_SCRIPT, "3.13.717.0"),
        ];
        for (script, answer) in cases {
            let out = ps(&mut lab, "DRBTS01", script);
            assert_eq!((out.code, out.stdout_text()), (0, format!("{answer}\n")), "{script}");
        }
    }

    #[test]
    fn a_script_may_come_encoded() {
        use base64::Engine as _;
        let mut lab = fresh_lab();
        let utf16: Vec<u8> = OS_SCRIPT.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
        let args = ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand", &encoded];
        let out = exec(&mut lab, "DRBTS01", &args);
        assert_eq!(out, ps(&mut lab, "DRBTS01", OS_SCRIPT));
        assert_eq!(out.code, 0);
        let garbled = exec(
            &mut lab,
            "DRBTS01",
            &["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand", "%%"],
        );
        assert_eq!(garbled.code, 9009, "not base64: unsupported");
    }

    #[test]
    fn the_version_probe_answers_windows_powershell_51() {
        let mut lab = fresh_lab();
        let out = ps(&mut lab, "DRBTS01", "$PSVersionTable.PSVersion.ToString()");
        assert_eq!((out.code, out.stdout_text()), (0, "5.1.17763.5576\r\n".to_owned()));
        lab.faults.push(Fault::PowershellMissing { server: "DRBTS01".into() });
        let out = ps(&mut lab, "DRBTS01", VERSION_SCRIPT);
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                9009,
                "'powershell.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
                    .to_owned()
            )
        );
        assert_eq!(ps(&mut lab, "DRBTS02", VERSION_SCRIPT).code, 0, "only on that server");
    }

    #[test]
    fn local_probes_need_no_network_credentials_but_biztalk_does() {
        let mut lab = fresh_lab();
        let run = |lab: &mut Lab, server: &str, script: &str, input: &[u8]| {
            let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script];
            exec_without_credentials(lab, server, &argv, input)
        };
        for script in
            [OS_SCRIPT, COMPUTER_SCRIPT, VOLUME_SCRIPT, DTC_SCRIPT, FILE_VERSION_SCRIPT, VERSION_SCRIPT]
        {
            assert_eq!(run(&mut lab, "PRDBTS01", script, b"").code, 0, "{script}");
        }
        for script in [SERVERS_SCRIPT, HOSTS_SCRIPT, HOST_INSTANCES_SCRIPT] {
            let out = run(&mut lab, "PRDBTS01", script, b"");
            assert_eq!(
                (out.code, out.stdout_text(), out.stderr_text()),
                (
                    1,
                    String::new(),
                    "Get-CimInstance : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n".into()
                )
            );
            // The namespace is missing before any database is read.
            assert!(run(&mut lab, "DRBTS01", script, b"").stderr_text().contains("Invalid namespace"));
        }
        lab.group.members.push("DRBTS01".into());
        let before = lab.clone();
        let script = create_host_instance_script("DRBTS01", "SendHost", r"CONTOSO\svc-bts", false);
        let out = run(&mut lab, "PRDBTS01", &script, b"pw");
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                "Exception calling \"Map\" : \"Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\"\n"
                    .into()
            )
        );
        assert_eq!(lab, before, "nothing created");
    }

    #[test]
    fn the_msdtc_fault_disables_transactions() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::MissingPrereq { server: "DRBTS03".into(), prereq: Prereq::Msdtc });
        assert_eq!(
            ps(&mut lab, "DRBTS03", DTC_SCRIPT).stdout_text(),
            "{\"InboundTransactionsEnabled\":false,\"OutboundTransactionsEnabled\":false,\"RemoteClientAccessEnabled\":true,\"AuthenticationLevel\":\"Mutual\"}\n"
        );
    }

    #[test]
    fn group_queries_answer_an_object_an_array_or_nothing() {
        let mut lab = fresh_lab();
        assert_eq!(
            ps(&mut lab, "PRDBTS01", SERVERS_SCRIPT).stdout_text(),
            "[{\"Name\":\"PRDBTS01\"},{\"Name\":\"PRDBTS02\"}]\n"
        );
        lab.group.members.truncate(1);
        assert_eq!(ps(&mut lab, "PRDBTS01", SERVERS_SCRIPT).stdout_text(), "{\"Name\":\"PRDBTS01\"}\n");
        lab.group.host_instances.clear();
        let out = ps(&mut lab, "PRDBTS01", HOST_INSTANCES_SCRIPT);
        assert_eq!((out.code, out.stdout_text()), (0, String::new()));
        assert_eq!(
            ps(&mut lab, "PRDBTS01", HOSTS_SCRIPT).stdout_text(),
            "[{\"Name\":\"ReceiveHost\",\"HostType\":1},{\"Name\":\"SendHost\",\"HostType\":1},{\"Name\":\"ProcessingHost\",\"HostType\":1},{\"Name\":\"BizTalkServerIsolatedHost\",\"HostType\":2}]\n"
        );
    }

    #[test]
    fn host_instances_of_production() {
        let mut lab = fresh_lab();
        let out = ps(&mut lab, "PRDBTS02", HOST_INSTANCES_SCRIPT).stdout_text();
        assert!(out.starts_with(
            "[{\"Name\":\"Microsoft BizTalk Server ReceiveHost PRDBTS01\",\"HostName\":\"ReceiveHost\",\"HostType\":1,\"RunningServer\":\"PRDBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":4},"
        ), "{out}");
        // The isolated host's instance runs under its own account, and WMI cannot tell its state.
        assert!(out.ends_with(
            ",{\"Name\":\"Microsoft BizTalk Server BizTalkServerIsolatedHost PRDBTS01\",\"HostName\":\"BizTalkServerIsolatedHost\",\"HostType\":2,\"RunningServer\":\"PRDBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts-ihost\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":8}]\n"
        ), "{out}");
    }

    #[test]
    fn the_namespace_exists_only_on_joined_servers() {
        let mut lab = fresh_lab();
        for script in [SERVERS_SCRIPT, HOSTS_SCRIPT, HOST_INSTANCES_SCRIPT] {
            let out = ps(&mut lab, "DRBTS01", script);
            assert_eq!(out.code, 1);
            assert_eq!(
                out.stderr_text(),
                "Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"\n"
            );
        }
    }

    /// Runs the creation script on `on` with `password` as its standard input.
    fn create(lab: &mut Lab, on: &str, instance: (&str, &str), password: &str, disabled: bool) -> Output {
        let (host, server) = instance;
        let script = create_host_instance_script(server, host, r"CONTOSO\svc-bts", disabled);
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", &script];
        exec_with_input(lab, on, &argv, password.as_bytes())
    }

    #[test]
    fn creating_a_host_instance() {
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        // Whatever the password holds, it is read whole from standard input, never quoted.
        let password = "it's \"s3cret\" $(whoami) `n ]]> <&> é\nsecond line\n";
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "DRBTS01"), password, true);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        let instance = lab.group.host_instances.last().expect("created");
        assert_eq!(instance.name, "Microsoft BizTalk Server SendHost DRBTS01");
        assert_eq!((instance.configuration_state, instance.is_disabled), (1, true));
        assert_eq!(instance.service_state, ServiceState::Stopped);
        assert_eq!(instance.password_sha256.as_deref(), Some(password_sha256(password).as_str()));
        let service = lab.servers["DRBTS01"].service("BTSSvc$SendHost").expect("service");
        assert_eq!((service.start_type, service.state), (StartType::Auto, ServiceState::Stopped));
        assert_eq!(service.display_name, "BizTalk Service BizTalk Group : SendHost");
        assert_eq!(service.account, r"CONTOSO\svc-bts");
        assert_eq!(service.password_sha256, instance.password_sha256);

        let out = create(&mut lab, "PRDBTS02", ("SendHost", "DRBTS01"), password, true);
        assert_eq!(
            out.stderr_text(),
            "Exception calling \"Install\" : \"Another object with the same key properties already exists.\"\n"
        );
        assert_eq!(out.code, 1);
    }

    /// Runs the creation script of `host` on `server` as `account`, password `pw`, on PRDBTS01.
    fn create_as(lab: &mut Lab, host: &str, server: &str, account: &str) -> Output {
        let script = create_host_instance_script(server, host, account, true);
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", &script];
        exec_with_input(lab, "PRDBTS01", &argv, b"pw")
    }

    #[test]
    fn the_account_must_be_a_member_of_the_hosts_windows_group() {
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        let before = lab.clone();
        // The in-process hosts' account is no member of BizTalk Isolated Host Users.
        let out = create_as(&mut lab, "BizTalkServerIsolatedHost", "DRBTS01", r"CONTOSO\svc-bts");
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                "Exception calling \"Install\" : \"The account 'CONTOSO\\svc-bts' is not a member of the Windows group 'BizTalk Isolated Host Users' of host 'BizTalkServerIsolatedHost'.\"\n"
                    .into()
            )
        );
        assert_eq!(lab, before, "nothing created");
        // Nor the other way round, nor an account of another domain.
        let out = create_as(&mut lab, "SendHost", "DRBTS01", r"CONTOSO\svc-bts-ihost");
        assert!(
            out.stderr_text().contains("'BizTalk Application Users' of host 'SendHost'"),
            "{}",
            out.stderr_text()
        );
        assert_eq!(create_as(&mut lab, "SendHost", "DRBTS01", r"FABRIKAM\svc-bts").code, 1);
        assert_eq!(lab, before);
        assert_eq!(
            create_as(&mut lab, "SendHost", "DRBTS01", r"contoso\SVC-BTS").code,
            0,
            "names are case-insensitive"
        );
    }

    #[test]
    fn an_isolated_hosts_instance_has_no_service_and_an_unknown_state() {
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        let out = create_as(&mut lab, "BizTalkServerIsolatedHost", "DRBTS01", r"CONTOSO\svc-bts-ihost");
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        assert!(lab.servers["DRBTS01"].service("BTSSvc$BizTalkServerIsolatedHost").is_none());
        let rows = ps(&mut lab, "PRDBTS01", HOST_INSTANCES_SCRIPT).stdout_text();
        assert!(
            rows.contains("\"HostName\":\"BizTalkServerIsolatedHost\",\"HostType\":2,\"RunningServer\":\"DRBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts-ihost\",\"ConfigurationState\":1,\"IsDisabled\":true,\"ServiceState\":8}"),
            "{rows}"
        );
    }

    #[test]
    fn the_creation_script_without_stop_on_error_is_not_the_protocol() {
        // Without `$ErrorActionPreference = 'Stop'` a failing Map lets Install run and the exit
        // code is the last statement's: the lab does not take that script.
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        let script = create_host_instance_script("DRBTS01", "SendHost", r"CONTOSO\svc-bts", true);
        let unguarded = script.strip_prefix("$ErrorActionPreference = 'Stop'; ").expect("it starts with it");
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", unguarded];
        let before = lab.clone();
        assert_eq!(exec_with_input(&mut lab, "PRDBTS01", &argv, b"pw").code, 9009);
        assert_eq!(lab, before);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_password() {
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "DRBTS01"), "\u{feff}pw", true);
        assert_eq!(out.code, 0, "{}", out.stderr_text());
        let instance = lab.group.host_instances.last().expect("created");
        assert_eq!(instance.password_sha256.as_deref(), Some(password_sha256("pw").as_str()));
    }

    #[test]
    fn host_instance_errors() {
        let mut lab = fresh_lab();
        let err = |lab: &mut Lab, server: &str, host: &str, password: &str| {
            let out = create(lab, "PRDBTS01", (host, server), password, true);
            assert_eq!(out.code, 1);
            out.stderr_text()
        };
        assert_eq!(
            err(&mut lab, "DRBTS01", "NoHost", "p"),
            "Exception calling \"Map\" : \"The host 'NoHost' does not exist.\"\n"
        );
        assert_eq!(
            err(&mut lab, "DRBTS01", "SendHost", "p"),
            "Exception calling \"Map\" : \"The server 'DRBTS01' is not a member of the group.\"\n"
        );
        lab.group.members.push("DRBTS01".into());
        for unfilled in ["", "@@secret:bts-host-password@@"] {
            assert_eq!(
                err(&mut lab, "DRBTS01", "SendHost", unfilled),
                "Exception calling \"Install\" : \"The password is empty.\"\n"
            );
        }
        let out = create(&mut lab, "DRBTS02", ("SendHost", "DRBTS01"), "p", true);
        assert!(out.stderr_text().contains("Invalid namespace"), "only on a joined server");
    }

    #[test]
    fn a_wrong_name_or_another_script_is_unsupported() {
        let mut lab = fresh_lab();
        let script = create_host_instance_script("PRDBTS01", "ReceiveHost", "a", true)
            .replace("Server ReceiveHost PRDBTS01", "Server ReceiveHost PRDBTS02");
        assert_eq!(ps(&mut lab, "PRDBTS01", &script).code, 9009);
        assert_eq!(ps(&mut lab, "PRDBTS01", "Get-Service").code, 9009);
        assert_eq!(exec(&mut lab, "PRDBTS01", &["powershell.exe", "-Command", OS_SCRIPT]).code, 9009);
        // The password on the command line, as the protocol once had it, is not the script.
        let read = "$password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); ";
        let on_the_command_line = create_host_instance_script("DRBTS01", "SendHost", "a", true)
            .replace(read, "")
            .replace("Install('a', $password,", "Install('a', 'p',");
        assert_eq!(ps(&mut lab, "PRDBTS01", &on_the_command_line).code, 9009);
    }

    #[test]
    fn quotes_are_doubled_and_undoubled() {
        let script = create_host_instance_script("S", "H", r"D\u'v''w", false);
        assert!(
            script
                .ends_with(r"$hi.IsDisabled = $false; $hi.Install('D\u''v''''w', $password, $true, $false)")
        );
        let captures = CREATE_HOST_INSTANCE.captures(&script).expect("matches");
        assert_eq!(&captures["account"], r"D\u''v''''w");
        assert_eq!(&captures["disabled"], "false");
        let enabled = script.replace("$hi.IsDisabled = $false", "$hi.IsDisabled = 1");
        assert!(CREATE_HOST_INSTANCE.captures(&enabled).is_none(), "only $true or $false");
    }

    /// The lab after PRDBTS02 was rebuilt: its rows exist, its services do not.
    fn replaced() -> Lab {
        let mut lab = fresh_lab();
        crate::replace::replace(&mut lab, "PRDBTS02", None).expect("replaced");
        lab
    }

    #[test]
    fn an_instance_whose_service_is_missing_is_installed_again() {
        let mut lab = replaced();
        let before = lab.group.host_instances.clone();
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "PRDBTS02"), "p", false);
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        assert_eq!(lab.group.host_instances.len(), 5, "no second row");
        let row = lab
            .group
            .host_instances
            .iter()
            .find(|i| i.name == "Microsoft BizTalk Server SendHost PRDBTS02")
            .expect("the row");
        assert_eq!(
            (row.configuration_state, row.is_disabled),
            (1, false),
            "IsDisabled as the script gives it"
        );
        assert_eq!(row.service_state, ServiceState::Stopped);
        let service = lab.servers["PRDBTS02"].service("BTSSvc$SendHost").expect("service re-created");
        assert_eq!((service.start_type, service.state), (StartType::Auto, ServiceState::Stopped));
        assert_eq!(service.account, r"CONTOSO\svc-bts");
        assert!(lab.servers["PRDBTS02"].service("BTSSvc$ProcessingHost").is_none(), "only the one asked for");
        let others: Vec<_> = lab.group.host_instances.iter().filter(|i| i.server == "PRDBTS01").collect();
        let others_before: Vec<_> = before.iter().filter(|i| i.server == "PRDBTS01").collect();
        assert_eq!(others, others_before);

        // The service exists now: installing again is refused, as before.
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "PRDBTS02"), "p", false);
        assert_eq!(out.code, 1);
        assert!(out.stderr_text().contains("Another object with the same key properties already exists"));

        // Disabled when the script says so.
        assert_eq!(create(&mut lab, "PRDBTS01", ("ProcessingHost", "PRDBTS02"), "p", true).code, 0);
        let row = lab.group.host_instances.iter().find(|i| i.host == "ProcessingHost").expect("row");
        assert!(row.is_disabled);
    }

    #[test]
    fn only_an_installed_instance_is_repaired_and_never_without_a_password() {
        let mut lab = replaced();
        for row in lab.group.host_instances.iter_mut().filter(|i| i.server == "PRDBTS02") {
            row.configuration_state = 3;
        }
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "PRDBTS02"), "p", false);
        assert_eq!(out.code, 1);
        assert!(out.stderr_text().contains("Another object with the same key properties already exists"));
        assert!(lab.servers["PRDBTS02"].service("BTSSvc$SendHost").is_none());

        let mut lab = replaced();
        let out = create(&mut lab, "PRDBTS01", ("SendHost", "PRDBTS02"), "", false);
        assert_eq!(out.stderr_text(), "Exception calling \"Install\" : \"The password is empty.\"\n");
        assert!(lab.servers["PRDBTS02"].service("BTSSvc$SendHost").is_none());
    }
}
