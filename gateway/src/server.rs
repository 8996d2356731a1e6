//! Accepting client connections on inherited listeners and serving them.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c", or by ALPN after a TLS
//! handshake on TLS listeners, see [`crate::tls`]) on the same port, through
//! hyper-util's auto connection. Header sizes and the header read time are
//! bounded here; everything about a request's meaning is [`crate::proxy`]'s.
//! On shutdown the accept loops stop and every connection finishes its
//! in-flight requests (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`); an idle
//! connection and a TLS handshake in progress are closed at once. Connection
//! limits and timeouts are [`crate::limits`]'s: a connection over a limit is
//! closed unread. A connection the gateway ends lingers ([`crate::linger`]) so
//! the client reads its last answer.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::State;
use crate::access_log::{Entry, Logged};
use crate::limits::{self, Activity, ConnLimits, Timeouts, Watched};
use crate::linger::{self, Shared};
use crate::proxy::{self, ConnInfo};

/// The most bytes of an HTTP/2 header list the protocol layer takes, for a
/// `client_max_header_size` of `max_header_bytes`: twice it (HTTP/2 counts 32 bytes more a
/// field than a head's text has), at least 64 KiB. Larger lists get the protocol layer's
/// own 431; smaller ones past `client_max_header_size` get the gateway's 431
/// ([`crate::proxy`]), the connection serving on either way. h2 holds a header block
/// (CONTINUATION frames included) of up to about 1.25 times this per connection until it
/// is complete, so this bounds a slow client's memory.
pub fn h2_max_header_list(max_header_bytes: usize) -> u32 {
    u32::try_from(max_header_bytes.saturating_mul(2).max(64 * 1024)).unwrap_or(u32::MAX)
}
/// Pause after a failed `accept` (for example EMFILE) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every accept loop and connection needs besides the state.
#[derive(Debug, Clone)]
pub struct Serving {
    pub builder: auto::Builder<TokioExecutor>,
    /// Turns true when the gateway must stop.
    pub stop: watch::Receiver<bool>,
    /// Held by every loop and connection; the receiver sees `None` once all are done.
    pub alive: mpsc::Sender<()>,
    /// Open connections, in total and per client address.
    pub limits: Arc<ConnLimits>,
    pub timeouts: Timeouts,
}

/// The most header fields an HTTP/1.1 request may have (hyper's default is 100). nginx
/// counts only bytes: `client_max_header_size` is the limit that matters, and 1,000
/// fields of a few bytes each stay well within it.
pub const MAX_REQUEST_FIELDS: usize = 1000;

/// The shared connection builder, configured once: an HTTP/1.1 head must arrive whole
/// within `client_header_timeout` and fit `client_max_header_size` (hyper's buffer cannot
/// be under 8 KiB: [`crate::proxy`] checks smaller limits).
pub fn builder(max_header_bytes: usize, header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_header_bytes.max(8192))
        .max_headers(MAX_REQUEST_FIELDS);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(h2_max_header_list(max_header_bytes))
        .max_concurrent_streams(256);
    b
}

/// Accepts connections on `listener` until told to stop; TLS first when `tls` is set.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut serving: Serving,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut serving.stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(permit) = serving.limits.admit(peer.ip()) else { continue };
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let scheme = if tls.is_some() { "https" } else { "http" };
                let info = ConnInfo { peer, local, scheme, tls: None };
                let (state, serving) = (state.clone(), serving.clone());
                let tls = tls.clone();
                // Timeouts count from the accept, a TLS handshake included.
                let activity = limits::Activity::new();
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(stream, info, activity, state, serving).await,
                        Some(tls) => serve_tls(tls, stream, info, activity, state, serving).await,
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Completes the TLS handshake (signing through the keyholder) within
/// `client_header_timeout`, then serves; a handshake in progress is dropped on shutdown.
async fn serve_tls(
    tls: TlsAcceptor,
    stream: tokio::net::TcpStream,
    info: ConnInfo,
    activity: Arc<Activity>,
    state: Arc<State>,
    mut serving: Serving,
) {
    let deadline = activity.started() + serving.timeouts.header;
    let handshake = tokio::time::timeout_at(deadline, tls.accept(stream));
    let done = tokio::select! {
        done = handshake => done,
        () = stopped(&mut serving.stop) => return,
    };
    match done {
        Ok(Ok(stream)) => {
            let alpn = stream.get_ref().1.alpn_protocol();
            let serving = crate::tls::by_alpn(alpn, serving);
            let info = ConnInfo { tls: crate::tls::version_name(stream.get_ref().1), ..info };
            serve_conn(stream, info, activity, state, serving).await
        }
        Ok(Err(e)) => debug!(peer = %info.peer, cause = %e, "TLS handshake failed"),
        Err(_) => debug!(peer = %info.peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP on `stream`, then lets a connection the protocol ended linger.
async fn serve_conn<S>(
    stream: S,
    info: ConnInfo,
    activity: Arc<Activity>,
    state: Arc<State>,
    mut serving: Serving,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Shared::new(stream);
    if !serve_http(shared.clone(), info, activity, state, &mut serving).await {
        return;
    }
    // The protocol code is done with the stream: the client gets to read its last answer.
    let Some(mut stream) = shared.into_inner() else { return };
    tokio::select! {
        discarded = linger::linger(&mut stream) => {
            if discarded > 0 {
                debug!(peer = %info.peer, discarded, "discarded unread request bytes before closing");
            }
        }
        () = stopped(&mut serving.stop) => {}
    }
}

/// Serves requests until the connection ends; `true` if it ended by the protocol (not by
/// a timeout or shutdown), when it should linger.
async fn serve_http<S>(
    stream: Shared<S>,
    info: ConnInfo,
    activity: Arc<Activity>,
    state: Arc<State>,
    serving: &mut Serving,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let seen = Arc::clone(&activity);
    let svc = service_fn(move |req| {
        let (state, guard) = (state.clone(), seen.request());
        async move {
            let log = state.access_log.clone().map(|log| (log, Entry::new(&info, &req)));
            let mut app = None;
            let resp = proxy::handle(state, info, req, &mut app).await;
            let log = log.map(|(log, mut entry)| {
                entry.app = app;
                (log, entry)
            });
            resp.map(|resp| {
                let status = resp.status().as_u16();
                resp.map(|body| Logged::new(limits::Counted::new(body, guard), status, log))
            })
        }
    });
    let stream = Watched::new(stream, Arc::clone(&activity));
    let conn = serving.builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let watchdog = limits::watchdog(Arc::clone(&activity), serving.timeouts);
    tokio::pin!(watchdog);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        expired = watchdog.as_mut() => {
            debug!(peer = %info.peer, ?expired, "client connection timed out; closing it");
            return false;
        }
        () = stopped(&mut serving.stop) => {
            if activity.idle() {
                return false;
            }
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(peer = %info.peer, cause = %e, "client connection ended with an error");
                    }
                }
                expired = watchdog.as_mut() => {
                    debug!(peer = %info.peer, ?expired, "client connection timed out while draining");
                }
            }
            return false;
        }
    };
    if let Err(e) = result {
        debug!(peer = %info.peer, cause = %e, "client connection ended with an error");
    }
    true
}

/// Completes once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
