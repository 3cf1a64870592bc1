//! `deploy-assemblies`: pre-stages application binaries on the step's target [docs/biztalk.md, "Applications and the GAC"]: for each
//! package, reads the GAC's folders (a PowerShell script: `gacutil` is an SDK tool, absent from
//! servers) to learn whether its assemblies are there at the expected version, culture and
//! public key token, installs the package with `msiexec /i <msi> /qn TARGETDIR=<dir>` only if
//! one is missing, then reads the GAC again. Loose assembly files (`files`) are installed the
//! same way with `System.EnterpriseServices.Internal.Publish.GacInstall` from PowerShell, which
//! reports nothing: only the second reading of the GAC says whether it worked.
//!
//! A package may also name an application to import with `BTSTask ImportApp`. That writes into
//! the group's management database, which for a DR server joined to the production group is
//! the *production* database: the DR-preparation workflow must leave `import_app` unset. The
//! import cannot be probed with the commands of `lab/PROTOCOL.md`, so it runs once per step
//! instance (recorded in the step's durable state; `/Overwrite` makes a repeat harmless).
//!
//! Commands and formats come from `biztalk_common::gac`.

use biztalk_common::gac::{self, AssemblyName, MsiExit};
use biztalk_common::powershell;
use biztalk_common::unrecognized;
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Durable-state key of the imports done by this step instance: a JSON list of [`Import`].
const IMPORTED: &str = "imported-apps";

/// The plugin.
#[derive(Default)]
pub struct DeployAssemblies;

/// Input: the packages and loose assembly files to have installed.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// In installation order (a package others depend on first).
    #[serde(default)]
    pub packages: Vec<Package>,
    /// Loose assembly files to put in the GAC, after the packages.
    #[serde(default)]
    pub files: Vec<AssemblyFile>,
}

/// A strong-named assembly file on the target, installed into the GAC with
/// `Publish.GacInstall`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssemblyFile {
    /// The `.dll` on the target, e.g. `C:\Staging\Contoso.Common.dll`.
    pub path: String,
    /// The assembly the file holds: how to tell it is installed.
    pub assembly: Assembly,
}

/// One application package.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The `.msi` on the target, e.g. `C:\Staging\Contoso.Orders.msi`.
    pub msi: String,
    /// `TARGETDIR` for msiexec, e.g. `C:\Program Files\Contoso\Orders`.
    pub target_dir: String,
    /// The assemblies the package puts in the GAC: how to tell it is installed.
    pub assemblies: Vec<Assembly>,
    /// Also import the package into the BizTalk group under this application name. Never in DR
    /// preparation: ImportApp writes to the production group's database.
    #[serde(default)]
    pub import_app: Option<String>,
}

/// A strong-named assembly expected in the GAC.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assembly {
    /// Simple name, e.g. `Contoso.Orders.Schemas`.
    pub name: String,
    /// Four-part version, e.g. `1.0.0.0`.
    pub version: String,
    /// 16 hexadecimal digits (case does not matter).
    pub public_key_token: String,
    /// Default `neutral`.
    #[serde(default = "neutral")]
    pub culture: String,
}

fn neutral() -> String {
    "neutral".into()
}

impl Assembly {
    fn display(&self) -> String {
        format!(
            "{}, Version={}, Culture={}, PublicKeyToken={}",
            self.name, self.version, self.culture, self.public_key_token
        )
    }

    fn found_in(&self, listed: &[AssemblyName]) -> bool {
        listed.iter().any(|a| a.is(&self.name, &self.version, &self.culture, &self.public_key_token))
    }
}

/// Output: one entry per package and per loose file.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// In input order.
    pub packages: Vec<PackageReport>,
    /// In input order.
    pub files: Vec<FileReport>,
    /// What the operator should read (a restart msiexec asked for, …).
    pub warnings: Vec<String>,
}

/// One package.
#[derive(Serialize, JsonSchema)]
pub struct PackageReport {
    /// The package.
    pub msi: String,
    /// This call ran msiexec (in check mode: apply would).
    pub installed: bool,
    /// The application this call imported (in check mode: would import).
    pub imported_app: Option<String>,
    /// Its assemblies.
    pub assemblies: Vec<AssemblyReport>,
}

/// One loose assembly file.
#[derive(Serialize, JsonSchema)]
pub struct FileReport {
    /// The file.
    pub path: String,
    /// This call ran `GacInstall` (in check mode: apply would).
    pub installed: bool,
    /// Its assembly.
    pub assembly: AssemblyReport,
}

