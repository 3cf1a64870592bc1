//! A plugin that is never shipped. Its input names a behaviour, and it behaves that way: every
//! host import, and every way a plugin can fail (endless loop, memory bomb, panic, trap, huge
//! output, ungranted calls, malformed or off-schema output). The engine's sandbox tests drive it.
//!
//! Its version is `FIXTURE_VERSION` at build time (1.0.0 when unset), so tests can install
//! several versions side by side; `FIXTURE_NAME` and `FIXTURE_EFFECT` (`irreversible`, else
//! idempotent) give the crash tests an irreversible twin.

use drover_sdk::prelude::*;
use serde_json::{Value, json};

/// The plugin.
pub struct Fixture;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["ok"],
  "properties": { "ok": { "type": "boolean" } }
}"#;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["behave"],
  "properties": { "behave": { "type": "string" } }
}"#;

fn text(input: &Value, key: &str) -> String {
    input.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn ok(extra: Value) -> Result<Outcome<String>, StepError> {
    let mut output = json!({ "ok": true });
    if let (Some(map), Value::Object(extra)) = (output.as_object_mut(), extra) {
        map.extend(extra);
    }
    Ok(Outcome::changed(output.to_string(), "fixture did as asked"))
}

impl RawPlugin for Fixture {
    fn describe() -> Describe {
        let effect = match option_env!("FIXTURE_EFFECT") {
            Some("irreversible") => Effect::Irreversible,
            _ => Effect::Idempotent,
        };
        let name = option_env!("FIXTURE_NAME").unwrap_or("fixture-plugin-for-tests");
        Describe::new(name, option_env!("FIXTURE_VERSION").unwrap_or("1.0.0"), effect)
            .description("misbehaves on request, for the engine's tests")
            .program("echo")
            .program("sh")
            .secret("granted-secret")
            .input_schema_json(INPUT_SCHEMA)
            .output_schema_json(OUTPUT_SCHEMA)
    }

    fn call(ctx: &Ctx, input: &str) -> Result<Outcome<String>, StepError> {
        let input: Value = serde_json::from_str(input).map_err(|e| StepError::permanent(e.to_string()))?;
        match text(&input, "behave").as_str() {
            "ok" => ok(json!({ "mode": format!("{:?}", ctx.mode()), "attempt": ctx.context().attempt })),
            // Returns the fields of `output` beside `ok` (a step output the report reads, such as
            // a data-loss window).
            "output" => ok(input.get("output").cloned().unwrap_or_default()),
            "log" => {
                ctx.info(text(&input, "message"));
                ctx.heartbeat(Some(0.5), "half way");
                println!("to stdout");
                eprintln!("to stderr");
                ok(json!({}))
            }
            "say" => {
                // Hands `text` back every way a plugin talks: summary, log line, heartbeat and
                // evidence (the display tests put terminal escape sequences in it).
                let said = text(&input, "text");
                ctx.info(&said);
                ctx.heartbeat(None, &said);
                Ok(Outcome::changed(json!({ "ok": true }).to_string(), said.clone())
                    .with_evidence(Evidence::note(said.clone(), said)))
            }
            "endless-loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("fixture panics on purpose"),
            "trap" => std::process::abort(),
            "huge-output" => {
                let size = input.get("bytes").and_then(Value::as_u64).unwrap_or(2 * 1024 * 1024) as usize;
                ok(json!({ "blob": "x".repeat(size) }))
            }
            "malformed-output" => Ok(Outcome::changed("{\"ok\": tru".to_string(), "broken")),
            "off-schema-output" => Ok(Outcome::changed(json!({ "ok": "yes" }).to_string(), "wrong type")),
            "fail" => Err(match text(&input, "kind").as_str() {
                "retryable" => StepError::retryable(text(&input, "message")),
                "needs-operator" => StepError::needs_operator(text(&input, "message")),
                _ => StepError::permanent(text(&input, "message")),
            }),
            "exec" => {
                let target = text(&input, "target");
                let args: Vec<String> = input
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let mut exec = ctx.exec(&target, &text(&input, "program")).args(args);
                if let Some(stdin) = input.get("stdin").and_then(Value::as_str) {
                    exec = exec.stdin(stdin.as_bytes());
                }
                let ran = exec.run()?;
                Ok(Outcome::changed(
                    json!({ "ok": ran.success(), "stdout": ran.stdout(), "exit": ran.output.exit_code })
                        .to_string(),
                    "ran it",
                )
                .with_evidence(ran.evidence("fixture exec")))
            }
            "secret" => {
                let value = ctx.secret(&text(&input, "name"))?;
                ctx.info(format!("the secret is {value}"));
                let target = text(&input, "target");
                if target.is_empty() {
                    return ok(json!({ "secret": value }));
                }
                // Leaks it every way it can: stderr, an exec argument (the program writes it to
                // `file` and echoes it), the output, the summary and the evidence.
                eprintln!("stderr says {value}");
                let script = r#"printf '%s' "$1" > "$2"; echo "echoed $1""#;
                let ran = ctx
                    .exec(&target, "sh")
                    .args([
                        "-c".to_string(),
                        script.to_string(),
                        "sh".into(),
                        value.clone(),
                        text(&input, "file"),
                    ])
                    .run()?
                    .require_success()?;
                Ok(Outcome::changed(
                    json!({ "ok": true, "secret": value, "stdout": ran.stdout() }).to_string(),
                    format!("used {value}"),
                )
                .with_evidence(ran.evidence("the secret, echoed")))
            }
            "write-file" => {
                let target = text(&input, "target");
                let path = text(&input, "path");
                ctx.write_file(&target, &path, text(&input, "contents"))?;
                let back = ctx.read_to_string(&target, &path)?;
                ok(json!({ "read_back": back }))
            }
            "remove-file" => {
                ctx.remove_file(&text(&input, "target"), &text(&input, "path"))?;
                ok(json!({}))
            }
            "state" => {
                let before = ctx.state_get("counter");
                let next = before.as_deref().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1;
                ctx.state_set("counter", &next.to_string())?;
                ok(json!({ "counter": next }))
            }
            "state-flood" => {
                // Sets `keys` checkpoints of `bytes` bytes each (keys `flood-0`, `flood-1`, …),
                // stopping at the first refusal, which fails the call with the host's message.
                let keys = input.get("keys").and_then(Value::as_u64).unwrap_or(1);
                let bytes = input.get("bytes").and_then(Value::as_u64).unwrap_or(1) as usize;
                let value = "s".repeat(bytes);
                for i in 0..keys {
                    ctx.state_set(&format!("flood-{i}"), &value)?;
                }
                ok(json!({ "keys": keys }))
            }
            "exec-sized" => {
                // Runs `sh -c true` on the step's target with one argument per entry of `sizes`,
                // each that many bytes: command lines too large to pass in the workflow file.
                let sizes: Vec<usize> = input
                    .get("sizes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).map(|n| n as usize).collect())
                    .unwrap_or_default();
                let mut args = vec!["-c".to_string(), "true".to_string(), "sh".to_string()];
                args.extend(
                    sizes
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| char::from(b'a' + (i % 26) as u8).to_string().repeat(n)),
                );
                let ran = ctx.exec(ctx.target()?, "sh").args(args).run()?.require_success()?;
                ok(json!({ "exit": ran.output.exit_code }))
            }
            "effect" => {
                // A side effect counted outside the engine: appends "<step key> <attempt>" to a
                // file on the step's target, after an optional pause and, when `until` names a
                // file, once that file exists (a test's release; it gives up after a minute).
                let target = ctx.target()?.to_string();
                let pause = input.get("pause-ms").and_then(Value::as_u64).unwrap_or(0);
                let script = r#"sleep "$3"; i=0
while [ -n "$4" ] && [ ! -e "$4" ] && [ "$i" -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
printf '%s %s\n' "$1" "$2" >> "$0""#;
                let ran = ctx
                    .exec(&target, "sh")
                    .args([
                        "-c".to_string(),
                        script.to_string(),
                        text(&input, "file"),
                        ctx.context().step_key.clone(),
                        ctx.context().attempt.to_string(),
                        format!("{:.3}", pause as f64 / 1000.0),
                        text(&input, "until"),
                    ])
                    .run()?
                    .require_success()?;
                ok(json!({ "attempt": ctx.context().attempt, "exit": ran.output.exit_code }))
            }
            "flaky" => {
                // Fails retryably until attempt `succeed-at`, then appends "<step key> <attempt>"
                // to `file` on the step's target: a retry wait the engine's tests can interrupt.
                let succeed_at = input.get("succeed-at").and_then(Value::as_u64).unwrap_or(2);
                let attempt = ctx.context().attempt;
                if u64::from(attempt) < succeed_at {
                    return Err(StepError::retryable(format!("flaky: attempt {attempt} fails on purpose")));
                }
                let target = ctx.target()?.to_string();
                ctx.exec(&target, "sh")
                    .args([
                        "-c".to_string(),
                        r#"printf '%s %s\n' "$1" "$2" >> "$0""#.to_string(),
                        text(&input, "file"),
                        ctx.context().step_key.clone(),
                        attempt.to_string(),
                    ])
                    .run()?
                    .require_success()?;
                ok(json!({ "attempt": attempt }))
            }
            "ignore-denial" => {
                // Asks for an ungranted target and carries on as if nothing happened.
                let _ = ctx.exec("not-granted", "echo").run();
                ok(json!({}))
            }
            other => Err(StepError::permanent(format!("unknown behaviour {other:?}"))),
        }
    }
}

drover_sdk::export_plugin!(Fixture);
