//! BizTalk's `Configuration.exe` in silent mode (`lab/PROTOCOL.md`, "Silent configuration"):
//! `/S <xml> /L <log>` joins the server to the group from a configuration XML (docs/biztalk.md, "The configuration XML"), `/U /L
//! <log>` unconfigures it; `/noprogressbar` may appear anywhere.
//!
//! A join validates first, in the documented order, and stops at the first failure (then the log
//! holds its `Error` lines and nothing was configured); only then are the features configured,
//! in the order SSO, WMI, Runtime, RulesEngine, three `Info` lines each (`Building feature XML
//! for:`, `Validating feature:`, `Configuring feature:` and the XML's `Feature Name`), or one
//! "already configured" line each when the server is already in this group. The program prints nothing;
//! the exit code is 0 or 1 and the log file (on the server) tells the story.

pub mod xml;

use std::time::SystemTime;

use super::{Ctx, Output};
use crate::init::{ADMIN_KEY, ENTSSO_SQL_KEY, entsso, host_service};
use crate::state::{
    Edition, Host, HostInstance, RegValue, Service, ServiceState, StartType, password_sha256,
};
use xml::Element;

/// Windows computer (NetBIOS) names longer than this break BizTalk configuration.
pub const NAME_LIMIT: usize = 15;
/// The `SQL` ID of the management database in the WMI feature.
pub const MGMT_DB_SQL_ID: &str = "{D757DBF9-5D71-4995-9F20-A552B7DFE7F1}";
/// The `SQL` ID of the SSO database in the SSO feature.
pub const SSO_DB_SQL_ID: &str = "SSO_DB_ID";
/// What marks a secret reference the host did not fill.
pub(crate) const UNFILLED_SECRET: &str = "@@secret:";
/// The Configuration tool's answer to a join on a Standard Edition group.
pub const STANDARD_CANNOT_JOIN: &str = "BizTalk Server Standard Edition cannot join an existing BizTalk group. Restore the saved configuration of this computer with RestoreConfig.vbe.";

/// The features the lab configures, in the order it configures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Feature {
    Sso,
    Wmi,
    Runtime,
    RulesEngine,
    Mot,
    BamTools,
    BamPortal,
    Edi,
    RestApi,
    Tms,
}

impl Feature {
    const ALL: [Feature; 4] = [Feature::Sso, Feature::Wmi, Feature::Runtime, Feature::RulesEngine];

    /// The feature a `Feature Name="…"` stands for; others are ignored.
    fn from_xml_name(name: &str) -> Option<Feature> {
        match name {
            "SSOServer,Engine" | "SSO" => Some(Feature::Sso),
            "WMI" => Some(Feature::Wmi),
            "Engine,BTSCfg" => Some(Feature::Runtime),
            "RulesEngine" => Some(Feature::RulesEngine),
            "MOT" => Some(Feature::Mot),
            "BAMTools" => Some(Feature::BamTools),
            "BAMPortal" => Some(Feature::BamPortal),
            "MsEDIAS2" => Some(Feature::Edi),
            "RestApi" => Some(Feature::RestApi),
            "TMS" => Some(Feature::Tms),
            _ => None,
        }
    }

    /// The `Feature Name` an export writes, as the lab records configured features.
    fn xml_name(self) -> &'static str {
        match self {
            Feature::Sso => "SSOServer,Engine",
            Feature::Wmi => "WMI",
            Feature::Runtime => "Engine,BTSCfg",
            Feature::RulesEngine => "RulesEngine",
            Feature::Mot => "MOT",
            Feature::BamTools => "BAMTools",
            Feature::BamPortal => "BAMPortal",
            Feature::Edi => "MsEDIAS2",
            Feature::RestApi => "RestApi",
            Feature::Tms => "TMS",
        }
    }

    /// The component (`InstalledFeature`) setup must have installed for the feature to be
    /// configured; the REST APIs come with every runtime.
    fn component(self) -> Option<&'static str> {
        match self {
            Feature::Sso => Some("SSOServer"),
            Feature::Wmi => Some("WMI"),
            Feature::Runtime => Some("Engine"),
            Feature::RulesEngine => Some("RulesEngine"),
            Feature::Mot => Some("MOT"),
            Feature::BamTools => Some("BAMTools"),
            Feature::BamPortal => Some("BAMPortal"),
            Feature::Edi => Some("MsEDIAS2"),
            Feature::RestApi => None,
            Feature::Tms => Some("BizTalkTMS"),
        }
    }

    /// A short name for messages.
    fn label(self) -> &'static str {
        match self {
            Feature::Sso => "SSO",
            Feature::Wmi => "WMI",
            Feature::Runtime => "Runtime",
            Feature::RulesEngine => "RulesEngine",
            other => other.xml_name(),
        }
    }
}

