//! `prerequisites-check`: a read-only step that checks the platform prerequisites of a BizTalk
//! runtime server (`docs/biztalk.md`, "Prerequisites") on the step's target,
//! each with one command of `lab/PROTOCOL.md`:
//!
//! | id | what | command |
//! |---|---|---|
//! | `os-build` | Windows Server 2016/2019/2022 (build 14393, 17763, 20348) | `Win32_OperatingSystem` |
//! | `memory` | at least 4 GiB | `Win32_ComputerSystem` |
//! | `computer-name` | at most 15 characters | `Win32_ComputerSystem` |
//! | `c-free-space`, `c-ntfs` | at least 10 GiB free on an NTFS `C:` | `Get-Volume` |
//! | `dotnet` | .NET Framework release ≥ 461808 (4.7.2) | `reg query` |
//! | `vcredist-x86`, `vcredist-x64` | VC++ 2015-2019 `Installed` = 1 | `reg query` |
//! | `oledb` | MSOLEDBSQL ≥ 18.3 | `reg query` |
//! | `msdtc` | network DTC inbound and outbound enabled | `Get-DtcNetworkSetting` |
//! | `sql` | `sql_server` answers on BizTalkMgmtDb with Windows authentication | `sqlcmd` |
//! | `domain-group:<name>` | each domain group exists | `net group "<name>" /domain` |
//! | `biztalk-install-path`, `biztalk-version` | BizTalk installed, `BTSNTSvc.exe` at the expected file version | `reg query`, PowerShell |
//! | `local-admin` | the account Drover runs as is a local administrator, enabled (`S-1-5-32-544`) | `whoami /groups /fo csv` |
//! | `sql-sysadmin` | that account is `sysadmin` on `sql_server` | `sqlcmd … IS_SRVROLEMEMBER('sysadmin')` |
//! | `msdtc-end-to-end` | a transaction propagates between the server and `sql_server` | `Test-Dtc` |
//! | `cu-level` | the BizTalk Server 2020 cumulative update of `reference_server` (only with one) | PowerShell (Uninstall entries), on both |
//! | `edition` | the BizTalk edition of `reference_server` (only with one) | `reg query … ProductEdition /reg:32`, on both |
//!
//! Every check runs even when an earlier one fails, so the report lists every problem at once.
//! A failed mandatory check fails the step (permanently, naming every failure and what to do
//! about it); a check named in
//! `optional` (by id, or by family such as `domain-group`) only warns. A target that cannot be
//! reached is a retryable error. `check` runs the same probes as `apply`: both are read-only.
//!
//! Grants: programs `powershell.exe`, `reg`, `sqlcmd`, `net`, `whoami`; the reference server as
//! a target when `reference_server` is set; no secrets.

mod probes;

use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::probes::{Finding, Probe};

/// The plugin.
#[derive(Default)]
pub struct PrerequisitesCheck;

/// The domain groups of docs/biztalk.md, "Prerequisites", checked when the input names none.
pub const DEFAULT_DOMAIN_GROUPS: [&str; 8] = [
    "SSO Administrators",
    "SSO Affiliate Administrators",
    "BizTalk Server Administrators",
    "BizTalk Server Operators",
    "BizTalk Server B2B Operators",
    "BizTalk Server Read Only Users",
    "BizTalk Application Users",
    "BizTalk Isolated Host Users",
];

/// Check ids other than the per-group `domain-group:<name>` ones.
pub const CHECK_IDS: [&str; 19] = [
    "os-build",
    "memory",
    "computer-name",
    "c-free-space",
    "c-ntfs",
    "dotnet",
    "vcredist-x86",
    "vcredist-x64",
    "oledb",
    "msdtc",
    "sql",
    "biztalk-install-path",
    "biztalk-version",
    "domain-group",
    "local-admin",
    "sql-sysadmin",
    "msdtc-end-to-end",
    "cu-level",
    "edition",
];

fn default_domain_groups() -> Vec<String> {
    DEFAULT_DOMAIN_GROUPS.iter().map(|g| g.to_string()).collect()
}

