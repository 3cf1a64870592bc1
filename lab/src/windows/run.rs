//! What the lab's Windows PowerShell does with the scripts it knows (`lab/PROTOCOL.md`, "Windows
//! over SSH", "Scripts"): an exec script finds the program (a PowerShell error when there is
//! none), has Windows PowerShell 5.1 build its command line ([`super::argv`]) and runs it with
//! the session's standard input; the file scripts act on the server's files, in base64.
//!
//! A PowerShell error is one line on stderr, `drover-powershell: <FullyQualifiedErrorId>:
//! <message>` and CRLF (what the scripts' `catch` blocks print), exit [`ERROR_EXIT`].

use std::io::Read;
use std::time::SystemTime;

use base64::Engine as _;

use super::argv::{arguments_51, split_arguments};
use super::cmd::POSIX;
use crate::programs::{self, Logon, Output, program_name};
use crate::state::Lab;

/// What the first line on stderr starts with when the script failed in PowerShell.
pub const ERROR_MARK: &str = "drover-powershell: ";
/// The exit code of a script that failed in PowerShell.
pub const ERROR_EXIT: i32 = 250;
/// The exit code of a file script whose file (or folder) does not exist.
pub const FILE_MISSING_EXIT: i32 = 2;

/// A program an exec script runs, and what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The program, as the script names it.
    pub program: String,
    /// The argument string Windows PowerShell 5.1 builds from the literals' values.
    pub arguments: String,
    /// The program and the arguments it reads from that string.
    pub argv: Vec<String>,
}

impl Exec {
    /// `program` called with the literals' `values`.
    pub fn new(program: &str, values: &[String]) -> Exec {
        let arguments = arguments_51(values);
        let mut argv = vec![program.to_owned()];
        argv.extend(split_arguments(&arguments));
        Exec { program: program.to_owned(), arguments, argv }
    }

    /// Runs it on `server` as `logon`, with `stdin` (the session's, inherited).
    pub fn run(
        &self,
        lab: &mut Lab,
        server: &str,
        logon: &Logon,
        stdin: &mut dyn Read,
        now: SystemTime,
    ) -> Output {
        match find(&self.program) {
            Found::Program => programs::run_as(lab, server, logon, &self.argv, stdin, now),
            Found::Alias(cmdlet) => Output::stderr(
                programs::UNSUPPORTED,
                format!(
                    "drover-lab: unsupported command: {:?} is Windows PowerShell's alias of {cmdlet}, \
                     which the lab does not model (name the program with its .exe)\n",
                    self.program
                ),
            ),
            Found::Nothing => error(
                "CommandNotFoundException",
                &format!(
                    "The term '{}' is not recognized as the name of a cmdlet, function, script file, or \
                     operable program. Check the spelling of the name, or if a path was included, verify \
                     that the path is correct and try again.",
                    self.program
                ),
            ),
        }
    }
}

/// What the call operator finds for a program name.
enum Found {
    /// A program of the lab's servers.
    Program,
    /// One of Windows PowerShell's aliases, which comes before any program (`sc` is
    /// `Set-Content`).
    Alias(&'static str),
    /// Nothing: a `CommandNotFoundException`.
    Nothing,
}

fn find(program: &str) -> Found {
    match program.to_lowercase().as_str() {
        "sc" => return Found::Alias("Set-Content"),
        "cat" => return Found::Alias("Get-Content"),
        "rm" => return Found::Alias("Remove-Item"),
        _ => {}
    }
    let name = program_name(program);
    if programs::is_known(&name) && !POSIX.contains(&name.as_str()) { Found::Program } else { Found::Nothing }
}

/// A PowerShell error, as the scripts' `catch` blocks print it.
fn error(id: &str, message: &str) -> Output {
    Output::stderr(ERROR_EXIT, format!("{ERROR_MARK}{id}: {message}\r\n"))
}

/// The read script: the file in base64, a line break (CRLF) after every 76 characters but the
/// last (`'InsertLineBreaks'`).
pub fn read(lab: &Lab, server: &str, path: &str) -> Output {
    match lab.servers.get(server).and_then(|s| s.file(path)) {
        Some(bytes) => Output::ok(base64_lines(bytes)),
        None => Output::stderr(FILE_MISSING_EXIT, format!("{ERROR_MARK}not found: {path}\r\n")),
    }
}

/// `[Convert]::ToBase64String(bytes, 'InsertLineBreaks')`.
pub fn base64_lines(bytes: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> =
        text.as_bytes().chunks(76).map(|chunk| std::str::from_utf8(chunk).unwrap_or_default()).collect();
    lines.join("\r\n")
}

/// The write script: standard input, base64 lines, becomes the file. The lab's folders exist
/// implicitly, so only a path without a folder (`[IO.Path]::GetDirectoryName` empty) is missing.
pub fn write(lab: &mut Lab, server: &str, path: &str, stdin: &mut dyn Read) -> Output {
    if directory_name(path).is_none() {
        return Output::stderr(FILE_MISSING_EXIT, format!("{ERROR_MARK}not found: \r\n"));
    }
    let mut input = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut input) {
        return error(
            "IOException",
            &format!("Exception calling \"ReadToEnd\" with \"0\" argument(s): \"{e}\""),
        );
    }
    let bytes = match from_base64(&input) {
        Ok(bytes) => bytes,
        Err(why) => {
            return error(
                "FormatException",
                &format!("Exception calling \"FromBase64String\" with \"1\" argument(s): \"{why}\""),
            );
        }
    };
    if let Some(target) = lab.servers.get_mut(server) {
        target.write_file(path, bytes);
    }
    Output::ok("")
}

