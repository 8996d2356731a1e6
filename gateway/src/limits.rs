//! Client connections: how many may be open, and how long one may sit without work.
//!
//! [`ConnLimits`] admits a connection at accept time, globally and per client address
//! (nginx's `limit_conn`), and logs refusals at most once per [`LOG_EVERY`] with their
//! count. [`Watched`] wraps a connection's stream and records when bytes last moved and
//! whether a write is stuck; [`watchdog`] turns that into nginx's timeouts:
//! `client_header_timeout` (no request began within it of the accept: silent
//! connections, partial HTTP/2 prefaces, slow heads), `keepalive_timeout` (no request
//! in progress and no byte moved for that long, HTTP/1.1 and HTTP/2 alike) and
//! `send_timeout` (a client that takes no response byte for that long). A request
//! waiting on its worker is never cut: that is the app's `timeout`. This module never
//! looks at the bytes.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use privsep::msg::GatewayLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tracing::warn;

/// The least time between two log lines about refused connections.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Connection timeouts, as the broker configured them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub keepalive: Duration,
    pub send: Duration,
}

impl From<&GatewayLimits> for Timeouts {
    fn from(limits: &GatewayLimits) -> Self {
        Self {
            header: Duration::from_millis(limits.client_header_timeout_ms),
            keepalive: Duration::from_millis(limits.keepalive_timeout_ms),
            send: Duration::from_millis(limits.send_timeout_ms),
        }
    }
}

/// Why [`watchdog`] ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No request began within `client_header_timeout`.
    Header,
    /// Idle for `keepalive_timeout`.
    KeepAlive,
    /// The client took no response byte for `send_timeout`.
    Send,
}

/// Open connections, in total and per client address.
#[derive(Debug)]
pub struct ConnLimits {
    max: usize,
    per_client: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
    refused: AtomicU64,
    logged: Mutex<Option<(Instant, u64)>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    /// At most `max` connections, `per_client` of them from one address.
    pub fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_client,
            open: Mutex::default(),
            total: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            logged: Mutex::new(None),
        })
    }

    /// A place for a connection from `ip`, or `None` (counted, logged now and then).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = open.get(&ip).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Relaxed);
        if total >= self.max || from_ip >= self.per_client {
            drop(open);
            self.refused(ip, total >= self.max);
            return None;
        }
        open.insert(ip, from_ip + 1);
        self.total.store(total + 1, Ordering::Relaxed);
        Some(ConnPermit { limits: Arc::clone(self), ip })
    }

    /// Connections refused since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refused(&self, ip: IpAddr, global: bool) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if logged.is_some_and(|(at, _)| now.duration_since(at) < LOG_EVERY) {
            return;
        }
        let since = refused - logged.map_or(0, |(_, n)| n);
        let (limit, value) = if global {
            ("max_connections", self.max)
        } else {
            ("max_connections_per_client", self.per_client)
        };
        warn!(client = %ip, limit, value, refused = since, refused_total = refused, "connection limit reached: refusing connections");
        *logged = Some((now, refused));
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection did, for its [`watchdog`]. Times are ms since `epoch`.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_io: AtomicU64,
    /// When a write last returned Pending without progress since (0: none stuck).
    write_stuck: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            write_stuck: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// When the connection was accepted.
    pub fn started(&self) -> Instant {
        self.epoch
    }

    fn now_ms(&self) -> u64 {
        // Never 0, so 0 can mean "not stuck".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// A request entered the gateway's handler; its guard marks it done.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(Arc::clone(self))
    }

    /// Whether the connection has no request in progress.
    pub fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// What has expired at `now_ms`, if anything.
    fn expired(&self, now_ms: u64, t: &Timeouts) -> Option<Expired> {
        let ms = |d: Duration| d.as_millis() as u64;
        let stuck = self.write_stuck.load(Ordering::Relaxed);
        if stuck != 0 && now_ms.saturating_sub(stuck) >= ms(t.send) {
            return Some(Expired::Send);
        }
        if !self.idle() {
            return None;
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            return (now_ms >= ms(t.header)).then_some(Expired::Header);
        }
        let quiet = now_ms.saturating_sub(self.last_io.load(Ordering::Relaxed));
        (quiet >= ms(t.keepalive)).then_some(Expired::KeepAlive)
    }
}

/// Marks one request as done when dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.last_io.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes when the connection has outlived one of its timeouts.
pub async fn watchdog(activity: Arc<Activity>, timeouts: Timeouts) -> Expired {
    let smallest = timeouts.header.min(timeouts.keepalive).min(timeouts.send);
    let tick = (smallest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if let Some(expired) = activity.expired(activity.now_ms(), &timeouts) {
            return expired;
        }
    }
}

/// A client stream that reports its activity.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn moved(&self) {
        self.activity.last_io.store(self.activity.now_ms(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.track_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Watched<S> {
    fn track_write(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Pending => {
                let now = self.activity.now_ms();
                let _ = self.activity.write_stuck.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => {
                self.activity.write_stuck.store(0, Ordering::Relaxed);
                self.moved();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(20),
        send: Duration::from_secs(30),
    };

    #[test]
    fn a_connection_without_a_request_expires_after_the_header_timeout() {
        let a = Activity::new();
        assert_eq!(a.expired(9_999, &T), None);
        assert_eq!(a.expired(10_000, &T), Some(Expired::Header));
    }

    #[test]
    fn a_request_in_progress_is_never_cut_but_a_stuck_write_is() {
        let a = Activity::new();
        let guard = a.request();
        assert_eq!(a.expired(1_000_000, &T), None, "waiting on the worker");
        a.write_stuck.store(5_000, Ordering::Relaxed);
        assert_eq!(a.expired(34_999, &T), None);
        assert_eq!(a.expired(35_000, &T), Some(Expired::Send));
        drop(guard);
    }

    #[test]
    fn an_idle_connection_expires_after_the_keepalive_timeout() {
        let a = Activity::new();
        drop(a.request());
        let done = a.last_io.load(Ordering::Relaxed);
        assert_eq!(a.expired(done + 19_999, &T), None);
        assert_eq!(a.expired(done + 20_000, &T), Some(Expired::KeepAlive));
    }

    #[test]
    fn limits_count_per_client_and_in_total() {
        let limits = ConnLimits::new(3, 2);
        let (a, b): (IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])), IpAddr::from([127, 0, 0, 2]));
        let a1 = limits.admit(a);
        let a2 = limits.admit(a);
        assert!(a1.is_some() && a2.is_some());
        assert!(limits.admit(a).is_none(), "per client");
        let b1 = limits.admit(b);
        assert!(b1.is_some());
        assert!(limits.admit(b).is_none(), "in total");
        drop(a1);
        assert!(limits.admit(b).is_some(), "a closed connection frees its place");
        assert_eq!(limits.refused_total(), 2);
    }
}

/// A response body that keeps its request counted as in progress until it ends.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    guard: Option<RequestGuard>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Self { inner, guard: Some(guard) }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
