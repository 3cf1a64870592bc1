//! A real headless Chromium for browser tests, driven over WebDriver: [`Browser::start`] runs
//! Debian's `/usr/bin/chromedriver` on a free port of 127.0.0.1 (chromedriver binds the loopback
//! addresses only and lets only local clients in), in a process group of its own, and opens a
//! session of `/usr/bin/chromium` (headless, 1280x900, a throwaway profile in a temporary
//! directory) through the `fantoccini` client.
//!
//! The API is blocking, like the rest of this crate's helpers: the browser owns a single-threaded
//! tokio runtime and waits on each WebDriver command, so a test calls `browser.click("#go")`
//! from a plain `#[test]` (never from inside a tokio runtime). Every helper fails the test with a
//! message naming the selector or the URL and WebDriver's error; waiting is done by
//! [`Browser::wait_until`], which polls what the page shows, never by sleeping a fixed time.
//!
//! Dropping the browser closes the session, kills chromedriver's process group (Chromium and its
//! helpers are in it) and waits until none of them runs before it removes the profile. Tests
//! never skip: without Chromium or chromedriver, [`Browser::start`] fails saying what to install
//! (`cargo xtask test` installs the Debian packages `chromium` and `chromium-driver`).

use std::fmt::Debug;
use std::fs::File;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element as WdElement;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`), of the same version as [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to answer ready, and Chromium to open a session: generous, as
/// a busy two-core machine starts a browser slowly.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one WebDriver command may take before the test fails naming it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Browser::wait_until`] polls before it fails, unless
/// [`Browser::set_wait_timeout`] changed it.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// The pause between two polls of a condition (or of chromedriver's status).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long dropping the browser waits for its processes to be gone after killing them.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A headless Chromium session; see the module documentation.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    /// `None` only while dropping.
    client: Option<Client>,
    driver: Child,
    chromium_pid: Option<u32>,
    /// How long [`Browser::wait_until`] polls.
    wait_timeout: Duration,
    /// chromedriver's output (its log), read into startup failures.
    log: std::path::PathBuf,
    /// Holds the Chromium profile and the log; removed last, once no process uses it.
    _dir: tempfile::TempDir,
}

