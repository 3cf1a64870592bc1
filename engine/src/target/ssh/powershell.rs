//! The ssh transport's Windows side: commands and file operations as the PowerShell scripts of
//! `windows.rs`, and the reading of what comes back. Besides the program's own result it tells
//! apart, each as an error naming the server:
//!
//! - PowerShell is missing (cmd.exe's `'powershell.exe' is not recognized …`, or a POSIX shell's
//!   `not found`: the server is not Windows): permanent;
//! - the script failed in PowerShell ([`windows::script_error`]): a program that does not exist
//!   (`CommandNotFoundException`) is not found, anything else permanent, with PowerShell's words;
//! - the program failed as `NT AUTHORITY\ANONYMOUS LOGON`: the session had no network
//!   credentials for a second server (the Kerberos double hop), permanent, naming that cause.
//!
//! A program that exits non-zero for any other reason is an ordinary result.

use super::{SshTransport, temporary_name};
use crate::target::process::{FILE_MESSAGE_LIMIT, FILE_TIMEOUT, file_error, stderr_text};
use crate::target::windows::{self, Unsendable};
use crate::target::{ExecOutput, FailureCause, TargetError};

/// The longest remote command line: cmd.exe, Windows OpenSSH's default shell, takes at most 8191
/// characters.
pub(super) const COMMAND_LINE_LIMIT: usize = 8191;

/// The account a second server sees when the session has no network credentials.
const ANONYMOUS_LOGON: &str = r"NT AUTHORITY\ANONYMOUS LOGON";

/// How much of the line naming [`ANONYMOUS_LOGON`] a message quotes.
const EVIDENCE_LIMIT: usize = 300;

impl SshTransport {
    /// The remote command line running `script`, refused when Windows could not take it.
    pub(super) fn powershell_command(&self, script: &str, doing: &str) -> Result<String, TargetError> {
        let remote = windows::remote_command(script);
        if remote.len() > COMMAND_LINE_LIMIT {
            return Err(self.permanent(format!(
                "the command for {doing} is {} characters once encoded for PowerShell, more than the \
                 {COMMAND_LINE_LIMIT} a Windows command line takes (cmd.exe): pass long values on \
                 standard input or in a file",
                remote.len()
            )));
        }
        Ok(remote)
    }

    /// What the exec script of `program` left behind: its result, or why it is an error.
    pub(super) fn exec_result(&self, program: &str, out: ExecOutput) -> Result<ExecOutput, TargetError> {
        if let Some(e) = self.missing_powershell(&out) {
            return Err(e);
        }
        if let Some(e) = self.double_hop(program, &out) {
            return Err(e);
        }
        match windows::script_error(out.exit_code, &String::from_utf8_lossy(&out.stderr)) {
            Some(error) if error.starts_with("CommandNotFoundException") => {
                Err(TargetError::not_found(format!("{}: program {program} not found ({error})", self.at())))
            }
            Some(error) => Err(self.permanent(format!("PowerShell could not run {program}: {error}"))),
            None => Ok(out),
        }
    }

    /// The error for a server where `powershell.exe` could not be started, if that is what `out`
    /// says.
    fn missing_powershell(&self, out: &ExecOutput) -> Option<TargetError> {
        if out.exit_code == Some(0) {
            return None;
        }
        let stderr = stderr_text(out);
        let why = if stderr.contains("'powershell.exe' is not recognized") {
            "Windows PowerShell 5.1 comes with Windows Server 2016 and later: check that \
             %SystemRoot%\\System32\\WindowsPowerShell\\v1.0 is on the account's PATH"
        } else if out.exit_code == Some(127)
            && stderr.contains("powershell.exe")
            && stderr.contains("not found")
        {
            "the server answered like a POSIX shell: is it a Windows server? (`os = \"windows\"` in \
             the inventory makes Drover speak PowerShell to it)"
        } else {
            return None;
        };
        // The line that says so: sshd or the login may have written others before it.
        let said = stderr.lines().map(str::trim).find(|l| l.contains("powershell.exe")).unwrap_or_default();
        Some(
            self.permanent(format!("PowerShell (powershell.exe) is not available: {said} ({why})"))
                .because(FailureCause::NoPowerShell),
        )
    }

