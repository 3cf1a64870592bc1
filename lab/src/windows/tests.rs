//! The Windows shell against the fresh lab, with command lines built as Drover's `ssh`
//! transport builds them ([`super::windows_client`], the lab's own copy of the contract).

use super::windows_client::{
    HARD, base64_lines, exec_script, read_script, remote_command, remove_script, write_script,
};
use super::*;
use crate::init::fresh_lab;
use crate::programs::testing::now;
use crate::state::{Fault, password_sha256};

/// A session on `server` with `command`, logged on by `method` (`password` or `publickey`).
fn session(server: &str, command: Option<&str>, method: &str) -> Session {
    Session {
        server: server.into(),
        command: command.map(str::to_owned),
        logon: SessionLogon { user: "drover-win".into(), methods: vec![method.into()] },
    }
}

/// Answers `command` on `server` of `lab` for a password logon, with `stdin`.
fn answer(lab: &mut Lab, server: &str, command: &str, stdin: &[u8]) -> Output {
    answer_as(lab, server, command, stdin, "password")
}

fn answer_as(lab: &mut Lab, server: &str, command: &str, stdin: &[u8], method: &str) -> Output {
    let session = session(server, Some(command), method);
    Request::of(session.command.as_deref()).answer(lab, &session, &mut &stdin[..], now())
}

/// The argv an exec of `program` with `args` gives the program.
fn argv_of(program: &str, args: &[&str]) -> Vec<String> {
    match Request::of(Some(&remote_command(&exec_script(program, args)))) {
        Request::PowerShell { action: Action::Exec(exec), .. } => exec.argv,
        other => panic!("not an exec: {other:?}"),
    }
}

#[test]
fn hard_arguments_reach_the_program_unchanged() {
    for arg in HARD {
        assert_eq!(argv_of("sc.exe", &[arg]), ["sc.exe", arg], "{arg:?}");
    }
    let mut expected = vec!["C:\\Tools\\x.exe".to_owned()];
    expected.extend(HARD.iter().map(|a| (*a).to_owned()));
    assert_eq!(argv_of("C:\\Tools\\x.exe", &HARD), expected, "all at once");
}

#[test]
fn a_quote_before_white_space_is_split_by_windows_powershell_51() {
    // Written for the C runtime as "3\" of snow", the argument holds white space after two of the
    // quotes 5.1 counts, so 5.1 wraps it in quotes again and the program reads three words
    // (mklement0 on PowerShell issue #1995: "passing '3\" of snow' breaks").
    assert_eq!(argv_of("x.exe", &["3\" of snow"]), ["x.exe", "3\"", "of", "snow"]);
    assert_eq!(argv_of("x.exe", &["he said \"hi there\""]), ["x.exe", "he", "said", "\"hi", "there\""]);
}

#[test]
fn an_exec_runs_the_program_with_the_sessions_input() {
    let mut lab = fresh_lab();
    let out = answer(&mut lab, "DRBTS01", &remote_command(&exec_script("sc.exe", &["query", "ENTSSO"])), b"");
    assert_eq!(out.code, 0, "{}", out.stderr_text());
    assert!(out.stdout_text().contains("SERVICE_NAME: ENTSSO"), "{}", out.stdout_text());

    // The host instance password travels on standard input, never on a command line.
    lab.group.members.push("DRBTS01".into());
    let create = crate::programs::powershell::create_host_instance_script(
        "DRBTS01",
        "SendHost",
        r"CONTOSO\svc-bts",
        false,
    );
    let command = remote_command(&exec_script(
        "powershell.exe",
        &["-NoProfile", "-NonInteractive", "-Command", &create],
    ));
    let password = "it's \"s3cret\" $(x) `n %PATH% & é";
    let out = answer(&mut lab, "PRDBTS01", &command, password.as_bytes());
    assert_eq!((out.code, out.stderr_text()), (0, String::new()));
    let instance = lab.group.host_instances.last().expect("created");
    assert_eq!(instance.password_sha256.as_deref(), Some(password_sha256(password).as_str()));
    let entry = Request::of(Some(&command)).log_entry(&session("PRDBTS01", Some(&command), "password"));
    let line = serde_json::to_string(&entry).expect("json");
    assert!(!line.contains("s3cret"), "{line}");
    assert_eq!(entry.argv.as_ref().map(|a| a[4].as_str()), Some(create.as_str()));
}

