//! `sso-secret`: promotes the DR site's Enterprise SSO server (the step's target, `DRSSO01`) to
//! master secret server at failover (docs/biztalk.md, "Failover activation: the BizTalk side",
//! F8; `lab/PROTOCOL.md`, "Enterprise SSO: `ssomanage`, `ssoconfig`,
//! `ISSOConfigSS.RestoreSecret`"), after the DR databases are recovered and `UpdateRegistry.vbs`
//! ran on the runtime servers. With the command lines of `biztalk_common::sso_secret`:
//!
//! 1. Reads where this server's SSO service keeps its database (`reg query
//!    "HKLM\SOFTWARE\Microsoft\ENTSSO\SQL" /v Server`). A server that is not a BizTalk runtime
//!    has no `UpdateRegistry.vbs`, so while it names another SQL Server than the DR one,
//!    `ssoconfig -setDB <sql server> <database>` points it at the restored SSO database.
//! 2. Reads `ssomanage -displaydb` (its SSO service not answering, `0xC0002A0F`: started with
//!    `sc.exe start ENTSSO` and read again) and the group's `MSBTS_GroupSetting.SSOServerName`
//!    through WMI on `group_server`, a DR runtime server whose registry already names the DR
//!    management database. This server the secret server **and** the group's SSO server: the
//!    promotion is complete (the step sets `SSOServerName` last, only after the secret was
//!    restored), no change.
//! 3. Otherwise: `ssomanage -updatedb <work_dir>\secret-server.xml` with a file naming only the
//!    secret server (Microsoft: with the SSO administrators' element it fails), restarts
//!    `ENTSSO` (`sc.exe stop`, `sc.exe start`), restores the master secret from the backup staged
//!    by DR site preparation through `ISSOConfigSS.RestoreSecret` in PowerShell, **the password
//!    a secret reference on standard input, never an argument** (restoring the same backup again
//!    is harmless, so a retry after an interruption restores it again), and sets
//!    `SSOServerName` with `Put()`.
//! 4. Verifies with `ssomanage -displaydb` (the DR SQL Server, this secret server) and
//!    `MSBTS_GroupSetting` (`SSOServerName`).
//!
//! With `action = "return"` (a drill's clean-up, X2) it undoes step 1 only: this server's SSO
//! service is pointed back at `sql_server` (production's SQL Server) with `ssoconfig -setDB` and
//! restarted, unless it names it already. Production's SSO database, whose master secret server
//! the drill never changed, is what it then talks to; the copy it was promoted in is dropped by
//! the log-shipping clean-up.
//!
//! A wrong password fails permanently, naming the backup file and the secret to check; a backup
//! that is missing fails permanently, naming where DR site preparation stages it. Answers Drover
//! does not know stop for an operator with the raw text (`biztalk_common::unrecognized`).
//!
//! Effect class: idempotent. `check` only reads. Grants a workflow needs: programs `reg`,
//! `sc.exe`, `powershell.exe`, `C:\Program Files\Common Files\Enterprise Single
//! Sign-On\ssomanage.exe` and `…\ssoconfig.exe`; the target `group_server`; file access
//! (`uses_targets`); the secret `password_secret` (default `sso-secret-backup-password`);
//! read-only patterns for `drover plan`: `reg query **`, `sc.exe query **`, the `ssomanage.exe`
//! path followed by `-displaydb`, and `powershell.exe -NoProfile -NonInteractive -Command
//! Get-CimInstance*`.

use biztalk_common::processing::{self, GroupSetting};
use biztalk_common::reg::{self, RegAnswer};
use biztalk_common::sc::{self, ScFailure};
use biztalk_common::sso_secret::{self, SsoDatabase};
use biztalk_common::{powershell, unrecognized};
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The secret holding the backup's password when the input names none.
pub const DEFAULT_PASSWORD_SECRET: &str = "sso-secret-backup-password";
/// Where Enterprise SSO keeps the database it belongs to (values `Server`, `Database`).
pub use biztalk_common::reg::ENTSSO_SQL as ENTSSO_SQL_KEY;