/// The log being written, in the forms of the public captures (`lab/PROTOCOL.md`, "Where the
/// formats come from"): Configuration Framework lines `[<date> <time>:<fraction> <Level>
/// Configuration Framework]<message>` (the 2018 capture) for the feature messages Microsoft
/// names, ConfigHelper lines `[<time> <Level> ConfigHelper] <message>` for errors, and a SQL
/// failure as the 2006 capture tells it: the driver's text, `SQL error: <SQLSTATE> Native error
/// code: <n>`, the failing `HRESULT`.
pub(crate) struct Log {
    /// `2026-11-22 10:15:01:0000`.
    framework_stamp: String,
    /// `10:15:01`.
    helper_stamp: String,
    lines: Vec<String>,
}

/// The last ConfigHelper line of a SQL failure, word for word from the 2006 capture.
const SQL_HRESULT_LINE: &str =
    r"c:\depotsetupv2\private\common\configwizard\confighelper\sqlhelper.cpp(1176): FAILED hr = 80004005";

impl Log {
    pub(crate) fn new(now: SystemTime) -> Log {
        // `2026-11-22T10:15:01Z` → `2026-11-22 10:15:01` (UTC).
        let rfc3339 = humantime::format_rfc3339_seconds(now).to_string();
        let stamp = rfc3339.trim_end_matches('Z').replacen('T', " ", 1);
        let helper_stamp = stamp.split_once(' ').map(|(_, time)| time.to_string()).unwrap_or_default();
        Log { framework_stamp: format!("{stamp}:0000"), helper_stamp, lines: Vec::new() }
    }

    /// A ConfigHelper line; an error saying SQL Server could not be reached or refused the
    /// logon (check 4's messages) is told as ConfigHelper tells a SQL failure.
    fn line(&mut self, level: &str, message: &str) {
        if level == "Error"
            && let Some((first, state, native)) = sql_failure(message)
        {
            for text in
                [first, format!("SQL error: {state} Native error code: {native}"), SQL_HRESULT_LINE.into()]
            {
                self.lines.push(format!("[{} Error ConfigHelper] {text}", self.helper_stamp));
            }
            return;
        }
        self.lines.push(format!("[{} {level} ConfigHelper] {message}", self.helper_stamp));
    }

    /// An Enterprise SSO line, `[<time> <Level> SSOServerCfg] <message>` (the component of the
    /// 2018 capture's SSO lines).
    fn sso(&mut self, level: &str, message: &str) {
        self.lines.push(format!("[{} {level} SSOServerCfg] {message}", self.helper_stamp));
    }

    /// A Configuration Framework `Info` line.
    fn info(&mut self, message: &str) {
        self.lines.push(format!("[{} Info Configuration Framework]{message}", self.framework_stamp));
    }

    /// A Configuration Framework `Warning` line.
    fn warn(&mut self, message: &str) {
        self.lines.push(format!("[{} Warning Configuration Framework]{message}", self.framework_stamp));
    }

    fn text(&self) -> Vec<u8> {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text.into_bytes()
    }
}

/// The driver's line, SQLSTATE and native error of a check-4 message (`Cannot connect to SQL
/// Server <server>: <why>`): a timeout is the 2006 capture's unreachable server (08001, 17); a
/// refused logon is SQL Server's 18456 with SQLSTATE 28000.
fn sql_failure(message: &str) -> Option<(String, &'static str, u32)> {
    let (_, why) = message.strip_prefix("Cannot connect to SQL Server ")?.split_once(": ")?;
    if why.starts_with("Login failed for user") {
        return Some((why.to_string(), "28000", 18456));
    }
    Some((
        "[DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.".into(),
        "08001",
        17,
    ))
}

