//! The database references of a restored group (docs/biztalk.md, "Failover activation", F6 and
//! F7): `UpdateDatabase.vbs` (once per group) and `UpdateRegistry.vbs` (on every runtime
//! server) from BizTalk's Restore folder, under the **64-bit** script host, and the
//! `SampleUpdateInfo.xml` they both read (`lab/PROTOCOL.md`, "Failover: database references,
//! SSO and processing").
//!
//! Builds the command lines and the XML and reads the XML back; nothing here runs anything. The
//! scripts print nothing a source documents, so success is read from the state afterwards
//! (`MSBTS_GroupSetting`, `reg query`), never from their output; the one failure with a
//! documented text is the provider error of SQL Server 2016 and later ([`is_provider_error`]).

use std::fmt;

use quick_xml::events::Event;

/// BizTalk Server 2020's Restore folder on a 64-bit server (Microsoft Learn, "How to Update the
/// Runtime Computers": `\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore`).
pub const RESTORE_DIR: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore";
/// The 64-bit script host: both scripts "must" run from a 64-bit command prompt ("How to Restore
/// Your Databases"). An agent running as a 32-bit process would have to name
/// `%SystemRoot%\Sysnative\cscript.exe` instead; Drover's agents do not.
pub const CSCRIPT_64: &str = r"C:\Windows\System32\cscript.exe";
/// The script that rewrites the locations stored in the group's databases.
pub const UPDATE_DATABASE: &str = "UpdateDatabase.vbs";
/// The script that rewrites the locations stored in one server's registry.
pub const UPDATE_REGISTRY: &str = "UpdateRegistry.vbs";
/// The file both scripts read, kept in [`RESTORE_DIR`] on every server.
pub const UPDATE_INFO: &str = "SampleUpdateInfo.xml";
/// What `UpdateDatabase.vbs` answers on SQL Server 2016 and later while it still opens its
/// connection with `SQLOLEDB` ("How to Restore Your Databases": "the script may fail with error:
/// `SQL Server: Invalid connection string attribute`"; the fix is `MSOLEDBSQL` in the script).
pub const PROVIDER_ERROR: &str = "Invalid connection string attribute";

/// `<RESTORE_DIR>\<file>`.
pub fn in_restore_dir(file: &str) -> String {
    format!(r"{RESTORE_DIR}\{file}")
}

/// The full argv (program first) of `cscript //nologo <Restore>\UpdateDatabase.vbs <xml>`.
pub fn update_database_argv(xml: &str) -> Vec<String> {
    vec![CSCRIPT_64.into(), "//nologo".into(), in_restore_dir(UPDATE_DATABASE), xml.into()]
}

/// The full argv (program first) of `cscript //nologo <Restore>\UpdateRegistry.vbs <xml>`.
pub fn update_registry_argv(xml: &str) -> Vec<String> {
    vec![CSCRIPT_64.into(), "//nologo".into(), in_restore_dir(UPDATE_REGISTRY), xml.into()]
}

/// Whether a run failed with the documented provider error.
pub fn is_provider_error(stdout: &str, stderr: &str) -> bool {
    stdout.contains(PROVIDER_ERROR) || stderr.contains(PROVIDER_ERROR)
}

/// A database that moves from one server (and name) to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// `oldDBName`.
    pub old_name: String,
    /// `oldDBServer`.
    pub old_server: String,
    /// `newDBName`.
    pub new_name: String,
    /// `newDBServer`.
    pub new_server: String,
}

impl Move {
    /// `name` moving from `old_server` to `new_server` under the same name.
    pub fn same_name(name: &str, old_server: &str, new_server: &str) -> Move {
        Move {
            old_name: name.into(),
            old_server: old_server.into(),
            new_name: name.into(),
            new_server: new_server.into(),
        }
    }

    /// The move back (drill mode, X2: UpdateRegistry with the inverted file).
    pub fn inverted(&self) -> Move {
        Move {
            old_name: self.new_name.clone(),
            old_server: self.new_server.clone(),
            new_name: self.old_name.clone(),
            new_server: self.old_server.clone(),
        }
    }
}

/// A database of `<OtherDatabases>`: `<Database Name="SSO" oldDBName=… />`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherDatabase {
    /// `Name`: `SSO` for the SSO database, `BAM Alerts Application DB`…
    pub name: String,
    /// Where it moves.
    pub moved: Move,
}

/// The `Name` of the SSO database in `<OtherDatabases>` (Microsoft's sample).
pub const SSO_NAME: &str = "SSO";

/// `SampleUpdateInfo.xml`: the element names of Microsoft's sample as printed in "How to Move
/// the BAM Primary Import Database" (`<UpdateConfiguration>`, `<MessageBoxDB … IsMaster="1"/>`,
/// `<TrackingDB/>`, `<ManagementDB/>`, `<OtherDatabases><Database Name="SSO" …/>`) and
/// `<RuleEngineDB/>` (the section "RuleEngineDB" named by "High availability using SQL Server
/// Always On availability groups"). BAM's sections are not rendered (the lab has no BAM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateInfo {
    /// `<MessageBoxDB>` elements and whether each is the master (`IsMaster="1"`).
    pub message_boxes: Vec<(Move, bool)>,
    /// `<TrackingDB>`.
    pub tracking: Option<Move>,
    /// `<ManagementDB>`.
    pub management: Option<Move>,
    /// `<RuleEngineDB>`.
    pub rule_engine: Option<Move>,
    /// `<OtherDatabases>`.
    pub other: Vec<OtherDatabase>,
}

