//! The ssh transport driven directly against the lab's servers played as Windows servers behind a
//! real sshd (`drover_tests::windows_lab`): what a program receives is read from the lab's command
//! log, which records the argv the program parsed out of the command line Windows PowerShell 5.1
//! built, and what the lab did from its state. Arguments hard to quote arrive unchanged (or are
//! refused before anything is sent), standard input reaches the program byte for byte and never a
//! command line, files round-trip through PowerShell in base64, and each way of failing is
//! classified and names the server.

use std::time::Duration;

use drover_engine::secrets::SecretValue;
use drover_engine::target::{
    Command, ExecOutput, FailureCause, FileTransfer, HostKeyPolicy, PasswordLogon, RemoteShell, SshOptions,
    SshTransport, TargetError, TargetErrorKind, Transport,
};
use drover_tests::sshd::free_ports;
use drover_tests::windows_lab::{LOGON_SECRET, LOGON_USER, Logon, WindowsLab, logon_password};
use serde_json::Value;
use sha2::Digest as _;

/// A DR runtime server of the lab: not joined, no SQL rights needed for what runs there.
const SERVER: &str = "DRBTS01";
/// A production runtime server, joined to the group and configured locally.
const JOINED: &str = "PRDBTS02";
/// The group's SQL server.
const SQL: &str = "PRDSQL01";

/// A fresh lab (`dr-site-preparation`'s) over SSH with `logon`.
fn lab(logon: Logon) -> WindowsLab {
    WindowsLab::new("dr-site-preparation.toml", &[], logon, &[])
}

/// What Drover would use for `server` of `lab` as a Windows server: PowerShell for commands and
/// files, the lab's logon (the `drover-win` password, or the test user's key), the sshd's host
/// key checked strictly, masters under the sshd's folder (closed when it is dropped).
fn options(lab: &WindowsLab, server: &str) -> SshOptions {
    let sshd = &lab.sshd;
    let (user, identity_file, password) = match lab.logon {
        Logon::Password => (
            LOGON_USER.to_string(),
            None,
            Some(PasswordLogon { secret: LOGON_SECRET.into(), password: SecretValue::new(logon_password()) }),
        ),
        Logon::Key => (sshd.user().to_string(), Some(sshd.client_key()), None),
    };
    SshOptions {
        server: server.into(),
        port: Some(lab.port(server)),
        user: Some(user),
        identity_file,
        known_hosts_file: Some(sshd.known_hosts()),
        host_key_policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(10),
        control_persist: Duration::from_secs(10),
        shell: RemoteShell::PowerShell,
        files: FileTransfer::PowerShell,
        password,
        ..SshOptions::new("127.0.0.1", sshd.dir().join("control"))
    }
}

fn transport(lab: &WindowsLab, server: &str) -> SshTransport {
    SshTransport::new(options(lab, server))
}

fn cmd(program: &str, args: &[&str]) -> Command {
    Command {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        timeout: Duration::from_secs(30),
        output_limit: 1024 * 1024,
    }
}

/// The doctor's second-hop probe: which login SQL Server sees for the session.
fn login_probe() -> Command {
    cmd("sqlcmd", &["-S", SQL, "-E", "-Q", "SET NOCOUNT ON; SELECT SUSER_SNAME()", "-h", "-1", "-W"])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The entries of the lab's command log, in order.
fn entries(lab: &WindowsLab) -> Vec<Value> {
    lab.command_log().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Runs `command` on `t` and returns its result with the one command-log entry it made.
async fn exec_logged(lab: &WindowsLab, t: &SshTransport, command: &Command) -> (ExecOutput, Value) {
    let before = entries(lab).len();
    let out = t.exec(command).await.unwrap_or_else(|e| panic!("{} {:?}: {e}", command.program, command.args));
    let mut after = entries(lab);
    assert_eq!(after.len(), before + 1, "one command line per call:\n{}", lab.command_log());
    (out, after.remove(before))
}

/// The argv an entry of the command log records.
fn argv(entry: &Value) -> Vec<String> {
    let argv = entry["argv"].as_array().unwrap_or_else(|| panic!("an exec entry: {entry}"));
    argv.iter().map(|a| a.as_str().expect("a string").to_string()).collect()
}

/// `e` is of `kind` and `cause`, and its message starts with `server` and where it was reached.
fn assert_failure(e: &TargetError, server: &str, kind: TargetErrorKind, cause: Option<FailureCause>) {
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.cause, cause, "{e}");
    assert!(e.message.starts_with(&format!("{server} (ssh to ")), "the server first: {e}");
}

/// The SHA-256 of `text` in lower-case hex, as the lab records passwords.
fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every string inside `value` (keys too).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => {
            map.iter().flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v))).collect()
        }
        _ => Vec::new(),
    }
}

