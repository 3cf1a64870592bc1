//! The JSON Schema of workflow files, generated from the file types in [`super::file`] (their
//! doc comments are its descriptions). It is committed as `docs/workflow.schema.json` for
//! editors, and the parser walks it to find unknown keys, so the set of known keys has a single
//! source: the file types.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::file::Document;

/// The JSON Schema (draft 2020-12) of workflow files.
pub fn json_schema() -> Value {
    cached().clone()
}

/// The schema, generated once.
pub(super) fn cached() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft2020_12().into_generator();
        let schema = generator.into_root_schema_for::<Document>();
        schema.to_value()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_valid_and_closed() {
        let schema = json_schema();
        assert!(jsonschema::validator_for(&schema).is_ok());
        assert_eq!(schema["additionalProperties"], Value::Bool(false));
        assert!(schema["properties"]["steps"].is_object());
        assert!(schema["$defs"]["Step"]["properties"]["for-each"].is_object());
    }
}
