//! The inventory: the sites and servers a workflow acts on, how each server is reached, its
//! variables, and groups of servers. Read in stages: the TOML file with positions
//! ([`file`]), then [`load`] checks meaning and reports every problem at once, with file, line
//! and column, into the [`Inventory`] a run pins (as JSON).
//!
//! A Windows server reached by ssh (`os = "windows"`) is spoken to in PowerShell, its files
//! moved by sftp or PowerShell (`ssh.files`); any ssh server may log on with a password held by a
//! secret (`ssh.password-secret`), which [`Inventory::targets`] looks up. `docs/inventory.md`
//! describes the file.
//!
//! Invariant: every group member, and every site a server names, exists; a pinned inventory holds
//! absolute paths only, so a run resumed from another directory reaches the same keys. It holds
//! secret names, never their values.

pub mod check;
pub mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Source};
use crate::secrets::{EnvSecrets, SecretSource};
use crate::target::{
    CommandTransport, FileTransfer, HostKeyPolicy, LocalTransport, PasswordLogon, RemoteShell, SshOptions,
    SshTransport, TargetSet, Transport, UnavailableTransport,
};
use file::{InventoryFile, ServerFile, SshFile};

/// Windows computer (NetBIOS) names longer than this break BizTalk configuration.
pub const WINDOWS_NAME_LIMIT: usize = 15;

/// The longest `connect-timeout`: 10 minutes. A longer one is a mistake (a run would sit on an
/// unreachable server for hours), and a huge one would not fit the milliseconds a run pins.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How long an SSH master connection outlives its last use.
const CONTROL_PERSIST: Duration = Duration::from_secs(60);

/// A site: production, DR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Site {
    /// What and where it is.
    pub description: Option<String>,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TransportSpec {
    /// This machine.
    Local,
    /// The system OpenSSH client.
    Ssh(SshSpec),
    /// A local argv prefix that runs a program on the server.
    Command {
        /// The prefix, program and arguments follow it.
        prefix: Vec<String>,
    },
}

/// Resolved SSH settings of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SshSpec {
    /// Host name or address.
    pub host: String,
    /// Port, when not ssh's default.
    pub port: Option<u16>,
    /// Remote user, when not ssh's default.
    pub user: Option<String>,
    /// Private key file (absolute).
    pub identity_file: Option<PathBuf>,
    /// known_hosts file (absolute).
    pub known_hosts: Option<PathBuf>,
    /// `strict` (the default), `accept-new` or `off`.
    pub host_key_policy: String,
    /// Connect timeout in milliseconds.
    pub connect_timeout_ms: u64,
    /// What runs commands there: `posix`, or `powershell` on a Windows server. Absent in runs
    /// pinned before Windows servers were known: POSIX.
    #[serde(default, skip_serializing_if = "is_default")]
    pub shell: RemoteShell,
    /// How files move: `sftp`, or `powershell` (Windows servers only).
    #[serde(default, skip_serializing_if = "is_default")]
    pub files: FileTransfer,
    /// The secret holding the password of a password logon; a key logon when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Server {
    /// Its site, if the inventory names sites.
    pub site: Option<String>,
    /// `windows` or `linux`, when the inventory says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// How it is reached.
    pub transport: TransportSpec,
    /// Free-form variables for templates (`inventory.servers[target].vars`).
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// A validated inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct Inventory {
    /// Sites by name.
    #[serde(default)]
    pub sites: BTreeMap<String, Site>,
    /// Servers by name.
    #[serde(default)]
    pub servers: BTreeMap<String, Server>,
    /// Groups: name to server names. Every site is also a group of its servers.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// An inventory read from a file, with what is worth a warning.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The inventory.
    pub inventory: Inventory,
    /// Problems that do not stop a run (such as long Windows names), with positions.
    pub warnings: Vec<Diagnostic>,
}

/// Why an inventory is not usable.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Unreadable file.
    #[error("cannot read inventory file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Invalid content: every problem, with file, line and column.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads, checks and resolves an inventory file.
