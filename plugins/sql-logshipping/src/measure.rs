//! `logshipping-measure` (F0, read-only): where log shipping stands when the disaster is declared.
//! On each DR SQL instance the last restored set (`bts_LogShippingLastRestoreSet`) and the newest
//! imported log set (the one Restore To Mark recovers to); at the source, if it answers, its newest
//! complete log set. The output says whether the instances agree, the set the failover recovers
//! to, and the data-loss window `rpo: {recovery_point, failure_time}` for the recovery report
//! (`[report] rpo = "steps.<id>.output.rpo"`): the recovery point is that set's mark time (UTC;
//! docs/biztalk.md, "F0"), the failure time the operator's `failure_time` (given at the declare
//! gate; the plugin cannot see when production failed). When the source still answers, the output
//! says production is alive and how many log sets it holds beyond what the DR site received.
//!
//! With `mode = "failover"` a source that still answers is refused (a split brain: two groups
//! processing) unless the operator declares it quiesced (`source_quiesced`, F1 done); with
//! `mode = "drill"` a source that does not answer is refused (production is lost: that is a
//! failover, not a drill). Either way the refusal comes before the declare gate, so nobody is
//! asked to approve what must not happen. `briefing` is the text for the declare gate: the
//! recovery point, the data-loss window, production's state and, in a drill, what the drill costs.
//!
//! `check` and `apply` run the same reads and never report a change.

use biztalk_common::logshipping::{self, BackupSet};
use drover_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sql::{Answer, Sql};
use crate::{Instances, SetOut};

/// The plugin.
#[derive(Default)]
pub struct Measure;

/// Input: the instances, and when production failed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The DR SQL instances (log-shipping destinations), each a server of the inventory
    /// (`DRSQL01`).
    pub destinations: Vec<String>,
    /// The production SQL Server, the log-shipping source (`PRDSQL01`).
    pub source: String,
    /// When production failed, RFC 3339 with a zone (`2026-11-22T10:07:00Z`), as the operator
    /// declares it; empty or absent: the data-loss window is left unmeasured.
    #[serde(default)]
    pub failure_time: Option<String>,
    /// What the measurement is for: `measure` (the default: refuses nothing), `failover` or
    /// `drill`.
    #[serde(default)]
    pub mode: Purpose,
    /// In a failover, the operator declares that the production that still answers was quiesced
    /// (F1: receive locations disabled, host instances stopped, the BizTalk SQL Agent jobs
    /// stopped and disabled after a last log backup, ENTSSO stopped).
    #[serde(default)]
    pub source_quiesced: bool,
}

/// What a measurement is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Only measure.
    #[default]
    Measure,
    /// A failover: production is lost, or quiesced by the operator.
    Failover,
    /// A drill: production keeps running.
    Drill,
}

/// One DR SQL instance's sets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InstanceSets {
    /// The instance.
    pub instance: String,
    /// The last set restored to its databases; none before any restore (or after a clean-up).
    pub last_restored: Option<SetOut>,
    /// The newest complete log set it imported: the one Restore To Mark recovers to.
    pub newest_imported: Option<SetOut>,
}

/// The source's answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SourceOut {
    /// The source SQL Server.
    pub instance: String,
    /// Whether it answered: production is alive.
    pub answers: bool,
    /// Its newest complete log set, when it answered.
    pub newest: Option<SetOut>,
    /// Why it did not answer (sqlcmd's line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The data-loss window, as the recovery report reads it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rpo {
    /// The last transaction the DR site will hold: the recovery set's mark time, RFC 3339 UTC.
    pub recovery_point: String,
    /// When production failed, as declared; absent when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<String>,
}

