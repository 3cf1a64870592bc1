//! Forward work: expansion, fan-out and `when`, the concurrency limits, retries with backoff and
//! timeouts on the fake clock, and what a failure does to the run (`on-failure`).

use super::*;

// ---------------------------------------------------------------------------------------------
// Forward work: expansion, fan-out, when
// ---------------------------------------------------------------------------------------------

#[test]
fn a_single_step_runs_once_and_the_run_succeeds() {
    let mut h =
        flow().plugin("hello", Effect::Idempotent).with(json!({ "greeting": "hi" })).timeout(30).start();
    assert_eq!(h.kinds(None), ["driving"]);
    assert_eq!(h.event("driving").data, json!({ "pid": 4242 }));

    let launches = h.turn();
    assert_eq!(keys(&launches), ["hello"]);
    let launch = &launches[0];
    assert_eq!((launch.number, launch.call.mode), (1, Mode::Apply));
    assert_eq!(launch.call.input, json!({ "greeting": "hi" }));
    assert_eq!(launch.call.timeout, Some(Duration::from_secs(30)));
    assert_eq!(launch.call.context.idempotency_key, format!("{RUN}/hello"));
    assert_eq!(launch.call.context.attempt, 1);
    // The intent is committed with the start, before the plugin is called.
    assert_eq!(h.attempt("hello", 1).state, AttemptState::Running);
    assert_eq!(h.state("hello"), StepState::Running);
    assert_eq!(h.m.running(), 1);
    assert_eq!(h.settle(), None, "nothing settles while an attempt runs");

    h.ok("hello");
    assert_eq!(h.state("hello"), StepState::Succeeded);
    assert_eq!(h.record("hello").output, Some(json!({ "n": 1 })));
    assert_eq!(h.attempt("hello", 1).state, AttemptState::Succeeded);
    assert_eq!(h.m.take_notes(), ["hello: succeeded, changed: made the change"]);
    assert_eq!(h.kinds(Some("hello")), ["step-ready", "attempt-started", "attempt-succeeded"]);
    let data = &h.event("attempt-succeeded").data;
    assert_eq!((data["attempt"].clone(), data["changed"].clone()), (json!(1), json!(true)));
    assert_eq!(data["duration_ms"], json!(40));

    assert!(h.turn().is_empty());
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
    assert_eq!(h.journal.run_state, Some(RunState::Succeeded));
    assert_eq!(h.journal.finished_at, Some(T0));
    assert!(h.m.is_over());
    assert_eq!(h.m.ended(), Some(RunOutcome::Succeeded));
    assert_eq!(h.kinds(None), ["driving", "run-succeeded"]);
}

