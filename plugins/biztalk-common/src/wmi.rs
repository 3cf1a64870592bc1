//! BizTalk's WMI classes through PowerShell: the `MSBTS_HostInstance`, `MSBTS_Server` and
//! `MSBTS_HostSetting` query scripts, typed rows of their JSON answers (with the enumerations of
//! `lab/PROTOCOL.md`), the host-instance creation and removal scripts and their failures.
//!
//! Scripts are whole argv words for [`crate::powershell::args`], matched word for word by the
//! lab, so build them only with the constants and functions here. JSON answers go through
//! [`crate::powershell::rows`] (one object, an array or nothing). Nothing here runs anything.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::powershell::{self, JsonError};

/// Every host instance of the group, with its host's type and its logon account (properties of
/// `MSBTS_HostInstance` in Microsoft's class reference). Rows: [`HostInstance`]. Works only on a
/// joined server.
pub const HOST_INSTANCES: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostInstance | Select-Object Name, HostName, HostType, RunningServer, Logon, ConfigurationState, IsDisabled, ServiceState | ConvertTo-Json -Compress";

/// The group's runtime servers. Rows: [`Server`]. Works only on a joined server.
pub const SERVERS: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_Server | Select-Object Name | ConvertTo-Json -Compress";

/// The group's hosts. Rows: [`HostSetting`]. Works only on a joined server.
pub const HOST_SETTINGS: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostSetting | Select-Object Name, HostType | ConvertTo-Json -Compress";

/// `MSBTS_HostInstance.ConfigurationState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", rename_all = "kebab-case")]
pub enum ConfigurationState {
    /// 1.
    Installed,
    /// 2.
    InstallFailed,
    /// 3.
    UninstallFailed,
    /// 4.
    UpdateFailed,
    /// 5.
    NotInstalled,
}

impl ConfigurationState {
    /// A failed install, uninstall or update (2, 3, 4): the instance must be repaired (uninstall,
    /// unmap, create again) before it can be used [docs/biztalk.md, "WMI"].
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            ConfigurationState::InstallFailed
                | ConfigurationState::UninstallFailed
                | ConfigurationState::UpdateFailed
        )
    }
}

impl TryFrom<u8> for ConfigurationState {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, String> {
        match value {
            1 => Ok(ConfigurationState::Installed),
            2 => Ok(ConfigurationState::InstallFailed),
            3 => Ok(ConfigurationState::UninstallFailed),
            4 => Ok(ConfigurationState::UpdateFailed),
            5 => Ok(ConfigurationState::NotInstalled),
            other => Err(format!("unknown ConfigurationState {other}")),
        }
    }
}

impl fmt::Display for ConfigurationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigurationState::Installed => "installed",
            ConfigurationState::InstallFailed => "install failed",
            ConfigurationState::UninstallFailed => "uninstall failed",
            ConfigurationState::UpdateFailed => "update failed",
            ConfigurationState::NotInstalled => "not installed",
        })
    }
}

/// `MSBTS_HostInstance.ServiceState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", rename_all = "kebab-case")]
pub enum ServiceState {
    /// 1.
    Stopped,
    /// 2.
    StartPending,
    /// 3.
    StopPending,
    /// 4.
    Running,
    /// 5.
    ContinuePending,
    /// 6.
    PausePending,
    /// 7.
    Paused,
    /// 8.
    Unknown,
}

impl TryFrom<u8> for ServiceState {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, String> {
        match value {
            1 => Ok(ServiceState::Stopped),
            2 => Ok(ServiceState::StartPending),
            3 => Ok(ServiceState::StopPending),
            4 => Ok(ServiceState::Running),
            5 => Ok(ServiceState::ContinuePending),
            6 => Ok(ServiceState::PausePending),
            7 => Ok(ServiceState::Paused),
            8 => Ok(ServiceState::Unknown),
            other => Err(format!("unknown ServiceState {other}")),
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Stopped => "stopped",
            ServiceState::StartPending => "start pending",
            ServiceState::StopPending => "stop pending",
            ServiceState::Running => "running",
            ServiceState::ContinuePending => "continue pending",
            ServiceState::PausePending => "pause pending",
            ServiceState::Paused => "paused",
            ServiceState::Unknown => "unknown",
        })
    }
}

