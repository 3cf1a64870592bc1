//! `noop`: a read-only step that does nothing and echoes an optional label. The engine's
//! benchmarks and scheduler tests use it, so its cost is the cost of the plugin boundary.

use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The plugin.
#[derive(Default)]
pub struct Noop;

/// Input: an optional label, echoed back.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Echoed in the output.
    #[serde(default)]
    pub label: Option<String>,
}

/// Output: the label, if any.
#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The input's label.
    pub label: Option<String>,
}

impl Plugin for Noop {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::ReadOnly)
            .description("does nothing; echoes its label")
    }

    fn check(&self, _ctx: &Ctx, input: Input) -> StepResult<Output> {
        Ok(Outcome::unchanged(Output { label: input.label }, "nothing to do"))
    }

    fn apply(&self, _ctx: &Ctx, input: Input) -> StepResult<Output> {
        Ok(Outcome::unchanged(Output { label: input.label }, "nothing done"))
    }
}

drover_sdk::export_plugin!(Noop);

#[cfg(test)]
mod tests {
    use drover_sdk::testing::FakeHost;
    use serde_json::json;

    use super::*;

    #[test]
    fn echoes_its_label_and_changes_nothing() {
        let host = FakeHost::new();
        let outcome = host.call::<Noop>(Mode::Apply, json!({"label": "x"})).unwrap();
        assert!(!outcome.changed);
        assert_eq!(outcome.output, json!({"label": "x"}));
        assert!(host.call::<Noop>(Mode::Apply, json!({"other": 1})).is_err());
    }
}
