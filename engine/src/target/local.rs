//! The `local` transport: programs and files on the machine Drover runs on.

use async_trait::async_trait;

use super::process::{self, Marking};
use super::{Command, ExecOutput, TargetError, Transport};

/// Runs programs as child processes of Drover and uses the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalTransport;

#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
        let mut process = tokio::process::Command::new(&command.program);
        process.args(&command.args);
        process::run(
            process,
            command.stdin.as_deref(),
            command.timeout,
            command.output_limit,
            Marking::Attempt,
        )
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

    /// Whether process `pid` is gone, or a zombie nobody reaped yet.
    fn dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    /// A shell that starts a background `sleep`, writes its pid to a file, and waits for it.
    fn shell_with_a_child(pid_file: &std::path::Path) -> Command {
        let script = r#"sleep 30 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; wait"#;
        cmd("sh", &["-c", script, pid_file.to_str().unwrap()])
    }

    async fn assert_dies(pid_file: &std::path::Path) {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let pid = pid.trim();
        let started = std::time::Instant::now();
        while !dead(pid) {
            assert!(started.elapsed() < Duration::from_secs(10), "the shell's child {pid} lives on");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut c = shell_with_a_child(&pid_file);
        c.timeout = Duration::from_millis(300);
        let e = LocalTransport.exec(&c).await.unwrap_err();
        assert!(e.message.contains("timed out"), "{e}");
        assert_dies(&pid_file).await;
    }

    #[tokio::test]
    async fn a_dropped_call_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let c = shell_with_a_child(&pid_file);
        let mut call = LocalTransport.exec(&c);
        // Poll the call until the shell has started its child, then drop it.
        let started = std::time::Instant::now();
        while !pid_file.exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "the shell never started its child");
            let _ = tokio::time::timeout(Duration::from_millis(10), &mut call).await;
        }
        drop(call);
        assert_dies(&pid_file).await;
    }

    #[tokio::test]
    async fn children_get_the_attempt_marker_within_a_call_only() {
        let c = cmd("sh", &["-c", "printf %s \"${DROVER_ATTEMPT-unset}\""]);
        let call = LocalTransport.exec(&c);
        let out = super::super::orphans::in_attempt("run_1/step#2".into(), call).await.unwrap();
        assert_eq!(out.stdout, b"run_1/step#2");
        let out = LocalTransport.exec(&c).await.unwrap();
        assert_eq!(out.stdout, b"unset");
    }

    #[tokio::test]
    async fn children_run_in_a_process_group_of_their_own() {
        let out =
            LocalTransport.exec(&cmd("sh", &["-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"])).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 2, "{text}");
        assert_eq!(words[0], words[1], "the shell leads its own group: {text}");
    }
}
