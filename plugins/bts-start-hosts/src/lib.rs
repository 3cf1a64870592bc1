//! `bts-start-hosts`: starts processing at DR (docs/biztalk.md, "Failover activation", F11;
//! `lab/PROTOCOL.md`, "Failover: database references, SSO and processing"), through BizTalk's WMI
//! provider on the step's target (a DR runtime server whose registry names the DR management
//! database, F7). Scripts and parsers: `biztalk_common::processing` and `biztalk_common::wmi`.
//!
//! Only the host instances whose `RunningServer` is one of the input's `servers` (the DR servers)
//! are touched: production's rows are still in the group but their servers are gone after the
//! disaster (every call on them fails with the RPC error after the provider's wait). For each:
//!
//! 1. Its Windows service `BTSSvc$<host>` on its server (`sc.exe qc`): DR preparation
//!    (`disable-services`) left it **disabled**, which makes `Start()` fail with Win32 1058, so it
//!    is set to start automatically (`sc.exe config BTSSvc$<host> start= auto`) — what the
//!    service is at a production server. Not recorded: the step is idempotent, not reversible.
//! 2. `IsDisabled` set to false with `Put()` while the instance is stopped (create-host-instances
//!    created it disabled).
//! 3. `Start()`, then the instances are read again: every in-process DR instance must be
//!    enabled with `ServiceState` 4 (running).
//!
//! An isolated host's instance has no Windows service and cannot be started (its work runs in
//! IIS): only its `IsDisabled` is cleared. Running and enabled: no change (the whole step then
//! reports no change). A DR instance that is not installed, or whose server does not answer
//! (`ServiceState` 8), is permanent and named; an instance running while disabled, or a refusal
//! Drover does not know, needs an operator with the raw text.
//!
//! Input: `servers` (the DR BizTalk servers, required), `hosts` (optional: only these hosts).
//! Workflows reference it as `bts-start-hosts@^1`. Run it after `bts-receive-locations`
//! `action = "disable"` (F10) and before `action = "enable"` (F12).
//!
//! **Effect class: idempotent.** `check` only reads (`MSBTS_HostInstance`, `sc.exe qc`). Grants
//! a workflow needs: programs `powershell.exe` and `sc.exe`, the DR servers as targets
//! (`uses_targets`: `sc.exe` runs on each instance's server); read-only patterns for `drover
//! plan`: `powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*` and `sc.exe qc *`.

use biztalk_common::sc::{self, StartMode};
use biztalk_common::wmi::{self, ConfigurationState, HostInstance, HostType, ServiceState};
use biztalk_common::{powershell, processing, unrecognized};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The plugin.
#[derive(Default)]
pub struct BtsStartHosts;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The DR BizTalk servers whose host instances to start.
    pub servers: Vec<String>,
    /// Only these hosts (default: every host with an instance on `servers`).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What was done to one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already enabled (and running, for an in-process host).
    Unchanged,
    /// Enabled and started (check mode: would be).
    Started,
    /// An isolated host's instance: enabled (check mode: would be).
    Enabled,
}

/// One DR host instance.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InstanceReport {
    /// The host.
    pub host: String,
    /// The server.
    pub server: String,
    /// Isolated hosts have no service.
    pub isolated: bool,
    /// What the call did.
    pub action: Action,
    /// Whether its service's start mode was set to auto (check mode: would be).
    pub service_enabled: bool,
    /// `ServiceState` after the call (check mode: as found).
    pub service_state: String,
    /// `IsDisabled` after the call (check mode: as found).
    pub is_disabled: bool,
}

/// What the call found and did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    /// The DR host instances.
    pub instances: Vec<InstanceReport>,
    /// How many were started or enabled.
    pub started: usize,
}

impl Plugin for BtsStartHosts {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "enables and starts the BizTalk host instances of the DR servers (services back to automatic, IsDisabled false, Start, verified running)",
            )
            .program(powershell::PROGRAM)
            .program(sc::PROGRAM)
            .uses_targets()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx)?.run(&input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx)?.run(&input, true)
    }
}

drover_sdk::export_plugin!(BtsStartHosts);

/// One instance's pending work.
struct Work {
    row: HostInstance,
    service_disabled: bool,
}

impl Work {
    fn isolated(&self) -> bool {
        self.row.host_type == HostType::Isolated
    }

    fn pending(&self) -> bool {
        self.row.is_disabled || (!self.isolated() && self.row.service_state != ServiceState::Running)
    }
}

