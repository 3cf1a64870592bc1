//! `restore-configuration`: brings a rebuilt BizTalk Server **Standard Edition** runtime server
//! back into its group from the saved configuration of the failed one, with `RestoreConfig.vbe`
//! (`docs/biztalk.md`, "By edition"; seed A4: Standard Edition "cannot join the computer to
//! a BizTalk group"; Enterprise and Developer use `join-group`).
//!
//! What it does, with the command lines of `lab/PROTOCOL.md`:
//!
//! 1. Probes the membership: `reg query "HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration"
//!    /v MgmtDBServer /reg:32` (and `MgmtDBName`), in the 32-bit registry view where the 32-bit
//!    BizTalk tools write it. Joined to the expected group: nothing to do. Joined to another
//!    group: a permanent error; it never unconfigures a server on its own.
//! 2. Writes the saved configuration XML to `<work_dir>\restore-<server>.xml`: rendered from the
//!    group, accounts and features (the export of a joined server: SSO and group answered
//!    `Join`, the computer named on the root element), or the operator's saved file given as
//!    text. Passwords are XML secret references (`@@secret:NAME:xml@@`) the host fills in,
//!    XML-escaped, on the way, so the plugin never holds one.
//! 3. Runs `C:\Windows\SysWOW64\cscript.exe //nologo <RestoreConfig.vbe> <xml>`: the 32-bit script
//!    host, as the script requires on 64-bit Windows (docs/biztalk.md, "Registry", the two views). Success is what Microsoft documents:
//!    exit code 0 without displaying anything.
//! 4. **Always** removes the written XML afterwards, failure or not: it holds passwords. A
//!    leftover from an interrupted attempt is removed by the next apply.
//! 5. Verifies the membership with the registry probe again.
//!
//! The script's failure messages are not public, so any other answer (a failure, text on stdout
//! or stderr) needs an operator, with the raw output in the message: Drover does not guess
//! whether retrying helps. `check` only probes. `compensate` runs `Configuration.exe /U /L
//! <work_dir>\unrestore-<server>.log` on a server joined to the expected group and verifies that
//! `MgmtDBServer` is gone; it is dangerous (docs/biztalk.md, "Configuration.exe") and belongs behind an approval.
//!
//! The host instances of the server are not this plugin's business: the group still holds their
//! rows, and `create-host-instances` with `repair = true` re-creates their services (docs/biztalk.md, "Host instances of a replaced server").
//!
//! Grants: programs `C:\Windows\SysWOW64\cscript.exe` and `reg` (and, for `compensate`,
//! `C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe`); secrets: the two
//! `password_secret`s (by default `entsso-password` and `rules-engine-password`), or those the
//! saved file references.

use biztalk_common::config_xml;
pub use biztalk_common::configure::CONFIGURATION_EXE;
use biztalk_common::configure::{
    self, apply_joined, check_joined, check_secret_name, judge_configuration, run_then_remove, verify_joined,
    with_evidence,
};
use biztalk_common::group::default_work_dir;
pub use biztalk_common::group::{
    Account, DEFAULT_ENTSSO_SECRET, DEFAULT_RULES_ENGINE_SECRET, Group, ServiceAccounts,
};
use biztalk_common::reg;
use biztalk_common::restore_config;
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;
use drover_sdk::{Executed, excerpt};
use serde::{Deserialize, Serialize};
/// The script's file name.
const SCRIPT_NAME: &str = "RestoreConfig.vbe";

/// The plugin.
#[derive(Default)]
pub struct RestoreConfiguration;

fn default_restore_script() -> String {
    restore_config::DEFAULT_SCRIPT.into()
}

/// Input: the group, and either the fields the saved configuration is rendered from
/// (`service_accounts`, `installed_features`) or the saved file itself (`saved_configuration`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The group the server belongs to (its databases are intact).
    pub group: Group,
    /// Service accounts and their password secrets, to render the saved configuration.
    // Published as a plain object, not `anyOf [object, null]`: a workflow's static input check
    // leaves templated values out and forgives the "required" errors that causes, but not inside
    // an `anyOf`, so `account = '{{ params.domain }}\svc-sso'` would be refused.
    #[serde(default)]
    #[schemars(with = "ServiceAccounts")]
    pub service_accounts: Option<ServiceAccounts>,
    /// The `InstalledFeature` list of the failed server (what setup installed), to render it.
    #[serde(default)]
    pub installed_features: Vec<String>,
    /// The saved configuration file of the failed server as text, instead of rendering one: the
    /// passwords must be XML secret references in element text (`<Password>@@secret:NAME:xml@@</Password>`,
    /// granted to the step; not in CDATA), which the host fills in XML-escaped, and the root
    /// element must name this computer (`<Configuration ComputerName="…">`). A raw reference
    /// (`@@secret:NAME@@`) is refused: a password holding `<`, `&` or `]]>` would break the file.
    #[serde(default)]
    pub saved_configuration: Option<String>,
    /// The computer name written into the rendered file; the step's target when absent.
    /// Standard Edition restores only on a computer of that name.
    #[serde(default)]
    pub computer_name: Option<String>,
    /// Where `RestoreConfig.vbe` (a separate download) is on the server.
    #[serde(default = "default_restore_script")]
    pub restore_script: String,
    /// Folder on the server for the saved configuration (removed after use) and the
    /// unconfiguration log.
    #[serde(default = "default_work_dir")]
    pub work_dir: String,
}

