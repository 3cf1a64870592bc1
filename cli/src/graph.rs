//! `drover graph`: a workflow's DAG as Mermaid or Graphviz dot.

use std::path::PathBuf;

use clap::Args;
use drover_engine::workflow::{ForEach, StepKind, Workflow};

use crate::{CliError, Exit, Global, workflow};

/// Arguments of `drover graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,
    /// Mermaid flowchart (the default).
    #[arg(long, conflicts_with = "dot")]
    pub mermaid: bool,
    /// Graphviz dot.
    #[arg(long)]
    pub dot: bool,
}

fn label(wf: &Workflow, idx: usize) -> String {
    let step = &wf.steps[idx];
    let what = match &step.kind {
        StepKind::Plugin { reference, .. } => reference.to_string(),
        StepKind::Approval { .. } => "approval".into(),
    };
    let fan = match &step.for_each {
        Some(ForEach::Group(g)) => format!(" × {g}"),
        Some(ForEach::List(l)) => format!(" × {} items", l.len()),
        None => String::new(),
    };
    format!("{}\\n{what}{fan}", step.id)
}

pub fn run(global: &Global, args: GraphArgs) -> Result<Exit, CliError> {
    let wf = workflow::load(global, &args.workflow, None)?;
    let id = |i: usize| format!("s{i}");
    if args.dot {
        println!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];", wf.name);
        for &i in &wf.order {
            println!("  {} [label=\"{}\"];", id(i), label(&wf, i));
        }
        for &i in &wf.order {
            for &n in &wf.steps[i].needs {
                println!("  {} -> {};", id(n), id(i));
            }
        }
        println!("}}");
    } else {
        println!("flowchart LR");
        for &i in &wf.order {
            let text = label(&wf, i).replace("\\n", "<br/>");
            match wf.steps[i].kind {
                StepKind::Approval { .. } => println!("  {}{{\"{text}\"}}", id(i)),
                StepKind::Plugin { .. } => println!("  {}[\"{text}\"]", id(i)),
            }
        }
        for &i in &wf.order {
            for &n in &wf.steps[i].needs {
                println!("  {} --> {}", id(n), id(i));
            }
        }
    }
    Ok(Exit::Success)
}
