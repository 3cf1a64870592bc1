//! The plugin sandbox against a hostile plugin: every way a plugin can misbehave fails the
//! attempt with a message naming the cause, and the very next call in the same process works.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_engine::grants::{Allow, Grants};
use drover_engine::plugin::{
    CallEnv, CallError, CallObserver, CallReport, FailureClass, HostConfig, LoadError, LoadedPlugin,
    LogLevel, Mode, PluginHost, SandboxLimits, StateUsage, StepCall, StepContext, StepStateStore,
};
use drover_engine::secrets::MapSecrets;
use drover_engine::target::{LocalTransport, TargetSet};
use drover_tests::wasm;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

fn host() -> PluginHost {
    let limits = SandboxLimits {
        memory_bytes: 64 * MIB,
        timeout: Duration::from_secs(20),
        ..SandboxLimits::default()
    };
    PluginHost::new(HostConfig { limits, ..HostConfig::default() }).expect("host")
}

async fn fixture(host: &PluginHost) -> Arc<LoadedPlugin> {
    host.load_file(wasm::FIXTURE.as_ref()).await.expect("fixture loads")
}

fn call(mode: Mode, input: Value, grants: Grants) -> StepCall {
    StepCall { mode, context: StepContext::standalone(None), input, grants, timeout: None }
}

fn local_env() -> CallEnv {
    CallEnv {
        targets: TargetSet::new().with("here", Arc::new(LocalTransport)),
        secrets: Arc::new(
            MapSecrets::new().with("granted-secret", "hunter2-s3cr3t").with("other-secret", "n0t-y0urs"),
        ),
        ..CallEnv::default()
    }
}

fn all_grants() -> Grants {
    Grants {
        targets: Allow::of(["here"]),
        programs: Allow::of(["echo", "sh"]),
        secrets: Allow::of(["granted-secret"]),
        ..Grants::none()
    }
}

async fn behave(host: &PluginHost, plugin: &LoadedPlugin, input: Value) -> CallReport {
    host.call(plugin, call(Mode::Apply, input, all_grants()), local_env()).await
}

/// The next call on the same host must succeed: a misbehaving plugin never breaks the host.
async fn assert_next_call_works(host: &PluginHost, plugin: &LoadedPlugin) {
    let report = behave(host, plugin, json!({"behave": "ok"})).await;
    let outcome = report.result.expect("the call after a failure succeeds");
    assert_eq!(outcome.output["ok"], true);
}

fn error(report: CallReport) -> CallError {
    match report.result {
        Ok(outcome) => panic!("expected a failure, got {outcome:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_loop_is_stopped_within_its_timeout_plus_one_second() {
    let host = host();
    let plugin = fixture(&host).await;
    let mut c = call(Mode::Apply, json!({"behave": "endless-loop"}), all_grants());
    c.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let report = host.call(&plugin, c, local_env()).await;
    let elapsed = started.elapsed();
    let e = error(report);
    assert!(matches!(e, CallError::Timeout { .. }), "{e:?}");
    assert_eq!(e.to_string(), "plugin fixture-plugin-for-tests timed out after 1s and was stopped");
    assert_eq!(e.class(), FailureClass::Retryable);
    assert!(elapsed < Duration::from_secs(2), "stopped after {elapsed:?}");
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_is_stopped_at_the_cap() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "memory-bomb"})).await);
    assert!(matches!(e, CallError::MemoryLimit { limit, .. } if limit == 64 * MIB), "{e:?}");
    assert!(
        e.to_string().starts_with("plugin fixture-plugin-for-tests exceeded its memory limit of 64 MiB"),
        "{e}"
    );
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_fails_the_attempt_with_the_panic_message() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "panic"})).await);
    assert!(matches!(e, CallError::Panic { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with("plugin fixture-plugin-for-tests panicked: fixture panics on purpose (at "),
        "{message}"
    );
    assert!(message.contains("src/lib.rs:"), "{message}");
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_fails_the_attempt_naming_the_trap() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "trap"})).await);
    assert!(matches!(e, CallError::Trap { .. }), "{e:?}");
    assert!(e.to_string().contains("trapped"), "{e}");
    assert!(e.to_string().contains("unreachable"), "{e}");
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_output_is_refused() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "huge-output", "bytes": 2 * MIB})).await);
    assert!(matches!(e, CallError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("over the limit of 1048576 bytes"), "{e}");
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_output_json_is_refused() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "malformed-output"})).await);
    assert!(matches!(e, CallError::MalformedOutput { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("plugin fixture-plugin-for-tests returned malformed output JSON: "),
        "{e}"
    );
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_off_its_declared_schema_is_refused() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "off-schema-output"})).await);
    let CallError::OutputSchema { errors, .. } = &e else { panic!("{e:?}") };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("at /ok: "), "{errors:?}");
    assert!(e.to_string().contains("does not match its declared output schema"), "{e}");
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn input_off_the_schema_is_refused_before_the_call() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": 3})).await);
    let CallError::InputSchema { errors, .. } = &e else { panic!("{e:?}") };
    assert!(errors[0].starts_with("at /behave: "), "{errors:?}");
}

