//! The failover's WMI scripts and the SSO restore through COM (`lab/PROTOCOL.md`, "Failover:
//! database references, SSO and processing"; docs/biztalk.md, "Failover activation", F8 to
//! F12): `MSBTS_GroupSetting` (read; `SSOServerName` set with `Put()`), `MSBTS_ReceiveLocation`
//! (listed; `Disable()`, `Enable()`), a host instance's `Start()`, `Stop()` and `IsDisabled` with
//! `Put()`, and `ISSOConfigSS.RestoreSecret` with the password on standard input.
//!
//! The WMI scripts work on a server joined and configured locally, with network credentials, whose
//! registry names a management database that answers (the provider reads the group from there:
//! production's record, or the copy Restore To Mark recovered on a DR SQL Server,
//! [`crate::state::Lab::group_on`]).
//! Under `dead-production-wmi` a call that must reach a production server fails as with an
//! unreachable computer (Windows error 1722). Every script is matched word for word.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::super::dbrefs::NO_SQL_SERVER;
use super::super::hop::ANONYMOUS_LOGIN_FAILED;
use super::super::{Ctx, Output};
use super::{json, read_password, template_regex};
use crate::state::{ServiceState, StartType};

/// `MSBTS_GroupSetting`: the group's name, its databases and its SSO server.
pub const GROUP_SETTING_SCRIPT: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_GroupSetting | Select-Object Name, MgmtDbServerName, MgmtDbName, SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName, RuleEngineDBServerName, RuleEngineDBName, SSOServerName | ConvertTo-Json -Compress";
/// `MSBTS_ReceiveLocation`: every receive location with its state.
pub const RECEIVE_LOCATIONS_SCRIPT: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_ReceiveLocation | Select-Object Name, ReceivePortName, HostName, AdapterName, IsDisabled | ConvertTo-Json -Compress";
/// Sets `SSOServerName`, `{server}` a single-quoted string.
pub const SET_SSO_SERVER_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $g = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_GroupSetting; $g.SSOServerName = '{server}'; $null = $g.Put()";
/// Disables a receive location, `{name}` a single-quoted string.
pub const DISABLE_RECEIVE_LOCATION_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $rl = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_ReceiveLocation | Where-Object { $_.Name -eq '{name}' }; $null = $rl.Disable()";
/// Enables a receive location.
pub const ENABLE_RECEIVE_LOCATION_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $rl = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_ReceiveLocation | Where-Object { $_.Name -eq '{name}' }; $null = $rl.Enable()";
/// Starts a host instance, `{name}` its single-quoted WMI name.
pub const START_HOST_INSTANCE_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq '{name}' }; $null = $hi.Start()";
/// Stops a host instance.
pub const STOP_HOST_INSTANCE_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq '{name}' }; $null = $hi.Stop()";
/// Sets a host instance's `IsDisabled` (`{disabled}`: `$true` or `$false`) and saves it.
pub const SET_HOST_INSTANCE_DISABLED_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq '{name}' }; $hi.IsDisabled = {disabled}; $null = $hi.Put()";
/// Restores the master secret through `ISSOConfigSS`, `{file}` a single-quoted string, the
/// password the whole standard input.
pub const RESTORE_SECRET_TEMPLATE: &str = r"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $ss = [Activator]::CreateInstance([Type]::GetTypeFromCLSID([Guid]'2A40B78A-5C0B-4f39-A2CB-6D9AF29ECA37')); $ss.RestoreSecret('{file}', $password)";

/// PowerShell's error for a method called on nothing (the object was not found).
pub const NULL_VALUED: &str = "You cannot call a method on a null-valued expression.";
/// PowerShell's error for a property set on nothing.
pub const NO_PROPERTY: &str = "The property 'IsDisabled' cannot be found on this object. Verify that the property exists and can be set.";
/// Windows error 1722 as a WMI call reports it.
pub const RPC_UNAVAILABLE: &str = "The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)";

static SET_SSO_SERVER: LazyLock<Regex> =
    LazyLock::new(|| template_regex(SET_SSO_SERVER_TEMPLATE, &["server"]));
