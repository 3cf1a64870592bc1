//! The BizTalk lab as Windows servers behind a real OpenSSH server: one `sshd` on 127.0.0.1
//! listening on one port per lab server, each port's sessions forced into `drover-lab
//! windows-shell` for that server (which plays Windows OpenSSH with cmd.exe and PowerShell and
//! records every command line it receives), and an inventory that reaches every server through
//! the `ssh` transport with `os = "windows"`.
//!
//! Two logons, as on Windows: [`Logon::Password`] logs on as the local account `drover-win`
//! (created with a random password by `cargo xtask setup`, which `cargo xtask test` runs) and
//! carries network credentials to SQL Server; [`Logon::Key`] logs on with a key as the user
//! running the tests and carries none (the Kerberos double hop). sshd runs a password session's
//! forced command as `drover-win`, so the lab's files live in a folder that account owns, and
//! lab commands the test runs itself go through [`WindowsLab::fault`], which gives them back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::LabRun;
use crate::sshd::{Sshd, SshdConfig, free_ports};
use crate::{lab_bin, stderr};

/// The local account of password logons (`cargo xtask setup` creates it).
pub const LOGON_USER: &str = "drover-win";
/// Where `cargo xtask setup` keeps its password (root only).
pub const LOGON_PASSWORD_FILE: &str = "/var/lib/drover-tests/windows-logon.password";
/// The Drover secret holding the logon password in the inventory this module writes.
pub const LOGON_SECRET: &str = "windows-logon";

/// How Drover logs on to the lab's Windows servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logon {
    /// `drover-win` with its password: the session has network credentials.
    Password,
    /// The test user with a key: no network credentials.
    Key,
}

/// The password of [`LOGON_USER`], failing the test with what to run when it is missing.
pub fn logon_password() -> String {
    let missing = || {
        format!(
            "{LOGON_PASSWORD_FILE} or the account {LOGON_USER} is missing: run `cargo xtask setup` (as root), \
             which creates the account the Windows logon tests use"
        )
    };
    let exists = Command::new("id").arg(LOGON_USER).output().is_ok_and(|o| o.status.success());
    assert!(exists, "{}", missing());
    std::fs::read_to_string(LOGON_PASSWORD_FILE)
        .unwrap_or_else(|_| panic!("{}", missing()))
        .trim()
        .to_string()
}

/// A lab whose servers Drover reaches over SSH as Windows servers.
pub struct WindowsLab {
    /// The sandbox, the lab (its state in [`WindowsLab::dir`]), the workflow and the inventory
    /// (rewritten for ssh).
    pub run: LabRun,
    /// The ssh server playing every lab server.
    pub sshd: Sshd,
    /// How Drover logs on.
    pub logon: Logon,
    /// Lab server name and its port.
    pub ports: Vec<(String, u16)>,
    dir: tempfile::TempDir,
}

impl WindowsLab {
    /// A fresh lab for `workflows/<workflow>` (`init_args` go to `drover-lab init`), served over
    /// SSH with `logon`. `lab_env` (such as `DROVER_LAB_JOIN_DELAY_MS`) is set for every session
    /// by sshd (`SetEnv`).
    pub fn new(workflow: &str, init_args: &[&str], logon: Logon, lab_env: &[(&str, &str)]) -> WindowsLab {
        let mut run = LabRun::new(workflow, init_args);
        let dir = tempfile::Builder::new().prefix("drover-winlab-").tempdir().expect("temporary directory");
        let state = dir.path().join("lab.json");
        std::fs::copy(&run.state, &state).expect("move the lab's state");
        run.state = state.display().to_string();
        let inventory: toml::Table =
            toml::from_str(&std::fs::read_to_string(&run.inventory).expect("the lab's inventory"))
                .expect("the lab's inventory is TOML");
        let servers: Vec<String> =
            inventory["servers"].as_table().expect("servers").keys().cloned().collect();
        let ports: Vec<(String, u16)> = servers.iter().cloned().zip(free_ports(servers.len())).collect();
        let log = dir.path().join("commands.log");
        let mut tail = String::new();
        for (name, value) in lab_env {
            tail.push_str(&format!("SetEnv {name}={value}\n"));
        }
        for (server, port) in &ports {
            tail.push_str(&format!(
                "Match LocalPort {port}\n    ForceCommand {lab} windows-shell --state {state} {server} --log {log}\n",
                lab = lab_bin().display(),
                state = run.state,
                log = log.display(),
            ));
        }
        let config = SshdConfig {
            password_authentication: logon == Logon::Password,
            expose_auth_info: true,
            // The lab's files are not on this machine's disk: files move through PowerShell.
            sftp: false,
            tail,
        };
        let port_list: Vec<u16> = ports.iter().map(|(_, p)| *p).collect();
        let sshd = Sshd::start_with(&port_list, &config);
        let mut lab = WindowsLab { run, sshd, logon, ports, dir };
        lab.write_inventory(inventory);
        if logon == Logon::Password {
            lab.run.env.push((secret_var(LOGON_SECRET), logon_password()));
        }
        // Drover's master connections live below the sshd's folder, so dropping the sshd closes
        // them: a master left open would carry a later test's commands to this lab's sessions.
        let runtime = lab.sshd.dir().display().to_string();
        lab.run.env.push(("XDG_RUNTIME_DIR".into(), runtime));
        lab.give_back();
        lab
    }

