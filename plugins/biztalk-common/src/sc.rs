//! Windows services through `sc.exe`: the argument lists plugins send (`query`, `qc`, `config …
//! start=`, `stop`, `start`), parsers of its `query` and `qc` blocks, and its failures by code
//! (`lab/PROTOCOL.md`, "Services: `sc.exe`").
//!
//! Pure text in, typed values out: this module never runs anything. Argument lists are argv
//! words without the program name; run them as [`PROGRAM`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The program, exactly as plugins name it (and as a workflow grants it).
pub const PROGRAM: &str = "sc.exe";

/// `sc.exe query <name>`: one service's state.
pub fn query(name: &str) -> Vec<String> {
    words(&["query", name])
}

/// `sc.exe query state= all`: the state of every service.
pub fn query_all() -> Vec<String> {
    words(&["query", "state=", "all"])
}

/// `sc.exe qc <name>`: one service's configuration (start mode, display name, account).
pub fn qc(name: &str) -> Vec<String> {
    words(&["qc", name])
}

/// `sc.exe config <name> start= <mode>`: sets the start mode.
pub fn config_start(name: &str, mode: StartMode) -> Vec<String> {
    words(&["config", name, "start=", mode.keyword()])
}

/// `sc.exe stop <name>`.
pub fn stop(name: &str) -> Vec<String> {
    words(&["stop", name])
}

/// `sc.exe start <name>`.
pub fn start(name: &str) -> Vec<String> {
    words(&["start", name])
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// How a service starts. Serialised as its `sc.exe config` keyword (`delayed-auto`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartMode {
    /// `AUTO_START`.
    Auto,
    /// `AUTO_START  (DELAYED)`: automatic, delayed start.
    DelayedAuto,
    /// `DEMAND_START`: manual.
    Demand,
    /// `DISABLED`.
    Disabled,
}

impl StartMode {
    /// The keyword after `start=` in `sc.exe config`.
    pub fn keyword(self) -> &'static str {
        match self {
            StartMode::Auto => "auto",
            StartMode::DelayedAuto => "delayed-auto",
            StartMode::Demand => "demand",
            StartMode::Disabled => "disabled",
        }
    }

    /// The mode named by an `sc.exe config` keyword.
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        [StartMode::Auto, StartMode::DelayedAuto, StartMode::Demand, StartMode::Disabled]
            .into_iter()
            .find(|m| m.keyword().eq_ignore_ascii_case(keyword.trim()))
    }

    /// The mode of a `START_TYPE` value as `sc.exe qc` prints it: `2   AUTO_START`,
    /// `2   AUTO_START  (DELAYED)`, `3   DEMAND_START` or `4   DISABLED`. Boot and system start
    /// types (0, 1) are drivers' and give `None`.
    pub fn from_start_type(value: &str) -> Option<Self> {
        let mut words = value.split_whitespace();
        let code = words.next()?;
        let delayed = value.contains("(DELAYED)");
        match (code, delayed) {
            ("2", false) => Some(StartMode::Auto),
            ("2", true) => Some(StartMode::DelayedAuto),
            ("3", _) => Some(StartMode::Demand),
            ("4", _) => Some(StartMode::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for StartMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A service's current state, from the `STATE` line of `sc.exe query`. Serialised in kebab
/// case (`stop-pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// 1 `STOPPED`.
    Stopped,
    /// 2 `START_PENDING`.
    StartPending,
    /// 3 `STOP_PENDING`.
    StopPending,
    /// 4 `RUNNING`.
    Running,
    /// 5 `CONTINUE_PENDING`.
    ContinuePending,
    /// 6 `PAUSE_PENDING`.
    PausePending,
    /// 7 `PAUSED`.
    Paused,
}

impl ServiceState {
    /// The state of a `STATE` value such as `4  RUNNING`, by its number.
    pub fn from_state_value(value: &str) -> Option<Self> {
        match value.split_whitespace().next()? {
            "1" => Some(ServiceState::Stopped),
            "2" => Some(ServiceState::StartPending),
            "3" => Some(ServiceState::StopPending),
            "4" => Some(ServiceState::Running),
            "5" => Some(ServiceState::ContinuePending),
            "6" => Some(ServiceState::PausePending),
            "7" => Some(ServiceState::Paused),
            _ => None,
        }
    }

    /// Whether `sc.exe stop` has something to stop: anything but stopped or already stopping.
    pub fn needs_stop(self) -> bool {
        !matches!(self, ServiceState::Stopped | ServiceState::StopPending)
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Stopped => "stopped",
            ServiceState::StartPending => "start-pending",
            ServiceState::StopPending => "stop-pending",
            ServiceState::Running => "running",
            ServiceState::ContinuePending => "continue-pending",
            ServiceState::PausePending => "pause-pending",
            ServiceState::Paused => "paused",
        })
    }
}

