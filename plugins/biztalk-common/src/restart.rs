//! Restarting a Windows service with PowerShell's `Restart-Service -Force` (`lab/PROTOCOL.md`,
//! "Failover: WMI and the rule engine restarted"; docs/biztalk.md, "Failover activation", F9):
//! the script plugins send and its failures by the text PowerShell prints.
//!
//! `-Force` because `winmgmt` has dependent services: without it PowerShell refuses to stop a
//! service with dependents; with it, it stops them, then starts every service it stopped
//! (`Restart-Service`'s documentation: "-Force: Restarts a service that has dependent services").
//! Pure text in, typed values out: nothing here runs anything.

use crate::powershell::single_quoted;

/// The Windows Management Instrumentation service, whose restart makes BizTalk's WMI provider
/// read the management database's location again.
pub const WINMGMT: &str = "winmgmt";
/// BizTalk's rule engine update service.
pub const RULE_ENGINE: &str = "RuleEngineUpdateService";

/// The script, `{name}` standing for a single-quoted service name.
const TEMPLATE: &str = "$ErrorActionPreference = 'Stop'; Restart-Service -Name '{name}' -Force";

/// The script that restarts `name` (and the services depending on it).
pub fn restart_service(name: &str) -> String {
    TEMPLATE.replace("'{name}'", &single_quoted(name))
}

/// Why a restart failed, from what PowerShell printed on standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartFailure {
    /// The service did not stop (it cannot accept control messages, or opening it was denied).
    NotStopped(String),
    /// The service stopped but did not start (disabled, or a dependency failed).
    NotStarted(String),
    /// No service has that name.
    NotFound(String),
}

impl RestartFailure {
    /// The failure a `Restart-Service : …` line names, or `None` for any other text (an answer
    /// Drover does not recognise).
    pub fn parse(stderr: &str) -> Option<Self> {
        let message = stderr.lines().find_map(|l| l.strip_prefix("Restart-Service : "))?.trim().to_owned();
        if message.starts_with("Cannot find any service with service name ") {
            Some(RestartFailure::NotFound(message))
        } else if message.starts_with("Service '")
            && message.contains("' cannot be stopped due to the following error: ")
        {
            Some(RestartFailure::NotStopped(message))
        } else if message.starts_with("Service '")
            && message.contains("' cannot be started due to the following error: ")
        {
            Some(RestartFailure::NotStarted(message))
        } else {
            None
        }
    }
}

impl std::fmt::Display for RestartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartFailure::NotStopped(m) | RestartFailure::NotStarted(m) | RestartFailure::NotFound(m) => {
                f.write_str(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_the_name() {
        assert_eq!(
            restart_service(WINMGMT),
            "$ErrorActionPreference = 'Stop'; Restart-Service -Name 'winmgmt' -Force"
        );
        assert_eq!(
            restart_service("it's"),
            "$ErrorActionPreference = 'Stop'; Restart-Service -Name 'it''s' -Force"
        );
    }

    #[test]
    fn failures_are_read_from_powershells_error_line() {
        let stopped = "Restart-Service : Service 'Rule Engine Update Service (RuleEngineUpdateService)' cannot be stopped due to the following error: Cannot stop RuleEngineUpdateService service on computer '.'.\n";
        assert!(matches!(RestartFailure::parse(stopped), Some(RestartFailure::NotStopped(_))));
        let started = "Restart-Service : Service 'Rule Engine Update Service (RuleEngineUpdateService)' cannot be started due to the following error: Cannot start service RuleEngineUpdateService on computer '.'.\n";
        assert_eq!(
            RestartFailure::parse(started).map(|f| f.to_string()).as_deref(),
            Some(started.trim_end().trim_start_matches("Restart-Service : "))
        );
        let missing = "Restart-Service : Cannot find any service with service name 'x'.\n";
        assert!(matches!(RestartFailure::parse(missing), Some(RestartFailure::NotFound(_))));
        assert_eq!(RestartFailure::parse("Restart-Service : Le service n'a pas pu démarrer.\n"), None);
        assert_eq!(RestartFailure::parse(""), None);
    }
}
