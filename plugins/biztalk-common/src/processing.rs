//! Processing at failover through BizTalk's WMI provider (docs/biztalk.md, "Failover
//! activation", F8 to F12): the group's settings (`MSBTS_GroupSetting`, read, and its
//! `SSOServerName` set with `Put()`), the receive locations (`MSBTS_ReceiveLocation`, listed with
//! `IsDisabled`, `Disable()`, `Enable()`), and a host instance's `Start()`, `Stop()` and
//! `IsDisabled` with `Put()` (`lab/PROTOCOL.md`, "Failover: database references, SSO and
//! processing").
//!
//! Scripts are whole argv words for [`crate::powershell::args`], in the shapes of the host-instance
//! scripts of [`crate::wmi`]: queries end in `ConvertTo-Json -Compress`; changes start with
//! `$ErrorActionPreference = 'Stop'`, find their object with `Get-WmiObject … | Where-Object`, and
//! drop the method's return object (`$null = …`), so success prints nothing and any failure
//! exits 1 with its message on stderr. Nothing here runs anything.

use serde::Deserialize;

use crate::powershell::{self, JsonError};
use crate::wmi::{STOP_ON_ERROR, host_instance_name};

/// The group's settings: its name, where its databases are and its SSO server. Rows:
/// [`GroupSetting`] (one). Works only on a joined server.
pub const GROUP_SETTING: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_GroupSetting | Select-Object Name, MgmtDbServerName, MgmtDbName, SubscriptionDBServerName, SubscriptionDBName, TrackingDBServerName, TrackingDBName, RuleEngineDBServerName, RuleEngineDBName, SSOServerName | ConvertTo-Json -Compress";

/// Every receive location of the group with its state. Rows: [`ReceiveLocation`].
pub const RECEIVE_LOCATIONS: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_ReceiveLocation | Select-Object Name, ReceivePortName, HostName, AdapterName, IsDisabled | ConvertTo-Json -Compress";

/// The message PowerShell gives when a script calls a method on nothing: the object the script
/// looked for (a receive location, a host instance) does not exist.
pub const NOT_FOUND: &str = "You cannot call a method on a null-valued expression.";
/// Windows' error 1722 as WMI reports it for a server that does not answer (System Error Codes:
/// `RPC_S_SERVER_UNAVAILABLE`, "The RPC server is unavailable.", HRESULT 0x800706BA).
pub const RPC_UNAVAILABLE: &str = "The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)";

/// A row of [`GROUP_SETTING`] (properties of `MSBTS_GroupSetting` in Microsoft's class reference).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupSetting {
    /// The group's name.
    pub name: String,
    /// The management database's server.
    pub mgmt_db_server_name: String,
    /// The management database.
    pub mgmt_db_name: String,
    /// The master MessageBox's server.
    #[serde(rename = "SubscriptionDBServerName")]
    pub subscription_db_server_name: String,
    /// The master MessageBox.
    #[serde(rename = "SubscriptionDBName")]
    pub subscription_db_name: String,
    /// The tracking database's server.
    #[serde(rename = "TrackingDBServerName")]
    pub tracking_db_server_name: String,
    /// The tracking database.
    #[serde(rename = "TrackingDBName")]
    pub tracking_db_name: String,
    /// The Rules Engine database's server.
    #[serde(rename = "RuleEngineDBServerName")]
    pub rule_engine_db_server_name: String,
    /// The Rules Engine database.
    #[serde(rename = "RuleEngineDBName")]
    pub rule_engine_db_name: String,
    /// The SSO server the group's runtime uses.
    #[serde(rename = "SSOServerName")]
    pub sso_server_name: String,
}

impl GroupSetting {
    /// The servers of the database locations that do not name `server` (case-insensitive), as
    /// `(property, value)`: empty once UpdateDatabase.vbs has moved every database there.
    pub fn not_on(&self, server: &str) -> Vec<(&'static str, &str)> {
        [
            ("MgmtDbServerName", self.mgmt_db_server_name.as_str()),
            ("SubscriptionDBServerName", &self.subscription_db_server_name),
            ("TrackingDBServerName", &self.tracking_db_server_name),
            ("RuleEngineDBServerName", &self.rule_engine_db_server_name),
        ]
        .into_iter()
        .filter(|(_, value)| !value.eq_ignore_ascii_case(server))
        .collect()
    }
}

/// A row of [`RECEIVE_LOCATIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveLocation {
    /// Unique in the group.
    pub name: String,
    /// Its receive port.
    pub receive_port_name: String,
    /// The host of its receive handler.
    pub host_name: String,
    /// Its adapter (`FILE`, `WCF-BasicHttp`…).
    pub adapter_name: String,
    /// Disabled (not receiving).
    pub is_disabled: bool,
}

/// Reads [`GROUP_SETTING`]'s answer: exactly one row.
pub fn parse_group_setting(stdout: &str) -> Result<GroupSetting, JsonError> {
    powershell::single(stdout)
}

/// Reads [`RECEIVE_LOCATIONS`]'s answer.
pub fn parse_receive_locations(stdout: &str) -> Result<Vec<ReceiveLocation>, JsonError> {
    powershell::rows(stdout)
}

/// Sets the group's SSO server ("How to Update the Runtime Computers": "you may also need to
/// update the SSO Server name").
pub fn set_sso_server_name(server: &str) -> String {
    format!(
        "{STOP_ON_ERROR}; $g = Get-WmiObject -Namespace root\\MicrosoftBizTalkServer -Class MSBTS_GroupSetting; $g.SSOServerName = {}; $null = $g.Put()",
        powershell::single_quoted(server)
    )
}

