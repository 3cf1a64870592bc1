//! Running one local child process for a transport: its standard input fed, its standard output
//! and error read up to a limit, killed when its time is up. `local`, `command` and `ssh` all run
//! programs through [`run`]; this module knows nothing of targets, paths or remote hosts.
//!
//! It also owns what every child starts with, so no transport can forget it:
//!
//! - a cleared environment with only [`INHERITED_ENV`] kept from Drover's (never `DROVER_*`, so
//!   never a `DROVER_SECRET_*` value), plus, when asked, the marker of the attempt the call
//!   belongs to (`orphans.rs`) and the variables the transport names itself ([`run_with_env`]:
//!   ssh's askpass settings, never a secret value);
//! - a process group of its own, killed as a whole (`kill(-pgid, SIGKILL)`) at the timeout or
//!   when the call is dropped, so a shell's children go with it;
//! - `PR_SET_PDEATHSIG(SIGKILL)`: the child is killed when Drover dies, even by SIGKILL.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{ExecOutput, TargetError, orphans};

/// The environment variables a child keeps from Drover's own; everything else is left out, and
/// `DROVER_*` above all (secrets are read from `DROVER_SECRET_*`; a program on a target gets a
/// value only through a reference the plugin host fills in). A name ending in `*` keeps every
/// variable with that prefix. These are what programs and the OpenSSH client need to run as this
/// user: where programs are (`PATH`), who and where the user is (`HOME`, `USER`, `LOGNAME`),
/// language and time zone (`LANG`, `LC_*`, `TZ`), the terminal type (`TERM`), the temporary
/// directory (`TMPDIR`) and the ssh agent (`SSH_AUTH_SOCK`: keys held by an agent; a bridge of the
/// `command` transport may use ssh too, and any process of this user can reach the agent anyway).
pub(super) const INHERITED_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TERM", "TMPDIR", "SSH_AUTH_SOCK"];

/// Whether the variable `name` is kept (see [`INHERITED_ENV`]).
fn inherited(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    INHERITED_ENV.iter().any(|&kept| match kept.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == kept,
    })
}

/// Whether a child carries the marker of the attempt it runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marking {
    /// It does, when there is one: its leftovers can be found after a crash.
    Attempt,
    /// It does not: what it leaves running is not the attempt's (ssh's master connection).
    None,
}

/// How long a file operation of a process-based transport (`command`, `ssh`) may take: the
/// [`super::Transport`] file calls carry no timeout of their own.
pub(super) const FILE_TIMEOUT: Duration = Duration::from_secs(300);

/// How much of the standard error (and of a standard output nobody reads) of a file operation is
/// kept for its error message.
pub(super) const FILE_MESSAGE_LIMIT: usize = 64 * 1024;

/// Why [`run`] has no output.
#[derive(Debug)]
pub(super) enum ProcessError {
    /// The program could not be started.
    Start(std::io::Error),
    /// It ran past its timeout and was killed.
    TimedOut(Duration),
    /// Waiting for it failed.
    Wait(std::io::Error),
}

impl ProcessError {
    /// The usual reading, naming `program`: a program that does not exist is not found, one that
    /// cannot be started is permanent, a timeout is retryable.
    pub(super) fn into_target_error(self, program: &str) -> TargetError {
        match self {
            ProcessError::Start(e) if e.kind() == std::io::ErrorKind::NotFound => {
                TargetError::not_found(format!("program {program} not found"))
            }
            ProcessError::Start(e) => TargetError::permanent(format!("cannot start {program}: {e}")),
            ProcessError::TimedOut(timeout) => TargetError::retryable(format!(
                "{program} timed out after {:.1}s and was killed",
                timeout.as_secs_f64()
            )),
            ProcessError::Wait(e) => TargetError::permanent(format!("waiting for {program}: {e}")),
        }
    }
}

/// Runs `process` (program and arguments already set; its environment, process group and standard
/// streams are set here) with `stdin` as its input, keeping at most `output_limit` bytes of
/// stdout and of stderr. After `timeout` its process group is killed and it is reaped.
pub(super) async fn run(
    process: tokio::process::Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    output_limit: usize,
    marking: Marking,
) -> Result<ExecOutput, ProcessError> {
    run_with_env(process, &[], stdin, timeout, output_limit, marking).await
}

