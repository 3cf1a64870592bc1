//! A throwaway PostgreSQL cluster for one test: its own data directory, log and Unix socket in a
//! temporary directory, no TCP listener at all, the superuser `drover` trusted without a
//! password, and a database `drover` ready. Dropping it stops the server (immediate mode) and
//! removes everything. Tests never skip: without PostgreSQL's server binaries they fail and say
//! how to get them (`cargo xtask test` installs the Debian package `postgresql`).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (as CI does) the temporary
//! directory is given to the `postgres` system account and `initdb` and `pg_ctl` run as that
//! account through `runuser`; the clients (`psql`, the code under test) stay root. The harness
//! never touches the system's clusters.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian installs each major version's server binaries: `<version>/bin/`.
const SERVER_ROOT: &str = "/usr/lib/postgresql";

/// The account that runs the server when the tests run as root (created by the Debian package).
const SYSTEM_USER: &str = "postgres";

/// The superuser `initdb` creates, trusted on the socket without a password.
pub const SUPERUSER: &str = "drover";

/// The database [`PgCluster::start`] creates and [`PgCluster::url`] names.
pub const DATABASE: &str = "drover";

/// The number that names the socket file (`.s.PGSQL.<port>`). No TCP port is opened, and the
/// socket's directory belongs to one cluster, so every cluster can use the same number.
pub const PORT: u16 = 5432;

const NOT_INSTALLED: &str = "PostgreSQL's server is not installed: run `cargo xtask test` (it installs the Debian \
     package postgresql) or `apt-get install postgresql`";

/// Whether the server flushes its WAL to the disk ([`PgCluster::start_durable`]) or not.
#[derive(Clone, Copy)]
enum Flush {
    Off,
    On,
}

/// A running PostgreSQL server in a temporary directory, stopped and removed on drop.
pub struct PgCluster {
    bin: PathBuf,
    /// Whether `initdb` and `pg_ctl` run as [`SYSTEM_USER`] through `runuser`.
    as_system_user: bool,
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// Creates a cluster with the newest installed server version, starts it listening only on a
    /// Unix socket in its temporary directory, waits until it accepts connections and creates
    /// the database [`DATABASE`]. Panics, saying how to install it, when the server is missing.
    /// It runs with `fsync = off` to spare the machine (see [`PgCluster::start_durable`]).
    pub fn start() -> PgCluster {
        PgCluster::start_with(Flush::Off)
    }

    /// [`PgCluster::start`], but committing as a production server does: `fsync = on`,
    /// `synchronous_commit = on` and PostgreSQL's default `shared_buffers` (128MB), so a commit
    /// returns once its WAL is on the disk. For benchmarks (`tests/benches/engine.rs`); its data
    /// directory is in the temporary directory (`TMPDIR`) like every cluster's.
    pub fn start_durable() -> PgCluster {
        PgCluster::start_with(Flush::On)
    }

    fn start_with(flush: Flush) -> PgCluster {
        let bin = server_bin().unwrap_or_else(|| panic!("{NOT_INSTALLED}"));
        let as_system_user = effective_uid_is_root();
        let dir = tempfile::Builder::new().prefix("drover-pg-").tempdir().expect("temporary directory");
        if as_system_user {
            let known = Command::new("id").arg(SYSTEM_USER).output().is_ok_and(|o| o.status.success());
            assert!(known, "there is no `{SYSTEM_USER}` account to run the server as: {NOT_INSTALLED}");
            let out = Command::new("chown")
                .arg(format!("{SYSTEM_USER}:"))
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(out.status.success(), "chown of the cluster's folder failed: {}", stderr(&out));
        }
        let cluster = PgCluster { bin, as_system_user, dir };
        let out = cluster
            .server_tool("initdb")
            .arg("-D")
            .arg(cluster.data_dir())
            .args(["-U", SUPERUSER, "--auth=trust", "-N", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}{}", stdout(&out), stderr(&out));
        cluster.configure(flush);
        cluster.start_again();
        cluster.psql_in("postgres", &format!("CREATE DATABASE {DATABASE}"));
        cluster
    }

    /// Appends the harness's settings to `postgresql.conf`: they hold for every later start and
    /// restart without any command-line option.
    fn configure(&self, flush: Flush) {
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&format!(
            "\n# drover-tests (tests/src/postgres.rs)\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket}'\n\
             port = {PORT}\n",
            socket = self.socket_dir().display(),
        ));
        text.push_str(match flush {
            Flush::Off => {
                "# the machine never crashes under a test; a server crash (immediate stop) still\n\
                 # replays the WAL\n\
                 fsync = off\n\
                 shared_buffers = 16MB\n"
            }
            Flush::On => {
                "# a benchmark's commits are durable, as in production\n\
                 fsync = on\n\
                 synchronous_commit = on\n\
                 shared_buffers = 128MB\n"
            }
        });
        // Rewriting the file in place keeps its owner.
        fs::write(&conf, text).expect("write postgresql.conf");
    }

