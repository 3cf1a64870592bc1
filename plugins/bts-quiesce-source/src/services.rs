//! F1 step 5: the BizTalk services that are not host instances (`ENTSSO`, `RuleEngineUpdateService`)
//! stopped with `sc.exe` on each production server where they run, each recorded before its
//! stop. A service a server does not have (1060) is skipped; one that stopped in between (1062)
//! is fine; `STOP_PENDING` is accepted, as `disable-services` accepts it. Argument lists and
//! parsers are `biztalk_common::sc`'s.

use biztalk_common::sc::{self, ScFailure};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;

use crate::{ServiceRef, Session};

/// Durable-state key of the services this step stopped.
pub const STOPPED: &str = "stopped-services";

/// Stops `services` on `servers` where they run; returns those it stopped (check mode: would
/// stop).
pub fn stop(
    session: &mut Session,
    servers: &[String],
    services: &[String],
) -> Result<Vec<ServiceRef>, StepError> {
    let mut stopped = Vec::new();
    for server in servers.iter().filter(|s| !s.trim().is_empty()) {
        for service in services {
            let ran = session.exec(
                server,
                sc::PROGRAM,
                sc::query(service),
                format!("service {service} on {server}"),
            )?;
            match sc::failure(ran.output.exit_code, &ran.stdout()) {
                None => {}
                Some(ScFailure::NotInstalled) => continue,
                Some(other) => {
                    return Err(unrecognized::program(
                        &format!("sc.exe query {service}"),
                        server,
                        &other.to_string(),
                        &ran,
                    ));
                }
            }
            let status = sc::parse_query(&ran.stdout())
                .map_err(|e| unrecognized::program(&format!("sc.exe query {service}"), server, &e.0, &ran))?;
            if !status.iter().any(|s| s.state.needs_stop()) {
                continue;
            }
            let item = ServiceRef { server: server.clone(), service: service.clone() };
            stopped.push(item.clone());
            if !session.apply {
                continue;
            }
            session.record(STOPPED, item)?;
            let ran = session.exec(
                server,
                sc::PROGRAM,
                sc::stop(service),
                format!("stop {service} on {server}"),
            )?;
            match sc::failure(ran.output.exit_code, &ran.stdout()) {
                None | Some(ScFailure::NotStarted) => {}
                Some(ScFailure::CannotAcceptControl) => {
                    return Err(StepError::retryable(format!(
                        "{service} on {server} cannot accept control messages now (1061); try again once it settles"
                    )));
                }
                Some(other) => {
                    return Err(unrecognized::program(
                        &format!("sc.exe stop {service}"),
                        server,
                        &other.to_string(),
                        &ran,
                    ));
                }
            }
        }
    }
    Ok(stopped)
}
