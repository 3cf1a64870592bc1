//! What the mapping calls for: the DR instances wanted (host, DR server, the production servers
//! they stand in for, the host's type and logon account, and the existing row if any), and the
//! warnings for the operator. Pure: it reads the input and the rows of `MSBTS_HostInstance`, and
//! runs nothing.
//!
//! A DR instance runs as the production instances of its host do (`MSBTS_HostInstance.Logon`):
//! `Install` wants an account of the host's Windows group, and isolated hosts usually have their
//! own group and account. The password is one secret per host, so a host whose production
//! instances run under several accounts is reported, not guessed.
//!
//! Server and host names are compared case-insensitively, as Windows and BizTalk do.

use biztalk_common::wmi::{ConfigurationState, HostInstance, HostType};

use crate::{Input, ServerPair};

/// One DR instance the mapping calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    /// The host.
    pub host: String,
    /// The DR server.
    pub server: String,
    /// The production servers whose instance of the host it stands in for.
    pub production_servers: Vec<String>,
    /// The host's type, as the production rows (or the existing row) say; in-process when no row
    /// says.
    pub host_type: HostType,
    /// The account the production instances of the host run as, or why there is none.
    pub logon: Result<String, String>,
    /// The instance as `MSBTS_HostInstance` shows it, if it exists.
    pub existing: Option<HostInstance>,
}

/// The DR instances wanted and the warnings.
#[derive(Debug)]
pub(crate) struct Plan {
    /// In the order of the production instances, then of the mapping.
    pub desired: Vec<Desired>,
    /// Unmapped production servers, overloaded DR servers, DR instances not disabled or stopped
    /// (not in repair mode: a replaced production server's instances need not be).
    pub warnings: Vec<String>,
}

/// A production host instance: (host, server).
type Instance = (String, String);

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Plan {
    /// Plans from the input and the group's host instances.
    pub(crate) fn new(input: &Input, rows: &[HostInstance]) -> Plan {
        let production = production_instances(input, rows);
        let desired = desired(&input.mapping, &production, rows);
        let mut warnings = unmapped_warnings(&input.mapping, &production);
        warnings.extend(overload_warnings(&input.mapping, &production, &desired, rows));
        if !input.repair {
            warnings.extend(not_standby_warnings(&desired));
        }
        warnings.extend(idle_dr_warnings(input));
        Plan { desired, warnings }
    }
}

/// The production instances: as given; in repair mode every instance on a production server of
/// the mapping (a server replaced under the same name maps to itself, so its own rows are what
/// it must carry); else every instance on a server that is not a DR server of the mapping.
fn production_instances(input: &Input, rows: &[HostInstance]) -> Vec<Instance> {
    match &input.production_instances {
        Some(given) => given.iter().map(|i| (i.host.clone(), i.server.clone())).collect(),
        None if input.repair => rows
            .iter()
            .filter(|r| input.mapping.iter().any(|m| same(&m.production, &r.running_server)))
            .map(|r| (r.host_name.clone(), r.running_server.clone()))
            .collect(),
        None => rows
            .iter()
            .filter(|r| !input.mapping.iter().any(|m| same(&m.dr, &r.running_server)))
            .map(|r| (r.host_name.clone(), r.running_server.clone()))
            .collect(),
    }
}

/// The DR servers `server` maps to.
fn dr_servers<'m>(mapping: &'m [ServerPair], server: &str) -> Vec<&'m str> {
    mapping.iter().filter(|m| same(&m.production, server)).map(|m| m.dr.as_str()).collect()
}

/// Every (host, DR server) the mapping calls for, deduplicated.
fn desired(mapping: &[ServerPair], production: &[Instance], rows: &[HostInstance]) -> Vec<Desired> {
    let mut wanted: Vec<Desired> = Vec::new();
    let of_host = |host: &str| -> Vec<&HostInstance> {
        production
            .iter()
            .filter(|(h, _)| same(h, host))
            .filter_map(|(h, s)| rows.iter().find(|r| r.is(h, s)))
            .collect()
    };
    for (host, server) in production {
        for dr in dr_servers(mapping, server) {
            match wanted.iter_mut().find(|d| same(&d.host, host) && same(&d.server, dr)) {
                Some(d) if !d.production_servers.iter().any(|p| same(p, server)) => {
                    d.production_servers.push(server.clone())
                }
                Some(_) => {}
                None => {
                    let existing = rows.iter().find(|r| r.is(host, dr)).cloned();
                    let production_rows = of_host(host);
                    let host_type = production_rows
                        .first()
                        .copied()
                        .or(existing.as_ref())
                        .map_or(HostType::InProcess, |r| r.host_type);
                    wanted.push(Desired {
                        host: host.clone(),
                        server: dr.to_string(),
                        production_servers: vec![server.clone()],
                        host_type,
                        logon: logon_of(host, &production_rows),
                        existing,
                    })
                }
            }
        }
    }
    wanted
}