/// The remove script: the file goes; a missing one is no error.
pub fn remove(lab: &mut Lab, server: &str, path: &str) -> Output {
    if let Some(target) = lab.servers.get_mut(server) {
        target.remove_file(path);
    }
    Output::ok("")
}

/// `[IO.Path]::GetDirectoryName(path)` when it is neither null nor empty.
fn directory_name(path: &str) -> Option<&str> {
    let at = path.rfind(['\\', '/'])?;
    let (dir, name) = (&path[..at], &path[at + 1..]);
    if name.is_empty() {
        return None;
    }
    Some(if dir.len() == 2 && dir.ends_with(':') { &path[..=at] } else { dir })
}

/// `[Convert]::FromBase64String`: blanks (space, tab, CR, LF) ignored; .NET's messages.
fn from_base64(input: &[u8]) -> Result<Vec<u8>, &'static str> {
    let compact: Vec<u8> =
        input.iter().copied().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).collect();
    if !compact.len().is_multiple_of(4) {
        return Err("Invalid length for a Base-64 char array or string.");
    }
    base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| {
        "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two \
         padding characters, or an illegal character among the padding characters. "
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::fresh_lab;

    #[test]
    fn base64_lines_break_every_76_characters() {
        let data: Vec<u8> = (0..=255u8).collect();
        let text = base64_lines(&data);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76), "{text}");
        assert!(!text.ends_with("\r\n"));
        assert_eq!(from_base64(text.as_bytes()), Ok(data));
        assert_eq!(base64_lines(b""), "");
        assert_eq!(from_base64(b"QQ="), Err("Invalid length for a Base-64 char array or string."));
        assert!(from_base64(b"Q!==").is_err());
    }

    #[test]
    fn directory_names_as_dotnet_gives_them() {
        assert_eq!(directory_name(r"C:\Drover\join.xml"), Some(r"C:\Drover"));
        assert_eq!(directory_name(r"C:\join.xml"), Some(r"C:\"));
        assert_eq!(directory_name("join.xml"), None);
        assert_eq!(directory_name(r"C:\"), None);
    }

    #[test]
    fn programs_are_found_as_the_call_operator_finds_them() {
        assert!(matches!(find("sc.exe"), Found::Program));
        assert!(matches!(find(r"C:\Windows\System32\SC.EXE"), Found::Program));
        assert!(matches!(find("SC"), Found::Alias("Set-Content")));
        assert!(matches!(find("cat"), Found::Alias("Get-Content")));
        assert!(matches!(find("sh"), Found::Nothing));
        assert!(matches!(find("/bin/cat"), Found::Nothing));
        assert!(matches!(find("robocopy.exe"), Found::Nothing));
    }

    #[test]
    fn files_round_trip_and_missing_ones_exit_2() {
        let mut lab = fresh_lab();
        let data = "é\r\n\0binary".as_bytes();
        let input = format!("{}\r\n", base64_lines(data));
        let out = write(&mut lab, "DRBTS01", r"C:\Drover\x.bin", &mut input.as_bytes());
        assert_eq!((out.code, out.stderr_text()), (0, String::new()));
        let out = read(&lab, "DRBTS01", r"c:\drover\X.BIN");
        assert_eq!((out.code, out.stdout_text()), (0, base64_lines(data)));
        assert_eq!(remove(&mut lab, "DRBTS01", r"C:\Drover\x.bin").code, 0);
        assert_eq!(remove(&mut lab, "DRBTS01", r"C:\Drover\x.bin").code, 0, "missing is fine");
        let out = read(&lab, "DRBTS01", r"C:\Drover\x.bin");
        assert_eq!(
            (out.code, out.stderr_text()),
            (2, "drover-powershell: not found: C:\\Drover\\x.bin\r\n".into())
        );
        let out = write(&mut lab, "DRBTS01", "x.bin", &mut &b"QQ=="[..]);
        assert_eq!((out.code, out.stderr_text()), (2, "drover-powershell: not found: \r\n".into()));
        let out = write(&mut lab, "DRBTS01", r"C:\x.bin", &mut &b"not base64"[..]);
        assert_eq!(out.code, 250);
        assert!(
            out.stderr_text()
                .starts_with("drover-powershell: FormatException: Exception calling \"FromBase64String\"")
        );
        assert!(lab.servers["DRBTS01"].file(r"C:\x.bin").is_none(), "nothing written");
    }
}