/// Arguments every quoting layer between Drover and a Windows program could mangle: PowerShell's
/// (`$`, backticks, single quotes typographic too), cmd.exe's (`%`, `&`, `|`, `^`), Windows
/// PowerShell 5.1's (empty arguments dropped, double quotes unescaped, white space re-quoted), the
/// C runtime's (backslashes before a quote or the end, tabs), and options.
const HARD: &[&str] = &[
    "plain",
    "a b",
    "a  b",
    " ",
    "it's",
    "''",
    "\"",
    "\"\"",
    "\"dq\"",
    "say \"hi\" now",
    "\"quoted\" then space",
    "a\"b\"c d",
    "$env:PATH",
    "$(whoami)",
    "${x}",
    "`whoami`",
    "back`tick end`",
    "%PATH%",
    "100%",
    "a & b | c",
    "&&",
    "||",
    "^caret ^& <in >out;x",
    "@splat",
    "Zoë’s café ‘x’",
    "über",
    "’",
    "mixed ’'‘‚‛ quotes",
    "漢字 テスト",
    "nbsp\u{a0}here",
    "",
    "C:\\Program Files\\",
    "trailing\\",
    "trailing\\\\",
    "\\\\server\\share\\",
    "back\\\"slash",
    "a\\\\\"b",
    "dir\\ with space\\\\",
    "tab\there",
    "\t",
    "two\nlines",
    "-NoProfile",
    "-",
    "/S",
];

#[tokio::test]
async fn hard_arguments_reach_the_program_unchanged() {
    let lab = lab(Logon::Password);
    let t = transport(&lab, SERVER);
    // sc.exe is a program of the lab's servers; arguments it does not take are "unsupported",
    // after the lab logged what the program received.
    for arg in HARD {
        let (out, entry) = exec_logged(&lab, &t, &cmd("sc.exe", &[arg])).await;
        assert_eq!(argv(&entry), ["sc.exe", arg], "{arg:?} as the lab read {}", entry["arguments"]);
        assert_eq!(out.exit_code, Some(49), "9009, the lab's unsupported, ran the program: {out:?}");
        assert!(text(&out.stderr).contains("drover-lab: unsupported command:"), "{}", text(&out.stderr));
    }
    let (out, entry) = exec_logged(&lab, &t, &cmd("sc.exe", HARD)).await;
    let mut expected = vec!["sc.exe"];
    expected.extend(HARD);
    assert_eq!(argv(&entry), expected, "all at once, as the lab read {}", entry["arguments"]);
    assert_eq!(out.exit_code, Some(49), "{out:?}");
    assert_eq!(entry["server"], SERVER);
    assert_eq!(entry["network_credentials"], true, "a password logon");
}

#[tokio::test]
async fn white_space_after_a_double_quote_is_refused_before_anything_is_sent() {
    let lab = lab(Logon::Password);
    let t = transport(&lab, SERVER);
    // A first call, so the log exists and the refusal cannot be a connection's failure.
    exec_logged(&lab, &t, &cmd("sc.exe", &["plain"])).await;
    let before = lab.command_log();
    for arg in ["3\" of snow", "he said \"hi there\"", "\"a b\""] {
        let e = t.exec(&cmd("sc.exe", &["query", arg])).await.expect_err(arg);
        assert_failure(&e, SERVER, TargetErrorKind::Permanent, None);
        assert!(e.message.contains("Windows PowerShell 5.1 splits"), "{e}");
        assert!(e.message.contains("standard input or in a file"), "it says what to do instead: {e}");
    }
    assert_eq!(lab.command_log(), before, "nothing reached the server");
}

/// The lab's host-instance creation script (`lab/PROTOCOL.md`, "Creating a host instance"): the
/// password is its whole standard input.
fn create_host_instance_script(server: &str, host: &str, account: &str) -> String {
    format!(
        "$ErrorActionPreference = 'Stop'; \
         $password = [IO.StreamReader]::new([Console]::OpenStandardInput(), [Text.Encoding]::UTF8).ReadToEnd(); \
         $sh = ([WMICLASS]\"root\\MicrosoftBizTalkServer:MSBTS_ServerHost\").CreateInstance(); \
         $sh.ServerName = '{server}'; $sh.HostName = '{host}'; $sh.Map(); \
         $hi = ([WMICLASS]\"root\\MicrosoftBizTalkServer:MSBTS_HostInstance\").CreateInstance(); \
         $hi.Name = 'Microsoft BizTalk Server {host} {server}'; $hi.IsDisabled = $false; \
         $hi.Install('{account}', $password, $true, $false)"
    )
}

