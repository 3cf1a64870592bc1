//! The web view in a real headless Chromium (`drover_tests::browser`) against the real
//! `drover serve` (`drover_tests::web::Served`): a run page follows the run live, without a
//! reload, while an operator approves from the command line and a driver runs the steps; an
//! operator logs in and approves a gate with a comment from the page, and the journal and the
//! report name her; an approver the gate does not name is refused on the page; a request without
//! the session's CSRF token is refused; a visitor who has not logged in sees no forms, is offered
//! the login, and cannot act. Every wait is on what the page or the journal shows.

use std::process::{Child, Stdio};

use drover_tests::browser::Browser;
use drover_tests::web::{GATED, Served, add_users, events, sandbox, start};
use drover_tests::{Sandbox, stderr, stdout, wasm};
use serde_json::Value;

/// Runs [`GATED`], which stops waiting at its gate, and returns the run's id.
fn start_gated(sandbox: &Sandbox) -> String {
    start(sandbox, "gated", GATED, 4)
}

/// A users file with alice and mallory (password `<name>-secret`); returns its path.
fn users(sandbox: &Sandbox) -> String {
    add_users(sandbox, &["alice", "mallory"])
}

/// The journal's `approved` events of `run`.
fn approvals(sandbox: &Sandbox, run: &str) -> Vec<Value> {
    events(sandbox, run).into_iter().filter(|e| e["kind"] == "approved").collect()
}

/// The state of step instance `key` as `drover status --json` reports it.
fn instance_state(sandbox: &Sandbox, run: &str, key: &str) -> Value {
    let status = sandbox.status(run);
    let instances = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|s| s["instances"].as_array().cloned().unwrap_or_default());
    instances
        .into_iter()
        .find(|i| i["key"] == key)
        .map(|i| i["state"].clone())
        .unwrap_or_else(|| panic!("no instance {key} in {status}"))
}

/// Opens `url` and waits until the page's event stream delivered a first view.
fn open_live(browser: &Browser, url: &str) {
    browser.goto(url);
    browser.wait_until(
        "the page's event stream to deliver",
        |b| b.try_text("#live-status"),
        |text| text.as_deref().is_some_and(|t| t.starts_with("live")),
    );
}

/// The `data-state` of the `#now` row of step instance `key` (`None` while there is none), read
/// in one script: the live page replaces the rows between two WebDriver commands.
fn row_state(browser: &Browser, key: &str) -> Option<String> {
    let script = format!(
        "const row = document.querySelector('#now tr[data-step-key=\"{key}\"]'); \
         return row === null ? null : row.dataset.state;"
    );
    browser.eval(&script).as_str().map(str::to_string)
}

/// Waits until the row of `key` reads `state`.
fn wait_for_row(browser: &Browser, key: &str, state: &str) {
    browser.wait_until(
        &format!("the row of {key} to read {state}"),
        |b| row_state(b, key),
        |seen| seen.as_deref() == Some(state),
    );
}

/// Logs `name` in through the login form and waits until the page says who is logged in.
fn log_in(browser: &Browser, served: &Served, name: &str) {
    browser.goto(&format!("{}/login", served.origin()));
    browser.fill("#login-form input[name=name]", name);
    browser.fill("#login-form input[name=password]", &format!("{name}-secret"));
    browser.click("#login-form button[type=submit]");
    browser.wait_for_text("#whoami", name);
}

/// Approves gate `key` from the run page with `comment` and returns what `#action-result` then
/// says, with its class (`ok` or `err`).
fn approve_on_page(browser: &Browser, key: &str, comment: &str) -> (String, String) {
    let form = format!("#actions form.action-approve[data-step-key=\"{key}\"]");
    browser.fill(&format!("{form} textarea[name=comment]"), comment);
    browser.click(&format!("{form} button[type=submit]"));
    let text = browser.wait_until(
        "the outcome of the approval in #action-result",
        |b| b.try_text("#action-result"),
        |text| text.as_deref().is_some_and(|t| !t.is_empty()),
    );
    let class = browser.attr("#action-result", "class").unwrap_or_default();
    (text.unwrap_or_default(), class)
}

