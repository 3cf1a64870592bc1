//! `join-group`: joins the step's target, a DR BizTalk runtime server with the binaries
//! installed, to the production BizTalk group by a silent configuration
//! (`shared/domain/biztalk-dr.md` §3 S4, §4): SSO and group answered `Join`, no default hosts,
//! the Rules Engine pointed at production.
//!
//! What it does, with the command lines of `lab/PROTOCOL.md`:
//!
//! 1. Probes the membership: `reg query "HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration"
//!    /v MgmtDBServer` (and `MgmtDBName`). Joined to the expected group: nothing to do. Joined
//!    to another group: a permanent error; it never unconfigures a server on its own.
//! 2. Renders the join configuration XML with the passwords as XML secret references
//!    (`@@secret:NAME:xml@@`, filled in XML-escaped), writes it to `<work_dir>\join-<server>.xml` (the host fills in the
//!    passwords on the way, so the plugin never holds one) and runs
//!    `Configuration.exe /S <xml> /L <work_dir>\join-<server>.log`.
//! 3. Reads the log back, and **always** removes the rendered XML afterwards, failure or not:
//!    it holds passwords. A leftover from an interrupted attempt is removed by the next apply.
//! 4. Verifies the membership with the registry probe again.
//!
//! A log `Error` saying the SQL Server did not answer is retryable; any other configuration
//! error is permanent, with the log's message. `check` only probes. `compensate` runs
//! `Configuration.exe /U /L <work_dir>\unjoin-<server>.log` on a server joined to the expected
//! group and verifies that `MgmtDBServer` is gone; it is dangerous (§4.1) and belongs behind an
//! approval.
//!
//! **Run it one server at a time per group** (in the workflow, `concurrency = 1` on this step):
//! concurrent joins write to the same BizTalkMgmtDb and SSODB (§8.3).
//!
//! Grants: programs `C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe` and
//! `reg`; secrets: the two `password_secret`s (by default `entsso-password` and
//! `rules-engine-password`).

use biztalk_common::config_xml::{self, ConfigLog, JoinSettings};
pub use biztalk_common::configure::CONFIGURATION_EXE;
use biztalk_common::configure::{
    self, apply_joined, check_joined, check_secret_name, read_log, run_then_remove, verify_joined,
    with_evidence,
};
use biztalk_common::group::default_work_dir;
pub use biztalk_common::group::{
    Account, DEFAULT_ENTSSO_SECRET, DEFAULT_RULES_ENGINE_SECRET, Group, ServiceAccounts,
};
use biztalk_common::reg;
use drover_sdk::prelude::*;
use drover_sdk::{Executed, excerpt};
use serde::{Deserialize, Serialize};

/// The plugin.
#[derive(Default)]
pub struct JoinGroup;

/// Input: the group, the accounts and the features setup installed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The production group to join.
    pub group: Group,
    /// Service accounts and their password secrets.
    pub service_accounts: ServiceAccounts,
    /// The `InstalledFeature` list: what setup installed on the server (§3 S2).
    pub installed_features: Vec<String>,
    /// Folder on the server for the rendered XML (removed after use) and the log.
    #[serde(default = "default_work_dir")]
    pub work_dir: String,
}

/// Output: the group joined and what the configuration did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// `server/database` of the group's management database; empty after `compensate`.
    pub joined_to: String,
    /// Features the configuration log reports configured (or already configured).
    pub features: Vec<String>,
    /// The first lines of the configuration log; empty when Configuration.exe did not run.
    pub log_excerpt: String,
}

impl Output {
    fn joined(group: &Group) -> Self {
        Output { joined_to: group.name(), features: Vec::new(), log_excerpt: String::new() }
    }
}

impl Plugin for JoinGroup {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Reversible)
            .description(
                "joins a DR BizTalk runtime server to the production group (silent Configuration.exe)",
            )
            .program(CONFIGURATION_EXE)
            .program(reg::PROGRAM)
            .secret(DEFAULT_ENTSSO_SECRET)
            .secret(DEFAULT_RULES_ENGINE_SECRET)
            .compensable()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let target = ctx.target()?;
        let mut evidence = Vec::new();
        let paths = Paths::new(&input.work_dir, target);
        let output = Output::joined(&input.group);
        let outcome = if expect_group(ctx, target, &input.group, &mut evidence)? {
            check_joined(ctx, target, &input.group, &paths.xml, output)?
        } else {
            Outcome::changed(output, format!("would join {target} to the group on {}", input.group.name()))
        };
        Ok(with_evidence(outcome, evidence))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let target = ctx.target()?;
        let paths = Paths::new(&input.work_dir, target);
        let mut evidence = Vec::new();
        if expect_group(ctx, target, &input.group, &mut evidence)? {
            let outcome = apply_joined(ctx, target, &input.group, &paths.xml, Output::joined(&input.group))?;
            return Ok(with_evidence(outcome, evidence));
        }
        join(ctx, target, &input, &paths, evidence)
    }

    fn compensate(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        let target = ctx.target()?;
        let mut evidence = Vec::new();
        let group = &input.group;
        let joined = configure::expect_group(ctx, target, group, &mut evidence, |other| {
            format!("{target} is joined to another group {other}, not {}; leaving it alone", group.name())
        })?;
        if !joined {
            let empty = Output { joined_to: String::new(), features: Vec::new(), log_excerpt: String::new() };
            let outcome =
                Outcome::unchanged(empty, format!("{target} is not joined to a group; nothing to undo"));
            return Ok(with_evidence(outcome, evidence));
        }
        unjoin(ctx, target, &input, evidence)
    }
}