    /// The error for a program refused by a second server as an anonymous logon, if `out` says
    /// so: only a failed program counts.
    fn double_hop(&self, program: &str, out: &ExecOutput) -> Option<TargetError> {
        if out.exit_code == Some(0) {
            return None;
        }
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let needle = ANONYMOUS_LOGON.to_ascii_uppercase();
        let line = stderr.lines().chain(stdout.lines()).find(|l| l.to_ascii_uppercase().contains(&needle))?;
        let evidence: String = line.trim().chars().take(EVIDENCE_LIMIT).collect();
        let cause = match &self.options.password {
            None => "a key-based SSH logon to Windows carries no network credentials, so the server \
                     reached the next one (SQL Server, WMI, a share) anonymously: the Kerberos double \
                     hop. Give this server a password logon with `ssh.password-secret` in the \
                     inventory (docs/inventory.md, \"The second hop\")"
                .to_string(),
            Some(logon) => format!(
                "the credentials of the password logon (secret `{}`) did not reach the other server; \
                 check that the account is a domain account with rights there, and see \
                 docs/inventory.md, \"The second hop\"",
                logon.secret
            ),
        };
        Some(
            self.permanent(format!("{program} was refused as {ANONYMOUS_LOGON} ({evidence}): {cause}"))
                .because(FailureCause::DoubleHop),
        )
    }

    /// Runs a file script (`what`: read, write, remove) for `path`; its standard output when it
    /// succeeded.
    async fn file_script(
        &self,
        what: &str,
        path: &str,
        script: Result<String, Unsendable>,
        stdin: Option<&[u8]>,
        output_limit: usize,
    ) -> Result<Vec<u8>, TargetError> {
        let script = script.map_err(|e| self.permanent(e))?;
        let remote = self.powershell_command(&script, what)?;
        let out = self.ssh(remote, stdin, FILE_TIMEOUT, output_limit, what).await?;
        self.file_result(what, path, out)
    }

    /// What a file script left behind: its standard output, or why it failed.
    fn file_result(&self, what: &str, path: &str, out: ExecOutput) -> Result<Vec<u8>, TargetError> {
        if out.exit_code == Some(0) {
            return Ok(out.stdout);
        }
        if let Some(e) = self.missing_powershell(&out) {
            return Err(e);
        }
        let stderr = stderr_text(&out);
        let marked = stderr.lines().find_map(|l| l.strip_prefix(windows::ERROR_MARK)).map(str::trim);
        let detail = match (marked, out.exit_code) {
            (Some(line), _) => line.to_string(),
            (None, _) if !stderr.is_empty() => stderr.clone(),
            (None, Some(code)) => format!("powershell.exe exited with {code}"),
            (None, None) => "powershell.exe was killed by a signal".to_string(),
        };
        let missing = out.exit_code == Some(windows::FILE_MISSING_EXIT);
        Err(self.located(file_error(what, path, &detail, missing)))
    }

    pub(super) async fn powershell_read(&self, path: &str) -> Result<Vec<u8>, TargetError> {
        // The whole file is kept, as the other transports do; the plugin host applies its limit.
        let text = self.file_script("read", path, windows::read_script(path), None, usize::MAX).await?;
        windows::decode_base64_lines(&text).map_err(|e| {
            self.permanent(format!("cannot read {path}: the server sent something that is not base64 ({e})"))
        })
    }

    pub(super) async fn powershell_write(&self, path: &str, contents: &[u8]) -> Result<(), TargetError> {
        let script = windows::write_script(path, &temporary_name(path));
        let lines = windows::base64_lines(contents);
        self.file_script("write", path, script, Some(&lines), FILE_MESSAGE_LIMIT).await.map(drop)
    }

