//! Enterprise SSO at the DR site (docs/biztalk.md, "Failover activation", F8): which server is
//! the master secret server (`ssomanage -updatedb` with a `<secretServer>`-only file, read back
//! with `ssomanage -displaydb`), where an SSO server's database is (`ssoconfig -setDB`), and the
//! restore of the master secret on the new master secret server, its password always on
//! standard input, never on a command line (`lab/PROTOCOL.md`, "Failover: database references,
//! SSO and processing").
//!
//! Builds command lines, files and scripts and reads the answers; nothing here runs anything.

use crate::powershell;

/// Enterprise SSO's installation folder ("How to Move the Master Secret Server": `<drive>:\Program
/// Files\Common Files\Enterprise Single Sign-On`).
pub const SSO_DIR: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On";
/// The Windows service of Enterprise SSO.
pub const SERVICE: &str = "ENTSSO";
/// The line `ssomanage` and `ssoconfig` print when an operation succeeded ("How to Recover
/// Enterprise Single Sign-On" for `ssoconfig -restoreSecret`; "Using SSO server on this
/// computer. The operation completed successfully." for `ssomanage` in Microsoft's affiliate
/// application samples).
pub const COMPLETED: &str = "The operation completed successfully";
/// ENTSSO's code when the SSO service cannot be reached (`ENTSSO_E_NO_SSO_SERVER`, "Single
/// Sign-On: Event 10767").
pub const NO_SSO_SERVER: &str = "0xC0002A0F";

/// `<SSO_DIR>\ssomanage.exe`.
pub fn ssomanage() -> String {
    format!(r"{SSO_DIR}\ssomanage.exe")
}

/// `<SSO_DIR>\ssoconfig.exe`.
pub fn ssoconfig() -> String {
    format!(r"{SSO_DIR}\ssoconfig.exe")
}

/// The argv of `ssomanage -updatedb <file>` ("How to Update the SSO Database").
pub fn update_db_argv(file: &str) -> Vec<String> {
    vec![ssomanage(), "-updatedb".into(), file.into()]
}

/// The argv of `ssomanage -displaydb` ("How to Display the SSO Database Information").
pub fn display_db_argv() -> Vec<String> {
    vec![ssomanage(), "-displaydb".into()]
}

/// The argv of `ssoconfig -setDB <sql server> <database>`: where this SSO server's database is
/// (the registry values `HKLM\SOFTWARE\Microsoft\ENTSSO\SQL` `Server` and `Database`; "Single
/// Sign-On: Event 10511" names the option). For a master secret server that is not a BizTalk
/// runtime, which has no `UpdateRegistry.vbs`.
pub fn set_db_argv(sql_server: &str, database: &str) -> Vec<String> {
    vec![ssoconfig(), "-setDB".into(), sql_server.into(), database.into()]
}

/// The argv of `ssoconfig -restoreSecret <backup file>` ("How to Restore the Master Secret").
/// The tool asks for the backup's password; send it as standard input ([`password_stdin`]),
/// one line.
pub fn restore_secret_argv(backup_file: &str) -> Vec<String> {
    vec![ssoconfig(), "-restoreSecret".into(), backup_file.into()]
}

/// The file that names the new master secret server, **and nothing else**: with the SSO
/// Administrators element, `ssomanage -updatedb` fails when run from a computer that is not the
/// master secret server ("How to Change the Master Secret Server").
pub fn secret_server_file(server: &str) -> String {
    format!(
        "<sso>\r\n  <globalInfo>\r\n    <secretServer>{}</secretServer>\r\n  </globalInfo>\r\n</sso>\r\n",
        quick_xml::escape::escape(server)
    )
}

/// The class id of `SSOConfigOM`, the COM class of `ISSOConfigSS` (MIDL's `ssoconfigom.h`:
/// `class DECLSPEC_UUID("2A40B78A-5C0B-4f39-A2CB-6D9AF29ECA37") SSOConfigOM`).
pub const SSO_CONFIG_OM_CLSID: &str = "2A40B78A-5C0B-4f39-A2CB-6D9AF29ECA37";

/// The PowerShell script that restores the master secret from `backup_file` through
/// `ISSOConfigSS.RestoreSecret(restoreFile, filePassword)` (Microsoft Learn's COM reference),
/// the password read whole from standard input ([`crate::wmi::READ_PASSWORD`]): no prompt, and
/// the password is never on a command line. Run it on the master secret server.
pub fn restore_secret_script(backup_file: &str) -> String {
    format!(
        "{}; {}; $ss = [Activator]::CreateInstance([Type]::GetTypeFromCLSID([Guid]'{SSO_CONFIG_OM_CLSID}')); $ss.RestoreSecret({}, $password)",
        crate::wmi::STOP_ON_ERROR,
        crate::wmi::READ_PASSWORD,
        powershell::single_quoted(backup_file)
    )
}