/// Output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Each DR SQL instance's sets, in input order.
    pub instances: Vec<InstanceSets>,
    /// The source.
    pub source: SourceOut,
    /// Every instance restored the same set and imported the same newest log set.
    pub agree: bool,
    /// The log set every instance can recover to (the oldest of their newest imported sets).
    pub recovery_set: Option<SetOut>,
    /// The data-loss window, when the recovery set's mark has a time.
    pub rpo: Option<Rpo>,
    /// Production's SQL Server still answers: a failover would leave it running.
    pub production_alive: bool,
    /// Log sets the source holds beyond the recovery set (when it answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets_behind_source: Option<u64>,
    /// The declare gate's text: recovery point, data-loss window, production, and a drill's cost.
    pub briefing: String,
}

impl Plugin for Measure {
    type Input = Input;
    type Output = Output;

    fn describe() -> Describe {
        Describe::new("logshipping-measure", env!("CARGO_PKG_VERSION"), Effect::ReadOnly)
            .description(
                "measures BizTalk log shipping on the DR SQL instances and the data-loss window (F0)",
            )
            .program(crate::SQLCMD)
    }

    fn check(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        measure(ctx, input)
    }

    fn apply(&self, ctx: &Ctx, input: Input) -> StepResult<Output> {
        measure(ctx, input)
    }
}

/// Reads one destination's two sets.
pub fn sets(ctx: &Ctx, sql: &mut Sql, instance: &str) -> Result<InstanceSets, StepError> {
    let restored = sql.read(
        ctx,
        instance,
        instance,
        logshipping::LAST_RESTORED_SET,
        "last restored set",
        logshipping::parse_backup_set,
    )?;
    let imported = sql.read(
        ctx,
        instance,
        instance,
        logshipping::SHIPPED_LOG_SET,
        "newest imported log set",
        logshipping::parse_backup_set,
    )?;
    Ok(InstanceSets {
        instance: instance.to_owned(),
        last_restored: restored.as_ref().map(SetOut::from),
        newest_imported: imported.as_ref().map(SetOut::from),
    })
}

fn measure(ctx: &Ctx, input: Input) -> StepResult<Output> {
    let instances_in = Instances { destinations: input.destinations, source: input.source };
    instances_in.validate()?;
    let failure_time = input.failure_time.filter(|t| !t.trim().is_empty());
    if let Some(time) = &failure_time
        && !is_rfc3339(time)
    {
        return Err(StepError::permanent(format!(
            "failure_time `{time}` is not an RFC 3339 time with a zone (2026-11-22T10:07:00Z)"
        )));
    }
    let mut sql = Sql::default();
    let mut instances = Vec::new();
    for instance in &instances_in.destinations {
        instances.push(sets(ctx, &mut sql, instance)?);
    }
    let source = source(ctx, &mut sql, &instances_in)?;
    let first = &instances[0];
    let agree = instances
        .iter()
        .all(|i| i.last_restored == first.last_restored && i.newest_imported == first.newest_imported);
    let recovery_set = if instances.iter().any(|i| i.newest_imported.is_none()) {
        None
    } else {
        instances.iter().filter_map(|i| i.newest_imported.clone()).min_by_key(|s| s.id)
    };
    let rpo = recovery_set
        .as_ref()
        .and_then(|set| set.marked_at.clone())
        .map(|recovery_point| Rpo { recovery_point, failure_time: failure_time.clone() });
    let sets_behind_source = match (&source.newest, &recovery_set) {
        (Some(newest), Some(set)) => Some(newest.id.saturating_sub(set.id)),
        _ => None,
    };
    let mut summary = match &recovery_set {
        Some(set) => format!("the DR site can recover to log set {} ({})", set.id, set.mark),
        None => "a DR SQL instance has imported no log set: nothing to recover to".to_owned(),
    };
    if !agree {
        summary.push_str("; the instances disagree: catch up before Restore To Mark");
    }
    if source.answers {
        summary.push_str(&format!("; production's {} still answers", source.instance));
    }
    refuse(&input.mode, input.source_quiesced, &source)?;
    let briefing = briefing(input.mode, &recovery_set, &rpo, &source, sets_behind_source);
    let output = Output {
        instances,
        production_alive: source.answers,
        source,
        agree,
        recovery_set,
        rpo,
        sets_behind_source,
        briefing,
    };
    Ok(sql.attach(Outcome::unchanged(output, summary)))
}

