//! Compensation: what is undone and in which order, failed compensations, operator requests during
//! compensation, and resuming it after a crash.

use super::*;

/// `a`, and `b` and `c` that each need it: reversible steps that implement `compensate`.
fn fork() -> Flow {
    flow()
        .compensable("a", Effect::Reversible)
        .compensable("b", Effect::Reversible)
        .needs(&["a"])
        .compensable("c", Effect::Reversible)
        .needs(&["a"])
}

/// How a run that undid `keys` ends, with nothing left as is and no failure.
fn undone(keys: &[&str]) -> RunOutcome {
    RunOutcome::Compensated {
        compensated: keys.iter().map(|k| k.to_string()).collect(),
        left_as_is: vec![],
        failures: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// Compensation
// ---------------------------------------------------------------------------------------------

#[test]
fn a_compensation_request_undoes_a_run_in_reverse_dependency_order() {
    let mut h = chain().start();
    assert_eq!(h.run_on(), RunOutcome::Succeeded);
    let effect = h.request("compensate", None, "alice", json!({ "comment": "roll back" }));
    assert!(!effect.stop_in_flight, "nothing runs");
    assert_eq!(h.journal.run_state, Some(RunState::Compensating));
    assert_eq!(h.event("compensation-requested").actor, "alice");
    let started = h.event("compensation-started");
    assert_eq!(started.actor, "alice");
    assert_eq!(
        started.data,
        json!({ "reason": "requested by alice", "compensate": ["a", "b", "c"], "left_as_is": [] })
    );
    assert_eq!(h.in_state(StepState::Compensating), ["a", "b", "c"]);
    assert_eq!(h.reason("a"), "to be compensated (requested by alice)");
    assert_eq!(h.why("a"), "compensates after b, c");
    assert_eq!(h.why("b"), "compensates after c");
    assert_eq!(h.why("c"), "compensation ready; starts on the driver's next turn");
    assert_eq!(h.m.why_not_started(0), "not run: the run is being compensated");

    let mut order = Vec::new();
    for _ in 0..3 {
        let launches = h.turn();
        assert_eq!(launches.len(), 1, "one at a time along a chain");
        let launch = &launches[0];
        assert_eq!((launch.call.mode, launch.number), (Mode::Compensate, 2));
        assert_eq!(h.why(&launch.key), "compensating");
        assert_eq!(h.attempt(&launch.key, 2).mode, Mode::Compensate);
        assert_eq!(h.settle(), None);
        h.ok(&launch.key);
        order.push(launch.key.clone());
    }
    assert_eq!(order, ["c", "b", "a"]);
    assert_eq!(h.state("c"), StepState::Compensated);
    assert_eq!(h.record("c").summary.as_deref(), Some("compensated: made the change"));
    assert_eq!(h.kinds(Some("c"))[3..], ["compensate-started", "compensate-succeeded"]);

    let outcome = undone(&["a", "b", "c"]);
    assert!(h.turn().is_empty());
    assert_eq!(h.settle(), Some(outcome.clone()));
    assert_eq!(h.journal.run_state, Some(RunState::Compensated));
    assert_eq!(h.event("run-compensated").data, json!({ "compensated": ["a", "b", "c"], "left_as_is": [] }));
    assert!(h.m.is_over());
    assert_eq!(h.m.ended(), Some(outcome));
    assert_eq!(h.m.step_state(0), StepState::Compensated);
}

#[test]
fn only_changed_instances_of_compensable_plugins_are_compensated_and_the_rest_are_listed() {
    let mut h = flow()
        .compensable("create", Effect::Reversible)
        .compensable("noop", Effect::Reversible)
        .compensable("mail", Effect::Irreversible)
        .plugin("log", Effect::Idempotent)
        .plugin("look", Effect::ReadOnly)
        .approval("gate", "Go?", &[])
        .start();
    h.turn();
    h.ok("create");
    h.finish("noop", succeeded(false));
    h.ok("mail");
    h.ok("log");
    h.finish("look", succeeded(false));
    h.request("approve", Some("gate"), "alice", json!({}));
    assert_eq!(h.settle(), Some(RunOutcome::Succeeded));

    h.compensate("alice");
    let mail_why = "plugin p-mail is irreversible: never compensated automatically";
    let log_why = "plugin p-log cannot compensate";
    let started = &h.event("compensation-started").data;
    assert_eq!(started["compensate"], json!(["create"]));
    assert_eq!(
        started["left_as_is"],
        json!([{ "key": "log", "why": log_why }, { "key": "mail", "why": mail_why }])
    );
    assert_eq!(
        h.m.take_notes().last().map(String::as_str),
        Some("compensating (requested by alice): 1 step instance(s) to undo, 2 left as is")
    );
    assert_eq!(h.why("mail"), format!("left as is: {mail_why}"));
    assert_eq!(h.m.why("noop", true), None, "nothing changed: nothing to undo or list");
    assert_eq!(h.state("look"), StepState::Succeeded);
    assert_eq!(h.state("gate"), StepState::Succeeded);

    h.one_by_one(&["create"]);
    assert_eq!(
        h.settle(),
        Some(RunOutcome::Compensated {
            compensated: vec!["create".into()],
            left_as_is: pairs(&[("log", log_why), ("mail", mail_why)]),
            failures: vec![],
        })
    );
}

#[test]
fn a_fan_out_is_compensated_before_the_step_it_needs_and_within_the_limits() {
    let mut h = flow()
        .run_limit(1)
        .compensable("net", Effect::Reversible)
        .compensable("vm", Effect::Reversible)
        .over_list(json!(["x", "y"]))
        .needs(&["net"])
        .start();
    h.run_on();
    h.compensate("alice");
    assert_eq!(h.starts(), ["vm[x]"]);
    assert_eq!(h.why("vm[y]"), "compensation ready; waits for a slot: run limit 1 in use by vm[x]");
    assert_eq!(h.why("net"), "compensates after vm");
    h.ok("vm[x]");
    assert_eq!(h.starts(), ["vm[y]"]);
    assert_eq!(h.why("net"), "compensates after vm", "until every instance downstream is done");
    h.ok("vm[y]");
    h.one_by_one(&["net"]);
    assert!(matches!(h.settle(), Some(RunOutcome::Compensated { .. })));
}

#[test]
fn a_failed_compensation_waits_for_an_operator_and_retry_runs_it_again() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    assert_eq!(h.starts(), ["c"]);
    h.finish("c", failed(FailureClass::Retryable));
    assert_eq!(h.state("c"), StepState::CompensationFailed);
    assert_eq!(h.reason("c"), "compensation failed: plugin p failed (Retryable): boom");
    assert_eq!(h.attempt("c", 2).state, AttemptState::Failed);
    assert_eq!(
        h.why("c"),
        format!(
            "compensation failed: plugin p failed (Retryable): boom — `drover retry {RUN} c` to compensate again, or `drover skip {RUN} c` once undone by hand"
        )
    );
    assert_eq!(h.why("b"), "compensates after c", "a failed compensation still holds back what it needs");
    assert!(h.turn().is_empty());
    assert_eq!(h.m.step_state(2), StepState::CompensationFailed);
    assert_eq!(h.m.settle(true), None);
    let waiting = pairs(&[("c", "compensation failed: plugin p failed (Retryable): boom")]);
    assert_eq!(h.settle(), Some(RunOutcome::Waiting { waiting }));
    assert_eq!(h.m.ended(), None);

    h.request("retry", Some("c"), "alice", json!({}));
    assert_eq!(h.state("c"), StepState::Compensating);
    assert_eq!(h.reason("c"), "compensation retry requested by alice");
    let launches = h.turn();
    assert_eq!(
        (keys(&launches), launches[0].number, launches[0].call.mode),
        (vec!["c"], 3, Mode::Compensate)
    );
    h.ok("c");
    h.one_by_one(&["b", "a"]);
    assert!(matches!(h.settle(), Some(RunOutcome::Compensated { .. })));
}

#[test]
fn skipping_a_failed_compensation_marks_it_undone_by_hand() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    h.turn();
    h.finish("c", failed(FailureClass::Permanent));
    h.request("skip", Some("c"), "bob", json!({ "comment": "deleted it myself" }));
    assert_eq!(h.state("c"), StepState::Compensated);
    assert_eq!(h.record("c").summary.as_deref(), Some("compensation skipped by bob: undone by hand"));
    // What c needed is compensated next.
    h.one_by_one(&["b", "a"]);
    let outcome = h.settle();
    assert_eq!(outcome, Some(undone(&["a", "b", "c"])));
}