static DISABLE_RL: LazyLock<Regex> =
    LazyLock::new(|| template_regex(DISABLE_RECEIVE_LOCATION_TEMPLATE, &["name"]));
static ENABLE_RL: LazyLock<Regex> =
    LazyLock::new(|| template_regex(ENABLE_RECEIVE_LOCATION_TEMPLATE, &["name"]));
static START_HI: LazyLock<Regex> = LazyLock::new(|| template_regex(START_HOST_INSTANCE_TEMPLATE, &["name"]));
static STOP_HI: LazyLock<Regex> = LazyLock::new(|| template_regex(STOP_HOST_INSTANCE_TEMPLATE, &["name"]));
static DISABLED_HI: LazyLock<Regex> =
    LazyLock::new(|| template_regex(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &["name"]));
static RESTORE_SECRET: LazyLock<Regex> = LazyLock::new(|| template_regex(RESTORE_SECRET_TEMPLATE, &["file"]));

/// Renders a template: each `{key}` of `values` single-quote-escaped, `{disabled}` as given.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_owned(), |script, (key, value)| {
        let value = if *key == "disabled" { (*value).to_owned() } else { value.replace('\'', "''") };
        script.replace(&format!("{{{key}}}"), &value)
    })
}

/// Runs one of this module's scripts, or `None` when `script` is none of them.
pub fn run(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    let value = |captures: &regex::Captures<'_>, name: &str| {
        captures.name(name).map(|m| m.as_str().replace("''", "'")).unwrap_or_default()
    };
    if script == GROUP_SETTING_SCRIPT || script == RECEIVE_LOCATIONS_SCRIPT {
        return Some(match provider(ctx, "Get-CimInstance", "root/MicrosoftBizTalkServer") {
            Err(e) => e,
            Ok(mgmt) if script == GROUP_SETTING_SCRIPT => group_setting(ctx, &mgmt),
            Ok(mgmt) => receive_locations(ctx, &mgmt),
        });
    }
    if let Some(c) = RESTORE_SECRET.captures(script) {
        let file = value(&c, "file");
        return Some(restore_secret(ctx, &file));
    }
    let call = if let Some(c) = SET_SSO_SERVER.captures(script) {
        Call::SetSsoServer(value(&c, "server"))
    } else if let Some(c) = DISABLE_RL.captures(script) {
        Call::ReceiveLocation(value(&c, "name"), true)
    } else if let Some(c) = ENABLE_RL.captures(script) {
        Call::ReceiveLocation(value(&c, "name"), false)
    } else if let Some(c) = START_HI.captures(script) {
        Call::Start(value(&c, "name"))
    } else if let Some(c) = STOP_HI.captures(script) {
        Call::Stop(value(&c, "name"))
    } else if let Some(c) = DISABLED_HI.captures(script) {
        Call::SetDisabled(value(&c, "name"), value(&c, "disabled") == "true")
    } else {
        return None;
    };
    let mgmt = match provider(ctx, "Get-WmiObject", r"root\MicrosoftBizTalkServer") {
        Ok(mgmt) => mgmt,
        Err(e) => return Some(e),
    };
    Some(match call.apply(ctx, &mgmt) {
        Ok(()) => Output::ok(""),
        Err(message) if message == NULL_VALUED || message == NO_PROPERTY => {
            Output::stderr(1, format!("{message}\n"))
        }
        Err(message) => {
            Output::stderr(1, format!("Exception calling \"{}\" : \"{message}\"\n", call.method()))
        }
    })
}

/// A WMI method call of one of the scripts, with its values.
enum Call {
    /// `MSBTS_GroupSetting.SSOServerName = <server>; Put()`.
    SetSsoServer(String),
    /// `MSBTS_ReceiveLocation.Disable()` (true) or `Enable()` of the named location.
    ReceiveLocation(String, bool),
    /// `MSBTS_HostInstance.Start()`.
    Start(String),
    /// `MSBTS_HostInstance.Stop()`.
    Stop(String),
    /// `MSBTS_HostInstance.IsDisabled = <bool>; Put()`.
    SetDisabled(String, bool),
}

