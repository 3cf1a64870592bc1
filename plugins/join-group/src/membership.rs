//! The membership probe: which BizTalk group a server belongs to, read from the registry values
//! `MgmtDBServer` and `MgmtDBName` (§2.4; DSC's "is configured" test) and typed as
//! `biztalk_common::membership::Membership`. It only reads.

use biztalk_common::reg::{self, RegAnswer};
use drover_sdk::prelude::*;

pub use biztalk_common::membership::Membership;

/// Reads the membership of `target`, adding the queries to `evidence`.
pub fn probe(ctx: &Ctx, target: &str, evidence: &mut Vec<Evidence>) -> Result<Membership, StepError> {
    let server = query(ctx, target, reg::MGMT_DB_SERVER, evidence)?;
    if server == RegAnswer::Missing {
        return Ok(Membership::NotJoined);
    }
    let db = query(ctx, target, reg::MGMT_DB_NAME, evidence)?;
    Ok(Membership::from_answers(&server, Some(&db)))
}

/// One value of the BizTalk Administration key.
fn query(ctx: &Ctx, target: &str, value: &str, evidence: &mut Vec<Evidence>) -> Result<RegAnswer, StepError> {
    let ran =
        ctx.exec(target, reg::PROGRAM).args(reg::query_args(reg::BIZTALK_ADMINISTRATION, value)).run()?;
    let mut item = ran.evidence(format!("registry {value}"));
    if item.excerpt.is_empty() {
        item.excerpt = drover_sdk::excerpt(&ran.stderr(), 5);
    }
    evidence.push(item);
    reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value)
        .map_err(|e| StepError::permanent(format!("cannot read {value} on {target}: {e}")))
}