/// One block of `sc.exe query`: a service and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// `SERVICE_NAME`.
    pub name: String,
    /// `STATE`.
    pub state: ServiceState,
}

/// What `sc.exe qc` says of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `SERVICE_NAME`.
    pub name: String,
    /// `START_TYPE`.
    pub start_mode: StartMode,
    /// `DISPLAY_NAME`.
    pub display_name: String,
    /// `SERVICE_START_NAME`: the account it runs as.
    pub account: String,
}

/// Output that is not in the format of `lab/PROTOCOL.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected sc.exe output: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Splits a `KEY : value` line (any padding) into its trimmed key and value.
fn field(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let key = key.trim();
    let is_key =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_key.then(|| (key, value.trim()))
}

/// Parses the blocks of `sc.exe query <name>` or `sc.exe query state= all`, in order. Lines other
/// than `SERVICE_NAME` and `STATE` (such as `DISPLAY_NAME` on a real server) are ignored.
pub fn parse_query(stdout: &str) -> Result<Vec<ServiceStatus>, ParseError> {
    let mut found = Vec::new();
    let mut current: Option<(String, Option<ServiceState>)> = None;
    for (key, value) in stdout.lines().filter_map(field) {
        match key {
            "SERVICE_NAME" => {
                if let Some(block) = current.take() {
                    found.push(finish_block(block)?);
                }
                current = Some((value.to_string(), None));
            }
            "STATE" => {
                let Some((name, state)) = current.as_mut() else {
                    return Err(ParseError(format!("STATE line `{value}` before any SERVICE_NAME")));
                };
                *state =
                    Some(ServiceState::from_state_value(value).ok_or_else(|| {
                        ParseError(format!("service {name} has an unknown STATE `{value}`"))
                    })?);
            }
            _ => {}
        }
    }
    if let Some(block) = current {
        found.push(finish_block(block)?);
    }
    Ok(found)
}

fn finish_block((name, state): (String, Option<ServiceState>)) -> Result<ServiceStatus, ParseError> {
    match state {
        Some(state) => Ok(ServiceStatus { name, state }),
        None => Err(ParseError(format!("service {name} has no STATE line"))),
    }
}

/// Parses the output of a successful `sc.exe qc <name>`.
pub fn parse_qc(stdout: &str) -> Result<ServiceConfig, ParseError> {
    let mut name = None;
    let mut start_type = None;
    let mut display_name = String::new();
    let mut account = String::new();
    for (key, value) in stdout.lines().filter_map(field) {
        match key {
            "SERVICE_NAME" => name = Some(value.to_string()),
            "START_TYPE" => start_type = Some(value.to_string()),
            "DISPLAY_NAME" => display_name = value.to_string(),
            "SERVICE_START_NAME" => account = value.to_string(),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| ParseError("qc output has no SERVICE_NAME line".into()))?;
    let start_type =
        start_type.ok_or_else(|| ParseError(format!("service {name} has no START_TYPE line")))?;
    let start_mode = StartMode::from_start_type(&start_type)
        .ok_or_else(|| ParseError(format!("service {name} has an unknown START_TYPE `{start_type}`")))?;
    Ok(ServiceConfig { name, start_mode, display_name, account })
}

/// Why an `sc.exe` command failed, by the code it printed (`[SC] … FAILED <code>:`) or exited
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScFailure {
    /// 1058: the service is disabled (so it cannot be started).
    Disabled,
    /// 1060: no such service.
    NotInstalled,
    /// 1061: the service cannot accept control messages now (it will not stop).
    CannotAcceptControl,
    /// 1062: the service has not been started.
    NotStarted,
    /// A non-zero exit without the `[SC] <Function> FAILED <code>:` line every documented
    /// failure prints: an answer Drover does not recognise (`crate::unrecognized`).
    Unrecognised {
        /// The exit code.
        exit_code: i32,
    },
    /// Any other code, with the message `sc.exe` printed.
    Other {
        /// The Windows error code.
        code: i32,
        /// The explanation line, if any.
        message: String,
    },
}

impl ScFailure {
    /// The Windows error code.
    pub fn code(&self) -> i32 {
        match self {
            ScFailure::Disabled => 1058,
            ScFailure::NotInstalled => 1060,
            ScFailure::CannotAcceptControl => 1061,
            ScFailure::NotStarted => 1062,
            ScFailure::Unrecognised { exit_code } => *exit_code,
            ScFailure::Other { code, .. } => *code,
        }
    }

    fn from_code(code: i32, message: String) -> Self {
        match code {
            1058 => ScFailure::Disabled,
            1060 => ScFailure::NotInstalled,
            1061 => ScFailure::CannotAcceptControl,
            1062 => ScFailure::NotStarted,
            code => ScFailure::Other { code, message },
        }
    }
}

impl fmt::Display for ScFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScFailure::Disabled => f.write_str("the service is disabled (1058)"),
            ScFailure::NotInstalled => f.write_str("the service is not installed (1060)"),
            ScFailure::CannotAcceptControl => {
                f.write_str("the service cannot accept control messages at this time (1061)")
            }
            ScFailure::NotStarted => f.write_str("the service has not been started (1062)"),
            ScFailure::Unrecognised { exit_code } => {
                write!(f, "sc.exe exited with {exit_code} without a FAILED line")
            }
            ScFailure::Other { code, message } if message.is_empty() => {
                write!(f, "sc.exe failed with {code}")
            }
            ScFailure::Other { code, message } => write!(f, "sc.exe failed with {code}: {message}"),
        }
    }
}

