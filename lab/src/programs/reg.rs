//! `reg query "<key>" /v <value>` (`lab/PROTOCOL.md`, "Registry"): one value of the server's
//! `HKLM` registry, printed as `reg.exe` does. The `missing-prereq` fault hides the .NET, VC++
//! and OLE DB keys of its server. Other `reg` operations are not emulated.

use super::{Ctx, Output};
use crate::init::{NDP_KEY, OLEDB_KEY, VC_X64_KEY, VC_X86_KEY};
use crate::state::{Prereq, RegValue};

const NOT_FOUND: &str = "ERROR: The system was unable to find the specified registry key or value.\n";

/// `reg query <key> /v <value>`.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let [query, key, v, value] = args else { return None };
    if query != "query" || v != "/v" {
        return None;
    }
    let key = key.strip_prefix(r"HKLM\")?;
    let hidden = prereq_of(key).is_some_and(|p| ctx.lab.prereq_missing(&ctx.server, p));
    let found = if hidden { None } else { ctx.this().reg_value(key, value) };
    Some(match found {
        Some(data) => {
            let (kind, text) = match data {
                RegValue::Sz(s) => ("REG_SZ", s.clone()),
                RegValue::Dword(n) => ("REG_DWORD", format!("{n:#x}")),
            };
            Output::ok(format!("\nHKEY_LOCAL_MACHINE\\{key}\n    {value}    {kind}    {text}\n\n"))
        }
        None => Output::stderr(1, NOT_FOUND),
    })
}

/// The prerequisite a registry key stands for.
fn prereq_of(key: &str) -> Option<Prereq> {
    let is = |k: &str| key.eq_ignore_ascii_case(k);
    if is(NDP_KEY) {
        Some(Prereq::Dotnet)
    } else if is(VC_X64_KEY) || is(VC_X86_KEY) {
        Some(Prereq::Vcredist)
    } else if is(OLEDB_KEY) {
        Some(Prereq::Oledb)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use crate::init::fresh_lab;
    use crate::state::{Fault, Prereq};

    const ADMIN: &str = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
    const NDP: &str = r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full";

    #[test]
    fn a_string_value() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "PRDBTS01", &["reg", "query", ADMIN, "/v", "MgmtDBServer"]);
        assert_eq!(out.code, 0);
        assert_eq!(
            out.stdout_text(),
            "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    PRDSQL01\n\n"
        );
    }

    #[test]
    fn a_dword_is_lower_case_hex() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["reg.exe", "query", NDP, "/v", "Release"]);
        assert_eq!(
            out.stdout_text(),
            "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full\n    Release    REG_DWORD    0x80eb1\n\n"
        );
        let vc = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\VisualStudio\14.0\VC\Runtimes\x86";
        assert!(
            exec(&mut lab, "DRBTS01", &["reg", "query", vc, "/v", "Installed"])
                .stdout_text()
                .ends_with("REG_DWORD    0x1\n\n")
        );
    }

    #[test]
    fn missing_values_and_keys() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN, "/v", "MgmtDBServer"]);
        assert_eq!((out.code, out.stdout_text()), (1, String::new()));
        assert_eq!(
            out.stderr_text(),
            "ERROR: The system was unable to find the specified registry key or value.\n"
        );
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", r"HKLM\SOFTWARE\Nope", "/v", "X"]).code, 1);
    }

    #[test]
    fn the_missing_prereq_fault_hides_its_key() {
        let mut lab = fresh_lab();
        lab.faults.push(Fault::MissingPrereq { server: "DRBTS02".into(), prereq: Prereq::Dotnet });
        assert_eq!(exec(&mut lab, "DRBTS02", &["reg", "query", NDP, "/v", "Release"]).code, 1);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", NDP, "/v", "Release"]).code, 0);
    }

    #[test]
    fn other_forms_are_unsupported() {
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "add", ADMIN, "/v", "X"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", r"HKCU\Software", "/v", "X"]).code, 9009);
    }
}
