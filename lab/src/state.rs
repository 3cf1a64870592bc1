//! The lab's state: the Windows servers (registry, services, files, GAC, installed products,
//! platform facts), the SQL instances, the BizTalk group and the faults, as one serde model
//! stored in a JSON file (`lab/PROTOCOL.md`, "State and commands of the lab itself").
//!
//! This module owns the model and its persistence: every read-modify-write happens under an
//! exclusive `flock` on `<state>.lock` ([`StateFile::update`]) and every write is atomic (a
//! temporary file in the same folder, renamed over the state). It knows nothing of the programs
//! that change the state; those live in [`crate::programs`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lab {
    /// The Windows domain of every account (`CONTOSO`).
    pub domain: String,
    /// Servers by computer name.
    pub servers: BTreeMap<String, Server>,
    /// The BizTalk group.
    pub group: Group,
    /// The BizTalk Server edition of the group (and of every runtime server's binaries).
    #[serde(default)]
    pub edition: Edition,
    /// Domain groups (name to member account names, without the domain), for `net group`.
    pub domain_groups: BTreeMap<String, Vec<String>>,
    /// Faults in force.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Every join of a server to the group that took effect, in order (a server already joined
    /// is skipped and not listed again; a replaced server that joins again is listed again, as is
    /// a Standard Edition restore with `RestoreConfig.vbe`): lets tests check no server was joined
    /// twice.
    #[serde(default)]
    pub joins: Vec<String>,
    /// Every server unconfigured with `Configuration.exe /U` while it was joined, in order.
    #[serde(default)]
    pub unjoins: Vec<String>,
    /// Every host instance uninstalled with `MSBTS_HostInstance.Uninstall` (the removal script),
    /// by name, in order; instances removed by `Configuration.exe /U` are not listed. With
    /// [`Lab::unjoins`], lets tests check what compensation undid and in which order.
    #[serde(default)]
    pub uninstalls: Vec<String>,
    // Log shipping (issue 18, L1)
    /// BizTalk log shipping from the production SQL Server to the DR SQL instances.
    #[serde(default)]
    pub log_shipping: crate::logshipping::LogShipping,
}

/// The BizTalk Server edition: Enterprise (and Developer) servers join a group with the
/// Configuration tool; a Standard Edition server cannot join one and restores its saved
/// configuration with `RestoreConfig.vbe` instead (`docs/biztalk.md`, "By edition").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edition {
    /// Enterprise (or Developer) Edition.
    #[default]
    Enterprise,
    /// Standard Edition.
    Standard,
}

impl Edition {
    /// The name on the command line and in the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Enterprise => "enterprise",
            Edition::Standard => "standard",
        }
    }

    /// The `ProductEdition` registry value of a server with this edition installed.
    pub fn product_edition(self) -> &'static str {
        match self {
            Edition::Enterprise => "Enterprise",
            Edition::Standard => "Standard",
        }
    }
}

impl FromStr for Edition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Edition::Enterprise, Edition::Standard]
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown edition `{s}` (use enterprise or standard)"))
    }
}

/// A site of the lab; every site is a group in the Drover inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Site {
    /// Production.
    Prod,
    /// Disaster recovery.
    Dr,
}

impl Site {
    /// The inventory name of the site.
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Prod => "prod",
            Site::Dr => "dr",
        }
    }
}

/// What a server is for; written as `vars.role` in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A BizTalk runtime server (runs host instances).
    BiztalkRuntime,
    /// The SSO master secret server.
    SsoMaster,
    /// The DR site's SSO server: joined to the SSO system only, promoted to master secret server
    /// at failover (Seed B's "disaster recovery Enterprise Single Sign-On Master Secret server").
    SsoMasterDr,
    /// A SQL Server instance.
    Sql,
}

impl Role {
    /// The inventory name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::BiztalkRuntime => "biztalk-runtime",
            Role::SsoMaster => "sso-master",
            Role::SsoMasterDr => "sso-master-dr",
            Role::Sql => "sql",
        }
    }
}