#[test]
fn the_exit_code_and_both_streams_are_the_programs() {
    let mut lab = fresh_lab();
    let out = answer(&mut lab, "DRBTS01", &remote_command(&exec_script("sc.exe", &["query", "NoSuch"])), b"");
    assert_eq!(out.code, 1060);
    assert!(out.stdout_text().contains("FAILED 1060"));
    let out = answer(
        &mut lab,
        "DRBTS01",
        &remote_command(&exec_script("msiexec", &["/i", "C:\\x.msi", "/qn", "TARGETDIR=C:\\x"])),
        b"",
    );
    assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (1619, String::new(), String::new()));
}

#[test]
fn unknown_programs_are_a_powershell_error_and_bad_arguments_unsupported() {
    let mut lab = fresh_lab();
    let out = answer(&mut lab, "DRBTS01", &remote_command(&exec_script("robocopy.exe", &["a", "b"])), b"");
    assert_eq!(
        (out.code, out.stderr_text()),
        (
            250,
            "drover-powershell: CommandNotFoundException: The term 'robocopy.exe' is not recognized as the name of a \
             cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was \
             included, verify that the path is correct and try again.\r\n"
                .into()
        )
    );
    for posix in ["sh", "/bin/cat"] {
        let out = answer(&mut lab, "DRBTS01", &remote_command(&exec_script(posix, &["-c", "x"])), b"");
        assert_eq!(out.code, 250, "{posix}");
        assert!(out.stderr_text().starts_with("drover-powershell: CommandNotFoundException: "));
    }
    let out = answer(
        &mut lab,
        "DRBTS01",
        &remote_command(&exec_script("sc.exe", &["query", "ENTSSO", "extra"])),
        b"",
    );
    assert_eq!(out.code, 9009);
    assert!(out.stderr_text().starts_with("drover-lab: unsupported command: "));
    let out = answer(&mut lab, "DRBTS01", &remote_command(&exec_script("sc", &["query", "ENTSSO"])), b"");
    assert_eq!(out.code, 9009);
    assert!(out.stderr_text().contains("alias of Set-Content"), "{}", out.stderr_text());
    let out = answer(&mut lab, "DRBTS01", &remote_command("Get-Service"), b"");
    assert_eq!(
        (out.code, out.stderr_text()),
        (
            9009,
            "drover-lab: unsupported command: a PowerShell script the lab does not know: \"Get-Service\"\n"
                .into()
        )
    );
}

#[test]
fn files_move_in_base64() {
    let mut lab = fresh_lab();
    let path = "C:\\Drover\\it's join.xml";
    let contents = "<Configuration>é ]]> \"x\"</Configuration>\r\n".repeat(10);
    let write = remote_command(&write_script(path, "C:\\Drover\\.it's join.xml.drover-tmp"));
    let out = answer(&mut lab, "DRBTS01", &write, &base64_lines(contents.as_bytes()));
    assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
    assert_eq!(lab.servers["DRBTS01"].file(path), Some(contents.as_bytes()));
    let out = answer(&mut lab, "DRBTS01", &remote_command(&read_script(path)), b"");
    assert_eq!(out.code, 0);
    let text = out.stdout_text();
    assert!(text.split("\r\n").all(|l| l.len() <= 76) && text.contains("\r\n"), "{text}");
    let compact: String = text.split("\r\n").collect();
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(compact).expect("base64"),
        contents.as_bytes()
    );
    assert_eq!(answer(&mut lab, "DRBTS01", &remote_command(&remove_script(path)), b"").code, 0);
    assert_eq!(answer(&mut lab, "DRBTS01", &remote_command(&remove_script(path)), b"").code, 0);
    let out = answer(&mut lab, "DRBTS01", &remote_command(&read_script(path)), b"");
    assert_eq!((out.code, out.stderr_text()), (2, format!("drover-powershell: not found: {path}\r\n")));
}

