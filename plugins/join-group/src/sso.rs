//! The DR site's Enterprise SSO master secret server in waiting (Seed B: "including the disaster
//! recovery Enterprise Single Sign-On Master Secret server"; `docs/biztalk.md`, "Enterprise SSO
//! and the master secret"): a server that runs no BizTalk, joined to the production SSO system
//! only, and made ready to be promoted at failover, never promoted here.
//!
//! 1. Probes its SSO membership: `reg query "HKLM\SOFTWARE\Microsoft\ENTSSO\SQL" /v Server`
//!    (and `Database`). Joined to the group's SSO database: nothing to configure; to another one:
//!    a permanent error.
//! 2. Otherwise renders a configuration with Enterprise SSO alone, `IsSecretServer` answered
//!    `Join` (No to "Is this the master secret server?"), writes it to
//!    `<work_dir>\sso-<server>.xml`, runs `Configuration.exe /S <xml> /L <work_dir>\sso-<server>.log`,
//!    removes the file whatever happened (it holds the ENTSSO password, by reference) and
//!    verifies the membership again.
//! 3. Stages the backup of the master secret (`ssoconfig -backupSecret`'s file, read from where
//!    production keeps it) on this server, in the Enterprise SSO folder as Microsoft's "How to
//!    Move the Master Secret Server" copies it, and reads it back: the file `ssoconfig
//!    -restoreSecret` takes at failover, after `ssomanage -updatedb` names this server. Neither
//!    runs here.

use biztalk_common::config_log::ConfigLog;
use biztalk_common::config_xml;
use biztalk_common::configure::{self, CONFIGURATION_EXE, judge_configuration, read_log, run_then_remove};
use biztalk_common::membership::Membership;
use biztalk_common::reg::{self, RegAnswer};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Input, Output};

/// Where Enterprise SSO keeps the database it belongs to (values `Server`, `Database`).
pub use biztalk_common::reg::ENTSSO_SQL as ENTSSO_SQL_KEY;

/// The SSO server's part of the input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoServer {
    /// The backup of the master secret to stage on it.
    pub secret_backup: SecretBackup,
}

/// The master secret's backup file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBackup {
    /// The server where production keeps it (the master secret server, or a share); granted to
    /// the step as a target.
    pub server: String,
    /// Its path there.
    pub path: String,
    /// Where to stage it on this server; `path` when absent.
    #[serde(default)]
    pub stage_to: Option<String>,
}

/// What the step left ready for the promotion at failover.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Readiness {
    /// `server:path` of the backup the copy was taken from.
    pub from: String,
    /// The staged copy on this server.
    pub staged_at: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// What promotes this server at failover, in order (not run by this step).
    pub promote_with: Vec<String>,
}

/// The SSO membership of `target`: joined to `server/db`, or not.
pub(crate) fn probe(ctx: &Ctx, target: &str, evidence: &mut Vec<Evidence>) -> Result<Membership, StepError> {
    let mut answer = |value: &str| -> Result<RegAnswer, StepError> {
        let ran = ctx.exec(target, reg::PROGRAM).args(reg::query_args(ENTSSO_SQL_KEY, value)).run()?;
        evidence.push(ran.evidence(format!("registry ENTSSO {value}")));
        reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value).map_err(|e| {
            biztalk_common::unrecognized::program(
                &format!("reg query {ENTSSO_SQL_KEY} /v {value}"),
                target,
                &e.to_string(),
                &ran,
            )
        })
    };
    let server = answer("Server")?;
    if server == RegAnswer::Missing {
        return Ok(Membership::NotJoined);
    }
    let db = answer("Database")?;
    Ok(Membership::from_answers(&server, Some(&db)))
}

/// True if `target` is in the group's SSO system, false if in none; another one is an error.
fn joined(ctx: &Ctx, target: &str, input: &Input, evidence: &mut Vec<Evidence>) -> Result<bool, StepError> {
    let group = &input.group;
    match probe(ctx, target, evidence)? {
        Membership::NotJoined => Ok(false),
        m if m.is(&group.sso_server, &group.sso_db) => Ok(true),
        other => Err(StepError::permanent(format!(
            "{target} is in another SSO system ({other}), not {}/{}; unconfigure it first",
            group.sso_server, group.sso_db
        ))),
    }
}

fn sso_name(input: &Input) -> String {
    format!("{}/{}", input.group.sso_server, input.group.sso_db)
}