/// The failure of an `sc.exe` run, or `None` if it succeeded (exit code 0 and no `FAILED` line).
/// `exit_code` is `None` when the program was killed.
pub fn failure(exit_code: Option<i32>, stdout: &str) -> Option<ScFailure> {
    let failed_line = stdout.lines().find_map(failed_code);
    match (failed_line, exit_code) {
        (None, Some(0)) => None,
        (Some(code), _) => Some(ScFailure::from_code(code, explanation(stdout))),
        (None, Some(code)) => Some(ScFailure::Unrecognised { exit_code: code }),
        (None, None) => Some(ScFailure::Other { code: -1, message: "sc.exe was killed".into() }),
    }
}

/// The code of a `[SC] <Function> FAILED <code>:` line.
fn failed_code(line: &str) -> Option<i32> {
    let rest = line.trim().strip_prefix("[SC]")?;
    let (_, after) = rest.split_once("FAILED")?;
    after.trim().trim_end_matches(':').trim().parse().ok()
}

/// The explanation `sc.exe` prints after a `FAILED` line: the first other non-empty line.
fn explanation(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && failed_code(l).is_none())
        .unwrap_or_default()
        .to_string()
}

/// Whether a service name matches a pattern in which `*` stands for any run of characters
/// (`BTSSvc$*`). Service names are case-insensitive on Windows, so the match is too.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    glob(&pattern, &name)
}

/// Iterative `*` glob with backtracking to the last star.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "
SERVICE_NAME: RuleEngineUpdateService
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
";

    const ALL: &str = "
SERVICE_NAME: ENTSSO
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 1  STOPPED
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0

SERVICE_NAME: BTSSvc$SendHost
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
";

    const QC: &str = "[SC] QueryServiceConfig SUCCESS

SERVICE_NAME: BTSSvc$SendHost
        TYPE               : 10  WIN32_OWN_PROCESS
        START_TYPE         : 2   AUTO_START  (DELAYED)
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : \"C:\\Program Files (x86)\\Microsoft BizTalk Server\\BTSNTSvc64.exe\" -group \"BizTalk Group\"
        LOAD_ORDER_GROUP   :
        TAG                : 0
        DISPLAY_NAME       : BizTalk Service BizTalk Group : SendHost
        DEPENDENCIES       : ENTSSO
        SERVICE_START_NAME : CONTOSO\\svc-bts
