//! Helpers for Drover's end-to-end tests: paths of the plugin binaries built by `build.rs`, and
//! a way to run the real `drover` binary in a throwaway home directory.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod browser;
pub mod kill;
pub mod lab;
pub mod postgres;
pub mod sshd;
pub mod web;
pub mod windows_lab;
pub mod workers;

/// Plugin components built from `plugins/` for these tests.
pub mod wasm {
    /// `noop` 1.0.0.
    pub const NOOP: &str = env!("DROVER_WASM_NOOP");
    /// `fixture-plugin-for-tests` 1.0.0: misbehaves on request.
    pub const FIXTURE: &str = env!("DROVER_WASM_FIXTURE");
    /// The fixture at 1.2.0.
    pub const FIXTURE_1_2_0: &str = env!("DROVER_WASM_FIXTURE_1_2_0");
    /// The fixture at 1.2.5.
    pub const FIXTURE_1_2_5: &str = env!("DROVER_WASM_FIXTURE_1_2_5");
    /// The fixture at 2.0.0.
    pub const FIXTURE_2_0_0: &str = env!("DROVER_WASM_FIXTURE_2_0_0");
    /// The fixture built as `fixture-irreversible`, effect class irreversible.
    pub const FIXTURE_IRREVERSIBLE: &str = env!("DROVER_WASM_FIXTURE_IRREVERSIBLE");
    /// A plugin whose `describe` is incomplete.
    pub const INCOMPLETE: &str = env!("DROVER_WASM_INCOMPLETE");
    /// The BizTalk plugin pack: prerequisites-check, join-group, restore-configuration,
    /// create-host-instances, disable-services, deploy-assemblies.
    pub const BIZTALK: [&str; 6] = [
        env!("DROVER_WASM_PREREQUISITES_CHECK"),
        env!("DROVER_WASM_JOIN_GROUP"),
        RESTORE_CONFIGURATION,
        env!("DROVER_WASM_CREATE_HOST_INSTANCES"),
        env!("DROVER_WASM_DISABLE_SERVICES"),
        env!("DROVER_WASM_DEPLOY_ASSEMBLIES"),
    ];
    /// `restore-configuration`: Standard Edition's RestoreConfig.vbe (seed A).
    pub const RESTORE_CONFIGURATION: &str = env!("DROVER_WASM_RESTORE_CONFIGURATION");
    /// The failover's database references and SSO (issue 18, P2): bts-update-database
    /// (irreversible: UpdateDatabase.vbs), bts-update-registry (idempotent: UpdateRegistry.vbs)
    /// and sso-secret (idempotent: the DR master secret server).
    pub const FAILOVER_DBREFS: [&str; 3] = [
        env!("DROVER_WASM_BTS_UPDATE_DATABASE"),
        env!("DROVER_WASM_BTS_UPDATE_REGISTRY"),
        env!("DROVER_WASM_SSO_SECRET"),
    ];
    /// The failover's log-shipping plugins (issue 18, P1): logshipping-measure (read-only),
    /// logshipping-catch-up (idempotent), logshipping-restore-to-mark and logshipping-clean
    /// (irreversible).
    pub const LOGSHIPPING: [&str; 4] = [
        env!("DROVER_WASM_LOGSHIPPING_MEASURE"),
        env!("DROVER_WASM_LOGSHIPPING_CATCH_UP"),
        env!("DROVER_WASM_LOGSHIPPING_RESTORE_TO_MARK"),
        env!("DROVER_WASM_LOGSHIPPING_CLEAN"),
    ];
    /// The failover's re-protect (issue 18, F14): logshipping-reprotect (idempotent: the
    /// recovered SQL Server's backup job at a new location, a full backup forced, the BizTalk
    /// jobs enabled).
    pub const LOGSHIPPING_REPROTECT: &str = env!("DROVER_WASM_LOGSHIPPING_REPROTECT");
    /// The failover's processing plugins (issue 18, P3): bts-receive-locations (reversible:
    /// F10 disable, F12 enable) and bts-start-hosts (idempotent: F11).
    pub const FAILOVER_PROCESSING: [&str; 2] =
        [env!("DROVER_WASM_BTS_RECEIVE_LOCATIONS"), env!("DROVER_WASM_BTS_START_HOSTS")];
    /// The failover's F9 (issue 18): restart-services (idempotent: winmgmt and the rule engine
    /// update service restarted on a DR runtime server).
    pub const RESTART_SERVICES: &str = env!("DROVER_WASM_RESTART_SERVICES");
    /// The failover's F4 (issue 18): sql-logins (idempotent: the missing Windows logins of the
    /// recovered databases' users created on the DR SQL Server, the orphans reported).
    pub const SQL_LOGINS: &str = env!("DROVER_WASM_SQL_LOGINS");
    /// The failover's quiescing of a production that still runs (issue 18, F1):
    /// bts-quiesce-source (idempotent).
    pub const FAILOVER_QUIESCE: &str = env!("DROVER_WASM_BTS_QUIESCE_SOURCE");
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `drover` binary of this build, fresh: the first call in a test process builds it (see
/// [`build_binaries`]), so `cargo test -p drover-tests` never drives a binary older than the code.
pub fn drover_bin() -> PathBuf {
    built_bin("drover")
}

/// The `drover-lab` binary of this build (the BizTalk lab), built like [`drover_bin`].
pub fn lab_bin() -> PathBuf {
    built_bin("drover-lab")
}

fn built_bin(name: &str) -> PathBuf {
    let bin = profile_dir().join(name);
    build_binaries();
    assert!(bin.exists(), "{} does not exist after `cargo build`", bin.display());
    bin
}

/// `target/<profile>`, where this test executable's profile puts binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

/// Builds `drover` (package `drover-cli`) and `drover-lab` with this test executable's profile and
/// target directory, once per process. Cargo builds a package's binaries only for that package's
/// own tests, and these live in other packages; cargo has released its build lock by the time
/// tests run, and a build with nothing to do takes a moment.
fn build_binaries() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let profile_dir = profile_dir();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(other) => other.to_string(),
            None => panic!("{} has no profile name", profile_dir.display()),
        };
        let target_dir = profile_dir.parent().expect("target/ above target/<profile>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--profile", &profile, "--target-dir"])
            .arg(target_dir)
            .args(["-p", "drover-cli", "--bin", "drover", "-p", "drover-lab", "--bin", "drover-lab"])
            .stdout(Stdio::null())
            .status()
            .expect("run cargo build for the drover and drover-lab binaries");
        assert!(status.success(), "building drover and drover-lab failed (see the cargo output above)");
    });
}

