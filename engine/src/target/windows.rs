//! What the `ssh` transport sends to a Windows server (`os = "windows"`): every command is one
//! PowerShell script, sent as `powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64 of
//! the script in UTF-16LE>`. The remote command line then holds only letters, digits, `+`, `/` and
//! `=`, so neither cmd.exe (Windows OpenSSH's default shell) nor PowerShell (when it is the
//! default shell) can read anything into it.
//!
//! Inside the script a program runs through the call operator, each argument a PowerShell
//! single-quoted literal (`'` and the four typographic single quotes PowerShell also accepts are
//! doubled). Windows hands a program one command line, never an argv: Windows PowerShell 5.1
//! (`powershell.exe` on Windows Server 2016 to 2022) builds it by joining the arguments with
//! spaces, wrapping in double quotes one that holds white space after an even number of `"`
//! (every `"` counts in 5.1; the rule that skips `\"` is PowerShell 6's, commit 8bca1f50c5), and
//! it neither escapes embedded `"` nor passes an empty argument (PowerShell issues #1995 and
//! #15143; fixed only in PowerShell 7.3). So each argument is first written as the Microsoft C
//! runtime reads it back ([`native_arg`]: quoted when empty or holding white space, `\` before
//! `"` doubled, `"` escaped), which 5.1 passes through untouched unless white space follows an
//! odd number of embedded `"`: no escaping survives both 5.1 and the C runtime's older rules
//! there, so such an argument is refused ([`Unsendable`]) rather than split. A PowerShell script
//! given to `powershell.exe -Command` (scripts are full of quotes and spaces) is sent as
//! `-EncodedCommand` instead, which means the same to PowerShell. Programs that parse their
//! command line their own way (cmd.exe and batch files above all) are outside the promise.
//!
//! Standard input is not touched by the script: the program inherits the SSH channel's, so what
//! Drover writes there (a password the host filled in) reaches it byte for byte and never a
//! command line. The console's output encoding is UTF-8. The script exits with the program's
//! exit code (`$LASTEXITCODE`); a PowerShell error (the program does not exist, say) is written
//! to stderr after [`ERROR_MARK`] and exits with [`ERROR_EXIT`].
//!
//! Files move through PowerShell too when SFTP is not used: a read prints the file in base64
//! lines; a write sends the contents in base64 lines on standard input (never in the script),
//! written to a temporary file beside the target and moved over it; a missing file is exit code
//! [`FILE_MISSING_EXIT`]. Through SFTP, a Windows path `C:\Dir\file` is `/C:/Dir/file`.
//!
//! `lab/PROTOCOL.md` ("Windows over SSH") gives the same scripts, as the lab's shell accepts them.

use base64::Engine as _;

/// The program every remote command line starts with.
pub const POWERSHELL: &str = "powershell.exe";

/// What the first line on stderr starts with when the script itself failed (not the program).
pub const ERROR_MARK: &str = "drover-powershell: ";

/// The exit code of a script that failed in PowerShell, before or instead of the program.
pub const ERROR_EXIT: i32 = 250;

/// The exit code of a file script whose file (or folder) does not exist.
pub const FILE_MISSING_EXIT: i32 = 2;

/// The first line of every script: PowerShell and the programs it starts write UTF-8.
const PRELUDE: &str = "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)";

/// The catch block every script ends its `try` with: the error after [`ERROR_MARK`].
fn catch_block(exit: i32) -> String {
    format!(
        "catch {{ [Console]::Error.WriteLine('{ERROR_MARK}' + $_.FullyQualifiedErrorId + ': ' + \
         $_.Exception.Message); exit {exit} }}"
    )
}

/// A word that cannot go into a Windows command line or script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} cannot be sent to a Windows server: {why}")]
pub struct Unsendable {
    /// What it was (an argument, a path).
    pub what: &'static str,
    /// The word.
    pub value: String,
    /// Why not.
    pub why: &'static str,
}

