//! Stage 2: file types to the validated [`Workflow`]. Checks names, ids and versions, resolves
//! `needs` into a DAG (duplicates, unknown steps and cycles reported), resolves plugins through
//! the caller's registry, parses durations and limits, checks every template (`with`, `when`,
//! `for-each` items, approval prompts) against the names it may use (declared params, upstream
//! steps, `item` only when fanning out), checks each step's constant input against its plugin's
//! input schema, and gives each step its `on-failure` (its own, else the top-level one), refusing
//! `compensate` where no step can be undone. Every problem is reported, each at its position; the
//! result is built only when there are none.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::{Version, VersionReq};
use serde_json::Value;
use toml::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics, Source};
use super::file::{Document, FileValue, ForEachFile, StepFile};
use super::model::{
    ForEach, GrantsSpec, MAX_RETRY_DELAY, MAX_TIMEOUT, OnFailure, Param, ReportSpec, RetryPolicy, RunLimits,
    Step, StepConcurrency, StepKind, Workflow, instance_key,
};
use super::parse::{WorkflowFile, edit_distance, parse_partial};
use super::template::{self, ROOTS, SyntaxProblem, template_name};
use super::{graph, input, report_keys};
use crate::plugin::{PluginInfo, PluginRef, check_name};

/// What validation needs to know beyond the file.
pub struct ValidationContext<'a> {
    /// The inventory's group names; `None` when no inventory is given (then `for-each` group
    /// names are not checked).
    pub groups: Option<&'a BTreeSet<String>>,
    /// Resolves `name@req` to the installed plugin's validated describe; the error is the
    /// registry's message (`plugin x is not installed …`).
    pub plugins: &'a dyn Fn(&PluginRef) -> Result<PluginInfo, String>,
}

/// Why [`load`] produced no workflow.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read workflow file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems: every one, with line and column.
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and validates a workflow file, reporting the problems of both stages at once.
pub fn load(path: &Path, ctx: &ValidationContext<'_>) -> Result<Workflow, LoadError> {
    let text = crate::input_file::read_to_string(path)
        .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    Ok(load_text(path, &text, ctx)?)
}

/// Parses and validates workflow text read from `path` (which gives the format and the file name
/// in positions), reporting the problems of both stages at once.
pub fn load_text(path: &Path, text: &str, ctx: &ValidationContext<'_>) -> Result<Workflow, Diagnostics> {
    let (file, mut problems) = parse_partial(path, text);
    let Some(file) = file else {
        return Err(Diagnostics::new(problems));
    };
    match validate(&file, ctx) {
        Ok(workflow) if problems.is_empty() => Ok(workflow),
        Ok(_) => Err(Diagnostics::new(problems)),
        Err(more) => {
            problems.extend(more);
            Err(Diagnostics::new(problems))
        }
    }
}

/// Validates a parsed file into a [`Workflow`], reporting every problem at once.
pub fn validate(file: &WorkflowFile, ctx: &ValidationContext<'_>) -> Result<Workflow, Diagnostics> {
    let mut v = Validator { src: &file.source, problems: Vec::new() };
    let workflow = v.workflow(&file.document, ctx);
    match workflow {
        Some(workflow) if v.problems.is_empty() => Ok(workflow),
        _ => {
            if v.problems.is_empty() {
                v.problems.push(v.src.at_line(1, 1, "internal error: the workflow could not be built"));
            }
            Err(Diagnostics::new(v.problems))
        }
    }
}

struct Validator<'a> {
    src: &'a Source,
    problems: Vec<Diagnostic>,
}

/// What the checks of one step need to know about the others.
struct Steps<'d> {
    doc: &'d Document,
    /// First index of each id.
    index: HashMap<&'d str, usize>,
    /// Declared param names (kebab-case).
    params: BTreeSet<&'d str>,
    /// The run-level `on-failure`: the default of steps that set none.
    on_failure: OnFailure,
}

