//! The configuration file exported from a runtime server before it failed (the Configuration
//! tool's **Export Configuration**; Seed A, phase 2: "a copy of the BizTalk Server configuration
//! file for that computer"), read so that a rebuilt server is configured from its own file rather
//! than a template: which features it had, whether it belongs to the group being restored, and
//! the file with its passwords filled by reference.
//!
//! The format is Microsoft's sample (`working-with-the-configuration-framework.md`) and
//! dsccommunity's BizTalk Server 2020 template: `Feature` elements (`Name`, `DisplayName`) with
//! `Question`s whose taken `Answer` says `Selected="Yes"`, `NTService`s (`UserName`, `Domain`,
//! `Password`) and `SQL`s (`Server`, `Database`), then `InstalledFeature`s. Exports hold no
//! passwords ("Passwords are not stored in the XML file"; "edit the BizTalk Server configuration
//! file … and enter the user account passwords"): [`Exported::with_password_refs`] writes an XML
//! secret reference (`@@secret:NAME:xml@@`) into the `Password` of every `NTService` that
//! applies, and leaves every other byte of the file as it was. Pure functions only.

use std::collections::BTreeMap;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};

use crate::config_xml::MGMT_DB_SQL_ID;
use crate::group::Group;

/// `ID` of the SSO feature's `SQL` element (SSODB).
const SSO_DB_SQL_ID: &str = "SSO_DB_ID";
/// `ID` of the Rules Engine feature's `SQL` element.
const RULES_DB_SQL_ID: &str = crate::config_xml::RULES_DB_SQL_ID;
/// The root attribute naming the computer the file was saved on (the lab's convention; Microsoft
/// says only that the name "is contained in the saved configuration file").
const COMPUTER_NAME: &str = crate::config_xml::COMPUTER_NAME_ATTRIBUTE;

/// An element of the file, with where it stands in the text.
#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
    /// From its start tag's `<` to past its end tag's `>`.
    span: Range<usize>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_text(&self, name: &str) -> &str {
        self.child(name).map(|c| c.text.trim()).unwrap_or_default()
    }

    fn unselected_answer(&self) -> bool {
        self.name == "Answer" && !self.attr("Selected").is_some_and(|s| s.eq_ignore_ascii_case("yes"))
    }

    /// Descendants that apply (not under an answer that was not taken), in document order.
    fn applicable(&self) -> Vec<&Node> {
        let mut found = Vec::new();
        let mut stack: Vec<&Node> = self.children.iter().rev().collect();
        while let Some(node) = stack.pop() {
            if node.unselected_answer() {
                continue;
            }
            found.push(node);
            stack.extend(node.children.iter().rev());
        }
        found
    }

    /// The taken answer of the applicable question `id`.
    fn answer(&self, id: &str) -> Option<&str> {
        let question =
            self.applicable().into_iter().find(|e| e.name == "Question" && e.attr("ID") == Some(id))?;
        question.children.iter().find(|a| a.name == "Answer" && !a.unselected_answer())?.attr("Value")
    }

    /// `(server, database)` of the applicable `SQL` element `id`.
    fn sql(&self, id: &str) -> Option<(&str, &str)> {
        let sql = self.applicable().into_iter().find(|e| e.name == "SQL" && e.attr("ID") == Some(id))?;
        Some((sql.child_text("Server"), sql.child_text("Database")))
    }
}

/// A Windows service account the file configures, whose password must be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLogon {
    /// The feature's `Name`.
    pub feature: String,
    /// The `NTService`'s `DisplayName` (its `ID` when it has none).
    pub service: String,
    /// `DOMAIN\user`, or `user` for a local account.
    pub account: String,
    /// Where its `Password` element stands in the text.
    password: Option<Range<usize>>,
}

/// A parsed exported configuration file.
#[derive(Debug, Clone)]
pub struct Exported {
    text: String,
    root: Node,
}

/// Parses an exported file; says what is wrong with one that is not a configuration file.
pub fn parse(text: &str) -> Result<Exported, String> {
    let root = tree(text)?;
    if root.name != "Configuration" {
        return Err(format!("its root element is <{}>, not <Configuration>", root.name));
    }
    Ok(Exported { text: text.to_owned(), root })
}

impl Exported {
    /// The computer the file names on its root element, if it names one.
    pub fn computer_name(&self) -> Option<&str> {
        self.root.attr(COMPUTER_NAME).filter(|n| !n.trim().is_empty())
    }

    /// Every `Feature Name`, in file order.
    pub fn features(&self) -> Vec<&str> {
        self.feature_nodes().filter_map(|f| f.attr("Name")).collect()
    }

    /// The `InstalledFeature` list: what setup had installed on the failed server.
    pub fn installed_features(&self) -> Vec<&str> {
        self.root.children.iter().filter(|c| c.name == "InstalledFeature").map(|c| c.text.trim()).collect()
    }

    fn feature_nodes(&self) -> impl Iterator<Item = &Node> {
        self.root.children.iter().filter(|c| c.name == "Feature")
    }

    fn feature(&self, names: &[&str]) -> Option<&Node> {
        self.feature_nodes().find(|f| f.attr("Name").is_some_and(|n| names.contains(&n)))
    }