/// A throwaway Drover home: plugin directory, cache and (later) databases live in it.
///
/// With `DROVER_TEST_JOURNAL=postgres` in the environment, [`Sandbox::new`] gives the home a
/// PostgreSQL journal instead of its SQLite file: a cluster of its own
/// ([`postgres::PgCluster`]), stopped when the sandbox drops. `cargo xtask test` runs the
/// durability tests a second time so (`JOURNAL_TESTS` in xtask); tests that read the SQLite file
/// directly are not among them.
pub struct Sandbox {
    /// The temporary directory; removed on drop.
    pub home: tempfile::TempDir,
    /// The journal, when not the home's `drover.db` (passed as `DROVER_DB`): a file, or a
    /// PostgreSQL URL.
    pub db: Option<PathBuf>,
    /// The PostgreSQL cluster holding the journal, under `DROVER_TEST_JOURNAL=postgres`.
    _cluster: Option<postgres::PgCluster>,
}

/// Which journal [`Sandbox::new`] gives a home: `DROVER_TEST_JOURNAL`, `sqlite` (the default) or
/// `postgres`.
pub fn test_journal() -> &'static str {
    match std::env::var("DROVER_TEST_JOURNAL").as_deref() {
        Err(_) | Ok("" | "sqlite") => "sqlite",
        Ok("postgres") => "postgres",
        Ok(other) => panic!("DROVER_TEST_JOURNAL={other}: expected sqlite or postgres"),
    }
}

/// A run held inside its one step until the test releases it: see [`Sandbox::start_held_run`].
pub struct HeldRun {
    /// The `drover run` process.
    pub child: std::process::Child,
    /// The file the step appends "<step key> <attempt>" to, once released.
    pub effects: PathBuf,
    /// The file whose creation releases the step.
    pub release: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh, empty home.
    pub fn new() -> Self {
        let home = tempfile::tempdir().expect("create a temporary directory");
        if test_journal() == "postgres" {
            let cluster = postgres::PgCluster::start();
            return Sandbox { home, db: Some(cluster.url().into()), _cluster: Some(cluster) };
        }
        Sandbox { home, db: None, _cluster: None }
    }

    /// A fresh home whose journal is `db`.
    pub fn with_db(db: PathBuf) -> Self {
        Sandbox {
            home: tempfile::tempdir().expect("create a temporary directory"),
            db: Some(db),
            _cluster: None,
        }
    }