pub fn load(path: &Path) -> Result<Loaded, InventoryError> {
    let text = crate::input_file::read_to_string(path)
        .map_err(|source| InventoryError::Io { path: path.display().to_string(), source })?;
    parse(path, &text)
}

/// Checks and resolves inventory text read from `path` (used for positions and relative paths).
pub fn parse(path: &Path, text: &str) -> Result<Loaded, InventoryError> {
    let source = Source::new(path, text);
    let file: InventoryFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        InventoryError::Invalid(Diagnostics::new(vec![source.at(&span, e.message().trim_end_matches('.'))]))
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::path::absolute(&base).unwrap_or(base);
    let mut check = Check { source: &source, problems: Vec::new(), warnings: Vec::new() };
    let inventory = check.inventory(file, &base);
    if check.problems.is_empty() {
        Ok(Loaded { inventory, warnings: Diagnostics::new(check.warnings).0 })
    } else {
        Err(InventoryError::Invalid(Diagnostics::new(check.problems)))
    }
}

/// Stage 2: meaning, with every problem collected.
struct Check<'s> {
    source: &'s Source,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Check<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, message: String) {
        self.problems.push(self.source.at(&at.span(), message));
    }

    fn inventory(&mut self, file: InventoryFile, base: &Path) -> Inventory {
        let sites: BTreeMap<String, Site> = file
            .sites
            .into_iter()
            .map(|(name, site)| (name.into_inner(), Site { description: site.description }))
            .collect();
        let defaults = self.defaults(file.ssh.unwrap_or_default());
        let declared: BTreeSet<String> = file.servers.keys().map(|k| k.get_ref().clone()).collect();
        let mut servers = BTreeMap::new();
        for (name, server) in file.servers {
            if let Some(server) = self.server(&name, server, &sites, &defaults, base) {
                servers.insert(name.into_inner(), server);
            }
        }
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, members) in file.groups {
            if sites.contains_key(name.get_ref()) {
                self.problem(
                    &name,
                    format!(
                        "group `{}` has the name of a site, which is already a group of its servers",
                        name.get_ref()
                    ),
                );
            }
            let mut listed = BTreeSet::new();
            for member in &members {
                if !listed.insert(member.get_ref()) {
                    // Each member is one instance of a `for-each` over the group, named by it.
                    self.problem(
                        member,
                        format!("group `{}` lists `{}` twice", name.get_ref(), member.get_ref()),
                    );
                } else if !declared.contains(member.get_ref()) {
                    self.problem(
                        member,
                        format!(
                            "group `{}`: `{}` is not a server of this inventory",
                            name.get_ref(),
                            member.get_ref()
                        ),
                    );
                }
            }
            groups.insert(name.into_inner(), members.into_iter().map(Spanned::into_inner).collect());
        }
        for site in sites.keys() {
            let members =
                servers.iter().filter(|(_, s)| s.site.as_ref() == Some(site)).map(|(n, _)| n.clone());
            groups.insert(site.clone(), members.collect());
        }
        Inventory { sites, servers, groups }
    }

    /// The `[ssh]` defaults, with a `files` or `password-secret` that is wrong reported once here
    /// and dropped, rather than once for every server taking it.
    fn defaults(&mut self, mut ssh: SshFile) -> SshFile {
        if let Some(files) = ssh.files.take_if(|f| !matches!(f.get_ref().as_str(), "sftp" | "powershell")) {
            self.problem(
                &files,
                format!("[ssh]: unknown files `{}` (use `sftp` or `powershell`)", files.get_ref()),
            );
        }
        if let Some(secret) = ssh.password_secret.take_if(|s| !crate::secrets::is_name(s.get_ref())) {
            self.problem(
                &secret,
                format!(
                    "[ssh]: password-secret {:?} is not a secret name (letters, digits, - _ .)",
                    secret.get_ref()
                ),
            );
        }
        ssh
    }

    fn server(
        &mut self,
        name: &Spanned<String>,
        file: ServerFile,
        sites: &BTreeMap<String, Site>,
        defaults: &SshFile,
        base: &Path,
    ) -> Option<Server> {
        let before = self.problems.len();
        let id = name.get_ref();
        if let Some(site) = &file.site
            && !sites.contains_key(site.get_ref())
        {
            let known = sites.keys().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            self.problem(site, format!("server `{id}`: unknown site `{}` (sites: {known})", site.get_ref()));
        }
        let os = file.os.as_ref().map(|o| o.get_ref().as_str());
        match os {
            None | Some("windows") if id.chars().count() > WINDOWS_NAME_LIMIT => {
                self.warnings.push(self.source.at(
                    &name.span(),
                    format!(
                        "server `{id}`: the name has {} characters; Windows computer names longer than {WINDOWS_NAME_LIMIT} break BizTalk configuration (set `os = \"linux\"` if it is not a Windows server)",
                        id.chars().count()
                    ),
                ));
            }
            None | Some("windows" | "linux") => {}
            Some(other) => {
                let at = file.os.as_ref().expect("os given");
                self.problem(at, format!("server `{id}`: unknown os `{other}` (use `windows` or `linux`)"));
            }
        }
        let kind = file.transport.get_ref().as_str();
        if kind != "ssh"
            && let Some(ssh) = &file.ssh
        {
            self.problem(ssh, format!("server `{id}`: `ssh` settings need `transport = \"ssh\"`"));
        }
        if kind != "command"
            && let Some(command) = &file.command
        {
            self.problem(command, format!("server `{id}`: `command` needs `transport = \"command\"`"));
        }
        let windows = os == Some("windows");
        if !windows && let Some(files) = file.ssh.as_ref().and_then(|ssh| ssh.get_ref().files.as_ref()) {
            self.problem(
                files,
                format!(
                    "server `{id}`: `files` is for Windows servers (`os = \"windows\"`); other servers' files always move through sftp"
                ),
            );
        }
        let transport = match kind {
            "local" => TransportSpec::Local,
            "ssh" => {
                let ssh = file.ssh.map(Spanned::into_inner).unwrap_or_default().over(defaults);
                self.ssh(id, ssh, base, windows)
            }
            "command" => match file.command {
                Some(command) if !command.get_ref().is_empty() && !command.get_ref()[0].is_empty() => {
                    TransportSpec::Command { prefix: command.into_inner() }
                }
                Some(command) => {
                    self.problem(&command, format!("server `{id}`: `command` is empty"));
                    TransportSpec::Local
                }
                None => {
                    self.problem(name, format!("server `{id}`: `transport = \"command\"` needs `command = [\"program\", \"args\"…]`"));
                    TransportSpec::Local
                }
            },
            other => {
                self.problem(
                    &file.transport,
                    format!("server `{id}`: unknown transport `{other}` (use `local`, `ssh` or `command`)"),
                );
                TransportSpec::Local
            }
        };
        let vars = file
            .vars
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(serde_json::Value::Null)))
            .collect();
        (self.problems.len() == before).then(|| Server {
            site: file.site.map(Spanned::into_inner),
            os: file.os.map(Spanned::into_inner),
            transport,
            vars,
        })
    }

    fn ssh(&mut self, id: &str, ssh: SshFile, base: &Path, windows: bool) -> TransportSpec {
        let policy = match &ssh.host_key_policy {
            None => "strict".to_string(),
            Some(p) if matches!(p.get_ref().as_str(), "strict" | "accept-new" | "off") => p.get_ref().clone(),
            Some(p) => {
                self.problem(
                    p,
                    format!(
                        "server `{id}`: unknown host-key-policy `{}` (use `strict`, `accept-new` or `off`)",
                        p.get_ref()
                    ),
                );
                "strict".into()
            }
        };
        let timeout = match &ssh.connect_timeout {
            None => Duration::from_secs(10),
            Some(t) => match humantime::parse_duration(t.get_ref()) {
                Ok(d) if (Duration::from_secs(1)..=MAX_CONNECT_TIMEOUT).contains(&d) => d,
                Ok(d) if d < Duration::from_secs(1) => {
                    self.problem(t, format!("server `{id}`: connect-timeout must be at least 1s"));
                    Duration::from_secs(10)
                }
                Ok(_) => {
                    self.problem(
                        t,
                        format!(
                            "server `{id}`: connect-timeout `{}` is longer than the limit of {}",
                            t.get_ref(),
                            humantime::format_duration(MAX_CONNECT_TIMEOUT)
                        ),
                    );
                    Duration::from_secs(10)
                }
                Err(e) => {
                    self.problem(t, format!("server `{id}`: connect-timeout `{}`: {e}", t.get_ref()));
                    Duration::from_secs(10)
                }
            },
        };
        // `files` from `[ssh]` applies to Windows servers only (a server's own one elsewhere is
        // refused in `server`).
        let files = match ssh.files.as_ref().filter(|_| windows) {
            None => FileTransfer::Sftp,
            Some(f) => match f.get_ref().as_str() {
                "sftp" => FileTransfer::Sftp,
                "powershell" => FileTransfer::PowerShell,
                other => {
                    self.problem(
                        f,
                        format!("server `{id}`: unknown files `{other}` (use `sftp` or `powershell`)"),
                    );
                    FileTransfer::Sftp
                }
            },
        };
        if let Some(secret) = &ssh.password_secret
            && !crate::secrets::is_name(secret.get_ref())
        {
            self.problem(
                secret,
                format!(
                    "server `{id}`: password-secret {:?} is not a secret name (letters, digits, - _ .)",
                    secret.get_ref()
                ),
            );
        }
        TransportSpec::Ssh(SshSpec {
            shell: if windows { RemoteShell::PowerShell } else { RemoteShell::Posix },
            files,
            password_secret: ssh.password_secret.map(Spanned::into_inner),
            host: ssh.host.unwrap_or_else(|| id.to_string()),
            port: ssh.port,
            user: ssh.user,
            identity_file: ssh.identity_file.map(|p| base.join(p)),
            known_hosts: ssh.known_hosts.map(|p| base.join(p)),
            host_key_policy: policy,
            connect_timeout_ms: timeout.as_millis() as u64,
        })
    }
}

