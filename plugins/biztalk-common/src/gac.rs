//! Application binaries: `gacutil /l` (argv and a parser of its assembly display names),
//! `msiexec /i … /qn TARGETDIR=…` and `BTSTask ImportApp` (`lab/PROTOCOL.md`, "Applications").
//!
//! Pure text in, typed values out: this module never runs anything. Argument lists are argv
//! words without the program name; run them as [`GACUTIL`], [`MSIEXEC`] or [`BTSTASK`].

use std::fmt;

/// `gacutil`, exactly as plugins name it (and as a workflow grants it).
pub const GACUTIL: &str = "gacutil";
/// `msiexec`, exactly as plugins name it.
pub const MSIEXEC: &str = "msiexec";
/// `BTSTask`, exactly as plugins name it.
pub const BTSTASK: &str = "BTSTask";

/// `gacutil /l <name>`: the assemblies of that simple name in the GAC, every version.
pub fn list(name: &str) -> Vec<String> {
    vec!["/l".into(), name.into()]
}

/// `msiexec /i <msi> /qn TARGETDIR=<dir>`: the only switches BizTalk application packages
/// support [§6]. The directory is one argv word, spaces and all.
pub fn msiexec_install(msi: &str, target_dir: &str) -> Vec<String> {
    vec!["/i".into(), msi.into(), "/qn".into(), format!("TARGETDIR={target_dir}")]
}

/// `BTSTask ImportApp /Package:<msi> /ApplicationName:<app> /Overwrite`.
///
/// ImportApp writes the application into the group's management database. On a DR server
/// joined to the production group that is the production database, so DR preparation must not
/// run it [§3 S7].
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

/// A strong assembly name as `gacutil /l` prints it:
/// `Name, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35, processorArchitecture=MSIL`.
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
        write!(f, "unexpected gacutil output: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses the output of `gacutil /l <name>`: the listed assemblies, checked against its
/// `Number of items = <n>` line.
pub fn parse_list(stdout: &str) -> Result<Vec<AssemblyName>, ParseError> {
    let mut found = Vec::new();
    let mut count = None;
    for line in stdout.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Number of items =") {
            let n = n.trim();
            count = Some(n.parse::<usize>().map_err(|_| ParseError(format!("item count `{n}`")))?);
        } else if line.contains(", Version=") {
            found.push(
                AssemblyName::parse(line).ok_or_else(|| ParseError(format!("assembly line `{line}`")))?,
            );
        }
    }
    match count {
        None => Err(ParseError("no `Number of items` line".into())),
        Some(n) if n != found.len() => {
            Err(ParseError(format!("it counts {n} items but lists {} assemblies", found.len())))
        }
        Some(_) => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Microsoft (R) .NET Global Assembly Cache Utility.  Version 4.0.30319.0
Copyright (c) Microsoft Corporation.  All rights reserved.

The Global Assembly Cache contains the following assemblies:
";

    fn listing(lines: &[&str]) -> String {
        let mut out = HEADER.to_string();
        for line in lines {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!("\nNumber of items = {}\n", lines.len()));
        out
    }

    #[test]
    fn argv_builders_match_the_protocol() {
        assert_eq!(list("Contoso.Orders.Schemas"), ["/l", "Contoso.Orders.Schemas"]);
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
    fn parses_a_listing() {
        let out = listing(&[
            "Contoso.Orders.Schemas, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35, processorArchitecture=MSIL",
            "Contoso.Orders.Schemas, Version=1.1.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35, processorArchitecture=MSIL",
        ]);
        let found = parse_list(&out).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            AssemblyName {
                name: "Contoso.Orders.Schemas".into(),
                version: "1.0.0.0".into(),
                culture: "neutral".into(),
                public_key_token: "31bf3856ad364e35".into(),
                processor_architecture: Some("MSIL".into()),
            }
        );
        assert!(found[0].is("contoso.orders.schemas", "1.0.0.0", "neutral", "31BF3856AD364E35"));
        assert!(!found[0].is("Contoso.Orders.Schemas", "1.1.0.0", "neutral", "31bf3856ad364e35"));
        assert!(!found[1].is("Contoso.Orders.Schemas", "1.1.0.0", "neutral", "0000000000000000"));
        assert_eq!(
            found[0].to_string(),
            "Contoso.Orders.Schemas, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
        );
    }

    #[test]
    fn parses_an_empty_listing() {
        assert!(parse_list(&listing(&[])).unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_listing() {
        assert!(parse_list("'gacutil' is not recognized as an internal or external command").is_err());
        let wrong_count = listing(&["A, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"])
            .replace("Number of items = 1", "Number of items = 2");
        assert!(parse_list(&wrong_count).unwrap_err().to_string().contains("counts 2 items"));
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
