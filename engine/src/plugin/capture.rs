//! Capture of a guest's stdout and stderr: kept in memory up to a cap, the rest dropped and
//! flagged, so a chatty plugin can neither exhaust memory nor trap on a full pipe.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A capped in-memory sink for one guest stream. Clones share the buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Self {
        Capture { cap, buffer: Arc::default() }
    }

    /// What was written (lossy UTF-8), and whether anything was dropped.
    pub(crate) fn contents(&self) -> (String, bool) {
        let buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        (String::from_utf8_lossy(&buffer.bytes).into_owned(), buffer.truncated)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(buffer.bytes.len());
        buffer.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        buffer.truncated |= buf.len() > room;
        // Accept everything: dropping the excess is the point.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