/// `Configuration.exe <args…>`.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let (mut xml, mut log, mut unconfigure) = (None, None, false);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "/S" if xml.is_none() => xml = Some(words.next()?.clone()),
            "/L" if log.is_none() => log = Some(words.next()?.clone()),
            "/U" if !unconfigure => unconfigure = true,
            "/noprogressbar" => {}
            _ => return None,
        }
    }
    let mut entries = Log::new(ctx.now);
    let (code, log_path) = match (xml, log, unconfigure) {
        (Some(xml), Some(log), false) => (configure(ctx, &xml, &mut entries), log),
        (None, Some(log), true) => (leave(ctx, &mut entries), log),
        _ => return None,
    };
    let text = entries.text();
    ctx.this_mut().write_file(&log_path, text);
    Some(Output::stdout(code, ""))
}

/// What the validated XML asks for.
pub(crate) struct Plan {
    features: Vec<(Feature, Element)>,
    /// SSO answered `Create`: this server becomes the master secret server.
    create_secret_server: bool,
    /// Already joined to this group: every feature is skipped.
    already_joined: bool,
    /// The `join-fails-after-sso` fault: the group feature fails once SSO is configured.
    fail_after_sso: bool,
}

/// `/S`: validates, checks that the SSO feature reaches the master secret, then configures; the
/// exit code.
fn configure(ctx: &mut Ctx<'_>, xml_path: &str, log: &mut Log) -> i32 {
    match validate(ctx, xml_path) {
        Ok(plan) => {
            if !reaches_master_secret(ctx, &plan, log) {
                return 1;
            }
            if apply(ctx, plan, log) { 0 } else { 1 }
        }
        Err(message) => {
            log.line("Error", &message);
            1
        }
    }
}

/// ENTSSO's answer when the master secret server's SSO service does not run (`ENTSSO_E_NO_SSO_SERVER`,
/// 0xC0002A0F, Microsoft Learn "Single Sign-On: Event 10767"), in the form ssoconfig and
/// ssomanage print it with the RPC error of an interface nobody registered.
pub fn no_sso_server(server: &str) -> String {
    format!(
        "0xC0002A0F : Could not contact the SSO server '{server}'. Check that SSO is configured and that the SSO \
         service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)"
    )
}

/// ENTSSO's warning when it cannot get the master secrets (event 10532,
/// `SSO_WARN_LOST_SECRET_SERVER`) with the master secret server's error (event 10521).
pub fn lost_secret_server(server: &str) -> String {
    format!(
        "Failed to retrieve master secrets. Verify that the master secret server name is correct and that it is \
         available. Secret Server Name: {server} Error Code: 0xC0002919, Could not load secrets from the registry \
         of the master secret server."
    )
}

/// ENTSSO's error when it has no master secret to encrypt with (`ENTSSO_E_NO_SECRET`, 0xC0002A1F,
/// Microsoft Learn "Single Sign-On: Event 10783").
pub const NO_SECRET: &str = "0xC0002A1F : Cannot perform encryption or decryption because the secret is not \
     available from the master secret server. See the event log for related errors.";

/// What the group feature says when the `join-fails-after-sso` fault stops it (invented: no
/// public capture of a group feature failing after SSO was found).
pub const GROUP_FEATURE_FAILED: &str =
    "Failed to configure feature WMI: the BizTalk Server group could not be joined.";

/// Whether a join of the SSO system reaches the master secret: not when the master secret
/// server's ENTSSO is stopped (`sso-stopped`) or the secret cannot be retrieved
/// (`master-secret-unavailable`). Then the SSO feature's errors are logged and nothing is
/// configured. A server already in the group, or whose SSO is configured, joins nothing.
fn reaches_master_secret(ctx: &Ctx<'_>, plan: &Plan, log: &mut Log) -> bool {
    let joins_sso =
        plan.features.iter().any(|(f, e)| *f == Feature::Sso && e.answer("IsSecretServer") == Some("Join"));
    let sso_configured = ctx.this().configured_features.iter().any(|f| f == Feature::Sso.xml_name());
    if !joins_sso || plan.already_joined || sso_configured {
        return true;
    }
    let Some(secret_server) = ctx.lab.group.master_secret_server.clone() else { return true };
    if ctx.lab.sso_stopped(&secret_server) {
        log.sso("Error", &no_sso_server(&secret_server));
        return false;
    }
    if ctx.lab.master_secret_unavailable(&ctx.server) {
        log.sso("Warning", &lost_secret_server(&secret_server));
        log.sso("Error", NO_SECRET);
        return false;
    }
    true
}

