//! `join-group`: joins the step's target, a DR BizTalk runtime server with the binaries
//! installed, to the production BizTalk group by a silent configuration
//! (`docs/biztalk.md`, "DR site preparation" and "Configuration.exe"): SSO and group answered `Join`, no default hosts,
//! the Rules Engine pointed at production.
//!
//! What it does, with the command lines of `lab/PROTOCOL.md`:
//!
//! 1. Probes the membership: `reg query "HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration"
//!    /v MgmtDBServer /reg:32` (and `MgmtDBName`), in the 32-bit registry view where the 32-bit
//!    BizTalk tools write it. Joined to the expected group: nothing to do. Joined to another
//!    group: a permanent error; it never unconfigures a server on its own.
//! 2. Renders the join configuration XML with the passwords as XML secret references
//!    (`@@secret:NAME:xml@@`, filled in XML-escaped), writes it to `<work_dir>\join-<server>.xml` (the host fills in the
//!    passwords on the way, so the plugin never holds one) and runs
//!    `Configuration.exe /S <xml> /L <work_dir>\join-<server>.log`.
//! 3. Reads the log back, and **always** removes the rendered XML afterwards, failure or not:
//!    it holds passwords. A leftover from an interrupted attempt is removed by the next apply.
//! 4. Verifies the membership with the registry probe again.
//!
//! A server in no group whose Enterprise SSO is configured (`reg query
//! "HKLM\SOFTWARE\Microsoft\ENTSSO\SQL" /v Server`) was left half-configured by an earlier
//! configuration: the join stops before step 2, permanently, naming the fix ([`partial`]); a
//! configuration that fails and leaves the server so is told the same way.
//!
//! The run is judged by its exit code and log (`biztalk_common::config_log`): the group's SQL
//! Server not answering is retryable, a refused logon permanent, the master secret server's
//! Enterprise SSO service not answering (`0xC0002A0F`) retryable, the master secret out of reach
//! (`0xC0002A1F`) permanent, each naming the server and the fix, and anything Drover does not
//! recognise needs an operator, with the log in the message. `check` only probes. `compensate` runs
//! `Configuration.exe /U /L <work_dir>\unjoin-<server>.log` on a server joined to the expected
//! group and verifies that `MgmtDBServer` is gone; it is dangerous (docs/biztalk.md, "Configuration.exe") and belongs behind an
//! approval.
//!
//! **Run it one server at a time per group** (in the workflow, `concurrency = 1` on this step):
//! concurrent joins write to the same BizTalkMgmtDb and SSODB (docs/biztalk.md, "Configuration.exe").
//!
//! Grants: programs `C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe` and
//! `reg`; secrets: the two `password_secret`s (by default `entsso-password` and
//! `rules-engine-password`).
//!
//! Two other inputs change what is configured:
//!
//! - `exported_configuration` (a rebuilt server, Seed A): the server is configured from the file
//!   exported from it before it failed instead of the template, with every feature it had, and
//!   the run names each feature of the file that did not come back ([`exported`]);
//! - `sso_server` (the DR site's SSO server, Seed B): Enterprise SSO alone, joined, and the
//!   master secret's backup staged for the promotion at failover ([`sso`]).

use biztalk_common::config_log::ConfigLog;
use biztalk_common::config_xml::{self, JoinSettings};
pub use biztalk_common::configure::CONFIGURATION_EXE;
use biztalk_common::configure::{
    self, apply_joined, check_joined, check_secret_name, judge_configuration, read_log, run_then_remove,
    verify_joined, with_evidence,
};
use biztalk_common::group::default_work_dir;
pub use biztalk_common::group::{
    Account, DEFAULT_ENTSSO_SECRET, DEFAULT_RULES_ENGINE_SECRET, Group, ServiceAccounts,
};
use biztalk_common::reg;
use drover_sdk::prelude::*;
use drover_sdk::{Executed, excerpt};
use serde::{Deserialize, Serialize};

pub mod exported;
pub mod partial;
pub mod sso;

