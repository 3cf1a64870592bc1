//! The command line on a PostgreSQL journal that cannot be used: a server that is down, a
//! journal of a newer schema, a read-only server (a standby). Each exits 6 with a message naming
//! the journal by its URL, and the password in that URL is never printed.

use drover_tests::postgres::PgCluster;
use drover_tests::{Sandbox, stderr, stdout, wasm};

const PASSWORD: &str = "hunter2-not-for-logs";

/// A home whose journal is `cluster`'s database, reached with a password in the URL.
fn home(cluster: &PgCluster) -> Sandbox {
    cluster.psql(&format!("ALTER ROLE drover PASSWORD '{PASSWORD}'"));
    let url = cluster.url().replacen("postgres://", &format!("postgres://drover:{PASSWORD}@"), 1);
    Sandbox::with_db(url.into())
}

/// A one-step run recorded in the journal.
fn one_run(sandbox: &Sandbox) -> Vec<String> {
    sandbox.install(&[wasm::NOOP]);
    let wf = sandbox
        .write("w.toml", "name = \"w\"\nversion = \"1.0.0\"\n[[steps]]\nid = \"a\"\nplugin = \"noop\"\n");
    let inv = sandbox.write("inventory.toml", "[servers.here]\ntransport = \"local\"\n");
    vec![wf, inv]
}

fn assert_journal_error(out: &std::process::Output, says: &str) {
    let error = stderr(out);
    assert_eq!(out.status.code(), Some(6), "exit code: {error}");
    assert!(error.contains(says), "the message says {says:?}: {error}");
    assert!(error.contains("postgres://drover:***@"), "the journal is named, its password redacted: {error}");
    assert!(
        !error.contains(PASSWORD) && !stdout(out).contains(PASSWORD),
        "the password was printed: {error}"
    );
}

#[test]
fn a_server_that_is_down_exits_6_naming_the_journal_without_its_password() {
    let cluster = PgCluster::start();
    let sandbox = home(&cluster);
    let files = one_run(&sandbox);
    let out = sandbox.run(&["run", &files[0], "--inventory", &files[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.stop();
    for args in [&["runs"][..], &["run", &files[0], "--inventory", &files[1]][..]] {
        let out = sandbox.run(args);
        assert_journal_error(&out, "cannot be reached");
    }
}

#[test]
fn a_journal_of_a_newer_schema_exits_6_for_readers_and_writers() {
    let cluster = PgCluster::start();
    let sandbox = home(&cluster);
    let files = one_run(&sandbox);
    let out = sandbox.run(&["run", &files[0], "--inventory", &files[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.psql("UPDATE drover_schema SET version = 99");
    for args in [&["runs"][..], &["run", &files[0], "--inventory", &files[1]][..]] {
        let out = sandbox.run(args);
        assert_journal_error(&out, "use a newer drover");
    }
}

#[test]
fn a_read_only_server_exits_6_for_a_writer_and_serves_readers() {
    let cluster = PgCluster::start();
    let sandbox = home(&cluster);
    let files = one_run(&sandbox);
    let out = sandbox.run(&["run", &files[0], "--inventory", &files[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = sandbox.last_run();
    // As a standby is: every transaction read-only.
    cluster.psql("ALTER DATABASE drover SET default_transaction_read_only = on");
    let out = sandbox.run(&["run", &files[0], "--inventory", &files[1]]);
    assert_journal_error(&out, "read-only");
    let out = sandbox.run(&["status", &run]);
    assert!(out.status.success() && stdout(&out).contains("succeeded"), "{}{}", stdout(&out), stderr(&out));
    let out = sandbox.run(&["report", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
}
