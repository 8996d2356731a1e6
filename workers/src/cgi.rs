//! Parses the CGI response header block at the start of a FastCGI backend's stdout.
//!
//! Stdout is accumulated until the blank line (`\r\n\r\n` or `\n\n`), capped at
//! [`MAX_HEAD_BYTES`]. The status comes from `Status:`, else `Location` means 302,
//! else 200 (nginx's rules). `Status`, `X-Accel-*` and hop-by-hop headers are never
//! passed to the client (`X-Accel-Redirect` is kept aside for the worker to act on);
//! repeated headers such as `Set-Cookie` are all kept. A `Content-Length` that is not
//! a number, or repeated with another value, makes the block unusable (nginx: "upstream
//! sent invalid Content-Length"). This module must never panic or allocate without
//! bound on backend output.

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderName, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};

/// The largest CGI header block accepted from a backend.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines accepted in one block.
const MAX_HEADERS: usize = 256;
/// Headers that describe one hop and never pass through.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// Why a backend's header block is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CgiError {
    #[error("CGI header block exceeds {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("malformed CGI header block: {0}")]
    Malformed(#[from] httparse::Error),
    #[error("invalid CGI header {0}")]
    BadHeader(String),
    #[error("invalid CGI Status header {0:?}")]
    BadStatus(String),
}

/// The response status and headers a script produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// `X-Accel-Redirect`: a file under the root to serve instead of the script's body.
    pub accel_redirect: Option<String>,
}

/// Accumulates stdout until the header block is complete.
#[derive(Debug, Default)]
pub struct HeadBuffer {
    buf: BytesMut,
}

impl HeadBuffer {
    /// Adds a stdout chunk. Once the block is complete, returns it with whatever
    /// body bytes followed it in the same chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<(Head, Bytes)>, CgiError> {
        let scanned = self.buf.len();
        self.buf.extend_from_slice(chunk);
        if !blank_line_after(&self.buf, scanned) {
            return match self.buf.len() > MAX_HEAD_BYTES {
                true => Err(CgiError::TooLarge),
                false => Ok(None),
            };
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&self.buf, &mut slots)? {
            httparse::Status::Complete((len, _)) if len > MAX_HEAD_BYTES => Err(CgiError::TooLarge),
            httparse::Status::Complete((len, parsed)) => {
                let head = head(parsed)?;
                Ok(Some((head, self.buf.split_off(len).freeze())))
            }
            httparse::Status::Partial if self.buf.len() > MAX_HEAD_BYTES => Err(CgiError::TooLarge),
            httparse::Status::Partial => Ok(None),
        }
    }
}

/// Whether a blank line may end in `buf[from..]`; re-parsing only then keeps many
/// tiny stdout records from costing quadratic time.
fn blank_line_after(buf: &[u8], from: usize) -> bool {
    let window = &buf[from.saturating_sub(2)..];
    buf.starts_with(b"\n")
        || buf.starts_with(b"\r\n")
        || window.windows(2).any(|w| w == b"\n\n")
        || window.windows(3).any(|w| w == b"\n\r\n")
}

fn head(parsed: &[httparse::Header<'_>]) -> Result<Head, CgiError> {
    let mut status = None;
    let mut accel_redirect = None;
    let mut headers = HeaderMap::new();
    for h in parsed {
        let bad = || CgiError::BadHeader(String::from_utf8_lossy(h.name.as_bytes()).into_owned());
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad())?;
        if name == "status" {
            status = status.or(Some(parse_status(&value)?));
        } else if name == "x-accel-redirect" {
            // A path as the script wrote it: raw UTF-8 (`/files/résumé 2024.pdf`) is
            // what frameworks send.
            accel_redirect = Some(std::str::from_utf8(h.value).map_err(|_| bad())?.to_owned());
        } else if name == CONTENT_LENGTH {
            if !valid_length(&value) || headers.get(CONTENT_LENGTH).is_some_and(|v| v != value) {
                return Err(bad());
            }
            if headers.get(CONTENT_LENGTH).is_none() {
                headers.insert(name, value);
            }
        } else if passes(&name) {
            headers.append(name, value);
        }
    }
    let status = status.unwrap_or(match headers.contains_key(LOCATION) {
        true => StatusCode::FOUND,
        false => StatusCode::OK,
    });
    Ok(Head { status, headers, accel_redirect })
}

/// A `Content-Length` is digits only (RFC 9110 §8.6), and fits in 64 bits.
fn valid_length(value: &HeaderValue) -> bool {
    let digits = value.as_bytes();
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits).is_ok_and(|d| d.parse::<u64>().is_ok())
}

fn passes(name: &HeaderName) -> bool {
    let name = name.as_str();
    !name.starts_with("x-accel-") && !HOP_BY_HOP.contains(&name)
}

/// `Status: 404 Not Found` → 404; only final statuses (200–599) are accepted.
fn parse_status(value: &HeaderValue) -> Result<StatusCode, CgiError> {
    let bad = || CgiError::BadStatus(String::from_utf8_lossy(value.as_bytes()).into_owned());
    let code = value.as_bytes().split(|b| *b == b' ').find(|t| !t.is_empty()).ok_or_else(bad)?;
    let status = StatusCode::from_bytes(code).map_err(|_| bad())?;
    match status.as_u16() {
        200..=599 => Ok(status),
        _ => Err(bad()),
    }
}

#[cfg(test)]
#[path = "cgi_tests.rs"]
mod tests;
