//! Templates in workflow files, through minijinja: rendering a step's `with` input and an
//! approval's prompt, evaluating `when` and templated `for-each` items against a [`Scope`], and
//! the static analysis the validator uses (which variables a template names). One
//! [`minijinja::Environment`] with strict undefined behaviour serves both, so a name that passes
//! validation is the name that renders, and a typo at run time is an error, never an empty
//! string.
//!
//! Names in templates are the file's kebab-case names with `-` as `_`: `params.sql_server`,
//! `steps.join_group.output`.
//!
//! Rendering runs on the driver's thread, so it has a budget: every render or evaluation may
//! execute [`FUEL`] instructions and a templated string may render to [`MAX_RENDERED_BYTES`]. A
//! template past either fails its step with a message saying so; it never wedges the driver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// Instructions one render of a string, or one evaluation of an expression, may execute
/// (minijinja's fuel). Real templates use a few hundred; a loop over a 100,000-instance fan-out
/// stays well within it; running through all of it takes about a second at worst.
pub const FUEL: u64 = 5_000_000;

/// Bytes one templated string may render to.
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// The variables at the root of a template's scope.
pub const ROOTS: [&str; 6] = ["params", "steps", "item", "target", "inventory", "run"];

/// What templates of one step instance can see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Param values by name as written in the file (`sql-server`).
    pub params: Map<String, Value>,
    /// Outputs of finished steps by id as written in the file (`join-group`).
    pub steps: BTreeMap<String, StepOutput>,
    /// The fan-out item: a server name for a group, the value for a list; `None` when the step
    /// does not fan out (then `item` is undefined).
    pub item: Option<Value>,
    /// The instance's target name, if it has one (`none` in templates otherwise).
    pub target: Option<String>,
    /// The inventory, as the caller describes it.
    pub inventory: Value,
    /// The run id (`run.id`).
    pub run_id: String,
}

/// What a finished step offers to templates.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// `steps.<id>.output`.
    Single(Value),
    /// `steps.<id>.outputs`: a fan-out step's outputs by item key.
    FanOut(BTreeMap<String, Value>),
}

impl Scope {
    /// The scope as one JSON object with template names (`-` as `_`).
    pub fn to_json(&self) -> Value {
        let params: Map<String, Value> =
            self.params.iter().map(|(k, v)| (template_name(k), v.clone())).collect();
        let steps: Map<String, Value> = self
            .steps
            .iter()
            .map(|(id, out)| {
                let entry = match out {
                    StepOutput::Single(v) => serde_json::json!({ "output": v }),
                    StepOutput::FanOut(outputs) => serde_json::json!({ "outputs": outputs }),
                };
                (template_name(id), entry)
            })
            .collect();
        let mut root = Map::new();
        root.insert("params".into(), Value::Object(params));
        root.insert("steps".into(), Value::Object(steps));
        if let Some(item) = &self.item {
            root.insert("item".into(), item.clone());
        }
        root.insert("target".into(), self.target.clone().map_or(Value::Null, Value::String));
        root.insert("inventory".into(), self.inventory.clone());
        root.insert("run".into(), serde_json::json!({ "id": self.run_id }));
        Value::Object(root)
    }

    fn context(&self) -> (Value, minijinja::Value) {
        let json = self.to_json();
        let value = minijinja::Value::from(minijinja::value::Serde(&json));
        (json, value)
    }
}

/// A file name (`sql-server`) as templates spell it (`sql_server`).
pub fn template_name(name: &str) -> String {
    name.replace('-', "_")
}

/// A template or expression that failed at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A string of the input (or a `for-each` item) did not render.
    #[error("cannot render {template:?}{}: {message}", at(path))]
    Render {
        /// Where in the value the string is (`sql`, `servers[0]`); empty for the value itself.
        path: String,
        /// The template.
        template: String,
        /// Why.
        message: String,
    },
    /// The `when` expression did not evaluate.
    #[error("cannot evaluate {expression:?}: {message}")]
    Eval {
        /// The expression.
        expression: String,
        /// Why.
        message: String,
    },
}

impl TemplateError {
    /// Why, without the template or expression.
    pub fn message(&self) -> &str {
        match self {
            TemplateError::Render { message, .. } | TemplateError::Eval { message, .. } => message,
        }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!(" at `{path}`") }
}

