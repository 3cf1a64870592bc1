//! The report as one self-contained HTML file: inline CSS, the workflow's DAG and a timeline of
//! the step instances drawn as inline SVG, no script and no external URL, so it opens anywhere
//! and can be archived as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{Report, StepReport, format_duration, format_time};
use crate::run::machine::explain::worst;
use crate::store::StepState;

/// Timeline rows drawn at most; the table below lists every instance.
const TIMELINE_ROWS: usize = 150;

/// The report's stylesheet; the web view's pages use it too, so both look alike.
pub const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2329;max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f5f7}
td.k{width:200px;color:#57606a}code,pre{font:12.5px/1.4 ui-monospace,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #d8dee4;padding:8px;overflow-x:auto;white-space:pre-wrap}
.succeeded{color:#1a7f37}.failed,.needs-operator{color:#cf222e}.skipped,.cancelled{color:#6e7781}.waiting,.running,.ready{color:#9a6700}
.badge{font-weight:600}svg text{font:12px system-ui,sans-serif}.muted{color:#57606a}
td code,td.t{white-space:nowrap}";

/// Renders `report` as a self-contained HTML document.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_all(&mut out, report);
    super::shown(out)
}

/// The report's body without the document around it: what the web view's run page shows, so the
/// page and the report never disagree. Its text is made safe to show like the whole report's.
pub fn sections(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_sections(&mut out, report);
    super::shown(out)
}

/// The report's title.
pub fn title(report: &Report) -> String {
    format!("Recovery report: {} {}", report.workflow, report.version)
}

fn write_all(out: &mut String, r: &Report) -> std::fmt::Result {
    let title = title(r);
    writeln!(out, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
    writeln!(out, "<title>{}</title><style>{STYLE}</style></head><body>", esc(&title))?;
    writeln!(out, "<h1>{}</h1>", esc(&title))?;
    write_sections(out, r)?;
    writeln!(out, "</body></html>")
}

fn write_sections(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<table>")?;
    let row =
        |out: &mut String, k: &str, v: String| writeln!(out, "<tr><td class=\"k\">{k}</td><td>{v}</td></tr>");
    row(out, "run", format!("<code>{}</code>", esc(&r.run)))?;
    row(out, "state", format!("<span class=\"badge {0}\">{0}</span>", esc(&r.state)))?;
    row(out, "workflow file", format!("<code>{}</code>", esc(&r.source_path)))?;
    row(out, "started by", esc(&r.started_by))?;
    row(out, "started", format_time(r.started_at))?;
    row(out, "ended", r.finished_at.map_or("not yet".into(), format_time))?;
    row(out, "inventory sha256", format!("<code>{}</code>", esc(&r.inventory_digest)))?;
    writeln!(out, "</table>")?;
    objectives(out, r)?;

    writeln!(out, "<h2>Params</h2>")?;
    match r.params.as_object().filter(|p| !p.is_empty()) {
        None => writeln!(out, "<p class=\"muted\">None.</p>")?,
        Some(params) => {
            writeln!(out, "<table><tr><th>param</th><th>value</th></tr>")?;
            for (name, value) in params {
                writeln!(
                    out,
                    "<tr><td>{}</td><td><code>{}</code></td></tr>",
                    esc(name),
                    esc(&value.to_string())
                )?;
            }
            writeln!(out, "</table>")?;
        }
    }

    writeln!(out, "<h2>Workflow</h2>")?;
    dag(out, r)?;
    writeln!(out, "<h2>Timeline</h2>")?;
    timeline(out, r)?;

    writeln!(out, "<h2>Steps</h2>")?;
    writeln!(
        out,
        "<table><tr><th>step</th><th>target</th><th>state</th><th>result</th><th>attempts</th><th>started (UTC)</th><th>duration</th><th>summary</th></tr>"
    )?;
    for s in &r.steps {
        let result = match (s.state.as_str(), s.changed) {
            ("succeeded", Some(true)) => "changed",
            ("succeeded", Some(false)) => "no change",
            _ => "",
        };
        let duration = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format_duration(b - a),
            _ => String::new(),
        };
        writeln!(
            out,
            "<tr><td><code>{key}</code></td><td>{target}</td><td class=\"{state}\">{state}</td><td class=\"t\">{result}</td><td>{attempts}</td><td class=\"t\">{started}</td><td class=\"t\">{duration}</td><td>{summary}</td></tr>",
            key = esc(&s.key),
            target = esc(s.target.as_deref().unwrap_or("")),
            state = esc(&s.state),
            attempts = s.attempts.len(),
            started = s.started_at.map(time_of_day).unwrap_or_default(),
            summary = esc(s.summary.as_deref().unwrap_or("")),
        )?;
    }
    writeln!(out, "</table>")?;

    writeln!(out, "<h2>Operator actions</h2>")?;
    if r.operator_actions.is_empty() {
        writeln!(out, "<p class=\"muted\">None.</p>")?;
    } else {
        writeln!(
            out,
            "<table><tr><th>time</th><th>who</th><th>action</th><th>step</th><th>comment</th></tr>"
        )?;
        for a in &r.operator_actions {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                format_time(a.at),
                esc(&a.actor),
                esc(&a.kind),
                esc(a.step_key.as_deref().unwrap_or("")),
                esc(a.comment.as_deref().unwrap_or(""))
            )?;
        }
        writeln!(out, "</table>")?;
    }

    writeln!(out, "<h2>Evidence and errors</h2>")?;
    for s in &r.steps {
        let errors: Vec<_> =
            s.attempts.iter().filter_map(|a| a.error.as_ref().map(|e| (a.number, &a.state, e))).collect();
        if s.evidence.is_empty() && errors.is_empty() {
            continue;
        }
        writeln!(out, "<h3><code>{}</code></h3>", esc(&s.key))?;
        for (number, state, error) in errors {
            writeln!(out, "<p class=\"failed\">attempt {number} {}: {}</p>", esc(state), esc(error))?;
        }
        for item in &s.evidence {
            let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
            write!(out, "<p><strong>{}</strong>", esc(text("label")))?;
            if !text("command").is_empty() {
                write!(out, " — <code>{}</code>", esc(text("command")))?;
            }
            if let Some(code) = item.get("exit_code").and_then(Value::as_i64) {
                write!(out, " (exit code {code})")?;
            }
            writeln!(out, "</p>")?;
            if !text("excerpt").trim().is_empty() {
                writeln!(out, "<pre>{}</pre>", esc(text("excerpt").trim_end()))?;
            }
        }
    }
    Ok(())
}

/// The data-loss window, the elapsed times, the phases, the approvals and what stays manual.
fn objectives(out: &mut String, r: &Report) -> std::fmt::Result {
    let o = &r.objectives;
    let row =
        |out: &mut String, k: &str, v: String| writeln!(out, "<tr><td class=\"k\">{k}</td><td>{v}</td></tr>");
    writeln!(out, "<h2>Recovery objectives</h2>\n<table>")?;
    let loss = &o.data_loss;
    let window = match (loss.window_ms(), &loss.not_measured) {
        (Some(window), _) => format!("<strong>{}</strong>", format_duration(window)),
        (None, why) => {
            format!("<span class=\"muted\">not measured: {}</span>", esc(why.as_deref().unwrap_or("")))
        }
    };
    row(out, "data-loss window (RPO)", window)?;
    if let Some(point) = loss.recovery_point {
        row(out, "recovery point", format_time(point))?;
    }
    if let Some(failure) = loss.failure_time {
        row(out, "failure time", format_time(failure))?;
    }
    if let Some(source) = &loss.source {
        row(out, "measured by", format!("<code>{}</code>", esc(source)))?;
    }
    let t = &o.timing;
    let to = if t.ended { "run ended" } else { "last event, the run has not ended" };
    row(
        out,
        "elapsed (RTO as measured)",
        format!(
            "<strong>{}</strong> (run created to {to}, {})",
            format_duration(t.elapsed_ms),
            format_time(t.until)
        ),
    )?;
    row(out, "waiting at approval gates", format_duration(t.at_gates_ms))?;
    row(out, "elapsed without gate waits", format_duration(t.working_ms()))?;
    writeln!(out, "</table>")?;

    if !o.phases.is_empty() {
        writeln!(out, "<h3>Phases</h3>")?;
        writeln!(
            out,
            "<table><tr><th>phase</th><th>steps</th><th>started</th><th>ended</th><th>elapsed</th><th>at gates</th></tr>"
        )?;
        for p in &o.phases {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
                esc(&p.name),
                esc(&p.states),
                p.started_at.map(format_time).unwrap_or_default(),
                p.finished_at.map_or_else(|| "not finished".into(), format_time),
                p.elapsed_ms().map(format_duration).unwrap_or_default(),
                format_duration(p.at_gates_ms),
            )?;
        }
        writeln!(out, "</table>")?;
    }

    if !o.gates.is_empty() {
        writeln!(out, "<h3>Approvals</h3>")?;
        writeln!(
            out,
            "<table><tr><th>gate</th><th>question</th><th>waiting since</th><th>decision</th><th>by</th><th>at</th><th>waited</th><th>comment</th></tr>"
        )?;
        for g in &o.gates {
            writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td></tr>",
                esc(&g.key),
                esc(&g.prompt),
                g.waiting_since.map(format_time).unwrap_or_default(),
                esc(&g.decision),
                esc(g.by.as_deref().unwrap_or("")),
                g.at.map(format_time).unwrap_or_default(),
                g.waited_ms.map(format_duration).unwrap_or_default(),
                esc(g.comment.as_deref().unwrap_or("")),
            )?;
        }
        writeln!(out, "</table>")?;
    }

    writeln!(out, "<h3>Still to do by hand</h3>")?;
    if o.manual.is_empty() {
        return writeln!(
            out,
            "<p class=\"muted\">Nothing: the workflow lists no manual work and every step succeeded.</p>"
        );
    }
    writeln!(out, "<ul>")?;
    for m in &o.manual {
        match (&m.step_key, &m.state) {
            (Some(key), Some(state)) => writeln!(
                out,
                "<li><code>{}</code> <span class=\"{1}\">{1}</span>: {2}</li>",
                esc(key),
                esc(state),
                esc(&m.what)
            )?,
            _ => writeln!(out, "<li>{}</li>", esc(&m.what))?,
        }
    }
    writeln!(out, "</ul>")
}

