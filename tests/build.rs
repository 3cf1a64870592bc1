//! Builds the guest plugins in `plugins/` for wasm32-wasip2 and hands their paths to the tests as
//! compile-time environment variables, so no test needs a manual pre-step. The fixture plugin is
//! also built at a few extra versions for the semver tests.

use std::path::{Path, PathBuf};
use std::process::Command;

const EXTRA_FIXTURE_VERSIONS: &[&str] = &["1.2.0", "1.2.5", "2.0.0"];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf();
    let plugins = root.join("plugins");
    let target_dir = root.join("target").join("plugins-wasm");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed={}", root.join("sdk").display());
    for entry in std::fs::read_dir(&plugins).expect("plugins/ exists") {
        let path = entry.expect("plugins/ is readable").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name != "target" && !name.starts_with('.') {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    for version in EXTRA_FIXTURE_VERSIONS {
        build(&plugins, &target_dir, &["-p", "fixture-plugin-for-tests"], Some(version));
        let copy = out_dir.join(format!("fixture-{version}.wasm"));
        std::fs::copy(artifact(&target_dir, "fixture_plugin_for_tests"), &copy).expect("copy the fixture");
        println!("cargo:rustc-env=DROVER_WASM_FIXTURE_{}={}", version.replace('.', "_"), copy.display());
    }
    build_with(
        &plugins,
        &target_dir,
        &["-p", "fixture-plugin-for-tests"],
        &[("FIXTURE_NAME", "fixture-irreversible"), ("FIXTURE_EFFECT", "irreversible")],
    );
    let copy = out_dir.join("fixture-irreversible.wasm");
    std::fs::copy(artifact(&target_dir, "fixture_plugin_for_tests"), &copy).expect("copy the fixture");
    println!("cargo:rustc-env=DROVER_WASM_FIXTURE_IRREVERSIBLE={}", copy.display());
    build(&plugins, &target_dir, &["--workspace"], None);
    for (var, file) in [
        ("NOOP", "noop"),
        ("FIXTURE", "fixture_plugin_for_tests"),
        ("INCOMPLETE", "fixture_incomplete_describe"),
        ("PREREQUISITES_CHECK", "prerequisites_check"),
        ("JOIN_GROUP", "join_group"),
        ("RESTORE_CONFIGURATION", "restore_configuration"),
        ("CREATE_HOST_INSTANCES", "create_host_instances"),
        ("DISABLE_SERVICES", "disable_services"),
        ("DEPLOY_ASSEMBLIES", "deploy_assemblies"),
        // Failover, database references and SSO (issue 18, P2)
        ("BTS_UPDATE_DATABASE", "bts_update_database"),
        ("BTS_UPDATE_REGISTRY", "bts_update_registry"),
        ("SSO_SECRET", "sso_secret"),
        // Failover, SQL side (issue 18, P1)
        ("LOGSHIPPING_MEASURE", "logshipping_measure"),
        ("LOGSHIPPING_CATCH_UP", "logshipping_catch_up"),
        ("LOGSHIPPING_RESTORE_TO_MARK", "logshipping_restore_to_mark"),
        ("LOGSHIPPING_CLEAN", "logshipping_clean"),
        // Failover, re-protect (issue 18, F14)
        ("LOGSHIPPING_REPROTECT", "logshipping_reprotect"),
        // Failover, processing (issue 18, P3)
        ("BTS_RECEIVE_LOCATIONS", "bts_receive_locations"),
        ("BTS_START_HOSTS", "bts_start_hosts"),
        // Failover, WMI and the rule engine restarted (issue 18, F9)
        ("RESTART_SERVICES", "restart_services"),
        // Failover, logins on the DR SQL Server (issue 18, F4)
        ("SQL_LOGINS", "sql_logins"),
        // Failover, quiescing a production that still runs (issue 18, F1)
        ("BTS_QUIESCE_SOURCE", "bts_quiesce_source"),
    ] {
        println!("cargo:rustc-env=DROVER_WASM_{var}={}", artifact(&target_dir, file).display());
    }
}

fn artifact(target_dir: &Path, crate_file: &str) -> PathBuf {
    target_dir.join("wasm32-wasip2").join("release").join(format!("{crate_file}.wasm"))
}

fn build(plugins: &Path, target_dir: &Path, select: &[&str], fixture_version: Option<&str>) {
    let env: Vec<(&str, &str)> = fixture_version.map(|v| ("FIXTURE_VERSION", v)).into_iter().collect();
    build_with(plugins, target_dir, select, &env);
}

/// Builds with the given fixture variables set and every other fixture variable unset.
fn build_with(plugins: &Path, target_dir: &Path, select: &[&str], env: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(target_dir)
        .args(select)
        // The outer build's flags are for the host, not for wasm guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    for var in ["FIXTURE_VERSION", "FIXTURE_NAME", "FIXTURE_EFFECT"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let status = cmd.status().expect("run cargo for plugins/");
    if !status.success() {
        panic!(
            "building plugins/ for wasm32-wasip2 failed (see above). If the target is missing, \
             run `rustup target add wasm32-wasip2` or use `cargo xtask test`, which installs it."
        );
    }
}
