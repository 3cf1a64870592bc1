//! Output a plugin does not recognise. Drover's BizTalk plugins read only answers a source backs
//! (`lab/PROTOCOL.md`, "Where the formats come from"); anything else — another version's wording,
//! a localised Windows, a tool that printed nothing where it should have — ends the attempt as
//! **needing an operator**, never as a success and never as a guessed error class. The message
//! carries the raw text, bounded, since a failed attempt has no evidence but its message and
//! logs. Pure functions only.

use drover_sdk::{Executed, StepError};

/// At most this many lines of each raw text go into a message.
pub const MAX_LINES: usize = 40;
/// At most this many characters of each raw text go into a message.
pub const MAX_CHARS: usize = 4000;

/// The needs-operator error for `what` (a tool, such as `sc.exe query`) on `target`, which
/// answered in a way Drover does not recognise (`why`), with its exit code (`None`: killed) and
/// each raw text that came back, labelled (`("stdout", …)`, `("log C:\x.log", …)`). Empty texts
/// are named as empty.
pub fn needs_operator(
    what: &str,
    target: &str,
    why: &str,
    exit_code: Option<i32>,
    raw: &[(&str, &str)],
) -> StepError {
    let code = exit_code.map_or("none (killed)".to_string(), |c| c.to_string());
    let mut message = format!(
        "{what} on {target} answered in a way Drover does not recognise ({why}); read its output, \
         then retry or skip the step by hand\nexit code: {code}"
    );
    for (label, text) in raw {
        message.push('\n');
        message.push_str(&section(label, text));
    }
    StepError::needs_operator(message)
}

/// [`needs_operator`] for a program that ran: its exit code, stdout and stderr.
pub fn program(what: &str, target: &str, why: &str, ran: &Executed) -> StepError {
    needs_operator(
        what,
        target,
        why,
        ran.output.exit_code,
        &[("stdout", &ran.stdout()), ("stderr", &ran.stderr())],
    )
}

/// `label:` and the text indented by two spaces, bounded; `label: (empty)` when blank.
fn section(label: &str, text: &str) -> String {
    if text.trim().is_empty() {
        return format!("{label}: (empty)");
    }
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut out = format!("{label}:");
    let mut chars = 0;
    for (shown, line) in lines.iter().enumerate() {
        if shown == MAX_LINES || chars + line.len() > MAX_CHARS {
            out.push_str(&format!("\n  … {} more lines", lines.len() - shown));
            break;
        }
        chars += line.len();
        out.push_str("\n  ");
        out.push_str(line.trim_end_matches('\r'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_tool_and_carries_the_raw_text() {
        let err = needs_operator(
            "sc.exe qc ENTSSO",
            "DRBTS01",
            "no START_TYPE line",
            Some(0),
            &[("stdout", "[SC] QueryServiceConfig réussi(e)\r\n\r\nNOM_SERVICE: ENTSSO\r\n"), ("stderr", "")],
        );
        let StepError::NeedsOperator(message) = err else { panic!("{err:?}") };
        assert_eq!(
            message,
            "sc.exe qc ENTSSO on DRBTS01 answered in a way Drover does not recognise (no START_TYPE \
             line); read its output, then retry or skip the step by hand\nexit code: 0\nstdout:\n  \
             [SC] QueryServiceConfig réussi(e)\n  \n  NOM_SERVICE: ENTSSO\nstderr: (empty)"
        );
    }

    #[test]
    fn long_output_is_bounded() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let StepError::NeedsOperator(message) = needs_operator("x", "S", "why", None, &[("stdout", &text)])
        else {
            panic!()
        };
        assert!(message.contains("exit code: none (killed)"), "{message}");
        assert!(message.contains("  line 39\n  … 60 more lines"), "{message}");
        assert!(!message.contains("line 40\n"), "{message}");
    }
}
