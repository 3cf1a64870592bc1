//! Workflow files through `drover_engine::workflow`: every class of problem is reported with
//! its message, line and column, all problems at once; a valid workflow becomes the expected
//! domain values; and the committed JSON Schema is the one the file types generate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use drover_engine::plugin::{Capabilities, Effect, PluginInfo, PluginRef};
use drover_engine::workflow::{
    self, Diagnostics, ForEach, GrantsSpec, LoadError, OnFailure, ParamType, RetryPolicy, Scope,
    StepConcurrency, StepKind, StepOutput, ValidationContext, Workflow,
};
use semver::Version;
use serde_json::{Value, json};

fn plugin(name: &str, version: &str, input_schema: Value) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: Version::parse(version).expect("test version"),
        description: format!("{name} for tests"),
        effect: Effect::Idempotent,
        input_schema,
        output_schema: json!({ "type": "object" }),
        capabilities: Capabilities::default(),
        compensable: false,
        sdk: "drover-sdk 0.1.0".into(),
    }
}

/// A plugin that implements `compensate`, with this effect.
fn compensable(name: &str, effect: Effect) -> PluginInfo {
    PluginInfo { effect, compensable: true, ..plugin(name, "1.0.0", json!({ "type": "object" })) }
}

/// The installed plugins of these tests, resolved the way the registry does.
fn installed() -> Vec<PluginInfo> {
    vec![
        plugin("prerequisites-check", "1.0.0", json!({ "type": "object" })),
        compensable("create-instance", Effect::Reversible),
        compensable("send-mail", Effect::Irreversible),
        plugin(
            "join-group",
            "1.2.0",
            json!({
                "type": "object",
                "properties": {
                    "server": { "type": "string" },
                    "port": { "type": "integer" },
                    "sql": { "type": "string" }
                },
                "required": ["server"],
                "additionalProperties": false
            }),
        ),
    ]
}

fn resolve(r: &PluginRef) -> Result<PluginInfo, String> {
    let all = installed();
    let versions: Vec<&PluginInfo> = all.iter().filter(|p| p.name == r.name).collect();
    if versions.is_empty() {
        return Err(format!("plugin {} is not installed: install it with `drover plugin install`", r.name));
    }
    versions.into_iter().find(|p| r.req.matches(&p.version)).cloned().ok_or_else(|| {
        format!("no installed version of plugin {} matches {} (installed: 1.2.0)", r.name, r.req)
    })
}

fn groups() -> BTreeSet<String> {
    ["dr-servers", "prod-servers"].map(String::from).into()
}

/// Parses and validates `text` as the file `path`, with the test plugins and inventory.
fn check_as(path: &str, text: &str) -> Result<Workflow, Diagnostics> {
    let groups = groups();
    let ctx = ValidationContext { groups: Some(&groups), plugins: &resolve };
    let file = workflow::parse(Path::new(path), text)?;
    workflow::validate(&file, &ctx)
}

/// The problems of a TOML workflow, as (line, column, message).
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match check_as("wf.toml", text) {
        Ok(_) => panic!("expected problems, the workflow is valid"),
        Err(d) => d.into_iter().map(|d| (d.line, d.column, d.message)).collect(),
    }
}

fn p(line: usize, column: usize, message: &str) -> (usize, usize, String) {
    (line, column, message.to_owned())
}

const HEAD: &str = "name = \"w\"\nversion = \"1.0.0\"\n";

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    let text = r#"name = "w"
version = "1.0.0"
stpes = []

[params.x]
type = "string"
defualt = "a"

[[steps]]
id = "join-group"
plugin = "prerequisites-check@^1"
timout = "10m"
retry = { attempts = 2, intial = "1s" }
colour = "blue"
"#;
    assert_eq!(
        problems(text),
        vec![
            p(3, 1, "unknown key `stpes` at the top level: did you mean `steps`?"),
            p(7, 1, "unknown key `defualt` in param `x`: did you mean `default`?"),
            p(12, 1, "unknown key `timout` in step `join-group`: did you mean `timeout`?"),
            p(13, 25, "unknown key `intial` in `retry` of step `join-group`: did you mean `initial`?"),
            p(14, 1, "unknown key `colour` in step `join-group`"),
        ]
    );
}

#[test]
fn type_errors_are_reported_for_every_step() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"prerequisites-check@^1\"
timeout = 10

[[steps]]
id = \"b\"
plugin = \"prerequisites-check@^1\"
on-failure = \"halt\"

[[steps]]
plugin = \"prerequisites-check@^1\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(7, 11, "`timeout` in step `a`: invalid type: integer `10`, expected a string"),
            p(
                12,
                14,
                "`on-failure` in step `b`: unknown variant `halt`, expected one of `stop`, `continue`, `compensate`"
            ),
            p(14, 1, "step 3 (the one without an id): missing key `id`"),
        ]
    );
}

