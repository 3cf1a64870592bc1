//! The group's record in its management database, read with `sqlcmd` (issue 18, P2;
//! `lab/PROTOCOL.md`, "Failover: database references, SSO and processing", "The group's record"):
//! where `adm_Group` says the master MessageBox and the tracking database are. It answers as soon
//! as the DR copy of `BizTalkMgmtDb` is `ONLINE`, before `UpdateRegistry.vbs` lets WMI
//! (`MSBTS_GroupSetting`) read the group at DR, so it tells whether `UpdateDatabase.vbs` already
//! ran on the group.
//!
//! The columns are those a public BizTalk helper reads from `adm_Group` (`SELECT
//! SubscriptionDBServerName, SubscriptionDBName, BamDBServerName, BamDBName,
//! TrackingDBServerName, TrackingDBName FROM adm_Group`), the names `MSBTS_GroupSetting` shows.

use crate::logshipping::{self, SqlError, Unreadable};

/// The group's MessageBox and tracking locations in `BizTalkMgmtDb`.
pub const GROUP_LOCATIONS: &str = "SET NOCOUNT ON; SELECT SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName FROM BizTalkMgmtDb.dbo.adm_Group";

/// The `sqlcmd` argv (program first) that reads [`GROUP_LOCATIONS`] on `sql_server`.
pub fn group_locations_argv(sql_server: &str) -> Vec<String> {
    logshipping::sqlcmd(sql_server, GROUP_LOCATIONS)
}

/// Where `adm_Group` says the group's databases are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLocations {
    /// `SubscriptionDBServerName`: the master MessageBox's SQL server.
    pub subscription_server: String,
    /// `SubscriptionDBName`.
    pub subscription_db: String,
    /// `TrackingDBServerName`.
    pub tracking_server: String,
    /// `TrackingDBName`.
    pub tracking_db: String,
}

impl GroupLocations {
    /// Whether both name `server` (case-insensitively).
    pub fn all_on(&self, server: &str) -> bool {
        self.subscription_server.eq_ignore_ascii_case(server)
            && self.tracking_server.eq_ignore_ascii_case(server)
    }
}

/// What [`GROUP_LOCATIONS`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAnswer {
    /// The one row.
    Row(GroupLocations),
    /// A SQL Server error (927: `BizTalkMgmtDb` still restoring; 911: no such database).
    Error(SqlError),
}

/// Reads the answer (stdout): one `<server>|<db>|<server>|<db>` row, or a SQL Server error.
pub fn parse_group_locations(stdout: &str) -> Result<GroupAnswer, Unreadable> {
    if let Some(error) = logshipping::sql_error(stdout) {
        return Ok(GroupAnswer::Error(error));
    }
    let rows: Vec<&str> =
        stdout.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).collect();
    let unreadable =
        |line: &str| Unreadable { expected: "one adm_Group row: 4 columns", line: line.to_owned() };
    let [row] = rows.as_slice() else { return Err(unreadable(stdout)) };
    let fields: Vec<&str> = row.split(logshipping::SEPARATOR).collect();
    let [subscription_server, subscription_db, tracking_server, tracking_db] = fields.as_slice() else {
        return Err(unreadable(row));
    };
    Ok(GroupAnswer::Row(GroupLocations {
        subscription_server: (*subscription_server).to_owned(),
        subscription_db: (*subscription_db).to_owned(),
        tracking_server: (*tracking_server).to_owned(),
        tracking_db: (*tracking_db).to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_protocol_md_word_for_word() {
        assert_eq!(
            group_locations_argv("DRSQL01"),
            [
                "sqlcmd",
                "-S",
                "DRSQL01",
                "-E",
                "-b",
                "-h",
                "-1",
                "-W",
                "-s",
                "|",
                "-Q",
                "SET NOCOUNT ON; SELECT SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName FROM BizTalkMgmtDb.dbo.adm_Group"
            ]
        );
    }

    #[test]
    fn the_row_and_the_errors_are_read() {
        let Ok(GroupAnswer::Row(row)) =
            parse_group_locations("DRSQL01|BizTalkMsgBoxDb|DRSQL01|BizTalkDTADb\r\n")
        else {
            panic!("a row")
        };
        assert!(row.all_on("drsql01") && !row.all_on("PRDSQL01"));
        let mixed = GroupLocations { tracking_server: "PRDSQL01".into(), ..row };
        assert!(!mixed.all_on("DRSQL01"));
        let restoring = "Msg 927, Level 14, State 2, Server DRSQL01, Line 1\r\nDatabase 'BizTalkMgmtDb' cannot be opened. It is in the middle of a restore.\r\n";
        assert!(matches!(parse_group_locations(restoring), Ok(GroupAnswer::Error(e)) if e.number == 927));
        assert!(parse_group_locations("").is_err());
        assert!(parse_group_locations("a|b|c\r\n").is_err());
        assert!(parse_group_locations("a|b|c|d\r\na|b|c|d\r\n").is_err());
    }
}
