//! The command log of `drover-lab windows-shell --log <file>` (`lab/PROTOCOL.md`, "Windows over
//! SSH", "The command log"): one JSON object per line for every command a session brings, written
//! before the command runs, so a session killed in the middle is recorded too. It holds what
//! Windows would let any user of the server read (the command line of `powershell.exe` and of
//! the program it starts, as Task Manager and WMI's `Win32_Process` show them), never what
//! travels on standard input: tests search it for secrets that must not be on a command line.
//!
//! The file is created with mode 0600 and appended to with one `write` per line (`O_APPEND`), so
//! the lines of parallel sessions do not mix.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The lab server the session is on.
    pub server: String,
    /// The user sshd logged on.
    pub user: String,
    /// The authentication methods of the logon (`password`, `publickey`).
    pub auth: Vec<String>,
    /// Whether the session has network credentials.
    pub network_credentials: bool,
    /// `SSH_ORIGINAL_COMMAND` as received (`null`: an interactive logon).
    pub command: Option<String>,
    /// The PowerShell script `-EncodedCommand` carried, decoded.
    pub script: Option<String>,
    /// For an exec script: the argument string Windows PowerShell 5.1 built for the program
    /// (its command line after the program's name).
    pub arguments: Option<String>,
    /// For an exec script: the program and the arguments it reads from that string.
    pub argv: Option<Vec<String>>,
}

/// Why the log cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the command log {path}: {source}")]
pub struct LogError {
    /// The log.
    pub path: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

/// Appends `entry` to the log at `path` (created 0600 when missing).
pub fn append(path: &Path, entry: &Entry) -> Result<(), LogError> {
    let fail = |source| LogError { path: path.to_owned(), source };
    let mut line = serde_json::to_string(entry).map_err(|e| fail(e.into()))?;
    line.push('\n');
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(fail)?;
    file.write_all(line.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn lines_are_appended_to_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("commands.log");
        let entry = Entry {
            server: "DRBTS01".into(),
            user: "drover-win".into(),
            auth: vec!["password".into()],
            network_credentials: true,
            command: Some("sh -c x".into()),
            script: None,
            arguments: None,
            argv: None,
        };
        append(&path, &entry).expect("first");
        append(&path, &Entry { command: None, ..entry.clone() }).expect("second");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["command"], "sh -c x");
        assert_eq!(lines[0]["auth"], serde_json::json!(["password"]));
        assert!(lines[1]["command"].is_null());
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let missing = append(&dir.path().join("no/such/dir/log"), &entry).expect_err("no folder");
        assert!(missing.to_string().starts_with("cannot write the command log "), "{missing}");
    }
}
