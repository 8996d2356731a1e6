//! A raw HTTP/1.1 client for tests that must send exact bytes: malformed framing, odd
//! request lines, several `Host`s. It writes what it is given and parses only the answers
//! (status, fields, a body by `Content-Length` or chunked), so nothing it sends is
//! normalised the way an HTTP library would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a raw read may wait before the test counts it as a failure.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One response read off a raw connection.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line and fields, up to the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body parsed as JSON; panics with the answer if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A raw client connection and the bytes read from it but not yet parsed.
#[derive(Debug)]
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to `addr`; every read waits at most [`READ_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connecting to the gateway");
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("a read timeout");
        Self { stream, buf: Vec::new() }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the gateway");
    }

    /// Reads more bytes; false at EOF or reset.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response (status, head, body by Content-Length or chunked); `None` if the
    /// connection ends first.
    pub fn answer(&mut self) -> Option<Answer> {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if status == 100 || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(len) = field(&head, "content-length") {
            self.take(len.parse().expect("a numeric Content-Length"))?
        } else if field(&head, "transfer-encoding").is_some() {
            self.dechunk()?
        } else {
            Vec::new()
        };
        Some(Answer { status, head, body })
    }

    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        while self.buf.len() < len {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..len).collect())
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn dechunk(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = usize::from_str_radix(self.line()?.trim(), 16).ok()?;
            if size == 0 {
                while !self.line()?.is_empty() {}
                return Some(body);
            }
            body.extend(self.take(size)?);
            self.line()?;
        }
    }
}

/// A header's value in a raw head.
pub fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
