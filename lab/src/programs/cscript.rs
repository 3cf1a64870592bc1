//! `cscript.exe //nologo <path>\RestoreConfig.vbe <saved configuration xml>` (`lab/PROTOCOL.md`,
//! "Standard Edition: `RestoreConfig.vbe`"): restores the group membership of a rebuilt Standard
//! Edition server from the saved configuration file of the failed one (docs/biztalk.md, "By edition"). With
//! `UpdateDatabase.vbs` and `UpdateRegistry.vbs` ([`super::dbrefs`]), the only scripts the lab
//! runs; any other is an unsupported command.
//!
//! It must run under the 32-bit script host (docs/biztalk.md, "Registry", the two views): `C:\Windows\SysWOW64\cscript.exe`.
//! Any other `cscript` is the 64-bit one, in which the script's COM objects cannot be created.
//! The checks run in the documented order and stop at the first failure; then the configuration
//! is applied exactly as `Configuration.exe` applies a join ([`super::configuration`]). Success
//! prints nothing, as Microsoft documents it; the failure messages are the lab's own (no public
//! copy of the script or its output was found).

use super::configuration::{self, Log, Tool};
use super::{Ctx, Output};
use crate::state::{Edition, normalise_path};

/// The 32-bit script host, the only one RestoreConfig.vbe runs under.
pub const CSCRIPT_32: &str = r"C:\Windows\SysWOW64\cscript.exe";
/// The file name of the script (in any folder).
pub const RESTORE_CONFIG: &str = "RestoreConfig.vbe";
/// The attribute of the root `Configuration` element naming the computer the file was saved on
/// (a lab convention).
pub const COMPUTER_NAME_ATTRIBUTE: &str = "ComputerName";

/// `cscript.exe <args…>`, `program` as the caller named it.
pub fn run(ctx: &mut Ctx<'_>, program: &str, args: &[String]) -> Option<Output> {
    // Failover, BizTalk side (issue 18, L2): UpdateDatabase.vbs and UpdateRegistry.vbs.
    if let Some(output) = super::dbrefs::run(ctx, program, args) {
        return Some(output);
    }
    let [nologo, script, xml_path] = args else { return None };
    let file_name = script.rsplit(['\\', '/']).next().unwrap_or(script);
    if nologo != "//nologo" || !file_name.eq_ignore_ascii_case(RESTORE_CONFIG) {
        return None;
    }
    if normalise_path(program) != normalise_path(CSCRIPT_32) {
        return Some(Output::stderr(
            1,
            format!(
                "{script}(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object\n"
            ),
        ));
    }
    if ctx.lab.edition != Edition::Standard {
        return Some(Output::stderr(
            1,
            "RestoreConfig.vbe supports BizTalk Server Standard Edition only; this computer runs \
             Enterprise Edition. Join it to the BizTalk group with the BizTalk Server Configuration tool.\n",
        ));
    }
    Some(match restore(ctx, xml_path) {
        // "should exit without displaying any errors" (Microsoft Learn): nothing at all.
        Ok(()) => Output::ok(String::new()),
        Err(message) => Output::stderr(1, format!("RestoreConfig failed: {message}\n")),
    })
}

