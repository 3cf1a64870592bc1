//! The programs a lab server runs for `drover-lab exec` (`lab/PROTOCOL.md`): the dispatcher
//! that matches the program name (case-insensitively, on the last path component, `.exe`
//! optional) and one module per tool. Each tool answers with an [`Output`] as the real one would,
//! or `None` when the command line is not one the protocol allows word for word, which the
//! dispatcher turns into exit code 9009 and `drover-lab: unsupported command: <argv>`. A program
//! the servers do not have (`gacutil`, an SDK tool) gets cmd.exe's `'<program>' is not
//! recognized…`, exit 9009, as on Windows.
//!
//! Programs change the [`Lab`] in memory only; [`crate::state::StateFile::update`] persists it.
//!
//! A program runs as a [`Logon`]: the account it runs as and whether its session carries network
//! credentials. Without them every program that reaches SQL Server from the server fails as
//! Windows does on a Kerberos double hop ([`hop`]); local programs do not notice.

pub mod apps;
pub mod configuration;
pub mod cscript;
// Failover, BizTalk side (issue 18, L2)
pub mod dbrefs;
pub mod files;
pub mod hop;
pub mod net;
pub mod powershell;
pub mod reg;
pub mod sc;
// Failover, re-protect (issue 18, F14)
pub mod sql_backup_job;
// Failover, database references (issue 18, P2)
pub mod sql_group;
// Failover, logins on the DR SQL Server (issue 18, F4)
pub mod sql_logins;
// Log shipping (issue 18, L1)
pub mod sql_logshipping;
pub mod sqlcmd;
// Failover, BizTalk side (issue 18, L2)
pub mod sso;
pub mod whoami;

use std::io::Read;
use std::time::SystemTime;

use crate::state::{Lab, Server};

/// The exit code of an unsupported command or an unknown server (cmd.exe's "not recognized").
pub const UNSUPPORTED: i32 = 9009;

// Log shipping (issue 18, L1)
/// The exit code of a command sent to a server that went down (`drover-lab disaster`): ssh's
/// own exit code when it cannot reach the host.
pub const DOWN: i32 = 255;

/// What a program printed and its exit code (a Windows code: it may exceed 255).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Exit code.
    pub code: i32,
}

impl Output {
    /// Exit 0 with `stdout`.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Output {
        Output { stdout: stdout.into(), stderr: Vec::new(), code: 0 }
    }

    /// `code` with `stdout`.
    pub fn stdout(code: i32, stdout: impl Into<Vec<u8>>) -> Output {
        Output { stdout: stdout.into(), stderr: Vec::new(), code }
    }

    /// `code` with `stderr`.
    pub fn stderr(code: i32, stderr: impl Into<Vec<u8>>) -> Output {
        Output { stdout: Vec::new(), stderr: stderr.into(), code }
    }

    /// The answer to a command line the lab does not recognise.
    pub fn unsupported(argv: &[String]) -> Output {
        Output::stderr(UNSUPPORTED, format!("drover-lab: unsupported command: {argv:?}\n"))
    }

    /// Standard output as text, for tests and messages.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text, for tests and messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Who a program runs as: the account, and whether its logon carries network credentials (a
/// password logon does; a key logon to Windows OpenSSH does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logon {
    /// The account, `DOMAIN\user`.
    pub account: String,
    /// Whether the session can authenticate to another computer (SQL Server) as its user.
    pub network_credentials: bool,
}

impl Logon {
    /// The domain of the lab's accounts.
    pub const DOMAIN: &str = "CONTOSO";

    /// The logon of `drover-lab exec` (the command transport): `CONTOSO\drover`, with network
    /// credentials.
    pub fn command_transport() -> Logon {
        Logon::of_user("drover", true)
    }

    /// The domain account of `user`.
    pub fn of_user(user: &str, network_credentials: bool) -> Logon {
        Logon { account: format!("{}\\{user}", Logon::DOMAIN), network_credentials }
    }
}

