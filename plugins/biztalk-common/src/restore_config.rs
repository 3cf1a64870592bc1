//! `RestoreConfig.vbe`, Standard Edition's way back into its group (§3 R4): the command line that
//! runs it under the 32-bit script host (§2.5, bitness) and a reading of what it answers
//! (`lab/PROTOCOL.md`, "Standard Edition: `RestoreConfig.vbe`"). The saved configuration it reads
//! is rendered by [`crate::config_xml::render_saved`].
//!
//! Argument lists are argv words without the program name; run them as [`CSCRIPT_32`]. Nothing
//! here runs anything.

use std::fmt;

/// The 32-bit script host: RestoreConfig.vbe fails under the 64-bit one.
pub const CSCRIPT_32: &str = r"C:\Windows\SysWOW64\cscript.exe";
/// Where the script is put by default (a separate download, kept beside BizTalk's 32-bit restore
/// scripts).
pub const DEFAULT_SCRIPT: &str =
    r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\RestoreConfig.vbe";
/// The line the script prints when it succeeded.
pub const SUCCESS: &str = "RestoreConfig completed successfully.";

/// The arguments (after [`CSCRIPT_32`]) of `cscript //nologo <script> <saved xml>`.
pub fn args(script: &str, saved_xml: &str) -> Vec<String> {
    vec!["//nologo".into(), script.into(), saved_xml.into()]
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The SQL Server of the group did not answer: worth retrying.
    SqlUnreachable,
    /// The group is not Standard Edition: join the server instead.
    NotStandardEdition,
    /// The file was saved on another computer (or names none).
    OtherComputer,
    /// The script ran under the 64-bit script host.
    SixtyFourBitHost,
    /// Anything else.
    Other,
}

/// A failed run: its kind and what the script said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub kind: FailureKind,
    /// The script's message (without its `RestoreConfig failed: ` prefix), or a description of an
    /// exit without one.
    pub message: String,
}

impl Failure {
    /// True when retrying may succeed (the SQL Server did not answer).
    pub fn is_retryable(&self) -> bool {
        self.kind == FailureKind::SqlUnreachable
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads a run: success is exit code 0 with the [`SUCCESS`] line; anything else is a failure
/// classified by its message (stderr, or stdout when stderr is empty).
pub fn outcome(exit_code: Option<i32>, stdout: &str, stderr: &str) -> Result<(), Failure> {
    let succeeded = stdout.lines().any(|l| l.trim() == SUCCESS);
    if exit_code == Some(0) && succeeded {
        return Ok(());
    }
    let said = if stderr.trim().is_empty() { stdout } else { stderr };
    let said = said.trim();
    let message = said.strip_prefix("RestoreConfig failed: ").unwrap_or(said).to_string();
    let kind = if message.contains("Cannot connect to SQL Server")
        || message.contains("Login timeout expired")
    {
        FailureKind::SqlUnreachable
    } else if message.contains("Standard Edition only") {
        FailureKind::NotStandardEdition
    } else if message.contains("was saved on computer") || message.contains("does not name the computer") {
        FailureKind::OtherComputer
    } else if message.contains("ActiveX component can't create object") {
        FailureKind::SixtyFourBitHost
    } else {
        FailureKind::Other
    };
    let message = match (message.is_empty(), exit_code) {
        (false, _) => message,
        (true, Some(0)) => format!("RestoreConfig.vbe exited 0 without printing `{SUCCESS}`"),
        (true, Some(code)) => format!("RestoreConfig.vbe failed with exit code {code} and no message"),
        (true, None) => "RestoreConfig.vbe was killed".to_string(),
    };
    Err(Failure { kind, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_protocol_md_word_for_word() {
        assert_eq!(CSCRIPT_32, r"C:\Windows\SysWOW64\cscript.exe");
        assert_eq!(
            args(DEFAULT_SCRIPT, r"C:\Drover\restore-PRDBTS02.xml"),
            [
                "//nologo",
                r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\RestoreConfig.vbe",
                r"C:\Drover\restore-PRDBTS02.xml",
            ]
        );
    }

    #[test]
    fn success_needs_the_line_and_exit_code_zero() {
        assert_eq!(outcome(Some(0), "RestoreConfig completed successfully.\r\n", ""), Ok(()));
        let err = outcome(Some(0), "", "").unwrap_err();
        assert_eq!(
            err.message,
            "RestoreConfig.vbe exited 0 without printing `RestoreConfig completed successfully.`"
        );
        assert_eq!(
            outcome(Some(1), "RestoreConfig completed successfully.\n", "").unwrap_err().kind,
            FailureKind::Other
        );
        assert_eq!(outcome(None, "", "").unwrap_err().message, "RestoreConfig.vbe was killed");
    }

    #[test]
    fn failures_are_classified() {
        let cases = [
            (
                "RestoreConfig failed: Cannot connect to SQL Server PRDSQL01: Login timeout expired.\n",
                FailureKind::SqlUnreachable,
                "Cannot connect to SQL Server PRDSQL01: Login timeout expired.",
            ),
            (
                "RestoreConfig.vbe supports BizTalk Server Standard Edition only; this computer runs Enterprise Edition. Join it to the BizTalk group with the BizTalk Server Configuration tool.\n",
                FailureKind::NotStandardEdition,
                "RestoreConfig.vbe supports BizTalk Server Standard Edition only; this computer runs Enterprise Edition. Join it to the BizTalk group with the BizTalk Server Configuration tool.",
            ),
            (
                "RestoreConfig failed: The configuration file was saved on computer PRDBTS01, not on PRDBTS02. Standard Edition requires a computer with the same name.\n",
                FailureKind::OtherComputer,
                "The configuration file was saved on computer PRDBTS01, not on PRDBTS02. Standard Edition requires a computer with the same name.",
            ),
            (
                "C:\\x\\RestoreConfig.vbe(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object\n",
                FailureKind::SixtyFourBitHost,
                "C:\\x\\RestoreConfig.vbe(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object",
            ),
            (
                "RestoreConfig failed: The password of ENTSSO is empty.\n",
                FailureKind::Other,
                "The password of ENTSSO is empty.",
            ),
        ];
        for (stderr, kind, message) in cases {
            let err = outcome(Some(1), "", stderr).unwrap_err();
            assert_eq!((err.kind, err.message.as_str()), (kind, message), "{stderr}");
            assert_eq!(err.is_retryable(), kind == FailureKind::SqlUnreachable);
        }
        assert_eq!(
            outcome(Some(1), "", "").unwrap_err().message,
            "RestoreConfig.vbe failed with exit code 1 and no message"
        );
    }
}
