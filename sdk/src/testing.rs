//! A fake host for native unit tests of plugin logic: scripted exec results, files, secrets and
//! checkpoints in memory, and every call and log line captured for assertions.
//!
//! ```
//! use drover_sdk::testing::FakeHost;
//! use drover_sdk::prelude::*;
//!
//! let host = FakeHost::new().with_target("DRBTS01");
//! host.script_exec("DRBTS01", "sc.exe", &["query", "RuleEngineUpdateService"], ExecOutput::exited(0, "STATE : 4 RUNNING"));
//! let ctx = host.ctx(Mode::Check);
//! let ran = ctx.exec("DRBTS01", "sc.exe").args(["query", "RuleEngineUpdateService"]).run().unwrap();
//! assert!(ran.stdout().contains("RUNNING"));
//! assert_eq!(host.exec_calls().len(), 1);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::RawPlugin;
use crate::ctx::{Ctx, HostApi};
use crate::types::{
    Context, ExecOutput, ExecRequest, HostError, HostErrorKind, Level, Mode, Outcome, StepError,
};

struct Script {
    target: String,
    program: String,
    args: Option<Vec<String>>,
    result: Result<ExecOutput, HostError>,
    /// Files the scripted program leaves behind, as a real program would.
    writes: Vec<(String, Vec<u8>)>,
}

/// An in-memory host. Exec results are scripted in order: the first unused script whose target,
/// program and arguments match answers the call. A call nothing matches fails with a message
/// that names it, so a test cannot pass by accident.
#[derive(Default)]
pub struct FakeHost {
    targets: BTreeSet<String>,
    secrets: BTreeMap<String, String>,
    scripts: RefCell<Vec<Script>>,
    files: RefCell<BTreeMap<(String, String), Vec<u8>>>,
    state: RefCell<BTreeMap<String, String>>,
    logs: RefCell<Vec<(Level, String)>>,
    heartbeats: RefCell<Vec<(Option<f32>, String)>>,
    calls: RefCell<Vec<ExecRequest>>,
    context: Option<Context>,
}

impl FakeHost {
    /// An empty host: no targets, no secrets, nothing scripted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `name` a known target. Calls to unknown targets are refused, as an ungranted
    /// target would be.
    pub fn with_target(mut self, name: &str) -> Self {
        self.targets.insert(name.into());
        self
    }

    /// Adds a secret the plugin may read.
    pub fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Puts a file on a target.
    pub fn with_file(self, target: &str, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.borrow_mut().insert((target.into(), path.into()), contents.into());
        self
    }

    /// Uses `context` for [`Self::ctx`] instead of [`Context::for_test`].
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Scripts the answer to running `program` with exactly `args` on `target`.
    pub fn script_exec(&self, target: &str, program: &str, args: &[&str], output: ExecOutput) {
        self.push(target, program, Some(args), Ok(output), Vec::new());
    }

    /// Scripts the answer to running `program` with any arguments on `target`.
    pub fn script_exec_any(&self, target: &str, program: &str, output: ExecOutput) {
        self.push(target, program, None, Ok(output), Vec::new());
    }

    /// Scripts a host failure (unreachable target, timeout) for `program` with exactly `args`.
    pub fn script_exec_error(&self, target: &str, program: &str, args: &[&str], error: HostError) {
        self.push(target, program, Some(args), Err(error), Vec::new());
    }

    /// Scripts a run that also leaves a file behind (a log a real program would write).
    pub fn script_exec_writing(
        &self,
        target: &str,
        program: &str,
        args: &[&str],
        output: ExecOutput,
        path: &str,
        contents: impl Into<Vec<u8>>,
    ) {
        self.push(target, program, Some(args), Ok(output), vec![(path.to_string(), contents.into())]);
    }

    fn push(
        &self,
        target: &str,
        program: &str,
        args: Option<&[&str]>,
        result: Result<ExecOutput, HostError>,
        writes: Vec<(String, Vec<u8>)>,
    ) {
        self.scripts.borrow_mut().push(Script {
            target: target.into(),
            program: program.into(),
            args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
            result,
            writes,
        });
    }

