//! Drover's automation, run as `cargo xtask <command>` from anywhere in the repository.
//!
//! Every command installs what it needs (the `wasm32-wasip2` target through rustup, the OpenSSH
//! and PostgreSQL servers, Chromium and chromedriver through apt) or says exactly what is missing.
//! Nothing here is needed at run time; it only drives cargo.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

const WASM_TARGET: &str = "wasm32-wasip2";

/// The OpenSSH server the ssh transport tests start.
const SSHD: &str = "/usr/sbin/sshd";

/// Debian's Chromium (package `chromium`) and its chromedriver (package `chromium-driver`): the
/// browser tests drive a headless Chromium through chromedriver (`tests/src/browser.rs`).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where Debian installs PostgreSQL's server, one folder per major version (`<version>/bin/initdb`).
const POSTGRES_SERVER_ROOT: &str = "/usr/lib/postgresql";

/// Debian's settings for the clusters its packages create; `create_main_cluster = false` there
/// stops the package from creating and starting a system cluster on 127.0.0.1:5432.
const CREATECLUSTER_CONF: &str = "/etc/postgresql-common/createcluster.conf";

/// Drover's build, test and demo automation.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build every plugin in plugins/ as a wasm32-wasip2 component (release), into
    /// target/plugins-wasm/wasm32-wasip2/release/.
    BuildPlugins,
    /// Install what the tests need and nothing else: the wasm32-wasip2 target, openssh-server,
    /// PostgreSQL's server (no system cluster), Chromium and chromedriver, and the local account of
    /// the Windows logon tests (`test` does this first).
    Setup,
    /// Run the whole test suite: the workspace (unit, integration, end-to-end) and the plugins'
    /// native unit tests.
    Test,
    /// The demo: build drover and the plugins, install them in a throwaway home, run them.
    Demo,
    /// The demo, then the disaster: production fails (`drover-lab disaster`) and
    /// `workflows/dr-failover.toml` activates the DR site, its three gates approved as an
    /// operator would, and the report states the data-loss window and the phases.
    DemoFailover,
    /// The demo, then a drill while production keeps running: `workflows/dr-failover.toml` with
    /// `mode=drill` activates the DR site on its recovered copy, its four gates approved, cleans
    /// up, and the next backup re-seeds the DR SQL Server; production is never touched.
    DemoDrill,
    /// The demo's failover in a throwaway home, stopped at its point of no return, and a
    /// 1280-pixel-wide headless Chromium screenshot of its run page in `drover serve`:
    /// docs/web-view.png.
    Screenshot,
    /// Run the benchmarks (release build): a table on stdout, every figure with the machine in
    /// target/bench/results.json.
    Bench,
    /// Crash torture on the lab: SIGKILL `dr-site-preparation` at seeded random instants, resume
    /// each time, compare with an uninterrupted run (the suite runs 20 points).
    Torture {
        /// Replays a run; a new seed is drawn (and printed) when absent.
        #[arg(long)]
        seed: Option<u64>,
        /// How many kills (or stops).
        #[arg(long, default_value_t = 200)]
        points: u32,
        /// `kill`: SIGKILL the driver and resume; `stop`: SIGSTOP it, let a resume take the run
        /// over once its lease expired, then wake it (SIGCONT) while the resume drives.
        #[arg(long, default_value = "kill", value_parser = ["kill", "stop"])]
        mode: String,
    },
    /// Fuzz each target of fuzz/ in turn (cargo-fuzz on a nightly toolchain, both installed
    /// when missing); new inputs go to target/fuzz-corpus/, crashes to fuzz/artifacts/.
    Fuzz {
        /// Only this target (workflow, inventory, plugin_outcome).
        #[arg(long)]
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 600)]
        seconds: u32,
    },
    /// Clippy with warnings as errors: the workspace (all targets) and the plugins' (natively, as
    /// their unit tests build).
    Lint,
    /// What CI runs: formatting check, `lint`, then `test`.
    Ci,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = root();
    match cli.command {
        Task::BuildPlugins => build_plugins(&root).map(|_| ()),
        Task::Setup => setup(),
        Task::Test => test(&root),
        Task::Demo => demo(&root, None),
        Task::DemoFailover => demo(&root, Some(Activation::Failover)),
        Task::DemoDrill => demo(&root, Some(Activation::Drill)),
        Task::Screenshot => screenshot(&root),
        Task::Bench => bench(&root),
        Task::Torture { seed, points, mode } => torture(&root, seed, points, &mode),
        Task::Fuzz { target, seconds } => fuzz(&root, target, seconds),
        Task::Lint => lint(&root),
        Task::Ci => {
            fmt_check(&root)?;
            lint(&root)?;
            test(&root)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_path_buf()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", shown(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", shown(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", shown(cmd));
    }
    Ok(())
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to install the wasm32-wasip2 target; install Rust through rustup (https://rustup.rs)")?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} target through rustup");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET])).with_context(|| {
        format!(
            "could not install the {WASM_TARGET} target; run `rustup target add {WASM_TARGET}` and try again"
        )
    })
}