/// One Windows server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Server {
    /// Its site.
    pub site: Site,
    /// What it is for.
    pub role: Role,
    /// Operating system, hardware and MSDTC facts.
    pub platform: Platform,
    /// `HKLM` keys (without the hive, such as `SOFTWARE\Microsoft\MSOLEDBSQL`) to their values.
    pub registry: BTreeMap<String, BTreeMap<String, RegValue>>,
    /// Windows services.
    pub services: Vec<Service>,
    /// The file system: normalised path ([`normalise_path`]) to file.
    #[serde(default)]
    pub files: BTreeMap<String, FileEntry>,
    /// Assemblies in the global assembly cache.
    #[serde(default)]
    pub gac: Vec<Assembly>,
    /// Installed products (Add/Remove Programs).
    #[serde(default)]
    pub products: Vec<Product>,
    /// The SQL Server instance this server runs, if any.
    #[serde(default)]
    pub sql: Option<SqlInstance>,
    /// What BizTalk setup installed (`InstalledFeature` names: `SSOServer`, `BAMTools`,
    /// `BizTalkTMS`…): the Configuration tool configures only features whose component is
    /// installed.
    #[serde(default)]
    pub installed_features: Vec<String>,
    /// Features the Configuration tool configured on this computer, by their `Feature Name`
    /// (`SSOServer,Engine`, `WMI`, `BAMTools`…), in the order configured.
    #[serde(default)]
    pub configured_features: Vec<String>,
    // Failover, WMI restart (issue 18, F9)
    /// Under the `wmi-caches-group` fault: the management database's SQL Server BizTalk's WMI
    /// provider read when winmgmt last started, kept when `UpdateRegistry.vbs` re-points the
    /// registry and dropped when winmgmt restarts ([`crate::programs::powershell`]'s
    /// `Restart-Service`). `None`: the provider reads what the registry names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wmi_mgmt_cache: Option<String>,
}

/// Facts the prerequisite probes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Platform {
    /// `Win32_OperatingSystem.Caption`.
    pub os_caption: String,
    /// `Win32_OperatingSystem.Version`.
    pub os_version: String,
    /// `Win32_OperatingSystem.BuildNumber`.
    pub build_number: String,
    /// Bytes of memory.
    pub total_physical_memory: u64,
    /// Logical processors.
    pub logical_processors: u32,
    /// File system of `C:`.
    pub c_file_system: String,
    /// Free bytes on `C:`.
    pub c_free_bytes: u64,
    /// MSDTC network settings.
    pub dtc: DtcSettings,
    /// File version of `BTSNTSvc.exe`, when BizTalk is installed.
    pub biztalk_file_version: Option<String>,
}

/// `Get-DtcNetworkSetting -DtcName Local`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DtcSettings {
    /// Inbound transactions allowed.
    pub inbound: bool,
    /// Outbound transactions allowed.
    pub outbound: bool,
    /// Network DTC access for remote clients.
    pub remote_client_access: bool,
    /// `Mutual`, `Incoming`, `NoAuth`.
    pub authentication_level: String,
}

/// A registry value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RegValue {
    /// A string.
    #[serde(rename = "REG_SZ")]
    Sz(String),
    /// A 32-bit number.
    #[serde(rename = "REG_DWORD")]
    Dword(u32),
}

/// A Windows service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Service {
    /// Service name (`BTSSvc$SendHost`), case-insensitive.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Start type.
    pub start_type: StartType,
    /// Current state.
    pub state: ServiceState,
    /// Logon account (`SERVICE_START_NAME`).
    pub account: String,
    /// The SHA-256 (lower-case hex) of the logon password the service was last configured with
    /// (`Configuration.exe`, a host instance's `Install`), when one was given: what the lab was
    /// given, checkable exactly, without the state file holding a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sha256: Option<String>,
    /// `BINARY_PATH_NAME`.
    pub binary_path: String,
    /// Services it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// A service's start type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartType {
    /// Automatic.
    Auto,
    /// Automatic (delayed start).
    DelayedAuto,
    /// Manual.
    Demand,
    /// Disabled.
    Disabled,
}

impl StartType {
    /// The `sc.exe config … start= <mode>` word.
    pub fn sc_mode(self) -> &'static str {
        match self {
            StartType::Auto => "auto",
            StartType::DelayedAuto => "delayed-auto",
            StartType::Demand => "demand",
            StartType::Disabled => "disabled",
        }
    }

    /// Parses an `sc.exe config … start= <mode>` word.
    pub fn from_sc_mode(mode: &str) -> Option<StartType> {
        [StartType::Auto, StartType::DelayedAuto, StartType::Demand, StartType::Disabled]
            .into_iter()
            .find(|t| t.sc_mode() == mode)
    }
}

/// A service's (and a host instance's) state; the numbers are both `sc.exe`'s `STATE` and
/// `MSBTS_HostInstance.ServiceState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// 1.
    Stopped,
    /// 2.
    StartPending,
    /// 3.
    StopPending,
    /// 4.
    Running,
}

