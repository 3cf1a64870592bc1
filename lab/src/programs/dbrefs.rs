//! `C:\Windows\System32\cscript.exe //nologo <Restore>\UpdateDatabase.vbs <xml>` and `…
//! UpdateRegistry.vbs <xml>` (`lab/PROTOCOL.md`, "Failover: database references, SSO and
//! processing"): the scripts that point a restored group at its new SQL Server, reading a
//! `SampleUpdateInfo.xml`-shaped file (docs/biztalk.md, "Failover activation", F6 and F7).
//!
//! `UpdateDatabase.vbs` rewrites the group's record of where its databases are (management,
//! master MessageBox, tracking, Rules Engine, SSO) from each element's old location to its new
//! one; a location that is not the old one is left alone, so a second run changes nothing.
//! `UpdateRegistry.vbs` rewrites the registry of the server it runs on (`MgmtDBServer` and
//! `MgmtDBName` in the 32-bit view where the lab keeps BizTalk's key, the ENTSSO SQL values).
//! Both succeed silently (no public copy of the scripts or their output was found); their
//! failure texts are described in PROTOCOL.md with their sources.

use super::configuration::xml::{self, Element};
use super::cscript::CSCRIPT_32;
use super::hop::ANONYMOUS_LOGIN_FAILED;
use super::{Ctx, Output};
use crate::activation::{DbLocation, UpdateDatabaseRun};
use crate::init::{ADMIN_KEY, ENTSSO_SQL_KEY};
use crate::state::{RegValue, Role, normalise_path};

/// The 64-bit script host, the only one the scripts run under.
pub const CSCRIPT_64: &str = r"C:\Windows\System32\cscript.exe";
/// BizTalk Server 2020's Restore folder.
pub const RESTORE_DIR: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore";
/// The database script.
pub const UPDATE_DATABASE: &str = "UpdateDatabase.vbs";
/// The registry script.
pub const UPDATE_REGISTRY: &str = "UpdateRegistry.vbs";
/// SQL Server's answer to a connection through SQLOLEDB under the `msoledbsql-provider` fault
/// (Microsoft Learn, "How to Restore Your Databases").
pub const PROVIDER_ERROR: &str =
    "Microsoft OLE DB Provider for SQL Server: Invalid connection string attribute";
/// The SQL client's line for a server that does not answer (the captured DBNETLIB line).
pub const NO_SQL_SERVER: &str =
    "[DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.";

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Database,
    Registry,
}

/// `cscript` with one of the two scripts, or `None` (another script: [`super::cscript`]'s).
pub fn run(ctx: &mut Ctx<'_>, program: &str, args: &[String]) -> Option<Output> {
    let [nologo, script_path, xml_path] = args else { return None };
    let script = if normalise_path(script_path)
        == normalise_path(&format!(r"{RESTORE_DIR}\{UPDATE_DATABASE}"))
    {
        Script::Database
    } else if normalise_path(script_path) == normalise_path(&format!(r"{RESTORE_DIR}\{UPDATE_REGISTRY}")) {
        Script::Registry
    } else {
        return None;
    };
    if nologo != "//nologo" {
        return None;
    }
    let fail = |message: String| Some(Output::stderr(1, format!("{script_path}(1, 1) {message}\n")));
    match normalise_path(program) {
        p if p == normalise_path(CSCRIPT_64) => {}
        // Microsoft only says the scripts must run from a 64-bit command prompt; the lab fails
        // the 32-bit host so that a plugin cannot use it (PROTOCOL.md).
        p if p == normalise_path(CSCRIPT_32) => {
            return fail("Microsoft VBScript runtime error: ActiveX component can't create object".into());
        }
        _ => return None,
    }
    let this = ctx.this();
    if this.role != Role::BiztalkRuntime || this.platform.biztalk_file_version.is_none() {
        return Some(Output::stderr(
            1,
            format!("Input Error: Can not find script file \"{script_path}\".\n"),
        ));
    }
    let Some(text) = this.file(xml_path) else {
        return fail(format!("The file {xml_path} does not exist."));
    };
    let root = match xml::parse(&String::from_utf8_lossy(text)) {
        Ok(root) if root.name == "UpdateConfiguration" => root,
        Ok(_) => return fail(format!("The file {xml_path} has no UpdateConfiguration element.")),
        Err(e) => return fail(format!("The file {xml_path} is not valid XML: {e}.")),
    };
    let moves = match Moves::read(&root) {
        Ok(moves) => moves,
        Err(e) => return fail(format!("The file {xml_path} is not valid: {e}.")),
    };
    let result = match script {
        Script::Database => update_database(ctx, &moves),
        Script::Registry => {
            update_registry(ctx, &moves);
            Ok(())
        }
    };
    match result {
        // Nothing documented is printed on success: the lab prints nothing.
        Ok(()) => Some(Output::ok("")),
        Err(message) => fail(message),
    }
}