    /// Rewrites the lab's inventory: every server over ssh to its port, `os = "windows"`.
    fn write_inventory(&self, mut inventory: toml::Table) {
        let mut defaults = toml::Table::new();
        let text = |s: &str| toml::Value::String(s.to_string());
        defaults.insert("known-hosts".into(), text(&self.sshd.known_hosts().display().to_string()));
        defaults.insert("host-key-policy".into(), text("strict"));
        defaults.insert("files".into(), text("powershell"));
        defaults.insert("connect-timeout".into(), text("10s"));
        match self.logon {
            Logon::Password => {
                defaults.insert("user".into(), text(LOGON_USER));
                defaults.insert("password-secret".into(), text(LOGON_SECRET));
            }
            Logon::Key => {
                defaults.insert("user".into(), text(self.sshd.user()));
                defaults.insert("identity-file".into(), text(&self.sshd.client_key().display().to_string()));
            }
        }
        inventory.insert("ssh".into(), toml::Value::Table(defaults));
        let servers = inventory.get_mut("servers").and_then(toml::Value::as_table_mut).expect("servers");
        for (name, port) in &self.ports {
            let server = servers.get_mut(name).and_then(toml::Value::as_table_mut).expect("a server");
            server.remove("command");
            server.insert("transport".into(), text("ssh"));
            server.insert("os".into(), text("windows"));
            let mut ssh = toml::Table::new();
            ssh.insert("host".into(), text("127.0.0.1"));
            ssh.insert("port".into(), toml::Value::Integer(i64::from(*port)));
            server.insert("ssh".into(), toml::Value::Table(ssh));
        }
        std::fs::write(&self.run.inventory, toml::to_string(&inventory).expect("TOML"))
            .expect("write the inventory");
    }

    /// The port of 127.0.0.1 on which sshd plays the lab server `server`, for tests that reach
    /// it without an inventory; panics naming the servers when the lab has no such one.
    pub fn port(&self, server: &str) -> u16 {
        let found = self.ports.iter().find(|(name, _)| name == server).map(|(_, port)| *port);
        found.unwrap_or_else(|| panic!("no lab server {server} among {:?}", self.ports))
    }

    /// The folder holding the lab's state and the command log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every command line the lab's servers received, one JSON object per line (`drover-lab
    /// windows-shell --log`).
    pub fn command_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The command log's path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("commands.log")
    }

    /// `drover-lab fault set <words…>`, as [`LabRun::fault`], leaving the lab's files to the
    /// account the sessions run as.
    pub fn fault(&self, words: &[&str]) {
        self.run.fault(words);
        self.give_back();
    }

    /// `drover-lab <args…>`, as [`LabRun::lab`], leaving the lab's files to the account the
    /// sessions run as.
    pub fn lab(&self, args: &[&str]) -> std::process::Output {
        let out = self.run.lab(args);
        self.give_back();
        out
    }

    /// Hands the lab's folder and files to `drover-win` for password logons (sshd runs their
    /// forced command as that account); nothing for key logons.
    fn give_back(&self) {
        if self.logon != Logon::Password {
            return;
        }
        let out = Command::new("chown")
            .args(["-R", &format!("{LOGON_USER}:")])
            .arg(self.dir.path())
            .output()
            .expect("run chown");
        assert!(out.status.success(), "chown the lab to {LOGON_USER}: {}", stderr(&out));
    }
}

/// The environment variable of secret `name` (`DROVER_SECRET_<NAME>`).
pub fn secret_var(name: &str) -> String {
    format!("DROVER_SECRET_{}", name.to_uppercase().replace(['-', '.'], "_"))
}
