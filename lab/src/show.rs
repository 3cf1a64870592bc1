//! `drover-lab show` (`lab/PROTOCOL.md`, "State and commands of the lab itself"): the state for a
//! human (group, edition, members, master secret server, host instances, the failover's database
//! locations, SSO server name, secret holders and receive locations, applications, faults, log
//! shipping (the source's sets and jobs, each DR SQL instance's restore state), then each
//! server's registry, services, GAC, products and files). `--json` prints the state file's model
//! instead; this text is for reading, not for parsing.

use std::fmt::Write as _;

use crate::state::{Lab, RegValue, StartType};

/// The readable form of the lab.
pub fn render(lab: &Lab) -> String {
    let mut out = String::new();
    let g = &lab.group;
    // Writing to a String cannot fail.
    let _ = writeln!(out, "BizTalk group {}", g.name);
    let _ = writeln!(out, "  edition              {}", lab.edition.as_str());
    let _ = writeln!(out, "  management database  {}/{}", g.mgmt_server, g.mgmt_db);
    let _ = writeln!(out, "  SSO database         {}/{}", g.sso_server, g.sso_db);
    let _ = writeln!(out, "  master secret server {}", g.master_secret_server.as_deref().unwrap_or("(none)"));
    let _ = writeln!(out, "  members              {}", list(g.members.iter().map(String::as_str)));
    let hosts = g
        .hosts
        .iter()
        .map(|h| format!("{} ({})", h.name, if h.host_type == 2 { "isolated" } else { "in-process" }));
    let _ = writeln!(out, "  hosts                {}", list(hosts));
    let _ = writeln!(out, "  host instances");
    if g.host_instances.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    for i in &g.host_instances {
        let _ = writeln!(
            out,
            "    {}  configuration {}  {}  service {:?}  as {}",
            i.name,
            i.configuration_state,
            if i.is_disabled { "disabled" } else { "enabled" },
            i.service_state,
            i.account
        );
    }
    // Failover, BizTalk side (issue 18, L2)
    let a = &g.activation;
    let _ = writeln!(out, "  MessageBox database  {}/{}", a.messagebox.server, a.messagebox.name);
    let _ = writeln!(out, "  tracking database    {}/{}", a.tracking.server, a.tracking.name);
    let _ = writeln!(out, "  Rules Engine db      {}/{}", a.rule_engine.server, a.rule_engine.name);
    let _ = writeln!(out, "  SSO server name      {}", a.sso_server_name);
    let _ = writeln!(out, "  secret held by       {}", list(a.secret_holders.iter()));
    let locations = a
        .receive_locations
        .iter()
        .map(|r| format!("{} ({})", r.name, if r.is_disabled { "disabled" } else { "enabled" }));
    let _ = writeln!(out, "  receive locations    {}", list(locations));
    let apps = g.applications.iter().map(|a| format!("{} (from {})", a.name, a.package));
    let _ = writeln!(out, "  applications         {}", list(apps));
    let _ = writeln!(out, "faults                 {}", list(lab.faults.iter().map(|f| f.to_string())));
    // Log shipping (issue 18, L1)
    out.push_str(&crate::logshipping::render(lab));

    for (name, s) in &lab.servers {
        let _ = writeln!(out, "\nserver {name} (site {}, role {})", s.site.as_str(), s.role.as_str());
        if let Some(sql) = &s.sql {
            let state = if lab.sql_reachable(name) { "reachable" } else { "unreachable" };
            let _ =
                writeln!(out, "  SQL Server ({state}): {}", list(sql.databases.iter().map(String::as_str)));
        }
        let _ = writeln!(out, "  registry");
        for (key, values) in &s.registry {
            for (value, data) in values {
                let data = match data {
                    RegValue::Sz(text) => format!("REG_SZ {text}"),
                    RegValue::Dword(n) => format!("REG_DWORD {n:#x}"),
                };
                let _ = writeln!(out, "    HKLM\\{key}  {value} = {data}");
            }
        }
        let _ = writeln!(out, "  services");
        for svc in &s.services {
            let start = match svc.start_type {
                StartType::Auto => "auto",
                StartType::DelayedAuto => "delayed-auto",
                StartType::Demand => "demand",
                StartType::Disabled => "disabled",
            };
            let _ = writeln!(out, "    {}  {start}  {:?}  as {}", svc.name, svc.state, svc.account);
        }
        let gac = s
            .gac
            .iter()
            .map(|a| format!("{}, Version={}, PublicKeyToken={}", a.name, a.version, a.public_key_token));
        let _ = writeln!(out, "  GAC       {}", list(gac));
        let _ = writeln!(out, "  products  {}", list(s.products.iter().map(|p| p.name.as_str())));
        let files = s.files.values().map(|f| format!("{} ({} bytes)", f.path, f.contents.len()));
        let _ = writeln!(out, "  files     {}", list(files));
    }
    out
}

fn list<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let items: Vec<String> = items.map(|s| s.as_ref().to_owned()).collect();
    if items.is_empty() { "(none)".to_owned() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_group_and_servers() {
        let text = render(&crate::init::fresh_lab());
        assert!(
            text.starts_with("BizTalk group BizTalkGroup\n  edition              enterprise\n  management database  PRDSQL01/BizTalkMgmtDb\n")
        );
        assert!(
            text.contains("  master secret server PRDSSO01\n  members              PRDBTS01, PRDBTS02\n")
        );
        assert!(text.contains(
            "    Microsoft BizTalk Server SendHost PRDBTS02  configuration 1  enabled  service Running"
        ));
        assert!(text.contains("\nserver DRBTS01 (site dr, role biztalk-runtime)\n"));
        assert!(text.contains("    ENTSSO  demand  Stopped  as LocalSystem\n"));
        assert!(text.contains(r"C:\Staging\Contoso.Orders.msi ("));
        assert!(text.contains("faults                 (none)\n"));
        // Failover, BizTalk side (issue 18, L2)
        assert!(text.contains("  SSO server name      PRDSSO01\n  secret held by       PRDSSO01\n"));
        assert!(text.contains("  receive locations    RL.Orders.File (enabled), RL.Orders.Http (enabled), RL.Invoices.Sftp (disabled)\n"));
    }
}
