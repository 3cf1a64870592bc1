//! `drover serve --tls-cert FILE --tls-key FILE` end to end, through the real binary and a rustls
//! client that trusts only a certificate made in the test: it answers the API over HTTPS and
//! nothing over plain HTTP, its session cookie is `Secure`, SIGTERM still ends the event streams
//! and exits 0; a missing, unreadable or garbage file is refused with exit 2 naming it; and an
//! address other machines reach starts without `--insecure` only with both TLS and a users file.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::Arc;

use drover_tests::web::{self, Response, Served, TIMEOUT, parse, request_bytes};
use drover_tests::{Sandbox, stderr, stdout};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A sandbox with a self-signed certificate for 127.0.0.1 and localhost (`cert.pem`, `key.pem`)
/// and a users file with alice (password `alice-secret`, `users.toml`).
struct Site {
    sandbox: Sandbox,
    cert: String,
    key: String,
    users: String,
}

impl Site {
    fn new() -> Site {
        let sandbox = web::sandbox();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("a self-signed certificate");
        let cert = sandbox.write("cert.pem", &made.cert.pem());
        let key = sandbox.write("key.pem", &made.signing_key.serialize_pem());
        let users = web::add_users(&sandbox, &["alice"]);
        Site { sandbox, cert, key, users }
    }

    /// `--tls-cert cert.pem --tls-key key.pem`, then `more`.
    fn tls_args<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--tls-cert", self.cert.as_str(), "--tls-key", self.key.as_str()];
        args.extend_from_slice(more);
        args
    }

    /// A TLS client that trusts this site's certificate and nothing else.
    fn client(&self) -> Arc<ClientConfig> {
        client_trusting(&std::fs::read(self.sandbox.path().join("cert.pem")).expect("read cert.pem"))
    }
}

fn client_trusting(cert_pem: &[u8]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem).expect("a PEM certificate")).expect("a root");
    #[allow(deprecated)] // ring, as the server uses (see web/src/tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` (verified for 127.0.0.1), the handshake done.
fn connect(
    client: &Arc<ClientConfig>,
    addr: SocketAddr,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    tcp.set_write_timeout(Some(TIMEOUT)).expect("a write timeout");
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    let connection = ClientConnection::new(client.clone(), name.to_owned()).expect("a TLS client");
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    }
    Ok(stream)
}

/// Sends one request over TLS (`Connection: close`) and reads the whole answer.
fn https(
    client: &Arc<ClientConfig>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = connect(client, addr).unwrap_or_else(|e| panic!("{e}"));
    stream.write_all(&request_bytes(addr, method, path, headers, body)).expect("send the request");
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer)
        && answer.is_empty()
    {
        panic!("no answer from {addr}: {e}");
    }
    parse(&answer).unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
}

/// Starts `drover serve args…` (no `--listen` added) and returns it with its first stdout line.
fn spawn(sandbox: &Sandbox, args: &[&str]) -> (Child, String) {
    let mut child = sandbox
        .drover()
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover serve");
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut out, &mut first).expect("the first line");
    (child, first)
}

#[test]
fn with_a_certificate_the_view_speaks_https_only_and_its_cookie_is_secure() {
    let site = Site::new();
    web::start(&site.sandbox, "done", web::DONE, 0);
    let served = Served::start(&site.sandbox, &site.tls_args(&["--users", &site.users]));
    assert!(served.banner.contains(" on https://127.0.0.1:"), "{}", served.banner);
    assert_eq!(served.origin(), format!("https://{}", served.addr));
    let client = site.client();

    // A client that connects and never starts its handshake stalls nobody else.
    let _silent = TcpStream::connect(served.addr).expect("connect");

    // The API over TLS answers what `drover runs --json` prints.
    let answer = https(&client, served.addr, "GET", "/api/runs", &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let runs = site.sandbox.run(&["runs", "--json"]);
    let expected: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("runs --json");
    assert_eq!(answer.json(), expected);
    assert_eq!(answer.json().as_array().map(Vec::len), Some(1));

    // Plain HTTP on the same port gets no page (the handshake fails), and the server goes on.
    let mut plain = TcpStream::connect(served.addr).expect("connect");
    plain.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    plain.write_all(&request_bytes(served.addr, "GET", "/api/runs", &[], b"")).expect("send a plain request");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!String::from_utf8_lossy(&answer).contains("\"run\""), "{answer:?}");

    // A client that does not trust this certificate does not get through the handshake.
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
    let refused = connect(&client_trusting(stranger.cert.pem().as_bytes()), served.addr)
        .expect_err("a handshake that fails");
    assert!(refused.contains("invalid peer certificate"), "{refused}");

    // Logging in over TLS sets a session cookie only a browser on HTTPS sends back.
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let login = https(&client, served.addr, "POST", "/login", &headers, b"name=alice&password=alice-secret");
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").expect("a session cookie");
    assert!(cookie.split(';').any(|part| part.trim() == "Secure"), "{cookie}");
    assert!(cookie.split(';').any(|part| part.trim() == "HttpOnly"), "{cookie}");
    let session = cookie.split(';').next().expect("name=value");
    let page = https(&client, served.addr, "GET", "/", &[("cookie", session)], b"");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<span id=\"whoami\">alice</span>"), "{}", page.text());
}

