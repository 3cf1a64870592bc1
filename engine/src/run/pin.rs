//! The pinned definition: the validated workflow as a run stores it when it starts, with each
//! plugin's description (its schemas) kept once rather than once per step.
//!
//! `{"format": 2, "plugins": {"noop@1.0.0": <PluginInfo>}, "workflow": <Workflow>}`, where each
//! plugin step's `info` is the key into `plugins`. Runs started before this format pinned the
//! workflow as it serializes, every step carrying its plugin's description; they still load.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::workflow::Workflow;

/// The format of definitions pinned by this build.
const FORMAT: u64 = 2;

/// Each plugin step's `info`, in a serialized workflow.
fn plugin_infos(workflow: &mut Value) -> impl Iterator<Item = &mut Value> {
    workflow
        .get_mut("steps")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|step| step.pointer_mut("/kind/plugin/info"))
}

/// The definition to pin for `workflow`.
pub(crate) fn pin(workflow: &Workflow) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(workflow)?;
    let mut plugins = Map::new();
    for info in plugin_infos(&mut value) {
        let field = |name: &str| info.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let key = format!("{}@{}", field("name"), field("version"));
        let info = std::mem::replace(info, Value::String(key.clone()));
        plugins.entry(key).or_insert(info);
    }
    Ok(json!({ "format": FORMAT, "plugins": plugins, "workflow": value }))
}

/// The workflow a run pinned.
pub fn pinned_workflow(definition: &Value) -> Result<Workflow, String> {
    if definition.get("format").and_then(Value::as_u64) != Some(FORMAT) {
        // Pinned before the format existed: the workflow itself.
        return Workflow::deserialize(definition).map_err(|e| e.to_string());
    }
    let plugins = definition.get("plugins").and_then(Value::as_object).ok_or("no plugins table")?;
    let mut workflow = definition.get("workflow").cloned().ok_or("no workflow")?;
    for info in plugin_infos(&mut workflow) {
        let key = info.as_str().ok_or("a step's plugin is not a key into the plugins table")?;
        *info =
            plugins.get(key).cloned().ok_or_else(|| format!("plugin {key} is not in the plugins table"))?;
    }
    Workflow::deserialize(&workflow).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{PluginInfo, PluginRef};
    use crate::workflow::{ValidationContext, load_text};

    fn workflow() -> Workflow {
        let info: PluginInfo = serde_json::from_value(json!({
            "name": "noop", "version": "1.0.0", "description": "does nothing", "effect": "read-only",
            "input_schema": {"type": "object"}, "output_schema": {"type": "object"},
            "capabilities": {"programs": [], "secrets": [], "targets": false},
            "compensable": false, "sdk": "drover-sdk 0.1.0"
        }))
        .expect("info");
        let resolve = |_: &PluginRef| Ok(info.clone());
        let text = "name = \"w\"\nversion = \"1.0.0\"\n\n[[steps]]\nid = \"a\"\nplugin = \"noop\"\n\n\
                    [[steps]]\nid = \"b\"\nplugin = \"noop@1\"\nneeds = [\"a\"]\n\n\
                    [[steps]]\nid = \"gate\"\napproval = { prompt = \"go?\" }\nneeds = [\"b\"]\n";
        load_text(
            std::path::Path::new("w.toml"),
            text,
            &ValidationContext { groups: None, plugins: &resolve },
        )
        .expect("valid")
    }

    #[test]
    fn a_pinned_workflow_reads_back_as_it_was_with_each_plugin_described_once() {
        let wf = workflow();
        let pinned = pin(&wf).expect("pin");
        assert_eq!(pinned["plugins"].as_object().map(Map::len), Some(1), "{pinned:#}");
        assert_eq!(pinned["workflow"]["steps"][1]["kind"]["plugin"]["info"], "noop@1.0.0");
        assert_eq!(pinned_workflow(&pinned).expect("read back"), wf);
    }

    #[test]
    fn a_workflow_pinned_before_the_format_still_reads() {
        let wf = workflow();
        let old = serde_json::to_value(&wf).expect("serialize");
        assert_eq!(pinned_workflow(&old).expect("read"), wf);
    }

    #[test]
    fn a_damaged_pin_is_an_error_naming_what_is_missing() {
        let mut pinned = pin(&workflow()).expect("pin");
        pinned["plugins"] = json!({});
        let error = pinned_workflow(&pinned).expect_err("missing plugin");
        assert!(error.contains("noop@1.0.0"), "{error}");
    }
}