/// `MSBTS_HostSetting.HostType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", rename_all = "kebab-case")]
pub enum HostType {
    /// 1.
    InProcess,
    /// 2.
    Isolated,
}

impl TryFrom<u8> for HostType {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, String> {
        match value {
            1 => Ok(HostType::InProcess),
            2 => Ok(HostType::Isolated),
            other => Err(format!("unknown HostType {other}")),
        }
    }
}

/// A row of [`HOST_INSTANCES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostInstance {
    /// `Microsoft BizTalk Server <host> <server>`.
    pub name: String,
    /// The host.
    pub host_name: String,
    /// In-process or isolated: an isolated host's instance has no Windows service (its work
    /// runs in IIS), and its `ServiceState` says nothing.
    pub host_type: HostType,
    /// The server it runs on.
    pub running_server: String,
    /// The account it runs as, `DOMAIN\user` (null for an instance that was never installed).
    #[serde(default)]
    pub logon: Option<String>,
    /// Installed, or how installing failed.
    pub configuration_state: ConfigurationState,
    /// "Disable host instance from starting".
    pub is_disabled: bool,
    /// Stopped, running, ….
    pub service_state: ServiceState,
}

impl HostInstance {
    /// Whether this is the instance of `host` on `server` (names compared case-insensitively,
    /// as Windows and BizTalk do).
    pub fn is(&self, host: &str, server: &str) -> bool {
        self.host_name.eq_ignore_ascii_case(host) && self.running_server.eq_ignore_ascii_case(server)
    }

    /// Installed, disabled and stopped: what DR preparation wants of a DR instance [docs/biztalk.md, "WMI"]. An
    /// isolated host's instance has no Windows service and WMI cannot tell its state (the
    /// administration console shows "Status Unavailable"), so only installed and disabled count.
    pub fn is_standby(&self) -> bool {
        self.configuration_state == ConfigurationState::Installed
            && self.is_disabled
            && (self.host_type == HostType::Isolated || self.service_state == ServiceState::Stopped)
    }

    /// The logon account, when the row has a non-empty one.
    pub fn account(&self) -> Option<&str> {
        self.logon.as_deref().map(str::trim).filter(|l| !l.is_empty())
    }
}

/// A row of [`SERVERS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Server {
    /// The server's computer name.
    pub name: String,
}

/// A row of [`HOST_SETTINGS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostSetting {
    /// The host.
    pub name: String,
    /// In-process or isolated.
    pub host_type: HostType,
}

/// Parses the answer to [`HOST_INSTANCES`].
pub fn parse_host_instances(stdout: &str) -> Result<Vec<HostInstance>, JsonError> {
    powershell::rows(stdout)
}

/// Parses the answer to [`SERVERS`].
pub fn parse_servers(stdout: &str) -> Result<Vec<Server>, JsonError> {
    powershell::rows(stdout)
}

/// Parses the answer to [`HOST_SETTINGS`].
pub fn parse_host_settings(stdout: &str) -> Result<Vec<HostSetting>, JsonError> {
    powershell::rows(stdout)
}

/// Whether a query failed because the server is not joined to a BizTalk group (the BizTalk WMI
/// namespace does not exist there).
pub fn not_joined(stderr: &str) -> bool {
    stderr.contains("Invalid namespace \"root/MicrosoftBizTalkServer\"")
}

/// The WMI name of the instance of `host` on `server`.
pub fn host_instance_name(host: &str, server: &str) -> String {
    format!("Microsoft BizTalk Server {host} {server}")
}

/// The creation script's first statement: the password, read whole from standard input as
/// UTF-8 (not through the console's code page), so it is never on the command line, where other
/// users of the server could read it, and needs no quoting: any value goes through as it is.
pub const READ_PASSWORD: &str =
    "$password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd()";

