//! `sqlcmd` for logins (issue 18, F4; `lab/PROTOCOL.md`, "Logins on the DR SQL Server"): a
//! server's logins, a database's orphaned users and `CREATE LOGIN [<domain\name>] FROM WINDOWS`,
//! word for word as `biztalk_common::logins` (in `plugins/`) builds them, answered from
//! [`crate::logins`]. Every command line is `sqlcmd -S <server> -E -b -h -1 -W -s | -Q <query>`.
//!
//! A database still restoring answers 927 as SQL Server does, one that is not there 911;
//! `CREATE LOGIN` is refused with 15025 when the login exists and 15401 when the domain does not
//! know the name.

use super::sqlcmd::{refused, server_and_query};
use super::{Ctx, Output};
use crate::logins::{Kind, Login};
use crate::logshipping::DbState;

/// The server's logins.
const SERVER_LOGINS: &str = "SET NOCOUNT ON; SELECT name, type FROM sys.server_principals WHERE type IN ('S', 'U', 'G') ORDER BY name";
/// A database's orphaned users: the database's name in brackets between the two.
const ORPHANED_USERS: (&str, &str) = (
    "SET NOCOUNT ON; SELECT dp.name, dp.type FROM ",
    ".sys.database_principals dp LEFT JOIN sys.server_principals sp ON sp.sid = dp.sid WHERE dp.type IN ('S', 'U', 'G') AND dp.authentication_type IN (1, 3) AND sp.sid IS NULL ORDER BY dp.name",
);
/// `CREATE LOGIN [<name>] FROM WINDOWS`.
const CREATE_WINDOWS_LOGIN: (&str, &str) = ("CREATE LOGIN ", " FROM WINDOWS");

/// `sqlcmd <args…>` when they are one of this module's command lines.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let (server, query) = server_and_query(args)?;
    let request = Request::of(query)?;
    if let Err(why) = ctx.connect_sql(server) {
        return Some(refused(why));
    }
    let server = ctx.lab.server_name(server).unwrap_or_else(|| server.to_owned());
    Some(request.answer(ctx, &server))
}

enum Request {
    Logins,
    Orphans(String),
    Create(String),
}

/// The name of a `[…]` identifier that is all of `text`.
fn unbracket(text: &str) -> Option<String> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    (!inner.replace("]]", "").contains(']')).then(|| inner.replace("]]", "]"))
}

impl Request {
    fn of(query: &str) -> Option<Request> {
        if query == SERVER_LOGINS {
            return Some(Request::Logins);
        }
        if let Some(rest) = query.strip_prefix(ORPHANED_USERS.0) {
            return Some(Request::Orphans(unbracket(rest.strip_suffix(ORPHANED_USERS.1)?)?));
        }
        let rest = query.strip_prefix(CREATE_WINDOWS_LOGIN.0)?.strip_suffix(CREATE_WINDOWS_LOGIN.1)?;
        Some(Request::Create(unbracket(rest)?))
    }

    fn answer(self, ctx: &mut Ctx<'_>, server: &str) -> Output {
        let lab = &mut *ctx.lab;
        match self {
            Request::Logins => Output::ok(rows(&lab.sql_logins(server))),
            Request::Orphans(database) => {
                let state = match lab.destination_name(server) {
                    Some(_) => lab.database_state(server, &database),
                    None => lab.sql_has_database(server, &database).then_some(DbState::Online),
                };
                match state {
                    Some(DbState::Online) => Output::ok(rows(&lab.orphaned_users(server, &database))),
                    Some(DbState::Restoring) => in_restore(server, &database),
                    None => no_database(server, &database),
                }
            }
            Request::Create(name) => {
                if lab.sql_logins(server).iter().any(|l| l.name.eq_ignore_ascii_case(&name)) {
                    return refusal(
                        server,
                        15025,
                        2,
                        &format!("The server principal '{name}' already exists."),
                    );
                }
                if !lab.domain_knows(&name) {
                    return refusal(
                        server,
                        15401,
                        1,
                        &format!("Windows NT user or group '{name}' not found. Check the name again."),
                    );
                }
                // Whether the domain's account is a group: the lab's domain groups are.
                let account = name.split_once('\\').map_or("", |(_, a)| a);
                let group = lab.domain_groups.keys().any(|g| g.eq_ignore_ascii_case(account));
                let kind = if group { Kind::WindowsGroup } else { Kind::WindowsUser };
                lab.add_login(server, Login { name, kind });
                Output::ok("")
            }
        }
    }
}

fn rows(principals: &[Login]) -> String {
    principals.iter().map(|p| format!("{}|{}\r\n", p.name, p.kind.letter())).collect()
}

/// A SQL Server error of level 16 on line 1.
fn refusal(server: &str, number: u32, state: u32, message: &str) -> Output {
    Output::stdout(
        1,
        format!("Msg {number}, Level 16, State {state}, Server {server}, Line 1\r\n{message}\r\n"),
    )
}

