//! The BizTalk side of failover activation in the lab's state (`lab/PROTOCOL.md`, "Failover:
//! database references, SSO and processing"): where the group's MessageBox, tracking and Rules
//! Engine databases are (the management and SSO databases are [`crate::state::Group`]'s own),
//! the group's `SSOServerName`, its receive locations, which servers hold the SSO master secret
//! and the password of its backup (as a SHA-256), and every run of `UpdateDatabase.vbs`.
//!
//! Model and queries only; the programs that change it live in [`crate::programs`] (`dbrefs`,
//! `sso`, `powershell::processing`).

use serde::{Deserialize, Serialize};

use crate::state::{Fault, Group, Lab, Site, password_sha256};

/// The password of the master secret's backup in the fresh lab (the lab's own; the backup file is
/// `crate::init::SECRET_BACKUP` on PRDSSO01).
pub const SECRET_BACKUP_PASSWORD: &str = "Contoso-SSO-Backup-2020!";

/// The group's activation state (`activation` in the group of the state file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Activation {
    /// The master MessageBox (`MSBTS_GroupSetting.SubscriptionDBServerName`/`…DBName`).
    #[serde(default)]
    pub messagebox: DbLocation,
    /// The tracking database (`TrackingDBServerName`/`TrackingDBName`).
    #[serde(default)]
    pub tracking: DbLocation,
    /// The Rules Engine database (`RuleEngineDBServerName`/`RuleEngineDBName`).
    #[serde(default)]
    pub rule_engine: DbLocation,
    /// `MSBTS_GroupSetting.SSOServerName`.
    #[serde(default)]
    pub sso_server_name: String,
    /// The group's receive locations (`MSBTS_ReceiveLocation`).
    #[serde(default)]
    pub receive_locations: Vec<ReceiveLocation>,
    /// The servers whose registry holds the master secret (generated there or restored with
    /// `ssoconfig -restoreSecret`).
    #[serde(default)]
    pub secret_holders: Vec<String>,
    /// The SHA-256 (lower-case hex) of the master secret backup's password.
    #[serde(default)]
    pub secret_backup_password_sha256: String,
    /// Every run of `UpdateDatabase.vbs` that reached the database, in order, with the number of
    /// locations it changed (0 for a second run): lets tests check it ran once per group.
    #[serde(default)]
    pub update_database_runs: Vec<UpdateDatabaseRun>,
}

/// Where a database is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DbLocation {
    /// The SQL server.
    pub server: String,
    /// The database.
    pub name: String,
}

impl DbLocation {
    /// `name` on `server`.
    pub fn new(server: &str, name: &str) -> DbLocation {
        DbLocation { server: server.into(), name: name.into() }
    }

    /// Whether it is `name` on `server`, case-insensitively.
    pub fn is(&self, server: &str, name: &str) -> bool {
        self.server.eq_ignore_ascii_case(server) && self.name.eq_ignore_ascii_case(name)
    }
}

/// A receive location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReceiveLocation {
    /// Name, unique in the group.
    pub name: String,
    /// Its receive port.
    pub receive_port: String,
    /// The host of its receive handler.
    pub host: String,
    /// Its adapter.
    pub adapter: String,
    /// `IsDisabled`.
    pub is_disabled: bool,
}

/// One run of `UpdateDatabase.vbs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UpdateDatabaseRun {
    /// The server it ran on.
    pub server: String,
    /// How many database locations it changed.
    pub changed: u32,
}

