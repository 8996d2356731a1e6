//! Serves a static file that path mapping found under the document root.
//!
//! GET and HEAD only. The Content-Type comes from [`mime`], validators and ranges
//! from [`conditional`]: 304 for a current copy, 206 for one byte range, 416 for a
//! range past the end. A `.br` or `.gz` sibling (inside the root) is served instead,
//! with Content-Encoding, when the client accepts that encoding; siblings are only
//! looked for when it does, and an answer that found one is `Vary: Accept-Encoding`.
//! The body is streamed in chunks through a bounded channel. This module must never
//! be handed a script (path mapping refuses those) and re-checks that anyway, so PHP
//! source never leaves the worker whatever the state of the backend.
//!
//! [`mime`]: crate::mime
//! [`conditional`]: crate::conditional

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use privsep::msg::CompressSpec;
use tokio::io::AsyncReadExt;

use crate::body::{self, Body, Chunk};
use crate::compress;
use crate::conditional::{self, Part, Validators};
use crate::mime::Types;
use crate::path::is_script_file;

/// Bytes read from the file per chunk.
const CHUNK: usize = 64 * 1024;
/// Files (or ranges) up to this size are read at once and sent as one body.
const SMALL_FILE: u64 = 64 * 1024;

/// Precompressed siblings, in order of preference: (file suffix, coding).
const ENCODINGS: &[(&str, &str)] = &[("br", "br"), ("gz", "gzip")];

/// Why a static file could not be served.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("method {0} is not allowed on a static file")]
    Method(Method),
    #[error("{0} is a script and is never served as a file")]
    Script(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

/// The request facts a static response depends on.
#[derive(Debug, Clone, Copy)]
pub struct StaticRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The canonical document root: precompressed siblings must be inside it too.
    pub root: &'a Path,
    /// The app's content types.
    pub types: &'a Types,
    /// The app's compression, for what a 304 must say about the 200 it stands for.
    pub compress: &'a CompressSpec,
}

