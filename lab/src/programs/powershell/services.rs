//! `Restart-Service` (`lab/PROTOCOL.md`, "Failover: WMI and the rule engine restarted"; docs/biztalk.md,
//! "Failover activation", F9): `$ErrorActionPreference = 'Stop'; Restart-Service -Name '<name>'
//! -Force`, and the same without `-Force`, on one of the server's services or on `winmgmt`.
//!
//! `winmgmt` (Windows Management Instrumentation) is not in the lab's list of services (the lab
//! lists only BizTalk's): restarting it drops what BizTalk's WMI provider read when it started
//! ([`crate::state::Server::wmi_mgmt_cache`], kept only under the `wmi-caches-group` fault). It
//! has dependent services on Windows Server, so without `-Force` it is refused, as
//! PowerShell refuses any service with dependents. A listed service is stopped when it runs,
//! then started (PowerShell starts a stopped service "without notifying you of an error"); a
//! disabled one stays stopped and the start fails. The lab's services have no dependents.

use std::sync::LazyLock;

use regex::Regex;

use super::super::sc::set_state;
use super::super::{Ctx, Output};
use super::template_regex;
use crate::state::{ServiceState, StartType};

/// Restarts a service and the services that depend on it, `{name}` a single-quoted string.
pub const RESTART_SERVICE_TEMPLATE: &str =
    "$ErrorActionPreference = 'Stop'; Restart-Service -Name '{name}' -Force";
/// The same without `-Force`: refused for a service with dependents.
pub const RESTART_SERVICE_NO_FORCE_TEMPLATE: &str =
    "$ErrorActionPreference = 'Stop'; Restart-Service -Name '{name}'";
/// The Windows Management Instrumentation service.
pub const WINMGMT: &str = "winmgmt";

static RESTART: LazyLock<Regex> = LazyLock::new(|| template_regex(RESTART_SERVICE_TEMPLATE, &["name"]));
static RESTART_NO_FORCE: LazyLock<Regex> =
    LazyLock::new(|| template_regex(RESTART_SERVICE_NO_FORCE_TEMPLATE, &["name"]));

/// Runs a `Restart-Service` script, or `None` when `script` is not one.
pub fn run(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    let (captures, force) = match RESTART.captures(script) {
        Some(c) => (c, true),
        None => (RESTART_NO_FORCE.captures(script)?, false),
    };
    let name = captures.name("name").map(|m| m.as_str().replace("''", "'")).unwrap_or_default();
    let result = if name.eq_ignore_ascii_case(WINMGMT) { winmgmt(ctx, force) } else { listed(ctx, &name) };
    Some(match result {
        Ok(()) => Output::ok(""),
        Err(message) => Output::stderr(1, format!("Restart-Service : {message}\n")),
    })
}

/// `Service '<display> (<name>)' cannot be <verb> due to the following error: <why>`.
fn cannot(display: &str, name: &str, verb: &str, why: &str) -> String {
    format!("Service '{display} ({name})' cannot be {verb} due to the following error: {why}")
}

fn winmgmt(ctx: &mut Ctx<'_>, force: bool) -> Result<(), String> {
    let display = "Windows Management Instrumentation";
    if !force {
        return Err(format!(
            "Cannot stop service '{display} ({WINMGMT})' because it has dependent services. It can only be stopped if the Force flag is set."
        ));
    }
    if ctx.lab.access_denied(&ctx.server, WINMGMT) {
        return Err(cannot(
            display,
            WINMGMT,
            "stopped",
            &format!("Cannot open {WINMGMT} service on computer '.'."),
        ));
    }
    ctx.this_mut().wmi_mgmt_cache = None;
    Ok(())
}