/// Why a file is not a `SampleUpdateInfo.xml` Drover can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInfoError(pub String);

impl fmt::Display for UpdateInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a SampleUpdateInfo.xml: {}", self.0)
    }
}

impl std::error::Error for UpdateInfoError {}

impl UpdateInfo {
    /// Every database of a group with BizTalk's default names (one MessageBox, tracking,
    /// management, Rules Engine, SSO) moving from `old_server` to `new_server`.
    pub fn whole_group(old_server: &str, new_server: &str) -> UpdateInfo {
        let m = |name: &str| Move::same_name(name, old_server, new_server);
        UpdateInfo {
            message_boxes: vec![(m("BizTalkMsgBoxDb"), true)],
            tracking: Some(m("BizTalkDTADb")),
            management: Some(m("BizTalkMgmtDb")),
            rule_engine: Some(m("BizTalkRuleEngineDb")),
            other: vec![OtherDatabase { name: SSO_NAME.into(), moved: m("SSODB") }],
        }
    }

    /// The same file with every move reversed (drill mode puts production back with it).
    pub fn inverted(&self) -> UpdateInfo {
        UpdateInfo {
            message_boxes: self.message_boxes.iter().map(|(m, master)| (m.inverted(), *master)).collect(),
            tracking: self.tracking.as_ref().map(Move::inverted),
            management: self.management.as_ref().map(Move::inverted),
            rule_engine: self.rule_engine.as_ref().map(Move::inverted),
            other: self
                .other
                .iter()
                .map(|o| OtherDatabase { name: o.name.clone(), moved: o.moved.inverted() })
                .collect(),
        }
    }

    /// The file, CRLF line ends, values XML-escaped.
    pub fn render(&self) -> String {
        let attrs = |m: &Move| {
            format!(
                r#"oldDBName="{}" oldDBServer="{}" newDBName="{}" newDBServer="{}""#,
                esc(&m.old_name),
                esc(&m.old_server),
                esc(&m.new_name),
                esc(&m.new_server)
            )
        };
        let mut out = String::from("<UpdateConfiguration>\r\n");
        for (m, master) in &self.message_boxes {
            let master = if *master { "1" } else { "0" };
            out.push_str(&format!("  <MessageBoxDB {} IsMaster=\"{master}\" />\r\n", attrs(m)));
        }
        for (element, m) in [
            ("TrackingDB", &self.tracking),
            ("ManagementDB", &self.management),
            ("RuleEngineDB", &self.rule_engine),
        ] {
            if let Some(m) = m {
                out.push_str(&format!("  <{element} {} />\r\n", attrs(m)));
            }
        }
        out.push_str("  <OtherDatabases>\r\n");
        for o in &self.other {
            out.push_str(&format!("    <Database Name=\"{}\" {} />\r\n", esc(&o.name), attrs(&o.moved)));
        }
        out.push_str("  </OtherDatabases>\r\n</UpdateConfiguration>\r\n");
        out
    }

    /// Reads a file of this shape; elements it does not know (BAM's) are skipped.
    pub fn parse(text: &str) -> Result<UpdateInfo, UpdateInfoError> {
        let err = |m: String| UpdateInfoError(m);
        let mut reader = quick_xml::Reader::from_str(text);
        let mut info = UpdateInfo::default();
        let mut root_seen = false;
        loop {
            match reader.read_event().map_err(|e| err(e.to_string()))? {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let name: String = e.local_name().as_ref().to_owned();
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|e| err(e.to_string()))?;
                        let value = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|e| err(e.to_string()))?;
                        attrs.push((a.key.local_name().as_ref().to_owned(), value.into_owned()));
                    }
                    let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                    let moved = || -> Result<Move, UpdateInfoError> {
                        let need = |key: &str| get(key).ok_or_else(|| err(format!("<{name}> has no {key}")));
                        Ok(Move {
                            old_name: need("oldDBName")?,
                            old_server: need("oldDBServer")?,
                            new_name: need("newDBName")?,
                            new_server: need("newDBServer")?,
                        })
                    };
                    match name.as_str() {
                        "UpdateConfiguration" => root_seen = true,
                        "MessageBoxDB" => {
                            info.message_boxes.push((moved()?, get("IsMaster").as_deref() == Some("1")))
                        }
                        "TrackingDB" => info.tracking = Some(moved()?),
                        "ManagementDB" => info.management = Some(moved()?),
                        "RuleEngineDB" => info.rule_engine = Some(moved()?),
                        "Database" => info.other.push(OtherDatabase {
                            name: get("Name").ok_or_else(|| err("<Database> has no Name".into()))?,
                            moved: moved()?,
                        }),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !root_seen {
            return Err(err("no <UpdateConfiguration> element".into()));
        }
        Ok(info)
    }

