//! The access log: one line per request, written to a pipe the broker reads.
//!
//! The gateway cannot open files: the broker hands it the write end of a pipe
//! (non-blocking) and writes the lines to the log file itself. A line is
//! formatted when the response body ends (or is dropped), so `request_time`
//! and `body_bytes_sent` are the whole answer's, as nginx logs them. Each line
//! is one `write` of at most [`MAX_LINE`] bytes (below `PIPE_BUF`, so lines never
//! interleave); a full pipe — the broker's disk is slow or stalled — drops the
//! line and counts it: a request never waits for the log. The count is logged
//! every [`REPORT_EVERY`] while lines are dropped.
//!
//! Every byte from the client is escaped (nginx's `\xHH` in `combined`, `\u00HH` in
//! JSON), so a line is printable ASCII and one line; long fields are cut.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Buf;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use privsep::msg::AccessLogFormat;
use tracing::warn;

use crate::proxy::ConnInfo;

/// The most bytes of one line, newline included: under `PIPE_BUF` (4096), so a
/// write is atomic.
pub const MAX_LINE: usize = 4000;
/// The most bytes of one client-supplied field (target, user agent, referer) before
/// escaping; longer ones are cut and end in `...`.
const MAX_FIELD: usize = 1024;
/// How often the dropped-line count is logged while lines are dropped.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The longest a line waits in a batch.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The most bytes of one write: Linux's `PIPE_BUF`, up to which a pipe write is atomic.
const PIPE_BUF: usize = 4096;

/// The pipe to the broker, the batch and what was dropped.
#[derive(Debug)]
pub struct AccessLog {
    pipe: File,
    format: AccessLogFormat,
    batch: Mutex<Batch>,
    dropped: AtomicU64,
}

/// Whole lines waiting for one write.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

impl AccessLog {
    /// A log writing `format` lines to `pipe` (the broker made it non-blocking).
    pub fn new(pipe: OwnedFd, format: AccessLogFormat) -> Arc<Self> {
        let batch = Mutex::new(Batch { bytes: Vec::with_capacity(PIPE_BUF), lines: 0 });
        Arc::new(Self { pipe: File::from(pipe), format, batch, dropped: AtomicU64::new(0) })
    }

    /// Lines dropped so far because the pipe was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn write(&self, entry: &Entry) {
        let line = match self.format {
            AccessLogFormat::Combined => entry.combined(),
            AccessLogFormat::Json => entry.json(),
        };
        let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
        if batch.bytes.len() + line.len() > PIPE_BUF {
            self.flush(&mut batch);
        }
        batch.bytes.extend_from_slice(line.as_bytes());
        batch.lines += 1;
    }

    /// One write of whole lines under `PIPE_BUF`: all of them, or (pipe full) none, counted.
    fn flush(&self, batch: &mut Batch) {
        if batch.lines > 0 && (&self.pipe).write(&batch.bytes).is_err() {
            self.dropped.fetch_add(batch.lines, Ordering::Relaxed);
        }
        batch.bytes.clear();
        batch.lines = 0;
    }

    /// Writes the batch every [`FLUSH_EVERY`] and logs the dropped count every
    /// [`REPORT_EVERY`] in which lines were dropped.
    pub async fn run(self: Arc<Self>) {
        let mut reported = 0;
        let mut flushes = 0;
        let per_report = (REPORT_EVERY.as_millis() / FLUSH_EVERY.as_millis()) as u32;
        let mut every = tokio::time::interval(FLUSH_EVERY);
        loop {
            every.tick().await;
            self.flush(&mut self.batch.lock().unwrap_or_else(PoisonError::into_inner));
            flushes += 1;
            if flushes % per_report != 0 {
                continue;
            }
            let total = self.dropped();
            if total > reported {
                let dropped = total - reported;
                warn!(dropped, total, "access log lines dropped: the broker's pipe was full");
                reported = total;
            }
        }
    }
}

