//! Benchmarks of the durable engine (not tests: nothing here asserts a time).
//!
//! One invocation, one database directory (`DROVER_BENCH_DIR`, else a temporary one), every
//! figure under `synchronous=FULL` and `NORMAL`, each the median of several runs, timed both
//! in-process (through `run::start`/`run::resume`, store opening included) and as a whole
//! process (spawning the release `drover` to its exit). W1, W2 and W4 are measured again on a
//! PostgreSQL journal, in a throwaway cluster started durable (`fsync = on`) in the temporary
//! directory, under `synchronous_commit` on and off, each with its own floor (`journal.rs`):
//! - floor: one-row transactions in WAL mode on the same disk (rusqlite directly); on
//!   PostgreSQL, one-row autocommit INSERTs through the `postgres` crate on the Unix socket;
//! - W1: a 100-step chain of `noop`, with the number of commits it took, each run paired with a
//!   floor measured just before it (the disk's commit time drifts) for its ratio;
//! - W2: 1 → 1,000 parallel `noop` steps → 1, at run limits 64 (and 8, in-process);
//! - W3: a 200-step chain whose steps append their key to a file, SIGKILLed after 100 lines,
//!   then resumed: whether it completed, duplicate lines, the resume's wall time;
//! - W4: a 10,000-step run SIGKILLed half-way: from the start of the resume to the first new
//!   attempt in the journal;
//! - W5: a 100,000-step fan-out: wall time, peak RSS (of the `drover` process; in-process, how
//!   much this process's peak grew during the run), and cost per step against W2's.
//!
//! Prints a Markdown table per journal and writes `engine.json` into `DROVER_BENCH_OUT`
//! (default `target/bench`). Run with `cargo xtask bench`; `DROVER_BENCH_ONLY=w1` (or w2 … w5)
//! runs one workload after the floor, for profiling, and `DROVER_BENCH_JOURNAL=sqlite` (or
//! `postgres`) one journal.

#[path = "engine/journal.rs"]
mod journal;
#[path = "engine/workloads.rs"]
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drover_engine::inventory::Inventory;
use drover_engine::plugin::registry::Registry;
use drover_engine::plugin::{HostConfig, PluginHost, PluginRef};
use drover_engine::run::{self, NewRun, NoProgress, RunContext, RunOutcome, SystemClock};
use drover_engine::secrets::MapSecrets;
use drover_engine::store::Store;
use drover_engine::workflow::{self, ValidationContext};
use drover_tests::postgres::PgCluster;
use drover_tests::{drover_bin, wasm};
use journal::{Backend, Journal, Journals, Setting, median, ms};
use serde_json::{Value, json};
use workloads::fan;

/// Where every run happens: one directory, one home with the plugins installed, one host, and
/// the journals.
struct Bench {
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
    home: PathBuf,
    registry: Registry,
    host: Arc<PluginHost>,
    journals: Journals,
}

/// One in-process run: wall time, commits, outcome.
struct Driven {
    ms: f64,
    /// Of `ms`, opening the fresh store: creating its schema, whose commits are not counted in
    /// `commits` (they are made before the writer thread starts).
    open_ms: f64,
    commits: u64,
    outcome: RunOutcome,
}

impl Bench {
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn ctx(&self, store: Arc<Store>) -> RunContext {
        RunContext {
            store,
            host: self.host.clone(),
            registry: self.registry.clone(),
            clock: Arc::new(SystemClock::new(1)),
            secrets: Arc::new(MapSecrets::new()),
            wait_for_operator: false,
            progress: Arc::new(NoProgress),
            lease_ttl: drover_engine::run::LEASE_TTL,
        }
    }

