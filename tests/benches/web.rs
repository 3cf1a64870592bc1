//! The web view's load check (issue 20; not a test: nothing here asserts a time): does following a
//! run with `drover serve` slow the run down? The target is that 50 event-stream clients
//! following a 1,000-instance fan-out slow it by at most 10% against nobody following.
//!
//! W2's whole-process run (1 → 1,000 → 1 `noop`, run limit 64, the release `drover run --quiet`
//! on a fresh SQLite journal, `synchronous=FULL`) is timed from spawn to exit in three modes,
//! taken in turn round after round (the order rotating) so that the machine's noise falls on all
//! of them alike:
//! - no server: nothing but the run;
//! - idle server: `drover serve --listen 127.0.0.1:0` on the run's journal, nobody following;
//! - 50 clients: the same server, and 50 threads that, as soon as the run's row is in the journal,
//!   open `GET /api/runs/{run}/stream` and read its `view` events until one shows the run ended.
//!
//! In every mode the journal exists before the run starts (created untimed), and the bench reads
//! it every millisecond until the run's id is there. Per run it records the server's CPU time
//! (`/proc/<pid>/stat` utime + stime, all its threads) during the run and until the last client
//! was done, the clients' CPU time (`/proc/thread-self/schedstat`, summed), and per client the
//! view events and bytes it read and how long its first view took. Then, on a finished run, how
//! long a freshly started server takes to send the first view (building the 1,000-instance view
//! from the journal and serializing it) and how big that view is.
//!
//! Prints a Markdown table and writes `web.json` into `DROVER_BENCH_OUT` (default
//! `target/bench`). Run with `cargo xtask bench`; `DROVER_BENCH_WEB_ROUNDS` sets the rounds
//! (default 20, each one run per mode); `DROVER_BENCH_WEB_STAGGER=1` lets the first client connect
//! alone and the 49 others once it read its first view (to see what 50 simultaneous first requests
//! cost).

#[path = "engine/workloads.rs"]
mod workloads;

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use drover_engine::store::{Durability, Location, Store};
use drover_tests::{drover_bin, wasm};
use serde_json::{Value, json};
use workloads::fan;

/// The fan-out's width, as W2's.
const INSTANCES: usize = 1000;
/// The run limit, as W2's whole-process figure.
const LIMIT: u32 = 64;
/// Event-stream clients following the run.
const CLIENTS: usize = 50;
/// A client gives up when the server sends nothing for this long (a keep-alive comes every 15 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Linux's `USER_HZ`: the unit of utime and stime in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;
/// Run states after which nothing changes.
const ENDED: [&str; 4] = ["succeeded", "failed", "cancelled", "compensated"];

/// How a run is watched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NoServer,
    IdleServer,
    Followed,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::NoServer, Mode::IdleServer, Mode::Followed];

    fn name(self) -> &'static str {
        match self {
            Mode::NoServer => "no server",
            Mode::IdleServer => "idle server",
            Mode::Followed => "50 clients",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mode::NoServer => "no_server",
            Mode::IdleServer => "idle_server",
            Mode::Followed => "clients_50",
        }
    }
}

/// What one client read of the stream.
#[derive(Debug, Default, Clone)]
struct Followed {
    /// `view` events.
    views: u64,
    /// Bytes read from the socket, headers included.
    bytes: u64,
    /// The largest `data` line of a view.
    largest_view: u64,
    /// From the run's id being known to the first view read.
    first_view_ms: f64,
    /// From the run's id being known to a view of the run ended.
    ended_view_ms: f64,
    /// Whether it read a view of the run ended.
    saw_end: bool,
    /// CPU time of the client's thread.
    cpu_ms: f64,
    /// Why it stopped early, if it did.
    error: Option<String>,
}

/// One timed run.
struct Sample {
    mode: Mode,
    wall_ms: f64,
    /// The run's own CPU time (`drover run`, all its threads).
    run_cpu_ms: f64,
    /// Server CPU from the run's spawn to its exit.
    server_cpu_run_ms: f64,
    /// Server CPU from the run's spawn to the last client's end.
    server_cpu_total_ms: f64,
    clients: Vec<Followed>,
    loadavg: String,
}

/// The bench's directory, its home with `noop` installed, the workflow and inventory.
struct Bench {
    dir: PathBuf,
    home: PathBuf,
    workflow: PathBuf,
    inventory: PathBuf,
    journals: std::cell::Cell<u32>,
    /// The first client alone, the others once it read its first view (`DROVER_BENCH_WEB_STAGGER`).
    stagger: bool,
}

