//! Settling the attempts a dead driver left running, by the effect class of their plugin.

use super::*;

// ---------------------------------------------------------------------------------------------
// Settling attempts a dead driver left running, by effect class
// ---------------------------------------------------------------------------------------------

#[test]
fn interrupted_read_only_and_idempotent_attempts_run_again() {
    let mut h = flow().plugin("look", Effect::ReadOnly).plugin("put", Effect::Idempotent).start();
    assert_eq!(h.starts(), ["look", "put"]);
    h.clock.advance(5_000);
    let checks = h.crash_and_resume();
    assert!(checks.is_empty());
    assert_eq!(h.event("driving").data, json!({ "pid": 4343 }));
    assert_eq!(h.state("look"), StepState::Ready);
    assert_eq!(h.reason("look"), "attempt 1 was interrupted; running it again (read-only)");
    assert_eq!(h.reason("put"), "attempt 1 was interrupted; running it again (idempotent)");
    assert_eq!(h.attempt("put", 1).state, AttemptState::Interrupted);
    assert_eq!(h.count("attempt-interrupted", "put"), 1);
    let launches = h.turn();
    assert_eq!(keys(&launches), ["look", "put"]);
    assert!(launches.iter().all(|l| l.number == 2));
    h.ok("look");
    h.ok("put");
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn an_interrupted_irreversible_attempt_waits_for_an_operator() {
    let mut h = flow().plugin("send", Effect::Irreversible).start();
    h.turn();
    h.crash_and_resume();
    assert_eq!(h.state("send"), StepState::NeedsOperator);
    assert_eq!(
        h.reason("send"),
        format!(
            "attempt 1 of this irreversible step was interrupted at 2023-11-14T22:13:20Z; it may or may not have taken effect. \
             Check the target, then `drover retry {RUN} send` to run it again, or `drover skip {RUN} send --output <json>` to mark it done"
        )
    );
    assert!(h.turn().is_empty(), "never run again without an operator");
    assert!(h.why("send").starts_with("needs an operator: attempt 1 of this irreversible step"));
    assert!(matches!(h.settle(), Some(RunOutcome::Waiting { .. })));
    h.request("retry", Some("send"), "alice", json!({}));
    let launches = h.turn();
    assert_eq!((keys(&launches), launches[0].number), (vec!["send"], 2));
}

#[test]
fn an_interrupted_reversible_attempt_is_settled_by_its_check_finding_the_change() {
    let mut h = flow().plugin("create", Effect::Reversible).timeout(45).start();
    h.turn();
    let checks = h.crash_and_resume();
    assert_eq!(checks.len(), 1);
    let check = &checks[0];
    assert_eq!((check.key.as_str(), check.interrupted, check.number), ("create", 1, 2));
    assert_eq!(check.call.mode, Mode::Check);
    assert_eq!(check.timeout, Some(Duration::from_secs(45)));
    assert_eq!(h.attempt("create", 2).mode, Mode::Check);
    assert_eq!(h.attempt("create", 2).state, AttemptState::Running, "the check's intent is committed first");

    // `check` says nothing would change: the interrupted attempt took effect.
    h.m.checked(check, succeeded(false));
    h.commit();
    assert_eq!(h.state("create"), StepState::Succeeded);
    assert_eq!(h.record("create").changed, Some(true), "what the run changed is what compensation undoes");
    assert_eq!(h.record("create").summary.as_deref(), Some("attempt 1 had already taken effect: already so"));
    assert_eq!(h.attempt("create", 2).state, AttemptState::Succeeded);
    assert_eq!(h.event("recovered-by-check").data, json!({ "interrupted": 1, "state": "succeeded" }));
    assert!(h.turn().is_empty());
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));
}

#[test]
fn a_check_that_finds_the_change_missing_applies_again() {
    let mut h = flow().plugin("create", Effect::Reversible).start();
    h.turn();
    let checks = h.crash_and_resume();
    h.m.checked(&checks[0], succeeded(true));
    h.commit();
    assert_eq!(h.state("create"), StepState::Ready);
    assert_eq!(
        h.reason("create"),
        "attempt 1 was interrupted and check says the change is not there; applying again"
    );
    let launches = h.turn();
    assert_eq!(
        (keys(&launches), launches[0].number, launches[0].call.mode),
        (vec!["create"], 3, Mode::Apply)
    );
}

#[test]
fn a_check_that_fails_waits_for_an_operator() {
    let mut h = flow().plugin("create", Effect::Reversible).start();
    h.turn();
    let checks = h.crash_and_resume();
    h.m.checked(&checks[0], failed(FailureClass::Retryable));
    h.commit();
    assert_eq!(h.state("create"), StepState::NeedsOperator);
    assert_eq!(
        h.reason("create"),
        "attempt 1 was interrupted and check failed: plugin p failed (Retryable): boom"
    );
    assert_eq!(h.attempt("create", 2).state, AttemptState::Failed);
    assert!(h.turn().is_empty());
}

#[test]
fn a_check_interrupted_in_turn_is_checked_again() {
    let mut h = flow().plugin("create", Effect::Reversible).start();
    h.turn();
    assert_eq!(h.crash_and_resume()[0].number, 2);
    let checks = h.crash_and_resume();
    assert_eq!((checks[0].interrupted, checks[0].number), (2, 3));
    assert_eq!(h.attempt("create", 2).state, AttemptState::Interrupted);
}

#[test]
fn leftover_processes_of_an_interrupted_attempt_are_journaled() {
    let mut h = flow().plugin("create", Effect::Reversible).start();
    h.turn();
    let checks = h.crash_and_resume();
    h.m.take_notes();
    h.m.leftovers(&checks[0], 0, 0, Duration::ZERO);
    assert!(!h.m.has_changes(), "nothing found, nothing said");
    h.m.leftovers(&checks[0], 2, 1, Duration::from_millis(2_500));
    h.commit();
    assert_eq!(
        h.event("leftover-processes").data,
        json!({ "attempt": 1, "processes": 2, "killed": 1, "waited_ms": 2500 })
    );
    assert_eq!(
        h.m.take_notes(),
        [
            "create: waited 2.5s for 2 leftover processes of attempt 1, killed 1 still running at the step's timeout"
        ]
    );
}