    /// Starts and drives a run in this process, from opening its store to its end.
    fn run_in_process(&self, name: &str, toml: &str, setting: Setting) -> Driven {
        let wf_path = self.write(&format!("{name}.toml"), toml);
        let resolve = |r: &PluginRef| self.registry.resolve(r).map(|i| i.info).map_err(|e| e.to_string());
        let wf =
            workflow::load(&wf_path, &ValidationContext { groups: None, plugins: &resolve }).expect("valid");
        let params = run::resolve_params(&wf, &[]).expect("params");
        let new = NewRun { workflow: wf, source_path: name.into(), params, inventory: Inventory::default() };
        let journal = self.journals.fresh(name, setting);
        let started = Instant::now();
        let store = Arc::new(Store::open_at(&journal.location(), setting.durability).expect("store"));
        let open_ms = ms(started);
        let ctx = self.ctx(store.clone());
        let outcome = self.runtime.block_on(async {
            let id = run::start(&ctx, new).await.expect("start");
            run::resume(&ctx, id).await.expect("drive")
        });
        Driven { ms: ms(started), open_ms, commits: store.commits(), outcome }
    }

    /// `drover` on `journal` with this home and synchronous setting (SQLite's flag; PostgreSQL's
    /// is in the URL), output discarded.
    fn drover(&self, journal: &Journal, setting: Setting, args: &[&str]) -> Command {
        let mut cmd = Command::new(drover_bin());
        cmd.env("DROVER_HOME", &self.home).args(["--db", journal.arg(), "--quiet"]);
        if setting.backend == Backend::Sqlite {
            cmd.args(["--synchronous", setting.sync]);
        }
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    /// `drover run` of `toml` as a whole process: wall time from spawn to exit, and its peak RSS.
    fn run_process(&self, name: &str, toml: &str, inventory: &Path, setting: Setting) -> (f64, u64) {
        let wf = self.write(&format!("{name}.toml"), toml);
        let journal = self.journals.fresh(name, setting);
        let started = Instant::now();
        let child = self
            .drover(
                &journal,
                setting,
                &["run", wf.to_str().expect("utf-8"), "--inventory", path_str(inventory)],
            )
            .spawn()
            .expect("spawn drover run");
        let (ok, peak) = wait_with_peak_rss(child);
        let elapsed = ms(started);
        assert!(ok, "drover run of {name} failed");
        (elapsed, peak)
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Waits for `child` and returns whether it succeeded and its peak resident set in bytes: the
/// kernel's high-water mark (`VmHWM`) of the child's own address space, read every millisecond
/// until it exits. (`wait4`'s `ru_maxrss` would not do: exec folds the forked copy of this
/// process's address space into it.)
fn wait_with_peak_rss(mut child: Child) -> (bool, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(kb) =
            std::fs::read_to_string(&status_file).ok().as_deref().and_then(|s| kb_field(s, "VmHWM:"))
        {
            peak = peak.max(kb * 1024);
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            return (status.success(), peak);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A `kB` field of a `/proc/*/status` file.
fn kb_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// This process's resident set now, and its peak since the last [`reset_peak_rss`], in bytes.
fn rss_now_and_peak() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field =
        |name| kb_field(&status, name).unwrap_or_else(|| panic!("{name} in /proc/self/status")) * 1024;
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the kernel's peak-RSS mark of this process to its current RSS.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("write /proc/self/clear_refs");
}

fn chain(n: usize) -> String {
    let mut wf = String::from("name = \"chain\"\nversion = \"1.0.0\"\n\n");
    for i in 0..n {
        let needs = if i == 0 { String::new() } else { format!("needs = [\"s{}\"]\n", i - 1) };
        wf.push_str(&format!("[[steps]]\nid = \"s{i}\"\nplugin = \"noop\"\n{needs}\n"));
    }
    wf
}

/// W3's chain: each step appends "<step key> <attempt>" to `file` on the local server.
fn appending_chain(n: usize, file: &Path) -> String {
    let mut wf = String::from("name = \"appending-chain\"\nversion = \"1.0.0\"\n\n");
    for i in 0..n {
        let needs = if i == 0 { String::new() } else { format!("needs = [\"a{:03}\"]\n", i - 1) };
        wf.push_str(&format!(
            "[[steps]]\nid = \"a{i:03}\"\nplugin = \"fixture-plugin-for-tests\"\nfor-each = \"one\"\n{needs}\
             grants = {{ programs = [\"sh\"] }}\nwith = {{ behave = \"effect\", file = \"{}\" }}\n\n",
            file.display()
        ));
    }
    wf
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect()
}

/// How a resume is timed.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    InProcess,
    WholeProcess,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::WholeProcess => "whole process",
        }
    }
}

impl Bench {
    /// Resumes the run in `journal`, in this process or as `drover resume`, to its end; returns
    /// the wall time, whether it succeeded, and the time to its first new attempt (polled from
    /// the journal: an `attempt-started` event after the last event before the resume).
    fn resume(&self, journal: &Journal, setting: Setting, mode: Mode) -> (f64, bool, f64) {
        let id = journal.run_id();
        let before = journal.count("SELECT coalesce(max(seq), 0) FROM events");
        let started = Instant::now();
        let first_new = || {
            let sql =
                format!("SELECT count(*) FROM events WHERE seq > {before} AND kind = 'attempt-started'");
            loop {
                if journal.count(&sql) > 0 {
                    return ms(started);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        match mode {
            Mode::WholeProcess => {
                let mut child =
                    self.drover(journal, setting, &["resume", &id]).spawn().expect("spawn drover resume");
                let first = first_new();
                let ok = child.wait().expect("resume exits").success();
                (ms(started), ok, first)
            }
            Mode::InProcess => {
                let store = Store::open_at(&journal.location(), setting.durability).expect("store");
                let ctx = self.ctx(Arc::new(store));
                let id = id.parse().expect("a run id");
                let handle = self.runtime.spawn(async move { run::resume(&ctx, id).await });
                let first = first_new();
                let outcome = self.runtime.block_on(handle).expect("join").expect("resume");
                (ms(started), outcome == RunOutcome::Succeeded, first)
            }
        }
    }

    /// Spawns `drover run` and SIGKILLs it once `killed_when` holds; returns its journal, once a
    /// resume may take the run over. On SQLite that is at once (the dead driver's OS lock is
    /// gone); on PostgreSQL there is no OS lock, so the killed driver runs with a lease of
    /// [`PG_KILLED_LEASE_TTL`] and this waits, untimed, until the journal shows it expired.
    fn run_then_kill(
        &self,
        name: &str,
        toml: &str,
        inventory: &Path,
        setting: Setting,
        killed_when: impl Fn(&Journal) -> bool,
    ) -> Journal {
        let wf = self.write(&format!("{name}.toml"), toml);
        let journal = self.journals.fresh(name, setting);
        let mut cmd =
            self.drover(&journal, setting, &["run", path_str(&wf), "--inventory", path_str(inventory)]);
        if setting.backend == Backend::Postgres {
            cmd.env("DROVER_LEASE_TTL", PG_KILLED_LEASE_TTL);
        }
        let mut child = cmd.spawn().expect("spawn drover run");
        let started = Instant::now();
        while !killed_when(&journal) {
            assert!(started.elapsed() < Duration::from_secs(300), "{name}: the kill point never came");
            assert!(child.try_wait().expect("poll").is_none(), "{name}: the run ended before the kill point");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().expect("kill");
        child.wait().expect("reap");
        if setting.backend == Backend::Postgres {
            let live =
                || journal.count(&format!("SELECT count(*) FROM leases WHERE expires_at > {}", now_ms()));
            while live() > 0 {
                assert!(started.elapsed() < Duration::from_secs(300), "{name}: the lease never expired");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        journal
    }
}

/// The lease of a `drover run` W4 kills on PostgreSQL (`DROVER_LEASE_TTL`): short, as the resume
/// waits for it to expire, but not 1 or 2 s, which the driver of a 10,000-instance fan-out on
/// PostgreSQL cannot renew in time at the fan-out's expansion (it stops, exit 5).
const PG_KILLED_LEASE_TTL: &str = "5s";

/// One round trip to a thread blocked on a std channel that answers through a tokio oneshot,
/// awaited in `block_on`: what a commit through the store's writer costs beyond the commit itself.
/// Median of 1000, back to back (a lower bound: in a run the writer has been idle longer).
fn writer_round_trip(runtime: &tokio::runtime::Runtime) -> f64 {
    let (jobs, queue) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
    let writer = std::thread::spawn(move || {
        while let Ok(reply) = queue.recv() {
            let _ = reply.send(());
        }
    });
    let samples = runtime.block_on(async {
        let mut samples = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let started = Instant::now();
            let (reply, answered) = tokio::sync::oneshot::channel();
            jobs.send(reply).expect("the writer thread runs");
            answered.await.expect("the writer thread answers");
            samples.push(ms(started));
        }
        samples
    });
    drop(jobs);
    writer.join().expect("the writer thread ends");
    median(&samples)
}

/// How many (floor, chain) pairs W1 measures per setting.
const W1_PAIRS: usize = 7;

/// The figures of one journal backend: a Markdown table and the same as JSON.
struct Report {
    backend: Backend,
    floor: [f64; 2],
    rows: Vec<String>,
    json: Vec<Value>,
}

impl Report {
    /// A timed figure under both settings: medians, each also as a multiple of that setting's
    /// floor.
    fn times(&mut self, id: &str, what: &str, mode: Mode, runs: [Vec<f64>; 2], target: &str) -> [f64; 2] {
        let medians = [median(&runs[0]), median(&runs[1])];
        let cells =
            [0, 1].map(|i| format!("{:.1} ms ({:.0}× floor)", medians[i], medians[i] / self.floor[i]));
        self.rows.push(format!(
            "| {id} | {what} | {} | {} | {} | {target} |",
            mode.name(),
            cells[0],
            cells[1]
        ));
        for (i, setting) in self.backend.settings().iter().enumerate() {
            self.json.push(json!({
                "journal": self.backend.name(), "id": id, "what": what, "mode": mode.name(), "synchronous": setting.sync, "unit": "ms",
                "median": medians[i], "runs": runs[i], "ratio_to_floor": medians[i] / self.floor[i],
                "target": target,
            }));
        }
        medians
    }

    /// Per-run ratios: their median, with the smallest and largest.
    fn ratios(&mut self, id: &str, what: &str, ratios: [Vec<f64>; 2], target: &str) {
        let cell = |r: &[f64]| {
            let (lo, hi) = r.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            format!("**{:.2}** ({lo:.2}–{hi:.2})", median(r))
        };
        self.rows.push(format!(
            "| {id} | {what} | {} | {} | {} | {target} |",
            Mode::InProcess.name(),
            cell(&ratios[0]),
            cell(&ratios[1])
        ));
        for (i, setting) in self.backend.settings().iter().enumerate() {
            self.json.push(json!({
                "journal": self.backend.name(), "id": id, "what": what, "mode": Mode::InProcess.name(), "synchronous": setting.sync,
                "unit": "ratio", "median": median(&ratios[i]), "runs": ratios[i], "target": target,
            }));
        }
    }

    /// A figure that is not a time (a count, a ratio, bytes): shown as given.
    fn other(
        &mut self,
        id: &str,
        what: &str,
        mode: Mode,
        values: [(f64, String); 2],
        unit: &str,
        target: &str,
    ) {
        self.rows.push(format!(
            "| {id} | {what} | {} | {} | {} | {target} |",
            mode.name(),
            values[0].1,
            values[1].1
        ));
        for (i, setting) in self.backend.settings().iter().enumerate() {
            self.json.push(json!({
                "journal": self.backend.name(), "id": id, "what": what, "mode": mode.name(), "synchronous": setting.sync, "unit": unit,
                "median": values[i].0, "target": target,
            }));
        }
    }
}

impl Report {
    /// The floor of `backend` under both its settings, and the report that divides by it.
    fn new(bench: &Bench, backend: Backend) -> Report {
        let settings = backend.settings();
        let floor = settings.map(|s| bench.journals.floor(s, 300));
        let mut report = Report { backend, floor, rows: Vec::new(), json: Vec::new() };
        let what = match backend {
            Backend::Sqlite => "one-row transaction, WAL, median of 300 (rusqlite)",
            Backend::Postgres => "one-row INSERT, autocommit, median of 300 (postgres crate, Unix socket)",
        };
        report
            .rows
            .push(format!("| floor | {what} | in-process | {:.3} ms | {:.3} ms | |", floor[0], floor[1]));
        for (i, setting) in settings.iter().enumerate() {
            report
                .json
                .push(json!({"journal": backend.name(), "id": "floor", "what": what, "mode": "in-process",
                "synchronous": setting.sync, "unit": "ms", "median": floor[i], "ratio_to_floor": 1.0}));
        }
        if backend == Backend::Postgres {
            let trip = settings.map(|s| bench.journals.round_trip(s, 1000));
            report.other(
                "floor",
                "… one round trip of a prepared SELECT 1, median of 1000 (no commit)",
                Mode::InProcess,
                trip.map(|t| (t, format!("{t:.3} ms"))),
                "ms",
                "",
            );
        }
        report
    }

    /// The Markdown table.
    fn print(&self) {
        let [a, b] = self.backend.columns();
        println!("| workload | measurement | timed | {a} | {b} | target |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("{row}");
        }
    }
}

/// W1: a 100-step chain, in-process with its ratio to the floor, and as a whole process.
fn w1(bench: &Bench, report: &mut Report, inventory: &Path) {
    // The disk's commit time drifts within seconds on a shared VM, so each chain is paired with
    // a floor measured right before it, and the ratio is taken per pair. The ratio times the run
    // from its start on an open store: opening a fresh one creates the schema, whose commits
    // `commits` does not count (the floor's table is created untimed too).
    let settings = report.backend.settings();
    let mut runs = [Vec::new(), Vec::new()];
    let mut opens = [Vec::new(), Vec::new()];
    let mut ratios = [Vec::new(), Vec::new()];
    let mut commits = [0u64; 2];
    for (i, setting) in settings.into_iter().enumerate() {
        for _ in 0..W1_PAIRS {
            let floor = bench.journals.floor(setting, 100);
            let driven = bench.run_in_process("chain", &chain(100), setting);
            assert_eq!(driven.outcome, RunOutcome::Succeeded);
            runs[i].push(driven.ms);
            opens[i].push(driven.open_ms);
            ratios[i].push((driven.ms - driven.open_ms) / (driven.commits as f64 * floor));
            commits[i] = driven.commits;
        }
    }
    report.times("W1", &format!("100-step chain of noop, median of {W1_PAIRS}"), Mode::InProcess, runs, "");
    report.times("W1", "… of which opening the fresh store (schema created)", Mode::InProcess, opens, "");
    report.other(
        "W1",
        "… commits it took",
        Mode::InProcess,
        commits.map(|c| (c as f64, c.to_string())),
        "commits",
        "",
    );
    report.ratios(
        "W1",
        &format!(
            "… less opening the store, ÷ (commits × floor of 100 commits measured just before), median of \
             {W1_PAIRS} pairs"
        ),
        ratios,
        "≤ 1.5",
    );
    if report.backend == Backend::Sqlite {
        let hop = writer_round_trip(&bench.runtime);
        report.other(
            "W1",
            "… one round trip to a writer thread and back, median of 1000 (no database)",
            Mode::InProcess,
            [(hop, format!("{:.3} ms", hop)), (hop, format!("{:.3} ms", hop))],
            "ms",
            "",
        );
    }
    let runs = settings.map(|setting| {
        (0..5).map(|_| bench.run_process("chain", &chain(100), inventory, setting).0).collect()
    });
    report.times("W1", "100-step chain of noop, median of 5", Mode::WholeProcess, runs, "");
}

/// W2: 1 → 1,000 → 1, at run limits 64 and 8 in-process and 64 as a whole process; returns the
/// cost per step at limit 64, in-process and whole process, under each setting.
fn w2(bench: &Bench, report: &mut Report, inventory: &Path) -> [[f64; 2]; 2] {
    let settings = report.backend.settings();
    let mut per_step = [[0.0; 2]; 2];
    for limit in [64, 8] {
        let mut commits = [Vec::new(), Vec::new()];
        let runs = [0, 1].map(|i| {
            (0..5)
                .map(|_| {
                    let driven = bench.run_in_process("fan", &fan(1000, limit), settings[i]);
                    assert_eq!(driven.outcome, RunOutcome::Succeeded);
                    commits[i].push(driven.commits as f64);
                    driven.ms
                })
                .collect()
        });
        let what = format!("1 → 1,000 → 1 noop, run limit {limit}, median of 5");
        let medians = report.times("W2", &what, Mode::InProcess, runs, "≤ 500 ms");
        // Group commit: how many of the run's writes shared each commit.
        report.other(
            "W2",
            "… commits it took (median)",
            Mode::InProcess,
            commits.map(|c| (median(&c), format!("{:.0}", median(&c)))),
            "commits",
            "",
        );
        if limit == 64 {
            per_step[0] = medians.map(|m| m / 1002.0);
            let runs = settings.map(|setting| {
                (0..5).map(|_| bench.run_process("fan", &fan(1000, 64), inventory, setting).0).collect()
            });
            let medians = report.times("W2", &what, Mode::WholeProcess, runs, "≤ 500 ms");
            per_step[1] = medians.map(|m| m / 1002.0);
        }
    }
    per_step
}

/// How often the W2 workers poll the journal (`drover worker --poll`): its minimum, so the
/// figure is the engine's more than the wait for the next poll (at most this long).
const WORKER_POLL: &str = "10ms";

/// W2 through `drover worker` (PostgreSQL): 1 and 3 worker processes already polling a fresh
/// journal, then `drover run --detach` of 1 → 1,000 → 1 at run limit 64; timed from spawning
/// `run --detach` to the run's `succeeded` state in the journal (polled every millisecond).
fn w2_workers(bench: &Bench, report: &mut Report, inventory: &Path) {
    let wf = bench.write("fan-detached.toml", &fan(1000, 64));
    for workers in [1, 3] {
        let runs = report.backend.settings().map(|setting| {
            (0..5)
                .map(|_| {
                    let journal = bench.journals.fresh("fan_workers", setting);
                    let mut pool: Vec<Child> = (0..workers)
                        .map(|_| {
                            bench
                                .drover(&journal, setting, &["worker", "--poll", WORKER_POLL])
                                .spawn()
                                .expect("spawn drover worker")
                        })
                        .collect();
                    // Ready: each worker's store holds its two sessions (writer and reader).
                    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                                    AND application_name = 'drover'";
                    let waiting = Instant::now();
                    while journal.count(sessions) < 2 * workers {
                        assert!(waiting.elapsed() < Duration::from_secs(60), "the workers never connected");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let started = Instant::now();
                    let detached = bench
                        .drover(
                            &journal,
                            setting,
                            &["run", "--detach", path_str(&wf), "--inventory", path_str(inventory)],
                        )
                        .status()
                        .expect("drover run --detach");
                    assert!(detached.success(), "drover run --detach failed");
                    while journal.count("SELECT count(*) FROM runs WHERE state = 'succeeded'") == 0 {
                        assert!(
                            started.elapsed() < Duration::from_secs(300),
                            "the workers never finished the run"
                        );
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let elapsed = ms(started);
                    for worker in &mut pool {
                        worker.kill().expect("kill the worker");
                        worker.wait().expect("reap the worker");
                    }
                    elapsed
                })
                .collect()
        });
        report.times(
            "W2",
            &format!(
                "1 → 1,000 → 1 noop, run limit 64, `run --detach` to succeeded with {workers} `drover worker` (--poll \
                 {WORKER_POLL}), median of 5"
            ),
            Mode::WholeProcess,
            runs,
            "≤ 500 ms",
        );
    }
}

/// W3 (SQLite): a 200-step appending chain killed after 100 lines, then resumed.
fn w3(bench: &Bench, report: &mut Report, inventory: &Path) {
    let mut logs = 0;
    for mode in [Mode::InProcess, Mode::WholeProcess] {
        let mut times = [Vec::new(), Vec::new()];
        let mut verdicts = [(0, 0, 0), (0, 0, 0)]; // (runs completed, duplicates, runs)
        for (i, setting) in report.backend.settings().into_iter().enumerate() {
            for _ in 0..3 {
                logs += 1;
                let file = bench.dir.join(format!("w3-{logs}.log"));
                let _ = std::fs::remove_file(&file);
                let toml = appending_chain(200, &file);
                let journal =
                    bench.run_then_kill("w3", &toml, inventory, setting, |_| lines(&file).len() >= 100);
                let (elapsed, ok, _) = bench.resume(&journal, setting, mode);
                let written = lines(&file);
                let keys: std::collections::BTreeSet<&str> =
                    written.iter().filter_map(|l| l.split(' ').next()).collect();
                let completed = ok && keys.len() == 200;
                verdicts[i].0 += usize::from(completed);
                verdicts[i].1 += written.len() - keys.len();
                verdicts[i].2 += 1;
                times[i].push(elapsed);
            }
        }
        report.times(
            "W3",
            "200-step appending chain killed after 100 lines: resume to its end, median of 3",
            mode,
            times,
            "",
        );
        report.other(
            "W3",
            "… runs completed, duplicate lines in all runs",
            mode,
            verdicts.map(|(done, dup, n)| (dup as f64, format!("{done} of {n} completed, {dup} duplicates"))),
            "duplicate lines",
            "all complete",
        );
    }
}

/// W4: a 10,000-step run SIGKILLed half-way, resumed: the time to its first new attempt.
fn w4(bench: &Bench, report: &mut Report, inventory: &Path) {
    for mode in [Mode::InProcess, Mode::WholeProcess] {
        let mut firsts = [Vec::new(), Vec::new()];
        for (i, setting) in report.backend.settings().into_iter().enumerate() {
            for _ in 0..3 {
                let half_done =
                    |j: &Journal| j.count("SELECT count(*) FROM steps WHERE state = 'succeeded'") >= 5_000;
                let journal = bench.run_then_kill("w4", &fan(10_000, 64), inventory, setting, half_done);
                let (_, ok, first) = bench.resume(&journal, setting, mode);
                assert!(ok, "the resumed 10,000-step run finishes");
                firsts[i].push(first);
            }
        }
        report.times(
            "W4",
            "10,000-step run killed half-way: resume to its first new attempt, median of 3",
            mode,
            firsts,
            "≤ 100 ms",
        );
    }
}

/// W5 (SQLite): 1 → 100,000 → 1: wall time, peak RSS, and cost per step against W2's
/// (`w2_per_step`, in-process and whole process, 0 when W2 did not run).
fn w5(bench: &Bench, report: &mut Report, inventory: &Path, w2_per_step: [[f64; 2]; 2]) {
    for mode in [Mode::InProcess, Mode::WholeProcess] {
        let (mut times, mut peaks) = ([Vec::new(), Vec::new()], [0u64; 2]);
        for (i, setting) in report.backend.settings().into_iter().enumerate() {
            for _ in 0..3 {
                let (elapsed, peak) = match mode {
                    Mode::InProcess => {
                        // The growth of this process's peak over what it held before: the bench
                        // keeps the memory of earlier workloads.
                        reset_peak_rss();
                        let (before, _) = rss_now_and_peak();
                        let driven = bench.run_in_process("w5", &fan(100_000, 64), setting);
                        assert_eq!(driven.outcome, RunOutcome::Succeeded);
                        (driven.ms, rss_now_and_peak().1.saturating_sub(before))
                    }
                    Mode::WholeProcess => bench.run_process("w5", &fan(100_000, 64), inventory, setting),
                };
                times[i].push(elapsed);
                peaks[i] = peaks[i].max(peak);
            }
        }
        let medians = report.times("W5", "1 → 100,000 → 1 noop, run limit 64, median of 3", mode, times, "");
        let mb = peaks.map(|p| p as f64 / (1024.0 * 1024.0));
        report.other(
            "W5",
            match mode {
                Mode::InProcess => "… peak RSS growth during the run, largest of the runs",
                Mode::WholeProcess => "… peak RSS of the process, largest of the runs",
            },
            mode,
            mb.map(|m| (m, format!("{m:.0} MiB"))),
            "MiB",
            "≤ 300 MB",
        );
        let w2 = w2_per_step[usize::from(mode == Mode::WholeProcess)];
        if w2[0] > 0.0 {
            let ratio = [0, 1].map(|i| (medians[i] / 100_002.0) / w2[i]);
            report.other(
                "W5",
                "… cost per step ÷ W2's (limit 64)",
                mode,
                [0, 1].map(|i| {
                    (
                        ratio[i],
                        format!("{:.1} µs ÷ {:.1} µs = {:.2}", medians[i] / 100.002, w2[i] * 1e3, ratio[i]),
                    )
                }),
                "ratio",
                "≤ 1.5",
            );
        }
    }
}

/// The journals `DROVER_BENCH_JOURNAL` asks for (`sqlite`, `postgres`), both when unset.
fn backends() -> Vec<Backend> {
    match std::env::var("DROVER_BENCH_JOURNAL").ok().as_deref() {
        None | Some("") => vec![Backend::Sqlite, Backend::Postgres],
        Some("sqlite") => vec![Backend::Sqlite],
        Some("postgres") => vec![Backend::Postgres],
        Some(other) => panic!("DROVER_BENCH_JOURNAL={other:?}: expected sqlite or postgres"),
    }
}

/// Where the PostgreSQL cluster keeps its data, and whether that is the disk of the bench's
/// directory (the SQLite journals').
fn pg_disk(cluster: &PgCluster, dir: &Path) -> Value {
    use std::os::unix::fs::MetadataExt as _;
    let device = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).expect("stat");
    json!({
        "data_directory": cluster.data_dir(),
        "same_device_as_bench_directory": device(&cluster.data_dir()) == device(dir),
    })
}

fn main() {
    // The first call builds the binary when it is stale: not inside a timed command.
    drover_bin();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = std::env::var_os("DROVER_BENCH_DIR").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench directory");
    let home = dir.join("home");
    let registry = Registry::new(home.join("plugins"));
    let host = Arc::new(
        PluginHost::new(HostConfig { cache_dir: Some(home.join("cache")), ..HostConfig::default() })
            .expect("host"),
    );
    for plugin in [wasm::NOOP, wasm::FIXTURE] {
        runtime.block_on(registry.install(&host, Path::new(plugin))).expect("install");
    }
    let backends = backends();
    let pg = backends.contains(&Backend::Postgres).then(PgCluster::start_durable);
    let journals = Journals::new(&dir, pg);
    let bench = Bench { runtime, dir: dir.clone(), home, registry, host, journals };
    let only = std::env::var("DROVER_BENCH_ONLY").ok();
    let wanted = |id: &str| only.as_deref().is_none_or(|o| o == id);
    let empty_inventory = bench.write("empty-inventory.toml", "");
    let local_inventory = bench.write(
        "local-inventory.toml",
        "[servers.here]\ntransport = \"local\"\n\n[groups]\none = [\"here\"]\n",
    );

    let mut reports: Vec<Report> = backends.iter().map(|&b| Report::new(&bench, b)).collect();
    let mut w2_per_step = [[0.0; 2]; 2];
    for report in &mut reports {
        let sqlite = report.backend == Backend::Sqlite;
        if wanted("w1") {
            w1(&bench, report, &empty_inventory);
        }
        if wanted("w2") {
            let per_step = w2(&bench, report, &empty_inventory);
            if sqlite {
                w2_per_step = per_step;
            } else {
                w2_workers(&bench, report, &empty_inventory);
            }
        }
        if wanted("w3") && sqlite {
            w3(&bench, report, &local_inventory);
        }
        if wanted("w4") {
            w4(&bench, report, &empty_inventory);
        }
        if wanted("w5") && sqlite {
            w5(&bench, report, &empty_inventory, w2_per_step);
        }
        // Each journal's table as soon as it is measured.
        match report.backend {
            Backend::Sqlite => println!("SQLite journal ({}):\n", dir.display()),
            Backend::Postgres => println!(
                "PostgreSQL journal (a cluster of its own in {}, fsync on):\n",
                bench.journals.cluster().map_or_else(String::new, |c| c.data_dir().display().to_string())
            ),
        }
        report.print();
        println!();
    }
    let out = std::env::var_os("DROVER_BENCH_OUT")
        .map_or_else(|| drover_tests::workspace_root().join("target/bench"), PathBuf::from);
    std::fs::create_dir_all(&out).expect("output directory");
    let file = out.join("engine.json");
    let postgres = bench.journals.cluster().map(|c| {
        let mut about = pg_disk(c, &dir);
        about["settings"] = bench.journals.pg_settings();
        about
    });
    let figures: Vec<&Value> = reports.iter().flat_map(|r| &r.json).collect();
    let text =
        serde_json::to_string_pretty(&json!({"directory": dir, "postgres": postgres, "figures": figures}))
            .expect("json");
    std::fs::write(&file, text).expect("write json");
    println!("JSON: {}", file.display());
}