/// Sends `POST /api/runs/RUN/approve` of gate `go` from the page with `fetch`, with the headers
/// `headers` (a JavaScript object literal), and returns the answer's status.
fn fetch_approve(browser: &Browser, run: &str, headers: &str) -> u64 {
    let script = format!(
        "return fetch('/api/runs/{run}/approve', {{method: 'POST', headers: {headers}, \
         body: JSON.stringify({{step: 'go'}})}}).then(r => r.status);"
    );
    let status = browser.eval(&script);
    status.as_u64().unwrap_or_else(|| panic!("fetch answered {status}"))
}

/// Waits for `child` (a `drover` command) to end and checks it succeeded.
fn assert_ends_well(child: Child, what: &str) {
    let out = child.wait_with_output().expect("the command ends");
    assert!(out.status.success(), "{what}: {}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_run_page_follows_an_approval_and_a_resume_without_reloading() {
    let sandbox = sandbox();
    let run = start_gated(&sandbox);
    let served = Served::start(&sandbox, &["--poll", "50ms"]);
    let browser = Browser::start();
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));
    assert_eq!(browser.text("#run-state"), "waiting");
    assert_eq!(row_state(&browser, "first").as_deref(), Some("succeeded"));
    assert_eq!(row_state(&browser, "go").as_deref(), Some("waiting"));
    assert_eq!(row_state(&browser, "after").as_deref(), Some("pending"));
    browser.eval("window.__notReloaded = true; return null;");

    let out = sandbox
        .drover()
        .args(["approve", &run, "go", "--comment", "bridge call agreed"])
        .env("USER", "alice")
        .output()
        .expect("run drover approve");
    assert!(out.status.success(), "drover approve: {}", stderr(&out));
    let resume = sandbox
        .drover()
        .args(["--quiet", "resume", &run])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover resume");

    wait_for_row(&browser, "after", "succeeded");
    browser.wait_for_text("#run-state", "succeeded");
    assert_ends_well(resume, "drover resume");
    assert_eq!(row_state(&browser, "go").as_deref(), Some("succeeded"));
    assert_eq!(browser.eval("return window.__notReloaded === true;"), Value::Bool(true), "the page reloaded");
    assert!(browser.text("#now").contains("approved by alice"), "{}", browser.text("#now"));
    assert!(browser.text("#rto-clock").ends_with("(ended)"), "{}", browser.text("#rto-clock"));
}

#[test]
fn a_run_page_shows_a_step_running_then_succeeding_while_a_driver_runs_it() {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    let served = Served::start(&sandbox, &["--poll", "50ms"]);
    // Its one step waits for the test's release file, so the page sees it running for as long
    // as the test needs.
    let mut held = sandbox.start_held_run();
    let run = sandbox.wait_until_driven(&mut held.child);
    let browser = Browser::start();
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));
    browser.wait_for_text("#run-state", "running");
    let key = browser.wait_until(
        "a row of the held step",
        |b| {
            b.eval(
                "const row = document.querySelector('#now tr[data-step-key^=\"held\"]'); \
                 return row === null ? null : row.dataset.stepKey;",
            )
            .as_str()
            .map(str::to_string)
        },
        Option::is_some,
    );
    let key = key.expect("a step key");
    wait_for_row(&browser, &key, "running");
    browser.eval("window.__notReloaded = true; return null;");

    std::fs::write(&held.release, "").expect("release the step");
    wait_for_row(&browser, &key, "succeeded");
    browser.wait_for_text("#run-state", "succeeded");
    assert_eq!(browser.eval("return window.__notReloaded === true;"), Value::Bool(true), "the page reloaded");
    let out = held.child.wait_with_output().expect("drover run ends");
    assert!(out.status.success(), "drover run: {}{}", stdout(&out), stderr(&out));
    let effects = std::fs::read_to_string(&held.effects).expect("the step's effect");
    assert_eq!(effects.lines().count(), 1, "{effects}");
}