#[test]
fn on_failure_compensate_undoes_the_run_once_running_attempts_finished() {
    let mut h = flow()
        .compensable("a", Effect::Reversible)
        .compensable("b", Effect::Reversible)
        .needs(&["a"])
        .plugin("c", Effect::Idempotent)
        .needs(&["a"])
        .on_failure(OnFailure::Compensate)
        .compensable("d", Effect::Reversible)
        .needs(&["b", "c"])
        .start();
    h.turn();
    h.ok("a");
    assert_eq!(h.starts(), ["b", "c"]);
    h.finish("c", failed(FailureClass::Permanent));
    assert_eq!(h.settle(), None, "b still runs");
    assert!(h.turn().is_empty());
    h.ok("b");
    assert_eq!(h.settle(), None, "compensation begins: there is work to do");
    assert_eq!(h.journal.run_state, Some(RunState::Compensating));
    let started = h.event("compensation-started");
    assert_eq!((started.actor.as_str(), &started.data["reason"]), ("engine", &json!("c failed")));
    assert_eq!(h.starts(), ["b"]);
    assert_eq!(h.m.why_not_started(h.step_index("d")), "not run: the run is being compensated");
    h.ok("b");
    h.one_by_one(&["a"]);
    assert_eq!(
        h.settle(),
        Some(RunOutcome::Compensated {
            compensated: vec!["a".into(), "b".into()],
            left_as_is: vec![],
            failures: pairs(&[("c", "plugin p failed (Permanent): boom")]),
        })
    );
}