/// Reads the saved configuration, checks it was saved on this computer, then validates and
/// applies it as a join.
fn restore(ctx: &mut Ctx<'_>, xml_path: &str) -> Result<(), String> {
    let root = configuration::read_xml(ctx, xml_path)?;
    let Some(saved_on) = root.attr(COMPUTER_NAME_ATTRIBUTE).map(str::to_owned) else {
        return Err(format!("The configuration file {xml_path} does not name the computer it was saved on."));
    };
    if !saved_on.eq_ignore_ascii_case(&ctx.server) {
        return Err(format!(
            "The configuration file was saved on computer {saved_on}, not on {}. Standard Edition \
             requires a computer with the same name.",
            ctx.server
        ));
    }
    let plan = configuration::validate_root(ctx, &root, Tool::RestoreConfig)?;
    let mut log = Log::new(ctx.now);
    configuration::apply(ctx, plan, &mut log);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_with_input, exec_without_credentials};
    use super::*;
    use crate::init::{ADMIN_KEY, fresh_lab_of};
    use crate::replace::replace;
    use crate::state::{Fault, Lab, RegValue};

    const JOIN_XML: &str = include_str!("../../tests/data/join.xml");
    const SCRIPT: &str =
        r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\RestoreConfig.vbe";
    const XML: &str = r"C:\Drover\restore-PRDBTS02.xml";

    /// The saved configuration of `computer`: the join file, naming the computer.
    fn saved(computer: &str) -> String {
        JOIN_XML.replacen("<Configuration>", &format!(r#"<Configuration ComputerName="{computer}">"#), 1)
    }

    /// A Standard Edition lab in which PRDBTS02 was replaced and its saved file written.
    fn standard_lab(xml: &str) -> Lab {
        let mut lab = fresh_lab_of(Edition::Standard);
        replace(&mut lab, "PRDBTS02", None).expect("replaced");
        let argv = ["sh", "-c", r#"cat > "$1""#, "sh", XML];
        assert_eq!(exec_with_input(&mut lab, "PRDBTS02", &argv, xml.as_bytes()).code, 0);
        lab
    }

    fn restore_config(lab: &mut Lab, program: &str) -> Output {
        exec(lab, "PRDBTS02", &[program, "//nologo", SCRIPT, XML])
    }

    #[test]
    fn a_replaced_standard_server_restores_its_membership() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        let server = &lab.servers["PRDBTS02"];
        assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBServer"), Some(&RegValue::Sz("PRDSQL01".into())));
        assert_eq!(server.reg_value(ADMIN_KEY, "MgmtDBName"), Some(&RegValue::Sz("BizTalkMgmtDb".into())));
        assert_eq!(server.service("ENTSSO").map(|s| s.account.as_str()), Some(r"CONTOSO\svc-sso"));
        assert_eq!(lab.group.members, ["PRDBTS01", "PRDBTS02"], "not listed twice");
        assert_eq!(lab.joins, ["PRDBTS02"]);
        assert_eq!(lab.group.host_instances.len(), 5, "the rows stay; their services are R6's business");

        // Again: already configured, nothing changes.
        let out = restore_config(&mut lab, r"c:\windows\syswow64\CSCRIPT.EXE");
        assert_eq!(out.code, 0, "{}", out.stderr_text());
        assert_eq!(lab.joins, ["PRDBTS02"]);
    }

    #[test]
    fn the_restore_lands_in_the_32_bit_registry_view() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        assert_eq!(restore_config(&mut lab, CSCRIPT_32).code, 0);
        let key = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
        let query = |lab: &mut Lab, view: Option<&str>| {
            let mut argv = vec!["reg", "query", key, "/v", "MgmtDBServer"];
            argv.extend(view);
            exec(lab, "PRDBTS02", &argv)
        };
        // The 64-bit reg.exe reads the 64-bit view by default: the script's writes are not there.
        assert_eq!(query(&mut lab, None).code, 1);
        let out = query(&mut lab, Some("/reg:32"));
        assert_eq!(out.code, 0);
        assert!(
            out.stdout_text().ends_with("    MgmtDBServer    REG_SZ    PRDSQL01\n\n"),
            "{}",
            out.stdout_text()
        );
    }

    #[test]
    fn without_network_credentials_the_databases_refuse_the_restore() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        let out = exec_without_credentials(&mut lab, "PRDBTS02", &[CSCRIPT_32, "//nologo", SCRIPT, XML], b"");
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                "RestoreConfig failed: Cannot connect to SQL Server PRDSQL01: Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n"
                    .to_owned()
            )
        );
        assert!(lab.joins.is_empty());
    }

    #[test]
    fn the_64_bit_script_host_cannot_run_it() {
        for program in ["cscript.exe", r"C:\Windows\System32\cscript.exe", "cscript"] {
            let mut lab = standard_lab(&saved("PRDBTS02"));
            let out = restore_config(&mut lab, program);
            assert_eq!(out.code, 1, "{program}");
            assert_eq!(
                out.stderr_text(),
                format!(
                    "{SCRIPT}(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object\n"
                )
            );
            assert!(lab.joins.is_empty());
        }
    }

    #[test]
    fn enterprise_edition_refuses_it() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        lab.edition = Edition::Enterprise;
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr_text().starts_with("RestoreConfig.vbe supports BizTalk Server Standard Edition only")
        );
        assert!(lab.servers["PRDBTS02"].reg_value(ADMIN_KEY, "MgmtDBServer").is_none());
    }

    #[test]
    fn the_file_must_name_this_computer() {
        let mut lab = standard_lab(&saved("PRDBTS01"));
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                "RestoreConfig failed: The configuration file was saved on computer PRDBTS01, not on PRDBTS02. Standard Edition requires a computer with the same name.\n".into()
            )
        );
        let mut lab = standard_lab(JOIN_XML);
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(
            out.stderr_text(),
            format!(
                "RestoreConfig failed: The configuration file {XML} does not name the computer it was saved on.\n"
            )
        );
    }

    #[test]
    fn the_join_checks_apply() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        lab.faults.push(Fault::JoinSqlUnreachable { server: "PRDSQL01".into() });
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(
            out.stderr_text(),
            "RestoreConfig failed: Cannot connect to SQL Server PRDSQL01: Login timeout expired.\n"
        );
        let unfilled = saved("PRDBTS02").replace("sso-P@ss", "@@secret:entsso-password@@");
        let mut lab = standard_lab(&unfilled);
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(out.stderr_text(), "RestoreConfig failed: The password of ENTSSO is empty.\n");
        let mut lab = standard_lab(&saved("PRDBTS02"));
        lab.servers.get_mut("PRDBTS02").map(|s| s.remove_file(XML));
        let out = restore_config(&mut lab, CSCRIPT_32);
        assert_eq!(
            out.stderr_text(),
            format!("RestoreConfig failed: The configuration file {XML} does not exist.\n")
        );
        assert!(lab.joins.is_empty());
    }

    #[test]
    fn other_scripts_and_words_are_unsupported() {
        let mut lab = standard_lab(&saved("PRDBTS02"));
        for argv in [
            vec![CSCRIPT_32, "//nologo", r"C:\x\UpdateRegistry.vbs", XML],
            vec![CSCRIPT_32, SCRIPT, XML],
            vec![CSCRIPT_32, "//nologo", SCRIPT, XML, "extra"],
            vec![CSCRIPT_32, "//NOLOGO", SCRIPT, XML],
        ] {
            assert_eq!(exec(&mut lab, "PRDBTS02", &argv).code, 9009, "{argv:?}");
        }
    }
}
