//! The library of two plugins that, after the DR SQL Server's copies of the BizTalk databases are
//! recovered (`ONLINE`), point the group at them (docs/biztalk.md, "Failover activation: the
//! BizTalk side", F6 and F7; `lab/PROTOCOL.md`, "Failover: database references, SSO and
//! processing"). Each plugin crate (`bts-update-database`, `bts-update-registry`) only exports its
//! type; the logic and tests are here, shared:
//!
//! - **[`UpdateDatabase`]** (`bts-update-database`, F6, **once per group**, on one DR runtime
//!   server, **irreversible**):
//!   `UpdateDatabase.vbs` rewrites the locations stored in the group's databases. Its effect on
//!   the group cannot be undone by running anything, and what a second run does is not
//!   documented, so before it runs the step reads the group's record in the DR copy of
//!   `BizTalkMgmtDb` (`adm_Group`, `biztalk_common::group_record`, with `sqlcmd` on the DR SQL
//!   Server: it answers before `UpdateRegistry.vbs`, when WMI still reads production's
//!   management database). Both the MessageBox and the tracking database on the new server:
//!   the script ran already, no change. Both on the old server: it runs. Anything else (one of
//!   each, a third server, an answer Drover does not know) stops for an operator: the step
//!   cannot tell whether it ran. The database still restoring (SQL Server's error 927) is
//!   permanent: recover it first (Restore To Mark). Afterwards the record is read again and must
//!   name the new server. The documented provider error of SQL Server 2016 and later ("Invalid
//!   connection string attribute") fails permanently with Microsoft's fix.
//! - **[`UpdateRegistry`]** (`bts-update-registry`, F7, on **every** DR runtime server,
//!   **idempotent**; also a drill's clean-up, with the servers swapped): `UpdateRegistry.vbs`
//!   rewrites the server's registry. It first reads `MgmtDBServer` in the 32-bit registry view
//!   (where BizTalk keeps it); already the new server: no change. The old server: it runs, then
//!   `MgmtDBServer` must name the new server. Missing: the server is not joined (permanent);
//!   another server: permanent, named.
//!
//! Both write the same `SampleUpdateInfo.xml`, rendered from the input
//! (`biztalk_common::dbrefs::UpdateInfo::whole_group(old, new)`: MessageBox, tracking,
//! management, Rules Engine and SSO databases under BizTalk's default names), to BizTalk's
//! Restore folder on the target, read it back and compare its SHA-256 with the rendered text
//! before running the script: every server runs an identical copy (Microsoft: the same file on
//! every server); the output carries the hash, so the report shows they match. Scripts run
//! under the 64-bit script host.
//!
//! Two plugins because a plugin declares one effect class: UpdateDatabase.vbs cannot be undone or
//! safely repeated (a plan names it; after a crash in the middle of an attempt the engine stops
//! for an operator rather than run it again), UpdateRegistry.vbs only rewrites values that still
//! name the old server, so an interrupted attempt simply runs again.
//!
//! `check` only reads (`sqlcmd` `SELECT`, `reg query`) and says what `apply` would do. Grants a
//! workflow needs: programs `sqlcmd` (bts-update-database), `reg` (bts-update-registry) and
//! `C:\Windows\System32\cscript.exe`, file access to the target (`uses_targets`); read-only
//! patterns for `drover plan`: `sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT?*` and
//! `reg query **`.

use biztalk_common::dbrefs::{self, UpdateInfo};
use biztalk_common::group_record::{self, GroupAnswer, GroupLocations};
use biztalk_common::reg::{self, RegAnswer};
use biztalk_common::unrecognized;
use drover_sdk::excerpt;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `bts-update-database`: UpdateDatabase.vbs, once per group (irreversible).
#[derive(Default)]
pub struct UpdateDatabase;

/// `bts-update-registry`: UpdateRegistry.vbs on one server (idempotent).
#[derive(Default)]
pub struct UpdateRegistry;

