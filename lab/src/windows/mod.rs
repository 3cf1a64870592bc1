//! The lab's servers as Windows servers behind a real sshd (`lab/PROTOCOL.md`, "Windows over
//! SSH"): `drover-lab windows-shell --state <lab.json> <SERVER> [--log <file>]` is sshd's
//! `ForceCommand` for one lab server and plays Windows OpenSSH there, whose default shell runs
//! each command as `cmd.exe /c <command>`.
//!
//! - [`cmd`]: cmd.exe reads `SSH_ORIGINAL_COMMAND`: Windows PowerShell with an encoded script, or
//!   its own answer (a POSIX-ism is "not recognized");
//! - [`script`]: the four script shapes the lab's PowerShell knows, and their literals;
//! - [`argv`]: how Windows PowerShell 5.1 builds a program's command line and the C runtime
//!   reads it back;
//! - [`run`]: what the scripts do; [`logon`]: the session's logon kind (network credentials or
//!   not); [`log`]: the command log tests search for secrets.
//!
//! Invariant: the shell runs nothing on this machine and never uses Drover's engine: it models
//! Windows independently, so the engine's tests can fail against it.

pub mod argv;
pub mod cmd;
pub mod log;
pub mod logon;
pub mod run;
pub mod script;

use std::io::Read;
use std::time::SystemTime;

use crate::programs::{self, Output};
use crate::state::Lab;
use cmd::CmdLine;
use logon::SessionLogon;
use run::Exec;
use script::Script;

/// `SSH_ORIGINAL_COMMAND`: the command line the client sent (absent: an interactive logon).
pub const SSH_ORIGINAL_COMMAND: &str = "SSH_ORIGINAL_COMMAND";

/// One ssh session on a lab server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The lab server it is on.
    pub server: String,
    /// `SSH_ORIGINAL_COMMAND`.
    pub command: Option<String>,
    /// How it logged on.
    pub logon: SessionLogon,
}

impl Session {
    /// The session on `server` that the environment (`var` reads one variable) describes.
    pub fn from_env(server: &str, var: impl Fn(&str) -> Option<String>) -> Session {
        Session {
            server: server.to_owned(),
            command: var(SSH_ORIGINAL_COMMAND),
            logon: SessionLogon::from_env(var),
        }
    }
}

/// What a session's command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// No command: an interactive logon, which the lab does not support.
    Interactive,
    /// Answered before any script runs (by cmd.exe, or PowerShell refusing its command line).
    Answered(Output),
    /// A PowerShell script.
    PowerShell {
        /// The first word of the command line (cmd.exe names it if `powershell.exe` is missing).
        word: String,
        /// The script, decoded.
        script: String,
        /// What it does.
        action: Action,
    },
}

/// What a script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Runs a program.
    Exec(Exec),
    /// Prints a file in base64 lines.
    Read(String),
    /// Writes a file from base64 lines on standard input (the path; the temporary file is the
    /// script's business).
    Write(String),
    /// Removes a file.
    Remove(String),
    /// A script the lab does not know.
    Unknown,
}

impl Request {
    /// What the command line `command` asks for.
    pub fn of(command: Option<&str>) -> Request {
        let Some(command) = command else { return Request::Interactive };
        match cmd::read(command) {
            CmdLine::Answered(output) => Request::Answered(output),
            CmdLine::PowerShell { word, script } => {
                let action = match Script::parse(&script) {
                    Some(Script::Exec { program, args }) => Action::Exec(Exec::new(&program, &args)),
                    Some(Script::Read { path }) => Action::Read(path),
                    Some(Script::Write { path, .. }) => Action::Write(path),
                    Some(Script::Remove { path }) => Action::Remove(path),
                    None => Action::Unknown,
                };
                Request::PowerShell { word, script, action }
            }
        }
    }

    /// The command log's line for this request of `session`.
    pub fn log_entry(&self, session: &Session) -> log::Entry {
        let (script, exec) = match self {
            Request::PowerShell { script, action, .. } => {
                let exec = match action {
                    Action::Exec(exec) => Some(exec),
                    _ => None,
                };
                (Some(script.clone()), exec)
            }
            _ => (None, None),
        };
        log::Entry {
            server: session.server.clone(),
            user: session.logon.user.clone(),
            auth: session.logon.methods.clone(),
            network_credentials: session.logon.network_credentials(),
            command: session.command.clone(),
            script,
            arguments: exec.map(|e| e.arguments.clone()),
            argv: exec.map(|e| e.argv.clone()),
        }
    }

    /// Answers the request of `session` on the lab, with the session's standard input.
    pub fn answer(&self, lab: &mut Lab, session: &Session, stdin: &mut dyn Read, now: SystemTime) -> Output {
        let (word, script, action) = match self {
            Request::Interactive => {
                return Output::stderr(
                    1,
                    "drover-lab: the lab's Windows servers run commands only: an interactive logon \
                     (no SSH_ORIGINAL_COMMAND) is not supported\n",
                );
            }
            Request::Answered(output) => return output.clone(),
            Request::PowerShell { word, script, action } => (word, script, action),
        };
        let Some(server) = lab.server_name(&session.server) else {
            return Output::stderr(
                programs::UNSUPPORTED,
                format!("drover-lab: no server {} in this lab\n", session.server),
            );
        };
        if lab.powershell_missing(&server) {
            return programs::not_recognized(word);
        }
        match action {
            Action::Exec(exec) => exec.run(lab, &server, &session.logon.logon(), stdin, now),
            Action::Read(path) => run::read(lab, &server, path),
            Action::Write(path) => run::write(lab, &server, path, stdin),
            Action::Remove(path) => run::remove(lab, &server, path),
            Action::Unknown => Output::stderr(
                programs::UNSUPPORTED,
                format!(
                    "drover-lab: unsupported command: a PowerShell script the lab does not know: {script:?}\n"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests;

/// The client side of the tests: what Drover sends, built by the lab's own helpers.
#[cfg(test)]
#[path = "../../tests/common/windows_client.rs"]
mod windows_client;