#[test]
fn a_turn_commits_only_the_last_state_of_each_instance() {
    let mut h = flow().plugin("s", Effect::Idempotent).over_list(json!(["a", "b"])).start();
    h.turn();
    // Each instance went ready, then running, in that turn: one row each, both running.
    let commit = h.journal.commits.last().expect("a commit");
    let rows: Vec<(&str, StepState)> = commit
        .iter()
        .filter_map(|c| match c {
            Change::PutStep(r) => Some((r.key.as_str(), r.state)),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [("s[a]", StepState::Running), ("s[b]", StepState::Running)]);
    // The events keep the history.
    assert_eq!(h.kinds(Some("s[a]")), ["step-ready", "attempt-started"]);
}

#[test]
fn a_group_fan_out_makes_one_instance_per_server_with_it_as_target() {
    let mut h = flow()
        .group("web", &["web1", "web2", "web3"])
        .plugin("deploy", Effect::Idempotent)
        .over_group("web")
        .with(json!({ "host": "{{ target }}" }))
        .start();
    let launches = h.turn();
    assert_eq!(keys(&launches), ["deploy[web1]", "deploy[web2]", "deploy[web3]"]);
    for launch in &launches {
        let target = h.record(&launch.key).target.clone().expect("a target");
        assert_eq!(launch.call.context.target.as_deref(), Some(target.as_str()));
        assert_eq!(launch.call.input, json!({ "host": target }));
        assert!(launch.call.grants.targets.allows(&target), "an instance may act on its own target");
    }
    assert_eq!(h.record("deploy[web2]").item, Some(json!("web2")));
}

#[test]
fn a_list_fan_out_renders_its_items_from_the_params() {
    let mut h = flow()
        .params(json!({ "extra": "zeta" }))
        .plugin("s", Effect::Idempotent)
        .over_list(json!(["alpha", 7, "{{ params.extra }}", { "deep": true }]))
        .with(json!({ "name": "{{ item }}" }))
        .start();
    let launches = h.turn();
    assert_eq!(keys(&launches), ["s[3]", "s[7]", "s[alpha]", "s[zeta]"]);
    let input = |key: &str| launches.iter().find(|l| l.key == key).map(|l| l.call.input.clone());
    assert_eq!(input("s[zeta]"), Some(json!({ "name": "zeta" })));
    assert_eq!(input("s[7]"), Some(json!({ "name": 7 })), "a single expression keeps its type");
    assert_eq!(h.record("s[3]").item, Some(json!({ "deep": true })));
    assert_eq!(h.record("s[alpha]").target, None, "an item that names no server gives no target");
}

#[test]
fn items_giving_one_instance_key_fail_the_step_and_the_run() {
    let mut h = flow().plugin("s", Effect::Idempotent).over_list(json!(["x", 1, "1"])).start();
    assert!(h.turn().is_empty());
    assert_eq!(h.state("s"), StepState::Failed);
    assert_eq!(
        h.reason("s"),
        "for-each: items 1 and 2 both give the instance key `s[1]`: each item must give its own key"
    );
    assert_eq!(h.kinds(Some("s")), ["step-failed"]);
    assert_eq!(h.settle(), Some(RunOutcome::Failed { failures: pairs(&[("s", &h.reason("s"))]) }));
    assert_eq!(h.journal.run_state, Some(RunState::Failed));
}

#[test]
fn a_false_when_skips_the_instance_and_what_needs_it_still_runs() {
    let mut h = flow()
        .plugin("s", Effect::Idempotent)
        .over_list(json!(["a", "b"]))
        .when("item != 'b'")
        .plugin("off", Effect::Idempotent)
        .when("params.enabled")
        .plugin("after", Effect::Idempotent)
        .needs(&["s", "off"])
        .params(json!({ "enabled": false }))
        .start();
    assert_eq!(h.starts(), ["s[a]"]);
    assert_eq!(h.state("s[b]"), StepState::Skipped);
    assert_eq!(h.reason("s[b]"), "when `item != 'b'` is false");
    assert_eq!(h.why("s[b]"), "when `item != 'b'` is false");
    assert_eq!(h.state("off"), StepState::Skipped);
    assert_eq!(h.kinds(Some("off")), ["step-skipped"]);
    h.ok("s[a]");
    // A step skipped by `when` is not a failure.
    h.one_by_one(&["after"]);
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn a_step_expands_only_when_every_instance_it_needs_finished() {
    let mut h = flow()
        .plugin("build", Effect::Idempotent)
        .over_list(json!(["x", "y"]))
        .plugin("ship", Effect::Idempotent)
        .needs(&["build"])
        .with(json!({ "built": "{{ steps.build.outputs }}", "one": "{{ steps.build.outputs.x.n }}" }))
        .start();
    let ship = h.step_index("ship");
    h.turn();
    h.ok("build[x]");
    assert!(h.turn().is_empty());
    assert!(h.m.keys_of(ship).is_empty());
    assert_eq!(h.m.why_not_started(ship), "waits for build");
    assert_eq!(h.m.unfinished_needs(ship), ["build"]);
    h.finish("build[y]", succeeded_with(false, json!({ "n": 2 })));
    let launches = h.turn();
    assert_eq!(keys(&launches), ["ship"]);
    assert_eq!(launches[0].call.input, json!({ "built": { "x": { "n": 1 }, "y": { "n": 2 } }, "one": 1 }));
}

#[test]
fn an_empty_fan_out_expands_into_nothing_and_the_run_goes_on() {
    let mut h = flow()
        .group("none", &[])
        .plugin("s", Effect::Idempotent)
        .over_group("none")
        .plugin("after", Effect::Idempotent)
        .needs(&["s"])
        .start();
    assert_eq!(h.starts(), ["after"]);
    assert!(h.m.keys_of(h.step_index("s")).is_empty());
    h.ok("after");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn an_input_that_cannot_render_fails_its_instance_when_it_would_start() {
    let mut h = flow().plugin("s", Effect::Idempotent).with(json!({ "x": "{{ params.missing }}" })).start();
    assert!(h.turn().is_empty());
    assert_eq!(h.state("s"), StepState::Failed);
    assert!(h.reason("s").starts_with("rendering `with`: "), "{}", h.reason("s"));
    assert!(h.reason("s").contains("missing"), "{}", h.reason("s"));
    assert_eq!(h.record("s").attempts, 0, "no attempt was started");
    assert!(h.journal.attempts.is_empty());
    assert!(matches!(h.settle(), Some(RunOutcome::Failed { .. })));
}

#[test]
fn the_live_display_counts_each_step_instances() {
    let mut h = flow()
        .plugin("s", Effect::Idempotent)
        .over_list(json!(["a", "b", "c", "d"]))
        .retry(2, 10)
        .step_limit(2)
        .approval("gate", "Go?", &[])
        .start();
    h.turn();
    h.finish("s[a]", failed(FailureClass::Retryable));
    h.ok("s[b]");
    h.turn();
    let heartbeats = std::collections::HashMap::from([("s[c]".to_string(), (Some(0.5), "half".to_string()))]);
    let progress = h.m.progress(&heartbeats);
    let ids: Vec<&str> = progress.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["s", "gate"]);
    let s = &progress[0];
    assert_eq!((s.total, s.done, s.failed, s.waiting_for_slot, s.waiting), (4, 1, 0, 0, 1));
    let running: Vec<&str> = s.running.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(running, ["s[c]", "s[d]"]);
    assert_eq!(s.running[0].heartbeat, Some((Some(0.5), "half".to_string())));
    assert_eq!(s.running[0].started_at, T0);
    assert_eq!((progress[1].total, progress[1].waiting), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Concurrency limits
// ---------------------------------------------------------------------------------------------

#[test]
fn the_run_limit_caps_the_attempts_in_flight() {
    let mut h = flow().run_limit(2).plugin("s", Effect::Idempotent).over_list(json!(["a", "b", "c"])).start();
    assert_eq!(h.starts(), ["s[a]", "s[b]"]);
    assert_eq!(h.state("s[c]"), StepState::Ready);
    assert_eq!(h.why("s[c]"), "ready; waits for a slot: run limit 2 in use by s[a], s[b]");
    assert!(h.turn().is_empty());
    h.ok("s[b]");
    assert_eq!(h.why("s[c]"), "ready; starts on the driver's next turn");
    assert_eq!(h.starts(), ["s[c]"]);
}

#[test]
fn a_slot_explanation_names_three_holders_at_most() {
    let mut h = flow()
        .run_limit(4)
        .plugin("s", Effect::Idempotent)
        .over_list(json!(["a", "b", "c", "d", "e"]))
        .start();
    h.turn();
    assert_eq!(h.why("s[e]"), "ready; waits for a slot: run limit 4 in use by s[a], s[b], s[c], …");
}

#[test]
fn the_step_limit_holds_back_one_step_and_others_go_on() {
    let mut h = flow()
        .plugin("slow", Effect::Idempotent)
        .over_list(json!(["a", "b", "c"]))
        .step_limit(1)
        .plugin("other", Effect::Idempotent)
        .start();
    assert_eq!(h.starts(), ["slow[a]", "other"]);
    assert_eq!(h.why("slow[b]"), "ready; waits for a slot: step limit 1 in use by slow[a]");
    h.ok("other");
    assert!(h.turn().is_empty(), "a free run slot does not lift the step limit");
    h.ok("slow[a]");
    assert_eq!(h.starts(), ["slow[b]"]);
}

#[test]
fn the_per_target_limit_counts_the_attempts_of_any_step_on_that_target() {
    let mut h = flow()
        .group("db", &["db1", "db2"])
        .plugin("backup", Effect::Idempotent)
        .over_group("db")
        .plugin("vacuum", Effect::Idempotent)
        .over_group("db")
        .per_target(1)
        .start();
    assert_eq!(h.starts(), ["backup[db1]", "backup[db2]"]);
    assert_eq!(h.state("vacuum[db1]"), StepState::Ready);
    assert_eq!(
        h.why("vacuum[db1]"),
        "ready; waits for a slot: per-target limit 1 on db1 in use by backup[db1]"
    );
    h.ok("backup[db2]");
    assert_eq!(h.starts(), ["vacuum[db2]"]);
    assert_eq!(h.state("vacuum[db1]"), StepState::Ready);
}

// ---------------------------------------------------------------------------------------------
// Retries, backoff and timeouts, on the fake clock
// ---------------------------------------------------------------------------------------------

#[test]
fn a_retryable_failure_waits_for_its_backoff_timer() {
    let mut h = flow().plugin("s", Effect::Idempotent).retry(3, 10).start();
    h.clock.set_jitter(1.5);
    h.turn();
    h.finish("s", failed(FailureClass::Retryable));
    // 10 s, times the jitter factor the clock gives.
    let due = T0 + 15_000;
    assert_eq!(h.state("s"), StepState::Waiting);
    assert_eq!(h.record("s").retry_at, Some(due));
    assert_eq!(h.reason("s"), "retry 2 of 3 in 15.0s after: plugin p failed (Retryable): boom");
    assert_eq!(h.m.next_timer(), Some(due));
    assert_eq!(h.event("retry-scheduled").data["retry_at"], json!(due));
    assert_eq!(h.attempt("s", 1).error_class, Some(FailureClass::Retryable));
    assert_eq!(
        h.why("s"),
        "retry timer: next attempt at 2023-11-14T22:13:35Z (retry 2 of 3 in 15.0s after: plugin p failed (Retryable): boom)"
    );

    // Not due yet: nothing starts, and the run is not over.
    h.clock.set(due - 1);
    assert!(h.turn().is_empty());
    assert_eq!(h.state("s"), StepState::Waiting);
    assert_eq!(h.settle(), None);

    h.clock.set(due);
    let launches = h.turn();
    assert_eq!(keys(&launches), ["s"]);
    assert_eq!(launches[0].number, 2);
    assert_eq!(launches[0].call.context.attempt, 2);
    assert_eq!(h.m.next_timer(), None);
    assert_eq!(h.kinds(Some("s")).iter().filter(|k| **k == "retry-due").count(), 1);
    h.ok("s");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn the_backoff_grows_by_its_factor_until_the_attempts_run_out() {
    let mut h = flow().plugin("s", Effect::Idempotent).retry(3, 10).start();
    h.turn();
    h.finish("s", failed(FailureClass::Retryable));
    assert_eq!(h.record("s").retry_at, Some(T0 + 10_000));
    h.clock.set(T0 + 10_000);
    h.turn();
    h.clock.advance(1_000);
    h.finish("s", failed(FailureClass::Retryable));
    assert_eq!(h.record("s").retry_at, Some(T0 + 11_000 + 20_000), "the second delay is twice the first");
    assert_eq!(h.reason("s"), "retry 3 of 3 in 20.0s after: plugin p failed (Retryable): boom");
    h.clock.set(T0 + 31_000);
    assert_eq!(h.turn()[0].number, 3);
    h.finish("s", failed(FailureClass::Retryable));
    assert_eq!(h.state("s"), StepState::Failed, "the last attempt failed: no more retries");
    assert_eq!(h.record("s").retry_at, None);
    assert_eq!(h.reason("s"), "plugin p failed (Retryable): boom");
    assert_eq!(h.why("s"), format!("plugin p failed (Retryable): boom — `drover retry {RUN} s`"));
    let failures = pairs(&[("s", "plugin p failed (Retryable): boom")]);
    assert_eq!(h.settle(), Some(RunOutcome::Failed { failures: failures.clone() }));
    assert_eq!(h.event("run-failed").data, json!({ "failures": failures }));
}

#[test]
fn a_timed_out_attempt_is_retried_like_any_retryable_failure() {
    let mut h = flow().plugin("s", Effect::Idempotent).timeout(30).retry(2, 1).start();
    h.turn();
    h.finish("s", timed_out(30));
    assert_eq!(h.state("s"), StepState::Waiting);
    assert_eq!(h.reason("s"), "retry 2 of 2 in 1.0s after: plugin p timed out after 30s and was stopped");
    assert_eq!(h.attempt("s", 1).state, AttemptState::Failed);
    h.clock.advance(1_000);
    assert_eq!(h.starts(), ["s"]);
    h.finish("s", timed_out(30));
    assert_eq!(h.state("s"), StepState::Failed);
    assert_eq!(h.reason("s"), "plugin p timed out after 30s and was stopped");
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let mut h = flow().plugin("s", Effect::Idempotent).retry(5, 1).start();
    h.turn();
    h.finish("s", failed(FailureClass::Permanent));
    assert_eq!(h.state("s"), StepState::Failed);
    assert_eq!(h.m.next_timer(), None);
    assert_eq!(h.attempt("s", 1).error_class, Some(FailureClass::Permanent));
    assert_eq!(h.event("attempt-failed").data["error"], json!("plugin p failed (Permanent): boom"));
}

#[test]
fn a_plugin_that_needs_an_operator_waits_for_one() {
    let mut h = flow().plugin("s", Effect::Idempotent).retry(3, 1).start();
    h.turn();
    h.finish("s", failed(FailureClass::NeedsOperator));
    assert_eq!(h.state("s"), StepState::NeedsOperator);
    assert_eq!(
        h.m.take_notes().last().map(String::as_str),
        Some("s: needs an operator: plugin p failed (NeedsOperator): boom")
    );
    assert_eq!(
        h.why("s"),
        format!(
            "needs an operator: plugin p failed (NeedsOperator): boom — `drover retry {RUN} s` or `drover skip {RUN} s --output <json>`"
        )
    );
    // A driver told to wait for operators keeps the run; one that is not ends the drive waiting.
    assert_eq!(h.m.settle(true), None);
    let waiting = pairs(&[("s", "plugin p failed (NeedsOperator): boom")]);
    assert_eq!(h.settle(), Some(RunOutcome::Waiting { waiting: waiting.clone() }));
    assert_eq!(h.journal.run_state, Some(RunState::Waiting));
    assert_eq!(h.event("run-waiting").data, json!({ "waiting": waiting }));
}

// ---------------------------------------------------------------------------------------------
// What a failure does to the run: on-failure
// ---------------------------------------------------------------------------------------------

#[test]
fn on_failure_stop_starts_nothing_new_and_lets_running_attempts_finish() {
    let mut h = flow()
        .run_limit(2)
        .plugin("a", Effect::Idempotent)
        .plugin("b", Effect::Idempotent)
        .plugin("c", Effect::Idempotent)
        .plugin("d", Effect::Idempotent)
        .needs(&["b"])
        .start();
    assert_eq!(h.starts(), ["a", "b"]);
    h.finish("a", failed(FailureClass::Permanent));
    assert!(h.turn().is_empty(), "c is ready but the run stopped starting work");
    assert_eq!(h.settle(), None, "b still runs");
    h.ok("b");
    assert!(h.turn().is_empty());
    assert!(h.m.keys_of(h.step_index("d")).is_empty(), "d is not expanded");
    assert_eq!(
        h.m.why_not_started(h.step_index("d")),
        format!("the run stopped starting steps when a failed (on-failure = stop) — `drover retry {RUN} a`")
    );
    assert_eq!(
        h.settle(),
        Some(RunOutcome::Failed { failures: pairs(&[("a", "plugin p failed (Permanent): boom")]) })
    );
    assert_eq!(h.state("c"), StepState::Ready);
}

#[test]
fn a_step_that_needs_a_failed_one_says_so() {
    let mut h = flow().plugin("a", Effect::Idempotent).plugin("b", Effect::Idempotent).needs(&["a"]).start();
    h.turn();
    h.finish("a", failed(FailureClass::Permanent));
    h.turn();
    assert_eq!(
        h.m.why_not_started(h.step_index("b")),
        format!("will not start while a failed — `drover retry {RUN} a`")
    );
}

#[test]
fn on_failure_continue_skips_what_needs_the_failed_step_and_runs_the_rest() {
    let mut h = flow()
        .plugin("a", Effect::Idempotent)
        .on_failure(OnFailure::Continue)
        .plugin("b", Effect::Idempotent)
        .needs(&["a"])
        .plugin("c", Effect::Idempotent)
        .needs(&["b"])
        .plugin("d", Effect::Idempotent)
        .start();
    assert_eq!(h.starts(), ["a", "d"]);
    h.finish("a", failed(FailureClass::Permanent));
    assert!(h.turn().is_empty());
    assert_eq!(h.state("b"), StepState::Skipped);
    assert_eq!(h.reason("b"), "needs a, which failed");
    assert_eq!(h.state("c"), StepState::Skipped);
    assert_eq!(h.reason("c"), "needs a, which failed", "names the failure, not the skipped step between");
    assert_eq!(h.settle(), None, "d still runs");
    h.ok("d");
    assert_eq!(
        h.settle(),
        Some(RunOutcome::Failed { failures: pairs(&[("a", "plugin p failed (Permanent): boom")]) })
    );
}
