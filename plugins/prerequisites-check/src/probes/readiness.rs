//! What joining a group needs beyond the platform, checked before anything is configured
//! (`docs/biztalk.md`, "Prerequisites" and "Failure modes"):
//!
//! - `local-admin`: the account Drover runs as is a local administrator of the target, enabled
//!   in the session's token (`whoami /groups /fo csv`: `BUILTIN\Administrators`, SID
//!   `S-1-5-32-544`, "Enabled group"); `Configuration.exe` and the WMI host-instance `Install`
//!   need it.
//! - `sql-sysadmin`: that account is in the `sysadmin` role of the group's SQL Server
//!   (`IS_SRVROLEMEMBER('sysadmin')` answers 1).
//! - `msdtc-end-to-end`: `Test-Dtc` from the target to the SQL Server succeeds: settings can look
//!   right while a firewall, RPC or name resolution still stops every transaction.
//! - `cu-level` and `edition`, with a reference server: the target has the production server's
//!   BizTalk Server 2020 cumulative update (the Uninstall entries) and edition
//!   (`ProductEdition`).

use biztalk_common::powershell::{self, UninstallEntry};
use biztalk_common::reg::{self, RegAnswer};
use drover_sdk::prelude::*;

use super::{Finding, Probe, SQLCMD, failure};

/// `whoami`, as granted and sent.
pub const WHOAMI: &str = "whoami";
/// The well-known SID of `BUILTIN\Administrators`.
pub const ADMINISTRATORS_SID: &str = "S-1-5-32-544";
/// The sysadmin probe's query.
pub const SYSADMIN_QUERY: &str = "SET NOCOUNT ON; SELECT IS_SRVROLEMEMBER('sysadmin')";
/// Microsoft's page for MSDTC failures between BizTalk and SQL Server.
pub const MSDTC_TROUBLESHOOTING: &str =
    "https://learn.microsoft.com/biztalk/core/troubleshooting-problems-with-msdtc";

/// How the account stands in `BUILTIN\Administrators`, from `whoami /groups /fo csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminMembership {
    /// Listed and enabled: an elevated administrator.
    Enabled,
    /// Listed for deny only: an administrator whose session is not elevated (UAC).
    DenyOnly,
    /// Not listed.
    Absent,
}

/// Reads `whoami /groups /fo csv`; `None` when the output has not its header.
pub fn admin_membership(stdout: &str) -> Option<AdminMembership> {
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = csv_fields(lines.next()?);
    let column = |name: &str| header.iter().position(|h| h == name);
    let (sid, attributes) = (column("SID")?, column("Attributes")?);
    let row = lines.map(csv_fields).find(|row| row.get(sid).is_some_and(|s| s == ADMINISTRATORS_SID));
    Some(match row {
        None => AdminMembership::Absent,
        Some(row) => {
            let attributes = row.get(attributes).map(String::as_str).unwrap_or_default();
            if attributes.split(',').any(|a| a.trim() == "Enabled group") {
                AdminMembership::Enabled
            } else {
                AdminMembership::DenyOnly
            }
        }
    })
}

/// The fields of one CSV line whose fields are double-quoted (a quote inside doubled).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// A cumulative-update level for people: `CU 6`, or `no cumulative update (RTM)`.
fn cu_name(level: u32) -> String {
    if level == 0 { "no cumulative update (RTM)".to_string() } else { format!("CU {level}") }
}

/// The unmet check `id` when the reference server's `what` could not be read.
fn reference_unreadable(id: &str, what: &str, reference: &str, why: &str) -> Finding {
    Finding::unreadable(
        id,
        format!("the {what} of {reference}"),
        &format!("{reference}'s could not be read: {why}"),
    )
}

