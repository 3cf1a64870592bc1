//! SQL Server logins and the BizTalk databases' users in the lab (issue 18, F4;
//! `lab/PROTOCOL.md`, "Logins on the DR SQL Server"): each SQL instance's server logins
//! (`sys.server_principals`), the users of the BizTalk databases (`sys.database_principals`, the
//! same on every copy: a log-shipped copy's users are the source's), and the rules that read them:
//! which users have no login on a server (orphaned users), and whether the domain knows a name
//! `CREATE LOGIN … FROM WINDOWS` is given.
//!
//! In the fresh lab production's SQL Server has every login the group needs; the DR SQL Server
//! was prepared without some of them (the BizTalk Application Users, the Isolated Host Users, the
//! Operators, the rule engine update service's account and the reporting SQL login): after
//! Restore To Mark their users are orphaned there. A Windows login's SID is the account's, so a
//! Windows user or group matches its login by name; the lab's only SQL login never exists on the
//! DR SQL Server, so matching it by name too is the same answer as by SID.
//!
//! `sqlcmd`'s answers are [`crate::programs::sql_logins`]'s.

use serde::{Deserialize, Serialize};

use crate::init::DOMAIN;
use crate::state::Lab;

/// A principal's type (`sys.server_principals.type`, `sys.database_principals.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `S`: SQL Server authentication.
    Sql,
    /// `U`: a Windows user.
    WindowsUser,
    /// `G`: a Windows group.
    WindowsGroup,
}

impl Kind {
    /// The `type` column's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Kind::Sql => "S",
            Kind::WindowsUser => "U",
            Kind::WindowsGroup => "G",
        }
    }
}

/// A server login (or a database user of the same name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Login {
    /// `name`, `CONTOSO\…` for a Windows login.
    pub name: String,
    /// `type`.
    pub kind: Kind,
}

/// The SQL Server login the reporting tool reads the tracking database with.
pub const REPORTING_LOGIN: &str = "bts_reporting";

fn windows_group(group: &str) -> Login {
    Login { name: format!(r"{DOMAIN}\{group}"), kind: Kind::WindowsGroup }
}

fn windows_user(user: &str) -> Login {
    Login { name: format!(r"{DOMAIN}\{user}"), kind: Kind::WindowsUser }
}

/// The logins every SQL Server of the lab has: `sa`, the SQL Server Agent's account, the
/// administrators' groups and the operator's account Drover connects as.
fn common() -> Vec<Login> {
    vec![
        Login { name: "sa".into(), kind: Kind::Sql },
        Login { name: r"BUILTIN\Administrators".into(), kind: Kind::WindowsGroup },
        Login { name: r"NT AUTHORITY\SYSTEM".into(), kind: Kind::WindowsUser },
        windows_user("drover"),
        windows_user("svc-sqlagent"),
        windows_group("BizTalk Server Administrators"),
        windows_group("SSO Administrators"),
    ]
}

/// The logins only production's SQL Server has in the fresh lab.
fn production_only() -> Vec<Login> {
    vec![
        windows_group("BizTalk Application Users"),
        windows_group("BizTalk Isolated Host Users"),
        windows_group("BizTalk Server Operators"),
        windows_user("svc-bre"),
        Login { name: REPORTING_LOGIN.into(), kind: Kind::Sql },
    ]
}

/// Production's SQL Server's logins: all the group needs.
pub fn production() -> Vec<Login> {
    let mut logins = common();
    logins.extend(production_only());
    logins
}

/// The DR SQL Server's logins as the DR site was prepared: without [`production_only`]'s.
pub fn dr_site() -> Vec<Login> {
    common()
}