/// The state a step shows in the DAG: the worst of its instances, as `drover status` shows it
/// ([`crate::run::machine::explain::worst`]).
fn step_state(steps: &[StepReport], id: &str) -> &'static str {
    let states = steps.iter().filter(|s| s.step == id).filter_map(|s| StepState::parse(&s.state));
    worst(states).as_str()
}

fn color(state: &str) -> &'static str {
    match state {
        "succeeded" => "#2da44e",
        "failed" | "needs-operator" | "compensation-failed" => "#cf222e",
        "compensated" => "#8250df",
        "skipped" | "cancelled" | "pending" => "#8c959f",
        _ => "#bf8700",
    }
}

/// The DAG, in columns by depth (a step sits one column right of its deepest need).
fn dag(out: &mut String, r: &Report) -> std::fmt::Result {
    const COL: usize = 200;
    const ROW: usize = 52;
    const W: usize = 170;
    const H: usize = 34;
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, needs) in &r.graph {
        let d = needs.iter().filter_map(|n| depth.get(n.as_str())).map(|d| d + 1).max().unwrap_or(0);
        depth.insert(id, d);
    }
    let mut rows_in: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (id, _) in &r.graph {
        let d = depth[id.as_str()];
        let row = rows_in.entry(d).or_default();
        at.insert(id, (10 + d * COL, 10 + *row * ROW));
        *row += 1;
    }
    let width = 20 + (rows_in.keys().max().copied().unwrap_or(0) + 1) * COL;
    let height = 20 + rows_in.values().max().copied().unwrap_or(1) * ROW;
    writeln!(out, "<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"workflow graph\">")?;
    for (id, needs) in &r.graph {
        let (x, y) = at[id.as_str()];
        for need in needs {
            if let Some(&(nx, ny)) = at.get(need.as_str()) {
                writeln!(
                    out,
                    "<path d=\"M{} {} C{} {} {} {} {} {}\" fill=\"none\" stroke=\"#8c959f\" stroke-width=\"1.5\"/>",
                    nx + W,
                    ny + H / 2,
                    nx + W + 20,
                    ny + H / 2,
                    x - 20,
                    y + H / 2,
                    x,
                    y + H / 2
                )?;
            }
        }
    }
    for (id, _) in &r.graph {
        let (x, y) = at[id.as_str()];
        let state = step_state(&r.steps, id);
        let label: String =
            if id.chars().count() > 22 { id.chars().take(21).chain(['…']).collect() } else { id.clone() };
        writeln!(
            out,
            "<g><title>{0}: {1}</title><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"#fff\" stroke=\"{2}\" stroke-width=\"2\"/><text x=\"{3}\" y=\"{4}\">{5}</text></g>",
            esc(id),
            state,
            color(state),
            x + 10,
            y + 21,
            esc(&label)
        )?;
    }
    writeln!(out, "</svg>")
}

