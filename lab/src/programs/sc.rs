//! `sc.exe` (`lab/PROTOCOL.md`, "Services"): `query <name>`, `query state= all`, `qc <name>`,
//! `config <name> start= <mode>`, `stop <name>` and `start <name>` on the server's services,
//! printed as the real tool does (everything on stdout, the Windows error as exit code).
//!
//! A disabled service does not start (1058); the `service-stuck` fault keeps a service from
//! stopping (1061); the `access-denied` fault refuses `config`, `start` and `stop` of a service
//! (5). Starting or stopping `BTSSvc$<host>` also moves the `ServiceState` of the
//! host instance of `<host>` on this server. `config` changes the start type only, as Windows
//! does: it neither stops a service nor touches `MSBTS_HostInstance.IsDisabled`.

use super::{Ctx, Output};
use crate::state::{HostInstance, Service, ServiceState, StartType};

const NO_SUCH_SERVICE: &str =
    "FAILED 1060:\n\nThe specified service does not exist as an installed service.\n";

/// `sc.exe <args…>`.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["query", "state=", "all"] => Some(query_all(ctx)),
        ["query", name] => Some(query(ctx, name)),
        ["qc", name] => Some(qc(ctx, name)),
        ["config", name, "start=", mode] => StartType::from_sc_mode(mode).map(|t| config(ctx, name, t)),
        ["stop", name] => Some(stop(ctx, name)),
        ["start", name] => Some(start(ctx, name)),
        _ => None,
    }
}

/// The `query`-style block of a service in `state`, with its leading empty line.
pub fn status_block(name: &str, state: ServiceState) -> String {
    let mut out = format!(
        concat!(
            "\n",
            "SERVICE_NAME: {name}\n",
            "        TYPE               : 10  WIN32_OWN_PROCESS\n",
            "        STATE              : {code}  {state}\n",
        ),
        name = name,
        code = state.code(),
        state = state.sc_name()
    );
    if state != ServiceState::Stopped {
        out.push_str("                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)\n");
    }
    out.push_str(concat!(
        "        WIN32_EXIT_CODE    : 0  (0x0)\n",
        "        SERVICE_EXIT_CODE  : 0  (0x0)\n",
        "        CHECKPOINT         : 0x0\n",
        "        WAIT_HINT          : 0x0\n",
    ));
    out
}

fn query(ctx: &Ctx<'_>, name: &str) -> Output {
    match ctx.this().service(name) {
        Some(service) => Output::ok(status_block(&service.name, shown_state(ctx, service))),
        None => Output::stdout(1060, format!("[SC] EnumQueryServicesStatus:OpenService {NO_SUCH_SERVICE}")),
    }
}

fn query_all(ctx: &Ctx<'_>) -> Output {
    let mut services: Vec<&Service> = ctx.this().services.iter().collect();
    services.sort_by_key(|s| s.name.to_lowercase());
    Output::ok(services.iter().map(|s| status_block(&s.name, shown_state(ctx, s))).collect::<String>())
}

/// The service's state, or stopped for ENTSSO while the `sso-stopped` fault holds this server.
fn shown_state(ctx: &Ctx<'_>, service: &Service) -> ServiceState {
    if service.name.eq_ignore_ascii_case("ENTSSO") && ctx.lab.sso_stopped(&ctx.server) {
        ServiceState::Stopped
    } else {
        service.state
    }
}

fn no_such_service() -> Output {
    Output::stdout(1060, format!("[SC] OpenService {NO_SUCH_SERVICE}"))
}

/// What `config`, `start` and `stop` print when the `access-denied` fault holds the service:
/// opening it for the change is refused.
fn access_denied() -> Output {
    Output::stdout(5, "[SC] OpenService FAILED 5:\n\nAccess is denied.\n")
}

/// Whether the `access-denied` fault holds `name` on this server.
fn denied(ctx: &Ctx<'_>, name: &str) -> bool {
    ctx.lab.access_denied(&ctx.server, name)
}

fn start_type_text(start_type: StartType) -> &'static str {
    match start_type {
        StartType::Auto => "2   AUTO_START",
        StartType::DelayedAuto => "2   AUTO_START  (DELAYED)",
        StartType::Demand => "3   DEMAND_START",
        StartType::Disabled => "4   DISABLED",
    }
}