impl ServiceState {
    /// The number.
    pub fn code(self) -> u8 {
        match self {
            ServiceState::Stopped => 1,
            ServiceState::StartPending => 2,
            ServiceState::StopPending => 3,
            ServiceState::Running => 4,
        }
    }

    /// The name `sc.exe` prints.
    pub fn sc_name(self) -> &'static str {
        match self {
            ServiceState::Stopped => "STOPPED",
            ServiceState::StartPending => "START_PENDING",
            ServiceState::StopPending => "STOP_PENDING",
            ServiceState::Running => "RUNNING",
        }
    }
}

/// A file of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The path as last written.
    pub path: String,
    /// The bytes: a JSON string when they are UTF-8, else `{"hex": "…"}`.
    #[serde(with = "contents")]
    pub contents: Vec<u8>,
}

/// Serde for file contents: readable text when possible.
mod contents {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Hex { hex: String },
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Repr::Text(text.to_owned()).serialize(s),
            Err(_) => Repr::Hex { hex: hex::encode(bytes) }.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(text.into_bytes()),
            Repr::Hex { hex } => hex::decode(hex).map_err(serde::de::Error::custom),
        }
    }
}

/// The key of a Windows path in [`Server::files`]: lower case, `\` as separator.
pub fn normalise_path(path: &str) -> String {
    path.replace('/', "\\").to_lowercase()
}

/// A strong-named assembly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assembly {
    /// Simple name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Culture (`neutral`).
    pub culture: String,
    /// Public key token.
    pub public_key_token: String,
}

/// An installed product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Product {
    /// Product name.
    pub name: String,
    /// Where it was installed, when known.
    #[serde(default)]
    pub target_dir: Option<String>,
}

/// A SQL Server instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SqlInstance {
    /// Databases it holds.
    pub databases: Vec<String>,
    /// Whether it answers at all (the `sql-unreachable` fault also makes it silent).
    pub reachable: bool,
    /// Its server logins (issue 18, F4: [`crate::logins`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<crate::logins::Login>,
}

/// The BizTalk group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Group {
    /// Group name.
    pub name: String,
    /// SQL server of the management database.
    pub mgmt_server: String,
    /// Management database.
    pub mgmt_db: String,
    /// SQL server of the SSO database.
    pub sso_server: String,
    /// SSO database.
    pub sso_db: String,
    /// The master secret server of the SSO system.
    pub master_secret_server: Option<String>,
    /// Runtime servers joined to the group (`MSBTS_Server`).
    pub members: Vec<String>,
    /// Hosts (`MSBTS_HostSetting`).
    pub hosts: Vec<Host>,
    /// Host instances (`MSBTS_HostInstance`).
    pub host_instances: Vec<HostInstance>,
    /// Applications imported with `BTSTask ImportApp`.
    #[serde(default)]
    pub applications: Vec<Application>,
    // Failover, BizTalk side (issue 18, L2)
    /// The other databases' locations, the SSO server name, receive locations and the master
    /// secret's holders ([`crate::activation`]).
    #[serde(default)]
    pub activation: crate::activation::Activation,
}

/// A host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Host {
    /// Host name.
    pub name: String,
    /// `HostType`: 1 in-process, 2 isolated.
    pub host_type: u8,
}

/// A host instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostInstance {
    /// `Microsoft BizTalk Server <host> <server>`.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Running server.
    pub server: String,
    /// 1 Installed, 2 Install failed, 3 Uninstall failed, 4 Update failed, 5 Not installed.
    pub configuration_state: u8,
    /// Disabled from starting.
    pub is_disabled: bool,
    /// Service state (as [`ServiceState`]).
    pub service_state: ServiceState,
    /// Logon account.
    pub account: String,
    /// The SHA-256 (lower-case hex) of the password its `Install` was given, as
    /// [`Service::password_sha256`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sha256: Option<String>,
}

/// The SHA-256 of `password` in lower-case hex, as the state records passwords.
pub fn password_sha256(password: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(password.as_bytes()))
}

impl Host {
    /// The host's Windows group (`MSBTS_HostSetting.NTGroupName`), whose members alone may run
    /// its instances: the groups the Configuration wizard creates, `BizTalk Application Users`
    /// for in-process hosts and `BizTalk Isolated Host Users` for isolated ones.
    pub fn nt_group(&self) -> &'static str {
        if self.host_type == 2 { "BizTalk Isolated Host Users" } else { "BizTalk Application Users" }
    }
}

impl HostInstance {
    /// The name BizTalk gives the instance of `host` on `server`.
    pub fn name_for(host: &str, server: &str) -> String {
        format!("Microsoft BizTalk Server {host} {server}")
    }