/// A move: the old location and the new one.
type Move = (DbLocation, DbLocation);

/// The moves of the file, by element.
#[derive(Debug, Default)]
struct Moves {
    /// `<ManagementDB>`.
    management: Option<Move>,
    /// `<MessageBoxDB IsMaster="1">`.
    messagebox: Option<Move>,
    /// `<TrackingDB>`.
    tracking: Option<Move>,
    /// `<RuleEngineDB>`.
    rule_engine: Option<Move>,
    /// `<OtherDatabases><Database Name="SSO">`.
    sso: Option<Move>,
}

impl Moves {
    fn read(root: &Element) -> Result<Moves, String> {
        let one = |e: &Element| -> Result<Move, String> {
            let need = |key: &str| e.attr(key).ok_or_else(|| format!("<{}> has no {key}", e.name));
            Ok((
                DbLocation::new(need("oldDBServer")?, need("oldDBName")?),
                DbLocation::new(need("newDBServer")?, need("newDBName")?),
            ))
        };
        let mut moves = Moves::default();
        for e in &root.children {
            match e.name.as_str() {
                "ManagementDB" => moves.management = Some(one(e)?),
                "MessageBoxDB" if e.attr("IsMaster") == Some("1") => moves.messagebox = Some(one(e)?),
                "TrackingDB" => moves.tracking = Some(one(e)?),
                "RuleEngineDB" => moves.rule_engine = Some(one(e)?),
                "OtherDatabases" => {
                    for d in
                        e.children.iter().filter(|d| d.name == "Database" && d.attr("Name") == Some("SSO"))
                    {
                        moves.sso = Some(one(d)?);
                    }
                }
                _ => {}
            }
        }
        Ok(moves)
    }
}

/// Moves `location` when it is the old one; whether it did.
fn apply(location: &mut DbLocation, moved: &Option<Move>) -> bool {
    match moved {
        Some((old, new)) if location.is(&old.server, &old.name) => {
            *location = new.clone();
            true
        }
        _ => false,
    }
}

/// The database script: connects to the management database (the file's new one, else the
/// server's registry), then rewrites every location that is an element's old one.
fn update_database(ctx: &mut Ctx<'_>, moves: &Moves) -> Result<(), String> {
    if ctx.lab.msoledbsql_provider(&ctx.server) {
        return Err(PROVIDER_ERROR.into());
    }
    let registry = |value: &str| match ctx.this().reg_value(ADMIN_KEY, value) {
        Some(RegValue::Sz(s)) => s.clone(),
        _ => String::new(),
    };
    let target = match &moves.management {
        Some((_, new)) => new.clone(),
        None => DbLocation::new(&registry("MgmtDBServer"), &registry("MgmtDBName")),
    };
    if ctx.second_hop().is_err() {
        return Err(format!("Microsoft OLE DB Provider for SQL Server: {ANONYMOUS_LOGIN_FAILED}"));
    }
    if !ctx.lab.sql_reachable(&target.server) {
        return Err(format!("Microsoft OLE DB Provider for SQL Server: {NO_SQL_SERVER}"));
    }
    // A log-shipped database not yet recovered by Restore To Mark (SQL Server's error 927).
    if ctx.lab.database_state(&target.server, &target.name) == Some(crate::logshipping::DbState::Restoring) {
        return Err(format!(
            "Microsoft OLE DB Provider for SQL Server: Database '{}' cannot be opened. It is in the middle of a restore.",
            target.name
        ));
    }
    if !ctx.lab.sql_has_database(&target.server, &target.name) {
        return Err(format!(
            "Microsoft OLE DB Provider for SQL Server: Cannot open database \"{}\" requested by the login. The login failed.",
            target.name
        ));
    }
    let group = ctx.lab.group_on_mut(&target.server);
    let mut management = DbLocation::new(&group.mgmt_server, &group.mgmt_db);
    let mut sso = DbLocation::new(&group.sso_server, &group.sso_db);
    let a = &mut group.activation;
    let changed = [
        apply(&mut management, &moves.management),
        apply(&mut a.messagebox, &moves.messagebox),
        apply(&mut a.tracking, &moves.tracking),
        apply(&mut a.rule_engine, &moves.rule_engine),
        apply(&mut sso, &moves.sso),
    ]
    .into_iter()
    .filter(|c| *c)
    .count();
    (group.mgmt_server, group.mgmt_db) = (management.server, management.name);
    (group.sso_server, group.sso_db) = (sso.server, sso.name);
    let server = ctx.server.clone();
    let changed = u32::try_from(changed).unwrap_or(u32::MAX);
    group.activation.update_database_runs.push(UpdateDatabaseRun { server, changed });
    Ok(())
}

