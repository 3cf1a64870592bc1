//! The fresh lab of `drover-lab init` (`lab/PROTOCOL.md`, "The fresh lab"): production group
//! `BizTalkGroup` on `PRDSQL01`, two joined production runtime servers with their host instances,
//! the master secret server `PRDSSO01` (with the backup of the master secret), three DR runtime
//! servers with BizTalk installed but not configured, the DR site's SSO server `DRSSO01` (SSO
//! installed, not configured), and the DR SQL server `DRSQL01`, whose production counterpart
//! `PRDSQL01` keeps the configuration file exported from each production runtime server
//! ([`crate::export`]).
//!
//! It only builds values; writing them is [`crate::state::StateFile::create`]'s job.

use std::collections::BTreeMap;

use crate::export::{self, EXPORTS_SERVER, RUNTIME_INSTALLED, SSO_INSTALLED};
use crate::state::{
    Assembly, DtcSettings, Edition, Group, Host, HostInstance, Lab, Platform, Product, RegValue, Role,
    Server, Service, ServiceState, Site, SqlInstance, StartType,
};

/// The domain of every account.
pub const DOMAIN: &str = "CONTOSO";
/// Where BizTalk is installed (`BTSINSTALLPATH`).
pub const BTS_INSTALL_PATH: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\";
/// Production's BizTalk file version.
pub const BIZTALK_FILE_VERSION: &str = "3.13.717.0";
/// The last BizTalk Server 2020 cumulative update installed on every server of the lab (production
/// and DR alike); the `cu-level` fault sets another one on a server.
pub const CU_LEVEL: u32 = 6;
/// Registry key of group membership, as stored: in the 32-bit view (`WOW6432Node`), where the
/// 32-bit `Configuration.exe` and RestoreConfig.vbe write `SOFTWARE\Microsoft\BizTalk
/// Server\3.0\Administration` ([`crate::programs::reg::in_32_bit_view`]).
pub const ADMIN_KEY: &str = r"SOFTWARE\WOW6432Node\Microsoft\BizTalk Server\3.0\Administration";
/// Registry key of .NET 4.
pub const NDP_KEY: &str = r"SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full";
/// Registry key of the VC++ x64 runtime.
pub const VC_X64_KEY: &str = r"SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64";
/// Registry key of the VC++ x86 runtime.
pub const VC_X86_KEY: &str = r"SOFTWARE\WOW6432Node\Microsoft\VisualStudio\14.0\VC\Runtimes\x86";
/// Registry key of the OLE DB driver.
pub const OLEDB_KEY: &str = r"SOFTWARE\Microsoft\MSOLEDBSQL";
/// Registry key of machine environment variables.
pub const ENVIRONMENT_KEY: &str = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment";
/// The application package staged on every DR server.
pub const STAGED_MSI: &str = r"C:\Staging\Contoso.Orders.msi";
/// Registry key of the SSO database an SSO server belongs to (values `Server`, `Database`).
pub const ENTSSO_SQL_KEY: &str = r"SOFTWARE\Microsoft\ENTSSO\SQL";
/// The backup of the master secret on the master secret server (`ssoconfig -backupSecret`).
pub const SECRET_BACKUP: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On\SSOSecret.bak";
/// The DR site's SSO server.
pub const DR_SSO: &str = "DRSSO01";

/// The production runtime servers.
pub const PROD_RUNTIME: [&str; 2] = ["PRDBTS01", "PRDBTS02"];
/// The DR runtime servers.
pub const DR_RUNTIME: [&str; 3] = ["DRBTS01", "DRBTS02", "DRBTS03"];

/// The group's isolated host (the Configuration wizard's default name): its instances run in IIS,
/// have no Windows service, and run as `CONTOSO\svc-bts-ihost`, a member of `BizTalk Isolated
/// Host Users`, where the in-process hosts' instances run as `CONTOSO\svc-bts`.
pub const ISOLATED_HOST: &str = "BizTalkServerIsolatedHost";
/// The production server running the isolated host's instance.
const ISOLATED_ON: &str = "PRDBTS01";

/// The in-process host instances of production: (host, server).
const PROD_INSTANCES: [(&str, &str); 4] = [
    ("ReceiveHost", "PRDBTS01"),
    ("SendHost", "PRDBTS01"),
    ("SendHost", "PRDBTS02"),
    ("ProcessingHost", "PRDBTS02"),
];

/// The lab as `drover-lab init` writes it, Enterprise Edition.
pub fn fresh_lab() -> Lab {
    fresh_lab_of(Edition::Enterprise)
}

