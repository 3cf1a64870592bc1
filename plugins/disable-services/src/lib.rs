//! `disable-services`: sets the BizTalk Windows services of the step's target to *disabled* and
//! stops them, so a DR server joined to the live production group processes nothing [docs/biztalk.md, "Windows services";
//! seed B6]. Each service's original start mode is written to the step's durable state before
//! it is changed, and `compensate` restores those modes (it never starts a service).
//!
//! Commands and formats are those of `lab/PROTOCOL.md` ("Services: `sc.exe`"), built and parsed
//! by `biztalk_common::sc`; this crate only decides what to run.

use std::collections::BTreeMap;

use biztalk_common::sc::{self, ScFailure, ServiceConfig, ServiceState, ServiceStatus, StartMode};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Durable-state key of the original start modes: a JSON map service name -> start mode.
const ORIGINAL_MODES: &str = "original-start-modes";

/// The plugin.
#[derive(Default)]
pub struct DisableServices;

/// Input: which services, and whether to stop them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Service names; `*` matches any run of characters, case-insensitively. Default: the host
    /// instances (`BTSSvc$*`) and the rules engine update service.
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    /// Also stop the services that are running. Default: true.
    #[serde(default = "default_stop")]
    pub stop: bool,
}

fn default_patterns() -> Vec<String> {
    vec!["BTSSvc$*".into(), "RuleEngineUpdateService".into()]
}

fn default_stop() -> bool {
    true
}

/// Output: one entry per matching service.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The matching services, in the order `sc.exe query` listed them (compensation: the
    /// recorded ones, by name).
    pub services: Vec<ServiceReport>,
    /// What the operator should read (a recorded service that no longer exists, …).
    pub warnings: Vec<String>,
}

/// One service.
#[derive(Serialize, JsonSchema)]
pub struct ServiceReport {
    /// The service name.
    pub name: String,
    /// Its start mode when this call found it.
    #[schemars(with = "StartModeName")]
    pub previous_start_mode: StartMode,
    /// Its start mode after this call (in check mode: still the current one).
    #[schemars(with = "StartModeName")]
    pub start_mode: StartMode,
    /// Its state after this call (in check mode: the current one); absent when not looked at
    /// (compensation).
    #[schemars(with = "Option<ServiceStateName>")]
    pub state: Option<ServiceState>,
    /// This call changed it (in check mode: apply would).
    pub changed: bool,
}

/// Schema of a start mode: its `sc.exe config` keyword.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
#[expect(dead_code, reason = "a schema only: its variants are never constructed")]
enum StartModeName {
    Auto,
    DelayedAuto,
    Demand,
    Disabled,
}

/// Schema of a service state.
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
}

/// A matching service, as probed.
struct Found {
    status: ServiceStatus,
    config: ServiceConfig,
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

    /// An `sc.exe` answer Drover does not recognise: needs an operator, with the raw text.
    fn unrecognised(&self, what: &str, why: &dyn std::fmt::Display, ran: &Executed) -> StepError {
        unrecognized::program(what, &self.target, &why.to_string(), ran)
    }

