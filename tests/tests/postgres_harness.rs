//! The throwaway PostgreSQL cluster of `drover_tests::postgres`: reachable through its URL over a
//! Unix socket in its own temporary directory and nowhere else (no TCP listener), its data kept
//! across a restart and a stop and start, extra databases on request, and its server gone once
//! it is dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_tests::postgres::{PORT, PgCluster};

/// How long a postmaster may take to exit once `pg_ctl stop` returned.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_cluster_answers_on_its_own_socket_and_nowhere_else() {
    let pg = PgCluster::start();
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert_eq!(pg.psql("SELECT current_user || ' ' || current_database()"), "drover drover");
    // Nothing on TCP: no listen address, and the URL's own connection is a Unix socket.
    assert_eq!(pg.psql("SHOW listen_addresses"), "");
    assert_eq!(pg.psql("SELECT inet_server_addr() IS NULL"), "t");
    // The socket is in the cluster's temporary directory, under the port's name.
    assert_eq!(pg.psql("SHOW unix_socket_directories"), pg.socket_dir().display().to_string());
    assert!(pg.socket_dir().join(format!(".s.PGSQL.{PORT}")).exists());
    assert!(pg.socket_dir().starts_with(std::env::temp_dir()), "{}", pg.socket_dir().display());
    assert!(pg.data_dir().starts_with(pg.socket_dir()));
    // The URL is what libpq reads too.
    let url = pg.url();
    assert!(url.starts_with("postgres:///drover?host=/"), "{url}");
    let out = Command::new("psql")
        .args(["-X", "-At", "-c", "SELECT 2"])
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[test]
fn data_survives_a_restart_and_a_stop_and_start() {
    let pg = PgCluster::start();
    pg.psql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)");
    let before = pg.postmaster_pid().expect("a running postmaster");
    pg.restart();
    let after = pg.postmaster_pid().expect("a running postmaster after the restart");
    assert_ne!(before, after, "the restart did not replace the postmaster");
    assert!(wait_until_gone(before), "the old postmaster {before} still runs");
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert_eq!(pg.psql("SELECT n FROM kept"), "7");

    pg.stop();
    assert_eq!(pg.postmaster_pid(), None);
    assert!(wait_until_gone(after), "the stopped postmaster {after} still runs");
    let refused = Command::new("psql")
        .args(["-X", "-At", "-c", "SELECT 1"])
        .arg(pg.url())
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(!refused.status.success(), "a stopped cluster answered");

    pg.start_again();
    assert_eq!(pg.psql("SELECT n FROM kept"), "7");
}

#[test]
fn create_database_gives_a_fresh_database_of_the_same_cluster() {
    let pg = PgCluster::start();
    pg.psql("CREATE TABLE only_in_drover (n int)");
    let url = pg.create_database("second");
    assert_eq!(url, pg.url_of("second"));
    assert_eq!(pg.psql_in("second", "SELECT current_database()"), "second");
    assert_eq!(
        pg.psql_in("second", "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_drover'"),
        "0"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_drover'"), "1");
}

#[test]
fn a_durable_cluster_flushes_its_wal_at_every_commit_and_a_test_cluster_does_not() {
    let durable = PgCluster::start_durable();
    assert_eq!(durable.psql("SHOW fsync"), "on");
    assert_eq!(durable.psql("SHOW synchronous_commit"), "on");
    assert_eq!(durable.psql("SHOW shared_buffers"), "128MB");
    assert_eq!(durable.psql("SHOW listen_addresses"), "", "only its socket, like every cluster");
    assert!(durable.socket_dir().starts_with(std::env::temp_dir()), "{}", durable.socket_dir().display());
    let test = PgCluster::start();
    assert_eq!(test.psql("SHOW fsync"), "off");
}

#[test]
fn dropping_the_cluster_stops_its_server_and_removes_its_files() {
    let pg = PgCluster::start();
    let pid = pg.postmaster_pid().expect("a running postmaster");
    assert!(alive(pid));
    let dir = pg.socket_dir().to_path_buf();
    drop(pg);
    assert!(wait_until_gone(pid), "postmaster {pid} still runs after the drop");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Whether process `pid` runs: it exists and is not a zombie (the postmaster is not our child,
/// so whoever adopted it reaps it, maybe later).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next());
    state != Some(Some('Z'))
}

/// Waits until process `pid` no longer runs; false if it still does after [`EXIT_TIMEOUT`].
fn wait_until_gone(pid: u32) -> bool {
    let started = Instant::now();
    while alive(pid) {
        if started.elapsed() > EXIT_TIMEOUT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