struct Session<'c, 'h> {
    ctx: &'c Ctx<'h>,
    target: String,
    evidence: Vec<Evidence>,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>) -> Result<Self, StepError> {
        Ok(Session { ctx, target: ctx.target()?.to_string(), evidence: Vec::new() })
    }

    fn powershell(&mut self, script: &str, label: String) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(&self.target, powershell::PROGRAM).args(powershell::args(script)).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    fn host_instances(&mut self) -> Result<Vec<HostInstance>, StepError> {
        let what = "reading MSBTS_HostInstance";
        let ran = self.powershell(wmi::HOST_INSTANCES, "host instances of the group".into())?;
        if !ran.success() {
            if wmi::not_joined(&ran.stderr()) {
                return Err(StepError::permanent(format!(
                    "{} is not joined to a BizTalk group (no BizTalk WMI namespace); run this step on a DR runtime server after UpdateRegistry.vbs",
                    self.target
                )));
            }
            return Err(unrecognized::program(
                what,
                &self.target,
                "it failed with an error Drover does not know",
                &ran,
            ));
        }
        wmi::parse_host_instances(&ran.stdout())
            .map_err(|e| unrecognized::program(what, &self.target, &e.to_string(), &ran))
    }

    /// The DR instances the input names.
    fn ours(input: &Input, rows: Vec<HostInstance>) -> Vec<HostInstance> {
        rows.into_iter()
            .filter(|r| input.servers.iter().any(|s| s.eq_ignore_ascii_case(&r.running_server)))
            .filter(|r| {
                input.hosts.is_empty() || input.hosts.iter().any(|h| h.eq_ignore_ascii_case(&r.host_name))
            })
            .collect()
    }

    /// Whether the instance's service is disabled (`sc.exe qc` on its server).
    fn service_disabled(&mut self, row: &HostInstance) -> Result<bool, StepError> {
        let service = format!("BTSSvc${}", row.host_name);
        let server = &row.running_server;
        let ran = self.ctx.exec(server, sc::PROGRAM).args(sc::qc(&service)).run()?;
        self.evidence.push(ran.evidence(format!("service {service} on {server}")));
        if let Some(failure) = sc::failure(ran.output.exit_code, &ran.stdout()) {
            return Err(match failure {
                sc::ScFailure::NotInstalled => StepError::permanent(format!(
                    "{} has no service {service} (1060): the instance {} is not installed there; run create-host-instances in repair mode",
                    server, row.name
                )),
                other => {
                    unrecognized::program(&format!("sc.exe qc {service}"), server, &other.to_string(), &ran)
                }
            });
        }
        let config = sc::parse_qc(&ran.stdout())
            .map_err(|e| unrecognized::program(&format!("sc.exe qc {service}"), server, &e.0, &ran))?;
        Ok(config.start_mode == StartMode::Disabled)
    }

    fn run(mut self, input: &Input, apply: bool) -> StepResult<Output> {
        if input.servers.iter().all(|s| s.trim().is_empty()) {
            return Err(StepError::permanent("servers must name the DR BizTalk servers"));
        }
        let rows = Self::ours(input, self.host_instances()?);
        if rows.is_empty() {
            return Err(StepError::permanent(format!(
                "the group has no host instance on {}{}: create them first (create-host-instances)",
                input.servers.join(", "),
                if input.hosts.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", input.hosts.join(", "))
                }
            )));
        }
        let mut work = Vec::new();
        for row in rows {
            self.refuse(&row)?;
            let mut w = Work { row, service_disabled: false };
            if w.pending() && !w.isolated() {
                w.service_disabled = self.service_disabled(&w.row)?;
            }
            work.push(w);
        }
        let pending = work.iter().filter(|w| w.pending()).count();
        if pending == 0 || !apply {
            let instances = work.iter().map(|w| report(w, &w.row)).collect();
            let summary = if pending == 0 {
                format!("every DR host instance on {} is enabled and running", input.servers.join(", "))
            } else {
                format!("would enable and start {pending} DR host instance(s): {}", names(&work))
            };
            let output = Output { instances, started: pending };
            return Ok(Outcome { changed: pending > 0, summary, output, evidence: self.evidence });
        }
        for w in work.iter().filter(|w| w.pending()) {
            self.activate(w)?;
        }
        let after = Self::ours(input, self.host_instances()?);
        let mut instances = Vec::new();
        let mut wrong = Vec::new();
        for w in &work {
            let now = after.iter().find(|r| r.is(&w.row.host_name, &w.row.running_server)).unwrap_or(&w.row);
            if now.is_disabled || (!w.isolated() && now.service_state != ServiceState::Running) {
                wrong.push(format!("{} (disabled {}, {})", now.name, now.is_disabled, now.service_state));
            }
            instances.push(report(w, now));
        }
        if !wrong.is_empty() {
            return Err(StepError::permanent(format!(
                "started, but these DR host instances are not enabled and running: {}",
                wrong.join(", ")
            )));
        }
        let summary = format!("enabled and started {pending} DR host instance(s): {}", names(&work));
        Ok(Outcome {
            changed: true,
            summary,
            output: Output { instances, started: pending },
            evidence: self.evidence,
        })
    }

    /// States this step cannot bring to running by itself.
    fn refuse(&self, row: &HostInstance) -> Result<(), StepError> {
        if row.configuration_state != ConfigurationState::Installed {
            return Err(StepError::permanent(format!(
                "{} is not installed (configuration state {}); repair it with create-host-instances first",
                row.name, row.configuration_state
            )));
        }
        if row.host_type == HostType::Isolated {
            return Ok(());
        }
        match row.service_state {
            ServiceState::Unknown => Err(StepError::permanent(format!(
                "{} reports ServiceState unknown (8): {} does not answer WMI; bring it back or leave it out of servers",
                row.name, row.running_server
            ))),
            ServiceState::Running if row.is_disabled => Err(StepError::needs_operator(format!(
                "{} runs although IsDisabled is set; IsDisabled can only be cleared while it is stopped, which would stop processing: decide and clear it by hand",
                row.name
            ))),
            ServiceState::Stopped | ServiceState::Running => Ok(()),
            other => Err(StepError::retryable(format!("{} is {other}; try again once it settles", row.name))),
        }
    }

    /// Service to auto, IsDisabled false, Start().
    fn activate(&mut self, w: &Work) -> Result<(), StepError> {
        let (host, server) = (&w.row.host_name, &w.row.running_server);
        if w.service_disabled {
            let service = format!("BTSSvc${host}");
            let ran =
                self.ctx.exec(server, sc::PROGRAM).args(sc::config_start(&service, StartMode::Auto)).run()?;
            self.evidence.push(ran.evidence(format!("{service} on {server} set to start automatically")));
            if let Some(failure) = sc::failure(ran.output.exit_code, &ran.stdout()) {
                return Err(unrecognized::program(
                    &format!("sc.exe config {service}"),
                    server,
                    &failure.to_string(),
                    &ran,
                ));
            }
        }
        if w.row.is_disabled {
            let script = processing::set_host_instance_disabled(host, server, false);
            self.call(&script, "Put", &w.row.name)?;
        }
        if !w.isolated() && w.row.service_state != ServiceState::Running {
            let script = processing::start_host_instance(host, server);
            self.call(&script, "Start", &w.row.name)?;
        }
        Ok(())
    }

    fn call(&mut self, script: &str, method: &str, name: &str) -> Result<(), StepError> {
        let ran = self.powershell(script, format!("{method}() of {name}"))?;
        if ran.success() {
            return Ok(());
        }
        let stderr = ran.stderr();
        if processing::server_unavailable(&stderr) {
            return Err(StepError::permanent(format!(
                "{method}() of {name} failed: its server does not answer ({})",
                excerpt(&stderr, 2).trim()
            )));
        }
        if stderr.contains("The dependency service or group failed to start.") {
            return Err(StepError::permanent(format!(
                "{method}() of {name} failed: ENTSSO, which the host instance's service depends on, did not start ({}); start Enterprise Single Sign-On on its server (after the master secret is restored, F8), then run the step again",
                excerpt(&stderr, 2).trim()
            )));
        }
        Err(unrecognized::program(
            &format!("MSBTS_HostInstance.{method}() of {name}"),
            &self.target,
            "it failed with an error Drover does not know",
            &ran,
        ))
    }
}

fn names(work: &[Work]) -> String {
    work.iter().filter(|w| w.pending()).map(|w| w.row.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn report(w: &Work, now: &HostInstance) -> InstanceReport {
    InstanceReport {
        host: w.row.host_name.clone(),
        server: w.row.running_server.clone(),
        isolated: w.isolated(),
        action: match (w.pending(), w.isolated()) {
            (false, _) => Action::Unchanged,
            (true, true) => Action::Enabled,
            (true, false) => Action::Started,
        },
        service_enabled: w.service_disabled,
        service_state: now.service_state.to_string(),
        is_disabled: now.is_disabled,
    }
}

#[cfg(test)]
mod tests;