#[test]
fn run_level_compensate_undoes_the_run_whichever_step_failed() {
    let mut h = flow()
        .run_on_failure(OnFailure::Compensate)
        .compensable("a", Effect::Reversible)
        .plugin("b", Effect::Idempotent)
        .on_failure(OnFailure::Continue)
        .plugin("c", Effect::Idempotent)
        .needs(&["b"])
        .compensable("d", Effect::Reversible)
        .start();
    assert_eq!(h.starts(), ["a", "b", "d"]);
    h.ok("a");
    h.finish("b", failed(FailureClass::Permanent));
    assert_eq!(h.settle(), None, "d still runs: b continues");
    h.turn();
    assert_eq!(h.state("c"), StepState::Skipped);
    h.ok("d");
    assert!(h.turn().is_empty());
    assert_eq!(h.settle(), None, "compensation begins once all is done");
    let launches = h.turn();
    assert_eq!(keys(&launches), ["d", "a"], "independent steps compensate together, latest first");
    h.ok("d");
    h.ok("a");
    let Some(RunOutcome::Compensated { compensated, failures, .. }) = h.settle() else {
        panic!("compensated")
    };
    assert_eq!((compensated, failures.len()), (vec!["a".to_string(), "d".to_string()], 1));
}

#[test]
fn compensation_cancels_what_had_not_finished() {
    let mut h = flow()
        .compensable("a", Effect::Reversible)
        .plugin("b", Effect::Idempotent)
        .needs(&["a"])
        .retry(3, 60)
        .approval("gate", "Go?", &[])
        .start();
    h.turn();
    h.ok("a");
    h.turn();
    h.finish("b", failed(FailureClass::Retryable));
    assert_eq!(h.settle(), None, "b waits for its timer");
    h.compensate("alice");
    assert_eq!(h.state("b"), StepState::Cancelled);
    assert_eq!(h.record("b").retry_at, None);
    assert_eq!(h.m.next_timer(), None, "a cancelled instance holds no timer");
    assert_eq!(h.reason("gate"), "not run: the run is being compensated (requested by alice)");
    assert_eq!(h.why("gate"), "not run: the run is being compensated (requested by alice)");
    assert_eq!(h.starts(), ["a"]);
}

#[test]
fn a_second_compensation_request_is_rejected() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    h.request("compensate", None, "bob", json!({}));
    assert_eq!(
        h.event("request-rejected").data["reason"],
        json!(format!("run {RUN} is being compensated already"))
    );
    while !h.m.is_over() {
        for launch in h.turn() {
            h.ok(&launch.key);
        }
        h.settle();
    }
    h.request("compensate", None, "bob", json!({}));
    assert_eq!(
        h.event("request-rejected").data["reason"],
        json!(format!("run {RUN} was compensated already"))
    );
    assert_eq!(h.count("compensate-started", "a"), 1);
}

#[test]
fn compensating_a_cancelled_run_undoes_what_it_changed() {
    let mut h = flow()
        .compensable("a", Effect::Reversible)
        .compensable("b", Effect::Reversible)
        .needs(&["a"])
        .start();
    h.turn();
    h.ok("a");
    h.request("cancel", None, "alice", json!({}));
    assert_eq!(h.settle(), Some(RunOutcome::Cancelled));
    h.compensate("alice");
    assert!(!h.m.cancelled());
    h.one_by_one(&["a"]);
    assert!(matches!(h.settle(), Some(RunOutcome::Compensated { .. })));
}

#[test]
fn compensation_asked_for_while_attempts_run_waits_for_them_to_stop() {
    let mut h = fork().start();
    h.turn();
    h.ok("a");
    assert_eq!(h.starts(), ["b", "c"]);
    let effect = h.compensate("alice");
    assert!(effect.stop_in_flight, "the driver must stop b and c");
    assert!(h.turn().is_empty(), "a is not compensated while what needs it still runs");
    assert_eq!(h.settle(), None);

    // b was stopped: it ends cancelled, not failed.
    h.finish("b", cancelled());
    assert_eq!(h.state("b"), StepState::Cancelled);
    assert_eq!(h.attempt("b", 1).state, AttemptState::Cancelled);
    assert!(h.turn().is_empty(), "c still runs");
    // c finished its change before the stop reached it: it is compensated too, before a.
    h.ok("c");
    assert_eq!(h.state("c"), StepState::Compensating);
    h.one_by_one(&["c", "a"]);
    assert_eq!(h.settle(), Some(undone(&["a", "c"])));
}

