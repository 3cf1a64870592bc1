//! `logshipping-clean` (drill X2, irreversible: it drops databases): after a drill recovered the
//! DR SQL instances, returns them to log shipping ("Cleaning the Destination Environment"): on
//! each instance with a recovered (not `RESTORING`) database, Restore Databases disabled, then
//! `sp_LogShippingClean '<source id>'` (drops the log-shipped databases and forgets the last
//! restored set), and the source's SQL Server Agent jobs that Restore To Mark recreated there
//! deleted (`sp_delete_job`: the jobs of the instance that the source also has, less the log
//! shipping jobs; without their databases they would fail on every schedule, and the next
//! Restore To Mark creates them again; Microsoft's pages say nothing about them, so this is
//! Drover's inference, docs/biztalk.md, "Drill mode"); `sp_ForceFullBackup` at the source, so that
//! its next backup is a full set; then Get Backup History and Restore Databases enabled on every
//! instance, whose next scheduled runs import and restore that full set: log shipping re-seeds.
//!
//! An instance whose databases are all `RESTORING` is shipping logs already and is left alone; one
//! without databases was cleaned (by an interrupted attempt, say) and only gets the rest. The
//! source must answer: the drill leaves production running. `check` reads only.

use biztalk_common::logshipping;
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Instances;
use crate::jobs;
use crate::sql::Sql;

/// The plugin.
#[derive(Default)]
pub struct Clean;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The DR SQL instances (log-shipping destinations), each a server of the inventory.
    pub destinations: Vec<String>,
    /// The production SQL Server, the log-shipping source (`PRDSQL01`).
    pub source: String,
    /// The source's identifier for `sp_LogShippingClean`; the source's name when absent (Microsoft
    /// says only "the identifier configured on the production SQL Server instances").
    #[serde(default)]
    pub source_id: Option<String>,
}

/// One instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Cleaned {
    /// The instance.
    pub instance: String,
    /// The databases `sp_LogShippingClean` dropped (in `check`: would drop).
    pub dropped: Vec<String>,
    /// The log-shipping jobs enabled again (in `check`: would enable).
    pub enabled: Vec<String>,
    /// The source's jobs Restore To Mark had recreated here, deleted (in `check`: would delete).
    #[serde(default)]
    pub deleted_jobs: Vec<String>,
}

/// Output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Each instance, in input order.
    pub instances: Vec<Cleaned>,
    /// `sp_ForceFullBackup` ran at the source (in `check`: would run).
    pub full_backup_forced: bool,
}

impl Plugin for Clean {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("logshipping-clean", env!("CARGO_PKG_VERSION"), Effect::Irreversible)
            .description("drops a drill's recovered DR SQL databases and re-seeds log shipping (X2)")
            .program(crate::SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        clean(ctx, input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        clean(ctx, input, true)
    }
}

fn clean(ctx: &Ctx, input: Input, apply: bool) -> StepResult<Output> {
    let instances = Instances { destinations: input.destinations, source: input.source };
    instances.validate()?;
    let source_id = input.source_id.unwrap_or_else(|| instances.source.clone());
    let mut sql = Sql::default();
    let mut output = Output::default();
    let source_jobs = jobs::list_all(ctx, &mut sql, instances.via(), &instances.source)?;
    for instance in &instances.destinations {
        let databases = sql.databases(ctx, instance)?;
        let all = jobs::list(ctx, &mut sql, instance)?;
        let history = jobs::find(&all, instance, logshipping::GET_BACKUP_HISTORY)?;
        let restore = jobs::find(&all, instance, logshipping::RESTORE_DATABASES)?;
        let shipping = !databases.is_empty()
            && databases.iter().all(|(_, state)| *state == logshipping::DatabaseState::Restoring);
        let mut cleaned = Cleaned {
            instance: instance.clone(),
            dropped: Vec::new(),
            enabled: Vec::new(),
            deleted_jobs: Vec::new(),
        };
        if !shipping && !databases.is_empty() {
            cleaned.dropped = databases.iter().map(|(name, _)| name.clone()).collect();
            output.full_backup_forced = true;
            if apply {
                jobs::set_enabled(ctx, &mut sql, instance, &restore, false)?;
                sql.exec(ctx, instance, &logshipping::log_shipping_clean(&source_id), "sp_LogShippingClean")?;
            }
        } else if databases.is_empty() {
            output.full_backup_forced = true;
        }
        if !shipping {
            let here = jobs::list_all(ctx, &mut sql, instance, instance)?;
            let recreated = here.iter().filter(|j| {
                !all.iter().any(|ls| ls.name == j.name) && source_jobs.iter().any(|s| s.name == j.name)
            });
            for job in recreated {
                if apply {
                    let delete = logshipping::delete_job(&job.name);
                    sql.exec(ctx, instance, &delete, &format!("delete {}", job.name))?;
                }
                cleaned.deleted_jobs.push(job.name.clone());
            }
        }
        let restore_enabled = restore.enabled && cleaned.dropped.is_empty();
        for (job, enabled) in [(&history, history.enabled), (&restore, restore_enabled)] {
            if !enabled {
                cleaned.enabled.push(job.name.clone());
            }
        }
        output.instances.push(cleaned);
    }
    if output.full_backup_forced && apply {
        sql.exec_via(
            ctx,
            instances.via(),
            &instances.source,
            logshipping::FORCE_FULL_BACKUP,
            "sp_ForceFullBackup",
        )?;
    }
    if apply {
        for cleaned in &output.instances {
            for job in &cleaned.enabled {
                let state = logshipping::JobState { name: job.clone(), enabled: false, running: false };
                jobs::set_enabled(ctx, &mut sql, &cleaned.instance, &state, true)?;
            }
        }
    }
    let changed = output.full_backup_forced
        || output.instances.iter().any(|c| !c.enabled.is_empty() || !c.deleted_jobs.is_empty());
    let verb = if apply { "" } else { "would " };
    let summary = if changed {
        let dropped: Vec<&str> =
            output.instances.iter().filter(|c| !c.dropped.is_empty()).map(|c| c.instance.as_str()).collect();
        format!(
            "{verb}clean {} and force a full backup on {}: log shipping re-seeds",
            if dropped.is_empty() { "nothing".to_owned() } else { dropped.join(", ") },
            instances.source
        )
    } else {
        "every DR SQL instance is shipping logs: nothing to clean".to_owned()
    };
    let outcome =
        if changed { Outcome::changed(output, summary) } else { Outcome::unchanged(output, summary) };
    Ok(sql.attach(outcome))
}