fn sendable(what: &'static str, value: &str) -> Result<(), Unsendable> {
    if value.contains('\0') {
        Err(Unsendable { what, value: value.to_owned(), why: "it holds a NUL character" })
    } else {
        Ok(())
    }
}

/// Whether Windows PowerShell 5.1 wraps a native argument in double quotes (its `NeedQuotes`):
/// when it holds white space after an even number of `"`, every `"` counted.
fn powershell51_wraps(arg: &str) -> bool {
    let mut quotes = 0usize;
    arg.chars().any(|c| {
        if c == '"' {
            quotes += 1;
        }
        c.is_whitespace() && quotes.is_multiple_of(2)
    })
}

/// `arg` as [`native_arg`] writes it, or why Windows PowerShell 5.1 would split it.
fn native_arg_through_powershell51(arg: &str) -> Result<String, Unsendable> {
    sendable("the argument", arg)?;
    let native = native_arg(arg);
    if powershell51_wraps(&native) {
        return Err(Unsendable {
            what: "the argument",
            value: arg.to_owned(),
            why: "it holds white space after a double quote, which Windows PowerShell 5.1 splits \
                  into several arguments whatever the escaping (send such text on standard input or \
                  in a file)",
        });
    }
    Ok(native)
}

/// Whether `program` is Windows PowerShell (`powershell` or `powershell.exe`, any case, any
/// folder).
fn is_powershell(program: &str) -> bool {
    let name = program.rsplit(['\\', '/']).next().unwrap_or(program).to_ascii_lowercase();
    name == "powershell" || name == "powershell.exe"
}

/// The arguments of `powershell.exe … -Command <script>` with the script as `-EncodedCommand`;
/// other arguments as they are.
fn encode_powershell_command(program: &str, args: &[String]) -> Vec<String> {
    match args {
        [options @ .., command, script]
            if is_powershell(program) && command.eq_ignore_ascii_case("-Command") =>
        {
            let mut encoded = options.to_vec();
            encoded.push("-EncodedCommand".to_owned());
            encoded.push(encode_utf16le(script));
            encoded
        }
        _ => args.to_vec(),
    }
}

/// The characters PowerShell reads as a single quote: `'` and the typographic ones.
const SINGLE_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// `text` as a PowerShell single-quoted string literal: nothing in it is expanded, and each
/// single-quote character is doubled (PowerShell reads a doubled one as one of it).
pub fn ps_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('\'');
    for c in text.chars() {
        if SINGLE_QUOTES.contains(&c) {
            literal.push(c);
        }
        literal.push(c);
    }
    literal.push('\'');
    literal
}

/// `arg` as one argument of a Windows command line, as the Microsoft C runtime (and
/// `CommandLineToArgvW`) reads it back: wrapped in `"` when empty or holding white space, each
/// `"` escaped as `\"`, the backslashes before a `"` (or before the closing quote) doubled.
///
/// Windows PowerShell 5.1 passes the result through unchanged: every `"` in it but the outer two
/// follows a backslash, and 5.1 only adds quotes around an argument with white space outside
/// quotes it counts (its `NeedQuotes`, which skips a `"` after a `\`).
pub fn native_arg(arg: &str) -> String {
    let quote = arg.is_empty() || arg.chars().any(char::is_whitespace);
    let mut out = String::with_capacity(arg.len() + 2);
    if quote {
        out.push('"');
    }
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes + 1));
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        out.push(c);
    }
    if quote {
        out.extend(std::iter::repeat_n('\\', backslashes));
        out.push('"');
    }
    out
}

/// The script that runs `program` with `args` and exits with its exit code. A PowerShell script
/// for `powershell.exe … -Command <script>` goes as `-EncodedCommand`.
pub fn exec_script(program: &str, args: &[String]) -> Result<String, Unsendable> {
    sendable("the program", program)?;
    let mut call = format!("& {}", ps_literal(program));
    for arg in encode_powershell_command(program, args) {
        call.push(' ');
        call.push_str(&ps_literal(&native_arg_through_powershell51(&arg)?));
    }
    Ok(format!("{PRELUDE}\ntry {{ {call} }} {}\nexit $LASTEXITCODE", catch_block(ERROR_EXIT)))
}