impl Call {
    /// The WMI method, as PowerShell names it in an exception.
    fn method(&self) -> &'static str {
        match self {
            Call::SetSsoServer(_) | Call::SetDisabled(..) => "Put",
            Call::ReceiveLocation(_, true) => "Disable",
            Call::ReceiveLocation(_, false) => "Enable",
            Call::Start(_) => "Start",
            Call::Stop(_) => "Stop",
        }
    }

    /// Applies the call to the group's record the management database `mgmt` holds.
    fn apply(&self, ctx: &mut Ctx<'_>, mgmt: &str) -> Result<(), String> {
        match self {
            Call::SetSsoServer(server) => set_sso_server(ctx, mgmt, server),
            Call::ReceiveLocation(name, disabled) => set_receive_location(ctx, mgmt, name, *disabled),
            Call::Start(name) => start(ctx, mgmt, name),
            Call::Stop(name) => stop(ctx, mgmt, name),
            Call::SetDisabled(name, disabled) => set_disabled(ctx, mgmt, name, *disabled),
        }
    }
}

/// Whether BizTalk's WMI provider answers on this server: the SQL Server of the management
/// database it reads the group from (its registry's), `cmdlet`'s error otherwise.
fn provider(ctx: &Ctx<'_>, cmdlet: &str, namespace: &str) -> Result<String, Output> {
    let fail = |message: String| Err(Output::stderr(1, format!("{cmdlet} : {message}\n")));
    if !ctx.lab.is_configured(&ctx.server) {
        return fail(format!("Invalid namespace \"{namespace}\""));
    }
    if ctx.second_hop().is_err() {
        return fail(ANONYMOUS_LOGIN_FAILED.to_owned());
    }
    // Failover, WMI restart (issue 18, F9): under `wmi-caches-group`, what winmgmt read.
    let mgmt = ctx.wmi_mgmt_server();
    if !ctx.lab.sql_reachable(&mgmt) {
        return fail(NO_SQL_SERVER.to_owned());
    }
    Ok(mgmt)
}

/// A row of [`GROUP_SETTING_SCRIPT`].
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupSettingRow<'a> {
    name: &'a str,
    mgmt_db_server_name: &'a str,
    mgmt_db_name: &'a str,
    #[serde(rename = "SubscriptionDBServerName")]
    subscription_db_server_name: &'a str,
    #[serde(rename = "SubscriptionDBName")]
    subscription_db_name: &'a str,
    #[serde(rename = "TrackingDBServerName")]
    tracking_db_server_name: &'a str,
    #[serde(rename = "TrackingDBName")]
    tracking_db_name: &'a str,
    #[serde(rename = "RuleEngineDBServerName")]
    rule_engine_db_server_name: &'a str,
    #[serde(rename = "RuleEngineDBName")]
    rule_engine_db_name: &'a str,
    #[serde(rename = "SSOServerName")]
    sso_server_name: &'a str,
}

fn group_setting(ctx: &Ctx<'_>, mgmt: &str) -> Output {
    let g = ctx.lab.group_on(mgmt);
    let a = &g.activation;
    json(&[GroupSettingRow {
        name: &g.name,
        mgmt_db_server_name: &g.mgmt_server,
        mgmt_db_name: &g.mgmt_db,
        subscription_db_server_name: &a.messagebox.server,
        subscription_db_name: &a.messagebox.name,
        tracking_db_server_name: &a.tracking.server,
        tracking_db_name: &a.tracking.name,
        rule_engine_db_server_name: &a.rule_engine.server,
        rule_engine_db_name: &a.rule_engine.name,
        sso_server_name: &a.sso_server_name,
    }])
}

/// A row of [`RECEIVE_LOCATIONS_SCRIPT`].
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveLocationRow<'a> {
    name: &'a str,
    receive_port_name: &'a str,
    host_name: &'a str,
    adapter_name: &'a str,
    is_disabled: bool,
}