    /// The Windows service of an instance of `host`.
    pub fn service_name(host: &str) -> String {
        format!("BTSSvc${host}")
    }
}

/// An application of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Application {
    /// Application name.
    pub name: String,
    /// The package it was imported from.
    pub package: String,
}

/// A fault injected with `drover-lab fault set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// The SQL server does not answer: sqlcmd fails, a join fails.
    SqlUnreachable {
        /// The SQL server (`PRDSQL01` unless told).
        server: String,
    },
    /// The SQL server answers queries (sqlcmd, so a prerequisite check passes) but drops the
    /// Configuration tool's connection: as when it goes down between the check and the join.
    JoinSqlUnreachable {
        /// The SQL server (`PRDSQL01` unless told).
        server: String,
    },
    /// The service will not stop.
    ServiceStuck {
        /// The server.
        server: String,
        /// The service.
        service: String,
    },
    /// `sc.exe config`, `start` and `stop` of the service are denied (5), as a hardening policy
    /// on the service's security descriptor would.
    AccessDenied {
        /// The server.
        server: String,
        /// The service.
        service: String,
    },
    /// A prerequisite is missing on the server.
    MissingPrereq {
        /// The server.
        server: String,
        /// Which one.
        prereq: Prereq,
    },
    /// The server has no `powershell.exe`: cmd.exe does not recognise it.
    PowershellMissing {
        /// The server.
        server: String,
    },
    // Configuration failures (E2)
    /// The Enterprise SSO service (ENTSSO) of the server is stopped: `sc query ENTSSO` says so,
    /// and on the master secret server no joining server's SSO feature can reach it.
    SsoStopped {
        /// The server (the master secret server unless told).
        server: String,
    },
    /// The master secret cannot be retrieved from the master secret server (its ENTSSO runs but
    /// loads no secret, ENTSSO events 10520/10521): by the joins of `server`, or by every join.
    MasterSecretUnavailable {
        /// The joining server it holds for; every server when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// Configuration.exe on the server configures Enterprise SSO, then fails on the group
    /// feature: the server is left half-configured.
    JoinFailsAfterSso {
        /// The server.
        server: String,
    },
    // Rights, CU level, edition and MSDTC before the join (E1)
    /// The account Drover runs as is not a local administrator of the server: `whoami /groups`
    /// lists no `BUILTIN\Administrators`.
    NotLocalAdmin {
        /// The server.
        server: String,
    },
    /// The account Drover runs as is not in the SQL Server's `sysadmin` role:
    /// `IS_SRVROLEMEMBER('sysadmin')` answers 0.
    NotSysadmin {
        /// The SQL server (`PRDSQL01` unless told).
        server: String,
    },
    /// The server has BizTalk's cumulative updates up to `level` only (0: none) instead of the
    /// lab's [`crate::init::CU_LEVEL`].
    CuLevel {
        /// The server.
        server: String,
        /// The last cumulative update installed.
        level: u32,
    },
    /// BizTalk Server of another edition is installed on the server (its `ProductEdition`).
    InstalledEdition {
        /// The server.
        server: String,
        /// As BizTalk records it: `Enterprise`, `Standard`, `Developer` or `Branch`.
        edition: String,
    },
    /// MSDTC between the server and other computers fails end to end (firewall, RPC, name
    /// resolution), whatever its settings say: `Test-Dtc` fails.
    DtcBlocked {
        /// The server.
        server: String,
    },
    // Log shipping (issue 18, L1)
    /// The DR SQL instance is `sets` backup sets behind: its scheduled Restore Databases runs
    /// are held; a run started by hand catches it up.
    LogShippingLag {
        /// The DR SQL instance.
        server: String,
        /// How many sets behind.
        sets: u32,
    },
    /// A log set's backup file is missing for the DR SQL instance: Restore Databases and
    /// Restore To Mark fail with SQL Server's log-chain error 4305 until a full set follows.
    LogShippingGap {
        /// The DR SQL instance.
        server: String,
    },
    /// Restore To Mark fails on the DR SQL instance (the last log's file cannot be opened).
    RestoreToMarkFails {
        /// The DR SQL instance.
        server: String,
    },
    // Failover, BizTalk side (issue 18, L2)
    /// `UpdateDatabase.vbs` on the server still opens its connection with `SQLOLEDB`: against SQL
    /// Server 2016 and later it fails with "Invalid connection string attribute".
    MsoledbsqlProvider {
        /// The server that runs the script.
        server: String,
    },
    /// The production site is gone: WMI calls that must reach a production server (a host
    /// instance's `Start()`, `Stop()`, `Put()`, its `ServiceState`) fail as with an unreachable
    /// computer.
    DeadProductionWmi,
    // Failover, WMI restart (issue 18, F9)
    /// BizTalk's WMI provider keeps the management database it read when winmgmt started: after
    /// `UpdateRegistry.vbs`, `MSBTS_*` calls on that server reach the old database until winmgmt
    /// restarts ([`Server::wmi_mgmt_cache`]). Off by default.
    WmiCachesGroup,
}

