//! The `drover-lab` binary: parses the command line and hands each command to the library
//! (`lab/PROTOCOL.md`). Exit codes: 0 success; 1 a lab command (`init`, `replace`, `show`, `fault`,
//! `backup`, `disaster`) failed;
//! 2 a usage error; for `exec`, the emulated program's Windows exit code folded into 8 bits
//! ([`drover_lab::unix_status`]: 9009 arrives as 49), or 125 when the lab itself failed (state
//! unreadable or unwritable, command log unwritable); `windows-shell` exits as `exec` does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use drover_lab::state::{Edition, StateFile};
use drover_lab::{env, fault, init, inventory, logshipping, programs, replace, show, unix_status, windows};

/// A simulated BizTalk Server group and its Windows servers, for Drover rehearsals and tests.
#[derive(Debug, Parser)]
#[command(name = "drover-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a fresh lab (and, with --inventory, a Drover inventory that reaches it).
    Init {
        /// The lab's state file (JSON).
        #[arg(long)]
        state: PathBuf,
        /// Also write a Drover inventory here.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        /// The BizTalk Server edition of the group: enterprise (the default) or standard.
        #[arg(long, default_value = "enterprise")]
        edition: Edition,
    },
    /// Rebuilds a failed runtime server as a new, unconfigured computer with the same name; the
    /// group (its databases) still lists it and its host instances.
    Replace {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
        /// The runtime server to replace.
        server: String,
        /// Also record this BizTalk Server edition for the group: enterprise or standard.
        #[arg(long)]
        edition: Option<Edition>,
        /// A component BizTalk setup left out on the new computer (an `InstalledFeature` name
        /// such as `BAMTools`); repeat for more.
        #[arg(long = "without-feature")]
        without_features: Vec<String>,
    },
    /// Prints the lab's state.
    Show {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
        /// Print the state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sets or clears faults.
    Fault {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
        #[command(subcommand)]
        action: FaultAction,
    },
    /// Runs a program on a server of the lab: `exec --state <lab.json> <SERVER> -- <program> <args…>`.
    Exec {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
        /// The server the program runs on.
        server: String,
        /// The program and its arguments, after `--`.
        #[arg(last = true)]
        argv: Vec<String>,
    },
    // Log shipping (issue 18, L1)
    /// Time passes for log shipping: the production SQL Server's Backup BizTalk Server job runs
    /// once if enabled (a full set first after sp_ForceFullBackup, then a marked log set), then
    /// each DR SQL instance's enabled Get Backup History and Restore Databases jobs run as
    /// scheduled.
    Backup {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
    },
    /// The disaster: every production server (its SQL Server and BizTalk servers) stops
    /// answering from now on; the lab records the time.
    Disaster {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
    },
    /// Plays Windows OpenSSH (cmd.exe, Windows PowerShell 5.1) on a server of the lab: sshd's
    /// ForceCommand. Reads the command from SSH_ORIGINAL_COMMAND and the logon kind from the file
    /// SSH_USER_AUTH names (sshd's ExposeAuthInfo yes); see lab/PROTOCOL.md, "Windows over SSH".
    WindowsShell {
        /// The lab's state file.
        #[arg(long)]
        state: PathBuf,
        /// The server the session is on.
        server: String,
        /// Append every command received to this file, one JSON object a line (created 0600).
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum FaultAction {
    /// `sql-unreachable [<sql server>]`, `join-sql-unreachable [<sql server>]`,
    /// `service-stuck <server> <service>`, `access-denied <server> <service>` or
    /// `missing-prereq <server> <dotnet|vcredist|oledb|msdtc>` or `powershell-missing <server>`;
    /// before the join: `not-local-admin <server>`, `not-sysadmin [<sql server>]`, `cu-level
    /// <server> <n>`, `installed-edition <server> <enterprise|standard|developer|branch>`,
    /// `dtc-blocked <server>`; log shipping: `logshipping-lag <dr sql server> <sets>`,
    /// `logshipping-gap <dr sql server>`, `restore-to-mark-fails <dr sql server>`; failover,
    /// BizTalk side: `msoledbsql-provider <server>`, `dead-production-wmi`.
    Set {
        /// The fault.
        fault: String,
        /// Its server (and service or prerequisite).
        args: Vec<String>,
    },
    /// `all`, a fault kind (every fault of that kind), or one fault with its arguments.
    Clear {
        /// `all` or the fault.
        fault: String,
        /// Its server (and service or prerequisite).
        args: Vec<String>,
    },
}

/// The exit status of a failed `exec` that never reached a program.
const LAB_FAILURE: u8 = 125;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_exec = matches!(cli.command, Command::Exec { .. } | Command::WindowsShell { .. });
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("drover-lab: {e:#}");
            ExitCode::from(if is_exec { LAB_FAILURE } else { 1 })
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { state, inventory, force, edition } => {
            init_lab(&state, inventory.as_deref(), force, edition)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replace { state, server, edition, without_features } => {
            StateFile::new(state).update(|lab| {
                let name = replace::replace(lab, &server, edition)?;
                replace::leave_out(lab, &name, &without_features);
                Ok::<_, replace::ReplaceError>(())
            })??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { state, json } => {
            let lab = StateFile::new(state).read()?;
            let text = if json { serde_json::to_string_pretty(&lab)? + "\n" } else { show::render(&lab) };
            write_ignoring_broken_pipe(std::io::stdout(), text.as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        Command::Fault { state, action } => {
            StateFile::new(state).update(|lab| match &action {
                FaultAction::Set { fault, args } => {
                    let parsed = fault::parse(lab, fault, args)?;
                    fault::set(lab, parsed);
                    Ok(())
                }
                FaultAction::Clear { fault, args } => fault::clear(lab, fault, args).map(drop),
            })??;
            Ok(ExitCode::SUCCESS)
        }
        // Log shipping (issue 18, L1)
        Command::Backup { state } => {
            let now = now()?;
            StateFile::new(state).update(|lab| logshipping::backup(lab, now))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Disaster { state } => {
            let now = now()?;
            StateFile::new(state).update(|lab| logshipping::disaster(lab, now))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec { state, server, argv } => {
            let now = now()?;
            let mut stdin = std::io::stdin().lock();
            let output =
                StateFile::new(state).update(|lab| programs::run(lab, &server, &argv, &mut stdin, now))?;
            write_ignoring_broken_pipe(std::io::stdout(), &output.stdout);
            write_ignoring_broken_pipe(std::io::stderr(), &output.stderr);
            Ok(ExitCode::from(unix_status(output.code)))
        }
        Command::WindowsShell { state, server, log } => {
            let session = windows::Session::from_env(&server, |name| std::env::var(name).ok());
            let request = windows::Request::of(session.command.as_deref());
            // Recorded before it runs: a session killed in the middle is in the log too.
            if let Some(log) = log {
                windows::log::append(&log, &request.log_entry(&session))?;
            }
            let now = now()?;
            let mut stdin = std::io::stdin().lock();
            let output =
                StateFile::new(state).update(|lab| request.answer(lab, &session, &mut stdin, now))?;
            write_ignoring_broken_pipe(std::io::stdout(), &output.stdout);
            write_ignoring_broken_pipe(std::io::stderr(), &output.stderr);
            Ok(ExitCode::from(unix_status(output.code)))
        }
    }
}

/// Writes the lab state and, when asked, its inventory (absolute paths in every prefix).
fn init_lab(
    state: &Path,
    inventory_path: Option<&Path>,
    force: bool,
    edition: Edition,
) -> anyhow::Result<()> {
    let lab = init::fresh_lab_of(edition);
    if let Some(path) = inventory_path
        && path.exists()
        && !force
    {
        anyhow::bail!("{} already exists (use --force to replace it)", path.display());
    }
    let state_file = StateFile::new(state);
    state_file.create(&lab, force)?;
    if let Some(path) = inventory_path {
        let exe = std::env::current_exe().context("cannot find the drover-lab binary")?;
        let state = std::path::absolute(state).context("cannot make the state path absolute")?;
        let text = inventory::inventory_toml(&lab, &exe, &state);
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The clock, or `DROVER_LAB_NOW`.
fn now() -> anyhow::Result<SystemTime> {
    match std::env::var(env::DROVER_LAB_NOW) {
        Ok(text) => humantime::parse_rfc3339_weak(&text)
            .with_context(|| format!("{} is not an RFC 3339 time: {text}", env::DROVER_LAB_NOW)),
        Err(_) => Ok(SystemTime::now()),
    }
}

fn write_ignoring_broken_pipe(mut to: impl Write, bytes: &[u8]) {
    // A reader that went away is not the lab's failure.
    let _ = to.write_all(bytes).and_then(|()| to.flush());
}
