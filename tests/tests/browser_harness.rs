//! The browser harness of `drover_tests::browser` against a real headless Chromium: a page served
//! by a tiny HTTP server on 127.0.0.1 inside the test reacts to a click and to typing, and a
//! JavaScript timer changes it later; a wait that never comes true fails naming what it waited
//! for and what it saw; a screenshot is a PNG of the 1280-pixel-wide window; and once the
//! browser is dropped neither chromedriver nor Chromium runs.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;

use drover_tests::browser::{Browser, is_running, live_group_members};

/// The page under test: a button that changes a paragraph, a field echoed as it is typed into,
/// and a button whose effect a timer shows 300 ms later, adding a line to a list each time.
const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>harness page</title></head>
<body>
  <button id="go">Go</button>
  <p id="status">idle</p>
  <input id="name" value="initial">
  <p id="echo"></p>
  <button id="later">Later</button>
  <p id="timer">waiting</p>
  <ul id="lines"></ul>
  <script>
    const $ = (id) => document.getElementById(id);
    $("go").addEventListener("click", () => { $("status").textContent = "clicked"; });
    $("name").addEventListener("input", (e) => { $("echo").textContent = "hello " + e.target.value; });
    $("later").addEventListener("click", () => setTimeout(() => {
      $("timer").textContent = "fired";
      const line = document.createElement("li");
      line.textContent = "line " + ($("lines").children.length + 1);
      $("lines").appendChild(line);
    }, 300));
  </script>
</body>
</html>
"#;

/// Serves [`PAGE`] at `/` (and 404 elsewhere) on a free port of 127.0.0.1, one thread per
/// connection (Chromium opens connections ahead of its requests), for the rest of the test
/// process; returns the page's URL.
fn serve_page() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
    let url = format!("http://{}/", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    url
}

/// Answers one request on `stream` and closes it.
fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The headers, up to the empty line; the requests here have no body.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let (status, body) = match request.split_whitespace().nth(1) {
        Some("/") => ("200 OK", PAGE),
        _ => ("404 Not Found", "not found"),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn a_page_reacts_to_clicks_typing_and_timers() {
    let url = serve_page();
    let browser = Browser::start();
    browser.goto(&url);
    assert_eq!(browser.url(), url);
    assert_eq!(browser.eval("return document.title;"), "harness page");

    // A click changes the text.
    assert_eq!(browser.text("#status"), "idle");
    browser.click("#go");
    assert_eq!(browser.text("#status"), "clicked");

    // Typing: the field holds the new value (its markup attribute keeps the old one) and the
    // page saw the input events.
    assert_eq!(browser.value("#name"), "initial");
    browser.fill("#name", "drover");
    assert_eq!(browser.value("#name"), "drover");
    assert_eq!(browser.attr("#name", "value").as_deref(), Some("initial"));
    assert_eq!(browser.attr("#name", "placeholder"), None);
    assert_eq!(browser.text("#echo"), "hello drover");

    // A change made by a timer: the test waits for it to show, not for time to pass.
    assert_eq!(browser.count("#lines li"), 0);
    browser.click("#later");
    browser.wait_for_text("#timer", "fired");
    browser.find("#later").click();
    let lines = browser.wait_until("the second line", |b| b.count("#lines li"), |n| *n == 2);
    assert_eq!(lines, 2);
    let texts: Vec<String> = browser.find_all("#lines li").iter().map(|li| li.text()).collect();
    assert_eq!(texts, ["line 1", "line 2"]);
    assert_eq!(browser.try_text("#nothing-here"), None);

    // The window is 1280 pixels wide, the screenshot a PNG of it.
    assert_eq!(browser.eval("return window.innerWidth;"), 1280);
    let dir = tempfile::tempdir().expect("temporary directory");
    let shot = dir.path().join("page.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).expect("read the screenshot");
    assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "not a PNG: {:?}", png.get(..16));
    // IHDR, the first chunk, starts with the width (big-endian) at byte 16.
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().expect("4 bytes")), 1280);
}

#[test]
fn a_wait_that_never_comes_true_names_what_it_waited_for_and_what_it_saw() {
    let url = serve_page();
    let mut browser = Browser::start();
    browser.set_wait_timeout(std::time::Duration::from_secs(1));
    browser.goto(&url);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.wait_until(
            "the status to turn green",
            |b| b.try_text("#status"),
            |s| s.as_deref() == Some("green"),
        );
    }));
    let payload = failed.expect_err("the wait cannot succeed");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a panic message");
    assert!(message.contains("the status to turn green"), "{message}");
    assert!(message.contains(r#"Some("idle")"#), "{message}");
    assert!(message.contains(&url), "{message}");
    // The browser still works after the failed wait.
    browser.click("#go");
    assert_eq!(browser.text("#status"), "clicked");
}

#[test]
fn dropping_the_browser_leaves_no_chromedriver_or_chromium_running() {
    let url = serve_page();
    let browser = Browser::start();
    browser.goto(&url);
    assert_eq!(browser.text("#status"), "idle");
    let driver = browser.driver_pid();
    let chromium = browser.chromium_pid().expect("chromedriver reports Chromium's process id");
    assert!(is_running(driver) && is_running(chromium));
    assert!(live_group_members(driver).contains(&chromium), "Chromium is not in chromedriver's group");
    drop(browser);
    // chromedriver was reaped: its /proc entry is gone; Chromium (whoever reaps it) runs no more,
    // nor does anything else of the group.
    assert!(!Path::new(&format!("/proc/{driver}")).exists(), "chromedriver {driver} is still there");
    assert!(!is_running(chromium), "Chromium {chromium} still runs");
    assert_eq!(live_group_members(driver), Vec::<u32>::new());
}