/// The one account the production instances of `host` run as; an error naming them when they
/// have none or several (one secret per host holds one password).
fn logon_of(host: &str, production_rows: &[&HostInstance]) -> Result<String, String> {
    let accounts = distinct(production_rows.iter().filter_map(|r| r.account()));
    match accounts.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(format!(
            "no production instance of host {host} has a logon account in MSBTS_HostInstance to copy"
        )),
        several => {
            let runs: Vec<String> = production_rows
                .iter()
                .filter_map(|r| r.account().map(|a| format!("{a} on {}", r.running_server)))
                .collect();
            Err(format!(
                "the production instances of host {host} run under {} accounts ({}); its DR instances take one account, whose password is one secret: make production agree, or list the production instances to copy in production_instances",
                several.len(),
                runs.join(", ")
            ))
        }
    }
}

/// Distinct values in first-seen order, compared case-insensitively.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.iter().any(|s| same(s, value)) {
            seen.push(value);
        }
    }
    seen
}

/// When the DR servers are given: one warning naming the DR servers no production server maps to
/// (a DR site may differ in size from production; these carry no host instance).
fn idle_dr_warnings(input: &Input) -> Vec<String> {
    let Some(all) = &input.dr_servers else { return Vec::new() };
    let idle: Vec<&str> =
        all.iter().filter(|dr| !input.mapping.iter().any(|m| same(&m.dr, dr))).map(String::as_str).collect();
    if idle.is_empty() {
        return Vec::new();
    }
    let production = distinct(input.mapping.iter().map(|m| m.production.as_str())).len();
    vec![format!(
        "the DR site has {} runtime servers for {production} mapped production servers: {} carries no host instance",
        all.len(),
        idle.join(", ")
    )]
}

/// One warning per production server with instances and no DR server.
fn unmapped_warnings(mapping: &[ServerPair], production: &[Instance]) -> Vec<String> {
    distinct(production.iter().map(|(_, server)| server.as_str()))
        .into_iter()
        .filter(|server| dr_servers(mapping, server).is_empty())
        .map(|server| {
            let hosts = distinct(production.iter().filter(|(_, s)| same(s, server)).map(|(h, _)| h.as_str()));
            format!(
                "production server {server} has no DR mapping: its host instances ({}) get no DR counterpart",
                hosts.join(", ")
            )
        })
        .collect()
}

/// How many distinct hosts run on `server` among `instances`.
fn count_on(server: &str, instances: &[Instance]) -> usize {
    distinct(instances.iter().filter(|(_, s)| same(s, server)).map(|(h, _)| h.as_str())).len()
}

/// One warning per DR server that takes over more than one production server did (seed B7):
/// it stands in for several production servers that run host instances (N:1 consolidation: its
/// instances do the work of all of theirs, even when it carries as many hosts as each of them),
/// or it will carry more host instances than its busiest production counterpart. Counts include
/// instances the DR server carries already.
fn overload_warnings(
    mapping: &[ServerPair],
    production: &[Instance],
    desired: &[Desired],
    rows: &[HostInstance],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for dr in distinct(mapping.iter().map(|m| m.dr.as_str())) {
        let mut after: Vec<Instance> = rows
            .iter()
            .filter(|r| same(&r.running_server, dr))
            .map(|r| (r.host_name.clone(), r.running_server.clone()))
            .collect();
        after.extend(
            desired.iter().filter(|d| same(&d.server, dr)).map(|d| (d.host.clone(), d.server.clone())),
        );
        let carried = count_on(dr, &after);
        let counterparts =
            distinct(mapping.iter().filter(|m| same(&m.dr, dr)).map(|m| m.production.as_str()));
        let counts: Vec<(&str, usize)> =
            counterparts.iter().map(|p| (*p, count_on(p, production))).filter(|(_, n)| *n > 0).collect();
        let listed: Vec<String> = counts.iter().map(|(p, n)| format!("{p}: {n}")).collect();
        let busiest = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        if counts.len() > 1 {
            let total: usize = counts.iter().map(|(_, n)| n).sum();
            warnings.push(format!(
                "{dr} takes over {} production servers ({}): the work of {total} production host instances on {carried}; \
                 check it can take the load (seed B7: avoid overloading the DR servers)",
                counts.len(),
                listed.join(", ")
            ));
        } else if carried > busiest {
            warnings.push(format!(
                "{dr} will carry {carried} host instances, more than its production counterpart ({}); \
                 check it can take the load (seed B7: avoid overloading the DR servers)",
                listed.join(", ")
            ));
        }
    }
    warnings
}

/// One warning per existing DR instance that is installed but enabled or not stopped.
fn not_standby_warnings(desired: &[Desired]) -> Vec<String> {
    desired
        .iter()
        .filter_map(|d| d.existing.as_ref())
        .filter(|row| row.configuration_state == ConfigurationState::Installed && !row.is_standby())
        .map(|row| {
            let enabled = if row.is_disabled { "disabled" } else { "enabled" };
            format!(
                "{} exists but is {enabled} and {}: a DR host instance must be disabled and stopped",
                row.name, row.service_state
            )
        })
        .collect()
}
