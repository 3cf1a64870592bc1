//! `create-host-instances`: gives every production host instance a counterpart on its mapped DR
//! server, installed and disabled and never started [docs/biztalk.md, "DR site preparation"; seed B5]: same host, DR server in
//! place of the production one. Warns (never fails) when a DR server would carry more instances
//! than its production counterpart (seed B7: "avoid overloading the servers in the disaster
//! recovery site") and when a production server has no DR mapping.
//!
//! Runs on any server joined to the group (the step's target): it reads `MSBTS_HostInstance`,
//! creates what is missing with the creation script of `lab/PROTOCOL.md` and reads again to
//! verify.
//!
//! **Logons.** Each DR instance runs under the account the production instances of its host run
//! under (`MSBTS_HostInstance.Logon`): `Install` wants an account of the host's Windows group,
//! and hosts commonly run under different accounts (an isolated host's group is not an
//! in-process host's). The password is a secret named per host: the one `password_secrets` maps
//! the host to, else `bts-host-<host in lower case>` (`bts-host-sendhost`); the workflow grants
//! each. It goes in the creation script's standard input as a secret reference, filled in by the
//! host, never on its command line. A host whose production instances run under several
//! accounts stops the step: one secret cannot hold two passwords.
//!
//! **Isolated hosts** have no Windows service (their receive locations run in IIS) and WMI
//! cannot tell their state (8, Unknown): an isolated DR instance is verified installed and
//! disabled, and repair mode never looks for its service.
//!
//! An existing instance in
//! a failed configuration state stops the step for an operator: repairing it means uninstalling
//! and unmapping, which `apply` does not do. Scripts and rows come from
//! `biztalk_common::wmi`.
//!
//! **Repair mode** (`repair = true`, seed A, docs/biztalk.md, "Host instances of a replaced server"): a runtime server was rebuilt and joined the
//! group again; BizTalkMgmtDb still holds its host instances, but their Windows services do not
//! exist on the new computer. The production instances are then those of the mapping's
//! production servers, so a server mapped to itself (`{production = "PRDBTS02", dr =
//! "PRDBTS02"}`) carries exactly its own rows. For every such row, installed, of an in-process
//! host (`MSBTS_HostSetting`), the plugin asks the server `sc.exe query BTSSvc$<host>`; a service
//! that does not exist (1060) is installed again with the creation script, keeping the row's
//! `IsDisabled` (the lab's `Install` re-creates the service of an installed row whose service is
//! missing). Instances whose service exists are left alone, so a second run changes nothing.
//! The re-created services are stopped: starting them is the operator's decision (R6, "desired
//! stopped"). Instances the mapping wants that have no row are created with the `IsDisabled` of
//! the production instance they stand in for.
//!
//! **Compensation** (`compensation`) uninstalls and unmaps the instances this step instance
//! created, and only those: `apply` records each one in the step's durable state before it
//! creates it. Instances it found present, or installed again in repair mode, are kept. It
//! refuses to remove an instance that is not stopped.

mod compensation;
mod plan;

use biztalk_common::powershell;
use biztalk_common::sc::{self, ScFailure};
use biztalk_common::unrecognized;
use std::collections::BTreeMap;

use biztalk_common::wmi::{self, ConfigurationState, CreateFailure, HostInstance, HostType, ServiceState};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::plan::{Desired, Plan};

/// The prefix of a host's password secret when `password_secrets` does not name one:
/// `bts-host-<host in lower case>`.
pub const PASSWORD_SECRET_PREFIX: &str = "bts-host-";

/// The plugin.
#[derive(Default)]
pub struct CreateHostInstances;