/// What a program runs against: the lab, the server it runs on, the clock and standard input.
pub struct Ctx<'a> {
    /// The whole lab (a program may act on the group or on another server).
    pub lab: &'a mut Lab,
    /// The canonical name of the server the program runs on.
    pub server: String,
    /// Now, for timestamps.
    pub now: SystemTime,
    /// Standard input, read only by the programs that take it.
    pub stdin: &'a mut dyn Read,
    /// The account the program runs as (`DOMAIN\user`).
    pub account: String,
    /// Whether the session carries network credentials (see [`hop`]).
    pub network_credentials: bool,
}

impl Ctx<'_> {
    /// The server the program runs on.
    pub fn this(&self) -> &Server {
        self.lab.servers.get(&self.server).expect("the dispatcher checked that the server exists")
    }

    /// The group's record BizTalk's WMI provider reads on this server: the one in the management
    /// database its registry names (`MgmtDBServer`), production's or a recovered copy
    /// ([`crate::state::Lab::group_on`]).
    pub fn wmi_group(&self) -> &crate::state::Group {
        self.lab.group_on(&self.wmi_mgmt_server())
    }

    /// The SQL Server of the management database BizTalk's WMI provider reads on this server:
    /// what its registry names (`MgmtDBServer`; empty when none), or under the
    /// `wmi-caches-group` fault what winmgmt read when it last started, if the registry changed
    /// since ([`Server::wmi_mgmt_cache`]).
    pub fn wmi_mgmt_server(&self) -> String {
        let this = self.this();
        if self.lab.wmi_caches_group()
            && let Some(cached) = &this.wmi_mgmt_cache
        {
            return cached.clone();
        }
        match this.reg_value(crate::init::ADMIN_KEY, "MgmtDBServer") {
            Some(crate::state::RegValue::Sz(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// The server the program runs on, to change.
    pub fn this_mut(&mut self) -> &mut Server {
        self.lab.servers.get_mut(&self.server).expect("the dispatcher checked that the server exists")
    }
}

/// The program name as matched: last path component (`\` or `/`), lower case, without `.exe`.
pub fn program_name(word: &str) -> String {
    let last = word.rsplit(['\\', '/']).next().unwrap_or(word).to_lowercase();
    match last.strip_suffix(".exe") {
        Some(stem) => stem.to_owned(),
        None => last,
    }
}

/// The programs a lab server has (as [`program_name`] gives them), the POSIX file calls of the
/// command transport included.
pub const PROGRAMS: [&str; 15] = [
    "cat",
    "sh",
    "rm",
    "reg",
    "powershell",
    "sc",
    "configuration",
    "cscript",
    "sqlcmd",
    "net",
    "msiexec",
    "btstask",
    "whoami",
    // Failover, BizTalk side (issue 18, L2)
    "ssomanage",
    "ssoconfig",
];

/// Whether a lab server has the program `word` names (any path, case, `.exe` or not).
pub fn is_known(word: &str) -> bool {
    PROGRAMS.contains(&program_name(word).as_str())
}

/// What cmd.exe answers for a program it cannot find (`'<word>' is not recognized…`), exit 9009.
pub fn not_recognized(word: &str) -> Output {
    Output::stderr(
        UNSUPPORTED,
        format!(
            "'{word}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        ),
    )
}

/// Runs `argv` (program and arguments) on `server` as the command transport's logon
/// ([`Logon::command_transport`]).
pub fn run(lab: &mut Lab, server: &str, argv: &[String], stdin: &mut dyn Read, now: SystemTime) -> Output {
    run_as(lab, server, &Logon::command_transport(), argv, stdin, now)
}

/// Runs `argv` (program and arguments) on `server` as `logon`.
pub fn run_as(
    lab: &mut Lab,
    server: &str,
    logon: &Logon,
    argv: &[String],
    stdin: &mut dyn Read,
    now: SystemTime,
) -> Output {
    let Some(server) = lab.server_name(server) else {
        return Output::stderr(UNSUPPORTED, format!("drover-lab: no server {server} in this lab\n"));
    };
    // Log shipping (issue 18, L1): a production server down since the disaster answers nothing.
    if let Some(disaster) = lab.log_shipping.disaster.as_ref().filter(|_| lab.server_down(&server)) {
        return Output::stderr(
            DOWN,
            format!(
                "drover-lab: {server} does not answer: it went down with production at {}\n",
                disaster.at
            ),
        );
    }
    let Some((program, args)) = argv.split_first() else { return Output::unsupported(argv) };
    if !is_known(program) || (program_name(program) == "powershell" && lab.powershell_missing(&server)) {
        return not_recognized(program);
    }
    let (account, network_credentials) = (logon.account.clone(), logon.network_credentials);
    let mut ctx = Ctx { lab, server, now, stdin, account, network_credentials };
    let output = match program_name(program).as_str() {
        "cat" => files::cat(&ctx, args),
        "sh" => files::write(&mut ctx, args),
        "rm" => files::rm(&mut ctx, args),
        "reg" => reg::run(&ctx, args),
        "powershell" => powershell::run(&mut ctx, args),
        "sc" => sc::run(&mut ctx, args),
        "configuration" => configuration::run(&mut ctx, args),
        "cscript" => cscript::run(&mut ctx, program, args),
        // Log shipping (issue 18, L1): the failover's queries, then the probes.
        "sqlcmd" => sql_logshipping::run(&mut ctx, args)
            // Failover, re-protect (issue 18, F14): the backup job's steps.
            .or_else(|| sql_backup_job::run(&mut ctx, args))
            // Failover, database references (issue 18, P2): the group's record.
            .or_else(|| sql_group::run(&mut ctx, args))
            // Failover, logins (issue 18, F4).
            .or_else(|| sql_logins::run(&mut ctx, args))
            .or_else(|| sqlcmd::run(&ctx, args)),
        "net" => net::run(&ctx, args),
        "msiexec" => apps::msiexec(&mut ctx, args),
        "btstask" => apps::btstask(&mut ctx, args),
        "whoami" => whoami::run(&ctx, args),
        // Failover, BizTalk side (issue 18, L2)
        "ssomanage" => sso::ssomanage(&mut ctx, args),
        "ssoconfig" => sso::ssoconfig(&mut ctx, args),
        _ => None,
    };
    output.unwrap_or_else(|| Output::unsupported(argv))
}

/// Test helpers shared by the program modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// 2026-11-22 10:15:01 UTC.
    pub fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-22T10:15:01Z").expect("valid time")
    }

    /// Runs a command line on `server` with empty standard input.
    pub fn exec(lab: &mut Lab, server: &str, argv: &[&str]) -> Output {
        exec_with_input(lab, server, argv, b"")
    }

    /// Runs a command line on `server` with `input` as standard input.
    pub fn exec_with_input(lab: &mut Lab, server: &str, argv: &[&str], input: &[u8]) -> Output {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        run(lab, server, &argv, &mut &input[..], now())
    }

    /// Runs a command line on `server` as a key logon of `user`: no network credentials.
    pub fn exec_without_credentials(lab: &mut Lab, server: &str, argv: &[&str], input: &[u8]) -> Output {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        run_as(lab, server, &Logon::of_user("drover-win", false), &argv, &mut &input[..], now())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::exec;
    use super::*;

    #[test]
    fn program_names_match_on_the_file_name_case_insensitively() {
        assert_eq!(program_name(r"C:\Windows\System32\SC.EXE"), "sc");
        assert_eq!(program_name("sc"), "sc");
        assert_eq!(program_name("/usr/bin/cat"), "cat");
        assert_eq!(
            program_name(r"C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe"),
            "configuration"
        );
    }

    #[test]
    fn unknown_programs_and_servers_fail_with_9009() {
        let mut lab = crate::init::fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["robocopy", "a", "b"]);
        assert_eq!(out, not_recognized("robocopy"), "a program the servers do not have");
        let out = exec(&mut lab, "DRBTS01", &["sc.exe", "query", "ENTSSO", "extra"]);
        assert_eq!(
            out.stderr_text(),
            "drover-lab: unsupported command: [\"sc.exe\", \"query\", \"ENTSSO\", \"extra\"]\n"
        );
        assert_eq!(exec(&mut lab, "DRBTS01", &[]).code, 9009);
        let out = exec(&mut lab, "NOSUCH", &["cat", "x"]);
        assert_eq!(
            (out.code, out.stderr_text()),
            (9009, "drover-lab: no server NOSUCH in this lab\n".into())
        );
    }
}
