//! Logins on a recovered SQL Server (F4; docs/biztalk.md, "Failover activation";
//! `lab/PROTOCOL.md`, "Logins on the DR SQL Server"): the `sqlcmd` queries that read a server's
//! logins (`sys.server_principals`) and a database's orphaned users (`sys.database_principals`
//! whose SID no login has: Microsoft Learn, "Troubleshoot orphaned users"), the statement that
//! creates a Windows login (`CREATE LOGIN [<domain\name>] FROM WINDOWS`), and readers of their
//! answers and of SQL Server's refusals (15025: the login exists; 15401: the domain does not know
//! the name).
//!
//! A Windows login's SID is the account's SID in the domain, so creating the login on the DR SQL
//! Server maps the recovered databases' users again. A SQL Server login's SID is the server's
//! own: its users stay orphaned unless the login is recreated with the source's SID and password
//! hash (`sp_help_revlogin` on the source), which only a person with the source's output can do.
//!
//! Every command line is `biztalk_common::logshipping::sqlcmd`'s (`-s |`, `-h -1`, `-W`). Pure
//! functions only.

use std::fmt;

use crate::logshipping::{SqlError, Unreadable, rows};

/// The logins of a server: one row `<name>|<type>` each (`S` SQL Server login, `U` Windows
/// user, `G` Windows group), by name. Read with [`parse_principals`].
pub const SERVER_LOGINS: &str = "SET NOCOUNT ON; SELECT name, type FROM sys.server_principals WHERE type IN ('S', 'U', 'G') ORDER BY name";

/// The users of `database` mapped to a login (authentication type 1, instance, or 3, Windows)
/// whose SID no login of the server has: one row `<name>|<type>` each, by name. Read with
/// [`parse_principals`]. Users without a login (authentication type 0) are not orphans.
pub fn orphaned_users(database: &str) -> String {
    format!(
        "SET NOCOUNT ON; SELECT dp.name, dp.type FROM {}.sys.database_principals dp LEFT JOIN sys.server_principals sp ON sp.sid = dp.sid WHERE dp.type IN ('S', 'U', 'G') AND dp.authentication_type IN (1, 3) AND sp.sid IS NULL ORDER BY dp.name",
        bracket(database)
    )
}

/// Creates the Windows login `name` (`DOMAIN\user` or `DOMAIN\group`); prints nothing. Refused
/// with 15025 when it exists ([`already_exists`]) and 15401 when the domain does not know the
/// name ([`unknown_to_the_domain`]).
pub fn create_windows_login(name: &str) -> String {
    format!("CREATE LOGIN {} FROM WINDOWS", bracket(name))
}

/// `name` as a Transact-SQL delimited identifier.
pub fn bracket(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// Whether SQL Server refused [`create_windows_login`] because the login exists (15025).
pub fn already_exists(error: &SqlError) -> bool {
    error.number == 15025
}

/// Whether SQL Server refused [`create_windows_login`] because the domain does not know the
/// name (15401).
pub fn unknown_to_the_domain(error: &SqlError) -> bool {
    error.number == 15401
}

/// A server or database principal's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalType {
    /// `S`: SQL Server authentication.
    Sql,
    /// `U`: a Windows user.
    WindowsUser,
    /// `G`: a Windows group.
    WindowsGroup,
}

impl PrincipalType {
    /// The `type` column's letter.
    pub fn letter(self) -> &'static str {
        match self {
            PrincipalType::Sql => "S",
            PrincipalType::WindowsUser => "U",
            PrincipalType::WindowsGroup => "G",
        }
    }

    /// Whether a login for it can be created from Windows.
    pub fn is_windows(self) -> bool {
        !matches!(self, PrincipalType::Sql)
    }

    fn of(letter: &str) -> Option<PrincipalType> {
        match letter {
            "S" => Some(PrincipalType::Sql),
            "U" => Some(PrincipalType::WindowsUser),
            "G" => Some(PrincipalType::WindowsGroup),
            _ => None,
        }
    }
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrincipalType::Sql => "SQL Server login",
            PrincipalType::WindowsUser => "Windows user",
            PrincipalType::WindowsGroup => "Windows group",
        })
    }
}

/// A login or a database user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `name`.
    pub name: String,
    /// `type`.
    pub kind: PrincipalType,
}

/// Reads [`SERVER_LOGINS`] or [`orphaned_users`].
pub fn parse_principals(stdout: &str) -> Result<Vec<Principal>, Unreadable> {
    rows(stdout, 2)
        .map(|row| match row.as_slice() {
            [name, letter] if !name.is_empty() => match PrincipalType::of(letter) {
                Some(kind) => Ok(Principal { name: (*name).to_owned(), kind }),
                None => Err(Unreadable { expected: "<name>|<S, U or G>", line: row.join("|") }),
            },
            _ => Err(Unreadable { expected: "<name>|<S, U or G>", line: row.join("|") }),
        })
        .collect()
}

/// Whether `logins` has `name` (ignoring case, as SQL Server's default collation compares).
pub fn has_login(logins: &[Principal], name: &str) -> bool {
    logins.iter().any(|l| l.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logshipping::sql_error;

    #[test]
    fn the_statements_quote_names_as_identifiers() {
        assert_eq!(
            create_windows_login(r"CONTOSO\BizTalk Application Users"),
            r"CREATE LOGIN [CONTOSO\BizTalk Application Users] FROM WINDOWS"
        );
        assert_eq!(bracket("odd]name"), "[odd]]name]");
        assert!(orphaned_users("SSODB").contains(" FROM [SSODB].sys.database_principals dp "));
        assert!(SERVER_LOGINS.starts_with("SET NOCOUNT ON; SELECT"));
        assert!(orphaned_users("SSODB").starts_with("SET NOCOUNT ON; SELECT"), "a read-only grant's glob");
    }

    #[test]
    fn principals_are_read_and_odd_rows_are_not() {
        let read = parse_principals(
            "CONTOSO\\BizTalk Application Users|G\r\nbts_reporting|S\r\nCONTOSO\\svc-bre|U\r\n",
        )
        .expect("read");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].kind, PrincipalType::WindowsGroup);
        assert_eq!(read[1].kind, PrincipalType::Sql);
        assert!(!read[1].kind.is_windows() && read[2].kind.is_windows());
        assert!(has_login(&read, "contoso\\svc-bre"));
        assert_eq!(parse_principals("").expect("no rows"), Vec::new());
        assert!(parse_principals("##MS_Cert##|C\r\n").is_err());
        assert!(parse_principals("just a name\r\n").is_err());
    }

    #[test]
    fn sql_servers_refusals_are_recognised() {
        let exists = "Msg 15025, Level 16, State 2, Server DRSQL01, Line 1\r\nThe server principal 'CONTOSO\\x' already exists.\r\n";
        let unknown = "Msg 15401, Level 16, State 1, Server DRSQL01, Line 1\r\nWindows NT user or group 'CONTOSO\\x' not found. Check the name again.\r\n";
        let exists = sql_error(exists).expect("an error");
        let unknown = sql_error(unknown).expect("an error");
        assert!(already_exists(&exists) && !unknown_to_the_domain(&exists));
        assert!(unknown_to_the_domain(&unknown) && !already_exists(&unknown));
    }
}
