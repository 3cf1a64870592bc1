//! The ssh transport against a real sshd on 127.0.0.1 (`drover_tests::sshd`): quoting, input,
//! exit codes, limits and timeouts of programs; files through sftp; connection reuse; and how
//! each way of failing to connect (a wrong password included) is classified, naming the server.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_engine::secrets::SecretValue;
use drover_engine::target::{
    Command, FileTransfer, HostKeyPolicy, PasswordLogon, RemoteShell, SshOptions, SshTransport, TargetError,
    TargetErrorKind, Transport,
};
use drover_tests::sshd::{Sshd, SshdConfig, free_ports};

/// Options that reach `sshd` (the server `SSHD01`) with its client key, checking its host key
/// strictly; a POSIX shell and sftp.
fn options(sshd: &Sshd) -> SshOptions {
    SshOptions {
        server: "SSHD01".into(),
        port: Some(sshd.port()),
        user: Some(sshd.user().into()),
        identity_file: Some(sshd.client_key()),
        known_hosts_file: Some(sshd.known_hosts()),
        host_key_policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(5),
        control_persist: Duration::from_secs(10),
        ..SshOptions::new("127.0.0.1", sshd.dir().join("control"))
    }
}

fn transport(sshd: &Sshd) -> SshTransport {
    SshTransport::new(options(sshd))
}

