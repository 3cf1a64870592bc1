//! F1 steps 1 and 2 through BizTalk's WMI provider on the step's target: every enabled receive
//! location disabled, every running host instance of the production servers stopped, each
//! recorded in the durable state before its call. Scripts and parsers are
//! `biztalk_common::processing` and `biztalk_common::wmi`; this module decides what to run.

use biztalk_common::processing::{self as scripts, ReceiveLocation};
use biztalk_common::wmi::{self, HostInstance, HostType, ServiceState};
use biztalk_common::{powershell, unrecognized};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;

use crate::Session;

/// Durable-state key of the receive locations this step disabled.
pub const LOCATIONS: &str = "disabled-receive-locations";
/// Durable-state key of the host instances this step stopped.
pub const INSTANCES: &str = "stopped-host-instances";

fn powershell(session: &mut Session, script: &str, label: String) -> Result<Executed, StepError> {
    let target = session.target.clone();
    session.exec(&target, powershell::PROGRAM, powershell::args(script), label)
}

fn query_failure(session: &Session, what: &str, ran: &Executed) -> StepError {
    if wmi::not_joined(&ran.stderr()) {
        return StepError::permanent(format!(
            "{} is not joined to a BizTalk group (no BizTalk WMI namespace); run this step on a production runtime server",
            session.target
        ));
    }
    unrecognized::program(what, &session.target, "it failed with an error Drover does not know", ran)
}

fn locations(session: &mut Session) -> Result<Vec<ReceiveLocation>, StepError> {
    let what = "reading MSBTS_ReceiveLocation";
    let ran = powershell(session, scripts::RECEIVE_LOCATIONS, "receive locations of the group".into())?;
    if !ran.success() {
        return Err(query_failure(session, what, &ran));
    }
    scripts::parse_receive_locations(&ran.stdout())
        .map_err(|e| unrecognized::program(what, &session.target, &e.to_string(), &ran))
}

fn host_instances(session: &mut Session, servers: &[String]) -> Result<Vec<HostInstance>, StepError> {
    let what = "reading MSBTS_HostInstance";
    let ran = powershell(session, wmi::HOST_INSTANCES, "host instances of the group".into())?;
    if !ran.success() {
        return Err(query_failure(session, what, &ran));
    }
    let rows = wmi::parse_host_instances(&ran.stdout())
        .map_err(|e| unrecognized::program(what, &session.target, &e.to_string(), &ran))?;
    Ok(rows
        .into_iter()
        .filter(|r| servers.iter().any(|s| s.eq_ignore_ascii_case(&r.running_server)))
        .filter(|r| r.host_type != HostType::Isolated)
        .collect())
}

/// A WMI call's failure as a step error.
fn call_failure(session: &Session, call: &str, ran: &Executed) -> StepError {
    let stderr = ran.stderr();
    if scripts::server_unavailable(&stderr) {
        return StepError::permanent(format!(
            "{call} failed: its server does not answer ({}); production is not fully alive, bring it back or quiesce that server by hand",
            excerpt(&stderr, 2).trim()
        ));
    }
    if scripts::not_found(&stderr) {
        return StepError::retryable(format!(
            "{call} found nothing to call: the group changed while the step ran ({})",
            excerpt(&stderr, 2).trim()
        ));
    }
    unrecognized::program(call, &session.target, "it failed with an error Drover does not know", ran)
}

/// Step 1: disables every enabled receive location; returns those it disabled (check mode:
/// would disable).
pub fn disable_receive_locations(session: &mut Session) -> Result<Vec<String>, StepError> {
    let pending: Vec<String> =
        locations(session)?.into_iter().filter(|l| !l.is_disabled).map(|l| l.name).collect();
    if pending.is_empty() || !session.apply {
        return Ok(pending);
    }
    for name in &pending {
        session.record(LOCATIONS, name.clone())?;
        let ran =
            powershell(session, &scripts::disable_receive_location(name), format!("Disable() of {name}"))?;
        if !ran.success() {
            return Err(call_failure(session, &format!("MSBTS_ReceiveLocation.Disable() of {name}"), &ran));
        }
    }
    let still: Vec<String> = locations(session)?
        .into_iter()
        .filter(|l| !l.is_disabled && pending.contains(&l.name))
        .map(|l| l.name)
        .collect();
    if !still.is_empty() {
        return Err(StepError::permanent(format!(
            "{} answered success but the receive locations {} are still enabled",
            session.target,
            still.join(", ")
        )));
    }
    Ok(pending)
}

/// Whether an instance is doing (or about to do) work.
fn active(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::Running
            | ServiceState::StartPending
            | ServiceState::ContinuePending
            | ServiceState::Paused
    )
}

/// Step 2: stops every running in-process host instance on `servers`; returns those it stopped
/// (check mode: would stop).
pub fn stop_host_instances(session: &mut Session, servers: &[String]) -> Result<Vec<String>, StepError> {
    let rows = host_instances(session, servers)?;
    if let Some(gone) = rows.iter().find(|r| r.service_state == ServiceState::Unknown) {
        return Err(StepError::permanent(format!(
            "{} reports ServiceState unknown (8): {} does not answer WMI; production is not fully alive, stop its host instances by hand or leave the server out of servers",
            gone.name, gone.running_server
        )));
    }
    let pending: Vec<&HostInstance> = rows.iter().filter(|r| active(r.service_state)).collect();
    let names: Vec<String> = pending.iter().map(|r| r.name.clone()).collect();
    if pending.is_empty() || !session.apply {
        return Ok(names);
    }
    for row in &pending {
        session.record(INSTANCES, row.name.clone())?;
        let script = scripts::stop_host_instance(&row.host_name, &row.running_server);
        let ran = powershell(session, &script, format!("Stop() of {}", row.name))?;
        if !ran.success() {
            return Err(call_failure(session, &format!("MSBTS_HostInstance.Stop() of {}", row.name), &ran));
        }
    }
    let after = host_instances(session, servers)?;
    let pending_stop: Vec<String> = after
        .iter()
        .filter(|r| r.service_state == ServiceState::StopPending)
        .map(|r| r.name.clone())
        .collect();
    if !pending_stop.is_empty() {
        return Err(StepError::retryable(format!(
            "host instances still stopping: {}; try again once they settle",
            pending_stop.join(", ")
        )));
    }
    let running: Vec<String> = after
        .iter()
        .filter(|r| active(r.service_state))
        .map(|r| format!("{} ({})", r.name, r.service_state))
        .collect();
    if !running.is_empty() {
        return Err(StepError::permanent(format!(
            "Stop() answered success but these host instances still run: {}",
            running.join(", ")
        )));
    }
    Ok(names)
}
