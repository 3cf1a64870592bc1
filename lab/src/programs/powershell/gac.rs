//! The global assembly cache through PowerShell (`lab/PROTOCOL.md`, "Applications"): the script
//! that reads the .NET 4 GAC's folders for one assembly name and the one that installs an
//! assembly file with `System.EnterpriseServices.Internal.Publish.GacInstall`. `gacutil` is not
//! a program of the lab's servers (it ships with the Windows SDK, not with Windows or BizTalk).
//!
//! The lab keeps every assembly in `GAC_MSIL` (its packages and files hold no 32- or 64-bit-only
//! code). A lab assembly file is a JSON object (`{"name", "version", "culture",
//! "public_key_token"}`), a lab convention plugins never read; `GacInstall` of anything else, or
//! of a missing file, installs nothing and prints nothing, as the real method reports nothing.

use std::sync::LazyLock;

use regex::Regex;

use super::super::{Ctx, Output};
use super::template_regex;
use crate::state::Assembly;

/// The probe, with `{name}` standing for an assembly's simple name (letters, digits, `.`, `-`,
/// `_`), written twice.
pub const PROBE_TEMPLATE: &str = r#"Get-ChildItem -LiteralPath "$env:windir\Microsoft.NET\assembly" -Directory -Filter 'GAC_*' | ForEach-Object { Join-Path $_.FullName '{name}' } | Where-Object { Test-Path -LiteralPath $_ } | Get-ChildItem -Filter '{name}.dll' -Recurse | Select-Object -ExpandProperty FullName"#;

/// The installation, with `{path}` standing for a single-quoted PowerShell string.
pub const INSTALL_TEMPLATE: &str = "Add-Type -AssemblyName System.EnterpriseServices; (New-Object System.EnterpriseServices.Internal.Publish).GacInstall('{path}')";

/// Where `%windir%` is on the lab's servers.
const WINDIR: &str = r"C:\Windows";

/// The probe's name, as the first `'<name>'` of the template captures it.
static PROBE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Join-Path \$_\.FullName '([A-Za-z0-9._-]+)'").expect("valid regex"));

/// The installation template as a regex.
static INSTALL: LazyLock<Regex> = LazyLock::new(|| template_regex(INSTALL_TEMPLATE, &["path"]));

/// The probe for `name`.
pub fn probe_script(name: &str) -> String {
    PROBE_TEMPLATE.replace("{name}", name)
}

/// The installation of the file at `path`, quoted as PowerShell does.
pub fn install_script(path: &str) -> String {
    INSTALL_TEMPLATE.replace("{path}", &path.replace('\'', "''"))
}

/// Runs `script` if it is one of the two GAC scripts.
pub fn run(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    probe(ctx, script).or_else(|| install(ctx, script))
}

/// The probe: every GAC file of the name, one full path a line (CRLF, as PowerShell prints to a
/// pipe), nothing when there is none; exit 0 either way.
fn probe(ctx: &Ctx<'_>, script: &str) -> Option<Output> {
    let name = PROBE_NAME.captures(script)?.get(1)?.as_str();
    if script != probe_script(name) {
        return None;
    }
    let mut found: Vec<&Assembly> =
        ctx.this().gac.iter().filter(|a| a.name.eq_ignore_ascii_case(name)).collect();
    found.sort_by_key(|a| version_folder(a));
    let lines: String = found
        .iter()
        .map(|a| {
            format!(
                "{WINDIR}\\Microsoft.NET\\assembly\\GAC_MSIL\\{name}\\{}\\{}.dll\r\n",
                version_folder(a),
                a.name
            )
        })
        .collect();
    Some(Output::ok(lines))
}

/// `v4.0_<version>_<culture>_<token>`, the culture empty when neutral.
fn version_folder(assembly: &Assembly) -> String {
    let culture = if assembly.culture.eq_ignore_ascii_case("neutral") { "" } else { &assembly.culture };
    format!("v4.0_{}_{culture}_{}", assembly.version, assembly.public_key_token.to_lowercase())
}