fn cmd(program: &str, args: &[&str]) -> Command {
    Command {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        timeout: Duration::from_secs(20),
        output_limit: 1024 * 1024,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `e` is of `kind`, names the server and says `needle`.
fn assert_kind(e: &TargetError, kind: TargetErrorKind, needle: &str) {
    assert_eq!(e.kind, kind, "{e}");
    assert!(e.message.contains("SSHD01 (ssh to "), "the server is not named in: {e}");
    assert!(e.message.contains(needle), "expected {needle:?} in: {e}");
}

#[tokio::test]
async fn args_arrive_word_for_word_with_stdin_stderr_and_exit_code() {
    let sshd = Sshd::start();
    let words = ["a b", "it's", "\"dq\"", "$HOME", "`id`", "", "*", "back\\slash", "two\nlines"];
    let mut args = vec!["-c", r#"printf '[%s]' "$@"; cat; echo oops >&2; exit 3"#, "sh"];
    args.extend(words);
    let mut c = cmd("sh", &args);
    c.stdin = Some(b"input\0with a NUL".to_vec());
    let out = transport(&sshd).exec(&c).await.expect("exec over ssh");
    assert_eq!(
        text(&out.stdout),
        "[a b][it's][\"dq\"][$HOME][`id`][][*][back\\slash][two\nlines]input\0with a NUL"
    );
    assert_eq!(text(&out.stderr), "oops\n", "ssh's own messages stay out of the program's stderr");
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.truncated);
}

#[tokio::test]
async fn a_program_exiting_255_is_a_result_not_an_ssh_failure() {
    let sshd = Sshd::start();
    let t = transport(&sshd);
    let out = t.exec(&cmd("sh", &["-c", "echo bye; exit 255"])).await.expect("exec over ssh");
    assert_eq!(out.exit_code, Some(255));
    assert_eq!(text(&out.stdout), "bye\n");
    let out = t.exec(&cmd("true", &[])).await.expect("exec over ssh");
    assert_eq!(out.exit_code, Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[tokio::test]
async fn output_over_the_limit_is_truncated() {
    let sshd = Sshd::start();
    let mut c = cmd("sh", &["-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"]);
    c.output_limit = 1000;
    let out = transport(&sshd).exec(&c).await.expect("exec over ssh");
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr.len(), 1000);
    assert!(out.truncated);
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn a_program_past_its_timeout_is_retryable() {
    let sshd = Sshd::start();
    let mut c = cmd("sleep", &["30"]);
    c.timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let e = transport(&sshd).exec(&c).await.expect_err("timed out");
    assert_kind(&e, TargetErrorKind::Retryable, "timed out");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn files_round_trip_through_sftp() {
    let sshd = Sshd::start();
    let t = transport(&sshd);
    // sshd runs on this machine, so the remote path is a local one too.
    let dir = sshd.dir().join("remote dir");
    std::fs::create_dir(&dir).expect("create the remote directory");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..=255u8).rev().cycle().take(300_000).collect();
    for name in ["plain.bin", "with space.bin", "quote \"d\" and 'single' #.bin", "wild*card?[x].bin"] {
        let path = dir.join(name);
        let remote = path.to_str().expect("utf-8 path");
        t.write_file(remote, &all_bytes).await.unwrap_or_else(|e| panic!("write {name}: {e}"));
        assert_eq!(std::fs::read(&path).expect("on disk"), all_bytes, "{name}");
        assert_eq!(t.read_file(remote).await.expect("read"), all_bytes, "{name}");
        t.write_file(remote, &big).await.expect("overwrite");
        assert_eq!(t.read_file(remote).await.expect("read again"), big, "{name}");
        t.remove_file(remote).await.expect("remove");
        assert!(!path.exists(), "{name} removed");
        t.remove_file(remote).await.expect("removing a missing file is fine");
    }
    t.write_file(dir.join("empty").to_str().expect("utf-8"), b"").await.expect("write nothing");
    assert_eq!(std::fs::read(dir.join("empty")).expect("on disk"), b"");
    let left: Vec<_> = std::fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["empty"], "no temporary upload is left behind");
}

#[tokio::test]
async fn missing_files_and_directories_are_not_found() {
    let sshd = Sshd::start();
    let t = transport(&sshd);
    let missing = sshd.dir().join("no such file");
    let e = t.read_file(missing.to_str().expect("utf-8")).await.expect_err("missing");
    assert_kind(&e, TargetErrorKind::NotFound, "no such file");
    let in_missing_dir = sshd.dir().join("no dir/file");
    let e = t.write_file(in_missing_dir.to_str().expect("utf-8"), b"x").await.expect_err("no directory");
    assert_kind(&e, TargetErrorKind::NotFound, "No such file");
    let e = t.read_file("bad\npath").await.expect_err("unsendable path");
    assert_eq!(e.kind, TargetErrorKind::Permanent, "{e}");
}

#[tokio::test]
async fn one_connection_serves_many_calls() {
    let sshd = Sshd::start();
    let t = transport(&sshd);
    for _ in 0..3 {
        let out = t.exec(&cmd("echo", &["hi"])).await.expect("exec over ssh");
        assert_eq!(text(&out.stdout), "hi\n");
    }
    let path = sshd.dir().join("reuse");
    t.write_file(path.to_str().expect("utf-8"), b"x").await.expect("write");
    assert_eq!(t.read_file(path.to_str().expect("utf-8")).await.expect("read"), b"x");
    let sockets = std::fs::read_dir(sshd.dir().join("control")).expect("control directory").count();
    assert_eq!(sockets, 1, "one master connection socket");
    assert_eq!(accepted_logins(&sshd), 1, "sshd log:\n{}", sshd.log());
}

fn accepted_logins(sshd: &Sshd) -> usize {
    sshd.log().lines().filter(|l| l.contains("Accepted publickey")).count()
}

#[tokio::test]
async fn an_unreachable_port_is_retryable_with_sshs_words() {
    let sshd = Sshd::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let t = SshTransport::new(SshOptions { port: Some(port), ..options(&sshd) });
    let e = t.exec(&cmd("true", &[])).await.expect_err("nobody listens");
    assert_kind(&e, TargetErrorKind::Retryable, "Connection refused");
    let e = t.read_file("/etc/hostname").await.expect_err("nobody listens");
    assert_kind(&e, TargetErrorKind::Retryable, "Connection refused");
}

#[tokio::test]
async fn a_key_the_server_does_not_accept_is_permanent() {
    let sshd = Sshd::start();
    let t = SshTransport::new(SshOptions { identity_file: Some(sshd.wrong_key()), ..options(&sshd) });
    let e = t.exec(&cmd("true", &[])).await.expect_err("refused");
    assert_kind(&e, TargetErrorKind::Permanent, "Permission denied");
    let e = t.write_file("/tmp/never-written", b"x").await.expect_err("refused");
    assert_kind(&e, TargetErrorKind::Permanent, "Permission denied");
    assert!(!Path::new("/tmp/never-written").exists());
}

#[tokio::test]
async fn a_changed_host_key_is_permanent_under_the_strict_policy() {
    let sshd = Sshd::start();
    let other_key = std::fs::read_to_string(sshd.wrong_key().with_extension("pub")).expect("a public key");
    let known_hosts = sshd.dir().join("known_hosts_other");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {other_key}", sshd.port())).expect("write");
    let t = SshTransport::new(SshOptions { known_hosts_file: Some(known_hosts.clone()), ..options(&sshd) });
    let e = t.exec(&cmd("true", &[])).await.expect_err("host key mismatch");
    assert_kind(&e, TargetErrorKind::Permanent, "REMOTE HOST IDENTIFICATION HAS CHANGED");
    assert!(e.message.contains("Host key verification failed"), "{e}");
    // An unknown host is refused too, and accept-new takes it on first contact.
    std::fs::write(&known_hosts, "").expect("empty known_hosts");
    let e = t.exec(&cmd("true", &[])).await.expect_err("unknown host");
    assert_kind(&e, TargetErrorKind::Permanent, "Host key verification failed");
    let t = SshTransport::new(SshOptions {
        known_hosts_file: Some(known_hosts.clone()),
        host_key_policy: HostKeyPolicy::AcceptNew,
        control_dir: sshd.dir().join("control-accept-new"),
        ..options(&sshd)
    });
    assert_eq!(t.exec(&cmd("true", &[])).await.expect("accepted").exit_code, Some(0));
    let learned = std::fs::read_to_string(&known_hosts).expect("known_hosts");
    assert!(learned.contains(&format!("[127.0.0.1]:{}", sshd.port())), "{learned}");
}

#[tokio::test]
async fn a_wrong_password_is_permanent_naming_server_and_secret() {
    let config = SshdConfig { password_authentication: true, ..SshdConfig::default() };
    let sshd = Sshd::start_with(&free_ports(1), &config);
    let wrong = "not-the-password-3f9a";
    let logon = PasswordLogon { secret: "sshd01-admin".into(), password: SecretValue::new(wrong) };
    let t = SshTransport::new(SshOptions { password: Some(logon), ..options(&sshd) });
    let e = t.exec(&cmd("true", &[])).await.expect_err("refused");
    assert_kind(&e, TargetErrorKind::Permanent, "Permission denied");
    assert!(e.message.contains("the password of secret `sshd01-admin`"), "{e}");
    let e = t.read_file("/etc/hostname").await.expect_err("refused");
    assert_kind(&e, TargetErrorKind::Permanent, "Permission denied");
    let log = sshd.log();
    assert!(log.contains("Failed password"), "ssh offered a password through the helper:\n{log}");
    assert!(!log.contains("Accepted publickey"), "and never a key:\n{log}");
    assert!(!e.message.contains(wrong) && !log.contains(wrong));
}

#[tokio::test]
async fn a_server_without_powershell_is_permanent_naming_the_server() {
    // This sshd runs a POSIX shell: to the transport, a Windows server without powershell.exe.
    let sshd = Sshd::start();
    let t = SshTransport::new(SshOptions {
        shell: RemoteShell::PowerShell,
        files: FileTransfer::PowerShell,
        ..options(&sshd)
    });
    let e = t.exec(&cmd("sc.exe", &["query"])).await.expect_err("no PowerShell");
    assert_kind(&e, TargetErrorKind::Permanent, "PowerShell (powershell.exe) is not available: ");
    assert!(e.message.starts_with("SSHD01 (ssh to "), "the server first: {e}");
    assert!(e.message.contains("is it a Windows server?"), "{e}");
    let e = t.read_file(r"C:\Drover\x.xml").await.expect_err("no PowerShell");
    assert_kind(&e, TargetErrorKind::Permanent, "PowerShell (powershell.exe) is not available");
}