/// Installs openssh-server through apt when `/usr/sbin/sshd` is missing: the ssh transport tests
/// start their own sshd on 127.0.0.1. Nothing here starts the system service.
fn ensure_sshd() -> anyhow::Result<()> {
    if Path::new(SSHD).exists() {
        return Ok(());
    }
    if !is_root()? {
        bail!(
            "{SSHD} is missing and only root can install it: install the Debian package openssh-server (`sudo apt-get install openssh-server`) and try again"
        );
    }
    eprintln!("installing openssh-server through apt-get (the ssh transport tests need {SSHD})");
    apt_install(&["openssh-server"])
}

/// Installs Debian's `chromium` and `chromium-driver` through apt when [`CHROMIUM`] or
/// [`CHROMEDRIVER`] is missing: the browser tests start chromedriver on 127.0.0.1, which starts a
/// headless Chromium. No browser is downloaded from anywhere else.
fn ensure_chromium() -> anyhow::Result<()> {
    let missing: Vec<&str> =
        [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let missing = missing.join(" and ");
    if !is_root()? {
        bail!(
            "{missing} is missing and only root can install it: install the Debian packages chromium and chromium-driver (`sudo apt-get install chromium chromium-driver`) and try again"
        );
    }
    eprintln!("installing chromium and chromium-driver through apt-get (the browser tests need {missing})");
    apt_install(&["chromium", "chromium-driver"])?;
    if let Some(still) = [CHROMIUM, CHROMEDRIVER].into_iter().find(|p| !Path::new(p).exists()) {
        bail!("apt-get installed chromium and chromium-driver but there is no {still}");
    }
    Ok(())
}

/// `apt-get update`, then installs the Debian `packages` without questions.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    run(Command::new("apt-get").arg("update"))
        .and_then(|()| {
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y"])
                .args(packages))
        })
        .with_context(|| {
            let packages = packages.join(" ");
            format!("could not install {packages}; run `apt-get install {packages}` and try again")
        })
}

/// Whether xtask runs as root, which installing packages and creating accounts needs.
fn is_root() -> anyhow::Result<bool> {
    let uid = Command::new("id").arg("-u").output().context("cannot run `id -u`")?;
    Ok(String::from_utf8_lossy(&uid.stdout).trim() == "0")
}

/// Installs PostgreSQL's server through apt (Debian package `postgresql`) when no
/// `/usr/lib/postgresql/<version>/bin/initdb` exists: the PostgreSQL journal's tests start their
/// own throwaway cluster on a Unix socket (`tests/src/postgres.rs`). Before installing, it puts
/// `create_main_cluster = false` in [`CREATECLUSTER_CONF`] (unless that file already sets it; the
/// package keeps a file it finds) so the package neither creates nor starts a system cluster.
fn ensure_postgres() -> anyhow::Result<()> {
    if postgres_server_installed() {
        return Ok(());
    }
    if !is_root()? {
        bail!(
            "PostgreSQL's server is missing and only root can install it: run `sudo mkdir -p /etc/postgresql-common && \
             echo 'create_main_cluster = false' | sudo tee -a {CREATECLUSTER_CONF} && sudo apt-get install postgresql` \
             (the first two commands keep the package from starting a system cluster) and try again"
        );
    }
    // An existing file (postgresql-common installed alone) gets the line only when it does not
    // set create_main_cluster itself.
    let conf = Path::new(CREATECLUSTER_CONF);
    let current = match std::fs::read_to_string(conf) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {CREATECLUSTER_CONF}")),
    };
    if !current.lines().any(|l| l.trim_start().starts_with("create_main_cluster")) {
        std::fs::create_dir_all(conf.parent().expect("a folder"))
            .context("cannot create /etc/postgresql-common")?;
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(
            "# Added by `cargo xtask`: Drover's tests start their own PostgreSQL clusters, so the \
             package\n# creates and starts no system cluster.\ncreate_main_cluster = false\n",
        );
        std::fs::write(conf, text).with_context(|| format!("cannot write {CREATECLUSTER_CONF}"))?;
    }
    eprintln!("installing postgresql through apt-get (the PostgreSQL journal tests need its server)");
    apt_install(&["postgresql"])?;
    if !postgres_server_installed() {
        bail!("apt-get installed postgresql but there is no {POSTGRES_SERVER_ROOT}/<version>/bin/initdb");
    }
    Ok(())
}