impl Fault {
    /// The fault's kind, as written on the command line.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::SqlUnreachable { .. } => "sql-unreachable",
            Fault::JoinSqlUnreachable { .. } => "join-sql-unreachable",
            Fault::ServiceStuck { .. } => "service-stuck",
            Fault::AccessDenied { .. } => "access-denied",
            Fault::MissingPrereq { .. } => "missing-prereq",
            Fault::PowershellMissing { .. } => "powershell-missing",
            // Configuration failures (E2)
            Fault::SsoStopped { .. } => "sso-stopped",
            Fault::MasterSecretUnavailable { .. } => "master-secret-unavailable",
            Fault::JoinFailsAfterSso { .. } => "join-fails-after-sso",
            // Rights, CU level, edition and MSDTC before the join (E1)
            Fault::NotLocalAdmin { .. } => "not-local-admin",
            Fault::NotSysadmin { .. } => "not-sysadmin",
            Fault::CuLevel { .. } => "cu-level",
            Fault::InstalledEdition { .. } => "installed-edition",
            Fault::DtcBlocked { .. } => "dtc-blocked",
            // Failover, BizTalk side (issue 18, L2)
            Fault::MsoledbsqlProvider { .. } => "msoledbsql-provider",
            Fault::DeadProductionWmi => "dead-production-wmi",
            // Failover, WMI restart (issue 18, F9)
            Fault::WmiCachesGroup => "wmi-caches-group",
            // Log shipping (issue 18, L1)
            Fault::LogShippingLag { .. } => "logshipping-lag",
            Fault::LogShippingGap { .. } => "logshipping-gap",
            Fault::RestoreToMarkFails { .. } => "restore-to-mark-fails",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::SqlUnreachable { server } => write!(f, "sql-unreachable {server}"),
            Fault::JoinSqlUnreachable { server } => write!(f, "join-sql-unreachable {server}"),
            Fault::ServiceStuck { server, service } => write!(f, "service-stuck {server} {service}"),
            Fault::AccessDenied { server, service } => write!(f, "access-denied {server} {service}"),
            Fault::MissingPrereq { server, prereq } => {
                write!(f, "missing-prereq {server} {}", prereq.as_str())
            }
            Fault::PowershellMissing { server } => write!(f, "powershell-missing {server}"),
            // Configuration failures (E2)
            Fault::SsoStopped { server } => write!(f, "sso-stopped {server}"),
            Fault::MasterSecretUnavailable { server: Some(server) } => {
                write!(f, "master-secret-unavailable {server}")
            }
            Fault::MasterSecretUnavailable { server: None } => f.write_str("master-secret-unavailable"),
            Fault::JoinFailsAfterSso { server } => write!(f, "join-fails-after-sso {server}"),
            // Rights, CU level, edition and MSDTC before the join (E1)
            Fault::NotLocalAdmin { server } => write!(f, "not-local-admin {server}"),
            Fault::NotSysadmin { server } => write!(f, "not-sysadmin {server}"),
            Fault::CuLevel { server, level } => write!(f, "cu-level {server} {level}"),
            Fault::InstalledEdition { server, edition } => write!(f, "installed-edition {server} {edition}"),
            Fault::DtcBlocked { server } => write!(f, "dtc-blocked {server}"),
            // Failover, BizTalk side (issue 18, L2)
            Fault::MsoledbsqlProvider { server } => write!(f, "msoledbsql-provider {server}"),
            Fault::DeadProductionWmi => f.write_str("dead-production-wmi"),
            // Failover, WMI restart (issue 18, F9)
            Fault::WmiCachesGroup => f.write_str("wmi-caches-group"),
            // Log shipping (issue 18, L1)
            Fault::LogShippingLag { server, sets } => write!(f, "logshipping-lag {server} {sets}"),
            Fault::LogShippingGap { server } => write!(f, "logshipping-gap {server}"),
            Fault::RestoreToMarkFails { server } => write!(f, "restore-to-mark-fails {server}"),
        }
    }
}

