//! The `local` transport: programs and files on the machine Drover runs on.

use async_trait::async_trait;

use super::{Command, ExecOutput, TargetError, Transport, process};

/// Runs programs as child processes of Drover and uses the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalTransport;

#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
        let mut process = tokio::process::Command::new(&command.program);
        process.args(&command.args);
        process::run(process, command.stdin.as_deref(), command.timeout, command.output_limit)
            .await
            .map_err(|e| e.into_target_error(&command.program))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_command as cmd;
    use super::*;

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
