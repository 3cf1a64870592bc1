//! The join from the configuration file exported from the server before it failed (Seed A,
//! phase 2; `docs/biztalk.md`): the server is rebuilt under its old name, so it is configured
//! with every feature it had (BAM, EDI/AS2, REST APIs, TMS…), not the four of the join template.
//!
//! The file is read from where the operator keeps the exports (`<folder>\<server>.xml` on a
//! server the step is granted), checked against the group being restored (its SSO and group
//! answered `Join` against the group's databases, the computer it names), and written to the
//! target with every `NTService` password an XML secret reference the host fills in: the
//! plugin never holds a password, and the export on the share keeps none. After the run, every
//! feature of the file the configuration log does not show configured is named: a warning, or,
//! for a feature the input requires (every feature of the file unless told), an operator's
//! decision.

use std::collections::BTreeMap;

use biztalk_common::config_log::ConfigLog;
use biztalk_common::configure::check_secret_name;
use biztalk_common::exported_config::{self, Exported};
use drover_sdk::prelude::*;
use serde::Deserialize;

use crate::Input;

/// Where the exported configuration files are kept, and what the input adds to them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedConfiguration {
    /// The server whose disk (or share) keeps the exports; granted to the step as a target.
    pub server: String,
    /// The folder on it holding one `<computer>.xml` per server.
    pub folder: String,
    /// Password secrets of accounts the file configures besides the two service accounts (TMS,
    /// REST APIs, BAM portal…).
    #[serde(default)]
    pub passwords: Vec<AccountSecret>,
    /// `Feature Name`s that must come back (`SSOServer,Engine`, `BAMTools`…); a feature of the
    /// file not configured is an operator's decision if required, a warning otherwise. Every
    /// feature of the file when absent.
    #[serde(default)]
    pub required_features: Option<Vec<String>>,
}

/// The secret holding one account's password.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSecret {
    /// `DOMAIN\user`, as the file names it.
    pub account: String,
    /// The secret's name (granted to the step).
    pub secret: String,
}

impl ExportedConfiguration {
    /// `<folder>\<computer>.xml`.
    pub fn path(&self, computer: &str) -> String {
        format!(r"{}\{computer}.xml", self.folder.trim_end_matches(['\\', '/']))
    }

    /// `server:path` of `computer`'s file, for messages.
    pub fn location(&self, computer: &str) -> String {
        format!("{}:{}", self.server, self.path(computer))
    }

    /// Refuses secret names the host would not recognise and an empty location.
    pub fn validate(&self) -> Result<(), StepError> {
        if self.server.trim().is_empty() || self.folder.trim().is_empty() {
            return Err(StepError::permanent("exported_configuration needs a server and a folder"));
        }
        for entry in &self.passwords {
            check_secret_name(&entry.secret)?;
        }
        Ok(())
    }
}

/// The export of `target`, read, checked against the group and with its passwords filled by
/// reference: the text to write, and the features it configures.
pub struct Prepared {
    /// The file to write on the target (secret references, no password).
    pub xml: String,
    /// Its `Feature Name`s.
    pub features: Vec<String>,
    /// Where it was read.
    pub location: String,
}

/// Reads and checks `target`'s export: a permanent error naming what is wrong (no file, not a
/// configuration file, another group or computer, a logon without a secret).
pub fn prepare(
    ctx: &Ctx,
    target: &str,
    input: &Input,
    export: &ExportedConfiguration,
) -> Result<Prepared, StepError> {
    let location = export.location(target);
    let text = match ctx.read_to_string(&export.server, &export.path(target)) {
        Ok(text) => text,
        Err(e) if e.kind == HostErrorKind::NotFound => {
            return Err(StepError::permanent(format!(
                "no configuration file exported from {target} at {location}: export it with the BizTalk Server \
                 Configuration tool (Export Configuration) after every configuration change, and keep it there"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let parsed: Exported = exported_config::parse(&text)
        .map_err(|e| StepError::permanent(format!("{location} is not a BizTalk configuration file: {e}")))?;
    let mismatches = parsed.mismatches(&input.group, target);
    if !mismatches.is_empty() {
        return Err(StepError::permanent(format!(
            "the configuration file {location} does not restore {target} into the group on {}: {}",
            input.group.name(),
            mismatches.join("; ")
        )));
    }
    let xml = parsed.with_password_refs(&secrets(input, export)).map_err(|missing| {
        let named: Vec<String> = missing
            .iter()
            .map(|l| format!("{} ({}) of feature {}", l.service, l.account, l.feature))
            .collect();
        StepError::permanent(format!(
            "the configuration file {location} sets the password of {}, and no secret is named for that \
             account: add it to exported_configuration.passwords",
            named.join(", ")
        ))
    })?;
    let features = parsed.features().into_iter().map(str::to_owned).collect();
    Ok(Prepared { xml, features, location })
}

/// Account to secret: the two service accounts, then the input's other accounts.
fn secrets(input: &Input, export: &ExportedConfiguration) -> BTreeMap<String, String> {
    let accounts = &input.service_accounts;
    let [entsso, rules] = accounts.secret_names();
    let mut map = BTreeMap::new();
    map.insert(accounts.entsso.account.clone(), entsso.to_owned());
    map.insert(accounts.rules_engine.account.clone(), rules.to_owned());
    for entry in &export.passwords {
        map.insert(entry.account.clone(), entry.secret.clone());
    }
    map
}

/// The features of the file the log does not show configured.
pub fn missing_features(features: &[String], log_text: &str) -> Vec<String> {
    let configured = ConfigLog::parse(log_text).configured_features();
    features
        .iter()
        .filter(|f| !configured.iter().any(|c| exported_config::same_feature(f, c)))
        .cloned()
        .collect()
}

/// Of `missing`, those the input requires (every one when it names none).
pub fn required_missing(missing: &[String], export: &ExportedConfiguration) -> Vec<String> {
    match &export.required_features {
        None => missing.to_vec(),
        Some(required) => {
            missing.iter().filter(|m| required.iter().any(|r| r.eq_ignore_ascii_case(m))).cloned().collect()
        }
    }
}
