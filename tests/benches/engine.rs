//! Benchmarks of the durable engine (not tests: nothing here asserts a time).
//!
//! In one invocation and one database directory, under `synchronous=FULL` and `NORMAL`:
//! - the disk's commit floor: one-row transactions in WAL mode (rusqlite directly);
//! - a 100-step chain of `noop`, driven in-process, with the number of commits it took;
//! - 1 → 1,000 parallel `noop` steps → 1, in-process, at run limits 8 and 64;
//! - resume of a 10,000-step run killed (SIGKILL) half-way: from spawning `drover resume` to the
//!   first new attempt recorded in the journal (whole process).
//!
//! Run with `cargo xtask bench`; figures go to docs/benchmarks.md. `DROVER_BENCH_ONLY=chain` runs
//! only the chain (for profiling).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drover_engine::inventory::Inventory;
use drover_engine::plugin::registry::Registry;
use drover_engine::plugin::{HostConfig, PluginHost, PluginRef};
use drover_engine::run::{self, NewRun, NoProgress, RunContext, RunOutcome, SystemClock};
use drover_engine::secrets::MapSecrets;
use drover_engine::store::{Durability, Store};
use drover_engine::workflow::{self, ValidationContext};
use drover_tests::{drover_bin, wasm};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn commit_floor(dir: &Path, sync: &str) -> f64 {
    let path = dir.join(format!("floor-{sync}.db"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", sync).expect("sync");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").expect("table");
    let mut samples = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")]).expect("insert");
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    median(samples)
}

struct Bench {
    runs: std::sync::atomic::AtomicU64,
    dir: PathBuf,
    registry: Registry,
    host: Arc<PluginHost>,
}

impl Bench {
    async fn run(&self, name: &str, toml: &str, durability: Durability) -> (f64, u64, RunOutcome) {
        let wf_path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&wf_path, toml).expect("write workflow");
        let resolve = |r: &PluginRef| self.registry.resolve(r).map(|i| i.info).map_err(|e| e.to_string());
        let wf =
            workflow::load(&wf_path, &ValidationContext { groups: None, plugins: &resolve }).expect("valid");
        // A fresh file per run: a finished run's store may still be closing.
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = self.dir.join(format!("{name}-{durability:?}-{n}.db"));
        let store = Arc::new(Store::open(&db, durability).expect("store"));
        let ctx = RunContext {
            store: store.clone(),
            host: self.host.clone(),
            registry: self.registry.clone(),
            clock: Arc::new(SystemClock::new(1)),
            secrets: Arc::new(MapSecrets::new()),
            wait_for_operator: false,
            progress: Arc::new(NoProgress),
        };
        let params = run::resolve_params(&wf, &[]).expect("params");
        let new = NewRun { workflow: wf, source_path: name.into(), params, inventory: Inventory::default() };
        let started = Instant::now();
        let before = store.commits();
        let id = run::start(&ctx, new).await.expect("start");
        let outcome = run::resume(&ctx, &id).await.expect("drive");
        (started.elapsed().as_secs_f64() * 1e3, store.commits() - before, outcome)
    }
}

fn chain(n: usize) -> String {
    let mut wf = String::from("name = \"chain\"\nversion = \"1.0.0\"\n\n");
    for i in 0..n {
        let needs = if i == 0 { String::new() } else { format!("needs = [\"s{}\"]\n", i - 1) };
        wf.push_str(&format!("[[steps]]\nid = \"s{i}\"\nplugin = \"noop\"\n{needs}\n"));
    }
    wf
}

