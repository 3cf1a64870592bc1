//! `drover status`: a run's steps as a tree, with the reason every unfinished step waits and the
//! command that moves it on. Text from plugins is shown with its control characters visible.

use clap::Args;
use drover_engine::journal::RunId;
use drover_engine::run::RunError;
use drover_engine::run::machine::Machine;
use drover_engine::store::{StepRecord, StepState};
use drover_engine::workflow::StepKind;

use crate::{CliError, Exit, Global, context, output};

/// Prints a line of the text view with control characters made visible: summaries, reasons and
/// keys come from plugins and targets (`drover_engine::display`).
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", drover_engine::display::visible(&format!($($arg)*)))
    };
}

/// Arguments of `drover status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
}

pub fn run(global: &Global, args: StatusArgs) -> Result<Exit, CliError> {
    let store = context::read_store(global)?;
    let clock: std::sync::Arc<dyn drover_engine::run::Clock> =
        std::sync::Arc::new(drover_engine::run::SystemClock::default());
    if global.json {
        output::json(&drover_engine::documents::status(&store, args.run, clock)?)?;
        return Ok(Exit::Success);
    }
    let run = store.run(args.run)?;
    let steps = store.steps(run.id)?;
    // The run machine says why each instance waits, as the driver would see it.
    let machine = Machine::for_run(&run, steps, clock.clone())
        .map_err(|message| RunError::Definition { run_id: run.id, message })?;
    let wf = machine.workflow();
    // A lease past its expiry belongs to a process that stopped without releasing it.
    let now = clock.now_ms();
    let lease = store.lease(run.id)?.filter(|l| l.expires_at > now);
    let driven = lease.is_some();
    let instances_of = |i: usize| -> Vec<&StepRecord> {
        machine.keys_of(i).iter().filter_map(|k| machine.instance(k)).collect()
    };
    say!("{} · {} {} · {}", run.id, run.workflow, run.workflow_version, run.state);
    say!("started by {} at {}", run.started_by, format_ms(run.created_at));
    if let Some(l) = lease {
        say!("driven by process {} of {} on {}", l.pid, l.user, l.host);
    }
    for &i in &wf.order {
        let step = &wf.steps[i];
        let kind = match &step.kind {
            StepKind::Plugin { reference, .. } => reference.to_string(),
            StepKind::Approval { .. } => "approval".to_string(),
        };
        let instances = instances_of(i);
        if instances.is_empty() {
            say!("○ {} ({kind}): pending — {}", step.id, machine.why_not_started(i));
            continue;
        }
        let fan = instances.len() > 1 || step.fans_out();
        if fan {
            let done = instances.iter().filter(|r| r.state.is_terminal()).count();
            say!("{} {} ({kind}): {done}/{} done", mark(machine.step_state(i)), step.id, instances.len());
        }
        for r in instances {
            let indent = if fan { "  " } else { "" };
            let attempts = if r.attempts > 0 {
                format!(", {} attempt{}", r.attempts, if r.attempts == 1 { "" } else { "s" })
            } else {
                String::new()
            };
            let label = if fan { r.key.clone() } else { format!("{} ({kind})", r.key) };
            let mut line = format!("{indent}{} {label}: {}{attempts}", mark(r.state), r.state);
            if let Some(summary) = r.summary.as_deref().filter(|s| !s.is_empty()) {
                line.push_str(&format!(" — {summary}"));
            }
            say!("{line}");
            if let Some(why) = machine.why(&r.key, driven) {
                say!("{indent}    {why}");
            }
        }
    }
    Ok(Exit::Success)
}

fn mark(state: StepState) -> &'static str {
    match state {
        StepState::Succeeded => "✓",
        StepState::Failed => "✗",
        StepState::Running => "▶",
        StepState::Skipped => "↷",
        StepState::Cancelled => "⊘",
        StepState::NeedsOperator => "!",
        StepState::Waiting => "…",
        StepState::Ready | StepState::Pending => "○",
        StepState::Compensating => "↺",
        StepState::Compensated => "⟲",
        StepState::CompensationFailed => "✗",
    }
}

/// A UTC time for people, from ms since the epoch.
pub(super) fn format_ms(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}
