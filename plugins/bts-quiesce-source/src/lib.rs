//! `bts-quiesce-source`: quiesces a production BizTalk group that still runs, before a failover
//! (docs/biztalk.md, "Failover activation", F1; Microsoft Learn, "Stopping Application Processing
//! on the Source System"), so that the last log mark holds everything production processed and
//! nothing processes after it: a failover that leaves production running splits the brain.
//!
//! Through BizTalk's WMI provider on the step's target (a production runtime server, whose
//! registry names production's management database), through `sqlcmd` from there to the
//! production SQL Server (`source_sql`) and the DR SQL instances (`destinations`), and `sc.exe` on
//! each production server of `servers`:
//!
//! 1. every enabled receive location disabled (`MSBTS_ReceiveLocation.Disable()`), recording
//!    which ([`processing`]);
//! 2. every running host instance on `servers` stopped (`MSBTS_HostInstance.Stop()`), recording
//!    which, then read again: none may still run ([`processing`]);
//! 3. the Backup BizTalk Server job started at its `MarkAndBackupLog` step once more, so the
//!    newest log set's mark holds everything (only when processing was running or that job is
//!    still enabled: a quiesced source has its mark already), then every BizTalk SQL Server Agent
//!    job of the source disabled and any running one stopped, recording which ([`jobs`]);
//!    then each DR SQL instance's Get Backup History started where it has not imported that set
//!    yet, and read again ([`jobs`]);
//! 4. (BAM: disabling the BAM SSIS packages and stopping Analysis Services is left to a person;
//!    the output's `left_to_people` says so);
//! 5. `ENTSSO` and `RuleEngineUpdateService` (`services`) stopped on each of `servers` where
//!    they run, recording which ([`services`]);
//! 6. (waiting until no BizTalk connection is left open on the source, `sp_who2`, is left to a
//!    person: the lab cannot show sessions; `left_to_people` says so).
//!
//! Every name is written to the step instance's durable state before its change, so a retried
//! attempt reports everything this step stopped; the output lists them for whoever restores
//! production later (re-protect, or a person): nothing here starts or enables anything again.
//! Only what this step found running or enabled is recorded.
//!
//! Input: `servers` (production runtime servers, required), `source_sql` (required),
//! `destinations` (DR SQL instances; empty: the DR site's import is not checked), `services`
//! (default `ENTSSO`, `RuleEngineUpdateService`). Workflows reference it as
//! `bts-quiesce-source@^1`.
//!
//! **Effect class: idempotent.** A re-run finds the locations disabled, the instances stopped,
//! the jobs disabled and the services stopped, and changes nothing. The one repeatable change is
//! the log mark: an attempt interrupted after starting the job and before disabling it starts it
//! again, which only takes one more log set whose mark holds everything (log shipping restores
//! each in turn). Not reversible: starting production again after a failover would split the
//! brain, so there is no `compensate`; the output's records are what a person restores from.
//!
//! `check` only reads. Grants a workflow needs: programs `powershell.exe`, `sqlcmd` and `sc.exe`,
//! the production servers other than the target as targets (`uses_targets`); read-only patterns
//! for `drover plan`: `powershell.exe -NoProfile -NonInteractive -Command Get-CimInstance*`,
//! `sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT*` and `sc.exe query *`.

use biztalk_common::{powershell, sc};
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use sql_logshipping::SetOut;

pub mod jobs;
pub mod processing;
pub mod services;

/// The plugin.
#[derive(Default)]
pub struct BtsQuiesceSource;

/// Input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The production BizTalk runtime servers: their host instances are stopped, their services
    /// (`services`) stopped.
    pub servers: Vec<String>,
    /// The production SQL Server that holds the BizTalk databases and jobs (`PRDSQL01`).
    pub source_sql: String,
    /// The DR SQL instances (log-shipping destinations) that must import the last mark's set.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// The services to stop on each of `servers` (default `ENTSSO`, `RuleEngineUpdateService`);
    /// one a server does not have is skipped.
    #[serde(default = "default_services")]
    pub services: Vec<String>,
}

