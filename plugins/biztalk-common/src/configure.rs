//! Host-side steps shared by the plugins that put a runtime server into a BizTalk group
//! (`join-group`, `restore-configuration`): the membership probe and what it says about the
//! expected group (before and after their run), what `check` and `apply` do on a server already
//! in it (a leftover file from an interrupted attempt), the "write a file that holds passwords,
//! run, **always** remove it" frame, and the unconfiguration that compensates them
//! (`Configuration.exe /U`). Unlike the rest of this crate these call the host, through a
//! [`Ctx`]. The wording of what a plugin did stays in the plugin.

use drover_sdk::prelude::*;
use drover_sdk::{Executed, excerpt};

use crate::config_log::{self, Verdict};
use crate::group::Group;
use crate::membership::Membership;
use crate::reg::{self, RegAnswer};
use crate::unrecognized;

/// Where the lab and a default BizTalk Server 2020 install put `Configuration.exe`.
pub const CONFIGURATION_EXE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe";

/// Reads the membership of `target` from the registry (`MgmtDBServer`, then `MgmtDBName` when
/// the first is there) in the 32-bit view, where the 32-bit `Configuration.exe` and
/// RestoreConfig.vbe write it (`reg query … /reg:32`), adding the queries to `evidence`. It only
/// reads.
pub fn probe_membership(
    ctx: &Ctx,
    target: &str,
    evidence: &mut Vec<Evidence>,
) -> Result<Membership, StepError> {
    let server = query(ctx, target, reg::MGMT_DB_SERVER, evidence)?;
    if server == RegAnswer::Missing {
        return Ok(Membership::NotJoined);
    }
    let db = query(ctx, target, reg::MGMT_DB_NAME, evidence)?;
    Ok(Membership::from_answers(&server, Some(&db)))
}

/// Whether `target` is in `group`, by [`probe_membership`]: true if joined to it, false if
/// joined to none. Joined to another group is a permanent error, worded by `elsewhere` from that
/// group's `server/database`.
pub fn expect_group(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    evidence: &mut Vec<Evidence>,
    elsewhere: impl FnOnce(&str) -> String,
) -> Result<bool, StepError> {
    match probe_membership(ctx, target, evidence)? {
        Membership::NotJoined => Ok(false),
        Membership::Joined { server, db } if group.is(&server, &db) => Ok(true),
        Membership::Joined { server, db } => Err(StepError::permanent(elsewhere(&format!("{server}/{db}")))),
    }
}

/// What `check` says of `target` when it is already in `group`: a change if an interrupted
/// attempt left the file at `path` (it holds passwords) behind, since apply removes it (and after
/// a crash the engine applies); otherwise nothing to do.
pub fn check_joined<T>(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    path: &str,
    output: T,
) -> Result<Outcome<T>, StepError> {
    if leftover_exists(ctx, target, path)? {
        let summary = format!("{target} is joined; would remove the leftover configuration file {path}");
        return Ok(Outcome::changed(output, summary));
    }
    Ok(Outcome::unchanged(output, group.already_joined(target)))
}

/// What `apply` does when `target` is already in `group`: removes the file an interrupted
/// attempt may have left at `path` (it holds passwords), and reports nothing changed.
pub fn apply_joined<T>(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    path: &str,
    output: T,
) -> Result<Outcome<T>, StepError> {
    ctx.remove_file(target, path)?;
    Ok(Outcome::unchanged(output, group.already_joined(target)))
}

/// Checks with [`probe_membership`] that `target` is in `group` after `tool` reported success:
/// a permanent error if not.
pub fn verify_joined(
    ctx: &Ctx,
    target: &str,
    group: &Group,
    tool: &str,
    evidence: &mut Vec<Evidence>,
) -> Result<(), StepError> {
    let verified = probe_membership(ctx, target, evidence)?;
    if verified.is(&group.mgmt_server, &group.mgmt_db) {
        return Ok(());
    }
    Err(StepError::permanent(format!(
        "{tool} succeeded but {target} is {verified}, not joined to {}",
        group.name()
    )))
}

/// Judges a run of `Configuration.exe` on `target` (`what`: `configuration` or `unconfiguration`)
/// from its exit code and the log at `log_path` ([`config_log::judge`]): the group's SQL Server
/// not answering is retryable, a refused logon permanent, the master secret server's Enterprise
/// SSO service not answering retryable (it may be restarting or failing over; if not, starting it
/// is the fix), the master secret out of reach permanent (someone must restore it), and anything
/// else needs an operator, with the log and the program's output in the message.
pub fn judge_configuration(
    target: &str,
    what: &str,
    ran: &Executed,
    log_path: &str,
    log_text: &str,
) -> Result<(), StepError> {
    match config_log::judge(ran.output.exit_code, log_text) {
        Verdict::Succeeded => Ok(()),
        Verdict::SqlUnreachable(errors) => Err(StepError::retryable(format!(
            "{what} of {target} failed: the group's SQL Server did not answer: {errors}"
        ))),
        Verdict::LoginRefused(errors) => Err(StepError::permanent(format!(
            "{what} of {target} failed: SQL Server refused the logon (the account's rights, or a \
             session without network credentials): {errors}"
        ))),
        Verdict::SsoServerUnreachable { server, errors } => Err(StepError::retryable(format!(
            "{what} of {target} failed: the Enterprise SSO service (ENTSSO) on the master secret server \
             {server} is not running or does not answer, so {target} cannot join the SSO system; start \
             ENTSSO on {server} (net start ENTSSO, or bring its cluster resource online) and check that \
             {target} reaches it over RPC (TCP 135 and the dynamic RPC ports), then retry: {errors}"
        ))),
        Verdict::MasterSecretUnavailable { server, errors } => {
            let server = server.map_or_else(
                || "the master secret server".to_string(),
                |s| format!("the master secret server {s}"),
            );
            Err(StepError::permanent(format!(
                "{what} of {target} failed: the Enterprise SSO master secret cannot be retrieved from {server} \
                 (ENTSSO events 10520/10521 in its Application log: it holds no secret it can load); restore \
                 the secret there from its backup (ssoconfig -restoreSecret <backup file>, with the backup's \
                 password) or give ENTSSO back the account the secret was made under, then retry: {errors}"
            )))
        }
        Verdict::Unrecognized(why) => Err(unrecognized::needs_operator(
            "Configuration.exe",
            target,
            &why,
            ran.output.exit_code,
            &[(&format!("log {log_path}"), log_text), ("stdout", &ran.stdout()), ("stderr", &ran.stderr())],
        )),
    }
}

