//! `docs/events.md`: every kind of event and its fields, generated from the JSON Schema of
//! [`super::Event`] and of the record `drover events` prints, so the reference cannot drift from
//! what is written (a test checks the committed file is fresh).

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde_json::Value;

use crate::store::EventRecord;

/// The reference as Markdown.
pub fn events_markdown() -> String {
    let events = schema_of::<super::Event>();
    let record = schema_of::<EventRecord>();
    let mut out = String::from(
        "# Event reference\n\n<!-- Generated from the journal's types by `UPDATE_EVENTS=1 cargo test -p drover-engine --lib journal::reference`; do not edit. -->\n\n",
    );
    out.push_str(
        "Every run keeps an append-only journal of events. `drover events RUN --json` (or `--ndjson`) prints it, one \
         JSON object per line, oldest first; the recovery report is built from it. Scripts may rely on what this page \
         says: a field is never renamed or given another type. New kinds and new fields may appear, so a script \
         ignores what it does not know.\n\n",
    );
    let _ = writeln!(out, "## Every event\n");
    fields(&mut out, &record);
    let _ = writeln!(out, "## Kinds\n");
    let kinds = events.get("oneOf").and_then(Value::as_array).cloned().unwrap_or_default();
    for kind in &kinds {
        let name = kind_name(kind);
        let _ = writeln!(out, "- [`{name}`](#{name}): {}", first_sentence(description(kind)));
    }
    let _ = writeln!(out);
    for kind in &kinds {
        let _ = writeln!(out, "### `{}`\n", kind_name(kind));
        let _ = writeln!(out, "{}\n", one_line(description(kind)));
        let data = &kind["properties"]["data"];
        let data = match data.get("$ref").and_then(Value::as_str) {
            Some(reference) => definition(&events, reference),
            None => data.clone(),
        };
        match data.get("anyOf").and_then(Value::as_array) {
            Some(shapes) => {
                let _ = writeln!(out, "`data` has one of {} shapes.\n", shapes.len());
                for shape in shapes {
                    let _ = writeln!(out, "{}\n", one_line(description(shape)));
                    fields(&mut out, shape);
                }
            }
            None => fields(&mut out, &data),
        }
    }
    let _ = writeln!(out, "## Types\n");
    if let Some(defs) = events.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            if def.get("anyOf").is_some() {
                continue; // the shapes of one kind's data, shown with it
            }
            let _ = writeln!(out, "### {name}\n\n{}\n", one_line(description(def)));
            match def.get("oneOf").and_then(Value::as_array) {
                Some(values) => {
                    for value in values {
                        let constant = value.get("const").and_then(Value::as_str).unwrap_or_default();
                        let _ = writeln!(out, "- `{constant}`: {}", one_line(description(value)));
                    }
                    let _ = writeln!(out);
                }
                None => fields(&mut out, def),
            }
        }
    }
    out
}

/// The JSON Schema (draft 2020-12) of `T`, with its definitions under `$defs`.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

fn definition(schema: &Value, reference: &str) -> Value {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    schema["$defs"][name].clone()
}

fn kind_name(kind: &Value) -> &str {
    kind["properties"]["kind"]["const"].as_str().unwrap_or_default()
}

/// A schema node's description.
pub fn description(node: &Value) -> &str {
    node.get("description").and_then(Value::as_str).unwrap_or_default()
}

/// A doc comment as one Markdown line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_sentence(text: &str) -> String {
    let line = one_line(text);
    match line.find(". ") {
        Some(end) => line[..=end].to_string(),
        None => line,
    }
}

/// The table of an object's fields, or a line saying it has none. The web API's reference
/// (`drover_web`) draws its documents with it too.
pub fn fields(out: &mut String, node: &Value) {
    let properties = node.get("properties").and_then(Value::as_object);
    let Some(properties) = properties.filter(|p| !p.is_empty()) else {
        let _ = writeln!(out, "`data` is `{{}}`.\n");
        return;
    };
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "| field | type | description |\n|---|---|---|");
    for (name, property) in properties {
        let mut kind = type_of(property);
        // Optional fields are written as null; a field of a flattened optional part is left out.
        if !required.contains(&name.as_str()) && !kind.ends_with("or null") {
            kind.push_str(", or absent");
        }
        let _ =
            writeln!(out, "| `{name}` | {kind} | {} |", one_line(description(property)).replace('|', "\\|"));
    }
    let _ = writeln!(out);
}

/// A short JSON type: `string`, `integer or null`, `list of [LogRecord](#logrecord)`.
pub fn type_of(node: &Value) -> String {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(alternatives) = node.get("anyOf").or_else(|| node.get("oneOf")).and_then(Value::as_array) {
        let nullable = alternatives.iter().any(|a| a.get("type").and_then(Value::as_str) == Some("null"));
        let parts: Vec<String> = alternatives
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .map(type_of)
            .collect();
        let joined = parts.join(" or ");
        return if nullable { format!("{joined} or null") } else { joined };
    }
    if let Some(constant) = node.get("const").and_then(Value::as_str) {
        return format!("`{constant}`");
    }
    let (kind, nullable) = match node.get("type") {
        Some(Value::String(t)) => (t.clone(), false),
        Some(Value::Array(types)) => {
            let named: Vec<&str> = types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
            (named.join(" or "), named.len() < types.len())
        }
        _ => ("any JSON".into(), false),
    };
    let kind = match kind.as_str() {
        "array" => match (node.get("prefixItems").and_then(Value::as_array), node.get("items")) {
            (Some(tuple), _) => format!("[{}]", tuple.iter().map(type_of).collect::<Vec<_>>().join(", ")),
            (None, Some(items)) => format!("list of {}", type_of(items)),
            (None, None) => "list".into(),
        },
        _ => kind,
    };
    if nullable { format!("{kind} or null") } else { kind }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_committed_reference_is_fresh() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md");
        let generated = super::events_markdown();
        if std::env::var_os("UPDATE_EVENTS").is_some() {
            std::fs::write(&path, &generated).expect("write docs/events.md");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/events.md is stale: run `UPDATE_EVENTS=1 cargo test -p drover-engine --lib journal::reference`"
        );
    }

    #[test]
    fn every_kind_has_its_section_and_its_fields() {
        let reference = super::events_markdown();
        for (event, data) in super::super::event::tests::samples() {
            let kind = event.kind();
            assert!(reference.contains(&format!("### `{kind}`")), "{kind} has no section");
            for field in data.as_object().into_iter().flat_map(|d| d.keys()) {
                assert!(
                    reference.contains(&format!("| `{field}` |")),
                    "{kind}: field {field} is not described"
                );
            }
        }
    }
}