#[tokio::test]
async fn standard_input_reaches_the_program_byte_for_byte_and_never_a_command_line() {
    let lab = lab(Logon::Password);
    let t = transport(&lab, JOINED);
    // The session has network credentials: SQL Server sees the account, so the WMI script below
    // can reach the management database.
    let (out, _) = exec_logged(&lab, &t, &login_probe()).await;
    assert_eq!((out.exit_code, text(&out.stdout)), (Some(0), format!("CONTOSO\\{LOGON_USER}\r\n")));

    // Quotes, PowerShell and cmd.exe specials, non-ASCII, line breaks, leading and trailing
    // blanks: none of it may be touched, and no newline is added or stripped.
    let marker = "Stdin-Only-7c1e";
    let password = format!("  {marker} 'q' \"dq\" $x `y` %z% & | é’漢\r\nsecond line\n");
    // The in-process hosts' account: Install wants a member of the host's Windows group.
    let script = create_host_instance_script(JOINED, "ReceiveHost", "CONTOSO\\svc-bts");
    let mut create = cmd("powershell.exe", &["-NoProfile", "-NonInteractive", "-Command", &script]);
    create.stdin = Some(password.as_bytes().to_vec());
    let (out, entry) = exec_logged(&lab, &t, &create).await;
    assert_eq!(out.exit_code, Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    // The nested PowerShell got its script encoded: no quote or space of it on a command line.
    assert_eq!(argv(&entry)[..4], ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]);
    assert_eq!(argv(&entry).len(), 5, "{entry}");

    let state = lab.lab(&["show", "--json"]);
    assert!(state.status.success(), "drover-lab show: {}", text(&state.stderr));
    let state: Value = serde_json::from_slice(&state.stdout).expect("lab state JSON");
    let expected = sha256_hex(&password);
    let instance = state["group"]["host-instances"]
        .as_array()
        .expect("host instances")
        .iter()
        .find(|i| i["host"] == "ReceiveHost" && i["server"] == JOINED)
        .unwrap_or_else(|| panic!("the instance was created: {}", state["group"]));
    assert_eq!(instance["password-sha256"], expected.as_str(), "the exact password reached the script");
    let service = state["servers"][JOINED]["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == "BTSSvc$ReceiveHost")
        .unwrap_or_else(|| panic!("the service was created: {}", state["servers"][JOINED]));
    assert_eq!(service["password-sha256"], expected.as_str());

    // Neither password is in any field of any command line the server received.
    let log = lab.command_log();
    let logon = logon_password();
    assert!(!log.contains(marker) && !log.contains(&logon), "a secret in the command log");
    for entry in entries(&lab) {
        for field in strings(&entry) {
            assert!(!field.contains(&password) && !field.contains(marker), "the password is in {entry}");
            assert!(!field.contains(&logon), "the logon password is in the command log");
        }
    }
}

#[tokio::test]
async fn files_round_trip_through_powershell() {
    let lab = lab(Logon::Key);
    let t = transport(&lab, SERVER);
    let path = r"C:\Drover\it's a test\données ‘1’ $x.bin";
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(5 * 1024 + 7).collect();
    t.write_file(path, &all_bytes).await.expect("write");
    assert_eq!(t.read_file(path).await.expect("read"), all_bytes, "every byte value round-trips");

    let shorter: Vec<u8> = (0..=255u8).rev().cycle().take(700).collect();
    t.write_file(path, &shorter).await.expect("overwrite");
    assert_eq!(t.read_file(path).await.expect("read"), shorter, "the new contents, nothing of the old");
    t.write_file(path, b"").await.expect("an empty file");
    assert_eq!(t.read_file(path).await.expect("read"), b"");

    t.remove_file(path).await.expect("remove");
    let e = t.read_file(path).await.expect_err("removed");
    assert_failure(&e, SERVER, TargetErrorKind::NotFound, None);
    assert!(e.message.contains(&format!("cannot read {path}")), "{e}");
    t.remove_file(path).await.expect("removing a missing file is fine");

    let missing = r"C:\Drover\never written.xml";
    let e = t.read_file(missing).await.expect_err("missing");
    assert_failure(&e, SERVER, TargetErrorKind::NotFound, None);
    assert!(e.message.contains(&format!("cannot read {missing}")), "{e}");

    // The contents travelled on standard input and output, never on a command line.
    let longest = entries(&lab).iter().map(|e| e["command"].as_str().unwrap_or_default().len()).max();
    assert!(longest.is_some_and(|n| n < all_bytes.len()), "a command line carried the file ({longest:?})");
}

#[tokio::test]
async fn an_unreachable_server_is_retryable_naming_it() {
    let control = tempfile::tempdir().expect("temporary directory");
    let port = free_ports(1)[0];
    let t = SshTransport::new(SshOptions {
        server: SERVER.into(),
        port: Some(port),
        user: Some(LOGON_USER.into()),
        connect_timeout: Duration::from_secs(5),
        shell: RemoteShell::PowerShell,
        files: FileTransfer::PowerShell,
        ..SshOptions::new("127.0.0.1", control.path().join("control"))
    });
    let e = t.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect_err("nobody listens");
    assert_failure(&e, SERVER, TargetErrorKind::Retryable, Some(FailureCause::Unreachable));
    assert!(e.message.contains("Connection refused"), "{e}");
    let e = t.read_file(r"C:\Drover\x.xml").await.expect_err("nobody listens");
    assert_failure(&e, SERVER, TargetErrorKind::Retryable, Some(FailureCause::Unreachable));
}

#[tokio::test]
async fn a_wrong_key_is_permanent_naming_the_server() {
    let lab = lab(Logon::Key);
    let t =
        SshTransport::new(SshOptions { identity_file: Some(lab.sshd.wrong_key()), ..options(&lab, SERVER) });
    let e = t.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect_err("refused");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::Authentication));
    assert!(e.message.contains("Permission denied"), "{e}");
    let e = t.write_file(r"C:\Drover\x.xml", b"x").await.expect_err("refused");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::Authentication));
    assert_eq!(lab.command_log(), "", "no session reached the server");
}