/// The standard input that carries the backup's password: a reference to the secret
/// `password_secret`, which the host fills in on the way to the target. For
/// [`restore_secret_script`] it is the whole input; `ssoconfig -restoreSecret` reads it as its
/// answer to the prompt.
pub fn password_stdin(password_secret: &str) -> Vec<u8> {
    crate::wmi::password_stdin(password_secret)
}

/// What `ssomanage -displaydb` says, by the labels of "How to Display the SSO Database
/// Information".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsoDatabase {
    /// `SQL Server`.
    pub sql_server: String,
    /// `Single Sign-On database`.
    pub database: String,
    /// `Single Sign-On Secret Server name`.
    pub secret_server: String,
}

/// Reads `ssomanage -displaydb`: `<label>: <value>` lines with Microsoft's labels; `None` when
/// any of the three is missing (another layout, a localised Windows: an operator reads it).
pub fn parse_display_db(stdout: &str) -> Option<SsoDatabase> {
    let value = |label: &str| {
        stdout.lines().find_map(|line| {
            let (l, v) = line.split_once(':')?;
            (l.trim() == label).then(|| v.trim().to_owned())
        })
    };
    Some(SsoDatabase {
        sql_server: value("SQL Server")?,
        database: value("Single Sign-On database")?,
        secret_server: value("Single Sign-On Secret Server name")?,
    })
}

/// Whether an answer says the operation completed ([`COMPLETED`]).
pub fn completed(stdout: &str) -> bool {
    stdout.contains(COMPLETED)
}

/// Whether an answer is ENTSSO's "Could not contact the SSO server" ([`NO_SSO_SERVER`]).
pub fn no_sso_server(stdout: &str, stderr: &str) -> bool {
    stdout.contains(NO_SSO_SERVER) || stderr.contains(NO_SSO_SERVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_are_protocol_md_word_for_word() {
        let dir = r"C:\Program Files\Common Files\Enterprise Single Sign-On";
        assert_eq!(
            update_db_argv(r"C:\Drover\secret-server.xml"),
            [format!(r"{dir}\ssomanage.exe").as_str(), "-updatedb", r"C:\Drover\secret-server.xml"]
        );
        assert_eq!(display_db_argv(), [format!(r"{dir}\ssomanage.exe").as_str(), "-displaydb"]);
        assert_eq!(
            set_db_argv("DRSQL01", "SSODB"),
            [format!(r"{dir}\ssoconfig.exe").as_str(), "-setDB", "DRSQL01", "SSODB"]
        );
        assert_eq!(restore_secret_argv(r"C:\Drover\SSOSecret.bak")[1], "-restoreSecret");
    }

    #[test]
    fn the_secret_server_file_has_only_the_secret_server() {
        assert_eq!(
            secret_server_file("DRSSO01"),
            "<sso>\r\n  <globalInfo>\r\n    <secretServer>DRSSO01</secretServer>\r\n  </globalInfo>\r\n</sso>\r\n"
        );
        assert!(!secret_server_file("X").contains("ssoAdminAccount"));
    }

    #[test]
    fn the_restore_script_reads_the_password_from_stdin() {
        assert_eq!(
            restore_secret_script(r"C:\Drover\it's.bak"),
            r#"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $ss = [Activator]::CreateInstance([Type]::GetTypeFromCLSID([Guid]'2A40B78A-5C0B-4f39-A2CB-6D9AF29ECA37')); $ss.RestoreSecret('C:\Drover\it''s.bak', $password)"#
        );
        assert_eq!(password_stdin("sso-backup-password"), b"@@secret:sso-backup-password@@");
    }

    #[test]
    fn display_db_is_read_by_its_labels() {
        let out = "Using SSO server on this computer\r\n\r\nSQL Server: DRSQL01\r\nSingle Sign-On database: SSODB\r\nSingle Sign-On Secret Server name: DRSSO01\r\n";
        assert_eq!(
            parse_display_db(out),
            Some(SsoDatabase {
                sql_server: "DRSQL01".into(),
                database: "SSODB".into(),
                secret_server: "DRSSO01".into()
            })
        );
        assert_eq!(parse_display_db("Serveur SQL : DRSQL01"), None, "a localised answer needs an operator");
        assert!(completed("Using SSO server on this computer\r\nThe operation completed successfully.\r\n"));
        assert!(no_sso_server("", "ERROR: 0xC0002A0F : Could not contact the SSO server 'DRSSO01'."));
    }
}
