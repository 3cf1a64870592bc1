//! A plugin that is never shipped: its `describe` has no name, no semantic version, no
//! description and an input schema that is not JSON. `drover plugin install` must refuse it.

use drover_sdk::prelude::*;

/// The plugin.
pub struct Incomplete;

impl RawPlugin for Incomplete {
    fn describe() -> Describe {
        Describe::new("", "latest", Effect::ReadOnly).input_schema_json("{not json")
    }

    fn call(_ctx: &Ctx, _input: &str) -> Result<Outcome<String>, StepError> {
        Ok(Outcome::unchanged("{}".to_string(), ""))
    }
}

drover_sdk::export_plugin!(Incomplete);
