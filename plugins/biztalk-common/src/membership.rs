//! A server's BizTalk group membership as the registry tells it (docs/biztalk.md, "Registry"; DSC's "is configured"
//! test): `MgmtDBServer` and `MgmtDBName` under [`crate::reg::BIZTALK_ADMINISTRATION`]. The
//! plugins that join or restore a server probe it before and after; this module only types the
//! answer.

use std::fmt;

use crate::reg::RegAnswer;

/// A server's BizTalk group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// No `MgmtDBServer`: not configured.
    NotJoined,
    /// Joined to the group whose management database is `db` on `server` (`db` is empty if
    /// `MgmtDBName` is missing).
    Joined {
        /// `MgmtDBServer`.
        server: String,
        /// `MgmtDBName`.
        db: String,
    },
}

impl Membership {
    /// The membership from the answers to `reg query … /v MgmtDBServer` and, when that value was
    /// found, `… /v MgmtDBName` (`None` when not asked).
    pub fn from_answers(server: &RegAnswer, db: Option<&RegAnswer>) -> Membership {
        match server.value() {
            None => Membership::NotJoined,
            Some(server) => Membership::Joined {
                server: server.to_string(),
                db: db.and_then(RegAnswer::value).map(ToString::to_string).unwrap_or_default(),
            },
        }
    }

    /// Whether this is membership of the group whose management database is `db` on `server`
    /// (SQL names are case-insensitive).
    pub fn is(&self, server: &str, db: &str) -> bool {
        matches!(self, Membership::Joined { server: s, db: d }
            if s.eq_ignore_ascii_case(server) && d.eq_ignore_ascii_case(db))
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Membership::NotJoined => f.write_str("not joined to any group"),
            Membership::Joined { server, db } => write!(f, "joined to {server}/{db}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reg::RegValue;

    #[test]
    fn reads_the_two_values() {
        let found = |s: &str| RegAnswer::Found(RegValue::Text(s.into()));
        assert_eq!(Membership::from_answers(&RegAnswer::Missing, None), Membership::NotJoined);
        let joined = Membership::from_answers(&found("PRDSQL01"), Some(&found("BizTalkMgmtDb")));
        assert!(joined.is("prdsql01", "bizTalkmgmtdb"));
        assert!(!joined.is("DRSQL01", "BizTalkMgmtDb"));
        assert_eq!(joined.to_string(), "joined to PRDSQL01/BizTalkMgmtDb");
        let no_db = Membership::from_answers(&found("PRDSQL01"), Some(&RegAnswer::Missing));
        assert_eq!(no_db, Membership::Joined { server: "PRDSQL01".into(), db: String::new() });
        assert_eq!(Membership::NotJoined.to_string(), "not joined to any group");
    }
}
