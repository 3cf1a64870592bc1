//! `restart-services`: the failover's F9 on the step's target, a DR runtime server (docs/biztalk.md,
//! "Failover activation"; Microsoft's "How to Restore Your Databases": after UpdateRegistry.vbs,
//! "restart the Windows Management Instrumentation service", and "If you are using the Rules
//! Engine, after restoring the databases, you must restart the Rule Engine Update Service on
//! every server"). It restarts `winmgmt` with `Restart-Service -Force` (it has dependent
//! services), then sets `RuleEngineUpdateService`'s start mode back (preparation disabled it) and
//! restarts it.
//!
//! Effect: idempotent. Nothing readable says whether BizTalk's WMI provider still holds the
//! location it read before UpdateRegistry.vbs, so `check` always reports a restart and `apply`
//! always restarts: running it twice leaves what running it once does. Commands and formats are
//! `biztalk_common::restart` and `biztalk_common::sc` (`lab/PROTOCOL.md`); this crate only
//! decides what to run.

use biztalk_common::restart::{self, RULE_ENGINE, RestartFailure, WINMGMT};
use biztalk_common::sc::{self, ScFailure, StartMode};
use biztalk_common::{powershell, unrecognized};
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The plugin.
#[derive(Default)]
pub struct RestartServices;

/// Input: whether to restart the rule engine too, and its start mode.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Also set the start mode of `RuleEngineUpdateService` and restart it. Default: true (false
    /// in a drill's clean-up, which leaves it disabled).
    #[serde(default = "default_true")]
    pub rule_engine: bool,
    /// The start mode to set `RuleEngineUpdateService` back to before restarting it: `auto`
    /// (default: what BizTalk's configuration gives it), `delayed-auto` or `demand`; `disabled` is
    /// refused (a disabled service cannot start).
    #[serde(default = "default_mode")]
    #[schemars(with = "String")]
    pub rule_engine_start_mode: StartMode,
}

fn default_true() -> bool {
    true
}

fn default_mode() -> StartMode {
    StartMode::Auto
}

/// What happened (or, in check mode, would happen) to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Restarted.
    Restarted,
    /// Check mode: apply would restart it.
    WouldRestart,
    /// Not installed on the server: nothing to restart.
    NotInstalled,
    /// Not asked for (`rule_engine = false`).
    NotAsked,
}

/// Output: what was done on the target.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The server.
    pub server: String,
    /// Windows Management Instrumentation.
    pub winmgmt: Action,
    /// `RuleEngineUpdateService`.
    pub rule_engine: Action,
    /// Its start mode when this call found it (absent: not installed or not asked).
    #[schemars(with = "Option<String>")]
    pub rule_engine_previous_start_mode: Option<StartMode>,
    /// Its start mode after this call (in check mode: what apply would set).
    #[schemars(with = "Option<String>")]
    pub rule_engine_start_mode: Option<StartMode>,
    /// What the operator should read.
    pub warnings: Vec<String>,
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

    /// Runs `program <args>` on the target and records it as evidence.
    fn run(&mut self, program: &str, args: Vec<String>, label: String) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(&self.target, program).args(args).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// The start mode of the rule engine service; `None` when it is not installed.
    fn rule_engine_mode(&mut self) -> Result<Option<StartMode>, StepError> {
        let ran = self.run(sc::PROGRAM, sc::qc(RULE_ENGINE), format!("configuration of {RULE_ENGINE}"))?;
        let what = format!("sc.exe qc {RULE_ENGINE}");
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => sc::parse_qc(&ran.stdout())
                .map(|c| Some(c.start_mode))
                .map_err(|e| unrecognized::program(&what, &self.target, &e.to_string(), &ran)),
            Some(ScFailure::NotInstalled) => Ok(None),
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                Err(unrecognized::program(&what, &self.target, &failure.to_string(), &ran))
            }
            Some(failure) => Err(StepError::permanent(format!(
                "reading the configuration of {RULE_ENGINE} on {} failed: {failure}",
                self.target
            ))),
        }
    }

    /// Sets the rule engine service's start mode.
    fn set_mode(&mut self, mode: StartMode) -> Result<(), StepError> {
        let ran = self.run(
            sc::PROGRAM,
            sc::config_start(RULE_ENGINE, mode),
            format!("set {RULE_ENGINE} to {mode}"),
        )?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => Ok(()),
            Some(failure @ ScFailure::Unrecognised { .. }) => Err(unrecognized::program(
                &format!("sc.exe config {RULE_ENGINE}"),
                &self.target,
                &failure.to_string(),
                &ran,
            )),
            Some(failure) => Err(StepError::permanent(format!(
                "setting {RULE_ENGINE} on {} to {mode} failed: {failure}",
                self.target
            ))),
        }
    }

    /// `Restart-Service -Name <name> -Force`.
    fn restart(&mut self, name: &str) -> Result<(), StepError> {
        let script = restart::restart_service(name);
        let ran = self.run(powershell::PROGRAM, powershell::args(&script), format!("restart {name}"))?;
        if ran.output.exit_code == Some(0) {
            return Ok(());
        }
        match RestartFailure::parse(&ran.stderr()) {
            Some(failure) => {
                Err(StepError::permanent(format!("restarting {name} on {} failed: {failure}", self.target)))
            }
            None => Err(unrecognized::program(
                &format!("Restart-Service {name}"),
                &self.target,
                "no Restart-Service error line",
                &ran,
            )),
        }
    }

    /// The rule engine's part: its mode read, set back and the service restarted (`apply`), or
    /// only read (`check`).
    fn rule_engine(&mut self, input: &Input, apply: bool, output: &mut Output) -> Result<(), StepError> {
        if !input.rule_engine {
            return Ok(());
        }
        let Some(previous) = self.rule_engine_mode()? else {
            output.rule_engine = Action::NotInstalled;
            output
                .warnings
                .push(format!("{RULE_ENGINE} is not installed on {}: nothing to restart", self.target));
            return Ok(());
        };
        let mode = input.rule_engine_start_mode;
        output.rule_engine_previous_start_mode = Some(previous);
        output.rule_engine_start_mode = Some(mode);
        if !apply {
            output.rule_engine = Action::WouldRestart;
            return Ok(());
        }
        if previous != mode {
            self.set_mode(mode)?;
        }
        self.restart(RULE_ENGINE)?;
        output.rule_engine = Action::Restarted;
        Ok(())
    }
}

