//! Application binaries: the PowerShell scripts that read the .NET 4 global assembly cache
//! folders and install a loose assembly with `System.EnterpriseServices.Internal.Publish`,
//! `msiexec /i … /qn TARGETDIR=…` and `BTSTask ImportApp` (`lab/PROTOCOL.md`, "Applications").
//!
//! `gacutil.exe` is not used: it ships with the Windows SDK and Visual Studio, not with Windows,
//! .NET or BizTalk, and Microsoft says it is for development only ("How to: Install an assembly
//! into the global assembly cache"). A server without the SDK can still read the cache's folders
//! (`%windir%\Microsoft.NET\assembly\GAC_MSIL|GAC_32|GAC_64\<name>\v4.0_<version>_<culture>_<token>\<name>.dll`,
//! "Global Assembly Cache", .NET Framework 4 and later) and install into it through the
//! framework's own `Publish.GacInstall`.
//!
//! Pure text in, typed values out: this module never runs anything. Argument lists are argv
//! words without the program name; run them as [`crate::powershell::PROGRAM`], [`MSIEXEC`] or
//! [`BTSTASK`].

use std::fmt;

use crate::powershell;

/// `msiexec`, exactly as plugins name it.
pub const MSIEXEC: &str = "msiexec";
/// `BTSTask`, exactly as plugins name it.
pub const BTSTASK: &str = "BTSTask";

/// The folders of the .NET 4 global assembly cache, below `%windir%`.
pub const GAC_ROOT: &str = r"Microsoft.NET\assembly";

/// Whether `name` can be put in the GAC scripts as it is: letters, digits, `.`, `-`, `_`, not
/// empty. Such a name needs no quoting in PowerShell and holds no wildcard.
pub fn is_simple_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

/// The script that lists the files of assembly `name` in the GAC, one full path a line, nothing
/// when there is none: every `GAC_*` folder (`GAC_MSIL`, `GAC_32`, `GAC_64`) that has a folder
/// for the name, searched for `<name>.dll` in its version folders. `name` must be
/// [`is_simple_name`]. Its answer is read by [`parse_probe`].
pub fn probe_script(name: &str) -> String {
    format!(
        r#"Get-ChildItem -LiteralPath "$env:windir\{GAC_ROOT}" -Directory -Filter 'GAC_*' | ForEach-Object {{ Join-Path $_.FullName '{name}' }} | Where-Object {{ Test-Path -LiteralPath $_ }} | Get-ChildItem -Filter '{name}.dll' -Recurse | Select-Object -ExpandProperty FullName"#
    )
}

/// The arguments (after [`crate::powershell::PROGRAM`]) of [`probe_script`].
pub fn probe_args(name: &str) -> Vec<String> {
    powershell::args(&probe_script(name))
}

/// The script that installs the assembly file at `path` into the GAC with
/// `System.EnterpriseServices.Internal.Publish.GacInstall(string)`. The method returns nothing
/// and prints nothing, so only reading the GAC afterwards ([`probe_script`]) tells whether it
/// worked.
pub fn install_script(path: &str) -> String {
    format!(
        "Add-Type -AssemblyName System.EnterpriseServices; (New-Object System.EnterpriseServices.Internal.Publish).GacInstall({})",
        powershell::single_quoted(path)
    )
}

/// The arguments (after [`crate::powershell::PROGRAM`]) of [`install_script`].
pub fn install_args(path: &str) -> Vec<String> {
    powershell::args(&install_script(path))
}

/// `msiexec /i <msi> /qn TARGETDIR=<dir>`: the only switches BizTalk application packages
/// support [docs/biztalk.md, "Applications and the GAC"]. The directory is one argv word, spaces and all.
pub fn msiexec_install(msi: &str, target_dir: &str) -> Vec<String> {
    vec!["/i".into(), msi.into(), "/qn".into(), format!("TARGETDIR={target_dir}")]
}

/// `BTSTask ImportApp /Package:<msi> /ApplicationName:<app> /Overwrite`.
///
/// ImportApp writes the application into the group's management database. On a DR server
/// joined to the production group that is the production database, so DR preparation must not
/// run it [docs/biztalk.md, "Applications and the GAC"].
pub fn import_app(msi: &str, app: &str) -> Vec<String> {
    vec![
        "ImportApp".into(),
        format!("/Package:{msi}"),
        format!("/ApplicationName:{app}"),
        "/Overwrite".into(),
    ]
}