/// Whether some major version of PostgreSQL's server is installed: `<version>/bin/initdb` under
/// [`POSTGRES_SERVER_ROOT`].
fn postgres_server_installed() -> bool {
    std::fs::read_dir(POSTGRES_SERVER_ROOT)
        .map(|entries| entries.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false)
}

/// The local account the Windows-over-SSH tests log on to with a password, as an administrator
/// logs on to a Windows server (`tests/src/windows_lab.rs`): sshd checks passwords against the
/// system's accounts, so the tests need one whose password they know.
const WINDOWS_LOGON_USER: &str = "drover-win";
/// Its password, readable by root only; the tests read it from here.
const WINDOWS_LOGON_PASSWORD: &str = "/var/lib/drover-tests/windows-logon.password";

/// Creates [`WINDOWS_LOGON_USER`] (a system account with a home folder) with a random password kept
/// in [`WINDOWS_LOGON_PASSWORD`] when either is missing. The account is only ever reached through
/// the tests' own sshd on 127.0.0.1.
fn ensure_windows_logon() -> anyhow::Result<()> {
    let exists = Command::new("id").arg(WINDOWS_LOGON_USER).output().is_ok_and(|o| o.status.success());
    if exists && Path::new(WINDOWS_LOGON_PASSWORD).exists() && logon_home().is_some_and(|h| h.is_dir()) {
        return Ok(());
    }
    if !is_root()? {
        bail!(
            "the Windows logon tests need the local account {WINDOWS_LOGON_USER} with its password in \
             {WINDOWS_LOGON_PASSWORD}, and only root can create them: run `cargo xtask test` as root"
        );
    }
    if !exists {
        eprintln!("creating the local account {WINDOWS_LOGON_USER} for the Windows logon tests");
        run(Command::new("useradd").args([
            "--system",
            "--create-home",
            "--shell",
            "/bin/sh",
            "--comment",
            "Drover tests, password logon of the Windows lab",
            WINDOWS_LOGON_USER,
        ]))
        .context("could not create the account with useradd")?;
    }
    // sshd says so on the session's stderr when the home folder is missing.
    let home = logon_home().context("the account has no home folder in the passwd database")?;
    if !home.is_dir() {
        std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
        run(Command::new("chown").arg(format!("{WINDOWS_LOGON_USER}:")).arg(&home))?;
    }
    if exists && Path::new(WINDOWS_LOGON_PASSWORD).exists() {
        return Ok(());
    }
    let mut random = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("cannot read /dev/urandom")?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot run chpasswd")?;
    {
        let mut stdin = chpasswd.stdin.take().context("chpasswd's input")?;
        writeln!(stdin, "{WINDOWS_LOGON_USER}:{password}").context("cannot feed chpasswd")?;
    }
    if !chpasswd.wait().context("waiting for chpasswd")?.success() {
        bail!("chpasswd could not set the password of {WINDOWS_LOGON_USER}");
    }
    let file = Path::new(WINDOWS_LOGON_PASSWORD);
    std::fs::create_dir_all(file.parent().expect("a folder"))
        .context("cannot create /var/lib/drover-tests")?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot write {WINDOWS_LOGON_PASSWORD}"))?;
    out.write_all(password.as_bytes()).with_context(|| format!("cannot write {WINDOWS_LOGON_PASSWORD}"))
}