/// One element of the page, found by a CSS selector ([`Browser::find`]).
pub struct Element<'b> {
    browser: &'b Browser,
    css: String,
    inner: WdElement,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; fails the test, naming what did not
    /// come up, if either is missing or does not start within a minute.
    pub fn start() -> Browser {
        for (binary, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(binary).exists(),
                "{what} ({binary}) is missing: `cargo xtask test` installs the Debian packages chromium and chromium-driver"
            );
        }
        let dir = tempfile::Builder::new().prefix("drover-browser-").tempdir().expect("temporary directory");
        let log = dir.path().join("chromedriver.log");
        let profile = dir.path().join("profile");
        let port = free_port();
        let output = File::create(&log).expect("create the chromedriver log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicate the log file"))
            .stderr(output)
            // Its own process group, so dropping the browser kills chromedriver and every
            // Chromium process it started with one signal.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the WebDriver client");
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            chromium_pid: None,
            wait_timeout: WAIT_TIMEOUT,
            log,
            _dir: dir,
        };
        browser.wait_for_driver(port);
        browser.open_session(port, &profile);
        browser
    }

    /// Polls chromedriver's `/status` until it says it is ready; fails if chromedriver exits or
    /// is not ready within [`START_TIMEOUT`].
    fn wait_for_driver(&mut self, port: u16) {
        let started = Instant::now();
        loop {
            if let Some(exit) = self.driver.try_wait().expect("poll chromedriver") {
                panic!(
                    "chromedriver exited ({exit}) before it was ready on port {port}: {}",
                    self.driver_log()
                );
            }
            let last = match driver_status(port) {
                Ok(status) if status["value"]["ready"] == true => return,
                Ok(status) => status.to_string(),
                Err(e) => e,
            };
            assert!(
                started.elapsed() < START_TIMEOUT,
                "chromedriver did not answer ready on 127.0.0.1:{port} within {START_TIMEOUT:?} (last: {last}): {}",
                self.driver_log()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Opens the WebDriver session: Chromium headless, without its sandbox (the tests run as
    /// root), with a throwaway profile.
    fn open_session(&mut self, port: u16, profile: &Path) {
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                    "--no-first-run",
                    "--no-default-browser-check",
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{port}");
        let connected =
            self.runtime.block_on(async { tokio::time::timeout(START_TIMEOUT, builder.connect(&url)).await });
        let client = match connected {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                panic!("chromedriver could not start Chromium ({CHROMIUM}): {e}: {}", self.driver_log())
            }
            Err(_) => panic!(
                "Chromium ({CHROMIUM}) did not open a session within {START_TIMEOUT:?}: {}",
                self.driver_log()
            ),
        };
        self.chromium_pid = client
            .capabilities()
            .and_then(|c| c.get("goog:processID"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok());
        self.client = Some(client);
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session while the browser lives")
    }

    /// Runs one WebDriver command, failing the test with `what` when it errs or hangs.
    fn block<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        match self.try_block(what, command) {
            Ok(value) => value,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Runs one WebDriver command and returns its error; fails the test only when it hangs.
    fn try_block<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> Result<T, fantoccini::error::CmdError> {
        match self.runtime.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, command).await }) {
            Ok(result) => result,
            Err(_) => panic!("{what}: no answer from chromedriver within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// The end of chromedriver's output so far (its last 40 lines), for failure messages.
    fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        match lines.len() {
            0 => "chromedriver printed nothing".to_string(),
            n => format!("chromedriver's output:\n{}", lines[n.saturating_sub(40)..].join("\n")),
        }
    }

    /// chromedriver's process id (also its process group's).
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// The id of Chromium's main process, as chromedriver reports it.
    pub fn chromium_pid(&self) -> Option<u32> {
        self.chromium_pid
    }

    /// Loads `url` and waits until the page has loaded.
    pub fn goto(&self, url: &str) {
        self.block(&format!("open {url}"), self.client().goto(url));
    }

    /// The current page's URL.
    pub fn url(&self) -> String {
        self.block("read the current URL", self.client().current_url()).to_string()
    }

    /// The element `css` selects (the first, when several do); fails the test when none does.
    pub fn find(&self, css: &str) -> Element<'_> {
        let inner = self.block(&format!("find {css}"), self.client().find(Locator::Css(css)));
        Element { browser: self, css: css.to_string(), inner }
    }

    /// Every element `css` selects, in document order (none is no failure).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.block(&format!("find all {css}"), self.client().find_all(Locator::Css(css)))
            .into_iter()
            .map(|inner| Element { browser: self, css: css.to_string(), inner })
            .collect()
    }

    /// How many elements `css` selects.
    pub fn count(&self, css: &str) -> usize {
        self.find_all(css).len()
    }

    /// The rendered text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// The rendered text of the element `css` selects, or `None` when no element does (or it
    /// went away while being read): a probe for [`Browser::wait_until`].
    pub fn try_text(&self, css: &str) -> Option<String> {
        let found = self.try_block(&format!("find {css}"), self.client().find(Locator::Css(css)));
        let element = match found {
            Ok(element) => element,
            Err(e) if e.is_no_such_element() => return None,
            Err(e) => panic!("find {css}: {e}"),
        };
        match self.try_block(&format!("read the text of {css}"), element.text()) {
            Ok(text) => Some(text),
            Err(e) if e.is_stale_element_reference() => None,
            Err(e) => panic!("read the text of {css}: {e}"),
        }
    }

    /// The attribute `name` of the element `css` selects, as the markup sets it (`None` when
    /// absent); a form field's current value is [`Browser::value`].
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).attr(name)
    }

    /// The current value of the form field `css` selects (what was typed into it).
    pub fn value(&self, css: &str) -> String {
        self.find(css).value()
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        self.find(css).click();
    }

    /// Empties the form field `css` selects and types `text` into it, key by key (so the page
    /// sees its input events).
    pub fn fill(&self, css: &str, text: &str) {
        self.find(css).fill(text);
    }

    /// Runs `js` in the page as the body of a function and returns what it returns (`return
    /// document.title;`), as JSON.
    pub fn eval(&self, js: &str) -> serde_json::Value {
        self.block(&format!("run the script {js:?}"), self.client().execute(js, Vec::new()))
    }

    /// Writes a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.block("take a screenshot", self.client().screenshot());
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write the screenshot {}: {e}", path.display()));
    }

    /// How long [`Browser::wait_until`] polls from now on ([`WAIT_TIMEOUT`] until changed).
    pub fn set_wait_timeout(&mut self, timeout: Duration) {
        self.wait_timeout = timeout;
    }

    /// Polls `probe` (every 50 ms) until `ready` accepts what it returns, and returns that; after
    /// the wait timeout ([`WAIT_TIMEOUT`] unless set) fails the test naming `what` and the last value seen. For example
    /// `browser.wait_until("the run to succeed", |b| b.try_text("#state"), |s| s.as_deref() ==
    /// Some("succeeded"))`.
    pub fn wait_until<T: Debug>(
        &self,
        what: &str,
        mut probe: impl FnMut(&Browser) -> T,
        mut ready: impl FnMut(&T) -> bool,
    ) -> T {
        let started = Instant::now();
        loop {
            let seen = probe(self);
            if ready(&seen) {
                return seen;
            }
            assert!(
                started.elapsed() < self.wait_timeout,
                "waited {:?} for {what}; the last value seen was {seen:?} (page {})",
                self.wait_timeout,
                self.url()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the element `css` selects shows exactly `expected` (see
    /// [`Browser::wait_until`]).
    pub fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_until(
            &format!("{css} to read {expected:?}"),
            |b| b.try_text(css),
            |text| text.as_deref() == Some(expected),
        );
    }
}

impl Element<'_> {
    /// Its rendered text.
    pub fn text(&self) -> String {
        self.browser.block(&format!("read the text of {}", self.css), self.inner.text())
    }

    /// Its attribute `name` as the markup sets it, `None` when absent.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser.block(&format!("read the attribute {name} of {}", self.css), self.inner.attr(name))
    }

    /// Its current value, for a form field.
    pub fn value(&self) -> String {
        self.browser
            .block(&format!("read the value of {}", self.css), self.inner.prop("value"))
            .unwrap_or_default()
    }

    /// Clicks it.
    pub fn click(&self) {
        self.browser.block(&format!("click {}", self.css), self.inner.click());
    }

    /// Empties it and types `text` into it.
    pub fn fill(&self, text: &str) {
        self.browser.block(&format!("clear {}", self.css), self.inner.clear());
        self.browser.block(&format!("type into {}", self.css), self.inner.send_keys(text));
    }
}

