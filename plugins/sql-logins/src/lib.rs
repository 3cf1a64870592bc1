//! `sql-logins` (F4, idempotent): after Restore To Mark, the logins the BizTalk groups and service
//! accounts need exist on the recovered DR SQL Server, and the databases' users whose login is
//! still missing (orphaned users: Microsoft Learn, "Troubleshoot orphaned users") are reported
//! with what a person must do. On `instance`:
//!
//! 1. the user databases and their states (every one to read must be `ONLINE`: recovered);
//! 2. the server's logins (`sys.server_principals`) and each database's orphaned users
//!    (`sys.database_principals` whose SID no login has);
//! 3. the Windows logins to have: `logins` when given, else every orphaned Windows user or group
//!    (a recovered copy's users are the source's, so its orphans name exactly the logins the DR
//!    site was prepared without); each missing one is created with `CREATE LOGIN [<domain\name>]
//!    FROM WINDOWS`, which maps the users again since a Windows login's SID is the account's;
//! 4. the users still orphaned, re-read after the logins were created, each with what a person
//!    must do. A SQL Server login is never created here: its users match only a login with the
//!    source's SID, which comes with its password hash from `sp_help_revlogin` on the source.
//!
//! A re-run finds the logins and creates nothing. `check` runs only the reads (each starts with
//! `SET NOCOUNT ON; SELECT`, so the read-only grant of `sql_logshipping` covers them) and says
//! which logins apply would create. SQL Server's refusal 15025 (the login exists: someone created
//! it meanwhile) counts as present; 15401 (the domain does not know the name) stops the step
//! naming the login, after the logins before it were created. Every command line is
//! `biztalk_common::logins`'s; the runner and its evidence are `sql_logshipping::sql`'s.
//!
//! Not done: SQL Server logins (`sp_help_revlogin` is run by a person on the source, whose
//! output holds passwords), server roles and permissions granted to logins outside the databases
//! (BizTalk grants its rights through database roles, which the recovered copies hold).

use std::collections::BTreeSet;

use biztalk_common::logins::{self, Principal, PrincipalType};
use biztalk_common::logshipping::DatabaseState;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use sql_logshipping::SQLCMD;
use sql_logshipping::sql::{Answer, Sql};

#[cfg(test)]
mod tests;

/// The plugin.
#[derive(Default)]
pub struct SqlLogins;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The recovered DR SQL Server, a server of the inventory by the name `sqlcmd -S` reaches it
    /// with (`DRSQL01`); the step runs `sqlcmd` there.
    pub instance: String,
    /// The Windows logins to have, `DOMAIN\name` (users or groups). Default: the orphaned Windows
    /// users and groups of the databases read.
    #[serde(default)]
    pub logins: Option<Vec<String>>,
    /// The databases whose users are read. Default: every user database of the instance.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
}

/// A database user whose login is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Orphan {
    /// The database.
    pub database: String,
    /// The user (the login's name).
    pub user: String,
    /// `SQL Server login`, `Windows user` or `Windows group`.
    pub kind: String,
}

/// Output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// The instance.
    pub instance: String,
    /// The databases whose users were read.
    pub databases: Vec<String>,
    /// The Windows logins created (in `check`: that apply would create).
    pub created: Vec<String>,
    /// The Windows logins wanted that were there already.
    pub present: Vec<String>,
    /// The users still orphaned once the logins exist, by database.
    pub still_orphaned: Vec<Orphan>,
    /// What a person must do about them, one line per login.
    pub to_do: Vec<String>,
}

impl Plugin for SqlLogins {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("sql-logins", env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description("creates the missing Windows logins of the recovered BizTalk databases' users on the DR SQL Server and reports the users still orphaned (F4)")
            .program(SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        ensure(ctx, input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        ensure(ctx, input, true)
    }
}

fn ensure(ctx: &Ctx, input: Input, apply: bool) -> StepResult<Output> {
    let instance = input.instance.trim().to_owned();
    if instance.is_empty() {
        return Err(StepError::permanent("the instance must not be empty"));
    }
    if let Some(wanted) = &input.logins
        && let Some(odd) = wanted.iter().find(|l| !l.contains('\\') || l.trim().is_empty())
    {
        return Err(StepError::permanent(format!(
            "'{odd}' is not a Windows login (DOMAIN\\name): SQL Server logins are not created here"
        )));
    }
    let mut sql = Sql::default();
    let databases = recovered(ctx, &mut sql, &instance, input.databases.as_deref())?;
    let server_logins = read_logins(ctx, &mut sql, &instance)?;
    let orphans = read_orphans(ctx, &mut sql, &instance, &databases)?;
    let wanted: Vec<String> = match &input.logins {
        Some(logins) => logins.iter().map(|l| l.trim().to_owned()).collect(),
        None => orphans.iter().filter(|(_, p)| p.kind.is_windows()).map(|(_, p)| p.name.clone()).collect(),
    };
    let mut output = Output { instance: instance.clone(), databases: databases.clone(), ..Output::default() };
    let mut seen = BTreeSet::new();
    for login in wanted {
        if !seen.insert(login.to_lowercase()) {
            continue;
        }
        if logins::has_login(&server_logins, &login) {
            output.present.push(login);
        } else if !apply || create(ctx, &mut sql, &instance, &login)? {
            output.created.push(login);
        } else {
            output.present.push(login);
        }
    }
    let still: Vec<(String, Principal)> = if apply && !output.created.is_empty() {
        read_orphans(ctx, &mut sql, &instance, &databases)?
    } else {
        let created = |name: &str| output.created.iter().any(|c| c.eq_ignore_ascii_case(name));
        orphans.into_iter().filter(|(_, p)| !(p.kind.is_windows() && created(&p.name))).collect()
    };
    output.to_do = to_do(&instance, &still);
    output.still_orphaned = still
        .into_iter()
        .map(|(database, p)| Orphan { database, user: p.name, kind: p.kind.to_string() })
        .collect();
    let summary = summary(&output, apply);
    let outcome = if output.created.is_empty() {
        Outcome::unchanged(output, summary)
    } else {
        Outcome::changed(output, summary)
    };
    Ok(sql.attach(outcome))
}

/// The databases to read, each `ONLINE`; a permanent error names one that is not.
fn recovered(
    ctx: &Ctx,
    sql: &mut Sql,
    instance: &str,
    chosen: Option<&[String]>,
) -> Result<Vec<String>, StepError> {
    let states = sql.databases(ctx, instance)?;
    let names: Vec<String> = match chosen {
        Some(chosen) => chosen.iter().map(|d| d.trim().to_owned()).collect(),
        None => states.iter().map(|(name, _)| name.clone()).collect(),
    };
    for name in &names {
        match states.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, DatabaseState::Online)) => {}
            Some((_, state)) => {
                let state = match state {
                    DatabaseState::Restoring => "RESTORING",
                    DatabaseState::Other(other) => other,
                    DatabaseState::Online => "ONLINE",
                };
                return Err(StepError::permanent(format!(
                    "{name} on {instance} is {state}, not recovered: its users are read after Restore To Mark"
                )));
            }
            None => return Err(StepError::permanent(format!("{instance} has no database {name}"))),
        }
    }
    Ok(names)
}

