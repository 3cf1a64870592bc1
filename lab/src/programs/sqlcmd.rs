//! `sqlcmd -S <server> -E -d BizTalkMgmtDb -Q "select 1" -h -1` (`lab/PROTOCOL.md`,
//! "Prerequisite probes that are not PowerShell"): the SQL reachability probe. It answers for
//! any SQL server of the lab that is reachable (the `sql-unreachable` fault silences one); it
//! runs no other query.

use super::{Ctx, Output};

/// `sqlcmd <args…>`.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ["-S", server, "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"] = args.as_slice() else {
        return None;
    };
    Some(if ctx.lab.sql_reachable(server) {
        Output::ok("          1\n\n(1 rows affected)\n")
    } else {
        Output::stderr(1, "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n")
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use crate::init::fresh_lab;
    use crate::state::Fault;

    fn probe(server: &str) -> Vec<&str> {
        vec!["sqlcmd", "-S", server, "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"]
    }

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
            let out = exec(&mut lab, "DRBTS01", &probe(server));
            assert_eq!(out.code, 1);
            assert_eq!(
                out.stderr_text(),
                "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n"
            );
        }
        assert_eq!(exec(&mut lab, "DRBTS01", &probe("DRSQL01")).code, 0);
    }

    #[test]
    fn other_queries_are_unsupported() {
        let mut lab = fresh_lab();
        let mut argv = probe("PRDSQL01");
        argv[7] = "select 2";
        assert_eq!(exec(&mut lab, "DRBTS01", &argv).code, 9009);
    }
}