/// The script that prints the file at `path` in base64 lines (76 characters), or exits with
/// [`FILE_MISSING_EXIT`] when there is none.
pub fn read_script(path: &str) -> Result<String, Unsendable> {
    sendable("the path", path)?;
    Ok(format!(
        "{PRELUDE}\n$path = {path}\n\
         if (-not [IO.File]::Exists($path)) {{ [Console]::Error.WriteLine('{ERROR_MARK}not found: ' + $path); exit {FILE_MISSING_EXIT} }}\n\
         try {{ [Console]::Out.Write([Convert]::ToBase64String([IO.File]::ReadAllBytes($path), 'InsertLineBreaks')) }} {}",
        catch_block(ERROR_EXIT),
        path = ps_literal(path),
    ))
}

/// The script that writes its standard input (base64 lines, [`base64_lines`]) to `temporary`
/// and moves that over `path`; the temporary file is removed when anything fails. A missing
/// folder is [`FILE_MISSING_EXIT`].
pub fn write_script(path: &str, temporary: &str) -> Result<String, Unsendable> {
    sendable("the path", path)?;
    sendable("the path", temporary)?;
    Ok(format!(
        "{PRELUDE}\n$path = {path}\n$temporary = {temporary}\n\
         if (-not [IO.Directory]::Exists([IO.Path]::GetDirectoryName($path))) {{ [Console]::Error.WriteLine('{ERROR_MARK}not found: ' + [IO.Path]::GetDirectoryName($path)); exit {FILE_MISSING_EXIT} }}\n\
         try {{ [IO.File]::WriteAllBytes($temporary, [Convert]::FromBase64String([Console]::In.ReadToEnd())); Move-Item -LiteralPath $temporary -Destination $path -Force -ErrorAction Stop }} \
         catch {{ Remove-Item -LiteralPath $temporary -Force -ErrorAction SilentlyContinue; [Console]::Error.WriteLine('{ERROR_MARK}' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit {ERROR_EXIT} }}",
        path = ps_literal(path),
        temporary = ps_literal(temporary),
    ))
}

/// The script that removes the file at `path`; a missing file is not an error.
pub fn remove_script(path: &str) -> Result<String, Unsendable> {
    sendable("the path", path)?;
    Ok(format!(
        "{PRELUDE}\n$path = {path}\ntry {{ if ([IO.File]::Exists($path)) {{ [IO.File]::Delete($path) }} }} {}",
        catch_block(ERROR_EXIT),
        path = ps_literal(path),
    ))
}

/// The remote command line that runs `script`: `powershell.exe -NoProfile -NonInteractive
/// -EncodedCommand <base64 of the UTF-16LE script>`.
pub fn remote_command(script: &str) -> String {
    format!("{POWERSHELL} -NoProfile -NonInteractive -EncodedCommand {}", encode_utf16le(script))
}

/// `script` as `-EncodedCommand` takes it: base64 of its UTF-16LE bytes.
fn encode_utf16le(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(utf16)
}

/// `bytes` in base64, in lines of 76 characters, for a write script's standard input.
pub fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * 2 + 2);
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The file a read script printed, from its base64 lines.
pub fn decode_base64_lines(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// A Windows path as Windows OpenSSH's sftp-server names it: `C:\Dir\file` is `/C:/Dir/file`.
/// A path without a drive letter only has its backslashes turned.
pub fn sftp_path(path: &str) -> String {
    let slashed = path.replace('\\', "/");
    let bytes = slashed.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        format!("/{slashed}")
    } else {
        slashed
    }
}