/// [`run`], with the variables `env` added to the child's cleared environment. They are the
/// transport's own settings (such as `SSH_ASKPASS`), named by it: never a `DROVER_*` variable,
/// and never a secret value (a child's environment is readable in `/proc` by its user).
pub(super) async fn run_with_env(
    mut process: tokio::process::Command,
    env: &[(&str, &OsStr)],
    stdin: Option<&[u8]>,
    timeout: Duration,
    output_limit: usize,
    marking: Marking,
) -> Result<ExecOutput, ProcessError> {
    let started = Instant::now();
    prepare(&mut process, marking);
    for (name, value) in env {
        debug_assert!(!name.starts_with("DROVER"), "{name}: a transport never sets DROVER_*");
        process.env(name, value);
    }
    let child = process
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ProcessError::Start)?;
    let mut group = Group::of(child);
    let pipe = group.child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (pipe, stdin) {
            // A program that exits without reading its input is not an error.
            let _ = pipe.write_all(bytes).await;
        }
    };
    let stdout = group.child.stdout.take();
    let stderr = group.child.stderr.take();
    let finished = async {
        let ((), out, err, status) = tokio::join!(
            feed,
            read_limited(stdout, output_limit),
            read_limited(stderr, output_limit),
            group.child.wait()
        );
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(timeout, finished).await else {
        // Kill the group and reap the leader now rather than leave that to the runtime.
        group.kill().await;
        return Err(ProcessError::TimedOut(timeout));
    };
    // It ended on its own: what it left running in its group is its business.
    group.finished = true;
    let status = status.map_err(ProcessError::Wait)?;
    Ok(ExecOutput {
        exit_code: status.code(),
        truncated: out.1 || err.1,
        stdout: out.0,
        stderr: err.0,
        duration: started.elapsed(),
    })
}

/// Sets what every child starts with: the environment, its own process group, death with Drover.
fn prepare(process: &mut tokio::process::Command, marking: Marking) {
    process.env_clear();
    for (name, value) in std::env::vars_os() {
        if inherited(&name) {
            process.env(name, value);
        }
    }
    if marking == Marking::Attempt
        && let Some(marker) = orphans::current()
    {
        process.env(orphans::ATTEMPT_VAR, marker);
    }
    process.process_group(0);
    // PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. The
    // `drover` binary polls every plugin call, and so spawns every child, on the thread that runs
    // `Runtime::block_on` in main.rs (the driver polls its attempts itself, without spawned
    // tasks), which lives as long as the process; a worker thread of a multi-thread runtime lives
    // as long as its runtime. A thread of tokio's blocking pool, which tokio retires once it
    // idles, must not spawn target commands.
    let parent = std::process::id();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec; it only makes two
    // async-signal-safe system calls and allocates nothing.
    unsafe {
        process.pre_exec(move || die_with(parent));
    }
}

/// In the forked child: be killed when process `parent` dies.
fn die_with(parent: u32) -> std::io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid touch no memory of ours.
    let (set, ppid) = unsafe {
        let set = libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        (set, libc::getppid())
    };
    if set == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // Drover died between fork and prctl: the child was already handed to another parent and the
    // signal will never come. Fail the exec (without allocating); nobody is left to care.
    if u32::try_from(ppid).ok() != Some(parent) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// A started child, leader of its own process group. Dropped before it finished (the call was
/// dropped: its driver lost the lease, the run stopped), it kills the whole group; tokio's
/// `kill_on_drop` then reaps the leader.
struct Group {
    child: tokio::process::Child,
    pgid: Option<libc::pid_t>,
    finished: bool,
}

impl Group {
    fn of(child: tokio::process::Child) -> Self {
        let pgid = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
        Group { child, pgid, finished: false }
    }

    /// Kills every process of the group. The group's id cannot name another group while its
    /// leader is unreaped or any member lives; it could only once the group is empty, where a
    /// new process would have to be given the same number in between.
    fn kill_group(&self) {
        if let Some(pgid) = self.pgid {
            #[allow(unsafe_code)]
            // SAFETY: kill has no memory-safety preconditions; an empty group is ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// Kills the group and reaps the leader.
    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.kill().await;
        self.finished = true;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.finished {
            self.kill_group();
        }
    }
}

/// Reads a pipe to its end, keeping at most `limit` bytes; returns them and whether any were
/// dropped. It keeps draining past the limit so the program never blocks on a full pipe.
async fn read_limited(pipe: Option<impl AsyncRead + Unpin>, limit: usize) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else { return (Vec::new(), false) };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

/// The text of a failed file operation's standard error, trimmed, for an error message.
pub(super) fn stderr_text(output: &ExecOutput) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// The error of a file operation that ran and failed: not found when `missing`, else permanent.
pub(super) fn file_error(what: &str, path: &str, detail: &str, missing: bool) -> TargetError {
    let message = format!("cannot {what} {path}: {detail}");
    if missing { TargetError::not_found(message) } else { TargetError::permanent(message) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_keeps_its_names_and_prefixes_only() {
        for kept in ["PATH", "HOME", "LANG", "LC_ALL", "LC_TIME", "SSH_AUTH_SOCK"] {
            assert!(inherited(OsStr::new(kept)), "{kept}");
        }
        for dropped in [
            "DROVER_SECRET_X",
            "DROVER_ATTEMPT",
            "DROVER_HOME",
            "PATHX",
            "LD_PRELOAD",
            "LC",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(!inherited(OsStr::new(dropped)), "{dropped}");
        }
        assert!(INHERITED_ENV.iter().all(|name| !name.starts_with("DROVER")), "never DROVER_*");
    }
}