/// The registry script: this server's management database values (32-bit view) and ENTSSO SQL
/// values, each rewritten when it is the old location.
fn update_registry(ctx: &mut Ctx<'_>, moves: &Moves) {
    // Failover, WMI restart (issue 18, F9): winmgmt keeps what it read when it started.
    let read_by_wmi = ctx.lab.wmi_caches_group().then(|| ctx.wmi_mgmt_server());
    let this = ctx.this_mut();
    if this.wmi_mgmt_cache.is_none() {
        this.wmi_mgmt_cache = read_by_wmi.filter(|server| !server.is_empty());
    }
    for (key, server_value, db_value, moved) in [
        (ADMIN_KEY, "MgmtDBServer", "MgmtDBName", &moves.management),
        (ENTSSO_SQL_KEY, "Server", "Database", &moves.sso),
    ] {
        let read = |value: &str| match this.reg_value(key, value) {
            Some(RegValue::Sz(s)) => Some(s.clone()),
            _ => None,
        };
        let (Some(server), Some(db)) = (read(server_value), read(db_value)) else { continue };
        let mut location = DbLocation::new(&server, &db);
        if apply(&mut location, moved) {
            this.set_reg_value(key, server_value, RegValue::Sz(location.server));
            this.set_reg_value(key, db_value, RegValue::Sz(location.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_with_input, exec_without_credentials};
    use super::*;
    use crate::init::fresh_lab;
    use crate::state::{Fault, Lab};

    const XML: &str =
        r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\SampleUpdateInfo.xml";

    /// The whole group moving from PRDSQL01 to DRSQL01, as biztalk-common renders it.
    const WHOLE_GROUP: &str = "<UpdateConfiguration>\r\n  <MessageBoxDB oldDBName=\"BizTalkMsgBoxDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMsgBoxDb\" newDBServer=\"DRSQL01\" IsMaster=\"1\" />\r\n  <TrackingDB oldDBName=\"BizTalkDTADb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkDTADb\" newDBServer=\"DRSQL01\" />\r\n  <ManagementDB oldDBName=\"BizTalkMgmtDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMgmtDb\" newDBServer=\"DRSQL01\" />\r\n  <RuleEngineDB oldDBName=\"BizTalkRuleEngineDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkRuleEngineDb\" newDBServer=\"DRSQL01\" />\r\n  <OtherDatabases>\r\n    <Database Name=\"SSO\" oldDBName=\"SSODB\" oldDBServer=\"PRDSQL01\" newDBName=\"SSODB\" newDBServer=\"DRSQL01\" />\r\n  </OtherDatabases>\r\n</UpdateConfiguration>\r\n";

    fn script(name: &str) -> String {
        format!(r"{RESTORE_DIR}\{name}")
    }

    /// A lab in which DRBTS01 is joined to the production group (workflow B), the databases are
    /// on DRSQL01 (restored) and the file is in DRBTS01's Restore folder.
    fn restored() -> Lab {
        let mut lab = fresh_lab();
        let prod_registry = lab.servers["PRDBTS01"].registry.clone();
        let dr = lab.servers.get_mut("DRBTS01").expect("DRBTS01");
        dr.registry.extend(prod_registry.into_iter().filter(|(k, _)| k == ADMIN_KEY || k == ENTSSO_SQL_KEY));
        lab.group.members.push("DRBTS01".into());
        let dbs = ["BizTalkMgmtDb", "SSODB", "BizTalkMsgBoxDb", "BizTalkRuleEngineDb", "BizTalkDTADb"];
        lab.servers.get_mut("DRSQL01").and_then(|s| s.sql.as_mut()).expect("sql").databases =
            dbs.map(String::from).to_vec();
        online(&mut lab);
        let argv = ["sh", "-c", r#"cat > "$1""#, "sh", XML];
        assert_eq!(exec_with_input(&mut lab, "DRBTS01", &argv, WHOLE_GROUP.as_bytes()).code, 0);
        lab
    }

    /// Every log-shipped database of DRSQL01 recovered, as Restore To Mark leaves them.
    fn online(lab: &mut Lab) {
        for (_, state) in lab.log_shipping.destinations.values_mut().flat_map(|d| d.databases.iter_mut()) {
            *state = crate::logshipping::DbState::Online;
        }
    }

    #[test]
    fn a_database_still_restoring_cannot_be_opened() {
        let mut lab = restored();
        for (_, state) in lab.log_shipping.destinations.values_mut().flat_map(|d| d.databases.iter_mut()) {
            *state = crate::logshipping::DbState::Restoring;
        }
        let out = run_script(&mut lab, "DRBTS01", UPDATE_DATABASE);
        assert!(
            out.stderr_text()
                .contains("Database 'BizTalkMgmtDb' cannot be opened. It is in the middle of a restore."),
            "{}",
            out.stderr_text()
        );
        assert!(lab.group.activation.update_database_runs.is_empty());
    }

    fn run_script(lab: &mut Lab, on: &str, name: &str) -> Output {
        exec(lab, on, &[CSCRIPT_64, "//nologo", &script(name), XML])
    }

    fn reg(lab: &Lab, server: &str, key: &str, value: &str) -> Option<String> {
        match lab.servers[server].reg_value(key, value) {
            Some(RegValue::Sz(s)) => Some(s.clone()),
            _ => None,
        }
    }

    #[test]
    fn update_database_moves_every_location_once() {
        let mut lab = restored();
        let out = run_script(&mut lab, "DRBTS01", UPDATE_DATABASE);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        let g = &lab.group;
        assert_eq!((g.mgmt_server.as_str(), g.sso_server.as_str()), ("DRSQL01", "DRSQL01"));
        assert!(g.activation.messagebox.is("DRSQL01", "BizTalkMsgBoxDb"));
        assert!(g.activation.tracking.is("DRSQL01", "BizTalkDTADb"));
        assert!(g.activation.rule_engine.is("DRSQL01", "BizTalkRuleEngineDb"));
        assert_eq!(
            reg(&lab, "DRBTS01", ADMIN_KEY, "MgmtDBServer").as_deref(),
            Some("PRDSQL01"),
            "registry untouched"
        );

        // A second run finds nothing to change, and says so nowhere but in the lab's record.
        let before = lab.group.clone();
        assert_eq!(run_script(&mut lab, "DRBTS01", UPDATE_DATABASE).code, 0);
        let runs: Vec<u32> = lab.group.activation.update_database_runs.iter().map(|r| r.changed).collect();
        assert_eq!(runs, [5, 0]);
        assert_eq!(lab.group.mgmt_server, before.mgmt_server);
    }

    #[test]
    fn update_registry_repoints_this_server_only() {
        let mut lab = restored();
        let out = run_script(&mut lab, "DRBTS01", UPDATE_REGISTRY);
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        assert_eq!(reg(&lab, "DRBTS01", ADMIN_KEY, "MgmtDBServer").as_deref(), Some("DRSQL01"));
        assert_eq!(reg(&lab, "DRBTS01", ADMIN_KEY, "MgmtDBName").as_deref(), Some("BizTalkMgmtDb"));
        assert_eq!(reg(&lab, "DRBTS01", ENTSSO_SQL_KEY, "Server").as_deref(), Some("DRSQL01"));
        assert_eq!(reg(&lab, "PRDBTS01", ADMIN_KEY, "MgmtDBServer").as_deref(), Some("PRDSQL01"));
        assert_eq!(lab.group.mgmt_server, "PRDSQL01", "the group's record is UpdateDatabase's");
        // An unjoined server has nothing to re-point; the script still succeeds.
        let argv = ["sh", "-c", r#"cat > "$1""#, "sh", XML];
        assert_eq!(exec_with_input(&mut lab, "DRBTS02", &argv, WHOLE_GROUP.as_bytes()).code, 0);
        assert_eq!(run_script(&mut lab, "DRBTS02", UPDATE_REGISTRY).code, 0);
        assert!(reg(&lab, "DRBTS02", ADMIN_KEY, "MgmtDBServer").is_none());
    }

    // Failover, WMI restart (issue 18, F9)
    #[test]
    fn under_wmi_caches_group_winmgmt_keeps_what_it_read_before_update_registry() {
        let mut lab = restored();
        assert_eq!(run_script(&mut lab, "DRBTS01", UPDATE_REGISTRY).code, 0);
        assert_eq!(lab.servers["DRBTS01"].wmi_mgmt_cache, None, "off by default");
        let mut lab = restored();
        lab.faults.push(Fault::WmiCachesGroup);
        assert_eq!(run_script(&mut lab, "DRBTS01", UPDATE_REGISTRY).code, 0);
        assert_eq!(reg(&lab, "DRBTS01", ADMIN_KEY, "MgmtDBServer").as_deref(), Some("DRSQL01"));
        assert_eq!(lab.servers["DRBTS01"].wmi_mgmt_cache.as_deref(), Some("PRDSQL01"));
        assert_eq!(run_script(&mut lab, "DRBTS01", UPDATE_REGISTRY).code, 0);
        assert_eq!(lab.servers["DRBTS01"].wmi_mgmt_cache.as_deref(), Some("PRDSQL01"), "still what it read");
    }

    #[test]
    fn the_32_bit_host_and_other_servers_fail() {
        let mut lab = restored();
        let before = lab.clone();
        let out = exec(&mut lab, "DRBTS01", &[CSCRIPT_32, "//nologo", &script(UPDATE_DATABASE), XML]);
        assert_eq!(
            (out.code, out.stderr_text()),
            (
                1,
                format!(
                    "{}(1, 1) Microsoft VBScript runtime error: ActiveX component can't create object\n",
                    script(UPDATE_DATABASE)
                )
            )
        );
        let out = run_script(&mut lab, "DRSSO01", UPDATE_REGISTRY);
        assert_eq!(
            out.stderr_text(),
            format!("Input Error: Can not find script file \"{}\".\n", script(UPDATE_REGISTRY))
        );
        assert_eq!(lab, before);
        for argv in [
            vec!["cscript", "//nologo", &script(UPDATE_DATABASE), XML],
            vec![CSCRIPT_64, &script(UPDATE_DATABASE), XML],
            vec![CSCRIPT_64, "//nologo", r"C:\Temp\UpdateDatabase.vbs", XML],
        ] {
            assert_eq!(exec(&mut lab, "DRBTS01", &argv).code, 9009, "{argv:?}");
        }
    }

    #[test]
    fn the_provider_fault_and_an_unreachable_database_change_nothing() {
        let mut lab = restored();
        lab.faults.push(Fault::MsoledbsqlProvider { server: "DRBTS01".into() });
        let before = lab.clone();
        let out = run_script(&mut lab, "DRBTS01", UPDATE_DATABASE);
        assert_eq!(
            (out.code, out.stderr_text()),
            (1, format!("{}(1, 1) {PROVIDER_ERROR}\n", script(UPDATE_DATABASE)))
        );
        assert!(
            out.stderr_text().contains("SQL Server: Invalid connection string attribute"),
            "the documented text"
        );
        assert_eq!(lab, before);

        let mut lab = restored();
        lab.faults.push(Fault::SqlUnreachable { server: "DRSQL01".into() });
        let out = run_script(&mut lab, "DRBTS01", UPDATE_DATABASE);
        assert!(out.stderr_text().contains(NO_SQL_SERVER), "{}", out.stderr_text());
        let mut lab = restored();
        lab.servers.get_mut("DRSQL01").and_then(|s| s.sql.as_mut()).expect("sql").databases.clear();
        let out = run_script(&mut lab, "DRBTS01", UPDATE_DATABASE);
        assert!(
            out.stderr_text().contains("Cannot open database \"BizTalkMgmtDb\""),
            "{}",
            out.stderr_text()
        );
        let mut lab = restored();
        let argv = [CSCRIPT_64, "//nologo", &script(UPDATE_DATABASE), XML];
        let out = exec_without_credentials(&mut lab, "DRBTS01", &argv, b"");
        assert!(out.stderr_text().contains("ANONYMOUS LOGON"), "{}", out.stderr_text());
        assert!(lab.group.activation.update_database_runs.is_empty());
    }

    #[test]
    fn a_missing_or_broken_file_fails() {
        let mut lab = restored();
        let out = exec(&mut lab, "DRBTS02", &[CSCRIPT_64, "//nologo", &script(UPDATE_DATABASE), XML]);
        assert!(out.stderr_text().contains("does not exist"), "{}", out.stderr_text());
        let argv = ["sh", "-c", r#"cat > "$1""#, "sh", XML];
        let broken = "<UpdateConfiguration><TrackingDB oldDBName=\"x\"/></UpdateConfiguration>";
        assert_eq!(exec_with_input(&mut lab, "DRBTS02", &argv, broken.as_bytes()).code, 0);
        let out = exec(&mut lab, "DRBTS02", &[CSCRIPT_64, "//nologo", &script(UPDATE_REGISTRY), XML]);
        assert!(out.stderr_text().contains("<TrackingDB> has no oldDBServer"), "{}", out.stderr_text());
    }
}