/// Which script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `UpdateDatabase.vbs`, once per group.
    UpdateDatabase,
    /// `UpdateRegistry.vbs`, on every runtime server.
    UpdateRegistry,
}

/// Input: the SQL Servers the databases move between.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The SQL Server the group's databases were on (production's, `PRDSQL01`).
    pub old_sql_server: String,
    /// The SQL Server they are on now (the DR instance, `DRSQL01`).
    pub new_sql_server: String,
}

/// What the call found and did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    /// The action.
    pub action: Action,
    /// The server the script ran (or would run) on.
    pub server: String,
    /// Where the file is: `<Restore folder>\SampleUpdateInfo.xml`.
    pub update_info: String,
    /// SHA-256 (lower-case hex) of the rendered file, identical on every server.
    pub update_info_sha256: String,
    /// Whether this call ran the script (check mode: whether apply would).
    pub ran: bool,
    /// What the group's record (`update-database`: `adm_Group`'s MessageBox and tracking servers)
    /// or the server's `MgmtDBServer` (`update-registry`) said before.
    pub before: String,
    /// The same, read after the script ran (equal to `before` when it did not run).
    pub after: String,
}

impl Plugin for UpdateDatabase {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("bts-update-database", env!("CARGO_PKG_VERSION"), Effect::Irreversible)
            .description(
                "points the restored group's databases at the DR SQL Server: UpdateDatabase.vbs, once per group",
            )
            .program(dbrefs::CSCRIPT_64)
            .program("sqlcmd")
            .uses_targets()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, Action::UpdateDatabase, &input)?.run(false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, Action::UpdateDatabase, &input)?.run(true)
    }
}

impl Plugin for UpdateRegistry {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("bts-update-registry", env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "points a DR runtime server's registry at the DR SQL Server (or back, after a drill): UpdateRegistry.vbs",
            )
            .program(dbrefs::CSCRIPT_64)
            .program(reg::PROGRAM)
            .uses_targets()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, Action::UpdateRegistry, &input)?.run(false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        Session::new(ctx, Action::UpdateRegistry, &input)?.run(true)
    }
}

/// Where the target stands before the script.
enum Found {
    /// Already pointing at the new server: nothing to run.
    Done(String),
    /// Still pointing at the old server: run.
    Pending(String),
}

