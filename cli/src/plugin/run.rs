//! `drover plugin run`: one call of a plugin outside any workflow, printing its outcome, logs,
//! evidence and target calls. The plugin author's inner loop.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use drover_engine::grants::{Allow, ExecPattern, Grants};
use drover_engine::plugin::{CallEnv, CallReport, Mode, StepCall, StepContext};
use drover_engine::secrets::EnvSecrets;
use drover_engine::target::{LocalTransport, TargetSet};
use serde_json::{Value, json};

use crate::{CliError, Exit, Global, output};

/// Arguments of `drover plugin run`.
#[derive(Debug, Args)]
#[command(
    after_help = "The call is granted what the plugin declares: its programs and secrets, on the targets named \
with --target. It reads no inventory: every target named is this machine (the local transport); a \
workflow's run reaches the inventory's servers. Secrets come from environment variables (the secret \
`sql-admin` from DROVER_SECRET_SQL_ADMIN), then from --secrets FILE.

Examples:
  drover plugin run noop --input '{\"label\": \"hi\"}'
  drover plugin run ./target/wasm32-wasip2/release/my_step.wasm --check --target local"
)]
pub struct RunArgs {
    /// An installed plugin (`name` or `name@<semver requirement>`) or a `.wasm` file.
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
    /// The input as JSON, or `@FILE` to read it from a file.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub input: String,
    /// Call `check` (what would change) instead of `apply`.
    #[arg(long, conflicts_with = "compensate")]
    pub check: bool,
    /// Call `compensate` instead of `apply`.
    #[arg(long)]
    pub compensate: bool,
    /// With `--check`: a program run to allow as read-only, as in a workflow's
    /// `grants.read-only` (`"reg query **"`); repeat for more. Any other run is refused.
    #[arg(long, value_name = "PATTERN")]
    pub read_only: Vec<String>,
    /// A target the plugin may use (repeatable); the first is the step's own target.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Stop the call after this many seconds (at most 604800, 7 days, as a step's timeout).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

fn parse_input(text: &str) -> Result<Value, CliError> {
    let (source, text) = match text.strip_prefix('@') {
        Some(path) => {
            let text = drover_engine::input_file::read_to_string(std::path::Path::new(path))
                .map_err(|e| CliError::Usage(format!("cannot read --input file {path}: {e}")))?;
            (path.to_string(), text)
        }
        None => ("--input".to_string(), text.to_string()),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{source} is not JSON: {e}")))
}

pub async fn run(global: &Global, args: RunArgs) -> Result<Exit, CliError> {
    let input = parse_input(&args.input)?;
    let max = drover_engine::workflow::MAX_TIMEOUT;
    let timeout = match args.timeout {
        Some(s) if !(s > 0.0 && s.is_finite()) => {
            return Err(CliError::Usage(format!("--timeout {s} is not a positive number of seconds")));
        }
        Some(s) if s > max.as_secs_f64() => {
            return Err(CliError::Usage(format!(
                "--timeout {s} is longer than the limit of {} seconds ({}), as a step's timeout",
                max.as_secs(),
                humantime::format_duration(max)
            )));
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let host = super::host(global)?;
    let plugin = super::load(global, &host, &args.plugin).await?;
    let mode = if args.check {
        Mode::Check
    } else if args.compensate {
        Mode::Compensate
    } else {
        Mode::Apply
    };
    let caps = &plugin.info.capabilities;
    let grants = Grants {
        targets: Allow::of(args.targets.iter().cloned()),
        programs: Allow::of(caps.programs.iter().cloned()),
        secrets: Allow::of(caps.secrets.iter().cloned()),
        read_only: args
            .read_only
            .iter()
            .map(|p| ExecPattern::parse(p).map_err(|e| CliError::Usage(format!("--read-only {p:?}: {e}"))))
            .collect::<Result<_, _>>()?,
    };
    let targets = args
        .targets
        .iter()
        .fold(TargetSet::new(), |set, name| set.with(name.clone(), Arc::new(LocalTransport)));
    let env = CallEnv { targets, secrets: Arc::new(EnvSecrets), ..CallEnv::default() };
    let call = StepCall {
        mode,
        context: StepContext::standalone(args.targets.first().cloned()),
        input,
        grants,
        timeout,
    };
    let report = host.call(&plugin, call, env).await;
    let failed = report.result.is_err();
    if global.json {
        print_json(&plugin.info.name, &plugin.info.version.to_string(), mode, &report)?;
    } else {
        print_text(&format!("{} {}", plugin.info.name, plugin.info.version), mode, &report);
    }
    if let Err(e) = &report.result {
        eprintln!("error: {}", drover_engine::display::visible(&e.to_string()));
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

fn print_json(name: &str, version: &str, mode: Mode, report: &CallReport) -> Result<(), CliError> {
    let result = match &report.result {
        Ok(outcome) => json!({ "ok": true, "outcome": outcome }),
        Err(e) => json!({ "ok": false, "error": { "message": e.to_string(), "class": e.class() } }),
    };
    let mut doc = json!({
        "plugin": name,
        "version": version,
        "mode": mode,
        "duration_ms": report.duration.as_millis() as u64,
        "logs": report.logs,
        "stdout": report.stdout,
        "stderr": report.stderr,
        "target_calls": report.target_calls,
        "refusals": report.refusals,
    });
    if let (Some(doc), Some(result)) = (doc.as_object_mut(), result.as_object()) {
        doc.extend(result.clone());
    }
    output::json(&doc)
}

/// Prints a line with control characters made visible: all of it is the plugin's text.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", drover_engine::display::visible(&format!($($arg)*)))
    };
}

fn print_text(plugin: &str, mode: Mode, report: &CallReport) {
    let mode = match mode {
        Mode::Apply => "apply",
        Mode::Check => "check",
        Mode::Compensate => "compensate",
    };
    say!("{plugin} · {mode} · {} ms", report.duration.as_millis());
    for log in &report.logs {
        say!("[{:?}] {}", log.level, log.message);
    }
    match &report.result {
        Ok(outcome) => {
            let verdict = match (mode, outcome.changed) {
                ("check", true) => "would change",
                ("check", false) => "no change needed",
                (_, true) => "changed",
                (_, false) => "no change",
            };
            say!("{verdict}: {}", outcome.summary);
            say!(
                "output:\n{}",
                output::indent(&serde_json::to_string_pretty(&outcome.output).unwrap_or_default(), 2)
            );
            if !outcome.evidence.is_empty() {
                say!("evidence:");
                for e in &outcome.evidence {
                    let command = e.command.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
                    let code = e.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
                    say!("  {}{command}{code}", e.label);
                    if !e.excerpt.is_empty() {
                        say!("{}", output::indent(&e.excerpt, 4));
                    }
                }
            }
        }
        Err(e) => say!("failed: {e}"),
    }
    if !report.target_calls.is_empty() {
        say!("target calls:");
        for c in &report.target_calls {
            let result = match (&c.error, c.exit_code) {
                (Some(e), _) => format!("error: {e}"),
                (None, Some(code)) => format!("exit {code}"),
                (None, None) => "ok".into(),
            };
            say!("  {} {} on {}: {result}, {} ms", c.call, c.what, c.target, c.duration_ms);
        }
    }
    for (name, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if !text.is_empty() {
            say!("{name}:\n{}", output::indent(text, 2));
        }
    }
}