fn read_logins(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<Vec<Principal>, StepError> {
    sql.read(ctx, instance, instance, logins::SERVER_LOGINS, "logins", logins::parse_principals)
}

/// Every database's orphaned users, database by database.
fn read_orphans(
    ctx: &Ctx,
    sql: &mut Sql,
    instance: &str,
    databases: &[String],
) -> Result<Vec<(String, Principal)>, StepError> {
    let mut all = Vec::new();
    for database in databases {
        let query = logins::orphaned_users(database);
        let users = sql.read(
            ctx,
            instance,
            instance,
            &query,
            &format!("orphaned users of {database}"),
            logins::parse_principals,
        )?;
        all.extend(users.into_iter().map(|u| (database.clone(), u)));
    }
    Ok(all)
}

/// Creates the Windows login `login`: true when created, false when SQL Server says it exists.
fn create(ctx: &Ctx, sql: &mut Sql, instance: &str, login: &str) -> Result<bool, StepError> {
    let statement = logins::create_windows_login(login);
    match sql.run(ctx, instance, instance, &statement, &format!("CREATE LOGIN {login}"))?.0 {
        Answer::Rows(_) => Ok(true),
        Answer::Sql(error) if logins::already_exists(&error) => Ok(false),
        Answer::Sql(error) if logins::unknown_to_the_domain(&error) => Err(StepError::permanent(format!(
            "{instance} cannot create the login {login}: SQL Server error 15401: {}; create the account in the domain, or leave it out with `logins`",
            error.message
        ))),
        Answer::Sql(error) => Err(StepError::permanent(format!(
            "CREATE LOGIN {login} on {instance}: SQL Server error {}: {}",
            error.number, error.message
        ))),
        Answer::Unreachable(line) => {
            Err(StepError::retryable(format!("CREATE LOGIN {login}: {instance} does not answer ({line})")))
        }
    }
}

/// One line per orphaned login: what a person does about it.
fn to_do(instance: &str, still: &[(String, Principal)]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut done = BTreeSet::new();
    for (_, principal) in still {
        if !done.insert((principal.name.to_lowercase(), principal.kind)) {
            continue;
        }
        let databases: Vec<&str> = still
            .iter()
            .filter(|(_, p)| p.name.eq_ignore_ascii_case(&principal.name) && p.kind == principal.kind)
            .map(|(d, _)| d.as_str())
            .collect();
        let line = match principal.kind {
            PrincipalType::Sql => format!(
                "{}: recreate the SQL Server login on {instance} with the source's SID and password hash (sp_help_revlogin's output from the production SQL Server), then check its users in {}",
                principal.name,
                databases.join(", ")
            ),
            PrincipalType::WindowsUser | PrincipalType::WindowsGroup => format!(
                "{}: create the login on {instance} ({}), or drop its users in {} if it is no longer needed",
                principal.name,
                logins::create_windows_login(&principal.name),
                databases.join(", ")
            ),
        };
        lines.push(line);
    }
    lines
}

fn summary(output: &Output, apply: bool) -> String {
    let instance = &output.instance;
    let mut parts = Vec::new();
    if !output.created.is_empty() {
        let verb = if apply { "created" } else { "would create" };
        parts.push(format!(
            "{verb} {} Windows login(s): {}",
            output.created.len(),
            output.created.join(", ")
        ));
    }
    if !output.still_orphaned.is_empty() {
        parts.push(format!(
            "{} user(s) still orphaned, for a person to fix ({} login(s))",
            output.still_orphaned.len(),
            output.to_do.len()
        ));
    }
    if parts.is_empty() {
        format!("{instance} has every login its databases' users need: nothing to do")
    } else {
        format!("{instance}: {}", parts.join("; "))
    }
}
drover_sdk::export_plugin!(SqlLogins);
