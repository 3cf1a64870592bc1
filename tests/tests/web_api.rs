//! `drover serve` end to end, through the real binary and plain HTTP (`drover_tests::web`): the
//! API answers the same documents as the commands' `--json`; only a logged-in approver the gate
//! names, with the session's CSRF token and from the same origin, or a bearer token, may act, and
//! what they did is journaled under their name; malformed requests get a 4xx and the server keeps
//! serving; SIGTERM ends the event streams and the server cleanly; an exposed address needs
//! `--insecure`; and a run's stream sends a new view when an operator command changes the journal.

use std::process::Stdio;

use drover_tests::web::{DONE, GATED, Served, add_users, events, raw, request, sandbox, start};
use drover_tests::{Sandbox, stderr, stdout};
use serde_json::{Value, json};

/// A step that succeeds and one that fails for good, so the run stops failed.
const STOPS: &str = r#"
name = "stops"
version = "1.0.0"
[[steps]]
id = "fine"
plugin = "fixture-plugin-for-tests"
with = { behave = "ok" }
[[steps]]
id = "broken"
plugin = "fixture-plugin-for-tests"
with = { behave = "fail", kind = "permanent", message = "cannot" }
"#;

/// A users file with alice, bob and mallory (password `<name>-secret`); returns its path and an
/// API token of bob's.
fn users(sandbox: &Sandbox) -> (String, String) {
    let file = add_users(sandbox, &["alice", "bob", "mallory"]);
    let out = sandbox.run_with_stdin(&["users", "add", "bob", "--file", &file, "--token"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("drover_"), "{token}");
    (file, token)
}

/// `drover args… --json` parsed.
fn cli_json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let out = sandbox.run(args);
    assert!(out.status.success(), "drover {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("drover {args:?}: {e}: {}", stdout(&out)))
}

/// `GET path`, which must answer 200 with JSON.
fn get_json(served: &Served, path: &str) -> Value {
    let answer = served.get(path);
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"), "GET {path}");
    answer.json()
}

/// `run` with its last character changed: a well-formed id the journal does not know.
fn unknown_run(run: &str) -> String {
    let last = if run.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &run[..run.len() - 1])
}