fn default_services() -> Vec<String> {
    vec!["ENTSSO".into(), "RuleEngineUpdateService".into()]
}

/// A service stopped on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceRef {
    /// The server.
    pub server: String,
    /// The service.
    pub service: String,
}

/// A DR SQL instance after the step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Destination {
    /// The instance.
    pub instance: String,
    /// The newest complete log set it imported (check mode: as found).
    pub newest_imported: Option<SetOut>,
    /// Its Get Backup History job was started by this call (check mode: would be).
    pub history_imported: bool,
}

/// What the step stopped (every attempt of this step instance), and where the source stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Receive locations this step disabled (check mode: would disable): enable these to give
    /// production its processing back.
    pub receive_locations_disabled: Vec<String>,
    /// Host instances this step stopped, by WMI name (check mode: would stop).
    pub host_instances_stopped: Vec<String>,
    /// The source's BizTalk SQL Server Agent jobs this step disabled (check mode: would disable).
    pub jobs_disabled: Vec<String>,
    /// Jobs this step stopped while they ran (check mode: would stop).
    pub jobs_stopped: Vec<String>,
    /// Services this step stopped (check mode: would stop).
    pub services_stopped: Vec<ServiceRef>,
    /// This step took the last log mark (check mode: would take one).
    pub mark_taken: bool,
    /// The source's newest complete log set after the step: the set the DR site recovers to.
    pub last_mark: Option<SetOut>,
    /// The DR SQL instances, in input order.
    pub destinations: Vec<Destination>,
    /// Parts of the procedure this step does not do.
    pub left_to_people: Vec<String>,
}

/// What the step does not do (F1 steps 4 and 6 of the review; 4, 5, 7 to 9 of Microsoft's page).
pub const LEFT_TO_PEOPLE: [&str; 3] = [
    "BAM: disable the BAM cube update and data maintenance SSIS packages, and stop Analysis Services (MSSQLServerOLAPService) on the SQL Servers",
    "Close every other application connected to the BizTalk databases (Administration consoles, Visual Studio, other BizTalk applications) and check with sp_who2 that no BizTalk connection is left open; application databases that are restored too must be quiesced as well",
    "Production's host instance services keep their start mode: a production server that restarts starts them again, so keep production down or its services disabled until the failover is complete",
];

impl Plugin for BtsQuiesceSource {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), Effect::Idempotent)
            .description(
                "quiesces a production BizTalk group that still runs before a failover (F1): receive locations disabled, host instances stopped, a last log mark shipped to DR, the BizTalk SQL Agent jobs disabled, ENTSSO and the rule engine service stopped; records what it stopped",
            )
            .program(powershell::PROGRAM)
            .program(sql_logshipping::SQLCMD)
            .program(sc::PROGRAM)
            .uses_targets()
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        quiesce(ctx, &input, false)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        quiesce(ctx, &input, true)
    }
}

drover_sdk::export_plugin!(BtsQuiesceSource);

/// One call: the target and the evidence gathered so far.
pub struct Session<'c, 'h> {
    /// The host.
    pub ctx: &'c Ctx<'h>,
    /// The step's target (a production runtime server).
    pub target: String,
    /// Every command run, in order.
    pub evidence: Vec<Evidence>,
    /// Apply (false: check, reads only).
    pub apply: bool,
}

impl<'c, 'h> Session<'c, 'h> {
    fn new(ctx: &'c Ctx<'h>, apply: bool) -> Result<Self, StepError> {
        Ok(Session { ctx, target: ctx.target()?.to_string(), evidence: Vec::new(), apply })
    }

    /// Runs `program args` on `server` and keeps it as evidence labelled `label`.
    pub fn exec(
        &mut self,
        server: &str,
        program: &str,
        args: Vec<String>,
        label: String,
    ) -> Result<Executed, StepError> {
        let ran = self.ctx.exec(server, program).args(args).run()?;
        self.evidence.push(ran.evidence(label));
        Ok(ran)
    }