/// One expected assembly.
#[derive(Serialize, JsonSchema)]
pub struct AssemblyReport {
    /// `Name, Version=…, Culture=…, PublicKeyToken=…`.
    pub assembly: String,
    /// In the GAC before this call.
    pub present_before: bool,
    /// In the GAC after this call (in check mode: now).
    pub present: bool,
    /// What the GAC held under the name before this call.
    pub found_before: Vec<String>,
}

/// An import done by this step instance.
#[derive(Serialize, Deserialize, PartialEq)]
struct Import {
    app: String,
    msi: String,
}

/// One call's target, evidence and warnings.
struct Session<'c, 'h> {
    ctx: &'c Ctx<'h>,
    target: String,
    evidence: Vec<Evidence>,
    warnings: Vec<String>,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>) -> Result<Self, StepError> {
        Ok(Session { ctx, target: ctx.target()?.to_string(), evidence: Vec::new(), warnings: Vec::new() })
    }

    /// Runs `program <args>` on the target and records it as evidence.
    fn run(&mut self, program: &str, args: Vec<String>, label: String) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(&self.target, program).args(args).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// What the GAC holds under `name`, read from its folders. The probe prints GAC file paths
    /// or nothing; a failure or anything else needs an operator, with what it printed.
    fn gac(&mut self, name: &str) -> Result<Vec<AssemblyName>, StepError> {
        let ran = self.run(powershell::PROGRAM, gac::probe_args(name), format!("GAC entries of {name}"))?;
        let what = format!("the GAC probe for {name}");
        if !ran.success() || !ran.stderr().trim().is_empty() {
            return Err(unrecognized::program(&what, &self.target, "it failed", &ran));
        }
        gac::parse_probe(&ran.stdout())
            .map_err(|e| unrecognized::program(&what, &self.target, &e.to_string(), &ran))
    }

    /// For each expected assembly, what the GAC holds under its name.
    fn probe(&mut self, package: &Package) -> Result<Vec<Vec<AssemblyName>>, StepError> {
        package.assemblies.iter().map(|a| self.gac(&a.name)).collect()
    }

    /// Installs a loose file with `Publish.GacInstall`; it prints nothing when it worked.
    fn gac_install(&mut self, file: &AssemblyFile) -> Result<(), StepError> {
        let ran = self.run(
            powershell::PROGRAM,
            gac::install_args(&file.path),
            format!("GacInstall {}", file.path),
        )?;
        if ran.success() && ran.stderr().trim().is_empty() {
            Ok(())
        } else {
            // GacInstall reports nothing; a PowerShell error here is not one Drover knows.
            let what = format!("GacInstall of {}", file.path);
            Err(unrecognized::program(&what, &self.target, "it failed", &ran))
        }
    }

    /// Check mode: what apply would do to `file`.
    fn predict_file(&mut self, file: &AssemblyFile) -> Result<FileReport, StepError> {
        let before = self.gac(&file.assembly.name)?;
        let assembly = report(&file.assembly, &before, None);
        Ok(FileReport { path: file.path.clone(), installed: !assembly.present_before, assembly })
    }

    /// Apply: installs `file` if its assembly is missing, then reads the GAC again.
    fn deploy_file(&mut self, file: &AssemblyFile) -> Result<FileReport, StepError> {
        let before = self.gac(&file.assembly.name)?;
        let missing = !file.assembly.found_in(&before);
        let mut after = None;
        if missing {
            self.gac_install(file)?;
            let listed = self.gac(&file.assembly.name)?;
            if !file.assembly.found_in(&listed) {
                return Err(StepError::permanent(format!(
                    "after GacInstall of {} on {}, the GAC still lacks {} (GacInstall reports nothing; \
                     the server's Application event log says why)",
                    file.path,
                    self.target,
                    file.assembly.display()
                )));
            }
            after = Some(listed);
        }
        Ok(FileReport {
            path: file.path.clone(),
            installed: missing,
            assembly: report(&file.assembly, &before, after.as_deref()),
        })
    }

    /// Installs the package.
    fn install(&mut self, package: &Package) -> Result<(), StepError> {
        let args = gac::msiexec_install(&package.msi, &package.target_dir);
        let ran = self.run(gac::MSIEXEC, args, format!("install {}", package.msi))?;
        let Some(code) = ran.output.exit_code else {
            return Err(StepError::permanent(format!(
                "msiexec for {} was killed on {}",
                package.msi, self.target
            )));
        };
        match MsiExit::from_code(code) {
            MsiExit::Success => Ok(()),
            MsiExit::SuccessRestartRequired => {
                self.warnings
                    .push(format!("{} asks for a restart to finish installing {}", self.target, package.msi));
                Ok(())
            }
            MsiExit::PackageNotFound => Err(StepError::permanent(format!(
                "package not found: {} on {} (msiexec exit code 1619)",
                package.msi, self.target
            ))),
            MsiExit::AnotherInstallInProgress => Err(StepError::retryable(format!(
                "another installation is in progress on {} (msiexec exit code 1618)",
                self.target
            ))),
            MsiExit::Failed(_) => Err(self.failure(&ran, "installing the package")),
        }
    }

    /// Imports the package into the group as `app`.
    fn import(&mut self, package: &Package, app: &str) -> Result<(), StepError> {
        let ran = self.run(gac::BTSTASK, gac::import_app(&package.msi, app), format!("import {app}"))?;
        if gac::btstask_succeeded(ran.output.exit_code, &ran.stdout()) {
            Ok(())
        } else if gac::btstask_failed(&ran.stdout()) {
            Err(self.failure(&ran, &format!("importing application {app}")))
        } else {
            let what = format!("BTSTask ImportApp of {app}");
            Err(unrecognized::program(
                &what,
                &self.target,
                "no 'Command succeeded' or 'Command failed' line",
                &ran,
            ))
        }
    }

    /// A permanent error naming the command, its exit code and what it printed.
    fn failure(&self, ran: &Executed, doing: &str) -> StepError {
        let mut text = ran.stderr();
        if text.trim().is_empty() {
            text = ran.stdout();
        }
        let code = ran.output.exit_code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
        StepError::permanent(format!(
            "{doing} on {} failed: `{}` ended with {code}: {}",
            self.target,
            ran.request.command_line(),
            excerpt(&text, 5)
        ))
    }

    /// The imports this step instance has done.
    fn imported(&self) -> Result<Vec<Import>, StepError> {
        Ok(self.ctx.state_get_json(IMPORTED)?.unwrap_or_default())
    }

    /// Whether `package` has an import this step instance has not done yet.
    fn import_pending(&self, package: &Package) -> Result<Option<String>, StepError> {
        let Some(app) = &package.import_app else { return Ok(None) };
        let done = Import { app: app.clone(), msi: package.msi.clone() };
        Ok((!self.imported()?.contains(&done)).then(|| app.clone()))
    }

    fn record_import(&self, package: &Package, app: &str) -> Result<(), StepError> {
        let mut imported = self.imported()?;
        imported.push(Import { app: app.into(), msi: package.msi.clone() });
        Ok(self.ctx.state_set_json(IMPORTED, &imported)?)
    }

    /// Check mode: what apply would do to `package`.
    fn predict(&mut self, package: &Package) -> Result<PackageReport, StepError> {
        let before = self.probe(package)?;
        let assemblies = reports(package, &before, None);
        Ok(PackageReport {
            msi: package.msi.clone(),
            installed: assemblies.iter().any(|a| !a.present_before),
            imported_app: self.import_pending(package)?,
            assemblies,
        })
    }

    /// Apply: installs `package` if an assembly is missing, verifies, imports if asked.
    fn deploy(&mut self, package: &Package) -> Result<PackageReport, StepError> {
        let before = self.probe(package)?;
        let missing = package.assemblies.iter().zip(&before).any(|(a, listed)| !a.found_in(listed));
        let mut after = None;
        if missing {
            self.install(package)?;
            let listed = self.probe(package)?;
            self.verify(package, &listed)?;
            after = Some(listed);
        }
        let imported_app = self.import_pending(package)?;
        if let Some(app) = &imported_app {
            self.import(package, app)?;
            self.record_import(package, app)?;
        }
        Ok(PackageReport {
            msi: package.msi.clone(),
            installed: missing,
            imported_app,
            assemblies: reports(package, &before, after.as_deref()),
        })
    }

    /// Every expected assembly is listed after the installation.
    fn verify(&self, package: &Package, listed: &[Vec<AssemblyName>]) -> Result<(), StepError> {
        let still: Vec<String> = package
            .assemblies
            .iter()
            .zip(listed)
            .filter(|(a, found)| !a.found_in(found))
            .map(|(a, _)| a.display())
            .collect();
        if still.is_empty() {
            return Ok(());
        }
        Err(StepError::permanent(format!(
            "after installing {} on {}, the GAC still lacks {}",
            package.msi,
            self.target,
            still.join("; ")
        )))
    }
}

