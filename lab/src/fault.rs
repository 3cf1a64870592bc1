//! Fault injection (`drover-lab fault set|clear`, `lab/PROTOCOL.md`, "State and commands of the
//! lab itself"): turns the command-line words into a checked [`Fault`] and adds it to or removes
//! it from the lab. How each fault shows is up to the programs that consult it.

use crate::state::{Fault, Lab, Prereq};

/// Why a fault cannot be set or cleared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    /// Not a fault the lab knows.
    #[error(
        "unknown fault `{0}` (use sql-unreachable, join-sql-unreachable, service-stuck, access-denied, missing-prereq, powershell-missing, sso-stopped, master-secret-unavailable, join-fails-after-sso, not-local-admin, not-sysadmin, cu-level, installed-edition, dtc-blocked, logshipping-lag, logshipping-gap, restore-to-mark-fails, msoledbsql-provider, dead-production-wmi or wmi-caches-group)"
    )]
    Unknown(String),
    /// Wrong arguments for the fault.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// The server is not in the lab.
    #[error("no server {0} in this lab")]
    NoServer(String),
    /// The server runs no SQL Server.
    #[error("{0} is not a SQL server of this lab")]
    NotSql(String),
    /// Not a prerequisite the fault can take away.
    #[error("{0}")]
    Prereq(String),
    // Log shipping (issue 18, L1)
    /// The server is not a DR SQL instance restoring the source's log backups.
    #[error("{0} is not a log-shipping destination of this lab")]
    NotDestination(String),
}

