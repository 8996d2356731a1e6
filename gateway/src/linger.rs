//! Lingering close, like nginx's `lingering_close`: before the gateway closes a connection
//! it ended (an error answer such as 431 or 408, a response sent before its request body was
//! read), it half-closes, then reads and discards what the client still sends, for at most
//! [`LINGERING_TIME`] in all, [`LINGERING_TIMEOUT`] without a byte and [`LINGERING_BYTES`].
//! Closing with unread bytes would make the kernel answer with a reset, which destroys the
//! response the client has not read yet. Nothing read here is looked at.
//!
//! [`Shared`] lets the connection's protocol code and the lingering step use one stream in
//! turn: the protocol code holds a clone while it runs, the lingering step takes the stream
//! back once that clone is dropped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// The longest a connection lingers (nginx's `lingering_time` is 30 s).
pub const LINGERING_TIME: Duration = Duration::from_secs(5);
/// The longest wait for the next byte while lingering (nginx's `lingering_timeout` is 5 s).
pub const LINGERING_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes read and discarded while lingering.
pub const LINGERING_BYTES: usize = 4 * 1024 * 1024;

/// A stream used by one task at a time, taken back with [`Shared::into_inner`].
#[derive(Debug)]
pub struct Shared<S>(Arc<Mutex<S>>);

impl<S> Shared<S> {
    pub fn new(inner: S) -> Self {
        Self(Arc::new(Mutex::new(inner)))
    }

    /// The stream, once every other clone is gone.
    pub fn into_inner(self) -> Option<S> {
        let mutex = Arc::try_unwrap(self.0).ok()?;
        Some(mutex.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shared<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shared<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.lock().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// Half-closes `stream`, then discards what the client sends until it closes or a bound
/// is reached; returns the bytes discarded.
pub async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> usize {
    let deadline = Instant::now() + LINGERING_TIME;
    if tokio::time::timeout_at(deadline, stream.shutdown()).await.is_err() {
        return 0;
    }
    let mut buf = vec![0; 16 * 1024];
    let mut discarded = 0;
    while discarded < LINGERING_BYTES {
        let wake = deadline.min(Instant::now() + LINGERING_TIMEOUT);
        match tokio::time::timeout_at(wake, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lingering_reads_what_the_client_still_sends_until_it_closes() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let shared = Shared::new(ours);
        let clone = shared.clone();
        drop(clone);
        let mut ours = shared.into_inner().expect("the only clone");
        let client = tokio::spawn(async move {
            let _ = theirs.write_all(&[7; 5000]).await;
            let mut answer = Vec::new();
            let _ = theirs.read_to_end(&mut answer).await;
        });
        assert_eq!(linger(&mut ours).await, 5000);
        let _ = client.await;
    }
}