/// Input: what the server must reach and match.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// SQL Server the runtime must reach with Windows authentication (the one holding
    /// BizTalkMgmtDb), e.g. `PRDSQL01`.
    pub sql_server: String,
    /// File version of `BTSNTSvc.exe` the server must have: production's, e.g. `3.13.717.0`.
    pub expected_biztalk_version: String,
    /// Domain groups that must exist; by default those of docs/biztalk.md, "Prerequisites".
    #[serde(default = "default_domain_groups")]
    pub domain_groups: Vec<String>,
    /// Checks whose failure only warns: ids such as `oledb` or `domain-group:BizTalk Application
    /// Users`, or a family such as `domain-group` for all of them.
    #[serde(default)]
    pub optional: Vec<String>,
    /// A production server of the group, e.g. `PRDBTS01`, whose BizTalk cumulative update and
    /// edition the server must have (checks `cu-level` and `edition`; grant it as a target of
    /// the step). Without it neither is compared.
    #[serde(default)]
    pub reference_server: Option<String>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met.
    Pass,
    /// Not met, but the check is optional.
    Warn,
    /// Not met, and the check is mandatory.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Check {
    /// Such as `dotnet` or `domain-group:SSO Administrators`.
    pub id: String,
    /// How it came out.
    pub status: Status,
    /// What was required.
    pub expected: String,
    /// What the server has.
    pub actual: String,
    /// False when named in `optional`.
    pub mandatory: bool,
    /// What to do about it, when not met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// Output: every check, and how many failed or warned.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
    /// Mandatory checks that failed (always 0 in a successful outcome).
    pub failed: usize,
    /// Optional checks that were not met.
    pub warnings: usize,
}

impl Plugin for PrerequisitesCheck {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::ReadOnly)
            .description(
                "checks a BizTalk runtime server's platform prerequisites; fails listing every unmet one",
            )
            .program(biztalk_common::powershell::PROGRAM)
            .program(biztalk_common::reg::PROGRAM)
            .program(probes::SQLCMD)
            .program(probes::NET)
            .program(probes::WHOAMI)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        run(ctx, &input)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        run(ctx, &input)
    }
}

drover_sdk::export_plugin!(PrerequisitesCheck);

/// Runs every probe on the target, grades the findings and fails on a mandatory failure.
fn run(ctx: &Ctx, input: &Input) -> StepResult<Output> {
    validate_optional(input)?;
    let target = ctx.target()?;
    let mut probe = Probe::new(ctx, target);
    let findings = probe.all(input)?;
    let checks: Vec<Check> = findings.into_iter().map(|f| grade(f, &input.optional)).collect();
    let output = summarise(checks);
    for check in output.checks.iter().filter(|c| c.status != Status::Pass) {
        ctx.warn(format!("{}: expected {}, found {}", check.id, check.expected, check.actual));
    }
    if output.failed > 0 {
        return Err(StepError::permanent(failure_message(target, &output)));
    }
    let summary = match output.warnings {
        0 => format!("all {} prerequisites met on {target}", output.checks.len()),
        n => format!("mandatory prerequisites met on {target}; {n} optional not met"),
    };
    let mut outcome = Outcome::unchanged(output, summary);
    outcome.evidence = probe.into_evidence();
    Ok(outcome)
}

/// Refuses `optional` entries that name no check, so a typo cannot silently keep a check
/// mandatory.
fn validate_optional(input: &Input) -> Result<(), StepError> {
    let unknown: Vec<&str> = input
        .optional
        .iter()
        .map(String::as_str)
        .filter(|id| !CHECK_IDS.contains(id) && !is_group_check(id, &input.domain_groups))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(StepError::permanent(format!(
        "optional names unknown checks: {}; known: {}, domain-group:<name>",
        unknown.join(", "),
        CHECK_IDS.join(", ")
    )))
}

fn is_group_check(id: &str, groups: &[String]) -> bool {
    id.strip_prefix("domain-group:").is_some_and(|name| groups.iter().any(|g| g == name))
}

/// A finding becomes a check: mandatory unless its id or family is optional.
fn grade(finding: Finding, optional: &[String]) -> Check {
    let family = finding.id.split(':').next().unwrap_or_default();
    let mandatory = !optional.iter().any(|o| *o == finding.id || o == family);
    let status = match (finding.met, mandatory) {
        (true, _) => Status::Pass,
        (false, false) => Status::Warn,
        (false, true) => Status::Fail,
    };
    Check {
        id: finding.id,
        status,
        expected: finding.expected,
        actual: finding.actual,
        mandatory,
        remedy: finding.remedy,
    }
}

fn summarise(checks: Vec<Check>) -> Output {
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
    Output { checks, failed, warnings }
}

/// `N mandatory prerequisites not met on T: id (expected …, found …[; what to do]); …`, naming
/// every failure.
fn failure_message(target: &str, output: &Output) -> String {
    let failures: Vec<String> = output
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| match &c.remedy {
            Some(remedy) => format!("{} (expected {}, found {}; {remedy})", c.id, c.expected, c.actual),
            None => format!("{} (expected {}, found {})", c.id, c.expected, c.actual),
        })
        .collect();
    let noun = if failures.len() == 1 { "prerequisite" } else { "prerequisites" };
    format!("{} mandatory {noun} not met on {target}: {}", failures.len(), failures.join("; "))
}

#[cfg(test)]
mod tests;