fn qc(ctx: &Ctx<'_>, name: &str) -> Output {
    let Some(s) = ctx.this().service(name) else { return no_such_service() };
    let dependencies = match s.dependencies.as_slice() {
        [] => String::new(),
        [first, rest @ ..] => {
            let mut text = format!(" {first}");
            for dependency in rest {
                text.push_str(&format!("\n                           : {dependency}"));
            }
            text
        }
    };
    Output::ok(format!(
        concat!(
            "[SC] QueryServiceConfig SUCCESS\n",
            "\n",
            "SERVICE_NAME: {name}\n",
            "        TYPE               : 10  WIN32_OWN_PROCESS\n",
            "        START_TYPE         : {start_type}\n",
            "        ERROR_CONTROL      : 1   NORMAL\n",
            "        BINARY_PATH_NAME   : {path}\n",
            "        LOAD_ORDER_GROUP   :\n",
            "        TAG                : 0\n",
            "        DISPLAY_NAME       : {display_name}\n",
            "        DEPENDENCIES       :{dependencies}\n",
            "        SERVICE_START_NAME : {account}\n",
        ),
        name = s.name,
        start_type = start_type_text(s.start_type),
        path = s.binary_path,
        display_name = s.display_name,
        dependencies = dependencies,
        account = s.account
    ))
}

fn config(ctx: &mut Ctx<'_>, name: &str, start_type: StartType) -> Output {
    if ctx.this().service(name).is_some() && denied(ctx, name) {
        return access_denied();
    }
    let Some(service) = ctx.this_mut().service_mut(name) else { return no_such_service() };
    service.start_type = start_type;
    Output::ok("[SC] ChangeServiceConfig SUCCESS\n")
}

fn stop(ctx: &mut Ctx<'_>, name: &str) -> Output {
    let Some(service) = ctx.this().service(name) else { return no_such_service() };
    if denied(ctx, name) {
        return access_denied();
    }
    if service.state == ServiceState::Stopped {
        return Output::stdout(
            1062,
            "[SC] ControlService FAILED 1062:\n\nThe service has not been started.\n",
        );
    }
    if ctx.lab.service_stuck(&ctx.server, &service.name) {
        return Output::stdout(
            1061,
            "[SC] ControlService FAILED 1061:\n\nThe service cannot accept control messages at this time.\n",
        );
    }
    let name = service.name.clone();
    set_state(ctx, &name, ServiceState::Stopped);
    Output::ok(status_block(&name, ServiceState::StopPending))
}

fn start(ctx: &mut Ctx<'_>, name: &str) -> Output {
    let Some(service) = ctx.this().service(name) else { return no_such_service() };
    if denied(ctx, name) {
        return access_denied();
    }
    if service.start_type == StartType::Disabled {
        return Output::stdout(
            1058,
            concat!(
                "[SC] StartService FAILED 1058:\n\nThe service cannot be started, either because it is disabled ",
                "or because it has no enabled devices associated with it.\n",
            ),
        );
    }
    if service.state == ServiceState::Running {
        return Output::stdout(
            1056,
            "[SC] StartService FAILED 1056:\n\nAn instance of the service is already running.\n",
        );
    }
    let name = service.name.clone();
    set_state(ctx, &name, ServiceState::Running);
    Output::ok(status_block(&name, ServiceState::StartPending))
}

