//! The `local` transport: programs and files on the machine Drover runs on.

use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Command, ExecOutput, TargetError, Transport};

/// Runs programs as child processes of Drover and uses the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalTransport;

#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&command.program)
            .args(&command.args)
            .stdin(if command.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    TargetError::not_found(format!("program {} not found", command.program))
                }
                _ => TargetError::permanent(format!("cannot start {}: {e}", command.program)),
            })?;
        let stdin = child.stdin.take();
        let input = command.stdin.clone();
        let feed = async move {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // A program that exits without reading its input is not an error.
                let _ = pipe.write_all(&bytes).await;
            }
        };
        let limit = command.output_limit;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async {
            let ((), out, err, status) =
                tokio::join!(feed, read_limited(stdout, limit), read_limited(stderr, limit), child.wait());
            (out, err, status)
        };
        let Ok((out, err, status)) = tokio::time::timeout(command.timeout, run).await else {
            return Err(TargetError::retryable(format!(
                "{} timed out after {:.1}s and was killed",
                command.program,
                command.timeout.as_secs_f64()
            )));
        };
        let status =
            status.map_err(|e| TargetError::permanent(format!("waiting for {}: {e}", command.program)))?;
        Ok(ExecOutput {
            exit_code: status.code(),
            truncated: out.1 || err.1,
            stdout: out.0,
            stderr: err.0,
            duration: started.elapsed(),
        })
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TargetError> {
        tokio::fs::read(path).await.map_err(|e| io_error("read", path, e))
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), TargetError> {
        tokio::fs::write(path, contents).await.map_err(|e| io_error("write", path, e))
    }

    async fn remove_file(&self, path: &str) -> Result<(), TargetError> {
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error("remove", path, e)),
            _ => Ok(()),
        }
    }
}

fn io_error(what: &str, path: &str, e: std::io::Error) -> TargetError {
    let message = format!("cannot {what} {path}: {e}");
    match e.kind() {
        std::io::ErrorKind::NotFound => TargetError::not_found(message),
        _ => TargetError::permanent(message),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cmd(program: &str, args: &[&str]) -> Command {
        Command {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            timeout: Duration::from_secs(10),
            output_limit: 1024,
        }
    }

    #[tokio::test]
    async fn runs_a_program_with_stdin_and_exit_code() {
        let mut c = cmd("sh", &["-c", "cat; echo oops >&2; exit 3"]);
        c.stdin = Some(b"hello".to_vec());
        let out = LocalTransport.exec(&c).await.unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"oops\n");
        assert!(!out.truncated);
    }

    #[tokio::test]
    async fn output_over_the_limit_is_truncated_not_blocking() {
        let c = cmd("sh", &["-c", "head -c 200000 /dev/zero"]);
        let out = LocalTransport.exec(&c).await.unwrap();
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.truncated);
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn timeout_is_retryable_and_missing_program_is_not_found() {
        let mut c = cmd("sleep", &["5"]);
        c.timeout = Duration::from_millis(100);
        let e = LocalTransport.exec(&c).await.unwrap_err();
        assert_eq!(e.kind, super::super::TargetErrorKind::Retryable);
        assert!(e.message.contains("timed out"), "{e}");
        let e = LocalTransport.exec(&cmd("/no/such/program", &[])).await.unwrap_err();
        assert_eq!(e.kind, super::super::TargetErrorKind::NotFound);
    }
}