fn fan(n: usize, limit: u32) -> String {
    let items = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "name = \"fan\"\nversion = \"1.0.0\"\n[limits]\nconcurrency = {limit}\n\n[[steps]]\nid = \"first\"\nplugin = \"noop\"\n\n\
         [[steps]]\nid = \"fan\"\nplugin = \"noop\"\nneeds = [\"first\"]\nfor-each = [{items}]\n\n\
         [[steps]]\nid = \"last\"\nplugin = \"noop\"\nneeds = [\"fan\"]\n"
    )
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Kills a 10,000-step run half-way and times `drover resume` to its first new attempt.
fn resume_after_kill(dir: &Path, home: &Path, sync: &str) -> (u64, f64) {
    let wf = dir.join("big.toml");
    std::fs::write(&wf, fan(10_000, 64)).expect("write");
    let inv = dir.join("empty-inventory.toml");
    std::fs::write(&inv, "").expect("write");
    let db = dir.join(format!("big-{sync}.db"));
    let _ = std::fs::remove_file(&db);
    let drover = |args: &[&str]| {
        let mut cmd = std::process::Command::new(drover_bin());
        cmd.env("DROVER_HOME", home)
            .args(["--db", db.to_str().expect("utf-8"), "--synchronous", sync, "--quiet"])
            .args(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    let mut child =
        drover(&["run", wf.to_str().expect("utf-8"), "--inventory", inv.to_str().expect("utf-8")])
            .spawn()
            .expect("run");
    let count = |sql: &str| -> i64 {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY);
        conn.and_then(|c| c.query_row(sql, [], |r| r.get(0))).unwrap_or(0)
    };
    while count("SELECT count(*) FROM steps WHERE state = 'succeeded'") < 5_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let done = count("SELECT count(*) FROM steps WHERE state = 'succeeded'") as u64;
    let run_id: String = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row("SELECT id FROM runs", [], |r| r.get(0))
        .expect("run");
    let t0 = now_ms();
    let spawned = Instant::now();
    let mut resume = drover(&["resume", &run_id]).spawn().expect("resume");
    let first = loop {
        let sql = format!("SELECT count(*) FROM events WHERE kind = 'attempt-started' AND at >= {t0}");
        if count(&sql) > 0 {
            break spawned.elapsed().as_secs_f64() * 1e3;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let status = resume.wait().expect("resume finishes");
    assert!(status.success(), "the resumed run finishes");
    (done, first)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().join("home");
    let registry = Registry::new(home.join("plugins"));
    let host = Arc::new(
        PluginHost::new(HostConfig { cache_dir: Some(home.join("cache")), ..HostConfig::default() })
            .expect("host"),
    );
    runtime.block_on(registry.install(&host, Path::new(wasm::NOOP))).expect("install noop");
    let bench = Bench { runs: Default::default(), dir: dir.path().to_path_buf(), registry, host };

    println!("| measurement | FULL | NORMAL |");
    println!("|---|---|---|");
    let floor = [commit_floor(dir.path(), "FULL"), commit_floor(dir.path(), "NORMAL")];
    println!(
        "| commit floor: one-row transaction, WAL (median of 300) | {:.3} ms | {:.3} ms |",
        floor[0], floor[1]
    );

    let mut rows: Vec<(String, [String; 2])> = Vec::new();
    let mut w1 = [(0.0, 0u64); 2];
    for (i, durability) in [Durability::Full, Durability::Normal].into_iter().enumerate() {
        let runs: Vec<(f64, u64)> = (0..5)
            .map(|_| {
                let (ms, commits, outcome) = runtime.block_on(bench.run("chain", &chain(100), durability));
                assert_eq!(outcome, RunOutcome::Succeeded);
                (ms, commits)
            })
            .collect();
        w1[i] = (median(runs.iter().map(|r| r.0).collect()), runs[0].1);
    }
    if std::env::var("DROVER_BENCH_ONLY").as_deref() == Ok("chain") {
        println!("| chain | {:.1} ms | {:.1} ms |", w1[0].0, w1[1].0);
        return;
    }
    rows.push((
        "100-step chain of noop, in-process wall time (median of 5)".into(),
        w1.map(|(ms, _)| format!("{ms:.1} ms")),
    ));
    rows.push(("… commits it took".into(), w1.map(|(_, c)| c.to_string())));
    rows.push((
        "… ratio to commits × commit floor (target ≤ 1.5)".into(),
        [0, 1].map(|i| format!("{:.2}", w1[i].0 / (w1[i].1 as f64 * floor[i]))),
    ));
    for limit in [8, 64] {
        let mut cells = [String::new(), String::new()];
        for (i, durability) in [Durability::Full, Durability::Normal].into_iter().enumerate() {
            let runs: Vec<f64> = (0..5)
                .map(|_| {
                    let (ms, _, outcome) = runtime.block_on(bench.run("fan", &fan(1000, limit), durability));
                    assert_eq!(outcome, RunOutcome::Succeeded);
                    ms
                })
                .collect();
            cells[i] = format!("{:.1} ms", median(runs));
        }
        rows.push((
            format!(
                "1 → 1,000 → 1 noop fan-out, run limit {limit}, in-process (median of 5; target ≤ 500 ms)"
            ),
            cells,
        ));
    }
    let mut resume = [String::new(), String::new()];
    for (i, sync) in ["full", "normal"].into_iter().enumerate() {
        let (done, first) = resume_after_kill(dir.path(), &home, sync);
        resume[i] = format!("{first:.1} ms ({done} of 10,002 done at the kill)");
    }
    rows.push((
        "resume of a 10,000-step run killed half-way: spawn to first new attempt (target ≤ 100 ms)".into(),
        resume,
    ));
    for (name, [full, normal]) in rows {
        println!("| {name} | {full} | {normal} |");
    }
}