/// The lab as `drover-lab init --edition <edition>` writes it: the same servers and group, the
/// edition recorded.
pub fn fresh_lab_of(edition: Edition) -> Lab {
    let mut servers = BTreeMap::new();
    for name in PROD_RUNTIME {
        let mut server = windows_server(Site::Prod, Role::BiztalkRuntime);
        join(&mut server);
        server.configured_features = export::configured_features(name);
        server.services.push(entsso(StartType::Auto, ServiceState::Running, &account("svc-sso")));
        server.services.push(rule_engine(&account("svc-bre")));
        servers.insert(name.to_owned(), server);
    }
    for (host, server) in PROD_INSTANCES {
        if let Some(server) = servers.get_mut(server) {
            server.services.push(host_service(
                host,
                &account("svc-bts"),
                StartType::Auto,
                ServiceState::Running,
            ));
        }
    }
    let mut sso = sso_server(Site::Prod, Role::SsoMaster);
    sso.services.push(entsso(StartType::Auto, ServiceState::Running, &account("svc-sso")));
    sso_join(&mut sso);
    sso.configured_features = vec!["SSOServer,Engine".into()];
    sso.write_file(SECRET_BACKUP, secret_backup());
    servers.insert("PRDSSO01".to_owned(), sso);
    let mut dr_sso = sso_server(Site::Dr, Role::SsoMasterDr);
    dr_sso.services.push(entsso(StartType::Demand, ServiceState::Stopped, "LocalSystem"));
    servers.insert(DR_SSO.to_owned(), dr_sso);
    for name in DR_RUNTIME {
        servers.insert(name.to_owned(), unconfigured_runtime(Site::Dr));
    }
    let mut prod_sql = windows_server(Site::Prod, Role::Sql);
    prod_sql.sql = Some(SqlInstance {
        databases: ["BizTalkMgmtDb", "SSODB", "BizTalkMsgBoxDb", "BizTalkRuleEngineDb", "BizTalkDTADb"]
            .map(String::from)
            .to_vec(),
        reachable: true,
        // Logins (issue 18, F4)
        logins: crate::logins::production(),
    });
    for name in PROD_RUNTIME {
        let text = export::exported_configuration(name, "PRDSQL01");
        prod_sql.write_file(&export::export_path(name), text.into_bytes());
    }
    servers.insert(EXPORTS_SERVER.to_owned(), prod_sql);
    let mut dr_sql = windows_server(Site::Dr, Role::Sql);
    // Log shipping (issue 18, L1): the log-shipped databases, RESTORING (crate::logshipping).
    let shipped = crate::logshipping::SHIPPED_DATABASES.map(String::from).to_vec();
    dr_sql.sql = Some(SqlInstance { databases: shipped, reachable: true, logins: crate::logins::dr_site() });
    servers.insert("DRSQL01".to_owned(), dr_sql);

    let group = Group {
        name: "BizTalkGroup".into(),
        mgmt_server: "PRDSQL01".into(),
        mgmt_db: "BizTalkMgmtDb".into(),
        sso_server: "PRDSQL01".into(),
        sso_db: "SSODB".into(),
        master_secret_server: Some("PRDSSO01".into()),
        members: PROD_RUNTIME.map(String::from).to_vec(),
        hosts: ["ReceiveHost", "SendHost", "ProcessingHost"]
            .map(|name| Host { name: name.into(), host_type: 1 })
            .into_iter()
            .chain([Host { name: ISOLATED_HOST.into(), host_type: 2 }])
            .collect(),
        host_instances: PROD_INSTANCES
            .map(|(host, server)| HostInstance {
                name: HostInstance::name_for(host, server),
                host: host.into(),
                server: server.into(),
                configuration_state: 1,
                is_disabled: false,
                service_state: ServiceState::Running,
                account: account("svc-bts"),
                password_sha256: None,
            })
            .into_iter()
            .chain([HostInstance {
                name: HostInstance::name_for(ISOLATED_HOST, ISOLATED_ON),
                host: ISOLATED_HOST.into(),
                server: ISOLATED_ON.into(),
                configuration_state: 1,
                is_disabled: false,
                service_state: ServiceState::Stopped,
                account: account("svc-bts-ihost"),
                password_sha256: None,
            }])
            .collect(),
        applications: Vec::new(),
        // Failover, BizTalk side (issue 18, L2)
        activation: crate::activation::fresh("PRDSQL01", "PRDSSO01"),
    };
    Lab {
        domain: DOMAIN.into(),
        servers,
        group,
        edition,
        domain_groups: domain_groups(),
        faults: Vec::new(),
        joins: Vec::new(),
        unjoins: Vec::new(),
        uninstalls: Vec::new(),
        // Log shipping (issue 18, L1)
        log_shipping: crate::logshipping::fresh("PRDSQL01", &["DRSQL01"]),
    }
}

