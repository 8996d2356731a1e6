//! Compresses responses with gzip or brotli, as nginx's `gzip` (and ngx_brotli) do.
//!
//! The coding is negotiated from Accept-Encoding with its q-values (`gzip;q=0`
//! refuses, `*` stands for any coding not listed; on a tie brotli wins). Only
//! compressible types are compressed (text/*, JSON, JavaScript, XML and SVG), only in
//! 200, 403 and 404 answers to methods other than HEAD, only bodies of unknown length
//! or at least `min_length` bytes, and never a range, a body that already has a
//! Content-Encoding, or one marked `Cache-Control: no-transform`. Every response of a
//! compressible type says `Vary: Accept-Encoding`, since another client may get the
//! other form. A compressed answer loses Content-Length and Accept-Ranges, and a strong
//! ETag becomes weak (the bytes differ from the identity's). The body is compressed
//! as it streams: whatever is ready is compressed together, and the encoder is flushed
//! whenever the source has nothing more ready, so a script's `flush()` still reaches the
//! client at once. This module must never change the bytes a client decompresses.

use async_compression::Level;
use async_compression::tokio::write::{BrotliEncoder, GzipEncoder};
use futures_util::FutureExt;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use privsep::msg::CompressSpec;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::body::{self, Body, Chunk};

/// gzip level: nginx's default `gzip_comp_level 1`.
const GZIP_LEVEL: i32 = 1;
/// brotli quality: ngx_brotli's default `brotli_comp_level 6`.
const BROTLI_LEVEL: i32 = 6;
/// Compressed bytes gathered before they are sent even though more input is ready.
const OUT_CHUNK: usize = 64 * 1024;

/// A content coding the worker can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
        }
    }
}

/// Whether responses of this Content-Type are compressed (so they vary by Accept-Encoding).
pub fn is_compressible(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
        )
}

/// Whether the app compresses at all and this type would be.
pub fn varies(spec: &CompressSpec, content_type: &str) -> bool {
    (spec.gzip || spec.brotli) && is_compressible(content_type)
}

/// The q-value Accept-Encoding gives `coding` (0 when neither it nor `*` is listed).
fn quality(headers: &HeaderMap, coding: Coding) -> f32 {
    let mut star = None;
    let listed = headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
    for item in listed.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = match parts.find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))) {
            None => 1.0,
            Some(q) => match q.parse::<f32>() {
                Ok(q) if (0.0..=1.0).contains(&q) => q,
                _ => continue,
            },
        };
        let named = name.eq_ignore_ascii_case(coding.token())
            || (coding == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"));
        if named {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0.0)
}

/// The coding to use for a client with these request headers, if any.
pub fn negotiate(headers: &HeaderMap, spec: &CompressSpec) -> Option<Coding> {
    let br = if spec.brotli { quality(headers, Coding::Brotli) } else { 0.0 };
    let gzip = if spec.gzip { quality(headers, Coding::Gzip) } else { 0.0 };
    match (br, gzip) {
        (b, g) if b > 0.0 && b >= g => Some(Coding::Brotli),
        (_, g) if g > 0.0 => Some(Coding::Gzip),
        _ => None,
    }
}

/// `ETag: "x"` becomes `W/"x"`: a compressed body is not byte-for-byte the file.
pub fn weaken_etag(headers: &mut HeaderMap) {
    let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) else { return };
    if tag.starts_with("W/") {
        return;
    }
    if let Ok(weak) = HeaderValue::try_from(format!("W/{tag}")) {
        headers.insert(ETAG, weak);
    }
}

/// Adds `Accept-Encoding` to Vary unless it is there (or Vary is `*`).
pub fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|n| n == "*" || n.eq_ignore_ascii_case("accept-encoding"))
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The response, compressed when the request, the app and the response allow it.
pub fn apply(
    method: &Method,
    request: &HeaderMap,
    spec: &CompressSpec,
    response: Response<Body>,
) -> Response<Body> {
    let status = response.status();
    if !matches!(status, StatusCode::OK | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let h = &parts.headers;
    let content_type = h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let no_transform = h
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-transform")));
    if !varies(spec, content_type)
        || h.contains_key(CONTENT_ENCODING)
        || h.contains_key(CONTENT_RANGE)
        || no_transform
    {
        return Response::from_parts(parts, body);
    }
    add_vary(&mut parts.headers);
    let length =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let small = length.is_some_and(|n| n < spec.min_length);
    let coding = negotiate(request, spec);
    let Some(coding) = coding.filter(|_| *method != Method::HEAD && !small) else {
        return Response::from_parts(parts, body);
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(ACCEPT_RANGES);
    weaken_etag(&mut parts.headers);
    parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    Response::from_parts(parts, encode(body, coding))
}

/// An encoder writing into a buffer the pump drains.
trait Encoder: AsyncWrite + Unpin + Send {
    fn output(&mut self) -> &mut Vec<u8>;
}

impl Encoder for GzipEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

impl Encoder for BrotliEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

/// The body, compressed by a task as it arrives.
pub fn encode(body: Body, coding: Coding) -> Body {
    let (tx, out) = body::channel();
    tokio::spawn(async move {
        let result = match coding {
            Coding::Gzip => {
                pump(GzipEncoder::with_quality(Vec::new(), Level::Precise(GZIP_LEVEL)), body, &tx)
                    .await
            }
            Coding::Brotli => {
                let encoder = BrotliEncoder::with_quality(Vec::new(), Level::Precise(BROTLI_LEVEL));
                pump(encoder, body, &tx).await
            }
        };
        let last = match result {
            Ok(()) => Chunk::End,
            Err(why) => Chunk::Fail(why),
        };
        let _client_gone = tx.send(last).await;
    });
    out
}

async fn pump(
    mut encoder: impl Encoder,
    mut body: Body,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("compressing the response: {e}");
    // Input written since the encoder last flushed.
    let mut pending = false;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                // The source is waiting (a script between flushes): send what it gave.
                if pending {
                    encoder.flush().await.map_err(io)?;
                    pending = false;
                    send(encoder.output(), tx).await?;
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(err)) => return Err(err.to_string()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        encoder.write_all(&data).await.map_err(io)?;
        pending = true;
        if encoder.output().len() >= OUT_CHUNK {
            send(encoder.output(), tx).await?;
        }
    }
    encoder.shutdown().await.map_err(io)?;
    send(encoder.output(), tx).await
}

async fn send(buffer: &mut Vec<u8>, tx: &mpsc::Sender<Chunk>) -> Result<(), String> {
    if buffer.is_empty() {
        return Ok(());
    }
    let chunk = Chunk::Data(std::mem::take(buffer).into());
    tx.send(chunk).await.map_err(|_| "the client went away".to_owned())
}

#[cfg(test)]
#[path = "compress_tests.rs"]
mod tests;