/// A response for the file at `path` (canonical, already mapped and checked).
pub async fn serve(path: &Path, req: StaticRequest<'_>) -> Result<Response<Body>, StaticError> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(StaticError::Method(req.method.clone()));
    }
    if is_script_file(path) {
        return Err(StaticError::Script(path.display().to_string()));
    }
    let variant = Variant::choose(path, req.headers, req.root);
    let read_err = |source| StaticError::Read { path: variant.path.display().to_string(), source };
    // Local metadata and small reads are done in place, as nginx does: a trip
    // through the blocking pool costs more than the read itself.
    let mut file = std::fs::File::open(&variant.path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let validators = Validators::of(&meta);
    let content_type = req.types.content_type(path);
    if conditional::not_modified(req.headers, &validators) {
        let headers = not_modified(&variant, &validators, &content_type, meta.len(), req);
        return Ok(response(StatusCode::NOT_MODIFIED, headers, body::empty()));
    }
    let mut headers = variant.headers(content_type, &validators);
    let len = meta.len();
    let (status, first, count) = match conditional::part(req.headers, len, &validators) {
        Part::Whole => (StatusCode::OK, 0, len),
        Part::Range { first, last } => {
            let range = format!("bytes {first}-{last}/{len}");
            headers.insert(CONTENT_RANGE, header_value(&range));
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Part::Unsatisfiable => {
            headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{len}")));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            return Ok(response(StatusCode::RANGE_NOT_SATISFIABLE, headers, body::empty()));
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(count));
    if req.method == Method::HEAD {
        return Ok(response(status, headers, body::empty()));
    }
    if first > 0 {
        file.seek(SeekFrom::Start(first)).map_err(read_err)?;
    }
    if count <= SMALL_FILE {
        let mut bytes = vec![0u8; usize::try_from(count).unwrap_or(0)];
        file.read_exact(&mut bytes).map_err(read_err)?;
        return Ok(response(status, headers, body::full(bytes)));
    }
    Ok(response(status, headers, stream(tokio::fs::File::from_std(file), count)))
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::try_from(text).expect("ranges and dates are visible ASCII")
}

/// The file actually sent: the original or a precompressed sibling.
#[derive(Debug)]
struct Variant {
    path: PathBuf,
    encoding: Option<&'static str>,
    /// Some sibling exists, so the answer depends on Accept-Encoding.
    vary: bool,
}

impl Variant {
    fn choose(path: &Path, headers: &HeaderMap, root: &Path) -> Self {
        let mut variant = Self { path: path.to_owned(), encoding: None, vary: false };
        // Only codings the client takes are looked for: a client that takes none
        // costs no stat, and its identity answer is right for everyone (nginx's
        // `gzip_static` without `gzip_vary` answers the same).
        for (suffix, coding) in ENCODINGS.iter().filter(|(_, coding)| accepts(headers, coding)) {
            let Some(sibling) = sibling(path, suffix, root) else { continue };
            variant.vary = true;
            if variant.encoding.is_none() {
                variant.path = sibling;
                variant.encoding = Some(coding);
            }
        }
        variant
    }

    fn headers(&self, content_type: HeaderValue, v: &Validators) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, content_type);
        h.insert(ETAG, header_value(&v.etag));
        h.insert(LAST_MODIFIED, header_value(&v.last_modified()));
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(coding) = self.encoding {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        if self.vary {
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        h
    }
}

/// A 304's headers (RFC 9110 §15.4.5): the ETag and Vary the 200 would carry, and no
/// representation metadata (no Content-Type, Content-Length, Accept-Ranges, nor
/// Last-Modified, since there is an ETag). Cache-Control and Expires, when the app's
/// rules set them, are added by the handler as on the 200.
fn not_modified(
    variant: &Variant,
    v: &Validators,
    content_type: &HeaderValue,
    len: u64,
    req: StaticRequest<'_>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ETAG, header_value(&v.etag));
    if variant.vary {
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    let ty = content_type.to_str().unwrap_or("");
    if variant.encoding.is_none() && compress::varies(req.compress, ty) {
        compress::add_vary(&mut h);
        // The 200 would have been compressed, with a weak ETag: say the same one.
        let whole = req.headers.get(http::header::RANGE).is_none();
        if whole
            && len >= req.compress.min_length
            && compress::negotiate(req.headers, req.compress).is_some()
        {
            compress::weaken_etag(&mut h);
        }
    }
    h
}

/// `path.SUFFIX` if it is a regular file inside `root` (symlinks resolved).
fn sibling(path: &Path, suffix: &str, root: &Path) -> Option<PathBuf> {
    let mut name = path.file_name()?.to_owned();
    name.push(format!(".{suffix}"));
    let candidate = path.with_file_name(name);
    // One stat rules out the usual case, no precompressed sibling at all.
    if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let real = std::fs::canonicalize(candidate).ok()?;
    real.starts_with(root).then_some(real)
}

/// Whether Accept-Encoding allows `coding` (listed or `*`, and not with `q=0`).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    let listed = headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
    let mut allowed = false;
    for item in listed.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let zero = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse() == Ok(0.0)));
        if name.eq_ignore_ascii_case(coding) {
            return !zero;
        }
        allowed |= name == "*" && !zero;
    }
    allowed
}

/// Streams `count` bytes from the file's current position.
fn stream(mut file: tokio::fs::File, count: u64) -> Body {
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        let mut left = count;
        loop {
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            let read = match want {
                0 => Ok(0),
                _ => file.read_buf(&mut buf).await,
            };
            let chunk = match read {
                Ok(0) if want == 0 => Chunk::End,
                Ok(0) => Chunk::Fail("the file shrank while it was being sent".into()),
                Ok(n) => {
                    left -= n.min(want) as u64;
                    buf.truncate(want);
                    Chunk::Data(buf.freeze())
                }
                Err(err) => Chunk::Fail(err.to_string()),
            };
            let last = !matches!(chunk, Chunk::Data(_));
            if tx.send(chunk).await.is_err() || last {
                return;
            }
        }
    });
    body
}

#[cfg(test)]
#[path = "static_file_tests.rs"]
mod tests;
