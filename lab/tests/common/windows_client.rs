//! What Drover's `ssh` transport sends to a Windows server, written again for the lab's tests
//! from the contract (`engine/src/target/windows.rs`, `lab/PROTOCOL.md` "Windows over SSH"):
//! the lab never calls the engine, so its tests build the command lines themselves. Shared by
//! the lab's unit tests and `tests/windows_shell.rs`.

#![allow(dead_code, reason = "each test crate uses part of it")]

use base64::Engine as _;

const PRELUDE: &str = "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false)";
const CATCH: &str = "catch { [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }";

/// A PowerShell single-quoted literal: each of the five single quotes doubled.
pub fn ps_literal(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The argument written for the C runtime: quoted when empty or holding white space, `"`
/// escaped, the backslashes before a `"` or the closing quote doubled.
pub fn native_arg(arg: &str) -> String {
    let quote = arg.is_empty() || arg.chars().any(char::is_whitespace);
    let mut out = String::new();
    if quote {
        out.push('"');
    }
    let mut backslashes = 0;
    for c in arg.chars() {
        if c == '\\' {
            backslashes += 1;
        } else {
            if c == '"' {
                out.push_str(&"\\".repeat(backslashes + 1));
            }
            backslashes = 0;
        }
        out.push(c);
    }
    if quote {
        out.push_str(&"\\".repeat(backslashes));
        out.push('"');
    }
    out
}

/// The exec script for `program` and `args`.
pub fn exec_script(program: &str, args: &[&str]) -> String {
    let mut call = format!("& {}", ps_literal(program));
    for arg in args {
        call.push(' ');
        call.push_str(&ps_literal(&native_arg(arg)));
    }
    format!("{PRELUDE}\ntry {{ {call} }} {CATCH}\nexit $LASTEXITCODE")
}

/// The read script for `path`.
pub fn read_script(path: &str) -> String {
    format!(
        "{PRELUDE}\n$path = {}\nif (-not [IO.File]::Exists($path)) {{ [Console]::Error.WriteLine('drover-powershell: not found: ' + $path); exit 2 }}\ntry {{ [Console]::Out.Write([Convert]::ToBase64String([IO.File]::ReadAllBytes($path), 'InsertLineBreaks')) }} {CATCH}",
        ps_literal(path)
    )
}

/// The write script for `path` through `temporary`.
pub fn write_script(path: &str, temporary: &str) -> String {
    format!(
        "{PRELUDE}\n$path = {}\n$temporary = {}\nif (-not [IO.Directory]::Exists([IO.Path]::GetDirectoryName($path))) {{ [Console]::Error.WriteLine('drover-powershell: not found: ' + [IO.Path]::GetDirectoryName($path)); exit 2 }}\ntry {{ [IO.File]::WriteAllBytes($temporary, [Convert]::FromBase64String([Console]::In.ReadToEnd())); Move-Item -LiteralPath $temporary -Destination $path -Force -ErrorAction Stop }} catch {{ Remove-Item -LiteralPath $temporary -Force -ErrorAction SilentlyContinue; [Console]::Error.WriteLine('drover-powershell: ' + $_.FullyQualifiedErrorId + ': ' + $_.Exception.Message); exit 250 }}",
        ps_literal(path),
        ps_literal(temporary)
    )
}

/// The remove script for `path`.
pub fn remove_script(path: &str) -> String {
    format!(
        "{PRELUDE}\n$path = {}\ntry {{ if ([IO.File]::Exists($path)) {{ [IO.File]::Delete($path) }} }} {CATCH}",
        ps_literal(path)
    )
}

/// The remote command line: `powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64
/// of the UTF-16LE script>`.
pub fn remote_command(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    format!(
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand {}",
        base64::engine::general_purpose::STANDARD.encode(utf16)
    )
}

/// `bytes` as base64 lines of 76 characters with CRLF, for a write script's standard input.
pub fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::new();
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The arguments that must reach a program unchanged: spaces, quotes, `$`, backticks, `%`, `&`,
/// `|`, non-ASCII letters, empty strings and more.
pub const HARD: [&str; 20] = [
    "plain",
    "",
    "a b",
    "it's",
    "\"dq\"",
    "say \"hi\"",
    "$env:PATH",
    "$(whoami)",
    "`whoami`",
    "%PATH%",
    "a & b | c",
    "C:\\Program Files\\",
    "trailing\\",
    "\\\\server\\share\\",
    "back\\\"slash",
    "Zoë’s café ‘x’ ‚y‛",
    "two\nlines",
    "tab\there",
    "-NoProfile",
    "^<>()!;,=",
];
