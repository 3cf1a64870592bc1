//! `bts-receive-locations`: the receive locations of the group around the start of the DR host
//! instances (docs/biztalk.md, "Failover activation", F10 and F12; `lab/PROTOCOL.md`, "Failover:
//! database references, SSO and processing"), through BizTalk's WMI provider on the step's
//! target (a DR runtime server whose registry already names the DR management database, F7).
//! Scripts and parsers: `biztalk_common::processing`. One plugin, two actions (`action` in the
//! input):
//!
//! - **`disable`** (F10): `MSBTS_ReceiveLocation.Disable()` on every receive location that is
//!   enabled, so no message enters the group before the host instances are started and checked.
//!   Before each call the location's name is added to the step instance's durable state, so
//!   `compensate` (and an interrupted attempt's retry) knows which ones this step disabled;
//!   locations found disabled (production kept them so) are never recorded and never enabled
//!   again. The output's `disabled` lists the recorded names. Optional input `dr_servers`: when
//!   any host instance on one of these servers already runs, processing was activated already
//!   (an earlier run of the failover got past F11), and disabling now would stop it: no change.
//! - **`enable`** (F12): `MSBTS_ReceiveLocation.Enable()` on the locations named in `names`
//!   (an array, or a string of comma-separated names so a workflow can pass the disable step's
//!   output: `names = "{{ steps.<disable step>.output.disabled | join(',') }}"`). Already enabled:
//!   no change; an empty list: nothing to do; a name the group does not have: permanent.
//!
//! Input: `action` (`"disable"` | `"enable"`), `names` (enable), `dr_servers` (disable,
//! optional). Workflows reference it as `bts-receive-locations@^1`.
//!
//! **Effect class: reversible** (`check` tells whether a change is pending; `compensate` of a
//! `disable` step enables the locations it recorded; of an `enable` step it does nothing). After
//! every change the locations are read again and must show the new state.
//!
//! `check` only reads. Grants a workflow needs: program `powershell.exe`; read-only pattern for
//! `drover plan`: `powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*`.

use biztalk_common::processing::{self, ReceiveLocation};
use biztalk_common::wmi::{self, ServiceState};
use biztalk_common::{powershell, unrecognized};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

/// Durable-state key of the receive locations this step instance disabled: a JSON list of names.
const DISABLED: &str = "disabled-receive-locations";

/// The plugin.
#[derive(Default)]
pub struct BtsReceiveLocations;

/// What to do with the receive locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// F10: disable every enabled receive location, recording which.
    Disable,
    /// F12: enable the named receive locations.
    Enable,
}

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// `disable` or `enable`.
    pub action: Action,
    /// `enable`: the receive locations to enable, as an array or one string of comma-separated
    /// names (the `disable` step's `disabled` output joined with `,`).
    #[serde(default, deserialize_with = "names")]
    #[schemars(with = "Option<NamesSchema>")]
    pub names: Option<Vec<String>>,
    /// `disable`: the DR servers; when a host instance on one of them already runs, processing
    /// was activated already and nothing is disabled.
    #[serde(default)]
    pub dr_servers: Vec<String>,
}

/// The shapes `names` accepts.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NamesSchema {
    /// The names.
    List(Vec<String>),
    /// Comma-separated names.
    Joined(String),
}

fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<NamesSchema>::deserialize(d)?
        .map(|n| match n {
            NamesSchema::List(list) => list,
            NamesSchema::Joined(s) => s.split(',').map(str::to_owned).collect(),
        })
        .map(|list| list.into_iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect()))
}

/// A receive location as the step found it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocationReport {
    /// Its name.
    pub name: String,
    /// Its receive port.
    pub receive_port: String,
    /// Disabled after the call (check mode: as found).
    pub is_disabled: bool,
}

/// What the call found and did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    /// The action.
    pub action: Action,
    /// The locations this call changed (check mode: would change).
    pub changed: Vec<String>,
    /// `disable`: every location this step instance disabled (its durable record), the list to
    /// enable at F12. `enable`: empty.
    pub disabled: Vec<String>,
    /// Every receive location of the group, after the call.
    pub locations: Vec<LocationReport>,
    /// `disable` with `dr_servers`: the host instances found running there (then nothing was
    /// disabled).
    pub running: Vec<String>,
}

