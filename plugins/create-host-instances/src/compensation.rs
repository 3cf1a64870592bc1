//! `compensate`: removes the host instances this step instance created, and only those, the way
//! Microsoft's "Uninstalling and Un-Mapping a Host Instance Using WMI" does
//! (`MSBTS_HostInstance.Uninstall`, then `MSBTS_ServerHost.Unmap`; the script is
//! `biztalk_common::wmi::remove_host_instance`).
//!
//! What "created" means is recorded by `apply`: before it sends the creation script of an
//! instance, it adds the instance to the step instance's durable state ([`record`]), so an
//! attempt interrupted during the creation is undone too. Instances the step found present
//! (made by an earlier run, by hand, or installed again in repair mode) are never recorded, and
//! compensation reports them as kept. A recorded instance whose server is no DR server of the
//! input's mapping is ignored: compensation never removes an instance the input does not name.
//!
//! A DR instance is created disabled and stopped; one that is not stopped when compensation runs
//! was started on purpose since (an operator, a failover). Microsoft's sample stops a running
//! instance before uninstalling it, but undoing a preparation must not stop processing, so
//! compensation refuses, before removing anything, and asks an operator (stopping: try again).
//! Isolated hosts have no Windows service and are not checked. After the removals it reads
//! `MSBTS_HostInstance` again: every removed instance must be gone.

use biztalk_common::wmi::{self, ConfigurationState, HostInstance, HostType, RemoveFailure, ServiceState};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::plan::{Desired, Plan};
use crate::{Action, Input, InstanceReport, Output, Session};

/// Durable-state key of the instances this step instance created: a JSON list of [`Created`], in
/// the order of their creation.
const CREATED: &str = "created-host-instances";

/// An instance `apply` created (or was about to create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Created {
    /// The host.
    pub host: String,
    /// The server.
    pub server: String,
}

/// The instances recorded so far, in the order of their creation.
fn recorded(ctx: &Ctx) -> Result<Vec<Created>, StepError> {
    Ok(ctx.state_get_json(CREATED)?.unwrap_or_default())
}

/// Records that this step instance is about to create `desired` (once).
pub(crate) fn record(ctx: &Ctx, desired: &Desired) -> Result<(), StepError> {
    let mut created = recorded(ctx)?;
    if created
        .iter()
        .any(|c| c.host.eq_ignore_ascii_case(&desired.host) && c.server.eq_ignore_ascii_case(&desired.server))
    {
        return Ok(());
    }
    created.push(Created { host: desired.host.clone(), server: desired.server.clone() });
    Ok(ctx.state_set_json(CREATED, &created)?)
}

/// Whether the input names `created`: its server is a DR server of the mapping.
fn named_by(input: &Input, created: &Created) -> bool {
    input.mapping.iter().any(|m| m.dr.eq_ignore_ascii_case(&created.server))
}

/// Undoes `apply`: removes the recorded instances that exist, newest first, and verifies.
pub(crate) fn compensate(ctx: &Ctx, input: &Input) -> StepResult<Output> {
    let mut session = Session::new(ctx)?;
    let created: Vec<Created> = recorded(ctx)?.into_iter().filter(|c| named_by(input, c)).collect();
    let before = session.host_instances()?;
    let present: Vec<HostInstance> = created
        .iter()
        .rev()
        .filter_map(|c| before.iter().find(|r| r.is(&c.host, &c.server)).cloned())
        .collect();
    refuse_not_stopped(&present)?;
    for row in &present {
        session.remove(row)?;
    }
    let after = if present.is_empty() { before.clone() } else { session.host_instances()? };
    verify_removed(&present, &after)?;

    let plan = Plan::new(input, &before);
    let mut instances: Vec<InstanceReport> = created
        .iter()
        .map(|c| {
            let desired = plan
                .desired
                .iter()
                .find(|d| d.host.eq_ignore_ascii_case(&c.host) && d.server.eq_ignore_ascii_case(&c.server));
            let action = if present.iter().any(|r| r.is(&c.host, &c.server)) {
                Action::Removed
            } else {
                Action::AlreadyRemoved
            };
            InstanceReport {
                host: c.host.clone(),
                server: c.server.clone(),
                production_servers: desired.map(|d| d.production_servers.clone()).unwrap_or_default(),
                logon: desired.and_then(|d| d.logon.as_ref().ok().cloned()),
                host_type: desired.map_or(HostType::InProcess, |d| d.host_type),
                action,
                configuration_state: None,
                is_disabled: None,
                service_state: None,
            }
        })
        .collect();
    let kept: Vec<&Desired> = plan
        .desired
        .iter()
        .filter(|d| d.existing.is_some())
        .filter(|d| {
            !created
                .iter()
                .any(|c| c.host.eq_ignore_ascii_case(&d.host) && c.server.eq_ignore_ascii_case(&d.server))
        })
        .collect();
    instances.extend(kept.iter().map(|d| crate::report(d, Action::Kept, d.existing.as_ref())));

    let removed = present.len();
    let summary = summarize(&session.target, created.len(), removed, kept.len());
    let output = Output { instances, created: 0, repaired: 0, removed, warnings: Vec::new() };
    Ok(Outcome { changed: removed > 0, summary, output, evidence: session.evidence })
}

