//! The second hop (`lab/PROTOCOL.md`, "Windows over SSH", logon kinds): a program on a lab
//! server that reaches SQL Server (sqlcmd -E, Configuration.exe, RestoreConfig.vbe, BizTalk's WMI
//! provider, BTSTask) authenticates there as the session's user. A session without network
//! credentials (a key logon to Windows OpenSSH) has nothing to authenticate with: SQL Server sees
//! the anonymous logon and refuses it, as on a Kerberos double hop. An unreachable SQL server
//! fails first: no login is attempted.
//!
//! This module decides which of the two failures a connection meets; each program words it its
//! own way.

use super::Ctx;

/// SQL Server's refusal of a connection that carried no credentials (error 18456).
pub const ANONYMOUS_LOGIN_FAILED: &str = "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.";

/// Why a connection from the server to a SQL server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SqlRefused {
    /// The SQL server does not answer (unknown, down, or the `sql-unreachable` fault).
    #[error("Login timeout expired.")]
    Unreachable,
    /// It answered, but the session has no network credentials.
    #[error("{ANONYMOUS_LOGIN_FAILED}")]
    AnonymousLogon,
}

impl Ctx<'_> {
    /// Connects to the SQL server `sql` with Windows authentication: unreachable first, then
    /// the anonymous logon of a session without network credentials.
    pub fn connect_sql(&self, sql: &str) -> Result<(), SqlRefused> {
        if !self.lab.sql_reachable(sql) { Err(SqlRefused::Unreachable) } else { self.second_hop() }
    }

    /// Whether the session can authenticate to another computer at all.
    pub fn second_hop(&self) -> Result<(), SqlRefused> {
        if self.network_credentials { Ok(()) } else { Err(SqlRefused::AnonymousLogon) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::Fault;

    fn ctx<'a>(lab: &'a mut crate::state::Lab, stdin: &'a mut &'static [u8], credentials: bool) -> Ctx<'a> {
        Ctx {
            lab,
            server: "DRBTS01".into(),
            now: crate::programs::testing::now(),
            stdin,
            account: r"CONTOSO\drover".into(),
            network_credentials: credentials,
        }
    }

    #[test]
    fn unreachable_comes_before_the_anonymous_logon() {
        let mut lab = fresh_lab();
        let mut stdin: &'static [u8] = b"";
        assert_eq!(ctx(&mut lab, &mut stdin, true).connect_sql("PRDSQL01"), Ok(()));
        assert_eq!(ctx(&mut lab, &mut stdin, false).connect_sql("PRDSQL01"), Err(SqlRefused::AnonymousLogon));
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        assert_eq!(ctx(&mut lab, &mut stdin, false).connect_sql("PRDSQL01"), Err(SqlRefused::Unreachable));
        assert_eq!(
            SqlRefused::AnonymousLogon.to_string(),
            "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'."
        );
    }
}