    /// Runs `sc.exe <args>` and records it as evidence.
    fn sc(&mut self, args: Vec<String>, label: String) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(&self.target, sc::PROGRAM).args(args).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// Lists every service and keeps those matching a pattern.
    fn matching(&mut self, patterns: &[String]) -> Result<Vec<ServiceStatus>, StepError> {
        let label = format!("services on {}", self.target);
        let ran = self.sc(sc::query_all(), label)?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => {}
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                return Err(self.unrecognised("sc.exe query", &failure, &ran));
            }
            Some(failure) => {
                return Err(StepError::permanent(format!(
                    "listing the services of {} failed: {failure}",
                    self.target
                )));
            }
        }
        let all = sc::parse_query(&ran.stdout()).map_err(|e| self.unrecognised("sc.exe query", &e, &ran))?;
        Ok(all.into_iter().filter(|s| patterns.iter().any(|p| sc::name_matches(p, &s.name))).collect())
    }

    /// Reads a service's configuration; `None` if it is not installed (any more).
    fn config(&mut self, name: &str) -> Result<Option<ServiceConfig>, StepError> {
        let ran = self.sc(sc::qc(name), format!("configuration of {name}"))?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => sc::parse_qc(&ran.stdout())
                .map(Some)
                .map_err(|e| self.unrecognised(&format!("sc.exe qc {name}"), &e, &ran)),
            Some(ScFailure::NotInstalled) => Ok(None),
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                Err(self.unrecognised(&format!("sc.exe qc {name}"), &failure, &ran))
            }
            Some(failure) => Err(StepError::permanent(format!(
                "reading the configuration of {name} on {} failed: {failure}",
                self.target
            ))),
        }
    }

    /// The matching services with their configuration. A service that vanishes between the
    /// listing and `qc` is a transient race: the next attempt lists again.
    fn probe(&mut self, patterns: &[String]) -> Result<Vec<Found>, StepError> {
        let mut found = Vec::new();
        for status in self.matching(patterns)? {
            let Some(config) = self.config(&status.name)? else {
                return Err(StepError::retryable(format!(
                    "service {} disappeared from {} while it was being probed",
                    status.name, self.target
                )));
            };
            found.push(Found { status, config });
        }
        Ok(found)
    }

    /// Sets the start mode of `name`.
    fn set_start_mode(&mut self, name: &str, mode: StartMode) -> Result<(), StepError> {
        let ran = self.sc(sc::config_start(name, mode), format!("set {name} to {mode}"))?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => Ok(()),
            Some(ScFailure::NotInstalled) => Err(StepError::retryable(format!(
                "service {name} disappeared from {} while its start mode was being set",
                self.target
            ))),
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                Err(self.unrecognised(&format!("sc.exe config {name}"), &failure, &ran))
            }
            Some(failure) => Err(StepError::permanent(format!(
                "setting {name} on {} to {mode} failed: {failure}",
                self.target
            ))),
        }
    }

    /// Stops `name` and returns its state afterwards.
    fn stop(&mut self, name: &str) -> Result<ServiceState, StepError> {
        let ran = self.sc(sc::stop(name), format!("stop {name}"))?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => self.state(name),
            Some(ScFailure::NotStarted) => Ok(ServiceState::Stopped),
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                Err(self.unrecognised(&format!("sc.exe stop {name}"), &failure, &ran))
            }
            Some(ScFailure::CannotAcceptControl) => Err(StepError::retryable(format!(
                "service {name} on {} will not stop: it cannot accept control messages at this time (1061)",
                self.target
            ))),
            Some(failure) => {
                Err(StepError::permanent(format!("stopping {name} on {} failed: {failure}", self.target)))
            }
        }
    }

    /// The current state of `name`.
    fn state(&mut self, name: &str) -> Result<ServiceState, StepError> {
        let ran = self.sc(sc::query(name), format!("state of {name}"))?;
        let what = format!("sc.exe query {name}");
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => {}
            Some(failure @ ScFailure::Unrecognised { .. }) => {
                return Err(self.unrecognised(&what, &failure, &ran));
            }
            Some(failure) => {
                return Err(StepError::permanent(format!(
                    "querying {name} on {} failed: {failure}",
                    self.target
                )));
            }
        }
        let statuses = sc::parse_query(&ran.stdout()).map_err(|e| self.unrecognised(&what, &e, &ran))?;
        statuses
            .into_iter()
            .next()
            .map(|s| s.state)
            .ok_or_else(|| StepError::permanent(format!("sc.exe query {name} printed no service")))
    }

    /// Records `mode` as the original start mode of `name`, unless one is recorded already (an
    /// earlier attempt found the original).
    fn remember(&self, name: &str, mode: StartMode) -> Result<(), StepError> {
        let mut recorded = self.recorded()?;
        if recorded.contains_key(name) {
            return Ok(());
        }
        recorded.insert(name.to_string(), mode);
        Ok(self.ctx.state_set_json(ORIGINAL_MODES, &recorded)?)
    }

    /// The original start modes recorded so far.
    fn recorded(&self) -> Result<BTreeMap<String, StartMode>, StepError> {
        Ok(self.ctx.state_get_json(ORIGINAL_MODES)?.unwrap_or_default())
    }

    /// Disables `found` (recording its start mode first) and stops it if asked.
    fn disable(&mut self, found: Found, stop: bool) -> Result<ServiceReport, StepError> {
        let name = found.status.name;
        let previous = found.config.start_mode;
        let mut changed = false;
        if previous != StartMode::Disabled {
            self.remember(&name, previous)?;
            self.set_start_mode(&name, StartMode::Disabled)?;
            changed = true;
        }
        let mut state = found.status.state;
        if stop && state.needs_stop() {
            state = self.stop(&name)?;
            changed = true;
        }
        Ok(ServiceReport {
            name,
            previous_start_mode: previous,
            start_mode: StartMode::Disabled,
            state: Some(state),
            changed,
        })
    }

    /// Restores the recorded start mode of `name` if it differs; `None` (and a warning) if the
    /// service no longer exists.
    fn restore(
        &mut self,
        name: &str,
        mode: StartMode,
        warnings: &mut Vec<String>,
    ) -> Result<Option<ServiceReport>, StepError> {
        let Some(config) = self.config(name)? else {
            warnings.push(format!("service {name} no longer exists on {}; nothing to restore", self.target));
            return Ok(None);
        };
        let changed = config.start_mode != mode;
        if changed {
            self.set_start_mode(name, mode)?;
        }
        Ok(Some(ServiceReport {
            name: name.to_string(),
            previous_start_mode: config.start_mode,
            start_mode: mode,
            state: None,
            changed,
        }))
    }
}