#[test]
fn the_api_answers_the_documents_the_commands_print_with_json() {
    let sandbox = sandbox();
    let waiting = start(&sandbox, "gated", GATED, 4);
    let failed = start(&sandbox, "stops", STOPS, 1);
    let done = start(&sandbox, "done", DONE, 0);
    let served = Served::start(&sandbox, &[]);

    assert_eq!(get_json(&served, "/api/runs"), cli_json(&sandbox, &["runs", "--json"]));
    assert_eq!(get_json(&served, "/api/runs").as_array().map(Vec::len), Some(3));
    for run in [&waiting, &failed, &done] {
        assert_eq!(
            get_json(&served, &format!("/api/runs/{run}")),
            cli_json(&sandbox, &["status", run, "--json"])
        );
        let api_events = get_json(&served, &format!("/api/runs/{run}/events"));
        assert_eq!(api_events, Value::Array(events(&sandbox, run)), "{run}");
        assert_eq!(
            get_json(&served, &format!("/api/runs/{run}/report")),
            cli_json(&sandbox, &["report", run, "--json"]),
            "{run}"
        );
    }
    // `?after=SEQ` leaves out the events up to SEQ.
    let all = events(&sandbox, &done);
    let second = all[1]["seq"].as_i64().expect("a seq");
    let after = get_json(&served, &format!("/api/runs/{done}/events?after={second}"));
    assert_eq!(after, Value::Array(all[2..].to_vec()));

    let unknown = unknown_run(&done);
    for path in [
        format!("/api/runs/{unknown}"),
        format!("/api/runs/{unknown}/events"),
        format!("/api/runs/{unknown}/report"),
        "/api/runs/not-a-run".to_string(),
        "/api/runs/not-a-run/events".to_string(),
    ] {
        let answer = served.get(&path);
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
        assert!(answer.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {}", answer.text());
    }
    assert!(served.get("/api/runs/not-a-run").json()["error"].as_str().unwrap().contains("not a run id"));
    assert!(served.get(&format!("/api/runs/{unknown}")).json()["error"].as_str().unwrap().contains(&unknown));
}

#[test]
fn only_a_named_approver_with_a_session_and_its_csrf_token_or_a_bearer_token_may_act() {
    let sandbox = sandbox();
    let (users_file, bob_token) = users(&sandbox);
    let run = start(&sandbox, "gated", GATED, 4);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let approve = format!("/api/runs/{run}/approve");
    let page = format!("/runs/{run}");
    let body = json!({ "step": "go", "comment": "bridge call agreed" });
    let before = events(&sandbox, &run);

    // Anonymous: 401, and nothing journaled.
    let answer = served.post_json(&approve, &[], &body);
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(answer.json()["error"].as_str().unwrap().contains("log in"), "{}", answer.text());
    assert_eq!(events(&sandbox, &run), before);

    // A wrong password is refused like an unknown name.
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = request(served.addr, "POST", "/login", &headers, b"name=alice&password=nope");
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("wrong name or password"), "{}", wrong.text());

    // Mallory may log in, but the gate does not name her.
    let mallory = served.login("mallory", "mallory-secret");
    let token = served.csrf_token(&page, &mallory);
    let answer = served.post_json(&approve, &[("cookie", &mallory), ("x-csrf-token", &token)], &body);
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(
        answer.json()["error"].as_str().unwrap().contains("only alice or bob may approve"),
        "{}",
        answer.text()
    );
    assert_eq!(events(&sandbox, &run), before);

    // Alice without the CSRF token, with another session's token, or from another origin: 403.
    let alice = served.login("alice", "alice-secret");
    let answer = served.post_json(&approve, &[("cookie", &alice)], &body);
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(answer.json()["error"].as_str().unwrap().contains("CSRF"), "{}", answer.text());
    let answer = served.post_json(&approve, &[("cookie", &alice), ("x-csrf-token", &token)], &body);
    assert_eq!(answer.status, 403, "mallory's token in alice's session: {}", answer.text());
    let alice_token = served.csrf_token(&page, &alice);
    assert_ne!(alice_token, token);
    let headers =
        [("cookie", alice.as_str()), ("x-csrf-token", &alice_token), ("origin", "http://evil.example")];
    let answer = served.post_json(&approve, &headers, &body);
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(answer.json()["error"].as_str().unwrap().contains("another site"), "{}", answer.text());
    assert_eq!(events(&sandbox, &run), before);

    // Alice with her session's token, from the page's own origin: applied, and journaled as hers.
    let origin = served.origin();
    let headers = [("cookie", alice.as_str()), ("x-csrf-token", &alice_token), ("origin", &origin)];
    let answer = served.post_json(&approve, &headers, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    assert_eq!(
        (&reply["run"], &reply["command"], &reply["step"], &reply["by"], &reply["delivery"]),
        (&json!(run), &json!("approve"), &json!("go"), &json!("alice"), &json!("applied")),
        "{reply}"
    );
    let approved: Vec<Value> =
        events(&sandbox, &run).into_iter().filter(|e| e["kind"] == "approved").collect();
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["actor"], "alice", "{}", approved[0]);
    assert_eq!(approved[0]["step_key"], "go", "{}", approved[0]);
    assert_eq!(approved[0]["data"]["comment"], "bridge call agreed", "{}", approved[0]);

    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let status = sandbox.status(&run);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["steps"][1]["instances"][0]["output"]["approved_by"], "alice", "{status}");

    // A bearer token acts without a CSRF token: bob approves a second run of the gate.
    let second = start(&sandbox, "gated", GATED, 4);
    let bearer = format!("Bearer {bob_token}");
    let answer =
        served.post_json(&format!("/api/runs/{second}/approve"), &[("authorization", &bearer)], &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["by"], "bob");
    assert!(events(&sandbox, &second).iter().any(|e| e["kind"] == "approved" && e["actor"] == "bob"));
    // A token nobody was given is anonymous.
    let answer = served.post_json(
        &format!("/api/runs/{second}/cancel"),
        &[("authorization", "Bearer drover_0000")],
        &json!({ "comment": "no" }),
    );
    assert_eq!(answer.status, 401, "{}", answer.text());

    // Retry and skip on a failed run, by token.
    let failed = start(&sandbox, "stops", STOPS, 1);
    let auth = [("authorization", bearer.as_str())];
    let answer = served.post_json(
        &format!("/api/runs/{failed}/skip"),
        &auth,
        &json!({ "step": "broken", "output": { "ok": "yes" }, "comment": "by hand" }),
    );
    assert_eq!(answer.status, 409, "{}", answer.text());
    let error = answer.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("does not match the output schema of plugin fixture-plugin-for-tests"), "{error}");
    let answer = served.post_json(&format!("/api/runs/{failed}/retry"), &auth, &json!({ "step": "fine" }));
    assert_eq!(answer.status, 409, "retry of a succeeded step: {}", answer.text());
    assert!(answer.json()["error"].as_str().is_some_and(|e| e.contains("fine")), "{}", answer.text());
    let answer = served.post_json(
        &format!("/api/runs/{failed}/retry"),
        &auth,
        &json!({ "step": "broken", "comment": "try again" }),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["delivery"], "applied");
    assert!(
        events(&sandbox, &failed).iter().any(|e| e["kind"] == "retry-requested"
            && e["actor"] == "bob"
            && e["data"]["comment"] == "try again"),
        "{:?}",
        events(&sandbox, &failed)
    );
}

