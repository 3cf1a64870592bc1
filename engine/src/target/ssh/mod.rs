//! The `ssh` transport: programs run through the system OpenSSH client (`ssh`), files move through
//! `sftp` in batch mode or, on a Windows server without SFTP, through PowerShell. It owns the
//! command lines of both clients and the reading of their failures; it never reads the user's ssh
//! configuration (`-F /dev/null`) and never asks anyone for anything (`BatchMode=yes`, or for a
//! password logon an askpass helper that only answers the password prompt, [`askpass`]).
//!
//! **The remote shell** ([`RemoteShell`]). ssh hands the remote side one command line. A POSIX
//! server's login shell parses it: program and arguments are single-quoted for a POSIX shell, so
//! they arrive exactly as given. A Windows server (`os = "windows"` in the inventory) gets one
//! PowerShell script per command, built by `windows.rs` and sent as `powershell.exe
//! -EncodedCommand`; [`powershell`] reads what comes back (PowerShell's own errors, a missing
//! PowerShell, a second hop refused as `ANONYMOUS LOGON`). `sftp` needs no shell, only the sftp
//! subsystem, and takes Windows paths as `/C:/Dir/file`.
//!
//! Connections are reused: the first call starts a master connection (`ControlMaster=auto`)
//! with its socket in `control_dir`, and later calls within `control_persist` ride on it. Calls
//! that share a control directory, host, port, user and kind of logon share the master whatever
//! their key (a password logon's master has network credentials on Windows, a key logon's has
//! none, so they never share).
//!
//! Failures: ssh exits 255 on its own errors. Its messages are written to a log file of their
//! own (`-E`), so the program's stderr stays the program's and a program that itself exits 255
//! is still an ordinary result. Unreachable and timed out is retryable; refused authentication
//! (a wrong key, a wrong password) or a wrong host key is permanent. Every error names the
//! inventory server and how it was reached: `DRBTS01 (ssh to admin@10.1.0.11:22): …`. A
//! program that outlives its timeout has its ssh client killed: the remote program loses its
//! connection but may run on until it next writes.

mod askpass;
mod powershell;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::process::{self, FILE_MESSAGE_LIMIT, FILE_TIMEOUT, Marking, ProcessError, file_error};
use super::{Command, ExecOutput, FailureCause, TargetError, TargetErrorKind, Transport, operand};
use crate::secrets::SecretValue;

/// What ssh does with the target's host key (`StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// The key must already be in the known-hosts file.
    #[default]
    Strict,
    /// An unknown host's key is added on first contact; a changed key is refused.
    AcceptNew,
    /// Any key is accepted. With no known-hosts file given, none is written either.
    Off,
}

impl HostKeyPolicy {
    fn option_value(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "yes",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "no",
        }
    }
}

/// What the server's side of ssh runs commands with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteShell {
    /// A POSIX shell (Linux, Unix): words single-quoted.
    #[default]
    Posix,
    /// Windows: every command a PowerShell script (`windows.rs`) under `powershell.exe
    /// -EncodedCommand`, whatever the server's default shell (cmd.exe or PowerShell).
    PowerShell,
}

/// How files move to and from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileTransfer {
    /// The sftp subsystem (on Windows, paths as `/C:/Dir/file`).
    #[default]
    Sftp,
    /// PowerShell scripts moving the contents in base64 (Windows servers whose SFTP subsystem
    /// is disabled).
    PowerShell,
}

/// A password logon: ssh authenticates with this password (and never with a key). On Windows
/// this is what gives the session network credentials for a second server (SQL, WMI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordLogon {
    /// The secret it came from, for messages.
    pub secret: String,
    /// The password: handed to ssh by an askpass helper reading a private file, never on a
    /// command line or in an environment variable.
    pub password: SecretValue,
}

/// How to reach one SSH target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The server's name in the inventory, which every error message starts with.
    pub server: String,
    /// Host name or address.
    pub host: String,
    /// Port; ssh's default (22) when absent.
    pub port: Option<u16>,
    /// Remote user; the local user's name when absent.
    pub user: Option<String>,
    /// Private key; ssh's default keys when absent. Not used by a password logon.
    pub identity_file: Option<PathBuf>,
    /// The known-hosts file to check (and, with [`HostKeyPolicy::AcceptNew`], extend) instead of
    /// the user's and the system's.
    pub known_hosts_file: Option<PathBuf>,
    /// What to do with the host key.
    pub host_key_policy: HostKeyPolicy,
    /// How long to wait for the connection (rounded up to whole seconds).
    pub connect_timeout: Duration,
    /// Where master-connection sockets live; created (private to this user) when missing. Socket
    /// paths are limited to about 100 bytes, so keep it short.
    pub control_dir: PathBuf,
    /// How long a master connection outlives its last use; zero closes it with its last call.
    pub control_persist: Duration,
    /// What runs commands on the server.
    pub shell: RemoteShell,
    /// How files move.
    pub files: FileTransfer,
    /// Log on with a password instead of a key.
    pub password: Option<PasswordLogon>,
}