fn receive_locations(ctx: &Ctx<'_>, mgmt: &str) -> Output {
    let rows: Vec<_> = ctx
        .lab
        .group_on(mgmt)
        .activation
        .receive_locations
        .iter()
        .map(|r| ReceiveLocationRow {
            name: &r.name,
            receive_port_name: &r.receive_port,
            host_name: &r.host,
            adapter_name: &r.adapter,
            is_disabled: r.is_disabled,
        })
        .collect();
    json(&rows)
}

fn set_sso_server(ctx: &mut Ctx<'_>, mgmt: &str, server: &str) -> Result<(), String> {
    // MSBTS_GroupSetting.SSOServerName: "Maximum length for this property is 80 characters."
    if server.chars().count() > 80 {
        return Err("The value of SSOServerName is longer than 80 characters.".to_owned());
    }
    ctx.lab.group_on_mut(mgmt).activation.sso_server_name = server.to_owned();
    Ok(())
}

fn set_receive_location(ctx: &mut Ctx<'_>, mgmt: &str, name: &str, disabled: bool) -> Result<(), String> {
    let rl = ctx.lab.group_on_mut(mgmt).activation.receive_locations.iter_mut().find(|r| r.name == name);
    let rl = rl.ok_or_else(|| NULL_VALUED.to_owned())?;
    rl.is_disabled = disabled;
    Ok(())
}

/// The index of the host instance called `name`, or PowerShell's error for nothing found.
fn instance(ctx: &Ctx<'_>, mgmt: &str, name: &str, missing: &str) -> Result<usize, String> {
    let at = ctx.lab.group_on(mgmt).host_instances.iter().position(|i| i.name.eq_ignore_ascii_case(name));
    at.ok_or_else(|| missing.to_owned())
}

/// Win32 error texts of the service control manager, as WMI passes them on.
const ACCESS_DENIED: &str = "Access is denied.";
const SERVICE_DISABLED: &str = "The service cannot be started, either because it is disabled or because it has no enabled devices associated with it.";
const DEPENDENCY_FAILED: &str = "The dependency service or group failed to start.";
const CANNOT_ACCEPT_CONTROL: &str = "The service cannot accept control messages at this time.";

/// The instance's server and service, checked for the call: the server answers, the instance is
/// an installed in-process one, the service exists and may be changed.
fn service_of(ctx: &Ctx<'_>, mgmt: &str, at: usize) -> Result<(String, String), String> {
    let group = ctx.lab.group_on(mgmt);
    let i = &group.host_instances[at];
    if ctx.lab.wmi_unreachable(&i.server) {
        return Err(RPC_UNAVAILABLE.to_owned());
    }
    let host_type =
        group.hosts.iter().find(|h| h.name.eq_ignore_ascii_case(&i.host)).map_or(1, |h| h.host_type);
    if host_type == 2 {
        return Err(format!(
            "The host instance '{}' belongs to an isolated host and cannot be started or stopped.",
            i.name
        ));
    }
    if i.configuration_state != 1 {
        return Err(format!("The host instance '{}' is not installed.", i.name));
    }
    let service = crate::state::HostInstance::service_name(&i.host);
    if ctx.lab.servers.get(&i.server).and_then(|s| s.service(&service)).is_none() {
        return Err(format!("The service '{service}' does not exist on '{}'.", i.server));
    }
    if ctx.lab.access_denied(&i.server, &service) {
        return Err(ACCESS_DENIED.to_owned());
    }
    Ok((i.server.clone(), service))
}

