//! [`Ctx`]: what a plugin call sees of the host. Every host call goes through [`HostApi`], so
//! the same plugin code runs inside the wasm sandbox and against [`crate::testing::FakeHost`].

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::types::{
    Context, Evidence, ExecOutput, ExecRequest, HostError, HostErrorKind, Level, Mode, StepError,
};

/// The host services a plugin can call. Implemented over the WIT imports inside the sandbox and
/// by [`crate::testing::FakeHost`] in native tests.
pub trait HostApi {
    /// Writes a line to the step log.
    fn log(&self, level: Level, message: &str);
    /// Tells the operator the step is alive.
    fn heartbeat(&self, progress: Option<f32>, message: &str);
    /// Reveals a granted secret.
    fn secret(&self, name: &str) -> Result<String, HostError>;
    /// Reads a checkpoint value of this step instance.
    fn state_get(&self, key: &str) -> Option<String>;
    /// Writes a checkpoint value of this step instance.
    fn state_set(&self, key: &str, value: &str) -> Result<(), HostError>;
    /// Runs a program on a target.
    fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, HostError>;
    /// Reads a file from a target.
    fn read_file(&self, target: &str, path: &str) -> Result<Vec<u8>, HostError>;
    /// Writes a file on a target.
    fn write_file(&self, target: &str, path: &str, contents: &[u8]) -> Result<(), HostError>;
    /// Removes a file on a target; a missing file is not an error.
    fn remove_file(&self, target: &str, path: &str) -> Result<(), HostError>;
}

/// The text of a reference to the secret `name`, filled with the value as it is.
///
/// Put it in stdin or file contents: the host replaces it with the secret's value on the way to
/// the target (if the step was granted the secret), so the plugin never holds the value. Never in
/// a program or argument: other users of a target can read command lines, and the host refuses
/// an exec whose command line holds a reference. Inside XML use [`secret_ref_xml`]. The syntax,
/// `@@secret:NAME@@`, is part of the contract in `sdk/wit/drover.wit`.
pub fn secret_ref(name: &str) -> String {
    format!("@@secret:{name}@@")
}

/// The text of a reference to the secret `name` that the host fills XML-escaped (`&`, `<`, `>`,
/// `"`, `'`, tab and line breaks as references), for element text or an attribute value of an
/// XML file. A value XML 1.0 cannot hold (a control character) fails the call with a message
/// naming the secret. The syntax, `@@secret:NAME:xml@@`, is part of the contract in
/// `sdk/wit/drover.wit`.
pub fn secret_ref_xml(name: &str) -> String {
    format!("@@secret:{name}:xml@@")
}

/// The first secret reference in `text` (`@@secret:NAME@@` or `@@secret:NAME:CONTEXT@@`), by
/// name, as the host finds them.
pub(crate) fn first_secret_ref(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("@@secret:") {
        let after = &rest[start + "@@secret:".len()..];
        let end = after.find("@@")?;
        let inner = &after[..end];
        let (name, context) = match inner.split_once(':') {
            Some((name, context)) => (name, Some(context)),
            None => (inner, None),
        };
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let context_ok = context
            .is_none_or(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if name_ok && context_ok {
            return Some(name);
        }
        rest = after;
    }
    None
}

/// One plugin call's view of the host: its [`Context`] and typed host calls.
pub struct Ctx<'h> {
    context: Context,
    host: &'h dyn HostApi,
}

impl<'h> Ctx<'h> {
    /// A view of `host` for the call described by `context`.
    pub fn new(context: Context, host: &'h dyn HostApi) -> Self {
        Ctx { context, host }
    }

    /// Where in the run this call happens.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// What is asked: apply, check or compensate.
    pub fn mode(&self) -> Mode {
        self.context.mode
    }

    /// The step instance's target, or a permanent error naming the step if it has none.
    pub fn target(&self) -> Result<&str, StepError> {
        self.context.target.as_deref().ok_or_else(|| {
            StepError::permanent(format!(
                "step {} has no target; give it `for-each` or a target input",
                self.context.step_key
            ))
        })
    }

    /// Writes a line to the step log.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Tells the operator the step is alive; `progress` between 0.0 and 1.0 when known.
    pub fn heartbeat(&self, progress: Option<f32>, message: impl AsRef<str>) {
        self.host.heartbeat(progress, message.as_ref());
    }

    /// Reveals a secret's value. Prefer [`secret_ref`], which keeps the value out of the plugin.
    pub fn secret(&self, name: &str) -> Result<String, HostError> {
        self.host.secret(name)
    }

    /// Reads a checkpoint value of this step instance; `None` when the key was never set. When the
    /// host cannot read the checkpoints, this does not return: the attempt fails with the host's
    /// error.
    pub fn state_get(&self, key: &str) -> Option<String> {
        self.host.state_get(key)
    }

