//! `docs/workflow-reference.md`: every key of a workflow file, generated from the same JSON
//! Schema as `docs/workflow.schema.json` (so the reference cannot drift from the parser; a test
//! checks the committed file is fresh), between a few paragraphs of prose kept here.

use std::fmt::Write as _;

use serde_json::Value;

/// The reference as Markdown.
pub fn reference_markdown() -> String {
    let schema = super::schema::cached();
    let mut out = String::from(
        "# Workflow file reference\n\n<!-- Generated from the workflow types by `UPDATE_SCHEMA=1 cargo test -p drover-engine --test workflow_validation`; do not edit. -->\n\n",
    );
    let _ = writeln!(
        out,
        "A workflow is a TOML file (or JSON with the same shape, `docs/workflow.schema.json`). Keys are kebab-case. \
         Strings in `with`, `when`, `for-each` lists and approval prompts are minijinja templates over `params`, \
         `steps.<id>.output`, `item`, `target`, `inventory` and `run`.\n"
    );
    let _ = writeln!(
        out,
        "Templates only shape values: one render may execute {} instructions and produce {} MiB; a template past \
         either fails its step, saying which.\n",
        super::template::FUEL,
        super::template::MAX_RENDERED_BYTES / (1024 * 1024)
    );
    let _ = writeln!(
        out,
        "An approval's prompt is text: it is rendered when the gate is reached, over the params, the inventory, the \
         gate's `item` and `target`, and the outputs of the steps it needs, directly or not (`validate` refuses any \
         other step, as for `with`). `drover status`, the `waiting-for-approval` event and the report show the \
         rendered text; `drover plan` renders what it can and shows a prompt that reads step outputs as written. \
         A prompt that does not render at run time (a value missing from an output) does not fail its gate: the \
         gate waits, showing the prompt as written and why it did not render, and can still be approved, skipped \
         or cancelled.\n"
    );
    section(&mut out, "Top level", schema);
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            section(&mut out, name, def);
        }
    }
    out.push_str(COMPENSATION);
    out.push_str(REPORT);
    out
}

/// What `on-failure = "compensate"` does, beyond what its one-line description can say.
const COMPENSATION: &str = "## Compensation

`on-failure = \"compensate\"` (on a step, or at the top level for every step and for the run) \
undoes the work of a failed run as far as it can. Once the run starts nothing new and its running \
instances have finished, Drover calls the `compensate` of each step instance that succeeded and \
changed something, in reverse dependency order: a step is compensated only after every step that \
needs it. Irreversible steps and steps whose plugin does not implement `compensate` are left as is, \
and listed as such. Compensations are journaled like forward work, so a run interrupted during \
compensation resumes it and a finished compensation never runs again; one interrupted midway runs \
again, so a compensation must be idempotent. `drover compensate <run>` asks for it by hand. A \
workflow that says `compensate` where no step can be undone is refused.
";

/// What `phase` and `[report]` put in the recovery report.
const REPORT: &str = "
## The recovery report

`drover report` measures a failover or a drill from the journal alone. Give steps a `phase` \
(`phase = \"Restore databases\"`; the steps of a phase need not be consecutive) and the report \
gives each phase its start (first attempt, or its gate's wait), end (last attempt's end, or its \
gate's decision) and elapsed time, with the time its gates waited apart. The run's elapsed time \
(the RTO as measured) runs from the run's creation to its end, or to its last event while it has \
not ended, and the time during which an approval gate waited is shown apart from it. Every gate \
is listed with its question, who approved (or skipped, or cancelled the run) and when, with the \
comment given.

```toml
[report]
manual = [\"Redirect clients: DNS and aliases\", \"BAM: update the references by hand\"]
rpo = \"steps.declare.output.rpo\"
```

`manual` lines are listed under \"Still to do by hand\", followed by every step instance that was \
skipped, failed, cancelled, waits or needs an operator, and, once the run has ended, every step it \
never reached. `rpo` names the output of a step that does not fan out, and optional keys into it, \
holding an object such as `{ \"recovery_point\": \"2026-12-07T09:14:00Z\", \"failure_time\": \
\"2026-12-07T10:20:30+01:00\" }`: the last transaction restored and the moment production failed, \
RFC 3339 times with a zone. The report shows both and the data-loss window between them, or says \
why it was not measured (no `rpo`, the step did not succeed, a field missing or not a time). An \
operator who measured it by hand can give the same object with `drover skip <run> <step> --output`.
";

fn section(out: &mut String, name: &str, node: &Value) {
    let _ = writeln!(out, "## {name}\n");
    if let Some(description) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "| key | type | required | description |\n|---|---|---|---|");
        for (key, property) in properties {
            let description = property.get("description").and_then(Value::as_str).unwrap_or("");
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} | {} |",
                type_of(property),
                if required.contains(&key.as_str()) { "yes" } else { "" },
                description.replace('\n', " ").replace('|', "\\|")
            );
        }
        let _ = writeln!(out);
    } else {
        let alternatives = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Value::as_array);
        if let Some(alternatives) = alternatives {
            for alternative in alternatives {
                let description = alternative.get("description").and_then(Value::as_str).unwrap_or("");
                let _ = writeln!(out, "- {}: {}", type_of(alternative), description.replace('\n', " "));
            }
            let _ = writeln!(out);
        } else if let Some(values) = node.get("enum").and_then(Value::as_array) {
            let list: Vec<String> =
                values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect();
            let _ = writeln!(out, "One of {}.\n", list.join(", "));
        }
    }
}

/// A short type: `string`, `integer ≥ 1`, `[Step](#step) list`, `string or [Approval](#approval)`.
fn type_of(node: &Value) -> String {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(alternatives) = node.get("anyOf").or_else(|| node.get("oneOf")).and_then(Value::as_array) {
        let parts: Vec<String> = alternatives
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .map(type_of)
            .collect();
        return parts.join(" or ");
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(constant) = node.get("const").and_then(Value::as_str) {
        return format!("`{constant}`");
    }
    let kind = match node.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => {
            types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join(" or ")
        }
        _ => "any".into(),
    };
    match kind.as_str() {
        "array" => match node.get("items") {
            Some(items) => format!("list of {}", type_of(items)),
            None => "list".into(),
        },
        "object" => match node.get("additionalProperties") {
            Some(values @ Value::Object(_)) => format!("table of {}", type_of(values)),
            _ => "table".into(),
        },
        "integer" | "number" => match node.get("minimum").and_then(Value::as_i64) {
            Some(min) => format!("{kind} ≥ {min}"),
            None => kind,
        },
        _ => kind,
    }
}