fn start(ctx: &mut Ctx<'_>, mgmt: &str, name: &str) -> Result<(), String> {
    let at = instance(ctx, mgmt, name, NULL_VALUED)?;
    let (server, service) = service_of(ctx, mgmt, at)?;
    let i = &ctx.lab.group_on(mgmt).host_instances[at];
    if i.is_disabled {
        return Err(format!("The host instance '{}' is disabled.", i.name));
    }
    if i.service_state == ServiceState::Running {
        return Ok(());
    }
    let sso_stopped = ctx.lab.sso_stopped(&server);
    let Some(s) = ctx.lab.servers.get_mut(&server) else { return Err(RPC_UNAVAILABLE.to_owned()) };
    if s.service(&service).is_some_and(|svc| svc.start_type == StartType::Disabled) {
        return Err(SERVICE_DISABLED.to_owned());
    }
    // Windows starts the services a service depends on (ENTSSO) first.
    match s.service_mut("ENTSSO") {
        Some(entsso) if entsso.start_type == StartType::Disabled || sso_stopped => {
            return Err(DEPENDENCY_FAILED.to_owned());
        }
        Some(entsso) => entsso.state = ServiceState::Running,
        None => return Err(DEPENDENCY_FAILED.to_owned()),
    }
    if let Some(svc) = s.service_mut(&service) {
        svc.state = ServiceState::Running;
    }
    ctx.lab.group_on_mut(mgmt).host_instances[at].service_state = ServiceState::Running;
    sync_service_state(ctx, mgmt, at);
    Ok(())
}

/// The service state of the instance at `at` of `mgmt`'s record, the same in every copy: it is
/// the server's service, whichever database WMI read the instance from.
fn sync_service_state(ctx: &mut Ctx<'_>, mgmt: &str, at: usize) {
    let i = &ctx.lab.group_on(mgmt).host_instances[at];
    let (name, state) = (i.name.clone(), i.service_state);
    for group in ctx.lab.groups_mut() {
        for i in group.host_instances.iter_mut().filter(|i| i.name.eq_ignore_ascii_case(&name)) {
            i.service_state = state;
        }
    }
}

fn stop(ctx: &mut Ctx<'_>, mgmt: &str, name: &str) -> Result<(), String> {
    let at = instance(ctx, mgmt, name, NULL_VALUED)?;
    let (server, service) = service_of(ctx, mgmt, at)?;
    if ctx.lab.group_on(mgmt).host_instances[at].service_state == ServiceState::Stopped {
        return Ok(());
    }
    if ctx.lab.service_stuck(&server, &service) {
        return Err(CANNOT_ACCEPT_CONTROL.to_owned());
    }
    if let Some(svc) = ctx.lab.servers.get_mut(&server).and_then(|s| s.service_mut(&service)) {
        svc.state = ServiceState::Stopped;
    }
    ctx.lab.group_on_mut(mgmt).host_instances[at].service_state = ServiceState::Stopped;
    sync_service_state(ctx, mgmt, at);
    Ok(())
}

fn set_disabled(ctx: &mut Ctx<'_>, mgmt: &str, name: &str, disabled: bool) -> Result<(), String> {
    let at = instance(ctx, mgmt, name, NO_PROPERTY)?;
    let group = ctx.lab.group_on(mgmt);
    let i = &group.host_instances[at];
    if ctx.lab.wmi_unreachable(&i.server) {
        return Err(RPC_UNAVAILABLE.to_owned());
    }
    // "IsDisabled can only be set when the host instance is in a stopped state."
    let in_process =
        group.hosts.iter().find(|h| h.name.eq_ignore_ascii_case(&i.host)).is_none_or(|h| h.host_type == 1);
    if in_process && i.service_state != ServiceState::Stopped {
        return Err(format!(
            "The host instance '{}' must be stopped before IsDisabled can be changed.",
            i.name
        ));
    }
    ctx.lab.group_on_mut(mgmt).host_instances[at].is_disabled = disabled;
    Ok(())
}