/// The split brain a failover must not cause, and a drill that would be a disaster.
fn refuse(mode: &Purpose, quiesced: bool, source: &SourceOut) -> Result<(), StepError> {
    let name = &source.instance;
    match mode {
        Purpose::Failover if source.answers && !quiesced => Err(StepError::permanent(format!(
            "production's {name} still answers: failing over now would leave two BizTalk groups \
             processing the same messages (split brain). Quiesce production first (F1: receive \
             locations disabled, host instances stopped, a last log backup, the BizTalk SQL Agent \
             jobs stopped and disabled, ENTSSO stopped) and declare it quiesced (`source_quiesced`, \
             the dr-failover parameter `source-quiesced=true`), or rehearse with `mode = \"drill\"`"
        ))),
        Purpose::Drill if !source.answers => Err(StepError::permanent(format!(
            "production's {name} does not answer ({}): a drill needs production running; if \
             production is lost, this is a failover (`mode = \"failover\"`)",
            source.error.as_deref().unwrap_or("no answer")
        ))),
        _ => Ok(()),
    }
}

/// The declare gate's text.
fn briefing(
    mode: Purpose,
    recovery_set: &Option<SetOut>,
    rpo: &Option<Rpo>,
    source: &SourceOut,
    behind: Option<u64>,
) -> String {
    let point = rpo.as_ref().map_or("unknown", |r| r.recovery_point.as_str());
    let mut text = match recovery_set {
        Some(set) => format!("Recovery point: log set {} ({}), marked {point}.", set.id, set.mark),
        None => "No log set to recover to.".to_owned(),
    };
    match rpo.as_ref().and_then(|r| r.failure_time.as_deref()) {
        Some(failed) => {
            text.push_str(&format!(" Data loss: everything after {point} up to the failure at {failed}."))
        }
        None => text.push_str(" Data-loss window: no failure time given."),
    }
    let name = &source.instance;
    match (source.answers, behind) {
        (true, Some(n)) => {
            text.push_str(&format!(" Production's {name} answers, {n} log set(s) ahead of the DR site."))
        }
        (true, None) => text.push_str(&format!(" Production's {name} answers.")),
        (false, _) => text.push_str(&format!(" Production's {name} does not answer.")),
    }
    if mode == Purpose::Drill {
        text.push_str(&format!(
            " Drill cost: Restore To Mark ends log shipping to the DR SQL Server; the clean-up drops \
             its databases and forces a full backup at {name}, and until that full set is restored \
             there (the next Backup BizTalk Server run, then Get Backup History and Restore \
             Databases) the DR site holds nothing newer than {point}: a window without DR protection."
        ));
    }
    text
}

fn source(ctx: &Ctx, sql: &mut Sql, instances: &Instances) -> Result<SourceOut, StepError> {
    let name = &instances.source;
    let (answer, ran) =
        sql.run(ctx, instances.via(), name, logshipping::SOURCE_LOG_SET, "source's newest log set")?;
    let mut out = SourceOut { instance: name.clone(), answers: false, newest: None, error: None };
    match answer {
        Answer::Unreachable(line) => out.error = Some(line),
        Answer::Sql(error) => {
            out.answers = true;
            out.error = Some(format!("SQL Server error {}: {}", error.number, error.message));
        }
        Answer::Rows(rows) => {
            out.answers = true;
            let set = logshipping::parse_source_set(&rows).map_err(|e| {
                biztalk_common::unrecognized::program(
                    "sqlcmd adm_BackupHistory",
                    instances.via(),
                    &e.to_string(),
                    &ran,
                )
            })?;
            out.newest = set.map(|s| SetOut::from(&BackupSet { id: s.set.id, mark: s.set.mark }));
        }
    }
    Ok(out)
}

/// `yyyy-MM-ddTHH:mm:ss[.fff…](Z|±HH:mm)`.
pub fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| b.get(range).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}