/// What check would do to one service, without doing it.
fn predict(found: Found, stop: bool) -> ServiceReport {
    let mode = found.config.start_mode;
    let state = found.status.state;
    ServiceReport {
        changed: mode != StartMode::Disabled || (stop && state.needs_stop()),
        name: found.status.name,
        previous_start_mode: mode,
        start_mode: mode,
        state: Some(state),
    }
}

/// A one-line summary of `services` on `target`.
fn summarize(target: &str, services: &[ServiceReport], check: bool, patterns: &[String]) -> String {
    if services.is_empty() {
        return format!("no service on {target} matches {}", patterns.join(", "));
    }
    let changed = services.iter().filter(|s| s.changed).count();
    let verb = if check { "would disable or stop" } else { "disabled or stopped" };
    match changed {
        0 => format!("all {} matching services on {target} are already disabled and stopped", services.len()),
        n => format!("{verb} {n} of {} matching services on {target}", services.len()),
    }
}

fn outcome(report: Output, summary: String, evidence: Vec<Evidence>) -> Outcome<Output> {
    let changed = report.services.iter().any(|s| s.changed);
    Outcome { changed, summary, output: report, evidence }
}

impl Plugin for DisableServices {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Reversible)
            .description("disables and stops matching Windows services, remembering their start modes")
            .program(sc::PROGRAM)
            .compensable()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        let mut session = Session::new(ctx)?;
        let services: Vec<ServiceReport> =
            session.probe(&input.patterns)?.into_iter().map(|f| predict(f, input.stop)).collect();
        let summary = summarize(&session.target, &services, true, &input.patterns);
        Ok(outcome(Output { services, warnings: vec![] }, summary, session.evidence))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        let mut session = Session::new(ctx)?;
        let mut services = Vec::new();
        for found in session.probe(&input.patterns)? {
            services.push(session.disable(found, input.stop)?);
        }
        let summary = summarize(&session.target, &services, false, &input.patterns);
        Ok(outcome(Output { services, warnings: vec![] }, summary, session.evidence))
    }

    fn compensate(&self, ctx: &Ctx, _input: Input) -> StepResult<Output> {
        let mut session = Session::new(ctx)?;
        let mut warnings = Vec::new();
        let mut services = Vec::new();
        for (name, mode) in session.recorded()? {
            services.extend(session.restore(&name, mode, &mut warnings)?);
        }
        let restored = services.iter().filter(|s| s.changed).count();
        let summary = format!(
            "restored the start mode of {restored} of {} recorded services on {}",
            services.len(),
            session.target
        );
        let report = Output { services, warnings };
        Ok(outcome(report, summary, session.evidence))
    }
}

drover_sdk::export_plugin!(DisableServices);

#[cfg(test)]
mod tests {
    use drover_sdk::HostApi;
    use drover_sdk::testing::FakeHost;
    use serde_json::{Value, json};

    use super::*;

    const TARGET: &str = "DRBTS01";

    fn host() -> FakeHost {
        FakeHost::new()
            .with_target(TARGET)
            .with_context(Context { target: Some(TARGET.into()), ..Context::for_test(Mode::Apply) })
    }

