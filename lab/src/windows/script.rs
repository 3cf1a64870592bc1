//! The PowerShell scripts the lab's Windows shell runs (`lab/PROTOCOL.md`, "Windows over SSH",
//! "Scripts"): four shapes, matched character for character, whose only variable parts are
//! PowerShell single-quoted string literals. Anything else is a script the lab does not know.
//!
//! A literal opens with one of the five characters PowerShell reads as a single quote (`'`,
//! U+2018, U+2019, U+201A, U+201B) and closes with one that is not followed by another; inside
//! it, a single-quote character followed by another stands for that second one (PowerShell's
//! tokenizer), and nothing else is special: `$`, backticks and `"` are text.
//!
//! The shapes are written here independently of Drover's engine (the lab is a model of what the
//! engine must send, so the engine's tests can fail against it).

/// The first line of every script.
macro_rules! prelude {
    () => {
        "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)"
    };
}

/// The `catch` block every script but the write script ends with.
macro_rules! catch {
    () => {
        "catch { [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + \
         $_.Exception.Message); exit 250 }"
    };
}

/// Marks one single-quoted literal in a shape.
const LITERAL: char = '\u{E000}';
/// Marks zero or more literals, each after one space.
const LITERALS: char = '\u{E001}';

/// Runs a program: `& <program> <argument>…`, then exits with its exit code.
pub const EXEC: &str = concat!(prelude!(), "\ntry { & \u{E000}\u{E001} } ", catch!(), "\nexit $LASTEXITCODE");

/// Prints a file in base64 lines, or exits 2 when it is missing.
pub const READ: &str = concat!(
    prelude!(),
    "\n$path = \u{E000}\n",
    "if (-not [IO.File]::Exists($path)) { [Console]::Error.WriteLine('drover-powershell: not found: ' + $path); exit 2 }\n",
    "try { [Console]::Out.Write([Convert]::ToBase64String([IO.File]::ReadAllBytes($path), 'InsertLineBreaks')) } ",
    catch!()
);

/// Writes standard input (base64 lines) to a temporary file and moves it over the path.
pub const WRITE: &str = concat!(
    prelude!(),
    "\n$path = \u{E000}\n$temporary = \u{E000}\n",
    "if (-not [IO.Directory]::Exists([IO.Path]::GetDirectoryName($path))) { [Console]::Error.WriteLine('drover-powershell: not found: ' + [IO.Path]::GetDirectoryName($path)); exit 2 }\n",
    "try { [IO.File]::WriteAllBytes($temporary, [Convert]::FromBase64String([Console]::In.ReadToEnd())); ",
    "Move-Item -LiteralPath $temporary -Destination $path -Force -ErrorAction Stop } ",
    "catch { Remove-Item -LiteralPath $temporary -Force -ErrorAction SilentlyContinue; ",
    "[Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }"
);

/// Removes a file if it exists.
pub const REMOVE: &str = concat!(
    prelude!(),
    "\n$path = \u{E000}\ntry { if ([IO.File]::Exists($path)) { [IO.File]::Delete($path) } } ",
    catch!()
);

/// A script the lab knows, with its literals' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// [`EXEC`]: the program and the values of its arguments.
    Exec {
        /// The program, as written.
        program: String,
        /// The arguments' values (what PowerShell passes on, before 5.1 builds the command line).
        args: Vec<String>,
    },
    /// [`READ`].
    Read {
        /// The file.
        path: String,
    },
    /// [`WRITE`].
    Write {
        /// The file.
        path: String,
        /// The temporary file beside it.
        temporary: String,
    },
    /// [`REMOVE`].
    Remove {
        /// The file.
        path: String,
    },
}

impl Script {
    /// The script `text` is, if the lab knows its shape.
    pub fn parse(text: &str) -> Option<Script> {
        if let Some(mut values) = match_shape(EXEC, text) {
            let program = values.remove(0);
            return Some(Script::Exec { program, args: values });
        }
        if let Some([path]) = match_shape(READ, text).and_then(|v| <[String; 1]>::try_from(v).ok()) {
            return Some(Script::Read { path });
        }
        if let Some([path, temporary]) =
            match_shape(WRITE, text).and_then(|v| <[String; 2]>::try_from(v).ok())
        {
            return Some(Script::Write { path, temporary });
        }
        let [path] = match_shape(REMOVE, text).and_then(|v| <[String; 1]>::try_from(v).ok())?;
        Some(Script::Remove { path })
    }
}

/// The shape as `lab/PROTOCOL.md` writes it: `<literal>` and ` <literal>…` where its markers are.
pub fn readable(shape: &str) -> String {
    shape.replace(LITERAL, "<literal>").replace(LITERALS, " <literal>…")
}

/// Whether PowerShell reads `c` as a single quote.
pub fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// The values of the literals where `shape` has markers, if `text` is that shape.
fn match_shape(shape: &str, text: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    let mut rest = text;
    let mut pieces = shape.split_inclusive([LITERAL, LITERALS]);
    for piece in pieces.by_ref() {
        let (fixed, marker) = match piece.chars().last() {
            Some(m @ (LITERAL | LITERALS)) => (&piece[..piece.len() - m.len_utf8()], Some(m)),
            _ => (piece, None),
        };
        rest = rest.strip_prefix(fixed)?;
        match marker {
            Some(LITERAL) => {
                let (value, after) = literal(rest)?;
                values.push(value);
                rest = after;
            }
            Some(_) => {
                while let Some(after_space) = rest.strip_prefix(' ')
                    && after_space.starts_with(is_single_quote)
                {
                    let (value, after) = literal(after_space)?;
                    values.push(value);
                    rest = after;
                }
            }
            None => {}
        }
    }
    rest.is_empty().then_some(values)
}

