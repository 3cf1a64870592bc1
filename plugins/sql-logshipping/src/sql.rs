//! Runs one `sqlcmd` query (`biztalk_common::logshipping::sqlcmd`) and sorts the answer: rows,
//! a SQL Server error (`Msg <n>` on stdout, exit 1 under `-b`), a server that does not answer
//! (`Login timeout expired` or a refused logon on stderr, exit 1), or anything else, which needs
//! an operator with the raw text (`biztalk_common::unrecognized`). Every run is kept as evidence.
//! Host errors pass through with `?`, so an unreachable target stays retryable.

use biztalk_common::logshipping::{self, SqlError, Unreadable};
use biztalk_common::unrecognized;
use drover_sdk::prelude::*;

use crate::SQLCMD;

/// What a query answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exit 0: the rows (possibly none).
    Rows(String),
    /// SQL Server refused or failed the statement.
    Sql(SqlError),
    /// The instance does not answer: sqlcmd's message.
    Unreachable(String),
}

/// Runs queries and keeps each run as evidence.
#[derive(Default)]
pub struct Sql {
    /// Every run, in order.
    pub evidence: Vec<Evidence>,
}

impl Sql {
    /// Runs `query` on `instance` from the server `on`; `label` names it in the evidence.
    pub fn run(
        &mut self,
        ctx: &Ctx,
        on: &str,
        instance: &str,
        query: &str,
        label: &str,
    ) -> Result<(Answer, Executed), StepError> {
        let argv = logshipping::sqlcmd(instance, query);
        let ran = ctx.exec(on, SQLCMD).args(&argv[1..]).run()?;
        self.evidence.push(ran.evidence(format!("{label} on {instance}")));
        let stdout = ran.stdout();
        let answer = match ran.output.exit_code {
            Some(0) => Answer::Rows(stdout),
            Some(1) => {
                if let Some(error) = logshipping::sql_error(&stdout) {
                    Answer::Sql(error)
                } else if let Some(line) = unreachable(&ran.stderr()) {
                    Answer::Unreachable(line)
                } else {
                    return Err(unrecognized::program(
                        &what(query),
                        on,
                        "exit 1 without a SQL Server error or a logon failure",
                        &ran,
                    ));
                }
            }
            _ => {
                return Err(unrecognized::program(
                    &what(query),
                    on,
                    "an exit code sqlcmd does not give",
                    &ran,
                ));
            }
        };
        Ok((answer, ran))
    }

    /// Runs `query` and wants rows: a SQL Server error fails permanently, an instance that does
    /// not answer is retryable; both name the instance and `label`.
    pub fn rows(
        &mut self,
        ctx: &Ctx,
        on: &str,
        instance: &str,
        query: &str,
        label: &str,
    ) -> Result<String, StepError> {
        match self.run(ctx, on, instance, query, label)?.0 {
            Answer::Rows(rows) => Ok(rows),
            Answer::Sql(error) => Err(StepError::permanent(format!(
                "{label} on {instance}: SQL Server error {}: {}",
                error.number, error.message
            ))),
            Answer::Unreachable(line) => {
                Err(StepError::retryable(format!("{label}: {instance} does not answer ({line})")))
            }
        }
    }

    /// Runs a query read by `parse`; an answer it cannot read needs an operator.
    pub fn read<T>(
        &mut self,
        ctx: &Ctx,
        on: &str,
        instance: &str,
        query: &str,
        label: &str,
        parse: impl FnOnce(&str) -> Result<T, Unreadable>,
    ) -> Result<T, StepError> {
        let rows = self.rows(ctx, on, instance, query, label)?;
        parse(&rows).map_err(|e| {
            unrecognized::needs_operator(&what(query), on, &e.to_string(), Some(0), &[("stdout", &rows)])
        })
    }

    /// Runs a statement that prints nothing on success (`sp_update_job`, `sp_LogShippingClean`,
    /// `sp_ForceFullBackup`).
    pub fn exec(&mut self, ctx: &Ctx, instance: &str, statement: &str, label: &str) -> Result<(), StepError> {
        self.exec_via(ctx, instance, instance, statement, label)
    }

    /// The user databases of `instance` and their states.
    pub fn databases(
        &mut self,
        ctx: &Ctx,
        instance: &str,
    ) -> Result<Vec<(String, logshipping::DatabaseState)>, StepError> {
        let parse = logshipping::parse_database_states;
        self.read(ctx, instance, instance, logshipping::DATABASE_STATES, "database states", parse)
    }

    /// `outcome` with every run as its evidence.
    pub fn attach<T>(self, mut outcome: Outcome<T>) -> Outcome<T> {
        outcome.evidence.extend(self.evidence);
        outcome
    }

    /// [`Self::exec`] from the server `on`.
    pub fn exec_via(
        &mut self,
        ctx: &Ctx,
        on: &str,
        instance: &str,
        statement: &str,
        label: &str,
    ) -> Result<(), StepError> {
        self.rows(ctx, on, instance, statement, label).map(drop)
    }
}

/// sqlcmd's line saying the instance does not answer or refused the logon.
fn unreachable(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .find(|line| line.contains("Login timeout expired") || line.contains("Login failed for user"))
        .map(str::to_owned)
}

/// `sqlcmd -Q "<first words of the query>…"` for messages.
fn what(query: &str) -> String {
    let short: String = query.chars().take(60).collect();
    let dots = if short.len() < query.len() { "…" } else { "" };
    format!("sqlcmd -Q \"{short}{dots}\"")
}
