//! Helpers for Drover's end-to-end tests: paths of the plugin binaries built by `build.rs`, and
//! a way to run the real `drover` binary in a throwaway home directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    /// A plugin whose `describe` is incomplete.
    pub const INCOMPLETE: &str = env!("DROVER_WASM_INCOMPLETE");
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `drover` binary of this build. `cargo test --workspace` (and `cargo xtask test`) build it
/// before any test runs; a missing binary fails the test with the command that builds it.
pub fn drover_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/drover
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("drover");
    assert!(
        bin.exists(),
        "{} does not exist: run the tests with `cargo test --workspace` or `cargo xtask test`, which build it",
        bin.display()
    );
    bin
}

/// A throwaway Drover home: plugin directory, cache and (later) databases live in it.
pub struct Sandbox {
    /// The temporary directory; removed on drop.
    pub home: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh, empty home.
    pub fn new() -> Self {
        Sandbox { home: tempfile::tempdir().expect("create a temporary directory") }
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
            .env("NO_COLOR", "1")
            .current_dir(self.path());
        cmd
    }

    /// Runs `drover args…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.drover().args(args).output().expect("run drover")
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