/// Refuses, before anything is removed, when a recorded instance of an in-process host is not
/// stopped: retryable while it is stopping, an operator's decision otherwise.
fn refuse_not_stopped(present: &[HostInstance]) -> Result<(), StepError> {
    // An isolated host's instance has no service and no state to wait for (8, Unknown).
    let active: Vec<&HostInstance> = present
        .iter()
        .filter(|r| r.host_type == HostType::InProcess && r.service_state != ServiceState::Stopped)
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = active.iter().map(|r| format!("{} ({})", r.name, r.service_state)).collect();
    if active.iter().all(|r| r.service_state == ServiceState::StopPending) {
        return Err(StepError::retryable(format!(
            "host instances this step created are stopping: {}; nothing was removed, try again once they are stopped",
            listed.join(", ")
        )));
    }
    Err(StepError::needs_operator(format!(
        "host instances this step created disabled and stopped are not stopped now: {}; \
         someone started them since (a failover?), and compensation does not stop processing; \
         nothing was removed: stop them (MSBTS_HostInstance.Stop) if they must go, then compensate again",
        listed.join(", ")
    )))
}

impl Session<'_, '_> {
    /// Uninstalls and unmaps `row`.
    fn remove(&mut self, row: &HostInstance) -> Result<(), StepError> {
        let script = wmi::remove_host_instance(&row.host_name, &row.running_server);
        let ran = self.powershell(&script, format!("remove {}", row.name))?;
        if ran.success() {
            return Ok(());
        }
        Err(match wmi::remove_failure(&ran.stderr()) {
            RemoveFailure::NotStopped => StepError::needs_operator(format!(
                "{} was started while compensation removed it; stop it if it must go, then compensate again",
                row.name
            )),
            RemoveFailure::HostMissing => StepError::permanent(format!(
                "host {} no longer exists in the group, so {} cannot be unmapped",
                row.host_name, row.name
            )),
            RemoveFailure::ServerNotInGroup => StepError::permanent(format!(
                "{} is no longer a member of the group, so {} cannot be unmapped",
                row.running_server, row.name
            )),
            RemoveFailure::NotJoined => {
                StepError::permanent(format!("{} is not joined to a BizTalk group", self.target))
            }
            RemoveFailure::Other(text) => StepError::permanent(format!(
                "removing {} on {} failed with exit code {:?}: {}",
                row.name,
                self.target,
                ran.output.exit_code,
                excerpt(&text, 5)
            )),
        })
    }
}

/// Checks that no removed instance is left in `rows`.
fn verify_removed(removed: &[HostInstance], rows: &[HostInstance]) -> Result<(), StepError> {
    for gone in removed {
        let Some(row) = rows.iter().find(|r| r.is(&gone.host_name, &gone.running_server)) else { continue };
        if row.configuration_state == ConfigurationState::UninstallFailed {
            return Err(StepError::needs_operator(format!(
                "{} is in state {} after its removal; repair it by hand",
                row.name, row.configuration_state
            )));
        }
        return Err(StepError::permanent(format!(
            "{} is still in MSBTS_HostInstance after its removal (state {}, service {})",
            row.name, row.configuration_state, row.service_state
        )));
    }
    Ok(())
}

/// A one-line summary of a compensation.
fn summarize(target: &str, created: usize, removed: usize, kept: usize) -> String {
    let mut summary = match (created, removed) {
        (0, _) => format!("this step created no host instance; nothing to remove (read through {target})"),
        (n, r) => {
            format!("removed {r} of the {n} host instances this step created (uninstalled and unmapped)")
        }
    };
    if removed < created {
        summary.push_str(&format!("; {} were gone already", created - removed));
    }
    if kept > 0 {
        summary.push_str(&format!("; kept {kept} it found present"));
    }
    summary
}

#[cfg(test)]
mod tests;