impl Plugin for BtsReceiveLocations {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Reversible)
            .description(
                "disables every enabled receive location of the group before the DR host instances start (recording which), or enables the named ones",
            )
            .program(powershell::PROGRAM)
            .compensable()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx)?.run(&input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx)?.run(&input, true)
    }

    fn compensate(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        let mut session = Session::new(ctx)?;
        if input.action == Action::Enable {
            let locations = session.locations()?;
            let output = output(Action::Enable, Vec::new(), Vec::new(), &locations, Vec::new());
            let summary = "enabling receive locations is not undone (disable them with the disable action)";
            return Ok(Outcome {
                changed: false,
                summary: summary.into(),
                output,
                evidence: session.evidence,
            });
        }
        let recorded = recorded(ctx)?;
        session.set(Some(&recorded), false, true, Action::Disable, "enabled again")
    }
}

drover_sdk::export_plugin!(BtsReceiveLocations);

/// The names recorded by this step instance's `disable`.
fn recorded(ctx: &Ctx) -> Result<Vec<String>, StepError> {
    Ok(ctx.state_get_json(DISABLED)?.unwrap_or_default())
}

fn output(
    action: Action,
    changed: Vec<String>,
    disabled: Vec<String>,
    locations: &[ReceiveLocation],
    running: Vec<String>,
) -> Output {
    let locations = locations
        .iter()
        .map(|l| LocationReport {
            name: l.name.clone(),
            receive_port: l.receive_port_name.clone(),
            is_disabled: l.is_disabled,
        })
        .collect();
    Output { action, changed, disabled, locations, running }
}

