//! Validators and the request headers that use them: ETag and Last-Modified,
//! `If-None-Match`/`If-Modified-Since` (304), `Range` and `If-Range` (206, 416).
//!
//! Only single byte ranges are honoured; a multi-range or malformed `Range` gets the
//! whole file (RFC 9110 lets a server ignore Range). These are pure functions of the
//! request headers and the file's metadata; they never touch the file.

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};

/// A file's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// `"<mtime seconds hex>-<size hex>"`, strong.
    pub etag: String,
    /// Whole seconds, as HTTP dates carry.
    pub modified: SystemTime,
}

impl Validators {
    pub fn of(meta: &Metadata) -> Self {
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            etag: format!("\"{secs:x}-{:x}\"", meta.len()),
            modified: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    /// Last-Modified as an HTTP date.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// Whether the client's copy is current (answer 304).
pub fn not_modified(headers: &HeaderMap, v: &Validators) -> bool {
    if let Some(tags) = headers.get(IF_NONE_MATCH) {
        let tags = tags.to_str().unwrap_or("");
        return tags.split(',').map(str::trim).any(|t| t == "*" || weak_eq(t, &v.etag));
    }
    let since = headers.get(IF_MODIFIED_SINCE).and_then(|d| d.to_str().ok());
    since.and_then(|d| httpdate::parse_http_date(d).ok()).is_some_and(|since| v.modified <= since)
}

/// Weak comparison: the opaque tags match, with or without `W/`.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// What to send of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// 200, the whole file.
    Whole,
    /// 206, bytes `first..=last`.
    Range { first: u64, last: u64 },
    /// 416: the range starts beyond the end.
    Unsatisfiable,
}

/// The part of a `len`-byte file the request asks for.
pub fn part(headers: &HeaderMap, len: u64, v: &Validators) -> Part {
    let Some(range) = headers.get(RANGE).and_then(|r| r.to_str().ok()) else {
        return Part::Whole;
    };
    if let Some(if_range) = headers.get(IF_RANGE) {
        let if_range = if_range.to_str().unwrap_or("");
        if if_range != v.etag && if_range != v.last_modified() {
            return Part::Whole;
        }
    }
    parse_range(range, len).unwrap_or(Part::Whole)
}

/// One `bytes=` range; `None` for anything else (ignored: the whole file is sent).
fn parse_range(text: &str, len: u64) -> Option<Part> {
    let spec = text.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        match suffix {
            0 => return Some(Part::Unsatisfiable),
            n => (len.saturating_sub(n), len.checked_sub(1)),
        }
    } else {
        let first: u64 = first.parse().ok()?;
        let end = len.checked_sub(1);
        let last = match last {
            "" => end,
            l => Some(l.parse::<u64>().ok()?.min(end.unwrap_or(0))),
        };
        if last.is_some_and(|l| l < first) && first < len {
            return None;
        }
        (first, last)
    };
    match range {
        (first, Some(last)) if first < len && first <= last => Some(Part::Range { first, last }),
        _ => Some(Part::Unsatisfiable),
    }
}

#[cfg(test)]
#[path = "conditional_tests.rs"]
mod tests;