    /// A [`Ctx`] over this host in `mode`.
    pub fn ctx(&self, mode: Mode) -> Ctx<'_> {
        let mut context = self.context.clone().unwrap_or_else(|| Context::for_test(mode));
        context.mode = mode;
        Ctx::new(context, self)
    }

    /// Runs a plugin call as the host would: `input` is encoded to JSON, the output decoded from
    /// it, so the plugin's serde types are exercised too.
    pub fn call<P: RawPlugin>(&self, mode: Mode, input: Value) -> Result<Outcome<Value>, StepError> {
        let ctx = self.ctx(mode);
        let outcome = P::call(&ctx, &input.to_string())?;
        let output = serde_json::from_str(&outcome.output)
            .map_err(|e| StepError::permanent(format!("plugin returned malformed output JSON: {e}")))?;
        Ok(Outcome { changed: outcome.changed, summary: outcome.summary, output, evidence: outcome.evidence })
    }

    /// Every exec call so far, in order, as the plugin sent it.
    pub fn exec_calls(&self) -> Vec<ExecRequest> {
        self.calls.borrow().clone()
    }

    /// The command lines of every exec call so far.
    pub fn command_lines(&self) -> Vec<String> {
        self.calls.borrow().iter().map(ExecRequest::command_line).collect()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Every heartbeat so far.
    pub fn heartbeats(&self) -> Vec<(Option<f32>, String)> {
        self.heartbeats.borrow().clone()
    }

    /// A file on a target, as the plugin (or a scripted program) left it.
    pub fn file(&self, target: &str, path: &str) -> Option<Vec<u8>> {
        self.files.borrow().get(&(target.to_string(), path.to_string())).cloned()
    }

    /// Scripts that were never used: a test should usually assert this is empty.
    pub fn unused_scripts(&self) -> Vec<String> {
        self.scripts.borrow().iter().map(|s| format!("{} on {}", s.program, s.target)).collect()
    }

    fn check_target(&self, target: &str) -> Result<(), HostError> {
        if self.targets.contains(target) {
            Ok(())
        } else {
            Err(HostError::new(
                HostErrorKind::Denied,
                format!("target {target} is not granted (fake host knows: {:?})", self.targets),
            ))
        }
    }
}

impl HostApi for FakeHost {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn heartbeat(&self, progress: Option<f32>, message: &str) {
        self.heartbeats.borrow_mut().push((progress, message.to_string()));
    }

    fn secret(&self, name: &str) -> Result<String, HostError> {
        self.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| HostError::new(HostErrorKind::Denied, format!("secret {name} is not granted")))
    }

    fn state_get(&self, key: &str) -> Option<String> {
        self.state.borrow().get(key).cloned()
    }

    fn state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.state.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }

    fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, HostError> {
        self.check_target(&request.target)?;
        // As the host does: a command line never carries a secret.
        let words = std::iter::once(&request.program).chain(&request.args);
        if let Some(name) = words.filter_map(|w| crate::ctx::first_secret_ref(w)).next() {
            return Err(HostError::new(
                HostErrorKind::Permanent,
                format!(
                    "exec {} on {}: the command line references secret {name}; other users of the target can read command lines, so pass secrets in stdin or a file",
                    request.program, request.target
                ),
            ));
        }
        self.calls.borrow_mut().push(request.clone());
        let mut scripts = self.scripts.borrow_mut();
        let found = scripts.iter().position(|s| {
            s.target == request.target
                && s.program == request.program
                && s.args.as_ref().is_none_or(|a| *a == request.args)
        });
        let Some(index) = found else {
            return Err(HostError::new(
                HostErrorKind::Permanent,
                format!(
                    "fake host has no scripted result for `{}` on {}",
                    request.command_line(),
                    request.target
                ),
            ));
        };
        let script = scripts.remove(index);
        drop(scripts);
        let mut files = self.files.borrow_mut();
        for (path, contents) in script.writes {
            files.insert((request.target.clone(), path), contents);
        }
        script.result
    }

    fn read_file(&self, target: &str, path: &str) -> Result<Vec<u8>, HostError> {
        self.check_target(target)?;
        self.file(target, path).ok_or_else(|| {
            HostError::new(HostErrorKind::NotFound, format!("{path} does not exist on {target}"))
        })
    }

    fn write_file(&self, target: &str, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.check_target(target)?;
        self.files.borrow_mut().insert((target.into(), path.into()), contents.to_vec());
        Ok(())
    }

    fn remove_file(&self, target: &str, path: &str) -> Result<(), HostError> {
        self.check_target(target)?;
        self.files.borrow_mut().remove(&(target.to_string(), path.to_string()));
        Ok(())
    }
}
