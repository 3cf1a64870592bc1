//! The processes an attempt leaves behind. Every child that the `local` and `command` transports
//! start during a plugin call carries `DROVER_ATTEMPT=<run id>/<step key>#<attempt>` in its
//! environment ([`ATTEMPT_VAR`]), and its descendants inherit it. A driver that dies takes its
//! own children with it (`process.rs`), but not their children: a command bridge that runs the
//! real program as a child, instead of exec'ing it, leaves that program running. Before the
//! `check` of a reversible step judges an interrupted attempt, the driver waits for what that
//! attempt left running ([`settle`]), so the check cannot race it.
//!
//! The call's marker reaches the transports as a task-local value ([`in_attempt`]), set around a
//! plugin call; this module never decides what a step or an attempt is.
//!
//! Finding leftovers scans `/proc/*/environ`, which bounds what is found: processes of this user
//! only (another user's environment cannot be read, unless Drover runs as root), in this PID
//! namespace only (`/proc` shows no other), and only while their environment still holds the
//! marker (a program started with a cleared environment, or a daemon started through a service
//! manager, is not found). Programs on remote hosts are out of reach, and the `ssh` transport's
//! children are not marked at all: the master connection they start outlives every call by
//! design. Linux only.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::future::Future;
use std::time::{Duration, Instant};

/// The environment variable naming the attempt a target command belongs to.
pub const ATTEMPT_VAR: &str = "DROVER_ATTEMPT";

/// How often [`settle`] looks again.
const POLL: Duration = Duration::from_millis(100);

tokio::task_local! {
    /// The marker of the attempt whose plugin call is being polled.
    static ATTEMPT: String;
}

/// The marker of attempt `attempt` of `step_key` in `run_id`: the value of [`ATTEMPT_VAR`].
pub fn marker(run_id: &str, step_key: &str, attempt: u32) -> String {
    format!("{run_id}/{step_key}#{attempt}")
}

/// Runs `call` (a plugin call) so that every child a transport starts within it is marked with
/// `marker`.
pub async fn in_attempt<F: Future>(marker: String, call: F) -> F::Output {
    ATTEMPT.scope(marker, call).await
}

/// The marker of the call being polled, if any.
pub(super) fn current() -> Option<String> {
    ATTEMPT.try_with(Clone::clone).ok()
}

/// What [`settle`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Processes that carried the marker while it waited.
    pub found: usize,
    /// Of those, still running when its time was up, and killed.
    pub killed: usize,
    /// How long it waited.
    pub waited: Duration,
}

/// Waits until no process carries `marker`, for at most `limit`; then kills (SIGKILL) those that
/// still do. Returns at once when there are none.
pub async fn settle(marker: &str, limit: Duration) -> Leftovers {
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    loop {
        let left = find(marker);
        seen.extend(left.iter().copied());
        let waited = started.elapsed();
        if left.is_empty() {
            return Leftovers { found: seen.len(), killed: 0, waited };
        }
        if waited >= limit {
            for &pid in &left {
                kill(pid);
            }
            return Leftovers { found: seen.len(), killed: left.len(), waited };
        }
        tokio::time::sleep(POLL.min(limit - waited)).await;
    }
}

/// The live processes (other than this one) whose environment holds `ATTEMPT_VAR=marker`.
pub fn find(marker: &str) -> Vec<u32> {
    let mut wanted = OsString::from(format!("{ATTEMPT_VAR}="));
    wanted.push(marker);
    let wanted = wanted.into_encoded_bytes();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            // A process that exited, or is another user's, cannot be read: it is not ours to wait for.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|&b| b == 0).any(|entry| entry == wanted.as_slice()))
        })
        .collect();
    found.sort_unstable();
    found
}

fn kill(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    #[allow(unsafe_code)]
    // SAFETY: kill has no memory-safety preconditions; a process that is already gone is ESRCH.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked_sleeper(marker: &str, seconds: &str) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg(seconds)
            .env(ATTEMPT_VAR, marker)
            .spawn()
            .expect("sleep starts")
    }

    fn unique(name: &str) -> String {
        marker(&format!("run_{}", ulid::Ulid::generate()), name, 1)
    }

    #[test]
    fn the_marker_names_run_step_and_attempt() {
        assert_eq!(marker("run_01", "join[DRBTS02]", 3), "run_01/join[DRBTS02]#3");
    }

    #[test]
    fn finds_exactly_the_processes_with_the_marker() {
        let marker = unique("a");
        let mut mine = marked_sleeper(&marker, "30");
        let mut other = marked_sleeper(&format!("{marker}0"), "30");
        assert_eq!(find(&marker), vec![mine.id()]);
        for child in [&mut mine, &mut other] {
            child.kill().expect("kill");
            child.wait().expect("reaped");
        }
        assert_eq!(find(&marker), Vec::<u32>::new());
    }

    #[tokio::test]
    async fn settle_waits_for_leftovers_to_end() {
        let marker = unique("b");
        let mut child = marked_sleeper(&marker, "0.3");
        let reaper = std::thread::spawn(move || child.wait());
        let leftovers = settle(&marker, Duration::from_secs(20)).await;
        assert_eq!(leftovers.found, 1);
        assert_eq!(leftovers.killed, 0);
        assert!(reaper.join().expect("joined").expect("waited").success());
    }

    #[tokio::test]
    async fn settle_kills_what_outlives_the_limit() {
        let marker = unique("c");
        let mut child = marked_sleeper(&marker, "30");
        let reaper = std::thread::spawn(move || child.wait());
        let leftovers = settle(&marker, Duration::from_millis(200)).await;
        assert_eq!((leftovers.found, leftovers.killed), (1, 1));
        let status = reaper.join().expect("joined").expect("waited");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let again = settle(&marker, Duration::from_secs(1)).await;
        assert_eq!((again.found, again.killed), (0, 0));
    }

    #[tokio::test]
    async fn in_attempt_sets_the_marker_for_the_call_only() {
        assert_eq!(current(), None);
        let seen = in_attempt("run_x/s#1".into(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("run_x/s#1"));
        assert_eq!(current(), None);
    }
}
