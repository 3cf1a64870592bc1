//! Stage 1: text to file types. TOML (or JSON, by extension) becomes a spanned document tree;
//! every key the schema does not know is reported, with a suggestion when a known key is close;
//! the rest is deserialized into [`Document`], and when that fails each step and param is
//! deserialized on its own so that one mistake does not hide the others. Nothing here judges
//! meaning (ids, plugins, templates): that is [`super::validate`](mod@super::validate).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize as _;
use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, Diagnostics, Source};
use super::file::{Document, ParamFile, StepFile};
use super::{json, schema};

/// A parsed workflow file: its document and where it came from, for positions in messages.
#[derive(Debug, Clone)]
pub struct WorkflowFile {
    /// The file's path and text.
    pub source: Source,
    /// The document.
    pub document: Document,
}

impl WorkflowFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        self.source.path()
    }
}

/// Parses a workflow file: JSON when the path ends in `.json`, TOML otherwise. Reports every
/// syntax error, every unknown key and a type error per step at once.
pub fn parse(path: &Path, text: &str) -> Result<WorkflowFile, Diagnostics> {
    match parse_partial(path, text) {
        (Some(file), problems) if problems.is_empty() => Ok(file),
        (_, problems) => Err(Diagnostics::new(problems)),
    }
}

/// Like [`parse`], but also returns the document when only unknown keys were found (they are
/// dropped), so that [`super::load`] can go on to report validation problems in the same run.
pub(super) fn parse_partial(path: &Path, text: &str) -> (Option<WorkflowFile>, Vec<Diagnostic>) {
    let source = Source::new(path, text);
    let mut problems = Vec::new();
    let root = if is_json(path) {
        match json::parse(text) {
            Ok(root) => root,
            Err(e) => {
                problems.push(source.at_line(e.line, e.column, e.message));
                return (None, problems);
            }
        }
    } else {
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            for e in errors {
                let span = e.span().unwrap_or(0..0);
                problems.push(source.at(&span, e.message().trim_end_matches('.').to_owned()));
            }
            return (None, problems);
        }
        root
    };
    let mut root = root;
    remove_unknown_keys(&source, &mut root, &mut problems);
    let document = match Document::deserialize(toml::Deserializer::from(root.clone())) {
        Ok(document) => document,
        Err(e) => {
            let before = problems.len();
            diagnose_pieces(&source, &root, &mut problems);
            if problems.len() == before {
                problems.push(serde_problem(&source, root.get_ref(), &e));
            }
            return (None, problems);
        }
    };
    (Some(WorkflowFile { source, document }), problems)
}

/// Whether the path names a JSON file.
fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// One step of the way into the document tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Where in the document a problem is, described for a message: the step or param that owns it
/// and the keys below that.
struct Place {
    owner: Option<String>,
    keys: String,
}

impl Place {
    fn of(root: &DeTable<'_>, path: &[Seg]) -> Place {
        let (owner, rest) = match path {
            [Seg::Key(k), Seg::Index(i), rest @ ..] if k == "steps" => {
                let id = root
                    .get("steps")
                    .and_then(|s| s.get_ref().as_array())
                    .and_then(|a| a.get(*i))
                    .and_then(|s| s.get_ref().get("id"))
                    .and_then(|id| id.get_ref().as_str());
                let owner = match id {
                    Some(id) => format!("step `{id}`"),
                    None => format!("step {} (the one without an id)", i + 1),
                };
                (Some(owner), rest)
            }
            [Seg::Key(k), Seg::Key(name), rest @ ..] if k == "params" => {
                (Some(format!("param `{name}`")), rest)
            }
            _ => (None, path),
        };
        let mut keys = String::new();
        for seg in rest {
            match seg {
                Seg::Key(k) => {
                    if !keys.is_empty() {
                        keys.push('.');
                    }
                    keys.push_str(k);
                }
                Seg::Index(i) => keys.push_str(&format!("[{i}]")),
            }
        }
        Place { owner, keys }
    }

    /// `at the top level`, `in step `x``, `in `retry` of step `x``.
    fn container(&self) -> String {
        match (&self.owner, self.keys.is_empty()) {
            (None, true) => "at the top level".into(),
            (None, false) => format!("in `{}`", self.keys),
            (Some(owner), true) => format!("in {owner}"),
            (Some(owner), false) => format!("in `{}` of {owner}", self.keys),
        }
    }