/// The users of a BizTalk database mapped to logins (the same on the source and on every copy),
/// none for any other database.
pub fn database_users(database: &str) -> Vec<Login> {
    let groups: &[&str] = match database.to_ascii_lowercase().as_str() {
        "biztalkmgmtdb" => &[
            "BizTalk Application Users",
            "BizTalk Isolated Host Users",
            "BizTalk Server Administrators",
            "BizTalk Server Operators",
            "SSO Administrators",
        ],
        "biztalkmsgboxdb" | "biztalkdtadb" => &[
            "BizTalk Application Users",
            "BizTalk Isolated Host Users",
            "BizTalk Server Administrators",
            "BizTalk Server Operators",
        ],
        "biztalkruleenginedb" => {
            &["BizTalk Application Users", "BizTalk Isolated Host Users", "BizTalk Server Administrators"]
        }
        "ssodb" => &["SSO Administrators"],
        _ => &[],
    };
    let mut users: Vec<Login> = groups.iter().map(|g| windows_group(g)).collect();
    match database.to_ascii_lowercase().as_str() {
        "biztalkruleenginedb" => users.push(windows_user("svc-bre")),
        "biztalkdtadb" => users.push(Login { name: REPORTING_LOGIN.into(), kind: Kind::Sql }),
        _ => {}
    }
    users.sort_by_key(|u| u.name.to_lowercase());
    users
}

impl Lab {
    /// The logins of the SQL Server `server` (none when it is not one).
    pub fn sql_logins(&self, server: &str) -> Vec<Login> {
        let name = self.server_name(server).unwrap_or_else(|| server.to_owned());
        self.servers.get(&name).and_then(|s| s.sql.as_ref()).map(|sql| sql.logins.clone()).unwrap_or_default()
    }

    /// The users of `database` on `server` whose login is missing there.
    pub fn orphaned_users(&self, server: &str, database: &str) -> Vec<Login> {
        let logins = self.sql_logins(server);
        database_users(database)
            .into_iter()
            .filter(|u| !logins.iter().any(|l| l.name.eq_ignore_ascii_case(&u.name)))
            .collect()
    }

    /// Whether the domain knows `name` (`CONTOSO\<group, member or service account>`): a domain
    /// group, a group's member, or an account a service of the lab runs as.
    pub fn domain_knows(&self, name: &str) -> bool {
        let Some((domain, account)) = name.split_once('\\') else { return false };
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return false;
        }
        let same = |known: &str| known.eq_ignore_ascii_case(account);
        self.domain_groups.iter().any(|(group, members)| same(group) || members.iter().any(|m| same(m)))
            || self.servers.values().flat_map(|s| &s.services).any(|s| s.account.eq_ignore_ascii_case(name))
            || ["drover", "svc-sqlagent"].into_iter().any(same)
    }

    /// Adds the login `login` to `server`; false when the server has no SQL instance.
    pub fn add_login(&mut self, server: &str, login: Login) -> bool {
        let name = self.server_name(server).unwrap_or_else(|| server.to_owned());
        match self.servers.get_mut(&name).and_then(|s| s.sql.as_mut()) {
            Some(sql) => {
                sql.logins.push(login);
                sql.logins.sort_by_key(|l| l.name.to_lowercase());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::init::fresh_lab;

    #[test]
    fn the_dr_sql_server_lacks_some_logins_production_has() {
        let lab = fresh_lab();
        assert!(lab.orphaned_users("PRDSQL01", "BizTalkMgmtDb").is_empty());
        let orphans: Vec<String> =
            lab.orphaned_users("DRSQL01", "BizTalkRuleEngineDb").into_iter().map(|u| u.name).collect();
        assert_eq!(
            orphans,
            [
                r"CONTOSO\BizTalk Application Users",
                r"CONTOSO\BizTalk Isolated Host Users",
                r"CONTOSO\svc-bre"
            ]
        );
        assert!(lab.orphaned_users("DRSQL01", "SSODB").is_empty());
        assert!(lab.orphaned_users("DRSQL01", "master").is_empty());
    }

    #[test]
    fn the_domain_knows_its_groups_members_and_service_accounts() {
        let lab = fresh_lab();
        for name in [r"CONTOSO\BizTalk Application Users", r"contoso\svc-bts-ihost", r"CONTOSO\svc-bre"] {
            assert!(lab.domain_knows(name), "{name}");
        }
        for name in [r"CONTOSO\Nobody", r"FABRIKAM\svc-bts", "svc-bts"] {
            assert!(!lab.domain_knows(name), "{name}");
        }
    }
}
