//! The configuration XML as a small element tree, read with `quick-xml`: names, attributes,
//! children and text, with every unknown element or attribute kept (and so tolerated). What the
//! elements mean is [`super`]'s business.
//!
//! A document that is not well-formed is an error, as it is for the Configuration tool's XML
//! parser: besides what `quick-xml` checks (tags, names, entities), character data may not hold
//! `]]>` (XML 1.0 §2.4), the trace a value breaking out of a CDATA section leaves, no character
//! XML 1.0 does not allow (§2.2: control characters other than tab and line breaks, U+FFFE,
//! U+FFFF) may appear, written or as a character reference, and text may not stand outside the
//! root element.

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

/// Whether XML 1.0 allows `c` in a document (§2.2 `Char`).
fn allowed(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !allowed(*c)) {
        return Err(format!("a character XML does not allow (U+{:04X}) at byte {at}", u32::from(c)));
    }
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
                if text.contains("]]>") {
                    return Err(format!("']]>' in character data at byte {}", reader.buffer_position()));
                }
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text.xml10_content()),
                    None if text.trim().is_empty() => {}
                    None => {
                        return Err(format!(
                            "text outside the root element at byte {}",
                            reader.buffer_position()
                        ));
                    }
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) if !allowed(c) => {
                        return Err(format!(
                            "a reference to a character XML does not allow (U+{:04X}) at byte {}",
                            u32::from(c),
                            reader.buffer_position()
                        ));
                    }
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
        assert!(parse("<a/>x").is_err(), "text after the root");
    }

    #[test]
    fn a_value_that_broke_out_of_cdata_is_an_error_not_a_mangled_value() {
        // A password `p]]>q` filled raw into a CDATA section.
        let e = parse("<P><![CDATA[p]]>q]]></P>").unwrap_err();
        assert!(e.starts_with("']]>' in character data at byte"), "{e}");
        assert!(parse("<P>p]]>q</P>").is_err());
        // The same password escaped is read back exactly.
        let p = parse("<P>p]]&gt;q &lt;&amp;&quot;&apos;&#9;&#10;&#13;</P>").expect("well-formed");
        assert_eq!(p.text, "p]]>q <&\"'\t\n\r");
        assert_eq!(parse("<P><![CDATA[a]]]]><![CDATA[>b]]></P>").expect("split CDATA").text, "a]]>b");
    }

    #[test]
    fn characters_xml_does_not_allow_are_errors() {
        assert_eq!(parse("<P>a\u{1}b</P>").unwrap_err(), "a character XML does not allow (U+0001) at byte 4");
        assert!(parse("<P a=\"\u{ffff}\"/>").is_err());
        assert!(
            parse("<P>&#1;</P>")
                .unwrap_err()
                .starts_with("a reference to a character XML does not allow (U+0001)")
        );
        assert_eq!(parse("<P>&#9;\t&#10;</P>").expect("tab and line feed are allowed").text, "\t\t\n");
    }
}