/// A prerequisite the `missing-prereq` fault can take away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prereq {
    /// .NET Framework 4.x (registry `Release`).
    Dotnet,
    /// VC++ redistributables x86 and x64.
    Vcredist,
    /// Microsoft OLE DB Driver for SQL Server.
    Oledb,
    /// MSDTC network access.
    Msdtc,
}

impl Prereq {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Prereq::Dotnet => "dotnet",
            Prereq::Vcredist => "vcredist",
            Prereq::Oledb => "oledb",
            Prereq::Msdtc => "msdtc",
        }
    }
}

impl FromStr for Prereq {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Prereq::Dotnet, Prereq::Vcredist, Prereq::Oledb, Prereq::Msdtc]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown prerequisite `{s}` (use dotnet, vcredist, oledb or msdtc)"))
    }
}

impl Lab {
    /// The canonical name of a server, matched case-insensitively as Windows does.
    pub fn server_name(&self, name: &str) -> Option<String> {
        self.servers.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
    }

    /// Whether the SQL server answers: it exists, runs SQL, is reachable and no fault silences it.
    pub fn sql_reachable(&self, name: &str) -> bool {
        let Some(canonical) = self.server_name(name) else { return false };
        let runs_sql =
            self.servers.get(&canonical).and_then(|s| s.sql.as_ref()).is_some_and(|sql| sql.reachable);
        runs_sql
            && !self.faults.iter().any(
                |f| matches!(f, Fault::SqlUnreachable { server } if server.eq_ignore_ascii_case(&canonical)),
            )
    }

    /// Whether the Configuration tool reaches the SQL server: it answers, and no
    /// `join-sql-unreachable` fault drops the tool's connection.
    pub fn sql_reachable_for_configuration(&self, name: &str) -> bool {
        let canonical = self.server_name(name).unwrap_or_default();
        self.sql_reachable(name)
            && !self.faults.iter().any(
                |f| matches!(f, Fault::JoinSqlUnreachable { server } if server.eq_ignore_ascii_case(&canonical)),
            )
    }

    /// Whether the database exists on the SQL server.
    pub fn sql_has_database(&self, server: &str, db: &str) -> bool {
        self.server_name(server)
            .and_then(|name| self.servers.get(&name))
            .and_then(|s| s.sql.as_ref())
            .is_some_and(|sql| sql.databases.iter().any(|d| d.eq_ignore_ascii_case(db)))
    }

    /// Whether the `service-stuck` fault holds `service` on `server`.
    pub fn service_stuck(&self, server: &str, service: &str) -> bool {
        self.faults.iter().any(|f| {
            matches!(f, Fault::ServiceStuck { server: s, service: v }
                if s.eq_ignore_ascii_case(server) && v.eq_ignore_ascii_case(service))
        })
    }

    /// Whether the `access-denied` fault denies changing `service` on `server`.
    pub fn access_denied(&self, server: &str, service: &str) -> bool {
        self.faults.iter().any(|f| {
            matches!(f, Fault::AccessDenied { server: s, service: v }
                if s.eq_ignore_ascii_case(server) && v.eq_ignore_ascii_case(service))
        })
    }

    /// Whether the `missing-prereq` fault takes `prereq` away from `server`.
    pub fn prereq_missing(&self, server: &str, prereq: Prereq) -> bool {
        self.faults.iter().any(|f| {
            matches!(f, Fault::MissingPrereq { server: s, prereq: p }
                if s.eq_ignore_ascii_case(server) && *p == prereq)
        })
    }

