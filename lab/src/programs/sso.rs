//! Enterprise SSO's command-line tools (`lab/PROTOCOL.md`, "Failover: database references, SSO
//! and processing"): `ssomanage -displaydb`, `ssomanage -updatedb <file>` (the master secret
//! server named by a `<sso><globalInfo><secretServer>` file), `ssoconfig -setDB <server>
//! <database>` (where this SSO server's database is) and `ssoconfig -restoreSecret <file>`, whose
//! password is the first line of standard input (docs/biztalk.md, "Failover activation", F8).
//!
//! Both tools talk to the SSO service of the server they run on, which talks to the SSO database
//! its registry names (`HKLM\SOFTWARE\Microsoft\ENTSSO\SQL`): production's record of the group,
//! or the copy Restore To Mark recovered on a DR SQL Server ([`crate::state::Lab::group_on`]);
//! the secret server is that record's [`crate::state::Group::master_secret_server`].
//! [`restore_secret`] is shared with the PowerShell route (`ISSOConfigSS.RestoreSecret`).

use super::configuration::no_sso_server;
use super::configuration::xml;
use super::dbrefs::NO_SQL_SERVER;
use super::{Ctx, Output};
use crate::init::ENTSSO_SQL_KEY;
use crate::state::{RegValue, ServiceState, password_sha256};

/// ssomanage's first line: it uses the SSO service of this computer (Microsoft's affiliate
/// application samples).
pub const USING_THIS_COMPUTER: &str = "Using SSO server on this computer";
/// The line of a completed operation ("How to Recover Enterprise Single Sign-On").
pub const COMPLETED: &str = "The operation completed successfully.";
/// ENTSSO event 10511's text: this server has no SSO database in its registry.
pub const NO_DSN: &str = "The SQL Server and SSO database names were not found in the registry. Use the SSO administration tools to configure these values.";
/// What the lab's master secret backups start with (`crate::init`'s backup of PRDSSO01).
const BACKUP_MAGIC: &[u8] = b"ENTSSO master secret backup";

/// `ssomanage <args…>`.
pub fn ssomanage(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    match args {
        [display] if display == "-displaydb" => Some(answer(display_db(ctx))),
        [update, file] if update == "-updatedb" => Some(answer(update_db(ctx, file))),
        _ => None,
    }
}

/// `ssoconfig <args…>`.
pub fn ssoconfig(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    match args {
        [set, server, db] if set == "-setDB" => Some(answer(set_db(ctx, server, db))),
        [restore, file] if restore == "-restoreSecret" => {
            let mut input = Vec::new();
            let password = match ctx.stdin.read_to_end(&mut input) {
                Ok(_) => first_line(&input),
                Err(e) => return Some(Output::stderr(1, format!("ERROR: {e}\n"))),
            };
            Some(answer(restore_secret(ctx, file, &password).map(|()| format!("{COMPLETED}\r\n"))))
        }
        _ => None,
    }
}

/// The answer to a typed line at the prompt: the first line of `input`, without its line end.
fn first_line(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    text.split('\n').next().unwrap_or_default().trim_end_matches('\r').to_owned()
}

/// Exit 0 with the text, or exit 1 with the error on stderr.
fn answer(result: Result<String, String>) -> Output {
    match result {
        Ok(text) => Output::ok(text),
        Err(message) => Output::stderr(1, format!("{message}\r\n")),
    }
}