/// The plugin.
#[derive(Default)]
pub struct SsoSecret;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// `promote` (the default: the failover's F8) or `return` (a drill's clean-up).
    #[serde(default)]
    pub action: Action,
    /// The DR SQL Server holding the restored SSO database (`DRSQL01`); with `return`,
    /// production's SQL Server, whose SSO database this server goes back to.
    pub sql_server: String,
    /// The SSO database.
    #[serde(default = "default_sso_database")]
    pub sso_database: String,
    /// The master secret's backup on this server, as DR site preparation staged it (`promote`).
    #[serde(default)]
    pub backup_file: String,
    /// The secret holding the backup's password.
    #[serde(default = "default_password_secret")]
    pub password_secret: String,
    /// A DR runtime server whose registry names the DR management database already
    /// (`UpdateRegistry.vbs` ran there): `MSBTS_GroupSetting` is read and set through it
    /// (`promote`).
    #[serde(default)]
    pub group_server: String,
    /// A folder on this server for the secret-server file.
    #[serde(default = "default_work_dir")]
    pub work_dir: String,
}

/// What the call does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Promote this server to master secret server of the restored SSO database.
    #[default]
    Promote,
    /// Point this server's SSO service back at production's SSO database (drill clean-up).
    Return,
}

fn default_sso_database() -> String {
    "SSODB".into()
}

fn default_password_secret() -> String {
    DEFAULT_PASSWORD_SECRET.into()
}

fn default_work_dir() -> String {
    r"C:\Drover".into()
}

/// What the call found and did.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Output {
    /// The server promoted.
    pub server: String,
    /// The SQL Server this server's SSO service used before (`ENTSSO\SQL` `Server`).
    pub sso_sql_server_before: String,
    /// The master secret server before, when it could be read.
    pub secret_server_before: Option<String>,
    /// The group's `SSOServerName` before, when it could be read.
    pub sso_server_name_before: Option<String>,
    /// What this call did (check mode: would do), in order: `set-db`, `update-secret-server`,
    /// `restart-entsso`, `restore-secret`, `set-sso-server-name`.
    pub actions: Vec<String>,
    /// As read at the end: `ssomanage -displaydb`'s SQL Server.
    pub sql_server: Option<String>,
    /// As read at the end: the master secret server.
    pub secret_server: Option<String>,
    /// As read at the end: the group's `SSOServerName`.
    pub sso_server_name: Option<String>,
}

impl Plugin for SsoSecret {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "promotes the DR Enterprise SSO server to master secret server: ssomanage -updatedb, ENTSSO restart, the master secret restored from its staged backup (password on stdin), SSOServerName",
            )
            .program(reg::PROGRAM)
            .program(sc::PROGRAM)
            .program(powershell::PROGRAM)
            .program(sso_secret::ssomanage())
            .program(sso_secret::ssoconfig())
            .secret(DEFAULT_PASSWORD_SECRET)
            .uses_targets()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, &input)?.run(false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, &input)?.run(true)
    }
}

drover_sdk::export_plugin!(SsoSecret);

