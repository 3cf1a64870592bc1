//! The Drover inventory `drover-lab init --inventory` writes for a lab (`lab/PROTOCOL.md`,
//! "State and commands of the lab itself"): one site per lab site, one `command`-transport server
//! per server of the lab whose prefix runs `drover-lab exec` with absolute paths, the runtime
//! groups and the DR site's SSO server group `dr-sso`. It renders text only; the engine's
//! inventory loader is what judges it.

use std::fmt::Write as _;
use std::path::Path;

use crate::init::{DR_RUNTIME, DR_SSO, PROD_RUNTIME};
use crate::state::{Lab, Site};

/// The inventory TOML for `lab`, reached through `exe` (absolute) and the state file `state`
/// (absolute).
pub fn inventory_toml(lab: &Lab, exe: &Path, state: &Path) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let exe = exe.display().to_string();
    let state = state.display().to_string();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# The Drover inventory of a BizTalk lab, written by `drover-lab init`.");
    let _ = writeln!(out, "# Every server is reached through `drover-lab exec` (see lab/PROTOCOL.md).");
    for (site, description) in [
        (Site::Prod, "Production: BizTalk group BizTalkGroup on PRDSQL01"),
        (Site::Dr, "Disaster-recovery site"),
    ] {
        let _ = writeln!(out, "\n[sites.{}]\ndescription = {}", site.as_str(), quote(description));
    }
    for (name, server) in &lab.servers {
        let command =
            [exe.as_str(), "exec", "--state", state.as_str(), name.as_str(), "--"].map(quote).join(", ");
        let _ = writeln!(out, "\n[servers.{name}]");
        let _ = writeln!(out, "site = {}", quote(server.site.as_str()));
        let _ = writeln!(out, "transport = \"command\"");
        let _ = writeln!(out, "command = [{command}]");
        let _ = writeln!(out, "vars = {{ role = {} }}", quote(server.role.as_str()));
    }
    let list = |names: &[&str]| names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "\n[groups]");
    let _ = writeln!(out, "prod-runtime = [{}]", list(&PROD_RUNTIME));
    let _ = writeln!(out, "dr-runtime = [{}]", list(&DR_RUNTIME));
    let _ = writeln!(out, "dr-sso = [{}]", list(&[DR_SSO]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_is_toml_with_absolute_command_prefixes() {
        let lab = crate::init::fresh_lab();
        let text = inventory_toml(&lab, Path::new("/opt/drover-lab"), Path::new("/tmp/x \"y\"/lab.json"));
        assert!(text.contains(
            "[servers.DRBTS01]\nsite = \"dr\"\ntransport = \"command\"\ncommand = [\"/opt/drover-lab\", \"exec\", \"--state\", '/tmp/x \"y\"/lab.json', \"DRBTS01\", \"--\"]\nvars = { role = \"biztalk-runtime\" }\n"
        ));
        let value: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert_eq!(value["servers"].as_table().expect("servers").len(), 9);
        assert_eq!(value["servers"]["DRSSO01"]["vars"]["role"].as_str(), Some("sso-master-dr"));
        assert_eq!(value["groups"]["dr-sso"].as_array().map(Vec::len), Some(1));
        assert_eq!(value["servers"]["PRDSSO01"]["vars"]["role"].as_str(), Some("sso-master"));
        assert_eq!(value["servers"]["DRSQL01"]["site"].as_str(), Some("dr"));
        assert_eq!(value["groups"]["dr-runtime"].as_array().map(Vec::len), Some(3));
        assert!(value["sites"].get("prod").is_some() && value["sites"].get("dr").is_some());
    }
}
