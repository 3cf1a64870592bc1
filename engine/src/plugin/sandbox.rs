//! The sandbox: one wasmtime [`Engine`] per [`PluginHost`], components compiled once (or taken
//! from the disk cache), `InstancePre`s reused, and a fresh `Store` for every call with a memory
//! cap, an epoch-driven wall-time cap, capped stdio and no WASI preopens, sockets or environment.
//!
//! A call can be cancelled ([`Canceller`]): the epoch callback interrupts guest code at its next
//! tick, and the call stops awaiting whatever host call is in progress, which drops it (a target
//! command is killed with it).
//!
//! **Invariant:** step code runs only inside a `Store` created by [`PluginHost::call`]; nothing a
//! plugin does can fail the engine, only the call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::drover::plugin::types as wit;
use super::bindings::{CONTRACT_PACKAGE, CONTRACT_VERSION, Step, StepPre};
use super::cache::{CacheStatus, CompileCache};
use super::call::{CallEnv, CallOutcome, CallReport, Evidence, Mode, StepCall};
use super::capture::Capture;
use super::error::{CallError, FailureClass, LoadError};
use super::imports::StepState;
use super::info::{PluginInfo, Sha256Digest};
use super::outcome::{RawOutcome, decode, schema_errors};
use crate::grants::{Allow, Grants};
use crate::secrets::Redactor;
use crate::target::orphans;

/// How often the epoch ticks: the granularity of wall-time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resource limits of one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// Wall-time cap of a call when the step sets none.
    pub timeout: Duration,
    /// Cap on output JSON plus summary plus evidence, and on one checkpoint value.
    pub output_bytes: usize,
    /// Cap on all log lines of one call together.
    pub log_bytes: usize,
    /// Cap on captured stdout, and on stderr, of one call.
    pub stdio_bytes: usize,
    /// Default timeout of a program run on a target.
    pub exec_timeout: Duration,
    /// Cap on stdout, and on stderr, of a program run on a target.
    pub exec_output_bytes: usize,
    /// Cap on a file read or written on a target.
    pub file_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        const MIB: usize = 1024 * 1024;
        SandboxLimits {
            memory_bytes: 256 * MIB,
            timeout: Duration::from_secs(30 * 60),
            output_bytes: MIB,
            log_bytes: 4 * MIB,
            stdio_bytes: 256 * 1024,
            exec_timeout: Duration::from_secs(30 * 60),
            exec_output_bytes: 16 * MIB,
            file_bytes: 64 * MIB,
        }
    }
}

/// How to build a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Limits of every call.
    pub limits: SandboxLimits,
    /// Directory of the compiled-code cache; no cache when absent.
    pub cache_dir: Option<PathBuf>,
    /// How many calls may run at once; more wait for a slot. Sizes the pooling allocator.
    pub max_concurrent_calls: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { limits: SandboxLimits::default(), cache_dir: None, max_concurrent_calls: 64 }
    }
}

/// A plugin compiled, linked and described, ready for calls.
pub struct LoadedPlugin {
    /// Its validated `describe`.
    pub info: PluginInfo,
    /// The sha256 of its bytes.
    pub digest: Sha256Digest,
    /// Whether its code came from the disk cache.
    pub cache: CacheStatus,
    pre: StepPre<StepState>,
    input_schema: jsonschema::Validator,
    output_schema: jsonschema::Validator,
}

/// Asks calls in flight to stop: whoever may cancel them (the driver, for a run's attempts) holds
/// it and hands each call a [`CancelToken`].
#[derive(Debug)]
pub struct Canceller(tokio::sync::watch::Sender<bool>);

impl Default for Canceller {
    fn default() -> Self {
        Canceller(tokio::sync::watch::channel(false).0)
    }
}

impl Canceller {
    /// A token for one call; it sees a cancel made before or after it was taken.
    pub fn token(&self) -> CancelToken {
        CancelToken(Some(self.0.subscribe()))
    }

