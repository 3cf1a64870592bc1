//! The report as Markdown: a summary, the recovery objectives (data-loss window, elapsed times,
//! phases, approvals, what stays manual), the pinned inputs, a table of steps, operator actions,
//! then the evidence and errors of every step instance.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Report, StepReport, format_duration, format_time};

/// Renders `report` as a Markdown document.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_all(&mut out, report);
    super::shown(out)
}

fn write_all(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "# Recovery report: {} {}\n", r.workflow, r.version)?;
    writeln!(out, "| | |\n|---|---|")?;
    writeln!(out, "| run | `{}` |", r.run)?;
    writeln!(out, "| state | **{}** |", r.state)?;
    writeln!(out, "| workflow file | `{}` |", cell(&r.source_path))?;
    writeln!(out, "| started by | {} |", cell(&r.started_by))?;
    writeln!(out, "| started | {} |", format_time(r.started_at))?;
    match r.finished_at {
        Some(end) => writeln!(out, "| ended | {} |", format_time(end))?,
        None => writeln!(out, "| ended | not yet |")?,
    }
    let counts = tally(&r.steps);
    writeln!(out, "| steps | {counts} |")?;
    writeln!(out, "| inventory sha256 | `{}` |", r.inventory_digest)?;
    writeln!(out)?;
    write_objectives(out, r)?;

    writeln!(out, "## Params\n")?;
    match r.params.as_object().filter(|p| !p.is_empty()) {
        None => writeln!(out, "None.\n")?,
        Some(params) => {
            writeln!(out, "| param | value |\n|---|---|")?;
            for (name, value) in params {
                writeln!(out, "| {} | `{}` |", cell(name), cell(&value.to_string()))?;
            }
            writeln!(out)?;
        }
    }

    if !r.plugins.is_empty() {
        writeln!(out, "## Plugins\n")?;
        writeln!(out, "| step | plugin | version | sha256 |\n|---|---|---|---|")?;
        for (step, p) in &r.plugins {
            let short = p.sha256.get(..16).unwrap_or(&p.sha256);
            writeln!(out, "| {} | {} | {} | `{short}…` |", cell(step), cell(&p.name), cell(&p.version))?;
        }
        writeln!(out)?;
    }

    writeln!(out, "## Steps\n")?;
    writeln!(out, "| step | target | state | result | attempts | started | duration | summary |")?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    for s in &r.steps {
        let result = match (s.state.as_str(), s.changed) {
            ("succeeded", Some(true)) => "changed",
            ("succeeded", Some(false)) => "no change",
            _ => "",
        };
        writeln!(
            out,
            "| {} | {} | {} | {result} | {} | {} | {} | {} |",
            cell(&s.key),
            cell(s.target.as_deref().unwrap_or("")),
            s.state,
            s.attempts.len(),
            s.started_at.map(format_time).unwrap_or_default(),
            step_duration(s),
            cell(s.summary.as_deref().unwrap_or("")),
        )?;
    }
    writeln!(out)?;

    writeln!(out, "## Operator actions\n")?;
    if r.operator_actions.is_empty() {
        writeln!(out, "None.\n")?;
    } else {
        writeln!(out, "| time | who | action | step | comment |\n|---|---|---|---|---|")?;
        for a in &r.operator_actions {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                format_time(a.at),
                cell(&a.actor),
                cell(&a.kind),
                cell(a.step_key.as_deref().unwrap_or("")),
                cell(a.comment.as_deref().unwrap_or(""))
            )?;
        }
        writeln!(out)?;
    }

    writeln!(out, "## Evidence and errors\n")?;
    for s in &r.steps {
        let errors: Vec<_> =
            s.attempts.iter().filter_map(|a| a.error.as_ref().map(|e| (a.number, &a.state, e))).collect();
        if s.evidence.is_empty() && errors.is_empty() {
            continue;
        }
        writeln!(out, "### {}\n", s.key)?;
        if s.target_calls > 0 {
            writeln!(
                out,
                "{} target call(s), each in the event journal (`drover events {} --ndjson`).\n",
                s.target_calls, r.run
            )?;
        }
        if !errors.is_empty() {
            for (number, state, error) in errors {
                writeln!(out, "- attempt {number} {state}: {}", error.replace('\n', " "))?;
            }
            writeln!(out)?;
        }
        for item in &s.evidence {
            write_evidence(out, item)?;
        }
    }
    Ok(())
}

