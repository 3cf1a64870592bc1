//! PowerShell queries: the argv `powershell.exe -NoProfile -NonInteractive -Command <script>`,
//! the exact query scripts of `lab/PROTOCOL.md` ("PowerShell queries"), typed rows for their
//! answers, and [`rows`], which reads what `ConvertTo-Json -Compress` prints.
//!
//! Scripts are whole argv words, sent as they are: the lab (and this crate's tests) match them
//! word for word, so build them only with the constants and functions here. Nothing here runs
//! anything.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The program, as granted to a step and sent to the target.
pub const PROGRAM: &str = "powershell.exe";

/// `Win32_OperatingSystem`: caption, version and build number [docs/biztalk.md, "Prerequisites"]. Rows: [`OperatingSystem`].
pub const OPERATING_SYSTEM: &str = "Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber | ConvertTo-Json -Compress";

/// `Win32_ComputerSystem`: name, memory, logical processors [docs/biztalk.md, "Prerequisites"]. Rows: [`ComputerSystem`].
pub const COMPUTER_SYSTEM: &str = "Get-CimInstance Win32_ComputerSystem | Select-Object Name, TotalPhysicalMemory, NumberOfLogicalProcessors | ConvertTo-Json -Compress";

/// Volume `C:`: file system and free space [docs/biztalk.md, "Prerequisites"]. Rows: [`Volume`].
pub const VOLUME_C: &str = "Get-Volume -DriveLetter C | Select-Object DriveLetter, FileSystemType, SizeRemaining | ConvertTo-Json -Compress";

/// MSDTC network settings [docs/biztalk.md, "Prerequisites"]. Rows: [`DtcNetworkSetting`].
pub const DTC_NETWORK_SETTING: &str = "Get-DtcNetworkSetting -DtcName Local | Select-Object InboundTransactionsEnabled, OutboundTransactionsEnabled, RemoteClientAccessEnabled, AuthenticationLevel | ConvertTo-Json -Compress";

/// File version of `BTSNTSvc.exe` in BizTalk's install folder [docs/biztalk.md, "Prerequisites"]: one line of plain
/// text (not JSON), such as `3.13.717.0`.
pub const BIZTALK_FILE_VERSION: &str =
    r#"(Get-Item "$env:BTSINSTALLPATH\BTSNTSvc.exe").VersionInfo.FileVersion"#;

/// The BizTalk Server 2020 cumulative updates installed: the Uninstall entries of the 32-bit
/// view named `Microsoft BizTalk Server 2020 Cumulative Update <N>…` (the inventory of
/// sandroasp's `Check-what-BTS2020-CU-are-installed.ps1`) [docs/biztalk.md, "Prerequisites"].
/// Rows: [`UninstallEntry`], none on a server without any.
pub const BIZTALK_CUMULATIVE_UPDATES: &str = r"Get-ItemProperty -Path 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*' | Where-Object { $_.DisplayName -like 'Microsoft BizTalk Server 2020 Cumulative Update*' } | Select-Object DisplayName | ConvertTo-Json -Compress";

/// What the display name of a BizTalk Server 2020 cumulative update starts with, before its number.
pub const CUMULATIVE_UPDATE_PREFIX: &str = "Microsoft BizTalk Server 2020 Cumulative Update ";

/// `Test-Dtc` from the target to `remote` (MsDtc module): whether the two computers can take part
/// in a network transaction (firewall rules, MSDTC security settings, ping, a propagated
/// transaction) [docs/biztalk.md, "Prerequisites"]. Prints nothing useful on success; fails with
/// a terminating error (exit 1) otherwise.
pub fn test_dtc(remote: &str) -> String {
    format!(
        r#"Test-Dtc -LocalComputerName "$env:COMPUTERNAME" -RemoteComputerName {}"#,
        single_quoted(remote)
    )
}

/// The arguments (after [`PROGRAM`]) that run `script`.
pub fn args(script: &str) -> Vec<String> {
    vec!["-NoProfile".into(), "-NonInteractive".into(), "-Command".into(), script.into()]
}

/// The script `<source> | Select-Object <p1>, <p2> | ConvertTo-Json -Compress`, the shape of
/// every JSON query of PROTOCOL.md.
pub fn select_to_json(source: &str, properties: &[&str]) -> String {
    format!("{source} | Select-Object {} | ConvertTo-Json -Compress", properties.join(", "))
}

