//! `drover worker` processes for the worker tests (`tests/tests/workers.rs` on SQLite,
//! `tests/tests/workers_postgres.rs` on PostgreSQL), the fan-out workflow they drive, and what a
//! test reads of a run through the CLI (`events --ndjson`, the effects file its steps append to):
//! in particular [`assert_driven_once`], the proof that no two drivers overlapped on a run.
//!
//! It reads the journal only through the `drover` binary, so it holds for either backend.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Sandbox, stderr, stdout};

/// A `drover worker` process whose stderr goes to a file; SIGKILLed when dropped.
pub struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts `drover worker --poll 100ms args…` with a 2 s lease and its limit decisions and the
    /// journal's warnings (reconnections) logged.
    pub fn start(sandbox: &Sandbox, name: &str, args: &[&str]) -> Worker {
        let log = sandbox.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the worker's log");
        let child = sandbox
            .drover()
            .env("DROVER_LEASE_TTL", "2s")
            .env("DROVER_LOG", "warn,drover_engine::run::worker=debug")
            .args(["worker", "--poll", "100ms"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn drover worker");
        Worker { child, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test with the worker's log if it has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the worker") {
            panic!("worker {} exited ({status}): {}", self.pid(), self.log());
        }
    }

    /// SIGKILLs it, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        self.assert_alive();
        self.child.kill().expect("kill the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Sends it SIGTERM (a stop an operator asks for) and returns how it exited.
    pub fn terminate(&mut self) -> ExitStatus {
        self.assert_alive();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -s TERM {} failed", self.pid());
        self.child.wait().expect("reap the worker")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done()`, failing with `what` after ten minutes (a stuck test, not a slow one).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(600), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `drover run --detach` of `workflow`: returns the run id it printed.
pub fn detach(sandbox: &Sandbox, workflow: &str, inventory: &str) -> String {
    let out = sandbox.run(&["run", "--detach", workflow, "--inventory", inventory]);
    assert!(out.status.success(), "run --detach failed: {}", stderr(&out));
    let run = stdout(&out).trim().to_string();
    assert!(run.starts_with("run_"), "run --detach printed {run:?}");
    run
}

/// The run's events, from `drover events --ndjson`.
pub fn events(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    let out = sandbox.run(&["events", run, "--ndjson"]);
    assert!(out.status.success(), "events failed: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event")).collect()
}

/// The pids of the `driving` events among `journal`, in order.
pub fn driving_pids(journal: &[Value]) -> Vec<u32> {
    journal
        .iter()
        .filter(|e| e["kind"] == "driving")
        .map(|e| e["data"]["pid"].as_u64().expect("a pid") as u32)
        .collect()
}

/// The pids of the run's `driving` events, in order.
pub fn drivers(sandbox: &Sandbox, run: &str) -> Vec<u32> {
    driving_pids(&events(sandbox, run))
}

/// The effects file's lines as step key → attempt numbers.
pub fn effects(path: &Path) -> BTreeMap<String, Vec<u32>> {
    let mut lines: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let (key, attempt) = line.rsplit_once(' ').expect("key attempt");
        lines.entry(key.to_string()).or_default().push(attempt.parse().expect("attempt"));
    }
    lines
}

/// A step of the fixture's `effect` behaviour fanned out over `group`.
pub fn effect_step(id: &str, group: &str, needs: Option<&str>, effects: &Path) -> String {
    let needs = needs.map(|n| format!("needs = [\"{n}\"]\n")).unwrap_or_default();
    format!(
        "[[steps]]\nid = \"{id}\"\nplugin = \"fixture-plugin-for-tests\"\nfor-each = \"{group}\"\n{needs}\
         grants = {{ programs = [\"sh\"] }}\nwith = {{ behave = \"effect\", file = \"{}\" }}\n\n",
        effects.display()
    )
}

/// `servers` local servers `s0000`… in a group `fleet`, and `here` in `one`.
pub fn fleet_inventory(servers: usize) -> String {
    let mut inv = String::new();
    let fleet: Vec<String> = (0..servers).map(|i| format!("s{i:04}")).collect();
    for s in fleet.iter().chain(std::iter::once(&"here".to_string())) {
        let _ = writeln!(inv, "[servers.{s}]\ntransport = \"local\"\n");
    }
    let list = fleet.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(inv, "[groups]\nfleet = [{list}]\none = [\"here\"]");
    inv
}

/// The fan-out workflow `fan`: `first` on `here`, then `fan` over the fleet (16 at once), then
/// `last` on `here`; every instance appends "<step key> <attempt>" to `effects`. With
/// [`fleet_inventory`]`(n)` it has n + 2 instances.
pub fn fan_workflow(effects: &Path) -> String {
    format!(
        "name = \"fan\"\nversion = \"1.0.0\"\n\n[limits]\nconcurrency = 16\n\n{}{}{}",
        effect_step("first", "one", None, effects),
        effect_step("fan", "fleet", Some("first"), effects),
        effect_step("last", "one", Some("fan"), effects)
    )
}

/// What [`assert_driven_once`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeats {
    /// Attempts the journal records as interrupted (their driver stopped during them).
    pub interrupted: usize,
    /// Effects written a second time, each by an interrupted attempt.
    pub repeated: usize,
}

/// Asserts, from a finished run's `journal` (`events --ndjson`) and the `effects` its steps
/// wrote, that it was driven by one process at a time, with `instances` step instances:
/// - every attempt was started once (two drivers at once would both start an instance's next
///   attempt under the same number);
/// - every instance succeeded exactly once, and none started an attempt after that;
/// - every effect comes from an attempt the journal started (no plugin ran without its intent
///   committed under the lease), each attempt's effect is there at most once, the succeeded
///   attempt's exactly once, and an effect of any other attempt only where the journal says that
///   attempt was interrupted.
pub fn assert_driven_once(
    journal: &[Value],
    effects: &BTreeMap<String, Vec<u32>>,
    instances: usize,
) -> Repeats {
    let of_kind = |kind: &str| -> Vec<(String, u32)> {
        journal
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                let key = e["step_key"].as_str().expect("an attempt's event names its step").to_string();
                (key, e["data"]["attempt"].as_u64().expect("an attempt number") as u32)
            })
            .collect()
    };
    let started_list = of_kind("attempt-started");
    let started: BTreeSet<(String, u32)> = started_list.iter().cloned().collect();
    assert_eq!(started.len(), started_list.len(), "an attempt was started twice: two drivers at once");
    let succeeded_list = of_kind("attempt-succeeded");
    let succeeded: BTreeMap<String, u32> = succeeded_list.iter().cloned().collect();
    assert_eq!(succeeded_list.len(), instances, "one succeeded attempt per instance");
    assert_eq!(succeeded.len(), instances, "every instance succeeded once");
    let interrupted: BTreeSet<(String, u32)> = of_kind("attempt-interrupted").into_iter().collect();
    for (key, attempt) in &succeeded {
        let later: Vec<_> = started.iter().filter(|(k, a)| k == key && a > attempt).collect();
        assert!(later.is_empty(), "{key} succeeded in attempt {attempt}, then started {later:?}");
    }

    let mut repeated = 0;
    for (key, lines) in effects {
        let ran: BTreeSet<u32> = lines.iter().copied().collect();
        assert_eq!(ran.len(), lines.len(), "{key}: an attempt's effect was written twice: {lines:?}");
        for attempt in &ran {
            assert!(
                started.contains(&(key.clone(), *attempt)),
                "{key}: attempt {attempt} wrote its effect, but the journal never started it"
            );
        }
    }
    for (key, attempt) in &succeeded {
        let lines = effects.get(key).cloned().unwrap_or_default();
        assert!(
            lines.contains(attempt),
            "{key} succeeded in attempt {attempt} without its effect: {lines:?}"
        );
        for earlier in lines.iter().filter(|&&a| a != *attempt) {
            assert!(
                interrupted.contains(&(key.clone(), *earlier)),
                "{key} ran in attempt {earlier}, which was not interrupted (succeeded in {attempt})"
            );
            repeated += 1;
        }
    }
    Repeats { interrupted: interrupted.len(), repeated }
}
