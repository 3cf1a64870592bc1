//! Stage 1 of reading an inventory: the TOML file as written, with the position of every name a
//! message may point at. Nothing here judges meaning; [`super::load`] does.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// An inventory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InventoryFile {
    /// Sites (production, DR) by name.
    #[serde(default)]
    pub sites: BTreeMap<Spanned<String>, SiteFile>,
    /// SSH settings every `ssh` server starts from.
    #[serde(default)]
    pub ssh: Option<SshFile>,
    /// Servers by name.
    #[serde(default)]
    pub servers: BTreeMap<Spanned<String>, ServerFile>,
    /// Groups: name to server names.
    #[serde(default)]
    pub groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

/// A site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteFile {
    /// What and where it is.
    #[serde(default)]
    pub description: Option<String>,
}

/// A server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerFile {
    /// The site it belongs to.
    #[serde(default)]
    pub site: Option<Spanned<String>>,
    /// `windows` (what BizTalk runs on) or `linux`.
    #[serde(default)]
    pub os: Option<Spanned<String>>,
    /// `local`, `ssh` or `command`.
    pub transport: Spanned<String>,
    /// SSH settings, over the file's `[ssh]` ones.
    #[serde(default)]
    pub ssh: Option<Spanned<SshFile>>,
    /// For `command`: the argv prefix that runs a program on the server.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// Free-form variables for templates.
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

/// SSH settings; every field optional so a server can take the file's defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SshFile {
    /// Host name or address; the server's name when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Port; ssh's default when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// Remote user.
    #[serde(default)]
    pub user: Option<String>,
    /// Private key file, relative to the inventory file.
    #[serde(default)]
    pub identity_file: Option<String>,
    /// known_hosts file, relative to the inventory file.
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// `strict`, `accept-new` or `off`.
    #[serde(default)]
    pub host_key_policy: Option<Spanned<String>>,
    /// Connect timeout, such as `10s`.
    #[serde(default)]
    pub connect_timeout: Option<Spanned<String>>,
    /// How files move to a Windows server: `sftp` (the default) or `powershell`.
    #[serde(default)]
    pub files: Option<Spanned<String>>,
    /// Log on with the password held by this secret instead of a key.
    #[serde(default)]
    pub password_secret: Option<Spanned<String>>,
}

impl SshFile {
    /// `self` with every field it leaves empty taken from `defaults`.
    pub fn over(self, defaults: &SshFile) -> SshFile {
        let d = defaults.clone();
        SshFile {
            host: self.host.or(d.host),
            port: self.port.or(d.port),
            user: self.user.or(d.user),
            identity_file: self.identity_file.or(d.identity_file),
            known_hosts: self.known_hosts.or(d.known_hosts),
            host_key_policy: self.host_key_policy.or(d.host_key_policy),
            connect_timeout: self.connect_timeout.or(d.connect_timeout),
            files: self.files.or(d.files),
            password_secret: self.password_secret.or(d.password_secret),
        }
    }
}
