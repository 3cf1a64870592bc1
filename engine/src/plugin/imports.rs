//! The host side of the WIT imports: what a plugin's `log`, `secret`, `state-*`, `exec` and file
//! calls do. Every call is checked against the step's [`Grants`] before anything else happens;
//! a refusal is recorded and returned to the guest as a `denied` error. Secret references are
//! filled in here, on the way to the transport, and everything the plugin emits is redacted.
//! Growth is capped here too: a step instance's checkpoints ([`STATE_KEYS`], [`STATE_BYTES`]),
//! an `exec` command line ([`EXEC_COMMAND_BYTES`]), and what an audit record keeps of the
//! plugin's text (`excerpt.rs`).

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::drover::plugin::{host, target, types as wit};
use super::call::{CallEnv, LogLevel, LogRecord, Mode, TargetCall, TargetCallRecord};
use super::error::CallError;
use super::excerpt;
use super::sandbox::SandboxLimits;
use crate::grants::{Grants, Missing, Refusal};
use crate::secrets::{self, Redactor};
use crate::target::{Command, TargetError, TargetErrorKind};

/// Caps the guest's memory and records the request that went over it.
pub(crate) struct MemoryLimiter {
    max: usize,
    pub(crate) exceeded: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(max: usize) -> Self {
        MemoryLimiter { max, exceeded: None }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = Some(desired);
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.max));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        // componentize-py components need 64 or more.
        128
    }

    fn tables(&self) -> usize {
        128
    }

    fn memories(&self) -> usize {
        128
    }
}

/// Everything one plugin call's `Store` holds.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) timed_out: bool,
    /// A failure the host imposed from inside an import (a limit); it wins over the trap it causes.
    pub(crate) fatal: Option<CallError>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) target_calls: Vec<TargetCallRecord>,
    pub(crate) refusals: Vec<Refusal>,
    pub(crate) redactor: Redactor,
    log_bytes: usize,
    plugin: String,
    mode: Mode,
    grants: Grants,
    env: CallEnv,
    limits: SandboxLimits,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Most checkpoint keys one step instance holds (across its attempts).
pub(crate) const STATE_KEYS: usize = 1000;
/// Most bytes of keys and values one step instance's checkpoints hold together; one checkpoint
/// is capped by [`SandboxLimits::output_bytes`] (1 MiB by default).
pub(crate) const STATE_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes of an `exec` request's target, program and arguments together.
pub(crate) const EXEC_COMMAND_BYTES: usize = 1024 * 1024;

type HostResult<T> = wasmtime::Result<Result<T, wit::HostError>>;

fn host_error(kind: wit::HostErrorKind, message: impl Into<String>) -> wit::HostError {
    wit::HostError { kind, message: message.into() }
}

/// A secret reference its context cannot take (`secrets::fill`): the request is wrong, retrying
/// cannot help.
impl From<secrets::ContextError> for wit::HostError {
    fn from(e: secrets::ContextError) -> Self {
        host_error(wit::HostErrorKind::Permanent, e.to_string())
    }
}

/// Refuses a secret reference in a program or argument: any user of the target may read command
/// lines (`ps`, `/proc`, process auditing), so secrets go in stdin or a file.
fn refuse_secret_in_command_line(call: &str, request: &target::ExecRequest) -> Result<(), wit::HostError> {
    let words = std::iter::once(&request.program).chain(&request.args);
    match words.flat_map(|word| secrets::references(word.as_bytes())).next() {
        Some(name) => Err(host_error(
            wit::HostErrorKind::Permanent,
            format!(
                "{call}: the command line references secret {name}; other users of the target can read command lines, so pass secrets in stdin or a file"
            ),
        )),
        None => Ok(()),
    }
}

fn target_error(e: TargetError) -> wit::HostError {
    let kind = match e.kind {
        TargetErrorKind::Retryable => wit::HostErrorKind::Retryable,
        TargetErrorKind::Permanent => wit::HostErrorKind::Permanent,
        TargetErrorKind::NotFound => wit::HostErrorKind::NotFound,
    };
    host_error(kind, e.message)
}

