//! `sqlcmd` with Windows authentication (`lab/PROTOCOL.md`, "Prerequisite probes that are not
//! PowerShell"): the SQL reachability probe (`-d BizTalkMgmtDb -Q "select 1" -h -1`), the login
//! probe (`-Q "SET NOCOUNT ON; SELECT SUSER_SNAME()" -h -1 -W`, which answers the login SQL Server
//! sees) and the sysadmin probe (`-Q "SET NOCOUNT ON; SELECT IS_SRVROLEMEMBER('sysadmin')" -h -1
//! -W`: `1`, or `0` under the `not-sysadmin` fault). They answer for any SQL server of the lab
//! that is reachable (the `sql-unreachable` fault silences one) and only for a session with
//! network credentials ([`super::hop`]); no other query runs.

use super::hop::SqlRefused;
use super::{Ctx, Output};

/// The login probe's query.
pub const LOGIN_QUERY: &str = "SET NOCOUNT ON; SELECT SUSER_SNAME()";

/// The sysadmin probe's query: 1 when the session's login is in the `sysadmin` fixed server
/// role, 0 when not (Microsoft Learn, "IS_SRVROLEMEMBER (Transact-SQL)").
pub const SYSADMIN_QUERY: &str = "SET NOCOUNT ON; SELECT IS_SRVROLEMEMBER('sysadmin')";

/// What sqlcmd prints before the driver's message when it cannot connect.
const ERROR_PREFIX: &str = "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : ";

/// `sqlcmd <args…>`.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, answer) = match args.as_slice() {
        ["-S", server, "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"] => {
            (*server, "          1\n\n(1 rows affected)\n".to_owned())
        }
        ["-S", server, "-E", "-Q", LOGIN_QUERY, "-h", "-1", "-W"] => {
            (*server, format!("{}\r\n", ctx.account))
        }
        ["-S", server, "-E", "-Q", SYSADMIN_QUERY, "-h", "-1", "-W"] => {
            let member = if ctx.lab.not_sysadmin(server) { 0 } else { 1 };
            (*server, format!("{member}\r\n"))
        }
        _ => return None,
    };
    Some(match ctx.connect_sql(server) {
        Ok(()) => Output::ok(answer),
        Err(why) => refused(why),
    })
}

/// The server and query of the command line the failover's plugins send
/// (`biztalk_common::logshipping::sqlcmd`: `-S <server> -E -b -h -1 -W -s | -Q <query>`), read by
/// [`super::sql_logshipping`], [`super::sql_backup_job`] and [`super::sql_logins`].
pub(super) fn server_and_query(args: &[String]) -> Option<(&str, &str)> {
    match args {
        [s, server, e, b, h, one, w, sep, pipe, q, query]
            if [s, e, b, h, one, w, sep, pipe, q].map(String::as_str)
                == ["-S", "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q"] =>
        {
            Some((server.as_str(), query.as_str()))
        }
        _ => None,
    }
}

/// The text of a `N'…'` literal that is all of `text` (quotes doubled inside it undone).
pub(super) fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix("N'")?.strip_suffix('\'')?;
    (!inner.replace("''", "").contains('\'')).then(|| inner.replace("''", "'"))
}

/// What sqlcmd answers when it cannot connect (also for the log-shipping queries,
/// [`super::sql_logshipping`]).
pub(super) fn refused(why: SqlRefused) -> Output {
    match why {
        // sqlcmd ends the driver's message with a period of its own: `..` after a login failure.
        SqlRefused::AnonymousLogon => Output::stderr(1, format!("{ERROR_PREFIX}{why}.\n")),
        SqlRefused::Unreachable => Output::stderr(1, format!("{ERROR_PREFIX}{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_without_credentials};
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::Fault;

    fn probe(server: &str) -> Vec<&str> {
        vec!["sqlcmd", "-S", server, "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"]
    }

    fn login(server: &str) -> Vec<&str> {
        vec!["sqlcmd", "-S", server, "-E", "-Q", LOGIN_QUERY, "-h", "-1", "-W"]
    }

    const ANONYMOUS: &str = "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'..\n";
    const TIMEOUT: &str = "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n";

    #[test]
    fn a_reachable_server_answers() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &probe("PRDSQL01"));
        assert_eq!((out.code, out.stdout_text()), (0, "          1\n\n(1 rows affected)\n".to_owned()));
    }

    #[test]
    fn unreachable_or_unknown_servers_time_out() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        for server in ["PRDSQL01", "NOSQL01", "DRBTS02"] {
            for argv in [probe(server), login(server)] {
                let out = exec(&mut lab, "DRBTS01", &argv);
                assert_eq!((out.code, out.stderr_text()), (1, TIMEOUT.to_owned()), "{argv:?}");
            }
            let out = exec_without_credentials(&mut lab, "DRBTS01", &login(server), b"");
            assert_eq!((out.code, out.stderr_text()), (1, TIMEOUT.to_owned()), "no login is tried");
        }
        assert_eq!(exec(&mut lab, "DRBTS01", &probe("DRSQL01")).code, 0);
    }

    #[test]
    fn the_login_probe_names_the_sessions_account() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &login("PRDSQL01"));
        assert_eq!(
            (out.code, out.stdout_text(), out.stderr_text()),
            (0, "CONTOSO\\drover\r\n".into(), String::new())
        );
    }

    #[test]
    fn without_network_credentials_sql_server_sees_the_anonymous_logon() {
        let mut lab = fresh_lab();
        for argv in [probe("PRDSQL01"), login("PRDSQL01")] {
            let out = exec_without_credentials(&mut lab, "DRBTS01", &argv, b"");
            assert_eq!(
                (out.code, out.stdout_text(), out.stderr_text()),
                (1, String::new(), ANONYMOUS.to_owned())
            );
        }
    }

    #[test]
    fn the_sysadmin_probe_answers_1_unless_not_sysadmin() {
        let mut lab = fresh_lab();
        let argv = ["sqlcmd", "-S", "PRDSQL01", "-E", "-Q", SYSADMIN_QUERY, "-h", "-1", "-W"];
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).stdout_text(), "1\r\n");
        lab.faults.push(Fault::NotSysadmin { server: "PRDSQL01".into() });
        let out = exec(&mut lab, "DRBTS01", &argv);
        assert_eq!((out.code, out.stdout_text()), (0, "0\r\n".to_owned()));
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).stderr_text(), TIMEOUT);
    }

    #[test]
    fn other_queries_are_unsupported() {
        let mut lab = fresh_lab();
        let mut argv = probe("PRDSQL01");
        argv[7] = "select 2";
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).code, 9009);
        let mut argv = login("PRDSQL01");
        argv.pop();
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).code, 9009, "-W is part of the probe");
    }
}
