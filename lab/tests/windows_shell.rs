//! The built `drover-lab windows-shell`, run as sshd runs a `ForceCommand`: the command in
//! `SSH_ORIGINAL_COMMAND`, the logon in the file `SSH_USER_AUTH` names, the user in `USER`,
//! standard input piped. Command lines are built as Drover's `ssh` transport builds them for a
//! Windows server (`common/windows_client.rs`, the lab's own copy of the contract).

#[path = "common/windows_client.rs"]
mod windows_client;

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use drover_lab::state::{StateFile, password_sha256};
use windows_client::{base64_lines, exec_script, read_script, remote_command, write_script};

const BIN: &str = env!("CARGO_BIN_EXE_drover-lab");

/// What the shell printed and its exit status.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A lab, its command log and the `SSH_USER_AUTH` files of a password and a key logon.
struct Lab {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("lab.json");
        let out = Command::new(BIN).args(["init", "--state"]).arg(&state).output().expect("init");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.path().join("password.auth"), "password\n").expect("auth file");
        std::fs::write(
            dir.path().join("publickey.auth"),
            "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey\n",
        )
        .expect("auth file");
        Lab { dir, state }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("commands.log")
    }

    /// The shell for `server`, as sshd starts it for a session logged on by `method`.
    fn session(&self, server: &str, command: Option<&str>, method: &str, stdin: &[u8]) -> Ran {
        let mut shell = Command::new(BIN);
        shell
            .args(["windows-shell", "--state"])
            .arg(&self.state)
            .arg(server)
            .arg("--log")
            .arg(self.log())
            .env_clear()
            .env("USER", "drover-win")
            .env("SSH_USER_AUTH", self.dir.path().join(format!("{method}.auth")))
            .env("DROVER_LAB_NOW", "2026-11-22T10:15:01Z")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(command) = command {
            shell.env("SSH_ORIGINAL_COMMAND", command);
        }
        let mut child = shell.spawn().expect("start the shell");
        // A command that reads nothing may be gone before its input is written.
        match child.stdin.take().expect("stdin").write_all(stdin) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
            _ => {}
        }
        let out = child.wait_with_output().expect("wait");
        Ran {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.log()).expect("the command log");
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn an_exec_gets_its_input_from_the_session_and_never_a_secret_on_a_command_line() {
    let lab = Lab::new();
    let create = r#"$ErrorActionPreference = 'Stop'; $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); $sh = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_ServerHost").CreateInstance(); $sh.ServerName = 'PRDBTS01'; $sh.HostName = 'ProcessingHost'; $sh.Map(); $hi = ([WMICLASS]"root\MicrosoftBizTalkServer:MSBTS_HostInstance").CreateInstance(); $hi.Name = 'Microsoft BizTalk Server ProcessingHost PRDBTS01'; $hi.IsDisabled = $false; $hi.Install('CONTOSO\svc-bts', $password, $true, $false)"#;
    let command = remote_command(&exec_script(
        "powershell.exe",
        &["-NoProfile", "-NonInteractive", "-Command", create],
    ));
    let password = "Tr0ub4dor & \"3\" $(whoami) `n %PATH% é";
    let ran = lab.session("PRDBTS01", Some(&command), "password", password.as_bytes());
    assert_eq!((ran.code, ran.stdout.as_str(), ran.stderr.as_str()), (0, "", ""));
    let state = StateFile::new(&lab.state).read().expect("state");
    let instance = state
        .group
        .host_instances
        .iter()
        .find(|i| i.name == "Microsoft BizTalk Server ProcessingHost PRDBTS01")
        .expect("created");
    assert_eq!(instance.password_sha256.as_deref(), Some(password_sha256(password).as_str()));

    let lines = lab.log_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["server"], "PRDBTS01");
    assert_eq!(lines[0]["command"], command.as_str());
    assert_eq!(lines[0]["argv"][4], create);
    assert_eq!(
        (lines[0]["user"].as_str(), lines[0]["network_credentials"].as_bool()),
        (Some("drover-win"), Some(true))
    );
    let text = std::fs::read_to_string(lab.log()).expect("log");
    assert!(!text.contains("Tr0ub4dor"), "{text}");
    assert_eq!(mode(&lab.log()), 0o600);
}