#[test]
fn sigterm_ends_an_event_stream_over_tls_and_exits_0() {
    let site = Site::new();
    let run = web::start(&site.sandbox, "done", web::DONE, 0);
    let mut served = Served::start(&site.sandbox, &site.tls_args(&["--poll", "50ms"]));

    let mut stream = connect(&site.client(), served.addr).unwrap_or_else(|e| panic!("{e}"));
    let path = format!("/api/runs/{run}/stream");
    let mut head = request_bytes(served.addr, "GET", &path, &[("accept", "text/event-stream")], b"");
    // An event stream's request keeps its connection open.
    head = String::from_utf8(head).expect("UTF-8").replace("connection: close\r\n", "").into_bytes();
    stream.write_all(&head).expect("send the stream request");
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: view") {
        let n = stream.read(&mut buffer).expect("read the stream");
        assert!(n > 0, "the stream ended before a view: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );

    served.signal("TERM");
    // The rest of the stream, to its end: HTTP's last chunk, then TLS's close_notify (a server
    // that dropped the connection instead would make this read fail).
    stream.read_to_end(&mut seen).expect("the stream ends cleanly");
    assert!(seen.ends_with(b"0\r\n\r\n"), "no last chunk: {:?}", String::from_utf8_lossy(&seen));
    let status = served.wait();
    assert_eq!(status.code(), Some(0), "{}", served.stderr());
    assert!(served.stderr().contains("drover serve: stopped"), "{}", served.stderr());
}

#[test]
fn a_certificate_without_its_key_or_a_file_that_is_not_pem_is_refused_naming_it() {
    let site = Site::new();
    let listen = ["--listen", "127.0.0.1:0"];

    let out = site.sandbox.run(&[&["serve"], &listen[..], &["--tls-cert", &site.cert]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
    let out = site.sandbox.run(&[&["serve"], &listen[..], &["--tls-key", &site.key]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls-cert"), "{}", stderr(&out));

    let garbage = site.sandbox.write("garbage.pem", "this is not a key\n");
    let out = site
        .sandbox
        .run(&[&["serve"], &listen[..], &site.tls_args(&[])[..2], &["--tls-key", &garbage]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{garbage}: no private key in it")), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    let missing = site.sandbox.path().join("missing.pem").to_str().expect("UTF-8").to_string();
    let out = site
        .sandbox
        .run(&[&["serve"], &listen[..], &["--tls-cert", &missing, "--tls-key", &site.key]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("cannot read {missing}: ")), "{}", stderr(&out));

    // The key of another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let other_key = site.sandbox.write("other-key.pem", &other.signing_key.serialize_pem());
    let out = site
        .sandbox
        .run(&[&["serve"], &listen[..], &["--tls-cert", &site.cert, "--tls-key", &other_key]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains(&format!("{other_key} is not the private key of the certificate in {}", site.cert)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_address_other_machines_reach_needs_tls_and_users_or_insecure() {
    let site = Site::new();
    let exposed = ["--listen", "0.0.0.0:0"];

    // TLS and users: it starts without --insecure, and warns of nothing.
    let (child, first) =
        spawn(&site.sandbox, &[&exposed[..], &site.tls_args(&["--users", &site.users])].concat());
    assert!(first.starts_with("serving ") && first.contains(" on https://0.0.0.0:"), "{first}");
    let port = first.trim().rsplit(':').next().expect("a port").trim_end_matches('/');
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let answer = https(&site.client(), addr, "GET", "/api/runs", &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(kill.expect("run kill").success());
    let output = child.wait_with_output().expect("drover serve ends");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    // TLS without users: refused, naming what is missing, unless --insecure.
    let out = site.sandbox.run(&[&["serve"], &exposed[..], &site.tls_args(&[])].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no users file (--users)") && err.contains("--insecure"), "{err}");
    assert!(!err.contains("no TLS"), "{err}");
    let (mut child, first) = spawn(&site.sandbox, &[&exposed[..], &site.tls_args(&["--insecure"])].concat());
    assert!(first.contains(" on https://0.0.0.0:"), "{first}");
    child.kill().expect("kill drover serve");
    let err = stderr(&child.wait_with_output().expect("drover serve ends"));
    assert!(err.contains("warning: serving on 0.0.0.0:0 without a users file"), "{err}");

    // Users without TLS: refused, naming TLS.
    let out = site.sandbox.run(&["serve", "--listen", "0.0.0.0:0", "--users", &site.users]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no TLS (--tls-cert and --tls-key)") && err.contains("--insecure"), "{err}");
    assert!(!err.contains("users file"), "{err}");
}