    /// A prefix for a message about the value here: `` `retry.initial` in step `x`: ``.
    fn prefix(&self) -> String {
        match (&self.owner, self.keys.is_empty()) {
            (None, true) => String::new(),
            (None, false) => format!("`{}`: ", self.keys),
            (Some(owner), true) => format!("{owner}: "),
            (Some(owner), false) => format!("`{}` in {owner}: ", self.keys),
        }
    }
}

/// The object rules of a schema node: its known keys and what other keys may hold.
struct Rules<'s> {
    properties: BTreeMap<&'s str, &'s Value>,
    /// `None`: other keys are unknown; `Some(None)`: anything goes; `Some(Some(s))`: per `s`.
    additional: Option<Option<&'s Value>>,
}

/// Reads the generated schema to know which keys each table of the document may have.
struct SchemaView<'s> {
    root: &'s Value,
}

impl<'s> SchemaView<'s> {
    /// Follows `$ref`s to local definitions.
    fn resolve(&self, mut node: &'s Value) -> &'s Value {
        for _ in 0..16 {
            match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
                Some(pointer) => match self.root.pointer(pointer) {
                    Some(target) => node = target,
                    None => break,
                },
                None => break,
            }
        }
        node
    }

    /// The branches of a node: itself, or its `anyOf`/`oneOf` alternatives.
    fn branches(&self, node: &'s Value) -> Vec<&'s Value> {
        let node = self.resolve(node);
        let alternatives = node.get("anyOf").or_else(|| node.get("oneOf")).and_then(Value::as_array);
        match alternatives {
            Some(list) => list.iter().map(|b| self.resolve(b)).collect(),
            None => vec![node],
        }
    }

    fn object_rules(&self, node: &'s Value) -> Option<Rules<'s>> {
        let mut rules: Option<Rules<'s>> = None;
        for branch in self.branches(node) {
            let is_object = branch.get("properties").is_some()
                || branch.get("additionalProperties").is_some()
                || branch.get("type").and_then(Value::as_str) == Some("object");
            if !is_object {
                continue;
            }
            let additional = match branch.get("additionalProperties") {
                Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) | None => Some(None),
                Some(schema) => Some(Some(schema)),
            };
            let r = rules.get_or_insert(Rules { properties: BTreeMap::new(), additional: None });
            if let Some(props) = branch.get("properties").and_then(Value::as_object) {
                r.properties.extend(props.iter().map(|(k, v)| (k.as_str(), v)));
            }
            r.additional = match (r.additional, additional) {
                (Some(None), _) | (_, Some(None)) => Some(None),
                (Some(a), _) => Some(a),
                (None, b) => b,
            };
        }
        rules
    }

    fn items(&self, node: &'s Value) -> Option<&'s Value> {
        self.branches(node).into_iter().find_map(|b| b.get("items"))
    }
}

/// Reports every key that the schema does not know, and removes it so the rest can be read.
fn remove_unknown_keys(source: &Source, root: &mut Spanned<DeTable<'_>>, problems: &mut Vec<Diagnostic>) {
    let view = SchemaView { root: schema::cached() };
    let snapshot = root.get_ref().clone();
    let mut path = Vec::new();
    walk_table(source, &view, &snapshot, root.get_mut(), view.root, &mut path, problems);
}

fn walk_table<'s>(
    source: &Source,
    view: &SchemaView<'s>,
    doc: &DeTable<'_>,
    table: &mut DeTable<'_>,
    schema: &'s Value,
    path: &mut Vec<Seg>,
    problems: &mut Vec<Diagnostic>,
) {
    let Some(rules) = view.object_rules(schema) else { return };
    let mut unknown = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let child = match rules.properties.get(name) {
            Some(child) => Some(*child),
            None => match rules.additional {
                Some(child) => child,
                None => {
                    unknown.push((name.to_owned(), key.span()));
                    continue;
                }
            },
        };
        if let Some(child) = child {
            path.push(Seg::Key(name.to_owned()));
            walk_value(source, view, doc, value.get_mut(), child, path, problems);
            path.pop();
        }
    }
    if unknown.is_empty() {
        return;
    }
    let container = Place::of(doc, path).container();
    for (name, span) in unknown {
        let known = rules.properties.keys().copied().filter(|k| !k.starts_with('$'));
        let hint = match suggest(&name, known) {
            Some(s) => format!(": did you mean `{s}`?"),
            None => String::new(),
        };
        problems.push(source.at(&span, format!("unknown key `{name}` {container}{hint}")));
        table.remove(name.as_str());
    }
}