    /// A URL of database [`DATABASE`] as user [`SUPERUSER`] over the Unix socket, accepted by
    /// libpq (`psql`) and by the `postgres`/`tokio-postgres` crates:
    /// `postgres:///drover?host=<socket dir>&port=5432&user=drover`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of database `name` in this cluster (see [`PgCluster::url`]).
    pub fn url_of(&self, name: &str) -> String {
        // The socket directory goes in the query, not in the host part: a host part would need
        // percent-encoding, and `localhost` there with `host=` in the query would make
        // tokio-postgres try TCP to localhost first. The temporary path needs no escaping.
        format!("postgres:///{name}?host={}&port={PORT}&user={SUPERUSER}", self.socket_dir().display())
    }

    /// Creates the empty database `name` (lowercase letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "a test database is named with lowercase letters, digits and _, not {name:?}"
        );
        self.psql_in("postgres", &format!("CREATE DATABASE {name}"));
        self.url_of(name)
    }

    /// Runs `sql` with `psql` in database [`DATABASE`] and returns its unaligned, tuples-only
    /// output (`-At`: one row a line, columns separated by `|`), trimmed. Panics with psql's
    /// error when a statement fails.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(DATABASE, sql)
    }

    /// [`PgCluster::psql`] in database `name`.
    pub fn psql_in(&self, name: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url_of(name))
            .args(["-c", sql])
            .env_remove("PGSERVICE")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// Restarts the server (`pg_ctl restart -m fast`: sessions are disconnected, transactions
    /// rolled back) and returns once it accepts connections again.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast", "-w"]);
    }

    /// Stops the server (`pg_ctl stop -m fast`) and returns once it has exited.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the stopped server and returns once it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w"]);
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's Unix socket, `.s.PGSQL.<PORT>`.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server wrote to its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The process id of the running postmaster, from the first line of `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = self.pg_ctl_output(args);
        assert!(
            out.status.success(),
            "pg_ctl {} failed: {}{}\nserver log:\n{}",
            args.join(" "),
            stdout(&out),
            stderr(&out),
            self.log()
        );
    }

    fn pg_ctl_output(&self, args: &[&str]) -> Output {
        self.server_tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(args)
            .output()
            .expect("run pg_ctl")
    }

    /// `initdb` or `pg_ctl`, as [`SYSTEM_USER`] when the tests run as root, from the temporary
    /// directory (the server's account may not be allowed into the current one).
    fn server_tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut cmd = if self.as_system_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SYSTEM_USER, "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // With `-l` the server writes to its log, not to pg_ctl's pipes, so `output()` returns
        // while the server runs on.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl_output(&["stop", "-m", "immediate", "-w"]);
    }
}

/// The `bin` folder of the newest major version under [`SERVER_ROOT`] that has `initdb`,
/// `pg_ctl` and `postgres`.
fn server_bin() -> Option<PathBuf> {
    fs::read_dir(SERVER_ROOT)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "postgres", "psql"]
                .iter()
                .all(|t| bin.join(t).is_file())
                .then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

fn effective_uid_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