fn listed(ctx: &mut Ctx<'_>, name: &str) -> Result<(), String> {
    let Some(service) = ctx.this().service(name) else {
        return Err(format!("Cannot find any service with service name '{name}'."));
    };
    let (name, display) = (service.name.clone(), service.display_name.clone());
    let (running, disabled) =
        (service.state != ServiceState::Stopped, service.start_type == StartType::Disabled);
    if ctx.lab.access_denied(&ctx.server, &name) {
        return Err(cannot(
            &display,
            &name,
            "stopped",
            &format!("Cannot open {name} service on computer '.'."),
        ));
    }
    if running {
        if ctx.lab.service_stuck(&ctx.server, &name) {
            return Err(cannot(
                &display,
                &name,
                "stopped",
                &format!("Cannot stop {name} service on computer '.'."),
            ));
        }
        set_state(ctx, &name, ServiceState::Stopped);
    }
    let entsso_down = name.eq_ignore_ascii_case("ENTSSO") && ctx.lab.sso_stopped(&ctx.server);
    if disabled || entsso_down {
        return Err(cannot(
            &display,
            &name,
            "started",
            &format!("Cannot start service {name} on computer '.'."),
        ));
    }
    set_state(ctx, &name, ServiceState::Running);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::exec;
    use super::super::processing::{GROUP_SETTING_SCRIPT, render};
    use super::*;
    use crate::init::{ADMIN_KEY, fresh_lab};
    use crate::state::{Fault, Lab, RegValue};

    /// The plugins' side of the protocol: biztalk-common spells out the scripts they send.
    const PLUGIN_SERVICES: &str = include_str!("../../../../plugins/biztalk-common/src/restart.rs");

    fn ps(lab: &mut Lab, on: &str, script: &str) -> Output {
        exec(lab, on, &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    fn restart(name: &str) -> String {
        render(RESTART_SERVICE_TEMPLATE, &[("name", name)])
    }

    #[test]
    fn the_script_is_the_plugins_word_for_word() {
        assert!(
            PLUGIN_SERVICES.contains(&format!("\"{RESTART_SERVICE_TEMPLATE}\"")),
            "{RESTART_SERVICE_TEMPLATE}"
        );
    }

    /// Production's servers and DRBTS01 joined to the group's copy on DRSQL01 by UpdateRegistry.vbs:
    /// PRDBTS01's registry, as the DR servers have it after preparation, re-pointed at DRSQL01.
    fn repointed(lab: &mut Lab) {
        let dr = lab.servers.get_mut("PRDBTS01").expect("PRDBTS01");
        dr.set_reg_value(ADMIN_KEY, "MgmtDBServer", RegValue::Sz("DRSQL01".into()));
    }

    #[test]
    fn under_the_fault_wmi_reads_what_it_read_at_start_until_winmgmt_restarts() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::WmiCachesGroup);
        lab.servers.get_mut("PRDBTS01").expect("PRDBTS01").wmi_mgmt_cache = Some("PRDSQL01".into());
        repointed(&mut lab);
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        let out = ps(&mut lab, "PRDBTS01", GROUP_SETTING_SCRIPT);
        assert_eq!(
            out.stderr_text(),
            "Get-CimInstance : [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.\n"
        );
        let out =
            ps(&mut lab, "PRDBTS01", &render(RESTART_SERVICE_NO_FORCE_TEMPLATE, &[("name", "winmgmt")]));
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                "Restart-Service : Cannot stop service 'Windows Management Instrumentation (winmgmt)' because it has dependent services. It can only be stopped if the Force flag is set.\n".to_owned()
            )
        );
        assert!(lab.servers["PRDBTS01"].wmi_mgmt_cache.is_some(), "nothing restarted");
        let out = ps(&mut lab, "PRDBTS01", &restart("WinMgmt"));
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        assert_eq!(lab.servers["PRDBTS01"].wmi_mgmt_cache, None);
        // DRSQL01 holds no recovered copy here: WMI reads production's record through it.
        let out = ps(&mut lab, "PRDBTS01", GROUP_SETTING_SCRIPT);
        assert_eq!(out.code, 0, "{}", out.stderr_text());
    }

    #[test]
    fn without_the_fault_the_cache_is_neither_kept_nor_read() {
        let mut lab = fresh_lab();
        lab.servers.get_mut("PRDBTS01").expect("PRDBTS01").wmi_mgmt_cache = Some("NOSQL".into());
        assert_eq!(ps(&mut lab, "PRDBTS01", GROUP_SETTING_SCRIPT).code, 0);
    }

    #[test]
    fn a_listed_service_is_stopped_and_started_unless_disabled_stuck_or_denied() {
        let mut lab = fresh_lab();
        let rule_engine = restart("RuleEngineUpdateService");
        assert_eq!(ps(&mut lab, "DRBTS01", &rule_engine).code, 0);
        let state = |lab: &Lab| lab.servers["DRBTS01"].service("RuleEngineUpdateService").map(|s| s.state);
        assert_eq!(state(&lab), Some(ServiceState::Running));
        let display =
            lab.servers["DRBTS01"].service("RuleEngineUpdateService").expect("svc").display_name.clone();
        lab.servers
            .get_mut("DRBTS01")
            .and_then(|s| s.service_mut("RuleEngineUpdateService"))
            .expect("svc")
            .start_type = StartType::Disabled;
        let out = ps(&mut lab, "DRBTS01", &rule_engine);
        assert_eq!(
            out.stderr_text(),
            format!(
                "Restart-Service : Service '{display} (RuleEngineUpdateService)' cannot be started due to the following error: Cannot start service RuleEngineUpdateService on computer '.'.\n"
            )
        );
        assert_eq!(state(&lab), Some(ServiceState::Stopped), "stopped, then not started");
        lab.faults.push(Fault::AccessDenied { server: "DRBTS01".into(), service: "winmgmt".into() });
        let out = ps(&mut lab, "DRBTS01", &restart("winmgmt"));
        assert!(
            out.stderr_text().contains(
                "cannot be stopped due to the following error: Cannot open winmgmt service on computer '.'."
            ),
            "{}",
            out.stderr_text()
        );
        let out = ps(&mut lab, "DRBTS01", &restart("NoSuch"));
        assert_eq!(
            out.stderr_text(),
            "Restart-Service : Cannot find any service with service name 'NoSuch'.\n"
        );
    }
}
