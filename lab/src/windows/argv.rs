//! How arguments reach a program on Windows, where a process gets one command line and parses
//! it itself (`lab/PROTOCOL.md`, "Windows over SSH", "The arguments a program gets").
//!
//! - [`arguments_51`]: the argument string Windows PowerShell 5.1 builds for a native command
//!   from the values it passes (its `NativeCommandParameterBinder`): an empty value is dropped,
//!   the others are joined with one space, and a value is wrapped in `"` when it holds white
//!   space (.NET's `char.IsWhiteSpace`) outside the double quotes it counts. 5.1 counts **every**
//!   `"`, a `\"` too: skipping a `"` after a `\` came with PowerShell 6 (PowerShell commit
//!   8bca1f50c5, 2016-09-03, after 6.0.0-alpha.9, "Fix passing escaped double quoted spaces to
//!   native executables"); embedded quotes are never escaped (PowerShell issues #1995 and
//!   #15143, fixed only in PowerShell 7.3).
//! - [`split_arguments`]: how the Microsoft C runtime (2008 and later) and
//!   `CommandLineToArgvW` read the arguments after the program name back: 2n backslashes and a
//!   `"` are n backslashes and a quote that opens or closes, 2n+1 backslashes and a `"` are n
//!   backslashes and a literal `"`, other backslashes are literal, `""` inside quotes is a
//!   literal `"`, and space or tab outside quotes ends an argument.
//!
//! This is the lab's own model, written from those sources; it never calls Drover's engine.

/// .NET's `char.IsWhiteSpace`: the Unicode space, line and paragraph separators, and the
/// controls tab to carriage return and U+0085.
pub fn is_dotnet_white_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Windows PowerShell 5.1's `NeedQuotes`: white space after an even number of `"` (every `"`
/// counted).
pub fn needs_quotes_51(value: &str) -> bool {
    let mut quotes = 0usize;
    for c in value.chars() {
        if c == '"' {
            quotes += 1;
        } else if is_dotnet_white_space(c) && quotes.is_multiple_of(2) {
            return true;
        }
    }
    false
}

/// The argument string Windows PowerShell 5.1 passes to a native program for `values`.
pub fn arguments_51(values: &[String]) -> String {
    let passed: Vec<String> = values
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| if needs_quotes_51(v) { format!("\"{v}\"") } else { v.clone() })
        .collect();
    passed.join(" ")
}

/// The arguments a C-runtime program reads from `line` (the command line after its name).
pub fn split_arguments(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        if i == chars.len() {
            return args;
        }
        let mut arg = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' => {
                    let start = i;
                    while chars.get(i) == Some(&'\\') {
                        i += 1;
                    }
                    let run = i - start;
                    if chars.get(i) == Some(&'"') {
                        arg.extend(std::iter::repeat_n('\\', run / 2));
                        if run % 2 == 1 {
                            arg.push('"');
                            i += 1;
                        }
                    } else {
                        arg.extend(std::iter::repeat_n('\\', run));
                    }
                }
                '"' if quoted && chars.get(i + 1) == Some(&'"') => {
                    arg.push('"');
                    i += 2;
                }
                '"' => {
                    quoted = !quoted;
                    i += 1;
                }
                ' ' | '\t' if !quoted => break,
                _ => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// What a native program started by Windows PowerShell 5.1 with `values` reads as its
/// arguments: [`split_arguments`] of [`arguments_51`].
pub fn received_51(values: &[String]) -> Vec<String> {
    split_arguments(&arguments_51(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_arguments(line)
    }

    #[test]
    fn the_c_runtime_rules() {
        assert_eq!(words(r#"a b  "c d" e"f g"h"#), ["a", "b", "c d", "ef gh"]);
        assert_eq!(words(r#"a\\\"b"#), [r#"a\"b"#], "2n+1 backslashes and a quote");
        assert_eq!(words(r#""a\\" b"#), [r"a\", "b"], "2n backslashes and a quote");
        assert_eq!(words(r"C:\dir\ x\\y"), [r"C:\dir\", r"x\\y"], "backslashes alone are literal");
        assert_eq!(words(r#""say ""hi"" now""#), [r#"say "hi" now"#], "\"\" inside quotes");
        assert_eq!(words(r#""" x"#), ["", "x"], "an empty argument");
        assert_eq!(words(" \t "), Vec::<String>::new());
        assert_eq!(words("tab\there"), ["tab", "here"]);
        assert_eq!(words("\"two\nlines\""), ["two\nlines"]);
    }

    #[test]
    fn windows_powershell_51_quotes_white_space_outside_the_quotes_it_counts() {
        assert!(!needs_quotes_51("plain"));
        assert!(needs_quotes_51("a b"));
        assert!(
            needs_quotes_51("tab\there") && needs_quotes_51("nbsp\u{a0}x") && needs_quotes_51("line\nfeed")
        );
        assert!(!needs_quotes_51(r#""a b""#), "inside quotes");
        assert!(!needs_quotes_51(r#"x"a b"y"#));
        // Every quote counts, one after a backslash too (PowerShell 6 stopped counting it).
        assert!(needs_quotes_51(r#""3\" of snow""#));
        assert!(!needs_quotes_51(r#""say \"hi\"""#), "the white space comes before the quotes");
    }

    #[test]
    fn empty_values_are_dropped_and_the_others_joined() {
        let values: Vec<String> = ["a b", "", "c", r#""""#].map(String::from).to_vec();
        assert_eq!(arguments_51(&values), r#""a b" c """#);
        assert_eq!(received_51(&values), ["a b", "c", ""]);
        assert_eq!(received_51(&[String::new()]), Vec::<String>::new());
    }

    #[test]
    fn embedded_quotes_are_not_escaped() {
        // What PowerShell's issue #1995 is about: `a "b c" d` passed as is.
        assert_eq!(received_51(&[r#"a "b c" d"#.to_owned()]), ["a b", "c d"]);
        // A value written for the C runtime survives when 5.1 adds no quotes around it...
        assert_eq!(received_51(&[r#""say \"hi\"""#.to_owned()]), [r#"say "hi""#]);
        // ...and breaks when it does: 5.1 counted the escaped quote.
        assert_eq!(arguments_51(&[r#""3\" of snow""#.to_owned()]), r#"""3\" of snow"""#);
        assert_eq!(received_51(&[r#""3\" of snow""#.to_owned()]), [r#"3""#, "of", "snow"]);
    }
}