/// The home folder of [`WINDOWS_LOGON_USER`], from the passwd database.
fn logon_home() -> Option<PathBuf> {
    let out = Command::new("getent").args(["passwd", WINDOWS_LOGON_USER]).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim().split(':').nth(5).filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Builds plugins/ and returns the directory holding the `.wasm` files.
fn build_plugins(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    // Cargo reads .cargo/config.toml from the current directory, so build from inside plugins/.
    // The target directory is the one tests/build.rs uses, so the guests are built once.
    let target_dir = root.join("target/plugins-wasm");
    run(Command::new("cargo")
        .current_dir(root.join("plugins"))
        .args(["build", "--release", "--target", WASM_TARGET, "--target-dir"])
        .arg(&target_dir))?;
    let out = target_dir.join(WASM_TARGET).join("release");
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            println!("{}", path.display());
        }
    }
    Ok(out)
}

/// Builds the `drover` and `drover-lab` binaries (debug): the end-to-end tests, the demo and the
/// torture drive them, and cargo builds another package's binaries only for its own tests.
fn build_binaries(root: &Path, locked: bool) -> anyhow::Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).arg("build");
    if locked {
        cmd.arg("--locked");
    }
    run(cmd.args(["-p", "drover-cli", "--bin", "drover", "-p", "drover-lab", "--bin", "drover-lab"]))
}

/// Installs what the tests need.
fn setup() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_sshd()?;
    ensure_postgres()?;
    ensure_chromium()?;
    ensure_windows_logon()
}

/// The end-to-end tests `cargo xtask test` runs a second time on a PostgreSQL journal
/// (`DROVER_TEST_JOURNAL=postgres`, see `drover_tests::Sandbox`): SIGKILL and resume with an
/// operator retrying an interrupted irreversible step (crash.rs), operator commands and what
/// `status` shows of them (status.rs), reports of runs with approvals, skips and failures and of
/// the lab's failover drill (report.rs), and the lab's workflows: DR-site preparation with its
/// faults and a SIGKILL during a join (biztalk.rs), the failover and the drill through their
/// approved gates (dr_failover.rs). The store's conformance suite runs on both backends in the
/// first pass, and the PostgreSQL worker tests there too.
const JOURNAL_TESTS: [&str; 5] = ["crash", "status", "report", "biztalk", "dr_failover"];

fn test(root: &Path) -> anyhow::Result<()> {
    setup()?;
    // The end-to-end tests drive the real binaries and build them on first use; building them
    // here first does it under --locked.
    build_binaries(root, true)?;
    run(Command::new("cargo").current_dir(root).args(["test", "--workspace", "--locked"]))?;
    // The durability tests again, each home's journal in a PostgreSQL cluster of its own.
    let mut again = Command::new("cargo");
    again.current_dir(root).args(["test", "--locked", "-p", "drover-tests"]);
    for test in JOURNAL_TESTS {
        again.args(["--test", test]);
    }
    run(again.env("DROVER_TEST_JOURNAL", "postgres"))?;
    // The plugins' own unit tests run natively against the SDK's fake host.
    run(Command::new("cargo").current_dir(root.join("plugins")).args(["test", "--workspace", "--locked"]))
}

fn torture(root: &Path, seed: Option<u64>, points: u32, mode: &str) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    build_binaries(root, false)?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["test", "-p", "drover-tests", "--test", "torture", "--", "--nocapture"])
        .env("DROVER_TORTURE_POINTS", points.to_string())
        .env("DROVER_TORTURE_MODE", mode);
    if let Some(seed) = seed {
        cmd.env("DROVER_TORTURE_SEED", seed.to_string());
    }
    run(&mut cmd)
}

/// The fuzz targets of fuzz/Cargo.toml.
const FUZZ_TARGETS: [&str; 3] = ["workflow", "inventory", "plugin_outcome"];