/// A `drover serve` on port 0 of the loopback.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// Kept open: the server's stdout.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn cpu_ms(&self) -> f64 {
        process_cpu_ms(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bench {
    fn drover(&self, journal: &Path) -> Command {
        let mut cmd = Command::new(drover_bin());
        cmd.env("DROVER_HOME", &self.home)
            .env_remove("DROVER_DB")
            .env_remove("DROVER_LOG")
            .args(["--db", path_str(journal), "--quiet", "--synchronous", "full"])
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// A fresh journal, its schema created (untimed, in every mode alike).
    fn fresh_journal(&self) -> PathBuf {
        let n = self.journals.get() + 1;
        self.journals.set(n);
        let path = self.dir.join(format!("web-{n}.db"));
        remove_journal(&path);
        drop(Store::open_at(&Location::Sqlite(path.clone()), Durability::Full).expect("create the journal"));
        path
    }

    /// `drover serve` on `journal`, once it printed where it listens.
    fn serve(&self, journal: &Path) -> Server {
        let mut child = self
            .drover(journal)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn drover serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read drover serve's first line");
        let addr = line
            .trim()
            .rsplit_once("http://")
            .map(|(_, url)| url.trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("drover serve's first line names no address: {line:?}"));
        Server { child, addr, _stdout: stdout }
    }

    /// One run in `mode`.
    fn sample(&self, mode: Mode) -> Sample {
        let journal = self.fresh_journal();
        let server = (mode != Mode::NoServer).then(|| self.serve(&journal));
        let run_id = Arc::new((Mutex::new(None::<(String, Instant)>), Condvar::new()));
        // The clients wait, connected to nothing yet, for the run's id; staggered, all but the
        // first wait for its first view too.
        let first_view = Gate::default();
        let clients: Vec<_> = match (&server, mode) {
            (Some(server), Mode::Followed) => (0..CLIENTS)
                .map(|i| {
                    let (addr, run_id, first_view) =
                        (server.addr.clone(), run_id.clone(), first_view.clone());
                    let stagger = self.stagger;
                    std::thread::spawn(move || {
                        let (lock, known) = &*run_id;
                        let guard =
                            known.wait_while(lock.lock().expect("lock"), |id| id.is_none()).expect("lock");
                        let (run, since) = guard.clone().expect("a run id");
                        drop(guard);
                        if stagger && i > 0 {
                            first_view.wait();
                        }
                        follow(&addr, &run, since, (i == 0).then_some(&first_view))
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let reader =
            rusqlite::Connection::open_with_flags(&journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the journal to read");
        let cpu_before = server.as_ref().map_or(0.0, Server::cpu_ms);
        let children_before = children_cpu_ms();
        let started = Instant::now();
        let mut run = self
            .drover(&journal)
            .args(["run", path_str(&self.workflow), "--inventory", path_str(&self.inventory)])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn drover run");
        loop {
            let id: Option<String> = reader.query_row("SELECT id FROM runs LIMIT 1", [], |r| r.get(0)).ok();
            if let Some(id) = id {
                let (lock, known) = &*run_id;
                *lock.lock().expect("lock") = Some((id, Instant::now()));
                known.notify_all();
                break;
            }
            assert!(
                run.try_wait().expect("poll drover run").is_none(),
                "drover run ended before its run existed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = run.wait().expect("wait for drover run");
        let wall_ms = ms(started);
        // Reaped: its CPU time is now in this process's children's.
        let run_cpu_ms = children_cpu_ms() - children_before;
        assert!(status.success(), "drover run failed: {status}");
        let server_cpu_run_ms = server.as_ref().map_or(0.0, |s| s.cpu_ms() - cpu_before);
        let clients: Vec<Followed> = clients.into_iter().map(|c| c.join().expect("client thread")).collect();
        let server_cpu_total_ms = server.as_ref().map_or(0.0, |s| s.cpu_ms() - cpu_before);
        drop(server);
        drop(reader);
        remove_journal(&journal);
        Sample {
            mode,
            wall_ms,
            run_cpu_ms,
            server_cpu_run_ms,
            server_cpu_total_ms,
            clients,
            loadavg: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string(),
        }
    }

    /// A fresh server's first view of a finished run: what the client read (timed from its
    /// request), and the server's CPU time from the request to the client's end.
    fn first_view(&self, journal: &Path, run: &str) -> (Followed, f64) {
        let server = self.serve(journal);
        let before = server.cpu_ms();
        let client = follow(&server.addr, run, Instant::now(), None);
        (client, server.cpu_ms() - before)
    }
}

/// Follows `run`'s stream on `addr` until a view shows it ended (or the stream fails); times
/// from `since`, when the run's id became known. Opens `first_view`, if given, once it read its
/// first view or failed.
fn follow(addr: &str, run: &str, since: Instant, first_view: Option<&Gate>) -> Followed {
    let cpu_before = thread_cpu_ms();
    let mut got = Followed::default();
    if let Err(e) = read_stream(addr, run, since, &mut got, first_view) {
        got.error = Some(e.to_string());
    }
    if let Some(gate) = first_view {
        gate.open();
    }
    got.cpu_ms = thread_cpu_ms() - cpu_before;
    got
}

fn read_stream(
    addr: &str,
    run: &str,
    since: Instant,
    got: &mut Followed,
    first_view: Option<&Gate>,
) -> std::io::Result<()> {
    let mut socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    write!(
        socket,
        "GET /api/runs/{run}/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut input = BufReader::with_capacity(64 * 1024, Counting { inner: socket, bytes: 0 });
    let mut line = String::new();
    input.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("the stream answered {}", line.trim())));
    }
    let mut chunked = false;
    loop {
        line.clear();
        input.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
    if !chunked {
        return Err(std::io::Error::other("the stream is not chunked"));
    }
    let mut events: Vec<u8> = Vec::new();
    loop {
        line.clear();
        input.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|_| std::io::Error::other(format!("not a chunk size: {line:?}")))?;
        if size == 0 {
            return Err(std::io::Error::other("the stream ended before the run did"));
        }
        let start = events.len();
        events.resize(start + size + 2, 0);
        input.read_exact(&mut events[start..])?;
        events.truncate(start + size);
        // Complete events end with a blank line.
        while let Some(end) = events.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = events.drain(..end + 2).collect();
            if let Some(state) = view_state(&event, got) {
                let at = ms(since);
                if got.views == 1 {
                    got.first_view_ms = at;
                    if let Some(gate) = first_view {
                        gate.open();
                    }
                }
                if ENDED.contains(&state.as_str()) {
                    got.ended_view_ms = at;
                    got.saw_end = true;
                    got.bytes = input.get_ref().bytes as u64;
                    return Ok(());
                }
            }
        }
        got.bytes = input.get_ref().bytes as u64;
    }
}

/// If `event` is a `view`, counts it and returns the run's state: the first `"state"` of its
/// data, the RunView's own field (it comes before the HTML fragments, whose quotes are escaped).
fn view_state(event: &[u8], got: &mut Followed) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut is_view = false;
    let mut data = "";
    for line in text.lines() {
        if line == "event: view" {
            is_view = true;
        } else if let Some(d) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            data = d;
        }
    }
    if !is_view {
        return None;
    }
    got.views += 1;
    got.largest_view = got.largest_view.max(data.len() as u64);
    let rest = &data[data.find("\"state\":\"")? + "\"state\":\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A door threads wait at until another opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().expect("lock") = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        drop(self.0.1.wait_while(self.0.0.lock().expect("lock"), |open| !*open).expect("lock"));
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    bytes: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n;
        Ok(n)
    }
}

/// CPU time of a process, all its threads (`/proc/<pid>/stat` utime + stime), in ms.
fn process_cpu_ms(pid: u32) -> f64 {
    stat_ms(&format!("/proc/{pid}/stat"), [14, 15])
}

/// CPU time of this process's reaped children (`/proc/self/stat` cutime + cstime), in ms.
fn children_cpu_ms() -> f64 {
    stat_ms("/proc/self/stat", [16, 17])
}

/// The sum of two clock-tick fields of a `stat` file (numbered from 1, as in proc(5)), in ms.
fn stat_ms(file: &str, fields: [usize; 2]) -> f64 {
    let stat = std::fs::read_to_string(file).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces: the 3rd on.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let values: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.iter().filter_map(|&i| values.get(i - 3)?.parse::<f64>().ok()).sum();
    ticks * 1e3 / TICKS_PER_SECOND
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, nanoseconds on the CPU), in ms.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn remove_journal(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Median, min and max.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Spread { median: 0.0, min: 0.0, max: 0.0 };
    }
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] };
    Spread { median, min: v[0], max: v[v.len() - 1] }
}

impl Spread {
    fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }

    fn text(&self, unit: &str, digits: usize) -> String {
        format!("{:.digits$} {unit} ({:.digits$}–{:.digits$})", self.median, self.min, self.max)
    }
}

fn main() {
    // The first call builds the binary when it is stale: not inside a timed command.
    drover_bin();
    let tmp = tempfile::tempdir().expect("temporary directory");
    let base = std::env::var_os("DROVER_BENCH_DIR").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let dir = base.join("web");
    std::fs::create_dir_all(&dir).expect("bench directory");
    let rounds: usize = std::env::var("DROVER_BENCH_WEB_ROUNDS")
        .ok()
        .map_or(20, |r| r.parse().expect("DROVER_BENCH_WEB_ROUNDS is a number"));
    let home = dir.join("home");
    let bench = Bench {
        workflow: dir.join("fan.toml"),
        inventory: dir.join("empty-inventory.toml"),
        dir: dir.clone(),
        home: home.clone(),
        journals: std::cell::Cell::new(0),
        stagger: std::env::var_os("DROVER_BENCH_WEB_STAGGER").is_some_and(|v| v == "1"),
    };
    std::fs::write(&bench.workflow, fan(INSTANCES, LIMIT)).expect("write the workflow");
    std::fs::write(&bench.inventory, "").expect("write the inventory");
    if !home.join("plugins").exists() {
        let out = Command::new(drover_bin())
            .env("DROVER_HOME", &home)
            .args(["plugin", "install", wasm::NOOP])
            .output()
            .expect("drover plugin install");
        assert!(out.status.success(), "drover plugin install: {}", String::from_utf8_lossy(&out.stderr));
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    println!(
        "web load check: {rounds} rounds of {}, load {load_before}",
        Mode::ALL.map(Mode::name).join(", ")
    );
    // Untimed: compiles the plugin into the cache, warms the page cache and the binary.
    for mode in Mode::ALL {
        bench.sample(mode);
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        for i in 0..Mode::ALL.len() {
            let mode = Mode::ALL[(round + i) % Mode::ALL.len()];
            let sample = bench.sample(mode);
            println!(
                "  round {round:>2} {:<12} {:>7.1} ms  run CPU {:>5.0} ms  server CPU {:>5.0} / {:>5.0} ms  load {}",
                mode.name(),
                sample.wall_ms,
                sample.run_cpu_ms,
                sample.server_cpu_run_ms,
                sample.server_cpu_total_ms,
                sample.loadavg
            );
            samples.push(sample);
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();

    // A fresh server's first view of a finished 1,000-instance run, five times.
    let journal = bench.fresh_journal();
    let out = bench
        .drover(&journal)
        .args(["run", path_str(&bench.workflow), "--inventory", path_str(&bench.inventory)])
        .stdout(Stdio::null())
        .status()
        .expect("drover run");
    assert!(out.success(), "drover run failed");
    let run: String = rusqlite::Connection::open(&journal)
        .expect("open the journal")
        .query_row("SELECT id FROM runs", [], |r| r.get(0))
        .expect("the run");
    let first_views: Vec<(Followed, f64)> = (0..5).map(|_| bench.first_view(&journal, &run)).collect();
    remove_journal(&journal);

    let of = |mode: Mode| samples.iter().filter(move |s| s.mode == mode);
    let walls = Mode::ALL.map(|m| spread(&of(m).map(|s| s.wall_ms).collect::<Vec<_>>()));
    let run_cpu = Mode::ALL.map(|m| spread(&of(m).map(|s| s.run_cpu_ms).collect::<Vec<_>>()));
    let server_run = Mode::ALL.map(|m| spread(&of(m).map(|s| s.server_cpu_run_ms).collect::<Vec<_>>()));
    let server_total = Mode::ALL.map(|m| spread(&of(m).map(|s| s.server_cpu_total_ms).collect::<Vec<_>>()));
    let followed: Vec<&Followed> = of(Mode::Followed).flat_map(|s| &s.clients).collect();
    let clients_cpu =
        spread(&of(Mode::Followed).map(|s| s.clients.iter().map(|c| c.cpu_ms).sum()).collect::<Vec<_>>());
    let per_client = |f: fn(&Followed) -> f64| spread(&followed.iter().map(|c| f(c)).collect::<Vec<_>>());
    let views = per_client(|c| c.views as f64);
    let bytes = per_client(|c| c.bytes as f64);
    let largest = per_client(|c| c.largest_view as f64);
    let first_ms = per_client(|c| c.first_view_ms);
    let ended_ms = per_client(|c| c.ended_view_ms);
    let saw_end = followed.iter().filter(|c| c.saw_end).count();
    let errors: Vec<&str> = followed.iter().filter_map(|c| c.error.as_deref()).collect();
    let fresh_first = spread(&first_views.iter().map(|(c, _)| c.first_view_ms).collect::<Vec<_>>());
    let fresh_cpu = spread(&first_views.iter().map(|(_, cpu)| *cpu).collect::<Vec<_>>());
    let fresh_size = first_views.iter().map(|(c, _)| c.largest_view).max().unwrap_or(0);
    let slowdown = walls[2].median / walls[1].median - 1.0;
    let server_cost = walls[1].median / walls[0].median - 1.0;
    let against_none = walls[2].median / walls[0].median - 1.0;

    println!(
        "\n`drover run` of 1 → 1,000 → 1 noop, run limit 64, {rounds} runs per mode, median (min–max):\n"
    );
    println!(
        "| mode | run wall time | run CPU | server CPU during the run | server CPU to the last client's end |"
    );
    println!("|---|---|---|---|---|");
    for (i, mode) in Mode::ALL.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} |",
            mode.name(),
            walls[i].text("ms", 1),
            run_cpu[i].text("ms", 0),
            server_run[i].text("ms", 0),
            server_total[i].text("ms", 0)
        );
    }
    println!(
        "\nslowdown with 50 clients against the idle server: {:+.1}% (target ≤ 10%: {}); the idle server against \
         none: {:+.1}%; 50 clients against no server: {:+.1}%",
        slowdown * 100.0,
        if slowdown <= 0.10 { "met" } else { "missed" },
        server_cost * 100.0,
        against_none * 100.0
    );
    println!(
        "clients: {saw_end} of {} read a view of the run ended; per client {} views, {} bytes, largest view {} \
         bytes; first view {} after the run's id was known, the ended one {}; the 50 clients' CPU per run {}",
        followed.len(),
        views.text("", 0),
        bytes.text("", 0),
        largest.text("", 0),
        first_ms.text("ms", 1),
        ended_ms.text("ms", 1),
        clients_cpu.text("ms", 1),
    );
    if !errors.is_empty() {
        println!("client errors: {errors:?}");
    }
    println!(
        "a fresh server's first view of the finished run: {} (server CPU meanwhile {}), {fresh_size} bytes",
        fresh_first.text("ms", 1),
        fresh_cpu.text("ms", 0)
    );
    println!(
        "load average before {load_before}, after {load_after}; {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let modes: serde_json::Map<String, Value> = Mode::ALL
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.key().to_string(),
                json!({
                    "wall_ms": walls[i].json(),
                    "run_cpu_ms": run_cpu[i].json(),
                    "server_cpu_during_run_ms": server_run[i].json(),
                    "server_cpu_to_clients_end_ms": server_total[i].json(),
                    "samples_ms": of(*m).map(|s| s.wall_ms).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let result = json!({
        "workload": format!("1 → {INSTANCES} → 1 noop, run limit {LIMIT}, drover run --quiet --synchronous full, whole process"),
        "clients": CLIENTS,
        "staggered": bench.stagger,
        "poll": "250ms (drover serve's default)",
        "rounds": rounds,
        "modes": modes,
        "slowdown_clients_vs_idle_server": slowdown,
        "slowdown_idle_server_vs_none": server_cost,
        "slowdown_clients_vs_none": against_none,
        "target": "≤ 0.10",
        "met": slowdown <= 0.10,
        "per_client": {
            "followed_to_end": saw_end,
            "of": followed.len(),
            "views": views.json(),
            "bytes": bytes.json(),
            "largest_view_bytes": largest.json(),
            "first_view_ms": first_ms.json(),
            "ended_view_ms": ended_ms.json(),
            "errors": errors,
        },
        "clients_cpu_per_run_ms": clients_cpu.json(),
        "fresh_server_first_view": {
            "ms": fresh_first.json(),
            "server_cpu_ms": fresh_cpu.json(),
            "bytes": fresh_size,
        },
        "loadavg": { "before": load_before, "after": load_after,
                     "per_run": samples.iter().map(|s| s.loadavg.clone()).collect::<Vec<_>>() },
    });
    let out = std::env::var_os("DROVER_BENCH_OUT")
        .map_or_else(|| drover_tests::workspace_root().join("target/bench"), PathBuf::from);
    std::fs::create_dir_all(&out).expect("output directory");
    let file = out.join("web.json");
    std::fs::write(&file, serde_json::to_string_pretty(&result).expect("json")).expect("write web.json");
    println!("JSON: {}", file.display());
}
