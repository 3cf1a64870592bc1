//! Running one local child process for a transport: its standard input fed, its standard output
//! and error read up to a limit, killed when its time is up. `local`, `command` and `ssh` all run
//! programs through [`run`]; this module knows nothing of targets, paths or remote hosts.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{ExecOutput, TargetError};

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

/// Runs `process` (program and arguments already set; its standard streams are set here) with
/// `stdin` as its input, keeping at most `output_limit` bytes of stdout and of stderr. After
/// `timeout` it is killed and reaped.
pub(super) async fn run(
    mut process: tokio::process::Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    output_limit: usize,
) -> Result<ExecOutput, ProcessError> {
    let started = Instant::now();
    let mut child = process
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ProcessError::Start)?;
    let pipe = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (pipe, stdin) {
            // A program that exits without reading its input is not an error.
            let _ = pipe.write_all(bytes).await;
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let ((), out, err, status) = tokio::join!(
            feed,
            read_limited(stdout, output_limit),
            read_limited(stderr, output_limit),
            child.wait()
        );
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(timeout, finished).await else {
        // Kill and reap it now rather than leave that to the runtime.
        let _ = child.kill().await;
        return Err(ProcessError::TimedOut(timeout));
    };
    let status = status.map_err(ProcessError::Wait)?;
    Ok(ExecOutput {
        exit_code: status.code(),
        truncated: out.1 || err.1,
        stdout: out.0,
        stderr: err.0,
        duration: started.elapsed(),
    })
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
