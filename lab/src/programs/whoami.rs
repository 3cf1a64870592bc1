//! `whoami /groups /fo csv` (`lab/PROTOCOL.md`, "Prerequisite probes that are not PowerShell"):
//! the groups of the session's access token, one CSV row each under the header `"Group
//! Name","Type","SID","Attributes"`, as Windows prints them (CRLF line ends). The account Drover
//! runs as is a local administrator of every server (`BUILTIN\Administrators`, SID
//! `S-1-5-32-544`, enabled; high mandatory level) unless the `not-local-admin` fault takes it out
//! of that group on a server. No other `whoami` command is emulated.

use super::{Ctx, Output};

/// The header row.
pub const HEADER: &str = r#""Group Name","Type","SID","Attributes""#;
/// The attributes of an enabled group of the token.
const ENABLED: &str = "Mandatory group, Enabled by default, Enabled group";

/// `whoami <args…>`.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let [groups, fo, csv] = args else { return None };
    if groups != "/groups" || fo != "/fo" || csv != "csv" {
        return None;
    }
    let admin = !ctx.lab.not_local_admin(&ctx.server);
    let mut rows = vec![row("Everyone", "Well-known group", "S-1-1-0", ENABLED)];
    if admin {
        rows.push(row(
            "BUILTIN\\Administrators",
            "Alias",
            "S-1-5-32-544",
            &format!("{ENABLED}, Group owner"),
        ));
    }
    rows.push(row("BUILTIN\\Users", "Alias", "S-1-5-32-545", ENABLED));
    rows.push(row("NT AUTHORITY\\NETWORK", "Well-known group", "S-1-5-2", ENABLED));
    rows.push(row("NT AUTHORITY\\Authenticated Users", "Well-known group", "S-1-5-11", ENABLED));
    rows.push(row("NT AUTHORITY\\This Organization", "Well-known group", "S-1-5-15", ENABLED));
    rows.push(if admin {
        row("Mandatory Label\\High Mandatory Level", "Label", "S-1-16-12288", "")
    } else {
        row("Mandatory Label\\Medium Mandatory Level", "Label", "S-1-16-8192", "")
    });
    let mut out = format!("{HEADER}\r\n");
    for line in rows {
        out.push_str(&line);
        out.push_str("\r\n");
    }
    Some(Output::ok(out))
}

fn row(name: &str, kind: &str, sid: &str, attributes: &str) -> String {
    format!(r#""{name}","{kind}","{sid}","{attributes}""#)
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use crate::init::fresh_lab;
    use crate::state::Fault;

    const ARGV: [&str; 4] = ["whoami", "/groups", "/fo", "csv"];
    const ADMINISTRATORS: &str = r#""BUILTIN\Administrators","Alias","S-1-5-32-544","Mandatory group, Enabled by default, Enabled group, Group owner""#;

    #[test]
    fn the_running_account_is_a_local_administrator() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &ARGV);
        assert_eq!(out.code, 0);
        let text = out.stdout_text();
        assert!(text.starts_with("\"Group Name\",\"Type\",\"SID\",\"Attributes\"\r\n"), "{text}");
        assert!(text.lines().any(|l| l == ADMINISTRATORS), "{text}");
        assert!(text.contains("High Mandatory Level"));
    }

    #[test]
    fn not_local_admin_takes_the_group_away_on_one_server() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::NotLocalAdmin { server: "DRBTS02".into() });
        let out = exec(&mut lab, "drbts02", &ARGV);
        assert!(!out.stdout_text().contains("S-1-5-32-544"), "{}", out.stdout_text());
        assert!(out.stdout_text().contains("Medium Mandatory Level"));
        assert!(exec(&mut lab, "DRBTS01", &ARGV).stdout_text().contains("S-1-5-32-544"));
        assert_eq!(exec(&mut lab, "DRBTS01", &["whoami", "/all"]).code, 9009);
    }
}
