//! Which runs a worker may take: `--site` and `--target` limits against the servers a run acts
//! on. A run acts on the servers its pinned workflow grants its steps (a group or site expanded,
//! `*` every server of its pinned inventory), the servers of its `for-each` groups, and the
//! targets of its step instances so far. Pure functions of the pinned run: no journal, no clock.
//!
//! **Invariant:** a worker without limits takes every run; a limited worker takes a run only if
//! at least one server the run acts on passes every kind of limit given (one of the sites, and
//! one of the target globs).

use std::collections::BTreeSet;

use serde::Deserialize as _;
use wildmatch::WildMatch;

use crate::inventory::Inventory;
use crate::store::{RunRecord, StepRecord};
use crate::workflow::model::{ForEach, Workflow};

/// What a worker may take.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Site names: a run must act on a server of one of them (none: any site).
    pub sites: Vec<String>,
    /// Server name globs (`DRBTS*`): a run must act on a server matching one (none: any server).
    pub targets: Vec<String>,
}

impl Limits {
    /// No limit: every run.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty() && self.targets.is_empty()
    }

    /// Whether a worker so limited may take `run`, given its step instances so far. A run whose
    /// pinned workflow or inventory cannot be read is refused by a limited worker (a worker
    /// without limits takes it, and its driving says what is wrong).
    pub fn admits(&self, run: &RunRecord, instances: &[StepRecord]) -> bool {
        if self.is_empty() {
            return true;
        }
        let Ok(workflow) = super::super::pinned_workflow(&run.definition) else { return false };
        let Ok(inventory) = Inventory::deserialize(&run.inventory) else { return false };
        self.admits_servers(&inventory, &servers_of(&workflow, &inventory, instances))
    }

    /// Whether one of `servers` (names in `inventory`) passes every kind of limit given.
    pub fn admits_servers(&self, inventory: &Inventory, servers: &BTreeSet<String>) -> bool {
        let globs: Vec<WildMatch> = self.targets.iter().map(|t| WildMatch::new(t)).collect();
        servers.iter().any(|name| {
            let site = inventory.servers.get(name).and_then(|s| s.site.as_deref());
            let site_ok = self.sites.is_empty() || site.is_some_and(|s| self.sites.iter().any(|w| w == s));
            let target_ok = globs.is_empty() || globs.iter().any(|g| g.matches(name));
            site_ok && target_ok
        })
    }
}

/// The servers of `inventory` a run of `workflow` acts on: its steps' granted targets (groups
/// and sites expanded, `*` every server), its `for-each` groups' servers, and its instances'
/// targets.
pub fn servers_of(workflow: &Workflow, inventory: &Inventory, instances: &[StepRecord]) -> BTreeSet<String> {
    let mut names: Vec<&str> = Vec::new();
    for step in &workflow.steps {
        names.extend(step.grants.targets.iter().map(String::as_str));
        if let Some(ForEach::Group(group)) = &step.for_each {
            names.push(group);
        }
    }
    names.extend(instances.iter().filter_map(|r| r.target.as_deref()));
    expand(inventory, names)
}

/// Server names, groups and sites expanded to their servers, `*` to every server; names the
/// inventory does not know are left out.
fn expand<'a>(inventory: &Inventory, names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut servers = BTreeSet::new();
    for name in names {
        if name == "*" {
            servers.extend(inventory.servers.keys().cloned());
        } else {
            servers.extend(inventory.expand(name).into_iter().filter(|s| inventory.servers.contains_key(s)));
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::{Server, TransportSpec};

    /// Production: PRODSQL01, PRODBTS01; DR: DRSQL01, DRBTS01, DRBTS02; LAB01 has no site.
    fn inventory() -> Inventory {
        let server = |site: Option<&str>| Server {
            site: site.map(str::to_string),
            os: None,
            transport: TransportSpec::Local,
            vars: BTreeMap::new(),
        };
        let mut inv = Inventory::default();
        for (name, site) in [
            ("PRODSQL01", Some("production")),
            ("PRODBTS01", Some("production")),
            ("DRSQL01", Some("dr")),
            ("DRBTS01", Some("dr")),
            ("DRBTS02", Some("dr")),
            ("LAB01", None),
        ] {
            inv.servers.insert(name.into(), server(site));
            if let Some(site) = site {
                inv.sites.entry(site.into()).or_default();
                inv.groups.entry(site.into()).or_default().push(name.into());
            }
        }
        inv.groups.insert("dr-runtime".into(), vec!["DRBTS01".into(), "DRBTS02".into()]);
        inv
    }

    fn limits(sites: &[&str], targets: &[&str]) -> Limits {
        Limits {
            sites: sites.iter().map(|s| s.to_string()).collect(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn servers(names: &[&str]) -> BTreeSet<String> {
        expand(&inventory(), names.iter().copied())
    }

    #[test]
    fn groups_sites_and_star_expand_to_known_servers_only() {
        assert_eq!(servers(&["dr-runtime"]), ["DRBTS01", "DRBTS02"].map(String::from).into());
        assert_eq!(
            servers(&["production", "LAB01"]),
            ["LAB01", "PRODBTS01", "PRODSQL01"].map(String::from).into()
        );
        assert_eq!(servers(&["*"]).len(), 6);
        assert!(servers(&["NOSUCH", "no-group"]).is_empty());
    }

    #[test]
    fn no_limit_takes_everything_even_a_run_on_no_server() {
        let inv = inventory();
        assert!(limits(&[], &[]).is_empty());
        // `admits_servers` is never asked without limits; `admits` answers true before it.
        assert!(
            !limits(&["dr"], &[]).admits_servers(&inv, &BTreeSet::new()),
            "a limited worker needs a server"
        );
    }

    #[test]
    fn a_site_limit_takes_runs_acting_on_one_of_its_servers() {
        let inv = inventory();
        let dr = limits(&["dr"], &[]);
        assert!(dr.admits_servers(&inv, &servers(&["dr-runtime"])));
        assert!(dr.admits_servers(&inv, &servers(&["production", "DRSQL01"])), "one DR server is enough");
        assert!(!dr.admits_servers(&inv, &servers(&["production"])));
        assert!(!dr.admits_servers(&inv, &servers(&["LAB01"])), "a server without a site is in none");
        assert!(limits(&["elsewhere", "production"], &[]).admits_servers(&inv, &servers(&["PRODSQL01"])));
    }

    #[test]
    fn a_target_limit_matches_server_names_by_glob() {
        let inv = inventory();
        assert!(limits(&[], &["DRBTS*"]).admits_servers(&inv, &servers(&["dr"])));
        assert!(limits(&[], &["*SQL0?"]).admits_servers(&inv, &servers(&["PRODSQL01"])));
        assert!(!limits(&[], &["DRBTS*"]).admits_servers(&inv, &servers(&["DRSQL01", "production"])));
    }

    #[test]
    fn sites_and_targets_together_must_hold_for_the_same_server() {
        let inv = inventory();
        let both = limits(&["dr"], &["*SQL*"]);
        assert!(both.admits_servers(&inv, &servers(&["DRSQL01"])));
        // PRODSQL01 matches the glob but not the site; DRBTS01 the site but not the glob.
        assert!(!both.admits_servers(&inv, &servers(&["PRODSQL01", "DRBTS01"])));
    }
}
