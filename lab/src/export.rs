//! The configuration files exported from the production runtime servers before the failure
//! (`lab/PROTOCOL.md`, "Exported configuration files"): what the Configuration tool's **Export
//! Configuration** writes for a server joined to the group, kept per server on a share so that a
//! rebuilt server can be configured from its own file (Seed A, phase 2: "a copy of the BizTalk
//! Server configuration file for that computer").
//!
//! The shape follows Microsoft's sample file (`working-with-the-configuration-framework.md`) and
//! dsccommunity's BizTalk Server 2020 template (`RestApi`, `TMS`, `IsGmsaAccount`): a `Feature`
//! per configured feature with its `Question`s (the taken answer `Selected="Yes"`), `NTService`s
//! and `SQL`s, then the `InstalledFeature` list. Passwords are blank, as in every real export
//! ("Passwords are not stored in the XML file"). The computer is named on the root element, the
//! lab's convention for "the name of the computer that failed is contained in the saved
//! configuration file" (no public sample shows where). This module only renders text.

use std::fmt::Write as _;

use crate::init::DOMAIN;

/// The server whose share keeps the exported files.
pub const EXPORTS_SERVER: &str = "PRDSQL01";
/// The folder on [`EXPORTS_SERVER`] holding `<computer>.xml` per runtime server.
pub const EXPORTS_FOLDER: &str = r"D:\BizTalkBackup\Configuration";

/// The exported file of `computer` on [`EXPORTS_SERVER`].
pub fn export_path(computer: &str) -> String {
    format!(r"{EXPORTS_FOLDER}\{computer}.xml")
}

/// The features configured on each production runtime server, beyond SSO, the group, the
/// runtime and the Rules Engine that every one has.
pub fn extra_features(computer: &str) -> &'static [&'static str] {
    match computer {
        "PRDBTS01" => &["MOT", "RestApi", "TMS"],
        "PRDBTS02" => &["MOT", "BAMTools", "MsEDIAS2"],
        _ => &[],
    }
}

/// Every `Feature Name` configured on a production runtime server, in file order.
pub fn configured_features(computer: &str) -> Vec<String> {
    ["SSOServer,Engine", "WMI", "Engine,BTSCfg", "RulesEngine"]
        .into_iter()
        .chain(extra_features(computer).iter().copied())
        .map(String::from)
        .collect()
}

/// What setup installed on every BizTalk runtime server of the lab (`InstalledFeature`).
pub const RUNTIME_INSTALLED: [&str; 14] = [
    "MsEDIAS2",
    "MsEDIAS2StatusReporting",
    "WCFAdapter",
    "BAMPortal",
    "WMI",
    "BizTalk",
    "Engine",
    "MOT",
    "MSMQ",
    "Runtime",
    "BAMTools",
    "SSOServer",
    "RulesEngine",
    "BizTalkTMS",
];

/// What setup installed on an SSO server that runs no BizTalk (the master secret servers).
pub const SSO_INSTALLED: [&str; 2] = ["SSOServer", "SSOAdmin"];