use exported::ExportedConfiguration;
use sso::SsoServer;

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
    /// The `InstalledFeature` list: what setup installed on the server (docs/biztalk.md, "The configuration XML"). Not used with
    /// `exported_configuration`, whose file has its own.
    #[serde(default)]
    pub installed_features: Vec<String>,
    /// Configure the server from the configuration file exported from it before it failed,
    /// instead of the join template.
    // Published as a plain object (see restore-configuration's `service_accounts`): a workflow's
    // static input check forgives templated values only outside an `anyOf`.
    #[serde(default)]
    #[schemars(with = "ExportedConfiguration")]
    pub exported_configuration: Option<ExportedConfiguration>,
    /// Configure Enterprise SSO alone: the DR site's master secret server in waiting.
    #[serde(default)]
    #[schemars(with = "SsoServer")]
    pub sso_server: Option<SsoServer>,
    /// Folder on the server for the rendered XML (removed after use) and the log.
    #[serde(default = "default_work_dir")]
    pub work_dir: String,
}

/// Output: the group joined and what the configuration did.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Output {
    /// `server/database` of the group's management database; empty after `compensate`.
    pub joined_to: String,
    /// Features the configuration log shows configured (their `Feature Name`, such as
    /// `SSOServer,Engine`).
    pub features: Vec<String>,
    /// The first lines of the configuration log; empty when Configuration.exe did not run.
    pub log_excerpt: String,
    /// `server:path` of the exported configuration file the server was configured from; empty
    /// with the template (and then left out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exported_from: String,
    /// Features of the exported file the configuration log does not show configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_features: Vec<String>,
    /// With `sso_server`: the master secret's backup staged for the promotion at failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_backup: Option<sso::Readiness>,
}