impl Probe<'_, '_> {
    pub(super) fn local_admin(&mut self) -> Result<Finding, StepError> {
        let id = "local-admin";
        let expected =
            format!("the account Drover runs as in BUILTIN\\Administrators ({ADMINISTRATORS_SID}), enabled");
        let args = ["/groups", "/fo", "csv"].map(String::from).to_vec();
        let ran = self.run("groups of the running account", WHOAMI, args)?;
        let target = self.target.clone();
        let membership = if ran.success() { admin_membership(&ran.stdout()) } else { None };
        Ok(match membership {
            Some(AdminMembership::Enabled) => Finding::new(id, true, expected, "member, enabled"),
            Some(AdminMembership::DenyOnly) => {
                Finding::new(id, false, expected, "member for deny only: the session is not elevated")
                    .with_remedy(format!("run Drover's session on {target} elevated (UAC filters the administrator token)"))
            }
            Some(AdminMembership::Absent) => Finding::new(id, false, expected, "not a member").with_remedy(format!(
                "make the account Drover runs as a local administrator of {target}: Configuration.exe and the WMI host-instance Install need one"
            )),
            None => {
                let why = if ran.success() { "unexpected whoami output".to_string() } else { failure(&ran) };
                Finding::unreadable(id, expected, &why)
            }
        })
    }