    /// Whether the file is the export of `computer` joined to `group`: it names that computer
    /// (when it names one), SSO and the group are answered `Join` against the group's SSO and
    /// management databases, and the Rules Engine (when configured) uses the group's. Every
    /// mismatch, in words.
    pub fn mismatches(&self, group: &Group, computer: &str) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(named) = self.computer_name()
            && !named.eq_ignore_ascii_case(computer)
        {
            found.push(format!("it was exported from {named}, not {computer}"));
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let mut check = |what: &str, names: &[&str], id: &str, question: Option<&str>, want: (&str, &str)| {
            let Some(feature) = self.feature(names) else {
                found.push(format!("it has no {what} feature ({})", names[0]));
                return;
            };
            if let Some(question) = question
                && feature.answer(question) != Some("Join")
            {
                let said = feature.answer(question).unwrap_or("nothing");
                found.push(format!("its {what} feature answers {said} to {question}, not Join"));
            }
            match feature.sql(id) {
                Some((server, db)) if same(server, want.0) && same(db, want.1) => {}
                Some((server, db)) => {
                    found.push(format!("its {what} database is {server}/{db}, not {}/{}", want.0, want.1))
                }
                None => found.push(format!("its {what} feature names no database")),
            }
        };
        check(
            "SSO",
            &["SSOServer,Engine", "SSO"],
            SSO_DB_SQL_ID,
            Some("IsSecretServer"),
            (&group.sso_server, &group.sso_db),
        );
        check("group", &["WMI"], MGMT_DB_SQL_ID, Some("CREATEORJOIN"), (&group.mgmt_server, &group.mgmt_db));
        if self.feature(&["RulesEngine"]).is_some() {
            let rules_server = group.rules_server.as_deref().unwrap_or(&group.mgmt_server);
            check("Rules Engine", &["RulesEngine"], RULES_DB_SQL_ID, None, (rules_server, &group.rules_db));
        }
        found
    }

    /// The service accounts the file configures (the applicable `NTService`s naming a user).
    pub fn logons(&self) -> Vec<ServiceLogon> {
        let mut logons = Vec::new();
        for feature in self.feature_nodes() {
            let name = feature.attr("Name").unwrap_or_default();
            for service in feature.applicable().into_iter().filter(|e| e.name == "NTService") {
                let (user, domain) = (service.child_text("UserName"), service.child_text("Domain"));
                let account = match (user, domain) {
                    ("", _) => continue,
                    (user, "") => user.to_owned(),
                    (user, _) if user.contains('\\') => user.to_owned(),
                    (user, domain) => format!(r"{domain}\{user}"),
                };
                let label = service.attr("DisplayName").or(service.attr("ID")).unwrap_or("NTService");
                logons.push(ServiceLogon {
                    feature: name.to_owned(),
                    service: label.to_owned(),
                    account,
                    password: service.child("Password").map(|p| p.span.clone()),
                });
            }
        }
        logons
    }

    /// The file with the `Password` of every logon replaced by an XML secret reference to the
    /// secret `secrets` names for its account (matched case-insensitively), every other byte
    /// kept; or the logons no secret is named for (or that have no `Password` element).
    pub fn with_password_refs(
        &self,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, Vec<ServiceLogon>> {
        let secret_of = |account: &str| {
            secrets.iter().find(|(a, _)| a.eq_ignore_ascii_case(account)).map(|(_, s)| s.as_str())
        };
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        let mut missing = Vec::new();
        for logon in self.logons() {
            match (secret_of(&logon.account), &logon.password) {
                (Some(secret), Some(span)) => {
                    let reference = drover_sdk::secret_ref_xml(secret);
                    edits.push((span.clone(), format!("<Password>{reference}</Password>")));
                }
                _ => missing.push(logon),
            }
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
        let mut text = self.text.clone();
        for (span, replacement) in edits {
            text.replace_range(span, &replacement);
        }
        Ok(text)
    }
}

/// Whether the configuration log's feature name `logged` is the file's `Feature Name` `name`
/// (logs name features by it; older lab logs used short names).
pub fn same_feature(name: &str, logged: &str) -> bool {
    let alias = match name {
        "SSOServer,Engine" => "SSO",
        "Engine,BTSCfg" => "Runtime",
        other => other,
    };
    logged.eq_ignore_ascii_case(name) || logged.eq_ignore_ascii_case(alias)
}

fn tree(text: &str) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| format!("{e} at byte {}", reader.error_position()))?;
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(start) => {
                let mut node = element(&start)?;
                node.span.start = at;
                stack.push(node);
            }
            Event::Empty(start) => {
                let mut node = element(&start)?;
                node.span = at..end;
                attach(&mut stack, &mut root, node)?;
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or("an end tag without a start tag")?;
                node.span.end = end;
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.xml10_content();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("it ends inside an element".into());
    }
    root.ok_or_else(|| "it has no root element".into())
}

fn element(start: &BytesStart<'_>) -> Result<Node, String> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let value = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| e.to_string())?;
        attrs.push((attr.key.local_name().as_ref().to_owned(), value.into_owned()));
    }
    let name = start.local_name().as_ref().to_owned();
    Ok(Node { name, attrs, ..Node::default() })
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err("it has more than one root element".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