/// `ISSOConfigSS.RestoreSecret(file, password)`, the password the whole standard input.
fn restore_secret(ctx: &mut Ctx<'_>, file: &str) -> Output {
    let fail = |message: &str| {
        let message = message.strip_prefix("ERROR: ").unwrap_or(message);
        Output::stderr(1, format!("Exception calling \"RestoreSecret\" : \"{message}\"\n"))
    };
    let password = match read_password(ctx) {
        Ok(password) => password,
        Err(e) => return Output::stderr(1, format!("Exception calling \"ReadToEnd\" : \"{e}\"\n")),
    };
    match super::super::sso::restore_secret(ctx, file, &password) {
        Ok(()) => Output::ok(""),
        Err(message) => fail(&message),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{exec, exec_with_input, exec_without_credentials};
    use super::*;
    use crate::activation::SECRET_BACKUP_PASSWORD;
    use crate::init::{ADMIN_KEY, ENTSSO_SQL_KEY, SECRET_BACKUP, fresh_lab};
    use crate::state::{Fault, Lab};

    /// The plugins' side of the protocol: their unit tests spell out the scripts they send.
    const PLUGIN_PROCESSING: &str = include_str!("../../../../plugins/biztalk-common/src/processing.rs");
    const PLUGIN_SSO: &str = include_str!("../../../../plugins/biztalk-common/src/sso_secret.rs");

    #[test]
    fn the_scripts_are_the_plugins_word_for_word() {
        for constant in [GROUP_SETTING_SCRIPT, RECEIVE_LOCATIONS_SCRIPT] {
            assert!(PLUGIN_PROCESSING.contains(&format!("\"{constant}\"")), "{constant}");
        }
        for rendered in [
            render(SET_SSO_SERVER_TEMPLATE, &[("server", "DRSSO01")]),
            render(DISABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", "RL.Orders.File")]),
            render(START_HOST_INSTANCE_TEMPLATE, &[("name", "Microsoft BizTalk Server ReceiveHost DRBTS01")]),
        ] {
            assert!(PLUGIN_PROCESSING.contains(&format!("r\"{rendered}\"")), "{rendered}");
        }
        let restore = render(RESTORE_SECRET_TEMPLATE, &[("file", r"C:\Drover\it's.bak")]);
        assert!(PLUGIN_SSO.contains(&format!("r#\"{restore}\"#")), "{restore}");
    }

    fn ps(lab: &mut Lab, on: &str, script: &str) -> Output {
        exec(lab, on, &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    fn hi(host: &str, server: &str) -> String {
        crate::state::HostInstance::name_for(host, server)
    }

    #[test]
    fn the_group_setting_is_read_and_its_sso_server_set() {
        let mut lab = fresh_lab();
        assert_eq!(
            ps(&mut lab, "PRDBTS01", GROUP_SETTING_SCRIPT).stdout_text(),
            "{\"Name\":\"BizTalkGroup\",\"MgmtDbServerName\":\"PRDSQL01\",\"MgmtDbName\":\"BizTalkMgmtDb\",\"SubscriptionDBServerName\":\"PRDSQL01\",\"SubscriptionDBName\":\"BizTalkMsgBoxDb\",\"TrackingDBServerName\":\"PRDSQL01\",\"TrackingDBName\":\"BizTalkDTADb\",\"RuleEngineDBServerName\":\"PRDSQL01\",\"RuleEngineDBName\":\"BizTalkRuleEngineDb\",\"SSOServerName\":\"PRDSSO01\"}\n"
        );
        let script = render(SET_SSO_SERVER_TEMPLATE, &[("server", "DRSSO01")]);
        assert_eq!(
            script,
            r"$ErrorActionPreference = 'Stop'; $g = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_GroupSetting; $g.SSOServerName = 'DRSSO01'; $null = $g.Put()"
        );
        let out = ps(&mut lab, "PRDBTS01", &script);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        assert_eq!(lab.group.activation.sso_server_name, "DRSSO01");
    }

    #[test]
    fn the_provider_needs_a_joined_server_credentials_and_its_management_database() {
        let mut lab = fresh_lab();
        let out = ps(&mut lab, "DRBTS01", RECEIVE_LOCATIONS_SCRIPT);
        assert_eq!(
            out.stderr_text(),
            "Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"\n"
        );
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", GROUP_SETTING_SCRIPT];
        let out = exec_without_credentials(&mut lab, "PRDBTS01", &argv, b"");
        assert_eq!(out.stderr_text(), format!("Get-CimInstance : {ANONYMOUS_LOGIN_FAILED}\n"));
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        let script = render(DISABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", "RL.Orders.File")]);
        let out = ps(&mut lab, "PRDBTS01", &script);
        assert_eq!((out.code, out.stderr_text()), (1, format!("Get-WmiObject : {NO_SQL_SERVER}\n")));
        assert!(!lab.group.activation.receive_locations[0].is_disabled);
    }

    #[test]
    fn receive_locations_are_listed_disabled_and_enabled() {
        let mut lab = fresh_lab();
        let rows = ps(&mut lab, "PRDBTS02", RECEIVE_LOCATIONS_SCRIPT).stdout_text();
        assert!(rows.starts_with("[{\"Name\":\"RL.Orders.File\",\"ReceivePortName\":\"RP.Orders\",\"HostName\":\"ReceiveHost\",\"AdapterName\":\"FILE\",\"IsDisabled\":false},"), "{rows}");
        let disable = render(DISABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", "RL.Orders.Http")]);
        assert_eq!(ps(&mut lab, "PRDBTS02", &disable).code, 0);
        assert!(lab.group.activation.receive_locations[1].is_disabled);
        assert_eq!(ps(&mut lab, "PRDBTS02", &disable).code, 0, "disabling twice is harmless");
        let enable = render(ENABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", "RL.Orders.Http")]);
        assert_eq!(ps(&mut lab, "PRDBTS02", &enable).code, 0);
        assert!(!lab.group.activation.receive_locations[1].is_disabled);
        let missing = render(ENABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", "RL.None")]);
        let out = ps(&mut lab, "PRDBTS02", &missing);
        assert_eq!((out.code, out.stderr_text()), (1, format!("{NULL_VALUED}\n")));
    }

    /// Production with DRBTS01 joined and its disabled, stopped SendHost instance (workflow B).
    fn with_dr_instance() -> Lab {
        let mut lab = fresh_lab();
        let registry = lab.servers["PRDBTS01"].registry.clone();
        let dr = lab.servers.get_mut("DRBTS01").expect("DRBTS01");
        dr.registry.extend(registry.into_iter().filter(|(k, _)| k == ADMIN_KEY || k == ENTSSO_SQL_KEY));
        dr.services.push(crate::init::host_service(
            "SendHost",
            r"CONTOSO\svc-bts",
            StartType::Auto,
            ServiceState::Stopped,
        ));
        lab.group.members.push("DRBTS01".into());
        lab.group.host_instances.push(crate::state::HostInstance {
            name: hi("SendHost", "DRBTS01"),
            host: "SendHost".into(),
            server: "DRBTS01".into(),
            configuration_state: 1,
            is_disabled: true,
            service_state: ServiceState::Stopped,
            account: r"CONTOSO\svc-bts".into(),
            password_sha256: None,
        });
        lab
    }

    #[test]
    fn a_dr_instance_is_enabled_while_stopped_then_started() {
        let mut lab = with_dr_instance();
        let name = hi("SendHost", "DRBTS01");
        let start = render(START_HOST_INSTANCE_TEMPLATE, &[("name", &name)]);
        let out = ps(&mut lab, "DRBTS01", &start);
        assert_eq!(
            (out.code, out.stderr_text()),
            (1, format!("Exception calling \"Start\" : \"The host instance '{name}' is disabled.\"\n"))
        );
        let enable = render(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &[("name", &name), ("disabled", "$false")]);
        assert!(enable.ends_with("$hi.IsDisabled = $false; $null = $hi.Put()"));
        assert_eq!(ps(&mut lab, "DRBTS01", &enable).code, 0);
        let out = ps(&mut lab, "DRBTS01", &start);
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        let row = lab.group.host_instances.iter().find(|i| i.name == name).expect("row");
        assert_eq!((row.is_disabled, row.service_state.code()), (false, 4));
        let dr = &lab.servers["DRBTS01"];
        assert_eq!(dr.service("BTSSvc$SendHost").map(|s| s.state), Some(ServiceState::Running));
        assert_eq!(dr.service("ENTSSO").map(|s| s.state), Some(ServiceState::Running), "its dependency");
        // Running: IsDisabled cannot change.
        let disable = render(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &[("name", &name), ("disabled", "$true")]);
        let out = ps(&mut lab, "DRBTS01", &disable);
        assert!(
            out.stderr_text().contains("must be stopped before IsDisabled can be changed"),
            "{}",
            out.stderr_text()
        );
        let stop = render(STOP_HOST_INSTANCE_TEMPLATE, &[("name", &name)]);
        assert_eq!(ps(&mut lab, "DRBTS01", &stop).code, 0);
        assert_eq!(ps(&mut lab, "DRBTS01", &disable).code, 0);
        let missing = render(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &[("name", "x"), ("disabled", "$true")]);
        assert_eq!(ps(&mut lab, "DRBTS01", &missing).stderr_text(), format!("{NO_PROPERTY}\n"));
    }

    #[test]
    fn a_disabled_service_fails_the_start() {
        let mut lab = with_dr_instance();
        let name = hi("SendHost", "DRBTS01");
        lab.group.host_instances.last_mut().expect("row").is_disabled = false;
        lab.servers
            .get_mut("DRBTS01")
            .and_then(|s| s.service_mut("BTSSvc$SendHost"))
            .expect("svc")
            .start_type = StartType::Disabled;
        let out = ps(&mut lab, "DRBTS01", &render(START_HOST_INSTANCE_TEMPLATE, &[("name", &name)]));
        assert_eq!(out.stderr_text(), format!("Exception calling \"Start\" : \"{SERVICE_DISABLED}\"\n"));
    }

    #[test]
    fn dead_production_fails_calls_on_its_rows_only() {
        let mut lab = with_dr_instance();
        lab.faults.push(Fault::DeadProductionWmi);
        let prod = hi("SendHost", "PRDBTS02");
        let out = ps(&mut lab, "DRBTS01", &render(STOP_HOST_INSTANCE_TEMPLATE, &[("name", &prod)]));
        assert_eq!(out.stderr_text(), format!("Exception calling \"Stop\" : \"{RPC_UNAVAILABLE}\"\n"));
        let rows = ps(&mut lab, "DRBTS01", super::super::HOST_INSTANCES_SCRIPT).stdout_text();
        assert!(rows.contains("\"RunningServer\":\"PRDBTS02\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":8}"), "{rows}");
        assert!(rows.contains("\"RunningServer\":\"DRBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":true,\"ServiceState\":1}"), "{rows}");
        let name = hi("SendHost", "DRBTS01");
        let enable = render(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &[("name", &name), ("disabled", "$false")]);
        assert_eq!(ps(&mut lab, "DRBTS01", &enable).code, 0, "DR rows are not touched by the fault");
    }

    #[test]
    fn the_secret_is_restored_through_com_with_the_password_on_stdin() {
        let mut lab = fresh_lab();
        let backup = lab.servers["PRDSSO01"].file(SECRET_BACKUP).expect("backup").to_vec();
        lab.servers.get_mut("PRDSSO01").expect("PRDSSO01").write_file(r"C:\Drover\copy.bak", backup);
        lab.group.activation.secret_holders.clear();
        let script = render(RESTORE_SECRET_TEMPLATE, &[("file", r"C:\Drover\copy.bak")]);
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script.as_str()];
        let out = exec_with_input(&mut lab, "PRDSSO01", &argv, b"wrong");
        assert_eq!(
            out.stderr_text(),
            "Exception calling \"RestoreSecret\" : \"The password of the backup file is not correct.\"\n"
        );
        assert!(!lab.holds_secret("PRDSSO01"));
        let out = exec_with_input(&mut lab, "PRDSSO01", &argv, SECRET_BACKUP_PASSWORD.as_bytes());
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        assert!(lab.holds_secret("PRDSSO01"));
        // The password quoted in the script is not the protocol.
        let quoted = script.replace(
            "$ss.RestoreSecret('C:\\Drover\\copy.bak', $password)",
            "$ss.RestoreSecret('C:\\Drover\\copy.bak', 'pw')",
        );
        assert_eq!(ps(&mut lab, "PRDSSO01", &quoted).code, 9009);
    }
}