#[test]
fn posix_isms_get_cmds_answer() {
    let mut lab = fresh_lab();
    for (command, word) in [
        ("sh -c 'cat > \"$1\"' sh 'C:\\x'", "sh"),
        ("cat C:\\x", "cat"),
        ("'cat' 'C:\\x'", "'cat'"),
        ("rm -f C:\\x", "rm"),
    ] {
        let out = answer(&mut lab, "DRBTS01", command, b"data");
        assert_eq!(
            (out.code, out.stdout_text(), out.stderr_text()),
            (
                9009,
                String::new(),
                format!(
                    "'{word}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
                )
            ),
            "{command}"
        );
    }
    assert!(lab.servers["DRBTS01"].file("C:\\x").is_none());
}

#[test]
fn a_key_logon_has_no_second_hop() {
    let mut lab = fresh_lab();
    let probe = remote_command(&exec_script(
        "sqlcmd",
        &["-S", "PRDSQL01", "-E", "-Q", "SET NOCOUNT ON; SELECT SUSER_SNAME()", "-h", "-1", "-W"],
    ));
    let out = answer_as(&mut lab, "DRBTS01", &probe, b"", "password");
    assert_eq!((out.code, out.stdout_text()), (0, "CONTOSO\\drover-win\r\n".into()));
    let out = answer_as(&mut lab, "DRBTS01", &probe, b"", "publickey");
    assert_eq!(
        (out.code, out.stderr_text()),
        (
            1,
            "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'..\n"
                .into()
        )
    );
    // Local programs do not notice.
    let version = remote_command(&exec_script(
        "powershell.exe",
        &["-NoProfile", "-NonInteractive", "-Command", "$PSVersionTable.PSVersion.ToString()"],
    ));
    let out = answer_as(&mut lab, "DRBTS01", &version, b"", "publickey");
    assert_eq!((out.code, out.stdout_text()), (0, "5.1.17763.5576\r\n".into()));
    let sc = remote_command(&exec_script("sc.exe", &["qc", "ENTSSO"]));
    assert_eq!(answer_as(&mut lab, "DRBTS01", &sc, b"", "publickey").code, 0);
}

#[test]
fn a_server_without_powershell() {
    let mut lab = fresh_lab();
    lab.faults.push(Fault::PowershellMissing { server: "DRBTS02".into() });
    let command = remote_command(&exec_script("sc.exe", &["query", "ENTSSO"]));
    let out = answer(&mut lab, "DRBTS02", &command, b"");
    assert_eq!(
        (out.code, out.stderr_text()),
        (
            9009,
            "'powershell.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
                .into()
        )
    );
    assert_eq!(answer(&mut lab, "DRBTS01", &command, b"").code, 0, "only that server");
}

#[test]
fn an_interactive_logon_or_an_unknown_server() {
    let mut lab = fresh_lab();
    let session = session("DRBTS01", None, "password");
    let out = Request::of(None).answer(&mut lab, &session, &mut &b""[..], now());
    assert_eq!(out.code, 1);
    assert!(out.stderr_text().contains("interactive logon"), "{}", out.stderr_text());
    let out = answer(&mut lab, "NOSUCH", &remote_command(&exec_script("sc.exe", &["query", "x"])), b"");
    assert_eq!((out.code, out.stderr_text()), (9009, "drover-lab: no server NOSUCH in this lab\n".into()));
}

#[test]
fn the_log_entry_records_what_windows_would_show() {
    let script = exec_script("sc.exe", &["config", "BTSSvc$SendHost", "start=", "disabled"]);
    let command = remote_command(&script);
    let entry = Request::of(Some(&command)).log_entry(&session("DRBTS01", Some(&command), "publickey"));
    assert_eq!(entry.command.as_deref(), Some(command.as_str()));
    assert_eq!(entry.script.as_deref(), Some(script.as_str()));
    assert_eq!(entry.arguments.as_deref(), Some("config BTSSvc$SendHost start= disabled"));
    assert_eq!(
        entry.argv,
        Some(["sc.exe", "config", "BTSSvc$SendHost", "start=", "disabled"].map(String::from).to_vec())
    );
    assert_eq!(
        (entry.user.as_str(), entry.auth.as_slice(), entry.network_credentials),
        ("drover-win", &["publickey".to_owned()][..], false)
    );
    let entry = Request::of(Some("cat x")).log_entry(&session("DRBTS01", Some("cat x"), "password"));
    assert_eq!((entry.script, entry.argv, entry.network_credentials), (None, None, true));
}