/// The activation state of the fresh lab: every database on `sql`, the SSO server and the only
/// holder of the secret `master_secret_server`, three receive locations (two enabled in
/// production, one disabled).
pub fn fresh(sql: &str, master_secret_server: &str) -> Activation {
    let rl = |name: &str, port: &str, host: &str, adapter: &str, is_disabled: bool| ReceiveLocation {
        name: name.into(),
        receive_port: port.into(),
        host: host.into(),
        adapter: adapter.into(),
        is_disabled,
    };
    Activation {
        messagebox: DbLocation::new(sql, "BizTalkMsgBoxDb"),
        tracking: DbLocation::new(sql, "BizTalkDTADb"),
        rule_engine: DbLocation::new(sql, "BizTalkRuleEngineDb"),
        sso_server_name: master_secret_server.into(),
        receive_locations: vec![
            rl("RL.Orders.File", "RP.Orders", "ReceiveHost", "FILE", false),
            rl("RL.Orders.Http", "RP.Orders", crate::init::ISOLATED_HOST, "WCF-BasicHttp", false),
            rl("RL.Invoices.Sftp", "RP.Invoices", "ReceiveHost", "SFTP", true),
        ],
        secret_holders: vec![master_secret_server.into()],
        secret_backup_password_sha256: password_sha256(SECRET_BACKUP_PASSWORD),
        update_database_runs: Vec::new(),
    }
}

impl Lab {
    /// Whether the `msoledbsql-provider` fault holds `server`'s UpdateDatabase.vbs to SQLOLEDB.
    pub fn msoledbsql_provider(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::MsoledbsqlProvider { server: s } if s.eq_ignore_ascii_case(server)))
    }

    /// Whether WMI calls that reach `server` fail because the production site is gone: the
    /// `dead-production-wmi` fault and `server` a production server, or `server` down since
    /// `drover-lab disaster`.
    pub fn wmi_unreachable(&self, server: &str) -> bool {
        let dead_production = self.faults.iter().any(|f| matches!(f, Fault::DeadProductionWmi))
            && self
                .server_name(server)
                .and_then(|name| self.servers.get(&name))
                .is_some_and(|s| s.site == Site::Prod);
        dead_production || self.server_down(server)
    }

    /// Whether `server` holds the master secret. A server's registry holds it, whichever copy of
    /// the SSO database it restored it for, so the holders are kept on production's record only.
    pub fn holds_secret(&self, server: &str) -> bool {
        self.group.activation.secret_holders.iter().any(|s| s.eq_ignore_ascii_case(server))
    }

    /// The group's record a connection to the SQL Server `sql` reads: the copy Restore To Mark
    /// recovered there (a DR SQL Server after the failover or a drill), else production's.
    pub fn group_on(&self, sql: &str) -> &Group {
        let recovered = self.destination_name(sql).and_then(|d| self.log_shipping.destinations.get(&d));
        recovered.and_then(|d| d.group.as_deref()).unwrap_or(&self.group)
    }

    /// [`Lab::group_on`], to change.
    pub fn group_on_mut(&mut self, sql: &str) -> &mut Group {
        let name = self.destination_name(sql);
        let destination = name.and_then(|d| self.log_shipping.destinations.get_mut(&d));
        match destination.and_then(|d| d.group.as_deref_mut()) {
            Some(recovered) => recovered,
            None => &mut self.group,
        }
    }

    /// Every copy of the group's record, production's first: what is a server's own (a service's
    /// state) reads the same in each.
    pub fn groups_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        let recovered = self.log_shipping.destinations.values_mut().filter_map(|d| d.group.as_deref_mut());
        std::iter::once(&mut self.group).chain(recovered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fresh_lab_keeps_everything_in_production() {
        let lab = crate::init::fresh_lab();
        let a = &lab.group.activation;
        assert!(a.messagebox.is("prdsql01", "BizTalkMsgBoxDb") && a.tracking.is("PRDSQL01", "BizTalkDTADb"));
        assert_eq!(a.sso_server_name, "PRDSSO01");
        assert!(lab.holds_secret("prdsso01") && !lab.holds_secret("DRSSO01"));
        assert_eq!(a.receive_locations.iter().filter(|r| !r.is_disabled).count(), 2);
        assert_eq!(a.secret_backup_password_sha256, password_sha256(SECRET_BACKUP_PASSWORD));
    }

    #[test]
    fn production_servers_are_out_of_wmi_reach_after_the_disaster() {
        let mut lab = crate::init::fresh_lab();
        assert!(!lab.wmi_unreachable("PRDBTS01"));
        crate::logshipping::disaster(&mut lab, std::time::SystemTime::UNIX_EPOCH).expect("declared");
        assert!(lab.wmi_unreachable("PRDBTS01") && !lab.wmi_unreachable("DRBTS01"));
    }
}