impl SshOptions {
    /// Options for `host` with ssh's defaults: port 22, local user name, default keys, strict
    /// host-key checking against the user's known hosts, a 10 s connect timeout, masters kept
    /// for 60 s, a POSIX shell and sftp. Messages name the server by its host until
    /// [`SshOptions::server`] is set.
    pub fn new(host: impl Into<String>, control_dir: impl Into<PathBuf>) -> Self {
        let host = host.into();
        SshOptions {
            server: host.clone(),
            host,
            port: None,
            user: None,
            identity_file: None,
            known_hosts_file: None,
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            control_dir: control_dir.into(),
            control_persist: Duration::from_secs(60),
            shell: RemoteShell::Posix,
            files: FileTransfer::Sftp,
            password: None,
        }
    }
}

/// A short directory for master-connection sockets, private to this user: `drover-ssh` in
/// `$XDG_RUNTIME_DIR` (a per-user directory) when it is set and is this user's, else
/// `drover-ssh-<uid>` in the temporary directory. Nothing is created here; [`SshTransport`]
/// creates it, or refuses one that another user could reach, at its first call.
pub fn default_control_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|dir| {
        dir.is_absolute() && std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == current_uid())
    });
    match runtime {
        Some(dir) => dir.join("drover-ssh"),
        None => std::env::temp_dir().join(format!("drover-ssh-{}", current_uid())),
    }
}

fn current_uid() -> u32 {
    #[allow(unsafe_code)]
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe {
        libc::getuid()
    }
}