async fn assert_refused(input: Value, expected: &str) {
    let host = host();
    let plugin = fixture(&host).await;
    let report = behave(&host, &plugin, input).await;
    assert_eq!(report.refusals.len(), 1, "the refusal is recorded: {:?}", report.refusals);
    assert!(report.target_calls.is_empty(), "nothing reached a target: {:?}", report.target_calls);
    let e = error(report);
    assert!(matches!(e, CallError::Denied(_)), "{e:?}");
    assert_eq!(e.to_string(), expected);
    assert_eq!(e.class(), FailureClass::Permanent);
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_to_an_ungranted_target_is_refused() {
    assert_refused(
        json!({"behave": "exec", "target": "db01", "program": "echo"}),
        "plugin fixture-plugin-for-tests called exec echo on db01: target db01 is not granted to this step (granted targets: here)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_to_an_ungranted_program_is_refused() {
    assert_refused(
        json!({"behave": "exec", "target": "here", "program": "rm", "args": ["-rf", "/tmp/x"]}),
        "plugin fixture-plugin-for-tests called exec rm on here: program rm is not granted to this step (granted programs: echo, sh)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_for_an_ungranted_secret_is_refused() {
    assert_refused(
        json!({"behave": "secret", "name": "other-secret"}),
        "plugin fixture-plugin-for-tests called secret other-secret: secret other-secret is not granted to this step (granted secrets: granted-secret)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_secret_reference_is_refused() {
    assert_refused(
        json!({"behave": "exec", "target": "here", "program": "echo", "stdin": "@@secret:other-secret@@"}),
        "plugin fixture-plugin-for-tests called exec echo on here: secret other-secret is not granted to this step (granted secrets: granted-secret)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_swallows_a_refusal_still_fails() {
    let host = host();
    let plugin = fixture(&host).await;
    let e = error(behave(&host, &plugin, json!({"behave": "ignore-denial"})).await);
    assert!(e.to_string().contains("target not-granted is not granted"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_mode_refuses_writes() {
    let host = host();
    let plugin = fixture(&host).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let input =
        json!({"behave": "write-file", "target": "here", "path": path.to_str().unwrap(), "contents": "x"});
    let report = host.call(&plugin, call(Mode::Check, input, all_grants()), local_env()).await;
    let e = error(report);
    assert!(e.to_string().ends_with("refused, nothing may change in check mode"), "{e}");
    assert!(!path.exists());
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl CallObserver for Recorder {
    fn log(&self, record: &drover_engine::plugin::LogRecord) {
        self.0.lock().unwrap().push(format!("log {}", record.message));
    }
    fn heartbeat(&self, progress: Option<f32>, message: &str) {
        self.0.lock().unwrap().push(format!("heartbeat {progress:?} {message}"));
    }
    fn target_call(&self, record: &drover_engine::plugin::TargetCallRecord) {
        self.0.lock().unwrap().push(format!("target {} {} {:?}", record.call, record.what, record.args));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_heartbeats_and_stdio_are_captured() {
    let host = host();
    let plugin = fixture(&host).await;
    let recorder = Arc::new(Recorder::default());
    let env = CallEnv { observer: recorder.clone(), ..local_env() };
    let report = host
        .call(&plugin, call(Mode::Apply, json!({"behave": "log", "message": "hello"}), all_grants()), env)
        .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.logs.len(), 1);
    assert_eq!(report.logs[0].level, LogLevel::Info);
    assert_eq!(report.logs[0].message, "hello");
    assert_eq!(report.stdout, "to stdout\n");
    assert_eq!(report.stderr, "to stderr\n");
    assert_eq!(*recorder.0.lock().unwrap(), ["log hello", "heartbeat Some(0.5) half way"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_fills_secret_references_and_redacts_the_value_everywhere() {
    let host = host();
    let plugin = fixture(&host).await;
    let recorder = Arc::new(Recorder::default());
    let env = CallEnv { observer: recorder.clone(), ..local_env() };
    let input = json!({"behave": "exec", "target": "here", "program": "sh", "args": ["-c", "read pw; echo pw=$pw"], "stdin": "@@secret:granted-secret@@\n"});
    let report = host.call(&plugin, call(Mode::Apply, input, all_grants()), env).await;
    let outcome = report.result.expect("exec works");
    // The program received the value in its stdin; what comes back out is redacted.
    assert_eq!(outcome.output["stdout"], "pw=[redacted granted-secret]\n");
    assert_eq!(outcome.evidence[0].excerpt, "pw=[redacted granted-secret]");
    assert_eq!(report.target_calls[0].args, ["-c", "read pw; echo pw=$pw"]);
    assert_eq!(report.target_calls[0].exit_code, Some(0));
    let everything = format!("{outcome:?} {:?} {:?}", report.target_calls, recorder.0.lock().unwrap());
    assert!(!everything.contains("hunter2-s3cr3t"), "{everything}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revealed_secret_is_redacted_from_logs_and_output() {
    let host = host();
    let plugin = fixture(&host).await;
    let report = behave(&host, &plugin, json!({"behave": "secret", "name": "granted-secret"})).await;
    let outcome = report.result.expect("granted");
    assert_eq!(outcome.output["secret"], "[redacted granted-secret]");
    assert_eq!(report.logs[0].message, "the secret is [redacted granted-secret]");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_written_read_and_removed_through_the_target() {
    let host = host();
    let plugin = fixture(&host).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.xml");
    let p = path.to_str().unwrap();
    let input = json!({"behave": "write-file", "target": "here", "path": p, "contents": "<pw>@@secret:granted-secret@@</pw>"});
    let report = behave(&host, &plugin, input).await;
    let outcome = report.result.expect("write works");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "<pw>hunter2-s3cr3t</pw>");
    assert_eq!(outcome.output["read_back"], "<pw>[redacted granted-secret]</pw>");
    let report = behave(&host, &plugin, json!({"behave": "remove-file", "target": "here", "path": p})).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn step_errors_keep_their_class() {
    let host = host();
    let plugin = fixture(&host).await;
    for (kind, class) in [
        ("retryable", FailureClass::Retryable),
        ("permanent", FailureClass::Permanent),
        ("needs-operator", FailureClass::NeedsOperator),
    ] {
        let e = error(
            behave(&host, &plugin, json!({"behave": "fail", "kind": kind, "message": "sql01 unreachable"}))
                .await,
        );
        assert_eq!(e.class(), class);
        assert!(e.to_string().ends_with(": sql01 unreachable"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_persist_across_calls_through_the_state_store() {
    let host = host();
    let plugin = fixture(&host).await;
    let env = local_env();
    for expected in 1..=2 {
        let report = host
            .call(&plugin, call(Mode::Apply, json!({"behave": "state"}), all_grants()), env.clone())
            .await;
        assert_eq!(report.result.expect("state works").output["counter"], expected);
    }
}

/// Checkpoints whose reads fail, as a journal that cannot be read does; writes are kept.
#[derive(Default)]
struct UnreadableState(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl StepStateStore for UnreadableState {
    async fn get(&self, _key: &str) -> Result<Option<String>, String> {
        Err("database disk image is malformed".into())
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), String> {
        self.0.lock().unwrap().push((key.into(), value.into()));
        Ok(())
    }

    async fn usage(&self, _except: &str) -> Result<StateUsage, String> {
        Ok(StateUsage::default())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_that_cannot_be_read_fails_the_attempt_with_the_stores_error() {
    let host = host();
    let plugin = fixture(&host).await;
    let state = Arc::new(UnreadableState::default());
    let env = CallEnv { state: state.clone(), ..local_env() };
    let report = host.call(&plugin, call(Mode::Apply, json!({"behave": "state"}), all_grants()), env).await;
    let e = error(report);
    assert!(matches!(e, CallError::StateUnreadable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "plugin fixture-plugin-for-tests was stopped: its checkpoint counter could not be read: \
         database disk image is malformed"
    );
    assert_eq!(e.class(), FailureClass::Retryable);
    // The plugin went no further than the read: it never wrote a counter started from nothing.
    assert_eq!(*state.0.lock().unwrap(), []);
    assert_next_call_works(&host, &plugin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_is_validated_when_loading() {
    let host = host();
    let plugin = fixture(&host).await;
    assert_eq!(plugin.info.name, "fixture-plugin-for-tests");
    assert_eq!(plugin.info.version.to_string(), "1.0.0");
    assert_eq!(plugin.info.capabilities.programs, ["echo", "sh"]);
    let e = host.load_file(wasm::INCOMPLETE.as_ref()).await.err().expect("incomplete describe is refused");
    let LoadError::Describe(problems) = &e else { panic!("{e:?}") };
    let text = e.to_string();
    assert_eq!(problems.len(), 4, "{text}");
    for expected in [
        "name is empty",
        "version \"latest\" is not a semantic version",
        "description is empty",
        "input-schema is not JSON",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_step_plugins_are_refused_when_loading() {
    let host = host();
    let cases: [(&[u8], &str); 4] = [
        (b"MZ not wasm at all", "does not start with the wasm magic bytes"),
        (&wat::parse_str("(module)").unwrap(), "a core WebAssembly module, not a component"),
        (
            &wat::parse_str("(component)").unwrap(),
            "not a Drover step plugin (world drover:plugin/step@0.1.0)",
        ),
        (
            &wat::parse_str(r#"(component (import "drover:plugin/host@0.2.0" (instance)))"#).unwrap(),
            "built against plugin contract drover:plugin@0.2.0, but this drover speaks drover:plugin@0.1.0",
        ),
    ];
    for (bytes, expected) in cases {
        let e = host.load(bytes).await.err().expect("refused");
        assert!(e.to_string().contains(expected), "{expected:?} not in {e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_code_is_cached_on_disk_and_reused_by_the_next_host() {
    use drover_engine::plugin::CacheStatus;
    let cache = tempfile::tempdir().unwrap();
    let config = || HostConfig { cache_dir: Some(cache.path().to_path_buf()), ..HostConfig::default() };
    let first = PluginHost::new(config()).unwrap();
    let plugin = first.load_file(wasm::NOOP.as_ref()).await.unwrap();
    assert_eq!(plugin.cache, CacheStatus::Compiled);
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].to_string_lossy().starts_with(&plugin.digest.to_string()), "{entries:?}");

    let second = PluginHost::new(config()).unwrap();
    let again = second.load_file(wasm::NOOP.as_ref()).await.unwrap();
    assert_eq!(again.cache, CacheStatus::Hit);
    let report = second
        .call(&again, call(Mode::Apply, json!({"label": "cached"}), Grants::none()), CallEnv::default())
        .await;
    assert_eq!(report.result.unwrap().output, json!({"label": "cached"}));

    // A damaged entry is dropped and recompiled, never trusted.
    let entry = std::fs::read_dir(cache.path()).unwrap().flatten().next().unwrap().path();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = PluginHost::new(config()).unwrap();
    assert_eq!(third.load_file(wasm::NOOP.as_ref()).await.unwrap().cache, CacheStatus::Compiled);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_concurrent_calls_than_pool_slots_wait_for_a_slot() {
    let host =
        Arc::new(PluginHost::new(HostConfig { max_concurrent_calls: 2, ..HostConfig::default() }).unwrap());
    let plugin = host.load_file(wasm::NOOP.as_ref()).await.unwrap();
    let calls = (0..12).map(|i| {
        let (host, plugin) = (host.clone(), plugin.clone());
        tokio::spawn(async move {
            let input = json!({"label": format!("call {i}")});
            host.call(&plugin, call(Mode::Apply, input, Grants::none()), CallEnv::default()).await
        })
    });
    for (i, handle) in calls.collect::<Vec<_>>().into_iter().enumerate() {
        let report = handle.await.unwrap();
        assert_eq!(report.result.expect("every call gets a slot").output["label"], format!("call {i}"));
    }
}