impl StepState {
    pub(crate) fn new(
        wasi: WasiCtx,
        plugin: &str,
        mode: Mode,
        grants: Grants,
        env: CallEnv,
        redactor: Redactor,
        limits: SandboxLimits,
    ) -> Self {
        StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            timed_out: false,
            fatal: None,
            logs: Vec::new(),
            target_calls: Vec::new(),
            refusals: Vec::new(),
            redactor,
            log_bytes: 0,
            plugin: plugin.into(),
            mode,
            grants,
            env,
            limits,
        }
    }

    /// Records a refusal and turns it into the guest's `denied` error.
    fn refuse(&mut self, refusal: Refusal) -> wit::HostError {
        // The names are the plugin's: what the journal keeps of them is capped.
        let refusal = Refusal {
            call: excerpt::cap(&refusal.call, excerpt::TEXT_BYTES),
            name: excerpt::cap(&refusal.name, excerpt::TEXT_BYTES),
            ..refusal
        };
        self.env.observer.refusal(&refusal);
        let message = refusal.to_string();
        self.refusals.push(refusal);
        host_error(wit::HostErrorKind::Denied, message)
    }

    fn check(&mut self, call: &str, missing: Missing, name: &str) -> Result<(), wit::HostError> {
        let checked = self.grants.check(&self.plugin, call, missing, name);
        checked.map_err(|refusal| self.refuse(refusal))
    }

    fn check_change(&mut self, call: &str) -> Result<(), wit::HostError> {
        if self.mode == Mode::Check {
            return Err(self.refuse(Refusal {
                plugin: self.plugin.clone(),
                call: call.into(),
                missing: Missing::Change,
                name: String::new(),
                granted: String::new(),
            }));
        }
        Ok(())
    }

    /// Fills in secret references, refusing ungranted secrets; granted values join the redactor.
    fn fill_secrets(&mut self, call: &str, bytes: &[u8]) -> Result<Vec<u8>, wit::HostError> {
        for name in secrets::references(bytes) {
            self.check(call, Missing::Secret, &name)?;
        }
        let source = self.env.secrets.clone();
        let mut revealed = Vec::new();
        let filled = secrets::fill(bytes, |name| match source.get(name) {
            Some(value) => {
                revealed.push((name.to_string(), value.clone()));
                Ok(value)
            }
            None => Err(host_error(
                wit::HostErrorKind::NotFound,
                format!(
                    "secret {name} is granted but has no value (set {})",
                    secrets::EnvSecrets::variable(name)
                ),
            )),
        })?;
        for (name, value) in revealed {
            self.redactor.add(name, value);
        }
        Ok(filled)
    }

    fn check_target(
        &mut self,
        call: &str,
        target_name: &str,
    ) -> Result<std::sync::Arc<dyn crate::target::Transport>, wit::HostError> {
        self.check(call, Missing::Target, target_name)?;
        self.env.targets.get(target_name).cloned().ok_or_else(|| {
            host_error(
                wit::HostErrorKind::NotFound,
                format!("target {target_name} is granted but not in the inventory"),
            )
        })
    }

    /// Records a target call, redacted, and capped ([`excerpt`]): one call cannot grow the
    /// journal by what the plugin sent.
    fn audit(&mut self, record: TargetCallRecord) {
        let args: Vec<String> = record.args.iter().map(|a| self.redactor.redact(a)).collect();
        let record = TargetCallRecord {
            what: excerpt::cap(&self.redactor.redact(&record.what), excerpt::TEXT_BYTES),
            args: excerpt::cap_args(&args),
            error: record.error.map(|e| excerpt::cap(&self.redactor.redact(&e), excerpt::TEXT_BYTES)),
            ..record
        };
        self.env.observer.target_call(&record);
        self.target_calls.push(record);
    }
}

impl wit::Host for StepState {}

