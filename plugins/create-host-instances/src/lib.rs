//! `create-host-instances`: gives every production host instance a counterpart on its mapped DR
//! server, installed and disabled and never started [§3 S5, seed B5]: same host, DR server in
//! place of the production one. Warns (never fails) when a DR server would carry more instances
//! than its production counterpart (seed B7: "avoid overloading the servers in the disaster
//! recovery site") and when a production server has no DR mapping.
//!
//! Runs on any server joined to the group (the step's target): it reads `MSBTS_HostInstance`,
//! creates what is missing with the creation script of `lab/PROTOCOL.md` (the password goes as
//! a secret reference, filled in by the host) and reads again to verify. An existing instance in
//! a failed configuration state stops the step for an operator: repairing it means uninstalling
//! and unmapping, which this plugin does not do. Scripts and rows come from
//! `biztalk_common::wmi`.

mod plan;

use biztalk_common::powershell;
use biztalk_common::wmi::{self, ConfigurationState, CreateFailure, HostInstance, ServiceState};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::plan::{Desired, Plan};

/// The secret holding the host instances' password, unless the input names another (which the
/// workflow must then grant).
pub const DEFAULT_PASSWORD_SECRET: &str = "bts-host-password";

/// The plugin.
#[derive(Default)]
pub struct CreateHostInstances;

/// Input: the server mapping, optionally the production instances, and the logon.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Production server -> DR server. A production server may map to several DR servers and
    /// several production servers to one DR server.
    pub mapping: Vec<ServerPair>,
    /// The production host instances. When absent, every instance of the group on a server
    /// that is not a DR server of the mapping.
    #[serde(default)]
    pub production_instances: Option<Vec<InstanceRef>>,
    /// The account the new instances run as.
    pub logon: Logon,
    /// Every DR runtime server, when known (`{{ inventory.groups['dr-runtime'] }}`): a DR site
    /// with a different number of servers than production is allowed, and each DR server no
    /// production server maps to is named in a warning.
    #[serde(default)]
    pub dr_servers: Option<Vec<String>>,
}

/// One production -> DR server pair.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPair {
    /// The production server, e.g. `PRDBTS01`.
    pub production: String,
    /// Its DR counterpart, e.g. `DRBTS01`.
    pub dr: String,
}

/// A host instance: a host on a server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRef {
    /// The host, e.g. `SendHost`.
    pub host: String,
    /// The server, e.g. `PRDBTS01`.
    pub server: String,
}

/// The logon of the new host instances.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logon {
    /// `DOMAIN\user`.
    pub account: String,
    /// The secret holding its password (default `bts-host-password`); the plugin never sees the
    /// value. It must not contain a single quote (the creation script quotes only the
    /// reference).
    #[serde(default = "default_password_secret")]
    pub password_secret: String,
}

fn default_password_secret() -> String {
    DEFAULT_PASSWORD_SECRET.into()
}

/// Output: the DR instances wanted, and what the operator should read.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// Every DR instance the mapping calls for.
    pub instances: Vec<InstanceReport>,
    /// How many this call created (in check mode: would create).
    pub created: usize,
    /// Capacity cautions and unmapped production servers.
    pub warnings: Vec<String>,
}

/// One DR host instance.
#[derive(Serialize, JsonSchema)]
pub struct InstanceReport {
    /// The host.
    pub host: String,
    /// The DR server.
    pub server: String,
    /// The production servers whose instance of the host it stands in for.
    pub production_servers: Vec<String>,
    /// What this call did about it.
    pub action: Action,
    /// As last read (absent for an instance check mode would create).
    #[schemars(with = "Option<ConfigurationStateName>")]
    pub configuration_state: Option<ConfigurationState>,
    /// As last read.
    pub is_disabled: Option<bool>,
    /// As last read.
    #[schemars(with = "Option<ServiceStateName>")]
    pub service_state: Option<ServiceState>,
}

/// What a call did about one DR instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// It was there already.
    Present,
    /// This call created it.
    Created,
    /// Check mode: apply would create it.
    WouldCreate,
}

