//! BizTalk's silent configuration (`Configuration.exe /S <xml> /L <log>`, docs/biztalk.md, "Configuration.exe"): the configuration
//! XML that joins a DR runtime server to the production group (docs/biztalk.md, "The
//! configuration XML"). The tool's log is read by [`crate::config_log`].
//!
//! The renderer never sees a password: every `Password` of an `NTService` is an XML secret
//! reference (`@@secret:NAME:xml@@`, [`drover_sdk::secret_ref_xml`]) to the account's secret,
//! which the host fills in XML-escaped when the file is written to the target, so a password
//! holding `&`, `<`, `]]>` or quotes is read back exactly as it is, and one XML cannot hold (a
//! control character) fails the write with a message naming the secret. No CDATA: a section
//! cannot hold `]]>`. Every other value is XML-escaped here.

use std::fmt::Write as _;

/// GUID of the SSO `IsSecretServer` answer `Create` (a new master secret server).
pub const SSO_CREATE_GUID: &str = "{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}";
/// GUID of the SSO `IsSecretServer` answer `Join` (join an existing SSO system).
pub const SSO_JOIN_GUID: &str = "{B9432756-1620-4bec-8CD9-E6D0B7805AA5}";
/// `ID` of the WMI feature's `SQL` element naming the management database.
pub const MGMT_DB_SQL_ID: &str = "{D757DBF9-5D71-4995-9F20-A552B7DFE7F1}";
/// GUID of the WMI `CREATEORJOIN` answer `Create` (a new group).
pub const GROUP_CREATE_GUID: &str = "{C4DEF4B8-163E-4a8d-AB01-6C43917248B1}";
/// GUID of the WMI `CREATEORJOIN` answer `Join` (join an existing group).
pub const GROUP_JOIN_GUID: &str = "{4D12E6A3-552E-4936-9DD3-59E1190FA324}";
/// GUID of the runtime `HOST` answer `Yes` (create the default in-process host).
pub const HOST_YES_GUID: &str = "{8E714C78-05B8-45d1-9B50-D737EF7AD682}";
/// GUID of the runtime `HOST` answer `No`.
pub const HOST_NO_GUID: &str = "{D9164C48-8179-4a40-912D-1BF4C3EFE70B}";
/// GUID of the runtime `ISOHOST` answer `Yes` (create the default isolated host).
pub const ISOHOST_YES_GUID: &str = "{5638D8B2-58C9-4b2a-B5B1-3771ADECC327}";
/// GUID of the runtime `ISOHOST` answer `No`.
pub const ISOHOST_NO_GUID: &str = "{5782A1A5-8578-4942-9CBB-E443A15A0B99}";
/// `ID` of the RulesEngine feature's `SQL` element (BizTalkRuleEngineDb).
pub const RULES_DB_SQL_ID: &str = "{E6C5E071-D6EB-4c31-BFE6-CA16637FBEEB}";
/// `ID` of the RulesEngine feature's `NTService` (Rule Engine Update Service).
pub const RULES_SERVICE_ID: &str = "{6ABAD351-9C7B-423e-9FDE-3A5C52441C00}";

/// A SQL Server database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// The SQL Server (instance) name, such as `PRDSQL01`.
    pub server: String,
    /// The database, such as `SSODB`.
    pub name: String,
}

/// A Windows service account and where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `DOMAIN\user` (or `user` for a local account).
    pub account: String,
    /// The name of the secret holding its password (granted to the step); the password is
    /// written as an XML secret reference to it.
    pub password_secret: String,
}

impl ServiceAccount {
    /// `(domain, user)`: `CONTOSO\svc-sso` is `("CONTOSO", "svc-sso")`, `svc` is `("", "svc")`.
    pub fn domain_and_user(&self) -> (&str, &str) {
        self.account.split_once('\\').unwrap_or(("", &self.account))
    }
}

/// What the join template needs (docs/biztalk.md, "The configuration XML").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSettings {
    /// Production SSO database (`SSO_DB_ID`).
    pub sso_db: Database,
    /// Production management database (BizTalkMgmtDb).
    pub mgmt_db: Database,
    /// Production Business Rules database (BizTalkRuleEngineDb).
    pub rules_db: Database,
    /// The ENTSSO service account; must be in SSO Administrators.
    pub entsso: ServiceAccount,
    /// The Rule Engine Update Service account.
    pub rules_engine: ServiceAccount,
    /// `InstalledFeature` entries: what setup installed on the server (S2).
    pub installed_features: Vec<String>,
}