/// The assembly reports of `package` from the listings before and (if it was installed) after.
fn reports(
    package: &Package,
    before: &[Vec<AssemblyName>],
    after: Option<&[Vec<AssemblyName>]>,
) -> Vec<AssemblyReport> {
    package
        .assemblies
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let listed_before = before.get(i).map(Vec::as_slice).unwrap_or_default();
            report(a, listed_before, after.and_then(|lists| lists.get(i)).map(Vec::as_slice))
        })
        .collect()
}

/// The report of `assembly` from what the GAC held before and (if it was installed) after.
fn report(assembly: &Assembly, before: &[AssemblyName], after: Option<&[AssemblyName]>) -> AssemblyReport {
    let present_before = assembly.found_in(before);
    AssemblyReport {
        assembly: assembly.display(),
        present_before,
        present: after.map_or(present_before, |listed| assembly.found_in(listed)),
        found_before: before.iter().map(ToString::to_string).collect(),
    }
}

/// Refuses, before running anything: a package without assemblies (it cannot be probed), and an
/// assembly name the GAC script cannot carry as it is (letters, digits, `.`, `-`, `_`).
fn validate(input: &Input) -> Result<(), StepError> {
    if let Some(p) = input.packages.iter().find(|p| p.assemblies.is_empty()) {
        return Err(StepError::permanent(format!(
            "package {} lists no assemblies, so there is no way to tell whether it is installed",
            p.msi
        )));
    }
    let names =
        input.packages.iter().flat_map(|p| &p.assemblies).chain(input.files.iter().map(|f| &f.assembly));
    match names.map(|a| &a.name).find(|n| !gac::is_simple_name(n)) {
        Some(name) => Err(StepError::permanent(format!(
            "assembly name {name:?} is not a simple name (letters, digits, `.`, `-`, `_`)"
        ))),
        None => Ok(()),
    }
}

