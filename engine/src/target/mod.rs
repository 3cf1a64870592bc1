//! Targets: the servers a step acts on, each reached through a [`Transport`]. The plugin host
//! calls transports only after grants were checked and secret references filled in; transports
//! know nothing of plugins, grants or the journal.
//!
//! Three transports: [`LocalTransport`] (this machine), [`SshTransport`] (the system OpenSSH
//! client; the target runs a POSIX shell, or is a Windows server spoken to in PowerShell scripts
//! built by [`windows`]) and [`CommandTransport`] (a local wrapper program that reaches the
//! target). The ones that run processes share `process.rs`: input fed, output capped, killed at
//! the timeout, a cleared environment, a process group of its own, killed when Drover dies.
//! [`orphans`] marks the children of an attempt and finds what an interrupted one left running.
//! [`UnavailableTransport`] stands in for a server whose settings cannot be used (a missing
//! password secret): its every call fails, naming why.

mod command;
mod local;
pub mod orphans;
mod process;
mod ssh;
mod unavailable;
pub mod windows;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use command::CommandTransport;
pub use local::LocalTransport;
pub use ssh::{
    FileTransfer, HostKeyPolicy, PasswordLogon, RemoteShell, SshOptions, SshTransport, default_control_dir,
};
pub use unavailable::UnavailableTransport;

use crate::secrets::SecretValue;

/// A program to run on a target, with secret references already filled in.
#[derive(Debug, Clone)]
pub struct Command {
    /// The program, as the target resolves it.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Standard input, if any.
    pub stdin: Option<Vec<u8>>,
    /// Kill it after this long.
    pub timeout: Duration,
    /// Keep at most this many bytes of stdout and of stderr.
    pub output_limit: usize,
}

/// What a finished program left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Absent when it was killed by a signal.
    pub exit_code: Option<i32>,
    /// Standard output, up to the limit.
    pub stdout: Vec<u8>,
    /// Standard error, up to the limit.
    pub stderr: Vec<u8>,
    /// Output beyond the limit was dropped.
    pub truncated: bool,
    /// How long it ran.
    pub duration: Duration,
}

/// Whether retrying a failed target call can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetErrorKind {
    /// Unreachable, timed out: trying again may help.
    Retryable,
    /// Authentication failed, refused by the target: it will not.
    Permanent,
    /// The file or program does not exist.
    NotFound,
}

/// What stood between Drover and a target, when a transport can tell: `drover inventory check`
/// reports readiness from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The server did not answer (refused, timed out, no route, unknown name).
    Unreachable,
    /// It answered and refused the logon (key or password).
    Authentication,
    /// Its host key is unknown or changed.
    HostKey,
    /// A Windows server without a usable `powershell.exe`.
    NoPowerShell,
    /// The logon has no network credentials for a second server (the Kerberos double hop).
    DoubleHop,
}

/// A target call that failed before a program could finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    /// Whether retrying can help.
    pub kind: TargetErrorKind,
    /// What happened, for the operator.
    pub message: String,
    /// What it was, when the transport knows.
    pub cause: Option<FailureCause>,
}

impl TargetError {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        TargetError { kind: TargetErrorKind::Retryable, message: message.into(), cause: None }
    }
    /// A failure retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        TargetError { kind: TargetErrorKind::Permanent, message: message.into(), cause: None }
    }
    /// Something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        TargetError { kind: TargetErrorKind::NotFound, message: message.into(), cause: None }
    }
    /// The same error, known to be `cause`.
    pub fn because(self, cause: FailureCause) -> Self {
        TargetError { cause: Some(cause), ..self }
    }
}

/// A way of running programs and moving files on one target.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Runs a program and waits for it, within its timeout.
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError>;
    /// Reads a whole file.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TargetError>;
    /// Writes a whole file, replacing it.
    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), TargetError>;
    /// Removes a file; a missing file is not an error.
    async fn remove_file(&self, path: &str) -> Result<(), TargetError>;
}

/// The targets one call may reach, by inventory name, with the secret values their transports
/// hold (a password logon's password), which every call's output is redacted against.
#[derive(Clone, Default)]
pub struct TargetSet {
    targets: BTreeMap<String, Arc<dyn Transport>>,
    secrets: Vec<(String, SecretValue)>,
}

impl TargetSet {
    /// No targets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the target `name`.
    pub fn with(mut self, name: impl Into<String>, transport: Arc<dyn Transport>) -> Self {
        self.targets.insert(name.into(), transport);
        self
    }

    /// The transport of `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Transport>> {
        self.targets.get(name)
    }

    /// The names of all targets.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// Records that a transport holds the value of the secret `name`, so it is redacted.
    pub fn holding(mut self, name: impl Into<String>, value: SecretValue) -> Self {
        let name = name.into();
        if !self.secrets.iter().any(|(n, v)| *n == name && *v == value) {
            self.secrets.push((name, value));
        }
        self
    }

    /// The secret values its transports hold, by secret name.
    pub fn secrets(&self) -> &[(String, SecretValue)] {
        &self.secrets
    }
}

/// `path` as a command operand that cannot be taken for an option: a relative path starting
/// with `-` gets `./` in front.
fn operand(path: &str) -> Cow<'_, str> {
    if path.starts_with('-') { Cow::Owned(format!("./{path}")) } else { Cow::Borrowed(path) }
}

/// A command for the transports' unit tests: 10 s timeout, 1 KiB output limit, no input.
#[cfg(test)]
fn test_command(program: &str, args: &[&str]) -> Command {
    Command {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        timeout: Duration::from_secs(10),
        output_limit: 1024,
    }
}