impl host::Host for StepState {
    async fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_bytes += message.len();
        if self.log_bytes > self.limits.log_bytes {
            self.fatal.get_or_insert(CallError::TooLarge {
                plugin: self.plugin.clone(),
                what: "log output".into(),
                limit: self.limits.log_bytes,
            });
            wasmtime::bail!("log limit exceeded");
        }
        let level = match level {
            host::LogLevel::Trace => LogLevel::Trace,
            host::LogLevel::Debug => LogLevel::Debug,
            host::LogLevel::Info => LogLevel::Info,
            host::LogLevel::Warn => LogLevel::Warn,
            host::LogLevel::Error => LogLevel::Error,
        };
        let record = LogRecord { level, message: self.redactor.redact(&message) };
        self.env.observer.log(&record);
        self.logs.push(record);
        Ok(())
    }

    async fn heartbeat(&mut self, progress: Option<f32>, message: String) -> wasmtime::Result<()> {
        let message = self.redactor.redact(&message);
        self.env.observer.heartbeat(progress.map(|p| p.clamp(0.0, 1.0)), &message);
        Ok(())
    }

    async fn secret(&mut self, name: String) -> HostResult<String> {
        if let Err(e) = self.check(&format!("secret {name}"), Missing::Secret, &name) {
            return Ok(Err(e));
        }
        match self.env.secrets.get(&name) {
            Some(value) => {
                let text = value.expose().to_string();
                self.redactor.add(name, value);
                Ok(Ok(text))
            }
            None => Ok(Err(host_error(
                wit::HostErrorKind::NotFound,
                format!("secret {name} has no value (set {})", secrets::EnvSecrets::variable(&name)),
            ))),
        }
    }

    async fn state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        match self.env.state.get(&key).await {
            Ok(value) => Ok(value),
            // `state-get` has no error result in the contract, so the call traps here and the
            // attempt fails with the store's error (retryable, as a failed `state-set` is).
            Err(message) => {
                let key = excerpt::cap(&key, 200);
                let plugin = self.plugin.clone();
                self.fatal.get_or_insert(CallError::StateUnreadable { plugin, key, message });
                wasmtime::bail!("checkpoint could not be read")
            }
        }
    }

    async fn state_set(&mut self, key: String, value: String) -> HostResult<()> {
        let shown = excerpt::cap(&key, 200);
        let too_large = |message: String| Ok(Err(host_error(wit::HostErrorKind::TooLarge, message)));
        if key.len() + value.len() > self.limits.output_bytes {
            return too_large(format!(
                "checkpoint {shown} is {} bytes with its key, over the limit of {} bytes per checkpoint",
                key.len() + value.len(),
                self.limits.output_bytes
            ));
        }
        let value = self.redactor.redact(&value);
        let others = match self.env.state.usage(&key).await {
            Ok(usage) => usage,
            Err(e) => return Ok(Err(host_error(wit::HostErrorKind::Retryable, e))),
        };
        if others.keys >= STATE_KEYS {
            return too_large(format!(
                "checkpoint {shown} would be key {} of this step instance, over the limit of {STATE_KEYS} keys: reuse keys",
                others.keys + 1
            ));
        }
        let total = others.bytes + key.len() + value.len();
        if total > STATE_BYTES {
            return too_large(format!(
                "checkpoint {shown} would bring this step instance's checkpoints to {total} bytes, over the limit of {STATE_BYTES} bytes in all"
            ));
        }
        Ok(self.env.state.set(&key, &value).await.map_err(|e| host_error(wit::HostErrorKind::Retryable, e)))
    }
}

