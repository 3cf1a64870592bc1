//! Text from plugins and targets made safe to show. Summaries, messages, logs, reasons and
//! evidence excerpts come from code and machines Drover does not control; printed raw, an escape
//! sequence in them could clear an operator's terminal, rewrite what it shows or set its title.
//! [`visible`] renders every control character except line feed and tab as a visible escape
//! (`\u{1b}`), and so do the reports; [`json`] escapes the few that JSON text leaves raw.
//!
//! The journal keeps the text as it was received (it is evidence); only what is shown goes
//! through here.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a report as it is: C0 and C1 control characters and
/// DEL (line feed and tab excepted), and the bidirectional overrides and isolates that make text
/// read differently from what it is.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character other than `\n` and `\t` written as `\u{…}`, so it can be
/// printed on a terminal or put in a report without acting on it.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text with the control characters JSON leaves raw (DEL, C1, the bidirectional controls)
/// escaped as `\uXXXX` too: the same data, safe on a terminal. They can only occur inside
/// strings, where the escape means the same character.
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_and_the_rest_stays() {
        assert!(matches!(visible("plain text, ünïcode ✓\n\tindented"), Cow::Borrowed(_)));
        assert_eq!(visible("\u{1b}[2Jcleared\u{7}"), "\\u{1b}[2Jcleared\\u{7}");
        assert_eq!(visible("back\rover\u{8}"), "back\\u{d}over\\u{8}");
        assert_eq!(visible("c1 \u{9b}31m del \u{7f}"), "c1 \\u{9b}31m del \\u{7f}");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert!(!visible("\u{1b}]0;title\u{7}").contains('\u{1b}'));
    }

    #[test]
    fn json_keeps_its_data_and_escapes_what_json_leaves_raw() {
        let value = serde_json::json!({ "s": "\u{1b}[2J \u{9b}31m \u{7f} \u{202e} ✓" });
        let text = serde_json::to_string(&value).unwrap();
        let safe = json(&text);
        assert!(!safe.chars().any(hidden), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
        assert!(matches!(json("{\"plain\": \"✓\"}"), Cow::Borrowed(_)));
    }
}