/// A one-line summary.
fn summarize(target: &str, packages: &[PackageReport], files: &[FileReport], check: bool) -> String {
    let installs = packages.iter().filter(|p| p.installed).count();
    let imports = packages.iter().filter(|p| p.imported_app.is_some()).count();
    let (install, import) = if check { ("would install", "would import") } else { ("installed", "imported") };
    let mut summary = format!("{install} {installs} of {} packages on {target}", packages.len());
    if !files.is_empty() {
        let gac_installs = files.iter().filter(|f| f.installed).count();
        summary
            .push_str(&format!("; {install} {gac_installs} of {} assembly files into the GAC", files.len()));
    }
    if imports > 0 {
        summary.push_str(&format!("; {import} {imports} application(s) into the group"));
    }
    summary
}

fn outcome(
    session: Session,
    packages: Vec<PackageReport>,
    files: Vec<FileReport>,
    check: bool,
) -> Outcome<Output> {
    let changed =
        packages.iter().any(|p| p.installed || p.imported_app.is_some()) || files.iter().any(|f| f.installed);
    let summary = summarize(&session.target, &packages, &files, check);
    let output = Output { packages, files, warnings: session.warnings };
    Outcome { changed, summary, output, evidence: session.evidence }
}

impl Plugin for DeployAssemblies {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "installs application packages and assembly files until their assemblies are in the GAC",
            )
            .program(powershell::PROGRAM)
            .program(gac::MSIEXEC)
            .program(gac::BTSTASK)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let packages = input.packages.iter().map(|p| session.predict(p)).collect::<Result<Vec<_>, _>>()?;
        let files = input.files.iter().map(|f| session.predict_file(f)).collect::<Result<Vec<_>, _>>()?;
        Ok(outcome(session, packages, files, true))
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        validate(&input)?;
        let mut session = Session::new(ctx)?;
        let packages = input.packages.iter().map(|p| session.deploy(p)).collect::<Result<Vec<_>, _>>()?;
        let files = input.files.iter().map(|f| session.deploy_file(f)).collect::<Result<Vec<_>, _>>()?;
        for warning in &session.warnings {
            ctx.warn(warning);
        }
        Ok(outcome(session, packages, files, false))
    }
}

drover_sdk::export_plugin!(DeployAssemblies);

#[cfg(test)]
mod tests;