/// The steps upstream of one step, asked one at a time (a long chain's upstream sets would add
/// up to the square of its length).
#[derive(Clone, Copy)]
struct UpstreamOf<'u> {
    dag: &'u graph::Upstream,
    step: usize,
}

impl UpstreamOf<'_> {
    /// Whether step `other` is upstream of this one.
    fn contains(self, other: usize) -> bool {
        self.dag.is_upstream(other, self.step)
    }
}

/// Where a template is, for what it may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    /// `with` or `when`: `item` exists when the step fans out.
    Instance,
    /// A `for-each` list item: computed before there is an item.
    ForEach,
}

impl Validator<'_> {
    fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.src.at(span, message);
        self.problems.push(d);
    }

    fn workflow(&mut self, doc: &Document, ctx: &ValidationContext<'_>) -> Option<Workflow> {
        if let Err(e) = check_kebab("workflow name", doc.name.get_ref()) {
            self.err(&doc.name.span(), e);
        }
        let version = match Version::parse(doc.version.get_ref().trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    &doc.version.span(),
                    format!(
                        "version `{}` is not a semantic version (like `1.0.0`): {e}",
                        doc.version.get_ref()
                    ),
                );
                None
            }
        };
        let params = self.params(doc);
        let limits = self.limits(doc);
        if doc.steps.is_empty() {
            self.err(&doc.name.span(), "the workflow has no steps: add a `[[steps]]` table");
        }

        let mut steps = Steps {
            doc,
            index: HashMap::new(),
            params: doc.params.keys().map(|k| k.get_ref().as_str()).collect(),
            on_failure: doc.on_failure.as_ref().map_or(OnFailure::Stop, |o| *o.get_ref()),
        };
        for (i, step) in doc.steps.iter().enumerate() {
            let id = step.id.get_ref().as_str();
            if let Err(e) = check_kebab("step id", id) {
                self.err(&step.id.span(), e);
            }
            match steps.index.get(id) {
                Some(&first) => {
                    let (line, _) = self.src.line_column(doc.steps[first].id.span().start);
                    self.err(
                        &step.id.span(),
                        format!("duplicate step id `{id}` (first defined at line {line})"),
                    );
                }
                None => {
                    steps.index.insert(id, i);
                }
            }
        }

        let needs: Vec<Vec<usize>> = doc.steps.iter().map(|s| self.needs(s, &steps)).collect();
        let dag = graph::analyse(&needs);
        for cycle in &dag.cycles {
            let names: Vec<&str> = cycle.iter().map(|&i| doc.steps[i].id.get_ref().as_str()).collect();
            self.err(&doc.steps[cycle[0]].id.span(), format!("steps form a cycle: {}", names.join(" -> ")));
        }

        let kinds: Vec<Option<StepKind>> = doc.steps.iter().map(|s| self.kind(s, ctx)).collect();
        self.nothing_to_compensate(doc, &kinds);
        let built: Vec<Option<Step>> = doc
            .steps
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(i, (s, kind))| {
                let upstream = UpstreamOf { dag: &dag.upstream, step: i };
                self.step(s, kind, &needs[i], upstream, &steps, ctx)
            })
            .collect();
        let on_failure = steps.on_failure;
        let report = self.report(doc);
        let steps = built.into_iter().collect::<Option<Vec<Step>>>()?;
        Some(Workflow {
            name: doc.name.get_ref().clone(),
            version: version?,
            description: doc.description.clone(),
            params,
            limits,
            on_failure,
            report,
            steps,
            order: dag.order?,
        })
    }

    fn params(&mut self, doc: &Document) -> Vec<Param> {
        let mut entries: Vec<_> = doc.params.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut params = Vec::with_capacity(entries.len());
        for (name, p) in entries {
            if let Err(e) = check_kebab("param name", name.get_ref()) {
                self.err(&name.span(), e);
            }
            let kind = *p.kind.get_ref();
            let default = p.default.as_ref().map(|d| {
                let value = d.get_ref().to_json();
                if !kind.matches(&value) {
                    self.err(
                        &d.span(),
                        format!(
                            "param `{}` is of type {kind}, but its default {value} is {}",
                            name.get_ref(),
                            json_type(&value)
                        ),
                    );
                }
                value
            });
            params.push(Param {
                name: name.get_ref().clone(),
                kind,
                default,
                description: p.description.clone(),
            });
        }
        params
    }

    /// The `[report]` table ([`report_keys`]).
    fn report(&mut self, doc: &Document) -> ReportSpec {
        let mut problems = Vec::new();
        let report = report_keys::report(doc, &mut problems);
        for (span, message) in problems {
            self.err(&span, message);
        }
        report
    }

    fn limits(&mut self, doc: &Document) -> RunLimits {
        let mut limits = RunLimits::default();
        if let Some(c) = doc.limits.as_ref().and_then(|l| l.concurrency.as_ref()) {
            match *c.get_ref() {
                0 => self.err(&c.span(), "`limits.concurrency` must be at least 1"),
                n => limits.concurrency = n,
            }
        }
        limits
    }

    /// Resolves a step's `needs` to indices, in the order written, without repeats.
    fn needs(&mut self, s: &StepFile, steps: &Steps<'_>) -> Vec<usize> {
        let id = s.id.get_ref();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for need in &s.needs {
            match steps.index.get(need.get_ref().as_str()) {
                Some(&i) => {
                    if seen.insert(i) {
                        out.push(i);
                    }
                }
                None => {
                    let hint = closest(need.get_ref(), steps.index.keys().copied())
                        .map(|c| format!(": did you mean `{c}`?"))
                        .unwrap_or_default();
                    self.err(
                        &need.span(),
                        format!("step `{id}` needs `{}`, which is not a step{hint}", need.get_ref()),
                    );
                }
            }
        }
        out
    }

    /// Builds a step of the kind [`Self::kind`] gave for it.
    fn step(
        &mut self,
        s: &StepFile,
        kind: Option<StepKind>,
        needs: &[usize],
        upstream: UpstreamOf<'_>,
        steps: &Steps<'_>,
        ctx: &ValidationContext<'_>,
    ) -> Option<Step> {
        let id = s.id.get_ref().as_str();
        let is_approval = s.approval.is_some() && s.plugin.is_none();
        let for_each = self.for_each(s, upstream, steps, ctx);
        if let Some(when) = &s.when {
            match template::expression_variables(when.get_ref()) {
                Ok(names) => self.names(&names, &when.span(), Site::Instance, s, upstream, steps),
                Err(SyntaxProblem(m)) => {
                    let hint = if when.get_ref().contains("{{") { "; write it without `{{ }}`" } else { "" };
                    self.err(
                        &when.span(),
                        format!("step `{id}`: `when` is not a valid expression: {m}{hint}"),
                    );
                }
            }
        }
        let timeout = s.timeout.as_ref().and_then(|t| self.duration(id, "timeout", t, MAX_TIMEOUT));
        let retry = self.retry(s);
        let concurrency = self.concurrency(s);
        let grants = self.grants(s);
        let mut problems = Vec::new();
        let phase = report_keys::phase(s, &mut problems);
        for (span, message) in problems {
            self.err(&span, message);
        }
        if is_approval {
            for (present, key) in
                [(s.with.is_some(), "with"), (s.grants.is_some(), "grants"), (s.retry.is_some(), "retry")]
            {
                if present {
                    self.err(
                        &s.id.span(),
                        format!("step `{id}` is an approval: `{key}` applies to plugin steps only"),
                    );
                }
            }
        }
        if let Some(with) = &s.with {
            if !matches!(with.get_ref(), FileValue::Table(_)) {
                self.err(
                    &with.span(),
                    format!("step `{id}`: `with` must be a table, not {}", with.get_ref().type_name()),
                );
            }
            let mut path = String::from("with");
            self.templates_in_site(with, &mut path, Site::Instance, s, upstream, steps);
        }
        if let Some(approval) = &s.approval {
            let prompt = &approval.get_ref().prompt;
            match template::template_variables(prompt.get_ref()) {
                Ok(names) => self.names(&names, &prompt.span(), Site::Instance, s, upstream, steps),
                Err(SyntaxProblem(m)) => {
                    self.err(
                        &prompt.span(),
                        format!("step `{id}`: the approval prompt is not a valid template: {m}"),
                    );
                }
            }
        }
        if let Some(StepKind::Plugin { reference, info }) = &kind {
            let fallback = s.plugin.as_ref().map_or_else(|| s.id.span(), |p| p.span());
            for p in input::check(&info.input_schema, s.with.as_ref()) {
                let span = p.span.unwrap_or_else(|| fallback.clone());
                self.err(
                    &span,
                    format!(
                        "step `{id}`: input `{}` does not match the input schema of plugin `{}` {}: {}",
                        p.path, reference.name, info.version, p.message
                    ),
                );
            }
        }
        Some(Step {
            id: id.to_owned(),
            kind: kind?,
            needs: needs.to_vec(),
            for_each,
            when: s.when.as_ref().map(|w| w.get_ref().clone()),
            with: s
                .with
                .as_ref()
                .map_or_else(|| Value::Object(Default::default()), |w| w.get_ref().to_json()),
            retry: retry?,
            timeout,
            concurrency: concurrency?,
            on_failure: s.on_failure.as_ref().map_or(steps.on_failure, |o| *o.get_ref()),
            grants: grants?,
            phase,
        })
    }

    /// Reports each `on-failure = "compensate"` (top level or a step's) of a workflow in which
    /// no step can be undone: none calls a plugin that implements `compensate` and is not
    /// irreversible. Says nothing while a step's plugin is unresolved (reported already).
    fn nothing_to_compensate(&mut self, doc: &Document, kinds: &[Option<StepKind>]) {
        let unresolved = doc.steps.iter().zip(kinds).any(|(s, k)| s.plugin.is_some() && k.is_none());
        if unresolved || kinds.iter().flatten().any(StepKind::compensable) {
            return;
        }
        let asks = doc
            .on_failure
            .iter()
            .map(|o| (o, format!("workflow `{}`", doc.name.get_ref())))
            .chain(
                doc.steps
                    .iter()
                    .filter_map(|s| s.on_failure.as_ref().map(|o| (o, format!("step `{}`", s.id.get_ref())))),
            )
            .filter(|(o, _)| *o.get_ref() == OnFailure::Compensate)
            .collect::<Vec<_>>();
        if asks.is_empty() {
            return;
        }
        let (mut without, mut irreversible) = (Vec::new(), Vec::new());
        for (s, kind) in doc.steps.iter().zip(kinds) {
            if let Some(StepKind::Plugin { info, .. }) = kind {
                let list = if info.compensable { &mut irreversible } else { &mut without };
                list.push(s.id.get_ref().as_str());
            }
        }
        let why = match (without.as_slice(), irreversible.as_slice()) {
            ([], []) => "no step calls a plugin".to_owned(),
            ([one], []) => format!("the plugin of step `{one}` does not implement compensate"),
            (many, []) => format!("none of the plugins of steps {} implement compensate", id_list(many)),
            ([], [one]) => format!("step `{one}` is irreversible, never compensated"),
            ([], many) => format!("steps {} are irreversible, never compensated", id_list(many)),
            (without, irreversible) => format!(
                "{} implement compensate, and {} irreversible, never compensated",
                match without {
                    [one] => format!("the plugin of step `{one}` does not"),
                    many => format!("none of the plugins of steps {}", id_list(many)),
                },
                match irreversible {
                    [one] => format!("step `{one}` is"),
                    many => format!("steps {} are", id_list(many)),
                }
            ),
        };
        for (o, who) in asks {
            self.err(&o.span(), format!("{who}: nothing to compensate: {why}"));
        }
    }

    fn kind(&mut self, s: &StepFile, ctx: &ValidationContext<'_>) -> Option<StepKind> {
        let id = s.id.get_ref();
        match (&s.plugin, &s.approval) {
            (Some(_), Some(_)) => {
                self.err(
                    &s.id.span(),
                    format!("step `{id}` has both `plugin` and `approval`: give one of them"),
                );
                None
            }
            (None, None) => {
                self.err(
                    &s.id.span(),
                    format!("step `{id}` has neither `plugin` nor `approval`: give one of them"),
                );
                None
            }
            (None, Some(approval)) => {
                let prompt = approval.get_ref().prompt.get_ref();
                if prompt.trim().is_empty() {
                    self.err(
                        &approval.get_ref().prompt.span(),
                        format!("step `{id}`: the approval prompt is empty"),
                    );
                    return None;
                }
                let approvers = approval.get_ref().approvers.iter().map(|a| a.get_ref().clone()).collect();
                Some(StepKind::Approval { prompt: prompt.clone(), approvers })
            }
            (Some(plugin), None) => {
                let reference = match plugin_ref(plugin.get_ref()) {
                    Ok(r) => r,
                    Err(e) => {
                        self.err(&plugin.span(), format!("step `{id}`: plugin `{}`: {e}", plugin.get_ref()));
                        return None;
                    }
                };
                match (ctx.plugins)(&reference) {
                    Ok(info) => Some(StepKind::Plugin { reference, info: Box::new(info) }),
                    Err(e) => {
                        self.err(&plugin.span(), format!("step `{id}`: {e}"));
                        None
                    }
                }
            }
        }
    }

    fn for_each(
        &mut self,
        s: &StepFile,
        upstream: UpstreamOf<'_>,
        steps: &Steps<'_>,
        ctx: &ValidationContext<'_>,
    ) -> Option<ForEach> {
        let id = s.id.get_ref();
        let for_each = s.for_each.as_ref()?;
        match for_each.get_ref() {
            ForEachFile::Group(group) => {
                if group.trim().is_empty() {
                    self.err(&for_each.span(), format!("step `{id}`: `for-each` names no group"));
                } else if let Some(groups) = ctx.groups
                    && !groups.contains(group)
                {
                    let known = if groups.is_empty() {
                        "it has no groups".to_owned()
                    } else {
                        let list: Vec<String> = groups.iter().map(|g| format!("`{g}`")).collect();
                        format!("its groups are {}", list.join(", "))
                    };
                    self.err(
                        &for_each.span(),
                        format!("step `{id}`: `for-each` names inventory group `{group}`, which is not in the inventory; {known}"),
                    );
                }
                Some(ForEach::Group(group.clone()))
            }
            ForEachFile::List(items) => {
                // Keys of the items whose key is known before the run: a templated string's key
                // is checked when it renders.
                let mut keys: HashMap<String, usize> = HashMap::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let mut path = format!("for-each[{i}]");
                    self.templates_in_site(item, &mut path, Site::ForEach, s, upstream, steps);
                    let known = match item.get_ref() {
                        FileValue::String(text) if template::is_template(text) => None,
                        value => Some(instance_key(id, Some(&value.to_json()), i)),
                    };
                    if let Some(key) = known {
                        match keys.get(&key) {
                            Some(&first) => self.err(
                                &item.span(),
                                format!(
                                    "step `{id}`: `for-each[{i}]` gives the instance key `{key}`, as `for-each[{first}]` does: each item must give its own key"
                                ),
                            ),
                            None => {
                                keys.insert(key, i);
                            }
                        }
                    }
                }
                Some(ForEach::List(items.iter().map(|i| i.get_ref().to_json()).collect()))
            }
        }
    }

    /// Checks every templated string inside `value`.
    fn templates_in_site(
        &mut self,
        value: &Spanned<FileValue>,
        path: &mut String,
        site: Site,
        s: &StepFile,
        upstream: UpstreamOf<'_>,
        steps: &Steps<'_>,
    ) {
        let id = s.id.get_ref();
        match value.get_ref() {
            FileValue::String(text) => match template::template_variables(text) {
                Ok(names) => self.names(&names, &value.span(), site, s, upstream, steps),
                Err(SyntaxProblem(m)) => {
                    self.err(&value.span(), format!("step `{id}`: `{path}` is not a valid template: {m}"));
                }
            },
            FileValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.templates_in_site(item, path, site, s, upstream, steps);
                    path.truncate(len);
                }
            }
            FileValue::Table(table) => {
                for (k, v) in table {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    self.templates_in_site(v, path, site, s, upstream, steps);
                    path.truncate(len);
                }
            }
            FileValue::Integer(_) | FileValue::Float(_) | FileValue::Boolean(_) => {}
        }
    }

    /// Checks the dotted names a template uses against what the step may see.
    fn names(
        &mut self,
        names: &BTreeSet<String>,
        span: &Range<usize>,
        site: Site,
        s: &StepFile,
        upstream: UpstreamOf<'_>,
        steps: &Steps<'_>,
    ) {
        let id = s.id.get_ref();
        for name in names {
            if let Some(problem) = name_problem(id, name, site, s, upstream, steps) {
                self.err(span, problem);
            }
        }
    }

    /// Parses a duration that must be longer than zero and at most `max`.
    fn duration(&mut self, id: &str, what: &str, text: &Spanned<String>, max: Duration) -> Option<Duration> {
        match humantime::parse_duration(text.get_ref().trim()) {
            Ok(d) if d.is_zero() => {
                self.err(&text.span(), format!("step `{id}`: `{what}` must be longer than zero"));
                None
            }
            Ok(d) if d > max => {
                self.err(
                    &text.span(),
                    format!(
                        "step `{id}`: `{what}` {:?} is longer than the limit of {}",
                        text.get_ref(),
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    &text.span(),
                    format!(
                        "step `{id}`: `{what}` {:?} is not a duration ({e}): write it like `90s`, `10m` or `1h 30m`",
                        text.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn retry(&mut self, s: &StepFile) -> Option<RetryPolicy> {
        let id = s.id.get_ref();
        let mut policy = RetryPolicy::default();
        let Some(r) = &s.retry else { return Some(policy) };
        let mut ok = true;
        if let Some(a) = &r.attempts {
            match *a.get_ref() {
                0 => {
                    self.err(
                        &a.span(),
                        format!("step `{id}`: `retry.attempts` must be at least 1 (1 means no retry)"),
                    );
                    ok = false;
                }
                n => policy.attempts = n,
            }
        }
        if let Some(t) = &r.initial {
            match self.duration(id, "retry.initial", t, MAX_RETRY_DELAY) {
                Some(d) => policy.initial = d,
                None => ok = false,
            }
        }
        if let Some(t) = &r.max {
            match self.duration(id, "retry.max", t, MAX_RETRY_DELAY) {
                Some(d) => policy.max = d,
                None => ok = false,
            }
        }
        if let Some(f) = &r.factor {
            let f_value = *f.get_ref();
            if f_value.is_finite() && f_value >= 1.0 {
                policy.factor = f_value;
            } else {
                self.err(
                    &f.span(),
                    format!("step `{id}`: `retry.factor` must be a number of at least 1, not {f_value}"),
                );
                ok = false;
            }
        }
        if let Some(j) = &r.jitter {
            let j_value = *j.get_ref();
            if (0.0..=1.0).contains(&j_value) {
                policy.jitter = j_value;
            } else {
                self.err(
                    &j.span(),
                    format!("step `{id}`: `retry.jitter` must be between 0 and 1, not {j_value}"),
                );
                ok = false;
            }
        }
        if ok && policy.initial > policy.max {
            let span = r.initial.as_ref().or(r.max.as_ref()).map_or_else(|| s.id.span(), |t| t.span());
            self.err(
                &span,
                format!(
                    "step `{id}`: `retry.initial` ({}) is longer than `retry.max` ({})",
                    humantime::format_duration(policy.initial),
                    humantime::format_duration(policy.max)
                ),
            );
            ok = false;
        }
        ok.then_some(policy)
    }

    fn concurrency(&mut self, s: &StepFile) -> Option<StepConcurrency> {
        let id = s.id.get_ref();
        let Some(c) = &s.concurrency else { return Some(StepConcurrency::default()) };
        let mut ok = true;
        let mut check = |v: &Option<Spanned<u32>>, key: &str, this: &mut Self| match v {
            Some(n) if *n.get_ref() == 0 => {
                this.err(&n.span(), format!("step `{id}`: `concurrency.{key}` must be at least 1"));
                ok = false;
                None
            }
            Some(n) => Some(*n.get_ref()),
            None => None,
        };
        let step = check(&c.step, "step", self);
        let per_target = check(&c.per_target, "per-target", self);
        ok.then_some(StepConcurrency { step, per_target })
    }

    fn grants(&mut self, s: &StepFile) -> Option<GrantsSpec> {
        let id = s.id.get_ref();
        let Some(g) = &s.grants else { return Some(GrantsSpec::default()) };
        let mut ok = true;
        for (key, list) in [("targets", &g.targets), ("programs", &g.programs), ("secrets", &g.secrets)] {
            for entry in list {
                let text = entry.get_ref();
                let problem = if text.trim().is_empty() {
                    Some(format!("step `{id}`: `grants.{key}` has an empty entry"))
                } else if key == "secrets"
                    && text != "*"
                    && !text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    Some(format!(
                        "step `{id}`: `grants.secrets`: {text:?} is not a secret name (letters, digits, - _ .) or `*`"
                    ))
                } else {
                    None
                };
                if let Some(p) = problem {
                    self.err(&entry.span(), p);
                    ok = false;
                }
            }
        }
        for entry in &g.read_only {
            if let Err(problem) = crate::grants::ExecPattern::parse(entry.get_ref()) {
                self.err(
                    &entry.span(),
                    format!("step `{id}`: `grants.read-only` {:?}: {problem}", entry.get_ref()),
                );
                ok = false;
            }
        }
        let strings = |list: &[Spanned<String>]| list.iter().map(|e| e.get_ref().clone()).collect();
        ok.then(|| GrantsSpec {
            targets: strings(&g.targets),
            programs: strings(&g.programs),
            secrets: strings(&g.secrets),
            read_only: strings(&g.read_only),
        })
    }
}

/// What is wrong with a dotted name a template of step `id` uses, if anything.
fn name_problem(
    id: &str,
    name: &str,
    site: Site,
    s: &StepFile,
    upstream: UpstreamOf<'_>,
    steps: &Steps<'_>,
) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["params", param, ..] => {
            let kebab = param.replace('_', "-");
            if steps.params.contains(kebab.as_str()) {
                return None;
            }
            let hint = closest(
                param,
                steps.params.iter().map(|p| template_name(p)).collect::<Vec<_>>().iter().map(String::as_str),
            )
            .map(|c| format!(": did you mean `params.{c}`?"))
            .unwrap_or_default();
            Some(format!("step `{id}` uses `params.{param}`, which is not a param{hint}"))
        }
        ["steps", step, rest @ ..] => {
            let kebab = step.replace('_', "-");
            let Some(&index) = steps.index.get(kebab.as_str()) else {
                return Some(format!("step `{id}` uses `steps.{step}`, which is not a step"));
            };
            if kebab == id {
                return Some(format!("step `{id}` uses `{name}`, its own result"));
            }
            if !upstream.contains(index) {
                return Some(format!(
                    "step `{id}` uses `{name}`, but `{kebab}` is not upstream of `{id}`: add it to `needs`"
                ));
            }
            let fans_out = steps.doc.steps[index].for_each.is_some();
            match rest.first().copied() {
                None => None,
                Some("output") if !fans_out => None,
                Some("outputs") if fans_out => None,
                Some("output") => Some(format!(
                    "step `{id}` uses `{name}`, but `{kebab}` fans out: its results are `steps.{step}.outputs`"
                )),
                Some("outputs") => Some(format!(
                    "step `{id}` uses `{name}`, but `{kebab}` does not fan out: its result is `steps.{step}.output`"
                )),
                Some(_) => {
                    let field = if fans_out { "outputs" } else { "output" };
                    Some(format!("step `{id}` uses `{name}`: a step offers only `steps.{step}.{field}`"))
                }
            }
        }
        ["item", ..] => match site {
            Site::ForEach => {
                Some(format!("step `{id}` uses `item` in `for-each`, where there is no item yet"))
            }
            Site::Instance if s.for_each.is_none() => {
                Some(format!("step `{id}` uses `item`, but it has no `for-each`"))
            }
            Site::Instance => None,
        },
        ["run", field, ..] if *field != "id" => {
            Some(format!("step `{id}` uses `{name}`: `run` offers only `run.id`"))
        }
        [root, ..] if ROOTS.contains(root) || template::is_global(root) => None,
        [root, ..] => {
            let hint = closest(root, ROOTS.into_iter())
                .map(|c| format!(": did you mean `{c}`?"))
                .unwrap_or_default();
            Some(format!(
                "step `{id}` uses `{root}`, which is not defined (templates see {}){hint}",
                ROOTS.map(|r| format!("`{r}`")).join(", ")
            ))
        }
        [] => None,
    }
}

/// Checks a workflow name, step id or param name: lowercase words of letters and digits joined
/// by single dashes, starting with a letter, at most 64 characters.
fn check_kebab(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{name}` is not kebab-case: lowercase letters and digits in words joined by single `-`, starting with a letter, at most 64 characters"
        ))
    }
}

/// Parses `name@<semver requirement>` (or a bare name).
fn plugin_ref(text: &str) -> Result<PluginRef, String> {
    let (name, req) = match text.split_once('@') {
        Some((name, req)) => {
            let req = VersionReq::parse(req.trim())
                .map_err(|e| format!("`{req}` is not a semver requirement (like `^1.2`): {e}"))?;
            (name, req)
        }
        None => (text, VersionReq::STAR),
    };
    check_name(name)?;
    Ok(PluginRef { name: name.to_owned(), req })
}

/// The candidate closest to a misspelt name, if one is close enough to be meant.
/// The step id closest to a wrong one, for a "did you mean" hint.
pub(super) fn closest_id<'c>(wrong: &str, ids: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    closest(wrong, ids)
}

fn closest<'c>(wrong: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = if wrong.len() <= 4 { 1 } else { 2 };
    candidates
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// Step ids for a message: `` `a`, `b`, `c` ``, the first five and how many more.
fn id_list(ids: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut list = ids.iter().take(SHOWN).map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN {
        list.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    list
}

/// The JSON type of a value, with an article, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_is_strict() {
        assert!(check_kebab("step id", "join-group-2").is_ok());
        for bad in ["", "Join", "join_group", "join--group", "join-", "2join", &"a".repeat(65)] {
            assert!(check_kebab("step id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plugin_refs() {
        assert_eq!(plugin_ref("join-group@^1.2").map(|r| r.to_string()), Ok("join-group@^1.2".to_owned()));
        assert_eq!(plugin_ref("noop").map(|r| r.req), Ok(VersionReq::STAR));
        assert!(plugin_ref("x@one").unwrap_err().starts_with("`one` is not a semver requirement"));
        assert!(plugin_ref("Bad@^1").unwrap_err().starts_with("name \"Bad\" is not lowercase kebab-case"));
    }
}
