//! The `command` transport: every program runs locally behind a fixed prefix, a wrapper that
//! carries it to the target (`drover-lab exec --state lab.json DRBTS01 --`, a WinRM or
//! PowerShell remoting bridge, `docker exec NAME`, …). It knows nothing of what the wrapper does.
//!
//! Files go through the same wrapper, so the wrapped target must offer three programs, called
//! exactly like this (a wrapper for a target without them, PowerShell for one, maps them):
//!
//! - `cat PATH` prints the file; read errors go to stderr with a non-zero exit;
//! - `sh -c 'cat > "$1"' sh PATH` writes its standard input to the file;
//! - `rm -f PATH` removes the file, and succeeds when there is none.
//!
//! A file call that exits non-zero fails; its error is not found when the wrapper's stderr says
//! `No such file` (or dash's `Directory nonexistent`), permanent otherwise.

use std::time::Duration;

use async_trait::async_trait;

use super::process::{self, FILE_MESSAGE_LIMIT, FILE_TIMEOUT, Marking, ProcessError, file_error};
use super::{Command, ExecOutput, TargetError, Transport, operand};

/// Runs `prefix… program args…` as a local child process: a wrapper reaching the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTransport {
    prefix: Vec<String>,
}

impl CommandTransport {
    /// A transport running every program behind `prefix`, whose first word is the wrapper program
    /// (looked up in `PATH`). An empty prefix runs programs locally, like `local`.
    pub fn new(prefix: impl IntoIterator<Item = impl Into<String>>) -> Self {
        CommandTransport { prefix: prefix.into_iter().map(Into::into).collect() }
    }

    /// The words put before every program.
    pub fn prefix(&self) -> &[String] {
        &self.prefix
    }

    /// Runs `words` behind the prefix; `program` names what runs, for messages.
    async fn run(
        &self,
        program: &str,
        words: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
        output_limit: usize,
    ) -> Result<ExecOutput, TargetError> {
        let mut argv = self.prefix.iter().map(String::as_str).chain(words.iter().copied());
        let launcher = argv.next().unwrap_or(program);
        let mut child = tokio::process::Command::new(launcher);
        child.args(argv);
        process::run(child, stdin, timeout, output_limit, Marking::Attempt).await.map_err(|e| match e {
            // Starting fails for the wrapper, not for the program it carries.
            ProcessError::Start(_) => e.into_target_error(launcher),
            _ => e.into_target_error(program),
        })
    }

    /// Runs one of the file programs of the contract; a non-zero exit is an error.
    async fn file_call(
        &self,
        what: &str,
        path: &str,
        words: &[&str],
        stdin: Option<&[u8]>,
        output_limit: usize,
    ) -> Result<Vec<u8>, TargetError> {
        let out = self.run(words[0], words, stdin, FILE_TIMEOUT, output_limit).await?;
        if out.exit_code == Some(0) {
            return Ok(out.stdout);
        }
        let detail = match (process::stderr_text(&out), out.exit_code) {
            (text, _) if !text.is_empty() => text,
            (_, Some(code)) => format!("{} exited with {code}", words[0]),
            (_, None) => format!("{} was killed by a signal", words[0]),
        };
        // dash says `Directory nonexistent` where others say `No such file or directory`.
        let missing = detail.contains("No such file") || detail.contains("Directory nonexistent");
        Err(file_error(what, path, &detail, missing))
    }
}