/// Output: the group the server is in and what the script said.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// `server/database` of the group's management database; empty after `compensate`.
    pub joined_to: String,
    /// The computer named in the saved configuration; empty when nothing was written.
    pub computer_name: String,
    /// What RestoreConfig.vbe (or, for `compensate`, the configuration log) said; empty when
    /// nothing ran.
    pub output_excerpt: String,
}

impl Output {
    fn joined(group: &Group) -> Self {
        Output { joined_to: group.name(), computer_name: String::new(), output_excerpt: String::new() }
    }
}

impl Plugin for RestoreConfiguration {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Reversible)
            .description(
                "restores a rebuilt Standard Edition runtime server's group membership from its saved configuration (RestoreConfig.vbe)",
            )
            .program(restore_config::CSCRIPT_32)
            .program(reg::PROGRAM)
            .program(CONFIGURATION_EXE)
            .secret(DEFAULT_ENTSSO_SECRET)
            .secret(DEFAULT_RULES_ENGINE_SECRET)
            .compensable()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let target = ctx.target()?;
        let paths = Paths::new(&input.work_dir, target);
        let mut evidence = Vec::new();
        let output = Output::joined(&input.group);
        let outcome = if expect_group(ctx, target, &input.group, &mut evidence)? {
            check_joined(ctx, target, &input.group, &paths.xml, output)?
        } else {
            let summary = format!(
                "would restore the configuration of {target} with RestoreConfig.vbe (group on {})",
                input.group.name()
            );
            Outcome::changed(output, summary)
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
        restore(ctx, target, &input, &paths, evidence)
    }

    fn compensate(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        let target = ctx.target()?;
        let mut evidence = Vec::new();
        let group = &input.group;
        let joined = configure::expect_group(ctx, target, group, &mut evidence, |other| {
            format!("{target} is joined to {other}, another group than {}; leaving it alone", group.name())
        })?;
        if !joined {
            let empty = Output {
                joined_to: String::new(),
                computer_name: String::new(),
                output_excerpt: String::new(),
            };
            let outcome =
                Outcome::unchanged(empty, format!("{target} is not joined to a group; nothing to undo"));
            return Ok(with_evidence(outcome, evidence));
        }
        unconfigure(ctx, target, &input, evidence)
    }
}

drover_sdk::export_plugin!(RestoreConfiguration);

/// The saved configuration and the unconfiguration log on the target.
struct Paths {
    xml: String,
    unconfigure_log: String,
}

impl Paths {
    fn new(work_dir: &str, target: &str) -> Self {
        let dir = work_dir.trim_end_matches(['\\', '/']);
        Paths {
            xml: format!(r"{dir}\restore-{target}.xml"),
            unconfigure_log: format!(r"{dir}\unrestore-{target}.log"),
        }
    }
}

/// Refuses input that would write a broken file: neither or both ways to get the file, secret
/// names the host would not recognise, no installed features, a script that is not
/// RestoreConfig.vbe, no work folder.
fn validate(input: &Input) -> Result<(), StepError> {
    match (&input.service_accounts, &input.saved_configuration) {
        (Some(_), Some(_)) => {
            return Err(StepError::permanent(
                "give either service_accounts (to render the saved configuration) or saved_configuration, not both",
            ));
        }
        (None, None) => {
            return Err(StepError::permanent(
                "give service_accounts and installed_features (to render the saved configuration) or saved_configuration",
            ));
        }
        (Some(accounts), None) => {
            for name in accounts.secret_names() {
                check_secret_name(name)?;
            }
            if input.installed_features.is_empty() {
                return Err(StepError::permanent(
                    "installed_features is empty; list what setup installed on the failed server",
                ));
            }
        }
        (None, Some(saved)) => {
            if !saved.contains("<Configuration") {
                return Err(StepError::permanent(
                    "saved_configuration is not a BizTalk configuration file (no <Configuration> element)",
                ));
            }
            if let Some(name) = raw_reference(saved) {
                return Err(StepError::permanent(format!(
                    "saved_configuration references secret {name} raw; write @@secret:{name}:xml@@ (in element text, not CDATA) so the host fills the password in XML-escaped"
                )));
            }
        }
    }
    let file_name = input.restore_script.rsplit(['\\', '/']).next().unwrap_or_default();
    if !file_name.eq_ignore_ascii_case(SCRIPT_NAME) {
        return Err(StepError::permanent(format!(
            "restore_script {:?} is not a path to {SCRIPT_NAME}",
            input.restore_script
        )));
    }
    if input.work_dir.trim().is_empty() {
        return Err(StepError::permanent("work_dir is empty"));
    }
    Ok(())
}