/// Schema of `MSBTS_HostInstance.ConfigurationState`.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[allow(dead_code)]
enum ConfigurationStateName {
    Installed,
    InstallFailed,
    UninstallFailed,
    UpdateFailed,
    NotInstalled,
}

/// Schema of `MSBTS_HostInstance.ServiceState`.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[allow(dead_code)]
enum ServiceStateName {
    Stopped,
    StartPending,
    StopPending,
    Running,
    ContinuePending,
    PausePending,
    Paused,
    Unknown,
}

/// One call's target and the evidence gathered so far.
struct Session<'c, 'h> {
    ctx: &'c Ctx<'h>,
    target: String,
    evidence: Vec<Evidence>,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>) -> Result<Self, StepError> {
        Ok(Session { ctx, target: ctx.target()?.to_string(), evidence: Vec::new() })
    }

    /// Runs a PowerShell script on the target and records it as evidence.
    fn powershell(&mut self, script: &str, label: String) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(&self.target, powershell::PROGRAM).args(powershell::args(script)).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// Every host instance of the group.
    fn host_instances(&mut self) -> Result<Vec<HostInstance>, StepError> {
        let ran = self.powershell(wmi::HOST_INSTANCES, "host instances of the group".into())?;
        if !ran.success() {
            return Err(self.query_failure(&ran));
        }
        wmi::parse_host_instances(&ran.stdout()).map_err(|e| StepError::permanent(e.to_string()))
    }

    fn query_failure(&self, ran: &Executed) -> StepError {
        if wmi::not_joined(&ran.stderr()) {
            return StepError::permanent(format!(
                "{} is not joined to a BizTalk group (no BizTalk WMI namespace); run this step on a joined server",
                self.target
            ));
        }
        StepError::permanent(format!(
            "reading MSBTS_HostInstance on {} failed with exit code {:?}: {}",
            self.target,
            ran.output.exit_code,
            excerpt(&ran.stderr(), 5)
        ))
    }

    /// Creates one instance, installed and disabled. "Already exists" is not an error: a
    /// previous attempt may have created it, and verification has the last word.
    fn create(&mut self, desired: &Desired, logon: &Logon) -> Result<(), StepError> {
        let password = secret_ref(&logon.password_secret);
        let script = wmi::create_host_instance(&desired.host, &desired.server, &logon.account, &password);
        let name = wmi::host_instance_name(&desired.host, &desired.server);
        let ran = self.powershell(&script, format!("create {name}"))?;
        if ran.success() {
            return Ok(());
        }
        let stderr = ran.stderr();
        Err(match wmi::create_failure(&stderr) {
            CreateFailure::AlreadyExists => return Ok(()),
            CreateFailure::HostMissing => StepError::permanent(format!(
                "host {} does not exist in the group; create the host before its DR instances",
                desired.host
            )),
            CreateFailure::ServerNotInGroup => StepError::permanent(format!(
                "{} is not a member of the group; join it (join-group) before creating {name}",
                desired.server
            )),
            CreateFailure::EmptyPassword => {
                StepError::permanent(format!("the password secret {} is empty", logon.password_secret))
            }
            CreateFailure::NotJoined => {
                StepError::permanent(format!("{} is not joined to a BizTalk group", self.target))
            }
            CreateFailure::Other(text) => StepError::permanent(format!(
                "creating {name} on {} failed with exit code {:?}: {}",
                self.target,
                ran.output.exit_code,
                excerpt(&text, 5)
            )),
        })
    }
}

/// Refuses the call when an instance the mapping wants exists but is not installed: a failed
/// install, uninstall or update (2, 3, 4) or not installed at all (5). Creating it again would
/// fail; repairing it (uninstall, unmap, create) is an operator's decision.
fn refuse_broken(plan: &Plan) -> Result<(), StepError> {
    let broken: Vec<String> = plan
        .desired
        .iter()
        .filter_map(|d| d.existing.as_ref())
        .filter(|row| row.configuration_state != ConfigurationState::Installed)
        .map(|row| format!("{} ({})", row.name, row.configuration_state))
        .collect();
    if broken.is_empty() {
        return Ok(());
    }
    Err(StepError::needs_operator(format!(
        "host instances in a failed configuration state: {}; uninstall and unmap them (or fix them), then run this step again",
        broken.join(", ")
    )))
}

