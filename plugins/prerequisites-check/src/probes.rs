//! The probes: each runs one command of `lab/PROTOCOL.md` on the target and turns its answer
//! into findings (met or not, expected, actual). A command that fails or answers something
//! unreadable makes its checks unmet with the reason as the actual value; only a host error (a
//! target that cannot be reached, an ungranted program) stops the probes.
//!
//! Grading (mandatory or optional) is the caller's business, not this module's. The checks a
//! join needs beyond the platform (rights, cumulative update, edition, MSDTC end to end) are in
//! [`readiness`].

mod readiness;

pub use readiness::WHOAMI;

use biztalk_common::powershell::{self, ComputerSystem, DtcNetworkSetting, OperatingSystem, Volume};
use biztalk_common::reg::{self, RegAnswer};
use drover_sdk::prelude::*;
use drover_sdk::{Executed, excerpt};

use crate::Input;

/// `sqlcmd`, as granted and sent.
pub const SQLCMD: &str = "sqlcmd";
/// `net`, as granted and sent.
pub const NET: &str = "net";

/// Supported Windows Server builds: 2016, 2019, 2022 [docs/biztalk.md, "Prerequisites"].
const SUPPORTED_BUILDS: [(&str, &str); 3] =
    [("14393", "Windows Server 2016"), ("17763", "Windows Server 2019"), ("20348", "Windows Server 2022")];
const GIB: u64 = 1024 * 1024 * 1024;
const MIN_MEMORY: u64 = 4 * GIB;
const MIN_FREE_C: u64 = 10 * GIB;
const MAX_COMPUTER_NAME: usize = 15;
/// .NET Framework 4.7.2.
const MIN_DOTNET_RELEASE: u32 = 461808;
const MIN_OLEDB: &str = "18.3";

/// One check's raw result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check id.
    pub id: String,
    /// Whether the requirement is met.
    pub met: bool,
    /// What was required.
    pub expected: String,
    /// What the server has, or why it could not be read.
    pub actual: String,
    /// What an administrator does about it, when the check is not met.
    pub remedy: Option<String>,
}

impl Finding {
    fn new(id: &str, met: bool, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Finding { id: id.into(), met, expected: expected.into(), actual: actual.into(), remedy: None }
    }

    /// The finding, with what to do when it is not met.
    fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        if !self.met {
            self.remedy = Some(remedy.into());
        }
        self
    }

    fn unreadable(id: &str, expected: impl Into<String>, why: &str) -> Self {
        Finding::new(id, false, expected, format!("could not be read: {why}"))
    }
}

/// Runs commands on one target and keeps their evidence.
pub struct Probe<'c, 'h> {
    ctx: &'c Ctx<'h>,
    target: String,
    evidence: Vec<Evidence>,
}

impl<'c, 'h> Probe<'c, 'h> {
    /// A probe of `target`.
    pub fn new(ctx: &'c Ctx<'h>, target: &str) -> Self {
        Probe { ctx, target: target.into(), evidence: Vec::new() }
    }

    /// The evidence of every command run.
    pub fn into_evidence(self) -> Vec<Evidence> {
        self.evidence
    }

    /// Every probe, in PROTOCOL.md's order of "Prerequisites" of docs/biztalk.md.
    pub fn all(&mut self, input: &Input) -> Result<Vec<Finding>, StepError> {
        let mut findings = vec![self.os()?];
        findings.extend(self.computer_system()?);
        findings.extend(self.volume()?);
        findings.push(self.dotnet()?);
        findings.push(self.vcredist("vcredist-x86", reg::VC_RUNTIME_X86)?);
        findings.push(self.vcredist("vcredist-x64", reg::VC_RUNTIME_X64)?);
        findings.push(self.oledb()?);
        findings.push(self.msdtc()?);
        findings.push(self.sql(&input.sql_server)?);
        for group in &input.domain_groups {
            findings.push(self.domain_group(group)?);
        }
        findings.extend(self.biztalk(&input.expected_biztalk_version)?);
        findings.push(self.local_admin()?);
        findings.push(self.sql_sysadmin(&input.sql_server)?);
        findings.push(self.msdtc_end_to_end(&input.sql_server)?);
        if let Some(reference) = &input.reference_server {
            findings.push(self.cumulative_update(reference)?);
            findings.push(self.edition(reference)?);
        }
        Ok(findings)
    }

    /// Runs `program args` on the target and records its evidence; host errors propagate
    /// (retryable ones stay retryable).
    fn run(&mut self, label: &str, program: &str, args: Vec<String>) -> Result<Executed, StepError> {
        let target = self.target.clone();
        self.run_on(&target, label, program, args)
    }