/// `check`: what `apply` would do.
pub fn check(ctx: &Ctx, target: &str, input: &Input, sso: &SsoServer) -> StepResult<Output> {
    let mut evidence = Vec::new();
    let mut todo = Vec::new();
    if !joined(ctx, target, input, &mut evidence)? {
        todo.push(format!(
            "join {target} to the SSO system on {} (not as master secret server)",
            sso_name(input)
        ));
    } else {
        let (xml_path, _) = paths(input, target);
        if configure::leftover_exists(ctx, target, &xml_path)? {
            todo.push(format!("remove the leftover configuration file {xml_path}"));
        }
    }
    let (backup, staged) = backup_and_copy(ctx, target, &sso.secret_backup)?;
    if staged.as_deref() != Some(backup.as_slice()) {
        todo.push(format!("stage the master secret backup at {}", stage_path(&sso.secret_backup)));
    }
    let output = output(input, Vec::new(), String::new(), readiness(&sso.secret_backup, backup.len()));
    let outcome = if todo.is_empty() {
        Outcome::unchanged(output, ready_summary(target, input, &sso.secret_backup))
    } else {
        Outcome::changed(output, format!("would {}", todo.join(" and ")))
    };
    Ok(configure::with_evidence(outcome, evidence))
}

/// `apply`: joins the SSO system if needed, then stages the backup.
pub fn apply(ctx: &Ctx, target: &str, input: &Input, sso: &SsoServer) -> StepResult<Output> {
    let mut evidence = Vec::new();
    let mut changed = Vec::new();
    let (mut features, mut log_excerpt) = (Vec::new(), String::new());
    if !joined(ctx, target, input, &mut evidence)? {
        let log_text = join(ctx, target, input, &mut evidence)?;
        features = ConfigLog::parse(&log_text).configured_features();
        log_excerpt = excerpt(&log_text, 20);
        if !joined(ctx, target, input, &mut evidence)? {
            return Err(StepError::permanent(format!(
                "Configuration.exe succeeded but {target} is not in the SSO system on {}",
                sso_name(input)
            )));
        }
        changed.push(format!(
            "joined {target} to the SSO system on {} (not as master secret server)",
            sso_name(input)
        ));
    } else {
        // An attempt interrupted after Configuration.exe joined may have left the rendered file,
        // which holds the ENTSSO password: it goes, as in the group join.
        ctx.remove_file(target, &paths(input, target).0)?;
    }
    let backup = &sso.secret_backup;
    let (bytes, staged) = backup_and_copy(ctx, target, backup)?;
    let at = stage_path(backup);
    if staged.as_deref() != Some(bytes.as_slice()) {
        ctx.write_file(target, &at, &bytes)?;
        let back = ctx.read_file(target, &at)?;
        if back != bytes {
            return Err(StepError::permanent(format!(
                "the master secret backup staged at {target}:{at} does not read back as written"
            )));
        }
        changed.push(format!("staged the master secret backup at {at}"));
    }
    evidence.push(Evidence::note(
        "master secret backup",
        format!("{}:{} staged at {target}:{at} ({} bytes)", backup.server, backup.path, bytes.len()),
    ));
    let output = output(input, features, log_excerpt, readiness(backup, bytes.len()));
    let outcome = if changed.is_empty() {
        Outcome::unchanged(output, ready_summary(target, input, backup))
    } else {
        Outcome::changed(output, format!("{}; ready to be promoted at failover", changed.join("; ")))
    };
    Ok(configure::with_evidence(outcome, evidence))
}

/// The rendered configuration and the log of `target`'s SSO configuration, in the work folder.
fn paths(input: &Input, target: &str) -> (String, String) {
    let dir = input.work_dir.trim_end_matches(['\\', '/']);
    (format!(r"{dir}\sso-{target}.xml"), format!(r"{dir}\sso-{target}.log"))
}