/// `Publish.GacInstall(<path>)`: installs the lab assembly file at the path; prints nothing.
fn install(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    let path = INSTALL.captures(script)?.name("path")?.as_str().replace("''", "'");
    let assembly = ctx.this().file(&path).and_then(|bytes| serde_json::from_slice::<Assembly>(bytes).ok());
    if let Some(assembly) = assembly {
        let gac = &mut ctx.this_mut().gac;
        if !gac.contains(&assembly) {
            gac.push(assembly);
        }
    }
    Some(Output::ok(""))
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{exec, exec_with_input};
    use super::*;
    use crate::init::{STAGED_MSI, fresh_lab};
    use crate::state::Lab;

    fn ps(lab: &mut Lab, script: &str) -> Output {
        exec(lab, "DRBTS01", &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    const SCHEMAS: &str = r"C:\Windows\Microsoft.NET\assembly\GAC_MSIL\Contoso.Orders.Schemas\v4.0_1.0.0.0__31bf3856ad364e35\Contoso.Orders.Schemas.dll";

    #[test]
    fn the_probe_reads_the_gac_before_and_after_msiexec() {
        let mut lab = fresh_lab();
        let probe = probe_script("Contoso.Orders.Schemas");
        assert_eq!(ps(&mut lab, &probe), Output::ok(""));
        let msi = ["msiexec", "/i", STAGED_MSI, "/qn", r"TARGETDIR=C:\Apps\Contoso"];
        assert_eq!(exec(&mut lab, "DRBTS01", &msi).code, 0);
        assert_eq!(ps(&mut lab, &probe), Output::ok(format!("{SCHEMAS}\r\n")));
        assert_eq!(ps(&mut lab, &probe_script("contoso.orders.schemas")).stdout_text().lines().count(), 1);
        assert_eq!(ps(&mut lab, &probe_script("Contoso.Orders")), Output::ok(""), "no prefix match");
    }

    #[test]
    fn gacinstall_installs_a_lab_assembly_file_and_says_nothing() {
        let mut lab = fresh_lab();
        let dll = r"C:\Staging\O'Brien\Contoso.Common.dll";
        let file = br#"{"name":"Contoso.Common","version":"2.0.0.0","culture":"de-DE","public_key_token":"31BF3856AD364E35"}"#;
        let write = ["sh", "-c", r#"cat > "$1""#, "sh", dll];
        assert_eq!(exec_with_input(&mut lab, "DRBTS01", &write, file).code, 0);
        assert_eq!(ps(&mut lab, &install_script(dll)), Output::ok(""));
        assert_eq!(ps(&mut lab, &install_script(dll)), Output::ok(""), "again: nothing more");
        assert_eq!(lab.servers["DRBTS01"].gac.len(), 1);
        assert_eq!(
            ps(&mut lab, &probe_script("Contoso.Common")).stdout_text(),
            "C:\\Windows\\Microsoft.NET\\assembly\\GAC_MSIL\\Contoso.Common\\v4.0_2.0.0.0_de-DE_31bf3856ad364e35\\Contoso.Common.dll\r\n"
        );
        // A missing file or one that is not an assembly installs nothing, silently.
        assert_eq!(ps(&mut lab, &install_script(r"C:\Staging\Nope.dll")), Output::ok(""));
        assert_eq!(ps(&mut lab, &install_script(STAGED_MSI)), Output::ok(""));
        assert_eq!(lab.servers["DRBTS01"].gac.len(), 1);
    }

    #[test]
    fn gacutil_is_not_a_program_of_the_servers() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["gacutil", "/l", "Contoso.Orders.Schemas"]);
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                9009,
                "'gacutil' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
                    .to_owned()
            )
        );
    }

    #[test]
    fn other_scripts_are_not_these() {
        let mut lab = fresh_lab();
        let probe = probe_script("Contoso.Orders.Schemas");
        let other = probe.replacen("Contoso.Orders.Schemas.dll", "Contoso.Orders.Maps.dll", 1);
        assert_eq!(ps(&mut lab, &other).code, 9009);
        assert_eq!(ps(&mut lab, &probe.replace("GAC_*", "GAC_MSIL")).code, 9009);
        assert_eq!(ps(&mut lab, &install_script("C:\\x.dll").replace("Add-Type", "Add-type")).code, 9009);
    }
}