drover_sdk::export_plugin!(JoinGroup);

/// The rendered XML and the logs on the target.
struct Paths {
    xml: String,
    log: String,
    unjoin_log: String,
}

impl Paths {
    fn new(work_dir: &str, target: &str) -> Self {
        let dir = work_dir.trim_end_matches(['\\', '/']);
        Paths {
            xml: format!(r"{dir}\join-{target}.xml"),
            log: format!(r"{dir}\join-{target}.log"),
            unjoin_log: format!(r"{dir}\unjoin-{target}.log"),
        }
    }
}

/// Refuses input that would render a broken file: secret names the host would not recognise,
/// no installed features, no work folder.
fn validate(input: &Input) -> Result<(), StepError> {
    for name in input.service_accounts.secret_names() {
        check_secret_name(name)?;
    }
    if input.installed_features.is_empty() {
        return Err(StepError::permanent(
            "installed_features is empty; list what setup installed on the server",
        ));
    }
    if input.work_dir.trim().is_empty() {
        return Err(StepError::permanent("work_dir is empty"));
    }
    Ok(())
}

/// True if joined to `group`, false if not joined; an error if joined to another group.
fn expect_group(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    evidence: &mut Vec<Evidence>,
) -> Result<bool, StepError> {
    configure::expect_group(ctx, target, group, evidence, |other| {
        format!("{target} is joined to another group {other}; unconfigure it first")
    })
}

/// The join template's settings for `input`, passwords as secret references.
pub fn join_settings(input: &Input) -> JoinSettings {
    input.group.join_settings(&input.service_accounts, &input.installed_features)
}

/// Writes the XML, configures, removes the XML whatever happened, then judges and verifies.
fn join(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    mut evidence: Vec<Evidence>,
) -> StepResult<Output> {
    let log_text = run_then_remove(ctx, target, &paths.xml, "joined", || {
        write_and_configure(ctx, target, input, paths, &mut evidence)
    })?;
    evidence.push(Evidence::note("removed the rendered configuration", &paths.xml));
    let features = ConfigLog::parse(&log_text).configured_features();
    verify_joined(ctx, target, &input.group, "Configuration.exe", &mut evidence)?;
    let summary = format!("joined {target} to the group on {}", input.group.name());
    let output = Output { joined_to: input.group.name(), features, log_excerpt: excerpt(&log_text, 20) };
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

/// Renders and writes the XML, runs Configuration.exe and reads its log: the log's text, or an
/// error when the configuration failed.
fn write_and_configure(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    evidence: &mut Vec<Evidence>,
) -> Result<String, StepError> {
    let xml = config_xml::render_join(&join_settings(input));
    ctx.remove_file(target, &paths.log)?;
    ctx.write_file(target, &paths.xml, &xml)?;
    evidence.push(Evidence::note(format!("rendered configuration {}", paths.xml), xml));
    ctx.info(format!("configuring {target}: joining the group on {}", input.group.name()));
    let ran = ctx
        .exec(target, CONFIGURATION_EXE)
        .args(["/S", paths.xml.as_str(), "/L", paths.log.as_str()])
        .run()?;
    evidence.push(ran.evidence("Configuration.exe"));
    let log_text = read_log(ctx, target, &paths.log)?;
    evidence.push(Evidence::note(format!("configuration log {}", paths.log), excerpt(&log_text, 20)));
    judge(target, &ran, &log_text)?;
    Ok(log_text)
}

/// A configuration failed if its log has an `Error` (SQL unreachable: retryable) or it exited
/// non-zero.
fn judge(target: &str, ran: &Executed, log_text: &str) -> Result<(), StepError> {
    let log = ConfigLog::parse(log_text);
    if let Some(error) = log.first_error() {
        let message = format!("configuration of {target} failed: {}", error.message);
        return Err(if error.is_sql_unreachable() {
            StepError::retryable(message)
        } else {
            StepError::permanent(message)
        });
    }
    if ran.success() {
        return Ok(());
    }
    let code = ran.output.exit_code.map_or("killed".to_string(), |c| format!("exit code {c}"));
    let said = match excerpt(log_text, 5) {
        text if text.is_empty() => "no log".to_string(),
        text => format!("log: {text}"),
    };
    Err(StepError::permanent(format!(
        "Configuration.exe failed on {target} with {code} and no error in the log ({said})"
    )))
}

/// Unconfigures the server (`Configuration.exe /U`) and checks that it left the group.
fn unjoin(ctx: &Ctx, target: &str, input: &Input, mut evidence: Vec<Evidence>) -> StepResult<Output> {
    let paths = Paths::new(&input.work_dir, target);
    let judge = |ran: &Executed, log_text: &str| judge(target, ran, log_text);
    let log_text = biztalk_common::configure::unconfigure(
        ctx,
        target,
        &input.group.name(),
        &paths.unjoin_log,
        judge,
        &mut evidence,
    )?;
    let output =
        Output { joined_to: String::new(), features: Vec::new(), log_excerpt: excerpt(&log_text, 20) };
    let summary = format!("unconfigured {target}; it left the group on {}", input.group.name());
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

#[cfg(test)]
mod tests;