/// Writes the SSO-only configuration, runs Configuration.exe and removes the file: the log.
fn join(ctx: &Ctx, target: &str, input: &Input, evidence: &mut Vec<Evidence>) -> Result<String, StepError> {
    let (xml_path, log_path) = paths(input, target);
    let settings = crate::join_settings(input);
    run_then_remove(ctx, target, &xml_path, "joined the SSO system", || {
        let xml = config_xml::render_sso_only(&settings);
        ctx.remove_file(target, &log_path)?;
        ctx.write_file(target, &xml_path, &xml)?;
        evidence.push(Evidence::note(format!("rendered configuration {xml_path}"), xml));
        ctx.info(format!(
            "configuring Enterprise SSO on {target}: joining the SSO system on {}",
            sso_name(input)
        ));
        let ran = ctx
            .exec(target, CONFIGURATION_EXE)
            .args(["/S", xml_path.as_str(), "/L", log_path.as_str()])
            .run()?;
        evidence.push(ran.evidence("Configuration.exe"));
        let log_text = read_log(ctx, target, &log_path)?;
        evidence.push(Evidence::note(format!("configuration log {log_path}"), excerpt(&log_text, 20)));
        judge_configuration(target, "configuration", &ran, &log_path, &log_text)?;
        Ok(log_text)
    })
}

/// `compensate`: unconfigures Enterprise SSO (`Configuration.exe /U`) on a server in the group's
/// SSO system, checks that it left it, and removes the staged backup.
pub fn compensate(ctx: &Ctx, target: &str, input: &Input, sso: &SsoServer) -> StepResult<Output> {
    let mut evidence = Vec::new();
    let at = stage_path(&sso.secret_backup);
    if !joined(ctx, target, input, &mut evidence)? {
        ctx.remove_file(target, &at)?;
        let summary = format!("{target} is in no SSO system; nothing to undo (removed {at} if it was there)");
        return Ok(configure::with_evidence(Outcome::unchanged(Output::default(), summary), evidence));
    }
    let dir = input.work_dir.trim_end_matches(['\\', '/']);
    let log = format!(r"{dir}\unsso-{target}.log");
    let judge = |ran: &drover_sdk::Executed, text: &str| {
        judge_configuration(target, "unconfiguration", ran, &log, text)
    };
    let log_text = configure::unconfigure(ctx, target, &sso_name(input), &log, judge, &mut evidence)?;
    if joined(ctx, target, input, &mut evidence)? {
        return Err(StepError::permanent(format!(
            "Configuration.exe /U succeeded but {target} is still in the SSO system"
        )));
    }
    ctx.remove_file(target, &at)?;
    let output = Output { log_excerpt: excerpt(&log_text, 20), ..Output::default() };
    let summary =
        format!("unconfigured Enterprise SSO on {target} and removed the staged master secret backup {at}");
    Ok(configure::with_evidence(Outcome::changed(output, summary), evidence))
}

fn stage_path(backup: &SecretBackup) -> String {
    backup.stage_to.clone().unwrap_or_else(|| backup.path.clone())
}

/// The backup's bytes, and the staged copy's when there is one.
fn backup_and_copy(
    ctx: &Ctx,
    target: &str,
    backup: &SecretBackup,
) -> Result<(Vec<u8>, Option<Vec<u8>>), StepError> {
    let bytes = match ctx.read_file(&backup.server, &backup.path) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        Ok(_) => {
            return Err(StepError::permanent(format!(
                "the master secret backup {}:{} is empty",
                backup.server, backup.path
            )));
        }
        Err(e) if e.kind == HostErrorKind::NotFound => {
            return Err(StepError::permanent(format!(
                "no master secret backup at {}:{}: back the secret up on the master secret server \
                 (ssoconfig -backupSecret <file>) and keep the file there",
                backup.server, backup.path
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let staged = match ctx.read_file(target, &stage_path(backup)) {
        Ok(copy) => Some(copy),
        Err(e) if e.kind == HostErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    Ok((bytes, staged))
}

fn readiness(backup: &SecretBackup, bytes: usize) -> Readiness {
    let at = stage_path(backup);
    Readiness {
        from: format!("{}:{}", backup.server, backup.path),
        staged_at: at.clone(),
        bytes,
        promote_with: vec![
            "ssomanage -updatedb <file naming this server as secretServer>".into(),
            "net stop ENTSSO & net start ENTSSO".into(),
            format!("ssoconfig -restoreSecret \"{at}\""),
        ],
    }
}

fn ready_summary(target: &str, input: &Input, backup: &SecretBackup) -> String {
    format!(
        "{target} is in the SSO system on {} (not the master secret server) and holds the master secret backup at {}: ready to be promoted at failover",
        sso_name(input),
        stage_path(backup)
    )
}

fn output(input: &Input, features: Vec<String>, log_excerpt: String, ready: Readiness) -> Output {
    Output {
        joined_to: sso_name(input),
        features,
        log_excerpt,
        secret_backup: Some(ready),
        ..Output::default()
    }
}

#[cfg(test)]
pub(crate) mod tests;