/// The value of the single-quoted literal `text` starts with, and the text after it.
fn literal(text: &str) -> Option<(String, &str)> {
    let mut chars = text.char_indices();
    let (_, open) = chars.next()?;
    if !is_single_quote(open) {
        return None;
    }
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        if is_single_quote(c) {
            match text[at + c.len_utf8()..].chars().next() {
                Some(next) if is_single_quote(next) => {
                    value.push(next);
                    chars.next();
                }
                _ => return Some((value, &text[at + c.len_utf8()..])),
            }
        } else {
            value.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exec script as Drover's engine writes it (`engine/src/target/windows.rs`), copied as
    /// text: literals given already quoted.
    fn exec_text(program: &str, literals: &[&str]) -> String {
        let mut call = format!("& {program}");
        for literal in literals {
            call.push(' ');
            call.push_str(literal);
        }
        format!(
            "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)\ntry {{ {call} }} catch {{ \
             [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + \
             $_.Exception.Message); exit 250 }}\nexit $LASTEXITCODE"
        )
    }

    #[test]
    fn exec_scripts_give_their_literals_values() {
        let text = exec_text("'sc.exe'", &["'query'", r#"'"it''s a b"'"#, r#"'""'"#]);
        assert_eq!(
            Script::parse(&text),
            Some(Script::Exec {
                program: "sc.exe".into(),
                args: vec!["query".into(), r#""it's a b""#.into(), r#""""#.into()]
            })
        );
        let text = exec_text("'x'", &[]);
        assert_eq!(Script::parse(&text), Some(Script::Exec { program: "x".into(), args: vec![] }));
    }

    #[test]
    fn every_single_quote_powershell_knows_is_doubled_or_closes() {
        let text = exec_text("'p'", &["'Zoë’’s ‘‘x’’ ‚‚y‛‛'", "‘typographic’", "'$x `y` \"z\"'", "''"]);
        let Some(Script::Exec { args, .. }) = Script::parse(&text) else { panic!("{text}") };
        assert_eq!(args, ["Zoë’s ‘x’ ‚y‛", "typographic", "$x `y` \"z\"", ""]);
        // PowerShell's tokenizer: a quote followed by any other quote is the second one.
        assert_eq!(literal("'a'’b' rest"), Some(("a’b".into(), " rest")));
        assert_eq!(literal("'open"), None);
        assert_eq!(literal("\"double\""), None);
    }

    #[test]
    fn file_scripts() {
        let prelude = "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)";
        let catch = "catch { [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }";
        let read = format!(
            "{prelude}\n$path = 'C:\\it''s\\x.xml'\nif (-not [IO.File]::Exists($path)) {{ [Console]::Error.WriteLine('drover-powershell: not found: ' + $path); exit 2 }}\ntry {{ [Console]::Out.Write([Convert]::ToBase64String([IO.File]::ReadAllBytes($path), 'InsertLineBreaks')) }} {catch}"
        );
        assert_eq!(Script::parse(&read), Some(Script::Read { path: r"C:\it's\x.xml".into() }));
        let write = format!(
            "{prelude}\n$path = 'C:\\d\\x'\n$temporary = 'C:\\d\\.x.tmp'\nif (-not [IO.Directory]::Exists([IO.Path]::GetDirectoryName($path))) {{ [Console]::Error.WriteLine('drover-powershell: not found: ' + [IO.Path]::GetDirectoryName($path)); exit 2 }}\ntry {{ [IO.File]::WriteAllBytes($temporary, [Convert]::FromBase64String([Console]::In.ReadToEnd())); Move-Item -LiteralPath $temporary -Destination $path -Force -ErrorAction Stop }} catch {{ Remove-Item -LiteralPath $temporary -Force -ErrorAction SilentlyContinue; [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }}"
        );
        assert_eq!(
            Script::parse(&write),
            Some(Script::Write { path: r"C:\d\x".into(), temporary: r"C:\d\.x.tmp".into() })
        );
        let remove = format!(
            "{prelude}\n$path = 'C:\\d\\x'\ntry {{ if ([IO.File]::Exists($path)) {{ [IO.File]::Delete($path) }} }} {catch}"
        );
        assert_eq!(Script::parse(&remove), Some(Script::Remove { path: r"C:\d\x".into() }));
    }

    #[test]
    fn anything_else_is_unknown() {
        let good = exec_text("'sc.exe'", &["'query'"]);
        for bad in [
            good.replace("& 'sc.exe'", "& sc.exe"),
            good.replace("'query'", "\"query\""),
            good.replace("'query'", "'query'; whoami"),
            good.replace("'query'", "'query'  'x'"),
            good.replace('\n', "\r\n"),
            good.replace("exit 250", "exit 1"),
            format!("{good}\n"),
            "Get-Service".to_owned(),
            String::new(),
        ] {
            assert_eq!(Script::parse(&bad), None, "{bad}");
        }
        assert!(readable(EXEC).contains("try { & <literal> <literal>… } catch {"));
    }

    #[test]
    fn protocol_md_gives_the_shapes_word_for_word() {
        let protocol = include_str!("../../PROTOCOL.md");
        for shape in [EXEC, READ, WRITE, REMOVE] {
            assert!(protocol.contains(&format!("```\n{}\n```", readable(shape))), "{}", readable(shape));
        }
    }
}