impl target::Host for StepState {
    async fn exec(&mut self, request: target::ExecRequest) -> HostResult<target::ExecOutput> {
        // Before anything else, so that not even a refusal records an oversized command line.
        let size = request.target.len()
            + request.program.len()
            + request.args.iter().map(String::len).sum::<usize>();
        if size > EXEC_COMMAND_BYTES {
            return Ok(Err(host_error(
                wit::HostErrorKind::TooLarge,
                format!(
                    "exec {} on {}: the command line is {size} bytes, over the limit of {EXEC_COMMAND_BYTES}; pass large data in stdin or a file",
                    excerpt::cap(&request.program, 200),
                    excerpt::cap(&request.target, 200)
                ),
            )));
        }
        let call = format!("exec {} on {}", request.program, request.target);
        let prepared = (|| {
            let transport = self.check_target(&call, &request.target)?;
            self.check(&call, Missing::Program, &request.program)?;
            if self.mode == Mode::Check {
                let checked =
                    self.grants.check_read_only(&self.plugin, &call, &request.program, &request.args);
                checked.map_err(|refusal| self.refuse(refusal))?;
            }
            refuse_secret_in_command_line(&call, &request)?;
            let stdin = match &request.stdin {
                Some(bytes) => Some(self.fill_secrets(&call, bytes)?),
                None => None,
            };
            let timeout = request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into()))
                .unwrap_or(self.limits.exec_timeout);
            Ok((
                transport,
                Command {
                    program: request.program.clone(),
                    args: request.args.clone(),
                    stdin,
                    timeout,
                    output_limit: self.limits.exec_output_bytes,
                },
            ))
        })();
        let (transport, command) = match prepared {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let result = transport.exec(&command).await;
        let mut record = TargetCallRecord {
            target: request.target.clone(),
            call: TargetCall::Exec,
            what: request.program.clone(),
            args: request.args.clone(),
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as u64,
            stdout_bytes: 0,
            stderr_bytes: 0,
            error: None,
        };
        match result {
            Ok(out) => {
                record.exit_code = out.exit_code;
                record.stdout_bytes = out.stdout.len();
                record.stderr_bytes = out.stderr.len();
                self.audit(record);
                Ok(Ok(target::ExecOutput {
                    exit_code: out.exit_code,
                    stdout: out.stdout,
                    stderr: out.stderr,
                    truncated: out.truncated,
                    duration_ms: out.duration.as_millis() as u64,
                }))
            }
            Err(e) => {
                record.error = Some(e.message.clone());
                self.audit(record);
                Ok(Err(target_error(e)))
            }
        }
    }

    async fn read_file(&mut self, target_name: String, path: String) -> HostResult<Vec<u8>> {
        let call = format!("read-file {path} on {target_name}");
        let transport = match self.check_target(&call, &target_name) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let result = transport.read_file(&path).await;
        let limit = self.limits.file_bytes;
        let result = result.and_then(|bytes| {
            if bytes.len() > limit {
                Err(TargetError::permanent(format!(
                    "{path} is {} bytes, over the limit of {limit}",
                    bytes.len()
                )))
            } else {
                Ok(bytes)
            }
        });
        self.audit(TargetCallRecord {
            target: target_name,
            call: TargetCall::ReadFile,
            what: path,
            args: Vec::new(),
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as u64,
            stdout_bytes: result.as_ref().map_or(0, Vec::len),
            stderr_bytes: 0,
            error: result.as_ref().err().map(|e| e.message.clone()),
        });
        Ok(result.map_err(target_error))
    }

    async fn write_file(&mut self, target_name: String, path: String, contents: Vec<u8>) -> HostResult<()> {
        let call = format!("write-file {path} on {target_name}");
        let prepared = (|| {
            self.check_change(&call)?;
            let transport = self.check_target(&call, &target_name)?;
            if contents.len() > self.limits.file_bytes {
                return Err(host_error(
                    wit::HostErrorKind::TooLarge,
                    format!(
                        "{path}: {} bytes is over the limit of {}",
                        contents.len(),
                        self.limits.file_bytes
                    ),
                ));
            }
            Ok((transport, self.fill_secrets(&call, &contents)?))
        })();
        let (transport, filled) = match prepared {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let result = transport.write_file(&path, &filled).await;
        self.audit(TargetCallRecord {
            target: target_name,
            call: TargetCall::WriteFile,
            what: path,
            args: Vec::new(),
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as u64,
            stdout_bytes: 0,
            stderr_bytes: contents.len(),
            error: result.as_ref().err().map(|e| e.message.clone()),
        });
        Ok(result.map_err(target_error))
    }

    async fn remove_file(&mut self, target_name: String, path: String) -> HostResult<()> {
        let call = format!("remove-file {path} on {target_name}");
        let transport = match self.check_change(&call).and_then(|()| self.check_target(&call, &target_name)) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let result = transport.remove_file(&path).await;
        self.audit(TargetCallRecord {
            target: target_name,
            call: TargetCall::RemoveFile,
            what: path,
            args: Vec::new(),
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as u64,
            stdout_bytes: 0,
            stderr_bytes: 0,
            error: result.as_ref().err().map(|e| e.message.clone()),
        });
        Ok(result.map_err(target_error))
    }
}
