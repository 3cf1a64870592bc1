//! N:1 consolidation in the DR-site preparation (seed B7, "avoid overloading the servers in the
//! disaster recovery site"): when two production servers that run the same host map to one DR
//! server, that DR server carries one instance of the host doing the work of both, and the run
//! says so, although the DR server carries no more hosts than either production server.

use drover_tests::lab::LabRun;
use drover_tests::{stderr, stdout};
use serde_json::Value;

/// The host-instance step's mapping and instances in `workflows/dr-site-preparation.toml`,
/// replaced so that PRDBTS01 and PRDBTS02 both map to DRBTS01 and only their SendHost
/// instances (one on each) are mirrored.
fn consolidated(workflow: &str) -> String {
    let mapping = r#"mapping = [
    { production = "PRDBTS01", dr = "DRBTS01" },
    { production = "PRDBTS02", dr = "DRBTS02" },
]"#;
    assert!(workflow.contains(mapping), "the workflow's mapping changed; update this test");
    workflow.replace(
        mapping,
        r#"mapping = [
    { production = "PRDBTS01", dr = "DRBTS01" },
    { production = "PRDBTS02", dr = "DRBTS01" },
]
production_instances = [
    { host = "SendHost", server = "PRDBTS01" },
    { host = "SendHost", server = "PRDBTS02" },
]"#,
    )
}

#[test]
fn two_production_servers_running_the_same_host_on_one_dr_server_give_a_capacity_warning() {
    let mut lab = LabRun::new("dr-site-preparation.toml", &[]);
    let text = std::fs::read_to_string(&lab.workflow).expect("the workflow");
    lab.workflow = lab.sandbox.write("consolidated.toml", &consolidated(&text));
    let out = lab.run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // One SendHost instance on DRBTS01 stands in for both production ones.
    let group = lab.group();
    assert_eq!(group.hosts_on("DRBTS01"), ["SendHost"]);
    assert!(group.hosts_on("DRBTS02").is_empty(), "nothing maps to DRBTS02");

    // DRBTS01 carries as many hosts (1) as each production server it replaces, and is still
    // reported as taking over two servers' work.
    let status = lab.sandbox.status(&lab.sandbox.last_run());
    let step: Value = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["instances"].as_array().unwrap().clone())
        .find(|i| i["key"] == "host-instances[DRBTS01]")
        .expect("the host-instance step ran");
    let warnings = step["output"]["warnings"].to_string();
    assert!(
        warnings.contains("DRBTS01 takes over 2 production servers (PRDBTS01: 1, PRDBTS02: 1)"),
        "an N:1 consolidation is warned about: {warnings}"
    );
}
