//! `reg query`: the argv that reads one registry value on a Windows server, the keys of
//! `lab/PROTOCOL.md` ("Registry"), and a parser of what `reg` prints.
//!
//! This module only builds argument lists and reads text; it never runs anything. A missing key
//! or value is an answer ([`RegAnswer::Missing`]), not an error: callers decide what absence
//! means (a server that is not joined, a prerequisite that is not installed).
//!
//! On 64-bit Windows `HKLM\SOFTWARE` has two views: a 32-bit program's writes land in the 32-bit
//! one (`SOFTWARE\WOW6432Node`), and `reg query` run from a 64-bit host reads the 64-bit one
//! unless given `/reg:32` (Microsoft Learn, "reg query"; "Accessing an Alternate Registry
//! View"). BizTalk's configuration tools are 32-bit, so its Administration key is read with
//! [`query_args_32`].

use std::fmt;

/// The program, as granted to a step and sent to the target.
pub const PROGRAM: &str = "reg";

/// BizTalk group membership of a server [docs/biztalk.md, "Registry"]: [`MGMT_DB_SERVER`] and [`MGMT_DB_NAME`], present
/// once the server is joined. Written by 32-bit programs (`Configuration.exe`, RestoreConfig.vbe
/// under the 32-bit script host, "so that it can update the 32-bit registry"): read it in the
/// 32-bit view ([`query_args_32`]).
pub const BIZTALK_ADMINISTRATION: &str = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
/// Where Enterprise SSO keeps the SQL Server and database of the SSO system it belongs to
/// (values `Server` and `Database`, REG_SZ); the 64-bit SSO service writes it in the 64-bit view.
pub const ENTSSO_SQL: &str = r"HKLM\SOFTWARE\Microsoft\ENTSSO\SQL";
/// SQL Server holding the group's management database (REG_SZ).
pub const MGMT_DB_SERVER: &str = "MgmtDBServer";
/// Name of the group's management database (REG_SZ).
pub const MGMT_DB_NAME: &str = "MgmtDBName";

/// BizTalk's product key [docs/biztalk.md, "Prerequisites"]: [`PRODUCT_EDITION`]. Written by
/// BizTalk's 32-bit setup: read it in the 32-bit view ([`query_args_32`]).
pub const BIZTALK_PRODUCT: &str = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0";
/// The edition installed (REG_SZ): `Enterprise`, `Standard`, `Developer` or `Branch` (Microsoft
/// Learn, "What Version of BizTalk Server Do I Have?").
pub const PRODUCT_EDITION: &str = "ProductEdition";

/// .NET Framework 4.x: [`RELEASE`] (REG_DWORD).
pub const NET_FRAMEWORK_FULL: &str = r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full";
/// The .NET Framework release number; 461808 is 4.7.2.
pub const RELEASE: &str = "Release";

/// Visual C++ 2015-2019 redistributable, x64: [`INSTALLED`] (REG_DWORD 1).
pub const VC_RUNTIME_X64: &str = r"HKLM\SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64";
/// Visual C++ 2015-2019 redistributable, x86 (32-bit registry view): [`INSTALLED`].
pub const VC_RUNTIME_X86: &str = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\VisualStudio\14.0\VC\Runtimes\x86";
/// 1 when the redistributable is installed.
pub const INSTALLED: &str = "Installed";

/// Microsoft OLE DB Driver for SQL Server: [`INSTALLED_VERSION`] (REG_SZ).
pub const MSOLEDBSQL: &str = r"HKLM\SOFTWARE\Microsoft\MSOLEDBSQL";
/// The driver's version, such as `18.6.7.0`.
pub const INSTALLED_VERSION: &str = "InstalledVersion";

/// Machine environment variables: [`BTSINSTALLPATH`] (REG_SZ).
pub const SESSION_ENVIRONMENT: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment";
/// BizTalk's install folder, with a trailing backslash; set by a successful setup [docs/biztalk.md, "Registry"].
pub const BTSINSTALLPATH: &str = "BTSINSTALLPATH";

/// What `reg` prints on stderr when the key or the value does not exist.
pub const NOT_FOUND_MESSAGE: &str =
    "ERROR: The system was unable to find the specified registry key or value.";

/// The switch of `reg` that reads (or writes) the 32-bit registry view.
pub const VIEW_32: &str = "/reg:32";

/// The arguments (after [`PROGRAM`]) of `reg query "<key>" /v <value>`: the 64-bit view when run
/// from a 64-bit host.
pub fn query_args(key: &str, value: &str) -> Vec<String> {
    vec!["query".into(), key.into(), "/v".into(), value.into()]
}

