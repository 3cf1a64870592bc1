//! `net group "<name>" /domain` (`lab/PROTOCOL.md`, "Prerequisite probes that are not
//! PowerShell"): whether a domain group of docs/biztalk.md, "Prerequisites" exists, with its members (one per line,
//! without the domain). No other `net` command is emulated.

use super::{Ctx, Output};

/// `net <args…>`.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let [group, name, domain] = args else { return None };
    if group != "group" || domain != "/domain" {
        return None;
    }
    let found = ctx.lab.domain_groups.iter().find(|(g, _)| g.eq_ignore_ascii_case(name));
    Some(match found {
        Some((name, members)) => {
            let mut out = format!("Group name {name}\nComment\n\nMembers\n{}\n", "-".repeat(79));
            for member in members {
                out.push_str(member);
                out.push('\n');
            }
            out.push_str("The command completed successfully.\n");
            Output::ok(out)
        }
        None => Output::stderr(2, "The group name could not be found.\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use crate::init::fresh_lab;

    #[test]
    fn a_present_group_lists_its_members() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["net", "group", "SSO Administrators", "/domain"]);
        assert_eq!(out.code, 0);
        assert_eq!(
            out.stdout_text(),
            format!(
                "Group name SSO Administrators\nComment\n\nMembers\n{}\nbts-admin\nsvc-sso\nThe command completed successfully.\n",
                "-".repeat(79)
            )
        );
    }

    #[test]
    fn an_absent_group_exits_2() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["net.exe", "group", "Domain Gnomes", "/domain"]);
        assert_eq!((out.code, out.stderr_text()), (2, "The group name could not be found.\n".to_owned()));
        assert_eq!(exec(&mut lab, "DRBTS01", &["net", "user", "x", "/domain"]).code, 9009);
    }
}