/// Refuses a start mode the service could not be started with.
fn validate(input: &Input) -> Result<(), StepError> {
    if input.rule_engine && input.rule_engine_start_mode == StartMode::Disabled {
        return Err(StepError::permanent(format!(
            "rule_engine_start_mode is disabled: {RULE_ENGINE} could not start; give auto, delayed-auto or demand, or rule_engine = false"
        )));
    }
    Ok(())
}

fn summarize(output: &Output, check: bool) -> String {
    let verb = if check { "would restart" } else { "restarted" };
    let rule_engine =
        match (output.rule_engine, output.rule_engine_previous_start_mode, output.rule_engine_start_mode) {
            (Action::Restarted | Action::WouldRestart, Some(from), Some(to)) if from != to => {
                format!(" and {RULE_ENGINE} (start mode {from} -> {to})")
            }
            (Action::Restarted | Action::WouldRestart, _, _) => format!(" and {RULE_ENGINE}"),
            (Action::NotInstalled, _, _) => format!(" ({RULE_ENGINE} is not installed)"),
            (Action::NotAsked, _, _) => String::new(),
        };
    let caveat =
        if check { " (whether WMI still holds the old database location cannot be read)" } else { "" };
    format!("{verb} {WINMGMT}{rule_engine} on {}{caveat}", output.server)
}

fn run(ctx: &Ctx, input: Input, apply: bool) -> StepResult<Output> {
    validate(&input)?;
    let mut session = Session::new(ctx)?;
    let mut output = Output {
        server: session.target.clone(),
        winmgmt: Action::WouldRestart,
        rule_engine: Action::NotAsked,
        rule_engine_previous_start_mode: None,
        rule_engine_start_mode: None,
        warnings: Vec::new(),
    };
    if apply {
        session.restart(WINMGMT)?;
        output.winmgmt = Action::Restarted;
    }
    session.rule_engine(&input, apply, &mut output)?;
    let summary = summarize(&output, !apply);
    Ok(Outcome { changed: true, summary, output, evidence: session.evidence })
}

impl Plugin for RestartServices {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "restarts WMI and the rule engine update service (its start mode set back) on a DR server",
            )
            .program(powershell::PROGRAM)
            .program(sc::PROGRAM)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        run(ctx, input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        run(ctx, input, true)
    }
}

drover_sdk::export_plugin!(RestartServices);

#[cfg(test)]
mod tests;
