//! `drover-lab replace` (`lab/PROTOCOL.md`, "State and commands of the lab itself"): a BizTalk
//! runtime server that failed beyond repair is rebuilt as a new computer with the same name
//! (`docs/biztalk.md`, "Server replacement"; seed A1: "the BizTalk Server databases are intact").
//!
//! The server's local state becomes that of a fresh, unconfigured runtime server
//! ([`crate::init::unconfigured_runtime`]); the group, which lives in the intact databases, does
//! not change: the server stays in `members` and its host-instance rows stay (R6: the rows exist,
//! their Windows services do not). Nothing runs on the new computer yet, so those rows read as
//! stopped. The configuration file exported from the server before the failure stays where it is
//! kept ([`crate::export`]). Setup may have left components out on the new computer
//! ([`leave_out`]). This module changes the lab in memory only; the caller persists it.

use crate::init::unconfigured_runtime;
use crate::state::{Edition, Lab, Role, ServiceState};

/// Why a server cannot be replaced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplaceError {
    /// The server is not in the lab.
    #[error("no server {0} in this lab")]
    NoServer(String),
    /// Only BizTalk runtime servers are modelled as replaceable.
    #[error("{0} is not a BizTalk runtime server (its role is {1}); only runtime servers can be replaced")]
    NotRuntime(String, &'static str),
}

/// Rebuilds `server` as an unconfigured runtime server with the same name; with `edition`, also
/// records the group's edition. Returns the canonical name.
pub fn replace(lab: &mut Lab, server: &str, edition: Option<Edition>) -> Result<String, ReplaceError> {
    let name = lab.server_name(server).ok_or_else(|| ReplaceError::NoServer(server.to_owned()))?;
    let old = &lab.servers[&name];
    if old.role != Role::BiztalkRuntime {
        return Err(ReplaceError::NotRuntime(name, old.role.as_str()));
    }
    let rebuilt = unconfigured_runtime(old.site);
    lab.servers.insert(name.clone(), rebuilt);
    for instance in lab.group.host_instances.iter_mut().filter(|i| i.server.eq_ignore_ascii_case(&name)) {
        instance.service_state = ServiceState::Stopped;
    }
    if let Some(edition) = edition {
        lab.edition = edition;
    }
    Ok(name)
}

/// Records that BizTalk setup did not install `features` (`InstalledFeature` names) on the
/// rebuilt `server`, so the Configuration tool cannot configure what needs them.
pub fn leave_out(lab: &mut Lab, server: &str, features: &[String]) {
    if let Some(server) = lab.servers.get_mut(server) {
        server.installed_features.retain(|f| !features.iter().any(|w| w.eq_ignore_ascii_case(f)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{ADMIN_KEY, STAGED_MSI, fresh_lab};
    use crate::state::StartType;

    #[test]
    fn the_server_is_rebuilt_and_the_group_keeps_it() {
        let mut lab = fresh_lab();
        let before = lab.clone();
        assert_eq!(replace(&mut lab, "prdbts02", None), Ok("PRDBTS02".to_owned()));

        let server = &lab.servers["PRDBTS02"];
        assert!(server.reg_value(ADMIN_KEY, "MgmtDBServer").is_none());
        assert!(server.reg_value(ADMIN_KEY, "MgmtDBName").is_none());
        assert!(server.services.iter().all(|s| !s.name.starts_with("BTSSvc$")), "{:?}", server.services);
        let entsso = server.service("ENTSSO").expect("ENTSSO");
        assert_eq!((entsso.start_type, entsso.state), (StartType::Demand, ServiceState::Stopped));
        let rules = server.service("RuleEngineUpdateService").expect("rule engine");
        assert_eq!((rules.start_type, rules.state), (StartType::Auto, ServiceState::Running));
        assert!(server.gac.is_empty());
        assert!(server.configured_features.is_empty(), "nothing configured yet");
        let export = crate::export::export_path("PRDBTS02");
        assert_eq!(lab.servers["PRDSQL01"].file(&export), before.servers["PRDSQL01"].file(&export), "kept");
        assert_eq!(server.files.len(), 1, "only the staged package");
        assert!(server.file(STAGED_MSI).is_some());
        assert_eq!(server.site, before.servers["PRDBTS02"].site);
        assert_eq!(server.platform, before.servers["PRDBTS02"].platform);
        assert_eq!(server.products, before.servers["PRDBTS02"].products);

        // The databases are intact: membership and rows stay; only what ran on the box stopped.
        assert_eq!(lab.group.members, before.group.members);
        assert_eq!(lab.group.host_instances.len(), 5);
        for (now, then) in lab.group.host_instances.iter().zip(&before.group.host_instances) {
            let expected = if now.server == "PRDBTS02" { ServiceState::Stopped } else { then.service_state };
            assert_eq!(now.service_state, expected, "{}", now.name);
            assert_eq!((now.configuration_state, now.is_disabled), (1, false), "{}", now.name);
        }
        for other in ["PRDBTS01", "PRDSSO01", "DRBTS01", "PRDSQL01"] {
            assert_eq!(lab.servers[other], before.servers[other], "{other} untouched");
        }
        assert_eq!(lab.edition, Edition::Enterprise);
        assert!(lab.joins.is_empty());
    }

    #[test]
    fn setup_can_leave_a_component_out() {
        let mut lab = fresh_lab();
        let name = replace(&mut lab, "PRDBTS02", None).expect("replaced");
        leave_out(&mut lab, &name, &["bamtools".to_owned()]);
        let installed = &lab.servers["PRDBTS02"].installed_features;
        assert!(!installed.iter().any(|f| f == "BAMTools") && installed.iter().any(|f| f == "MsEDIAS2"));
    }

    #[test]
    fn the_edition_can_be_recorded() {
        let mut lab = fresh_lab();
        replace(&mut lab, "PRDBTS02", Some(Edition::Standard)).expect("replaced");
        assert_eq!(lab.edition, Edition::Standard);
    }

    #[test]
    fn only_runtime_servers_of_the_lab_can_be_replaced() {
        let mut lab = fresh_lab();
        assert_eq!(replace(&mut lab, "NOSUCH", None), Err(ReplaceError::NoServer("NOSUCH".into())));
        let err = replace(&mut lab, "PRDSQL01", None).expect_err("a SQL server is not a BizTalk server");
        assert_eq!(
            err.to_string(),
            "PRDSQL01 is not a BizTalk runtime server (its role is sql); only runtime servers can be replaced"
        );
        assert_eq!(lab, fresh_lab(), "nothing changed");
    }
}