/// Whether a `BTSTask` run succeeded: exit code 0 and its `Command succeeded` line.
pub fn btstask_succeeded(exit_code: Option<i32>, stdout: &str) -> bool {
    exit_code == Some(0) && stdout.lines().any(|l| l.trim().starts_with("Command succeeded"))
}

/// Whether a `BTSTask` run printed its documented failure summary, `Command failed with <n>
/// errors, <m> warnings.`: a failure Drover reads, unlike output without either summary.
pub fn btstask_failed(stdout: &str) -> bool {
    stdout.lines().any(|l| l.trim().starts_with("Command failed with "))
}

/// What an `msiexec` exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiExit {
    /// 0.
    Success,
    /// 3010 or 1641: installed; a restart is required (or was started).
    SuccessRestartRequired,
    /// 1618: another installation is in progress; trying again later may work.
    AnotherInstallInProgress,
    /// 1619: the package could not be opened (no such file).
    PackageNotFound,
    /// Anything else.
    Failed(i32),
}

impl MsiExit {
    /// Classifies an exit code. A Windows exit code reaches Drover whole over WinRM, but cut to
    /// its low byte when the target is reached through a Unix process (the `command` transport,
    /// the lab): 1619 arrives as 83. msiexec prints nothing, so the code is all there is; both
    /// forms are recognised (the low bytes of the codes below do not collide).
    pub fn from_code(code: i32) -> Self {
        const CODES: [(i32, MsiExit); 5] = [
            (0, MsiExit::Success),
            (3010, MsiExit::SuccessRestartRequired),
            (1641, MsiExit::SuccessRestartRequired),
            (1618, MsiExit::AnotherInstallInProgress),
            (1619, MsiExit::PackageNotFound),
        ];
        let low_byte = (0..=255).contains(&code);
        CODES
            .iter()
            .find(|(full, _)| code == *full || (low_byte && code == full & 0xff))
            .map_or(MsiExit::Failed(code), |(_, exit)| *exit)
    }
}

/// A strong assembly name, as a display name
/// (`Name, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35, processorArchitecture=MSIL`)
/// or a GAC file path ([`AssemblyName::from_gac_path`]) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssemblyName {
    /// The simple name.
    pub name: String,
    /// `Version`, four numbers.
    pub version: String,
    /// `Culture`, `neutral` for most.
    pub culture: String,
    /// `PublicKeyToken`, 16 hexadecimal digits (or `null` for unsigned assemblies).
    pub public_key_token: String,
    /// `processorArchitecture`, when printed.
    pub processor_architecture: Option<String>,
}

impl AssemblyName {
    /// Parses one display name. Keys are case-insensitive; a missing `Version`, `Culture` or
    /// `PublicKeyToken` gives `None`.
    pub fn parse(display_name: &str) -> Option<Self> {
        let mut parts = display_name.trim().split(',');
        let name = parts.next()?.trim();
        if name.is_empty() {
            return None;
        }
        let (mut version, mut culture, mut token, mut arch) = (None, None, None, None);
        for part in parts {
            let (key, value) = part.split_once('=')?;
            let value = Some(value.trim().to_string());
            match key.trim().to_ascii_lowercase().as_str() {
                "version" => version = value,
                "culture" => culture = value,
                "publickeytoken" => token = value,
                "processorarchitecture" => arch = value,
                _ => {}
            }
        }
        Some(AssemblyName {
            name: name.to_string(),
            version: version?,
            culture: culture?,
            public_key_token: token?,
            processor_architecture: arch,
        })
    }

    /// Whether this is the assembly `name`, `version`, `culture`, `public_key_token`: names,
    /// cultures and tokens compared case-insensitively, versions exactly.
    pub fn is(&self, name: &str, version: &str, culture: &str, public_key_token: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && self.version == version
            && self.culture.eq_ignore_ascii_case(culture)
            && self.public_key_token.eq_ignore_ascii_case(public_key_token)
    }
}