impl Inventory {
    /// Group names, sites included.
    pub fn group_names(&self) -> BTreeSet<String> {
        self.groups.keys().cloned().collect()
    }

    /// Members of a group (or site), or the server itself when `name` is a server.
    pub fn expand(&self, name: &str) -> Vec<String> {
        match self.groups.get(name) {
            Some(members) => members.clone(),
            None if self.servers.contains_key(name) => vec![name.to_string()],
            None => Vec::new(),
        }
    }

    /// The transport of every server. SSH master connections live in a directory private to
    /// this user ([`crate::target::default_control_dir`]). A password logon's password is read
    /// from `secrets` and recorded in the set for redaction; a server whose password secret has
    /// no value gets an [`UnavailableTransport`] whose every call fails, naming server and secret.
    pub fn targets(&self, secrets: &dyn SecretSource) -> TargetSet {
        let control_dir = crate::target::default_control_dir();
        self.servers.iter().fold(TargetSet::new(), |set, (name, server)| {
            let ssh = match &server.transport {
                TransportSpec::Local => return set.with(name.clone(), Arc::new(LocalTransport)),
                TransportSpec::Command { prefix } => {
                    return set.with(name.clone(), Arc::new(CommandTransport::new(prefix.clone())));
                }
                TransportSpec::Ssh(ssh) => ssh,
            };
            let password = match &ssh.password_secret {
                None => None,
                Some(secret) => match secrets.get(secret) {
                    Some(password) => Some(PasswordLogon { secret: secret.clone(), password }),
                    None => {
                        let message = format!(
                            "{name}: its ssh logon needs the password in secret `{secret}`, which has no value \
                             (set {} or add it to the secrets file)",
                            EnvSecrets::variable(secret)
                        );
                        return set.with(name.clone(), Arc::new(UnavailableTransport::new(message)));
                    }
                },
            };
            let set = match &password {
                Some(logon) => set.holding(logon.secret.clone(), logon.password.clone()),
                None => set,
            };
            let transport: Arc<dyn Transport> = Arc::new(SshTransport::new(SshOptions {
                server: name.clone(),
                host: ssh.host.clone(),
                port: ssh.port,
                user: ssh.user.clone(),
                identity_file: ssh.identity_file.clone(),
                known_hosts_file: ssh.known_hosts.clone(),
                host_key_policy: match ssh.host_key_policy.as_str() {
                    "accept-new" => HostKeyPolicy::AcceptNew,
                    "off" => HostKeyPolicy::Off,
                    _ => HostKeyPolicy::Strict,
                },
                connect_timeout: Duration::from_millis(ssh.connect_timeout_ms),
                control_dir: control_dir.clone(),
                control_persist: CONTROL_PERSIST,
                shell: ssh.shell,
                files: ssh.files,
                password,
            }));
            set.with(name.clone(), transport)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Loaded, InventoryError> {
        parse(Path::new("/inv/inventory.toml"), text)
    }

    fn problems(text: &str) -> Vec<String> {
        match parse_str(text) {
            Err(InventoryError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn sites_servers_groups_and_vars_are_read_and_sites_are_groups() {
        let loaded = parse_str(
            r#"
[sites.prod]
description = "Amsterdam"
[sites.dr]

[ssh]
user = "drover"
known-hosts = "keys/known_hosts"

[servers.PRDBTS01]
site = "prod"
transport = "local"
vars = { role = "biztalk", instance = 1 }

[servers.DRBTS01]
site = "dr"
transport = "ssh"
ssh = { host = "10.1.0.5", port = 2222, identity-file = "/keys/id" }

[servers.DRBTS02]
site = "dr"
transport = "command"
command = ["drover-lab", "exec", "DRBTS02", "--"]

[groups]
biztalk = ["PRDBTS01", "DRBTS01"]
"#,
        )
        .unwrap();
        let inv = loaded.inventory;
        assert!(loaded.warnings.is_empty());
        assert_eq!(inv.expand("dr"), vec!["DRBTS01", "DRBTS02"]);
        assert_eq!(inv.expand("prod"), vec!["PRDBTS01"]);
        assert_eq!(inv.expand("biztalk"), vec!["PRDBTS01", "DRBTS01"]);
        assert_eq!(inv.expand("DRBTS02"), vec!["DRBTS02"]);
        assert_eq!(inv.servers["PRDBTS01"].vars["instance"], serde_json::json!(1));
        let TransportSpec::Ssh(ssh) = &inv.servers["DRBTS01"].transport else { panic!("ssh") };
        assert_eq!(ssh.host, "10.1.0.5");
        assert_eq!(ssh.port, Some(2222));
        assert_eq!(ssh.user.as_deref(), Some("drover"), "taken from [ssh]");
        assert_eq!(
            ssh.known_hosts.as_deref(),
            Some(Path::new("/inv/keys/known_hosts")),
            "relative to the file"
        );
        assert_eq!(ssh.identity_file.as_deref(), Some(Path::new("/keys/id")));
        assert_eq!(ssh.host_key_policy, "strict");
        assert_eq!(
            inv.servers["DRBTS02"].transport,
            TransportSpec::Command {
                prefix: vec!["drover-lab".into(), "exec".into(), "DRBTS02".into(), "--".into()]
            }
        );
        let round: Inventory = serde_json::from_value(serde_json::to_value(&inv).unwrap()).unwrap();
        assert_eq!(round, inv, "the pinned JSON reads back");
    }

    #[test]
    fn every_problem_is_reported_at_its_position() {
        let found = problems(
            r#"[sites.dr]

[servers.A]
site = "drr"
transport = "telnet"

[servers.B]
transport = "command"

[servers.C]
transport = "ssh"
ssh = { host-key-policy = "maybe", connect-timeout = "soon" }

[groups]
dr = ["A"]
web = ["A", "Z"]
db = ["B", "C", "B"]

[servers.D]
transport = "ssh"
ssh = { connect-timeout = "18446744073709551615s" }
"#,
        );
        assert_eq!(
            found,
            vec![
                "/inv/inventory.toml:4:8: server `A`: unknown site `drr` (sites: `dr`)",
                "/inv/inventory.toml:5:13: server `A`: unknown transport `telnet` (use `local`, `ssh` or `command`)",
                "/inv/inventory.toml:7:10: server `B`: `transport = \"command\"` needs `command = [\"program\", \"args\"…]`",
                "/inv/inventory.toml:12:27: server `C`: unknown host-key-policy `maybe` (use `strict`, `accept-new` or `off`)",
                "/inv/inventory.toml:12:54: server `C`: connect-timeout `soon`: expected number at 0",
                "/inv/inventory.toml:15:1: group `dr` has the name of a site, which is already a group of its servers",
                "/inv/inventory.toml:16:13: group `web`: `Z` is not a server of this inventory",
                "/inv/inventory.toml:17:17: group `db` lists `B` twice",
                "/inv/inventory.toml:21:27: server `D`: connect-timeout `18446744073709551615s` is longer than the limit of 10m",
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_toml_point_at_the_place() {
        assert_eq!(
            problems("[servers.A]\ntransport = \"local\"\nadress = \"x\"\n"),
            vec![
                "/inv/inventory.toml:3:1: unknown field `adress`, expected one of `site`, `os`, `transport`, `ssh`, `command`, `vars`"
            ]
        );
        assert_eq!(problems("[servers.A\n"), vec!["/inv/inventory.toml:1:11: unclosed table, expected `]`"]);
    }

    #[test]
    fn long_windows_names_are_a_warning_not_an_error() {
        let loaded = parse_str(
            "[servers.BIZTALKDRSERVER01]\ntransport = \"local\"\n[servers.a-very-long-linux-box]\ntransport = \"local\"\nos = \"linux\"\n",
        )
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            vec![
                "/inv/inventory.toml:1:10: server `BIZTALKDRSERVER01`: the name has 17 characters; Windows computer names longer than 15 break BizTalk configuration (set `os = \"linux\"` if it is not a Windows server)"
            ]
        );
    }
    const WINDOWS: &str = r#"
[sites.dr]

[ssh]
user = "CONTOSO\\svc-drover"
known-hosts = "known_hosts"
password-secret = "drover-windows"
files = "powershell"

[servers.DRBTS01]
site = "dr"
os = "windows"
transport = "ssh"
ssh = { host = "10.1.0.11" }

[servers.DRBTS02]
site = "dr"
os = "windows"
transport = "ssh"
ssh = { host = "10.1.0.12", files = "sftp", password-secret = "drbts02-admin" }

[servers.LNX01]
os = "linux"
transport = "ssh"
"#;

    fn ssh_of<'i>(inv: &'i Inventory, server: &str) -> &'i SshSpec {
        let TransportSpec::Ssh(ssh) = &inv.servers[server].transport else { panic!("{server}: ssh") };
        ssh
    }

    #[test]
    fn windows_servers_speak_powershell_with_files_and_password_logons() {
        let inv = parse_str(WINDOWS).unwrap().inventory;
        let one = ssh_of(&inv, "DRBTS01");
        assert_eq!(
            (one.shell, one.files, one.password_secret.as_deref()),
            (RemoteShell::PowerShell, FileTransfer::PowerShell, Some("drover-windows")),
            "from [ssh]"
        );
        assert_eq!(one.user.as_deref(), Some("CONTOSO\\svc-drover"));
        let two = ssh_of(&inv, "DRBTS02");
        assert_eq!(
            (two.shell, two.files, two.password_secret.as_deref()),
            (RemoteShell::PowerShell, FileTransfer::Sftp, Some("drbts02-admin")),
            "the server's own"
        );
        let linux = ssh_of(&inv, "LNX01");
        assert_eq!(
            (linux.shell, linux.files, linux.password_secret.as_deref()),
            (RemoteShell::Posix, FileTransfer::Sftp, Some("drover-windows")),
            "[ssh] files is for Windows servers; a password logon is for any"
        );
        let round: Inventory = serde_json::from_value(serde_json::to_value(&inv).unwrap()).unwrap();
        assert_eq!(round, inv, "the pinned JSON reads back");
    }

    #[test]
    fn a_run_pinned_before_windows_servers_still_loads_as_posix() {
        let pinned = serde_json::json!({
            "servers": {"DB1": {"site": null, "transport": {
                "kind": "ssh", "host": "db1", "port": null, "user": "ops", "identity-file": null,
                "known-hosts": null, "host-key-policy": "strict", "connect-timeout-ms": 10000
            }}}
        });
        let inv: Inventory = serde_json::from_value(pinned.clone()).expect("an old pinned inventory loads");
        let ssh = ssh_of(&inv, "DB1");
        assert_eq!(
            (ssh.shell, ssh.files, ssh.password_secret.as_deref()),
            (RemoteShell::Posix, FileTransfer::Sftp, None)
        );
        let again = serde_json::to_value(&inv).unwrap();
        assert_eq!(
            again["servers"]["DB1"]["transport"], pinned["servers"]["DB1"]["transport"],
            "and pins the same JSON"
        );
    }

    #[test]
    fn windows_settings_are_checked_at_their_position() {
        let found = problems(
            r#"[ssh]
files = "smb"
password-secret = "has space"

[servers.LNX01]
os = "linux"
transport = "ssh"
ssh = { files = "sftp" }

[servers.NOOS]
transport = "ssh"
ssh = { files = "powershell" }

[servers.WIN01]
os = "windows"
transport = "ssh"
ssh = { files = "ftp", password-secret = "" }
"#,
        );
        assert_eq!(
            found,
            vec![
                "/inv/inventory.toml:2:9: [ssh]: unknown files `smb` (use `sftp` or `powershell`)",
                "/inv/inventory.toml:3:19: [ssh]: password-secret \"has space\" is not a secret name (letters, digits, - _ .)",
                "/inv/inventory.toml:8:17: server `LNX01`: `files` is for Windows servers (`os = \"windows\"`); other servers' files always move through sftp",
                "/inv/inventory.toml:12:17: server `NOOS`: `files` is for Windows servers (`os = \"windows\"`); other servers' files always move through sftp",
                "/inv/inventory.toml:17:17: server `WIN01`: unknown files `ftp` (use `sftp` or `powershell`)",
                "/inv/inventory.toml:17:42: server `WIN01`: password-secret \"\" is not a secret name (letters, digits, - _ .)",
            ]
        );
    }

    #[test]
    fn the_windows_inventory_of_the_docs_is_valid() {
        let docs = include_str!("../../../docs/inventory.md");
        let section = docs.split("### A Windows inventory").nth(1).expect("the section");
        let toml =
            section.split("```toml\n").nth(1).and_then(|t| t.split("```").next()).expect("its example");
        let inv = parse_str(toml).unwrap_or_else(|e| panic!("{e}")).inventory;
        assert_eq!(inv.expand("biztalk").len(), 4);
        assert_eq!(ssh_of(&inv, "DRBTS01").files, FileTransfer::PowerShell);
        assert_eq!(ssh_of(&inv, "DRBTS02").user.as_deref(), Some("CONTOSO\\svc-drover-dr"));
        assert!(inv.servers.values().all(
            |s| matches!(&s.transport, TransportSpec::Ssh(ssh) if ssh.shell == RemoteShell::PowerShell)
        ));
    }

    #[tokio::test]
    async fn password_logons_take_their_secret_and_a_missing_one_fails_that_server_only() {
        use crate::secrets::{MapSecrets, SecretValue};
        use crate::target::TargetErrorKind;
        let inv = parse_str(WINDOWS).unwrap().inventory;
        let secrets = MapSecrets::new().with("drover-windows", "pw-1");
        let targets = inv.targets(&secrets);
        assert_eq!(targets.names().collect::<Vec<_>>(), ["DRBTS01", "DRBTS02", "LNX01"]);
        assert_eq!(
            targets.secrets(),
            [("drover-windows".to_string(), SecretValue::new("pw-1"))],
            "held once for redaction, though two servers use it"
        );
        let missing = targets.get("DRBTS02").expect("a transport");
        let e = missing.read_file(r"C:\x").await.expect_err("no password");
        assert_eq!(e.kind, TargetErrorKind::Permanent);
        assert_eq!(
            e.message,
            "DRBTS02: its ssh logon needs the password in secret `drbts02-admin`, which has no value \
             (set DROVER_SECRET_DRBTS02_ADMIN or add it to the secrets file)"
        );
    }
}