/// Renders the configuration XML that joins a server to the group of `settings`: SSO and group
/// answered `Join`, no default hosts (instances are created disabled later, S5), the Rules
/// Engine pointed at production, and the installed features.
pub fn render_join(settings: &JoinSettings) -> String {
    render(&[], settings)
}

/// Renders the configuration XML of an SSO server that runs no BizTalk (the DR site's master
/// secret server in waiting, Seed B): Enterprise SSO alone, joined to the SSO system (`Join`: No
/// to "Is this the master secret server?"), and the installed features.
pub fn render_sso_only(settings: &JoinSettings) -> String {
    let mut xml = Writer::default();
    xml.line("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    xml.open("Configuration", &[]);
    sso_feature(&mut xml, settings);
    for feature in &settings.installed_features {
        xml.text("InstalledFeature", feature);
    }
    xml.close("Configuration");
    xml.out
}

/// The attribute of the root element naming the computer a configuration was saved on (a lab
/// convention, `lab/PROTOCOL.md`, "Standard Edition: `RestoreConfig.vbe`"; the Configuration
/// tool ignores it).
pub const COMPUTER_NAME_ATTRIBUTE: &str = "ComputerName";

/// Renders the saved configuration of runtime server `computer_name` in the group of
/// `settings`, as `RestoreConfig.vbe` reads it (docs/biztalk.md, "By edition"): what the failed server's export holds for
/// a server joined to the group (SSO and group answered `Join`, docs/biztalk.md, "The configuration XML"), the computer named on the
/// root element. Standard Edition requires it to be the name of the computer it is restored on.
pub fn render_saved(computer_name: &str, settings: &JoinSettings) -> String {
    render(&[(COMPUTER_NAME_ATTRIBUTE, computer_name)], settings)
}

fn render(root_attributes: &[(&str, &str)], settings: &JoinSettings) -> String {
    let mut xml = Writer::default();
    xml.line("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    xml.open("Configuration", root_attributes);
    sso_feature(&mut xml, settings);
    wmi_feature(&mut xml, &settings.mgmt_db);
    runtime_feature(&mut xml);
    rules_feature(&mut xml, settings);
    for feature in &settings.installed_features {
        xml.text("InstalledFeature", feature);
    }
    xml.close("Configuration");
    xml.out
}

/// Enterprise SSO: join the production SSO system, run ENTSSO as the given account.
fn sso_feature(xml: &mut Writer, settings: &JoinSettings) {
    xml.open("Feature", &[("Name", "SSOServer,Engine"), ("DisplayName", "Enterprise Single Sign-On")]);
    question(xml, "IsSecretServer", "Create,Join", ("Create", SSO_CREATE_GUID), ("Join", SSO_JOIN_GUID));
    nt_service(xml, "ENTSSO", &settings.entsso);
    sql(xml, "SSO_DB_ID", &settings.sso_db);
    xml.close("Feature");
}

/// The BizTalk group: join the group whose management database is `mgmt_db`.
fn wmi_feature(xml: &mut Writer, mgmt_db: &Database) {
    xml.open("Feature", &[("Name", "WMI"), ("DisplayName", "BizTalk Server Group")]);
    sql(xml, MGMT_DB_SQL_ID, mgmt_db);
    question(xml, "CREATEORJOIN", "Create,Join", ("Create", GROUP_CREATE_GUID), ("Join", GROUP_JOIN_GUID));
    xml.close("Feature");
}

/// Runtime: no default in-process or isolated host.
fn runtime_feature(xml: &mut Writer) {
    xml.open("Feature", &[("Name", "Engine,BTSCfg"), ("DisplayName", "BizTalk Server runtime components")]);
    question(xml, "HOST", "Yes,No", ("Yes", HOST_YES_GUID), ("No", HOST_NO_GUID));
    question(xml, "ISOHOST", "Yes,No", ("Yes", ISOHOST_YES_GUID), ("No", ISOHOST_NO_GUID));
    xml.close("Feature");
}

/// Business Rules Engine: the production rules database and the update service's account.
fn rules_feature(xml: &mut Writer, settings: &JoinSettings) {
    xml.open("Feature", &[("Name", "RulesEngine"), ("DisplayName", "Business Rules Engine")]);
    sql(xml, RULES_DB_SQL_ID, &settings.rules_db);
    nt_service(xml, RULES_SERVICE_ID, &settings.rules_engine);
    xml.close("Feature");
}

/// A two-answer `Question` whose second answer carries `Selected="Yes"`; the first answer is
/// the default that is not taken.
fn question(xml: &mut Writer, id: &str, answers: &str, other: (&str, &str), selected: (&str, &str)) {
    xml.open("Question", &[("ID", id), ("Answers", answers), ("Default", other.0)]);
    xml.empty("Answer", &[("Value", other.0), ("GUID", other.1)]);
    xml.empty("Answer", &[("Value", selected.0), ("GUID", selected.1), ("Selected", "Yes")]);
    xml.close("Question");
}

/// An `NTService` element: user, domain and the password as an XML secret reference, which the
/// host fills in escaped (the reference itself has nothing to escape).
fn nt_service(xml: &mut Writer, id: &str, account: &ServiceAccount) {
    let (domain, user) = account.domain_and_user();
    xml.open("NTService", &[("ID", id)]);
    xml.text("UserName", user);
    xml.text("Domain", domain);
    xml.text("Password", &drover_sdk::secret_ref_xml(&account.password_secret));
    xml.close("NTService");
}

/// A `SQL` element using Windows authentication.
fn sql(xml: &mut Writer, id: &str, database: &Database) {
    xml.open("SQL", &[("ID", id)]);
    xml.text("Server", &database.server);
    xml.text("Database", &database.name);
    xml.text("WindowsSecurity", "yes");
    xml.empty("UserName", &[]);
    xml.empty("Password", &[]);
    xml.close("SQL");
}

/// `text` with the five XML special characters escaped, for text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// An indented XML writer that escapes every attribute value and text.
#[derive(Default)]
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn tag(name: &str, attributes: &[(&str, &str)]) -> String {
        let mut tag = format!("<{name}");
        for (key, value) in attributes {
            let _ = write!(tag, " {key}=\"{}\"", escape(value));
        }
        tag
    }

    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let tag = Self::tag(name, attributes);
        self.line(&format!("{tag}>"));
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line(&format!("</{name}>"));
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let tag = Self::tag(name, attributes);
        self.line(&format!("{tag} />"));
    }

    fn text(&mut self, name: &str, text: &str) {
        self.line(&format!("<{name}>{}</{name}>", escape(text)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::JOIN_XML;

    fn settings() -> JoinSettings {
        JoinSettings {
            sso_db: Database { server: "PRDSQL01".into(), name: "SSODB".into() },
            mgmt_db: Database { server: "PRDSQL01".into(), name: "BizTalkMgmtDb".into() },
            rules_db: Database { server: "PRDSQL01".into(), name: "BizTalkRuleEngineDb".into() },
            entsso: ServiceAccount {
                account: r"CONTOSO\svc-sso".into(),
                password_secret: "entsso-password".into(),
            },
            rules_engine: ServiceAccount {
                account: r"CONTOSO\svc-bre".into(),
                password_secret: "rules-engine-password".into(),
            },
            installed_features: vec!["SSO".into(), "Runtime".into(), "RulesEngine".into()],
        }
    }

    #[test]
    fn renders_the_join_template() {
        assert_eq!(render_join(&settings()), JOIN_XML);
    }

    #[test]
    fn the_saved_configuration_names_the_computer() {
        let saved = render_saved("PRD\"BTS02", &settings());
        let expected =
            JOIN_XML.replacen("<Configuration>", "<Configuration ComputerName=\"PRD&quot;BTS02\">", 1);
        assert_eq!(saved, expected);
    }

    #[test]
    fn every_value_is_escaped() {
        let mut s = settings();
        s.mgmt_db.server = r#"PRD&SQL<01>"'"#.into();
        s.entsso.account = r"CON<TOSO\svc&sso".into();
        s.installed_features = vec!["A&B".into()];
        let xml = render_join(&s);
        assert!(xml.contains("<Server>PRD&amp;SQL&lt;01&gt;&quot;&apos;</Server>"), "{xml}");
        assert!(xml.contains("<Domain>CON&lt;TOSO</Domain>"));
        assert!(xml.contains("<UserName>svc&amp;sso</UserName>"));
        assert!(xml.contains("<InstalledFeature>A&amp;B</InstalledFeature>"));
    }

    #[test]
    fn passwords_are_xml_secret_references_in_text_never_cdata() {
        let xml = render_join(&settings());
        assert!(xml.contains("<Password>@@secret:entsso-password:xml@@</Password>"), "{xml}");
        assert!(xml.contains("<Password>@@secret:rules-engine-password:xml@@</Password>"), "{xml}");
        assert!(!xml.contains("CDATA"), "{xml}");
    }

    #[test]
    fn an_account_without_a_domain_is_local() {
        let account = ServiceAccount { account: "svc".into(), password_secret: String::new() };
        assert_eq!(account.domain_and_user(), ("", "svc"));
    }
}
