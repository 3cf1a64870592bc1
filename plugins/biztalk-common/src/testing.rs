//! Test support for the plugins that join or restore a server (feature `testing`, for their
//! `[dev-dependencies]`; also built for this crate's own tests): a [`Recorder`] around the SDK's
//! [`FakeHost`] that keeps every file operation and exec in order, with what was written, plus
//! the registry answers and `Configuration.exe /U` runs of `lab/PROTOCOL.md`, the input both
//! plugins' tests start from and the configuration file they write for it. It only scripts and
//! records: what a plugin must do stays asserted in that plugin's tests.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use drover_sdk::prelude::*;
use drover_sdk::testing::FakeHost;
use drover_sdk::{HostApi, RawPlugin};
use serde_json::{Value, json};

use crate::configure::CONFIGURATION_EXE;
use crate::reg;

/// What `reg query` says on stderr when the value is missing.
pub const NOT_FOUND: &str = "ERROR: The system was unable to find the specified registry key or value.\n";
/// The recorded op of the `MgmtDBServer` probe.
pub const REG_SERVER: &str =
    r#"exec reg query "HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration" /v MgmtDBServer /reg:32"#;
/// The recorded op of the `MgmtDBName` probe.
pub const REG_NAME: &str =
    r#"exec reg query "HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration" /v MgmtDBName /reg:32"#;

/// What `Configuration.exe /U` writes to its log when it unconfigures a server.
pub const UNCONFIGURATION_LOG: &str =
    "[2026-11-22 11:00:01:0000 Info Configuration Framework]Unconfiguring feature: SSOServer,Engine\n";

/// The input of a group plugin that [`JOIN_XML`] is rendered from: group `PRDSQL01` (the
/// default databases), accounts `CONTOSO\svc-sso` and `CONTOSO\svc-bre` with the default
/// password secrets, features SSO, Runtime and RulesEngine.
pub fn join_input() -> Value {
    json!({
        "group": { "mgmt_server": "PRDSQL01", "sso_server": "PRDSQL01" },
        "service_accounts": {
            "entsso": { "account": "CONTOSO\\svc-sso" },
            "rules_engine": { "account": "CONTOSO\\svc-bre" }
        },
        "installed_features": ["SSO", "Runtime", "RulesEngine"]
    })
}

/// What a compensation that unconfigures a server of the expected group records, `log` being
/// its unconfiguration log: the membership probe, the removal of an old log,
/// `Configuration.exe /U /L <log>`, the reading of the log and the probe that finds the server
/// gone.
pub fn unconfiguration_ops(log: &str) -> Vec<String> {
    vec![
        REG_SERVER.to_string(),
        REG_NAME.to_string(),
        format!("remove {log}"),
        format!(r"exec C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe /U /L {log}"),
        format!("read {log}"),
        REG_SERVER.to_string(),
    ]
}