/// The one environment: strict undefined, no escaping, text kept as written.
fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.keep_trailing_newline(true);
        if let Ok(syntax) = syntax.build() {
            env.set_syntax(syntax);
        }
        env
    })
}

/// Whether a string holds template syntax; other strings are used as written.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The expression of a string that is exactly one `{{ expr }}` (whitespace around allowed),
/// which renders to the expression's typed value instead of a string.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    Some(inner.trim())
}

/// Renders every string of `with` (at any depth) against the scope. A string that is exactly
/// one `{{ expr }}` becomes the expression's value (number, bool, list, table); other templated
/// strings become strings; strings without template syntax and other values stay as they are.
pub fn render(with: &Value, scope: &Scope) -> Result<Value, TemplateError> {
    let (json, ctx) = scope.context();
    let mut path = String::new();
    render_value(with, &json, &ctx, &mut path)
}

/// Evaluates a `when` expression to its truthiness (Jinja rules: empty, zero, `false` and
/// `none` are false).
pub fn eval_when(expr: &str, scope: &Scope) -> Result<bool, TemplateError> {
    let (json, ctx) = scope.context();
    let fail = |message: String| TemplateError::Eval { expression: expr.to_owned(), message };
    let compiled = env().compile_expression(expr).map_err(|e| fail(describe(&e)))?;
    let value =
        compiled.eval(ctx).map_err(|e| fail(explain(&e, &compiled.undeclared_variables(true), &json)))?;
    if value.is_undefined() {
        return Err(fail(explain_undefined(&compiled.undeclared_variables(true), &json)));
    }
    Ok(value.is_true())
}

/// Renders the items of a `for-each` list (templated strings become their values), giving the
/// values the step fans out over.
pub fn eval_for_each_list(items: &[Value], scope: &Scope) -> Result<Vec<Value>, TemplateError> {
    let (json, ctx) = scope.context();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut path = format!("[{i}]");
            render_value(item, &json, &ctx, &mut path)
        })
        .collect()
}

/// Renders a text template (an approval's prompt) to a string. Unlike [`render`], a text that is
/// exactly one `{{ expr }}` is still text: a list or a table renders as minijinja prints it.
pub fn render_text(text: &str, scope: &Scope) -> Result<String, TemplateError> {
    if !is_template(text) {
        return Ok(text.to_owned());
    }
    let (json, ctx) = scope.context();
    render_template(text, &json, &ctx, "")
}

fn render_value(
    value: &Value,
    json: &Value,
    ctx: &minijinja::Value,
    path: &mut String,
) -> Result<Value, TemplateError> {
    match value {
        Value::String(s) if is_template(s) => render_string(s, json, ctx, path),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(render_value(item, json, ctx, path)?);
                path.truncate(len);
            }
            Ok(Value::Array(out))
        }
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                out.insert(k.clone(), render_value(v, json, ctx, path)?);
                path.truncate(len);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn render_string(s: &str, json: &Value, ctx: &minijinja::Value, path: &str) -> Result<Value, TemplateError> {
    let fail =
        |message: String| TemplateError::Render { path: path.to_owned(), template: s.to_owned(), message };
    if let Some(expr) = single_expression(s) {
        let compiled = env().compile_expression(expr).map_err(|e| fail(describe(&e)))?;
        let names = compiled.undeclared_variables(true);
        let value = compiled.eval(ctx.clone()).map_err(|e| fail(explain(&e, &names, json)))?;
        if value.is_undefined() {
            return Err(fail(explain_undefined(&names, json)));
        }
        if value.as_str().is_some_and(|s| s.len() > MAX_RENDERED_BYTES) {
            return Err(fail(format!("the template renders to more than {MAX_RENDERED_BYTES} bytes")));
        }
        return serde_json::to_value(&value).map_err(|e| fail(format!("the value is not plain data: {e}")));
    }
    render_template(s, json, ctx, path).map(Value::String)
}

/// Renders `s` as a string template, whatever it holds.
fn render_template(
    s: &str,
    json: &Value,
    ctx: &minijinja::Value,
    path: &str,
) -> Result<String, TemplateError> {
    let fail =
        |message: String| TemplateError::Render { path: path.to_owned(), template: s.to_owned(), message };
    let template = env().template_from_str(s).map_err(|e| fail(describe(&e)))?;
    let mut out = Capped { text: Vec::new(), over: false };
    let rendered = template.render_captured_to(ctx.clone(), &mut out);
    if out.over {
        return Err(fail(format!("the template renders to more than {MAX_RENDERED_BYTES} bytes")));
    }
    rendered.map_err(|e| fail(explain(&e, &template.undeclared_variables(true), json)))?;
    String::from_utf8(out.text).map_err(|e| fail(e.to_string()))
}