#[test]
fn a_file_goes_and_comes_back_in_base64() {
    let lab = Lab::new();
    let path = r"C:\Drover\join-DRBTS01.xml";
    let contents = "<Configuration><Password>p&amp;ss é</Password></Configuration>\r\n".repeat(5);
    let write = remote_command(&write_script(path, r"C:\Drover\.join-DRBTS01.xml.tmp"));
    let ran = lab.session("DRBTS01", Some(&write), "publickey", &base64_lines(contents.as_bytes()));
    assert_eq!((ran.code, ran.stderr.as_str()), (0, ""));
    let ran = lab.session("DRBTS01", Some(&remote_command(&read_script(path))), "publickey", b"");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let compact: String = ran.stdout.split("\r\n").collect();
    let back = base64::engine::general_purpose::STANDARD.decode(compact).expect("base64");
    assert_eq!(back, contents.as_bytes());
    let ran =
        lab.session("DRBTS01", Some(&remote_command(&read_script(r"C:\Drover\nope.xml"))), "publickey", b"");
    assert_eq!(
        (ran.code, ran.stderr.as_str()),
        (2, "drover-powershell: not found: C:\\Drover\\nope.xml\r\n")
    );
    assert_eq!(lab.log_lines().len(), 3);
}

#[test]
fn posix_isms_are_refused_as_cmd_refuses_them() {
    let lab = Lab::new();
    let ran = lab.session("DRBTS01", Some(r#"sh -c 'cat > "$1"' sh 'C:\Drover\x.xml'"#), "password", b"<x/>");
    assert_eq!(
        (ran.code, ran.stdout.as_str(), ran.stderr.as_str()),
        (
            drover_lab::unix_status(9009).into(),
            "",
            "'sh' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        )
    );
    let ran = lab.session("DRBTS01", Some(r"'cat' 'C:\Staging\Contoso.Orders.msi'"), "password", b"");
    assert_eq!(ran.code, 49);
    assert!(ran.stderr.starts_with("''cat'' is not recognized"), "{}", ran.stderr);
    let state = StateFile::new(&lab.state).read().expect("state");
    assert!(state.servers["DRBTS01"].file(r"C:\Drover\x.xml").is_none(), "nothing written");
    let lines = lab.log_lines();
    assert_eq!(lines[0]["command"], r#"sh -c 'cat > "$1"' sh 'C:\Drover\x.xml'"#);
    assert!(lines[0]["script"].is_null() && lines[0]["argv"].is_null());
}

#[test]
fn a_key_logon_meets_the_double_hop_and_no_command_is_no_session() {
    let lab = Lab::new();
    let probe = remote_command(&exec_script(
        "sqlcmd",
        &["-S", "PRDSQL01", "-E", "-Q", "SET NOCOUNT ON; SELECT SUSER_SNAME()", "-h", "-1", "-W"],
    ));
    let ran = lab.session("DRBTS01", Some(&probe), "publickey", b"");
    assert_eq!(
        (ran.code, ran.stderr.as_str()),
        (
            1,
            "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'..\n"
        )
    );
    let ran = lab.session("DRBTS01", Some(&probe), "password", b"");
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "CONTOSO\\drover-win\r\n"));
    let ran = lab.session("DRBTS01", None, "password", b"");
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("interactive logon"), "{}", ran.stderr);
    let lines = lab.log_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["network_credentials"], false);
    assert_eq!(lines[0]["auth"], serde_json::json!(["publickey"]));
    assert!(lines[2]["command"].is_null());
}

#[test]
fn a_server_without_powershell_and_a_lab_that_cannot_log() {
    let lab = Lab::new();
    let out = Command::new(BIN)
        .args(["fault", "--state"])
        .arg(&lab.state)
        .args(["set", "powershell-missing", "DRBTS03"])
        .output()
        .expect("fault");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let command = remote_command(&exec_script("sc.exe", &["query", "ENTSSO"]));
    let ran = lab.session("DRBTS03", Some(&command), "password", b"");
    assert_eq!(
        (ran.code, ran.stderr.as_str()),
        (
            49,
            "'powershell.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        )
    );
    std::fs::create_dir(lab.dir.path().join("commands.log.d")).expect("mkdir");
    let ran = Command::new(BIN)
        .args(["windows-shell", "--state"])
        .arg(&lab.state)
        .args(["DRBTS01", "--log"])
        .arg(lab.dir.path().join("commands.log.d"))
        .env("SSH_ORIGINAL_COMMAND", &command)
        .output()
        .expect("run");
    assert_eq!(ran.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&ran.stderr).contains("cannot write the command log"));
}