/// Input: the server mapping, optionally the production instances, and the password secrets.
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
    /// Host -> the secret holding the password of the account its instances run as (the account
    /// is the production instances'). A host not listed uses `bts-host-<host in lower case>`.
    /// Several hosts under one account may share a secret. The workflow grants each secret.
    #[serde(default)]
    pub password_secrets: BTreeMap<String, String>,
    /// Every DR runtime server, when known (`{{ inventory.groups['dr-runtime'] }}`): a DR site
    /// with a different number of servers than production is allowed, and each DR server no
    /// production server maps to is named in a warning.
    #[serde(default)]
    pub dr_servers: Option<Vec<String>>,
    /// Repair mode for a rebuilt server (docs/biztalk.md, "Host instances of a replaced server"): the production instances are those of the
    /// mapping's production servers (a server mapped to itself carries its own rows), installed
    /// instances whose Windows service is missing on their server are installed again with their
    /// `IsDisabled`, and no instance is expected to be disabled and stopped.
    #[serde(default)]
    pub repair: bool,
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

impl Input {
    /// The secret holding the password of `host`'s account: as `password_secrets` maps it (host
    /// names compared case-insensitively), else `bts-host-<host in lower case>`.
    pub fn password_secret(&self, host: &str) -> String {
        self.password_secrets
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map_or_else(|| format!("{PASSWORD_SECRET_PREFIX}{}", host.to_lowercase()), |(_, s)| s.clone())
    }
}

/// Whether `name` can name a secret (letters, digits, `-`, `_`, `.`), as a workflow's grants
/// require.
fn is_secret_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Output: the DR instances wanted, and what the operator should read.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// Every DR instance the mapping calls for.
    pub instances: Vec<InstanceReport>,
    /// How many this call created (in check mode: would create).
    pub created: usize,
    /// How many this call installed again because their Windows service was missing (repair
    /// mode; in check mode: would install again).
    pub repaired: usize,
    /// How many this call removed (compensation only).
    pub removed: usize,
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
    /// The account it runs as (the production instances'), when known.
    pub logon: Option<String>,
    /// In-process or isolated (no Windows service).
    #[schemars(with = "HostTypeName")]
    pub host_type: HostType,
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
    /// Repair mode: its row existed but its Windows service did not; this call installed it again.
    Repaired,
    /// Check mode: apply would install it again.
    WouldRepair,
    /// Compensation: this step created it; compensation uninstalled and unmapped it.
    Removed,
    /// Compensation: this step created it, and it was gone when compensation ran.
    AlreadyRemoved,
    /// Compensation: this step found it present (did not create it), so compensation keeps it.
    Kept,
}

/// Schema of `MSBTS_HostInstance.ConfigurationState`.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[expect(dead_code, reason = "a schema only: its variants are never constructed")]
enum ConfigurationStateName {
    Installed,
    InstallFailed,
    UninstallFailed,
    UpdateFailed,
    NotInstalled,
}

/// Schema of `MSBTS_HostInstance.HostType`.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[expect(dead_code, reason = "a schema only: its variants are never constructed")]
enum HostTypeName {
    InProcess,
    Isolated,
}