#[tokio::test]
async fn a_wrong_password_is_permanent_naming_the_server_and_the_secret() {
    let lab = lab(Logon::Password);
    let wrong = "not-the-logon-password-5d2b";
    let logon = PasswordLogon { secret: LOGON_SECRET.into(), password: SecretValue::new(wrong) };
    let t = SshTransport::new(SshOptions { password: Some(logon), ..options(&lab, SERVER) });
    let e = t.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect_err("refused");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::Authentication));
    assert!(e.message.contains(&format!("the password of secret `{LOGON_SECRET}`")), "{e}");
    assert!(!e.message.contains(wrong), "the password is not shown: {e}");
    let e = t.read_file(r"C:\Drover\x.xml").await.expect_err("refused");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::Authentication));
    assert_eq!(lab.command_log(), "", "no session reached the server");
}

#[tokio::test]
async fn a_server_without_powershell_is_permanent_naming_it() {
    let lab = lab(Logon::Password);
    lab.fault(&["powershell-missing", SERVER]);
    let t = transport(&lab, SERVER);
    let e = t.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect_err("no PowerShell");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::NoPowerShell));
    assert!(
        e.message.contains(
            "is not available: 'powershell.exe' is not recognized as an internal or external command"
        ),
        "cmd.exe's words: {e}"
    );
    let e = t.read_file(r"C:\Drover\x.xml").await.expect_err("no PowerShell");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::NoPowerShell));
    // Another server of the same lab still has it.
    let other = transport(&lab, "DRBTS02");
    let out = other.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect("PowerShell on DRBTS02");
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_program_that_does_not_exist_is_not_found() {
    let lab = lab(Logon::Key);
    let t = transport(&lab, SERVER);
    for program in ["robocopy.exe", "sh", r"C:\Tools\missing.exe"] {
        let e = t.exec(&cmd(program, &["/?"])).await.expect_err(program);
        assert_failure(&e, SERVER, TargetErrorKind::NotFound, None);
        assert!(e.message.contains(&format!("program {program} not found")), "{e}");
        assert!(e.message.contains("CommandNotFoundException"), "PowerShell's words: {e}");
    }
}

#[tokio::test]
async fn a_key_logon_reaching_sql_server_fails_on_the_double_hop() {
    let lab = lab(Logon::Key);
    let t = transport(&lab, SERVER);
    let e = t.exec(&login_probe()).await.expect_err("no network credentials");
    assert_failure(&e, SERVER, TargetErrorKind::Permanent, Some(FailureCause::DoubleHop));
    assert!(e.message.contains("double hop"), "{e}");
    assert!(e.message.contains(r"NT AUTHORITY\ANONYMOUS LOGON"), "what SQL Server said: {e}");
    assert!(e.message.contains("password-secret"), "what to do: {e}");
    let entry = entries(&lab).pop().expect("the probe reached the server");
    assert_eq!(entry["network_credentials"], false, "{entry}");
    // A program that needs no second server runs as usual.
    let out = t.exec(&cmd("sc.exe", &["query", "ENTSSO"])).await.expect("sc.exe");
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
}
