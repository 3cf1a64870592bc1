//! A server that an earlier configuration left half-done (`docs/biztalk.md`, "Failure modes"):
//! Configuration.exe configures Enterprise SSO first, so a run that then fails on the group or
//! the Rules Engine leaves the server in the SSO system but in no group. Running the
//! configuration over it again meets "SSO already configured" at best, so the group join stops
//! first and says what the administrator must choose: unconfigure it (`Configuration.exe /U`)
//! and let Drover join it again, or finish it in the Configuration tool, after which the join
//! finds it joined.
//!
//! The probe is the one of the DR SSO server ([`crate::sso`]): the ENTSSO SQL values
//! (`HKLM\SOFTWARE\Microsoft\ENTSSO\SQL`, `Server` and `Database`), asked only of a server that
//! the 32-bit view shows in no group. It only reads.

use biztalk_common::membership::Membership;
use drover_sdk::prelude::*;

use crate::Input;

/// Stops the join when `target`, in no group, already has Enterprise SSO configured: a permanent
/// error naming the SSO system, the group, and the two ways on.
pub fn refuse_partial(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    evidence: &mut Vec<Evidence>,
) -> Result<(), StepError> {
    match crate::sso::probe(ctx, target, evidence)? {
        Membership::NotJoined => Ok(()),
        sso => Err(StepError::permanent(format!(
            "{}; Drover does not run Configuration.exe over it again",
            half_configured(target, input, &sso)
        ))),
    }
}

/// After a failed configuration of `target`: the failure, told as a half-configured server when
/// Enterprise SSO is now configured on it (permanent: retrying would meet it), or as it was.
pub fn after_failure(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    failure: StepError,
    evidence: &mut Vec<Evidence>,
) -> StepError {
    match crate::sso::probe(ctx, target, evidence) {
        Ok(sso @ Membership::Joined { .. }) => StepError::permanent(format!(
            "{}; it stopped after configuring Enterprise SSO: {}",
            half_configured(target, input, &sso),
            failure.message()
        )),
        _ => failure,
    }
}

/// What a half-configured `target` is and what to do about it.
fn half_configured(target: &str, input: &Input, sso: &Membership) -> String {
    let sso_system = match sso {
        Membership::Joined { server, db } => format!("{server}/{db}"),
        Membership::NotJoined => String::new(),
    };
    format!(
        "{target} is half-configured by an earlier configuration: Enterprise SSO is configured on it (SSO \
         system {sso_system}) but it is in no BizTalk group (no MgmtDBServer in the 32-bit registry view), not \
         the group on {group}; unconfigure it on {target} (Configuration.exe /U /L <log>, or Unconfigure \
         Features in the BizTalk Server Configuration tool) and retry this step to join it again, or finish \
         the configuration in the Configuration tool, after which this step finds it joined",
        group = input.group.name()
    )
}