/// The creation script's preference that makes its first failure end it: a .NET method that
/// throws (`Map`, `Install`) is only a statement-terminating error in PowerShell, after which
/// the next statement runs; with `$ErrorActionPreference = 'Stop'` it ends the script with exit
/// code 1, so a failed `Map` never lets `Install` run and the exit code is the first failure's
/// (Microsoft, "about_Error_Handling").
pub const STOP_ON_ERROR: &str = "$ErrorActionPreference = 'Stop'";

/// The script that creates the instance of `host` on `server`, installed and disabled, never
/// started: maps the host to the server, then `Install(logon, password, GrantLogOnAsService,
/// IsGmsaAccount = false)` [docs/biztalk.md, "WMI"]. It stops at its first failure ([`STOP_ON_ERROR`]).
///
/// The password is not in the script: the script reads it from its standard input
/// ([`READ_PASSWORD`]). Send [`password_stdin`] as the exec's stdin: a secret reference the host
/// fills in on the way to the target. Every other value is a PowerShell single-quoted string (a
/// quote inside is doubled).
pub fn create_host_instance(host: &str, server: &str, account: &str) -> String {
    install_host_instance(host, server, account, true)
}

/// The creation script with `IsDisabled` as given: [`create_host_instance`] for a DR instance
/// (disabled), or the repair of an instance whose Windows service is missing on a rebuilt server
/// (docs/biztalk.md, "Host instances of a replaced server"), which keeps the `IsDisabled` its row has. On an installed instance whose service is
/// missing, `Install` creates the service again instead of failing with "already exists"
/// (`lab/PROTOCOL.md`, "Repair").
pub fn install_host_instance(host: &str, server: &str, account: &str, disabled: bool) -> String {
    let q = powershell::single_quoted;
    format!(
        "{STOP_ON_ERROR}; {READ_PASSWORD}; \
         $sh = ([WMICLASS]\"root\\MicrosoftBizTalkServer:MSBTS_ServerHost\").CreateInstance(); \
         $sh.ServerName = {server}; $sh.HostName = {host}; $sh.Map(); \
         $hi = ([WMICLASS]\"root\\MicrosoftBizTalkServer:MSBTS_HostInstance\").CreateInstance(); \
         $hi.Name = {name}; $hi.IsDisabled = {disabled}; $hi.Install({account}, $password, $true, $false)",
        server = q(server),
        host = q(host),
        name = q(&host_instance_name(host, server)),
        disabled = if disabled { "$true" } else { "$false" },
        account = q(account),
    )
}

/// The standard input of the creation script: a reference to the secret `password_secret`, which
/// the host replaces with the password on the way to the target (nothing else, no newline: the
/// script reads all of it).
pub fn password_stdin(password_secret: &str) -> Vec<u8> {
    drover_sdk::secret_ref(password_secret).into_bytes()
}

/// Why the creation script failed, from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateFailure {
    /// `The host '<host>' does not exist.`
    HostMissing,
    /// `The server '<server>' is not a member of the group.`
    ServerNotInGroup,
    /// `Another object with the same key properties already exists.`
    AlreadyExists,
    /// `The password is empty.`
    EmptyPassword,
    /// The server the script ran on is not joined (no BizTalk WMI namespace).
    NotJoined,
    /// Anything else: the stderr text.
    Other(String),
}

/// Classifies the stderr of a failed creation script.
pub fn create_failure(stderr: &str) -> CreateFailure {
    if stderr.contains("Another object with the same key properties already exists") {
        CreateFailure::AlreadyExists
    } else if stderr.contains("is not a member of the group") {
        CreateFailure::ServerNotInGroup
    } else if stderr.contains("The host '") && stderr.contains("' does not exist") {
        CreateFailure::HostMissing
    } else if stderr.contains("The password is empty") {
        CreateFailure::EmptyPassword
    } else if not_joined(stderr) || stderr.contains("Invalid namespace") {
        CreateFailure::NotJoined
    } else {
        CreateFailure::Other(stderr.trim().to_string())
    }
}