    /// Stops every call holding a token of this canceller, now and from now on.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

/// Tells a call that it must stop ([`PluginHost::call_cancellable`]).
#[derive(Debug, Clone)]
pub struct CancelToken(Option<tokio::sync::watch::Receiver<bool>>);

impl CancelToken {
    /// A token that is never cancelled.
    pub fn never() -> Self {
        CancelToken(None)
    }

    /// Whether the call must stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Completes when the call must stop; never for [`CancelToken::never`].
    async fn cancelled(&self) {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            if rx.wait_for(|&cancelled| cancelled).await.is_ok() {
                return;
            }
        }
        std::future::pending().await
    }
}

/// When a call's guest code must stop: past its wall-time limit, or once cancelled.
struct Stop {
    timeout: Duration,
    cancel: CancelToken,
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let weak = engine.weak();
        thread::Builder::new()
            .name("drover-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map(|_| EpochTicker)
            .unwrap_or_else(|e| {
                // Without a ticker no wall-time limit could fire; refuse to run plugins at all.
                panic!("cannot start the epoch ticker thread: {e}")
            })
    }
}

/// Runs step plugins in wasmtime sandboxes.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StepState>,
    cache: CompileCache,
    limits: SandboxLimits,
    loaded: Mutex<HashMap<Sha256Digest, Arc<LoadedPlugin>>>,
    /// One permit per pooled instance slot, so the pool is never exhausted.
    slots: tokio::sync::Semaphore,
    _ticker: EpochTicker,
}

