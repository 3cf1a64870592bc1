//! cmd.exe, the default shell of Windows OpenSSH, which runs every command of a session as
//! `cmd.exe /c <command>` (`lab/PROTOCOL.md`, "Windows over SSH", "The shell"). The lab's cmd.exe
//! finds the first word of the command as cmd.exe does and answers one of three ways:
//!
//! - `powershell.exe` (or `powershell`, any case, any path): Windows PowerShell, which reads the
//!   rest of the command line as the C runtime does ([`super::argv::split_arguments`]); only
//!   `-NoProfile -NonInteractive -EncodedCommand <base64>` is accepted (parameter names in any
//!   case, as PowerShell matches them), anything else is an unsupported command;
//! - a program of the lab's servers or a command built into cmd.exe: something cmd.exe would run
//!   itself, which the lab does not model (its servers run programs only through PowerShell): an
//!   unsupported command;
//! - anything else (`sh`, `cat`, `'cat'`, a POSIX-shell quoted word): cmd.exe's
//!   `'<word>' is not recognized as an internal or external command,` answer, exit 9009.

use base64::Engine as _;

use super::argv::split_arguments;
use crate::programs::{self, Output, program_name};

/// What a session's command line asks for, as cmd.exe reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdLine {
    /// Windows PowerShell with an encoded script.
    PowerShell {
        /// The first word as written (what cmd.exe names when `powershell.exe` is missing).
        word: String,
        /// The script, decoded from base64 and UTF-16LE.
        script: String,
    },
    /// cmd.exe answers by itself (not recognized, or a command the lab does not model).
    Answered(Output),
}

/// The commands built into cmd.exe (`help` lists them): cmd.exe runs them without a program.
const BUILT_IN: [&str; 40] = [
    "assoc", "break", "call", "cd", "chdir", "cls", "color", "copy", "date", "del", "dir", "echo",
    "endlocal", "erase", "exit", "for", "ftype", "goto", "if", "md", "mkdir", "mklink", "move", "path",
    "pause", "popd", "prompt", "pushd", "rd", "rem", "ren", "rename", "rmdir", "set", "setlocal", "shift",
    "start", "time", "title", "type",
];

/// The command transport's POSIX file calls, which no Windows server has.
pub const POSIX: [&str; 3] = ["cat", "sh", "rm"];

/// The first word of `line` as cmd.exe finds it (quotes kept, as its messages show them) and the
/// rest of the line: leading blanks skipped, then up to a space, tab, `,`, `;`, `=`, `&`, `|`,
/// `<` or `>` outside double quotes.
pub fn first_word(line: &str) -> (&str, &str) {
    let line = line.trim_start_matches([' ', '\t']);
    let mut quoted = false;
    for (at, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' | ',' | ';' | '=' | '&' | '|' | '<' | '>' if !quoted => {
                return (&line[..at], &line[at..]);
            }
            _ => {}
        }
    }
    (line, "")
}

/// cmd.exe's reading of `line`.
pub fn read(line: &str) -> CmdLine {
    let (word, rest) = first_word(line);
    let name = program_name(&word.replace('"', ""));
    if name == "powershell" {
        return powershell(word, rest);
    }
    let runs_itself =
        (programs::is_known(&name) && !POSIX.contains(&name.as_str())) || BUILT_IN.contains(&name.as_str());
    CmdLine::Answered(if runs_itself {
        Output::stderr(
            programs::UNSUPPORTED,
            format!(
                "drover-lab: unsupported command: {line:?}: cmd.exe would run {word} itself; the lab's \
                 Windows servers run programs only through powershell.exe -EncodedCommand\n"
            ),
        )
    } else {
        programs::not_recognized(word)
    })
}

/// Windows PowerShell's reading of its command line: `-NoProfile -NonInteractive
/// -EncodedCommand <base64 of a UTF-16LE script>`, the parameter names in any case.
fn powershell(word: &str, rest: &str) -> CmdLine {
    let args = split_arguments(rest);
    let unsupported = |why: &str| {
        CmdLine::Answered(Output::stderr(
            programs::UNSUPPORTED,
            format!("drover-lab: unsupported command: {word} {args:?}: {why}\n"),
        ))
    };
    let [no_profile, non_interactive, encoded_command, base64] = args.as_slice() else {
        return unsupported("the lab's PowerShell takes -NoProfile -NonInteractive -EncodedCommand <base64>");
    };
    let names = [
        (no_profile, "-NoProfile"),
        (non_interactive, "-NonInteractive"),
        (encoded_command, "-EncodedCommand"),
    ];
    if !names.iter().all(|(given, name)| given.eq_ignore_ascii_case(name)) {
        return unsupported("the lab's PowerShell takes -NoProfile -NonInteractive -EncodedCommand <base64>");
    }
    match decode(base64) {
        Some(script) => CmdLine::PowerShell { word: word.to_owned(), script },
        None => unsupported("-EncodedCommand is not base64 of UTF-16LE text"),
    }
}