/// What the program's standard error means when the script failed in PowerShell: the error
/// line after [`ERROR_MARK`], if the output is one.
pub fn script_error(exit_code: Option<i32>, stderr: &str) -> Option<&str> {
    if exit_code != Some(ERROR_EXIT) {
        return None;
    }
    stderr.lines().find_map(|line| line.strip_prefix(ERROR_MARK)).map(str::trim_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a command line the way the Microsoft C runtime (2008 and later) and
    /// `CommandLineToArgvW` do, for the arguments after the program.
    fn msvcrt_argv(line: &str) -> Vec<String> {
        let mut args = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_none() {
                return args;
            }
            let mut arg = String::new();
            let mut quoted = false;
            loop {
                let mut backslashes = 0;
                while chars.peek() == Some(&'\\') {
                    chars.next();
                    backslashes += 1;
                }
                match chars.peek().copied() {
                    Some('"') => {
                        arg.extend(std::iter::repeat_n('\\', backslashes / 2));
                        chars.next();
                        if backslashes % 2 == 1 {
                            arg.push('"');
                        } else if quoted && chars.peek() == Some(&'"') {
                            chars.next();
                            arg.push('"');
                        } else {
                            quoted = !quoted;
                        }
                    }
                    other => {
                        arg.extend(std::iter::repeat_n('\\', backslashes));
                        match other {
                            None => break,
                            Some(c) if !quoted && (c == ' ' || c == '\t') => break,
                            Some(c) => {
                                arg.push(c);
                                chars.next();
                            }
                        }
                    }
                }
            }
            args.push(arg);
        }
    }

    /// What Windows PowerShell 5.1 does to one native argument (`NeedQuotes` before PowerShell
    /// 6's commit 8bca1f50c5): wraps it in `"` when it holds white space after an even number of
    /// `"`, every `"` counted.
    fn powershell51(arg: &str) -> String {
        let mut quotes = 0usize;
        let mut needs = false;
        for c in arg.chars() {
            if c == '"' {
                quotes += 1;
            } else if c.is_whitespace() && quotes.is_multiple_of(2) {
                needs = true;
            }
        }
        if needs { format!("\"{arg}\"") } else { arg.to_owned() }
    }

    const HARD: [&str; 20] = [
        "plain",
        "",
        "a b",
        "it's",
        "\"dq\"",
        "say \"hi\"",
        "\"quoted\" then space",
        "a\"b\"c d",
        "$env:PATH",
        "`whoami`",
        "%PATH%",
        "a & b | c",
        "C:\\Program Files\\",
        "trailing\\",
        "\\\\server\\share\\",
        "back\\\"slash",
        "Zoë’s café ‘x’",
        "two\nlines",
        "tab\there",
        "-NoProfile",
    ];

    #[test]
    fn native_args_survive_powershell_51_and_the_c_runtime() {
        for arg in HARD {
            let sent = native_arg_through_powershell51(arg).expect("sendable");
            assert_eq!(sent, native_arg(arg));
            let passed = powershell51(&sent);
            assert_eq!(passed, sent, "5.1 changes nothing of {arg:?}");
            assert_eq!(msvcrt_argv(&passed), vec![arg.to_owned()], "{arg:?} as {passed}");
        }
        let line = HARD.iter().map(|a| powershell51(&native_arg(a))).collect::<Vec<_>>().join(" ");
        assert_eq!(msvcrt_argv(&line), HARD.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn white_space_after_an_odd_number_of_quotes_is_refused_not_split() {
        for arg in ["3\" of snow", "he said \"hi there\"", "\"a b\""] {
            // What 5.1 would make of it: more than one argument, or another one.
            let split = msvcrt_argv(&powershell51(&native_arg(arg)));
            assert_ne!(split, vec![arg.to_owned()], "{arg:?} would survive after all");
            let e = exec_script("x.exe", &[arg.to_owned()]).expect_err(arg);
            assert!(e.to_string().contains("Windows PowerShell 5.1 splits"), "{e}");
        }
    }

    #[test]
    fn a_powershell_command_script_goes_encoded() {
        let script = "$a = \"x y\"; Write-Output \"$a\"";
        let args: Vec<String> =
            ["-NoProfile", "-NonInteractive", "-Command", script].map(String::from).to_vec();
        let sent = exec_script(r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.EXE", &args)
            .expect("sendable");
        let encoded = encode_utf16le(script);
        assert!(
            sent.contains(&format!("'-NoProfile' '-NonInteractive' '-EncodedCommand' '{encoded}' }}")),
            "{sent}"
        );
        assert!(!sent.contains("Write-Output"), "{sent}");
        // Another program's `-Command` argument is an argument like any other.
        let other = exec_script("tool.exe", &["-Command".into(), "a b".into()]).expect("sendable");
        assert!(other.contains("'-Command' '\"a b\"'"), "{other}");
    }

    #[test]
    fn native_arg_examples() {
        assert_eq!(native_arg("query"), "query");
        assert_eq!(native_arg(""), "\"\"");
        assert_eq!(native_arg("a b"), "\"a b\"");
        assert_eq!(native_arg("a\"b"), "a\\\"b");
        assert_eq!(native_arg("C:\\a b\\"), "\"C:\\a b\\\\\"");
        assert_eq!(native_arg("x\\\"y"), "x\\\\\\\"y");
    }

    #[test]
    fn literals_double_every_single_quote_powershell_knows() {
        assert_eq!(ps_literal("plain"), "'plain'");
        assert_eq!(ps_literal(""), "''");
        assert_eq!(ps_literal("it's"), "'it''s'");
        assert_eq!(ps_literal("$x `y` \"z\""), "'$x `y` \"z\"'");
        assert_eq!(ps_literal("Zoë’s ‘x’ ‚y‛"), "'Zoë’’s ‘‘x’’ ‚‚y‛‛'");
    }

    #[test]
    fn the_exec_script_calls_the_program_with_literal_arguments() {
        let script = exec_script("sc.exe", &["query".into(), "it's a b".into(), String::new()]).expect("ok");
        assert_eq!(
            script,
            "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)\n\
             try { & 'sc.exe' 'query' '\"it''s a b\"' '\"\"' } catch { [Console]::Error.WriteLine('drover-powershell: ' + \
             $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }\n\
             exit $LASTEXITCODE"
        );
        let e = exec_script("x", &["a\0b".into()]).expect_err("NUL");
        assert_eq!(
            e.to_string(),
            "the argument \"a\\0b\" cannot be sent to a Windows server: it holds a NUL character"
        );
    }

    #[test]
    fn the_remote_command_is_base64_of_utf16le() {
        let command = remote_command("é'x'");
        let encoded = command
            .strip_prefix("powershell.exe -NoProfile -NonInteractive -EncodedCommand ")
            .expect("prefix");
        assert!(
            encoded.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')),
            "{encoded}"
        );
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64");
        let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
        assert_eq!(String::from_utf16(&units).expect("utf-16"), "é'x'");
    }

    #[test]
    fn base64_lines_round_trip() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let lines = base64_lines(&data);
        let text = String::from_utf8(lines.clone()).expect("ascii");
        assert!(text.lines().all(|l| l.len() <= 76), "{text}");
        assert_eq!(decode_base64_lines(&lines).expect("decodes"), data);
        assert_eq!(decode_base64_lines(b"").expect("empty"), Vec::<u8>::new());
    }

    #[test]
    fn sftp_paths_of_windows_files() {
        assert_eq!(sftp_path(r"C:\Drover\join.xml"), "/C:/Drover/join.xml");
        assert_eq!(sftp_path(r"d:\x"), "/d:/x");
        assert_eq!(sftp_path("relative\\x"), "relative/x");
    }

    #[test]
    fn script_errors_are_read_only_with_their_exit_code() {
        let stderr = "drover-powershell: CommandNotFoundException: The term 'x.exe' is not recognized\r\n";
        assert_eq!(
            script_error(Some(250), stderr),
            Some("CommandNotFoundException: The term 'x.exe' is not recognized")
        );
        assert_eq!(script_error(Some(1), stderr), None);
        assert_eq!(script_error(Some(250), "plain failure"), None);
    }
}