";

    #[test]
    fn argv_builders_match_the_protocol() {
        assert_eq!(query("ENTSSO"), ["query", "ENTSSO"]);
        assert_eq!(query_all(), ["query", "state=", "all"]);
        assert_eq!(qc("BTSSvc$SendHost"), ["qc", "BTSSvc$SendHost"]);
        assert_eq!(
            config_start("BTSSvc$SendHost", StartMode::Disabled),
            ["config", "BTSSvc$SendHost", "start=", "disabled"]
        );
        assert_eq!(config_start("X", StartMode::DelayedAuto)[3], "delayed-auto");
        assert_eq!(stop("X"), ["stop", "X"]);
        assert_eq!(start("X"), ["start", "X"]);
    }

    #[test]
    fn start_modes_parse_from_start_type_and_keyword() {
        assert_eq!(StartMode::from_start_type("2   AUTO_START"), Some(StartMode::Auto));
        assert_eq!(StartMode::from_start_type("2   AUTO_START  (DELAYED)"), Some(StartMode::DelayedAuto));
        assert_eq!(StartMode::from_start_type("3   DEMAND_START"), Some(StartMode::Demand));
        assert_eq!(StartMode::from_start_type("4   DISABLED"), Some(StartMode::Disabled));
        assert_eq!(StartMode::from_start_type("0   BOOT_START"), None);
        for mode in [StartMode::Auto, StartMode::DelayedAuto, StartMode::Demand, StartMode::Disabled] {
            assert_eq!(StartMode::from_keyword(mode.keyword()), Some(mode));
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.keyword());
        }
    }

    #[test]
    fn parses_one_query_block() {
        let found = parse_query(RUNNING).unwrap();
        assert_eq!(
            found,
            [ServiceStatus { name: "RuleEngineUpdateService".into(), state: ServiceState::Running }]
        );
    }

    #[test]
    fn parses_every_block_of_query_all() {
        let found = parse_query(ALL).unwrap();
        let names: Vec<_> = found.iter().map(|s| (s.name.as_str(), s.state)).collect();
        assert_eq!(names, [("ENTSSO", ServiceState::Stopped), ("BTSSvc$SendHost", ServiceState::Running)]);
        assert!(parse_query("").unwrap().is_empty());
    }

    #[test]
    fn a_block_without_state_is_an_error() {
        let err = parse_query("SERVICE_NAME: X\n        TYPE : 10  WIN32_OWN_PROCESS\n").unwrap_err();
        assert!(err.to_string().contains("service X has no STATE line"), "{err}");
    }

    #[test]
    fn parses_qc() {
        let config = parse_qc(QC).unwrap();
        assert_eq!(config.name, "BTSSvc$SendHost");
        assert_eq!(config.start_mode, StartMode::DelayedAuto);
        assert_eq!(config.display_name, "BizTalk Service BizTalk Group : SendHost");
        assert_eq!(config.account, "CONTOSO\\svc-bts");
        assert!(parse_qc("[SC] QueryServiceConfig SUCCESS\n").is_err());
    }

    #[test]
    fn failures_by_code() {
        let missing = "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n";
        assert_eq!(failure(Some(1060), missing), Some(ScFailure::NotInstalled));
        let qc_missing = "[SC] OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n";
        assert_eq!(failure(Some(1060), qc_missing), Some(ScFailure::NotInstalled));
        let stuck =
            "[SC] ControlService FAILED 1061:\n\nThe service cannot accept control messages at this time.\n";
        assert_eq!(failure(Some(1061), stuck), Some(ScFailure::CannotAcceptControl));
        let not_started = "[SC] ControlService FAILED 1062:\n\nThe service has not been started.\n";
        assert_eq!(failure(Some(1062), not_started), Some(ScFailure::NotStarted));
        let disabled = "[SC] StartService FAILED 1058:\n\nThe service cannot be started, either because it is disabled or because it has no enabled devices associated with it.\n";
        assert_eq!(failure(Some(1058), disabled), Some(ScFailure::Disabled));
        assert_eq!(failure(Some(0), "[SC] ChangeServiceConfig SUCCESS\n"), None);
        assert_eq!(failure(Some(0), RUNNING), None);
        let other = failure(Some(5), "[SC] OpenService FAILED 5:\n\nAccess is denied.\n").unwrap();
        assert_eq!(other, ScFailure::Other { code: 5, message: "Access is denied.".into() });
        assert_eq!(other.to_string(), "sc.exe failed with 5: Access is denied.");
        // A localised Windows: no `[SC] … FAILED <code>:` line to read.
        let french = "[SC] OpenService ÉCHEC 1060 :\n\nLe service spécifié n'existe pas en tant que service installé.\n";
        assert_eq!(failure(Some(1060), french), Some(ScFailure::Unrecognised { exit_code: 1060 }));
    }

    #[test]
    fn patterns_glob_case_insensitively() {
        assert!(name_matches("BTSSvc$*", "BTSSvc$SendHost"));
        assert!(name_matches("btssvc$*", "BTSSvc$SendHost"));
        assert!(name_matches("RuleEngineUpdateService", "RuleEngineUpdateService"));
        assert!(!name_matches("RuleEngineUpdateService", "RuleEngineUpdateService2"));
        assert!(!name_matches("BTSSvc$*", "ENTSSO"));
        assert!(name_matches("*Host", "BTSSvc$SendHost"));
        assert!(name_matches("B*$*Host", "BTSSvc$SendHost"));
        assert!(name_matches("*", ""));
        assert!(!name_matches("BTSSvc$*x", "BTSSvc$SendHost"));
    }
}