#[test]
fn an_interrupted_compensation_runs_again_and_a_finished_one_never_does() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    h.one_by_one(&["c"]);
    assert_eq!(h.starts(), ["b"]);
    // The driver dies during b's compensation.
    let checks = h.crash_and_resume();
    assert!(checks.is_empty(), "a compensation is idempotent: no check");
    assert_eq!(h.m.ended(), None);
    assert_eq!(h.journal.run_state, Some(RunState::Compensating));
    assert_eq!(h.attempt("b", 2).state, AttemptState::Interrupted);
    assert_eq!(h.state("b"), StepState::Compensating);
    assert_eq!(h.reason("b"), "compensation attempt 2 was interrupted; compensating again");
    assert_eq!(h.why("a"), "compensates after b");

    let launches = h.turn();
    assert_eq!(
        (keys(&launches), launches[0].number, launches[0].call.mode),
        (vec!["b"], 3, Mode::Compensate)
    );
    h.ok("b");
    h.one_by_one(&["a"]);
    assert_eq!(h.settle(), Some(undone(&["a", "b", "c"])));
    assert_eq!(h.count("compensate-started", "c"), 1, "c's compensation finished: it never runs again");
    assert_eq!(h.count("compensate-started", "b"), 2);
}

#[test]
fn a_run_resumed_mid_compensation_keeps_its_order_and_its_failures() {
    let mut h = fork().compensable("log", Effect::Irreversible).start();
    h.run_on();
    h.compensate("alice");
    assert_eq!(h.starts(), ["c", "b"], "independent steps together, the latest in topological order first");
    h.ok("b");
    h.finish("c", failed(FailureClass::Permanent));
    assert!(matches!(h.settle(), Some(RunOutcome::Waiting { .. })));

    // A later process (`drover retry` then `drover resume`) takes the run over.
    assert!(h.crash_and_resume().is_empty());
    assert_eq!(h.why("a"), "compensates after c");
    assert_eq!(h.why("log"), "left as is: plugin p-log is irreversible: never compensated automatically");
    assert!(h.turn().is_empty());
    h.request("retry", Some("c"), "alice", json!({}));
    h.one_by_one(&["c", "a"]);
    let Some(RunOutcome::Compensated { compensated, left_as_is, .. }) = h.settle() else {
        panic!("compensated")
    };
    assert_eq!(compensated, ["a", "b", "c"]);
    assert_eq!(
        left_as_is,
        pairs(&[("log", "plugin p-log is irreversible: never compensated automatically")])
    );
    assert_eq!(h.count("compensate-started", "b"), 1);
}

#[test]
fn a_compensated_run_taken_over_has_ended() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    let outcome = h.run_on();
    h.crash_and_resume();
    assert_eq!(h.m.ended(), Some(outcome));
    assert!(h.turn().is_empty());
}

#[test]
fn a_cancel_during_compensation_stops_it_and_keeps_what_is_left_to_undo() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    assert_eq!(h.starts(), ["c"]);
    let effect = h.request("cancel", None, "bob", json!({}));
    assert!(effect.stop_in_flight);
    // a and b succeeded: they only ever move on to compensation, never to cancelled.
    assert_eq!(h.state("a"), StepState::Compensating);
    assert_eq!(h.state("b"), StepState::Compensating);
    assert!(h.turn().is_empty(), "a cancelled run starts no compensation");
    h.finish("c", cancelled());
    assert_eq!(h.state("c"), StepState::CompensationFailed, "its compensation was stopped");
    assert_eq!(h.attempt("c", 2).state, AttemptState::Cancelled);
    assert_eq!(h.settle(), Some(RunOutcome::Cancelled));
}

#[test]
fn compensating_a_run_cancelled_during_compensation_goes_on_with_it() {
    let mut h = chain().start();
    h.run_on();
    h.compensate("alice");
    h.turn();
    h.request("cancel", None, "bob", json!({}));
    h.finish("c", cancelled());
    assert_eq!(h.settle(), Some(RunOutcome::Cancelled));
    h.crash_and_resume();
    h.compensate("alice");
    assert!(h.kinds(None).iter().all(|k| *k != "request-rejected"), "{:?}", h.kinds(None));
    assert_eq!(h.journal.run_state, Some(RunState::Compensating));
    h.request("retry", Some("c"), "alice", json!({}));
    h.one_by_one(&["c"]);
    assert_eq!(h.starts(), ["b"]);
}