#[test]
fn an_operator_logs_in_and_approves_with_a_comment_journaled_under_her_name() {
    let sandbox = sandbox();
    let users_file = users(&sandbox);
    let run = start_gated(&sandbox);
    let served = Served::start(&sandbox, &["--users", &users_file, "--poll", "50ms"]);
    let browser = Browser::start();
    log_in(&browser, &served, "alice");
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));
    assert_eq!(browser.attr("main#run", "data-can-act").as_deref(), Some("true"));

    let (said, class) = approve_on_page(&browser, "go", "bridge call agreed at 10:12");
    assert_eq!(said, "approve go by alice: applied");
    assert_eq!(class, "ok");
    let approved = approvals(&sandbox, &run);
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["actor"], "alice", "{}", approved[0]);
    assert_eq!(approved[0]["step_key"], "go", "{}", approved[0]);
    assert_eq!(approved[0]["data"]["comment"], "bridge call agreed at 10:12", "{}", approved[0]);
    // The page hears of it from the journal too.
    browser.wait_until(
        "the page to show alice's approval",
        |b| b.try_text("#now"),
        |now| now.as_deref().is_some_and(|n| n.contains("approved by alice")),
    );

    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert!(out.status.success(), "drover resume: {}{}", stdout(&out), stderr(&out));
    let report = sandbox.run(&["report", &run]);
    assert!(report.status.success(), "drover report: {}", stderr(&report));
    let report = stdout(&report);
    assert!(report.contains("alice"), "the report names the approver: {report}");
    assert!(report.contains("bridge call agreed at 10:12"), "the report has the comment: {report}");
}

#[test]
fn an_approver_the_gate_does_not_name_is_refused_on_the_page() {
    let sandbox = sandbox();
    let users_file = users(&sandbox);
    let run = start_gated(&sandbox);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let browser = Browser::start();
    log_in(&browser, &served, "mallory");
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));

    let (said, class) = approve_on_page(&browser, "go", "let me through");
    assert!(said.starts_with("only alice or bob may approve"), "{said}");
    assert!(said.contains("mallory"), "{said}");
    assert_eq!(class, "err");
    assert_eq!(approvals(&sandbox, &run), Vec::<Value>::new());
    assert_eq!(instance_state(&sandbox, &run, "go"), "waiting");
}

#[test]
fn an_approval_without_the_csrf_token_is_refused() {
    let sandbox = sandbox();
    let users_file = users(&sandbox);
    let run = start_gated(&sandbox);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let browser = Browser::start();
    log_in(&browser, &served, "alice");
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));

    // The session's cookie goes with it (same origin), but not the token.
    let status = fetch_approve(&browser, &run, "{'content-type': 'application/json'}");
    assert_eq!(status, 403);
    assert_eq!(approvals(&sandbox, &run), Vec::<Value>::new());
    assert_eq!(instance_state(&sandbox, &run, "go"), "waiting");
    assert_eq!(browser.text("#run-state"), "waiting");
}

#[test]
fn a_visitor_who_has_not_logged_in_sees_no_forms_and_cannot_act() {
    let sandbox = sandbox();
    let users_file = users(&sandbox);
    let run = start_gated(&sandbox);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let browser = Browser::start();
    open_live(&browser, &format!("{}/runs/{run}", served.origin()));

    assert_eq!(browser.attr("main#run", "data-can-act").as_deref(), Some("false"));
    // The gate and its prompt are shown, its form is not.
    assert!(browser.text("#actions").contains("Switch to DR?"), "{}", browser.text("#actions"));
    let shown = browser.eval(
        "const f = document.querySelector('#actions form.action-approve[data-step-key=\"go\"]'); \
         return f === null ? 'absent' : getComputedStyle(f).display;",
    );
    assert_eq!(shown, "none", "the approve form is hidden");
    assert_eq!(browser.text("#login-link"), "Log in");
    assert!(browser.text(".login-to-act").starts_with("Log in"), "{}", browser.text(".login-to-act"));
    assert_eq!(browser.count("meta[name=\"csrf-token\"]"), 0);

    let status = fetch_approve(&browser, &run, "{'content-type': 'application/json'}");
    assert_eq!(status, 401);
    assert_eq!(approvals(&sandbox, &run), Vec::<Value>::new());
    assert_eq!(instance_state(&sandbox, &run, "go"), "waiting");
}