/// A BizTalk runtime server with the base platform and the BizTalk binaries at production's
/// version, not configured: no group membership, `ENTSSO` manual and stopped,
/// `RuleEngineUpdateService` running, no host-instance service, an empty GAC, and the
/// application package staged in `C:\Staging\`. Every fresh DR server, and a server after
/// `drover-lab replace`.
pub fn unconfigured_runtime(site: Site) -> Server {
    let mut server = windows_server(site, Role::BiztalkRuntime);
    server.services.push(entsso(StartType::Demand, ServiceState::Stopped, "LocalSystem"));
    server.services.push(rule_engine("LocalSystem"));
    server.write_file(STAGED_MSI, staged_package());
    server
}

/// A server with Enterprise SSO installed and nothing of BizTalk's runtime (a master secret
/// server).
fn sso_server(site: Site, role: Role) -> Server {
    let mut server = windows_server(site, role);
    server.installed_features = SSO_INSTALLED.map(String::from).to_vec();
    server
}

/// `ssoconfig -backupSecret`'s file: the lab's stands for the encrypted secret (binary).
fn secret_backup() -> Vec<u8> {
    let mut bytes = b"ENTSSO master secret backup of PRDSSO01\0".to_vec();
    bytes.extend((0u8..=255).rev());
    bytes
}

fn account(user: &str) -> String {
    format!(r"{DOMAIN}\{user}")
}

/// A Windows server with the platform every server of the lab has and BizTalk installed.
fn windows_server(site: Site, role: Role) -> Server {
    let mut server = Server {
        site,
        role,
        platform: Platform {
            os_caption: "Microsoft Windows Server 2019 Datacenter".into(),
            os_version: "10.0.17763".into(),
            build_number: "17763".into(),
            total_physical_memory: 16 * 1024 * 1024 * 1024,
            logical_processors: 4,
            c_file_system: "NTFS".into(),
            c_free_bytes: 120 * 1024 * 1024 * 1024,
            dtc: DtcSettings {
                inbound: true,
                outbound: true,
                remote_client_access: true,
                authentication_level: "Mutual".into(),
            },
            biztalk_file_version: Some(BIZTALK_FILE_VERSION.into()),
        },
        registry: BTreeMap::new(),
        services: Vec::new(),
        files: BTreeMap::new(),
        gac: Vec::new(),
        products: [
            "Microsoft BizTalk Server 2020",
            "Microsoft Visual C++ 2015-2019 Redistributable (x64)",
            "Microsoft Visual C++ 2015-2019 Redistributable (x86)",
            "Microsoft OLE DB Driver for SQL Server",
        ]
        .map(|name| Product { name: name.into(), target_dir: None })
        .to_vec(),
        sql: None,
        installed_features: match role {
            Role::BiztalkRuntime => RUNTIME_INSTALLED.map(String::from).to_vec(),
            _ => Vec::new(),
        },
        configured_features: Vec::new(),
        wmi_mgmt_cache: None,
    };
    server.set_reg_value(NDP_KEY, "Release", RegValue::Dword(528049));
    server.set_reg_value(VC_X64_KEY, "Installed", RegValue::Dword(1));
    server.set_reg_value(VC_X86_KEY, "Installed", RegValue::Dword(1));
    server.set_reg_value(OLEDB_KEY, "InstalledVersion", RegValue::Sz("18.6.7.0".into()));
    server.set_reg_value(ENVIRONMENT_KEY, "BTSINSTALLPATH", RegValue::Sz(BTS_INSTALL_PATH.into()));
    server
}

/// Marks a server as joined to the lab's group (registry only).
fn join(server: &mut Server) {
    server.set_reg_value(ADMIN_KEY, "MgmtDBServer", RegValue::Sz("PRDSQL01".into()));
    server.set_reg_value(ADMIN_KEY, "MgmtDBName", RegValue::Sz("BizTalkMgmtDb".into()));
    sso_join(server);
}

/// Marks a server as joined to the lab's SSO system (registry only).
fn sso_join(server: &mut Server) {
    server.set_reg_value(ENTSSO_SQL_KEY, "Server", RegValue::Sz("PRDSQL01".into()));
    server.set_reg_value(ENTSSO_SQL_KEY, "Database", RegValue::Sz("SSODB".into()));
}

/// The Enterprise Single Sign-On service.
pub fn entsso(start_type: StartType, state: ServiceState, account: &str) -> Service {
    Service {
        name: "ENTSSO".into(),
        display_name: "Enterprise Single Sign-On Service".into(),
        start_type,
        state,
        account: account.into(),
        password_sha256: None,
        binary_path: r#""C:\Program Files\Common Files\Enterprise Single Sign-On\ENTSSO.exe""#.into(),
        dependencies: Vec::new(),
    }
}