/// One bar per step instance from its first attempt (or its gate's wait) to its end, on the run's
/// time axis; a gate's wait for an operator is drawn on its row.
fn timeline(out: &mut String, r: &Report) -> std::fmt::Result {
    let until = r.objectives.timing.until;
    let waits: BTreeMap<&str, (i64, i64, &str)> = r
        .objectives
        .gates
        .iter()
        .filter_map(|g| {
            Some((g.key.as_str(), (g.waiting_since?, g.at.unwrap_or(until), g.decision.as_str())))
        })
        .collect();
    let bars: Vec<&StepReport> =
        r.steps.iter().filter(|s| s.started_at.is_some() || waits.contains_key(s.key.as_str())).collect();
    if bars.is_empty() {
        return writeln!(out, "<p class=\"muted\">No step has started.</p>");
    }
    let start = r.started_at;
    let end = r
        .finished_at
        .or_else(|| bars.iter().filter_map(|s| s.finished_at.or(s.started_at)).max())
        .unwrap_or(start)
        .max(start + 1);
    const LABEL: f64 = 230.0;
    const PLOT: f64 = 760.0;
    const ROW: usize = 20;
    let shown = bars.len().min(TIMELINE_ROWS);
    let height = 30 + shown * ROW;
    let x = |t: i64| LABEL + (t - start) as f64 / (end - start) as f64 * PLOT;
    writeln!(
        out,
        "<svg width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"timeline\">",
        LABEL + PLOT + 20.0
    )?;
    writeln!(out, "<text x=\"{LABEL}\" y=\"14\" fill=\"#57606a\">{}</text>", format_time(start))?;
    writeln!(
        out,
        "<text x=\"{}\" y=\"14\" text-anchor=\"end\" fill=\"#57606a\">+{}</text>",
        LABEL + PLOT,
        format_duration(end - start)
    )?;
    for (i, s) in bars.iter().take(shown).enumerate() {
        let y = 22 + i * ROW;
        let wait = waits.get(s.key.as_str());
        let began = s.started_at.or(wait.map(|w| w.0));
        let from = x(began.unwrap_or(start));
        let to = x(s.finished_at.unwrap_or(end)).max(from + 2.0);
        let label: String = if s.key.chars().count() > 32 {
            s.key.chars().take(31).chain(['…']).collect()
        } else {
            s.key.clone()
        };
        writeln!(
            out,
            "<g><title>{0}: {1}, {2}</title><text x=\"{3}\" y=\"{4}\" text-anchor=\"end\">{5}</text><rect x=\"{from:.1}\" y=\"{y}\" width=\"{6:.1}\" height=\"14\" rx=\"3\" fill=\"{7}\" fill-opacity=\"0.35\"/></g>",
            esc(&s.key),
            esc(&s.state),
            s.finished_at.zip(began).map(|(b, a)| format_duration(b - a)).unwrap_or_default(),
            LABEL - 8.0,
            y + 11,
            esc(&label),
            to - from,
            color(&s.state)
        )?;
        // Each attempt on the instance's row: forward work and its compensation on one timeline.
        for a in &s.attempts {
            let (from, to) = (x(a.started_at), x(a.finished_at.unwrap_or(end)));
            let fill = if a.mode == "compensate" { color("compensated") } else { color(&a.state) };
            writeln!(
                out,
                "<rect x=\"{from:.1}\" y=\"{}\" width=\"{:.1}\" height=\"8\" fill=\"{fill}\"><title>{} attempt {}: {}</title></rect>",
                y + 3,
                (to - from).max(2.0),
                esc(&a.mode),
                a.number,
                esc(&a.state)
            )?;
        }
        if let Some(&(since, until, decision)) = wait {
            let (from, to) = (x(since), x(until));
            writeln!(
                out,
                "<rect x=\"{from:.1}\" y=\"{}\" width=\"{:.1}\" height=\"8\" fill=\"{}\"><title>waiting for approval: {} after {}</title></rect>",
                y + 3,
                (to - from).max(2.0),
                color("waiting"),
                esc(decision),
                format_duration(until - since)
            )?;
        }
    }
    writeln!(out, "</svg>")?;
    if !waits.is_empty() {
        writeln!(out, "<p class=\"muted\">Amber marks an approval gate waiting for an operator.</p>")?;
    }
    if r.steps.iter().any(|s| s.attempts.iter().any(|a| a.mode == "compensate")) {
        writeln!(
            out,
            "<p class=\"muted\">Purple marks compensation: what the run changed, undone in reverse dependency order.</p>"
        )?;
    }
    if bars.len() > shown {
        writeln!(
            out,
            "<p class=\"muted\">{} more instances are listed in the table below.</p>",
            bars.len() - shown
        )?;
    }
    Ok(())
}

/// `01:22:38` (UTC), for tables whose date is in the header.
fn time_of_day(ms: i64) -> String {
    let full = format_time(ms);
    full.get(11..19).map(str::to_string).unwrap_or(full)
}

/// Text safe in HTML content and attributes.
pub fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}
