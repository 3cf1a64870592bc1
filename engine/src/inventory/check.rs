//! Whether the servers of an inventory are ready for a run (`drover inventory check`): each one
//! is reached through its own transport, as a run would reach it, and asked three questions:
//!
//! 1. **Reachable and authenticated**: a first program runs. A failure is read from its
//!    [`FailureCause`]: no answer (retryable) is unreachable, a refused logon or host key is
//!    reachable but not authenticated.
//! 2. **Shell**: a Windows server (`os = "windows"`, an `ssh` server speaking PowerShell, or a
//!    `command`/`local` server whose `os` is not given, BizTalk's platform) answers
//!    `$PSVersionTable.PSVersion` through `powershell.exe`; a Linux one `uname -sr`.
//! 3. **Second hop** (Windows servers with a SQL Server to reach: `vars.sql` of the server, or
//!    the one given for all): `sqlcmd -E` asks SQL Server who the logon is. A key-based SSH logon
//!    reaches it as `NT AUTHORITY\ANONYMOUS LOGON` and fails ([`FailureCause::DoubleHop`]).
//!
//! Nothing is changed on any server: the probes only read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::Serialize;

use super::{Inventory, RemoteShell, Server, TransportSpec};
use crate::target::{Command, FailureCause, TargetError, TargetErrorKind, TargetSet, Transport};

/// The PowerShell version probe (one argv word for the script).
pub const POWERSHELL_VERSION: [&str; 4] =
    ["-NoProfile", "-NonInteractive", "-Command", "$PSVersionTable.PSVersion.ToString()"];

/// The query that asks SQL Server who the logon is.
pub const WHO_AM_I: &str = "SET NOCOUNT ON; SELECT SUSER_SNAME()";

/// Why the second hop of a Windows server was not asked: no SQL Server to reach.
pub const NO_SQL: &str = "no SQL Server to reach";

/// How long each probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to one question about a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "kebab-case")]
pub enum Verdict {
    /// Yes, with what was found.
    Yes(String),
    /// No, with why.
    No(String),
    /// Not asked: an earlier answer was no, or the question does not apply (with why).
    Skipped(String),
}

impl Verdict {
    /// Whether the answer is no.
    pub fn is_no(&self) -> bool {
        matches!(self, Verdict::No(_))
    }

    /// The text after the verdict.
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Yes(d) | Verdict::No(d) | Verdict::Skipped(d) => d,
        }
    }
}

/// What was found about one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerReadiness {
    /// Its inventory name.
    pub server: String,
    /// `ssh`, `command` or `local`.
    pub transport: &'static str,
    /// It answered.
    pub reachable: Verdict,
    /// It let Drover's logon in.
    pub authenticated: Verdict,
    /// The shell it speaks, with its version.
    pub shell: Verdict,
    /// Its logon reaches SQL Server with network credentials.
    pub second_hop: Verdict,
    /// How long the questions took, in milliseconds.
    pub elapsed_ms: u64,
}

impl ServerReadiness {
    /// Whether a run can use it: no question was answered no, and it was reached.
    pub fn ready(&self) -> bool {
        let answered = [&self.reachable, &self.authenticated, &self.shell, &self.second_hop];
        !answered.iter().any(|v| v.is_no()) && matches!(self.shell, Verdict::Yes(_))
    }
}

/// What to ask of a server.
#[derive(Debug, Clone)]
struct Probe {
    name: String,
    transport: &'static str,
    windows: bool,
    sql: Option<String>,
}

impl Probe {
    fn of(name: &str, server: &Server, sql_for_all: Option<&str>) -> Probe {
        let (transport, windows) = match &server.transport {
            TransportSpec::Ssh(ssh) => ("ssh", ssh.shell == RemoteShell::PowerShell),
            TransportSpec::Command { .. } => ("command", server.os.as_deref() != Some("linux")),
            TransportSpec::Local => ("local", server.os.as_deref() != Some("linux")),
        };
        let sql = sql_for_all
            .map(str::to_owned)
            .or_else(|| server.vars.get("sql").and_then(|v| v.as_str()).map(str::to_owned));
        Probe { name: name.to_owned(), transport, windows, sql }
    }
}

