//! `docs/api.md`: the web API's reference, generated from [`ENDPOINTS`] and the JSON Schemas of
//! the documents the routes answer (schemars), so it cannot drift from what is served (a test
//! checks the committed file is fresh).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use drover_engine::journal::reference::{description, fields, one_line, schema_of};
use serde_json::Value;

use crate::MAX_BODY;
use crate::api::{ENDPOINTS, PlanListing};
use crate::view::RunView;

/// The reference as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Web API reference\n\n<!-- Generated from web/src/api.rs and the documents' types by `UPDATE_API=1 cargo test -p drover-web --lib reference`; do not edit. -->\n\n",
    );
    let _ = write!(
        out,
        "`drover serve` answers JSON under `/api/`: the same documents the commands' `--json` output prints, \
built by the same code. Control characters that JSON leaves raw (C1, bidirectional controls) are escaped, as \
on the command line. A failed request answers `{{\"error\": \"…\"}}` with its status: 400, 415 or 422 for a \
body that is not what the route takes, 401 without a login, 403 for a refused person (a gate's approvers, a \
missing CSRF token, another site's page), 404 for an unknown run, 409 for a command that does not fit the \
run's state, 413 for a body over {} KiB, 429 for too many failed logins, 503 when the journal cannot be \
reached.\n\n\
**Reading** needs nothing when the server runs with `--anonymous read` (the default), and a login or a token \
with `--anonymous closed`. **Acting** (the `POST` routes) needs either a login session (the cookie the \
`/login` form sets) with the session's CSRF token in the `x-csrf-token` header (the page has it in \
`<meta name=\"csrf-token\">`), or an API token in `Authorization: Bearer TOKEN` (`drover users add NAME \
--file FILE --token`). The journal records the logged-in person as the actor.\n\n",
        MAX_BODY / 1024
    );
    let _ = writeln!(out, "## Routes\n\n| method | path | answers |\n|---|---|---|");
    for e in ENDPOINTS {
        let _ = writeln!(
            out,
            "| `{}` | [`{}`](#{}) | {} |",
            e.method,
            e.path,
            anchor(e.method, e.path),
            e.answer
        );
    }
    let _ = writeln!(out);
    for e in ENDPOINTS {
        let _ = writeln!(out, "### `{} {}`\n\n{}\n", e.method, e.path, e.summary);
        let _ = writeln!(out, "Answers: {}.\n", e.answer);
        if let Some(cli) = e.cli {
            let _ = writeln!(out, "The same document as `{cli}`.\n");
        }
        if let Some(body) = e.body {
            let _ = writeln!(out, "Body (`content-type: application/json`):\n\n```json\n{body}\n```\n");
        }
    }
    let _ = writeln!(out, "## Documents\n");
    let roots: [(&str, Value); 7] = [
        ("RunSummary", schema_of::<drover_engine::documents::RunSummary>()),
        ("RunStatus", schema_of::<drover_engine::documents::RunStatus>()),
        ("Report", schema_of::<drover_engine::report::Report>()),
        ("RunView", schema_of::<RunView>()),
        ("PlanListing", schema_of::<PlanListing>()),
        ("Plan", schema_of::<drover_engine::run::plan::Plan>()),
        ("Delivered", schema_of::<drover_engine::documents::Delivered>()),
    ];
    // Every type once: the roots, then the types they use, by name.
    let mut types: BTreeMap<String, Value> = BTreeMap::new();
    for (_, root) in &roots {
        if let Some(defs) = root.get("$defs").and_then(Value::as_object) {
            for (name, def) in defs {
                types.entry(name.clone()).or_insert_with(|| def.clone());
            }
        }
    }
    for (name, root) in &roots {
        types.remove(*name);
        section(&mut out, name, root);
    }
    for (name, def) in &types {
        section(&mut out, name, def);
    }
    out
}

fn section(out: &mut String, name: &str, node: &Value) {
    let _ = writeln!(out, "### {name}\n");
    let text = one_line(description(node));
    if !text.is_empty() {
        let _ = writeln!(out, "{text}\n");
    }
    let values = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Value::as_array);
    if let Some(values) = values.filter(|v| v.iter().all(|v| v.get("const").is_some())) {
        for value in values {
            let constant = value.get("const").and_then(Value::as_str).unwrap_or_default();
            let _ = writeln!(out, "- `{constant}`: {}", one_line(description(value)));
        }
        let _ = writeln!(out);
    } else if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let list: Vec<String> =
            values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect();
        let _ = writeln!(out, "One of {}.\n", list.join(", "));
    } else {
        fields(out, node);
    }
}

/// The anchor GitHub gives a heading `` `METHOD PATH` ``.
fn anchor(method: &str, path: &str) -> String {
    format!("{method} {path}")
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_committed_reference_is_fresh() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
        let generated = super::markdown();
        if std::env::var_os("UPDATE_API").is_some() {
            std::fs::write(&path, &generated).expect("write docs/api.md");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/api.md is stale: run `UPDATE_API=1 cargo test -p drover-web --lib reference`"
        );
    }

    #[test]
    fn every_route_and_document_has_its_section() {
        let reference = super::markdown();
        for e in super::ENDPOINTS {
            assert!(reference.contains(&format!("### `{} {}`", e.method, e.path)), "{} {}", e.method, e.path);
        }
        for name in [
            "RunSummary",
            "RunStatus",
            "StepStatus",
            "InstanceStatus",
            "Report",
            "RunView",
            "Plan",
            "Delivered",
        ] {
            assert!(reference.contains(&format!("### {name}\n")), "{name}");
        }
        // A field's own words reach the page.
        assert!(reference.contains("Why it waits and the command that moves it on"), "{reference}");
    }
}