/// Checks every created instance is installed, disabled and stopped in `rows`.
fn verify(created: &[&Desired], rows: &[HostInstance]) -> Result<(), StepError> {
    for desired in created {
        let name = wmi::host_instance_name(&desired.host, &desired.server);
        let Some(row) = rows.iter().find(|r| r.is(&desired.host, &desired.server)) else {
            return Err(StepError::permanent(format!(
                "{name} is not in MSBTS_HostInstance after its creation"
            )));
        };
        if row.configuration_state.is_failed() {
            return Err(StepError::needs_operator(format!(
                "{name} is in state {} after its creation; uninstall and unmap it, then run this step again",
                row.configuration_state
            )));
        }
        if !row.is_standby() {
            return Err(StepError::permanent(format!(
                "{name} is not installed, disabled and stopped after its creation (state {}, disabled {}, service {})",
                row.configuration_state, row.is_disabled, row.service_state
            )));
        }
    }
    Ok(())
}

/// The report of one desired instance, with the row it was last seen as.
fn report(desired: &Desired, action: Action, row: Option<&HostInstance>) -> InstanceReport {
    InstanceReport {
        host: desired.host.clone(),
        server: desired.server.clone(),
        production_servers: desired.production_servers.clone(),
        action,
        configuration_state: row.map(|r| r.configuration_state),
        is_disabled: row.map(|r| r.is_disabled),
        service_state: row.map(|r| r.service_state),
    }
}

/// A one-line summary, warnings included.
fn summarize(plan: &Plan, created: usize, check: bool) -> String {
    let verb = if check { "would create" } else { "created" };
    let mut summary = format!(
        "{verb} {created} of {} DR host instances (installed, disabled, not started)",
        plan.desired.len()
    );
    if !plan.warnings.is_empty() {
        summary.push_str(&format!("; {} warning(s): {}", plan.warnings.len(), plan.warnings.join("; ")));
    }
    summary
}

fn validate(input: &Input) -> Result<(), StepError> {
    if input.logon.account.trim().is_empty() {
        return Err(StepError::permanent("logon.account is empty"));
    }
    Ok(())
}

impl Plugin for CreateHostInstances {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "creates the DR counterparts of the production host instances, disabled and not started",
            )
            .program(powershell::PROGRAM)
            .secret(DEFAULT_PASSWORD_SECRET)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let plan = Plan::new(&input, &session.host_instances()?);
        refuse_broken(&plan)?;
        let instances: Vec<InstanceReport> = plan
            .desired
            .iter()
            .map(|d| match &d.existing {
                Some(row) => report(d, Action::Present, Some(row)),
                None => report(d, Action::WouldCreate, None),
            })
            .collect();
        let created = instances.iter().filter(|i| i.action == Action::WouldCreate).count();
        let summary = summarize(&plan, created, true);
        let output = Output { instances, created, warnings: plan.warnings };
        Ok(Outcome { changed: created > 0, summary, output, evidence: session.evidence })
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let plan = Plan::new(&input, &session.host_instances()?);
        refuse_broken(&plan)?;
        for warning in &plan.warnings {
            ctx.warn(warning);
        }
        let missing: Vec<&Desired> = plan.desired.iter().filter(|d| d.existing.is_none()).collect();
        for desired in &missing {
            session.create(desired, &input.logon)?;
        }
        let rows = if missing.is_empty() { Vec::new() } else { session.host_instances()? };
        verify(&missing, &rows)?;
        let instances = plan
            .desired
            .iter()
            .map(|d| match &d.existing {
                Some(row) => report(d, Action::Present, Some(row)),
                None => report(d, Action::Created, rows.iter().find(|r| r.is(&d.host, &d.server))),
            })
            .collect();
        let summary = summarize(&plan, missing.len(), false);
        let output = Output { instances, created: missing.len(), warnings: plan.warnings };
        Ok(Outcome { changed: !missing.is_empty(), summary, output, evidence: session.evidence })
    }
}

drover_sdk::export_plugin!(CreateHostInstances);

#[cfg(test)]
mod tests;
