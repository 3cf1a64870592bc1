//! The BizTalk lab for end-to-end tests: a sandbox with the BizTalk plugin pack installed, a
//! fresh lab (`drover-lab init`) with the inventory it writes, and `drover` commands carrying
//! the secrets the workflows of `workflows/` need.

use std::process::{Command, Output};

use serde_json::Value;

use crate::{Sandbox, lab_bin, stderr, wasm, workspace_root};

/// A sandbox, a lab and one workflow of `workflows/` to run against it.
pub struct LabRun {
    /// The Drover home.
    pub sandbox: Sandbox,
    /// The lab's state file.
    pub state: String,
    /// The inventory `drover-lab init` wrote for it.
    pub inventory: String,
    /// The workflow file.
    pub workflow: String,
}

impl LabRun {
    /// A fresh lab (`init_args` go to `drover-lab init`, such as `--edition standard`) and
    /// `workflows/<workflow>`.
    pub fn new(workflow: &str, init_args: &[&str]) -> LabRun {
        let sandbox = Sandbox::new();
        sandbox.install(&wasm::BIZTALK);
        let state = sandbox.path().join("lab.json").display().to_string();
        let inventory = sandbox.path().join("lab-inventory.toml").display().to_string();
        let out = Command::new(lab_bin())
            .args(["init", "--state", &state, "--inventory", &inventory])
            .args(init_args)
            .output()
            .expect("run drover-lab");
        assert!(out.status.success(), "drover-lab init: {}", stderr(&out));
        let workflow = workspace_root().join("workflows").join(workflow).display().to_string();
        LabRun { sandbox, state, inventory, workflow }
    }

    /// `drover args…` with the secrets the workflows need.
    pub fn drover(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.drover();
        cmd.args(args)
            .env("DROVER_SECRET_ENTSSO_PASSWORD", "Sso-Pa55-4-DR")
            .env("DROVER_SECRET_RULES_ENGINE_PASSWORD", "Bre-Pa55-4-DR")
            .env("DROVER_SECRET_BTS_HOST_PASSWORD", "Bts-Pa55-4-DR");
        cmd
    }

    /// `drover --quiet run <workflow> --inventory <lab inventory> [--param p]…`.
    pub fn run(&self, params: &[&str]) -> Output {
        let mut args = vec!["--quiet", "run", &self.workflow, "--inventory", &self.inventory];
        for param in params {
            args.extend(["--param", param]);
        }
        self.drover(&args).output().expect("drover run")
    }

    /// `drover --json plan …`, failing the test if the plan changed the lab's state file.
    pub fn plan(&self, params: &[&str], save: Option<&str>) -> Value {
        let before = std::fs::read(&self.state).expect("the lab's state");
        let mut args = vec!["--json", "plan", &self.workflow, "--inventory", &self.inventory];
        for param in params {
            args.extend(["--param", param]);
        }
        if let Some(file) = save {
            args.extend(["--save", file]);
        }
        let out = self.drover(&args).output().expect("drover plan");
        assert!(out.status.success(), "drover plan: {}", stderr(&out));
        assert_eq!(std::fs::read(&self.state).expect("the lab's state"), before, "the plan changed the lab");
        serde_json::from_slice(&out.stdout).expect("plan JSON")
    }

    /// `drover-lab <command> --state <state> args…`.
    pub fn lab(&self, args: &[&str]) -> Output {
        let mut full = vec![args[0], "--state", &self.state];
        full.extend(&args[1..]);
        Command::new(lab_bin()).args(&full).output().expect("run drover-lab")
    }

    /// The lab's state (`drover-lab show --json`).
    pub fn state(&self) -> Value {
        let out = self.lab(&["show", "--json"]);
        assert!(out.status.success(), "drover-lab show: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("lab state JSON")
    }
}

/// `(key, verdict)` of every entry of a plan.
pub fn verdicts(plan: &Value) -> Vec<(String, String)> {
    plan["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["key"].as_str().unwrap_or_default().to_string(),
                        e["verdict"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
