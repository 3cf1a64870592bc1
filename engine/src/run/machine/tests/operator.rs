//! Operator requests (approve, retry, skip, cancel) and the explanations of why an instance or a
//! step waits.

use super::*;

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

#[test]
fn an_approval_waits_and_approving_it_lets_what_needs_it_run() {
    let mut h = flow()
        .approval("gate", "Deploy to production?", &[])
        .plugin("deploy", Effect::Idempotent)
        .needs(&["gate"])
        .with(json!({ "by": "{{ steps.gate.output.approved_by }}" }))
        .start();
    assert!(h.turn().is_empty());
    assert_eq!(h.state("gate"), StepState::Waiting);
    assert_eq!(h.kinds(Some("gate")), ["waiting-for-approval"]);
    assert_eq!(h.why("gate"), format!("approval: Deploy to production? — `drover approve {RUN} gate`"));
    assert_eq!(h.m.settle(true), None, "a driver waiting for operators keeps the run");
    let outcome = h.settle();
    assert_eq!(
        outcome,
        Some(RunOutcome::Waiting { waiting: pairs(&[("gate", "approval: Deploy to production?")]) })
    );

    let effect = h.request("approve", Some("gate"), "alice", json!({ "comment": "go" }));
    assert!(!effect.stop_in_flight);
    assert_eq!(h.state("gate"), StepState::Succeeded);
    assert_eq!(h.record("gate").output, Some(json!({ "approved_by": "alice", "comment": "go" })));
    let approved = h.event("approved");
    assert_eq!((approved.actor.as_str(), approved.key.as_deref()), ("alice", Some("gate")));

    let launches = h.turn();
    assert_eq!(keys(&launches), ["deploy"]);
    assert_eq!(launches[0].call.input, json!({ "by": "alice" }));
    h.ok("deploy");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn only_a_named_approver_may_approve() {
    let mut h = flow().approval("gate", "Go?", &["bob", "carol"]).start();
    h.turn();
    assert_eq!(h.why("gate"), format!("approval: Go? (by bob or carol) — `drover approve {RUN} gate`"));
    h.request("approve", Some("gate"), "alice", json!({}));
    assert_eq!(h.state("gate"), StepState::Waiting);
    let rejected = h.event("request-rejected");
    assert_eq!(rejected.actor, "alice");
    assert_eq!(
        rejected.data,
        json!({ "request": "approve", "reason": "only bob or carol may approve gate; alice may not" })
    );
    h.request("approve", Some("gate"), "carol", json!({}));
    assert_eq!(h.state("gate"), StepState::Succeeded);
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn a_prompt_is_rendered_when_the_gate_is_reached_with_params_and_upstream_outputs() {
    let mut h = flow()
        .params(json!({ "dr-site": "Lisbon" }))
        .plugin("measure", Effect::ReadOnly)
        .approval(
            "declare",
            "Fail over to {{ params.dr_site }}? Data-loss window {{ steps.measure.output.rpo.window }}",
            &[],
        )
        .needs(&["measure"])
        .start();
    assert_eq!(h.starts(), ["measure"]);
    h.finish("measure", succeeded_with(false, json!({ "rpo": { "window": "7 min 29 s" } })));
    h.turn();
    let shown = "approval: Fail over to Lisbon? Data-loss window 7 min 29 s";
    assert_eq!(h.state("declare"), StepState::Waiting);
    assert_eq!(h.reason("declare"), shown);
    assert_eq!(h.event("waiting-for-approval").data, json!({ "reason": shown }));
    assert_eq!(h.why("declare"), format!("{shown} — `drover approve {RUN} declare`"));
    assert_eq!(h.settle(), Some(RunOutcome::Waiting { waiting: pairs(&[("declare", shown)]) }));

    // A driver taking the run over shows what the gate rendered, not the template.
    h.crash_and_resume();
    assert_eq!(h.reason("declare"), shown);
}

#[test]
fn a_fanned_out_gate_renders_its_item_in_each_prompt() {
    let mut h = flow()
        .group("dr", &["DRBTS01", "DRBTS02"])
        .approval("gate", "Start {{ item }}?", &[])
        .over_group("dr")
        .start();
    h.turn();
    assert_eq!(h.reason("gate[DRBTS01]"), "approval: Start DRBTS01?");
    assert_eq!(h.reason("gate[DRBTS02]"), "approval: Start DRBTS02?");
}

#[test]
fn a_prompt_that_does_not_render_still_waits_showing_the_template_and_why() {
    let mut h = flow()
        .plugin("measure", Effect::ReadOnly)
        .approval("declare", "Window {{ steps.measure.output.rpo.window }}?", &[])
        .needs(&["measure"])
        .start();
    h.starts();
    h.finish("measure", succeeded_with(false, json!({ "production_alive": false })));
    h.turn();
    assert_eq!(h.state("declare"), StepState::Waiting, "a render error does not hide the gate");
    let shown = "approval: Window {{ steps.measure.output.rpo.window }}? \
                 (the prompt did not render: `steps.measure.output.rpo` is undefined)";
    assert_eq!(h.reason("declare"), shown);
    assert_eq!(h.event("waiting-for-approval").data, json!({ "reason": shown }));
    h.request("approve", Some("declare"), "alice", json!({}));
    assert_eq!(h.state("declare"), StepState::Succeeded, "the operator can still pass it");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn a_retried_gate_asks_its_prompt_again() {
    let mut h = flow()
        .params(json!({ "site": "Lisbon" }))
        .approval("gate", "Fail over to {{ params.site }}?", &[])
        .when("params.missing")
        .start();
    h.turn();
    assert_eq!(h.state("gate"), StepState::Failed);
    h.request("retry", Some("gate"), "alice", json!({}));
    assert_eq!(h.state("gate"), StepState::Waiting);
    assert_eq!(h.reason("gate"), "approval: Fail over to Lisbon? (retry requested by alice)");
}

#[test]
fn approving_a_plugin_step_or_an_unknown_instance_is_rejected() {
    let mut h = flow().plugin("s", Effect::Idempotent).start();
    h.turn();
    h.request("approve", Some("s"), "alice", json!({}));
    assert_eq!(h.event("request-rejected").data["reason"], json!("s is not an approval step"));
    h.request("approve", Some("nope"), "alice", json!({}));
    assert_eq!(
        h.event("request-rejected").data["reason"],
        json!(format!("run {RUN} has no step instance nope (yet): `drover status {RUN}` lists them"))
    );
    assert_eq!(h.state("s"), StepState::Running);
}

// ---------------------------------------------------------------------------------------------
// Operator requests: retry, skip, cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn retrying_a_failed_step_lets_the_run_go_on() {
    let mut h = flow().plugin("a", Effect::Idempotent).plugin("b", Effect::Idempotent).needs(&["a"]).start();
    h.turn();
    h.finish("a", failed(FailureClass::Permanent));
    assert!(matches!(h.settle(), Some(RunOutcome::Failed { .. })));

    h.request("retry", Some("a"), "alice", json!({ "comment": "fixed the network" }));
    assert_eq!(h.state("a"), StepState::Ready);
    assert_eq!(h.event("retry-requested").actor, "alice");
    let launches = h.turn();
    assert_eq!(keys(&launches), ["a"]);
    assert_eq!(launches[0].number, 2);
    h.ok("a");
    // What needs the retried step runs once it succeeded.
    h.one_by_one(&["b"]);
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn retrying_a_step_that_succeeded_is_rejected() {
    let mut h = flow().plugin("a", Effect::Idempotent).start();
    h.turn();
    h.ok("a");
    h.request("retry", Some("a"), "alice", json!({}));
    assert_eq!(
        h.event("request-rejected").data["reason"],
        json!("a is succeeded: only failed, cancelled or needs-operator steps can be retried")
    );
    assert_eq!(h.state("a"), StepState::Succeeded);
}

#[test]
fn skipping_a_step_with_an_output_finishes_it_for_what_needs_it() {
    let mut h = flow()
        .plugin("a", Effect::Idempotent)
        .plugin("b", Effect::Idempotent)
        .needs(&["a"])
        .with(json!({ "n": "{{ steps.a.output.n }}" }))
        .start();
    h.turn();
    h.finish("a", failed(FailureClass::NeedsOperator));
    h.request("skip", Some("a"), "alice", json!({ "output": { "n": 7 }, "comment": "done by hand" }));
    assert_eq!(h.state("a"), StepState::Skipped);
    assert_eq!(h.record("a").output, Some(json!({ "n": 7 })));
    assert_eq!(h.reason("a"), "skipped by alice");
    assert_eq!(h.why("a"), "skipped by alice");
    let skipped = h.event("skipped-by-operator");
    assert_eq!(skipped.data, json!({ "comment": "done by hand", "output": { "n": 7 } }));
    let launches = h.turn();
    assert_eq!(keys(&launches), ["b"]);
    assert_eq!(launches[0].call.input, json!({ "n": 7 }));
    h.ok("b");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn a_skip_whose_output_does_not_match_the_plugin_schema_is_rejected() {
    let mut h = flow().plugin("a", Effect::Idempotent).start();
    h.turn();
    h.finish("a", failed(FailureClass::NeedsOperator));
    h.request("skip", Some("a"), "alice", json!({ "output": "not an object" }));
    assert_eq!(h.state("a"), StepState::NeedsOperator);
    let reason = h.event("request-rejected").data["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.starts_with("--output does not match the output schema of plugin p-a: "), "{reason}");
}

#[test]
fn cancel_ends_unfinished_instances_and_stops_running_attempts() {
    let mut h = flow()
        .run_limit(1)
        .plugin("s", Effect::Idempotent)
        .over_list(json!(["a", "b"]))
        .plugin("later", Effect::Idempotent)
        .needs(&["s"])
        .start();
    assert_eq!(h.starts(), ["s[a]"]);
    let effect = h.request("cancel", None, "alice", json!({ "comment": "wrong window" }));
    assert!(effect.stop_in_flight, "the driver must stop s[a]");
    assert!(h.m.cancelled());
    assert_eq!(h.m.cancelled_by(), Some(&(Actor::from("alice"), Some("wrong window".to_string()))));
    assert_eq!(h.state("s[b]"), StepState::Cancelled);
    assert_eq!(h.reason("s[b]"), "run cancelled by alice");
    assert_eq!(h.why("s[b]"), "run cancelled by alice");
    assert_eq!(h.state("s[a]"), StepState::Running, "the running attempt is the driver's to stop");
    assert_eq!(
        h.m.take_notes().last().map(String::as_str),
        Some("cancelled by alice: stopping 1 running attempt(s)")
    );
    assert!(h.turn().is_empty());
    assert_eq!(h.settle(), None, "an attempt still runs");

    h.finish("s[a]", cancelled());
    assert_eq!(h.state("s[a]"), StepState::Cancelled);
    assert_eq!(h.reason("s[a]"), "run cancelled by alice during attempt 1");
    assert_eq!(h.attempt("s[a]", 1).state, AttemptState::Cancelled);
    let stopped = h.event("attempt-cancelled");
    assert_eq!((stopped.actor.as_str(), &stopped.data["comment"]), ("alice", &json!("wrong window")));
    assert_eq!(h.settle(), Some(RunOutcome::Cancelled));
    assert_eq!(h.journal.run_state, Some(RunState::Cancelled));
    assert_eq!(h.m.ended(), Some(RunOutcome::Cancelled));
    assert!(h.turn().is_empty());
    assert_eq!(h.m.why_not_started(h.step_index("later")), "not run: the run was cancelled");
}

#[test]
fn an_attempt_that_fails_after_a_cancel_is_not_retried() {
    let mut h = flow().plugin("s", Effect::Idempotent).retry(3, 1).start();
    h.turn();
    h.request("cancel", None, "alice", json!({}));
    h.finish("s", failed(FailureClass::Retryable));
    assert_eq!(h.state("s"), StepState::Cancelled);
    assert_eq!(h.m.next_timer(), None);
    assert_eq!(h.attempt("s", 1).state, AttemptState::Failed, "the attempt itself failed");
    assert_eq!(h.settle(), Some(RunOutcome::Cancelled));
}

// ---------------------------------------------------------------------------------------------
// Why an instance waits, and why a step has not started
// ---------------------------------------------------------------------------------------------

#[test]
fn an_undriven_run_says_to_resume_it() {
    let mut h = flow().run_limit(1).plugin("s", Effect::Idempotent).over_list(json!(["a", "b"])).start();
    h.turn();
    let resume = format!("no process drives the run — `drover resume {RUN}`");
    assert_eq!(h.m.why("s[a]", false).as_deref(), Some(resume.as_str()));
    assert_eq!(h.m.why("s[b]", false).as_deref(), Some(resume.as_str()));
    assert_eq!(h.m.why("nope", true), None);
    h.ok("s[a]");
    assert_eq!(h.m.why("s[a]", true), None, "a step that succeeded has nothing to say");
    assert_eq!(h.m.why("s[a]", false), None);
}

#[test]
fn a_step_not_started_says_what_it_waits_for() {
    let mut h = flow()
        .plugin("a", Effect::Idempotent)
        .plugin("b", Effect::Idempotent)
        .plugin("c", Effect::Idempotent)
        .needs(&["a", "b"])
        .start();
    let c = h.step_index("c");
    assert_eq!(h.m.why_not_started(c), "waits for a, b");
    h.turn();
    h.ok("a");
    assert_eq!(h.m.why_not_started(c), "waits for b");
    h.ok("b");
    assert_eq!(h.m.why_not_started(c), format!("starts when the run is driven — `drover resume {RUN}`"));
}
