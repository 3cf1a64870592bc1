//! Kill points for the crash tests, chosen from the journal's progress rather than from wall time,
//! so a test means the same on a busy machine as on an idle one: a process is killed once it has
//! moved the run on by one or two units of progress of its own (by default, step instances
//! succeeded), then within a short random delay, which lands kills inside the plugin calls, joins
//! and commits still in flight. A fixed delay instead kills a slow process before it ever drives.
//!
//! The points come from a seeded generator; [`seed`] prints the seed and how to replay it.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// xorshift64*: enough for kill points, and replayable from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The seed of a crash test: `DROVER_TORTURE_SEED`, else drawn from the clock. Printed, with how
/// to replay it.
pub fn seed() -> u64 {
    let seed = std::env::var("DROVER_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    eprintln!("torture seed {seed} (DROVER_TORTURE_SEED={seed} replays it)");
    seed
}

/// How many step instances of the journal `db` have succeeded: the progress kill points count
/// by default. Not attempts ended: after a kill, a process's first attempts are often checks of
/// the killed one's interrupted attempts, or retries of joins the lab still finishes for it, and a
/// process killed after those never moves the run on.
pub fn instances_succeeded(db: &Path) -> i64 {
    count(db, "SELECT count(*) FROM steps WHERE state = 'succeeded'")
}

/// How many events of the journal `db` match `condition` (an SQL expression over the `events`
/// table).
pub fn events(db: &Path, condition: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM events WHERE {condition}"))
}

/// The count `sql` selects from the journal `db` (an SQLite file, or a PostgreSQL URL, read
/// with psql); 0 while the journal does not exist yet.
fn count(db: &Path, sql: &str) -> i64 {
    let url = db.to_string_lossy();
    if url.starts_with("postgres://") {
        return pg_count(&url, sql);
    }
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

/// How long a process may go without progress before it is taken for stuck and killed anyway
/// (the test's own limits then tell whether the run is stuck).
const STUCK: Duration = Duration::from_secs(120);

/// Where to kill a process: once its progress reached `steps` units more than where it started,
/// `delay` later.
#[derive(Debug, Clone, Copy)]
pub struct KillPoint {
    /// Units of progress the process makes first: 1 or 2.
    pub steps: i64,
    /// Then this long.
    pub delay: Duration,
}

impl KillPoint {
    /// One or two units of progress, then a delay below `max_delay`.
    pub fn draw(rng: &mut Rng, max_delay: Duration) -> KillPoint {
        let steps = 1 + rng.below(2) as i64;
        let delay = Duration::from_millis(rng.below(max_delay.as_millis().max(1) as u64));
        KillPoint { steps, delay }
    }

    /// Waits until `progress()` reached `from + steps` (or `child` ended), then `delay`, then
    /// SIGKILLs `child` if it still runs. Returns whether the kill landed on a live process; the
    /// child is left for the caller to reap.
    pub fn kill(&self, child: &mut Child, from: i64, progress: impl Fn() -> i64) -> bool {
        let waiting = Instant::now();
        while progress() < from + self.steps && waiting.elapsed() < STUCK {
            if child.try_wait().expect("poll drover").is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(self.delay);
        if child.try_wait().expect("poll drover").is_some() {
            return false;
        }
        // SIGKILL: no chance to clean up, exactly like a crash.
        child.kill().expect("kill drover");
        true
    }
}

/// The live processes whose environment holds `DROVER_ATTEMPT=<prefix>…` (the engine marks every
/// target command with its attempt, and what it starts inherits the marker), with their command
/// lines.
pub fn marked_processes(prefix: &str) -> Vec<(u32, String)> {
    let wanted = format!("DROVER_ATTEMPT={prefix}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if environ.split(|&b| b == 0).any(|e| e.starts_with(wanted.as_bytes())) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            found.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// Whether process `pid` is gone (or a zombie: it ran its last instruction).
pub fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S …`: the state follows the last `)`.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// After a driver was killed: SIGKILLs what its target commands left running (every live process
/// marked with an attempt of run `run`), as a crash of the whole machine would, and waits until
/// they are gone, so the lab is not changed behind the next driver's or the operator's back.
/// Returns how many there were.
pub fn kill_leftovers(run: &str) -> usize {
    let left = marked_processes(&format!("{run}/"));
    for (pid, _) in &left {
        // One already gone by now makes `kill` fail: nothing to do then.
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let waiting = Instant::now();
    while !left.iter().all(|(pid, _)| dead(*pid)) {
        assert!(waiting.elapsed() < STUCK, "leftover processes survive SIGKILL: {left:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    left.len()
}

/// One connection per journal URL: progress is polled every few milliseconds. A static, never
/// dropped: the client cannot be dropped once the thread's runtime context is gone.
static CLIENTS: std::sync::Mutex<Option<std::collections::HashMap<String, postgres::Client>>> =
    std::sync::Mutex::new(None);

/// [`count`] on a PostgreSQL journal; 0 while its tables do not exist yet (SQLSTATE 42P01).
fn pg_count(url: &str, sql: &str) -> i64 {
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    let clients = clients.get_or_insert_with(Default::default);
    if !clients.contains_key(url) {
        let client = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the journal {url}: {e}"));
        clients.insert(url.to_string(), client);
    }
    let client = clients.get_mut(url).expect("just inserted");
    match client.query_one(sql, &[]) {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => panic!("cannot count ({sql}) in {url}: {e}"),
    }
}
