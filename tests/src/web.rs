//! `drover serve` driven from tests: [`Served`] starts the real binary in a [`Sandbox`] on port 0,
//! reads the address from the first line it prints, and stops it when dropped. [`request`] sends
//! one HTTP/1.1 request on a fresh connection and reads the whole answer; [`raw`] sends bytes as
//! they are (malformed requests); [`EventStream`] follows a server-sent event stream.
//! [`request_bytes`] and [`parse`] are the two halves of [`request`], for a client over TLS
//! (`tests/web_tls.rs`). The web tests' shared set-up is here too: [`sandbox`], the workflows
//! [`GATED`] and [`DONE`], [`start`], [`add_users`] and [`events`].
//!
//! The client is a few lines over `std::net::TcpStream` on purpose: the tests also need to write
//! what no HTTP client would send, and every request closes its connection, so an answer is all
//! the bytes up to the end (chunked bodies are decoded). Every read has a generous timeout, so a
//! server that never answers fails the test instead of hanging it.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Sandbox, stderr, stdout, wasm};

/// How long a read from the server, or its start and stop, may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A step that succeeds, a gate only alice or bob may pass, and a step after it.
pub const GATED: &str = r#"
name = "gated"
version = "1.0.0"
[[steps]]
id = "first"
plugin = "fixture-plugin-for-tests"
with = { behave = "ok" }
[[steps]]
id = "go"
approval = { prompt = "Switch to DR?", approvers = ["alice", "bob"] }
needs = ["first"]
[[steps]]
id = "after"
plugin = "fixture-plugin-for-tests"
needs = ["go"]
with = { behave = "ok" }
"#;

/// One step that succeeds.
pub const DONE: &str = r#"
name = "done"
version = "1.0.0"
[[steps]]
id = "only"
plugin = "fixture-plugin-for-tests"
with = { behave = "ok" }
"#;

/// A sandbox with the fixture plugin installed and an empty `inventory.toml`.
pub fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.install(&[wasm::FIXTURE]);
    sandbox.write("inventory.toml", "");
    sandbox
}

/// Runs `workflow` (written as `name`.toml) and returns the new run's id, checking the exit code.
pub fn start(sandbox: &Sandbox, name: &str, workflow: &str, code: i32) -> String {
    let wf = sandbox.write(&format!("{name}.toml"), workflow);
    let out = sandbox.run(&["--quiet", "run", &wf, "--inventory", "inventory.toml"]);
    assert_eq!(out.status.code(), Some(code), "{}{}", stdout(&out), stderr(&out));
    sandbox.last_run()
}

/// Adds `names` to the sandbox's `users.toml` (password `<name>-secret`); returns its path.
pub fn add_users(sandbox: &Sandbox, names: &[&str]) -> String {
    let file = sandbox.path().join("users.toml").to_str().expect("UTF-8").to_string();
    for name in names {
        let out =
            sandbox.run_with_stdin(&["users", "add", name, "--file", &file], &format!("{name}-secret\n"));
        assert!(out.status.success(), "users add {name}: {}", stderr(&out));
    }
    file
}