fn fuzz(root: &Path, only: Option<String>, seconds: u32) -> anyhow::Result<()> {
    let nightly = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
            .context("cargo-fuzz needs a nightly toolchain; run `rustup toolchain install nightly`")?;
    }
    if Command::new("cargo").args(["fuzz", "--version"]).output().map_or(true, |o| !o.status.success()) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
            .context("could not install cargo-fuzz; run `cargo install cargo-fuzz`")?;
    }
    let targets: Vec<&str> = match &only {
        Some(t) if FUZZ_TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("no fuzz target {t:?}; the targets are {}", FUZZ_TARGETS.join(", ")),
        None => FUZZ_TARGETS.to_vec(),
    };
    for target in targets {
        // New inputs go to a scratch corpus; the committed one (fuzz/corpus/) is only read.
        let scratch = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        run(Command::new("cargo")
            .current_dir(root)
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
            .arg(&scratch)
            .arg(root.join("fuzz/corpus").join(target))
            .args(["--", &format!("-max_total_time={seconds}"), "-max_len=8192", "-print_final_stats=1"]))?;
    }
    Ok(())
}

/// Installs clippy through rustup when it is missing (rustup's minimal profile leaves it out).
fn ensure_clippy() -> anyhow::Result<()> {
    if Command::new("cargo").args(["clippy", "--version"]).output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("installing clippy through rustup");
    run(Command::new("rustup").args(["component", "add", "clippy"]))
        .context("could not install clippy; run `rustup component add clippy` and try again")
}

fn lint(root: &Path) -> anyhow::Result<()> {
    ensure_clippy()?;
    // The workspace's clippy runs tests/build.rs, which builds the guests for wasm32-wasip2.
    ensure_wasm_target()?;
    let args = ["--all-targets", "--locked", "--", "-D", "warnings"];
    run(Command::new("cargo").current_dir(root).args(["clippy", "--workspace"]).args(args))?;
    run(Command::new("cargo").current_dir(root.join("plugins")).arg("clippy").args(args))
}

fn fmt_check(root: &Path) -> anyhow::Result<()> {
    run(Command::new("cargo").current_dir(root).args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new("cargo").current_dir(root.join("plugins")).args(["fmt", "--all", "--", "--check"]))
}

fn bench(root: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    // The benches time the release `drover` binary too (whole-process figures).
    run(Command::new("cargo").current_dir(root).args([
        "build",
        "--release",
        "-p",
        "drover-cli",
        "--bin",
        "drover",
    ]))?;
    // One database directory for the floor and every workload, emptied first.
    let out = root.join("target/bench");
    let db_dir = out.join("db");
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir).with_context(|| format!("cannot empty {}", db_dir.display()))?;
    }
    for bench in ["plugin_call", "engine", "web"] {
        run(Command::new("cargo")
            .current_dir(root)
            .args(["bench", "-p", "drover-tests", "--bench", bench])
            .env("DROVER_BENCH_DIR", &db_dir)
            .env("DROVER_BENCH_OUT", &out))?;
    }
    let read = |name: &str| -> anyhow::Result<serde_json::Value> {
        let path = out.join(name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let results = serde_json::json!({
        "machine": machine(root),
        "plugin_call": read("plugin_call.json")?,
        "engine": read("engine.json")?,
        "web": read("web.json")?,
    });
    let path = out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    println!("\nAll figures, with the machine: {}", path.display());
    Ok(())
}

/// What the figures were measured on.
fn machine(root: &Path) -> serde_json::Value {
    let output = |cmd: &mut Command| {
        cmd.output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
    };
    let field = |file: &str, key: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix(key).map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_default()
    };
    serde_json::json!({
        "cpu": field("/proc/cpuinfo", "model name"),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory": field("/proc/meminfo", "MemTotal"),
        "kernel": output(Command::new("uname").arg("-r")),
        "rustc": output(Command::new("rustc").arg("--version")),
        "commit": output(Command::new("git").current_dir(root).args(["rev-parse", "HEAD"])),
        "date": output(Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ")),
    })
}

/// The lab's password of the master secret's backup (`lab/src/activation.rs`).
const DEMO_SECRET_BACKUP_PASSWORD: &str = "Contoso-SSO-Backup-2020!";

/// When production fails in `demo-failover`: minutes after the lab's last log backup.
const DEMO_FAILED_AT: &str = "2026-11-22T10:07:30Z";

/// The failover's approval gates, in the order the run reaches them.
const FAILOVER_GATES: [&str; 3] = ["declare", "point-of-no-return", "start-processing"];

/// A drill's: the failover's, then the one before the clean-up.
const DRILL_GATES: [&str; 4] = ["declare", "point-of-no-return", "start-processing", "drill-end"];

/// When the drill's clean-up is followed by the source's next backup, which re-seeds the DR SQL
/// Server: after the lab's history and the drill.
const DEMO_RESEED_AT: &str = "2026-11-22T10:30:01Z";

/// What a demo goes on to after preparing the DR site.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Activation {
    /// Production fails; the DR site takes over.
    Failover,
    /// Production keeps running; the DR site is activated on its copy, then prepared again.
    Drill,
}