#[test]
fn malformed_requests_get_a_4xx_and_the_server_keeps_serving() {
    let sandbox = sandbox();
    let (users_file, bob_token) = users(&sandbox);
    let run = start(&sandbox, "gated", GATED, 4);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let approve = format!("/api/runs/{run}/approve");
    let bearer = format!("Bearer {bob_token}");
    let before = events(&sandbox, &run);

    let post = |content_type: &str, body: &[u8]| {
        request(
            served.addr,
            "POST",
            &approve,
            &[("authorization", &bearer), ("content-type", content_type)],
            body,
        )
    };
    let cases: Vec<(&str, u16, drover_tests::web::Response)> = vec![
        ("a body that is not JSON", 400, post("application/json", b"{\"step\": ")),
        ("a body of another type", 415, post("text/plain", br#"{"step": "go"}"#)),
        ("an unknown field", 422, post("application/json", br#"{"step": "go", "by": "alice"}"#)),
        ("a missing field", 422, post("application/json", br#"{"comment": "no step"}"#)),
        ("a body over 64 KiB", 413, post("application/json", &big_body())),
    ];
    for (what, expected, answer) in cases {
        assert_eq!(answer.status, expected, "{what}: {}", answer.text());
    }
    // The same body over 64 KiB, sent in chunks of unannounced length.
    let mut chunked = format!(
        "POST {approve} HTTP/1.1\r\nhost: {}\r\nauthorization: {bearer}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        served.addr
    )
    .into_bytes();
    for piece in big_body().chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(served.addr, &chunked);
    assert_eq!(answer.status, 413, "a chunked body over 64 KiB: {}", answer.text());
    assert_eq!(events(&sandbox, &run), before, "no malformed request changed the journal");

    let answer = raw(served.addr, b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(answer.status, 400, "a garbage request line: {answer:?}");
    let huge = format!("GET /api/runs HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(1 << 20));
    let answer = raw(served.addr, huge.as_bytes());
    assert!([400, 431].contains(&answer.status), "a 1 MiB header: {answer:?}");
    for path in ["/api/runs/%", "/api/runs/%zz%", "/runs/%ff%fe", "/%00", "/api/runs/run_%2e%2e/events"] {
        let answer = served.get(path);
        assert!((400..500).contains(&answer.status), "GET {path}: {} {}", answer.status, answer.text());
    }
    assert_eq!(served.get("/no/such/page").status, 404);
    assert_eq!(request(served.addr, "DELETE", "/api/runs", &[], b"").status, 405);

    let answer = served.get("/api/runs");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()[0]["run"], run.as_str());
}

/// A JSON body of just over 64 KiB.
fn big_body() -> Vec<u8> {
    json!({ "step": "go", "comment": "x".repeat(64 * 1024) }).to_string().into_bytes()
}

#[test]
fn a_closed_server_sends_anonymous_visitors_to_log_in() {
    let sandbox = sandbox();
    let (users_file, bob_token) = users(&sandbox);
    start(&sandbox, "done", DONE, 0);
    let served = Served::start(&sandbox, &["--users", &users_file, "--anonymous", "closed"]);

    let answer = served.get("/api/runs");
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(answer.json()["error"].as_str().unwrap().contains("log in"));
    let answer = served.get("/");
    assert!((300..400).contains(&answer.status), "{answer:?}");
    assert!(answer.header("location").is_some_and(|l| l.starts_with("/login")), "{answer:?}");
    assert_eq!(served.get("/login").status, 200, "the login form stays reachable");

    let bearer = format!("Bearer {bob_token}");
    let answer = served.get_with("/api/runs", &[("authorization", &bearer)]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let alice = served.login("alice", "alice-secret");
    assert_eq!(served.get_with("/api/runs", &[("cookie", &alice)]).json(), answer.json());
}

#[test]
fn sigterm_ends_the_event_streams_and_the_server_cleanly() {
    let sandbox = sandbox();
    let run = start(&sandbox, "gated", GATED, 4);
    let mut served = Served::start(&sandbox, &[]);
    let path = format!("/api/runs/{run}/stream");
    let mut streams = [served.stream(&path, &[]), served.stream(&path, &[])];
    for stream in &mut streams {
        assert_eq!(stream.status, 200);
        let view = stream.next_view().expect("a first view");
        assert_eq!(
            (view["run"].as_str(), view["state"].as_str()),
            (Some(run.as_str()), Some("waiting")),
            "{view}"
        );
    }

    served.signal("TERM");
    let status = served.wait();
    assert_eq!(status.code(), Some(0), "{}", served.stderr());
    assert!(served.stderr().contains("drover serve: stopped"), "{}", served.stderr());
    for stream in &mut streams {
        // Whatever was sent before the stop, the stream then ends with HTTP's last chunk.
        while stream.next_view().is_some() {}
        assert!(stream.ended_cleanly(), "the server dropped the stream instead of ending it");
    }
}

#[test]
fn an_address_other_machines_reach_needs_insecure() {
    let sandbox = sandbox();
    let out = sandbox.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("0.0.0.0:0") && stderr(&out).contains("--insecure"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    let mut child = sandbox
        .drover()
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover serve");
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut out, &mut first).expect("the first line");
    assert!(first.starts_with("serving ") && first.contains(" on http://0.0.0.0:"), "{first}");
    child.kill().expect("kill drover serve");
    let output = child.wait_with_output().expect("drover serve ends");
    let err = stderr(&output);
    assert!(err.contains("warning: serving on 0.0.0.0:0 over plain HTTP"), "{err}");
}

#[test]
fn a_runs_stream_sends_a_new_view_when_an_operator_command_changes_the_journal() {
    let sandbox = sandbox();
    let run = start(&sandbox, "gated", GATED, 4);
    let served = Served::start(&sandbox, &["--poll", "50ms"]);
    let mut stream = served.stream(&format!("/api/runs/{run}/stream"), &[]);
    let first = stream.next_view().expect("a first view");
    let seq = first["seq"].as_i64().expect("a seq");
    assert_eq!(first["state"], "waiting", "{first}");
    assert!(first["actions"].as_str().unwrap().contains("Switch to DR?"), "{first}");

    let out = sandbox
        .drover()
        .args(["approve", &run, "go", "--comment", "from the bridge"])
        .env("USER", "bob")
        .output()
        .expect("run drover approve");
    assert!(out.status.success(), "{}", stderr(&out));
    let approved = loop {
        let view = stream.next_view().expect("the stream goes on");
        if view["seq"].as_i64().expect("a seq") > seq {
            break view;
        }
    };
    assert!(approved["now"].as_str().unwrap().contains("approved by bob"), "{approved}");
    assert!(approved["report"].as_str().unwrap().contains("from the bridge"), "{approved}");

    let out = sandbox.run(&["--quiet", "resume", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    loop {
        let view = stream.next_view().expect("the stream goes on");
        if view["state"] == "succeeded" {
            assert!(view["finished_at"].is_i64(), "{view}");
            break;
        }
    }
}

/// Skipping a gate passes it as approving does: only the approvers it names may.
#[test]
fn someone_a_gate_does_not_name_cannot_pass_it_by_skipping_it() {
    let sandbox = sandbox();
    let (users_file, _) = users(&sandbox);
    let run = start(&sandbox, "gated", GATED, 4);
    let served = Served::start(&sandbox, &["--users", &users_file]);
    let mallory = served.login("mallory", "mallory-secret");
    let token = served.csrf_token(&format!("/runs/{run}"), &mallory);
    let answer = served.post_json(
        &format!("/api/runs/{run}/skip"),
        &[("cookie", &mallory), ("x-csrf-token", &token)],
        &json!({ "step": "go", "output": {}, "comment": "bypass" }),
    );
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(answer.text().contains("only alice or bob may skip go; mallory may not"), "{}", answer.text());
    assert_eq!(sandbox.status(&run)["steps"][1]["instances"][0]["state"], "waiting");
}