/// The script that removes the instance of `host` on `server`, as Microsoft's "Uninstalling and
/// Un-Mapping a Host Instance Using WMI" does: `MSBTS_HostInstance.Uninstall()` unless the
/// instance is mapped but not installed (`ConfigurationState` 5), then
/// `MSBTS_ServerHost.Unmap()`. It never stops an instance: Microsoft's sample stops a running
/// one first, but the caller decides that before sending this script (a running instance
/// makes `Uninstall` fail). `$ErrorActionPreference = 'Stop'` makes any failure end the script
/// with exit code 1. Values are PowerShell single-quoted strings (a quote inside is doubled).
pub fn remove_host_instance(host: &str, server: &str) -> String {
    let q = powershell::single_quoted;
    format!(
        "$ErrorActionPreference = 'Stop'; \
         $hi = Get-WmiObject -Namespace root\\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object {{ $_.Name -eq {name} }}; \
         if ($hi -and $hi.ConfigurationState -ne 5) {{ $hi.Uninstall() }}; \
         $sh = ([WMICLASS]\"root\\MicrosoftBizTalkServer:MSBTS_ServerHost\").CreateInstance(); \
         $sh.ServerName = {server}; $sh.HostName = {host}; $sh.Unmap()",
        name = q(&host_instance_name(host, server)),
        server = q(server),
        host = q(host),
    )
}

/// Why the removal script failed, from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveFailure {
    /// `Uninstall` refused a host instance that is not stopped.
    NotStopped,
    /// `The host '<host>' does not exist.`
    HostMissing,
    /// `The server '<server>' is not a member of the group.`
    ServerNotInGroup,
    /// The server the script ran on is not joined (no BizTalk WMI namespace).
    NotJoined,
    /// Anything else: the stderr text.
    Other(String),
}