/// A demo's home: the journal, the lab's state and inventory, and `drover` run there with the
/// demo's secrets.
struct DemoHome {
    home: PathBuf,
    drover: PathBuf,
    lab: PathBuf,
    wasm_dir: PathBuf,
}

impl DemoHome {
    /// The lab's state file.
    fn state(&self) -> PathBuf {
        self.home.join("lab.json")
    }

    /// The lab's inventory.
    fn inventory(&self) -> PathBuf {
        self.home.join("lab-inventory.toml")
    }

    /// `drover args…` in this home, with the secrets the lab's workflows read.
    fn drover(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.drover);
        cmd.env("DROVER_HOME", &self.home)
            .env("DROVER_SECRET_ENTSSO_PASSWORD", "demo-Sso-Pa55")
            .env("DROVER_SECRET_RULES_ENGINE_PASSWORD", "demo-Bre-Pa55")
            .env("DROVER_SECRET_BTS_HOST_RECEIVEHOST", "demo-Bts-Pa55")
            .env("DROVER_SECRET_BTS_HOST_SENDHOST", "demo-Bts-Pa55")
            .env("DROVER_SECRET_BTS_HOST_PROCESSINGHOST", "demo-Bts-Pa55")
            .env("DROVER_SECRET_BTS_HOST_BIZTALKSERVERISOLATEDHOST", "demo-Ihost-Pa55")
            .env("DROVER_SECRET_SSO_SECRET_BACKUP_PASSWORD", DEMO_SECRET_BACKUP_PASSWORD)
            .args(args);
        cmd
    }

    /// The newest run of the journal.
    fn last_run(&self) -> anyhow::Result<String> {
        let runs = self.drover(&["runs", "--json"]).output()?;
        let runs: serde_json::Value = serde_json::from_slice(&runs.stdout)?;
        Ok(runs[0]["run"].as_str().context("the run's id")?.to_string())
    }
}

/// A path as the `&str` a command line takes.
fn utf8(p: &Path) -> anyhow::Result<String> {
    p.to_str().map(str::to_string).context("a UTF-8 path")
}

/// The first part of every demo: builds drover, the lab and the plugins, creates a fresh lab in
/// `home`, installs the BizTalk pack and prepares the DR site (`workflows/dr-site-preparation.toml`).
/// Returns the home and the preparation's run.
fn prepare_dr_site(root: &Path, home: PathBuf) -> anyhow::Result<(DemoHome, String)> {
    let wasm_dir = build_plugins(root)?;
    build_binaries(root, false)?;
    let demo = DemoHome {
        home,
        drover: root.join("target/debug/drover"),
        lab: root.join("target/debug/drover-lab"),
        wasm_dir,
    };
    let workflow = root.join("workflows/dr-site-preparation.toml");
    println!("\n== a fresh BizTalk lab: production group with two runtime servers, three DR servers");
    run(Command::new(&demo.lab).args([
        "init",
        "--state",
        &utf8(&demo.state())?,
        "--inventory",
        &utf8(&demo.inventory())?,
    ]))?;
    println!("\n== install the BizTalk plugin pack");
    let plugins: Vec<String> = [
        "prerequisites_check",
        "join_group",
        "create_host_instances",
        "disable_services",
        "deploy_assemblies",
    ]
    .iter()
    .map(|name| utf8(&demo.wasm_dir.join(format!("{name}.wasm"))))
    .collect::<anyhow::Result<_>>()?;
    let mut install = vec!["plugin", "install"];
    install.extend(plugins.iter().map(String::as_str));
    run(&mut demo.drover(&install))?;
    println!("\n== prepare the DR site: {}", workflow.display());
    run(&mut demo.drover(&["run", &utf8(&workflow)?, "--inventory", &utf8(&demo.inventory())?]))?;
    let run_id = demo.last_run()?;
    Ok((demo, run_id))
}