/// The arguments (after [`PROGRAM`]) of `reg query "<key>" /v <value> /reg:32`: the 32-bit view,
/// where 32-bit programs' `HKLM\SOFTWARE` writes are.
pub fn query_args_32(key: &str, value: &str) -> Vec<String> {
    let mut args = query_args(key, value);
    args.push(VIEW_32.into());
    args
}

/// A registry value as `reg query` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    /// `REG_SZ` or `REG_EXPAND_SZ`: text.
    Text(String),
    /// `REG_DWORD`, printed as `0x` hexadecimal.
    Dword(u32),
    /// Any other type, kept as printed.
    Other {
        /// The type, such as `REG_BINARY`.
        kind: String,
        /// The data as printed.
        data: String,
    },
}

impl RegValue {
    /// The text of a string value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            RegValue::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The number of a `REG_DWORD` value.
    pub fn as_dword(&self) -> Option<u32> {
        match self {
            RegValue::Dword(number) => Some(*number),
            _ => None,
        }
    }
}

impl fmt::Display for RegValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegValue::Text(text) => f.write_str(text),
            RegValue::Dword(number) => write!(f, "{number}"),
            RegValue::Other { data, .. } => f.write_str(data),
        }
    }
}

/// The answer to one `reg query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegAnswer {
    /// The value exists.
    Found(RegValue),
    /// The key or the value does not exist.
    Missing,
}

impl RegAnswer {
    /// The value, if found.
    pub fn value(&self) -> Option<&RegValue> {
        match self {
            RegAnswer::Found(value) => Some(value),
            RegAnswer::Missing => None,
        }
    }

    /// The value's text, if found and a string.
    pub fn text(&self) -> Option<&str> {
        self.value().and_then(RegValue::as_text)
    }

    /// The value's number, if found and a `REG_DWORD`.
    pub fn dword(&self) -> Option<u32> {
        self.value().and_then(RegValue::as_dword)
    }
}

/// `reg query` answered something that is neither a value nor "unable to find".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegError {
    /// A non-zero exit other than "not found", with what `reg` said.
    Failed {
        /// The exit code (absent when killed).
        exit_code: Option<i32>,
        /// stderr, or stdout when stderr is empty, trimmed.
        message: String,
    },
    /// Exit 0 but no line for the value, or data that does not fit its type.
    Malformed(String),
}

impl fmt::Display for RegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegError::Failed { exit_code: Some(code), message } => {
                write!(f, "reg query failed with exit code {code}: {message}")
            }
            RegError::Failed { exit_code: None, message } => write!(f, "reg query was killed: {message}"),
            RegError::Malformed(why) => write!(f, "unexpected reg query output: {why}"),
        }
    }
}

impl std::error::Error for RegError {}

/// Reads the answer of `reg query "<key>" /v <value>` from its exit code, stdout and stderr.
pub fn parse_query(
    exit_code: Option<i32>,
    stdout: &str,
    stderr: &str,
    value: &str,
) -> Result<RegAnswer, RegError> {
    if exit_code != Some(0) {
        return if is_not_found(stdout, stderr) {
            Ok(RegAnswer::Missing)
        } else {
            let message = if stderr.trim().is_empty() { stdout } else { stderr };
            Err(RegError::Failed { exit_code, message: message.trim().to_string() })
        };
    }
    stdout
        .lines()
        .find_map(|line| value_line(line, value))
        .ok_or_else(|| RegError::Malformed(format!("no line for value {value}")))?
        .map(RegAnswer::Found)
}

/// True when `reg` said the key or value does not exist.
pub fn is_not_found(stdout: &str, stderr: &str) -> bool {
    let needle = "unable to find the specified registry key or value";
    stderr.contains(needle) || stdout.contains(needle)
}

/// Parses `    <name>    <type>    <data>` if the line is about `name` (case-insensitive, as
/// value names are on Windows).
fn value_line(line: &str, name: &str) -> Option<Result<RegValue, RegError>> {
    let rest = line.strip_prefix("    ")?;
    let head = rest.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let columns = rest[name.len()..].strip_prefix("    ")?;
    let (kind, data) = match columns.split_once("    ") {
        Some((kind, data)) => (kind, data),
        None => (columns.trim_end(), ""),
    };
    Some(typed_value(kind, data))
}

/// Turns the printed type and data into a [`RegValue`].
fn typed_value(kind: &str, data: &str) -> Result<RegValue, RegError> {
    match kind {
        "REG_SZ" | "REG_EXPAND_SZ" => Ok(RegValue::Text(data.to_string())),
        "REG_DWORD" => parse_dword(data.trim()).map(RegValue::Dword),
        _ => Ok(RegValue::Other { kind: kind.to_string(), data: data.to_string() }),
    }
}