    /// The master MessageBox's move, if the file has one.
    pub fn master_message_box(&self) -> Option<&Move> {
        self.message_boxes.iter().find(|(_, master)| *master).map(|(m, _)| m)
    }

    /// The SSO database's move, if the file has one.
    pub fn sso(&self) -> Option<&Move> {
        self.other.iter().find(|o| o.name == SSO_NAME).map(|o| &o.moved)
    }
}

fn esc(value: &str) -> String {
    quick_xml::escape::escape(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_are_protocol_md_word_for_word() {
        assert_eq!(
            update_database_argv(
                r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\SampleUpdateInfo.xml"
            ),
            [
                r"C:\Windows\System32\cscript.exe",
                "//nologo",
                r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\UpdateDatabase.vbs",
                r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\SampleUpdateInfo.xml",
            ]
        );
        assert_eq!(
            update_registry_argv("x.xml")[2],
            r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore\UpdateRegistry.vbs"
        );
    }

    #[test]
    fn the_whole_group_file_renders_as_protocol_md_shows_it() {
        let xml = UpdateInfo::whole_group("PRDSQL01", "DRSQL01").render();
        assert_eq!(
            xml,
            "<UpdateConfiguration>\r\n\
             \x20 <MessageBoxDB oldDBName=\"BizTalkMsgBoxDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMsgBoxDb\" newDBServer=\"DRSQL01\" IsMaster=\"1\" />\r\n\
             \x20 <TrackingDB oldDBName=\"BizTalkDTADb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkDTADb\" newDBServer=\"DRSQL01\" />\r\n\
             \x20 <ManagementDB oldDBName=\"BizTalkMgmtDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMgmtDb\" newDBServer=\"DRSQL01\" />\r\n\
             \x20 <RuleEngineDB oldDBName=\"BizTalkRuleEngineDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkRuleEngineDb\" newDBServer=\"DRSQL01\" />\r\n\
             \x20 <OtherDatabases>\r\n\
             \x20   <Database Name=\"SSO\" oldDBName=\"SSODB\" oldDBServer=\"PRDSQL01\" newDBName=\"SSODB\" newDBServer=\"DRSQL01\" />\r\n\
             \x20 </OtherDatabases>\r\n\
             </UpdateConfiguration>\r\n"
        );
    }

    #[test]
    fn a_file_round_trips_and_inverts() {
        let info = UpdateInfo::whole_group("PRD&SQL", "DRSQL01");
        let parsed = UpdateInfo::parse(&info.render()).expect("parses");
        assert_eq!(parsed, info);
        assert_eq!(parsed.master_message_box().map(|m| m.old_server.as_str()), Some("PRD&SQL"));
        let back = parsed.inverted();
        assert_eq!(
            back.sso().map(|m| (m.old_server.as_str(), m.new_server.as_str())),
            Some(("DRSQL01", "PRD&SQL"))
        );
        assert_eq!(back.inverted(), info);
    }

    #[test]
    fn microsofts_sample_with_bam_and_comments_parses() {
        // The shape printed in "How to Move the BAM Primary Import Database".
        let sample = r#"<UpdateConfiguration>
  <!-- comment -->
  <MessageBoxDB oldDBName="BizTalkMsgboxDb" oldDBServer="Server01" newDBName="BizTalkMsgboxDb" newDBServer="Server01" IsMaster="1" />
  <TrackingDB oldDBName="BizTalkDTADb" oldDBServer="Server01" newDBName="BizTalkDTADb" newDBServer="Server01" />
  <ManagementDB oldDBName="BizTalkMgmtDb" oldDBServer="Server01" newDBName="BizTalkMgmtDb" newDBServer="Server01" />
  <BAM>
    <DeploymentUnit Name="PrimaryImportDatabase">
      <Property Name="ServerName">Server02</Property>
    </DeploymentUnit>
  </BAM>
  <OtherDatabases>
    <Database Name="SSO" oldDBName="SSODB" oldDBServer="Server01" newDBName="SSODB" newDBServer="Server01" />
  </OtherDatabases>
</UpdateConfiguration>"#;
        let info = UpdateInfo::parse(sample).expect("parses");
        assert_eq!(info.message_boxes.len(), 1);
        assert!(info.rule_engine.is_none());
        assert_eq!(info.sso().map(|m| m.old_name.as_str()), Some("SSODB"));
        assert!(UpdateInfo::parse("<other/>").is_err());
        assert!(
            UpdateInfo::parse(r#"<UpdateConfiguration><TrackingDB oldDBName="a"/></UpdateConfiguration>"#)
                .is_err()
        );
    }

    #[test]
    fn the_provider_error_is_found_in_either_stream() {
        let line = r"C:\x\UpdateDatabase.vbs(1, 1) Microsoft OLE DB Provider for SQL Server: Invalid connection string attribute";
        assert!(is_provider_error("", line) && is_provider_error(line, ""));
        assert!(!is_provider_error("", "Login failed"));
    }
}
