//! The membership probe: which BizTalk group a server belongs to, read from the registry values
//! `MgmtDBServer` and `MgmtDBName` (§2.4; DSC's "is configured" test). It only reads.

use std::fmt;

use biztalk_common::reg::{self, RegAnswer};
use drover_sdk::prelude::*;

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

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Membership::NotJoined => f.write_str("not joined to any group"),
            Membership::Joined { server, db } => write!(f, "joined to {server}/{db}"),
        }
    }
}

/// Reads the membership of `target`, adding the queries to `evidence`.
pub fn probe(ctx: &Ctx, target: &str, evidence: &mut Vec<Evidence>) -> Result<Membership, StepError> {
    let Some(server) = query(ctx, target, reg::MGMT_DB_SERVER, evidence)? else {
        return Ok(Membership::NotJoined);
    };
    let db = query(ctx, target, reg::MGMT_DB_NAME, evidence)?.unwrap_or_default();
    Ok(Membership::Joined { server, db })
}

/// One value of the BizTalk Administration key; `None` when missing.
fn query(
    ctx: &Ctx,
    target: &str,
    value: &str,
    evidence: &mut Vec<Evidence>,
) -> Result<Option<String>, StepError> {
    let ran =
        ctx.exec(target, reg::PROGRAM).args(reg::query_args(reg::BIZTALK_ADMINISTRATION, value)).run()?;
    let mut item = ran.evidence(format!("registry {value}"));
    if item.excerpt.is_empty() {
        item.excerpt = drover_sdk::excerpt(&ran.stderr(), 5);
    }
    evidence.push(item);
    let answer = reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value)
        .map_err(|e| StepError::permanent(format!("cannot read {value} on {target}: {e}")))?;
    Ok(match answer {
        RegAnswer::Missing => None,
        RegAnswer::Found(found) => Some(found.to_string()),
    })
}
