//! The BizTalk lab for end-to-end tests: a sandbox with the BizTalk plugin pack installed, a
//! fresh lab (`drover-lab init`) with the inventory it writes, and `drover` commands carrying
//! the secrets the workflows of `workflows/` need.
//!
//! Drover starts target commands with a cleared environment, so the lab's knobs
//! (`DROVER_LAB_NOW`, `DROVER_LAB_JOIN_DELAY_MS`), which tests set on the `drover` command, cannot
//! reach `drover-lab exec` through it. The inventory's command prefixes therefore start with a
//! small script, [`KNOBS_SCRIPT`], that copies exactly those from the environment of its parent,
//! the `drover` process, and then runs the rest of the prefix.

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
        let lab = LabRun { sandbox, state, inventory, workflow };
        let knobs = lab.script("lab-knobs.sh", KNOBS_SCRIPT);
        lab.wrap_exec(&[&knobs]);
        lab
    }

    /// Puts `words` before every command prefix of the lab's inventory (a wrapper that records or
    /// slows down what Drover runs, then runs the rest). Call it before the run starts: a run pins
    /// its inventory.
    pub fn wrap_exec(&self, words: &[&str]) {
        let text = std::fs::read_to_string(&self.inventory).expect("the lab's inventory");
        let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
        let wrapped = text.replace("command = [", &format!("command = [{}, ", quoted.join(", ")));
        assert_ne!(wrapped, text, "the lab's inventory has command prefixes");
        std::fs::write(&self.inventory, wrapped).expect("rewrite the lab's inventory");
    }

    /// Writes an executable shell script into the sandbox; returns its path.
    pub fn script(&self, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.sandbox.write(name, body);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod a script");
        path
    }

    /// `drover args…` with the secrets the workflows need ([`SECRETS`]).
    pub fn drover(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.drover();
        cmd.args(args);
        for (name, value) in SECRETS {
            cmd.env(name, value);
        }
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

/// The secrets `drover` gets for the lab's workflows: environment variable and value.
pub const SECRETS: [(&str, &str); 3] = [
    ("DROVER_SECRET_ENTSSO_PASSWORD", "Sso-Pa55-4-DR"),
    ("DROVER_SECRET_RULES_ENGINE_PASSWORD", "Bre-Pa55-4-DR"),
    ("DROVER_SECRET_BTS_HOST_PASSWORD", "Bts-Pa55-4-DR"),
];

/// The script every lab command prefix starts with: copies the lab's knobs (`DROVER_LAB_*`) from
/// the environment its parent, the `drover` process, was started with, then runs its arguments.
pub const KNOBS_SCRIPT: &str = r#"#!/bin/sh
set -f
IFS='
'
for knob in $(tr '\0' '\n' < "/proc/$PPID/environ" 2>/dev/null | grep '^DROVER_LAB_'); do
    export "$knob"
done
unset IFS
exec "$@"
"#;

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