/// The join configuration of [`join_input`], as written to the target before the host fills in
/// the two secret references.
pub const JOIN_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Configuration>
  <Feature Name="SSOServer,Engine" DisplayName="Enterprise Single Sign-On">
    <Question ID="IsSecretServer" Answers="Create,Join" Default="Create">
      <Answer Value="Create" GUID="{FB7268BE-82D4-4cad-8CFF-6930303DA7E2}" />
      <Answer Value="Join" GUID="{B9432756-1620-4bec-8CD9-E6D0B7805AA5}" Selected="Yes" />
    </Question>
    <NTService ID="ENTSSO">
      <UserName>svc-sso</UserName>
      <Domain>CONTOSO</Domain>
      <Password>@@secret:entsso-password:xml@@</Password>
    </NTService>
    <SQL ID="SSO_DB_ID">
      <Server>PRDSQL01</Server>
      <Database>SSODB</Database>
      <WindowsSecurity>yes</WindowsSecurity>
      <UserName />
      <Password />
    </SQL>
  </Feature>
  <Feature Name="WMI" DisplayName="BizTalk Server Group">
    <SQL ID="{D757DBF9-5D71-4995-9F20-A552B7DFE7F1}">
      <Server>PRDSQL01</Server>
      <Database>BizTalkMgmtDb</Database>
      <WindowsSecurity>yes</WindowsSecurity>
      <UserName />
      <Password />
    </SQL>
    <Question ID="CREATEORJOIN" Answers="Create,Join" Default="Create">
      <Answer Value="Create" GUID="{C4DEF4B8-163E-4a8d-AB01-6C43917248B1}" />
      <Answer Value="Join" GUID="{4D12E6A3-552E-4936-9DD3-59E1190FA324}" Selected="Yes" />
    </Question>
  </Feature>
  <Feature Name="Engine,BTSCfg" DisplayName="BizTalk Server runtime components">
    <Question ID="HOST" Answers="Yes,No" Default="Yes">
      <Answer Value="Yes" GUID="{8E714C78-05B8-45d1-9B50-D737EF7AD682}" />
      <Answer Value="No" GUID="{D9164C48-8179-4a40-912D-1BF4C3EFE70B}" Selected="Yes" />
    </Question>
    <Question ID="ISOHOST" Answers="Yes,No" Default="Yes">
      <Answer Value="Yes" GUID="{5638D8B2-58C9-4b2a-B5B1-3771ADECC327}" />
      <Answer Value="No" GUID="{5782A1A5-8578-4942-9CBB-E443A15A0B99}" Selected="Yes" />
    </Question>
  </Feature>
  <Feature Name="RulesEngine" DisplayName="Business Rules Engine">
    <SQL ID="{E6C5E071-D6EB-4c31-BFE6-CA16637FBEEB}">
      <Server>PRDSQL01</Server>
      <Database>BizTalkRuleEngineDb</Database>
      <WindowsSecurity>yes</WindowsSecurity>
      <UserName />
      <Password />
    </SQL>
    <NTService ID="{6ABAD351-9C7B-423e-9FDE-3A5C52441C00}">
      <UserName>svc-bre</UserName>
      <Domain>CONTOSO</Domain>
      <Password>@@secret:rules-engine-password:xml@@</Password>
    </NTService>
  </Feature>
  <InstalledFeature>SSO</InstalledFeature>
  <InstalledFeature>Runtime</InstalledFeature>
  <InstalledFeature>RulesEngine</InstalledFeature>
</Configuration>
"#;