    pub(super) async fn powershell_remove(&self, path: &str) -> Result<(), TargetError> {
        self.file_script("remove", path, windows::remove_script(path), None, FILE_MESSAGE_LIMIT)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{PasswordLogon, RemoteShell, SshOptions};
    use super::*;
    use crate::secrets::SecretValue;
    use crate::target::TargetErrorKind;

    fn windows(password: bool) -> SshTransport {
        SshTransport::new(SshOptions {
            server: "DRBTS01".into(),
            user: Some("admin".into()),
            shell: RemoteShell::PowerShell,
            password: password
                .then(|| PasswordLogon { secret: "drbts-admin".into(), password: SecretValue::new("pw") }),
            ..SshOptions::new("10.1.0.11", "/c")
        })
    }

    fn out(exit: i32, stdout: &str, stderr: &str) -> ExecOutput {
        ExecOutput {
            exit_code: Some(exit),
            stdout: stdout.into(),
            stderr: stderr.into(),
            truncated: false,
            duration: Duration::ZERO,
        }
    }

    const AT: &str = "DRBTS01 (ssh to admin@10.1.0.11:22)";

    #[test]
    fn an_ordinary_failure_is_a_result() {
        let t = windows(false);
        let failed = out(3, "partial", "sc.exe: access is denied");
        assert_eq!(t.exec_result("sc.exe", failed.clone()).expect("a result"), failed);
        let odd = out(250, "", "no mark here");
        assert_eq!(t.exec_result("x", odd.clone()).expect("a result"), odd);
    }

    #[test]
    fn a_missing_program_is_not_found_naming_program_and_server() {
        let e = windows(false)
            .exec_result(
                "sqlcmd",
                out(
                    250,
                    "",
                    "drover-powershell: CommandNotFoundException: The term 'sqlcmd' is not recognized\r\n",
                ),
            )
            .expect_err("not found");
        assert_eq!(e.kind, TargetErrorKind::NotFound);
        assert_eq!(
            e.message,
            format!(
                "{AT}: program sqlcmd not found (CommandNotFoundException: The term 'sqlcmd' is not recognized)"
            )
        );
        let e = windows(false)
            .exec_result("x", out(250, "", "drover-powershell: ParameterBindingException: bad\n"))
            .expect_err("permanent");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert_eq!(e.message, format!("{AT}: PowerShell could not run x: ParameterBindingException: bad"));
    }

    #[test]
    fn a_missing_powershell_is_permanent_naming_the_server() {
        let cmd = "'powershell.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n";
        let e = windows(false).exec_result("sc.exe", out(49, "", cmd)).expect_err("no PowerShell");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(
            e.message.starts_with(&format!(
                "{AT}: PowerShell (powershell.exe) is not available: 'powershell.exe' is not recognized as an internal or external command,"
            )),
            "{e}"
        );
        // What came before cmd.exe's words (sshd's own complaint, say) is not quoted.
        let noisy =
            format!("Could not chdir to home directory /home/admin: No such file or directory\r\n{cmd}");
        let e = windows(true).exec_result("sc.exe", out(49, "", &noisy)).expect_err("no PowerShell");
        assert!(e.message.contains("is not available: 'powershell.exe' is not recognized"), "{e}");
        let e = windows(false)
            .exec_result("sc.exe", out(127, "", "bash: line 1: powershell.exe: command not found\n"))
            .expect_err("a POSIX server");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(e.message.contains("is it a Windows server?"), "{e}");
        let e = windows(false).file_result("read", r"C:\x", out(49, "", cmd)).expect_err("files too");
        assert!(
            e.message.starts_with(&format!("{AT}: PowerShell (powershell.exe) is not available: ")),
            "{e}"
        );
        assert_eq!(e.cause, Some(FailureCause::NoPowerShell));
    }

    #[test]
    fn an_anonymous_second_hop_names_the_double_hop() {
        let refused = out(
            1,
            "",
            "Msg 18456, Level 14, State 1, Server SQL01, Line 1\r\nLogin failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\r\n",
        );
        let e = windows(false).exec_result("sqlcmd", refused.clone()).expect_err("double hop");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(
            e.message.starts_with(&format!(
                "{AT}: sqlcmd was refused as NT AUTHORITY\\ANONYMOUS LOGON (Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.): \
                 a key-based SSH logon to Windows carries no network credentials"
            )),
            "{e}"
        );
        assert!(
            e.message.contains("Kerberos double hop") && e.message.contains("ssh.password-secret"),
            "{e}"
        );
        assert_eq!(e.cause, Some(FailureCause::DoubleHop));
        let e = windows(true).exec_result("sqlcmd", refused).expect_err("double hop");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(
            e.message.contains(
                "the credentials of the password logon (secret `drbts-admin`) did not reach the other server"
            ),
            "{e}"
        );
        assert!(e.message.contains("docs/inventory.md"), "{e}");
        let listed = out(0, "NT AUTHORITY\\ANONYMOUS LOGON  Well-known group", "");
        assert!(windows(false).exec_result("whoami", listed).is_ok(), "a program that succeeded is a result");
    }

    #[test]
    fn file_scripts_are_read_by_exit_code() {
        let t = windows(false);
        assert_eq!(t.file_result("read", r"C:\x", out(0, "eA==", "")).expect("ok"), b"eA==");
        let e = t
            .file_result("read", r"C:\x", out(2, "", "drover-powershell: not found: C:\\x\r\n"))
            .expect_err("missing");
        assert_eq!(e.kind, TargetErrorKind::NotFound);
        assert_eq!(e.message, format!("{AT}: cannot read C:\\x: not found: C:\\x"));
        let e = t
            .file_result(
                "write",
                r"C:\x",
                out(
                    250,
                    "",
                    "drover-powershell: UnauthorizedAccessException: Access to the path is denied.\r\n",
                ),
            )
            .expect_err("denied");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert_eq!(
            e.message,
            format!("{AT}: cannot write C:\\x: UnauthorizedAccessException: Access to the path is denied.")
        );
    }

    #[test]
    fn a_command_windows_cannot_take_is_refused_before_sending() {
        let t = windows(false);
        let script = windows::exec_script("x", &["a".repeat(4000)]).expect("script");
        let e = t.powershell_command(&script, "x").expect_err("too long");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(e.message.starts_with(&format!("{AT}: the command for x is ")), "{e}");
        assert!(t.powershell_command(&windows::exec_script("x", &[]).expect("script"), "x").is_ok());
    }
}