/// The exported configuration file of production runtime server `computer` in the group on
/// `sql` (`BizTalkMgmtDb`, `SSODB`, `BizTalkRuleEngineDb`).
pub fn exported_configuration(computer: &str, sql: &str) -> String {
    let mut x = String::new();
    let _ = writeln!(x, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    let _ = writeln!(x, "<Configuration ComputerName=\"{computer}\">");
    sso(&mut x, sql);
    group(&mut x, sql);
    runtime(&mut x);
    rules(&mut x, sql);
    for feature in extra_features(computer) {
        match *feature {
            "MOT" => mot(&mut x),
            "BAMTools" => bam_tools(&mut x, sql),
            "MsEDIAS2" => edi(&mut x),
            "TMS" => tms(&mut x),
            "RestApi" => rest_api(&mut x),
            _ => {}
        }
    }
    for installed in RUNTIME_INSTALLED {
        let _ = writeln!(x, "  <InstalledFeature>{installed}</InstalledFeature>");
    }
    x.push_str("</Configuration>\n");
    x
}

fn feature(x: &mut String, name: &str, display: &str, version: &str, description: &str) {
    let _ = writeln!(
        x,
        "  <Feature Name=\"{name}\" DisplayName=\"{display}\" Version=\"{version}\" Description=\"{description}\" ConfigByDefault=\"true\">"
    );
}

fn end_feature(x: &mut String) {
    x.push_str("  </Feature>\n");
}

/// A `Question` of two answers, `selected` taken.
fn question(x: &mut String, id: &str, answers: [(&str, &str); 2], selected: &str) {
    let values: Vec<&str> = answers.iter().map(|(v, _)| *v).collect();
    let _ =
        writeln!(x, "    <Question ID=\"{id}\" Answers=\"{}\" Default=\"{}\">", values.join(","), values[0]);
    for (value, guid) in answers {
        let taken = if value == selected { " Selected=\"Yes\"" } else { "" };
        let _ = writeln!(x, "      <Answer Value=\"{value}\" GUID=\"{guid}\"{taken} />");
    }
    x.push_str("    </Question>\n");
}

fn sql_element(x: &mut String, id: &str, display: &str, server: &str, db: &str) {
    let _ = writeln!(x, "    <SQL ID=\"{id}\" DisplayName=\"{display}\">");
    let _ = writeln!(x, "      <Server>{server}</Server>\n      <Database>{db}</Database>");
    x.push_str("      <WindowsSecurity Editable=\"no\">yes</WindowsSecurity>\n      <UserName />\n      <Password />\n    </SQL>\n");
}

/// An `NTService` with its password blank, as exported.
fn nt_service(x: &mut String, id: &str, display: &str, user: &str) {
    let _ = writeln!(x, "    <NTService ID=\"{id}\" DisplayName=\"{display}\">");
    let _ = writeln!(x, "      <UserName>{user}</UserName>\n      <Domain>{DOMAIN}</Domain>");
    x.push_str("      <Password />\n      <IsGmsaAccount>False</IsGmsaAccount>\n    </NTService>\n");
}

fn sso(x: &mut String, sql: &str) {
    feature(
        x,
        "SSOServer,Engine",
        "Enterprise Single Sign-On",
        "1.0",
        "Enterprise Single Sign-On configuration",
    );
    question(
        x,
        "IsSecretServer",
        [
            ("Create", "{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}"),
            ("Join", "{B9432756-1620-4bec-8CD9-E6D0B7805AA5}"),
        ],
        "Join",
    );
    nt_service(x, "ENTSSO", "Enterprise Single Sign-On Service", "svc-sso");
    sql_element(x, "SSO_DB_ID", "SSO Database", sql, "SSODB");
    end_feature(x);
}

fn group(x: &mut String, sql: &str) {
    feature(x, "WMI", "BizTalk Server Group", "1.0", "BizTalk Server group configuration");
    sql_element(
        x,
        "{D757DBF9-5D71-4995-9F20-A552B7DFE7F1}",
        "BizTalk Management Database",
        sql,
        "BizTalkMgmtDb",
    );
    question(
        x,
        "CREATEORJOIN",
        [
            ("Create", "{C4DEF4B8-163E-4a8d-AB01-6C43917248B1}"),
            ("Join", "{4D12E6A3-552E-4936-9DD3-59E1190FA324}"),
        ],
        "Join",
    );
    end_feature(x);
}

fn runtime(x: &mut String) {
    feature(x, "Engine,BTSCfg", "BizTalk Server runtime components", "1.0", "Hosts and host instances");
    question(
        x,
        "HOST",
        [("Yes", "{8E714C78-05B8-45d1-9B50-D737EF7AD682}"), ("No", "{D9164C48-8179-4a40-912D-1BF4C3EFE70B}")],
        "No",
    );
    question(
        x,
        "ISOHOST",
        [("Yes", "{5638D8B2-58C9-4b2a-B5B1-3771ADECC327}"), ("No", "{5782A1A5-8578-4942-9CBB-E443A15A0B99}")],
        "No",
    );
    end_feature(x);
}

fn rules(x: &mut String, sql: &str) {
    feature(
        x,
        "RulesEngine",
        "Business Rules Engine",
        "3.0",
        "BizTalk native support for declarative Business Rules.",
    );
    sql_element(
        x,
        "{E6C5E071-D6EB-4c31-BFE6-CA16637FBEEB}",
        "Rule Engine Database",
        sql,
        "BizTalkRuleEngineDb",
    );
    nt_service(x, "{6ABAD351-9C7B-423e-9FDE-3A5C52441C00}", "Rule Engine Update Service", "svc-bre");
    end_feature(x);
}

fn mot(x: &mut String) {
    x.push_str("  <Feature Name=\"MOT\" DisplayName=\"BAM runtime\" Version=\"1.0\" Description=\"Tracking data decoding service used to move tracked data and persist it for query use.\" />\n");
}

fn bam_tools(x: &mut String, sql: &str) {
    feature(x, "BAMTools", "Business Activity Monitoring tools", "1.0", "BAM infrastructure");
    sql_element(
        x,
        "{E1FC3106-8DD4-4f12-9EB6-849DD8BDD605}",
        "BAM Primary Import Database",
        sql,
        "BAMPrimaryImport",
    );
    sql_element(x, "{1D372BCB-DF59-43b6-A4A9-87082B5727B0}", "BAM Archive Database", sql, "BAMArchive");
    question(
        x,
        "{12A38787-6B24-40ab-8888-5FE8ABA87B26}",
        [("Yes", "{902F7E20-D6AE-453f-9D23-935ED7AF94C3}"), ("No", "{FC612DFE-1273-4f57-8EE3-95216638A67B}")],
        "No",
    );
    question(
        x,
        "{308cc88b-9e51-4103-ae4c-73300e02a7eb}",
        [("Yes", "{458e1878-eae6-4e09-8e5c-ba516548ceac}"), ("No", "{3d95a679-aa37-403f-bf64-194e6aa2d993}")],
        "No",
    );
    end_feature(x);
}

fn edi(x: &mut String) {
    feature(
        x,
        "MsEDIAS2",
        "BizTalk EDI/AS2 Runtime",
        "1.0",
        "The EDI Runtime enables BizTalk Server to process EDI documents.",
    );
    question(
        x,
        "EDI",
        [("Yes", "{EC1CDD3A-BFD2-48A1-92B5-45F3069DE061}"), ("No", "{7FF0780D-406C-4BCC-BC77-A5BD83869193}")],
        "Yes",
    );
    question(
        x,
        "AS2",
        [("Yes", "{2E33F8AA-4126-4608-9344-7B8EBDE78E29}"), ("No", "{DEC87603-0372-4ACC-B567-15BA6AFE630E}")],
        "Yes",
    );
    end_feature(x);
}

fn tms(x: &mut String) {
    feature(x, "TMS", "BizTalk TMS", "1.0", "BizTalk TMS");
    nt_service(x, "{0BC99B44-CBB4-4108-AAA6-A0AE1CC1367D}", "BizTalk TMS", "svc-tms");
    end_feature(x);
}

fn rest_api(x: &mut String) {
    feature(
        x,
        "RestApi",
        "BizTalk REST APIs",
        "1.0",
        "BizTalk Server REST APIs for management and operational data",
    );
    nt_service(x, "{0FAD4E63-B5DB-4C43-8569-C8F80EA266FC}", "Management Service", "svc-rest");
    nt_service(x, "{CD32E455-3926-429F-A4A3-CA62462BA6EE}", "Operational Data Service", "svc-rest");
    x.push_str("    <WebSite ID=\"{3A5204AB-1B33-49BB-970B-6BBFD149033C}\" DisplayName=\"REST APIs website\">\n      <WebSiteName>Default Web Site</WebSiteName>\n    </WebSite>\n");
    end_feature(x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::configuration::xml;

    #[test]
    fn an_export_parses_and_has_blank_passwords() {
        let text = exported_configuration("PRDBTS02", "PRDSQL01");
        let root = xml::parse(&text).expect("well-formed");
        assert_eq!(root.attr("ComputerName"), Some("PRDBTS02"));
        let names: Vec<&str> =
            root.children.iter().filter(|c| c.name == "Feature").filter_map(|f| f.attr("Name")).collect();
        assert_eq!(names, configured_features("PRDBTS02"));
        let sso = &root.children[0];
        assert_eq!(sso.answer("IsSecretServer"), Some("Join"));
        let services: Vec<&xml::Element> =
            root.children.iter().flat_map(|f| f.applicable()).filter(|e| e.name == "NTService").collect();
        assert_eq!(services.len(), 2, "ENTSSO and the Rule Engine Update Service");
        assert!(services.iter().all(|s| s.child_text("Password").is_empty()), "passwords are never exported");
        let first = xml::parse(&exported_configuration("PRDBTS01", "PRDSQL01")).expect("well-formed");
        let accounts: Vec<&str> = first
            .children
            .iter()
            .flat_map(|f| f.applicable())
            .filter(|e| e.name == "NTService")
            .map(|s| s.child_text("UserName"))
            .collect();
        assert_eq!(accounts, ["svc-sso", "svc-bre", "svc-rest", "svc-rest", "svc-tms"]);
    }
}
