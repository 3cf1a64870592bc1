//! The log of BizTalk's Configuration tool (`Configuration.exe /S <xml> /L <log>` and `/U /L
//! <log>`), read in the form public captures of real logs show (`lab/PROTOCOL.md`, "Where the
//! formats come from"; `docs/biztalk.md`, "Configuration.exe"), and the verdict on a run.
//!
//! A line is `[<time> <Level> <Component>]<message>`: the time in whatever form the version
//! writes (`1:57:09 PM`, `12:07:59`, `2018-02-22 12:07:55:0663`), the level `Info`, `Warning` or
//! `Error`, the component such as `Configuration Framework`, `ConfigHelper` or `SSOServerCfg`.
//! Microsoft names the feature messages `Building feature XML for: <Feature>`, `Validating
//! feature: <Feature>`, `Configuring feature: <Feature>` and `Unconfiguring feature: <Feature>`.
//! A SQL failure is told by ConfigHelper as its driver's text, then `SQL error: <SQLSTATE>
//! Native error code: <n>`, then the failing `HRESULT`.
//!
//! The verdict rests on what a source backs: the exit code (0 is success, as dsccommunity's
//! configuration resource judges it), `Error` lines, the SQLSTATE class of a SQL error, and
//! Enterprise SSO's error codes (`docs/biztalk.md`, "Enterprise SSO and the master secret"):
//! `0xC0002A0F` (`ENTSSO_E_NO_SSO_SERVER`, the master secret server's SSO service does not
//! answer) and `0xC0002A1F` (`ENTSSO_E_NO_SECRET`, no master secret to encrypt with), read by
//! their code, which no translation changes.
//! Anything else — a failure whose errors say nothing Drover knows, a success with errors, no
//! readable log — is [`Verdict::Unrecognized`], for an operator, never a success. Pure
//! functions only.

use std::fmt;

/// Severity of a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLevel {
    /// `Info`.
    Info,
    /// `Warn` or `Warning`.
    Warning,
    /// `Error`.
    Error,
}

impl LogLevel {
    fn parse(word: &str) -> Option<LogLevel> {
        match word {
            "Info" => Some(LogLevel::Info),
            "Warn" | "Warning" => Some(LogLevel::Warning),
            "Error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// What a log line says about a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureStep {
    /// `Building feature XML for: <feature>`.
    Building,
    /// `Validating feature: <feature>`.
    Validating,
    /// `Configuring feature: <feature>`.
    Configuring,
    /// `Unconfiguring feature: <feature>`.
    Unconfiguring,
}

/// One event of the log: `[<time> <Level> <Component>]<message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// As written, such as `10:15:01` or `2026-11-22 10:15:01:0000`.
    pub time: String,
    /// The level.
    pub level: LogLevel,
    /// Such as `ConfigHelper` or `Configuration Framework`.
    pub component: String,
    /// The message; lines that do not open an event are appended to it.
    pub message: String,
}

impl LogLine {
    /// Parses one line, or `None` when it does not open with a `[<time> <Level> <Component>]`
    /// header.
    fn parse(line: &str) -> Option<LogLine> {
        let (header, message) = line.strip_prefix('[')?.split_once(']')?;
        let words: Vec<&str> = header.split_whitespace().collect();
        // The level is the first known level word after the time; the component follows it.
        let at = (1..words.len()).find(|&i| LogLevel::parse(words[i]).is_some())?;
        if at + 1 >= words.len() {
            return None;
        }
        Some(LogLine {
            time: words[..at].join(" "),
            level: LogLevel::parse(words[at])?,
            component: words[at + 1..].join(" "),
            message: message.strip_prefix(' ').unwrap_or(message).trim_end().to_string(),
        })
    }

    /// The feature this line is about and what happened to it, if it is a feature event.
    pub fn feature_event(&self) -> Option<(&str, FeatureStep)> {
        let m = self.message.as_str();
        let steps = [
            ("Building feature XML for: ", FeatureStep::Building),
            ("Validating feature: ", FeatureStep::Validating),
            ("Configuring feature: ", FeatureStep::Configuring),
            ("Unconfiguring feature: ", FeatureStep::Unconfiguring),
        ];
        steps.into_iter().find_map(|(prefix, step)| m.strip_prefix(prefix).map(|f| (f.trim(), step)))
    }