    /// Adds `item` to the durable list `key` (before the change it names) unless it is there.
    pub fn record<T>(&self, key: &str, item: T) -> Result<(), StepError>
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq,
    {
        let mut list: Vec<T> = self.ctx.state_get_json(key)?.unwrap_or_default();
        if !list.contains(&item) {
            list.push(item);
            self.ctx.state_set_json(key, &list)?;
        }
        Ok(())
    }

    /// The durable list `key`.
    pub fn recorded<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Vec<T>, StepError> {
        Ok(self.ctx.state_get_json(key)?.unwrap_or_default())
    }
}

/// Appends `pending` (check mode: what would change) to `recorded` without repeats.
fn union<T: PartialEq + Clone>(mut recorded: Vec<T>, pending: &[T]) -> Vec<T> {
    for p in pending {
        if !recorded.contains(p) {
            recorded.push(p.clone());
        }
    }
    recorded
}

fn quiesce(ctx: &Ctx, input: &Input, apply: bool) -> StepResult<Output> {
    if input.servers.iter().all(|s| s.trim().is_empty()) {
        return Err(StepError::permanent("servers must name the production BizTalk runtime servers"));
    }
    if input.source_sql.trim().is_empty() {
        return Err(StepError::permanent("source_sql must name the production SQL Server"));
    }
    let mut session = Session::new(ctx, apply)?;
    let locations = processing::disable_receive_locations(&mut session)?;
    let instances = processing::stop_host_instances(&mut session, &input.servers)?;
    // Stopped now or by an earlier attempt of this step: the newest mark may miss some of it.
    let processing_stopped = !locations.is_empty()
        || !instances.is_empty()
        || !session.recorded::<String>(processing::LOCATIONS)?.is_empty()
        || !session.recorded::<String>(processing::INSTANCES)?.is_empty();
    let sql = jobs::quiesce_jobs(&mut session, input, processing_stopped)?;
    let stopped_services = services::stop(&mut session, &input.servers, &input.services)?;

    let output = Output {
        receive_locations_disabled: union(session.recorded(processing::LOCATIONS)?, &locations),
        host_instances_stopped: union(session.recorded(processing::INSTANCES)?, &instances),
        jobs_disabled: union(session.recorded(jobs::DISABLED)?, &sql.disabled),
        jobs_stopped: union(session.recorded(jobs::STOPPED)?, &sql.stopped),
        services_stopped: union(session.recorded(services::STOPPED)?, &stopped_services),
        mark_taken: sql.mark_taken,
        last_mark: sql.last_mark.clone(),
        destinations: sql.destinations.clone(),
        left_to_people: LEFT_TO_PEOPLE.iter().map(|s| (*s).to_owned()).collect(),
    };
    let imported = sql.destinations.iter().filter(|d| d.history_imported).count();
    let changes = [
        (locations.len(), "receive location(s) disabled"),
        (instances.len(), "host instance(s) stopped"),
        (usize::from(sql.mark_taken), "last log mark taken"),
        (sql.disabled.len(), "SQL Server Agent job(s) disabled"),
        (sql.stopped.len(), "job(s) stopped"),
        (imported, "DR SQL instance(s) importing the last mark"),
        (stopped_services.len(), "service(s) stopped"),
    ];
    let done: Vec<String> =
        changes.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    let mark = output.last_mark.as_ref().map_or_else(
        || format!("{} has no log set yet", input.source_sql),
        |m| format!("the newest log set is {} ({})", m.id, m.mark),
    );
    let evidence = std::mem::take(&mut session.evidence);
    let outcome = if done.is_empty() {
        Outcome::unchanged(output, format!("production is quiesced already; {mark}"))
    } else {
        let verb = if apply { "quiesced production" } else { "would quiesce production" };
        Outcome::changed(output, format!("{verb}: {}; {mark}", done.join(", ")))
    };
    let mut outcome = outcome;
    outcome.evidence = evidence;
    Ok(outcome)
}

#[cfg(test)]
mod tests;