    /// The journal's path (or PostgreSQL URL).
    pub fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| self.path().join("drover.db"))
    }

    /// Everything the journal holds, as text to search: the SQLite file's bytes, or a
    /// PostgreSQL journal's data as `pg_dump --data-only` writes it.
    pub fn journal_dump(&self) -> String {
        let db = self.db_path();
        let url = db.to_string_lossy();
        if url.starts_with("postgres://") {
            let out = Command::new("pg_dump")
                .args(["--data-only", "--dbname", &url])
                .output()
                .expect("run pg_dump (Debian package postgresql-client)");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        String::from_utf8_lossy(&std::fs::read(&db).expect("read the journal")).into_owned()
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// A `drover` command with `DROVER_HOME` set to this sandbox and no stray configuration.
    pub fn drover(&self) -> Command {
        let mut cmd = Command::new(drover_bin());
        cmd.env("DROVER_HOME", self.path())
            .env_remove("DROVER_PLUGIN_DIR")
            .env_remove("DROVER_CACHE_DIR")
            .env_remove("DROVER_DB")
            .env_remove("DROVER_SECRETS_FILE")
            .env_remove("DROVER_LOG")
            .env("NO_COLOR", "1")
            .current_dir(self.path());
        if let Some(db) = &self.db {
            cmd.env("DROVER_DB", db);
        }
        cmd
    }

    /// Writes a file into the sandbox and returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write a sandbox file");
        path.to_str().expect("utf-8 path").to_string()
    }

    /// Installs plugin files, failing the test if drover refuses.
    pub fn install(&self, files: &[&str]) {
        let mut args = vec!["plugin", "install"];
        args.extend_from_slice(files);
        let out = self.run(&args);
        assert!(out.status.success(), "install failed: {}", stderr(&out));
    }

    /// The id of the newest run.
    pub fn last_run(&self) -> String {
        let out = self.run(&["runs", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs --json");
        runs[0]["run"].as_str().expect("a run").to_string()
    }

    /// `drover status RUN --json`.
    pub fn status(&self, run: &str) -> serde_json::Value {
        let out = self.run(&["status", run, "--json"]);
        assert!(out.status.success(), "status failed: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("status --json")
    }

    /// Starts `drover run` of a one-instance step that appends to `effects` once the test creates
    /// `release` (so the run stays driven until then, with no timing window to miss). The fixture
    /// plugin must be installed.
    pub fn start_held_run(&self) -> HeldRun {
        let effects = self.path().join("effects.log");
        let release = self.path().join("release");
        let wf = self.write(
            "held.toml",
            &format!(
                r#"
name = "held"
version = "1.0.0"
[[steps]]
id = "held"
plugin = "fixture-plugin-for-tests"
grants = {{ programs = ["sh"] }}
for-each = "all"
with = {{ behave = "effect", file = "{}", until = "{}" }}
"#,
                effects.display(),
                release.display()
            ),
        );
        let inv = self
            .write("inventory.toml", "[servers.here]\ntransport = \"local\"\n[groups]\nall = [\"here\"]\n");
        let first = self
            .drover()
            .args(["run", &wf, "--inventory", &inv])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        HeldRun { child: first, effects, release }
    }

    /// Waits until `first` holds the lease of the sandbox's newest run, and returns that run; fails
    /// with its output if it ends first.
    pub fn wait_until_driven(&self, first: &mut std::process::Child) -> String {
        let started = Instant::now();
        loop {
            let out = self.run(&["runs", "--json"]);
            if let Some(run) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v[0]["run"].as_str().map(String::from))
                && self.status(&run)["driven_by"].is_object()
            {
                return run;
            }
            if let Some(exit) = first.try_wait().unwrap() {
                let mut out = String::new();
                if let Some(mut pipe) = first.stdout.take() {
                    let _ = pipe.read_to_string(&mut out);
                }
                if let Some(mut pipe) = first.stderr.take() {
                    let _ = pipe.read_to_string(&mut out);
                }
                panic!("the first process ended ({exit}) before it was seen driving: {out}");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the first process never took the run");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `drover args…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.drover().args(args).output().expect("run drover")
    }

    /// Runs `drover args…` with `input` on its stdin and returns its output.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .drover()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start drover");
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write drover's stdin");
        drop(stdin);
        child.wait_with_output().expect("drover ends")
    }
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