#[async_trait]
impl Transport for CommandTransport {
    async fn exec(&self, command: &Command) -> Result<ExecOutput, TargetError> {
        let words: Vec<&str> = std::iter::once(command.program.as_str())
            .chain(command.args.iter().map(String::as_str))
            .collect();
        self.run(&command.program, &words, command.stdin.as_deref(), command.timeout, command.output_limit)
            .await
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TargetError> {
        // The whole file is kept, as `local` does; the plugin host applies its own limit.
        self.file_call("read", path, &["cat", &operand(path)], None, usize::MAX).await
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), TargetError> {
        let words = ["sh", "-c", r#"cat > "$1""#, "sh", path];
        self.file_call("write", path, &words, Some(contents), FILE_MESSAGE_LIMIT).await.map(drop)
    }

    async fn remove_file(&self, path: &str) -> Result<(), TargetError> {
        self.file_call("remove", path, &["rm", "-f", &operand(path)], None, FILE_MESSAGE_LIMIT)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{TargetErrorKind, test_command as cmd};
    use super::*;

    /// A wrapper that only runs what follows it, as a real one would on its target.
    fn wrapped() -> CommandTransport {
        CommandTransport::new(["sh", "-c", r#"exec "$@""#, "wrapper"])
    }

    #[tokio::test]
    async fn runs_the_program_behind_the_prefix_with_args_and_stdin() {
        let mut c = cmd("sh", &["-c", r#"printf '%s|' "$@"; cat; exit 4"#, "sh", "a b", "it's", ""]);
        c.stdin = Some(b"input".to_vec());
        let out = wrapped().exec(&c).await.expect("exec through the wrapper");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's||input");
        assert_eq!(out.exit_code, Some(4));
        assert!(!out.truncated);
    }

    #[tokio::test]
    async fn the_prefix_really_comes_first() {
        let transport = CommandTransport::new(["echo", "via-wrapper"]);
        let out = transport.exec(&cmd("true", &["x"])).await.expect("exec");
        assert_eq!(out.stdout, b"via-wrapper true x\n");
    }

    #[tokio::test]
    async fn output_limit_and_timeout_apply() {
        let out = wrapped().exec(&cmd("head", &["-c", "100000", "/dev/zero"])).await.expect("exec");
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.truncated);
        let mut c = cmd("sleep", &["5"]);
        c.timeout = Duration::from_millis(100);
        let e = wrapped().exec(&c).await.expect_err("timed out");
        assert_eq!(e.kind, TargetErrorKind::Retryable);
        assert!(e.message.contains("sleep timed out"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_wrapper_is_named() {
        let e = CommandTransport::new(["/no/such/wrapper", "--"])
            .exec(&cmd("true", &[]))
            .await
            .expect_err("no wrapper");
        assert_eq!(e.kind, TargetErrorKind::NotFound);
        assert!(e.message.contains("/no/such/wrapper"), "{e}");
    }

    #[tokio::test]
    async fn files_round_trip_through_the_wrapper() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("a file 'quoted'");
        let path = path.to_str().expect("utf-8 path");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let transport = wrapped();
        transport.write_file(path, &bytes).await.expect("write");
        assert_eq!(std::fs::read(path).expect("written on disk"), bytes);
        assert_eq!(transport.read_file(path).await.expect("read"), bytes);
        transport.write_file(path, b"shorter").await.expect("overwrite");
        assert_eq!(transport.read_file(path).await.expect("read again"), b"shorter");
        transport.remove_file(path).await.expect("remove");
        assert!(!std::path::Path::new(path).exists());
        transport.remove_file(path).await.expect("removing a missing file is fine");
    }

    #[tokio::test]
    async fn a_missing_file_is_not_found_and_other_failures_are_permanent() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let missing = dir.path().join("missing");
        let e = wrapped().read_file(missing.to_str().expect("utf-8")).await.expect_err("missing");
        assert_eq!(e.kind, TargetErrorKind::NotFound, "{e}");
        assert!(e.message.contains("cannot read"), "{e}");
        let e = wrapped().read_file(dir.path().to_str().expect("utf-8")).await.expect_err("a directory");
        assert_eq!(e.kind, TargetErrorKind::Permanent, "{e}");
        let e = wrapped().write_file("/no/such/dir/file", b"x").await.expect_err("no directory");
        assert_eq!(e.kind, TargetErrorKind::NotFound, "{e}");
    }

    #[tokio::test]
    async fn a_path_that_looks_like_an_option_stays_a_path() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let transport = CommandTransport::new([
            "sh",
            "-c",
            r#"cd "$0" && exec "$@""#,
            dir.path().to_str().expect("utf-8"),
        ]);
        transport.write_file("-n", b"dash").await.expect("write");
        assert_eq!(transport.read_file("-n").await.expect("read"), b"dash");
        transport.remove_file("-n").await.expect("remove");
        assert!(!dir.path().join("-n").exists());
    }
}
