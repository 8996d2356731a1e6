//! Buffers a request body, up to the app's limit, before the backend is contacted.
//!
//! php-fpm needs an exact CONTENT_LENGTH and hangs on short bodies, and a slow upload
//! streamed straight through would hold a php-fpm child for its whole duration, so
//! the whole body is read first and its real length is what the backend is told.
//! Chunked bodies (no Content-Length) are counted the same way. The first
//! [`MEMORY_LIMIT`] bytes stay in memory; a larger body spills to an anonymous file in
//! the worker's private temporary directory (`O_TMPFILE`, or created and unlinked at
//! once), so nothing is left behind whatever happens. This module must never hold
//! more than the limit: a declared or counted excess is refused at once.
//!
//! The file is written and read in place, not through tokio's blocking pool: in the
//! sandbox it lives on the worker's private tmpfs, where a write is a memory copy,
//! and a trip to another thread per chunk cost more than the copy (measured: a 1 MiB
//! upload took four times nginx's CPU that way).

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, ReadBuf};

/// The most body bytes kept in memory; beyond this the body goes to a temp file.
pub const MEMORY_LIMIT: usize = 64 * 1024;

/// Why a request body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body exceeds the {max}-byte limit")]
    TooLarge { max: u64 },
    #[error("request body could not be read: {0}")]
    Read(String),
    #[error("request body could not be stored in a temporary file: {0}")]
    Spill(#[from] std::io::Error),
}

/// A complete request body, in memory or in an unlinked temporary file.
#[derive(Debug)]
pub enum Buffered {
    Memory(Bytes),
    File { file: std::fs::File, len: u64 },
}

impl Buffered {
    /// The exact length, for CONTENT_LENGTH.
    pub fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the whole body, from its start; may be asked for again (a
    /// request sent a second time). A spilled body's reader shares the file offset,
    /// so only the newest one may be read.
    pub fn reader(&self) -> std::io::Result<Box<dyn AsyncRead + Unpin + Send>> {
        Ok(match self {
            Self::Memory(bytes) => Box::new(Cursor::new(bytes.clone())),
            Self::File { file, .. } => {
                let mut file = file.try_clone()?;
                file.seek(SeekFrom::Start(0))?;
                Box::new(FileReader(file))
            }
        })
    }
}

/// Reads all of `body`; `declared` is the Content-Length, if the client sent one.
/// A body larger than [`MEMORY_LIMIT`] is spilled to a file in `tmp`.
pub async fn buffer<B>(
    mut body: B,
    declared: Option<u64>,
    max: u64,
    tmp: &Path,
) -> Result<Buffered, RequestBodyError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if declared.is_some_and(|len| len > max) {
        return Err(RequestBodyError::TooLarge { max });
    }
    let mut buf = BytesMut::new();
    let mut spill: Option<std::fs::File> = None;
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestBodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > max {
            return Err(RequestBodyError::TooLarge { max });
        }
        buf.extend_from_slice(&data);
        if spill.is_none() && buf.len() > MEMORY_LIMIT {
            spill = Some(anonymous_file(tmp)?);
        }
        if let Some(file) = spill.as_mut() {
            file.write_all(&buf)?;
            buf.clear();
        }
    }
    match spill {
        None => Ok(Buffered::Memory(buf.freeze())),
        Some(mut file) => {
            file.seek(SeekFrom::Start(0))?;
            Ok(Buffered::File { file, len })
        }
    }
}

/// A read-write file in `dir` that has no name: `O_TMPFILE`, else create + unlink.
fn anonymous_file(dir: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    let file = match options.clone().custom_flags(libc::O_TMPFILE).open(dir) {
        Ok(file) => file,
        Err(_) => named_then_unlinked(&options, dir)?,
    };
    Ok(file)
}

/// Reads a spilled body in place (see the module documentation).
#[derive(Debug)]
struct FileReader(std::fs::File);

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

fn named_then_unlinked(
    options: &std::fs::OpenOptions,
    dir: &Path,
) -> std::io::Result<std::fs::File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".bulkhead-body-{}-{n}", std::process::id()));
    let file = options.clone().create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use http_body_util::{Full, StreamBody};
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::test_util::TempDir;

    async fn read_all(body: Buffered) -> Vec<u8> {
        let mut out = Vec::new();
        body.reader().expect("a reader").read_to_end(&mut out).await.expect("readable");
        out
    }

    #[tokio::test]
    async fn buffers_up_to_the_limit() {
        let dir = TempDir::new();
        let got = buffer(Full::new(Bytes::from_static(b"12345")), None, 5, dir.path())
            .await
            .expect("fits");
        assert!(matches!(&got, Buffered::Memory(b) if b == "12345"));
    }

    #[tokio::test]
    async fn refuses_a_counted_or_declared_excess() {
        let dir = TempDir::new();
        let counted = buffer(Full::new(Bytes::from_static(b"123456")), None, 5, dir.path()).await;
        assert!(matches!(counted, Err(RequestBodyError::TooLarge { max: 5 })));
        let declared = buffer(Full::new(Bytes::new()), Some(6), 5, dir.path()).await;
        assert!(matches!(declared, Err(RequestBodyError::TooLarge { max: 5 })));
    }

    #[tokio::test]
    async fn spills_a_large_chunked_body_to_a_nameless_file() {
        let dir = TempDir::new();
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
            (0..40u8).map(|i| Ok(http_body::Frame::data(Bytes::from(vec![i; 4096])))).collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let got = buffer(body, None, 1 << 20, dir.path()).await.expect("fits");
        assert!(matches!(got, Buffered::File { len: 163_840, .. }));
        let entries = std::fs::read_dir(dir.path()).expect("listable").count();
        assert_eq!(entries, 0, "the spill file has no name");
        let bytes = read_all(got).await;
        assert_eq!(bytes.len(), 163_840);
        assert!(
            bytes.chunks(4096).enumerate().all(|(i, c)| c.iter().all(|b| usize::from(*b) == i))
        );
    }
}