    /// The SQLSTATE and native error code of a `SQL error: <state> Native error code: <n>` line.
    pub fn sql_error(&self) -> Option<SqlError> {
        let rest = self.message.strip_prefix("SQL error: ")?;
        let (state, native) = rest.split_once(" Native error code: ")?;
        Some(SqlError { state: state.trim().to_string(), native: native.trim().parse().ok()? })
    }
}

/// `ENTSSO_E_NO_SSO_SERVER`: "Could not contact the SSO server '%1'…".
pub const NO_SSO_SERVER: &str = "0xC0002A0F";
/// `ENTSSO_E_NO_SECRET`: "Cannot perform encryption or decryption because the secret is not
/// available from the master secret server…".
pub const NO_SECRET: &str = "0xC0002A1F";

impl LogLine {
    /// The server of an `ENTSSO_E_NO_SSO_SERVER` error: `0xC0002A0F : Could not contact the SSO
    /// server '<server>'. …`.
    pub fn unreachable_sso_server(&self) -> Option<String> {
        let rest = self.message.split_once(NO_SSO_SERVER)?.1;
        let quoted = rest.split_once('\'')?.1.split_once('\'')?.0;
        Some(quoted.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// The master secret server ENTSSO's event 10532 names: `… Secret Server Name: <server> …`.
    pub fn secret_server(&self) -> Option<String> {
        let rest = self.message.split_once("Secret Server Name:")?.1;
        rest.split_whitespace().next().map(ToString::to_string)
    }
}

/// A SQL error as ConfigHelper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// The SQLSTATE, such as `08001`.
    pub state: String,
    /// The native error code, such as `17` or `18456`.
    pub native: i64,
}

impl SqlError {
    /// The connection could not be made, or timed out: SQLSTATE class `08` (connection exception)
    /// or `HYT00`/`HYT01` (timeout). Worth retrying.
    pub fn is_unreachable(&self) -> bool {
        self.state.starts_with("08") || self.state == "HYT00" || self.state == "HYT01"
    }

    /// The server refused the logon: SQLSTATE `28000` (invalid authorization) or SQL Server's
    /// error 18456 (login failed), as for a session without network credentials.
    pub fn is_login_refused(&self) -> bool {
        self.state == "28000" || self.native == 18456
    }
}

/// A parsed configuration log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigLog {
    /// Its events, in order.
    pub lines: Vec<LogLine>,
    /// Non-blank text before the first event: not a log line Drover knows.
    pub preamble: Vec<String>,
}

impl ConfigLog {
    /// Parses the log's text; lines that are not events continue the previous event's message.
    pub fn parse(text: &str) -> ConfigLog {
        let mut log = ConfigLog::default();
        for raw in text.lines().map(|l| l.trim_start_matches('\u{feff}')) {
            match (LogLine::parse(raw), log.lines.last_mut()) {
                (Some(line), _) => log.lines.push(line),
                (None, Some(previous)) if !raw.trim().is_empty() => {
                    previous.message.push('\n');
                    previous.message.push_str(raw.trim_end());
                }
                (None, None) if !raw.trim().is_empty() => log.preamble.push(raw.trim_end().to_string()),
                _ => {}
            }
        }
        log
    }

    /// The `Error` lines.
    pub fn errors(&self) -> impl Iterator<Item = &LogLine> {
        self.lines.iter().filter(|l| l.level == LogLevel::Error)
    }

    /// Every feature event, in order.
    pub fn feature_events(&self) -> Vec<(&str, FeatureStep)> {
        self.lines.iter().filter_map(LogLine::feature_event).collect()
    }