impl Drop for Browser {
    /// Closes the session (chromedriver then quits Chromium), kills chromedriver's process group,
    /// reaps chromedriver and waits until no process of the group runs; the profile goes last.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async { tokio::time::timeout(EXIT_TIMEOUT, client.close()).await });
        }
        let group = self.driver.id();
        // One already gone makes `kill` fail: nothing to do then.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{group}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let started = Instant::now();
        while !live_group_members(group).is_empty() && started.elapsed() < EXIT_TIMEOUT {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Asks chromedriver on `port` for its `/status` over plain HTTP/1.1 (chromedriver refuses 1.0
/// and keeps the connection open, so the body is read up to its `Content-Length`), returning the
/// JSON body or what went wrong.
fn driver_status(port: u16) -> Result<serde_json::Value, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
            if answer.len() >= end + 4 + length {
                let body = &answer[end + 4..end + 4 + length];
                return serde_json::from_slice(body)
                    .map_err(|e| format!("{e} in {:?}", String::from_utf8_lossy(body)));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed after {:?}", String::from_utf8_lossy(&answer))),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A port of 127.0.0.1 free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

/// The processes of process group `group` that still run (zombies, dead but not yet reaped by
/// whoever inherited them, do not count).
pub fn live_group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|(state, pgrp)| pgrp == group && state != 'Z' && state != 'X')
        })
        .collect()
}

/// Whether process `pid` runs (a zombie does not).
pub fn is_running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The state letter and process group of `pid`, from `/proc/<pid>/stat`; `None` when it is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses, so read after the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}
