//! Serves a static file that path mapping found under the document root.
//!
//! GET and HEAD only; the Content-Type comes from a small extension table, the body is
//! streamed in chunks through a bounded channel. This module must never be handed a
//! script (path mapping refuses those) and re-checks that anyway, so PHP source never
//! leaves the worker whatever the state of the backend.

use std::path::Path;

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Response};
use tokio::io::AsyncReadExt;

use crate::body::{self, Body, Chunk};
use crate::path::is_script_file;

/// Bytes read from the file per chunk.
const CHUNK: usize = 64 * 1024;

const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("pdf", "application/pdf"),
    ("wasm", "application/wasm"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
];
const DEFAULT_TYPE: &str = "application/octet-stream";

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

/// A response for the file at `path` (already mapped and checked).
pub async fn serve(path: &Path, method: &Method) -> Result<Response<Body>, StaticError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(StaticError::Method(method.clone()));
    }
    if is_script_file(path) {
        return Err(StaticError::Script(path.display().to_string()));
    }
    let read_err = |source| StaticError::Read { path: path.display().to_string(), source };
    let file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let len = file.metadata().await.map_err(read_err)?.len();
    let body = match method == Method::HEAD {
        true => body::empty(),
        false => stream(file),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Ok(response)
}

/// The Content-Type for a file name's extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    TYPES.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)).map_or(DEFAULT_TYPE, |(_, t)| t)
}

fn stream(mut file: tokio::fs::File) -> Body {
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            let chunk = match file.read_buf(&mut buf).await {
                Ok(0) => Chunk::End,
                Ok(_) => Chunk::Data(buf.freeze()),
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
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn guesses_types_from_a_small_table() {
        assert_eq!(content_type(Path::new("/a/b.CSS")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("/a/b")), DEFAULT_TYPE);
        assert_eq!(content_type(Path::new("/a/b.tar.gz")), DEFAULT_TYPE);
    }

    #[tokio::test]
    async fn streams_a_file_and_answers_head() {
        let dir = TempDir::new();
        let file = dir.file("a.txt", &"x".repeat(CHUNK * 2 + 3));
        let got = serve(&file, &Method::GET).await.expect("served");
        assert_eq!(got.headers()[CONTENT_LENGTH], (CHUNK * 2 + 3).to_string().as_str());
        let bytes = got.into_body().collect().await.expect("complete").to_bytes();
        assert_eq!(bytes.len(), CHUNK * 2 + 3);
        let head = serve(&file, &Method::HEAD).await.expect("served");
        assert!(head.into_body().collect().await.expect("complete").to_bytes().is_empty());
    }

    #[tokio::test]
    async fn refuses_scripts_and_other_methods() {
        let dir = TempDir::new();
        let php = dir.file("a.php", "<?php echo 1;");
        assert!(matches!(serve(&php, &Method::GET).await, Err(StaticError::Script(_))));
        let txt = dir.file("a.txt", "x");
        assert!(matches!(serve(&txt, &Method::POST).await, Err(StaticError::Method(_))));
    }
}
