//! `drover report`: the recovery report of a run, for auditors, from the journal alone.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use drover_engine::journal::RunId;
use drover_engine::report::{self, Report};

use crate::{CliError, Exit, Global, context, output};

/// Report formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Markdown.
    Md,
    /// One self-contained HTML file with the workflow graph and a timeline (no external URL).
    Html,
}

/// Arguments of `drover report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (finished or not: a report of a running run says so).
    #[arg(value_name = "RUN")]
    pub run: RunId,
    /// The format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(global: &Global, args: ReportArgs) -> Result<Exit, CliError> {
    let store = context::read_store(global)?;
    let report = Report::build(&store, args.run)?;
    if global.json {
        output::json(&serde_json::to_value(&report)?)?;
        return Ok(Exit::Success);
    }
    let text = match args.format {
        Format::Md => report::markdown(&report),
        Format::Html => report::html(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(CliError::io("write the report to", path))?,
        None => print!("{text}"),
    }
    Ok(Exit::Success)
}
