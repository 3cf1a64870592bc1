//! The group's record in `BizTalkMgmtDb` read with `sqlcmd` (issue 18, P2; `lab/PROTOCOL.md`,
//! "Failover: database references, SSO and processing", "The group's record"): `adm_Group`'s
//! MessageBox and tracking locations, word for word as `biztalk_common::group_record` asks them,
//! answered from [`crate::activation`] on any SQL server whose `BizTalkMgmtDb` is online (the
//! source, or a destination once Restore To Mark recovered it). The lab keeps one record of the
//! group, so the source and a recovered destination answer the same.

use super::sql_logshipping::{in_restore, no_database};
use super::sqlcmd::refused;
use super::{Ctx, Output};
use crate::logshipping::DbState;

/// `adm_Group`'s MessageBox and tracking locations.
pub const GROUP_LOCATIONS: &str = "SET NOCOUNT ON; SELECT SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName FROM BizTalkMgmtDb.dbo.adm_Group";

/// `sqlcmd <args…>` when they read [`GROUP_LOCATIONS`].
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ["-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", GROUP_LOCATIONS] = args.as_slice()
    else {
        return None;
    };
    if let Err(why) = ctx.connect_sql(server) {
        return Some(refused(why));
    }
    let lab = &*ctx.lab;
    let server = lab.server_name(server).unwrap_or_else(|| (*server).to_owned());
    let state = match lab.destination_name(&server) {
        Some(d) => {
            lab.log_shipping.destinations.get(&d).and_then(|d| d.databases.get("BizTalkMgmtDb")).cloned()
        }
        None if lab.log_shipping.source.eq_ignore_ascii_case(&server) => Some(DbState::Online),
        None => None,
    };
    Some(match state {
        Some(DbState::Online) => {
            let a = &lab.group_on(&server).activation;
            Output::ok(format!(
                "{}|{}|{}|{}\r\n",
                a.messagebox.server, a.messagebox.name, a.tracking.server, a.tracking.name
            ))
        }
        Some(_) => in_restore(&server),
        None => no_database(&server),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use super::*;
    use crate::init::fresh_lab;
    use crate::logshipping::RESTORE_TO_MARK;

    /// The plugin's module, whose command line the lab must accept word for word.
    const PLUGIN: &str = include_str!("../../../plugins/biztalk-common/src/group_record.rs");

    fn sql(lab: &mut crate::state::Lab, server: &str) -> (i32, String) {
        let out = exec(
            lab,
            "DRBTS01",
            &["sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", GROUP_LOCATIONS],
        );
        (out.code, out.stdout_text())
    }

    #[test]
    fn the_query_is_the_plugins_word_for_word() {
        assert!(PLUGIN.contains(&format!("\"{GROUP_LOCATIONS}\"")));
    }

    #[test]
    fn the_source_answers_and_a_destination_once_recovered() {
        let mut lab = fresh_lab();
        assert_eq!(
            sql(&mut lab, "PRDSQL01"),
            (0, "PRDSQL01|BizTalkMsgBoxDb|PRDSQL01|BizTalkDTADb\r\n".into())
        );
        let (code, text) = sql(&mut lab, "DRSQL01");
        assert_eq!(code, 1);
        assert!(text.starts_with("Msg 927, Level 14"), "{text}");
        let start = format!("EXEC msdb.dbo.sp_start_job @job_name = N'{RESTORE_TO_MARK}'");
        let out = exec(
            &mut lab,
            "DRBTS01",
            &["sqlcmd", "-S", "DRSQL01", "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", &start],
        );
        assert_eq!(out.code, 0, "{}", out.stdout_text());
        assert_eq!(
            sql(&mut lab, "DRSQL01"),
            (0, "PRDSQL01|BizTalkMsgBoxDb|PRDSQL01|BizTalkDTADb\r\n".into())
        );
    }
}