/// Which tool reads the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `Configuration.exe /S`: joins a group (Enterprise Edition).
    Configuration,
    /// `RestoreConfig.vbe`: restores a saved configuration (Standard Edition).
    RestoreConfig,
}

/// Reads and parses the configuration file on this server.
pub(crate) fn read_xml(ctx: &Ctx<'_>, xml_path: &str) -> Result<Element, String> {
    let text = ctx
        .this()
        .file(xml_path)
        .ok_or_else(|| format!("The configuration file {xml_path} does not exist."))?;
    let text = String::from_utf8_lossy(text);
    xml::parse(&text).map_err(|e| format!("The configuration file {xml_path} is not valid: {e}."))
}

/// The checks of `Configuration.exe`, in order.
fn validate(ctx: &Ctx<'_>, xml_path: &str) -> Result<Plan, String> {
    let root = read_xml(ctx, xml_path)?;
    validate_root(ctx, &root, Tool::Configuration)
}

/// The checks shared by both tools (1 to 6), in order, then the Standard Edition check of the
/// Configuration tool (7).
pub(crate) fn validate_root(ctx: &Ctx<'_>, root: &Element, tool: Tool) -> Result<Plan, String> {
    let mut features: Vec<(Feature, Element)> = Vec::new();
    for element in root.children.iter().filter(|c| c.name == "Feature") {
        if let Some(feature) = element.attr("Name").and_then(Feature::from_xml_name)
            && !features.iter().any(|(f, _)| *f == feature)
        {
            features.push((feature, element.clone()));
        }
    }
    features.sort_by_key(|(f, _)| *f);
    let feature = |wanted: Feature| features.iter().find(|(f, _)| *f == wanted).map(|(_, e)| e);
    let lab = &*ctx.lab;
    let group = &lab.group;

    // 1. The computer name.
    if ctx.server.chars().count() > NAME_LIMIT {
        return Err(format!("The computer name {} is longer than {NAME_LIMIT} characters.", ctx.server));
    }
    // 2. SSO joins the group's SSO database; no second master secret server.
    let mut create_secret_server = false;
    if let Some(sso) = feature(Feature::Sso) {
        let (server, db) = sql_of(sso, SSO_DB_SQL_ID);
        match sso.answer("IsSecretServer") {
            Some("Join") => {
                if !same(&server, &group.sso_server) || !same(&db, &group.sso_db) {
                    return Err(format!("The SSO database {server}/{db} does not exist."));
                }
            }
            Some("Create") => match &group.master_secret_server {
                Some(existing) => {
                    return Err(format!(
                        "A master secret server already exists for this SSO system ({existing})."
                    ));
                }
                None => create_secret_server = true,
            },
            _ => return Err(unanswered("IsSecretServer", Feature::Sso)),
        }
    }
    // 3. The group feature joins the group's management database.
    if let Some(wmi) = feature(Feature::Wmi) {
        let (server, db) = sql_of(wmi, MGMT_DB_SQL_ID);
        match wmi.answer("CREATEORJOIN") {
            Some("Join") => {
                if !same(&server, &group.mgmt_server) || !same(&db, &group.mgmt_db) {
                    return Err(format!("The BizTalk Management database {server}/{db} does not exist."));
                }
            }
            Some("Create") if lab.sql_has_database(&server, &db) => {
                return Err(format!("The BizTalk Management database {server}/{db} already exists."));
            }
            Some("Create") => return Err("Creating a BizTalk group is not supported by the lab.".into()),
            _ => return Err(unanswered("CREATEORJOIN", Feature::Wmi)),
        }
    }
    // 4. The group's SQL server answers, and accepts this session's logon.
    for sql in [&group.mgmt_server, &group.sso_server] {
        if !lab.sql_reachable_for_configuration(sql) {
            return Err(format!("Cannot connect to SQL Server {sql}: Login timeout expired."));
        }
        if let Err(refused) = ctx.second_hop() {
            return Err(format!("Cannot connect to SQL Server {sql}: {refused}"));
        }
    }
    // 5. Every service password was filled.
    for (_, element) in &features {
        for service in element.applicable().into_iter().filter(|e| e.name == "NTService") {
            let password = service.child_text("Password");
            if password.is_empty() || password.contains(UNFILLED_SECRET) {
                return Err(format!("The password of {} is empty.", service.attr("ID").unwrap_or_default()));
            }
        }
    }
    // 6. Not joined to another group.
    let this = ctx.this();
    let registry = |value: &str| match this.reg_value(ADMIN_KEY, value) {
        Some(RegValue::Sz(s)) => Some(s.clone()),
        _ => None,
    };
    let already_joined = match (registry("MgmtDBServer"), registry("MgmtDBName")) {
        (None, None) => false,
        (Some(server), Some(db)) if same(&server, &group.mgmt_server) && same(&db, &group.mgmt_db) => true,
        (server, db) => {
            return Err(format!(
                "This computer is already joined to the BizTalk group on {}/{}.",
                server.unwrap_or_default(),
                db.unwrap_or_default()
            ));
        }
    };
    // 7. Standard Edition cannot join an existing group with the Configuration tool.
    let joins_group = feature(Feature::Wmi).is_some_and(|wmi| wmi.answer("CREATEORJOIN") == Some("Join"));
    if tool == Tool::Configuration && lab.edition == Edition::Standard && joins_group && !already_joined {
        return Err(STANDARD_CANNOT_JOIN.to_owned());
    }
    let fail_after_sso = tool == Tool::Configuration && lab.join_fails_after_sso(&ctx.server);
    Ok(Plan { features, create_secret_server, already_joined, fail_after_sso })
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn unanswered(question: &str, feature: Feature) -> String {
    format!("The question {question} of feature {} has no selected answer.", feature.label())
}

/// The server and database an applicable `SQL` element names.
fn sql_of(feature: &Element, id: &str) -> (String, String) {
    match feature.applicable_with_id("SQL", id) {
        Some(sql) => (sql.child_text("Server").to_owned(), sql.child_text("Database").to_owned()),
        None => (String::new(), String::new()),
    }
}

/// The logon an `NTService` names.
struct Logon {
    /// `DOMAIN\user`.
    account: String,
    /// The SHA-256 of its `Password`, exactly as the XML holds it (untrimmed), when there is one.
    password_sha256: Option<String>,
}

impl Logon {
    /// Sets `service`'s logon to this one.
    fn set(self, service: &mut Service) {
        service.account = self.account;
        service.password_sha256 = self.password_sha256;
    }
}

/// The logon of an `NTService`, or `None` when it names no user.
fn logon_of(service: Option<&Element>) -> Option<Logon> {
    let service = service?;
    let (user, domain) = (service.child_text("UserName"), service.child_text("Domain"));
    let account = match (user, domain) {
        ("", _) => return None,
        (user, "") => user.to_owned(),
        (user, domain) => format!(r"{domain}\{user}"),
    };
    let password = service.child("Password").map(|p| p.text.as_str()).filter(|p| !p.is_empty());
    Some(Logon { account, password_sha256: password.map(password_sha256) })
}

/// Configures the validated features. On a server not yet in the group, a feature already
/// configured on it is skipped, and one whose component setup did not install is skipped with a
/// warning (the rest go on). False when the group feature failed after SSO was configured
/// (`join-fails-after-sso`): what came before stays configured.
pub(crate) fn apply(ctx: &mut Ctx<'_>, plan: Plan, log: &mut Log) -> bool {
    for (feature, element) in &plan.features {
        let name = feature.label();
        let this = ctx.this();
        if plan.already_joined || this.configured_features.iter().any(|f| f == feature.xml_name()) {
            log.info(&format!("Feature {name} is already configured; skipped"));
            continue;
        }
        if let Some(component) = feature.component()
            && !this.installed_features.iter().any(|f| f.eq_ignore_ascii_case(component))
        {
            log.warn(&format!("Feature {name} is not installed on this computer ({component}); skipped"));
            continue;
        }
        let xml_name = feature.xml_name();
        log.info(&format!("Building feature XML for: {xml_name}"));
        log.info(&format!("Validating feature: {xml_name}"));
        log.info(&format!("Configuring feature: {xml_name}"));
        let sso_done = this.configured_features.iter().any(|f| f == Feature::Sso.xml_name());
        if *feature == Feature::Wmi && plan.fail_after_sso && sso_done {
            log.line("Error", GROUP_FEATURE_FAILED);
            return false;
        }
        match feature {
            Feature::Sso => configure_sso(ctx, element, plan.create_secret_server),
            Feature::Wmi => configure_group(ctx, element),
            Feature::Runtime => configure_runtime(ctx, element),
            Feature::RulesEngine => configure_rules_engine(ctx, element),
            _ => {}
        }
        ctx.this_mut().configured_features.push(feature.xml_name().to_owned());
    }
    true
}

/// Adds or replaces a service of this server, keeping what `change` does not touch.
fn upsert_service(ctx: &mut Ctx<'_>, default: Service, change: impl FnOnce(&mut Service)) {
    let server = ctx.this_mut();
    if server.service(&default.name).is_none() {
        server.services.push(default.clone());
    }
    if let Some(service) = server.service_mut(&default.name) {
        change(service);
    }
}

fn configure_sso(ctx: &mut Ctx<'_>, feature: &Element, create_secret_server: bool) {
    let logon = logon_of(feature.applicable_with_id("NTService", "ENTSSO"));
    let default = entsso(StartType::Auto, ServiceState::Running, "LocalSystem");
    upsert_service(ctx, default, |s| {
        s.start_type = StartType::Auto;
        s.state = ServiceState::Running;
        if let Some(logon) = logon {
            logon.set(s);
        }
    });
    let (server, db) = sql_of(feature, SSO_DB_SQL_ID);
    let this = ctx.this_mut();
    this.set_reg_value(ENTSSO_SQL_KEY, "Server", RegValue::Sz(server));
    this.set_reg_value(ENTSSO_SQL_KEY, "Database", RegValue::Sz(db));
    if create_secret_server {
        ctx.lab.group.master_secret_server = Some(ctx.server.clone());
    }
}

fn configure_group(ctx: &mut Ctx<'_>, feature: &Element) {
    let (server, db) = sql_of(feature, MGMT_DB_SQL_ID);
    let this = ctx.this_mut();
    this.set_reg_value(ADMIN_KEY, "MgmtDBServer", RegValue::Sz(server));
    this.set_reg_value(ADMIN_KEY, "MgmtDBName", RegValue::Sz(db));
    // A replaced server is still a member (the databases list it): it joins again, once.
    if !ctx.lab.is_member(&ctx.server) {
        ctx.lab.group.members.push(ctx.server.clone());
    }
    ctx.lab.joins.push(ctx.server.clone());
    slow_down();
}

/// `DROVER_LAB_JOIN_DELAY_MS`: a join holds the lab this long before it completes, as a real
/// configuration takes minutes; tests use it to kill Drover in the middle of a join. The lab's
/// lock is held meanwhile, so every other command on the lab waits for the join to finish.
fn slow_down() {
    let delay = std::env::var(crate::env::DROVER_LAB_JOIN_DELAY_MS).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = delay {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// `HOST`/`ISOHOST` answered `Yes` create the default in-process or isolated host (if missing)
/// and its instance on this server; `No` creates nothing.
fn configure_runtime(ctx: &mut Ctx<'_>, feature: &Element) {
    for (question, name_id, default_name, host_type) in [
        ("HOST", "BTS_HOST_NAME", "BizTalkServerApplication", 1),
        ("ISOHOST", "BTS_IHOST_NAME", "BizTalkServerIsolatedHost", 2),
    ] {
        if feature.answer(question) != Some("Yes") {
            continue;
        }
        let Some(answer) = feature
            .applicable_with_id("Question", question)
            .and_then(|q| q.children.iter().find(|a| a.name == "Answer" && a.attr("Value") == Some("Yes")))
        else {
            continue;
        };
        let named = answer.applicable().into_iter().find(|e| e.attr("ID") == Some(name_id));
        let host = named
            .map(|e| if e.child("Value").is_some() { e.child_text("Value") } else { e.text.trim() })
            .filter(|n| !n.is_empty())
            .unwrap_or(default_name)
            .to_owned();
        let logon = logon_of(answer.applicable().into_iter().find(|e| e.name == "NTService"))
            .unwrap_or_else(|| Logon { account: "LocalSystem".into(), password_sha256: None });
        let account = logon.account.clone();
        let group = &mut ctx.lab.group;
        if !group.hosts.iter().any(|h| h.name.eq_ignore_ascii_case(&host)) {
            group.hosts.push(Host { name: host.clone(), host_type });
        }
        let server = ctx.server.clone();
        if group.host_instances.iter().any(|i| i.host.eq_ignore_ascii_case(&host) && i.server == server) {
            continue;
        }
        let running = if host_type == 1 { ServiceState::Running } else { ServiceState::Stopped };
        group.host_instances.push(HostInstance {
            name: HostInstance::name_for(&host, &server),
            host: host.clone(),
            server,
            configuration_state: 1,
            is_disabled: false,
            service_state: running,
            account: account.clone(),
            password_sha256: logon.password_sha256.clone(),
        });
        if host_type == 1 {
            let mut service = host_service(&host, &account, StartType::Auto, ServiceState::Running);
            logon.set(&mut service);
            upsert_service(ctx, service.clone(), |s| *s = service);
        }
    }
}

fn configure_rules_engine(ctx: &mut Ctx<'_>, feature: &Element) {
    let logon = logon_of(feature.applicable().into_iter().find(|e| e.name == "NTService"));
    let default = Service {
        name: "RuleEngineUpdateService".into(),
        display_name: "Rule Engine Update Service".into(),
        start_type: StartType::Auto,
        state: ServiceState::Running,
        account: "LocalSystem".into(),
        password_sha256: None,
        binary_path: r#""C:\Program Files (x86)\Common Files\Microsoft BizTalk\RuleEngineUpdateService.exe""#
            .into(),
        dependencies: Vec::new(),
    };
    upsert_service(ctx, default, |s| {
        if let Some(logon) = logon {
            logon.set(s);
        }
    });
}

/// `/U`: leaves the group; host instances of this server go with their services.
/// `/U`: unconfigures every feature, once the group's databases accept this session; the exit
/// code.
fn leave(ctx: &mut Ctx<'_>, log: &mut Log) -> i32 {
    let sql = ctx.lab.group.mgmt_server.clone();
    match ctx.second_hop() {
        Ok(()) => {
            unconfigure_all(ctx, log);
            0
        }
        Err(refused) => {
            log.line("Error", &format!("Cannot connect to SQL Server {sql}: {refused}"));
            1
        }
    }
}

fn unconfigure_all(ctx: &mut Ctx<'_>, log: &mut Log) {
    let server = ctx.server.clone();
    let this = ctx.this();
    let joined = this.reg_value(ADMIN_KEY, "MgmtDBServer").is_some()
        || ctx.lab.is_member(&server)
        || !this.configured_features.is_empty();
    if !joined {
        log.info("No feature is configured on this computer; nothing to unconfigure");
        return;
    }
    ctx.lab.unjoins.push(server.clone());
    for feature in Feature::ALL.iter().rev() {
        log.info(&format!("Unconfiguring feature: {}", feature.xml_name()));
        match feature {
            Feature::RulesEngine => {}
            Feature::Runtime => {
                let group = &mut ctx.lab.group;
                let removed: Vec<String> = group
                    .host_instances
                    .iter()
                    .filter(|i| i.server == server)
                    .map(|i| HostInstance::service_name(&i.host))
                    .collect();
                group.host_instances.retain(|i| i.server != server);
                ctx.this_mut().services.retain(|s| !removed.iter().any(|r| r.eq_ignore_ascii_case(&s.name)));
            }
            Feature::Wmi => {
                let this = ctx.this_mut();
                this.remove_reg_value(ADMIN_KEY, "MgmtDBServer");
                this.remove_reg_value(ADMIN_KEY, "MgmtDBName");
                ctx.lab.group.members.retain(|m| *m != server);
            }
            Feature::Sso => {
                let this = ctx.this_mut();
                this.remove_reg_value(ENTSSO_SQL_KEY, "Server");
                this.remove_reg_value(ENTSSO_SQL_KEY, "Database");
                if let Some(s) = this.service_mut("ENTSSO") {
                    s.start_type = StartType::Demand;
                    s.state = ServiceState::Stopped;
                }
            }
            _ => {}
        }
    }
    ctx.this_mut().configured_features.clear();
}

#[cfg(test)]
mod tests;
