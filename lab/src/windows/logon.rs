//! How a session logged on (`lab/PROTOCOL.md`, "Windows over SSH", "Logons"). With sshd's
//! `ExposeAuthInfo yes`, `SSH_USER_AUTH` names a file listing the authentication methods the
//! session passed, one a line (`password`, `publickey ssh-ed25519 AAAA…`). On Windows only a
//! password logon gives the session network credentials; a key logon has none (Win32-OpenSSH
//! issues #518 and #1264), so its programs meet the Kerberos double hop. No file (sshd without
//! `ExposeAuthInfo`) or an unreadable one counts as a logon without network credentials.

use crate::programs::Logon;

/// `SSH_USER_AUTH`: the file listing the session's authentication methods.
pub const SSH_USER_AUTH: &str = "SSH_USER_AUTH";

/// How a session logged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogon {
    /// The user sshd logged on (`USER`, else `LOGNAME`).
    pub user: String,
    /// The authentication methods, in order (`password`, `publickey`…).
    pub methods: Vec<String>,
}

impl SessionLogon {
    /// The session's logon from its environment (`var` reads one variable) and the file
    /// `SSH_USER_AUTH` names.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> SessionLogon {
        let user = var("USER").or_else(|| var("LOGNAME")).unwrap_or_else(|| "unknown".to_owned());
        let listed =
            var(SSH_USER_AUTH).and_then(|path| std::fs::read_to_string(path).ok()).unwrap_or_default();
        SessionLogon { user, methods: methods(&listed) }
    }

    /// Whether the session has network credentials: it logged on with a password.
    pub fn network_credentials(&self) -> bool {
        self.methods.iter().any(|m| m == "password")
    }

    /// The logon the session's programs run as: `CONTOSO\<user>`.
    pub fn logon(&self) -> Logon {
        Logon::of_user(&self.user, self.network_credentials())
    }
}

/// The method names of an `SSH_USER_AUTH` file: the first word of each line.
pub fn methods(listed: &str) -> Vec<String> {
    listed.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(env: &[(&str, &str)]) -> SessionLogon {
        SessionLogon::from_env(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn a_password_logon_has_network_credentials_a_key_logon_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("password");
        std::fs::write(&password, "password\n").expect("write");
        let key = dir.path().join("key");
        std::fs::write(&key, "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n").expect("write");
        let both = dir.path().join("both");
        std::fs::write(&both, "publickey ssh-ed25519 AAAA\npassword\n").expect("write");
        let path = |p: &std::path::Path| p.display().to_string();

        let logon = session(&[("USER", "drover-win"), (SSH_USER_AUTH, &path(&password))]).logon();
        assert_eq!(logon, Logon { account: r"CONTOSO\drover-win".into(), network_credentials: true });
        let key_logon = session(&[("LOGNAME", "ops"), (SSH_USER_AUTH, &path(&key))]);
        assert_eq!(key_logon.methods, ["publickey"]);
        assert_eq!(key_logon.logon(), Logon { account: r"CONTOSO\ops".into(), network_credentials: false });
        assert!(session(&[("USER", "u"), (SSH_USER_AUTH, &path(&both))]).network_credentials());
        assert!(!session(&[("USER", "u")]).network_credentials(), "no ExposeAuthInfo");
        assert!(!session(&[("USER", "u"), (SSH_USER_AUTH, "/nonexistent")]).network_credentials());
    }
}
