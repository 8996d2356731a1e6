//! Request bodies on their way to a worker: small ones read whole first, others streamed
//! under `client_body_timeout`.
//!
//! A request holds one of its app's channel streams (a worker has 1024 at once) from
//! the moment it is sent. A client that stalls its body must hold only its own
//! connection, so a body of known, small size is read into memory *before* a channel is
//! picked (at most [`BUFFER_MAX`] per request, [`BUFFER_PER_CLIENT`] per client and
//! [`BUFFER_TOTAL`] for the whole gateway; past either, bodies are streamed). A body read
//! whole must arrive within `client_body_timeout` in all, so a slow sender holds its share
//! of the budget for that long at most, and a streamed body fails once no byte
//! arrived for `client_body_timeout`, which ends its stream. A body longer than the app's
//! `max_body` is refused by its `Content-Length` before a byte is read (so no
//! `100 Continue` is sent), or once a streamed one passes it. A streamed body that fails
//! records why in its [`Fault`], so the failure is answered as the client's (400, 408,
//! 413), never as the worker's. Memory only: the gateway opens no files.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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
/// The most bytes of such bodies one client holds at once: one IPv4 address, or one
/// IPv6 /64 (what one host is usually given), so that a few slow senders cannot take
/// the whole of [`BUFFER_TOTAL`] from everyone else.
pub const BUFFER_PER_CLIENT: usize = BUFFER_TOTAL / 16;

/// What a worker receives: a body read whole, or one streamed under a deadline.
pub type RequestBody = Either<Full<Bytes>, Timed>;

/// Why a request body could not be read; each is the client's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("no request body bytes for {0:?} (client_body_timeout)")]
    Timeout(Duration),
    /// A body read whole before forwarding did not arrive within the timeout in all.
    #[error("the request body did not arrive whole within {0:?} (client_body_timeout)")]
    TooSlow(Duration),
    /// Bad chunked framing, a body shorter than its length, a reset stream.
    #[error("the request body is malformed or cut short: {0}")]
    Client(String),
    #[error("the request body is longer than the app's max_body ({0} bytes)")]
    TooLarge(u64),
}

impl From<hyper::Error> for BodyError {
    fn from(e: hyper::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Client(text)
    }
}

/// Where a client body waits and where it records why it failed, so that its request
/// can answer with the client's fault (400, 408, 413) rather than the worker's (502).
///
/// The body itself comes back here whenever it is not on its way to a worker (refused,
/// or failed), so that what is left of it can be [`discard`]ed after the answer.
#[derive(Debug, Clone, Default)]
pub struct Fault(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    why: OnceLock<BodyError>,
    parked: Mutex<Option<Incoming>>,
}

impl Fault {
    /// A fault holding `body` until [`Fault::take_body`].
    pub fn holding(body: Incoming) -> Self {
        let fault = Self::default();
        fault.park(body);
        fault
    }

    /// Why the body failed, if it did.
    pub fn get(&self) -> Option<&BodyError> {
        self.0.why.get()
    }

    /// The held body, if any (the request's own, or what is left of it after it failed).
    pub fn take_body(&self) -> Option<Incoming> {
        self.0.parked.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn park(&self, body: Incoming) {
        *self.0.parked.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
    }

    fn record(&self, e: BodyError, body: Option<Incoming>) -> BodyError {
        let _ = self.0.why.set(e.clone());
        if let Some(body) = body {
            self.park(body);
        }
        e
    }
}

/// How a request body may be read.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The longest wait between two reads (`client_body_timeout`).
    pub timeout: Duration,
    /// The app's `max_body`, when the gateway knows it.
    pub max_body: Option<u64>,
}

/// Bytes of buffered bodies held now, against [`BUFFER_TOTAL`] and, per client,
/// [`BUFFER_PER_CLIENT`].
#[derive(Debug, Default)]
pub struct Budget {
    held: AtomicUsize,
    /// Bytes held by each client that holds any; a client is removed at zero.
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

/// The key a client's share is counted under: its IPv4 address (an IPv4-mapped IPv6
/// address counts as IPv4), or its IPv6 address's /64 prefix.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Budget {
    /// Reserves `len` bytes for `client`; `None` if that would pass [`BUFFER_TOTAL`] or
    /// the client's [`BUFFER_PER_CLIENT`].
    fn reserve(&self, client: IpAddr, len: usize) -> Option<Reserved<'_>> {
        let client = client_key(client);
        let mut by_client = self.by_client.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = by_client.get(&client).copied().unwrap_or(0);
        let next_mine = mine.checked_add(len).filter(|n| *n <= BUFFER_PER_CLIENT)?;
        let held = self.held.load(Ordering::Relaxed);
        let next = held.checked_add(len).filter(|n| *n <= BUFFER_TOTAL)?;
        // Changed only under the lock, so a plain store is exact.
        self.held.store(next, Ordering::Relaxed);
        by_client.insert(client, next_mine);
        Some(Reserved { budget: self, client, len })
    }

    /// Bytes held now by everyone.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

