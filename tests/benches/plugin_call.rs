//! Benchmark of the plugin boundary (not a test: it asserts nothing about time).
//!
//! - warm call: instantiate-and-call of the `noop` plugin through `PluginHost::call` (fresh
//!   `Store`, WASI context, instantiation from the reused `InstancePre`, input and output schema
//!   validation), on an already loaded plugin;
//! - cached load: `PluginHost::load` of `noop` in a new host whose disk cache already holds its
//!   compiled code (read, deserialize, link, `describe`);
//! - uncached load, for comparison: the same with compilation;
//! - whole process: `drover plugin run noop` (process start, cached load, one call) to its exit.
//!
//! Run with `cargo xtask bench` (release build). Prints a table and writes `plugin_call.json`
//! into `DROVER_BENCH_OUT` (default `target/bench`). Figures go to docs/benchmarks.md.

use std::time::{Duration, Instant};

use drover_engine::grants::Grants;
use drover_engine::plugin::{CacheStatus, CallEnv, HostConfig, Mode, PluginHost, StepCall, StepContext};
use drover_tests::wasm;
use serde_json::json;

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (samples[0], at(0.5), at(0.9))
}

fn row(json: &mut Vec<serde_json::Value>, name: &str, n: usize, samples: Vec<Duration>) {
    let (min, median, p90) = stats(samples);
    json.push(json!({
        "what": name, "mode": if name.starts_with("drover") { "whole process" } else { "in-process" },
        "unit": "µs", "runs": n, "min": min.as_secs_f64() * 1e6, "median": median.as_secs_f64() * 1e6,
        "p90": p90.as_secs_f64() * 1e6,
    }));
    println!(
        "| {name} | {n} | {:.1} µs | {:.1} µs | {:.1} µs |",
        min.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut json = Vec::new();
    runtime.block_on(async {
        let bytes = std::fs::read(wasm::NOOP).expect("noop.wasm");
        println!("| measurement | runs | min | median | p90 |");
        println!("|---|---|---|---|---|");

        let host = PluginHost::new(HostConfig::default()).expect("host");
        let plugin = host.load(&bytes).await.expect("noop loads");
        let call = || StepCall {
            mode: Mode::Apply,
            context: StepContext::standalone(None),
            input: json!({"label": "bench"}),
            grants: Grants::none(),
            timeout: None,
        };
        for _ in 0..200 {
            assert!(host.call(&plugin, call(), CallEnv::default()).await.result.is_ok());
        }
        let runs = 5000;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let report = host.call(&plugin, call(), CallEnv::default()).await;
            samples.push(started.elapsed());
            assert!(report.result.is_ok());
        }
        row(&mut json, "warm instantiate-and-call of noop", runs, samples);

        let cache = tempfile::tempdir().expect("cache dir");
        let config = || HostConfig { cache_dir: Some(cache.path().to_path_buf()), ..HostConfig::default() };
        let mut compiled = Vec::new();
        let mut cached = Vec::new();
        for i in 0..21 {
            if i == 0 {
                let host = PluginHost::new(config()).expect("host");
                let started = Instant::now();
                let p = host.load(&bytes).await.expect("loads");
                compiled.push(started.elapsed());
                assert_eq!(p.cache, CacheStatus::Compiled);
                continue;
            }
            let host = PluginHost::new(config()).expect("host");
            let started = Instant::now();
            let p = host.load(&bytes).await.expect("loads");
            cached.push(started.elapsed());
            assert_eq!(p.cache, CacheStatus::Hit);
        }
        row(&mut json, "load of noop, disk cache hit (new host each run)", cached.len(), cached);
        row(&mut json, "load of noop, compiled (first run)", compiled.len(), compiled);
        println!("\nnoop.wasm: {} bytes", bytes.len());
    });
    whole_process(&mut json);
    let out = std::env::var_os("DROVER_BENCH_OUT")
        .map_or_else(|| drover_tests::workspace_root().join("target/bench"), std::path::PathBuf::from);
    std::fs::create_dir_all(&out).expect("output directory");
    let file = out.join("plugin_call.json");
    std::fs::write(&file, serde_json::to_string_pretty(&json!({ "figures": json })).expect("json"))
        .expect("write json");
    println!("JSON: {}", file.display());
}

/// `drover plugin run noop` as a whole process, after a first run has filled the disk cache.
fn whole_process(json: &mut Vec<serde_json::Value>) {
    let home = tempfile::tempdir().expect("home");
    let drover = |args: &[&str]| {
        let out = std::process::Command::new(drover_tests::drover_bin())
            .env("DROVER_HOME", home.path())
            .args(args)
            .output()
            .expect("spawn drover");
        assert!(out.status.success(), "drover {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    drover(&["plugin", "install", wasm::NOOP]);
    let call = ["plugin", "run", "noop", "--input", r#"{"label": "bench"}"#];
    drover(&call);
    let samples: Vec<Duration> = (0..20)
        .map(|_| {
            let started = Instant::now();
            drover(&call);
            started.elapsed()
        })
        .collect();
    row(json, "drover plugin run noop: process, cached load, one call", samples.len(), samples);
}
