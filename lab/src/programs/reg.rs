//! `reg query "<key>" /v <value> [/reg:32|/reg:64]` (`lab/PROTOCOL.md`, "Registry"): one value
//! of the server's `HKLM` registry, printed as `reg.exe` does. The `missing-prereq` fault hides
//! the .NET, VC++ and OLE DB keys of its server. BizTalk's `ProductEdition` is the edition the
//! lab gives the server (the group's, or the `installed-edition` fault's). Other `reg`
//! operations are not emulated.
//!
//! The lab keeps keys as they are stored on a 64-bit server, both registry views in one tree: a
//! 32-bit program's `SOFTWARE\<rest>` is `SOFTWARE\WOW6432Node\<rest>` ([`in_32_bit_view`]).
//! `reg` is the 64-bit one (the lab's hosts are 64-bit): it reads the key as written, or, with
//! `/reg:32`, the key of the 32-bit view, and prints the key it read.

use super::{Ctx, Output};
use crate::init::{NDP_KEY, OLEDB_KEY, VC_X64_KEY, VC_X86_KEY};
use crate::state::{Prereq, RegValue};

/// BizTalk's product key as stored (32-bit view), where setup records `ProductEdition`.
pub const PRODUCT_KEY: &str = r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0";
/// The edition BizTalk setup installed (Microsoft Learn, "What Version of BizTalk Server Do I
/// Have?"): `Enterprise`, `Standard`, `Developer` or `Branch`.
pub const PRODUCT_EDITION: &str = "ProductEdition";

const NOT_FOUND: &str = "ERROR: The system was unable to find the specified registry key or value.\n";

/// The key a 32-bit program reaches when it names `key` (without the hive): `SOFTWARE\<rest>`
/// is redirected to `SOFTWARE\WOW6432Node\<rest>` (Microsoft Learn, "Registry Redirector");
/// other keys, and keys already below `WOW6432Node`, are the same in both views.
pub fn in_32_bit_view(key: &str) -> String {
    let Some(rest) = key.get(..9).filter(|head| head.eq_ignore_ascii_case(r"SOFTWARE\")).map(|_| &key[9..])
    else {
        return key.to_owned();
    };
    let already = rest.get(..12).is_some_and(|head| head.eq_ignore_ascii_case("WOW6432Node\\"));
    if already { key.to_owned() } else { format!(r"SOFTWARE\WOW6432Node\{rest}") }
}

/// `reg query <key> /v <value>`, with `/reg:32` or `/reg:64` after it or not.
pub fn run(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let (query, key, v, value, view_32) = match args {
        [query, key, v, value] => (query, key, v, value, false),
        [query, key, v, value, view] if view == "/reg:32" || view == "/reg:64" => {
            (query, key, v, value, view == "/reg:32")
        }
        _ => return None,
    };
    if query != "query" || v != "/v" {
        return None;
    }
    let key = key.strip_prefix(r"HKLM\")?;
    let key = if view_32 { in_32_bit_view(key) } else { key.to_owned() };
    let key = key.as_str();
    let hidden = prereq_of(key).is_some_and(|p| ctx.lab.prereq_missing(&ctx.server, p));
    let edition = product_edition(ctx, key, value);
    let found = if hidden { None } else { edition.as_ref().or_else(|| ctx.this().reg_value(key, value)) };
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

/// `ProductEdition` of a server with BizTalk installed: the edition the lab says it has
/// ([`crate::state::Lab::installed_edition`]).
fn product_edition(ctx: &Ctx<'_>, key: &str, value: &str) -> Option<RegValue> {
    let installed = ctx.this().reg_value(crate::init::ENVIRONMENT_KEY, "BTSINSTALLPATH").is_some();
    (installed && key.eq_ignore_ascii_case(PRODUCT_KEY) && value.eq_ignore_ascii_case(PRODUCT_EDITION))
        .then(|| RegValue::Sz(ctx.lab.installed_edition(&ctx.server)))
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

    use super::NOT_FOUND;

    const ADMIN: &str = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
    const NDP: &str = r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full";

    #[test]
    fn a_string_value_in_the_32_bit_view() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "PRDBTS01", &["reg", "query", ADMIN, "/v", "MgmtDBServer", "/reg:32"]);
        assert_eq!(out.code, 0);
        assert_eq!(
            out.stdout_text(),
            "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    PRDSQL01\n\n"
        );
        let wow = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration";
        assert_eq!(
            exec(&mut lab, "PRDBTS01", &["reg", "query", wow, "/v", "MgmtDBServer"]),
            out,
            "the same key"
        );
    }

    #[test]
    fn biztalks_key_is_not_in_the_64_bit_view() {
        // The 32-bit Configuration.exe wrote it: the 64-bit reg (no switch, or /reg:64) misses it.
        let mut lab = fresh_lab();
        for argv in [
            vec!["reg", "query", ADMIN, "/v", "MgmtDBServer"],
            vec!["reg", "query", ADMIN, "/v", "MgmtDBServer", "/reg:64"],
        ] {
            let out = exec(&mut lab, "PRDBTS01", &argv);
            assert_eq!((out.code, out.stderr_text()), (1, NOT_FOUND.to_owned()), "{argv:?}");
        }
    }

    #[test]
    fn the_32_bit_view_redirects_software_only() {
        assert_eq!(super::in_32_bit_view(r"SOFTWARE\Microsoft\X"), r"SOFTWARE\WOW6432Node\Microsoft\X");
        assert_eq!(super::in_32_bit_view(r"software\wow6432node\X"), r"software\wow6432node\X");
        assert_eq!(super::in_32_bit_view(r"SYSTEM\CurrentControlSet\X"), r"SYSTEM\CurrentControlSet\X");
        // The .NET key exists in the 64-bit view only in the lab.
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", NDP, "/v", "Release", "/reg:32"]).code, 1);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", NDP, "/v", "Release", "/reg:64"]).code, 0);
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
        let out = exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN, "/v", "MgmtDBServer", "/reg:32"]);
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
    fn the_product_edition_is_the_groups_unless_another_is_installed() {
        let mut lab = fresh_lab();
        let argv = [
            "reg",
            "query",
            r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0",
            "/v",
            "ProductEdition",
            "/reg:32",
        ];
        let out = exec(&mut lab, "DRBTS01", &argv);
        assert_eq!(
            out.stdout_text(),
            "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\n    ProductEdition    REG_SZ    Enterprise\n\n"
        );
        lab.faults.push(Fault::InstalledEdition { server: "DRBTS01".into(), edition: "Developer".into() });
        assert!(exec(&mut lab, "DRBTS01", &argv).stdout_text().ends_with("REG_SZ    Developer\n\n"));
        assert!(exec(&mut lab, "DRBTS02", &argv).stdout_text().ends_with("REG_SZ    Enterprise\n\n"));
        lab.edition = crate::state::Edition::Standard;
        assert!(exec(&mut lab, "DRBTS02", &argv).stdout_text().ends_with("REG_SZ    Standard\n\n"));
    }

    #[test]
    fn other_forms_are_unsupported() {
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "add", ADMIN, "/v", "X"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", r"HKCU\Software", "/v", "X"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN, "/v", "X", "/reg:16"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["reg", "query", ADMIN, "/reg:32", "/v", "X"]).code, 9009);
    }
}
