//! The export glue: turns a [`RawPlugin`] into the WIT exports and implements [`HostApi`] over
//! the WIT imports. This is the only code in the SDK that touches the generated bindings.

use crate::bindings::drover::plugin::{host, target, types as wit};
use crate::ctx::{Ctx, HostApi};
use crate::types::{
    Context, Effect, ExecOutput, ExecRequest, HostError, HostErrorKind, Level, Mode, StepError,
};
use crate::{Describe, RawPlugin};

/// Version of the SDK, reported to the host in `describe`.
pub const SDK_VERSION: &str = concat!("drover-sdk ", env!("CARGO_PKG_VERSION"));

/// [`HostApi`] over the WIT imports; only meaningful inside the sandbox.
struct WasmHost;

impl HostApi for WasmHost {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => host::LogLevel::Trace,
            Level::Debug => host::LogLevel::Debug,
            Level::Info => host::LogLevel::Info,
            Level::Warn => host::LogLevel::Warn,
            Level::Error => host::LogLevel::Error,
        };
        host::log(level, message);
    }

    fn heartbeat(&self, progress: Option<f32>, message: &str) {
        host::heartbeat(progress, message);
    }

    fn secret(&self, name: &str) -> Result<String, HostError> {
        host::secret(name).map_err(host_error)
    }

    fn state_get(&self, key: &str) -> Option<String> {
        host::state_get(key)
    }

    fn state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        host::state_set(key, value).map_err(host_error)
    }

    fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, HostError> {
        let wit_request = target::ExecRequest {
            target: request.target.clone(),
            program: request.program.clone(),
            args: request.args.clone(),
            stdin: request.stdin.clone(),
            timeout_ms: request.timeout_ms,
        };
        let out = target::exec(&wit_request).map_err(host_error)?;
        Ok(ExecOutput {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            truncated: out.truncated,
            duration_ms: out.duration_ms,
        })
    }

    fn read_file(&self, target_name: &str, path: &str) -> Result<Vec<u8>, HostError> {
        target::read_file(target_name, path).map_err(host_error)
    }

    fn write_file(&self, target_name: &str, path: &str, contents: &[u8]) -> Result<(), HostError> {
        target::write_file(target_name, path, contents).map_err(host_error)
    }

    fn remove_file(&self, target_name: &str, path: &str) -> Result<(), HostError> {
        target::remove_file(target_name, path).map_err(host_error)
    }
}

fn host_error(e: wit::HostError) -> HostError {
    let kind = match e.kind {
        wit::HostErrorKind::Denied => HostErrorKind::Denied,
        wit::HostErrorKind::Retryable => HostErrorKind::Retryable,
        wit::HostErrorKind::Permanent => HostErrorKind::Permanent,
        wit::HostErrorKind::NotFound => HostErrorKind::NotFound,
        wit::HostErrorKind::TooLarge => HostErrorKind::TooLarge,
    };
    HostError { kind, message: e.message }
}

/// The `describe` export.
pub fn describe<P: RawPlugin>() -> wit::PluginInfo {
    let d: Describe = P::describe();
    wit::PluginInfo {
        name: d.name,
        version: d.version,
        description: d.description,
        effect: match d.effect {
            Effect::ReadOnly => wit::EffectClass::ReadOnly,
            Effect::Idempotent => wit::EffectClass::Idempotent,
            Effect::Reversible => wit::EffectClass::Reversible,
            Effect::Irreversible => wit::EffectClass::Irreversible,
        },
        input_schema: d.input_schema.unwrap_or_else(|| "{}".into()),
        output_schema: d.output_schema.unwrap_or_else(|| "{}".into()),
        capabilities: wit::Capabilities { targets: d.targets, programs: d.programs, secrets: d.secrets },
        compensable: d.compensable,
        sdk: SDK_VERSION.into(),
    }
}

/// The `check`, `apply` and `compensate` exports.
pub fn call<P: RawPlugin>(ctx: wit::Context, input: String) -> Result<wit::Outcome, wit::StepError> {
    let context = Context {
        run_id: ctx.run_id,
        step_key: ctx.step_key,
        attempt: ctx.attempt,
        idempotency_key: ctx.idempotency_key,
        target: ctx.target,
        mode: match ctx.mode {
            wit::Mode::Apply => Mode::Apply,
            wit::Mode::Check => Mode::Check,
            wit::Mode::Compensate => Mode::Compensate,
        },
    };
    let host = WasmHost;
    match P::call(&Ctx::new(context, &host), &input) {
        Ok(outcome) => Ok(wit::Outcome {
            changed: outcome.changed,
            summary: outcome.summary,
            output: outcome.output,
            evidence: outcome
                .evidence
                .into_iter()
                .map(|e| wit::Evidence {
                    label: e.label,
                    command: e.command,
                    exit_code: e.exit_code,
                    excerpt: e.excerpt,
                })
                .collect(),
        }),
        Err(StepError::Retryable(m)) => Err(wit::StepError::Retryable(m)),
        Err(StepError::Permanent(m)) => Err(wit::StepError::Permanent(m)),
        Err(StepError::NeedsOperator(m)) => Err(wit::StepError::NeedsOperator(m)),
    }
}

/// Exports a plugin type as the Drover step world. Use once per plugin crate, at the crate root:
///
/// ```text
/// drover_sdk::export_plugin!(MyPlugin);
/// ```
///
/// The type must implement [`crate::Plugin`] (or [`crate::RawPlugin`]). Outside `wasm32` the macro
/// expands to nothing, so the crate's native unit tests build as usual.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct DroverStepExport;
            impl $crate::__private::Guest for DroverStepExport {
                fn describe() -> $crate::__private::wit::PluginInfo {
                    $crate::__private::describe::<$plugin>()
                }
                fn check(
                    ctx: $crate::__private::wit::Context,
                    input: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::wit::Outcome, $crate::__private::wit::StepError>
                {
                    $crate::__private::call::<$plugin>(ctx, input)
                }
                fn apply(
                    ctx: $crate::__private::wit::Context,
                    input: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::wit::Outcome, $crate::__private::wit::StepError>
                {
                    $crate::__private::call::<$plugin>(ctx, input)
                }
                fn compensate(
                    ctx: $crate::__private::wit::Context,
                    input: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::wit::Outcome, $crate::__private::wit::StepError>
                {
                    $crate::__private::call::<$plugin>(ctx, input)
                }
            }
    $crate::bindings::__export_step_world!(DroverStepExport with_types_in $crate::bindings);
        };
    };
}