    /// Whether the `powershell-missing` fault takes `powershell.exe` away from `server`.
    pub fn powershell_missing(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::PowershellMissing { server: s } if s.eq_ignore_ascii_case(server)))
    }

    // Configuration failures (E2)
    /// Whether the `sso-stopped` fault stops the ENTSSO service of `server`.
    pub fn sso_stopped(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::SsoStopped { server: s } if s.eq_ignore_ascii_case(server)))
    }

    /// Whether the `master-secret-unavailable` fault keeps the master secret from `server`'s join.
    pub fn master_secret_unavailable(&self, server: &str) -> bool {
        self.faults.iter().any(|f| match f {
            Fault::MasterSecretUnavailable { server: None } => true,
            Fault::MasterSecretUnavailable { server: Some(s) } => s.eq_ignore_ascii_case(server),
            _ => false,
        })
    }

    /// Whether the `join-fails-after-sso` fault fails `server`'s group feature after its SSO.
    pub fn join_fails_after_sso(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::JoinFailsAfterSso { server: s } if s.eq_ignore_ascii_case(server)))
    }

    // Rights, CU level, edition and MSDTC before the join (E1)
    /// Whether the `not-local-admin` fault takes the running account out of the server's
    /// `BUILTIN\Administrators`.
    pub fn not_local_admin(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::NotLocalAdmin { server: s } if s.eq_ignore_ascii_case(server)))
    }

    /// Whether the `not-sysadmin` fault takes the running account out of the SQL server's
    /// `sysadmin` role.
    pub fn not_sysadmin(&self, sql: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::NotSysadmin { server: s } if s.eq_ignore_ascii_case(sql)))
    }

    /// The last BizTalk cumulative update installed on the server: the lab's
    /// [`crate::init::CU_LEVEL`] unless a `cu-level` fault says otherwise.
    pub fn cu_level(&self, server: &str) -> u32 {
        let set = self.faults.iter().rev().find_map(|f| match f {
            Fault::CuLevel { server: s, level } if s.eq_ignore_ascii_case(server) => Some(*level),
            _ => None,
        });
        set.unwrap_or(crate::init::CU_LEVEL)
    }

    /// The BizTalk edition installed on the server, as its `ProductEdition` says: the group's
    /// edition unless an `installed-edition` fault says otherwise.
    pub fn installed_edition(&self, server: &str) -> String {
        let set = self.faults.iter().rev().find_map(|f| match f {
            Fault::InstalledEdition { server: s, edition } if s.eq_ignore_ascii_case(server) => {
                Some(edition.clone())
            }
            _ => None,
        });
        set.unwrap_or_else(|| self.edition.product_edition().to_owned())
    }

    /// Whether the `dtc-blocked` fault stops MSDTC between the server and other computers.
    pub fn dtc_blocked(&self, server: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::DtcBlocked { server: s } if s.eq_ignore_ascii_case(server)))
    }

    // Failover, WMI restart (issue 18, F9)
    /// Whether the `wmi-caches-group` fault makes BizTalk's WMI provider keep the management
    /// database it read when winmgmt started.
    pub fn wmi_caches_group(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::WmiCachesGroup))
    }

    /// Whether the server is a member of the group (`MSBTS_Server`).
    pub fn is_member(&self, server: &str) -> bool {
        self.group.members.iter().any(|m| m.eq_ignore_ascii_case(server))
    }

    /// Whether the server is a member of the group and configured locally (its registry names
    /// the management database), so BizTalk's WMI namespace exists on it. A replaced server is a
    /// member (the databases list it) but not configured until it joins again.
    pub fn is_configured(&self, server: &str) -> bool {
        let local = self
            .server_name(server)
            .and_then(|name| self.servers.get(&name))
            .is_some_and(|s| s.reg_value(crate::init::ADMIN_KEY, "MgmtDBServer").is_some());
        local && self.is_member(server)
    }
}

impl Server {
    /// A service by name, case-insensitively.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A service by name, case-insensitively, to change.
    pub fn service_mut(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A registry value; `key` is without the hive, matched case-insensitively.
    pub fn reg_value(&self, key: &str, value: &str) -> Option<&RegValue> {
        self.registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.iter().find(|(v, _)| v.eq_ignore_ascii_case(value)))
            .map(|(_, data)| data)
    }

    /// Sets a registry value, creating the key as needed.
    pub fn set_reg_value(&mut self, key: &str, value: &str, data: RegValue) {
        let key =
            self.registry.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned().unwrap_or(key.to_owned());
        let values = self.registry.entry(key).or_default();
        let value =
            values.keys().find(|v| v.eq_ignore_ascii_case(value)).cloned().unwrap_or(value.to_owned());
        values.insert(value, data);
    }

    /// Removes a registry value; a key left empty goes too.
    pub fn remove_reg_value(&mut self, key: &str, value: &str) {
        let Some(key) = self.registry.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned() else { return };
        if let Some(values) = self.registry.get_mut(&key) {
            values.retain(|v, _| !v.eq_ignore_ascii_case(value));
            if values.is_empty() {
                self.registry.remove(&key);
            }
        }
    }

    /// A file's bytes.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(&normalise_path(path)).map(|f| f.contents.as_slice())
    }

    /// Writes a file (its folders exist implicitly).
    pub fn write_file(&mut self, path: &str, contents: Vec<u8>) {
        self.files.insert(normalise_path(path), FileEntry { path: path.to_owned(), contents });
    }

    /// Removes a file; whether it existed.
    pub fn remove_file(&mut self, path: &str) -> bool {
        self.files.remove(&normalise_path(path)).is_some()
    }
}

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file or its lock cannot be read, or its folder written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was tried (`read`, `write`, `lock`).
        action: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a lab state.
    #[error("{path} is not a lab state: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// `init` without `--force` on an existing file.
    #[error("{path} already exists (use --force to replace it)")]
    Exists {
        /// The file.
        path: String,
    },
}