/// One call: the target, the input and the evidence gathered so far.
struct Session<'c, 'h> {
    ctx: &'c Ctx<'h>,
    action: Action,
    input: &'c Input,
    target: String,
    xml: String,
    evidence: Vec<Evidence>,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>, action: Action, input: &'c Input) -> Result<Self, StepError> {
        if input.old_sql_server.trim().is_empty() || input.new_sql_server.trim().is_empty() {
            return Err(StepError::permanent("old_sql_server and new_sql_server must both be named"));
        }
        if input.old_sql_server.eq_ignore_ascii_case(&input.new_sql_server) {
            return Err(StepError::permanent(format!(
                "old_sql_server and new_sql_server are the same ({}): nothing would move",
                input.new_sql_server
            )));
        }
        let xml = UpdateInfo::whole_group(&input.old_sql_server, &input.new_sql_server).render();
        Ok(Session { ctx, action, input, target: ctx.target()?.to_string(), xml, evidence: Vec::new() })
    }

    fn script(&self) -> &'static str {
        match self.action {
            Action::UpdateDatabase => dbrefs::UPDATE_DATABASE,
            Action::UpdateRegistry => dbrefs::UPDATE_REGISTRY,
        }
    }

    fn run(mut self, apply: bool) -> StepResult<Output> {
        let found = self.read()?;
        let path = dbrefs::in_restore_dir(dbrefs::UPDATE_INFO);
        let sha = sha256_hex(self.xml.as_bytes());
        let (before, pending) = match found {
            Found::Done(s) => (s, false),
            Found::Pending(s) => (s, true),
        };
        let mut output = Output {
            action: self.action,
            server: self.target.clone(),
            update_info: path.clone(),
            update_info_sha256: sha.clone(),
            ran: pending,
            before: before.clone(),
            after: before.clone(),
        };
        let new = &self.input.new_sql_server;
        if !pending {
            let summary = format!(
                "{} already points at {new} ({before}); {} not run again",
                self.what(),
                self.script()
            );
            return Ok(Outcome { changed: false, summary, output, evidence: self.evidence });
        }
        if !apply {
            let summary = format!("would run {} on {} ({before})", self.script(), self.target);
            return Ok(Outcome { changed: true, summary, output, evidence: self.evidence });
        }
        self.write_update_info(&path, &sha)?;
        self.run_script(&path)?;
        let after = match self.read()? {
            Found::Done(s) => s,
            Found::Pending(s) => {
                return Err(StepError::permanent(format!(
                    "{} on {} exited 0 but {} still points at {} ({s})",
                    self.script(),
                    self.target,
                    self.what(),
                    self.input.old_sql_server
                )));
            }
        };
        output.after = after.clone();
        let summary = format!(
            "ran {} on {} with {} (sha256 {}): {} now points at {new} ({after})",
            self.script(),
            self.target,
            dbrefs::UPDATE_INFO,
            &sha[..12],
            self.what()
        );
        Ok(Outcome { changed: true, summary, output, evidence: self.evidence })
    }

    /// What the action changes, for messages.
    fn what(&self) -> String {
        match self.action {
            Action::UpdateDatabase => "the group's record".into(),
            Action::UpdateRegistry => format!("{}'s registry", self.target),
        }
    }

    fn read(&mut self) -> Result<Found, StepError> {
        match self.action {
            Action::UpdateDatabase => self.read_group(),
            Action::UpdateRegistry => self.read_registry(),
        }
    }

    /// `adm_Group` on the new SQL Server.
    fn read_group(&mut self) -> Result<Found, StepError> {
        let (old, new) = (&self.input.old_sql_server, &self.input.new_sql_server);
        let argv = group_record::group_locations_argv(new);
        let (program, args) = argv.split_first().expect("a program");
        let ran = self.ctx.exec(&self.target, program).args(args.to_vec()).run()?;
        self.evidence.push(ran.evidence(format!("the group's record (adm_Group) on {new}")));
        let what = format!("reading adm_Group in BizTalkMgmtDb on {new}");
        let answer = group_record::parse_group_locations(&ran.stdout());
        let row = match answer {
            Ok(GroupAnswer::Row(row)) if ran.success() => row,
            Ok(GroupAnswer::Error(e)) if e.number == 927 => {
                return Err(StepError::permanent(format!(
                    "BizTalkMgmtDb on {new} is still being restored (SQL Server error 927); recover the DR databases (Restore To Mark) before {}",
                    dbrefs::UPDATE_DATABASE
                )));
            }
            Ok(GroupAnswer::Error(e)) if e.number == 911 => {
                return Err(StepError::permanent(format!(
                    "{new} has no BizTalkMgmtDb (SQL Server error 911): is it the DR SQL Server the databases were restored on?"
                )));
            }
            _ => {
                return Err(unrecognized::program(
                    &what,
                    &self.target,
                    &format!("cannot tell whether {} already ran on the group", dbrefs::UPDATE_DATABASE),
                    &ran,
                ));
            }
        };
        let said = describe_group(&row);
        if row.all_on(new) {
            Ok(Found::Done(said))
        } else if row.all_on(old) {
            Ok(Found::Pending(said))
        } else {
            Err(StepError::needs_operator(format!(
                "the group's record on {new} names neither {old} nor {new} for both databases ({said}): {} may have run in part, or the file names other servers; Drover cannot tell whether to run it, so it does not. Read adm_Group and MSBTS_GroupSetting, then finish by hand or skip the step",
                dbrefs::UPDATE_DATABASE
            )))
        }
    }

    /// `MgmtDBServer` in the 32-bit view.
    fn read_registry(&mut self) -> Result<Found, StepError> {
        let (old, new) = (&self.input.old_sql_server, &self.input.new_sql_server);
        let (key, value) = (reg::BIZTALK_ADMINISTRATION, reg::MGMT_DB_SERVER);
        let ran = self.ctx.exec(&self.target, reg::PROGRAM).args(reg::query_args_32(key, value)).run()?;
        self.evidence.push(ran.evidence(format!("{value} (32-bit view) on {}", self.target)));
        let answer = reg::parse_query(ran.output.exit_code, &ran.stdout(), &ran.stderr(), value)
            .map_err(|e| unrecognized::program("reg query", &self.target, &e.to_string(), &ran))?;
        let server = match answer {
            RegAnswer::Missing => {
                return Err(StepError::permanent(format!(
                    "{} has no {value} in its registry: it is not joined to a BizTalk group, so {} has nothing to update there",
                    self.target,
                    dbrefs::UPDATE_REGISTRY
                )));
            }
            RegAnswer::Found(v) => v.as_text().unwrap_or_default().to_owned(),
        };
        let said = format!("{value} = {server}");
        if server.eq_ignore_ascii_case(new) {
            Ok(Found::Done(said))
        } else if server.eq_ignore_ascii_case(old) {
            Ok(Found::Pending(said))
        } else {
            Err(StepError::permanent(format!(
                "{}'s {value} names {server}, neither {old} nor {new}: this server belongs to another group; {} not run",
                self.target,
                dbrefs::UPDATE_REGISTRY
            )))
        }
    }

    /// Writes the file, reads it back and compares hashes.
    fn write_update_info(&mut self, path: &str, sha: &str) -> Result<(), StepError> {
        self.ctx.write_file(&self.target, path, self.xml.as_bytes())?;
        let back = self.ctx.read_file(&self.target, path)?;
        let back_sha = sha256_hex(&back);
        self.evidence.push(Evidence::note(
            format!("{} written on {}", dbrefs::UPDATE_INFO, self.target),
            format!("{path}\nsha256 {back_sha} (rendered {sha})\n{}", self.xml),
        ));
        if back_sha != sha {
            return Err(StepError::permanent(format!(
                "{path} on {} reads back with sha256 {back_sha}, not the rendered file's {sha}; {} not run",
                self.target,
                self.script()
            )));
        }
        Ok(())
    }

    /// Runs the script under the 64-bit host and judges its exit.
    fn run_script(&mut self, path: &str) -> Result<(), StepError> {
        let argv = match self.action {
            Action::UpdateDatabase => dbrefs::update_database_argv(path),
            Action::UpdateRegistry => dbrefs::update_registry_argv(path),
        };
        let (program, args) = argv.split_first().expect("a program");
        let ran = self.ctx.exec(&self.target, program).args(args.to_vec()).run()?;
        self.evidence.push(ran.evidence(format!("{} on {}", self.script(), self.target)));
        if ran.success() {
            return Ok(());
        }
        let (stdout, stderr) = (ran.stdout(), ran.stderr());
        if dbrefs::is_provider_error(&stdout, &stderr) {
            return Err(StepError::permanent(format!(
                "{} on {} failed with \"{}\" ({}): on SQL Server 2016 and later the script must open its connection with MSOLEDBSQL; in {} change conn.Provider = \"SQLOLEDB\" to \"MSOLEDBSQL\" (Microsoft, \"How to Restore Your Databases\"), then run the step again; nothing was changed",
                self.script(),
                self.target,
                dbrefs::PROVIDER_ERROR,
                excerpt(&stderr, 3).trim(),
                dbrefs::in_restore_dir(self.script())
            )));
        }
        Err(unrecognized::program(
            &format!("cscript {}", self.script()),
            &self.target,
            "it failed with an error Drover does not know",
            &ran,
        ))
    }
}

/// `MessageBox on <server>/<db>, tracking on <server>/<db>`.
fn describe_group(row: &GroupLocations) -> String {
    format!(
        "MessageBox on {}/{}, tracking on {}/{}",
        row.subscription_server, row.subscription_db, row.tracking_server, row.tracking_db
    )
}

/// The SHA-256 of `bytes`, lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
