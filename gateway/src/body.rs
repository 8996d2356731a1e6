//! Request bodies on their way to a worker: small ones read whole first, others streamed
//! under `client_body_timeout`.
//!
//! A request holds one of its app's channel streams (a worker has 1024 at once) from
//! the moment it is sent. A client that stalls its body must hold only its own
//! connection, so a body of known, small size is read into memory *before* a channel is
//! picked (at most [`BUFFER_MAX`] per request and [`BUFFER_TOTAL`] for the whole
//! gateway; past the total, bodies are streamed), and a streamed body fails once no byte
//! arrived for `client_body_timeout`, which ends its stream. Memory only: the gateway
//! opens no files.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The largest body read whole before it is forwarded, in bytes (`Content-Length`).
pub const BUFFER_MAX: u64 = 64 * 1024;
/// The most bytes of such bodies held at once by the whole gateway.
pub const BUFFER_TOTAL: usize = 64 * 1024 * 1024;

/// What a worker receives: a body read whole, or one streamed under a deadline.
pub type RequestBody = Either<Full<Bytes>, Timed>;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no request body bytes for {0:?} (client_body_timeout)")]
    Timeout(Duration),
    #[error("reading the request body: {0}")]
    Client(#[from] hyper::Error),
}

/// Bytes of buffered bodies held now, against [`BUFFER_TOTAL`].
#[derive(Debug, Default)]
pub struct Budget {
    held: AtomicUsize,
}

impl Budget {
    /// Reserves `len` bytes; `None` if that would pass [`BUFFER_TOTAL`].
    fn reserve(&self, len: usize) -> Option<Reserved<'_>> {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let next = held.checked_add(len).filter(|n| *n <= BUFFER_TOTAL)?;
            match self.held.compare_exchange(held, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Reserved { budget: self, len }),
                Err(now) => held = now,
            }
        }
    }
}

struct Reserved<'a> {
    budget: &'a Budget,
    len: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.len, Ordering::AcqRel);
    }
}

/// Tells whether a streamed body ended by `client_body_timeout`: the worker's side then
/// sees only a reset stream, and the client is owed a 408, not a 502.
#[derive(Debug, Clone, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    /// Whether the body's timeout fired.
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads a small body whole (within `timeout` between reads) when the budget allows;
/// otherwise wraps it to stream under `timeout`, reporting a stall to `stalled`.
pub async fn prepare(
    body: Incoming,
    timeout: Duration,
    budget: &Budget,
    stalled: &Stalled,
) -> Result<RequestBody, BodyError> {
    if body.is_end_stream() {
        return Ok(Either::Left(Full::new(Bytes::new())));
    }
    let small = body.size_hint().exact().filter(|len| *len <= BUFFER_MAX);
    let reserved = small.and_then(|len| budget.reserve(usize::try_from(len).ok()?));
    let timed = Timed::new(body, timeout, stalled.clone());
    if reserved.is_none() {
        return Ok(Either::Right(timed));
    }
    let bytes = timed.collect().await?.to_bytes();
    Ok(Either::Left(Full::new(bytes)))
}

/// A client body that fails once no frame arrived for its timeout.
#[derive(Debug)]
pub struct Timed {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    stalled: Stalled,
}

impl Timed {
    fn new(inner: Incoming, timeout: Duration, stalled: Stalled) -> Self {
        Self { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)), stalled }
    }
}

impl Body for Timed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline.as_mut().reset(Instant::now() + this.timeout);
                Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.stalled.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(BodyError::Timeout(this.timeout))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
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

    #[test]
    fn the_budget_refuses_past_its_total_and_frees_on_drop() {
        let budget = Budget::default();
        let most = budget.reserve(BUFFER_TOTAL).expect("the whole budget");
        assert!(budget.reserve(1).is_none());
        drop(most);
        assert!(budget.reserve(1).is_some());
    }
}