/// Asks every server of `inventory` (in name order), at most `jobs` at a time, through
/// `targets`; `done` hears of each server as soon as it is checked. `sql` is the SQL Server every
/// Windows server should reach, over the servers' own `vars.sql`.
pub async fn check_all(
    inventory: &Inventory,
    targets: &TargetSet,
    sql: Option<&str>,
    jobs: usize,
    mut done: impl FnMut(&ServerReadiness),
) -> Vec<ServerReadiness> {
    let probes: Vec<(Probe, Option<Arc<dyn Transport>>)> = inventory
        .servers
        .iter()
        .map(|(name, server)| (Probe::of(name, server, sql), targets.get(name).cloned()))
        .collect();
    let mut found: Vec<ServerReadiness> = futures_util::stream::iter(probes)
        .map(|(probe, transport)| async move { check_one(&probe, transport.as_deref()).await })
        .buffer_unordered(jobs.max(1))
        .inspect(|readiness| done(readiness))
        .collect()
        .await;
    found.sort_by(|a, b| a.server.cmp(&b.server));
    found
}

/// Asks one server.
async fn check_one(probe: &Probe, transport: Option<&dyn Transport>) -> ServerReadiness {
    let started = Instant::now();
    let mut readiness = ServerReadiness {
        server: probe.name.clone(),
        transport: probe.transport,
        reachable: Verdict::Skipped(String::new()),
        authenticated: Verdict::Skipped(String::new()),
        shell: Verdict::Skipped(String::new()),
        second_hop: Verdict::Skipped(String::new()),
        elapsed_ms: 0,
    };
    let Some(transport) = transport else {
        readiness.reachable = Verdict::No("no transport for this server".into());
        return readiness;
    };
    let shell = if probe.windows {
        run(transport, "powershell.exe", &POWERSHELL_VERSION).await
    } else {
        run(transport, "uname", &["-sr"]).await
    };
    match shell {
        Ok(version) => {
            readiness.reachable = Verdict::Yes(String::new());
            readiness.authenticated = Verdict::Yes(String::new());
            readiness.shell =
                Verdict::Yes(if probe.windows { format!("PowerShell {version}") } else { version });
        }
        Err(Failed::Transport(e)) => read_failure(&mut readiness, e, probe.windows),
        Err(Failed::Exited(said)) => {
            // The server answered: only the shell did not.
            readiness.reachable = Verdict::Yes(String::new());
            readiness.authenticated = Verdict::Yes(String::new());
            readiness.shell = Verdict::No(said);
        }
    }
    readiness.second_hop = match (&readiness.shell, probe.windows, &probe.sql) {
        (_, false, _) => Verdict::Skipped("not a Windows server".into()),
        (_, true, None) => Verdict::Skipped(NO_SQL.into()),
        (Verdict::Yes(_), true, Some(sql)) => second_hop(transport, sql).await,
        (_, true, Some(_)) => Verdict::Skipped("PowerShell did not answer".into()),
    };
    readiness.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    readiness
}

/// Sets the answers a failed first probe gives.
fn read_failure(readiness: &mut ServerReadiness, e: TargetError, windows: bool) {
    let message = e.message.clone();
    match (e.cause, e.kind) {
        (Some(FailureCause::Unreachable), _) | (None, TargetErrorKind::Retryable) => {
            readiness.reachable = Verdict::No(message);
        }
        (Some(FailureCause::Authentication | FailureCause::HostKey), _) => {
            readiness.reachable = Verdict::Yes(String::new());
            readiness.authenticated = Verdict::No(message);
        }
        (Some(FailureCause::NoPowerShell), _) | (None, TargetErrorKind::NotFound) => {
            readiness.reachable = Verdict::Yes(String::new());
            readiness.authenticated = Verdict::Yes(String::new());
            let shell = if windows { "PowerShell" } else { "a POSIX shell with uname" };
            readiness.shell = Verdict::No(format!("{shell} did not answer: {message}"));
        }
        _ => readiness.shell = Verdict::No(message),
    }
}

