//! The workflow keys that only the recovery report reads: a step's `phase` and the top-level
//! `[report]` (`manual`, `rpo`), checked into [`ReportSpec`] and step phases. They change nothing
//! of how a run goes; [`validate`](mod@super::validate) calls these and reports their problems
//! with the others.
//!
//! Their text reaches every report as it is, so it must be one visible line: no control
//! character, not blank, at most [`MAX_TEXT`] characters.

use std::ops::Range;

use toml::Spanned;

use super::file::{Document, StepFile};
use super::model::{ReportSpec, RpoSource};

/// The longest `phase` or `manual` line, in characters.
pub const MAX_TEXT: usize = 200;

/// A problem at a position of the file.
pub(super) type Problem = (Range<usize>, String);

/// The step's phase, if it names one that can be shown.
pub(super) fn phase(step: &StepFile, problems: &mut Vec<Problem>) -> Option<String> {
    let phase = step.phase.as_ref()?;
    let what = format!("step `{}`: `phase`", step.id.get_ref());
    one_line(&what, phase, problems)
}

/// The `[report]` table: the manual work list and where the data-loss window is measured.
pub(super) fn report(doc: &Document, problems: &mut Vec<Problem>) -> ReportSpec {
    let Some(file) = &doc.report else {
        return ReportSpec::default();
    };
    let manual = file
        .manual
        .iter()
        .enumerate()
        .filter_map(|(i, line)| one_line(&format!("`report.manual[{i}]`"), line, problems))
        .collect();
    let rpo = file.rpo.as_ref().and_then(|rpo| rpo_source(doc, rpo, problems));
    ReportSpec { manual, rpo }
}

/// `steps.<id>.output[.<key>…]`, naming a step that does not fan out (`-` or `_` in the id).
fn rpo_source(doc: &Document, rpo: &Spanned<String>, problems: &mut Vec<Problem>) -> Option<RpoSource> {
    let text = rpo.get_ref();
    let mut parts = text.split('.');
    let (Some("steps"), Some(id), Some("output")) = (parts.next(), parts.next(), parts.next()) else {
        problems.push((
            rpo.span(),
            format!(
                "`report.rpo` `{text}` is not `steps.<id>.output`, with optional `.<key>`s after it \
                 (`steps.declare.output.rpo`)"
            ),
        ));
        return None;
    };
    let path: Vec<String> = parts.map(str::to_string).collect();
    if id.is_empty() || path.iter().any(String::is_empty) {
        problems.push((rpo.span(), format!("`report.rpo` `{text}` has an empty name between two dots")));
        return None;
    }
    let wanted = id.replace('_', "-");
    let Some(step) = doc.steps.iter().find(|s| *s.id.get_ref() == wanted) else {
        let ids = doc.steps.iter().map(|s| s.id.get_ref().as_str());
        let hint = super::validate::closest_id(&wanted, ids)
            .map(|c| format!(": did you mean `{c}`?"))
            .unwrap_or_default();
        problems.push((rpo.span(), format!("`report.rpo` names step `{id}`, which is not a step{hint}")));
        return None;
    };
    if step.for_each.is_some() {
        problems.push((
            rpo.span(),
            format!(
                "`report.rpo` names step `{wanted}`, which fans out: name a step with one instance, \
                 whose output holds the data-loss window"
            ),
        ));
        return None;
    }
    Some(RpoSource { step: wanted, path })
}

/// `text` if it is one visible line of at most [`MAX_TEXT`] characters, else a problem.
fn one_line(what: &str, text: &Spanned<String>, problems: &mut Vec<Problem>) -> Option<String> {
    let value = text.get_ref();
    let problem = if value.trim().is_empty() {
        Some(format!("{what} is empty"))
    } else if value.chars().any(char::is_control) {
        Some(format!("{what} holds a control character (a line break, tab or escape): write one line"))
    } else if value.chars().count() > MAX_TEXT {
        Some(format!("{what} is {} characters long, more than {MAX_TEXT}", value.chars().count()))
    } else {
        None
    };
    match problem {
        Some(message) => {
            problems.push((text.span(), message));
            None
        }
        None => Some(value.trim().to_string()),
    }
}