    /// A `sc.exe query` block in PROTOCOL.md's format (preceded by an empty line).
    fn block(name: &str, state: u8) -> String {
        let state_text = match state {
            1 => "1  STOPPED",
            3 => "3  STOP_PENDING",
            _ => "4  RUNNING\n                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)",
        };
        format!(
            "\nSERVICE_NAME: {name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : {state_text}\n        WIN32_EXIT_CODE    : 0  (0x0)\n        SERVICE_EXIT_CODE  : 0  (0x0)\n        CHECKPOINT         : 0x0\n        WAIT_HINT          : 0x0\n"
        )
    }

    fn listing(services: &[(&str, u8)]) -> ExecOutput {
        ExecOutput::exited(0, services.iter().map(|(n, s)| block(n, *s)).collect::<String>())
    }

    fn qc_output(name: &str, start_type: &str) -> ExecOutput {
        ExecOutput::exited(
            0,
            format!(
                "[SC] QueryServiceConfig SUCCESS\n\nSERVICE_NAME: {name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n        START_TYPE         : {start_type}\n        ERROR_CONTROL      : 1   NORMAL\n        BINARY_PATH_NAME   : C:\\svc.exe\n        LOAD_ORDER_GROUP   :\n        TAG                : 0\n        DISPLAY_NAME       : {name}\n        DEPENDENCIES       :\n        SERVICE_START_NAME : LocalSystem\n"
            ),
        )
    }

    fn failed(function: &str, code: i32, message: &str) -> ExecOutput {
        ExecOutput::exited(code, format!("[SC] {function} FAILED {code}:\n\n{message}\n"))
    }

    fn sc(host: &FakeHost, args: &[&str], output: ExecOutput) {
        host.script_exec(TARGET, "sc.exe", args, output);
    }

    fn config_ok(host: &FakeHost, name: &str, mode: &str) {
        sc(
            host,
            &["config", name, "start=", mode],
            ExecOutput::exited(0, "[SC] ChangeServiceConfig SUCCESS\n"),
        );
    }

    fn stop_ok(host: &FakeHost, name: &str) {
        sc(host, &["stop", name], ExecOutput::exited(0, block(name, 3)));
        sc(host, &["query", name], listing(&[(name, 1)]));
    }