/// Whether the server's logon reaches `sql` with network credentials.
async fn second_hop(transport: &dyn Transport, sql: &str) -> Verdict {
    let args = ["-S", sql, "-E", "-Q", WHO_AM_I, "-h", "-1", "-W"];
    match run(transport, "sqlcmd", &args).await {
        Ok(login) if login.to_ascii_uppercase().contains("ANONYMOUS LOGON") => Verdict::No(format!(
            "{sql} sees the logon as {login}: no network credentials (the Kerberos double hop)"
        )),
        Ok(login) => Verdict::Yes(format!("reaches {sql} as {login}")),
        Err(Failed::Transport(e)) => Verdict::No(e.message),
        Err(Failed::Exited(said)) => Verdict::No(said),
    }
}

/// Why a probe has no answer.
enum Failed {
    /// The transport failed: the server was not reached or refused the logon.
    Transport(TargetError),
    /// The program ran and failed, with what it said.
    Exited(String),
}

/// Runs `program args` and returns its first line of output; a non-zero exit is an error with
/// what it printed.
async fn run(transport: &dyn Transport, program: &str, args: &[&str]) -> Result<String, Failed> {
    let command = Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        stdin: None,
        timeout: PROBE_TIMEOUT,
        output_limit: 64 * 1024,
    };
    let out = transport.exec(&command).await.map_err(Failed::Transport)?;
    let first = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    match out.exit_code {
        Some(0) => Ok(first(&out.stdout)),
        code => {
            let said = match first(&out.stderr) {
                text if text.is_empty() => first(&out.stdout),
                text => text,
            };
            let code = code.map_or("a signal".to_owned(), |c| format!("exit code {c}"));
            Err(Failed::Exited(format!("{program} failed ({code}): {said}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;

    use super::*;
    use crate::target::ExecOutput;

    /// A transport answering by program name.
    struct Scripted(Vec<(&'static str, Result<ExecOutput, TargetError>)>);

    #[async_trait]
    impl Transport for Scripted {
        async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
            let answer = self.0.iter().find(|(p, _)| *p == command.program).map(|(_, a)| a.clone());
            answer.unwrap_or_else(|| {
                Err(TargetError::not_found(format!("program {} not found", command.program)))
            })
        }
        async fn read_file(&self, _: &str) -> Result<Vec<u8>, TargetError> {
            unreachable!("the checks read no file")
        }
        async fn write_file(&self, _: &str, _: &[u8]) -> Result<(), TargetError> {
            unreachable!("the checks write no file")
        }
        async fn remove_file(&self, _: &str) -> Result<(), TargetError> {
            unreachable!("the checks remove no file")
        }
    }

    fn ok(stdout: &str) -> Result<ExecOutput, TargetError> {
        Ok(ExecOutput { exit_code: Some(0), stdout: stdout.as_bytes().to_vec(), ..ExecOutput::default() })
    }

    fn windows_server(sql: Option<&str>) -> Server {
        let vars: BTreeMap<String, serde_json::Value> =
            sql.map(|s| ("sql".to_owned(), serde_json::Value::from(s))).into_iter().collect();
        Server { site: None, os: None, transport: TransportSpec::Command { prefix: vec!["x".into()] }, vars }
    }

    async fn check(server: Server, transport: Scripted) -> ServerReadiness {
        let mut inventory = Inventory::default();
        inventory.servers.insert("DRBTS01".into(), server);
        let targets = TargetSet::new().with("DRBTS01", Arc::new(transport));
        let mut heard = Vec::new();
        let found = check_all(&inventory, &targets, None, 4, |r| heard.push(r.server.clone())).await;
        assert_eq!(heard, ["DRBTS01"]);
        found.into_iter().next().expect("one server")
    }

    #[tokio::test]
    async fn a_ready_windows_server_answers_every_question() {
        let r = check(
            windows_server(Some("PRDSQL01")),
            Scripted(vec![("powershell.exe", ok("5.1.17763.5576\r\n")), ("sqlcmd", ok("CONTOSO\\svc\r\n"))]),
        )
        .await;
        assert_eq!(r.shell, Verdict::Yes("PowerShell 5.1.17763.5576".into()));
        assert_eq!(r.second_hop, Verdict::Yes("reaches PRDSQL01 as CONTOSO\\svc".into()));
        assert!(r.ready());
    }

    #[tokio::test]
    async fn each_failure_answers_the_question_it_belongs_to() {
        let unreachable =
            TargetError::retryable("DRBTS01: Connection refused").because(FailureCause::Unreachable);
        let r = check(windows_server(None), Scripted(vec![("powershell.exe", Err(unreachable))])).await;
        assert_eq!(r.reachable, Verdict::No("DRBTS01: Connection refused".into()));
        assert!(matches!(r.authenticated, Verdict::Skipped(_)));
        assert!(!r.ready());

        let refused =
            TargetError::permanent("DRBTS01: Permission denied").because(FailureCause::Authentication);
        let r = check(windows_server(None), Scripted(vec![("powershell.exe", Err(refused))])).await;
        assert_eq!((r.reachable.is_no(), r.authenticated.is_no()), (false, true));

        let missing =
            TargetError::permanent("PowerShell is not available").because(FailureCause::NoPowerShell);
        let r =
            check(windows_server(Some("PRDSQL01")), Scripted(vec![("powershell.exe", Err(missing))])).await;
        assert_eq!(r.shell, Verdict::No("PowerShell did not answer: PowerShell is not available".into()));
        assert_eq!(r.second_hop, Verdict::Skipped("PowerShell did not answer".into()));

        let hop = TargetError::permanent("sqlcmd was refused: Kerberos double hop")
            .because(FailureCause::DoubleHop);
        let r = check(
            windows_server(Some("PRDSQL01")),
            Scripted(vec![("powershell.exe", ok("5.1\r\n")), ("sqlcmd", Err(hop))]),
        )
        .await;
        assert_eq!(r.second_hop, Verdict::No("sqlcmd was refused: Kerberos double hop".into()));
        assert!(!r.ready());
    }

    #[tokio::test]
    async fn a_shell_that_fails_was_still_reached_and_logged_on_to() {
        let failed = ExecOutput {
            exit_code: Some(49),
            stderr: b"'powershell.exe' is not recognized as an internal or external command,\r\n".to_vec(),
            ..ExecOutput::default()
        };
        let r = check(windows_server(None), Scripted(vec![("powershell.exe", Ok(failed))])).await;
        assert_eq!((r.reachable.is_no(), r.authenticated.is_no()), (false, false));
        assert_eq!(
            r.shell,
            Verdict::No(
                "powershell.exe failed (exit code 49): 'powershell.exe' is not recognized as an internal or \
                 external command,"
                    .into()
            )
        );
        assert!(!r.ready());
    }

    #[tokio::test]
    async fn a_linux_server_is_asked_for_uname_and_no_second_hop() {
        let server = Server { os: Some("linux".into()), ..windows_server(Some("PRDSQL01")) };
        let r = check(server, Scripted(vec![("uname", ok("Linux 6.1.0\n"))])).await;
        assert_eq!(r.shell, Verdict::Yes("Linux 6.1.0".into()));
        assert_eq!(r.second_hop, Verdict::Skipped("not a Windows server".into()));
        assert!(r.ready());
    }
}