/// The name of the first secret reference in `xml` the host would fill in raw (`@@secret:NAME@@`,
/// no context), which a password holding `<`, `&` or `]]>` would break out of.
fn raw_reference(xml: &str) -> Option<&str> {
    xml.split("@@secret:").skip(1).find_map(|after| {
        let inner = &after[..after.find("@@")?];
        let name = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        name.then_some(inner)
    })
}

/// True if joined to `group`, false if not joined; an error if joined to another group.
fn expect_group(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    evidence: &mut Vec<Evidence>,
) -> Result<bool, StepError> {
    configure::expect_group(ctx, target, group, evidence, |other| {
        format!("{target} is joined to {other}, another group; unconfigure it first")
    })
}

/// The file to write and the computer it names (empty for an operator's saved file, which
/// names its own).
fn saved_file(input: &Input, target: &str) -> (String, String) {
    match (&input.saved_configuration, &input.service_accounts) {
        (Some(saved), _) => (saved.clone(), String::new()),
        (None, Some(accounts)) => {
            let computer = input.computer_name.clone().unwrap_or_else(|| target.to_string());
            let settings = input.group.join_settings(accounts, &input.installed_features);
            (config_xml::render_saved(&computer, &settings), computer)
        }
        (None, None) => unreachable!("validate refuses input with neither"),
    }
}

/// Writes the file, runs the script, removes the file whatever happened, then verifies.
fn restore(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    mut evidence: Vec<Evidence>,
) -> StepResult<Output> {
    let (xml, computer_name) = saved_file(input, target);
    let stdout = run_then_remove(ctx, target, &paths.xml, "restored", || {
        write_and_run(ctx, target, input, paths, &xml, &mut evidence)
    })?;
    evidence.push(Evidence::note("removed the saved configuration", &paths.xml));
    verify_joined(ctx, target, &input.group, "RestoreConfig.vbe", &mut evidence)?;
    let summary = format!(
        "restored the configuration of {target} with RestoreConfig.vbe; joined to the group on {}",
        input.group.name()
    );
    let output =
        Output { joined_to: input.group.name(), computer_name, output_excerpt: excerpt(&stdout, 20) };
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

/// Writes the saved configuration and runs RestoreConfig.vbe under the 32-bit script host: its
/// standard output, or an error when it failed.
fn write_and_run(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    paths: &Paths,
    xml: &str,
    evidence: &mut Vec<Evidence>,
) -> Result<String, StepError> {
    ctx.write_file(target, &paths.xml, xml)?;
    evidence.push(Evidence::note(format!("saved configuration {}", paths.xml), xml));
    ctx.info(format!(
        "restoring the configuration of {target} with RestoreConfig.vbe (group on {})",
        input.group.name()
    ));
    let ran = ctx
        .exec(target, restore_config::CSCRIPT_32)
        .args(restore_config::args(&input.restore_script, &paths.xml))
        .run()?;
    let mut item = ran.evidence("RestoreConfig.vbe");
    if item.excerpt.is_empty() {
        item.excerpt = excerpt(&ran.stderr(), 5);
    }
    evidence.push(item);
    match restore_config::outcome(ran.output.exit_code, &ran.stdout(), &ran.stderr()) {
        Ok(()) => Ok(ran.stdout()),
        Err(unknown) => Err(unrecognized::needs_operator(
            "RestoreConfig.vbe",
            target,
            &unknown.why,
            ran.output.exit_code,
            &[("stdout", &ran.stdout()), ("stderr", &ran.stderr())],
        )),
    }
}

/// Unconfigures the server (`Configuration.exe /U`) and checks that it left the group.
fn unconfigure(ctx: &Ctx, target: &str, input: &Input, mut evidence: Vec<Evidence>) -> StepResult<Output> {
    let paths = Paths::new(&input.work_dir, target);
    let judge = |ran: &Executed, log_text: &str| {
        judge_configuration(target, "unconfiguration", ran, &paths.unconfigure_log, log_text)
    };
    let log_text = biztalk_common::configure::unconfigure(
        ctx,
        target,
        &input.group.name(),
        &paths.unconfigure_log,
        judge,
        &mut evidence,
    )?;
    let output = Output {
        joined_to: String::new(),
        computer_name: String::new(),
        output_excerpt: excerpt(&log_text, 20),
    };
    let summary = format!("unconfigured {target}; it left the group on {}", input.group.name());
    Ok(with_evidence(Outcome::changed(output, summary), evidence))
}

#[cfg(test)]
mod tests;