    /// [`Probe::run`] on another host (a production server the target is compared with).
    fn run_on(
        &mut self,
        host: &str,
        label: &str,
        program: &str,
        args: Vec<String>,
    ) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(host, program).args(args).run()?;
        let mut evidence = ran.evidence(label);
        if evidence.excerpt.is_empty() {
            evidence.excerpt = excerpt(&ran.stderr(), 20);
        }
        self.evidence.push(evidence);
        Ok(ran)
    }

    /// Runs a PowerShell query; its stdout, or why it failed.
    fn powershell(&mut self, label: &str, script: &str) -> Result<Result<String, String>, StepError> {
        let ran = self.run(label, powershell::PROGRAM, powershell::args(script))?;
        Ok(if ran.success() { Ok(ran.stdout()) } else { Err(failure(&ran)) })
    }

    /// Reads one registry value; the answer, or why it could not be read.
    fn reg(&mut self, key: &str, value: &str) -> Result<Result<RegAnswer, String>, StepError> {
        let ran = self.run(&format!("registry {value}"), reg::PROGRAM, reg::query_args(key, value))?;
        let answer = reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value);
        Ok(answer.map_err(|e| e.to_string()))
    }

    fn os(&mut self) -> Result<Finding, StepError> {
        let expected = "build 14393, 17763 or 20348 (Windows Server 2016, 2019, 2022)";
        let os = match self.powershell("operating system", powershell::OPERATING_SYSTEM)? {
            Ok(stdout) => powershell::single::<OperatingSystem>(&stdout).map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        Ok(match os {
            Ok(os) => {
                let met = SUPPORTED_BUILDS.iter().any(|(build, _)| *build == os.build_number);
                Finding::new("os-build", met, expected, format!("build {} ({})", os.build_number, os.caption))
            }
            Err(why) => Finding::unreadable("os-build", expected, &why),
        })
    }

    fn computer_system(&mut self) -> Result<Vec<Finding>, StepError> {
        let memory = format!("at least {}", gib(MIN_MEMORY));
        let name = format!("at most {MAX_COMPUTER_NAME} characters");
        let system = match self.powershell("computer system", powershell::COMPUTER_SYSTEM)? {
            Ok(stdout) => powershell::single::<ComputerSystem>(&stdout).map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        Ok(match system {
            Ok(cs) => {
                let length = cs.name.chars().count();
                vec![
                    Finding::new(
                        "memory",
                        cs.total_physical_memory >= MIN_MEMORY,
                        memory,
                        gib(cs.total_physical_memory),
                    ),
                    Finding::new(
                        "computer-name",
                        length <= MAX_COMPUTER_NAME,
                        name,
                        format!("{} ({length} characters)", cs.name),
                    ),
                ]
            }
            Err(why) => vec![
                Finding::unreadable("memory", memory, &why),
                Finding::unreadable("computer-name", name, &why),
            ],
        })
    }

    fn volume(&mut self) -> Result<Vec<Finding>, StepError> {
        let free = format!("at least {} free", gib(MIN_FREE_C));
        let volume = match self.powershell("volume C:", powershell::VOLUME_C)? {
            Ok(stdout) => powershell::single::<Volume>(&stdout).map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        Ok(match volume {
            Ok(v) => vec![
                Finding::new(
                    "c-free-space",
                    v.size_remaining >= MIN_FREE_C,
                    free,
                    format!("{} free", gib(v.size_remaining)),
                ),
                Finding::new("c-ntfs", v.is_ntfs(), "NTFS", v.file_system()),
            ],
            Err(why) => vec![
                Finding::unreadable("c-free-space", free, &why),
                Finding::unreadable("c-ntfs", "NTFS", &why),
            ],
        })
    }

    fn dotnet(&mut self) -> Result<Finding, StepError> {
        let expected = format!("release at least {MIN_DOTNET_RELEASE} (.NET Framework 4.7.2)");
        Ok(match self.reg(reg::NET_FRAMEWORK_FULL, reg::RELEASE)? {
            Ok(answer) => match answer.dword() {
                Some(release) => Finding::new(
                    "dotnet",
                    release >= MIN_DOTNET_RELEASE,
                    expected,
                    format!("release {release}"),
                ),
                None => Finding::new("dotnet", false, expected, describe(&answer)),
            },
            Err(why) => Finding::unreadable("dotnet", expected, &why),
        })
    }

    fn vcredist(&mut self, id: &str, key: &str) -> Result<Finding, StepError> {
        let expected = "Installed = 1";
        Ok(match self.reg(key, reg::INSTALLED)? {
            Ok(answer) => match answer.dword() {
                Some(installed) => {
                    Finding::new(id, installed == 1, expected, format!("Installed = {installed}"))
                }
                None => Finding::new(id, false, expected, describe(&answer)),
            },
            Err(why) => Finding::unreadable(id, expected, &why),
        })
    }

    fn oledb(&mut self) -> Result<Finding, StepError> {
        let expected = format!("MSOLEDBSQL {MIN_OLEDB} or later");
        Ok(match self.reg(reg::MSOLEDBSQL, reg::INSTALLED_VERSION)? {
            Ok(answer) => match answer.text() {
                Some(version) => {
                    let met = compare_versions(version, MIN_OLEDB).is_some_and(|o| o.is_ge());
                    Finding::new("oledb", met, expected, version)
                }
                None => Finding::new("oledb", false, expected, describe(&answer)),
            },
            Err(why) => Finding::unreadable("oledb", expected, &why),
        })
    }

    fn msdtc(&mut self) -> Result<Finding, StepError> {
        let expected = "network DTC inbound and outbound transactions enabled";
        let dtc = match self.powershell("MSDTC network settings", powershell::DTC_NETWORK_SETTING)? {
            Ok(stdout) => powershell::single::<DtcNetworkSetting>(&stdout).map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        Ok(match dtc {
            Ok(d) => {
                let met = d.inbound_transactions_enabled && d.outbound_transactions_enabled;
                let actual = format!(
                    "inbound {}, outbound {}",
                    d.inbound_transactions_enabled, d.outbound_transactions_enabled
                );
                Finding::new("msdtc", met, expected, actual)
            }
            Err(why) => Finding::unreadable("msdtc", expected, &why),
        })
    }

    fn sql(&mut self, server: &str) -> Result<Finding, StepError> {
        let expected = format!("{server} answers on BizTalkMgmtDb with Windows authentication");
        let args = ["-S", server, "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"];
        let ran = self.run(&format!("SQL {server}"), SQLCMD, args.iter().map(|a| a.to_string()).collect())?;
        let answered = ran.success() && ran.stdout().lines().next().is_some_and(|l| l.trim() == "1");
        let actual = if answered { "answered select 1".to_string() } else { failure(&ran) };
        Ok(Finding::new("sql", answered, expected, actual))
    }

    fn domain_group(&mut self, group: &str) -> Result<Finding, StepError> {
        let id = format!("domain-group:{group}");
        let args = vec!["group".to_string(), group.to_string(), "/domain".to_string()];
        let ran = self.run(&format!("domain group {group}"), NET, args)?;
        let absent = ran.stderr().contains("The group name could not be found");
        let actual = match (ran.success(), absent) {
            (true, _) => "present".to_string(),
            (false, true) => "absent".to_string(),
            (false, false) => failure(&ran),
        };
        Ok(Finding::new(&id, ran.success(), "present", actual))
    }

    fn biztalk(&mut self, expected_version: &str) -> Result<Vec<Finding>, StepError> {
        let installed = "BTSINSTALLPATH set";
        let version = format!("BTSNTSvc.exe {expected_version}");
        let path = match self.reg(reg::SESSION_ENVIRONMENT, reg::BTSINSTALLPATH)? {
            Ok(RegAnswer::Found(value)) => value.to_string(),
            Ok(RegAnswer::Missing) => {
                let not_installed = "not installed (no BTSINSTALLPATH)";
                return Ok(vec![
                    Finding::new("biztalk-install-path", false, installed, not_installed),
                    Finding::new("biztalk-version", false, version, not_installed),
                ]);
            }
            Err(why) => {
                return Ok(vec![
                    Finding::unreadable("biztalk-install-path", installed, &why),
                    Finding::unreadable("biztalk-version", version, &why),
                ]);
            }
        };
        let actual = match self.powershell("BizTalk file version", powershell::BIZTALK_FILE_VERSION)? {
            Ok(stdout) => Ok(stdout.trim().to_string()),
            Err(why) => Err(why),
        };
        let version_finding = match actual {
            Ok(found) => {
                let met = compare_versions(&found, expected_version).is_some_and(|o| o.is_eq());
                Finding::new("biztalk-version", met, version, format!("BTSNTSvc.exe {found}"))
            }
            Err(why) => Finding::unreadable("biztalk-version", version, &why),
        };
        Ok(vec![Finding::new("biztalk-install-path", true, installed, path), version_finding])
    }
}

/// Why a command failed: the first lines of stderr (or stdout), else its exit code.
fn failure(ran: &Executed) -> String {
    let mut text = ran.stderr();
    if text.trim().is_empty() {
        text = ran.stdout();
    }
    let code = ran.output.exit_code.map_or("killed".to_string(), |c| format!("exit code {c}"));
    match excerpt(&text, 2).trim() {
        "" => code,
        said => format!("{said} ({code})"),
    }
}

/// A registry answer that is not the expected type, for the report.
fn describe(answer: &RegAnswer) -> String {
    match answer {
        RegAnswer::Missing => "not installed".to_string(),
        RegAnswer::Found(value) => format!("unexpected value {value}"),
    }
}

/// `bytes` in GiB with one decimal.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// Compares dotted numeric versions (`18.6.7.0` vs `18.3`), missing parts counting as 0;
/// `None` if either is not such a version.
pub fn compare_versions(left: &str, right: &str) -> Option<std::cmp::Ordering> {
    let parse = |v: &str| v.trim().split('.').map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<u64>>>();
    let (mut a, mut b) = (parse(left)?, parse(right)?);
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    Some(a.cmp(&b))
}