    pub(super) fn sql_sysadmin(&mut self, server: &str) -> Result<Finding, StepError> {
        let id = "sql-sysadmin";
        let expected = format!("the account Drover runs as in the sysadmin role of {server}");
        let args = ["-S", server, "-E", "-Q", SYSADMIN_QUERY, "-h", "-1", "-W"].map(String::from).to_vec();
        let ran = self.run(&format!("sysadmin on {server}"), SQLCMD, args)?;
        let answer = ran.stdout().lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned);
        Ok(match (ran.success(), answer.as_deref()) {
            (true, Some("1")) => Finding::new(id, true, expected, "sysadmin"),
            (true, Some("0")) => Finding::new(id, false, expected, "not sysadmin").with_remedy(format!(
                "grant the account Drover runs as the sysadmin role on {server} (joining writes the group's and SSO's databases)"
            )),
            (true, other) => {
                Finding::unreadable(id, expected, &format!("unexpected answer {:?}", other.unwrap_or_default()))
            }
            (false, _) => Finding::unreadable(id, expected, &failure(&ran)),
        })
    }

    pub(super) fn msdtc_end_to_end(&mut self, server: &str) -> Result<Finding, StepError> {
        let id = "msdtc-end-to-end";
        let expected = format!("Test-Dtc propagates a transaction to {server}");
        let target = self.target.clone();
        let ran = self.run(
            &format!("Test-Dtc to {server}"),
            powershell::PROGRAM,
            powershell::args(&powershell::test_dtc(server)),
        )?;
        Ok(if ran.success() {
            Finding::new(id, true, expected, "propagated")
        } else {
            Finding::new(id, false, expected, failure(&ran)).with_remedy(format!(
                "MSDTC between {target} and {server} fails end to end (firewall, RPC ports, name resolution) even if its settings look right: see Microsoft's \"Troubleshooting Problems with MSDTC\" ({MSDTC_TROUBLESHOOTING})"
            ))
        })
    }

    /// The cumulative-update level of `host`, or why it could not be read.
    fn cu_level(&mut self, host: &str) -> Result<Result<u32, String>, StepError> {
        let ran = self.run_on(
            host,
            &format!("cumulative updates of {host}"),
            powershell::PROGRAM,
            powershell::args(powershell::BIZTALK_CUMULATIVE_UPDATES),
        )?;
        if !ran.success() {
            return Ok(Err(failure(&ran)));
        }
        let entries = powershell::rows::<UninstallEntry>(&ran.stdout()).map_err(|e| e.to_string());
        Ok(entries.map(|rows| rows.iter().filter_map(UninstallEntry::cumulative_update).max().unwrap_or(0)))
    }

    pub(super) fn cumulative_update(&mut self, reference: &str) -> Result<Finding, StepError> {
        let id = "cu-level";
        let target = self.target.clone();
        let production = match self.cu_level(reference)? {
            Ok(level) => level,
            Err(why) => return Ok(reference_unreadable(id, "cumulative update", reference, &why)),
        };
        let expected = format!("{}, as on {reference}", cu_name(production));
        Ok(match self.cu_level(&target)? {
            Ok(level) if level == production => Finding::new(id, true, expected, cu_name(level)),
            Ok(level) if level < production => Finding::new(id, false, expected, cu_name(level)).with_remedy(format!(
                "install BizTalk Server 2020 Cumulative Update {production} on {target} before it joins: every server of a group runs the same CU"
            )),
            Ok(level) => Finding::new(id, false, expected, cu_name(level)).with_remedy(format!(
                "{target} is ahead of {reference}: bring the group to one CU level before it joins"
            )),
            Err(why) => Finding::unreadable(id, expected, &why),
        })
    }

    /// The edition BizTalk records on `host`, or why it could not be read.
    fn product_edition(&mut self, host: &str) -> Result<Result<String, String>, StepError> {
        let args = reg::query_args_32(reg::BIZTALK_PRODUCT, reg::PRODUCT_EDITION);
        let ran = self.run_on(host, &format!("BizTalk edition of {host}"), reg::PROGRAM, args)?;
        let answer =
            reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), reg::PRODUCT_EDITION);
        Ok(match answer {
            Ok(RegAnswer::Found(value)) => {
                value.as_text().map(str::to_owned).ok_or_else(|| format!("unexpected value {value}"))
            }
            Ok(RegAnswer::Missing) => Err("no ProductEdition (BizTalk not installed)".to_string()),
            Err(e) => Err(e.to_string()),
        })
    }

    pub(super) fn edition(&mut self, reference: &str) -> Result<Finding, StepError> {
        let id = "edition";
        let target = self.target.clone();
        let production = match self.product_edition(reference)? {
            Ok(edition) => edition,
            Err(why) => return Ok(reference_unreadable(id, "edition", reference, &why)),
        };
        let expected = format!("{production} Edition, as on {reference}");
        Ok(match self.product_edition(&target)? {
            Ok(edition) if edition.eq_ignore_ascii_case(&production) => {
                Finding::new(id, true, expected, format!("{edition} Edition"))
            }
            Ok(edition) => {
                let why = if edition.eq_ignore_ascii_case("Standard") {
                    "Standard Edition cannot join a BizTalk group"
                } else if edition.eq_ignore_ascii_case("Developer") {
                    "Developer Edition is for development and test, not production"
                } else {
                    "a group's servers run one edition"
                };
                Finding::new(id, false, expected, format!("{edition} Edition")).with_remedy(format!(
                    "{why}: install BizTalk Server 2020 {production} Edition on {target} before it joins"
                ))
            }
            Err(why) => Finding::unreadable(id, expected, &why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "\"Group Name\",\"Type\",\"SID\",\"Attributes\"\r\n";

    #[test]
    fn whoami_csv_says_how_the_account_stands() {
        let enabled = format!(
            "{HEADER}\"Everyone\",\"Well-known group\",\"S-1-1-0\",\"Mandatory group, Enabled by default, Enabled group\"\r\n\"BUILTIN\\Administrators\",\"Alias\",\"S-1-5-32-544\",\"Mandatory group, Enabled by default, Enabled group, Group owner\"\r\n"
        );
        assert_eq!(admin_membership(&enabled), Some(AdminMembership::Enabled));
        let deny = format!(
            "{HEADER}\"BUILTIN\\Administrators\",\"Alias\",\"S-1-5-32-544\",\"Group used for deny only\"\r\n"
        );
        assert_eq!(admin_membership(&deny), Some(AdminMembership::DenyOnly));
        let absent = format!(
            "{HEADER}\"BUILTIN\\Users\",\"Alias\",\"S-1-5-32-545\",\"Mandatory group, Enabled by default, Enabled group\"\r\n"
        );
        assert_eq!(admin_membership(&absent), Some(AdminMembership::Absent));
        assert_eq!(admin_membership("GROUP INFORMATION\r\n-----------------\r\n"), None, "not CSV");
        assert_eq!(admin_membership(""), None);
    }

    #[test]
    fn csv_fields_keep_commas_inside_quotes() {
        assert_eq!(csv_fields(r#""a, b","say ""hi""","""#), ["a, b", "say \"hi\"", ""]);
    }
}