/// The SSO database this server's registry names, checked: the service runs and reaches it.
fn connect(ctx: &Ctx<'_>) -> Result<(String, String), String> {
    let value = |name: &str| match ctx.this().reg_value(ENTSSO_SQL_KEY, name) {
        Some(RegValue::Sz(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let (Some(server), Some(db)) = (value("Server"), value("Database")) else {
        return Err(format!("ERROR: {NO_DSN}"));
    };
    let running = ctx.this().service("ENTSSO").is_some_and(|s| s.state == ServiceState::Running)
        && !ctx.lab.sso_stopped(&ctx.server);
    if !running {
        return Err(no_sso_server(&ctx.server));
    }
    if !ctx.lab.sql_reachable(&server) || !ctx.lab.sql_has_database(&server, &db) {
        return Err(format!("ERROR: {NO_SQL_SERVER}"));
    }
    Ok((server, db))
}

/// `ssomanage -displaydb`: the database and its global information, by Microsoft's labels.
fn display_db(ctx: &Ctx<'_>) -> Result<String, String> {
    let (server, db) = connect(ctx)?;
    let secret = ctx.lab.group_on(&server).master_secret_server.clone().unwrap_or_default();
    let domain = &ctx.lab.domain;
    Ok(format!(
        "{USING_THIS_COMPUTER}\r\n\r\nSQL Server: {server}\r\nSingle Sign-On database: {db}\r\n\
         Single Sign-On Secret Server name: {secret}\r\n\
         Single Sign-On Administrators account: {domain}\\SSO Administrators\r\n\
         Single Sign-On Affiliate Administrators account: {domain}\\SSO Affiliate Administrators\r\n"
    ))
}

/// `ssomanage -updatedb <file>`: the file's global information into the SSO database. Only the
/// secret server is kept by the lab; the administrators element is refused away from the master
/// secret server, as Microsoft warns.
fn update_db(ctx: &mut Ctx<'_>, file: &str) -> Result<String, String> {
    let (sql, _) = connect(ctx)?;
    let text = ctx.this().file(file).ok_or_else(|| format!("ERROR: The file {file} does not exist."))?;
    let root = xml::parse(&String::from_utf8_lossy(text))
        .map_err(|e| format!("ERROR: The file {file} is not valid XML: {e}."))?;
    let info = (root.name == "sso").then(|| root.child("globalInfo")).flatten();
    let Some(info) = info else {
        return Err(format!("ERROR: The file {file} has no <sso><globalInfo> element."));
    };
    let on_master = ctx
        .lab
        .group_on(&sql)
        .master_secret_server
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case(&ctx.server));
    if info.child("ssoAdminAccount").is_some() && !on_master {
        return Err("ERROR: The SSO administrator accounts can only be changed on the master secret server."
            .to_owned());
    }
    let secret_server = info.child_text("secretServer");
    if !secret_server.is_empty() {
        let name = ctx.lab.server_name(secret_server).unwrap_or_else(|| secret_server.to_owned());
        ctx.lab.group_on_mut(&sql).master_secret_server = Some(name);
    }
    Ok(format!("{USING_THIS_COMPUTER}\r\n\r\n{COMPLETED}\r\n"))
}

/// `ssoconfig -setDB <server> <database>`: this SSO server's database, in its registry.
fn set_db(ctx: &mut Ctx<'_>, server: &str, db: &str) -> Result<String, String> {
    if ctx.this().service("ENTSSO").is_none() {
        return Err("ERROR: Enterprise Single Sign-On is not installed on this computer.".to_owned());
    }
    let this = ctx.this_mut();
    this.set_reg_value(ENTSSO_SQL_KEY, "Server", RegValue::Sz(server.to_owned()));
    this.set_reg_value(ENTSSO_SQL_KEY, "Database", RegValue::Sz(db.to_owned()));
    Ok(format!("{COMPLETED}\r\n"))
}

/// Restores the master secret from `file` on this server with `password`: the server must be
/// the master secret server, its SSO service running, the file a backup, and the password the
/// backup's (checked against the lab's record). The server then holds the secret.
pub fn restore_secret(ctx: &mut Ctx<'_>, file: &str, password: &str) -> Result<(), String> {
    let (sql, _) = connect(ctx)?;
    let group = ctx.lab.group_on(&sql);
    let on_master =
        group.master_secret_server.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&ctx.server));
    if !on_master {
        return Err(format!("ERROR: {} is not the master secret server.", ctx.server));
    }
    let bytes = ctx.this().file(file).ok_or_else(|| format!("ERROR: The file {file} does not exist."))?;
    if !bytes.starts_with(BACKUP_MAGIC) {
        return Err(format!("ERROR: The file {file} is not a master secret backup."));
    }
    if password_sha256(password) != ctx.lab.group_on(&sql).activation.secret_backup_password_sha256 {
        return Err("ERROR: The password of the backup file is not correct.".to_owned());
    }
    if !ctx.lab.holds_secret(&ctx.server) {
        let server = ctx.server.clone();
        ctx.lab.group.activation.secret_holders.push(server);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_with_input};
    use super::*;
    use crate::activation::SECRET_BACKUP_PASSWORD;
    use crate::init::{SECRET_BACKUP, fresh_lab};
    use crate::state::{Lab, StartType};

    const SSOMANAGE: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\ssomanage.exe";
    const SSOCONFIG: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\ssoconfig.exe";
    const BACKUP: &str = r"C:\Drover\SSOSecret.bak";
    const SECRET_FILE: &str = r"C:\Drover\secret-server.xml";

    /// DRSSO01 joined to the SSO system on DRSQL01 (restored), ENTSSO running, the backup and
    /// the secret-server file copied to it.
    fn dr() -> Lab {
        let mut lab = fresh_lab();
        lab.servers
            .get_mut("DRSQL01")
            .and_then(|s| s.sql.as_mut())
            .expect("sql")
            .databases
            .push("SSODB".into());
        let backup = lab.servers["PRDSSO01"].file(SECRET_BACKUP).expect("backup").to_vec();
        let dr = lab.servers.get_mut("DRSSO01").expect("DRSSO01");
        dr.set_reg_value(ENTSSO_SQL_KEY, "Server", RegValue::Sz("DRSQL01".into()));
        dr.set_reg_value(ENTSSO_SQL_KEY, "Database", RegValue::Sz("SSODB".into()));
        let entsso = dr.service_mut("ENTSSO").expect("ENTSSO");
        (entsso.start_type, entsso.state) = (StartType::Auto, ServiceState::Running);
        dr.write_file(BACKUP, backup);
        dr.write_file(
            SECRET_FILE,
            b"<sso>\r\n  <globalInfo>\r\n    <secretServer>DRSSO01</secretServer>\r\n  </globalInfo>\r\n</sso>\r\n".to_vec(),
        );
        lab
    }

    #[test]
    fn promoting_the_dr_sso_server_and_restoring_the_secret() {
        let mut lab = dr();
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-displaydb"]);
        assert_eq!(
            out.stdout_text(),
            "Using SSO server on this computer\r\n\r\nSQL Server: DRSQL01\r\nSingle Sign-On database: SSODB\r\nSingle Sign-On Secret Server name: PRDSSO01\r\nSingle Sign-On Administrators account: CONTOSO\\SSO Administrators\r\nSingle Sign-On Affiliate Administrators account: CONTOSO\\SSO Affiliate Administrators\r\n"
        );
        // Not the master secret server yet: restoring is refused.
        let argv = [SSOCONFIG, "-restoreSecret", BACKUP];
        let input = format!("{SECRET_BACKUP_PASSWORD}\r\n");
        assert_eq!(exec_with_input(&mut lab, "DRSSO01", &argv, input.as_bytes()).code, 1);
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-updatedb", SECRET_FILE]);
        assert_eq!(
            (out.code, out.stdout_text()),
            (0, "Using SSO server on this computer\r\n\r\nThe operation completed successfully.\r\n".into())
        );
        assert_eq!(lab.group.master_secret_server.as_deref(), Some("DRSSO01"));
        assert!(!lab.holds_secret("DRSSO01"), "named, not holding it yet");

        let wrong = exec_with_input(&mut lab, "DRSSO01", &argv, b"guess\r\n");
        assert_eq!(
            (wrong.code, wrong.stderr_text()),
            (1, "ERROR: The password of the backup file is not correct.\r\n".into())
        );
        assert!(!lab.holds_secret("DRSSO01"));
        let out = exec_with_input(&mut lab, "DRSSO01", &argv, input.as_bytes());
        assert_eq!((out.code, out.stdout_text()), (0, "The operation completed successfully.\r\n".into()));
        assert!(lab.holds_secret("DRSSO01"));
    }

    #[test]
    fn the_administrators_element_fails_away_from_the_master() {
        let mut lab = dr();
        let with_admins = "<sso><globalInfo><ssoAdminAccount>CONTOSO\\SSO Administrators</ssoAdminAccount><secretServer>DRSSO01</secretServer></globalInfo></sso>";
        lab.servers
            .get_mut("DRSSO01")
            .expect("DRSSO01")
            .write_file(SECRET_FILE, with_admins.as_bytes().to_vec());
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-updatedb", SECRET_FILE]);
        assert_eq!(out.code, 1);
        assert_eq!(lab.group.master_secret_server.as_deref(), Some("PRDSSO01"));
    }

    #[test]
    fn the_sso_service_and_database_must_answer() {
        let mut lab = dr();
        lab.servers.get_mut("DRSSO01").and_then(|s| s.service_mut("ENTSSO")).expect("ENTSSO").state =
            ServiceState::Stopped;
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-displaydb"]);
        assert!(
            out.stderr_text().starts_with("0xC0002A0F : Could not contact the SSO server 'DRSSO01'."),
            "{}",
            out.stderr_text()
        );
        let mut lab = dr();
        lab.faults.push(crate::state::Fault::SqlUnreachable { server: "DRSQL01".into() });
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-displaydb"]);
        assert_eq!(out.stderr_text(), format!("ERROR: {NO_SQL_SERVER}\r\n"));
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-displaydb"]);
        assert_eq!(out.stderr_text(), format!("ERROR: {NO_DSN}\r\n"));
        assert_eq!(exec(&mut lab, "DRSSO01", &[SSOMANAGE, "-listapps"]).code, 9009);
    }

    #[test]
    fn set_db_repoints_an_sso_server_without_update_registry() {
        let mut lab = fresh_lab();
        let out = exec(&mut lab, "DRSSO01", &[SSOCONFIG, "-setDB", "DRSQL01", "SSODB"]);
        assert_eq!((out.code, out.stdout_text()), (0, "The operation completed successfully.\r\n".into()));
        assert_eq!(
            lab.servers["DRSSO01"].reg_value(ENTSSO_SQL_KEY, "Server"),
            Some(&RegValue::Sz("DRSQL01".into()))
        );
        assert_eq!(
            exec(&mut lab, "DRSQL01", &[SSOCONFIG, "-setDB", "DRSQL01", "SSODB"]).code,
            1,
            "no SSO there"
        );
    }

    #[test]
    fn the_password_is_the_first_line() {
        assert_eq!(first_line(b"\xef\xbb\xbfpw\r\nrest"), "pw");
        assert_eq!(first_line(b"pw"), "pw");
        assert_eq!(first_line(b""), "");
    }
}