/// Schema of `MSBTS_HostInstance.ServiceState`.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[expect(dead_code, reason = "a schema only: its variants are never constructed")]
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
        self.powershell_with_stdin(script, None, label)
    }

    /// Runs a PowerShell script on the target with `stdin`, and records it as evidence.
    fn powershell_with_stdin(
        &mut self,
        script: &str,
        stdin: Option<Vec<u8>>,
        label: String,
    ) -> Result<Executed, StepError> {
        let mut exec = self.ctx.exec(&self.target, powershell::PROGRAM).args(powershell::args(script));
        if let Some(stdin) = stdin {
            exec = exec.stdin(stdin);
        }
        let ran = exec.run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// Every host instance of the group.
    fn host_instances(&mut self) -> Result<Vec<HostInstance>, StepError> {
        let ran = self.powershell(wmi::HOST_INSTANCES, "host instances of the group".into())?;
        if !ran.success() {
            return Err(self.query_failure(&ran));
        }
        wmi::parse_host_instances(&ran.stdout()).map_err(|e| {
            unrecognized::program("reading MSBTS_HostInstance", &self.target, &e.to_string(), &ran)
        })
    }

    fn query_failure(&self, ran: &Executed) -> StepError {
        if wmi::not_joined(&ran.stderr()) {
            return StepError::permanent(format!(
                "{} is not joined to a BizTalk group (no BizTalk WMI namespace); run this step on a joined server",
                self.target
            ));
        }
        unrecognized::program(
            "reading MSBTS_HostInstance",
            &self.target,
            "it failed with an error Drover does not know",
            ran,
        )
    }

    /// Whether the Windows service of the instance of `host` exists on `server`
    /// (`sc.exe query BTSSvc$<host>`: 1060 means it does not).
    fn service_exists(&mut self, host: &str, server: &str) -> Result<bool, StepError> {
        let service = format!("BTSSvc${host}");
        let ran = self.ctx.exec(server, sc::PROGRAM).args(sc::query(&service)).run()?;
        self.evidence.push(ran.evidence(format!("service {service} on {server}")));
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => Ok(true),
            Some(ScFailure::NotInstalled) => Ok(false),
            Some(failure @ ScFailure::Unrecognised { .. }) => Err(unrecognized::program(
                &format!("sc.exe query {service}"),
                server,
                &failure.to_string(),
                &ran,
            )),
            Some(other) => {
                Err(StepError::permanent(format!("querying service {service} on {server} failed: {other}")))
            }
        }
    }

    /// The desired instances (by index) whose row is installed but whose Windows service is
    /// missing on their server: what repair mode installs again. Isolated hosts have no service.
    fn missing_services(&mut self, plan: &Plan) -> Result<Vec<usize>, StepError> {
        let installed: Vec<usize> = plan
            .desired
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.existing.as_ref().is_some_and(|r| r.configuration_state == ConfigurationState::Installed)
            })
            .map(|(i, _)| i)
            .collect();
        let mut missing = Vec::new();
        for i in installed {
            let desired = &plan.desired[i];
            let isolated = desired.host_type == HostType::Isolated;
            if !isolated && !self.service_exists(&desired.host, &desired.server)? {
                missing.push(i);
            }
        }
        Ok(missing)
    }

    /// Creates one instance, installed and disabled (or, in repair mode, with `disabled` as
    /// given; also what installs again an instance whose service is missing). "Already exists"
    /// is not an error: a previous attempt may have created it, and verification has the last
    /// word.
    fn create(&mut self, desired: &Desired, input: &Input, disabled: bool) -> Result<(), StepError> {
        let name = wmi::host_instance_name(&desired.host, &desired.server);
        let account =
            desired.logon.as_ref().map_err(|why| StepError::needs_operator(format!("{name}: {why}")))?;
        let secret = input.password_secret(&desired.host);
        let script = wmi::install_host_instance(&desired.host, &desired.server, account, disabled);
        let password = wmi::password_stdin(&secret);
        let verb = if desired.existing.is_some() { "install again" } else { "create" };
        let ran = self.powershell_with_stdin(&script, Some(password), format!("{verb} {name}"))?;
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
            CreateFailure::EmptyPassword => StepError::permanent(format!(
                "the password secret {secret} of host {} ({account}) is empty",
                desired.host
            )),
            CreateFailure::NotJoined => {
                StepError::permanent(format!("{} is not joined to a BizTalk group", self.target))
            }
            CreateFailure::Other(text) => StepError::needs_operator(format!(
                "creating {name} as {account} (the logon of the production instances of {}, password from secret {secret}) on {} failed with exit code {:?}; Install needs an account of the host's Windows group and its password: {}",
                desired.host,
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

/// The `IsDisabled` an instance gets: disabled for a DR counterpart; in repair mode, what its
/// row has, or for a new one what the production instance it stands in for has (disabled when
/// unknown).
fn disabled_for(desired: &Desired, rows: &[HostInstance], repair: bool) -> bool {
    if !repair {
        return true;
    }
    if let Some(row) = &desired.existing {
        return row.is_disabled;
    }
    rows.iter()
        .find(|r| desired.production_servers.iter().any(|p| r.is(&desired.host, p)))
        .is_none_or(|r| r.is_disabled)
}

/// Checks every instance this call installed in repair mode is installed, with the `IsDisabled`
/// it was given and its Windows service present.
fn verify_repaired(
    session: &mut Session<'_, '_>,
    installed: &[(&Desired, bool)],
    rows: &[HostInstance],
) -> Result<(), StepError> {
    for (desired, disabled) in installed {
        let name = wmi::host_instance_name(&desired.host, &desired.server);
        let Some(row) = rows.iter().find(|r| r.is(&desired.host, &desired.server)) else {
            return Err(StepError::permanent(format!(
                "{name} is not in MSBTS_HostInstance after its installation"
            )));
        };
        if row.configuration_state.is_failed() {
            return Err(StepError::needs_operator(format!(
                "{name} is in state {} after its installation; uninstall and unmap it, then run this step again",
                row.configuration_state
            )));
        }
        if row.configuration_state != ConfigurationState::Installed || row.is_disabled != *disabled {
            return Err(StepError::permanent(format!(
                "{name} is not installed with IsDisabled {disabled} after its installation (state {}, disabled {})",
                row.configuration_state, row.is_disabled
            )));
        }
        if desired.host_type == HostType::InProcess
            && !session.service_exists(&desired.host, &desired.server)?
        {
            return Err(StepError::permanent(format!(
                "the service BTSSvc${} still does not exist on {} after installing {name}",
                desired.host, desired.server
            )));
        }
    }
    Ok(())
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
        logon: desired
            .logon
            .as_ref()
            .ok()
            .cloned()
            .or_else(|| row.and_then(|r| r.account().map(str::to_string))),
        host_type: desired.host_type,
        action,
        configuration_state: row.map(|r| r.configuration_state),
        is_disabled: row.map(|r| r.is_disabled),
        service_state: row.map(|r| r.service_state),
    }
}

/// A one-line summary, warnings included.
fn summarize(plan: &Plan, created: usize, repaired: Option<usize>, check: bool) -> String {
    let mut summary = match repaired {
        None => {
            let verb = if check { "would create" } else { "created" };
            format!(
                "{verb} {created} of {} DR host instances (installed, disabled, not started)",
                plan.desired.len()
            )
        }
        Some(repaired) => {
            let (again, create) =
                if check { ("would install", "would create") } else { ("installed", "created") };
            format!(
                "{again} {repaired} of {} host instances again (Windows service missing) and {create} {created}; the services are stopped",
                plan.desired.len()
            )
        }
    };
    if !plan.warnings.is_empty() {
        summary.push_str(&format!("; {} warning(s): {}", plan.warnings.len(), plan.warnings.join("; ")));
    }
    summary
}

/// Refuses secret names a workflow could not grant: a `password_secrets` value, or a host name
/// that makes none by the convention (it must then be mapped).
fn validate(input: &Input) -> Result<(), StepError> {
    for (host, secret) in &input.password_secrets {
        if !is_secret_name(secret) {
            return Err(StepError::permanent(format!(
                "password_secrets: {secret:?} (host {host}) is not a secret name (letters, digits, - _ .)"
            )));
        }
    }
    Ok(())
}

/// Refuses, before anything runs, to create or install again an instance whose host has no one
/// production logon to copy.
fn refuse_unknown_logons<'d>(instances: impl IntoIterator<Item = &'d Desired>) -> Result<(), StepError> {
    let problems: Vec<String> =
        instances.into_iter().filter_map(|d| d.logon.as_ref().err()).cloned().collect::<Vec<_>>();
    let mut distinct: Vec<String> = Vec::new();
    for problem in problems {
        if !distinct.contains(&problem) {
            distinct.push(problem);
        }
    }
    if distinct.is_empty() {
        return Ok(());
    }
    Err(StepError::needs_operator(distinct.join("; ")))
}

/// Refuses a plan that would create or install again an instance whose password secret cannot
/// be named, before anything runs.
fn check_secrets(plan: &Plan, input: &Input) -> Result<(), StepError> {
    for desired in &plan.desired {
        let secret = input.password_secret(&desired.host);
        if !is_secret_name(&secret) {
            return Err(StepError::permanent(format!(
                "host {} makes no secret name by the convention ({secret:?}): map it in password_secrets",
                desired.host
            )));
        }
    }
    Ok(())
}

impl Plugin for CreateHostInstances {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "creates the DR counterparts of the production host instances, disabled and not started; repairs a rebuilt server's instances; compensation removes the ones it created",
            )
            .program(powershell::PROGRAM)
            .program(sc::PROGRAM)
            .compensable()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let plan = Plan::new(&input, &session.host_instances()?);
        refuse_broken(&plan)?;
        check_secrets(&plan, &input)?;
        let broken = if input.repair { session.missing_services(&plan)? } else { Vec::new() };
        refuse_unknown_logons(
            plan.desired
                .iter()
                .enumerate()
                .filter(|(i, d)| d.existing.is_none() || broken.contains(i))
                .map(|(_, d)| d),
        )?;
        let instances: Vec<InstanceReport> = plan
            .desired
            .iter()
            .enumerate()
            .map(|(i, d)| match &d.existing {
                Some(row) if broken.contains(&i) => report(d, Action::WouldRepair, Some(row)),
                Some(row) => report(d, Action::Present, Some(row)),
                None => report(d, Action::WouldCreate, None),
            })
            .collect();
        let created = instances.iter().filter(|i| i.action == Action::WouldCreate).count();
        let repaired = broken.len();
        let summary = summarize(&plan, created, input.repair.then_some(repaired), true);
        let output = Output { instances, created, repaired, removed: 0, warnings: plan.warnings };
        Ok(Outcome { changed: created + repaired > 0, summary, output, evidence: session.evidence })
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let before = session.host_instances()?;
        let plan = Plan::new(&input, &before);
        refuse_broken(&plan)?;
        check_secrets(&plan, &input)?;
        for warning in &plan.warnings {
            ctx.warn(warning);
        }
        let broken = if input.repair { session.missing_services(&plan)? } else { Vec::new() };
        let missing: Vec<&Desired> = plan.desired.iter().filter(|d| d.existing.is_none()).collect();
        refuse_unknown_logons(missing.iter().copied().chain(broken.iter().map(|&i| &plan.desired[i])))?;
        for desired in &missing {
            compensation::record(ctx, desired)?;
            session.create(desired, &input, disabled_for(desired, &before, input.repair))?;
        }
        let repairs: Vec<(&Desired, bool)> =
            broken.iter().map(|&i| &plan.desired[i]).map(|d| (d, disabled_for(d, &before, true))).collect();
        for (desired, disabled) in &repairs {
            ctx.info(format!(
                "the Windows service of {} is missing on {}: installing it again",
                wmi::host_instance_name(&desired.host, &desired.server),
                desired.server
            ));
            session.create(desired, &input, *disabled)?;
        }
        let rows =
            if missing.is_empty() && repairs.is_empty() { Vec::new() } else { session.host_instances()? };
        if input.repair {
            let created: Vec<(&Desired, bool)> =
                missing.iter().map(|d| (*d, disabled_for(d, &before, true))).collect();
            verify_repaired(&mut session, &created, &rows)?;
            verify_repaired(&mut session, &repairs, &rows)?;
        } else {
            verify(&missing, &rows)?;
        }
        let instances = plan
            .desired
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let now = rows.iter().find(|r| r.is(&d.host, &d.server));
                match &d.existing {
                    Some(_) if broken.contains(&i) => report(d, Action::Repaired, now),
                    Some(row) => report(d, Action::Present, Some(row)),
                    None => report(d, Action::Created, now),
                }
            })
            .collect();
        let changed = !missing.is_empty() || !repairs.is_empty();
        let summary = summarize(&plan, missing.len(), input.repair.then_some(repairs.len()), false);
        let output = Output {
            instances,
            created: missing.len(),
            repaired: repairs.len(),
            removed: 0,
            warnings: plan.warnings,
        };
        Ok(Outcome { changed, summary, output, evidence: session.evidence })
    }

    fn compensate(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        compensation::compensate(ctx, &input)
    }
}

drover_sdk::export_plugin!(CreateHostInstances);

#[cfg(test)]
mod tests;
