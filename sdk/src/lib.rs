//! `drover-sdk`: write a Drover step plugin in Rust.
//!
//! A plugin is a type implementing [`Plugin`]: typed serde input and output, a [`Describe`] with
//! its name, version, effect class and the capabilities it needs, and `check` / `apply` (and
//! optionally `compensate`). [`export_plugin!`] turns it into a WebAssembly component of the
//! `drover:plugin/step` world defined in `wit/drover.wit`. All host access goes through [`Ctx`],
//! so the same logic unit-tests natively against [`testing::FakeHost`].
//!
//! This crate owns nothing but the guest side of the contract: it never talks to SQLite,
//! targets or the engine except through the WIT imports.
//!
//! # Example
//!
//! ```
//! use drover_sdk::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Makes sure a Windows service is stopped.
//! #[derive(Default)]
//! struct StopService;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input {
//!     /// Service name, e.g. `RuleEngineUpdateService`.
//!     service: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output {
//!     was_running: bool,
//! }
//!
//! impl StopService {
//!     fn running(ctx: &Ctx, target: &str, service: &str) -> Result<Executed, StepError> {
//!         Ok(ctx.exec(target, "sc.exe").args(["query", service]).run()?.require_success()?)
//!     }
//! }
//!
//! impl Plugin for StopService {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn describe() -> Describe {
//!         Describe::new("stop-service", "1.0.0", Effect::Idempotent)
//!             .description("stops a Windows service")
//!             .program("sc.exe")
//!     }
//!
//!     fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
//!         let query = Self::running(ctx, ctx.target()?, &input.service)?;
//!         let was_running = query.stdout().contains("RUNNING");
//!         Ok(Outcome { changed: was_running, summary: String::new(), output: Output { was_running }, evidence: vec![query.evidence("service state")] })
//!     }
//!
//!     fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
//!         let target = ctx.target()?;
//!         let query = Self::running(ctx, target, &input.service)?;
//!         if !query.stdout().contains("RUNNING") {
//!             return Ok(Outcome::unchanged(Output { was_running: false }, "already stopped"));
//!         }
//!         let stop = ctx.exec(target, "sc.exe").args(["stop", input.service.as_str()]).run()?.require_success()?;
//!         Ok(Outcome::changed(Output { was_running: true }, format!("stopped {}", input.service))
//!             .with_evidence(stop.evidence("stop")))
//!     }
//! }
//!
//! drover_sdk::export_plugin!(StopService);
//!
//! // Native test through the fake host:
//! use drover_sdk::testing::FakeHost;
//! let host = FakeHost::new()
//!     .with_target("DRBTS01")
//!     .with_context(Context { target: Some("DRBTS01".into()), ..Context::for_test(Mode::Apply) });
//! host.script_exec("DRBTS01", "sc.exe", &["query", "RuleEngineUpdateService"], ExecOutput::exited(0, "STATE : 4 RUNNING"));
//! host.script_exec("DRBTS01", "sc.exe", &["stop", "RuleEngineUpdateService"], ExecOutput::exited(0, "STATE : 3 STOP_PENDING"));
//! let outcome = host.call::<StopService>(Mode::Apply, serde_json::json!({"service": "RuleEngineUpdateService"})).unwrap();
//! assert!(outcome.changed);
//! assert_eq!(outcome.output["was_running"], true);
//! assert_eq!(host.command_lines(), ["sc.exe query RuleEngineUpdateService", "sc.exe stop RuleEngineUpdateService"]);
//! ```

#[doc(hidden)]
pub mod bindings;
mod ctx;
mod describe;
mod export;
pub mod testing;
mod types;

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

pub use ctx::{Ctx, Exec, Executed, HostApi, secret_ref, secret_ref_xml};
pub use describe::Describe;
pub use export::SDK_VERSION;
pub use types::{
    Context, Effect, Evidence, ExecOutput, ExecRequest, HostError, HostErrorKind, Level, Mode, Outcome,
    StepError, excerpt,
};

/// What `check`, `apply` and `compensate` return.
pub type StepResult<T> = Result<Outcome<T>, StepError>;

/// A step plugin with typed input and output.
///
/// A fresh value (from [`Default`]) serves each call; keep nothing between calls except through
/// [`Ctx::state_set`].
pub trait Plugin: Default + 'static {
    /// The step's input, decoded from the workflow's `with` table. Its JSON Schema is published
    /// in `describe` and checked by the host before the call.
    type Input: DeserializeOwned + JsonSchema;
    /// The step's output, available to downstream steps. Checked by the host against its schema.
    type Output: Serialize + JsonSchema;

    /// Name, version, effect class and capabilities.
    fn describe() -> Describe;

    /// Says whether `apply` would change anything. Must not change anything.
    fn check(&self, ctx: &Ctx, input: Self::Input) -> StepResult<Self::Output>;

    /// Makes the change; probes first, so a repeat is harmless where the effect class says so.
    fn apply(&self, ctx: &Ctx, input: Self::Input) -> StepResult<Self::Output>;

    /// Undoes what `apply` did. Declare [`Describe::compensable`] when you implement it.
    fn compensate(&self, ctx: &Ctx, input: Self::Input) -> StepResult<Self::Output> {
        let _ = (ctx, input);
        Err(StepError::permanent(format!("plugin {} cannot compensate", Self::describe().name())))
    }
}

/// A plugin that handles its input and output as JSON text. Every [`Plugin`] is one; implement
/// it directly only when you need full control of the JSON (test fixtures do).
pub trait RawPlugin: 'static {
    /// Metadata, with the schemas as JSON text.
    fn describe() -> Describe;
    /// Handles one call; the mode is in `ctx`.
    fn call(ctx: &Ctx, input: &str) -> Result<Outcome<String>, StepError>;
}

impl<P: Plugin> RawPlugin for P {
    fn describe() -> Describe {
        let mut d = P::describe();
        d.input_schema.get_or_insert_with(|| schemars::schema_for!(P::Input).to_value().to_string());
        d.output_schema.get_or_insert_with(|| schemars::schema_for!(P::Output).to_value().to_string());
        d
    }

    fn call(ctx: &Ctx, input: &str) -> Result<Outcome<String>, StepError> {
        let input: P::Input = serde_json::from_str(input).map_err(|e| {
            StepError::permanent(format!("input does not fit plugin {}: {e}", P::describe().name()))
        })?;
        let plugin = P::default();
        let outcome = match ctx.mode() {
            Mode::Check => plugin.check(ctx, input),
            Mode::Apply => plugin.apply(ctx, input),
            Mode::Compensate => plugin.compensate(ctx, input),
        }?;
        let output = serde_json::to_string(&outcome.output).map_err(|e| {
            StepError::permanent(format!("output of plugin {} cannot be encoded: {e}", P::describe().name()))
        })?;
        Ok(Outcome { changed: outcome.changed, summary: outcome.summary, output, evidence: outcome.evidence })
    }
}

/// What a plugin file usually needs.
pub mod prelude {
    pub use crate::{
        Context, Ctx, Describe, Effect, Evidence, ExecOutput, ExecRequest, Executed, HostError,
        HostErrorKind, Level, Mode, Outcome, Plugin, RawPlugin, StepError, StepResult, secret_ref,
        secret_ref_xml,
    };
    pub use schemars::JsonSchema;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::Guest;
    pub use crate::bindings::drover::plugin::types as wit;
    pub use crate::export::{call, describe};
}