/// The script `-EncodedCommand` carries: base64 of UTF-16LE.
pub fn decode(base64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(base64).ok()?;
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(script: &str) -> String {
        let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
        base64::engine::general_purpose::STANDARD.encode(utf16)
    }

    fn answer(line: &str) -> (i32, String) {
        match read(line) {
            CmdLine::Answered(out) => (out.code, out.stderr_text()),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn not_recognized(word: &str) -> (i32, String) {
        (
            9009,
            format!(
                "'{word}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
            ),
        )
    }

    #[test]
    fn cmd_finds_the_first_word() {
        assert_eq!(first_word("sh -c 'cat > \"$1\"' sh x"), ("sh", " -c 'cat > \"$1\"' sh x"));
        assert_eq!(first_word("  'cat' '/x'"), ("'cat'", " '/x'"));
        assert_eq!(first_word("\"C:\\Program Files\\x.exe\" a"), ("\"C:\\Program Files\\x.exe\"", " a"));
        assert_eq!(first_word("cat>x"), ("cat", ">x"));
        assert_eq!(first_word("a,b"), ("a", ",b"));
        assert_eq!(first_word("whoami"), ("whoami", ""));
    }

    #[test]
    fn posix_isms_are_not_recognized() {
        assert_eq!(answer("sh -c 'cat > \"$1\"' sh C:\\x"), not_recognized("sh"));
        assert_eq!(answer("cat C:\\x"), not_recognized("cat"));
        assert_eq!(answer("'cat' '/x'"), not_recognized("'cat'"));
        assert_eq!(answer("rm -f C:\\x"), not_recognized("rm"));
        assert_eq!(answer("'sc.exe' 'query'"), not_recognized("'sc.exe'"));
        assert_eq!(answer("pwsh -EncodedCommand AAAA"), not_recognized("pwsh"));
        assert_eq!(answer("true"), not_recognized("true"));
    }

    #[test]
    fn what_cmd_would_run_itself_is_unsupported() {
        for line in ["sc.exe query ENTSSO", "echo hi", "C:\\Windows\\System32\\reg.exe query x", "type C:\\x"]
        {
            let (code, stderr) = answer(line);
            assert_eq!(code, 9009, "{line}");
            assert!(stderr.starts_with("drover-lab: unsupported command: "), "{line}: {stderr}");
        }
    }

    #[test]
    fn powershell_with_an_encoded_script() {
        let script = "& 'sc.exe' 'it''s é'";
        for line in [
            format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {}", encode(script)),
            format!("POWERSHELL -noprofile -NONINTERACTIVE -encodedcommand {}", encode(script)),
            format!(
                "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -NoProfile -NonInteractive -EncodedCommand {}",
                encode(script)
            ),
        ] {
            let CmdLine::PowerShell { script: decoded, .. } = read(&line) else { panic!("{line}") };
            assert_eq!(decoded, script);
        }
    }

    #[test]
    fn other_powershell_invocations_are_unsupported() {
        let b64 = encode("x");
        for line in [
            "powershell.exe -Command Get-Service".to_owned(),
            format!("powershell.exe -NoProfile -EncodedCommand {b64}"),
            format!("powershell.exe -NoProfile -NonInteractive -enc {b64}"),
            format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {b64} & whoami"),
            "powershell.exe -NoProfile -NonInteractive -EncodedCommand not-base64!".to_owned(),
            "powershell.exe -NoProfile -NonInteractive -EncodedCommand QQ==".to_owned(),
        ] {
            let (code, stderr) = answer(&line);
            assert_eq!(code, 9009, "{line}");
            assert!(
                stderr.starts_with("drover-lab: unsupported command: powershell.exe "),
                "{line}: {stderr}"
            );
        }
    }
}
