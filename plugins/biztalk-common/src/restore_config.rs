//! `RestoreConfig.vbe`, Standard Edition's way back into its group (docs/biztalk.md, "By edition"): the command line that
//! runs it under the 32-bit script host (docs/biztalk.md, "Registry", the two views) and a reading of what it answers: the
//! documented silence, or an answer an operator has to read (`lab/PROTOCOL.md`, "Standard
//! Edition: `RestoreConfig.vbe`"). The saved configuration it reads
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
/// The arguments (after [`CSCRIPT_32`]) of `cscript //nologo <script> <saved xml>`.
pub fn args(script: &str, saved_xml: &str) -> Vec<String> {
    vec!["//nologo".into(), script.into(), saved_xml.into()]
}

/// Why a run is not the documented success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecognized {
    /// In a few words.
    pub why: String,
}

impl fmt::Display for Unrecognized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

/// Reads a run. Microsoft documents one answer only: the script "should exit without displaying
/// any errors" (`how-to-recover-the-biztalk-group`), so success is exit code 0 with nothing on
/// stdout or stderr (`//nologo` drops the script host's banner). The script's own failure
/// messages are not public, and cscript may exit 0 after a runtime error, so **every other
/// answer is unrecognised**: an operator reads it. Nothing here classifies a failure as
/// retryable or permanent by its wording.
pub fn outcome(exit_code: Option<i32>, stdout: &str, stderr: &str) -> Result<(), Unrecognized> {
    let why = match (exit_code, stdout.trim().is_empty(), stderr.trim().is_empty()) {
        (Some(0), true, true) => return Ok(()),
        (Some(0), _, false) => "it exited 0 but wrote to stderr".to_string(),
        (Some(0), false, true) => "it exited 0 but printed text Drover does not know".to_string(),
        (Some(code), _, _) => format!("it failed with exit code {code}"),
        (None, _, _) => "it was killed before it ended".to_string(),
    };
    Err(Unrecognized { why })
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
    fn success_is_exit_code_zero_and_silence() {
        assert_eq!(outcome(Some(0), "", ""), Ok(()));
        assert_eq!(outcome(Some(0), "\r\n", " "), Ok(()));
    }

    #[test]
    fn every_other_answer_is_unrecognised() {
        let cases = [
            (
                Some(0),
                "RestoreConfig completed successfully.\n",
                "",
                "it exited 0 but printed text Drover does not know",
            ),
            (
                Some(0),
                "",
                "C:\\x\\RestoreConfig.vbe(12, 3) Microsoft VBScript runtime error: Object required\n",
                "it exited 0 but wrote to stderr",
            ),
            (
                Some(1),
                "",
                "RestoreConfig failed: Cannot connect to SQL Server PRDSQL01: Login timeout expired.\n",
                "it failed with exit code 1",
            ),
            (Some(1), "", "", "it failed with exit code 1"),
            (None, "", "", "it was killed before it ended"),
        ];
        for (code, stdout, stderr, why) in cases {
            assert_eq!(
                outcome(code, stdout, stderr),
                Err(Unrecognized { why: why.into() }),
                "{stdout}{stderr}"
            );
        }
    }
}
