//! What a plugin says about itself: the builder behind `describe`.

use crate::types::Effect;

/// A plugin's metadata, built in [`crate::Plugin::describe`].
///
/// The input and output JSON Schemas come from the plugin's `Input` and `Output` types; a
/// [`crate::RawPlugin`] sets them as JSON text instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) effect: Effect,
    pub(crate) targets: bool,
    pub(crate) programs: Vec<String>,
    pub(crate) secrets: Vec<String>,
    pub(crate) compensable: bool,
    pub(crate) input_schema: Option<String>,
    pub(crate) output_schema: Option<String>,
}

impl Describe {
    /// A plugin called `name` at semantic version `version`, of effect class `effect`.
    ///
    /// Pass `env!("CARGO_PKG_NAME")` and `env!("CARGO_PKG_VERSION")` to keep them in step with
    /// the crate.
    pub fn new(name: impl Into<String>, version: impl Into<String>, effect: Effect) -> Self {
        Describe {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            effect,
            targets: false,
            programs: Vec::new(),
            secrets: Vec::new(),
            compensable: false,
            input_schema: None,
            output_schema: None,
        }
    }

    /// One line saying what the step does.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// The plugin runs programs or moves files on targets.
    pub fn uses_targets(mut self) -> Self {
        self.targets = true;
        self
    }

    /// The plugin runs `program` through [`crate::Ctx::exec`] (implies [`Self::uses_targets`]).
    pub fn program(mut self, program: impl Into<String>) -> Self {
        self.targets = true;
        self.programs.push(program.into());
        self
    }

    /// The plugin reads or references the secret `name`.
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.secrets.push(name.into());
        self
    }

    /// The plugin implements `compensate`.
    pub fn compensable(mut self) -> Self {
        self.compensable = true;
        self
    }

    /// Sets the input JSON Schema as JSON text (for [`crate::RawPlugin`]s).
    pub fn input_schema_json(mut self, schema: impl Into<String>) -> Self {
        self.input_schema = Some(schema.into());
        self
    }

    /// Sets the output JSON Schema as JSON text (for [`crate::RawPlugin`]s).
    pub fn output_schema_json(mut self, schema: impl Into<String>) -> Self {
        self.output_schema = Some(schema.into());
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The effect class.
    pub fn effect(&self) -> Effect {
        self.effect
    }
}