#[test]
fn toml_syntax_errors_have_positions() {
    let text = format!("{HEAD}\n[[steps]]\nid = \"a\nplugin = \"x\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (5, 8));
    assert!(found[0].2.contains("string"), "{found:?}");
}

#[test]
fn duplicate_step_ids() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
approval = {{ prompt = \"ok?\" }}

[[steps]]
id = \"a\"
approval = {{ prompt = \"ok?\" }}
"
    );
    assert_eq!(problems(&text), vec![p(9, 6, "duplicate step id `a` (first defined at line 5)")]);
}

#[test]
fn needs_must_name_steps() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"prepare\"
approval = {{ prompt = \"ok?\" }}

[[steps]]
id = \"b\"
approval = {{ prompt = \"ok?\" }}
needs = [\"prepare\", \"nope\", \"prepar\"]
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(11, 21, "step `b` needs `nope`, which is not a step"),
            p(11, 29, "step `b` needs `prepar`, which is not a step: did you mean `prepare`?"),
        ]
    );
}

#[test]
fn cycles_are_named_as_paths() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
approval = {{ prompt = \"ok?\" }}
needs = [\"b\"]

[[steps]]
id = \"b\"
approval = {{ prompt = \"ok?\" }}
needs = [\"c\"]

[[steps]]
id = \"c\"
approval = {{ prompt = \"ok?\" }}
needs = [\"a\"]

[[steps]]
id = \"d\"
approval = {{ prompt = \"ok?\" }}
needs = [\"d\", \"a\"]
"
    );
    assert_eq!(
        problems(&text),
        vec![p(5, 6, "steps form a cycle: a -> b -> c -> a"), p(20, 6, "steps form a cycle: d -> d")]
    );
}

#[test]
fn plugin_references_must_parse() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"join-group@^x.1\"

[[steps]]
id = \"b\"
plugin = \"Join_Group@^1\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(
                6,
                10,
                "step `a`: plugin `join-group@^x.1`: `^x.1` is not a semver requirement (like `^1.2`): unexpected character 'x' while parsing major version number"
            ),
            p(
                10,
                10,
                "step `b`: plugin `Join_Group@^1`: name \"Join_Group\" is not lowercase kebab-case (a-z, 0-9, -, starting with a letter, at most 64)"
            ),
        ]
    );
}

#[test]
fn plugins_must_be_installed() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"missing@^1\"

[[steps]]
id = \"b\"
plugin = \"join-group@^2\"
with = {{ server = \"x\" }}
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(6, 10, "step `a`: plugin missing is not installed: install it with `drover plugin install`"),
            p(10, 10, "step `b`: no installed version of plugin join-group matches ^2 (installed: 1.2.0)"),
        ]
    );
}

#[test]
fn for_each_groups_must_be_in_the_inventory() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"join-group@^1\"
for-each = \"dr-srvers\"
with = {{ server = \"{{{{ item }}}}\" }}
"
    );
    assert_eq!(
        problems(&text),
        vec![p(
            7,
            12,
            "step `a`: `for-each` names inventory group `dr-srvers`, which is not in the inventory; its groups are `dr-servers`, `prod-servers`"
        )]
    );
    // Without an inventory, group names are not checked.
    let file = workflow::parse(Path::new("wf.toml"), &text).expect("parses");
    let ctx = ValidationContext { groups: None, plugins: &resolve };
    let w = workflow::validate(&file, &ctx).expect("valid without an inventory");
    assert_eq!(w.steps[0].for_each, Some(ForEach::Group("dr-srvers".into())));
}

#[test]
fn templates_may_name_only_params_upstream_steps_and_the_scope() {
    let text = format!(
        "{HEAD}
[params.sql-server]
type = \"string\"
default = \"SQLPROD01\"

[[steps]]
id = \"check\"
plugin = \"prerequisites-check@^1\"
for-each = [\"{{{{ params.sql_server }}}}\", \"{{{{ item }}}}\"]

[[steps]]
id = \"other\"
plugin = \"prerequisites-check@^1\"

[[steps]]
id = \"join\"
plugin = \"join-group@^1\"
needs = [\"check\"]
when = \"steps.check.output.ok and params.joinn\"
with = {{ server = \"{{{{ item }}}}\", sql = \"{{{{ params.nope }}}} {{{{ steps.other.output }}}}\" }}

[[steps]]
id = \"last\"
plugin = \"prerequisites-check@^1\"
needs = [\"join\"]
when = \"{{{{ steps.check.outputs }}}}\"
with = {{ a = \"{{{{ steps.join.outputs }}}}\", b = \"{{{{ colour }}}}\", c = \"{{{{ run.name }}}}\", d = \"{{{{ x\" }}
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(11, 40, "step `check` uses `item` in `for-each`, where there is no item yet"),
            p(21, 8, "step `join` uses `params.joinn`, which is not a param"),
            p(
                21,
                8,
                "step `join` uses `steps.check.output.ok`, but `check` fans out: its results are `steps.check.outputs`"
            ),
            p(22, 19, "step `join` uses `item`, but it has no `for-each`"),
            p(22, 39, "step `join` uses `params.nope`, which is not a param"),
            p(
                22,
                39,
                "step `join` uses `steps.other.output`, but `other` is not upstream of `join`: add it to `needs`"
            ),
            p(
                28,
                8,
                "step `last`: `when` is not a valid expression: syntax error: unexpected `}`, expected `:`; write it without `{{ }}`"
            ),
            p(
                29,
                14,
                "step `last` uses `steps.join.outputs`, but `join` does not fan out: its result is `steps.join.output`"
            ),
            p(
                29,
                46,
                "step `last` uses `colour`, which is not defined (templates see `params`, `steps`, `item`, `target`, `inventory`, `run`)"
            ),
            p(29, 66, "step `last` uses `run.name`: `run` offers only `run.id`"),
            p(
                29,
                88,
                "step `last`: `with.d` is not a valid template: syntax error: unexpected end of input, expected end of variable block"
            ),
        ]
    );
}

#[test]
fn constant_inputs_are_checked_against_the_plugin_schema() {
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"join-group@^1\"
for-each = \"dr-servers\"

[steps.with]
server = \"{{{{ item }}}}\"
port = \"1433\"
extra = 1

[[steps]]
id = \"b\"
plugin = \"join-group@^1\"
with = {{ port = 1433, sql = \"{{{{ params.x }}}}\" }}

[params.x]
type = \"string\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(
                9,
                1,
                "step `a`: input `with` does not match the input schema of plugin `join-group` 1.2.0: additional properties are not allowed ('extra' was unexpected)"
            ),
            p(
                11,
                8,
                "step `a`: input `with.port` does not match the input schema of plugin `join-group` 1.2.0: \"1433\" is not of type \"integer\""
            ),
            p(
                17,
                8,
                "step `b`: input `with` does not match the input schema of plugin `join-group` 1.2.0: \"server\" is a required property"
            ),
        ]
    );
}

#[test]
fn fields_are_checked() {
    let text = format!(
        "{HEAD}
[params.port]
type = \"integer\"
default = \"1433\"

[params.required-one]
type = \"string\"

[limits]
concurrency = 0

[[steps]]
id = \"a\"
plugin = \"prerequisites-check@^1\"
timeout = \"10\"
retry = {{ attempts = 0, initial = \"10m\", factor = 0.5, jitter = 2.0 }}
concurrency = {{ step = 0, per-target = 1 }}
grants = {{ secrets = [\"svc pass\"], programs = [\"\"] }}

[[steps]]
id = \"b\"
plugin = \"prerequisites-check@^1\"
approval = {{ prompt = \"ok?\" }}

[[steps]]
id = \"c\"

[[steps]]
id = \"d\"
approval = {{ prompt = \"ok?\" }}
with = {{ x = 1 }}
retry = {{ initial = \"1m\", max = \"10s\" }}
timeout = \"0s\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(6, 11, "param `port` is of type integer, but its default \"1433\" is a string"),
            p(12, 15, "`limits.concurrency` must be at least 1"),
            p(
                17,
                11,
                "step `a`: `timeout` \"10\" is not a duration (time unit needed, for example 10sec or 10ms): write it like `90s`, `10m` or `1h 30m`"
            ),
            p(18, 22, "step `a`: `retry.attempts` must be at least 1 (1 means no retry)"),
            p(18, 51, "step `a`: `retry.factor` must be a number of at least 1, not 0.5"),
            p(18, 65, "step `a`: `retry.jitter` must be between 0 and 1, not 2"),
            p(19, 24, "step `a`: `concurrency.step` must be at least 1"),
            p(
                20,
                23,
                "step `a`: `grants.secrets`: \"svc pass\" is not a secret name (letters, digits, - _ .) or `*`"
            ),
            p(20, 48, "step `a`: `grants.programs` has an empty entry"),
            p(23, 6, "step `b` has both `plugin` and `approval`: give one of them"),
            p(28, 6, "step `c` has neither `plugin` nor `approval`: give one of them"),
            p(31, 6, "step `d` is an approval: `with` applies to plugin steps only"),
            p(31, 6, "step `d` is an approval: `retry` applies to plugin steps only"),
            p(34, 21, "step `d`: `retry.initial` (1m) is longer than `retry.max` (10s)"),
            p(35, 11, "step `d`: `timeout` must be longer than zero"),
        ]
    );
}

#[test]
fn durations_are_bounded_so_no_deadline_or_retry_time_can_overflow() {
    // The values that validated once and then panicked the driver on every resume, or wrapped a
    // retry time into the past.
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"prerequisites-check@^1\"
timeout = \"18446744073709551615s\"
retry = {{ attempts = 3, initial = \"300000000years\", max = \"18446744073709551615s\" }}

[[steps]]
id = \"b\"
plugin = \"prerequisites-check@^1\"
timeout = \"7days 1s\"
retry = {{ attempts = 3, max = \"25h\" }}
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(7, 11, "step `a`: `timeout` \"18446744073709551615s\" is longer than the limit of 7days"),
            p(8, 35, "step `a`: `retry.initial` \"300000000years\" is longer than the limit of 1day"),
            p(8, 59, "step `a`: `retry.max` \"18446744073709551615s\" is longer than the limit of 1day"),
            p(13, 11, "step `b`: `timeout` \"7days 1s\" is longer than the limit of 7days"),
            p(14, 31, "step `b`: `retry.max` \"25h\" is longer than the limit of 1day"),
        ]
    );
    // The limits themselves are allowed.
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
plugin = \"prerequisites-check@^1\"
timeout = \"7days\"
retry = {{ attempts = 3, initial = \"1day\", max = \"24h\" }}
"
    );
    let w = check_as("wf.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.steps[0].timeout, Some(workflow::MAX_TIMEOUT));
    assert_eq!(w.steps[0].retry.max, workflow::MAX_RETRY_DELAY);
    // The generated reference states the limits the validator applies.
    let reference = workflow::reference::reference_markdown();
    for (key, limit) in [
        ("timeout", workflow::MAX_TIMEOUT),
        ("initial", workflow::MAX_RETRY_DELAY),
        ("max", workflow::MAX_RETRY_DELAY),
    ] {
        let line = reference
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("`{key}` is documented"));
        let stated = format!("at most `{}`", humantime::format_duration(limit));
        assert!(line.contains(&stated), "{line} says {stated}");
    }
}

#[test]
fn for_each_items_must_give_distinct_instance_keys() {
    // `"1"` and `1` both make the instance `s[1]`; a table item is keyed by its position, so it
    // meets the string `"2"`; a templated item is only known when it renders.
    let text = format!(
        "{HEAD}
[params.p]
type = \"string\"
default = \"1\"

[[steps]]
id = \"s\"
plugin = \"prerequisites-check@^1\"
for-each = [\"1\", 1, {{ x = 1 }}, \"2\", true, \"true\", \"{{{{ params.p }}}}\", 1.5]
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(
                11,
                18,
                "step `s`: `for-each[1]` gives the instance key `s[1]`, as `for-each[0]` does: each item must give its own key"
            ),
            p(
                11,
                32,
                "step `s`: `for-each[3]` gives the instance key `s[2]`, as `for-each[2]` does: each item must give its own key"
            ),
            p(
                11,
                43,
                "step `s`: `for-each[5]` gives the instance key `s[true]`, as `for-each[4]` does: each item must give its own key"
            ),
        ]
    );
    // Distinct keys, and a templated item that may render to anything, are fine here; the driver
    // fails the step if a rendered item repeats a key.
    let text = format!(
        "{HEAD}
[params.p]
type = \"string\"
default = \"1\"

[[steps]]
id = \"s\"
plugin = \"prerequisites-check@^1\"
for-each = [\"1\", 3, {{ x = 1 }}, \"{{{{ params.p }}}}\"]
"
    );
    let w = check_as("wf.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        workflow::model::duplicate_instance_key("s", &[Some(json!("1")), Some(json!(2)), Some(json!("1"))]),
        Some((0, 2, "s[1]".to_owned()))
    );
    assert!(matches!(&w.steps[0].for_each, Some(ForEach::List(items)) if items.len() == 4));
}

/// A chain of `n` plugin steps, each needing the one before and using its output and the first
/// step's in templates.
fn chain(n: usize) -> String {
    let mut text = String::from(HEAD);
    text.push_str("[[steps]]\nid = \"s0\"\nplugin = \"prerequisites-check@^1\"\n");
    for i in 1..n {
        text.push_str(&format!(
            "\n[[steps]]\nid = \"s{i}\"\nplugin = \"prerequisites-check@^1\"\nneeds = [\"s{}\"]\nwhen = \"steps.s0.output\"\nwith = {{ previous = \"{{{{ steps.s{}.output }}}}\" }}\n",
            i - 1,
            i - 1
        ));
    }
    text
}

#[test]
fn a_long_chain_validates() {
    // Validation once held every step's transitive upstream as a set: the square of the length
    // (a 4,000-step chain took 12 s and 226 MB). Upstream is now asked on demand; the graph's
    // unit tests check that a chain is answered without any search. Here: a chain five times
    // that long validates, with every template's upstream step found.
    let n = 20_000;
    let w = check_as("chain.toml", &chain(n)).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.steps.len(), n);
    assert_eq!(w.order, (0..n).collect::<Vec<_>>());
    assert_eq!(w.steps[n - 1].needs, vec![n - 2]);
    // And a use of a step that is not upstream is still found, at the end of a chain.
    let mut text = chain(4_000);
    text.push_str("\n[[steps]]\nid = \"stray\"\nplugin = \"prerequisites-check@^1\"\nneeds = [\"s5\"]\nwith = { x = \"{{ steps.s7.output }}\" }\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].2,
        "step `stray` uses `steps.s7.output`, but `s7` is not upstream of `stray`: add it to `needs`"
    );
}

#[test]
fn files_larger_than_the_input_limit_are_refused_unread() {
    let groups = groups();
    let ctx = ValidationContext { groups: Some(&groups), plugins: &resolve };
    let Err(e @ LoadError::Read { .. }) = workflow::load(Path::new("/dev/zero"), &ctx) else {
        panic!("expected a read error")
    };
    assert_eq!(
        e.to_string(),
        "cannot read workflow file /dev/zero: the file is larger than 16 MiB, the limit for an input file"
    );
}

#[test]
fn names_and_versions_are_checked() {
    let text = "name = \"DR_Site\"\nversion = \"1.0\"\n[params.Bad_Name]\ntype = \"string\"\n\n[[steps]]\nid = \"Step1\"\napproval = { prompt = \" \" }\n";
    assert_eq!(
        problems(text),
        vec![
            p(
                1,
                8,
                "workflow name `DR_Site` is not kebab-case: lowercase letters and digits in words joined by single `-`, starting with a letter, at most 64 characters"
            ),
            p(
                2,
                11,
                "version `1.0` is not a semantic version (like `1.0.0`): unexpected end of input while parsing minor version number"
            ),
            p(
                3,
                9,
                "param name `Bad_Name` is not kebab-case: lowercase letters and digits in words joined by single `-`, starting with a letter, at most 64 characters"
            ),
            p(
                7,
                6,
                "step id `Step1` is not kebab-case: lowercase letters and digits in words joined by single `-`, starting with a letter, at most 64 characters"
            ),
            p(8, 23, "step `Step1`: the approval prompt is empty"),
        ]
    );
    assert_eq!(problems(HEAD), vec![p(1, 8, "the workflow has no steps: add a `[[steps]]` table")]);
}

/// A workflow of three steps (a plain plugin, a compensable one, an approval) under `top`, a
/// top-level line such as `on-failure = "compensate"`, with `check` and `gate` setting their own.
fn three_steps(top: &str) -> String {
    format!(
        "{HEAD}{top}
[[steps]]
id = \"check\"
plugin = \"prerequisites-check@^1\"
on-failure = \"continue\"

[[steps]]
id = \"create\"
plugin = \"create-instance@^1\"
needs = [\"check\"]

[[steps]]
id = \"gate\"
approval = {{ prompt = \"go?\" }}
needs = [\"create\"]
on-failure = \"stop\"
"
    )
}

#[test]
fn the_run_level_on_failure_is_the_default_of_steps_that_set_none() {
    let policies = |w: &Workflow| w.steps.iter().map(|s| s.on_failure).collect::<Vec<_>>();

    let w =
        check_as("wf.toml", &three_steps("on-failure = \"compensate\"\n")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.on_failure, OnFailure::Compensate);
    assert_eq!(policies(&w), [OnFailure::Continue, OnFailure::Compensate, OnFailure::Stop]);
    // At run level, a failure of any step compensates, `continue` steps included.
    assert!(w.compensates([0]));
    assert_eq!(w.steps.iter().map(|s| s.compensable()).collect::<Vec<_>>(), [false, true, false]);

    let w =
        check_as("wf.toml", &three_steps("on-failure = \"continue\"\n")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.on_failure, OnFailure::Continue);
    assert_eq!(policies(&w), [OnFailure::Continue, OnFailure::Continue, OnFailure::Stop]);
    assert!(!w.compensates([0, 1, 2]));

    let w = check_as("wf.toml", &three_steps("")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.on_failure, OnFailure::Stop);
    assert_eq!(policies(&w), [OnFailure::Continue, OnFailure::Stop, OnFailure::Stop]);

    // A step's own `compensate`: only its failure compensates.
    let text = three_steps("")
        .replace("needs = [\"check\"]\n", "needs = [\"check\"]\non-failure = \"compensate\"\n");
    let w = check_as("wf.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.on_failure, OnFailure::Stop);
    assert_eq!(policies(&w), [OnFailure::Continue, OnFailure::Compensate, OnFailure::Stop]);
    assert!(w.compensates([1]));
    assert!(!w.compensates([0, 2]));
    assert_eq!(
        policies(&w).into_iter().map(OnFailure::halts).collect::<Vec<_>>(),
        [false, true, true],
        "`compensate` stops the run as `stop` does"
    );

    // The same in JSON, and through the pinned form.
    let json = "{\n  \"name\": \"w\",\n  \"version\": \"1.0.0\",\n  \"on-failure\": \"compensate\",\n  \"steps\": [\n    { \"id\": \"check\", \"plugin\": \"prerequisites-check@^1\", \"on-failure\": \"continue\" },\n    { \"id\": \"create\", \"plugin\": \"create-instance@^1\", \"needs\": [\"check\"] },\n    { \"id\": \"gate\", \"approval\": { \"prompt\": \"go?\" }, \"needs\": [\"create\"], \"on-failure\": \"stop\" }\n  ]\n}\n";
    let from_json = check_as("wf.json", json).unwrap_or_else(|d| panic!("{d}"));
    let from_toml =
        check_as("wf.toml", &three_steps("on-failure = \"compensate\"\n")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(from_json, from_toml);
    let pinned = serde_json::to_value(&from_toml).expect("serializes");
    assert_eq!(pinned["on_failure"], json!("compensate"));
    assert_eq!(drover_engine::run::pinned_workflow(&pinned), Ok(from_toml));
}

#[test]
fn a_definition_pinned_before_the_run_level_on_failure_reads_as_stop() {
    let w = check_as("wf.toml", VALID).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.on_failure, OnFailure::Stop);
    let mut old = serde_json::to_value(&w).expect("serializes");
    assert!(old.as_object_mut().and_then(|o| o.remove("on_failure")).is_some(), "{old:#}");
    assert_eq!(drover_engine::run::pinned_workflow(&old), Ok(w.clone()));

    // The same workflow in the pinned format of this build: each plugin described once.
    let mut plugins = serde_json::Map::new();
    for step in old["steps"].as_array_mut().into_iter().flatten() {
        if let Some(info) = step.pointer_mut("/kind/plugin/info") {
            let key =
                format!("{}@{}", info["name"].as_str().unwrap_or(""), info["version"].as_str().unwrap_or(""));
            plugins.insert(key.clone(), std::mem::replace(info, json!(key)));
        }
    }
    let pinned = json!({ "format": 2, "plugins": plugins, "workflow": old });
    assert_eq!(drover_engine::run::pinned_workflow(&pinned), Ok(w));
}

#[test]
fn compensate_needs_a_step_that_can_be_undone() {
    let text = format!(
        "{HEAD}on-failure = \"compensate\"

[[steps]]
id = \"check\"
plugin = \"prerequisites-check@^1\"

[[steps]]
id = \"notify\"
plugin = \"send-mail@^1\"
on-failure = \"compensate\"

[[steps]]
id = \"gate\"
approval = {{ prompt = \"go?\" }}
on-failure = \"compensate\"
"
    );
    let why = "nothing to compensate: the plugin of step `check` does not implement compensate, and step `notify` is irreversible, never compensated";
    assert_eq!(
        problems(&text),
        vec![
            p(3, 14, &format!("workflow `w`: {why}")),
            p(12, 14, &format!("step `notify`: {why}")),
            p(17, 14, &format!("step `gate`: {why}")),
        ]
    );
    let shown = check_as("wf.toml", &text).unwrap_err().to_string();
    assert!(shown.starts_with(&format!("wf.toml:3:14: workflow `w`: {why}\n")), "{shown}");

    // One step that can be undone is enough; the others are left as is.
    let with_one = format!("{text}\n[[steps]]\nid = \"create\"\nplugin = \"create-instance@^1\"\n");
    let w = check_as("wf.toml", &with_one).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        w.steps.iter().filter(|s| s.compensable()).map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["create"]
    );

    // Many steps: the first five are named.
    let mut many = format!("{HEAD}on-failure = \"compensate\"\n");
    for i in 1..=7 {
        many.push_str(&format!("\n[[steps]]\nid = \"s{i}\"\nplugin = \"prerequisites-check@^1\"\n"));
    }
    assert_eq!(
        problems(&many),
        vec![p(
            3,
            14,
            "workflow `w`: nothing to compensate: none of the plugins of steps `s1`, `s2`, `s3`, `s4`, `s5` and 2 more implement compensate"
        )]
    );
    let only_irreversible = format!(
        "{HEAD}\n[[steps]]\nid = \"a\"\nplugin = \"send-mail@^1\"\non-failure = \"compensate\"\n\n[[steps]]\nid = \"b\"\nplugin = \"send-mail@^1\"\n"
    );
    assert_eq!(
        problems(&only_irreversible),
        vec![p(7, 14, "step `a`: nothing to compensate: steps `a`, `b` are irreversible, never compensated")]
    );
    let only_approvals = format!(
        "{HEAD}on-failure = \"compensate\"\n\n[[steps]]\nid = \"gate\"\napproval = {{ prompt = \"go?\" }}\n"
    );
    assert_eq!(
        problems(&only_approvals),
        vec![p(3, 14, "workflow `w`: nothing to compensate: no step calls a plugin")]
    );

    // A plugin that is not installed might be compensable: only that is reported.
    let unknown = format!(
        "{HEAD}on-failure = \"compensate\"\n\n[[steps]]\nid = \"a\"\nplugin = \"prerequisites-check@^1\"\n\n[[steps]]\nid = \"b\"\nplugin = \"rollback-everything@^1\"\n"
    );
    assert_eq!(
        problems(&unknown),
        vec![p(
            11,
            10,
            "step `b`: plugin rollback-everything is not installed: install it with `drover plugin install`"
        )]
    );
}

#[test]
fn on_failure_values_are_checked_at_both_levels() {
    let text = format!(
        "{HEAD}on-failure = \"undo\"

[[steps]]
id = \"a\"
plugin = \"prerequisites-check@^1\"
on-failure = \"rollback\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(
                3,
                14,
                "`on-failure`: unknown variant `undo`, expected one of `stop`, `continue`, `compensate`"
            ),
            p(
                8,
                14,
                "`on-failure` in step `a`: unknown variant `rollback`, expected one of `stop`, `continue`, `compensate`"
            ),
        ]
    );
    let json =
        "{\n  \"name\": \"w\",\n  \"version\": \"1.0.0\",\n  \"on-failure\": true,\n  \"steps\": []\n}\n";
    let found: Vec<(usize, usize, String)> = match check_as("wf.json", json) {
        Ok(_) => panic!("expected problems"),
        Err(d) => d.into_iter().map(|d| (d.line, d.column, d.message)).collect(),
    };
    // A value of the wrong type: the toml crate's message, at the value.
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (4, 17));
    assert!(found[0].2.starts_with("`on-failure`: "), "{found:?}");
}

const VALID: &str = r#"name = "dr-site-preparation"
version = "1.0.0"
description = "prepare the DR servers"

[params.sql-server]
type = "string"
default = "SQLPROD01"
description = "the production SQL Server"

[params.join]
type = "boolean"
default = true

[params.port]
type = "integer"

[limits]
concurrency = 4

[[steps]]
id = "prerequisites"
plugin = "prerequisites-check@^1"
for-each = "dr-servers"
timeout = "10m"
retry = { attempts = 3, initial = "5s", factor = 3, max = "1m", jitter = 0.2 }
concurrency = { step = 4, per-target = 1 }
grants = { targets = ["*"], programs = ["sc.exe"] }
[steps.with]
server = "{{ item }}"

[[steps]]
id = "approve-join"
approval = { prompt = "Join the DR servers to the production group?" }
needs = ["prerequisites"]

[[steps]]
id = "join-group"
plugin = "join-group@^1.1"
needs = ["approve-join"]
for-each = ["DRBTS01", "{{ params.sql_server }}"]
when = "params.join and steps.prerequisites.outputs['DRBTS01'].ok"
on-failure = "continue"
grants = { secrets = ["svc-pass"] }
[steps.with]
server = "{{ item }}"
port = "{{ params.port }}"
sql = "Server={{ params.sql_server }}"
"#;

/// [`VALID`] as JSON, keys in the same order.
const VALID_JSON: &str = r#"{
  "$schema": "../docs/workflow.schema.json",
  "name": "dr-site-preparation",
  "version": "1.0.0",
  "description": "prepare the DR servers",
  "params": {
    "sql-server": { "type": "string", "default": "SQLPROD01", "description": "the production SQL Server" },
    "join": { "type": "boolean", "default": true },
    "port": { "type": "integer", "default": null }
  },
  "limits": { "concurrency": 4 },
  "steps": [
    {
      "id": "prerequisites",
      "plugin": "prerequisites-check@^1",
      "for-each": "dr-servers",
      "timeout": "10m",
      "retry": { "attempts": 3, "initial": "5s", "factor": 3, "max": "1m", "jitter": 0.2 },
      "concurrency": { "step": 4, "per-target": 1 },
      "grants": { "targets": ["*"], "programs": ["sc.exe"] },
      "with": { "server": "{{ item }}" }
    },
    {
      "id": "approve-join",
      "approval": { "prompt": "Join the DR servers to the production group?" },
      "needs": ["prerequisites"]
    },
    {
      "id": "join-group",
      "plugin": "join-group@^1.1",
      "needs": ["approve-join"],
      "for-each": ["DRBTS01", "{{ params.sql_server }}"],
      "when": "params.join and steps.prerequisites.outputs['DRBTS01'].ok",
      "on-failure": "continue",
      "grants": { "secrets": ["svc-pass"] },
      "with": { "server": "{{ item }}", "port": "{{ params.port }}", "sql": "Server={{ params.sql_server }}" }
    }
  ]
}
"#;

#[test]
fn a_valid_workflow_becomes_the_expected_plan() {
    let w = check_as("wf.toml", VALID).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.name, "dr-site-preparation");
    assert_eq!(w.version, Version::new(1, 0, 0));
    assert_eq!(w.description.as_deref(), Some("prepare the DR servers"));
    let params: Vec<(&str, ParamType, Option<&Value>)> =
        w.params.iter().map(|p| (p.name.as_str(), p.kind, p.default.as_ref())).collect();
    assert_eq!(
        params,
        vec![
            ("sql-server", ParamType::String, Some(&json!("SQLPROD01"))),
            ("join", ParamType::Boolean, Some(&json!(true))),
            ("port", ParamType::Integer, None),
        ]
    );
    assert_eq!(w.limits.concurrency, 4);
    assert_eq!(w.order, vec![0, 1, 2]);

    let prerequisites = &w.steps[0];
    assert_eq!(prerequisites.id, "prerequisites");
    let (reference, info) = prerequisites.plugin().expect("a plugin step");
    assert_eq!(reference.to_string(), "prerequisites-check@^1");
    assert_eq!(info.version, Version::new(1, 0, 0));
    assert_eq!(prerequisites.for_each, Some(ForEach::Group("dr-servers".into())));
    assert_eq!(prerequisites.timeout, Some(Duration::from_secs(600)));
    assert_eq!(
        prerequisites.retry,
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_secs(5),
            factor: 3.0,
            max: Duration::from_secs(60),
            jitter: 0.2
        }
    );
    assert_eq!(prerequisites.concurrency, StepConcurrency { step: Some(4), per_target: Some(1) });
    assert_eq!(prerequisites.on_failure, OnFailure::Stop);
    assert_eq!(
        prerequisites.grants,
        GrantsSpec {
            targets: vec!["*".into()],
            programs: vec!["sc.exe".into()],
            secrets: vec![],
            read_only: vec![]
        }
    );
    assert_eq!(prerequisites.with, json!({ "server": "{{ item }}" }));
    assert!(prerequisites.needs.is_empty());

    let approve = &w.steps[1];
    assert_eq!(
        approve.kind,
        StepKind::Approval {
            prompt: "Join the DR servers to the production group?".into(),
            approvers: vec![]
        }
    );
    assert_eq!(approve.needs, vec![0]);
    assert_eq!(approve.retry, RetryPolicy::default());
    assert_eq!(approve.timeout, None);
    assert_eq!(approve.with, json!({}));

    let join = &w.steps[2];
    assert_eq!(join.needs, vec![1]);
    assert_eq!(join.for_each, Some(ForEach::List(vec![json!("DRBTS01"), json!("{{ params.sql_server }}")])));
    assert_eq!(join.when.as_deref(), Some("params.join and steps.prerequisites.outputs['DRBTS01'].ok"));
    assert_eq!(join.on_failure, OnFailure::Continue);
    assert_eq!(join.grants.secrets, vec!["svc-pass".to_owned()]);
    assert_eq!(join.retry.attempts, 1);
    assert_eq!(join.retry.max, Duration::from_secs(300));

    // The templates render against a run's scope as the scheduler will use them.
    let mut scope = Scope {
        params: json!({ "sql-server": "SQLPROD01", "join": true, "port": 1433 })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        run_id: "run_01".into(),
        ..Scope::default()
    };
    scope.steps.insert(
        "prerequisites".into(),
        StepOutput::FanOut(BTreeMap::from([("DRBTS01".to_owned(), json!({ "ok": true }))])),
    );
    let ForEach::List(items) = join.for_each.clone().expect("fans out") else { panic!("a list") };
    let items = workflow::eval_for_each_list(&items, &scope).expect("items render");
    assert_eq!(items, vec![json!("DRBTS01"), json!("SQLPROD01")]);
    assert!(workflow::eval_when(join.when.as_deref().unwrap_or_default(), &scope).expect("when evaluates"));
    scope.item = Some(items[0].clone());
    let input = workflow::render(&join.with, &scope).expect("input renders");
    assert_eq!(input, json!({ "server": "DRBTS01", "port": 1433, "sql": "Server=SQLPROD01" }));
}

#[test]
fn the_workflow_survives_being_pinned_as_json() {
    let w = check_as("wf.toml", VALID).unwrap_or_else(|d| panic!("{d}"));
    let pinned = serde_json::to_string(&w).expect("serializes");
    let back: Workflow = serde_json::from_str(&pinned).expect("deserializes");
    assert_eq!(back, w);
    let value: Value = serde_json::from_str(&pinned).expect("json");
    assert_eq!(value["steps"][0]["kind"]["plugin"]["reference"], json!("prerequisites-check@^1"));
    assert_eq!(value["steps"][0]["retry"]["initial"], json!("5s"));
    assert_eq!(value["steps"][0]["timeout"], json!("10m"));
}

#[test]
fn json_files_give_the_same_workflow_and_positions() {
    let from_toml = check_as("wf.toml", VALID).unwrap_or_else(|d| panic!("{d}"));
    let from_json = check_as("wf.json", VALID_JSON).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(from_json, from_toml);

    let text = "{\n  \"name\": \"w\",\n  \"version\": \"1.0.0\",\n  \"steps\": [\n    { \"id\": \"a\", \"plugin\": \"prerequisites-check@^1\", \"timout\": \"1m\" },\n    { \"id\": \"b\", \"approval\": { \"prompt\": \"ok?\" }, \"needs\": [\"nope\"] }\n  ]\n}\n";
    let found: Vec<(usize, usize, String)> = match check_as("wf.json", text) {
        Ok(_) => panic!("expected problems"),
        Err(d) => d.into_iter().map(|d| (d.line, d.column, d.message)).collect(),
    };
    // Unknown keys stop `parse`; `load` reports them together with validation problems.
    assert_eq!(found, vec![p(5, 54, "unknown key `timout` in step `a`: did you mean `timeout`?")]);

    let err = check_as("wf.json", "{\n  \"name\": \"w\",\n  \"version\": 1\n}").unwrap_err();
    assert_eq!(err.to_string(), "wf.json:3:14: `version`: invalid type: integer `1`, expected a string");
    let err = check_as("wf.json", "{\n  \"name\": \"w\",\n}").unwrap_err();
    assert_eq!(err.0[0].line, 3);
}

#[test]
fn load_reports_parse_and_validation_problems_together() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wf.toml");
    let text = format!(
        "{HEAD}
[[steps]]
id = \"a\"
approval = {{ prompt = \"ok?\" }}
needs = [\"nope\"]
timout = \"1m\"
"
    );
    std::fs::write(&path, text).expect("write");
    let groups = groups();
    let ctx = ValidationContext { groups: Some(&groups), plugins: &resolve };
    let Err(LoadError::Invalid(d)) = workflow::load(&path, &ctx) else { panic!("expected problems") };
    let shown = path.display().to_string();
    assert_eq!(
        d.to_string(),
        format!(
            "{shown}:7:10: step `a` needs `nope`, which is not a step\n{shown}:8:1: unknown key `timout` in step `a`: did you mean `timeout`?"
        )
    );
    let missing = dir.path().join("missing.toml");
    let Err(e @ LoadError::Read { .. }) = workflow::load(&missing, &ctx) else {
        panic!("expected a read error")
    };
    assert!(e.to_string().starts_with("cannot read workflow file"), "{e}");
}

#[test]
fn committed_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/workflow.schema.json");
    let generated = serde_json::to_string_pretty(&workflow::json_schema()).expect("schema serializes") + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write docs/workflow.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/workflow.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p drover-engine --test workflow_validation`"
    );
}

#[test]
fn committed_reference_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/workflow-reference.md");
    let generated = workflow::reference::reference_markdown();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write docs/workflow-reference.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/workflow-reference.md is stale: run `UPDATE_SCHEMA=1 cargo test -p drover-engine --test workflow_validation`"
    );
    for key in ["`for-each`", "`on-failure`", "`per-target`", "`needs`", "`approval`", "`grants`"] {
        assert!(generated.contains(key), "{key} is documented");
    }
}

#[test]
fn the_schema_accepts_the_valid_workflow_as_json() {
    let schema = workflow::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let instance: Value = serde_json::from_str(VALID_JSON).expect("json");
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn report_keys_are_checked_where_they_are_written() {
    let text = format!(
        "{HEAD}[report]
manual = [\"BAM\", \"  \", \"two\\nlines\"]
rpo = \"steps.declares.output.rpo\"
[[steps]]
id = \"declare\"
plugin = \"prerequisites-check@^1\"
phase = \"\"
[[steps]]
id = \"each\"
plugin = \"prerequisites-check@^1\"
for-each = [\"a\", \"b\"]
phase = \"Restore\\u001b[2J\"
"
    );
    assert_eq!(
        problems(&text),
        vec![
            p(4, 18, "`report.manual[1]` is empty"),
            p(
                4,
                24,
                "`report.manual[2]` holds a control character (a line break, tab or escape): write one line"
            ),
            p(5, 7, "`report.rpo` names step `declares`, which is not a step: did you mean `declare`?"),
            p(9, 9, "step `declare`: `phase` is empty"),
            p(
                14,
                9,
                "step `each`: `phase` holds a control character (a line break, tab or escape): write one line"
            ),
        ]
    );
    for (rpo, message) in [
        (
            "declare.output",
            "`report.rpo` `declare.output` is not `steps.<id>.output`, with optional `.<key>`s after it (`steps.declare.output.rpo`)",
        ),
        (
            "steps.declare.outputs.rpo",
            "`report.rpo` `steps.declare.outputs.rpo` is not `steps.<id>.output`, with optional `.<key>`s after it (`steps.declare.output.rpo`)",
        ),
        (
            "steps.declare.output..rpo",
            "`report.rpo` `steps.declare.output..rpo` has an empty name between two dots",
        ),
        (
            "steps.each.output",
            "`report.rpo` names step `each`, which fans out: name a step with one instance, whose output holds the data-loss window",
        ),
    ] {
        let text = format!(
            "{HEAD}[report]\nrpo = \"{rpo}\"\n[[steps]]\nid = \"declare\"\nplugin = \"prerequisites-check@^1\"\n\
             [[steps]]\nid = \"each\"\nplugin = \"prerequisites-check@^1\"\nfor-each = [\"a\"]\n"
        );
        assert_eq!(problems(&text), vec![p(4, 7, message)], "{rpo}");
    }
}

#[test]
fn phases_a_manual_list_and_an_rpo_output_reach_the_pinned_workflow_and_nothing_else_changes() {
    let text = format!(
        "{HEAD}[report]
manual = [\"Redirect clients: DNS and aliases\", \"BAM\"]
rpo = \"steps.declare_loss.output.rpo\"
[[steps]]
id = \"declare-loss\"
plugin = \"prerequisites-check@^1\"
phase = \"Declare the disaster\"
[[steps]]
id = \"go\"
approval = {{ prompt = \"Fail over?\" }}
needs = [\"declare-loss\"]
phase = \"Declare the disaster\"
"
    );
    let w = check_as("wf.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.report.manual, ["Redirect clients: DNS and aliases", "BAM"]);
    let rpo = w.report.rpo.as_ref().expect("rpo");
    assert_eq!((rpo.step.as_str(), rpo.path.as_slice()), ("declare-loss", ["rpo".to_string()].as_slice()));
    assert_eq!(rpo.to_string(), "steps.declare_loss.output.rpo");
    assert!(w.steps.iter().all(|s| s.phase.as_deref() == Some("Declare the disaster")));
    let back: Workflow = serde_json::from_str(&serde_json::to_string(&w).expect("pins")).expect("reads back");
    assert_eq!(back, w);

    // A workflow without them pins exactly as before they existed (same definition digest).
    let plain =
        serde_json::to_value(check_as("wf.toml", VALID).unwrap_or_else(|d| panic!("{d}"))).expect("pins");
    assert!(plain.get("report").is_none(), "{plain:#}");
    assert!(plain["steps"].as_array().expect("steps").iter().all(|s| s.get("phase").is_none()));
}

#[test]
fn approval_prompts_are_templates_checked_like_with() {
    let text = format!(
        "{HEAD}
[params.dr-site]
type = \"string\"

[[steps]]
id = \"measure\"
plugin = \"prerequisites-check@^1\"

[[steps]]
id = \"other\"
plugin = \"prerequisites-check@^1\"

[[steps]]
id = \"declare\"
needs = [\"measure\"]
approval = {{ prompt = \"To {{{{ params.dr_site }}}}? {{{{ steps.mesure.output.rpo }}}} {{{{ steps.other.output }}}}\" }}

[[steps]]
id = \"go\"
needs = [\"declare\"]
approval = {{ prompt = \"{{{{ params.dr_sit }}}} {{{{ item }}}} {{{{ steps.measure.output.rpo\" }}
"
    );
    let err = check_as("wf.toml", &text).expect_err("the prompts name what the gates cannot see");
    assert_eq!(
        err.to_string(),
        "wf.toml:18:23: step `declare` uses `steps.mesure`, which is not a step\n\
         wf.toml:18:23: step `declare` uses `steps.other.output`, but `other` is not upstream of `declare`: add it to `needs`\n\
         wf.toml:23:23: step `go`: the approval prompt is not a valid template: syntax error: unexpected end of input, expected end of variable block"
    );
    let text = text.replace(
        "{{ params.dr_sit }} {{ item }} {{ steps.measure.output.rpo",
        "{{ params.dr_sit }} {{ item }} {{ steps.measure.output.rpo }}",
    );
    assert_eq!(
        problems(&text)[2..],
        [
            p(23, 23, "step `go` uses `item`, but it has no `for-each`"),
            p(23, 23, "step `go` uses `params.dr_sit`, which is not a param: did you mean `params.dr_site`?"),
        ]
    );

    // What a gate may read: params, the outputs of the steps it (transitively) needs, the scope.
    let valid = text
        .replace(" {{ steps.other.output }}", "")
        .replace("steps.mesure", "steps.measure")
        .replace("{{ params.dr_sit }} {{ item }} ", "{{ params.dr_site }} {{ run.id }} ");
    let w = check_as("wf.toml", &valid).unwrap_or_else(|d| panic!("{d}"));
    let StepKind::Approval { prompt, .. } = &w.steps[3].kind else { panic!("an approval") };
    assert_eq!(prompt, "{{ params.dr_site }} {{ run.id }} {{ steps.measure.output.rpo }}", "kept as written");
}