struct Reserved<'a> {
    budget: &'a Budget,
    client: IpAddr,
    len: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut by_client = self.budget.by_client.lock().unwrap_or_else(PoisonError::into_inner);
        self.budget.held.fetch_sub(self.len, Ordering::Relaxed);
        if let Some(mine) = by_client.get_mut(&self.client) {
            *mine -= self.len;
            if *mine == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

/// At most this much of an answered HTTP/2 request body is read and dropped.
const DISCARD_MAX: u64 = 1 << 20;
/// For at most this long (nginx's `lingering_timeout`).
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// Reads and drops what is left of an HTTP/2 request body the gateway answered without
/// reading (413 and the like), within [`DISCARD_MAX`] and [`DISCARD_TIME`], so the
/// stream ends with the client's END_STREAM rather than RST_STREAM: some clients (curl
/// 7.88) report that reset as a failed transfer even after a complete response. Past the
/// bounds the body is dropped and h2 resets the stream (NO_ERROR, RFC 9113 §8.1).
pub async fn discard(mut body: Incoming) {
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DISCARD_MAX {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// Refuses a body whose length is over `max_body` before reading a byte (so no
/// `100 Continue` goes out); reads a small body whole, within `client_body_timeout` in
/// all, when `client`'s share of the budget allows; otherwise wraps it to stream,
/// recording in `fault` why it failed if it does.
pub async fn prepare(
    body: Incoming,
    reading: Reading,
    client: IpAddr,
    budget: &Budget,
    fault: &Fault,
) -> Result<RequestBody, BodyError> {
    if body.is_end_stream() {
        return Ok(Either::Left(Full::new(Bytes::new())));
    }
    let exact = body.size_hint().exact();
    if let (Some(len), Some(max)) = (exact, reading.max_body)
        && len > max
    {
        return Err(fault.record(BodyError::TooLarge(max), Some(body)));
    }
    let small = exact.filter(|len| *len <= BUFFER_MAX);
    let reserved = small.and_then(|len| budget.reserve(client, usize::try_from(len).ok()?));
    let mut timed = Timed::new(body, reading, fault.clone());
    if reserved.is_none() {
        return Ok(Either::Right(timed));
    }
    timed.whole = Some(Box::pin(tokio::time::sleep(reading.timeout)));
    let bytes = timed.collect().await?.to_bytes();
    Ok(Either::Left(Full::new(bytes)))
}

/// A client body that fails once no frame arrived for its timeout or once it passes
/// `max_body`, and whose trailers lose the fields a client may not send there.
#[derive(Debug)]
pub struct Timed {
    /// The client's body; moved to the [`Fault`] once it failed.
    inner: Option<Incoming>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// When the whole body must have arrived (a body read whole before forwarding).
    whole: Option<Pin<Box<Sleep>>>,
    /// Bytes still allowed before `max_body` is passed.
    left: Option<u64>,
    max_body: u64,
    fault: Fault,
}

impl Timed {
    fn new(inner: Incoming, reading: Reading, fault: Fault) -> Self {
        Self {
            inner: Some(inner),
            timeout: reading.timeout,
            deadline: Box::pin(tokio::time::sleep(reading.timeout)),
            whole: None,
            left: reading.max_body,
            max_body: reading.max_body.unwrap_or(u64::MAX),
            fault,
        }
    }

    /// Counts `frame` against `max_body` and cleans trailers; `None` for a trailers
    /// frame with nothing left in it.
    fn check(&mut self, frame: Frame<Bytes>) -> Option<Result<Frame<Bytes>, BodyError>> {
        let frame = match frame.into_data() {
            Ok(data) => {
                let len = data.len() as u64;
                if let Some(left) = self.left.as_mut() {
                    match left.checked_sub(len) {
                        Some(rest) => *left = rest,
                        None => return Some(Err(BodyError::TooLarge(self.max_body))),
                    }
                }
                return Some(Ok(Frame::data(data)));
            }
            Err(frame) => frame,
        };
        match frame.into_trailers() {
            Ok(mut trailers) => {
                crate::framing::clean_trailers(&mut trailers);
                (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers)))
            }
            Err(other) => Some(Ok(other)),
        }
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
        loop {
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            let polled = match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(polled) => polled,
                Poll::Pending => {
                    let whole = this.whole.as_mut().is_some_and(|w| w.as_mut().poll(cx).is_ready());
                    return match this.deadline.as_mut().poll(cx) {
                        _ if whole => {
                            let e = BodyError::TooSlow(this.timeout);
                            Poll::Ready(Some(Err(this.fault.record(e, this.inner.take()))))
                        }
                        Poll::Ready(()) => {
                            let e = BodyError::Timeout(this.timeout);
                            Poll::Ready(Some(Err(this.fault.record(e, this.inner.take()))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            };
            this.deadline.as_mut().reset(Instant::now() + this.timeout);
            let checked = match polled {
                None => return Poll::Ready(None),
                Some(Err(e)) => Some(Err(BodyError::from(e))),
                Some(Ok(frame)) => this.check(frame),
            };
            match checked {
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(this.fault.record(e, this.inner.take()))));
                }
                Some(Ok(frame)) => return Poll::Ready(Some(Ok(frame))),
                None => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
