//! `drover events`: a run's event journal, as a table or as NDJSON.

use clap::Args;

use drover_engine::display::visible;
use drover_engine::journal::RunId;

use crate::{CliError, Exit, Global, context, status::format_ms};

/// Arguments of `drover events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// One JSON object per line (the form to archive or hand on).
    #[arg(long)]
    pub ndjson: bool,
}

pub fn run(global: &Global, args: EventsArgs) -> Result<Exit, CliError> {
    let store = context::read_store(global)?;
    store.run(args.run)?;
    let events = store.events(args.run, 0)?;
    for e in &events {
        if args.ndjson || global.json {
            println!("{}", drover_engine::display::json(&serde_json::to_string(e)?));
        } else {
            let step = e.step_key.as_deref().unwrap_or("-");
            // JSON escapes C0 control characters but not C1 ones (a CSI as U+009B): all of the
            // line goes through `visible`.
            println!(
                "{:>6}  {}  {:24}  {:24}  {:10}  {}",
                e.seq,
                format_ms(e.at),
                e.kind,
                visible(step),
                visible(e.actor.as_str()),
                visible(&e.data.to_string())
            );
        }
    }
    Ok(Exit::Success)
}