/// One value of the BizTalk Administration key, in the 32-bit view.
fn query(ctx: &Ctx, target: &str, value: &str, evidence: &mut Vec<Evidence>) -> Result<RegAnswer, StepError> {
    let ran =
        ctx.exec(target, reg::PROGRAM).args(reg::query_args_32(reg::BIZTALK_ADMINISTRATION, value)).run()?;
    let mut item = ran.evidence(format!("registry {value}"));
    if item.excerpt.is_empty() {
        item.excerpt = excerpt(&ran.stderr(), 5);
    }
    evidence.push(item);
    // Found, or reg's documented "unable to find"; any other answer is for an operator.
    reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value).map_err(|e| {
        unrecognized::program(
            &format!("reg query \"{}\" /v {value} /reg:32", reg::BIZTALK_ADMINISTRATION),
            target,
            &e.to_string(),
            &ran,
        )
    })
}

/// Whether the file at `path` is still on the target. Its contents (passwords filled in by the
/// host) are dropped unread: only whether it exists matters.
pub fn leftover_exists(ctx: &Ctx, target: &str, path: &str) -> Result<bool, StepError> {
    match ctx.read_file(target, path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind == HostErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The text of a log on the target; empty when the tool wrote none.
pub fn read_log(ctx: &Ctx, target: &str, path: &str) -> Result<String, StepError> {
    match ctx.read_to_string(target, path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind == HostErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}

/// `outcome` with `evidence`.
pub fn with_evidence<T>(mut outcome: Outcome<T>, evidence: Vec<Evidence>) -> Outcome<T> {
    outcome.evidence = evidence;
    outcome
}

/// Whether `name` is a secret name the host recognises: letters, digits, `-`, `_`, `.`.
pub fn check_secret_name(name: &str) -> Result<(), StepError> {
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(StepError::permanent(format!(
            "password_secret {name:?} is not a secret name (letters, digits, - _ .)"
        )))
    }
}

/// Runs `work` (which writes the file at `path`, holding passwords, and runs the tool on it),
/// then removes the file **whatever happened**. A failure of `work` wins (mentioning a failed
/// removal); a failed removal alone is an error too (`"{done}, but {path} … could not be
/// removed"`), since retrying removes it.
pub fn run_then_remove<T>(
    ctx: &Ctx,
    target: &str,
    path: &str,
    done: &str,
    work: impl FnOnce() -> Result<T, StepError>,
) -> Result<T, StepError> {
    let ran = work();
    let removed = ctx.remove_file(target, path);
    match (ran, removed) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(r)) => {
            let message =
                format!("{}; also, {path} (it holds passwords) could not be removed: {r}", e.message());
            Err(match e {
                StepError::Retryable(_) => StepError::Retryable(message),
                StepError::Permanent(_) => StepError::Permanent(message),
                StepError::NeedsOperator(_) => StepError::NeedsOperator(message),
            })
        }
        (Ok(_), Err(r)) => Err(StepError::from(HostError::new(
            r.kind,
            format!("{done}, but {path} (it holds passwords) could not be removed: {}", r.message),
        ))),
    }
}

/// Unconfigures `target` (`Configuration.exe /U /L <log>`, after removing an old log), judges
/// the run with `judge` (given the run and the log's text) and checks with the registry that the
/// server left its group (`group` names it in the warning). Returns the log's text.
pub fn unconfigure(
    ctx: &Ctx,
    target: &str,
    group: &str,
    log: &str,
    judge: impl FnOnce(&Executed, &str) -> Result<(), StepError>,
    evidence: &mut Vec<Evidence>,
) -> Result<String, StepError> {
    ctx.remove_file(target, log)?;
    ctx.warn(format!("unconfiguring {target}: it leaves the group on {group}"));
    let ran = ctx.exec(target, CONFIGURATION_EXE).args(["/U", "/L", log]).run()?;
    evidence.push(ran.evidence("Configuration.exe /U"));
    let log_text = read_log(ctx, target, log)?;
    evidence.push(Evidence::note(format!("unconfiguration log {log}"), excerpt(&log_text, 20)));
    judge(&ran, &log_text)?;
    let after = probe_membership(ctx, target, evidence)?;
    if after != Membership::NotJoined {
        return Err(StepError::permanent(format!(
            "Configuration.exe /U succeeded but {target} is still {after}"
        )));
    }
    Ok(log_text)
}