/// `0x80eb1` → 528049.
fn parse_dword(data: &str) -> Result<u32, RegError> {
    let digits = data
        .strip_prefix("0x")
        .or_else(|| data.strip_prefix("0X"))
        .ok_or_else(|| RegError::Malformed(format!("REG_DWORD {data:?} does not start with 0x")))?;
    u32::from_str_radix(digits, 16)
        .map_err(|e| RegError::Malformed(format!("REG_DWORD {data:?} is not hexadecimal: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md's example answer, byte for byte.
    const FOUND: &str = "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    PRDSQL01\n\n";

    #[test]
    fn builds_the_argv_of_protocol_md() {
        assert_eq!(
            query_args(NET_FRAMEWORK_FULL, RELEASE),
            ["query", r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full", "/v", "Release"]
        );
        assert_eq!(
            query_args_32(BIZTALK_ADMINISTRATION, MGMT_DB_SERVER),
            [
                "query",
                r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration",
                "/v",
                "MgmtDBServer",
                "/reg:32"
            ]
        );
    }

    #[test]
    fn reads_an_answer_from_the_32_bit_view() {
        let out = "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    PRDSQL01\n\n";
        assert_eq!(parse_query(Some(0), out, "", MGMT_DB_SERVER).unwrap().text(), Some("PRDSQL01"));
    }

    #[test]
    fn reads_a_string_value() {
        let answer = parse_query(Some(0), FOUND, "", MGMT_DB_SERVER).unwrap();
        assert_eq!(answer, RegAnswer::Found(RegValue::Text("PRDSQL01".into())));
        assert_eq!(answer.text(), Some("PRDSQL01"));
    }

    #[test]
    fn reads_a_string_with_spaces() {
        let out = "\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment\n    BTSINSTALLPATH    REG_SZ    C:\\Program Files (x86)\\Microsoft BizTalk Server\\\n\n";
        let answer = parse_query(Some(0), out, "", BTSINSTALLPATH).unwrap();
        assert_eq!(answer.text(), Some(r"C:\Program Files (x86)\Microsoft BizTalk Server\"));
    }

    #[test]
    fn reads_a_dword_from_hex() {
        let out = "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full\n    Release    REG_DWORD    0x80eb1\n\n";
        assert_eq!(parse_query(Some(0), out, "", RELEASE).unwrap().dword(), Some(528049));
        let one = "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\VisualStudio\\14.0\\VC\\Runtimes\\x64\n    Installed    REG_DWORD    0x1\n\n";
        assert_eq!(parse_query(Some(0), one, "", INSTALLED).unwrap().dword(), Some(1));
    }

    #[test]
    fn unable_to_find_is_missing_not_an_error() {
        let answer = parse_query(Some(1), "", &format!("{NOT_FOUND_MESSAGE}\n"), MGMT_DB_SERVER).unwrap();
        assert_eq!(answer, RegAnswer::Missing);
        assert_eq!(answer.text(), None);
    }

    #[test]
    fn other_failures_are_errors() {
        let err = parse_query(Some(5), "", "ERROR: Access is denied.\n", RELEASE).unwrap_err();
        assert_eq!(err, RegError::Failed { exit_code: Some(5), message: "ERROR: Access is denied.".into() });
        assert_eq!(err.to_string(), "reg query failed with exit code 5: ERROR: Access is denied.");
    }

    #[test]
    fn a_success_without_the_value_is_malformed() {
        let err = parse_query(Some(0), FOUND, "", MGMT_DB_NAME).unwrap_err();
        assert!(matches!(err, RegError::Malformed(_)), "{err:?}");
        let bad = "\nHKEY_LOCAL_MACHINE\\X\n    Release    REG_DWORD    12\n";
        assert!(parse_query(Some(0), bad, "", RELEASE).is_err());
    }

    #[test]
    fn a_name_that_only_starts_the_same_does_not_match() {
        let out =
            "\nHKEY_LOCAL_MACHINE\\X\n    ReleaseX    REG_DWORD    0x1\n    Release    REG_DWORD    0x2\n";
        assert_eq!(parse_query(Some(0), out, "", RELEASE).unwrap().dword(), Some(2));
    }

    #[test]
    fn value_names_match_case_insensitively() {
        assert_eq!(parse_query(Some(0), FOUND, "", "mgmtdbserver").unwrap().text(), Some("PRDSQL01"));
    }
}
