//! The WMI script that removes a host instance (`lab/PROTOCOL.md`, "Removing a host instance"):
//! `MSBTS_HostInstance.Uninstall()` unless the instance is mapped but not installed, then
//! `MSBTS_ServerHost.Unmap()`, as Microsoft's "Uninstalling and Un-Mapping a Host Instance Using
//! WMI" does. It never stops an instance: a running one makes `Uninstall` fail.
//!
//! In the lab a row of `MSBTS_HostInstance` is a mapping: `Uninstall` leaves the row in
//! `ConfigurationState` 5 (Not installed) and removes the Windows service; `Unmap` removes the
//! row. Each uninstall is listed in the lab's `uninstalls`.

use std::sync::LazyLock;

use regex::Regex;

use super::super::hop::ANONYMOUS_LOGIN_FAILED;
use super::super::{Ctx, Output};
use super::template_regex;
use crate::state::{HostInstance, ServiceState};

/// The removal script, with `{name}`, `{server}` and `{host}` standing for single-quoted
/// PowerShell strings.
pub const REMOVE_HOST_INSTANCE_TEMPLATE: &str = r#"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq '{name}' }; if ($hi -and $hi.ConfigurationState -ne 5) { $hi.Uninstall() }; $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = '{server}'; $sh.HostName = '{host}'; $sh.Unmap()"#;

/// `ConfigurationState` of a mapped, not installed instance.
const NOT_INSTALLED: u8 = 5;

/// The removal template as a regex.
static REMOVE_HOST_INSTANCE: LazyLock<Regex> =
    LazyLock::new(|| template_regex(REMOVE_HOST_INSTANCE_TEMPLATE, &["name", "server", "host"]));

/// Renders the removal script (what a plugin sends), quoting as PowerShell does.
pub fn remove_host_instance_script(server: &str, host: &str) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    REMOVE_HOST_INSTANCE_TEMPLATE
        .replace("{name}", &quote(&HostInstance::name_for(host, server)))
        .replace("{server}", &quote(server))
        .replace("{host}", &quote(host))
}

/// Runs the removal script, or `None` when `script` is not it.
pub fn remove_host_instance(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    let captures = REMOVE_HOST_INSTANCE.captures(script)?;
    let value = |name: &str| captures.name(name).map(|m| m.as_str().replace("''", "'")).unwrap_or_default();
    let (name, server, host) = (value("name"), value("server"), value("host"));
    if !name.eq_ignore_ascii_case(&HostInstance::name_for(&host, &server)) {
        // The protocol fixes the name; another one is a script the lab does not know.
        return None;
    }
    let fail = |message: String| Some(Output::stderr(1, format!("{message}\n")));
    if !ctx.lab.is_configured(&ctx.server) {
        return fail(r#"Get-WmiObject : Invalid namespace "root\MicrosoftBizTalkServer""#.to_owned());
    }
    if ctx.second_hop().is_err() {
        return fail(format!("Get-WmiObject : {ANONYMOUS_LOGIN_FAILED}"));
    }
    if let Err(message) = uninstall(ctx, &name) {
        return fail(message);
    }
    match unmap(ctx, &host, &server) {
        Ok(()) => Some(Output::ok("")),
        Err(message) => fail(message),
    }
}

/// `$hi.Uninstall()` on the instance called `name`, if it exists and is installed (in any state
/// but 5): refused while its service runs (in-process hosts); else its service is removed from
/// its server and it stays mapped, not installed.
fn uninstall(ctx: &mut Ctx<'_>, name: &str) -> Result<(), String> {
    let group = &ctx.lab.group;
    let Some(at) = group.host_instances.iter().position(|i| i.name.eq_ignore_ascii_case(name)) else {
        return Ok(());
    };
    let instance = &group.host_instances[at];
    if instance.configuration_state == NOT_INSTALLED {
        return Ok(());
    }
    let in_process = group
        .hosts
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(&instance.host))
        .is_none_or(|h| h.host_type == 1);
    if in_process && instance.service_state != ServiceState::Stopped {
        return Err(format!(
            r#"Exception calling "Uninstall" : "The host instance '{}' must be stopped before it can be uninstalled.""#,
            instance.name
        ));
    }
    let (server, service) = (instance.server.clone(), HostInstance::service_name(&instance.host));
    let instance = &mut ctx.lab.group.host_instances[at];
    instance.configuration_state = NOT_INSTALLED;
    let name = instance.name.clone();
    if let Some(server) = ctx.lab.servers.get_mut(&server) {
        server.services.retain(|s| !s.name.eq_ignore_ascii_case(&service));
    }
    ctx.lab.uninstalls.push(name);
    Ok(())
}