/// One call: the target and the evidence gathered so far.
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

    fn query_failure(&self, what: &str, ran: &Executed) -> StepError {
        if wmi::not_joined(&ran.stderr()) {
            return StepError::permanent(format!(
                "{} is not joined to a BizTalk group (no BizTalk WMI namespace); run this step on a DR runtime server after UpdateRegistry.vbs",
                self.target
            ));
        }
        unrecognized::program(what, &self.target, "it failed with an error Drover does not know", ran)
    }

    /// Every receive location of the group.
    fn locations(&mut self) -> Result<Vec<ReceiveLocation>, StepError> {
        let what = "reading MSBTS_ReceiveLocation";
        let ran = self.powershell(processing::RECEIVE_LOCATIONS, "receive locations of the group".into())?;
        if !ran.success() {
            return Err(self.query_failure(what, &ran));
        }
        processing::parse_receive_locations(&ran.stdout())
            .map_err(|e| unrecognized::program(what, &self.target, &e.to_string(), &ran))
    }

    /// The host instances running on `servers`.
    fn running_on(&mut self, servers: &[String]) -> Result<Vec<String>, StepError> {
        let what = "reading MSBTS_HostInstance";
        let ran = self.powershell(wmi::HOST_INSTANCES, "host instances of the group".into())?;
        if !ran.success() {
            return Err(self.query_failure(what, &ran));
        }
        let rows = wmi::parse_host_instances(&ran.stdout())
            .map_err(|e| unrecognized::program(what, &self.target, &e.to_string(), &ran))?;
        Ok(rows
            .into_iter()
            .filter(|r| servers.iter().any(|s| s.eq_ignore_ascii_case(&r.running_server)))
            .filter(|r| r.service_state == ServiceState::Running)
            .map(|r| r.name)
            .collect())
    }

    fn run(mut self, input: &Input, apply: bool) -> StepResult<Output> {
        match input.action {
            Action::Disable => {
                if !input.dr_servers.is_empty() {
                    let running = self.running_on(&input.dr_servers)?;
                    if !running.is_empty() {
                        let locations = self.locations()?;
                        let summary = format!(
                            "processing already runs at DR ({}): the receive locations are left as they are",
                            running.join(", ")
                        );
                        let out =
                            output(Action::Disable, Vec::new(), recorded(self.ctx)?, &locations, running);
                        return Ok(Outcome { changed: false, summary, output: out, evidence: self.evidence });
                    }
                }
                self.set(None, true, apply, Action::Disable, "disabled")
            }
            Action::Enable => {
                let Some(names) = &input.names else {
                    return Err(StepError::permanent(
                        "enable needs `names`: the receive locations to enable (the disable step's `disabled` output)",
                    ));
                };
                self.set(Some(names), false, apply, Action::Enable, "enabled")
            }
        }
    }

    /// Brings the named locations (`None`: every one) to `disabled`, recording each one first
    /// when disabling.
    fn set(
        mut self,
        names: Option<&[String]>,
        disabled: bool,
        apply: bool,
        action: Action,
        verb: &str,
    ) -> StepResult<Output> {
        let before = self.locations()?;
        let all: Vec<String> = before.iter().map(|l| l.name.clone()).collect();
        let names = names.unwrap_or(&all);
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !before.iter().any(|l| l.name.eq_ignore_ascii_case(n)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() && (action != Action::Disable || disabled) {
            return Err(StepError::permanent(format!(
                "the group has no receive location {}; nothing was changed",
                missing.join(", ")
            )));
        }
        let pending: Vec<String> = before
            .iter()
            .filter(|l| l.is_disabled != disabled && names.iter().any(|n| n.eq_ignore_ascii_case(&l.name)))
            .map(|l| l.name.clone())
            .collect();
        let record = |session: &Session| -> Result<Vec<String>, StepError> {
            if action == Action::Disable { recorded(session.ctx) } else { Ok(Vec::new()) }
        };
        if pending.is_empty() || !apply {
            let mut would = record(&self)?;
            if action == Action::Disable && disabled {
                for p in &pending {
                    if !would.contains(p) {
                        would.push(p.clone());
                    }
                }
            }
            let summary = match (pending.is_empty(), apply) {
                (true, _) => format!("no receive location to be {verb}: {} as wanted", describe(&before)),
                (false, _) => format!("would be {verb}: {}", pending.join(", ")),
            };
            let out =
                output(action, if apply { Vec::new() } else { pending.clone() }, would, &before, Vec::new());
            return Ok(Outcome {
                changed: !pending.is_empty(),
                summary,
                output: out,
                evidence: self.evidence,
            });
        }
        for name in &pending {
            if disabled {
                let mut recorded = recorded(self.ctx)?;
                if !recorded.contains(name) {
                    recorded.push(name.clone());
                    self.ctx.state_set_json(DISABLED, &recorded)?;
                }
            }
            let script = if disabled {
                processing::disable_receive_location(name)
            } else {
                processing::enable_receive_location(name)
            };
            let method = if disabled { "Disable" } else { "Enable" };
            let ran = self.powershell(&script, format!("{method}() of {name}"))?;
            if !ran.success() {
                if processing::not_found(&ran.stderr()) {
                    return Err(StepError::permanent(format!(
                        "receive location {name} disappeared while the step ran ({})",
                        excerpt(&ran.stderr(), 2).trim()
                    )));
                }
                return Err(unrecognized::program(
                    &format!("MSBTS_ReceiveLocation.{method}() of {name}"),
                    &self.target,
                    "it failed with an error Drover does not know",
                    &ran,
                ));
            }
        }
        let after = self.locations()?;
        let wrong: Vec<&str> = after
            .iter()
            .filter(|l| pending.contains(&l.name) && l.is_disabled != disabled)
            .map(|l| l.name.as_str())
            .collect();
        if !wrong.is_empty() {
            return Err(StepError::permanent(format!(
                "{} answered success but the receive locations {} are not {verb}",
                self.target,
                wrong.join(", ")
            )));
        }
        let summary = format!("{verb} {}: {}", pending.join(", "), describe(&after));
        let out = output(action, pending, record(&self)?, &after, Vec::new());
        Ok(Outcome { changed: true, summary, output: out, evidence: self.evidence })
    }
}

/// `A enabled, B disabled`.
fn describe(locations: &[ReceiveLocation]) -> String {
    if locations.is_empty() {
        return "the group has no receive location".into();
    }
    locations
        .iter()
        .map(|l| format!("{} {}", l.name, if l.is_disabled { "disabled" } else { "enabled" }))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
