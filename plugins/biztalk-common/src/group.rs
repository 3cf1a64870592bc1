//! The input the group plugins (`join-group`, `restore-configuration`) share: the BizTalk group
//! a server joins or returns to, the two service accounts its configuration sets, and the
//! defaults of both, with the helpers both need (secret names, the "already joined" summary,
//! the settings of the configuration file they write). What the plugins do with them stays in
//! each plugin.

use drover_sdk::prelude::*;
use serde::Deserialize;

use crate::config_xml::{Database, JoinSettings, ServiceAccount};

/// The ENTSSO account's password secret when the input names none.
pub const DEFAULT_ENTSSO_SECRET: &str = "entsso-password";
/// The Rule Engine Update Service account's password secret when the input names none.
pub const DEFAULT_RULES_ENGINE_SECRET: &str = "rules-engine-password";

fn default_mgmt_db() -> String {
    "BizTalkMgmtDb".into()
}

fn default_sso_db() -> String {
    "SSODB".into()
}

fn default_rules_db() -> String {
    "BizTalkRuleEngineDb".into()
}

/// The server folder a plugin writes its rendered files and logs to when the input names none.
pub fn default_work_dir() -> String {
    r"C:\Drover".into()
}

/// A BizTalk group: its databases and their SQL Servers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// SQL Server of the management database, e.g. `PRDSQL01`.
    pub mgmt_server: String,
    /// The management database.
    #[serde(default = "default_mgmt_db")]
    pub mgmt_db: String,
    /// SQL Server of the SSO database.
    pub sso_server: String,
    /// The SSO database.
    #[serde(default = "default_sso_db")]
    pub sso_db: String,
    /// SQL Server of the Business Rules database; `mgmt_server` when absent.
    #[serde(default)]
    pub rules_server: Option<String>,
    /// The Business Rules database.
    #[serde(default = "default_rules_db")]
    pub rules_db: String,
}

impl Group {
    /// `server/database` of the management database, as reports name a group.
    pub fn name(&self) -> String {
        format!("{}/{}", self.mgmt_server, self.mgmt_db)
    }

    /// True if `server`/`db` (from the registry) name this group; SQL names are
    /// case-insensitive.
    pub fn is(&self, server: &str, db: &str) -> bool {
        server.eq_ignore_ascii_case(&self.mgmt_server) && db.eq_ignore_ascii_case(&self.mgmt_db)
    }

    /// The summary of a step that found `target` already in this group.
    pub fn already_joined(&self, target: &str) -> String {
        format!("{target} is already joined to the group on {}", self.name())
    }

    /// The settings of a configuration file that puts a server with `installed_features` into
    /// this group with `accounts` (the join template, or the saved configuration of a joined
    /// server), passwords as secret references; the Business Rules database is on
    /// `mgmt_server` unless `rules_server` names another.
    pub fn join_settings(&self, accounts: &ServiceAccounts, installed_features: &[String]) -> JoinSettings {
        let [entsso_secret, rules_secret] = accounts.secret_names();
        JoinSettings {
            sso_db: Database { server: self.sso_server.clone(), name: self.sso_db.clone() },
            mgmt_db: Database { server: self.mgmt_server.clone(), name: self.mgmt_db.clone() },
            rules_db: Database {
                server: self.rules_server.clone().unwrap_or_else(|| self.mgmt_server.clone()),
                name: self.rules_db.clone(),
            },
            entsso: ServiceAccount {
                account: accounts.entsso.account.clone(),
                password_secret: entsso_secret.to_string(),
            },
            rules_engine: ServiceAccount {
                account: accounts.rules_engine.account.clone(),
                password_secret: rules_secret.to_string(),
            },
            installed_features: installed_features.to_vec(),
        }
    }
}

/// A service account.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// `DOMAIN\user`.
    pub account: String,
    /// Name of the secret holding its password (granted to the step); a default per account
    /// when absent (`entsso-password`, `rules-engine-password`).
    #[serde(default)]
    pub password_secret: Option<String>,
}

/// The service accounts the group's configuration sets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccounts {
    /// Enterprise SSO (`ENTSSO`); must be a member of SSO Administrators.
    pub entsso: Account,
    /// Rule Engine Update Service.
    pub rules_engine: Account,
}

impl ServiceAccounts {
    /// The two password secrets, `[entsso, rules_engine]`, defaults applied.
    pub fn secret_names(&self) -> [&str; 2] {
        [
            self.entsso.password_secret.as_deref().unwrap_or(DEFAULT_ENTSSO_SECRET),
            self.rules_engine.password_secret.as_deref().unwrap_or(DEFAULT_RULES_ENGINE_SECRET),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(entsso: Option<&str>) -> ServiceAccounts {
        serde_json::from_value(serde_json::json!({
            "entsso": { "account": r"CONTOSO\svc-sso", "password_secret": entsso },
            "rules_engine": { "account": r"CONTOSO\svc-bre" },
        }))
        .unwrap()
    }

    #[test]
    fn secret_names_fall_back_to_the_defaults_per_account() {
        assert_eq!(accounts(None).secret_names(), ["entsso-password", "rules-engine-password"]);
        assert_eq!(accounts(Some("sso-pw")).secret_names(), ["sso-pw", "rules-engine-password"]);
    }

    #[test]
    fn a_group_is_named_by_its_management_database_case_insensitively() {
        let group: Group = serde_json::from_value(
            serde_json::json!({ "mgmt_server": "PRDSQL01", "sso_server": "PRDSSO01" }),
        )
        .unwrap();
        assert_eq!(group.name(), "PRDSQL01/BizTalkMgmtDb");
        assert!(group.is("prdsql01", "BIZTALKMGMTDB"));
        assert!(!group.is("PRDSQL01", "OtherDb"));
        assert_eq!(group.sso_db, "SSODB");
        assert_eq!(group.rules_db, "BizTalkRuleEngineDb");
    }

    #[test]
    fn join_settings_reference_the_secrets_and_put_the_rules_database_on_the_management_server() {
        let group: Group = serde_json::from_value(serde_json::json!({
            "mgmt_server": "PRDSQL01", "sso_server": "PRDSSO01", "rules_db": "Rules"
        }))
        .unwrap();
        let settings = group.join_settings(&accounts(Some("sso-pw")), &["SSO".into(), "Runtime".into()]);
        assert_eq!(settings.sso_db, Database { server: "PRDSSO01".into(), name: "SSODB".into() });
        assert_eq!(settings.mgmt_db, Database { server: "PRDSQL01".into(), name: "BizTalkMgmtDb".into() });
        assert_eq!(settings.rules_db, Database { server: "PRDSQL01".into(), name: "Rules".into() });
        assert_eq!(
            settings.entsso,
            ServiceAccount { account: r"CONTOSO\svc-sso".into(), password_secret: "sso-pw".into() }
        );
        assert_eq!(settings.rules_engine.password_secret, "rules-engine-password");
        assert_eq!(settings.installed_features, ["SSO", "Runtime"]);
    }
}