    /// Features the log shows being configured, in order, each once (the `Feature Name` of the
    /// XML, such as `SSOServer,Engine`). Only meaningful for a run that succeeded.
    pub fn configured_features(&self) -> Vec<String> {
        let mut features: Vec<String> = Vec::new();
        for (feature, step) in self.feature_events() {
            if step == FeatureStep::Configuring && !features.iter().any(|f| f == feature) {
                features.push(feature.to_string());
            }
        }
        features
    }

    /// The `Error` lines as written, one a line, for a message.
    fn error_text(&self) -> String {
        self.errors().map(|l| l.message.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// What a run of the Configuration tool says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit code 0 and a log without errors.
    Succeeded,
    /// The group's SQL Server did not answer (SQLSTATE class 08 or a timeout): retry later. The
    /// error lines.
    SqlUnreachable(String),
    /// SQL Server refused the logon (28000, 18456): the account or the second hop needs fixing.
    /// The error lines.
    LoginRefused(String),
    /// The Enterprise SSO service of the master secret server did not answer (`0xC0002A0F`):
    /// start it, then retry.
    SsoServerUnreachable {
        /// The server ENTSSO named (`Could not contact the SSO server '<server>'`).
        server: String,
        /// The error lines.
        errors: String,
    },
    /// The master secret could not be retrieved (`0xC0002A1F`): it must be restored on the
    /// master secret server.
    MasterSecretUnavailable {
        /// The master secret server, when the log names it (`Secret Server Name: <server>`).
        server: Option<String>,
        /// The error lines.
        errors: String,
    },
    /// Anything else: an operator has to read the log. Why, in a few words.
    Unrecognized(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Succeeded => f.write_str("succeeded"),
            Verdict::SqlUnreachable(text) | Verdict::LoginRefused(text) | Verdict::Unrecognized(text) => {
                f.write_str(text)
            }
            Verdict::SsoServerUnreachable { errors, .. }
            | Verdict::MasterSecretUnavailable { errors, .. } => f.write_str(errors),
        }
    }
}

/// Judges a run from its exit code (`None`: killed) and its log's text.
pub fn judge(exit_code: Option<i32>, log_text: &str) -> Verdict {
    let log = ConfigLog::parse(log_text);
    let has_errors = log.errors().next().is_some();
    match exit_code {
        Some(0) if log.lines.is_empty() => {
            Verdict::Unrecognized("it exited 0 but wrote no log line Drover can read".into())
        }
        Some(0) if has_errors => Verdict::Unrecognized("it exited 0 but its log has Error lines".into()),
        Some(0) => Verdict::Succeeded,
        None => Verdict::Unrecognized("it was killed before it ended".into()),
        Some(code) => {
            let sql: Vec<SqlError> = log.errors().filter_map(LogLine::sql_error).collect();
            if sql.iter().any(SqlError::is_unreachable) {
                Verdict::SqlUnreachable(log.error_text())
            } else if sql.iter().any(SqlError::is_login_refused) {
                Verdict::LoginRefused(log.error_text())
            } else if let Some(server) = log.errors().find_map(LogLine::unreachable_sso_server) {
                Verdict::SsoServerUnreachable { server, errors: log.error_text() }
            } else if log.errors().any(|l| l.message.contains(NO_SECRET)) {
                let server = log.lines.iter().find_map(LogLine::secret_server);
                Verdict::MasterSecretUnavailable { server, errors: log.error_text() }
            } else if has_errors {
                Verdict::Unrecognized(format!(
                    "it failed with exit code {code} and errors Drover does not know"
                ))
            } else {
                Verdict::Unrecognized(format!("it failed with exit code {code} and no Error line in its log"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines in the form of the 2018 capture (pastebin.com/dyMNnUUU), as the lab writes them.
    const SUCCESS_LOG: &str =
        "[2026-11-22 10:15:01:0000 Info Configuration Framework]Building feature XML for: SSOServer,Engine\r
[2026-11-22 10:15:01:0000 Info Configuration Framework]Validating feature: SSOServer,Engine\r
[2026-11-22 10:15:02:0000 Info Configuration Framework]Configuring feature: SSOServer,Engine\r
[10:15:03 Info SSOServerCfg] (ssoconfigobj2.cpp:164) Computer name: DRBTS01\r
[2026-11-22 10:15:04:0000 Info Configuration Framework]Configuring feature: WMI\r
[2026-11-22 10:15:05:0000 Info Configuration Framework]Configuring feature: Engine,BTSCfg\r
[2026-11-22 10:15:06:0000 Info Configuration Framework]Configuring feature: RulesEngine\r
";

    /// The 2006 capture's failure, word for word (www.malgreve.net).
    const UNREACHABLE_LOG: &str = "[1:57:09 PM Error ConfigHelper] [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.
[1:57:09 PM Error ConfigHelper] SQL error: 08001 Native error code: 17
[1:57:09 PM Error ConfigHelper] c:\\depotsetupv2\\private\\common\\configwizard\\confighelper\\sqlhelper.cpp(1176): FAILED hr = 80004005
";

    #[test]
    fn reads_both_captured_line_forms() {
        let log = ConfigLog::parse(SUCCESS_LOG);
        assert_eq!(log.lines.len(), 7);
        assert_eq!(
            log.lines[0],
            LogLine {
                time: "2026-11-22 10:15:01:0000".into(),
                level: LogLevel::Info,
                component: "Configuration Framework".into(),
                message: "Building feature XML for: SSOServer,Engine".into(),
            }
        );
        assert_eq!(log.lines[3].component, "SSOServerCfg");
        assert_eq!(log.lines[3].message, "(ssoconfigobj2.cpp:164) Computer name: DRBTS01");
        let failed = ConfigLog::parse(UNREACHABLE_LOG);
        assert_eq!(failed.lines[0].time, "1:57:09 PM");
        assert_eq!(failed.lines[0].component, "ConfigHelper");
        assert_eq!(failed.lines[1].sql_error(), Some(SqlError { state: "08001".into(), native: 17 }));
    }

    #[test]
    fn a_clean_run_succeeds_and_lists_what_it_configured() {
        assert_eq!(judge(Some(0), SUCCESS_LOG), Verdict::Succeeded);
        assert_eq!(
            ConfigLog::parse(SUCCESS_LOG).configured_features(),
            ["SSOServer,Engine", "WMI", "Engine,BTSCfg", "RulesEngine"]
        );
    }

    #[test]
    fn a_connection_failure_is_sql_unreachable() {
        let verdict = judge(Some(1), UNREACHABLE_LOG);
        let Verdict::SqlUnreachable(text) = verdict else { panic!("{verdict:?}") };
        assert!(
            text.starts_with("[DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist"),
            "{text}"
        );
        assert!(text.contains("SQL error: 08001 Native error code: 17"), "{text}");
        let timeout = "[10:15:05 Error ConfigHelper] Login timeout expired\n[10:15:05 Error ConfigHelper] SQL error: HYT00 Native error code: 0\n";
        assert!(matches!(judge(Some(1), timeout), Verdict::SqlUnreachable(_)));
    }

    #[test]
    fn a_refused_logon_is_login_refused() {
        let log = "[10:15:05 Error ConfigHelper] Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n[10:15:05 Error ConfigHelper] SQL error: 28000 Native error code: 18456\n";
        let Verdict::LoginRefused(text) = judge(Some(1), log) else { panic!() };
        assert!(text.starts_with("Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'."), "{text}");
    }

    #[test]
    fn anything_else_is_unrecognized_never_success() {
        let other = "[10:15:05 Error ConfigHelper] The computer name DRBIZTALKSERVER02 is longer than 15 characters.\n";
        let cases = [
            (Some(1), other, "it failed with exit code 1 and errors Drover does not know"),
            (Some(1), SUCCESS_LOG, "it failed with exit code 1 and no Error line in its log"),
            (Some(0), "", "it exited 0 but wrote no log line Drover can read"),
            (Some(0), "Konfiguration erfolgreich\n", "it exited 0 but wrote no log line Drover can read"),
            (
                Some(0),
                "[2026-11-22 10:15:01] Info  ConfigHelper: Feature SSO configured successfully\n",
                "it exited 0 but wrote no log line Drover can read",
            ),
            (Some(0), other, "it exited 0 but its log has Error lines"),
            (None, SUCCESS_LOG, "it was killed before it ended"),
        ];
        for (code, log, why) in cases {
            assert_eq!(judge(code, log), Verdict::Unrecognized(why.into()), "{code:?} {log}");
        }
    }

    /// What the lab writes when the master secret server's ENTSSO is stopped (`lab/PROTOCOL.md`).
    const SSO_STOPPED_LOG: &str = "[10:15:01 Error SSOServerCfg] 0xC0002A0F : Could not contact the SSO server 'PRDSSO01'. Check that SSO is configured and that the SSO service is running on that server. (RPC: 0x800706D9: There are no more endpoints available from the endpoint mapper.)\n";

    /// What the lab writes when the master secret cannot be retrieved.
    const NO_SECRET_LOG: &str = "[10:15:01 Warning SSOServerCfg] Failed to retrieve master secrets. Verify that the master secret server name is correct and that it is available. Secret Server Name: PRDSSO01 Error Code: 0xC0002919, Could not load secrets from the registry of the master secret server.
[10:15:01 Error SSOServerCfg] 0xC0002A1F : Cannot perform encryption or decryption because the secret is not available from the master secret server. See the event log for related errors.
";

    #[test]
    fn enterprise_sso_failures_are_told_by_their_codes() {
        let Verdict::SsoServerUnreachable { server, errors } = judge(Some(1), SSO_STOPPED_LOG) else {
            panic!("{:?}", judge(Some(1), SSO_STOPPED_LOG))
        };
        assert_eq!(server, "PRDSSO01");
        assert!(errors.starts_with("0xC0002A0F : Could not contact the SSO server 'PRDSSO01'."), "{errors}");
        let Verdict::MasterSecretUnavailable { server, errors } = judge(Some(1), NO_SECRET_LOG) else {
            panic!("{:?}", judge(Some(1), NO_SECRET_LOG))
        };
        assert_eq!(server.as_deref(), Some("PRDSSO01"));
        assert!(errors.starts_with("0xC0002A1F : Cannot perform encryption or decryption"), "{errors}");
        assert!(!errors.contains("Failed to retrieve"), "only the Error lines: {errors}");
        // Without event 10532's line the server is not known; a success with the code is not one.
        let bare = NO_SECRET_LOG.lines().nth(1).unwrap();
        assert_eq!(
            judge(Some(1), bare),
            Verdict::MasterSecretUnavailable {
                server: None,
                errors: bare.split_once("] ").unwrap().1.to_string()
            }
        );
        assert!(matches!(judge(Some(0), SSO_STOPPED_LOG), Verdict::Unrecognized(_)));
        // The SQL Server not answering wins: it is the cause of everything after it.
        let both = format!("{UNREACHABLE_LOG}{SSO_STOPPED_LOG}");
        assert!(matches!(judge(Some(1), &both), Verdict::SqlUnreachable(_)));
    }

    #[test]
    fn continuation_lines_join_the_previous_message_and_a_preamble_is_kept() {
        let log = ConfigLog::parse(
            "garbage before\n[10:15:05 Error ConfigHelper] Failed:\n   at Some.Stack()\n\n[10:15:06 Warning X] y\n",
        );
        assert_eq!(log.preamble, ["garbage before"]);
        assert_eq!(log.lines.len(), 2);
        assert_eq!(log.lines[0].message, "Failed:\n   at Some.Stack()");
        assert_eq!(log.lines[1].level, LogLevel::Warning);
    }

    #[test]
    fn a_header_without_a_known_level_or_component_is_not_an_event() {
        for line in
            ["[2026-11-22 10:15:01] Info  ConfigHelper: x", "[10:15:01 Info] x", "[Info ConfigHelper] x"]
        {
            assert_eq!(LogLine::parse(line), None, "{line}");
        }
    }
}
