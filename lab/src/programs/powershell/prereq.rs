//! Two prerequisite probes through PowerShell (`lab/PROTOCOL.md`, "PowerShell queries"): the
//! inventory of BizTalk Server 2020 cumulative updates (the Uninstall entries of the 32-bit
//! view, as sandroasp's `Check-what-BTS2020-CU-are-installed.ps1` reads them) and `Test-Dtc`
//! from the server to another computer.
//!
//! A server with BizTalk installed lists one entry per cumulative update up to its level
//! ([`crate::state::Lab::cu_level`]): CUs are cumulative, and each one installed stays in
//! Add/Remove Programs. `Test-Dtc` succeeds silently unless MSDTC is broken at either end (the
//! `dtc-blocked` fault, or `missing-prereq <server> msdtc`), or the other computer is not one of
//! the lab's; it then stops with the cmdlet's terminating error (exit 1).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::super::{Ctx, Output};
use super::{json, template_regex};
use crate::init::ENVIRONMENT_KEY;
use crate::state::Prereq;

/// The inventory of BizTalk Server 2020 cumulative updates.
pub const CU_SCRIPT: &str = r"Get-ItemProperty -Path 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*' | Where-Object { $_.DisplayName -like 'Microsoft BizTalk Server 2020 Cumulative Update*' } | Select-Object DisplayName | ConvertTo-Json -Compress";

/// The name of the Uninstall entry of cumulative update `n`.
pub fn cu_display_name(n: u32) -> String {
    format!("Microsoft BizTalk Server 2020 Cumulative Update {n}")
}

/// `Test-Dtc` from this server to another, with `{remote}` standing for a single-quoted
/// PowerShell string.
pub const TEST_DTC_TEMPLATE: &str =
    r#"Test-Dtc -LocalComputerName "$env:COMPUTERNAME" -RemoteComputerName '{remote}'"#;

/// `Test-Dtc`'s terminating error when the test cannot propagate a transaction (the cmdlet's
/// words, MicrosoftDocs/windows-powershell-docs issue 955).
pub const TEST_DTC_FAILED: &str = "Test-Dtc : DTC security settings and firewall settings should be fixed in order to complete the transactions propagation test.\n";

static TEST_DTC: LazyLock<Regex> = LazyLock::new(|| template_regex(TEST_DTC_TEMPLATE, &["remote"]));

/// The `Test-Dtc` script for `remote`, quoted as PowerShell does.
pub fn test_dtc_script(remote: &str) -> String {
    TEST_DTC_TEMPLATE.replace("{remote}", &remote.replace('\'', "''"))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UninstallEntry {
    display_name: String,
}

/// Answers the script if it is one of this module's.
pub fn run(ctx: &mut Ctx<'_>, script: &str) -> Option<Output> {
    if script == CU_SCRIPT {
        let installed = ctx.this().reg_value(ENVIRONMENT_KEY, "BTSINSTALLPATH").is_some();
        let level = if installed { ctx.lab.cu_level(&ctx.server) } else { 0 };
        let rows: Vec<_> = (1..=level).map(|n| UninstallEntry { display_name: cu_display_name(n) }).collect();
        return Some(json(&rows));
    }
    let captures = TEST_DTC.captures(script)?;
    let remote = captures.name("remote").map(|m| m.as_str().replace("''", "'")).unwrap_or_default();
    let broken = |lab: &crate::state::Lab, server: &str| {
        lab.dtc_blocked(server) || lab.prereq_missing(server, Prereq::Msdtc)
    };
    let ok = match ctx.lab.server_name(&remote) {
        Some(other) => !broken(ctx.lab, &ctx.server) && !broken(ctx.lab, &other),
        None => false,
    };
    Some(if ok { Output::ok("") } else { Output::stderr(1, TEST_DTC_FAILED) })
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::exec;
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::{Fault, Lab};

    fn ps(lab: &mut Lab, server: &str, script: &str) -> Output {
        exec(lab, server, &["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    }

    #[test]
    fn every_server_has_the_labs_cumulative_updates() {
        let mut lab = fresh_lab();
        let out = ps(&mut lab, "DRBTS01", CU_SCRIPT);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_text()).expect("an array");
        assert_eq!(rows.len(), crate::init::CU_LEVEL as usize);
        assert_eq!(
            rows[0],
            serde_json::json!({"DisplayName": "Microsoft BizTalk Server 2020 Cumulative Update 1"})
        );
        assert_eq!(ps(&mut lab, "PRDBTS01", CU_SCRIPT), out, "production is at the same level");
    }

    #[test]
    fn cu_level_sets_a_server_behind() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::CuLevel { server: "DRBTS02".into(), level: 1 });
        let out = ps(&mut lab, "DRBTS02", CU_SCRIPT);
        assert_eq!(
            out.stdout_text(),
            "{\"DisplayName\":\"Microsoft BizTalk Server 2020 Cumulative Update 1\"}\n"
        );
        lab.faults.push(Fault::CuLevel { server: "DRBTS03".into(), level: 0 });
        assert_eq!(ps(&mut lab, "DRBTS03", CU_SCRIPT), Output::ok(""), "no entry: RTM");
    }

    #[test]
    fn test_dtc_fails_when_either_end_is_blocked() {
        let mut lab = fresh_lab();
        let script = test_dtc_script("PRDSQL01");
        assert_eq!(ps(&mut lab, "DRBTS01", &script), Output::ok(""));
        lab.faults.push(Fault::DtcBlocked { server: "DRBTS01".into() });
        assert_eq!(ps(&mut lab, "DRBTS01", &script), Output::stderr(1, TEST_DTC_FAILED));
        assert_eq!(ps(&mut lab, "DRBTS02", &script), Output::ok(""));
        lab.faults.push(Fault::DtcBlocked { server: "PRDSQL01".into() });
        assert_eq!(ps(&mut lab, "DRBTS02", &script).code, 1);
        assert_eq!(ps(&mut lab, "DRBTS02", &test_dtc_script("NOSUCH")).code, 1);
    }
}
