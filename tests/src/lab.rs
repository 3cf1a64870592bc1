//! The BizTalk lab for end-to-end tests: a sandbox with the BizTalk plugin pack installed, a
//! fresh lab (`drover-lab init`) with the inventory it writes, `drover` commands carrying the
//! secrets the workflows of `workflows/` need, and readers of the lab's state ([`LabGroup`]: the
//! group's members and host instances and what the lab joined and undid, in order; a server's
//! services) for assertions after a run or a compensation.
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
    /// More environment variables for every `drover` command (such as the secret of a password
    /// logon), besides [`SECRETS`].
    pub env: Vec<(String, String)>,
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
        let lab = LabRun { sandbox, state, inventory, workflow, env: Vec::new() };
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
        for (name, value) in &self.env {
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

    /// Every step instance of the newest run, from `drover status --json`.
    pub fn last_instances(&self) -> Vec<Value> {
        instances(&self.sandbox.status(&self.sandbox.last_run()))
    }

    /// The step instance `key` (such as `join[DRBTS01]`) of the newest run; the test fails naming
    /// the instances there are when it has none.
    pub fn last_instance(&self, key: &str) -> Value {
        let all = self.last_instances();
        let keys: Vec<&Value> = all.iter().map(|i| &i["key"]).collect();
        all.iter()
            .find(|i| i["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no instance {key} among {keys:?}"))
    }

    /// The lab's state (`drover-lab show --json`).
    pub fn state(&self) -> Value {
        let out = self.lab(&["show", "--json"]);
        assert!(out.status.success(), "drover-lab show: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("lab state JSON")
    }

    /// `drover-lab fault set <words…>` (such as `["access-denied", "DRBTS01",
    /// "BTSSvc$ReceiveHost"]`), failing the test if the lab refuses it. Faults live in the state
    /// file, so they hold for every later command until cleared, across resumes too.
    pub fn fault(&self, words: &[&str]) {
        let mut args = vec!["fault", "set"];
        args.extend(words);
        let out = self.lab(&args);
        assert!(out.status.success(), "drover-lab fault set {words:?}: {}", stderr(&out));
    }

    /// The group as the lab holds it now, with what the lab joined and undid, in order.
    pub fn group(&self) -> LabGroup {
        LabGroup::of(&self.state())
    }

    /// The Windows service `name` of `server` as `(start type, state)`, such as `("disabled",
    /// "stopped")`; `None` when the server has no such service.
    pub fn service(&self, server: &str, name: &str) -> Option<(String, String)> {
        service_of(&self.state(), server, name)
    }

    // Failover (issue 18, P3: shared by failover_dbrefs.rs and failover_processing.rs).

    /// `drover-lab exec DRBTS01 -- sqlcmd -S <server> … -Q <query>`, the command line of
    /// `biztalk_common::logshipping`; its stdout, the test failing if it fails.
    pub fn sqlcmd(&self, server: &str, query: &str) -> String {
        let out = self.lab(&[
            "exec", "DRBTS01", "--", "sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q",
            query,
        ]);
        assert!(out.status.success(), "sqlcmd {query}: {}{}", crate::stdout(&out), stderr(&out));
        crate::stdout(&out)
    }

    /// After `drover-lab disaster`: the DR SQL Server's databases recovered ONLINE by its Restore
    /// To Mark job (`sp_start_job`), as F3 does.
    pub fn restore_to_mark(&self) {
        let started = self.sqlcmd(
            "DRSQL01",
            "EXEC msdb.dbo.sp_start_job @job_name = N'BTS Log Shipping - Restore To Mark'",
        );
        assert!(started.contains("started successfully"), "{started}");
        let states = self.sqlcmd(
            "DRSQL01",
            "SET NOCOUNT ON; SELECT name, state_desc FROM sys.databases WHERE database_id > 4 ORDER BY name",
        );
        assert!(states.contains("BizTalkMgmtDb|ONLINE") && states.contains("SSODB|ONLINE"), "{states}");
    }

    /// A lab prepared by `workflows/dr-site-preparation.toml` (production still running), with the
    /// failover's plugins installed, `workflows/dr-failover.toml` as its workflow and the master
    /// secret backup's password ([`SSO_BACKUP_PASSWORD`]) for its SSO step (issue 18).
    pub fn prepared_for_failover() -> LabRun {
        let lab = LabRun::new("dr-site-preparation.toml", &[]);
        let out = lab.run(&[]);
        assert!(out.status.success(), "DR site preparation: {}{}", crate::stdout(&out), stderr(&out));
        lab.into_failover()
    }

    /// This lab with the failover's plugins installed, `workflows/dr-failover.toml` as its
    /// workflow and the master secret backup's password ([`SSO_BACKUP_PASSWORD`]).
    pub fn into_failover(mut self) -> LabRun {
        self.sandbox.install(&wasm::LOGSHIPPING);
        self.sandbox.install(&wasm::FAILOVER_DBREFS);
        self.sandbox.install(&wasm::FAILOVER_PROCESSING);
        self.sandbox.install(&[
            wasm::RESTART_SERVICES,
            wasm::SQL_LOGINS,
            wasm::LOGSHIPPING_REPROTECT,
            wasm::FAILOVER_QUIESCE,
        ]);
        self.workflow = workspace_root().join("workflows").join("dr-failover.toml").display().to_string();
        let (name, value) = SSO_BACKUP_PASSWORD;
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The lab's state file as it is now, to start another lab from with [`LabRun::set_state`].
    pub fn state_file(&self) -> Vec<u8> {
        std::fs::read(&self.state).expect("the lab's state file")
    }

    /// Replaces the lab's state with `file` ([`LabRun::state_file`] of another lab, such as one
    /// that `dr-site-preparation` prepared): runs start from there without running what led there
    /// again. Call it while nothing runs against the lab.
    pub fn set_state(&self, file: &[u8]) {
        std::fs::write(&self.state, file).expect("write the lab's state file");
    }

    /// `drover-lab disaster` with the lab's clock at `at` (RFC 3339): production is gone.
    pub fn disaster(&self, at: &str) {
        let out = Command::new(lab_bin())
            .args(["disaster", "--state", &self.state])
            .env("DROVER_LAB_NOW", at)
            .output()
            .expect("run drover-lab disaster");
        assert!(out.status.success(), "drover-lab disaster: {}", stderr(&out));
    }

    /// The step instances of the newest run whose attempt reported a change.
    pub fn changed_steps(&self) -> Vec<String> {
        let run = self.sandbox.last_run();
        crate::stdout(&self.sandbox.run(&["events", &run, "--ndjson"]))
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("an event"))
            .filter(|e| e["kind"] == "attempt-succeeded" && e["data"]["changed"] == true)
            .map(|e| e["step_key"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The BizTalk group of a lab state (`drover-lab show --json`), for assertions after a run or a
/// compensation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabGroup {
    /// The runtime servers in the group (`MSBTS_Server`), in the lab's order.
    pub members: Vec<String>,
    /// Every host instance (`MSBTS_HostInstance`), in the lab's order.
    pub host_instances: Vec<LabHostInstance>,
    /// Every join that took effect, in order.
    pub joins: Vec<String>,
    /// Every `Configuration.exe /U` of a joined server, in order.
    pub unjoins: Vec<String>,
    /// Every host instance uninstalled by the removal script, by name, in order.
    pub uninstalls: Vec<String>,
}

/// One host instance of a [`LabGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHostInstance {
    /// The host.
    pub host: String,
    /// The server it runs on.
    pub server: String,
    /// 1 installed … 5 not installed.
    pub configuration_state: u64,
    /// Disabled from starting.
    pub is_disabled: bool,
    /// `stopped`, `running`, ….
    pub service_state: String,
}

impl LabGroup {
    /// Reads the group out of a lab state: [`current_group`]'s record.
    pub fn of(state: &Value) -> LabGroup {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let group = current_group(state);
        let host_instances = group["host-instances"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|i| LabHostInstance {
                        host: text(&i["host"]),
                        server: text(&i["server"]),
                        configuration_state: i["configuration-state"].as_u64().unwrap_or_default(),
                        is_disabled: i["is-disabled"].as_bool().unwrap_or_default(),
                        service_state: text(&i["service-state"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        LabGroup {
            members: strings(&group["members"]),
            host_instances,
            joins: strings(&state["joins"]),
            unjoins: strings(&state["unjoins"]),
            uninstalls: strings(&state["uninstalls"]),
        }
    }

    /// The host instances on `server`, as host names.
    pub fn hosts_on(&self, server: &str) -> Vec<&str> {
        self.host_instances.iter().filter(|i| i.server == server).map(|i| i.host.as_str()).collect()
    }
}

/// Every run of `UpdateDatabase.vbs` that reached the group's database, in order, each with the
/// server it ran on and how many locations it changed (`server`, `changed`), from a lab state
/// (issue 18: it must run once per group).
pub fn update_database_runs(state: &Value) -> Vec<Value> {
    current_group(state)["activation"]["update-database-runs"].as_array().cloned().unwrap_or_default()
}

/// How many times the SQL Server Agent job `job` of the DR SQL instance `server` ran, from a lab
/// state: its job outcomes (history rows of step 0), such as Restore To Mark's (issue 18: an
/// irreversible job that must run once).
pub fn job_runs(state: &Value, server: &str, job: &str) -> usize {
    let jobs = state["log-shipping"]["destinations"][server]["jobs"].as_array();
    let job = jobs.and_then(|jobs| jobs.iter().find(|j| j["name"] == job));
    let history = job.and_then(|j| j["history"].as_array());
    history.map_or(0, |rows| rows.iter().filter(|r| r["step-id"] == 0).count())
}

/// The group's record the DR site works on in a lab state: the copy Restore To Mark recovered on
/// a DR SQL Server (`log-shipping.destinations.<server>.group`, after a failover and during a
/// drill) when there is one, else production's (`group`), which a drill leaves untouched.
pub fn current_group(state: &Value) -> &Value {
    let destinations = state["log-shipping"]["destinations"].as_object();
    let recovered = destinations.and_then(|d| d.values().find(|d| d["group"].is_object()));
    recovered.map_or(&state["group"], |d| &d["group"])
}

/// `(name, disabled)` of every receive location the lab's group holds (`MSBTS_ReceiveLocation`),
/// in the lab's order (issue 18, P3).
pub fn receive_locations(state: &Value) -> Vec<(String, bool)> {
    current_group(state)["activation"]["receive-locations"]
        .as_array()
        .expect("receive locations in the lab's state")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or_default().to_owned(),
                l["is-disabled"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// The service `name` of `server` in a lab state, as `(start type, state)`.
pub fn service_of(state: &Value, server: &str, name: &str) -> Option<(String, String)> {
    let services = state["servers"][server]["services"].as_array()?;
    let service =
        services.iter().find(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?;
    let text = |k: &str| service[k].as_str().unwrap_or_default().to_string();
    Some((text("start-type"), text("state")))
}

/// The secrets `drover` gets for the lab's workflows: environment variable and value. A host
/// instance's password is a secret per host (`bts-host-<host>`): the in-process hosts run as
/// `CONTOSO\svc-bts` and share its password, the isolated host runs as `CONTOSO\svc-bts-ihost`.
pub const SECRETS: [(&str, &str); 6] = [
    ("DROVER_SECRET_ENTSSO_PASSWORD", "Sso-Pa55-4-DR"),
    ("DROVER_SECRET_RULES_ENGINE_PASSWORD", "Bre-Pa55-4-DR"),
    ("DROVER_SECRET_BTS_HOST_RECEIVEHOST", BTS_HOST_PASSWORD),
    ("DROVER_SECRET_BTS_HOST_SENDHOST", BTS_HOST_PASSWORD),
    ("DROVER_SECRET_BTS_HOST_PROCESSINGHOST", BTS_HOST_PASSWORD),
    ("DROVER_SECRET_BTS_HOST_BIZTALKSERVERISOLATEDHOST", ISOLATED_HOST_PASSWORD),
];

/// The secret `sso-secret-backup-password` of `workflows/dr-failover.toml`: environment variable
/// and the lab's backup password (`drover_lab::activation::SECRET_BACKUP_PASSWORD`).
pub const SSO_BACKUP_PASSWORD: (&str, &str) =
    ("DROVER_SECRET_SSO_SECRET_BACKUP_PASSWORD", "Contoso-SSO-Backup-2020!");

/// The password of `CONTOSO\svc-bts`, the in-process hosts' account, in [`SECRETS`].
pub const BTS_HOST_PASSWORD: &str = "Bts-Pa55-4-DR";
/// The password of `CONTOSO\svc-bts-ihost`, the isolated host's account, in [`SECRETS`].
pub const ISOLATED_HOST_PASSWORD: &str = "Ihost-Pa55-4-DR";

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

/// Every step instance of a `drover status --json` answer, step by step.
pub fn instances(status: &Value) -> Vec<Value> {
    status["steps"]
        .as_array()
        .expect("status has steps")
        .iter()
        .flat_map(|s| s["instances"].as_array().cloned().unwrap_or_default())
        .collect()
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

/// The grants of a failover's SQL steps on `DRSQL01`: `sqlcmd` there, its `SELECT`s read-only.
pub const DR_SQL_GRANTS: &str = r#"grants = { targets = ["DRSQL01"], programs = ["sqlcmd"], read-only = ["sqlcmd -S * -E -b -h -1 -W -s | -Q SET?NOCOUNT?ON;?SELECT*"] }"#;

/// The failover's SQL side as `[[steps]]` TOML for a test's own workflow, on `DRSQL01`:
/// `catch-up` (after `after`, when given) then `restore-to-mark`, both in the phase "Restore
/// databases" (docs/biztalk.md, F2 and F3).
pub fn sql_recovery_steps(after: Option<&str>) -> String {
    let needs = after.map(|step| format!("needs = [\"{step}\"]\n")).unwrap_or_default();
    format!(
        r#"
[[steps]]
id = "catch-up"
plugin = "logshipping-catch-up@^1"
phase = "Restore databases"
{needs}{DR_SQL_GRANTS}
with = {{ destinations = ["DRSQL01"] }}

[[steps]]
id = "restore-to-mark"
plugin = "logshipping-restore-to-mark@^1"
phase = "Restore databases"
needs = ["catch-up"]
{DR_SQL_GRANTS}
with = {{ destinations = ["DRSQL01"] }}
"#
    )
}