/// The data-loss window, the elapsed times, the phases, the approvals and what stays manual.
fn write_objectives(out: &mut String, r: &Report) -> std::fmt::Result {
    let o = &r.objectives;
    writeln!(out, "## Recovery objectives\n")?;
    writeln!(out, "| | |\n|---|---|")?;
    let loss = &o.data_loss;
    match (loss.window_ms(), &loss.not_measured) {
        (Some(window), _) => writeln!(out, "| data-loss window (RPO) | **{}** |", format_duration(window))?,
        (None, why) => writeln!(
            out,
            "| data-loss window (RPO) | not measured: {} |",
            cell(why.as_deref().unwrap_or(""))
        )?,
    }
    if let Some(point) = loss.recovery_point {
        writeln!(out, "| recovery point | {} |", format_time(point))?;
    }
    if let Some(failure) = loss.failure_time {
        writeln!(out, "| failure time | {} |", format_time(failure))?;
    }
    if let Some(source) = &loss.source {
        writeln!(out, "| measured by | `{}` |", cell(source))?;
    }
    let t = &o.timing;
    let to = if t.ended { "run ended" } else { "last event, the run has not ended" };
    writeln!(
        out,
        "| elapsed (RTO as measured) | **{}** (run created to {to}, {}) |",
        format_duration(t.elapsed_ms),
        format_time(t.until)
    )?;
    writeln!(out, "| waiting at approval gates | {} |", format_duration(t.at_gates_ms))?;
    writeln!(out, "| elapsed without gate waits | {} |", format_duration(t.working_ms()))?;
    writeln!(out)?;

    if !o.phases.is_empty() {
        writeln!(out, "### Phases\n")?;
        writeln!(out, "| phase | steps | started | ended | elapsed | at gates |\n|---|---|---|---|---|---|")?;
        for p in &o.phases {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&p.name),
                cell(&p.states),
                p.started_at.map(format_time).unwrap_or_default(),
                p.finished_at.map_or_else(|| "not finished".into(), format_time),
                p.elapsed_ms().map(format_duration).unwrap_or_default(),
                format_duration(p.at_gates_ms),
            )?;
        }
        writeln!(out)?;
    }

    if !o.gates.is_empty() {
        writeln!(out, "### Approvals\n")?;
        writeln!(
            out,
            "| gate | question | waiting since | decision | by | at | waited | comment |\n|---|---|---|---|---|---|---|---|"
        )?;
        for g in &o.gates {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&g.key),
                cell(&g.prompt),
                g.waiting_since.map(format_time).unwrap_or_default(),
                cell(&g.decision),
                cell(g.by.as_deref().unwrap_or("")),
                g.at.map(format_time).unwrap_or_default(),
                g.waited_ms.map(format_duration).unwrap_or_default(),
                cell(g.comment.as_deref().unwrap_or("")),
            )?;
        }
        writeln!(out)?;
    }

    writeln!(out, "### Still to do by hand\n")?;
    if o.manual.is_empty() {
        writeln!(out, "Nothing: the workflow lists no manual work and every step succeeded.\n")?;
        return Ok(());
    }
    for m in &o.manual {
        match (&m.step_key, &m.state) {
            (Some(key), Some(state)) => {
                writeln!(out, "- `{}` {}: {}", key.replace('`', "'"), state, m.what.replace('\n', " "))?
            }
            _ => writeln!(out, "- {}", m.what)?,
        }
    }
    writeln!(out)
}

fn write_evidence(out: &mut String, item: &Value) -> std::fmt::Result {
    let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
    write!(out, "**{}**", text("label"))?;
    if !text("command").is_empty() {
        write!(out, " — `{}`", text("command").replace('`', "'"))?;
    }
    if let Some(code) = item.get("exit_code").and_then(Value::as_i64) {
        write!(out, " (exit code {code})")?;
    }
    writeln!(out)?;
    let excerpt = text("excerpt").trim_end();
    if !excerpt.is_empty() {
        writeln!(out, "\n```text\n{}\n```", excerpt.replace("```", "'''"))?;
    }
    writeln!(out)
}

fn step_duration(s: &StepReport) -> String {
    match (s.started_at, s.finished_at) {
        (Some(start), Some(end)) => format_duration(end - start),
        _ => String::new(),
    }
}

/// `12 succeeded (3 changed), 1 skipped`.
fn tally(steps: &[StepReport]) -> String {
    let mut states: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in steps {
        *states.entry(s.state.as_str()).or_default() += 1;
    }
    let changed = steps.iter().filter(|s| s.changed == Some(true)).count();
    states
        .iter()
        .map(|(state, n)| {
            if *state == "succeeded" {
                format!("{n} succeeded ({changed} changed)")
            } else {
                format!("{n} {state}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text safe in a table cell: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