/// `value` as a PowerShell single-quoted string: a single quote inside is doubled.
pub fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A row of [`OPERATING_SYSTEM`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperatingSystem {
    /// Such as `Microsoft Windows Server 2019 Datacenter`.
    pub caption: String,
    /// Such as `10.0.17763`.
    pub version: String,
    /// Such as `17763` (a string in CIM).
    pub build_number: String,
}

/// A row of [`COMPUTER_SYSTEM`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    /// The computer (NetBIOS) name.
    pub name: String,
    /// Bytes of physical memory.
    pub total_physical_memory: u64,
    /// Logical processors.
    pub number_of_logical_processors: u32,
}

/// A row of [`VOLUME_C`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// `NTFS` as the lab prints it; some Windows versions print the CIM number (14 is NTFS).
    pub file_system_type: Value,
    /// Free bytes.
    pub size_remaining: u64,
}

impl Volume {
    /// The file system is NTFS, whichever way it was printed.
    pub fn is_ntfs(&self) -> bool {
        match &self.file_system_type {
            Value::String(name) => name.eq_ignore_ascii_case("NTFS"),
            Value::Number(number) => number.as_u64() == Some(14),
            _ => false,
        }
    }

    /// The file system as text, for reports.
    pub fn file_system(&self) -> String {
        match &self.file_system_type {
            Value::String(name) => name.clone(),
            other => other.to_string(),
        }
    }
}

/// A row of [`BIZTALK_CUMULATIVE_UPDATES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UninstallEntry {
    /// Such as `Microsoft BizTalk Server 2020 Cumulative Update 6`; absent on some entries.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl UninstallEntry {
    /// The number of the BizTalk Server 2020 cumulative update this entry installs, if it is one.
    pub fn cumulative_update(&self) -> Option<u32> {
        let rest = self.display_name.as_deref()?.strip_prefix(CUMULATIVE_UPDATE_PREFIX)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
}

/// A row of [`DTC_NETWORK_SETTING`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DtcNetworkSetting {
    /// "Allow Inbound".
    pub inbound_transactions_enabled: bool,
    /// "Allow Outbound".
    pub outbound_transactions_enabled: bool,
    /// "Allow Remote Clients".
    #[serde(default)]
    pub remote_client_access_enabled: bool,
    /// Such as `Mutual`.
    #[serde(default)]
    pub authentication_level: Option<String>,
}

/// Output that is not what `ConvertTo-Json` prints for the expected rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What did not fit.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected PowerShell JSON output: {}", self.message)
    }
}

impl std::error::Error for JsonError {}

/// The rows of a `ConvertTo-Json -Compress` answer: a single object is one row, an array is
/// several, and no output at all is none.
pub fn rows<T: DeserializeOwned>(stdout: &str) -> Result<Vec<T>, JsonError> {
    let text = stdout.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| JsonError { message: e.to_string() })?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| serde_json::from_value(item).map_err(|e| JsonError { message: e.to_string() }))
        .collect()
}