/// Error 927: the database is still restoring.
fn in_restore(server: &str, database: &str) -> Output {
    Output::stdout(
        1,
        format!(
            "Msg 927, Level 14, State 2, Server {server}, Line 1\r\nDatabase '{database}' cannot be opened. It is in the middle of a restore.\r\n"
        ),
    )
}

/// Error 911: no such database here.
fn no_database(server: &str, database: &str) -> Output {
    refusal(
        server,
        911,
        1,
        &format!("Database '{database}' does not exist. Make sure that the name is entered correctly."),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use super::*;
    use crate::init::fresh_lab;
    use crate::logshipping::RESTORE_TO_MARK;
    use crate::state::Lab;

    /// The plugins' module, whose command lines the lab must accept word for word.
    const PLUGIN: &str = include_str!("../../../plugins/biztalk-common/src/logins.rs");

    fn sql(lab: &mut Lab, server: &str, query: &str) -> Output {
        exec(lab, "DRBTS01", &["sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query])
    }

    fn orphans(database: &str) -> String {
        format!("{}[{database}]{}", ORPHANED_USERS.0, ORPHANED_USERS.1)
    }

    #[test]
    fn the_queries_are_the_plugins_word_for_word() {
        assert!(PLUGIN.contains(&format!("\"{SERVER_LOGINS}\"")), "{SERVER_LOGINS}");
        let orphans = format!("{}{{}}{}", ORPHANED_USERS.0, ORPHANED_USERS.1);
        assert!(PLUGIN.contains(&format!("\"{orphans}\"")), "{orphans}");
        let create = format!("{}{{}}{}", CREATE_WINDOWS_LOGIN.0, CREATE_WINDOWS_LOGIN.1);
        assert!(PLUGIN.contains(&format!("\"{create}\"")), "{create}");
    }

    #[test]
    fn orphans_show_once_restore_to_mark_recovered_the_copies_and_vanish_with_their_logins() {
        let mut lab = fresh_lab();
        let out = sql(&mut lab, "DRSQL01", &orphans("BizTalkMgmtDb"));
        assert_eq!(out.code, 1);
        assert!(
            out.stdout_text().contains("Database 'BizTalkMgmtDb' cannot be opened"),
            "{}",
            out.stdout_text()
        );
        assert_eq!(
            sql(&mut lab, "PRDSQL01", &orphans("BizTalkMgmtDb")).stdout_text(),
            "",
            "production has them all"
        );
        let start = format!("EXEC msdb.dbo.sp_start_job @job_name = N'{RESTORE_TO_MARK}'");
        assert_eq!(sql(&mut lab, "DRSQL01", &start).code, 0);
        let out = sql(&mut lab, "DRSQL01", &orphans("BizTalkDTADb"));
        assert_eq!(
            out.stdout_text(),
            "bts_reporting|S\r\nCONTOSO\\BizTalk Application Users|G\r\nCONTOSO\\BizTalk Isolated Host Users|G\r\nCONTOSO\\BizTalk Server Operators|G\r\n"
        );
        let create = format!(
            "{}[CONTOSO\\BizTalk Application Users]{}",
            CREATE_WINDOWS_LOGIN.0, CREATE_WINDOWS_LOGIN.1
        );
        let out = sql(&mut lab, "DRSQL01", &create);
        assert_eq!((out.code, out.stdout_text()), (0, String::new()));
        assert!(
            !sql(&mut lab, "DRSQL01", &orphans("BizTalkDTADb")).stdout_text().contains("Application Users")
        );
        assert!(
            sql(&mut lab, "DRSQL01", SERVER_LOGINS)
                .stdout_text()
                .contains("CONTOSO\\BizTalk Application Users|G\r\n")
        );
        let out = sql(&mut lab, "DRSQL01", &create);
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stdout_text(),
            "Msg 15025, Level 16, State 2, Server DRSQL01, Line 1\r\nThe server principal 'CONTOSO\\BizTalk Application Users' already exists.\r\n"
        );
        let out = sql(&mut lab, "DRSQL01", &orphans("NoSuchDb"));
        assert!(out.stdout_text().starts_with("Msg 911,"), "{}", out.stdout_text());
    }

    #[test]
    fn a_name_the_domain_does_not_know_is_refused_with_15401() {
        let mut lab = fresh_lab();
        let create = format!("{}[CONTOSO\\Nobody]{}", CREATE_WINDOWS_LOGIN.0, CREATE_WINDOWS_LOGIN.1);
        let out = sql(&mut lab, "DRSQL01", &create);
        assert_eq!(
            (out.code, out.stdout_text()),
            (
                1,
                "Msg 15401, Level 16, State 1, Server DRSQL01, Line 1\r\nWindows NT user or group 'CONTOSO\\Nobody' not found. Check the name again.\r\n".to_owned()
            )
        );
        let user = format!("{}[CONTOSO\\svc-bre]{}", CREATE_WINDOWS_LOGIN.0, CREATE_WINDOWS_LOGIN.1);
        assert_eq!(sql(&mut lab, "DRSQL01", &user).code, 0);
        assert!(sql(&mut lab, "DRSQL01", SERVER_LOGINS).stdout_text().contains("CONTOSO\\svc-bre|U\r\n"));
    }
}