/// `MSBTS_ReceiveLocation.Disable()` of the receive location `name`.
pub fn disable_receive_location(name: &str) -> String {
    receive_location_call(name, "Disable")
}

/// `MSBTS_ReceiveLocation.Enable()` of the receive location `name`.
pub fn enable_receive_location(name: &str) -> String {
    receive_location_call(name, "Enable")
}

fn receive_location_call(name: &str, method: &str) -> String {
    format!(
        "{STOP_ON_ERROR}; $rl = Get-WmiObject -Namespace root\\MicrosoftBizTalkServer -Class MSBTS_ReceiveLocation | Where-Object {{ $_.Name -eq {} }}; $null = $rl.{method}()",
        powershell::single_quoted(name)
    )
}

/// `MSBTS_HostInstance.Start()` of the instance of `host` on `server`.
pub fn start_host_instance(host: &str, server: &str) -> String {
    host_instance_call(host, server, "$null = $hi.Start()")
}

/// `MSBTS_HostInstance.Stop()` of the instance of `host` on `server`.
pub fn stop_host_instance(host: &str, server: &str) -> String {
    host_instance_call(host, server, "$null = $hi.Stop()")
}

/// Sets `IsDisabled` of the instance of `host` on `server` and saves it with `Put()`: it "can only
/// be set when the host instance is in a stopped state" (Microsoft's class reference).
pub fn set_host_instance_disabled(host: &str, server: &str, disabled: bool) -> String {
    let value = if disabled { "$true" } else { "$false" };
    host_instance_call(host, server, &format!("$hi.IsDisabled = {value}; $null = $hi.Put()"))
}

fn host_instance_call(host: &str, server: &str, then: &str) -> String {
    format!(
        "{STOP_ON_ERROR}; $hi = Get-WmiObject -Namespace root\\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object {{ $_.Name -eq {} }}; {then}",
        powershell::single_quoted(&host_instance_name(host, server))
    )
}

/// Whether a failed call says the object was not found ([`NOT_FOUND`]).
pub fn not_found(stderr: &str) -> bool {
    stderr.contains(NOT_FOUND)
}

/// Whether a failed call says a server did not answer ([`RPC_UNAVAILABLE`]): a production
/// server that is gone, whose rows are still in the group.
pub fn server_unavailable(stderr: &str) -> bool {
    stderr.contains("0x800706BA")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_are_protocol_md_word_for_word() {
        assert_eq!(
            set_sso_server_name("DRSSO01"),
            r"$ErrorActionPreference = 'Stop'; $g = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_GroupSetting; $g.SSOServerName = 'DRSSO01'; $null = $g.Put()"
        );
        assert_eq!(
            disable_receive_location("RL.Orders.File"),
            r"$ErrorActionPreference = 'Stop'; $rl = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_ReceiveLocation | Where-Object { $_.Name -eq 'RL.Orders.File' }; $null = $rl.Disable()"
        );
        assert!(
            enable_receive_location("it's")
                .ends_with("Where-Object { $_.Name -eq 'it''s' }; $null = $rl.Enable()")
        );
        assert_eq!(
            start_host_instance("ReceiveHost", "DRBTS01"),
            r"$ErrorActionPreference = 'Stop'; $hi = Get-WmiObject -Namespace root\MicrosoftBizTalkServer -Class MSBTS_HostInstance | Where-Object { $_.Name -eq 'Microsoft BizTalk Server ReceiveHost DRBTS01' }; $null = $hi.Start()"
        );
        assert!(stop_host_instance("SendHost", "DRBTS02").ends_with("$null = $hi.Stop()"));
        assert!(set_host_instance_disabled("SendHost", "DRBTS02", false).ends_with(
            "'Microsoft BizTalk Server SendHost DRBTS02' }; $hi.IsDisabled = $false; $null = $hi.Put()"
        ));
    }

    #[test]
    fn the_group_setting_row_is_read() {
        let out = r#"{"Name":"BizTalkGroup","MgmtDbServerName":"DRSQL01","MgmtDbName":"BizTalkMgmtDb","SubscriptionDBServerName":"DRSQL01","SubscriptionDBName":"BizTalkMsgBoxDb","TrackingDBServerName":"PRDSQL01","TrackingDBName":"BizTalkDTADb","RuleEngineDBServerName":"drsql01","RuleEngineDBName":"BizTalkRuleEngineDb","SSOServerName":"PRDSSO01"}
"#;
        let g = parse_group_setting(out).expect("one row");
        assert_eq!(g.sso_server_name, "PRDSSO01");
        assert_eq!(g.not_on("DRSQL01"), [("TrackingDBServerName", "PRDSQL01")]);
    }

    #[test]
    fn receive_locations_are_read_one_or_many() {
        let one = r#"{"Name":"RL.Orders.File","ReceivePortName":"RP.Orders","HostName":"ReceiveHost","AdapterName":"FILE","IsDisabled":false}"#;
        let rows = parse_receive_locations(one).expect("one");
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].is_disabled);
        assert!(parse_receive_locations("").expect("none").is_empty());
        assert!(not_found("You cannot call a method on a null-valued expression.\n"));
        assert!(server_unavailable(
            "Exception calling \"Start\" : \"The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)\""
        ));
    }
}