/// Sets a service's state, and the `ServiceState` of the host instance it runs in every copy of
/// the group's record.
pub fn set_state(ctx: &mut Ctx<'_>, name: &str, state: ServiceState) {
    if let Some(service) = ctx.this_mut().service_mut(name) {
        service.state = state;
    }
    let server = ctx.server.clone();
    for instance in ctx.lab.groups_mut().flat_map(|g| g.host_instances.iter_mut()) {
        if instance.server.eq_ignore_ascii_case(&server)
            && HostInstance::service_name(&instance.host).eq_ignore_ascii_case(name)
        {
            instance.service_state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use crate::init::fresh_lab;
    use crate::state::{Fault, ServiceState};

    const RUNNING_BLOCK: &str = concat!(
        "\n",
        "SERVICE_NAME: RuleEngineUpdateService\n",
        "        TYPE               : 10  WIN32_OWN_PROCESS\n",
        "        STATE              : 4  RUNNING\n",
        "                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)\n",
        "        WIN32_EXIT_CODE    : 0  (0x0)\n",
        "        SERVICE_EXIT_CODE  : 0  (0x0)\n",
        "        CHECKPOINT         : 0x0\n",
        "        WAIT_HINT          : 0x0\n",
    );
    const STOPPED_ENTSSO: &str = concat!(
        "\n",
        "SERVICE_NAME: ENTSSO\n",
        "        TYPE               : 10  WIN32_OWN_PROCESS\n",
        "        STATE              : 1  STOPPED\n",
        "        WIN32_EXIT_CODE    : 0  (0x0)\n",
        "        SERVICE_EXIT_CODE  : 0  (0x0)\n",
        "        CHECKPOINT         : 0x0\n",
        "        WAIT_HINT          : 0x0\n",
    );

    #[test]
    fn query_running_stopped_and_unknown() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "query", "RuleEngineUpdateService"]);
        assert_eq!((out.code, out.stdout_text()), (0, RUNNING_BLOCK.to_owned()));
        let out = exec(&mut lab, "DRBTS01", &["SC.EXE", "query", "entsso"]);
        assert_eq!(out.stdout_text(), STOPPED_ENTSSO);
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "query", "BTSSvc$SendHost"]);
        assert_eq!(out.code, 1060);
        assert_eq!(
            out.stdout_text(),
            "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n"
        );
    }

    #[test]
    fn query_all_lists_every_service() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "query", "state=", "all"]);
        assert_eq!(out.stdout_text(), format!("{STOPPED_ENTSSO}{RUNNING_BLOCK}"));
    }

    #[test]
    fn qc_prints_the_configuration() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "PRDBTS01", &["sc.exe", "qc", "BTSSvc$SendHost"]);
        assert_eq!(
            out.stdout_text(),
            concat!(
                "[SC] QueryServiceConfig SUCCESS\n",
                "\n",
                "SERVICE_NAME: BTSSvc$SendHost\n",
                "        TYPE               : 10  WIN32_OWN_PROCESS\n",
                "        START_TYPE         : 2   AUTO_START\n",
                "        ERROR_CONTROL      : 1   NORMAL\n",
                "        BINARY_PATH_NAME   : \"C:\\Program Files (x86)\\Microsoft BizTalk Server\\BTSNTSvc64.exe\" -group \"BizTalk Group\" -name \"SendHost\"\n",
                "        LOAD_ORDER_GROUP   :\n",
                "        TAG                : 0\n",
                "        DISPLAY_NAME       : BizTalk Service BizTalk Group : SendHost\n",
                "        DEPENDENCIES       : ENTSSO\n",
                "        SERVICE_START_NAME : CONTOSO\\svc-bts\n",
            )
        );
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "qc", "ENTSSO"]);
        assert!(out.stdout_text().contains("START_TYPE         : 3   DEMAND_START\n"));
        assert!(out.stdout_text().contains("DEPENDENCIES       :\n"));
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "qc", "nope"]);
        assert_eq!(out.code, 1060);
        assert!(out.stdout_text().starts_with("[SC] OpenService FAILED 1060:\n\n"));
    }

    #[test]
    fn config_then_start_a_disabled_service() {
        let mut lab = fresh_lab();
        for (mode, text) in [
            ("delayed-auto", "2   AUTO_START  (DELAYED)"),
            ("demand", "3   DEMAND_START"),
            ("auto", "2   AUTO_START"),
            ("disabled", "4   DISABLED"),
        ] {
            let out = exec(&mut lab, "DRBTS01", &["sc.exe", "config", "ENTSSO", "start=", mode]);
            assert_eq!((out.code, out.stdout_text()), (0, "[SC] ChangeServiceConfig SUCCESS\n".to_owned()));
            let qc = exec(&mut lab, "DRBTS01", &["sc.exe", "qc", "ENTSSO"]).stdout_text();
            assert!(qc.contains(&format!("START_TYPE         : {text}\n")), "{qc}");
        }
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "start", "ENTSSO"]);
        assert_eq!(out.code, 1058);
        assert_eq!(
            out.stdout_text(),
            "[SC] StartService FAILED 1058:\n\nThe service cannot be started, either because it is disabled or because it has no enabled devices associated with it.\n"
        );
        assert_eq!(exec(&mut lab, "DRBTS01", &["sc.exe", "config", "ENTSSO", "start=", "boot"]).code, 9009);
    }

    #[test]
    fn start_and_stop() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "start", "ENTSSO"]);
        assert_eq!(out.code, 0);
        assert!(
            out.stdout_text().contains(
                "STATE              : 2  START_PENDING\n                                (STOPPABLE"
            )
        );
        assert_eq!(lab.servers["DRBTS01"].service("ENTSSO").map(|s| s.state), Some(ServiceState::Running));
        assert_eq!(exec(&mut lab, "DRBTS01", &["sc.exe", "start", "ENTSSO"]).code, 1056);
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "stop", "ENTSSO"]);
        assert_eq!(out.code, 0);
        assert!(out.stdout_text().contains("STATE              : 3  STOP_PENDING\n"));
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "stop", "ENTSSO"]);
        assert_eq!(out.code, 1062);
        assert_eq!(
            out.stdout_text(),
            "[SC] ControlService FAILED 1062:\n\nThe service has not been started.\n"
        );
    }

    #[test]
    fn an_access_denied_service_cannot_be_changed_but_can_be_read() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::AccessDenied {
            server: "DRBTS01".into(),
            service: "ruleengineupdateservice".into(),
        });
        let denied = "[SC] OpenService FAILED 5:\n\nAccess is denied.\n";
        for argv in [
            &["sc.exe", "config", "RuleEngineUpdateService", "start=", "disabled"][..],
            &["sc.exe", "stop", "RuleEngineUpdateService"],
            &["sc.exe", "start", "RuleEngineUpdateService"],
        ] {
            let out = exec(&mut lab, "DRBTS01", argv);
            assert_eq!((out.code, out.stdout_text()), (5, denied.to_string()), "{argv:?}");
        }
        let service = lab.servers["DRBTS01"].service("RuleEngineUpdateService").expect("service");
        assert_eq!(
            (service.start_type, service.state),
            (crate::state::StartType::Auto, ServiceState::Running),
            "nothing changed"
        );
        assert_eq!(exec(&mut lab, "DRBTS01", &["sc.exe", "qc", "RuleEngineUpdateService"]).code, 0);
        assert_eq!(exec(&mut lab, "DRBTS01", &["sc.exe", "query", "RuleEngineUpdateService"]).code, 0);
        assert_eq!(exec(&mut lab, "DRBTS01", &["sc.exe", "config", "NoSuch", "start=", "auto"]).code, 1060);
        let other = ["sc.exe", "config", "RuleEngineUpdateService", "start=", "disabled"];
        assert_eq!(exec(&mut lab, "DRBTS02", &other).code, 0, "only on the server named");
    }

    #[test]
    fn a_stuck_service_does_not_stop() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::ServiceStuck {
            server: "DRBTS01".into(),
            service: "RuleEngineUpdateService".into(),
        });
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "stop", "RuleEngineUpdateService"]);
        assert_eq!(out.code, 1061);
        assert_eq!(
            out.stdout_text(),
            "[SC] ControlService FAILED 1061:\n\nThe service cannot accept control messages at this time.\n"
        );
        assert_eq!(exec(&mut lab, "DRBTS02", &["sc.exe", "stop", "RuleEngineUpdateService"]).code, 0);
    }

    #[test]
    fn stopping_a_host_service_stops_its_instance() {
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "PRDBTS02", &["sc.exe", "stop", "BTSSvc$SendHost"]).code, 0);
        let state = |lab: &crate::state::Lab, server: &str| {
            lab.group
                .host_instances
                .iter()
                .find(|i| i.host == "SendHost" && i.server == server)
                .map(|i| i.service_state)
        };
        assert_eq!(state(&lab, "PRDBTS02"), Some(ServiceState::Stopped));
        assert_eq!(state(&lab, "PRDBTS01"), Some(ServiceState::Running));
    }
}