/// One request, waiting for its answer to end.
#[derive(Debug)]
pub struct Entry {
    started: Instant,
    at: SystemTime,
    client: SocketAddr,
    method: String,
    target: Vec<u8>,
    protocol: &'static str,
    tls: Option<&'static str>,
    host: Vec<u8>,
    user_agent: Vec<u8>,
    referer: Vec<u8>,
    /// Set once routed.
    pub app: Option<String>,
    status: u16,
    bytes: u64,
}

impl Entry {
    /// What the request head says, taken before the request is handled.
    pub fn new<B>(conn: &ConnInfo, req: &Request<B>) -> Self {
        let header = |name| req.headers().get(name).map_or(&[][..], |v| v.as_bytes()).to_vec();
        let host = req.uri().authority().map(|a| a.as_str().as_bytes().to_vec());
        Self {
            started: Instant::now(),
            at: SystemTime::now(),
            client: conn.peer,
            method: req.method().as_str().to_owned(),
            target: req.uri().path_and_query().map_or("/", |pq| pq.as_str()).as_bytes().to_vec(),
            protocol: crate::proxy::proto_name(req.version()),
            tls: conn.tls,
            host: without_port(host.unwrap_or_else(|| header(http::header::HOST))),
            user_agent: header(http::header::USER_AGENT),
            referer: header(http::header::REFERER),
            app: None,
            status: 0,
            bytes: 0,
        }
    }

    /// nginx's `combined` format, with `$remote_user` always `-`.
    fn combined(&self) -> String {
        let mut line = String::with_capacity(256);
        let _ = write!(line, "{} - - [{}] \"{} ", self.client.ip(), clf_time(self.at), self.method);
        escape_clf(&mut line, &self.target);
        let _ = write!(line, " {}\" {} {} \"", self.protocol, self.status, self.bytes);
        escape_clf(&mut line, if self.referer.is_empty() { b"-" } else { &self.referer });
        line.push_str("\" \"");
        escape_clf(&mut line, if self.user_agent.is_empty() { b"-" } else { &self.user_agent });
        line.push('"');
        finish(line)
    }

    /// One JSON object; field names are nginx's variables (`$remote_addr` …).
    fn json(&self) -> String {
        let mut line = String::with_capacity(384);
        let _ = write!(line, "{{\"time_iso8601\":\"{}\"", iso8601(self.at));
        json_field(&mut line, "app", self.app.as_deref().unwrap_or("").as_bytes());
        json_field(&mut line, "remote_addr", self.client.ip().to_string().as_bytes());
        json_field(&mut line, "request_method", self.method.as_bytes());
        json_field(&mut line, "request_uri", &self.target);
        json_field(&mut line, "server_protocol", self.protocol.as_bytes());
        json_field(&mut line, "host", &self.host);
        let _ = write!(line, ",\"status\":{},\"body_bytes_sent\":{}", self.status, self.bytes);
        let secs = self.started.elapsed().as_secs_f64();
        let _ = write!(line, ",\"request_time\":{secs:.3}");
        match self.tls {
            Some(tls) => json_field(&mut line, "ssl_protocol", tls.as_bytes()),
            None => line.push_str(",\"ssl_protocol\":null"),
        }
        json_field(&mut line, "http_referer", &self.referer);
        json_field(&mut line, "http_user_agent", &self.user_agent);
        line.push('}');
        finish(line)
    }
}

/// nginx's `$host`: the authority without its port.
fn without_port(mut host: Vec<u8>) -> Vec<u8> {
    if let Some(colon) = host.iter().rposition(|&b| b == b':') {
        let port = &host[colon + 1..];
        if !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
            host.truncate(colon);
        }
    }
    host
}

/// Caps a line at [`MAX_LINE`] (it is ASCII) and ends it.
fn finish(mut line: String) -> String {
    line.truncate(MAX_LINE - 1);
    line.push('\n');
    line
}

/// A client field, cut at [`MAX_FIELD`] bytes.
fn cut(bytes: &[u8]) -> (&[u8], bool) {
    if bytes.len() > MAX_FIELD { (&bytes[..MAX_FIELD], true) } else { (bytes, false) }
}