/// One call.
struct Session<'c, 'h> {
    ctx: &'c Ctx<'h>,
    input: &'c Input,
    target: String,
    evidence: Vec<Evidence>,
    output: Output,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>, input: &'c Input) -> Result<Self, StepError> {
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid(&input.password_secret) {
            return Err(StepError::permanent(format!(
                "password_secret {:?} is not a secret name (letters, digits, -, _, .)",
                input.password_secret
            )));
        }
        if input.action == Action::Promote {
            for (name, value) in [("backup_file", &input.backup_file), ("group_server", &input.group_server)]
            {
                if value.trim().is_empty() {
                    return Err(StepError::permanent(format!("{name} is required to promote")));
                }
            }
        }
        let target = ctx.target()?.to_string();
        let output = Output { server: target.clone(), ..Output::default() };
        Ok(Session { ctx, input, target, evidence: Vec::new(), output })
    }

    fn run(mut self, apply: bool) -> StepResult<Output> {
        let sql = &self.input.sql_server;
        let current = self.sso_sql_server()?;
        self.output.sso_sql_server_before = current.clone();
        if self.input.action == Action::Return {
            return self.go_back(apply, &current);
        }
        let mut changed = false;
        if !current.eq_ignore_ascii_case(sql) {
            self.act("set-db");
            if !apply {
                // The SSO service still talks to the old database: what it says is not the DR's.
                return Ok(self.finish(true, false));
            }
            self.set_db()?;
            changed = true;
        }
        let display = self.display_db(apply)?;
        let group = self.group_setting()?;
        self.output.secret_server_before = display.as_ref().map(|d| d.secret_server.clone());
        self.output.sso_server_name_before = Some(group.sso_server_name.clone());
        let is_secret_server =
            display.as_ref().is_some_and(|d| d.secret_server.eq_ignore_ascii_case(&self.target));
        let named = group.sso_server_name.eq_ignore_ascii_case(&self.target);
        if is_secret_server && named && !changed {
            let d = display.expect("read");
            self.output.sql_server = Some(d.sql_server);
            self.output.secret_server = Some(d.secret_server);
            self.output.sso_server_name = Some(group.sso_server_name);
            return Ok(self.finish(false, false));
        }
        if !is_secret_server {
            self.act("update-secret-server");
        }
        if !is_secret_server || changed {
            self.act("restart-entsso");
        }
        self.act("restore-secret");
        if !named {
            self.act("set-sso-server-name");
        }
        if !apply {
            return Ok(self.finish(true, false));
        }
        if !is_secret_server {
            self.update_secret_server()?;
        }
        if !is_secret_server || changed {
            self.restart_entsso()?;
        }
        self.restore_secret()?;
        if !named {
            self.set_sso_server_name()?;
        }
        self.verify()?;
        Ok(self.finish(true, true))
    }

    /// `return`: this server's SSO service back on `sql_server`'s database, restarted.
    fn go_back(mut self, apply: bool, current: &str) -> StepResult<Output> {
        let sql = self.input.sql_server.clone();
        if current.eq_ignore_ascii_case(&sql) {
            self.output.sql_server = Some(current.to_owned());
            let summary =
                format!("{}'s SSO service uses {sql}'s SSO database already; nothing to do", self.target);
            return Ok(Outcome { changed: false, summary, output: self.output, evidence: self.evidence });
        }
        self.act("set-db");
        self.act("restart-entsso");
        if apply {
            self.set_db()?;
            self.restart_entsso()?;
            self.output.sql_server = Some(self.sso_sql_server()?);
        }
        let verb = if apply { "" } else { "would " };
        let summary =
            format!("{verb}point {}'s SSO service back at {sql}'s SSO database and restart it", self.target);
        Ok(Outcome { changed: true, summary, output: self.output, evidence: self.evidence })
    }

    fn act(&mut self, action: &str) {
        self.output.actions.push(action.into());
    }

    fn finish(self, changed: bool, applied: bool) -> Outcome<Output> {
        let summary = match (changed, applied) {
            (false, _) => format!(
                "{} is already the master secret server and the group's SSO server, on {}; nothing to do",
                self.target, self.input.sql_server
            ),
            (true, false) => format!("would {} on {}", self.output.actions.join(", "), self.target),
            (true, true) => format!(
                "{} promoted to master secret server on {} ({}); the master secret restored from {}",
                self.target,
                self.input.sql_server,
                self.output.actions.join(", "),
                self.input.backup_file
            ),
        };
        Outcome { changed, summary, output: self.output, evidence: self.evidence }
    }

    /// Runs `argv` (program first) on `server`, optionally with `stdin`, recording evidence.
    fn exec(
        &mut self,
        server: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
        label: String,
    ) -> Result<Executed, StepError> {
        let (program, args) = argv.split_first().expect("a program");
        let mut exec = self.ctx.exec(server, program).args(args.to_vec());
        if let Some(stdin) = stdin {
            exec = exec.stdin(stdin);
        }
        let ran = exec.run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    fn powershell(
        &mut self,
        server: &str,
        script: &str,
        stdin: Option<Vec<u8>>,
        label: String,
    ) -> Result<Executed, StepError> {
        let mut argv = vec![powershell::PROGRAM.to_string()];
        argv.extend(powershell::args(script));
        self.exec(server, &argv, stdin, label)
    }

    /// `ENTSSO\SQL` `Server` of this server.
    fn sso_sql_server(&mut self) -> Result<String, StepError> {
        let mut argv = vec![reg::PROGRAM.to_string()];
        argv.extend(reg::query_args(ENTSSO_SQL_KEY, "Server"));
        let target = self.target.clone();
        let ran =
            self.exec(&target, &argv, None, format!("the SSO database of {target} (ENTSSO\\SQL Server)"))?;
        match reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), "Server") {
            Ok(RegAnswer::Found(v)) => Ok(v.as_text().unwrap_or_default().to_owned()),
            Ok(RegAnswer::Missing) => Err(StepError::permanent(format!(
                "{target} has no SSO database in its registry ({ENTSSO_SQL_KEY} Server): it is not an SSO server of the group; prepare it with dr-site-preparation (the sso-server step)"
            ))),
            Err(e) => Err(unrecognized::program("reg query", &target, &e.to_string(), &ran)),
        }
    }

    /// `ssoconfig -setDB <sql server> <database>`.
    fn set_db(&mut self) -> Result<(), StepError> {
        let argv = sso_secret::set_db_argv(&self.input.sql_server, &self.input.sso_database);
        let target = self.target.clone();
        let ran = self.exec(&target, &argv, None, format!("ssoconfig -setDB on {target}"))?;
        if ran.success() && sso_secret::completed(&ran.stdout()) {
            return Ok(());
        }
        Err(unrecognized::program(
            "ssoconfig -setDB",
            &target,
            "it did not say the operation completed",
            &ran,
        ))
    }

    /// `ssomanage -displaydb`; when the SSO service does not answer, starts it (apply) and reads
    /// again. `None` in check mode when the service is not running.
    fn display_db(&mut self, apply: bool) -> Result<Option<SsoDatabase>, StepError> {
        let target = self.target.clone();
        for attempt in 0..2 {
            let ran = self.exec(
                &target,
                &sso_secret::display_db_argv(),
                None,
                format!("ssomanage -displaydb on {target}"),
            )?;
            if ran.success()
                && let Some(d) = sso_secret::parse_display_db(&ran.stdout())
            {
                return Ok(Some(d));
            }
            if sso_secret::no_sso_server(&ran.stdout(), &ran.stderr()) && attempt == 0 {
                if !apply {
                    return Ok(None);
                }
                self.start_entsso()?;
                continue;
            }
            if ran.stderr().contains("SQL Server does not exist or access denied") {
                return Err(StepError::permanent(format!(
                    "{target}'s SSO service cannot reach its SSO database on {}: is SSODB restored and ONLINE there?",
                    self.input.sql_server
                )));
            }
            return Err(unrecognized::program(
                "ssomanage -displaydb",
                &target,
                "Drover cannot read this answer",
                &ran,
            ));
        }
        unreachable!("the loop returns")
    }

    /// `MSBTS_GroupSetting` through `group_server`.
    fn group_setting(&mut self) -> Result<GroupSetting, StepError> {
        let server = self.input.group_server.clone();
        let ran = self.powershell(
            &server,
            processing::GROUP_SETTING,
            None,
            format!("MSBTS_GroupSetting through {server}"),
        )?;
        if !ran.success() {
            if ran.stderr().contains("SQL Server does not exist or access denied") {
                return Err(StepError::permanent(format!(
                    "{server} cannot reach the group's management database through WMI: run UpdateRegistry.vbs there first (bts-update-registry)"
                )));
            }
            return Err(unrecognized::program(
                "reading MSBTS_GroupSetting",
                &server,
                "it failed with an error Drover does not know",
                &ran,
            ));
        }
        processing::parse_group_setting(&ran.stdout())
            .map_err(|e| unrecognized::program("reading MSBTS_GroupSetting", &server, &e.to_string(), &ran))
    }

    /// Writes the secret-server file and runs `ssomanage -updatedb` with it.
    fn update_secret_server(&mut self) -> Result<(), StepError> {
        let target = self.target.clone();
        let file = format!(r"{}\secret-server.xml", self.input.work_dir.trim_end_matches('\\'));
        let xml = sso_secret::secret_server_file(&target);
        self.ctx.write_file(&target, &file, xml.as_bytes())?;
        self.evidence.push(Evidence::note(format!("{file} on {target}"), xml));
        let ran = self.exec(
            &target,
            &sso_secret::update_db_argv(&file),
            None,
            format!("ssomanage -updatedb on {target}"),
        )?;
        if ran.success() && sso_secret::completed(&ran.stdout()) {
            return Ok(());
        }
        Err(unrecognized::program(
            "ssomanage -updatedb",
            &target,
            "it did not say the operation completed",
            &ran,
        ))
    }

    /// Stops and starts `ENTSSO`.
    fn restart_entsso(&mut self) -> Result<(), StepError> {
        let target = self.target.clone();
        let mut argv = vec![sc::PROGRAM.to_string()];
        argv.extend(sc::stop(sso_secret::SERVICE));
        let ran = self.exec(&target, &argv, None, format!("stop ENTSSO on {target}"))?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None | Some(ScFailure::NotStarted) => {}
            Some(other) => {
                return Err(StepError::permanent(format!("stopping ENTSSO on {target} failed: {other}")));
            }
        }
        self.start_entsso()
    }

    /// Starts `ENTSSO` (already running is fine).
    fn start_entsso(&mut self) -> Result<(), StepError> {
        let target = self.target.clone();
        let mut argv = vec![sc::PROGRAM.to_string()];
        argv.extend(sc::start(sso_secret::SERVICE));
        let ran = self.exec(&target, &argv, None, format!("start ENTSSO on {target}"))?;
        match sc::failure(ran.output.exit_code, &ran.stdout()) {
            None => Ok(()),
            Some(ScFailure::Other { code: 1056, .. }) => Ok(()),
            Some(other) => Err(StepError::permanent(format!("starting ENTSSO on {target} failed: {other}"))),
        }
    }

    /// `ISSOConfigSS.RestoreSecret` with the password on standard input.
    fn restore_secret(&mut self) -> Result<(), StepError> {
        let target = self.target.clone();
        let (file, secret) = (&self.input.backup_file, &self.input.password_secret);
        let script = sso_secret::restore_secret_script(file);
        let stdin = sso_secret::password_stdin(secret);
        let ran = self.powershell(
            &target,
            &script,
            Some(stdin),
            format!("restore the master secret on {target} from {file}"),
        )?;
        if ran.success() {
            return Ok(());
        }
        let stderr = ran.stderr();
        if stderr.contains("The password of the backup file is not correct") {
            return Err(StepError::permanent(format!(
                "the master secret backup {file} on {target} refused the password in secret {secret}: check that {secret} holds the password given to ssoconfig -backupSecret when {file} was made, and that {file} is that backup (the one DR site preparation staged); nothing was restored"
            )));
        }
        if stderr.contains("does not exist") || stderr.contains("is not a master secret backup") {
            return Err(StepError::permanent(format!(
                "the master secret backup {file} is missing or not a backup on {target} ({}): stage it again with dr-site-preparation (sso-server step) or copy it from where production's backup is kept",
                excerpt(&stderr, 2).trim()
            )));
        }
        Err(unrecognized::program(
            "ISSOConfigSS.RestoreSecret",
            &target,
            "it failed with an error Drover does not know",
            &ran,
        ))
    }

    /// `MSBTS_GroupSetting.SSOServerName = <this server>` through `group_server`.
    fn set_sso_server_name(&mut self) -> Result<(), StepError> {
        let server = self.input.group_server.clone();
        let script = processing::set_sso_server_name(&self.target);
        let ran = self.powershell(
            &server,
            &script,
            None,
            format!("SSOServerName = {} through {server}", self.target),
        )?;
        if ran.success() {
            return Ok(());
        }
        Err(unrecognized::program(
            "setting MSBTS_GroupSetting.SSOServerName",
            &server,
            "it failed with an error Drover does not know",
            &ran,
        ))
    }

    /// Reads both again: this server the secret server on the DR SQL Server, and the group's SSO
    /// server.
    fn verify(&mut self) -> Result<(), StepError> {
        let d = self.display_db(true)?.expect("apply mode reads");
        let group = self.group_setting()?;
        let sql = &self.input.sql_server;
        let ok = d.secret_server.eq_ignore_ascii_case(&self.target)
            && d.sql_server.eq_ignore_ascii_case(sql)
            && group.sso_server_name.eq_ignore_ascii_case(&self.target);
        let said = format!(
            "ssomanage -displaydb: SQL Server {}, secret server {}; SSOServerName {}",
            d.sql_server, d.secret_server, group.sso_server_name
        );
        self.output.sql_server = Some(d.sql_server);
        self.output.secret_server = Some(d.secret_server);
        self.output.sso_server_name = Some(group.sso_server_name);
        if ok {
            return Ok(());
        }
        Err(StepError::permanent(format!("after the promotion {said}; expected {} on {sql}", self.target)))
    }
}

#[cfg(test)]
mod tests;