/// [`JOIN_XML`] as a saved configuration: the root element names `computer`.
pub fn saved_xml(computer: &str) -> String {
    JOIN_XML.replacen("<Configuration>", &format!(r#"<Configuration ComputerName="{computer}">"#), 1)
}

/// The fake host for plugin `P` on one target, with every file operation, secret read and exec
/// recorded in order.
pub struct Recorder<P> {
    /// The fake host underneath, for scripting and inspection.
    pub host: FakeHost,
    /// The target every call runs against.
    pub target: String,
    /// `exec …`, `read …`, `write …`, `remove …` and `secret …`, in order.
    pub ops: RefCell<Vec<String>>,
    /// Every file written: path and contents.
    pub written: RefCell<Vec<(String, String)>>,
    /// While set, removing any `.xml` file fails as if the target did not answer.
    pub fail_xml_removal: Cell<bool>,
    plugin: PhantomData<P>,
}

impl<P: RawPlugin> Recorder<P> {
    /// A recorder for `target`, whose secret `entsso-password` is `entsso_password`.
    pub fn new(target: &str, entsso_password: &str) -> Self {
        let host = FakeHost::new().with_target(target).with_secret("entsso-password", entsso_password);
        Recorder {
            host,
            target: target.to_string(),
            ops: RefCell::default(),
            written: RefCell::default(),
            fail_xml_removal: Cell::new(false),
            plugin: PhantomData,
        }
    }

    /// The recorder with its fake host changed by `f` (more targets, files).
    pub fn map_host(mut self, f: impl FnOnce(FakeHost) -> FakeHost) -> Self {
        self.host = f(self.host);
        self
    }

    /// Calls the plugin in `mode` with `input`; the output as JSON.
    pub fn call(&self, mode: Mode, input: Value) -> Result<Outcome<Value>, StepError> {
        let ctx = Ctx::new(Context { target: Some(self.target.clone()), ..Context::for_test(mode) }, self);
        let outcome = P::call(&ctx, &input.to_string())?;
        let output = serde_json::from_str(&outcome.output).expect("output JSON");
        Ok(Outcome { changed: outcome.changed, summary: outcome.summary, output, evidence: outcome.evidence })
    }

    /// The recorded operations so far.
    pub fn ops(&self) -> Vec<String> {
        self.ops.borrow().clone()
    }

    /// Scripts `reg query … /reg:32` of a BizTalk Administration value: found with `data`, or
    /// missing.
    pub fn reg(&self, value: &str, data: Option<&str>) {
        let args = reg::query_args_32(reg::BIZTALK_ADMINISTRATION, value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = match data {
            Some(data) => ExecOutput::exited(
                0,
                format!(
                    "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration\n    {value}    REG_SZ    {data}\n\n"
                ),
            ),
            None => ExecOutput { exit_code: Some(1), stderr: NOT_FOUND.into(), ..Default::default() },
        };
        self.host.script_exec(&self.target, "reg", &args, output);
    }

    /// Scripts the probe of a server in no group.
    pub fn not_joined(&self) {
        self.reg("MgmtDBServer", None);
    }

    /// Scripts the probe of a server joined to `db` on `server`.
    pub fn joined(&self, server: &str, db: &str) {
        self.reg("MgmtDBServer", Some(server));
        self.reg("MgmtDBName", Some(db));
    }

    /// Scripts `Configuration.exe /U /L <log>` exiting 0, writing `log_text` to `log` when given.
    pub fn unconfiguration(&self, log: &str, log_text: Option<&str>) {
        let args = ["/U", "/L", log];
        let output = ExecOutput::exited(0, "");
        match log_text {
            Some(text) => {
                self.host.script_exec_writing(&self.target, CONFIGURATION_EXE, &args, output, log, text)
            }
            None => self.host.script_exec(&self.target, CONFIGURATION_EXE, &args, output),
        }
    }

    /// Asserts that the last operation removed the file at `path` and that it is gone.
    #[track_caller]
    pub fn assert_removed_last(&self, path: &str) {
        assert_eq!(self.ops().last(), Some(&format!("remove {path}")), "{:?}", self.ops());
        assert_eq!(self.host.file(&self.target, path), None, "{path} must be gone");
    }
}

impl<P> HostApi for Recorder<P> {
    fn log(&self, level: Level, message: &str) {
        self.host.log(level, message)
    }
    fn heartbeat(&self, progress: Option<f32>, message: &str) {
        self.host.heartbeat(progress, message)
    }
    fn secret(&self, name: &str) -> Result<String, HostError> {
        self.ops.borrow_mut().push(format!("secret {name}"));
        self.host.secret(name)
    }
    fn state_get(&self, key: &str) -> Option<String> {
        self.host.state_get(key)
    }
    fn state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.host.state_set(key, value)
    }
    fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, HostError> {
        self.ops.borrow_mut().push(format!("exec {}", request.command_line()));
        self.host.exec(request)
    }
    fn read_file(&self, target: &str, path: &str) -> Result<Vec<u8>, HostError> {
        self.ops.borrow_mut().push(format!("read {path}"));
        self.host.read_file(target, path)
    }
    fn write_file(&self, target: &str, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.ops.borrow_mut().push(format!("write {path}"));
        self.written.borrow_mut().push((path.into(), String::from_utf8_lossy(contents).into_owned()));
        self.host.write_file(target, path, contents)
    }
    fn remove_file(&self, target: &str, path: &str) -> Result<(), HostError> {
        self.ops.borrow_mut().push(format!("remove {path}"));
        if self.fail_xml_removal.get() && path.ends_with(".xml") {
            return Err(HostError::new(HostErrorKind::Retryable, format!("{} did not answer", self.target)));
        }
        self.host.remove_file(target, path)
    }
}