/// The lab's state file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// Holds the exclusive lock until dropped.
#[derive(Debug)]
pub struct Locked {
    _file: File,
}

impl StateFile {
    /// The state at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<state>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(".lock");
        PathBuf::from(name)
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.display().to_string();
        move |source| StateError::Io { action, path, source }
    }

    /// Takes the exclusive lock (`flock` on `<state>.lock`), waiting for other holders.
    pub fn lock(&self) -> Result<Locked, StateError> {
        let lock_path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io("lock", &lock_path))?;
        file.lock().map_err(self.io("lock", &lock_path))?;
        Ok(Locked { _file: file })
    }

    /// Reads the state; the caller holds the lock.
    pub fn load(&self, _lock: &Locked) -> Result<Lab, StateError> {
        let text = std::fs::read(&self.path).map_err(self.io("read", &self.path))?;
        serde_json::from_slice(&text)
            .map_err(|source| StateError::Corrupt { path: self.path.display().to_string(), source })
    }

    /// Writes the state atomically (temporary file and rename); the caller holds the lock.
    pub fn save(&self, _lock: &Locked, lab: &Lab) -> Result<(), StateError> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut text = serde_json::to_vec_pretty(lab)
            .map_err(|source| StateError::Corrupt { path: self.path.display().to_string(), source })?;
        text.push(b'\n');
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(self.io("write", &dir))?;
        tmp.write_all(&text).map_err(self.io("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(self.io("write", &self.path))?;
        tmp.persist(&self.path).map_err(|e| e.error).map_err(self.io("write", &self.path))?;
        Ok(())
    }

    /// Writes a new state; refuses to replace an existing one unless `force`.
    pub fn create(&self, lab: &Lab, force: bool) -> Result<(), StateError> {
        let lock = self.lock()?;
        if !force && self.path.exists() {
            return Err(StateError::Exists { path: self.path.display().to_string() });
        }
        self.save(&lock, lab)
    }

    /// Reads the state under the lock.
    pub fn read(&self) -> Result<Lab, StateError> {
        let lock = self.lock()?;
        self.load(&lock)
    }

    /// Read-modify-write under the lock; writes only when `change` changed something.
    pub fn update<T>(&self, change: impl FnOnce(&mut Lab) -> T) -> Result<T, StateError> {
        let lock = self.lock()?;
        let mut lab = self.load(&lock)?;
        let before = lab.clone();
        let result = change(&mut lab);
        if lab != before {
            self.save(&lock, &lab)?;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_case_insensitive_and_take_both_separators() {
        let mut server = crate::init::fresh_lab().servers.remove("DRBTS01").expect("DRBTS01");
        server.write_file(r"C:\Temp\Join.xml", b"<x/>".to_vec());
        assert_eq!(server.file("c:/temp/JOIN.XML"), Some(&b"<x/>"[..]));
        assert!(server.remove_file(r"C:\TEMP\join.xml"));
        assert!(!server.remove_file(r"C:\TEMP\join.xml"));
    }

    #[test]
    fn binary_contents_round_trip_as_hex() {
        let entry = FileEntry { path: "a".into(), contents: vec![0xff, 0x00] };
        let json = serde_json::to_string(&entry).expect("serialise");
        assert_eq!(json, r#"{"path":"a","contents":{"hex":"ff00"}}"#);
        assert_eq!(serde_json::from_str::<FileEntry>(&json).expect("parse"), entry);
    }

    #[test]
    fn update_writes_atomically_and_only_on_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateFile::new(dir.path().join("lab.json"));
        state.create(&crate::init::fresh_lab(), false).expect("create");
        assert!(matches!(state.create(&crate::init::fresh_lab(), false), Err(StateError::Exists { .. })));
        let modified = || std::fs::metadata(state.path()).and_then(|m| m.modified()).expect("mtime");
        let before = modified();
        std::thread::sleep(std::time::Duration::from_millis(20));
        state.update(|lab| lab.servers.len()).expect("read only");
        assert_eq!(modified(), before);
        state
            .update(|lab| lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() }))
            .expect("change");
        assert!(!state.read().expect("read").sql_reachable("PRDSQL01"));
        assert!(state.lock_path().ends_with("lab.json.lock"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 2, "only the state and its lock");
    }
}