/// nginx's access-log escaping: `"`, `\`, control bytes and bytes above 0x7e as `\xHH`.
fn escape_clf(out: &mut String, bytes: &[u8]) {
    let (bytes, cut) = cut(bytes);
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    if cut {
        out.push_str("...");
    }
}

/// `,"name":"value"` with the value escaped for JSON; bytes above 0x7e become `\u00HH`, so a
/// line is ASCII whatever the client sent.
fn json_field(out: &mut String, name: &str, bytes: &[u8]) {
    let _ = write!(out, ",\"{name}\":\"");
    let (bytes, cut) = cut(bytes);
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    if cut {
        out.push_str("...");
    }
    out.push('"');
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// (year, month, day, hour, minute, second, millisecond) in UTC.
fn utc(at: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, mo, d, s / 3600, s / 60 % 60, s % 60, since.subsec_millis())
}

/// `$time_local` in UTC: `04/Dec/2026:22:01:00 +0000` (the sandbox has no time zone).
fn clf_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, mo, d, h, mi, s, _) = utc(at);
    let month = MONTHS[(mo as usize - 1) % 12];
    format!("{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000")
}

/// `$time_iso8601` in UTC, with milliseconds: `2026-12-04T22:01:00.123Z`.
fn iso8601(at: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = utc(at);
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// A response body that counts its bytes and writes the request's line when it ends.
#[derive(Debug)]
pub struct Logged<B> {
    inner: B,
    pending: Option<(Arc<AccessLog>, Entry)>,
}

impl<B> Logged<B> {
    /// Wraps `inner`; with a log, `entry` is written, with `status`, once the body is done.
    pub fn new(inner: B, status: u16, log: Option<(Arc<AccessLog>, Entry)>) -> Self {
        let pending = log.map(|(log, entry)| (log, Entry { status, ..entry }));
        Self { inner, pending }
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        if let Some((log, entry)) = self.pending.take() {
            log.write(&entry);
        }
    }
}

impl<B: Body + Unpin> Body for Logged<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some((_, entry))) = (&polled, &mut self.pending) {
            entry.bytes += frame.data_ref().map_or(0, |d| d.remaining() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let conn = ConnInfo {
            peer: "192.0.2.7:5555".parse().expect("an address"),
            local: "127.0.0.1:80".parse().expect("an address"),
            scheme: "http",
            tls: None,
        };
        let req =
            Request::get("/a").header("host", "blog.example:8080").body(()).expect("a request");
        let mut e = Entry::new(&conn, &req);
        assert_eq!(e.host, b"blog.example", "$host has no port");
        // Bytes the http crate refuses but a raw field could carry.
        e.target = b"/a?b=\"c\"".to_vec();
        e.user_agent = "curl/8 \x7f\u{e9}".as_bytes().to_vec();
        e.at = UNIX_EPOCH + Duration::from_secs(1_796_421_660);
        e.status = 200;
        e.bytes = 12;
        e
    }

    #[test]
    fn combined_escapes_like_nginx() {
        let line = entry().combined();
        assert_eq!(
            line,
            "192.0.2.7 - - [04/Dec/2026:22:01:00 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 12 \
             \"-\" \"curl/8 \\x7F\\xC3\\xA9\"\n"
        );
    }

    #[test]
    fn json_is_ascii_and_escaped() {
        let mut e = entry();
        e.app = Some("blog".into());
        let line = e.json();
        assert!(line.is_ascii() && line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert!(line.contains("\"request_uri\":\"/a?b=\\\"c\\\"\""), "{line}");
        assert!(line.contains("\"http_user_agent\":\"curl/8 \\u007f\\u00c3\\u00a9\""), "{line}");
        assert!(line.starts_with("{\"time_iso8601\":\"2026-12-04T22:01:00.000Z\""), "{line}");
    }

    #[test]
    fn long_fields_are_cut_and_lines_capped() {
        let mut e = entry();
        e.target = vec![b'\x01'; 100_000];
        e.user_agent = vec![b'a'; 100_000];
        for line in [e.combined(), e.json()] {
            assert!(line.len() <= MAX_LINE && line.ends_with('\n'), "{}", line.len());
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_791), (2026, 12, 4));
    }
}