    /// Writes a checkpoint value of this step instance.
    pub fn state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.host.state_set(key, value)
    }

    /// Reads a checkpoint value stored with [`Self::state_set_json`].
    pub fn state_get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HostError> {
        match self.host.state_get(key) {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                HostError::new(HostErrorKind::Permanent, format!("checkpoint {key} is not valid: {e}"))
            }),
        }
    }

    /// Writes a checkpoint value as JSON.
    pub fn state_set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HostError> {
        let text = serde_json::to_string(value).map_err(|e| {
            HostError::new(HostErrorKind::Permanent, format!("checkpoint {key} cannot be encoded: {e}"))
        })?;
        self.host.state_set(key, &text)
    }

    /// Starts building a program run on `target`; finish with [`Exec::run`].
    pub fn exec(&self, target: &str, program: &str) -> Exec<'_, 'h> {
        Exec {
            ctx: self,
            request: ExecRequest {
                target: target.into(),
                program: program.into(),
                args: Vec::new(),
                stdin: None,
                timeout_ms: None,
            },
        }
    }

    /// Reads a whole file from a target.
    pub fn read_file(&self, target: &str, path: &str) -> Result<Vec<u8>, HostError> {
        self.host.read_file(target, path)
    }

    /// Reads a whole file from a target as text (invalid UTF-8 replaced).
    pub fn read_to_string(&self, target: &str, path: &str) -> Result<String, HostError> {
        Ok(String::from_utf8_lossy(&self.host.read_file(target, path)?).into_owned())
    }

    /// Writes a whole file on a target; `contents` may contain [`secret_ref`]s.
    pub fn write_file(&self, target: &str, path: &str, contents: impl AsRef<[u8]>) -> Result<(), HostError> {
        self.host.write_file(target, path, contents.as_ref())
    }

    /// Removes a file on a target (a rendered file holding secrets, say); a missing file is fine.
    pub fn remove_file(&self, target: &str, path: &str) -> Result<(), HostError> {
        self.host.remove_file(target, path)
    }
}

/// A program run being built; see [`Ctx::exec`].
pub struct Exec<'c, 'h> {
    ctx: &'c Ctx<'h>,
    request: ExecRequest,
}

impl Exec<'_, '_> {
    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.request.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.request.stdin = Some(bytes.into());
        self
    }

    /// Kills the program after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// Runs it and waits. A non-zero exit is not an error: look at [`Executed::output`].
    pub fn run(self) -> Result<Executed, HostError> {
        let output = self.ctx.host.exec(&self.request)?;
        Ok(Executed { request: self.request, output })
    }
}

/// A program that ran: what was asked and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// What was run.
    pub request: ExecRequest,
    /// What it left behind.
    pub output: ExecOutput,
}

impl Executed {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.output.success()
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        self.output.stdout_lossy()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        self.output.stderr_lossy()
    }

    /// Evidence of this run for the report.
    pub fn evidence(&self, label: impl Into<String>) -> Evidence {
        Evidence::from_exec(label, &self.request, &self.output)
    }

    /// Ok if it exited 0; otherwise a permanent error with the command line, exit code and the
    /// first lines of its output.
    pub fn require_success(self) -> Result<Self, StepError> {
        if self.success() {
            return Ok(self);
        }
        let code = self.output.exit_code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
        let mut text = self.stderr();
        if text.trim().is_empty() {
            text = self.stdout();
        }
        Err(StepError::permanent(format!(
            "`{}` on {} failed with {code}: {}",
            self.request.command_line(),
            self.request.target,
            crate::types::excerpt(&text, 5)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_as_the_host_finds_them() {
        assert_eq!(secret_ref("svc-pass"), "@@secret:svc-pass@@");
        assert_eq!(secret_ref_xml("svc.pass_2"), "@@secret:svc.pass_2:xml@@");
        assert_eq!(first_secret_ref(&format!("x {} y", secret_ref_xml("a-b"))), Some("a-b"));
        assert_eq!(first_secret_ref("@@secret:bad name@@ @@secret:ok@@"), Some("ok"));
        assert_eq!(first_secret_ref("@@secret:@@ @@secret:x:@@ @@secret:x"), None);
        assert_eq!(first_secret_ref("no reference"), None);
    }

    #[test]
    fn the_fake_host_refuses_a_secret_in_a_command_line_as_the_host_does() {
        use crate::testing::FakeHost;
        use crate::types::{ExecOutput, HostErrorKind, Mode};
        let host = FakeHost::new().with_target("DRBTS01");
        host.script_exec("DRBTS01", "tool", &["--read-password"], ExecOutput::exited(0, ""));
        let ctx = host.ctx(Mode::Apply);
        let e = ctx.exec("DRBTS01", "tool").args(["-p", &secret_ref("pw")]).run().unwrap_err();
        assert_eq!(e.kind, HostErrorKind::Permanent);
        assert_eq!(
            e.message,
            "exec tool on DRBTS01: the command line references secret pw; other users of the target can read command lines, so pass secrets in stdin or a file"
        );
        let ran = ctx.exec("DRBTS01", "tool").args(["--read-password"]).stdin(secret_ref("pw")).run();
        assert!(ran.is_ok(), "stdin may carry it: {ran:?}");
    }
}
