//! The configuration XML as a small element tree, read with `quick-xml`: names, attributes,
//! children and text, with every unknown element or attribute kept (and so tolerated). What the
//! elements mean is [`super`]'s business.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// An element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements.
    pub children: Vec<Element>,
    /// Text content, concatenated.
    pub text: String,
}

impl Element {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of the first child called `name`, empty when absent.
    pub fn child_text(&self, name: &str) -> &str {
        self.child(name).map(|c| c.text.trim()).unwrap_or_default()
    }

    /// Whether this is an `Answer` that is not selected, so its children do not apply.
    fn unselected_answer(&self) -> bool {
        self.name == "Answer" && !self.attr("Selected").is_some_and(|s| s.eq_ignore_ascii_case("yes"))
    }

    /// The descendants that apply, in document order: those not under an unselected `Answer`.
    pub fn applicable(&self) -> Vec<&Element> {
        let mut found = Vec::new();
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        while let Some(e) = stack.pop() {
            if e.unselected_answer() {
                continue;
            }
            found.push(e);
            stack.extend(e.children.iter().rev());
        }
        found
    }

    /// The applicable descendant called `name` whose `ID` is `id`.
    pub fn applicable_with_id(&self, name: &str, id: &str) -> Option<&Element> {
        self.applicable().into_iter().find(|e| e.name == name && e.attr("ID") == Some(id))
    }

    /// The `Value` of the selected `Answer` of the applicable `Question` `id`.
    pub fn answer(&self, id: &str) -> Option<&str> {
        let question = self.applicable_with_id("Question", id)?;
        question.children.iter().find(|a| a.name == "Answer" && !a.unselected_answer())?.attr("Value")
    }
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| format!("{e} at byte {}", reader.error_position()))?;
        match event {
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => {
                let e = element(&start)?;
                attach(&mut stack, &mut root, e)?;
            }
            Event::End(_) => {
                let e = stack.pop().ok_or("unexpected end tag")?;
                attach(&mut stack, &mut root, e)?;
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text.xml10_content());
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
        return Err("unexpected end of document".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|e| e.to_string())?;
        attrs.push((attr.key.local_name().as_ref().to_owned(), value.into_owned()));
    }
    Ok(Element { name: start.local_name().as_ref().to_owned(), attrs, ..Element::default() })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, e: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(e),
        None if root.is_none() => *root = Some(e),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_selected_one() {
        let root = parse(
            r#"<?xml version="1.0"?>
            <Configuration>
              <Feature Name="WMI" Unknown="x">
                <Question ID="CREATEORJOIN" Answers="Create,Join">
                  <Answer Value="Create" Selected="no"><SQL ID="A"><Server>X</Server></SQL></Answer>
                  <Answer Value="Join" Selected="Yes"/>
                </Question>
                <SQL ID="B"><Server> PRD&amp;SQL01 </Server><Database><![CDATA[Mgmt]]></Database></SQL>
                <Whatever/>
              </Feature>
            </Configuration>"#,
        )
        .expect("parses");
        let feature = root.child("Feature").expect("feature");
        assert_eq!(feature.attr("Unknown"), Some("x"));
        assert_eq!(feature.answer("CREATEORJOIN"), Some("Join"));
        assert!(feature.applicable_with_id("SQL", "A").is_none(), "under an unselected answer");
        let sql = feature.applicable_with_id("SQL", "B").expect("sql");
        assert_eq!((sql.child_text("Server"), sql.child_text("Database")), ("PRD&SQL01", "Mgmt"));
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