/// A render's output, refused past [`MAX_RENDERED_BYTES`].
struct Capped {
    text: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("the rendered text is too large"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A minijinja error as `kind: detail`, without the template name.
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A run-time error, naming the missing variable when the error is about an undefined one.
fn explain(e: &minijinja::Error, names: &std::collections::HashSet<String>, json: &Value) -> String {
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => explain_undefined(names, json),
        minijinja::ErrorKind::OutOfFuel => {
            format!("the template ran out of fuel after {FUEL} instructions (a loop too long, or endless)")
        }
        _ => describe(e),
    }
}

fn explain_undefined(names: &std::collections::HashSet<String>, json: &Value) -> String {
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    for name in names {
        let mut current = json;
        let mut seen = Vec::new();
        for part in name.split('.') {
            seen.push(part);
            match current.get(part) {
                Some(next) => current = next,
                None if env().globals().any(|(g, _)| g == part) && seen.len() == 1 => break,
                None => return format!("`{}` is undefined", seen.join(".")),
            }
        }
    }
    "undefined value".into()
}

/// A template or expression found invalid while validating, with minijinja's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxProblem(pub String);

/// The dotted variable paths a template names (`params.sql_server`, `steps.a.output.ok`), or
/// why it does not compile. A string without template syntax names none.
pub(super) fn template_variables(s: &str) -> Result<BTreeSet<String>, SyntaxProblem> {
    if !is_template(s) {
        return Ok(BTreeSet::new());
    }
    let template = env().template_from_str(s).map_err(|e| SyntaxProblem(describe(&e)))?;
    Ok(template.undeclared_variables(true).into_iter().collect())
}

/// The dotted variable paths an expression names, or why it does not compile.
pub(super) fn expression_variables(expr: &str) -> Result<BTreeSet<String>, SyntaxProblem> {
    let compiled = env().compile_expression(expr).map_err(|e| SyntaxProblem(describe(&e)))?;
    Ok(compiled.undeclared_variables(true).into_iter().collect())
}

/// Whether a name is one of minijinja's global functions (`range`, `dict`, …).
pub(super) fn is_global(name: &str) -> bool {
    env().globals().any(|(g, _)| g == name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        let mut s = Scope {
            params: json!({ "sql-server": "SQLPROD01", "join": true, "port": 1433 })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            item: Some(json!("DRBTS01")),
            target: Some("DRBTS01".into()),
            inventory: json!({ "groups": { "dr-servers": ["DRBTS01", "DRBTS02"] } }),
            run_id: "run_01".into(),
            ..Scope::default()
        };
        s.steps.insert("check".into(), StepOutput::Single(json!({ "ok": true, "count": 2 })));
        s.steps.insert(
            "join-group".into(),
            StepOutput::FanOut(BTreeMap::from([("DRBTS01".into(), json!({ "joined": true }))])),
        );
        s
    }

    #[test]
    fn strings_render_and_single_expressions_keep_their_type() {
        let with = json!({
            "server": "{{ item }}",
            "sql": "Server={{ params.sql_server }};Port={{ params.port }}",
            "port": "{{ params.port }}",
            "join": " {{ params.join }} ",
            "check": "{{ steps.check.output }}",
            "joined": "{{ steps.join_group.outputs['DRBTS01'].joined }}",
            "plain": "no {braces} here",
            "list": ["{{ target }}", 3, "{{ run.id }}"],
            "count": 7,
            "groups": "{{ inventory.groups['dr-servers'] | length }}"
        });
        let out = render(&with, &scope()).unwrap();
        assert_eq!(
            out,
            json!({
                "server": "DRBTS01",
                "sql": "Server=SQLPROD01;Port=1433",
                "port": 1433,
                "join": true,
                "check": { "ok": true, "count": 2 },
                "joined": true,
                "plain": "no {braces} here",
                "list": ["DRBTS01", 3, "run_01"],
                "count": 7,
                "groups": 2
            })
        );
    }

    #[test]
    fn undefined_names_are_errors_that_say_which() {
        let err = render(&json!({ "a": { "b": "x {{ params.sql_srever }}" } }), &scope()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render \"x {{ params.sql_srever }}\" at `a.b`: `params.sql_srever` is undefined"
        );
        let err = render(&json!({ "a": "{{ steps.nope.output }}" }), &scope()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render \"{{ steps.nope.output }}\" at `a`: `steps.nope` is undefined"
        );
        let no_item = Scope { item: None, ..scope() };
        let err = render(&json!({ "a": "{{ item }}" }), &no_item).unwrap_err();
        assert!(err.to_string().ends_with("`item` is undefined"), "{err}");
        let err = render(&json!({ "a": "{{ 1 + }}" }), &scope()).unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
    }

    #[test]
    fn text_templates_render_to_strings() {
        let s = scope();
        let prompt = "Fail over {{ params.sql_server }}? Check: {{ steps.check.output.count }}";
        assert_eq!(render_text(prompt, &s).unwrap(), "Fail over SQLPROD01? Check: 2");
        assert_eq!(render_text("{{ params.port }}", &s).unwrap(), "1433");
        assert_eq!(render_text("no {braces} here", &s).unwrap(), "no {braces} here");
        let err = render_text("Go {{ steps.measure.output.rpo }}?", &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render \"Go {{ steps.measure.output.rpo }}?\": `steps.measure` is undefined"
        );
    }

    #[test]
    fn when_is_truthiness() {
        let s = scope();
        assert!(eval_when("params.join and steps.check.output.ok", &s).unwrap());
        assert!(!eval_when("steps.check.output.count > 5", &s).unwrap());
        assert!(eval_when("target is none", &Scope { target: None, ..s.clone() }).unwrap());
        assert!(!eval_when("''", &s).unwrap());
        let err = eval_when("params.nope", &s).unwrap_err();
        assert_eq!(err.to_string(), "cannot evaluate \"params.nope\": `params.nope` is undefined");
    }

    #[test]
    fn for_each_items_render_to_values() {
        let items = [json!("{{ params.sql_server }}"), json!("{{ params.port }}"), json!({ "x": 1 })];
        let out = eval_for_each_list(&items, &scope()).unwrap();
        assert_eq!(out, vec![json!("SQLPROD01"), json!(1433), json!({ "x": 1 })]);
        let err = eval_for_each_list(&[json!("{{ nope }}")], &scope()).unwrap_err();
        assert_eq!(err.to_string(), "cannot render \"{{ nope }}\" at `[0]`: `nope` is undefined");
    }

    #[test]
    fn endless_templates_run_out_of_fuel_instead_of_wedging_the_driver() {
        let nested = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = render(&json!({ "a": nested }), &scope()).unwrap_err().to_string();
        assert!(err.contains(&format!("ran out of fuel after {FUEL} instructions")), "{err}");
        assert!(err.contains("at `a`"), "{err}");
        let err = eval_for_each_list(&[json!(nested)], &scope()).unwrap_err().to_string();
        assert!(err.contains("ran out of fuel"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    }

    #[test]
    fn renders_past_the_size_cap_fail() {
        let big = "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}";
        let err = render(&json!({ "a": big }), &scope()).unwrap_err().to_string();
        assert!(err.contains(&format!("renders to more than {MAX_RENDERED_BYTES} bytes")), "{err}");
        let err = render(&json!({ "a": "{{ 'x' * 10000000 }}" }), &scope()).unwrap_err().to_string();
        assert!(err.contains("renders to more than"), "{err}");
        let ok = render(&json!({ "a": "{% for i in range(3) %}{{ i }}{% endfor %}" }), &scope()).unwrap();
        assert_eq!(ok, json!({ "a": "012" }));
    }

    #[test]
    fn static_analysis_names_dotted_paths() {
        let names =
            template_variables("{{ params.a }} {% for x in steps.b.outputs %}{{ x }}{% endfor %}").unwrap();
        assert_eq!(names, BTreeSet::from(["params.a".to_owned(), "steps.b.outputs".to_owned()]));
        assert!(template_variables("plain").unwrap().is_empty());
        assert!(template_variables("{{ a").is_err());
        let names = expression_variables("params.join and steps.check.output.ok").unwrap();
        assert_eq!(names, BTreeSet::from(["params.join".to_owned(), "steps.check.output.ok".to_owned()]));
        assert!(is_global("range"));
        assert!(!is_global("params"));
    }
}