/// The one row of an answer that must have exactly one (the operating system, the volume).
pub fn single<T: DeserializeOwned>(stdout: &str) -> Result<T, JsonError> {
    let mut all = rows::<T>(stdout)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        n => Err(JsonError { message: format!("expected one row, got {n}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_argv_with_the_script_as_one_word() {
        assert_eq!(
            args(OPERATING_SYSTEM),
            [
                "-NoProfile",
                "-NonInteractive",
                "-Command",
                "Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber | ConvertTo-Json -Compress"
            ]
        );
    }

    #[test]
    fn cumulative_updates_are_read_from_their_display_names() {
        let entries: Vec<UninstallEntry> = rows(
            r#"[{"DisplayName":"Microsoft BizTalk Server 2020 Cumulative Update 1"},{"DisplayName":"Microsoft BizTalk Server 2020 Cumulative Update 12 - KB5000000"},{"DisplayName":null}]"#,
        )
        .unwrap();
        let numbers: Vec<Option<u32>> = entries.iter().map(UninstallEntry::cumulative_update).collect();
        assert_eq!(numbers, [Some(1), Some(12), None]);
        assert_eq!(
            test_dtc("O'SQL"),
            r#"Test-Dtc -LocalComputerName "$env:COMPUTERNAME" -RemoteComputerName 'O''SQL'"#
        );
    }

    #[test]
    fn the_scripts_are_protocol_md_word_for_word() {
        assert_eq!(
            COMPUTER_SYSTEM,
            "Get-CimInstance Win32_ComputerSystem | Select-Object Name, TotalPhysicalMemory, NumberOfLogicalProcessors | ConvertTo-Json -Compress"
        );
        assert_eq!(
            VOLUME_C,
            "Get-Volume -DriveLetter C | Select-Object DriveLetter, FileSystemType, SizeRemaining | ConvertTo-Json -Compress"
        );
        assert_eq!(
            DTC_NETWORK_SETTING,
            "Get-DtcNetworkSetting -DtcName Local | Select-Object InboundTransactionsEnabled, OutboundTransactionsEnabled, RemoteClientAccessEnabled, AuthenticationLevel | ConvertTo-Json -Compress"
        );
        assert_eq!(
            BIZTALK_FILE_VERSION,
            "(Get-Item \"$env:BTSINSTALLPATH\\BTSNTSvc.exe\").VersionInfo.FileVersion"
        );
    }

    #[test]
    fn select_to_json_builds_the_same_scripts() {
        let os =
            select_to_json("Get-CimInstance Win32_OperatingSystem", &["Caption", "Version", "BuildNumber"]);
        assert_eq!(os, OPERATING_SYSTEM);
        let cs = select_to_json(
            "Get-CimInstance Win32_ComputerSystem",
            &["Name", "TotalPhysicalMemory", "NumberOfLogicalProcessors"],
        );
        assert_eq!(cs, COMPUTER_SYSTEM);
    }

    #[test]
    fn single_quoted_doubles_quotes() {
        assert_eq!(single_quoted("O'Brien"), "'O''Brien'");
        assert_eq!(single_quoted(""), "''");
    }

    #[test]
    fn reads_the_protocol_answers() {
        let os: OperatingSystem = single(
            r#"{"Caption":"Microsoft Windows Server 2019 Datacenter","Version":"10.0.17763","BuildNumber":"17763"}"#,
        )
        .unwrap();
        assert_eq!(os.build_number, "17763");
        let cs: ComputerSystem =
            single(r#"{"Name":"DRBTS01","TotalPhysicalMemory":17179869184,"NumberOfLogicalProcessors":4}"#)
                .unwrap();
        assert_eq!((cs.name.as_str(), cs.total_physical_memory), ("DRBTS01", 17179869184));
        let volume: Volume =
            single(r#"{"DriveLetter":"C","FileSystemType":"NTFS","SizeRemaining":128849018880}"#).unwrap();
        assert!(volume.is_ntfs());
        assert_eq!(volume.size_remaining, 128849018880);
        let dtc: DtcNetworkSetting = single(r#"{"InboundTransactionsEnabled":true,"OutboundTransactionsEnabled":true,"RemoteClientAccessEnabled":true,"AuthenticationLevel":"Mutual"}"#).unwrap();
        assert!(dtc.inbound_transactions_enabled && dtc.outbound_transactions_enabled);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Server {
        name: String,
    }

    #[test]
    fn rows_accepts_a_single_object() {
        let got: Vec<Server> = rows("{\"Name\":\"PRDBTS01\"}\r\n").unwrap();
        assert_eq!(got, [Server { name: "PRDBTS01".into() }]);
    }

    #[test]
    fn rows_accepts_an_array() {
        let got: Vec<Server> = rows(r#"[{"Name":"PRDBTS01"},{"Name":"PRDBTS02"}]"#).unwrap();
        assert_eq!(got, [Server { name: "PRDBTS01".into() }, Server { name: "PRDBTS02".into() }]);
    }

    #[test]
    fn rows_accepts_no_output_at_all() {
        assert_eq!(rows::<Server>("").unwrap(), []);
        assert_eq!(rows::<Server>("\r\n").unwrap(), []);
        assert!(single::<Server>("").is_err());
    }

    #[test]
    fn rows_rejects_what_is_not_json_or_not_the_rows() {
        assert!(rows::<Server>("Get-CimInstance : Invalid namespace").is_err());
        let err = rows::<Server>(r#"{"Other":1}"#).unwrap_err();
        assert!(err.to_string().contains("Name"), "{err}");
    }

    #[test]
    fn a_numeric_file_system_type_is_understood() {
        let volume: Volume = single(r#"{"DriveLetter":"C","FileSystemType":14,"SizeRemaining":1}"#).unwrap();
        assert!(volume.is_ntfs());
        let fat: Volume =
            single(r#"{"DriveLetter":"C","FileSystemType":"FAT32","SizeRemaining":1}"#).unwrap();
        assert!(!fat.is_ntfs());
        assert_eq!(fat.file_system(), "FAT32");
    }
}