impl fmt::Display for AssemblyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, Version={}, Culture={}, PublicKeyToken={}",
            self.name, self.version, self.culture, self.public_key_token
        )
    }
}

/// Output that is not in the format of `lab/PROTOCOL.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected answer from the GAC probe: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl AssemblyName {
    /// The assembly a GAC file path names:
    /// `…\Microsoft.NET\assembly\GAC_MSIL\<name>\v4.0_<version>_<culture>_<token>\<name>.dll`
    /// (culture empty for `neutral`). `None` for any other path.
    pub fn from_gac_path(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim().split('\\').collect();
        let [.., assembly, gac, name, folder, file] = parts.as_slice() else { return None };
        let arch = gac.get(..4).filter(|p| p.eq_ignore_ascii_case("GAC_")).map(|_| &gac[4..])?;
        let stem = file.strip_suffix(".dll").or_else(|| file.strip_suffix(".DLL"))?;
        if !assembly.eq_ignore_ascii_case("assembly") || !stem.eq_ignore_ascii_case(name) || arch.is_empty() {
            return None;
        }
        let rest = folder.get(..5).filter(|p| p.eq_ignore_ascii_case("v4.0_")).map(|_| &folder[5..])?;
        let [version, culture, token] = rest.split('_').collect::<Vec<_>>()[..] else { return None };
        let hex = token.len() == 16 && token.chars().all(|c| c.is_ascii_hexdigit());
        if version.is_empty() || !hex {
            return None;
        }
        Some(AssemblyName {
            name: (*name).to_string(),
            version: version.to_string(),
            culture: if culture.is_empty() { "neutral".into() } else { culture.to_string() },
            public_key_token: token.to_string(),
            processor_architecture: Some(arch.to_string()),
        })
    }
}

