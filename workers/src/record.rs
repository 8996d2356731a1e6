//! Watches the FastCGI records a backend sends, before the `fastcgi-client` crate sees them.
//!
//! The crate panics on a short END_REQUEST, ignores the version byte and reports a
//! stream cut before END_REQUEST as a clean end. [`RecordGuard`] wraps the backend
//! socket: every byte read is run through [`RecordParser`], and anything malformed
//! (wrong version, a request id other than 1, an unexpected record type, an
//! END_REQUEST whose body is not 8 bytes, bytes after END_REQUEST) fails the read with
//! `InvalidData`, so the crate never parses it. EOF before END_REQUEST fails the read
//! with `UnexpectedEof`, and [`Progress`] tells the caller afterwards whether the
//! response was complete, or whether any byte of it arrived. On a keep-alive
//! connection the first write after a complete END_REQUEST starts the next exchange:
//! the parser and [`Progress`] start over. This module must never pass a byte it has
//! not validated.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const HEADER_LEN: usize = 8;
const VERSION_1: u8 = 1;
const REQUEST_ID: u16 = 1;
const END_REQUEST: u8 = 3;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const END_REQUEST_BODY_LEN: u16 = 8;

/// A malformed record from the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("FastCGI record has version {0}, expected 1")]
    Version(u8),
    #[error("FastCGI record has request id {0}, expected 1")]
    RequestId(u16),
    #[error("unexpected FastCGI record type {0} from the backend")]
    Type(u8),
    #[error("FastCGI END_REQUEST has a {0}-byte body, expected 8")]
    EndRequestLength(u16),
    #[error("bytes after FastCGI END_REQUEST")]
    Trailing,
}

/// A record-by-record validator of the backend's byte stream. Does no I/O.
#[derive(Debug, Default)]
pub struct RecordParser {
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Content and padding bytes still to come in the current record.
    remaining: usize,
    in_end_request: bool,
    ended: bool,
}

impl RecordParser {
    /// Validates the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), RecordError> {
        while !bytes.is_empty() {
            if self.ended {
                return Err(RecordError::Trailing);
            }
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                bytes = &bytes[n..];
                self.ended = self.in_end_request && self.remaining == 0;
                continue;
            }
            let n = (HEADER_LEN - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == HEADER_LEN {
                self.header_len = 0;
                self.start_record()?;
            }
        }
        Ok(())
    }

    /// Whether a complete, well-formed END_REQUEST has gone by.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn start_record(&mut self) -> Result<(), RecordError> {
        let [version, kind, id_hi, id_lo, len_hi, len_lo, padding, _reserved] = self.header;
        let id = u16::from_be_bytes([id_hi, id_lo]);
        let len = u16::from_be_bytes([len_hi, len_lo]);
        if version != VERSION_1 {
            return Err(RecordError::Version(version));
        }
        if id != REQUEST_ID {
            return Err(RecordError::RequestId(id));
        }
        match kind {
            STDOUT | STDERR => {}
            END_REQUEST if len == END_REQUEST_BODY_LEN => self.in_end_request = true,
            END_REQUEST => return Err(RecordError::EndRequestLength(len)),
            other => return Err(RecordError::Type(other)),
        }
        self.remaining = usize::from(len) + usize::from(padding);
        Ok(())
    }
}

/// How far the current exchange on a guarded stream got, shared with its owner.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU8>);

const RECEIVED: u8 = 1;
const ENDED: u8 = 2;

impl Progress {
    /// Whether a complete END_REQUEST has arrived.
    pub fn ended(&self) -> bool {
        self.0.load(Ordering::Acquire) & ENDED != 0
    }

    /// Whether any byte of the response has arrived.
    pub fn received(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }

    fn mark(&self, flag: u8) {
        self.0.fetch_or(flag, Ordering::AcqRel);
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// A backend socket whose reads are validated record by record.
#[derive(Debug)]
pub struct RecordGuard<S> {
    inner: S,
    parser: RecordParser,
    progress: Progress,
}

impl<S> RecordGuard<S> {
    /// Wraps `inner`; the returned handle outlives the guard.
    pub fn new(inner: S) -> (Self, Progress) {
        let progress = Progress::default();
        (Self { inner, parser: RecordParser::default(), progress: progress.clone() }, progress)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(())); // nothing to read into; not an EOF
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if new.is_empty() {
            return match self.parser.ended() {
                true => Poll::Ready(Ok(())),
                false => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            };
        }
        self.progress.mark(RECEIVED);
        if let Err(err) = self.parser.feed(new) {
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)));
        }
        if self.parser.ended() {
            self.progress.mark(ENDED);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.parser.ended() {
            // The next request on a keep-alive connection: a new response follows.
            self.parser = RecordParser::default();
            self.progress.reset();
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Encodes one record as a backend would send it.
#[cfg(test)]
pub fn encode_record(kind: u8, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).unwrap_or(u16::MAX);
    let content = &content[..usize::from(len)];
    let padding = (8 - content.len() % 8) % 8;
    let mut out = vec![VERSION_1, kind];
    out.extend_from_slice(&REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[u8::try_from(padding).unwrap_or(0), 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
    out
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
