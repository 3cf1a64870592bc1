//! The pages people read: the runs, one run (live), a saved plan. Each is the shared frame
//! (`layout`) around HTML drawn from the journal; the run page's parts are a [`RunView`], the same
//! the live stream sends.

use std::fmt::Write as _;

use drover_engine::documents::RunSummary;
use drover_engine::report::{esc, format_time};
use drover_engine::run::plan::Verdict;

use crate::layout::{PageViewer, page};
use crate::plans::SavedPlan;
use crate::view::RunView;

/// The runs, newest first, and the saved plans.
pub fn runs(viewer: &PageViewer<'_>, runs: &[RunSummary], plans: &[SavedPlan]) -> String {
    let mut body = String::from("<h1>Runs</h1>\n");
    if runs.is_empty() {
        body.push_str("<p class=\"muted\">No runs in this journal yet.</p>\n");
    } else {
        body.push_str(
            "<table class=\"runs\"><tr><th>run</th><th>workflow</th><th>state</th><th>created (UTC)</th><th>ended</th><th>started by</th></tr>\n",
        );
        for r in runs {
            let _ = writeln!(
                body,
                "<tr data-run=\"{id}\"><td><a class=\"run-link\" href=\"/runs/{id}\"><code>{id}</code></a></td><td>{wf} {ver}</td><td class=\"{state}\">{state}</td><td class=\"t\">{created}</td><td class=\"t\">{ended}</td><td>{by}</td></tr>",
                id = r.run,
                wf = esc(&r.workflow),
                ver = esc(&r.version),
                state = r.state,
                created = format_time(r.created_at),
                ended = r.finished_at.map(format_time).unwrap_or_default(),
                by = esc(&r.started_by),
            );
        }
        body.push_str("</table>\n");
    }
    if !plans.is_empty() {
        body.push_str("<h2>Saved plans</h2>\n<ul class=\"plans\">\n");
        for p in plans {
            let _ = writeln!(
                body,
                "<li><a class=\"plan-link\" href=\"/plans/{name}\">{name}</a>: {wf} {ver} <span class=\"muted\">({path})</span></li>",
                name = esc(&p.name),
                wf = esc(&p.plan.workflow),
                ver = esc(&p.plan.version),
                path = esc(&p.path.display().to_string()),
            );
        }
        body.push_str("</ul>\n");
    }
    page("Runs", viewer, &body)
}

/// One run: the RTO clock and the live state up top, what waits for a person, every instance,
/// then the report (graph, timeline, steps, evidence) and the latest events. The script keeps it
/// current from `/api/runs/<run>/stream`.
pub fn run(viewer: &PageViewer<'_>, view: &RunView) -> String {
    let anonymous = if viewer.user.is_none() {
        "<p class=\"muted login-to-act\"><a href=\"/login\">Log in</a> to approve, retry, skip or cancel.</p>"
    } else {
        ""
    };
    let body = format!(
        "<main id=\"run\" data-run=\"{run}\" data-can-act=\"{can_act}\">\
<h1>{title}</h1>\
<p class=\"live-line\"><span class=\"badge {state}\" id=\"run-state\">{state}</span> · RTO clock <span id=\"rto-clock\" data-since=\"{since}\" data-until=\"{until}\"></span> · <span id=\"live-status\" data-seq=\"{seq}\">connecting…</span></p>\
<h2>Waiting for a person</h2>{anonymous}<div id=\"action-result\" role=\"status\"></div>\
<section id=\"actions\" data-sig=\"{sig}\">{actions}</section>\
<h2>Now</h2><section id=\"now\">{now}</section>\
<section id=\"report\">{report}</section>\
<h2>Latest events</h2><section id=\"events\">{events}</section></main>",
        run = esc(&view.run),
        can_act = viewer.user.is_some(),
        title = esc(&view.title),
        state = esc(&view.state),
        since = view.created_at,
        until = view.finished_at.map(|t| t.to_string()).unwrap_or_default(),
        seq = view.seq,
        sig = esc(&view.actions_sig),
        actions = view.actions,
        now = view.now,
        report = view.report,
        events = view.events,
    );
    page(&view.title, viewer, &body)
}

/// A saved plan: what each step instance's check said.
pub fn plan(viewer: &PageViewer<'_>, saved: &SavedPlan) -> String {
    let p = &saved.plan;
    let mut body = format!(
        "<h1>Plan: {wf} {ver}</h1><table><tr><td class=\"k\">file</td><td><code>{path}</code></td></tr>\
<tr><td class=\"k\">definition sha256</td><td><code>{def}</code></td></tr><tr><td class=\"k\">inventory sha256</td><td><code>{inv}</code></td></tr></table>\
<h2>Params</h2><pre>{params}</pre><h2>Steps</h2>\
<table class=\"plan\"><tr><th>step</th><th>target</th><th>verdict</th><th>summary</th><th>refused</th></tr>\n",
        wf = esc(&p.workflow),
        ver = esc(&p.version),
        path = esc(&saved.path.display().to_string()),
        def = esc(&p.definition_digest),
        inv = esc(&p.inventory_digest),
        params = esc(&serde_json::to_string_pretty(&p.params).unwrap_or_default()),
    );
    for e in &p.entries {
        let (class, verdict) = match e.verdict {
            Verdict::NoChange => ("succeeded", "no change"),
            Verdict::WouldChange => ("waiting", "would change"),
            Verdict::Skipped => ("skipped", "skipped"),
            Verdict::WouldWait => ("waiting", "would wait"),
            Verdict::CannotTell => ("failed", "cannot tell"),
        };
        let _ = writeln!(
            body,
            "<tr data-step-key=\"{key}\"><td><code>{key}</code></td><td>{target}</td><td class=\"{class}\">{verdict}</td><td>{summary}</td><td>{refusals}</td></tr>",
            key = esc(&e.key),
            target = esc(e.target.as_deref().unwrap_or("")),
            summary = esc(&e.summary),
            refusals = esc(&e.refusals.join("; ")),
        );
    }
    body.push_str("</table>\n");
    page(&format!("Plan {}", saved.name), viewer, &drover_engine::display::visible(&body))
}

/// A page for a request that failed.
pub fn error(viewer: &PageViewer<'_>, status: axum::http::StatusCode, message: &str) -> String {
    page(
        status.canonical_reason().unwrap_or("Error"),
        viewer,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">All runs</a></p>",
            status,
            esc(&drover_engine::display::visible(message))
        ),
    )
}