/// Reads the answer of [`probe_script`]: one GAC file path a line (blank lines ignored). A line
/// that is not such a path is an error: the probe's answer was not understood.
pub fn parse_probe(stdout: &str) -> Result<Vec<AssemblyName>, ParseError> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            AssemblyName::from_gac_path(line)
                .ok_or_else(|| ParseError(format!("`{line}` is not a GAC file path")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the probe prints on a server with both versions of the schemas, one in GAC_32.
    const TWO_FILES: &str = "C:\\Windows\\Microsoft.NET\\assembly\\GAC_32\\Contoso.Orders.Schemas\\v4.0_1.1.0.0__31bf3856ad364e35\\Contoso.Orders.Schemas.dll\r\nC:\\Windows\\Microsoft.NET\\assembly\\GAC_MSIL\\Contoso.Orders.Schemas\\v4.0_1.0.0.0__31bf3856ad364e35\\Contoso.Orders.Schemas.dll\r\n";

    #[test]
    fn argv_builders_match_the_protocol() {
        assert_eq!(
            probe_args("Contoso.Orders.Schemas"),
            [
                "-NoProfile",
                "-NonInteractive",
                "-Command",
                r#"Get-ChildItem -LiteralPath "$env:windir\Microsoft.NET\assembly" -Directory -Filter 'GAC_*' | ForEach-Object { Join-Path $_.FullName 'Contoso.Orders.Schemas' } | Where-Object { Test-Path -LiteralPath $_ } | Get-ChildItem -Filter 'Contoso.Orders.Schemas.dll' -Recurse | Select-Object -ExpandProperty FullName"#
            ]
        );
        assert_eq!(
            install_args(r"C:\Staging\O'Brien\Contoso.Common.dll")[3],
            r"Add-Type -AssemblyName System.EnterpriseServices; (New-Object System.EnterpriseServices.Internal.Publish).GacInstall('C:\Staging\O''Brien\Contoso.Common.dll')"
        );
        assert_eq!(
            msiexec_install("C:\\Staging\\Contoso.Orders.msi", "C:\\Program Files\\Contoso\\Orders"),
            ["/i", "C:\\Staging\\Contoso.Orders.msi", "/qn", "TARGETDIR=C:\\Program Files\\Contoso\\Orders"]
        );
        assert_eq!(
            import_app("C:\\Staging\\Contoso.Orders.msi", "Contoso.Orders"),
            [
                "ImportApp",
                "/Package:C:\\Staging\\Contoso.Orders.msi",
                "/ApplicationName:Contoso.Orders",
                "/Overwrite"
            ]
        );
    }

    #[test]
    fn only_simple_names_go_into_the_scripts() {
        assert!(is_simple_name("Contoso.Orders-Schemas_2"));
        for bad in ["", "A B", "A*", "A'B", "A\"B", "$x", "A[1]", "A\\B"] {
            assert!(!is_simple_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_the_probe_answer() {
        let found = parse_probe(TWO_FILES).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1],
            AssemblyName {
                name: "Contoso.Orders.Schemas".into(),
                version: "1.0.0.0".into(),
                culture: "neutral".into(),
                public_key_token: "31bf3856ad364e35".into(),
                processor_architecture: Some("MSIL".into()),
            }
        );
        assert_eq!(found[0].processor_architecture.as_deref(), Some("32"));
        assert!(found[1].is("contoso.orders.schemas", "1.0.0.0", "neutral", "31BF3856AD364E35"));
        assert!(!found[1].is("Contoso.Orders.Schemas", "1.1.0.0", "neutral", "31bf3856ad364e35"));
        assert!(!found[0].is("Contoso.Orders.Schemas", "1.1.0.0", "neutral", "0000000000000000"));
        assert_eq!(
            found[1].to_string(),
            "Contoso.Orders.Schemas, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
        );
        let satellite = r"C:\WINDOWS\Microsoft.Net\assembly\GAC_MSIL\Contoso.Texts\v4.0_2.0.0.0_de-DE_31bf3856ad364e35\Contoso.Texts.dll";
        let de = AssemblyName::from_gac_path(satellite).unwrap();
        assert_eq!((de.version.as_str(), de.culture.as_str()), ("2.0.0.0", "de-DE"));
    }

    #[test]
    fn nothing_printed_is_nothing_installed() {
        assert!(parse_probe("").unwrap().is_empty());
        assert!(parse_probe("\r\n").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_gac_path() {
        for out in [
            "'gacutil' is not recognized as an internal or external command",
            r"C:\Windows\assembly\GAC_MSIL\A\1.0.0.0__31bf3856ad364e35\A.dll",
            r"C:\Windows\Microsoft.NET\assembly\GAC_MSIL\A\v4.0_1.0.0.0__31bf3856ad364e35\B.dll",
            r"C:\Windows\Microsoft.NET\assembly\GAC_MSIL\A\v4.0_1.0.0.0__null\A.dll",
            r"C:\Windows\Microsoft.NET\assembly\NativeImages\A\v4.0_1.0.0.0__31bf3856ad364e35\A.dll",
        ] {
            let err = parse_probe(out).unwrap_err();
            assert!(err.to_string().starts_with("unexpected answer from the GAC probe: `"), "{err}");
        }
        assert!(AssemblyName::parse("A, Version=1.0.0.0").is_none());
    }

    #[test]
    fn classifies_msiexec_exit_codes() {
        assert_eq!(MsiExit::from_code(0), MsiExit::Success);
        assert_eq!(MsiExit::from_code(1619), MsiExit::PackageNotFound);
        assert_eq!(MsiExit::from_code(83), MsiExit::PackageNotFound, "1619 through a Unix process");
        assert_eq!(MsiExit::from_code(194), MsiExit::SuccessRestartRequired, "3010 through a Unix process");
        assert_eq!(MsiExit::from_code(1618), MsiExit::AnotherInstallInProgress);
        assert_eq!(MsiExit::from_code(3010), MsiExit::SuccessRestartRequired);
        assert_eq!(MsiExit::from_code(1603), MsiExit::Failed(1603));
    }

    #[test]
    fn recognises_btstask_success() {
        let out = "Microsoft (R) BizTalk Application Deployment Utility\n\nCommand succeeded with 0 errors, 0 warnings.\n";
        assert!(btstask_succeeded(Some(0), out));
        assert!(!btstask_succeeded(Some(1), out));
        assert!(!btstask_succeeded(Some(0), "Command failed with 1 errors, 0 warnings.\n"));
    }
}