/// Classifies the stderr of a failed removal script.
pub fn remove_failure(stderr: &str) -> RemoveFailure {
    if stderr.contains("must be stopped before it can be uninstalled") {
        RemoveFailure::NotStopped
    } else if stderr.contains("is not a member of the group") {
        RemoveFailure::ServerNotInGroup
    } else if stderr.contains("The host '") && stderr.contains("' does not exist") {
        RemoveFailure::HostMissing
    } else if stderr.contains("Invalid namespace") {
        RemoveFailure::NotJoined
    } else {
        RemoveFailure::Other(stderr.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_are_protocol_md_word_for_word() {
        let ns = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName";
        assert_eq!(
            HOST_INSTANCES,
            powershell::select_to_json(
                &format!("{ns} MSBTS_HostInstance"),
                &[
                    "Name",
                    "HostName",
                    "HostType",
                    "RunningServer",
                    "Logon",
                    "ConfigurationState",
                    "IsDisabled",
                    "ServiceState"
                ]
            )
        );
        assert_eq!(SERVERS, powershell::select_to_json(&format!("{ns} MSBTS_Server"), &["Name"]));
        assert_eq!(
            HOST_SETTINGS,
            "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostSetting | Select-Object Name, HostType | ConvertTo-Json -Compress"
        );
        assert_eq!(powershell::args(SERVERS)[3], SERVERS);
    }

    #[test]
    fn the_creation_script_is_protocol_md_word_for_word() {
        let script = create_host_instance("SendHost", "DRBTS01", "CONTOSO\\svc-bts");
        assert_eq!(
            script,
            r#"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'DRBTS01'; $sh.HostName = 'SendHost'; $sh.Map(); $hi = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_HostInstance").CreateInstance(); $hi.Name = 'Microsoft BizTalk Server SendHost DRBTS01'; $hi.IsDisabled = $true; $hi.Install('CONTOSO\svc-bts', $password, $true, $false)"#
        );
        assert_eq!(password_stdin("bts-host-sendhost"), b"@@secret:bts-host-sendhost@@");
    }

    #[test]
    fn the_removal_script_is_protocol_md_word_for_word() {
        let script = remove_host_instance("SendHost", "DRBTS01");
        assert_eq!(
            script,
            r#"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq 'Microsoft BizTalk Server SendHost DRBTS01' }; if ($hi -and $hi.ConfigurationState -ne 5) { $hi.Uninstall() }; $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'DRBTS01'; $sh.HostName = 'SendHost'; $sh.Unmap()"#
        );
        let quoted = remove_host_instance("O'Host", "DRBTS01");
        assert!(quoted.contains("-eq 'Microsoft BizTalk Server O''Host DRBTS01' }"), "{quoted}");
        assert!(quoted.ends_with("$sh.HostName = 'O''Host'; $sh.Unmap()"), "{quoted}");
    }

    #[test]
    fn classifies_removal_failures() {
        let cases = [
            (
                "Exception calling \"Uninstall\" : \"The host instance 'Microsoft BizTalk Server SendHost DRBTS01' must be stopped before it can be uninstalled.\"",
                RemoveFailure::NotStopped,
            ),
            (
                "Exception calling \"Unmap\" : \"The host 'NoHost' does not exist.\"",
                RemoveFailure::HostMissing,
            ),
            (
                "Exception calling \"Unmap\" : \"The server 'DRBTS09' is not a member of the group.\"",
                RemoveFailure::ServerNotInGroup,
            ),
            ("Get-WmiObject : Invalid namespace \"root\\MicrosoftBizTalkServer\"", RemoveFailure::NotJoined),
            ("boom\n", RemoveFailure::Other("boom".into())),
        ];
        for (stderr, want) in cases {
            assert_eq!(remove_failure(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn the_repair_script_keeps_is_disabled_as_given() {
        let enabled = install_host_instance("SendHost", "PRDBTS02", "CONTOSO\\svc-bts", false);
        assert!(enabled.contains(
            "; $hi.IsDisabled = $false; $hi.Install('CONTOSO\\svc-bts', $password, $true, $false)"
        ));
        assert_eq!(
            install_host_instance("SendHost", "DRBTS01", "a", true),
            create_host_instance("SendHost", "DRBTS01", "a")
        );
    }

    #[test]
    fn the_creation_script_doubles_single_quotes() {
        let script = create_host_instance("O'Host", "DRBTS01", "CONTOSO\\o'neil");
        assert!(script.contains("$sh.HostName = 'O''Host';"), "{script}");
        assert!(script.contains("$hi.Name = 'Microsoft BizTalk Server O''Host DRBTS01';"), "{script}");
        assert!(script.contains("Install('CONTOSO\\o''neil', $password, $true, $false)"), "{script}");
    }

    #[test]
    fn parses_host_instances_one_many_or_none() {
        let one = r#"{"Name":"Microsoft BizTalk Server SendHost PRDBTS01","HostName":"SendHost","HostType":1,"RunningServer":"PRDBTS01","Logon":"CONTOSO\\svc-bts","ConfigurationState":1,"IsDisabled":false,"ServiceState":4}"#;
        let rows = parse_host_instances(one).unwrap();
        assert_eq!(
            rows,
            [HostInstance {
                name: "Microsoft BizTalk Server SendHost PRDBTS01".into(),
                host_name: "SendHost".into(),
                host_type: HostType::InProcess,
                running_server: "PRDBTS01".into(),
                logon: Some("CONTOSO\\svc-bts".into()),
                configuration_state: ConfigurationState::Installed,
                is_disabled: false,
                service_state: ServiceState::Running,
            }]
        );
        assert!(rows[0].is("sendhost", "prdbts01"));
        assert!(!rows[0].is_standby());
        let many = format!(
            "[{one},{}]",
            r#"{"Name":"Microsoft BizTalk Server SendHost DRBTS01","HostName":"SendHost","HostType":1,"RunningServer":"DRBTS01","Logon":null,"ConfigurationState":3,"IsDisabled":true,"ServiceState":1}"#
        );
        let rows = parse_host_instances(&many).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].configuration_state, ConfigurationState::UninstallFailed);
        assert_eq!((rows[0].account(), rows[1].account()), (Some("CONTOSO\\svc-bts"), None));
        assert!(rows[1].configuration_state.is_failed());
        assert!(!ConfigurationState::NotInstalled.is_failed());
        assert!(parse_host_instances("").unwrap().is_empty());
    }

    #[test]
    fn a_standby_instance_is_installed_disabled_and_stopped() {
        let row = r#"{"Name":"x","HostName":"SendHost","HostType":1,"RunningServer":"DRBTS01","Logon":"a","ConfigurationState":1,"IsDisabled":true,"ServiceState":1}"#;
        assert!(parse_host_instances(row).unwrap()[0].is_standby());
        let unknown = row.replace(r#""ServiceState":1"#, r#""ServiceState":8"#);
        assert!(
            !parse_host_instances(&unknown).unwrap()[0].is_standby(),
            "an in-process host's state counts"
        );
    }

    #[test]
    fn an_isolated_instance_is_standby_whatever_its_service_state() {
        // An isolated host has no Windows service: WMI reports 8 (Unknown), the console "Status
        // Unavailable".
        let row = r#"{"Name":"x","HostName":"BizTalkServerIsolatedHost","HostType":2,"RunningServer":"DRBTS01","Logon":"a","ConfigurationState":1,"IsDisabled":true,"ServiceState":8}"#;
        let rows = parse_host_instances(row).unwrap();
        assert_eq!(rows[0].host_type, HostType::Isolated);
        assert!(rows[0].is_standby());
        let enabled = row.replace(r#""IsDisabled":true"#, r#""IsDisabled":false"#);
        assert!(!parse_host_instances(&enabled).unwrap()[0].is_standby(), "it must still be disabled");
    }

    #[test]
    fn unknown_enumeration_values_are_errors() {
        let row = r#"{"Name":"x","HostName":"h","HostType":1,"RunningServer":"s","Logon":"a","ConfigurationState":9,"IsDisabled":true,"ServiceState":1}"#;
        let err = parse_host_instances(row).unwrap_err();
        assert!(err.to_string().contains("unknown ConfigurationState 9"), "{err}");
    }

    #[test]
    fn parses_servers_and_hosts() {
        let servers = parse_servers(r#"[{"Name":"PRDBTS01"},{"Name":"DRBTS01"}]"#).unwrap();
        assert_eq!(servers, [Server { name: "PRDBTS01".into() }, Server { name: "DRBTS01".into() }]);
        let hosts = parse_host_settings(r#"{"Name":"SendHost","HostType":1}"#).unwrap();
        assert_eq!(hosts, [HostSetting { name: "SendHost".into(), host_type: HostType::InProcess }]);
        assert_eq!(
            parse_host_settings(r#"{"Name":"X","HostType":2}"#).unwrap()[0].host_type,
            HostType::Isolated
        );
    }

    #[test]
    fn classifies_creation_failures() {
        let cases = [
            ("Exception calling \"Map\" : \"The host 'NoHost' does not exist.\"", CreateFailure::HostMissing),
            (
                "Exception calling \"Map\" : \"The server 'DRBTS09' is not a member of the group.\"",
                CreateFailure::ServerNotInGroup,
            ),
            (
                "Exception calling \"Install\" : \"Another object with the same key properties already exists.\"",
                CreateFailure::AlreadyExists,
            ),
            ("Exception calling \"Install\" : \"The password is empty.\"", CreateFailure::EmptyPassword),
            ("Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"", CreateFailure::NotJoined),
            ("boom\n", CreateFailure::Other("boom".into())),
        ];
        for (stderr, want) in cases {
            assert_eq!(create_failure(stderr), want, "{stderr}");
        }
        assert!(not_joined("Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\""));
    }
}