impl Output {
    fn joined(group: &Group) -> Self {
        Output { joined_to: group.name(), ..Output::default() }
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
        if let Some(sso) = &input.sso_server {
            return sso::check(ctx, target, &input, sso);
        }
        let mut evidence = Vec::new();
        let paths = Paths::new(&input.work_dir, target);
        let output = Output::joined(&input.group);
        let joined = expect_group(ctx, target, &input.group, &mut evidence)?;
        if !joined {
            partial::refuse_partial(ctx, target, &input, &mut evidence)?;
        }
        let outcome = if joined {
            check_joined(ctx, target, &input.group, &paths.xml, output)?
        } else if let Some(export) = &input.exported_configuration {
            let prepared = exported::prepare(ctx, target, &input, export)?;
            let summary = format!(
                "would join {target} to the group on {} from its exported configuration {} ({})",
                input.group.name(),
                prepared.location,
                prepared.features.join(", ")
            );
            Outcome::changed(output, summary)
        } else {
            Outcome::changed(output, format!("would join {target} to the group on {}", input.group.name()))
        };
        Ok(with_evidence(outcome, evidence))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let target = ctx.target()?;
        if let Some(sso) = &input.sso_server {
            return sso::apply(ctx, target, &input, sso);
        }
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
        if let Some(sso) = &input.sso_server {
            return sso::compensate(ctx, target, &input, sso);
        }
        let mut evidence = Vec::new();
        let group = &input.group;
        let joined = configure::expect_group(ctx, target, group, &mut evidence, |other| {
            format!("{target} is joined to another group {other}, not {}; leaving it alone", group.name())
        })?;
        if !joined {
            let empty = Output::default();
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
/// no installed features (for a rendered file), no work folder, both other modes at once.
fn validate(input: &Input) -> Result<(), StepError> {
    for name in input.service_accounts.secret_names() {
        check_secret_name(name)?;
    }
    if input.exported_configuration.is_some() && input.sso_server.is_some() {
        return Err(StepError::permanent("give exported_configuration or sso_server, not both"));
    }
    if let Some(export) = &input.exported_configuration {
        export.validate()?;
    } else if input.installed_features.is_empty() {
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

/// Writes the XML (the template, or the server's exported file), configures, removes the XML
/// whatever happened, then judges and verifies; from an exported file, names each of its
/// features that did not come back.
fn join(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    mut evidence: Vec<Evidence>,
) -> StepResult<Output> {
    partial::refuse_partial(ctx, target, input, &mut evidence)?;
    let prepared = match &input.exported_configuration {
        Some(export) => Some(exported::prepare(ctx, target, input, export)?),
        None => None,
    };
    let xml = match &prepared {
        Some(p) => p.xml.clone(),
        None => config_xml::render_join(&join_settings(input)),
    };
    let ran = run_then_remove(ctx, target, &paths.xml, "joined", || {
        write_and_configure(ctx, target, input, paths, &xml, &mut evidence)
    });
    let log_text =
        ran.map_err(|failure| partial::after_failure(ctx, target, input, failure, &mut evidence))?;
    evidence.push(Evidence::note("removed the rendered configuration", &paths.xml));
    let features = ConfigLog::parse(&log_text).configured_features();
    verify_joined(ctx, target, &input.group, "Configuration.exe", &mut evidence)?;
    let mut summary = format!("joined {target} to the group on {}", input.group.name());
    let mut output = Output {
        joined_to: input.group.name(),
        features,
        log_excerpt: excerpt(&log_text, 20),
        ..Output::default()
    };
    if let (Some(prepared), Some(export)) = (&prepared, &input.exported_configuration) {
        let missing = exported::missing_features(&prepared.features, &log_text);
        let required = exported::required_missing(&missing, export);
        if !required.is_empty() {
            return Err(StepError::needs_operator(format!(
                "joined {target} to the group on {} from {}, but these features of its exported configuration \
                 were not configured: {} (configuration log {}: {}); install what they need with BizTalk \
                 Server setup and configure them with the Configuration tool, or accept the server without them",
                input.group.name(),
                prepared.location,
                required.join(", "),
                paths.log,
                excerpt(&log_text, 40)
            )));
        }
        summary = format!("{summary} from its exported configuration {}", prepared.location);
        if !missing.is_empty() {
            let list = missing.join(", ");
            ctx.warn(format!("{target}: features of the exported configuration not configured: {list}"));
            evidence.push(Evidence::note("features not restored", &list));
            summary = format!("{summary}; not configured: {list}");
        }
        output.exported_from = prepared.location.clone();
        output.missing_features = missing;
    }
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

/// Renders and writes the XML, runs Configuration.exe and reads its log: the log's text, or an
/// error when the configuration failed.
fn write_and_configure(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    xml: &str,
    evidence: &mut Vec<Evidence>,
) -> Result<String, StepError> {
    ctx.remove_file(target, &paths.log)?;
    ctx.write_file(target, &paths.xml, xml)?;
    evidence.push(Evidence::note(format!("rendered configuration {}", paths.xml), xml));
    ctx.info(format!("configuring {target}: joining the group on {}", input.group.name()));
    let ran = ctx
        .exec(target, CONFIGURATION_EXE)
        .args(["/S", paths.xml.as_str(), "/L", paths.log.as_str()])
        .run()?;
    evidence.push(ran.evidence("Configuration.exe"));
    let log_text = read_log(ctx, target, &paths.log)?;
    evidence.push(Evidence::note(format!("configuration log {}", paths.log), excerpt(&log_text, 20)));
    judge_configuration(target, "configuration", &ran, &paths.log, &log_text)?;
    Ok(log_text)
}

/// Unconfigures the server (`Configuration.exe /U`) and checks that it left the group.
fn unjoin(ctx: &Ctx, target: &str, input: &Input, mut evidence: Vec<Evidence>) -> StepResult<Output> {
    let paths = Paths::new(&input.work_dir, target);
    let judge = |ran: &Executed, log_text: &str| {
        judge_configuration(target, "unconfiguration", ran, &paths.unjoin_log, log_text)
    };
    let log_text = biztalk_common::configure::unconfigure(
        ctx,
        target,
        &input.group.name(),
        &paths.unjoin_log,
        judge,
        &mut evidence,
    )?;
    let output = Output { log_excerpt: excerpt(&log_text, 20), ..Output::default() };
    let summary = format!("unconfigured {target}; it left the group on {}", input.group.name());
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

#[cfg(test)]
mod tests;
