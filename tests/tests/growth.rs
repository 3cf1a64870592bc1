//! What one attempt can add to the journal: a step instance's checkpoints are capped in count and
//! bytes, an `exec` command line is capped, and a target call's record keeps at most a few KiB
//! of each argument, with the length and sha256 of what it cut. Through the sandbox directly, and
//! through the real binary, where the journal file's size is what is measured.

use std::sync::Arc;
use std::time::Duration;

use drover_engine::grants::{Allow, Grants};
use drover_engine::plugin::{
    CallEnv, CallReport, HostConfig, LoadedPlugin, MemoryState, Mode, PluginHost, SandboxLimits, StepCall,
    StepContext, StepStateStore as _,
};
use drover_engine::target::{LocalTransport, TargetSet};
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn host() -> PluginHost {
    let limits = SandboxLimits { timeout: Duration::from_secs(60), ..SandboxLimits::default() };
    PluginHost::new(HostConfig { limits, ..HostConfig::default() }).expect("host")
}

async fn fixture(host: &PluginHost) -> Arc<LoadedPlugin> {
    host.load_file(wasm::FIXTURE.as_ref()).await.expect("fixture loads")
}

fn grants() -> Grants {
    Grants { targets: Allow::of(["here"]), programs: Allow::of(["sh"]), ..Grants::none() }
}

async fn behave(
    host: &PluginHost,
    plugin: &LoadedPlugin,
    input: Value,
    state: Arc<MemoryState>,
) -> CallReport {
    let call = StepCall {
        mode: Mode::Apply,
        context: StepContext::standalone(Some("here".into())),
        input,
        grants: grants(),
        timeout: None,
    };
    let env = CallEnv {
        targets: TargetSet::new().with("here", Arc::new(LocalTransport)),
        state,
        ..CallEnv::default()
    };
    host.call(plugin, call, env).await
}

fn failure(report: &CallReport) -> String {
    match &report.result {
        Ok(outcome) => panic!("expected a failure, got {outcome:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_instance_holds_at_most_1000_checkpoint_keys() {
    let host = host();
    let plugin = fixture(&host).await;
    let state = Arc::new(MemoryState::default());
    let report =
        behave(&host, &plugin, json!({"behave": "state-flood", "keys": 1200, "bytes": 10}), state.clone())
            .await;
    let e = failure(&report);
    assert!(
        e.contains(
            "checkpoint flood-1000 would be key 1001 of this step instance, over the limit of 1000 keys"
        ),
        "{e}"
    );
    let usage = state.usage("").await.unwrap();
    assert_eq!(usage.keys, 1000);
    // Overwriting a key it holds is still allowed.
    let report =
        behave(&host, &plugin, json!({"behave": "state-flood", "keys": 5, "bytes": 20}), state.clone()).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_instance_holds_at_most_16_mib_of_checkpoints_and_1_mib_in_one() {
    let host = host();
    let plugin = fixture(&host).await;
    let state = Arc::new(MemoryState::default());
    let report = behave(
        &host,
        &plugin,
        json!({"behave": "state-flood", "keys": 300, "bytes": 1_000_000}),
        state.clone(),
    )
    .await;
    let e = failure(&report);
    assert!(e.contains("checkpoint flood-16 would bring this step instance's checkpoints to"), "{e}");
    assert!(e.contains("over the limit of 16777216 bytes in all"), "{e}");
    let usage = state.usage("").await.unwrap();
    assert_eq!(usage.keys, 16);
    assert!(usage.bytes <= 16 * MIB, "{usage:?}");
    let fresh = Arc::new(MemoryState::default());
    let report =
        behave(&host, &plugin, json!({"behave": "state-flood", "keys": 1, "bytes": 2 * MIB}), fresh).await;
    let e = failure(&report);
    assert!(e.contains("over the limit of 1048576 bytes per checkpoint"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_command_line_over_1_mib_is_refused_before_it_is_run_or_recorded() {
    let host = host();
    let plugin = fixture(&host).await;
    let state = Arc::new(MemoryState::default());
    let report =
        behave(&host, &plugin, json!({"behave": "exec-sized", "sizes": [600_000, 600_000]}), state).await;
    let e = failure(&report);
    assert!(e.contains("exec sh on here: the command line is 1200"), "{e}");
    assert!(e.contains("over the limit of 1048576; pass large data in stdin or a file"), "{e}");
    assert!(report.target_calls.is_empty(), "{:?}", report.target_calls.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_call_record_keeps_4_kib_of_an_argument_64_kib_of_all_and_the_digest_of_the_rest() {
    let host = host();
    let plugin = fixture(&host).await;
    let state = Arc::new(MemoryState::default());
    let sizes = vec![30_000; 20];
    let report = behave(&host, &plugin, json!({"behave": "exec-sized", "sizes": sizes}), state).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let args = &report.target_calls[0].args;
    assert_eq!(args.len(), 23, "every argument is recorded, if only by its digest");
    assert_eq!(&args[..3], ["-c", "true", "sh"]);
    let whole = "a".repeat(30_000);
    let digest = format!("{:x}", Sha256::digest(whole.as_bytes()));
    assert!(args[3].starts_with(&"a".repeat(4096)), "the first 4 KiB kept");
    assert!(args[3].ends_with(&format!("…[30000 bytes in all, sha256 {digest}]")), "{}", &args[3][4096..]);
    assert!(
        args[22].starts_with("…[30000 bytes in all, sha256 "),
        "past 64 KiB, the digest alone: {}",
        args[22]
    );
    let total: usize = args.iter().map(String::len).sum();
    assert!(total < 64 * 1024 + 20 * 100, "{total} bytes recorded for 600000 sent");
}

const FLOOD: &str = r#"
name = "flood"
version = "1.0.0"
[[steps]]
id = "flood"
plugin = "fixture-plugin-for-tests"
for-each = "all"
on-failure = "continue"
with = { behave = "state-flood", keys = 300, bytes = 1000000 }
[[steps]]
id = "wide"
plugin = "fixture-plugin-for-tests"
for-each = "all"
grants = { programs = ["sh"] }
with = { behave = "exec-sized", sizes = [100000, 100000, 100000, 100000, 100000] }
"#;

#[test]
fn one_attempt_cannot_grow_the_journal_past_its_caps() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let wf = sandbox.write("flood.toml", FLOOD);
    let inventory = sandbox
        .write("inventory.toml", "[servers.here]\ntransport = \"local\"\n[groups]\nall = [\"here\"]\n");
    let out = sandbox.run(&["run", &wf, "--inventory", &inventory]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("over the limit of 16777216 bytes in all"), "{}", stdout(&out));
    let run = sandbox.last_run();
    let status = sandbox.status(&run);
    let wide =
        &status["steps"].as_array().unwrap().iter().find(|s| s["id"] == "wide").unwrap()["instances"][0];
    assert_eq!(wide["state"], "succeeded", "{status}");
    // 300 keys of 1 MB were asked for: the journal holds the 16 the cap lets in, and a 500 kB
    // command line as a record of a few KiB.
    let size = std::fs::metadata(sandbox.db_path()).unwrap().len();
    assert!(size < 20 * MIB as u64, "the journal is {size} bytes");
    let events = stdout(&sandbox.run(&["events", &run, "--ndjson"]));
    let call = events.lines().find(|l| l.contains("\"target-call\"")).expect("a target-call event");
    assert!(call.len() < 64 * 1024, "a target-call event of {} bytes", call.len());
    assert!(call.contains("100000 bytes in all, sha256 "), "{call}");
}