/// `drover events RUN --json`, one event per line.
pub fn events(sandbox: &Sandbox, run: &str) -> Vec<serde_json::Value> {
    let out = sandbox.run(&["events", run, "--json"]);
    assert!(out.status.success(), "drover events: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).expect("an event as JSON")).collect()
}

/// A running `drover serve`; killed (if still running) when dropped.
pub struct Served {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The first line it printed: `serving <journal> on http://127.0.0.1:PORT/` (`https://` when
    /// it serves TLS).
    pub banner: String,
    /// `http` or `https`, as the banner says.
    scheme: &'static str,
    /// Its standard error, written to a file in the sandbox.
    log: std::path::PathBuf,
}

impl Served {
    /// Starts `drover serve --listen 127.0.0.1:0 args…` in `sandbox` and waits for its address.
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Served {
        let log = sandbox.path().join(format!("serve-{}.log", next_log()));
        let mut child = sandbox
            .drover()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the server's log"))
            .spawn()
            .expect("start drover serve");
        let mut banner = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut banner).expect("read drover serve's first line");
        let scheme = if banner.contains(" on https://") { "https" } else { "http" };
        let address = banner
            .trim()
            .rsplit_once(&format!(" on {scheme}://"))
            .map(|(_, a)| a.trim_end_matches('/').to_string());
        let Some(addr) = address.and_then(|a| a.parse::<SocketAddr>().ok()) else {
            let _ = child.kill();
            let status = child.wait().expect("wait for drover serve");
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("drover serve printed {banner:?} as its first line ({status}); stderr: {log}");
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Served { child, addr, banner: banner.trim().to_string(), scheme, log }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash; `https://` when it serves TLS).
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with no credentials.
    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    /// `GET path` with `headers`.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }

    /// `POST path` with a JSON body (`content-type: application/json`) and `headers`.
    pub fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Response {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        request(self.addr, "POST", path, &all, body.to_string().as_bytes())
    }

    /// Logs `name` in through the login form and returns the `Cookie` header value of the session.
    pub fn login(&self, name: &str, password: &str) -> String {
        let form = format!("name={}&password={}", form_encode(name), form_encode(password));
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let answer = request(self.addr, "POST", "/login", &headers, form.as_bytes());
        assert_eq!(answer.status, 303, "login of {name}: {}", answer.text());
        let cookie = answer.header("set-cookie").expect("a session cookie");
        cookie.split(';').next().expect("name=value").to_string()
    }

    /// The CSRF token in the `<meta name="csrf-token">` of the page at `path` seen with `cookie`.
    pub fn csrf_token(&self, path: &str, cookie: &str) -> String {
        let page = self.get_with(path, &[("cookie", cookie)]);
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let text = page.text();
        let (_, rest) = text
            .split_once("<meta name=\"csrf-token\" content=\"")
            .unwrap_or_else(|| panic!("{path} has no csrf-token meta tag for a logged-in session: {text}"));
        rest.split('"').next().expect("the token").to_string()
    }

    /// Follows `path` as a server-sent event stream, with `headers`.
    pub fn stream(&self, path: &str, headers: &[(&str, &str)]) -> EventStream {
        EventStream::open(self.addr, path, headers)
    }

    /// Sends `signal` (`TERM`, `INT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits until the server exits (failing the test after [`TIMEOUT`]) and returns how.
    pub fn wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for drover serve") {
                return status;
            }
            assert!(started.elapsed() < TIMEOUT, "drover serve did not exit; stderr: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A number that differs between the servers a test process starts (their log files).
fn next_log() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `text` encoded for an `application/x-www-form-urlencoded` value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer decoded).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, failing the test with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the answer ({}) is not JSON: {e}: {}", self.status, self.text()))
    }
}

/// Sends `method path` with `headers` and `body` on a new connection (`Connection: close`,
/// `Host` and `Content-Length` added) and reads the answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    raw(addr, &request_bytes(addr, method, path, headers, body))
}

/// The bytes of `method path` with `headers` and `body`, as [`request`] sends them.
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` as they are on a new connection and reads the answer until the server closes
/// it. A server that answers before reading everything (413) may stop reading: what could not be
/// written is dropped.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut stream = connect(addr);
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer)
        && answer.is_empty()
    {
        panic!("no answer from {addr}: {e}");
    }
    parse(&answer).unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("set a write timeout");
    stream
}

/// Splits an answer into status, headers and body (`None`: not an HTTP answer).
pub fn parse(answer: &[u8]) -> Option<Response> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &answer[end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Some(Response { status, headers, body })
}

/// A chunked body decoded.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A server-sent event stream being read.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    /// The answer's status.
    pub status: u16,
    /// Decoded text not yet split into events.
    pending: String,
    ended: bool,
    last_chunk: bool,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// Its `event:` name (empty for none).
    pub event: String,
    /// Its `data:` lines, joined with newlines.
    pub data: String,
}

impl EventStream {
    fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let mut stream = connect(addr);
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send the stream request");
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("read the stream's status line");
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read the stream's headers");
            if line.trim().is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        assert!(status != 200 || chunked, "an event stream without chunked encoding: {status_line}");
        EventStream { reader, status, pending: String::new(), ended: false, last_chunk: false }
    }

    /// The next event (comments and keep-alives skipped), or `None` once the server ended the
    /// stream. A read that times out fails the test.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = SseEvent { event: String::new(), data: String::new() };
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.event = name.trim_start().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if event.event.is_empty() && data.is_empty() {
                    continue;
                }
                event.data = data.join("\n");
                return Some(event);
            }
            if self.ended || !self.read_chunk() {
                self.ended = true;
                return None;
            }
        }
    }

    /// The next `view` event's data as JSON, or `None` once the stream ended.
    pub fn next_view(&mut self) -> Option<serde_json::Value> {
        loop {
            let event = self.next_event()?;
            if event.event == "view" {
                return Some(serde_json::from_str(&event.data).expect("a view event's data is JSON"));
            }
        }
    }

    /// Whether the server ended the stream with HTTP's last chunk (a stream it ended itself), not
    /// by dropping the connection.
    pub fn ended_cleanly(&self) -> bool {
        self.last_chunk
    }

    /// Reads one chunk into `pending`; false at the stream's end (the last chunk, or the
    /// connection closed).
    fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        match self.reader.read_line(&mut size) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the event stream sent nothing for {TIMEOUT:?}")
            }
            Err(_) => return false,
        }
        let Ok(size) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else {
            return false;
        };
        if size == 0 {
            self.last_chunk = true;
            return false;
        }
        let mut chunk = vec![0; size + 2];
        if self.reader.read_exact(&mut chunk).is_err() {
            return false;
        }
        chunk.truncate(size);
        self.pending.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        true
    }
}
