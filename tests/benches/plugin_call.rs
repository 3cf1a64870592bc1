//! Benchmark of the plugin boundary (not a test: it asserts nothing about time).
//!
//! - warm call: instantiate-and-call of the `noop` plugin through `PluginHost::call` (fresh
//!   `Store`, WASI context, instantiation from the reused `InstancePre`, input and output schema
//!   validation), on an already loaded plugin;
//! - cached load: `PluginHost::load` of `noop` in a new host whose disk cache already holds its
//!   compiled code (read, deserialize, link, `describe`);
//! - uncached load, for comparison: the same with compilation.
//!
//! Run with `cargo xtask bench` (release build). Figures go to docs/benchmarks.md.

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

fn row(name: &str, n: usize, samples: Vec<Duration>) {
    let (min, median, p90) = stats(samples);
    println!(
        "| {name} | {n} | {:.1} µs | {:.1} µs | {:.1} µs |",
        min.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
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
        row("warm instantiate-and-call of noop", runs, samples);

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
        row("load of noop, disk cache hit (new host each run)", cached.len(), cached);
        row("load of noop, compiled (first run)", compiled.len(), compiled);
        println!("\nnoop.wasm: {} bytes", bytes.len());
    });
}