fn rule_engine(account: &str) -> Service {
    Service {
        name: "RuleEngineUpdateService".into(),
        display_name: "Rule Engine Update Service".into(),
        start_type: StartType::Auto,
        state: ServiceState::Running,
        account: account.into(),
        password_sha256: None,
        binary_path: r#""C:\Program Files (x86)\Common Files\Microsoft BizTalk\RuleEngineUpdateService.exe""#
            .into(),
        dependencies: Vec::new(),
    }
}

/// The Windows service of a host instance, `BTSSvc$<host>`.
pub fn host_service(host: &str, account: &str, start_type: StartType, state: ServiceState) -> Service {
    Service {
        name: HostInstance::service_name(host),
        display_name: format!("BizTalk Service BizTalk Group : {host}"),
        start_type,
        state,
        account: account.into(),
        password_sha256: None,
        binary_path: format!(r#""{BTS_INSTALL_PATH}BTSNTSvc64.exe" -group "BizTalk Group" -name "{host}""#),
        dependencies: vec!["ENTSSO".into()],
    }
}

/// `Contoso.Orders.msi`: the lab's packages are JSON manifests.
fn staged_package() -> Vec<u8> {
    let assembly = |name: &str| Assembly {
        name: name.into(),
        version: "1.0.0.0".into(),
        culture: "neutral".into(),
        public_key_token: "31bf3856ad364e35".into(),
    };
    let manifest = serde_json::json!({
        "product": "Contoso.Orders",
        "assemblies": [assembly("Contoso.Orders.Schemas"), assembly("Contoso.Orders.Maps")],
    });
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The domain groups of docs/biztalk.md, "Prerequisites", with their members.
fn domain_groups() -> BTreeMap<String, Vec<String>> {
    [
        ("SSO Administrators", &["bts-admin", "svc-sso"][..]),
        ("SSO Affiliate Administrators", &["bts-admin"]),
        ("BizTalk Server Administrators", &["bts-admin"]),
        ("BizTalk Server Operators", &["bts-operator"]),
        ("BizTalk Server B2B Operators", &["bts-admin"]),
        ("BizTalk Server Read Only Users", &["bts-operator"]),
        ("BizTalk Application Users", &["svc-bts"]),
        ("BizTalk Isolated Host Users", &["svc-bts-ihost"]),
    ]
    .into_iter()
    .map(|(name, members)| (name.to_owned(), members.iter().map(|m| (*m).to_owned()).collect()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fresh_lab_is_as_documented() {
        let lab = fresh_lab();
        assert_eq!(lab.servers.len(), 9);
        let dr_sso = &lab.servers[DR_SSO];
        assert_eq!((dr_sso.site, dr_sso.role), (Site::Dr, Role::SsoMasterDr));
        assert!(dr_sso.reg_value(ENTSSO_SQL_KEY, "Server").is_none(), "not joined to the SSO system");
        assert!(lab.servers["PRDSSO01"].file(SECRET_BACKUP).is_some());
        let export = lab.servers[EXPORTS_SERVER].file(&export::export_path("PRDBTS02")).expect("exported");
        assert!(String::from_utf8_lossy(export).contains("<Feature Name=\"BAMTools\""));
        assert_eq!(lab.group.members, ["PRDBTS01", "PRDBTS02"]);
        assert_eq!(lab.group.master_secret_server.as_deref(), Some("PRDSSO01"));
        assert_eq!(lab.group.host_instances.len(), 5);
        let isolated = lab.group.host_instances.last().expect("the isolated host's instance");
        assert_eq!(
            (isolated.host.as_str(), isolated.account.as_str()),
            (ISOLATED_HOST, r"CONTOSO\svc-bts-ihost")
        );
        assert!(lab.servers[ISOLATED_ON].service("BTSSvc$BizTalkServerIsolatedHost").is_none(), "no service");
        let dr = &lab.servers["DRBTS01"];
        assert!(dr.reg_value(ADMIN_KEY, "MgmtDBServer").is_none());
        let entsso = dr.service("entsso").expect("ENTSSO");
        assert_eq!((entsso.start_type, entsso.state), (StartType::Demand, ServiceState::Stopped));
        assert!(dr.file(STAGED_MSI).is_some());
        let prod = &lab.servers["PRDBTS02"];
        assert_eq!(prod.reg_value(ADMIN_KEY, "MgmtDBName"), Some(&RegValue::Sz("BizTalkMgmtDb".into())));
        assert!(prod.service("BTSSvc$SendHost").is_some() && prod.service("BTSSvc$ReceiveHost").is_none());
        assert!(
            lab.sql_reachable("PRDSQL01") && lab.sql_reachable("DRSQL01") && !lab.sql_reachable("DRBTS01")
        );
    }
}