/// `$sh.Unmap()` of `host` from `server`: the host must exist and the server be a member; an
/// instance still installed is refused; a mapping that does not exist is nothing to do.
fn unmap(ctx: &mut Ctx<'_>, host: &str, server: &str) -> Result<(), String> {
    let group = &mut ctx.lab.group;
    if !group.hosts.iter().any(|h| h.name.eq_ignore_ascii_case(host)) {
        return Err(format!(r#"Exception calling "Unmap" : "The host '{host}' does not exist.""#));
    }
    if !group.members.iter().any(|m| m.eq_ignore_ascii_case(server)) {
        return Err(format!(
            r#"Exception calling "Unmap" : "The server '{server}' is not a member of the group.""#
        ));
    }
    let mapped =
        |i: &HostInstance| i.host.eq_ignore_ascii_case(host) && i.server.eq_ignore_ascii_case(server);
    if let Some(installed) =
        group.host_instances.iter().find(|i| mapped(i) && i.configuration_state != NOT_INSTALLED)
    {
        return Err(format!(
            r#"Exception calling "Unmap" : "The host instance '{}' must be uninstalled before it can be unmapped.""#,
            installed.name
        ));
    }
    group.host_instances.retain(|i| !mapped(i));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{exec, exec_without_credentials};
    use super::super::{HOST_INSTANCES_SCRIPT, create_host_instance_script};
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::Lab;

    fn ps(lab: &mut Lab, server: &str, script: &str) -> Output {
        exec(lab, server, &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    fn remove(lab: &mut Lab, on: &str, host: &str, server: &str) -> Output {
        ps(lab, on, &remove_host_instance_script(server, host))
    }

    /// The fresh lab with DRBTS01 joined (by hand) and `SendHost` created on it by the script.
    fn with_dr_instance() -> Lab {
        let mut lab = fresh_lab();
        lab.group.members.push("DRBTS01".into());
        let script = create_host_instance_script("DRBTS01", "SendHost", r"CONTOSO\svc-bts", true);
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", &script];
        let out = super::super::super::testing::exec_with_input(&mut lab, "PRDBTS01", &argv, b"pw");
        assert_eq!(out.code, 0, "{}", out.stderr_text());
        lab
    }

    fn names(lab: &Lab) -> Vec<&str> {
        lab.group.host_instances.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn the_script_is_protocol_md_word_for_word() {
        assert_eq!(
            remove_host_instance_script("DRBTS01", "SendHost"),
            r#"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq 'Microsoft BizTalk Server SendHost DRBTS01' }; if ($hi -and $hi.ConfigurationState -ne 5) { $hi.Uninstall() }; $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'DRBTS01'; $sh.HostName = 'SendHost'; $sh.Unmap()"#
        );
    }

    #[test]
    fn removes_the_instance_and_its_service_and_nothing_else() {
        let mut lab = with_dr_instance();
        let before = lab.clone();
        let out = remove(&mut lab, "PRDBTS01", "SendHost", "DRBTS01");
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        assert!(lab.servers["DRBTS01"].service("BTSSvc$SendHost").is_none());
        assert_eq!(lab.uninstalls, ["Microsoft BizTalk Server SendHost DRBTS01"]);
        assert_eq!(names(&lab), names(&fresh_lab()), "the production instances stay");
        assert_eq!(lab.servers["PRDBTS01"], before.servers["PRDBTS01"], "their services too");
        assert!(lab.is_member("DRBTS01"), "the server stays in the group");
        let rows = ps(&mut lab, "PRDBTS01", HOST_INSTANCES_SCRIPT).stdout_text();
        assert!(!rows.contains("DRBTS01"), "{rows}");

        // Again: nothing is installed or mapped any more; nothing to do.
        let out = remove(&mut lab, "PRDBTS01", "SendHost", "DRBTS01");
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        assert_eq!(lab.uninstalls.len(), 1);
    }

    #[test]
    fn without_network_credentials_nothing_is_removed() {
        let mut lab = with_dr_instance();
        let before = lab.clone();
        let script = remove_host_instance_script("DRBTS01", "SendHost");
        let argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", &script];
        let out = exec_without_credentials(&mut lab, "PRDBTS01", &argv, b"");
        assert_eq!(
            (out.code, out.stderr_text()),
            (1, "Get-WmiObject : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n".to_owned())
        );
        assert_eq!(lab, before);
    }

    #[test]
    fn a_mapped_instance_that_is_not_installed_is_only_unmapped() {
        let mut lab = with_dr_instance();
        lab.group.host_instances.last_mut().expect("row").configuration_state = NOT_INSTALLED;
        let out = remove(&mut lab, "PRDBTS01", "sendhost", "drbts01");
        assert_eq!(out.code, 0, "{}", out.stderr_text());
        assert!(lab.uninstalls.is_empty());
        assert_eq!(names(&lab), names(&fresh_lab()));
    }

    #[test]
    fn a_running_instance_is_not_uninstalled() {
        let mut lab = with_dr_instance();
        lab.group.host_instances.last_mut().expect("row").service_state = ServiceState::Running;
        let before = lab.clone();
        let out = remove(&mut lab, "PRDBTS01", "SendHost", "DRBTS01");
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stderr_text(),
            "Exception calling \"Uninstall\" : \"The host instance 'Microsoft BizTalk Server SendHost DRBTS01' must be stopped before it can be uninstalled.\"\n"
        );
        assert_eq!(lab, before, "nothing changed");

        // An isolated host has no service to stop.
        lab.group.hosts.iter_mut().find(|h| h.name == "SendHost").expect("host").host_type = 2;
        assert_eq!(remove(&mut lab, "PRDBTS01", "SendHost", "DRBTS01").code, 0);
    }

    #[test]
    fn errors_of_the_unmap() {
        let mut lab = with_dr_instance();
        let out = remove(&mut lab, "PRDBTS01", "NoHost", "DRBTS01");
        assert_eq!(
            out.stderr_text(),
            "Exception calling \"Unmap\" : \"The host 'NoHost' does not exist.\"\n"
        );
        let out = remove(&mut lab, "PRDBTS01", "SendHost", "DRBTS02");
        assert_eq!(
            out.stderr_text(),
            "Exception calling \"Unmap\" : \"The server 'DRBTS02' is not a member of the group.\"\n"
        );
        assert_eq!(out.code, 1);
        assert!(lab.uninstalls.is_empty());
    }

    #[test]
    fn only_on_a_joined_server_and_only_this_script() {
        let mut lab = with_dr_instance();
        let out = remove(&mut lab, "DRBTS02", "SendHost", "DRBTS01");
        assert_eq!(
            (out.code, out.stderr_text()),
            (1, "Get-WmiObject : Invalid namespace \"root\\MicrosoftBizTalkServer\"\n".to_string())
        );
        let renamed = remove_host_instance_script("DRBTS01", "SendHost")
            .replace("Server SendHost DRBTS01", "Server SendHost DRBTS02");
        assert_eq!(ps(&mut lab, "PRDBTS01", &renamed).code, 9009);
        let forced = remove_host_instance_script("DRBTS01", "SendHost").replace("Unmap()", "ForceUnmap()");
        assert_eq!(ps(&mut lab, "PRDBTS01", &forced).code, 9009);
        assert_eq!(lab.group.host_instances.len(), 6);
    }
}