impl PluginHost {
    /// A host with its own engine and epoch ticker.
    pub fn new(config: HostConfig) -> Result<Self, LoadError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        wasm.wasm_component_model(true);
        // Instances, memories and fiber stacks come from a pool instead of fresh mappings per
        // call: most of a warm call's cost without it (see docs/benchmarks.md).
        let slots = config.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 16)
            .total_memories(slots * 4)
            .total_tables(slots * 8)
            .total_stacks(slots);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(|e| LoadError::Compile(format!("cannot configure wasmtime: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| {
                Step::add_to_linker::<_, wasmtime::component::HasSelf<StepState>>(&mut linker, |s| s)
            })
            .map_err(|e| LoadError::Compile(format!("cannot link the host: {e:#}")))?;
        let _ticker = EpochTicker::start(&engine);
        Ok(PluginHost {
            engine,
            linker,
            cache: CompileCache::new(config.cache_dir),
            limits: config.limits,
            loaded: Mutex::default(),
            slots: tokio::sync::Semaphore::new(slots as usize),
            _ticker,
        })
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Loads a plugin file; see [`Self::load`].
    pub async fn load_file(&self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let bytes = crate::input_file::read_limited(path, crate::input_file::MAX_COMPONENT_BYTES)
            .map_err(|source| LoadError::Io { path: path.into(), source })?;
        self.load(&bytes).await
    }

    /// Compiles (or takes from the cache), links and describes a component, checking that it is
    /// a step plugin of the contract this host speaks with a complete `describe`.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, LoadError> {
        let digest = Sha256Digest::of(bytes);
        if let Some(plugin) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Ok(plugin.clone());
        }
        check_header(bytes)?;
        let (component, cache) = self.cache.load(&self.engine, bytes, &digest)?;
        for (name, _) in component.component_type().imports(&self.engine) {
            if let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE).and_then(|r| r.strip_prefix('/')) {
                let found = rest.split_once('@').map_or("(unversioned)", |(_, v)| v);
                if found != CONTRACT_VERSION {
                    return Err(LoadError::ContractVersion {
                        found: found.into(),
                        supported: CONTRACT_VERSION,
                    });
                }
            }
        }
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            detail: format!("{e:#}"),
            supported: CONTRACT_VERSION,
        };
        let pre = StepPre::new(self.linker.instantiate_pre(&component).map_err(wrong_world)?)
            .map_err(wrong_world)?;
        let raw = self.describe(&pre).await?;
        let info = PluginInfo::from_wit(raw).map_err(LoadError::Describe)?;
        let validator = |schema: &Value| {
            jsonschema::validator_for(schema).map_err(|e| LoadError::Describe(vec![e.to_string()]))
        };
        let plugin = Arc::new(LoadedPlugin {
            input_schema: validator(&info.input_schema)?,
            output_schema: validator(&info.output_schema)?,
            info,
            digest,
            cache,
            pre,
        });
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, plugin.clone());
        Ok(plugin)
    }

    async fn describe(&self, pre: &StepPre<StepState>) -> Result<wit::PluginInfo, LoadError> {
        let _slot = self.slots.acquire().await.map_err(|e| LoadError::DescribeFailed(e.to_string()))?;
        let (mut store, _stdout, stderr) = self.store(
            "(describing)",
            Mode::Check,
            Grants::none(),
            CallEnv::default(),
            Redactor::default(),
            Stop { timeout: DESCRIBE_TIMEOUT, cancel: CancelToken::never() },
        );
        let result = tokio::time::timeout(DESCRIBE_TIMEOUT + Duration::from_secs(1), async {
            let step = pre.instantiate_async(&mut store).await?;
            step.call_describe(&mut store).await
        })
        .await;
        match result {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => {
                Err(LoadError::DescribeFailed(format!("{e:#}{}", stderr_tail(&stderr.contents().0))))
            }
            Err(_) => Err(LoadError::DescribeFailed(format!(
                "did not return within {}s",
                DESCRIBE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn store(
        &self,
        plugin: &str,
        mode: Mode,
        grants: Grants,
        env: CallEnv,
        redactor: Redactor,
        stop: Stop,
    ) -> (Store<StepState>, Capture, Capture) {
        let Stop { timeout, cancel } = stop;
        let stdout = Capture::new(self.limits.stdio_bytes);
        let stderr = Capture::new(self.limits.stdio_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StepState::new(wasi, plugin, mode, grants, env, redactor, self.limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // A deadline past what `Instant` can hold (a pinned definition from before timeouts were
        // bounded) is never reached: no wall-time limit rather than a panic.
        let deadline = Instant::now().checked_add(timeout);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut cx| {
            if cancel.is_cancelled() {
                return Ok(UpdateDeadline::Interrupt);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                cx.data_mut().timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (store, stdout, stderr)
    }

    /// Calls `check`, `apply` or `compensate` in a fresh sandbox. Never fails itself: every way
    /// the plugin can misbehave ends up in [`CallReport::result`].
    pub async fn call(&self, plugin: &LoadedPlugin, call: StepCall, env: CallEnv) -> CallReport {
        self.call_cancellable(plugin, call, env, CancelToken::never()).await
    }

    /// [`Self::call`], stopped when `cancel` is cancelled: guest code is interrupted at the next
    /// epoch tick and a host call in progress is dropped (its target command killed). A call
    /// that was stopped ends in [`CallError::Cancelled`]; one that finished first keeps its
    /// result.
    pub async fn call_cancellable(
        &self,
        plugin: &LoadedPlugin,
        call: StepCall,
        env: CallEnv,
        cancel: CancelToken,
    ) -> CallReport {
        let started = Instant::now();
        let name = plugin.info.name.clone();
        let redactor = initial_redactor(&call.grants, &plugin.info, &env);
        if let Err(errors) = schema_errors(&plugin.input_schema, &call.input) {
            return CallReport {
                result: Err(CallError::InputSchema {
                    plugin: name,
                    errors: errors.iter().map(|e| redactor.redact(e)).collect(),
                }),
                logs: Vec::new(),
                stdout: String::new(),
                stderr: String::new(),
                target_calls: Vec::new(),
                refusals: Vec::new(),
                duration: started.elapsed(),
            };
        }
        let timeout = call.timeout.unwrap_or(self.limits.timeout);
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await.expect("the call slot semaphore is never closed");
        let (mut store, stdout, stderr) = self.store(
            &name,
            call.mode,
            call.grants.clone(),
            env,
            redactor,
            Stop { timeout, cancel: cancel.clone() },
        );
        let ctx = wit::Context {
            run_id: call.context.run_id.clone(),
            step_key: call.context.step_key.clone(),
            attempt: call.context.attempt,
            idempotency_key: call.context.idempotency_key.clone(),
            target: call.context.target.clone(),
            mode: match call.mode {
                Mode::Apply => wit::Mode::Apply,
                Mode::Check => wit::Mode::Check,
                Mode::Compensate => wit::Mode::Compensate,
            },
        };
        let input = call.input.to_string();
        // The epoch deadline stops guest code; this backstop also bounds time spent in host calls.
        let ran = tokio::time::timeout(timeout.saturating_add(Duration::from_secs(1)), async {
            let step = plugin.pre.instantiate_async(&mut store).await?;
            match call.mode {
                Mode::Apply => step.call_apply(&mut store, &ctx, &input).await,
                Mode::Check => step.call_check(&mut store, &ctx, &input).await,
                Mode::Compensate => step.call_compensate(&mut store, &ctx, &input).await,
            }
        });
        // Every target command the call starts carries the attempt's marker (target::orphans).
        let marker = orphans::marker(&call.context.run_id, &call.context.step_key, call.context.attempt);
        let ran = orphans::in_attempt(marker, ran);
        // A cancel stops the call where it is: dropping its future drops the host call it awaits
        // (killing a target command); guest code was interrupted by the epoch callback.
        let ran = tokio::select! {
            biased;
            ran = ran => Some(ran),
            () = cancel.cancelled() => None,
        };
        let state = store.into_data();
        let (stdout_text, _) = stdout.contents();
        let (stderr_text, _) = stderr.contents();
        // A call that returned before the cancel keeps its result; one stopped by it, or trapped
        // on its interrupt, was cancelled.
        let stopped = match &ran {
            None => true,
            Some(Ok(Ok(_))) => false,
            Some(_) => cancel.is_cancelled(),
        };
        let result = match ran {
            Some(ran) if !stopped => classify(plugin, &state, ran, &stderr_text, timeout, &self.limits),
            _ => Err(CallError::Cancelled { plugin: name }),
        };
        CallReport {
            result,
            stdout: state.redactor.redact(&stdout_text),
            stderr: state.redactor.redact(&stderr_text),
            logs: state.logs,
            target_calls: state.target_calls,
            refusals: state.refusals,
            duration: started.elapsed(),
        }
    }
}

type Ran = Result<wasmtime::Result<Result<wit::Outcome, wit::StepError>>, tokio::time::error::Elapsed>;

/// Turns what happened in the sandbox into the call's result, most specific cause first.
fn classify(
    plugin: &LoadedPlugin,
    state: &StepState,
    ran: Ran,
    stderr: &str,
    timeout: Duration,
    limits: &SandboxLimits,
) -> Result<CallOutcome, CallError> {
    let name = plugin.info.name.clone();
    let redact = |s: &str| state.redactor.redact(s);
    if let Some(refusal) = state.refusals.first() {
        return Err(CallError::Denied(refusal.clone()));
    }
    if state.timed_out || ran.is_err() {
        return Err(CallError::Timeout { plugin: name, limit: timeout });
    }
    if let Some(requested) = state.limiter.exceeded {
        return Err(CallError::MemoryLimit { plugin: name, limit: limits.memory_bytes, requested });
    }
    if let Some(fatal) = &state.fatal {
        return Err(fatal.clone());
    }
    let returned = match ran {
        Ok(Ok(returned)) => returned,
        Ok(Err(trap)) => {
            return Err(match panic_message(stderr) {
                Some(message) => CallError::Panic { plugin: name, message: redact(&message) },
                None => CallError::Trap {
                    plugin: name,
                    message: redact(&format!("{trap:#}{}", stderr_tail(stderr))),
                },
            });
        }
        Err(_) => unreachable!("timeouts handled above"),
    };
    let outcome = match returned {
        Ok(outcome) => outcome,
        Err(e) => {
            let (class, message) = match e {
                wit::StepError::Retryable(m) => (FailureClass::Retryable, m),
                wit::StepError::Permanent(m) => (FailureClass::Permanent, m),
                wit::StepError::NeedsOperator(m) => (FailureClass::NeedsOperator, m),
            };
            return Err(CallError::Step { plugin: name, class, message: redact(&message) });
        }
    };
    let raw = RawOutcome {
        changed: outcome.changed,
        summary: outcome.summary,
        output: outcome.output,
        evidence: outcome
            .evidence
            .into_iter()
            .map(|e| Evidence {
                label: e.label,
                command: e.command,
                exit_code: e.exit_code,
                excerpt: e.excerpt,
            })
            .collect(),
    };
    decode(&name, raw, &plugin.output_schema, &state.redactor, limits.output_bytes)
}

/// Secrets the step may touch, so their values are redacted even if the plugin got them some
/// other way, and those the targets hold (a password logon's password), which a program on a
/// target might print; values revealed during the call are added as they are revealed.
fn initial_redactor(grants: &Grants, info: &PluginInfo, env: &CallEnv) -> Redactor {
    let mut names: Vec<&str> = info.capabilities.secrets.iter().map(String::as_str).collect();
    if let Allow::Only(set) = &grants.secrets {
        names.extend(set.iter().map(String::as_str));
    }
    let granted = names.into_iter().filter_map(|n| env.secrets.get(n).map(|v| (n.to_string(), v)));
    Redactor::new(granted.chain(env.targets.secrets().iter().cloned()))
}

/// Tells a component from a core module or something else, before wasmtime gives a vaguer error.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // A core module has version 1, layer 0; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The message of a Rust panic, from the guest's stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest.trim_end(), ""));
    let message: Vec<&str> = message.lines().take_while(|l| !l.starts_with("note: ")).collect();
    Some(format!("{} (at {location})", message.join("\n").trim()))
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(5)..];
    format!("\nplugin stderr:\n  {}", tail.join("\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_found_in_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:42:9:\nboom: bad input\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).unwrap(), "boom: bad input (at src/lib.rs:42:9)");
        assert_eq!(panic_message("just some output"), None);
    }

    #[test]
    fn a_password_a_target_holds_is_redacted_though_no_grant_names_it() {
        use crate::secrets::{MapSecrets, SecretValue};
        let env = CallEnv {
            targets: crate::target::TargetSet::new().holding("drbts-admin", SecretValue::new("pw-7c1e")),
            secrets: Arc::new(MapSecrets::new().with("sql", "sql-9b2f")),
            ..CallEnv::default()
        };
        let info = PluginInfo {
            name: "p".into(),
            version: semver::Version::new(1, 0, 0),
            description: "p".into(),
            effect: super::super::info::Effect::ReadOnly,
            input_schema: Value::Null,
            output_schema: Value::Null,
            capabilities: super::super::info::Capabilities {
                secrets: vec!["sql".into()],
                ..Default::default()
            },
            compensable: false,
            sdk: String::new(),
        };
        let redactor = initial_redactor(&Grants::default(), &info, &env);
        assert_eq!(
            redactor.redact("login pw-7c1e, sql sql-9b2f"),
            "login [redacted drbts-admin], sql [redacted sql]"
        );
    }

    #[test]
    fn headers_tell_modules_from_components() {
        assert!(matches!(check_header(b"hello world"), Err(LoadError::NotWasm)));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