fn demo(root: &Path, activation: Option<Activation>) -> anyhow::Result<()> {
    // A throwaway home, kept so the operator can look around afterwards.
    let home = tempfile::Builder::new().prefix("drover-demo-").tempdir()?.keep();
    let (demo, mut run_id) = prepare_dr_site(root, home)?;
    if let Some(activation) = activation {
        run_id = demo_failover(root, &demo, activation, None)?;
    }
    println!("\n== the final status");
    run(&mut demo.drover(&["status", &run_id]))?;
    println!("\n== the lab afterwards");
    run(Command::new(&demo.lab).args(["show", "--state", &utf8(&demo.state())?]))?;
    let report = demo.home.join("report.html");
    run(&mut demo.drover(&["report", &run_id, "--format", "html", "--output", &utf8(&report)?]))?;
    println!(
        "\nThe demo's home is {0}: the journal (drover.db), the lab state (lab.json), its inventory and\n\
         the recovery report ({1}{3}). Try `DROVER_HOME={0} {2} events {run_id}`, or run {4}\n\
         again: every step reports no change.",
        demo.home.display(),
        report.display(),
        demo.drover.display(),
        if activation.is_some() {
            ": its \"Recovery objectives\" give the data-loss window and each phase"
        } else {
            ""
        },
        match activation {
            Some(Activation::Drill) => "dr-site-preparation (the drill left the DR site prepared)",
            _ => "the workflow",
        }
    );
    Ok(())
}

/// The gate `cargo xtask screenshot` stops the failover at: the page then shows the finished
/// SQL catch-up, the approved declaration and the gate the change board must pass.
const SCREENSHOT_GATE: &str = "point-of-no-return";

/// Where `cargo xtask screenshot` writes the run page.
const SCREENSHOT: &str = "docs/web-view.png";