    /// The lab's DR server after a join, with host instances created: the rules engine update
    /// service and one host instance running, another host instance already disabled.
    fn script_pre_state(host: &FakeHost) {
        sc(
            host,
            &["query", "state=", "all"],
            listing(&[
                ("ENTSSO", 1),
                ("RuleEngineUpdateService", 4),
                ("BTSSvc$SendHost", 4),
                ("BTSSvc$ReceiveHost", 1),
            ]),
        );
        sc(host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "2   AUTO_START"));
        sc(host, &["qc", "BTSSvc$SendHost"], qc_output("BTSSvc$SendHost", "2   AUTO_START  (DELAYED)"));
        sc(host, &["qc", "BTSSvc$ReceiveHost"], qc_output("BTSSvc$ReceiveHost", "4   DISABLED"));
    }

    fn script_post_state(host: &FakeHost) {
        sc(
            host,
            &["query", "state=", "all"],
            listing(&[
                ("ENTSSO", 1),
                ("RuleEngineUpdateService", 1),
                ("BTSSvc$SendHost", 1),
                ("BTSSvc$ReceiveHost", 1),
            ]),
        );
        for name in ["RuleEngineUpdateService", "BTSSvc$SendHost", "BTSSvc$ReceiveHost"] {
            sc(host, &["qc", name], qc_output(name, "4   DISABLED"));
        }
    }

    fn recorded(host: &FakeHost) -> Value {
        host.state_get(ORIGINAL_MODES).map_or(Value::Null, |s| serde_json::from_str(&s).unwrap())
    }

    const PROBE: [&str; 4] = [
        "sc.exe query state= all",
        "sc.exe qc RuleEngineUpdateService",
        "sc.exe qc BTSSvc$SendHost",
        "sc.exe qc BTSSvc$ReceiveHost",
    ];

    #[test]
    fn disables_and_stops_the_matching_services_recording_their_modes() {
        let host = host();
        script_pre_state(&host);
        config_ok(&host, "RuleEngineUpdateService", "disabled");
        stop_ok(&host, "RuleEngineUpdateService");
        config_ok(&host, "BTSSvc$SendHost", "disabled");
        stop_ok(&host, "BTSSvc$SendHost");

        let outcome = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();

        assert!(outcome.changed);
        let mut expected: Vec<&str> = PROBE.to_vec();
        expected.extend([
            "sc.exe config RuleEngineUpdateService start= disabled",
            "sc.exe stop RuleEngineUpdateService",
            "sc.exe query RuleEngineUpdateService",
            "sc.exe config BTSSvc$SendHost start= disabled",
            "sc.exe stop BTSSvc$SendHost",
            "sc.exe query BTSSvc$SendHost",
        ]);
        assert_eq!(host.command_lines(), expected);
        assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
        assert_eq!(
            outcome.output["services"],
            json!([
                {"name": "RuleEngineUpdateService", "previous_start_mode": "auto", "start_mode": "disabled", "state": "stopped", "changed": true},
                {"name": "BTSSvc$SendHost", "previous_start_mode": "delayed-auto", "start_mode": "disabled", "state": "stopped", "changed": true},
                {"name": "BTSSvc$ReceiveHost", "previous_start_mode": "disabled", "start_mode": "disabled", "state": "stopped", "changed": false},
            ])
        );
        assert_eq!(
            recorded(&host),
            json!({"RuleEngineUpdateService": "auto", "BTSSvc$SendHost": "delayed-auto"})
        );
        assert_eq!(outcome.summary, "disabled or stopped 2 of 3 matching services on DRBTS01");
        assert_eq!(outcome.evidence.len(), expected.len());
        assert_eq!(outcome.evidence[4].command.as_deref(), Some(expected[4]));
        assert_eq!(outcome.evidence[4].exit_code, Some(0));
    }

    #[test]
    fn a_second_run_changes_nothing_and_sends_no_change() {
        let host = host();
        script_post_state(&host);
        let outcome = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();
        assert!(!outcome.changed);
        assert_eq!(host.command_lines(), PROBE);
        assert!(outcome.output["services"].as_array().unwrap().iter().all(|s| s["changed"] == false));
        assert_eq!(recorded(&host), Value::Null);
        assert_eq!(outcome.summary, "all 3 matching services on DRBTS01 are already disabled and stopped");
    }

    #[test]
    fn a_retry_keeps_the_original_mode_recorded_by_the_first_attempt() {
        let host = host();
        host.state_set(ORIGINAL_MODES, r#"{"RuleEngineUpdateService":"auto"}"#).unwrap();
        sc(&host, &["query", "state=", "all"], listing(&[("RuleEngineUpdateService", 4)]));
        sc(
            &host,
            &["qc", "RuleEngineUpdateService"],
            qc_output("RuleEngineUpdateService", "3   DEMAND_START"),
        );
        config_ok(&host, "RuleEngineUpdateService", "disabled");
        stop_ok(&host, "RuleEngineUpdateService");
        host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();
        assert_eq!(recorded(&host), json!({"RuleEngineUpdateService": "auto"}));
    }

    #[test]
    fn check_reads_only_and_says_what_would_change() {
        let host = host();
        script_pre_state(&host);
        let outcome = host.call::<DisableServices>(Mode::Check, json!({})).unwrap();
        assert!(outcome.changed);
        assert_eq!(host.command_lines(), PROBE);
        assert_eq!(recorded(&host), Value::Null);
        let changed: Vec<bool> = outcome.output["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["changed"].as_bool().unwrap())
            .collect();
        assert_eq!(changed, [true, true, false]);
        assert_eq!(outcome.output["services"][1]["start_mode"], "delayed-auto");
        assert_eq!(outcome.output["services"][1]["state"], "running");
        assert_eq!(outcome.summary, "would disable or stop 2 of 3 matching services on DRBTS01");
    }

    #[test]
    fn check_of_the_post_state_says_nothing_would_change() {
        let host = host();
        script_post_state(&host);
        let outcome = host.call::<DisableServices>(Mode::Check, json!({})).unwrap();
        assert!(!outcome.changed);
    }

    #[test]
    fn a_service_that_will_not_stop_is_retryable_and_its_mode_is_already_recorded() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("RuleEngineUpdateService", 4)]));
        sc(&host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "2   AUTO_START"));
        config_ok(&host, "RuleEngineUpdateService", "disabled");
        sc(
            &host,
            &["stop", "RuleEngineUpdateService"],
            failed("ControlService", 1061, "The service cannot accept control messages at this time."),
        );
        let err = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap_err();
        assert!(matches!(err, StepError::Retryable(_)), "{err}");
        assert!(
            err.message().contains("RuleEngineUpdateService") && err.message().contains("will not stop"),
            "{err}"
        );
        assert_eq!(recorded(&host), json!({"RuleEngineUpdateService": "auto"}));
    }

    #[test]
    fn a_service_that_has_not_been_started_is_fine() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("RuleEngineUpdateService", 4)]));
        sc(&host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "2   AUTO_START"));
        config_ok(&host, "RuleEngineUpdateService", "disabled");
        sc(
            &host,
            &["stop", "RuleEngineUpdateService"],
            failed("ControlService", 1062, "The service has not been started."),
        );
        let outcome = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();
        assert_eq!(outcome.output["services"][0]["state"], "stopped");
        assert!(host.unused_scripts().is_empty());
    }

    #[test]
    fn the_mode_is_recorded_before_a_failing_change() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("BTSSvc$SendHost", 1)]));
        sc(&host, &["qc", "BTSSvc$SendHost"], qc_output("BTSSvc$SendHost", "2   AUTO_START"));
        sc(
            &host,
            &["config", "BTSSvc$SendHost", "start=", "disabled"],
            failed("ChangeServiceConfig", 5, "Access is denied."),
        );
        let err = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap_err();
        assert!(matches!(err, StepError::Permanent(_)), "{err}");
        assert!(err.message().contains("Access is denied"), "{err}");
        assert_eq!(recorded(&host), json!({"BTSSvc$SendHost": "auto"}));
    }

    #[test]
    fn nothing_matching_is_fine() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("ENTSSO", 4)]));
        let outcome = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();
        assert!(!outcome.changed);
        assert_eq!(outcome.output["services"], json!([]));
        assert_eq!(outcome.summary, "no service on DRBTS01 matches BTSSvc$*, RuleEngineUpdateService");
    }

    #[test]
    fn custom_patterns_and_no_stop() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("ENTSSO", 4), ("RuleEngineUpdateService", 4)]));
        sc(&host, &["qc", "ENTSSO"], qc_output("ENTSSO", "2   AUTO_START"));
        config_ok(&host, "ENTSSO", "disabled");
        let outcome = host
            .call::<DisableServices>(Mode::Apply, json!({"patterns": ["entsso"], "stop": false}))
            .unwrap();
        assert_eq!(
            host.command_lines(),
            ["sc.exe query state= all", "sc.exe qc ENTSSO", "sc.exe config ENTSSO start= disabled"]
        );
        assert_eq!(outcome.output["services"][0]["state"], "running");
    }

    #[test]
    fn an_unreachable_target_is_retryable() {
        let host = host();
        host.script_exec_error(
            TARGET,
            "sc.exe",
            &["query", "state=", "all"],
            HostError::new(HostErrorKind::Retryable, "DRBTS01 did not answer"),
        );
        let err = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap_err();
        assert!(matches!(err, StepError::Retryable(_)), "{err}");
    }

    #[test]
    fn compensation_restores_the_recorded_modes() {
        let host = host();
        script_pre_state(&host);
        config_ok(&host, "RuleEngineUpdateService", "disabled");
        stop_ok(&host, "RuleEngineUpdateService");
        config_ok(&host, "BTSSvc$SendHost", "disabled");
        stop_ok(&host, "BTSSvc$SendHost");
        host.call::<DisableServices>(Mode::Apply, json!({})).unwrap();
        let applied = host.command_lines().len();

        sc(&host, &["qc", "BTSSvc$SendHost"], qc_output("BTSSvc$SendHost", "4   DISABLED"));
        config_ok(&host, "BTSSvc$SendHost", "delayed-auto");
        sc(&host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "4   DISABLED"));
        config_ok(&host, "RuleEngineUpdateService", "auto");
        let outcome = host.call::<DisableServices>(Mode::Compensate, json!({})).unwrap();

        assert!(outcome.changed);
        assert_eq!(
            host.command_lines()[applied..],
            [
                "sc.exe qc BTSSvc$SendHost",
                "sc.exe config BTSSvc$SendHost start= delayed-auto",
                "sc.exe qc RuleEngineUpdateService",
                "sc.exe config RuleEngineUpdateService start= auto",
            ]
        );
        assert_eq!(
            outcome.output["services"],
            json!([
                {"name": "BTSSvc$SendHost", "previous_start_mode": "disabled", "start_mode": "delayed-auto", "state": null, "changed": true},
                {"name": "RuleEngineUpdateService", "previous_start_mode": "disabled", "start_mode": "auto", "state": null, "changed": true},
            ])
        );
        assert_eq!(outcome.summary, "restored the start mode of 2 of 2 recorded services on DRBTS01");
    }

    #[test]
    fn compensation_twice_changes_nothing_and_skips_vanished_services() {
        let host = host();
        host.state_set(ORIGINAL_MODES, r#"{"BTSSvc$Gone":"auto","RuleEngineUpdateService":"auto"}"#).unwrap();
        sc(
            &host,
            &["qc", "BTSSvc$Gone"],
            failed("OpenService", 1060, "The specified service does not exist as an installed service."),
        );
        sc(&host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "2   AUTO_START"));
        let outcome = host.call::<DisableServices>(Mode::Compensate, json!({})).unwrap();
        assert!(!outcome.changed);
        assert_eq!(host.command_lines(), ["sc.exe qc BTSSvc$Gone", "sc.exe qc RuleEngineUpdateService"]);
        assert_eq!(
            outcome.output["warnings"][0],
            "service BTSSvc$Gone no longer exists on DRBTS01; nothing to restore"
        );
    }

    #[test]
    fn compensation_with_nothing_recorded_does_nothing() {
        let host = host();
        let outcome = host.call::<DisableServices>(Mode::Compensate, json!({})).unwrap();
        assert!(!outcome.changed);
        assert!(host.command_lines().is_empty());
    }

    #[test]
    fn describes_itself_as_reversible() {
        let describe = <DisableServices as Plugin>::describe();
        assert_eq!(describe.name(), "disable-services");
        assert_eq!(describe.version(), "1.0.0");
        assert_eq!(describe.effect(), Effect::Reversible);
        let schema = <DisableServices as RawPlugin>::describe();
        assert_eq!(schema.effect(), Effect::Reversible);
    }

    #[test]
    fn unknown_input_is_refused() {
        let host = host();
        assert!(host.call::<DisableServices>(Mode::Apply, json!({"pattern": ["x"]})).is_err());
        assert!(host.command_lines().is_empty());
    }
    /// `sc.exe qc` on a French Windows: nothing Drover reads, so nothing is changed and an
    /// operator gets the raw answer.
    #[test]
    fn a_service_configuration_in_words_drover_does_not_know_needs_an_operator() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("RuleEngineUpdateService", 4)]));
        let french = "[SC] QueryServiceConfig réussi(e)\n\nNOM_SERVICE : RuleEngineUpdateService\n        TYPE_DÉMARRAGE : 2   AUTO_START\n";
        sc(&host, &["qc", "RuleEngineUpdateService"], ExecOutput::exited(0, french));
        let err = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap_err();
        let StepError::NeedsOperator(message) = err else { panic!("{err:?}") };
        assert!(
            message.starts_with(
                "sc.exe qc RuleEngineUpdateService on DRBTS01 answered in a way Drover does not recognise"
            ),
            "{message}"
        );
        assert!(message.contains("TYPE_DÉMARRAGE : 2   AUTO_START"), "the raw text: {message}");
        assert!(!host.command_lines().iter().any(|c| c.contains("config")), "nothing changed");
    }

    /// A failing `sc.exe config` without the `[SC] … FAILED <code>:` line is not classified by
    /// its exit code alone.
    #[test]
    fn a_failure_without_the_failed_line_needs_an_operator() {
        let host = host();
        sc(&host, &["query", "state=", "all"], listing(&[("RuleEngineUpdateService", 4)]));
        sc(&host, &["qc", "RuleEngineUpdateService"], qc_output("RuleEngineUpdateService", "2   AUTO_START"));
        sc(
            &host,
            &["config", "RuleEngineUpdateService", "start=", "disabled"],
            ExecOutput::exited(5, "[SC] OpenService ÉCHEC 5 :\n\nAccès refusé.\n"),
        );
        let err = host.call::<DisableServices>(Mode::Apply, json!({})).unwrap_err();
        let StepError::NeedsOperator(message) = err else { panic!("{err:?}") };
        assert!(message.contains("sc.exe config RuleEngineUpdateService on DRBTS01"), "{message}");
        assert!(message.contains("exit code: 5"), "{message}");
        assert!(message.contains("Accès refusé."), "{message}");
    }
}