/// Parses `<fault> [args…]` for `fault set`.
pub fn parse(lab: &Lab, kind: &str, args: &[String]) -> Result<Fault, FaultError> {
    let server = |name: &str| lab.server_name(name).ok_or_else(|| FaultError::NoServer(name.to_owned()));
    match kind {
        "sql-unreachable" | "join-sql-unreachable" => {
            let name = match args {
                [] => lab.group.mgmt_server.clone(),
                [name] => server(name)?,
                _ => {
                    return Err(FaultError::Usage(
                        "fault set sql-unreachable|join-sql-unreachable [<sql server>]",
                    ));
                }
            };
            if lab.servers.get(&name).and_then(|s| s.sql.as_ref()).is_none() {
                return Err(FaultError::NotSql(name));
            }
            Ok(if kind == "sql-unreachable" {
                Fault::SqlUnreachable { server: name }
            } else {
                Fault::JoinSqlUnreachable { server: name }
            })
        }
        "service-stuck" => match args {
            [name, service] => Ok(Fault::ServiceStuck { server: server(name)?, service: service.clone() }),
            _ => Err(FaultError::Usage("fault set service-stuck <server> <service>")),
        },
        "access-denied" => match args {
            [name, service] => Ok(Fault::AccessDenied { server: server(name)?, service: service.clone() }),
            _ => Err(FaultError::Usage("fault set access-denied <server> <service>")),
        },
        "missing-prereq" => match args {
            [name, prereq] => Ok(Fault::MissingPrereq {
                server: server(name)?,
                prereq: prereq.parse::<Prereq>().map_err(FaultError::Prereq)?,
            }),
            _ => Err(FaultError::Usage("fault set missing-prereq <server> <dotnet|vcredist|oledb|msdtc>")),
        },
        "powershell-missing" => match args {
            [name] => Ok(Fault::PowershellMissing { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set powershell-missing <server>")),
        },
        // Configuration failures (E2)
        "sso-stopped" => match args {
            [] => lab.group.master_secret_server.clone().map(|server| Fault::SsoStopped { server }).ok_or(
                FaultError::Usage("fault set sso-stopped <server> (the group has no master secret server)"),
            ),
            [name] => Ok(Fault::SsoStopped { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set sso-stopped [<server>]")),
        },
        "master-secret-unavailable" => match args {
            [] => Ok(Fault::MasterSecretUnavailable { server: None }),
            [name] => Ok(Fault::MasterSecretUnavailable { server: Some(server(name)?) }),
            _ => Err(FaultError::Usage("fault set master-secret-unavailable [<joining server>]")),
        },
        "join-fails-after-sso" => match args {
            [name] => Ok(Fault::JoinFailsAfterSso { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set join-fails-after-sso <server>")),
        },
        // Rights, CU level, edition and MSDTC before the join (E1)
        "not-local-admin" => match args {
            [name] => Ok(Fault::NotLocalAdmin { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set not-local-admin <server>")),
        },
        "not-sysadmin" => {
            let name = match args {
                [] => lab.group.mgmt_server.clone(),
                [name] => server(name)?,
                _ => return Err(FaultError::Usage("fault set not-sysadmin [<sql server>]")),
            };
            if lab.servers.get(&name).and_then(|s| s.sql.as_ref()).is_none() {
                return Err(FaultError::NotSql(name));
            }
            Ok(Fault::NotSysadmin { server: name })
        }
        "cu-level" => match args {
            [name, level] => Ok(Fault::CuLevel {
                server: server(name)?,
                level: level.parse().map_err(|_| FaultError::Usage("fault set cu-level <server> <0-99>"))?,
            }),
            _ => Err(FaultError::Usage("fault set cu-level <server> <0-99>")),
        },
        "installed-edition" => match args {
            [name, edition] => {
                Ok(Fault::InstalledEdition { server: server(name)?, edition: product_edition(edition)? })
            }
            _ => Err(FaultError::Usage(
                "fault set installed-edition <server> <enterprise|standard|developer|branch>",
            )),
        },
        "dtc-blocked" => match args {
            [name] => Ok(Fault::DtcBlocked { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set dtc-blocked <server>")),
        },
        // Log shipping (issue 18, L1)
        "logshipping-lag" => match args {
            [name, sets] => Ok(Fault::LogShippingLag {
                server: destination(lab, name)?,
                sets: sets.parse().ok().filter(|n| *n > 0).ok_or(FaultError::Usage(
                    "fault set logshipping-lag <dr sql server> <sets, 1 or more>",
                ))?,
            }),
            _ => Err(FaultError::Usage("fault set logshipping-lag <dr sql server> <sets, 1 or more>")),
        },
        "logshipping-gap" => match args {
            [name] => Ok(Fault::LogShippingGap { server: destination(lab, name)? }),
            _ => Err(FaultError::Usage("fault set logshipping-gap <dr sql server>")),
        },
        "restore-to-mark-fails" => match args {
            [name] => Ok(Fault::RestoreToMarkFails { server: destination(lab, name)? }),
            _ => Err(FaultError::Usage("fault set restore-to-mark-fails <dr sql server>")),
        },
        // Failover, BizTalk side (issue 18, L2)
        "msoledbsql-provider" => match args {
            [name] => Ok(Fault::MsoledbsqlProvider { server: server(name)? }),
            _ => Err(FaultError::Usage("fault set msoledbsql-provider <server>")),
        },
        "dead-production-wmi" => match args {
            [] => Ok(Fault::DeadProductionWmi),
            _ => Err(FaultError::Usage("fault set dead-production-wmi")),
        },
        // Failover, WMI restart (issue 18, F9)
        "wmi-caches-group" => match args {
            [] => Ok(Fault::WmiCachesGroup),
            _ => Err(FaultError::Usage("fault set wmi-caches-group")),
        },
        other => Err(FaultError::Unknown(other.to_owned())),
    }
}

// Log shipping (issue 18, L1)
/// The canonical name of a DR SQL instance that restores the source's log backups.
fn destination(lab: &Lab, name: &str) -> Result<String, FaultError> {
    let server = lab.server_name(name).ok_or_else(|| FaultError::NoServer(name.to_owned()))?;
    lab.destination_name(&server).ok_or(FaultError::NotDestination(server))
}

/// The `ProductEdition` of an edition named on the command line, in any case.
fn product_edition(word: &str) -> Result<String, FaultError> {
    ["Enterprise", "Standard", "Developer", "Branch"]
        .into_iter()
        .find(|e| e.eq_ignore_ascii_case(word))
        .map(str::to_owned)
        .ok_or(FaultError::Usage(
            "fault set installed-edition <server> <enterprise|standard|developer|branch>",
        ))
}

/// Sets a fault (once).
pub fn set(lab: &mut Lab, fault: Fault) {
    if !lab.faults.contains(&fault) {
        // Log shipping (issue 18, L1): a lag or a gap changes the destination when set.
        crate::logshipping::on_fault_set(lab, &fault);
        lab.faults.push(fault);
    }
}

/// `fault clear all`, `fault clear <fault>` (every fault of that kind) or `fault clear <fault>
/// <args…>` (that one fault); how many were cleared.
pub fn clear(lab: &mut Lab, what: &str, args: &[String]) -> Result<usize, FaultError> {
    let before = lab.faults.len();
    match (what, args) {
        ("all", []) => lab.faults.clear(),
        ("all", _) => return Err(FaultError::Usage("fault clear all")),
        (
            "sql-unreachable"
            | "join-sql-unreachable"
            | "service-stuck"
            | "access-denied"
            | "missing-prereq"
            | "powershell-missing"
            // Configuration failures (E2)
            | "sso-stopped"
            | "master-secret-unavailable"
            | "join-fails-after-sso"
            // Rights, CU level, edition and MSDTC before the join (E1)
            | "not-local-admin"
            | "not-sysadmin"
            | "cu-level"
            | "installed-edition"
            | "dtc-blocked"
            // Log shipping (issue 18, L1)
            | "logshipping-lag"
            | "logshipping-gap"
            | "restore-to-mark-fails",
            [],
        ) => lab.faults.retain(|f| f.kind() != what),
        // Failover, BizTalk side (issue 18, L2)
        ("msoledbsql-provider" | "dead-production-wmi", []) => lab.faults.retain(|f| f.kind() != what),
        // Failover, WMI restart (issue 18, F9)
        ("wmi-caches-group", []) => lab.faults.retain(|f| f.kind() != what),
        (kind, args) => {
            let fault = parse(lab, kind, args)?;
            lab.faults.retain(|f| *f != fault);
        }
    }
    // Log shipping (issue 18, L1): a cleared gap's file is back.
    crate::logshipping::on_faults_cleared(lab);
    Ok(before - lab.faults.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::fresh_lab;

    fn words(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn faults_are_checked_set_once_and_cleared() {
        let mut lab = fresh_lab();
        let fault = parse(&lab, "sql-unreachable", &[]).expect("default");
        assert_eq!(fault, Fault::SqlUnreachable { server: "PRDSQL01".into() });
        set(&mut lab, fault.clone());
        set(&mut lab, fault);
        let stuck = parse(&lab, "service-stuck", &words(&["drbts01", "ENTSSO"])).expect("stuck");
        assert_eq!(stuck, Fault::ServiceStuck { server: "DRBTS01".into(), service: "ENTSSO".into() });
        set(&mut lab, stuck);
        let prereq = parse(&lab, "missing-prereq", &words(&["DRBTS02", "oledb"])).expect("prereq");
        set(&mut lab, prereq);
        let denied = parse(&lab, "access-denied", &words(&["drbts01", "BTSSvc$SendHost"])).expect("denied");
        assert_eq!(
            denied,
            Fault::AccessDenied { server: "DRBTS01".into(), service: "BTSSvc$SendHost".into() }
        );
        assert_eq!(denied.to_string(), "access-denied DRBTS01 BTSSvc$SendHost");
        set(&mut lab, denied);
        assert_eq!(lab.faults.len(), 4);
        assert_eq!(clear(&mut lab, "service-stuck", &[]), Ok(1));
        assert_eq!(clear(&mut lab, "missing-prereq", &words(&["DRBTS02", "dotnet"])), Ok(0));
        assert_eq!(clear(&mut lab, "access-denied", &[]), Ok(1));
        assert_eq!(clear(&mut lab, "all", &[]), Ok(2));
    }

    #[test]
    fn bad_faults_are_refused() {
        let lab = fresh_lab();
        assert_eq!(parse(&lab, "disk-full", &[]), Err(FaultError::Unknown("disk-full".into())));
        assert_eq!(
            parse(&lab, "sql-unreachable", &words(&["DRBTS01"])),
            Err(FaultError::NotSql("DRBTS01".into()))
        );
        assert_eq!(
            parse(&lab, "service-stuck", &words(&["NOPE", "x"])),
            Err(FaultError::NoServer("NOPE".into()))
        );
        assert!(matches!(
            parse(&lab, "missing-prereq", &words(&["DRBTS01", "iis"])),
            Err(FaultError::Prereq(_))
        ));
        assert!(matches!(parse(&lab, "service-stuck", &words(&["DRBTS01"])), Err(FaultError::Usage(_))));
        assert!(matches!(parse(&lab, "access-denied", &words(&["DRBTS01"])), Err(FaultError::Usage(_))));
        assert!(matches!(parse(&lab, "powershell-missing", &[]), Err(FaultError::Usage(_))));
    }

    #[test]
    fn powershell_missing_names_one_server() {
        let mut lab = fresh_lab();
        let fault = parse(&lab, "powershell-missing", &words(&["drbts02"])).expect("parsed");
        assert_eq!(fault, Fault::PowershellMissing { server: "DRBTS02".into() });
        assert_eq!(fault.to_string(), "powershell-missing DRBTS02");
        set(&mut lab, fault);
        assert!(lab.powershell_missing("DRBTS02") && !lab.powershell_missing("DRBTS01"));
        assert_eq!(clear(&mut lab, "powershell-missing", &[]), Ok(1));
    }

    // Configuration failures (E2)
    #[test]
    fn configuration_faults_name_their_servers() {
        let mut lab = fresh_lab();
        let stopped = parse(&lab, "sso-stopped", &[]).expect("the master secret server by default");
        assert_eq!(stopped, Fault::SsoStopped { server: "PRDSSO01".into() });
        set(&mut lab, stopped);
        assert!(lab.sso_stopped("prdsso01") && !lab.sso_stopped("DRBTS01"));
        let one = parse(&lab, "master-secret-unavailable", &words(&["drsso01"])).expect("one server");
        assert_eq!(one.to_string(), "master-secret-unavailable DRSSO01");
        set(&mut lab, one);
        assert!(lab.master_secret_unavailable("DRSSO01") && !lab.master_secret_unavailable("DRBTS01"));
        let every = parse(&lab, "master-secret-unavailable", &[]).expect("every server");
        set(&mut lab, every);
        assert!(lab.master_secret_unavailable("DRBTS01"));
        let partial = parse(&lab, "join-fails-after-sso", &words(&["drbts01"])).expect("partial");
        assert_eq!(partial.to_string(), "join-fails-after-sso DRBTS01");
        set(&mut lab, partial);
        assert!(lab.join_fails_after_sso("DRBTS01") && !lab.join_fails_after_sso("DRBTS02"));
        assert!(matches!(parse(&lab, "join-fails-after-sso", &[]), Err(FaultError::Usage(_))));
        assert_eq!(clear(&mut lab, "master-secret-unavailable", &[]), Ok(2));
        assert_eq!(clear(&mut lab, "sso-stopped", &words(&["PRDSSO01"])), Ok(1));
        assert_eq!(clear(&mut lab, "join-fails-after-sso", &[]), Ok(1));
    }

    // Log shipping (issue 18, L1)
    #[test]
    fn log_shipping_faults_name_a_destination() {
        let mut lab = fresh_lab();
        let lag = parse(&lab, "logshipping-lag", &words(&["drsql01", "2"])).expect("lag");
        assert_eq!(lag.to_string(), "logshipping-lag DRSQL01 2");
        set(&mut lab, lag);
        assert_eq!(lab.log_shipping.destinations["DRSQL01"].last_restored, Some(2), "two sets back");
        let gap = parse(&lab, "logshipping-gap", &words(&["DRSQL01"])).expect("gap");
        set(&mut lab, gap);
        assert_eq!(lab.log_shipping.destinations["DRSQL01"].missing_set, Some(3));
        let fails = parse(&lab, "restore-to-mark-fails", &words(&["DRSQL01"])).expect("fails");
        assert_eq!(fails.to_string(), "restore-to-mark-fails DRSQL01");
        set(&mut lab, fails);
        assert_eq!(
            parse(&lab, "logshipping-gap", &words(&["PRDSQL01"])),
            Err(FaultError::NotDestination("PRDSQL01".into()))
        );
        assert!(matches!(
            parse(&lab, "logshipping-lag", &words(&["DRSQL01", "0"])),
            Err(FaultError::Usage(_))
        ));
        assert!(matches!(parse(&lab, "logshipping-lag", &words(&["DRSQL01"])), Err(FaultError::Usage(_))));
        assert_eq!(clear(&mut lab, "logshipping-gap", &[]), Ok(1));
        assert_eq!(lab.log_shipping.destinations["DRSQL01"].missing_set, None, "the file is back");
        assert_eq!(clear(&mut lab, "all", &[]), Ok(2));
    }

    // Failover, BizTalk side (issue 18, L2)
    #[test]
    fn failover_faults_name_their_servers() {
        let mut lab = fresh_lab();
        let provider = parse(&lab, "msoledbsql-provider", &words(&["drbts01"])).expect("provider");
        assert_eq!(provider.to_string(), "msoledbsql-provider DRBTS01");
        set(&mut lab, provider);
        assert!(lab.msoledbsql_provider("DRBTS01") && !lab.msoledbsql_provider("DRBTS02"));
        let dead = parse(&lab, "dead-production-wmi", &[]).expect("dead");
        assert_eq!(dead.to_string(), "dead-production-wmi");
        set(&mut lab, dead);
        assert!(lab.wmi_unreachable("prdbts01") && !lab.wmi_unreachable("DRBTS01"));
        assert!(matches!(parse(&lab, "dead-production-wmi", &words(&["X"])), Err(FaultError::Usage(_))));
        assert!(matches!(parse(&lab, "msoledbsql-provider", &[]), Err(FaultError::Usage(_))));
        assert_eq!(clear(&mut lab, "dead-production-wmi", &[]), Ok(1));
        assert_eq!(clear(&mut lab, "msoledbsql-provider", &words(&["DRBTS01"])), Ok(1));
    }

    // Rights, CU level, edition and MSDTC before the join (E1)
    #[test]
    fn faults_before_the_join_name_their_server() {
        let mut lab = fresh_lab();
        let cases = [
            ("not-local-admin", words(&["drbts01"]), "not-local-admin DRBTS01"),
            ("not-sysadmin", words(&[]), "not-sysadmin PRDSQL01"),
            ("cu-level", words(&["drbts02", "5"]), "cu-level DRBTS02 5"),
            ("installed-edition", words(&["DRBTS03", "developer"]), "installed-edition DRBTS03 Developer"),
            ("dtc-blocked", words(&["DRBTS01"]), "dtc-blocked DRBTS01"),
        ];
        for (kind, args, shown) in cases {
            let fault = parse(&lab, kind, &args).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!((fault.kind(), fault.to_string()), (kind, shown.to_owned()));
            set(&mut lab, fault);
        }
        assert!(lab.not_local_admin("DRBTS01") && !lab.not_local_admin("DRBTS02"));
        assert!(lab.not_sysadmin("prdsql01"));
        assert_eq!((lab.cu_level("DRBTS02"), lab.cu_level("PRDBTS01")), (5, crate::init::CU_LEVEL));
        assert_eq!(
            (lab.installed_edition("DRBTS03").as_str(), lab.installed_edition("DRBTS01").as_str()),
            ("Developer", "Enterprise")
        );
        assert!(lab.dtc_blocked("drbts01"));
        assert!(matches!(parse(&lab, "cu-level", &words(&["DRBTS02", "five"])), Err(FaultError::Usage(_))));
        assert!(matches!(
            parse(&lab, "installed-edition", &words(&["DRBTS02", "free"])),
            Err(FaultError::Usage(_))
        ));
        assert_eq!(
            parse(&lab, "not-sysadmin", &words(&["DRBTS01"])),
            Err(FaultError::NotSql("DRBTS01".into()))
        );
        assert_eq!(clear(&mut lab, "cu-level", &[]), Ok(1));
        assert_eq!(clear(&mut lab, "all", &[]), Ok(4));
    }
}