/// `cargo xtask screenshot`: the demo's failover, in a throwaway home, run up to
/// [`SCREENSHOT_GATE`]; then `drover serve` and a 1280-pixel-wide headless Chromium screenshot
/// of the run page, written to [`SCREENSHOT`].
fn screenshot(root: &Path) -> anyhow::Result<()> {
    ensure_chromium()?;
    let home = tempfile::Builder::new().prefix("drover-screenshot-").tempdir()?;
    let (demo, _) = prepare_dr_site(root, home.path().to_path_buf())?;
    let run_id = demo_failover(root, &demo, Activation::Failover, Some(SCREENSHOT_GATE))?;
    println!("\n== the run page of {run_id}, waiting at `{SCREENSHOT_GATE}`");
    let mut serve = demo
        .drover(&["--quiet", "serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start drover serve")?;
    let shot = (|| -> anyhow::Result<()> {
        let mut banner = String::new();
        let stdout = serve.stdout.take().context("drover serve's stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut banner)?;
        let origin = banner
            .trim()
            .rsplit_once(" on ")
            .map(|(_, url)| url.trim_end_matches('/').to_string())
            .with_context(|| format!("drover serve printed {banner:?}, not where it listens"))?;
        let out = root.join(SCREENSHOT);
        let profile = tempfile::Builder::new().prefix("drover-chromium-").tempdir()?;
        run(Command::new(CHROMIUM)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", out.display()))
            .arg("--window-size=1280,1800")
            .arg(format!("{origin}/runs/{run_id}")))?;
        println!("wrote {}", out.display());
        Ok(())
    })();
    // SIGTERM: drover serve ends its event streams and exits.
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    let stopped = serve.wait().context("wait for drover serve")?;
    shot?;
    if !stopped.success() {
        bail!("drover serve ended with {stopped} on SIGTERM");
    }
    Ok(())
}

/// The activation part of `demo-failover` and `demo-drill`, on the lab `demo` prepared: the
/// disaster (a failover) or not (a drill), the failover plugins installed,
/// `workflows/dr-failover.toml` run and each gate approved then resumed, as an operator does; after
/// a drill, the source's next backup re-seeds the DR SQL Server. With `stop_at`, it stops when
/// the run waits at that gate, unapproved. Returns the run's id.
fn demo_failover(
    root: &Path,
    demo: &DemoHome,
    activation: Activation,
    stop_at: Option<&str>,
) -> anyhow::Result<String> {
    let (lab, state, inventory) = (&demo.lab, demo.state(), demo.inventory());
    let failed_at = if activation == Activation::Failover {
        println!("\n== the disaster: production's SQL Server and BizTalk servers stop answering");
        // On the lab's clock: its backup history is dated 2026-11-22, its last log set at 10:00:01.
        run(Command::new(lab)
            .args(["disaster", "--state", &utf8(&state)?])
            .env("DROVER_LAB_NOW", DEMO_FAILED_AT))?;
        let shown = Command::new(lab).args(["show", "--json", "--state", &utf8(&state)?]).output()?;
        let shown: serde_json::Value =
            serde_json::from_slice(&shown.stdout).context("drover-lab show --json")?;
        shown["log-shipping"]["disaster"]["at"].as_str().context("the disaster's time")?.to_string()
    } else {
        println!("\n== a drill: production keeps running; the failure is rehearsed as of {DEMO_FAILED_AT}");
        DEMO_FAILED_AT.to_owned()
    };
    println!("\n== install the failover plugins");
    let plugins: Vec<String> = [
        "logshipping_measure",
        "logshipping_catch_up",
        "logshipping_restore_to_mark",
        "sql_logins",
        "logshipping_reprotect",
        "bts_quiesce_source",
        "bts_update_database",
        "bts_update_registry",
        "restart_services",
        "sso_secret",
        "bts_receive_locations",
        "bts_start_hosts",
        "logshipping_clean",
    ]
    .iter()
    .map(|name| utf8(&demo.wasm_dir.join(format!("{name}.wasm"))))
    .collect::<anyhow::Result<_>>()?;
    let mut install = vec!["plugin", "install"];
    install.extend(plugins.iter().map(String::as_str));
    run(&mut demo.drover(&install))?;
    let workflow = root.join("workflows/dr-failover.toml");
    let failure = format!("failure-time={failed_at}");
    let (mode, gates) = match activation {
        Activation::Failover => {
            println!(
                "\n== fail over to the DR site: {} (production failed at {failed_at})",
                workflow.display()
            );
            ("mode=failover", &FAILOVER_GATES[..])
        }
        Activation::Drill => {
            println!("\n== drill the failover: {} with mode=drill", workflow.display());
            ("mode=drill", &DRILL_GATES[..])
        }
    };
    let mut waiting = demo.drover(&[
        "run",
        &utf8(&workflow)?,
        "--inventory",
        &utf8(&inventory)?,
        "--param",
        &failure,
        "--param",
        mode,
    ]);
    for &gate in gates {
        run_until_gate(&mut waiting)?;
        let run_id = demo.last_run()?;
        if stop_at == Some(gate) {
            println!("\n== the run waits at `{gate}`");
            return Ok(run_id);
        }
        println!("\n== the run waits at `{gate}`: an operator reads the status, then approves");
        run(&mut demo.drover(&["status", &run_id]))?;
        let comment = format!("demo: {gate} approved");
        run(&mut demo.drover(&["approve", &run_id, gate, "--comment", &comment]))?;
        waiting = demo.drover(&["resume", &run_id]);
    }
    run(&mut waiting)?;
    if activation == Activation::Drill {
        println!(
            "\n== time passes: production's next backup is a full set, which re-seeds the DR SQL Server"
        );
        run(Command::new(lab)
            .args(["backup", "--state", &utf8(&state)?])
            .env("DROVER_LAB_NOW", DEMO_RESEED_AT))?;
    }
    demo.last_run()
}

/// Runs `cmd`, which must stop at an approval gate (exit code 4, "waiting for an operator").
fn run_until_gate(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", shown(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", shown(cmd)))?;
    if status.code() != Some(4) {
        bail!("`{}` ended with {status}, not waiting at a gate (exit code 4)", shown(cmd));
    }
    Ok(())
}