fn walk_value<'s>(
    source: &Source,
    view: &SchemaView<'s>,
    doc: &DeTable<'_>,
    value: &mut DeValue<'_>,
    schema: &'s Value,
    path: &mut Vec<Seg>,
    problems: &mut Vec<Diagnostic>,
) {
    match value {
        DeValue::Table(table) => walk_table(source, view, doc, table, schema, path, problems),
        DeValue::Array(items) => {
            if let Some(item_schema) = view.items(schema) {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    walk_value(source, view, doc, item.get_mut(), item_schema, path, problems);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The known key closest to a misspelt one, if one is close enough to be meant.
fn suggest<'k>(unknown: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let dashed = unknown.replace('_', "-").to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in known {
        if candidate == dashed {
            return Some(candidate);
        }
        let d = edit_distance(unknown, candidate);
        let limit = if candidate.len() <= 3 { 1 } else { 2 };
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// After the whole document failed to deserialize: deserializes each step, each param and the
/// rest on their own, so every one of them with a problem is reported.
fn diagnose_pieces(source: &Source, root: &Spanned<DeTable<'_>>, problems: &mut Vec<Diagnostic>) {
    let doc = root.get_ref();
    if let Some(steps) = doc.get("steps").and_then(|s| s.get_ref().as_array()) {
        for step in steps.iter() {
            if let DeValue::Table(t) = step.get_ref() {
                let piece = Spanned::new(step.span(), t.clone());
                if let Err(e) = StepFile::deserialize(toml::Deserializer::from(piece)) {
                    problems.push(serde_problem(source, doc, &e));
                }
            }
        }
    }
    if let Some(params) = doc.get("params").and_then(|p| p.get_ref().as_table()) {
        for param in params.values() {
            if let DeValue::Table(t) = param.get_ref() {
                let piece = Spanned::new(param.span(), t.clone());
                if let Err(e) = ParamFile::deserialize(toml::Deserializer::from(piece)) {
                    problems.push(serde_problem(source, doc, &e));
                }
            }
        }
    }
    // The rest, with steps and params that are of the right kind replaced by empty ones.
    let mut rest = root.clone();
    for key in ["steps", "params"] {
        let placeholder = match rest.get_ref().get(key).map(|v| v.get_ref()) {
            Some(DeValue::Array(_)) => DeValue::Array(toml::de::DeArray::new()),
            Some(DeValue::Table(_)) => DeValue::Table(DeTable::new()),
            _ => continue,
        };
        if let Some(v) = rest.get_mut().get_mut(key) {
            let span = v.span();
            *v = Spanned::new(span, placeholder);
        }
    }
    if let Err(e) = Document::deserialize(toml::Deserializer::from(rest)) {
        problems.push(serde_problem(source, doc, &e));
    }
}

/// A deserialization error as a diagnostic at its span, naming the step or param it is in.
fn serde_problem(source: &Source, doc: &DeTable<'_>, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let path = path_to(doc, &span);
    let place = Place::of(doc, &path);
    let message = e.message().trim_end_matches('.');
    let message = match message.strip_prefix("missing field ") {
        Some(rest) => format!("missing key {rest}"),
        None => message.to_owned(),
    };
    source.at(&span, format!("{}{message}", place.prefix()))
}

/// The path to the innermost value (or key) whose span holds `span`. Every child is searched,
/// since a table's span can be only its header (`[[steps]]`) and not hold its keys.
fn path_to(doc: &DeTable<'_>, span: &Range<usize>) -> Vec<Seg> {
    fn within(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
    }
    fn in_table(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
        for (k, v) in table.iter() {
            let here = Seg::Key(k.get_ref().to_string());
            if let Some(mut deeper) = in_value(v.get_ref(), span) {
                deeper.insert(0, here);
                return Some(deeper);
            }
            if within(&v.span(), span) || within(&k.span(), span) {
                return Some(vec![here]);
            }
        }
        None
    }
    fn in_value(value: &DeValue<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
        match value {
            DeValue::Table(t) => in_table(t, span),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                let mut deeper = in_value(v.get_ref(), span).unwrap_or_default();
                if deeper.is_empty() && !within(&v.span(), span) {
                    return None;
                }
                deeper.insert(0, Seg::Index(i));
                Some(deeper)
            }),
            _ => None,
        }
    }
    in_table(doc, span).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_take_typos_and_underscores() {
        let known = ["steps", "timeout", "on-failure", "id", "needs"];
        assert_eq!(suggest("stpes", known.into_iter()), Some("steps"));
        assert_eq!(suggest("timout", known.into_iter()), Some("timeout"));
        assert_eq!(suggest("on_failure", known.into_iter()), Some("on-failure"));
        assert_eq!(suggest("ix", known.into_iter()), Some("id"));
        assert_eq!(suggest("colour", known.into_iter()), None);
    }
}
