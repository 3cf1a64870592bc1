//! BizTalk log shipping at failover (fidelity review §4.2; docs/biztalk.md, "Failover
//! activation"; `lab/PROTOCOL.md`, "DR SQL and log shipping"): the logic of five plugins, one per
//! effect class, since a plugin declares one effect class and the engine acts on it when an
//! attempt is interrupted (docs/plugin-authoring.md):
//!
//! | plugin (crate) | step | effect | type |
//! |---|---|---|---|
//! | `logshipping-measure` | F0: where each DR SQL instance stands, the data-loss window | read-only | [`measure::Measure`] |
//! | `logshipping-catch-up` | F2: Restore Databases on every instance behind | idempotent | [`catch_up::CatchUp`] |
//! | `logshipping-restore-to-mark` | F3: the two jobs disabled, Restore To Mark, databases ONLINE | irreversible | [`restore_to_mark::RestoreToMark`] |
//! | `logshipping-clean` | drill X2: `sp_LogShippingClean`, `sp_ForceFullBackup`, reseed | irreversible | [`clean::Clean`] |
//! | `logshipping-reprotect` | F14: the recovered instance's backup job at a new location, a full backup forced, the BizTalk jobs enabled | idempotent | [`reprotect::Reprotect`] |
//!
//! Each plugin crate is a thin `cdylib` that exports one of these types; the types, their tests
//! against the fake host and the shared `sqlcmd` runner ([`sql`]) live here so the five stay one
//! piece of code. Every command line comes from `biztalk_common::logshipping`.
//!
//! Every step runs without a target of its own: it acts on the DR SQL instances named in its
//! input (`destinations`), each a server of the inventory on which `sqlcmd -S <server>` runs, and
//! asks the source (`source`, the production SQL Server) through the first of them. Grant the
//! step those targets and the program `sqlcmd`. For `drover plan`, grant the reads as read-only
//! (every query that only reads starts with `SET NOCOUNT ON; SELECT`):
//!
//! ```toml
//! grants = { targets = ["DRSQL01"], programs = ["sqlcmd"],
//!            read-only = ["sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT*"] }
//! ```
//!
//! `check` runs only those reads, in every plugin.

use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub mod catch_up;
pub mod clean;
pub mod jobs;
pub mod measure;
pub mod reprotect;
pub mod restore_to_mark;
pub mod sql;

#[cfg(test)]
mod reprotect_tests;
#[cfg(test)]
mod tests;

/// The program every plugin runs.
pub const SQLCMD: &str = "sqlcmd";

/// The SQL Server instances a step works on: every plugin's input has these two fields,
/// `destinations` (the DR SQL instances, log-shipping destinations, each a server of the
/// inventory by the name `sqlcmd -S` reaches it with, `DRSQL01`) and `source` (the production SQL
/// Server, `PRDSQL01`, asked through the first destination).
#[derive(Debug, Clone)]
pub struct Instances {
    /// The DR SQL instances.
    pub destinations: Vec<String>,
    /// The production SQL Server.
    pub source: String,
}

impl Instances {
    /// A permanent error unless there is at least one destination and no name is blank.
    pub fn validate(&self) -> Result<(), StepError> {
        catch_up::validate(&self.destinations)?;
        if self.source.trim().is_empty() {
            return Err(StepError::permanent("the source SQL Server's name is empty"));
        }
        Ok(())
    }

    /// The server through which the source is asked.
    pub fn via(&self) -> &str {
        &self.destinations[0]
    }
}

/// A backup set as the output shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetOut {
    /// `BackupSetId`.
    pub id: u64,
    /// `MarkName`.
    pub mark: String,
    /// The mark's time, RFC 3339 UTC, when its name holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_at: Option<String>,
}

impl From<&biztalk_common::logshipping::BackupSet> for SetOut {
    fn from(set: &biztalk_common::logshipping::BackupSet) -> Self {
        SetOut { id: set.id, mark: set.mark.clone(), marked_at: set.mark_time().map(|t| t.rfc3339()) }
    }
}