/// Creates `dir` (mode 0700) when it is missing, then refuses it unless it is a directory, not a
/// symbolic link, owned by this user and writable by nobody else: a control directory in a shared
/// place (the temporary directory) may have been made by another user first, who could then
/// replace the sockets and see or steer every command sent through them.
fn ensure_private_dir(dir: &Path) -> Result<(), TargetError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let shown = dir.display();
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Its parents are missing: make them, private as well.
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                TargetError::permanent(format!("cannot create the ssh control directory {shown}: {e}"))
            })?;
        }
        Err(e) => {
            return Err(TargetError::permanent(format!(
                "cannot create the ssh control directory {shown}: {e}"
            )));
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        TargetError::permanent(format!("cannot inspect the ssh control directory {shown}: {e}"))
    })?;
    let uid = current_uid();
    let refuse = |why: String| {
        Err(TargetError::permanent(format!(
            "refusing the ssh control directory {shown}: {why}; remove it, or make it a directory of \
             your own that only you can write to"
        )))
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    if meta.uid() != uid {
        return refuse(format!("it is owned by uid {}, not by this user (uid {uid})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!("its group or other users may write to it (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

/// Reaches a target through the system `ssh` and `sftp` clients.
#[derive(Debug, Clone)]
pub struct SshTransport {
    options: SshOptions,
}

impl SshTransport {
    /// A transport for `options`; nothing is contacted until the first call.
    pub fn new(options: SshOptions) -> Self {
        SshTransport { options }
    }

    /// What it connects to.
    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// The options every `ssh` and `sftp` call starts with. Port and user are given as `-o`
    /// options (the same as ssh's `-p`/`-l` and sftp's `-P`) so both clients take one list.
    fn ssh_args(&self) -> Vec<String> {
        let o = &self.options;
        let mut args: Vec<String> = vec!["-F".into(), "/dev/null".into()];
        let mut option = |name: &str, value: &str| {
            args.push("-o".into());
            args.push(format!("{name}={value}"));
        };
        // BatchMode=yes would keep ssh from asking the askpass helper (and sftp -b adds it after
        // ours, which ssh ignores: the first value of an option wins).
        option("BatchMode", if o.password.is_some() { "no" } else { "yes" });
        option("LogLevel", "ERROR");
        option("ConnectTimeout", &whole_seconds(o.connect_timeout).to_string());
        // A connection that stops answering fails the call in 45 s instead of hanging it.
        option("ServerAliveInterval", "15");
        option("ServerAliveCountMax", "3");
        option("ControlMaster", "auto");
        // `%C` hashes host, port and user only: a password logon gets masters of its own.
        let socket = if o.password.is_some() { "password-%C" } else { "%C" };
        option("ControlPath", &config_path(&o.control_dir.join(socket), true));
        // ControlPersist=0 would keep the master forever.
        let persist = match o.control_persist {
            Duration::ZERO => "no".to_string(),
            d => whole_seconds(d).to_string(),
        };
        option("ControlPersist", &persist);
        option("StrictHostKeyChecking", o.host_key_policy.option_value());
        match &o.known_hosts_file {
            Some(file) => {
                option("UserKnownHostsFile", &config_path(file, false));
                option("GlobalKnownHostsFile", "/dev/null");
            }
            // Checking nothing must not write the user's known hosts either.
            None if o.host_key_policy == HostKeyPolicy::Off => option("UserKnownHostsFile", "/dev/null"),
            None => {}
        }
        if let Some(port) = o.port {
            option("Port", &port.to_string());
        }
        if let Some(user) = &o.user {
            option("User", &config_word(user));
        }
        if o.password.is_some() {
            // One try with the password and nothing else: no key, no keyboard-interactive
            // prompt the helper would not understand.
            option("PreferredAuthentications", "password");
            option("PubkeyAuthentication", "no");
            option("NumberOfPasswordPrompts", "1");
        } else if let Some(identity) = &o.identity_file {
            let text = identity.to_string_lossy();
            // `-i` looks for the file before expanding `%` tokens, so a path holding `%` (which
            // must be written `%%`) goes in as an option instead.
            let by_option = text.contains('%');
            if by_option {
                option("IdentityFile", &config_path(identity, false));
            }
            option("IdentitiesOnly", "yes");
            if !by_option {
                args.push("-i".into());
                args.push(text.into_owned());
            }
        }
        args
    }

    /// `user@host:port`, for messages.
    fn destination(&self) -> String {
        let o = &self.options;
        let user = o.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let host = if o.host.contains(':') { format!("[{}]", o.host) } else { o.host.clone() };
        format!("{user}{host}:{}", o.port.unwrap_or(22))
    }

    /// What every message starts with: `DRBTS01 (ssh to admin@10.1.0.11:22)`.
    fn at(&self) -> String {
        format!("{} (ssh to {})", self.options.server, self.destination())
    }

    /// A permanent error about this server.
    fn permanent(&self, message: impl std::fmt::Display) -> TargetError {
        TargetError::permanent(format!("{}: {message}", self.at()))
    }

    /// `error` with this server in front of its message.
    fn located(&self, error: TargetError) -> TargetError {
        TargetError { message: format!("{}: {}", self.at(), error.message), ..error }
    }

    /// The error for ssh's own failure (it exited 255), carrying its messages.
    fn ssh_failure(&self, messages: &str) -> TargetError {
        ssh_failure(&self.at(), messages, self.options.password.as_ref().map(|p| p.secret.as_str()))
    }

    /// Runs the OpenSSH client `client` (`ssh` or `sftp`) with `args`. For a password logon it
    /// gets an askpass helper for this call only.
    async fn client(
        &self,
        client: &str,
        args: Vec<String>,
        stdin: Option<&[u8]>,
        timeout: Duration,
        output_limit: usize,
        doing: &str,
    ) -> Result<ExecOutput, TargetError> {
        ensure_private_dir(&self.options.control_dir).map_err(|e| self.located(e))?;
        let helper = match &self.options.password {
            Some(logon) => Some(askpass::Askpass::new(logon).await.map_err(|e| self.permanent(e))?),
            None => None,
        };
        let env = helper.as_ref().map(askpass::Askpass::env).unwrap_or_default();
        let mut process = tokio::process::Command::new(client);
        process.args(args);
        // Unmarked: the master connection a call may start outlives it by design (orphans.rs).
        let run = process::run_with_env(process, &env, stdin, timeout, output_limit, Marking::None);
        let out = run.await.map_err(|e| match e {
            ProcessError::Start(e) if e.kind() == std::io::ErrorKind::NotFound => self.permanent(format!(
                "the OpenSSH client `{client}` is not installed on this machine (it is needed for ssh targets)"
            )),
            ProcessError::TimedOut(t) => TargetError::retryable(format!(
                "{}: {doing} timed out after {:.1}s and {client} was killed",
                self.at(),
                t.as_secs_f64()
            )),
            e => self.located(e.into_target_error(client)),
        });
        // The helper's directory goes now: the password is on disk for one call at most.
        drop(helper);
        out
    }

    /// Runs `remote` (a command line for the server's shell) through ssh. `Err` is a failure to
    /// run it: ssh's own (exit 255 with messages in its log) or the client's.
    async fn ssh(
        &self,
        remote: String,
        stdin: Option<&[u8]>,
        timeout: Duration,
        output_limit: usize,
        doing: &str,
    ) -> Result<ExecOutput, TargetError> {
        let log = tempfile::Builder::new()
            .prefix("drover-ssh-")
            .suffix(".log")
            .tempfile()
            .map_err(|e| self.permanent(format!("cannot create a log file for ssh: {e}")))?;
        let mut args = self.ssh_args();
        args.extend(["-T".into(), "-E".into(), log.path().to_string_lossy().into_owned()]);
        args.extend(["--".into(), self.options.host.clone(), remote]);
        let out = self.client("ssh", args, stdin, timeout, output_limit, doing).await?;
        if out.exit_code == Some(255) {
            let messages = tokio::fs::read_to_string(log.path()).await.unwrap_or_default();
            // An empty log means ssh itself had nothing to say: the program exited 255.
            if !messages.trim().is_empty() {
                return Err(self.ssh_failure(&messages));
            }
        }
        Ok(out)
    }

    /// Runs one sftp batch. `Err` is a failure to reach the target; `Ok(Err(stderr))` a command
    /// of the batch that failed (sftp stops at it).
    async fn sftp(&self, batch: &str, doing: &str) -> Result<Result<(), String>, TargetError> {
        let mut args = self.ssh_args();
        let host = &self.options.host;
        // sftp reads `host:path`, so an IPv6 address needs its brackets.
        let host =
            if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
        args.extend(["-b".into(), "-".into(), "--".into(), host]);
        let out = self
            .client("sftp", args, Some(batch.as_bytes()), FILE_TIMEOUT, FILE_MESSAGE_LIMIT, doing)
            .await?;
        let stderr = process::stderr_text(&out);
        match out.exit_code {
            Some(0) => Ok(Ok(())),
            // sftp exits 255 when its ssh connection failed, with ssh's messages on stderr.
            Some(255) => Err(self.ssh_failure(&stderr)),
            _ if stderr.is_empty() => Ok(Err(format!("sftp failed ({doing})"))),
            _ => Ok(Err(stderr)),
        }
    }

    /// The command line the server's shell gets for `command`. A NUL in any word is refused:
    /// no command line can carry it.
    fn remote(&self, command: &Command) -> Result<String, TargetError> {
        match self.options.shell {
            RemoteShell::Posix => {
                let words = std::iter::once(&command.program).chain(&command.args);
                if let Some(word) = words.clone().find(|w| w.contains('\0')) {
                    return Err(
                        self.permanent(format!("{word:?} cannot be sent over ssh: it holds a NUL character"))
                    );
                }
                Ok(words.map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "))
            }
            RemoteShell::PowerShell => {
                let script = super::windows::exec_script(&command.program, &command.args)
                    .map_err(|e| self.permanent(e))?;
                self.powershell_command(&script, &command.program)
            }
        }
    }

    /// `path` as sftp names it on this server: a Windows path `C:\Dir\file` is `/C:/Dir/file`.
    fn sftp_path(&self, path: &str) -> Result<String, TargetError> {
        let path = match self.options.shell {
            RemoteShell::Posix => path.to_owned(),
            RemoteShell::PowerShell => super::windows::sftp_path(path),
        };
        sftp_word(&path, false).map(drop).map_err(|e| self.located(e))?;
        Ok(path)
    }

    /// `path` as one word of an sftp batch command (see [`sftp_word`]).
    fn sftp_word(&self, path: &str, globbed: bool) -> Result<String, TargetError> {
        sftp_word(path, globbed).map_err(|e| self.located(e))
    }

    async fn sftp_read(&self, path: &str) -> Result<Vec<u8>, TargetError> {
        let local = staging_dir().map_err(|e| self.located(e))?;
        let copy = local.path().join("data");
        let remote = self.sftp_path(path)?;
        let batch = format!(
            "get {} {}\n",
            self.sftp_word(&remote, true)?,
            self.sftp_word(&copy.to_string_lossy(), false)?
        );
        if let Err(detail) = self.sftp(&batch, "read").await? {
            let missing = detail.contains("not found") || detail.contains("No such file");
            return Err(self.located(file_error("read", path, &detail, missing)));
        }
        tokio::fs::read(&copy)
            .await
            .map_err(|e| self.permanent(format!("cannot read the copy of {path} fetched by sftp: {e}")))
    }

    async fn sftp_write(&self, path: &str, contents: &[u8]) -> Result<(), TargetError> {
        use std::os::unix::fs::PermissionsExt;
        let local = staging_dir().map_err(|e| self.located(e))?;
        let copy = local.path().join("data");
        let staged = async {
            tokio::fs::write(&copy, contents).await?;
            // sftp gives the new file the local copy's mode: make it the usual one.
            tokio::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).await
        };
        staged.await.map_err(|e| self.permanent(format!("cannot stage {path} for sftp: {e}")))?;
        // Upload beside the file, then rename over it, so nobody sees half of it.
        let remote = self.sftp_path(path)?;
        let temporary = self.sftp_path(&temporary_name(path))?;
        let batch = format!(
            "put {} {}\nrename {} {}\n",
            self.sftp_word(&copy.to_string_lossy(), true)?,
            self.sftp_word(&temporary, false)?,
            self.sftp_word(&temporary, false)?,
            self.sftp_word(&remote, false)?,
        );
        if let Err(detail) = self.sftp(&batch, "write").await? {
            // Best effort: the upload may have got as far as the temporary file.
            let _ = self.sftp(&format!("rm {}\n", self.sftp_word(&temporary, true)?), "clean up").await;
            return Err(self.located(file_error("write", path, &detail, detail.contains("No such file"))));
        }
        Ok(())
    }

    async fn sftp_remove(&self, path: &str) -> Result<(), TargetError> {
        let remote = self.sftp_path(path)?;
        match self.sftp(&format!("rm {}\n", self.sftp_word(&remote, true)?), "remove").await? {
            Ok(()) => Ok(()),
            Err(detail) if detail.contains("No such file") || detail.contains("not found") => Ok(()),
            Err(detail) => Err(self.located(file_error("remove", path, &detail, false))),
        }
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
        let remote = self.remote(command)?;
        let (stdin, doing) = (command.stdin.as_deref(), command.program.as_str());
        let out = self.ssh(remote, stdin, command.timeout, command.output_limit, doing).await?;
        match self.options.shell {
            RemoteShell::Posix => Ok(out),
            RemoteShell::PowerShell => self.exec_result(&command.program, out),
        }
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TargetError> {
        match self.options.files {
            FileTransfer::Sftp => self.sftp_read(path).await,
            FileTransfer::PowerShell => self.powershell_read(path).await,
        }
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), TargetError> {
        match self.options.files {
            FileTransfer::Sftp => self.sftp_write(path, contents).await,
            FileTransfer::PowerShell => self.powershell_write(path, contents).await,
        }
    }

    async fn remove_file(&self, path: &str) -> Result<(), TargetError> {
        match self.options.files {
            FileTransfer::Sftp => self.sftp_remove(path).await,
            FileTransfer::PowerShell => self.powershell_remove(path).await,
        }
    }
}

/// The name a written file is uploaded under before it is renamed over `path`.
fn temporary_name(path: &str) -> String {
    format!("{path}.drover-{}.tmp", ulid::Ulid::generate())
}

/// How ssh's own messages (it exited 255) are read: the first entry found in them decides, so
/// the permanent ones come first; anything else is retryable.
const SSH_FAILURES: &[(&str, TargetErrorKind, Option<FailureCause>)] = &[
    ("Permission denied", TargetErrorKind::Permanent, Some(FailureCause::Authentication)),
    ("Host key verification failed", TargetErrorKind::Permanent, Some(FailureCause::HostKey)),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", TargetErrorKind::Permanent, Some(FailureCause::HostKey)),
    ("Too many authentication failures", TargetErrorKind::Permanent, Some(FailureCause::Authentication)),
    ("too long for Unix domain socket", TargetErrorKind::Permanent, None),
    ("Bad configuration option", TargetErrorKind::Permanent, None),
    ("Connection refused", TargetErrorKind::Retryable, Some(FailureCause::Unreachable)),
    ("Connection timed out", TargetErrorKind::Retryable, Some(FailureCause::Unreachable)),
    ("No route to host", TargetErrorKind::Retryable, Some(FailureCause::Unreachable)),
    ("Could not resolve hostname", TargetErrorKind::Retryable, Some(FailureCause::Unreachable)),
    ("Connection closed", TargetErrorKind::Retryable, None),
    ("Operation timed out", TargetErrorKind::Retryable, Some(FailureCause::Unreachable)),
];

/// The error for ssh's own failure, carrying its messages after `at` (server and destination).
/// A refused password logon (its password from the secret `password_secret`) says so.
fn ssh_failure(at: &str, messages: &str, password_secret: Option<&str>) -> TargetError {
    // The host-key warning is framed in lines of `@`; the words are what matters.
    let text = messages
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '@' || c.is_whitespace()))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, cause) = SSH_FAILURES
        .iter()
        .find(|(needle, ..)| text.contains(needle))
        .map_or((TargetErrorKind::Retryable, None), |&(_, kind, cause)| (kind, cause));
    let hint = match password_secret {
        Some(secret) if text.contains("Permission denied") => format!(
            " (a password logon with the password of secret `{secret}`: check that it is the account's \
             current password and that the server accepts password logons)"
        ),
        _ => String::new(),
    };
    TargetError { kind, message: format!("{at}: {text}{hint}"), cause }
}

/// A private local directory for the copy sftp sends or fetches; removed on drop.
fn staging_dir() -> Result<tempfile::TempDir, TargetError> {
    tempfile::Builder::new()
        .prefix("drover-sftp-")
        .tempdir()
        .map_err(|e| TargetError::permanent(format!("cannot create a staging directory for sftp: {e}")))
}

/// `word` as one word of a POSIX shell command line, whatever it holds: single-quoted, with each
/// embedded `'` written as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A path for an ssh option value: `%` doubled (ssh expands `%` tokens in paths) except in the
/// `%C` a control path ends with, and double-quoted when it holds spaces or quotes.
fn config_path(path: &Path, ends_with_token: bool) -> String {
    let text = path.to_string_lossy();
    let escaped = match text.strip_suffix("%C").filter(|_| ends_with_token) {
        Some(dir) => format!("{}%C", percent_escaped(dir)),
        None => percent_escaped(&text),
    };
    config_word(&escaped)
}

fn percent_escaped(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word of an ssh configuration line: double-quoted, with `\` and `"` escaped, when it
/// holds white space or quotes.
fn config_word(word: &str) -> String {
    if word.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#')) {
        format!("\"{}\"", word.replace('\\', r"\\").replace('"', "\\\""))
    } else {
        word.to_string()
    }
}

/// `path` as one argument of an sftp batch command. sftp expands wildcards in some arguments
/// (`globbed`: the source of `get` and `put`, the path of `rm`) and not in others, so `*`, `?` and
/// `[` are escaped only in those. Paths with a line break or a backslash cannot be carried and
/// are refused.
fn sftp_word(path: &str, globbed: bool) -> Result<String, TargetError> {
    if path.is_empty() || path.chars().any(|c| matches!(c, '\n' | '\r' | '\0' | '\\')) {
        return Err(TargetError::permanent(format!(
            "the path {path:?} cannot be sent through sftp (empty, or with a line break or a backslash)"
        )));
    }
    let mut word = String::from("\"");
    for c in operand(path).chars() {
        match c {
            '"' => word.push_str("\\\""),
            // Outside the quotes, `\*` reaches the wildcard matcher as a literal `*`.
            '*' | '?' | '[' if globbed => {
                word.push_str("\"\\");
                word.push(c);
                word.push('"');
            }
            c => word.push(c),
        }
    }
    word.push('"');
    Ok(word)
}

/// Whole seconds, rounded up, at least one.
fn whole_seconds(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SshOptions {
        SshOptions {
            server: "DB1".into(),
            host: "db1.example".into(),
            port: Some(2222),
            user: Some("ops".into()),
            identity_file: Some("/keys/id_ed25519".into()),
            known_hosts_file: Some("/etc/drover/known_hosts".into()),
            host_key_policy: HostKeyPolicy::AcceptNew,
            connect_timeout: Duration::from_millis(2500),
            control_dir: "/run/drover/ssh".into(),
            control_persist: Duration::from_secs(60),
            shell: RemoteShell::Posix,
            files: FileTransfer::Sftp,
            password: None,
        }
    }

    fn password_logon() -> Option<PasswordLogon> {
        Some(PasswordLogon { secret: "db1-admin".into(), password: SecretValue::new("hunter2") })
    }

    fn joined(options: SshOptions) -> String {
        SshTransport::new(options).ssh_args().join(" ")
    }

    #[test]
    fn common_options_are_all_there() {
        assert_eq!(
            joined(options()),
            "-F /dev/null -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=3 \
             -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o ControlMaster=auto \
             -o ControlPath=/run/drover/ssh/%C -o ControlPersist=60 -o StrictHostKeyChecking=accept-new \
             -o UserKnownHostsFile=/etc/drover/known_hosts -o GlobalKnownHostsFile=/dev/null \
             -o Port=2222 -o User=ops -o IdentitiesOnly=yes -i /keys/id_ed25519"
        );
    }

    #[test]
    fn a_password_logon_asks_the_helper_and_never_uses_a_key() {
        let args = joined(SshOptions { password: password_logon(), ..options() });
        assert_eq!(
            args,
            "-F /dev/null -o BatchMode=no -o LogLevel=ERROR -o ConnectTimeout=3 \
             -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o ControlMaster=auto \
             -o ControlPath=/run/drover/ssh/password-%C -o ControlPersist=60 -o StrictHostKeyChecking=accept-new \
             -o UserKnownHostsFile=/etc/drover/known_hosts -o GlobalKnownHostsFile=/dev/null \
             -o Port=2222 -o User=ops -o PreferredAuthentications=password -o PubkeyAuthentication=no \
             -o NumberOfPasswordPrompts=1"
        );
        assert!(!args.contains("hunter2"), "the password is never an argument");
    }

    #[test]
    fn absent_options_are_left_to_ssh() {
        let args = joined(SshOptions::new("db1", "/c"));
        assert!(args.contains("-o StrictHostKeyChecking=yes"), "{args}");
        for absent in ["Port=", "User=", "KnownHostsFile", "-i ", "IdentitiesOnly"] {
            assert!(!args.contains(absent), "{absent} in {args}");
        }
        let off = joined(SshOptions { host_key_policy: HostKeyPolicy::Off, ..SshOptions::new("db1", "/c") });
        assert!(off.contains("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"), "{off}");
        let once = joined(SshOptions { control_persist: Duration::ZERO, ..SshOptions::new("db1", "/c") });
        assert!(once.contains("-o ControlPersist=no"), "{once}");
    }

    #[test]
    fn paths_in_options_survive_ssh_parsing() {
        let args = SshTransport::new(SshOptions {
            known_hosts_file: Some("/my dir/100%/known \"hosts\"".into()),
            identity_file: Some("/keys/50%".into()),
            ..SshOptions::new("db1", "/tmp/a b")
        })
        .ssh_args();
        assert!(args.contains(&r#"ControlPath="/tmp/a b/%C""#.to_string()), "{args:?}");
        assert!(
            args.contains(&r#"UserKnownHostsFile="/my dir/100%%/known \"hosts\"""#.to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"IdentityFile=/keys/50%%".to_string()), "{args:?}");
        assert!(!args.contains(&"-i".to_string()), "{args:?}");
    }

    #[test]
    fn shell_quote_makes_one_literal_word() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME `x` \"q\" \\ *"), "'$HOME `x` \"q\" \\ *'");
        assert_eq!(shell_quote("''"), r"''\'''\'''");
    }

    #[test]
    fn shell_quote_round_trips_through_a_real_shell() {
        let words = ["", "a b", "it's", "''", "$HOME", "`id`", "\"x\"", "\\", "*", "a\nb", "-n", "é"];
        let line = words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!(r#"for w in {line}; do printf '%s\0' "$w"; done"#)])
            .output()
            .expect("sh runs");
        let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        // The last NUL ends the last word.
        let expected: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).chain([&b""[..]]).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_remote_command_quotes_program_and_args() {
        let command = Command {
            program: "my prog".into(),
            args: vec!["it's".into(), String::new()],
            stdin: Some(b"never on the command line".to_vec()),
            timeout: Duration::from_secs(1),
            output_limit: 1,
        };
        let posix = SshTransport::new(options());
        assert_eq!(posix.remote(&command).expect("sendable"), r"'my prog' 'it'\''s' ''");
        let windows = SshTransport::new(SshOptions { shell: RemoteShell::PowerShell, ..options() });
        let script = super::super::windows::exec_script("my prog", &command.args).expect("script");
        let remote = windows.remote(&command).expect("sendable");
        assert_eq!(remote, super::super::windows::remote_command(&script));
        assert!(remote.starts_with("powershell.exe -NoProfile -NonInteractive -EncodedCommand "), "{remote}");
        for transport in [posix, windows] {
            let nul = Command { args: vec!["a\0b".into()], ..command.clone() };
            let e = transport.remote(&nul).expect_err("a NUL is refused");
            assert_eq!(e.kind, TargetErrorKind::Permanent);
            assert!(e.message.starts_with("DB1 (ssh to ops@db1.example:2222): "), "{e}");
            assert!(e.message.contains("NUL character"), "{e}");
        }
    }

    #[test]
    fn messages_name_the_server_and_where_it_was_reached() {
        let at = |o: SshOptions| SshTransport::new(o).at();
        assert_eq!(at(options()), "DB1 (ssh to ops@db1.example:2222)");
        assert_eq!(at(SshOptions::new("10.1.0.11", "/c")), "10.1.0.11 (ssh to 10.1.0.11:22)");
        assert_eq!(
            at(SshOptions { server: "V6".into(), ..SshOptions::new("fe80::1", "/c") }),
            "V6 (ssh to [fe80::1]:22)"
        );
    }

    #[test]
    fn windows_paths_go_to_sftp_with_a_drive_folder() {
        let windows = SshTransport::new(SshOptions { shell: RemoteShell::PowerShell, ..options() });
        assert_eq!(windows.sftp_path(r"C:\Drover\join.xml").expect("ok"), "/C:/Drover/join.xml");
        let posix = SshTransport::new(options());
        assert_eq!(posix.sftp_path("/etc/x").expect("ok"), "/etc/x");
        let e = posix.sftp_path(r"C:\x").expect_err("a backslash in a POSIX path");
        assert!(e.message.starts_with("DB1 (ssh to ops@db1.example:2222): the path"), "{e}");
    }

    #[test]
    fn sftp_words_are_quoted_and_wildcards_escaped_where_expanded() {
        assert_eq!(sftp_word("/a b/c", true).expect("ok"), r#""/a b/c""#);
        assert_eq!(sftp_word(r#"/q"x"#, false).expect("ok"), r#""/q\"x""#);
        assert_eq!(sftp_word("/x*y", true).expect("ok"), r#""/x"\*"y""#);
        assert_eq!(sftp_word("/x*y", false).expect("ok"), r#""/x*y""#);
        assert_eq!(sftp_word("-f", false).expect("ok"), r#""./-f""#);
        for bad in ["", "a\nb", r"a\b"] {
            assert_eq!(sftp_word(bad, true).expect_err(bad).kind, TargetErrorKind::Permanent);
        }
    }

    #[test]
    fn ssh_failures_are_classified_by_message() {
        use FailureCause::{Authentication, HostKey, Unreachable};
        let cases = [
            (
                "ssh: connect to host h port 22: Connection refused\n",
                TargetErrorKind::Retryable,
                Some(Unreachable),
            ),
            (
                "ssh: Could not resolve hostname nope: Name or service not known\n",
                TargetErrorKind::Retryable,
                Some(Unreachable),
            ),
            ("Connection closed by 10.0.0.1 port 22\n", TargetErrorKind::Retryable, None),
            ("ops@h: Permission denied (publickey).\n", TargetErrorKind::Permanent, Some(Authentication)),
            (
                "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@\n",
                TargetErrorKind::Permanent,
                Some(HostKey),
            ),
            ("Host key verification failed.\n", TargetErrorKind::Permanent, Some(HostKey)),
            (
                "Received disconnect: Too many authentication failures\n",
                TargetErrorKind::Permanent,
                Some(Authentication),
            ),
            ("something new went wrong\n", TargetErrorKind::Retryable, None),
        ];
        for (messages, kind, cause) in cases {
            let e = ssh_failure("S1 (ssh to ops@h:22)", messages, None);
            assert_eq!(e.kind, kind, "{messages}");
            assert_eq!(e.cause, cause, "{messages}");
            assert!(e.message.starts_with("S1 (ssh to ops@h:22): "), "{e}");
        }
        let e = ssh_failure(
            "S1 (ssh to h:22)",
            "@@@\n@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.\n",
            None,
        );
        assert_eq!(
            e.message,
            "S1 (ssh to h:22): WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! Host key verification failed."
        );
    }

    #[test]
    fn each_way_of_failing_to_log_on_is_classified_naming_the_server() {
        let at = "DRBTS01 (ssh to admin@10.1.0.11:22)";
        let unreachable =
            ssh_failure(at, "ssh: connect to host 10.1.0.11 port 22: Connection timed out\n", None);
        assert_eq!(unreachable.kind, TargetErrorKind::Retryable);
        assert_eq!(
            unreachable.message,
            "DRBTS01 (ssh to admin@10.1.0.11:22): ssh: connect to host 10.1.0.11 port 22: Connection timed out"
        );
        let wrong_key = ssh_failure(
            at,
            "admin@10.1.0.11: Permission denied (publickey,password,keyboard-interactive).\n",
            None,
        );
        assert_eq!(wrong_key.kind, TargetErrorKind::Permanent);
        assert_eq!(
            wrong_key.message,
            "DRBTS01 (ssh to admin@10.1.0.11:22): admin@10.1.0.11: Permission denied (publickey,password,keyboard-interactive)."
        );
        let wrong_password =
            ssh_failure(at, "admin@10.1.0.11: Permission denied (password).\n", Some("drbts-admin"));
        assert_eq!(wrong_password.kind, TargetErrorKind::Permanent);
        assert!(
            wrong_password.message.starts_with(
                "DRBTS01 (ssh to admin@10.1.0.11:22): admin@10.1.0.11: Permission denied (password). \
                 (a password logon with the password of secret `drbts-admin`"
            ),
            "{wrong_password}"
        );
        let no_password = ssh_failure(at, "Connection refused\n", Some("drbts-admin"));
        assert_eq!(no_password.kind, TargetErrorKind::Retryable);
        assert!(!no_password.message.contains("drbts-admin"), "only a refused logon blames the password");
    }

    #[test]
    fn a_control_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("temporary directory");
        let dir = base.path().join("a/b/control");
        ensure_private_dir(&dir).expect("created");
        for made in [dir.as_path(), dir.parent().expect("parent")] {
            let mode = std::fs::metadata(made).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", made.display());
        }
        ensure_private_dir(&dir).expect("an existing private directory is used");
    }

    #[test]
    fn a_control_directory_others_may_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("temporary directory");
        let dir = base.path().join("shared");
        std::fs::create_dir(&dir).expect("created");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = ensure_private_dir(&dir).expect_err("refused");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert_eq!(
            e.message,
            format!(
                "refusing the ssh control directory {}: its group or other users may write to it (mode 777); \
                 remove it, or make it a directory of your own that only you can write to",
                dir.display()
            )
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&dir).expect("readable by others, writable by its owner only: used");
    }

    #[test]
    fn a_control_directory_of_another_user_or_a_link_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let base = tempfile::tempdir().expect("temporary directory");
        // Another user's directory: one this test makes and gives away when it runs as root, else
        // the root directory, which is root's.
        let (theirs, owner) = if current_uid() == 0 {
            let dir = base.path().join("theirs");
            std::fs::create_dir(&dir).expect("created");
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
            (dir, 65534)
        } else {
            let root = PathBuf::from("/");
            let owner = std::fs::metadata(&root).expect("/").uid();
            (root, owner)
        };
        let e = ensure_private_dir(&theirs).expect_err("refused");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(
            e.message.starts_with(&format!("refusing the ssh control directory {}:", theirs.display())),
            "{e}"
        );
        assert!(
            e.message
                .contains(&format!("it is owned by uid {owner}, not by this user (uid {})", current_uid())),
            "{e}"
        );
        let own = base.path().join("own");
        std::fs::create_dir(&own).expect("created");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&own, &link).expect("symlink");
        let e = ensure_private_dir(&link).expect_err("refused");
        assert!(e.message.contains("it is a symbolic link"), "{e}");
    }

    #[tokio::test]
    async fn a_call_through_a_refused_control_directory_fails_before_ssh_runs() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("temporary directory");
        let dir = base.path().join("shared");
        std::fs::create_dir(&dir).expect("created");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let transport = SshTransport::new(SshOptions::new("127.0.0.1", &dir));
        let command = Command {
            program: "true".into(),
            args: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(5),
            output_limit: 1024,
        };
        let e = transport.exec(&command).await.expect_err("refused");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert!(e.message.contains(&format!("refusing the ssh control directory {}", dir.display())), "{e}");
    }

    #[test]
    fn the_default_control_directory_is_per_user() {
        let dir = default_control_dir();
        let name = dir.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(name == "drover-ssh" || name == format!("drover-ssh-{}", current_uid()), "{}", dir.display());
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds(Duration::from_millis(5001)), 6);
    }
}
