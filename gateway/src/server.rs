//! Accepting client connections on inherited listeners and serving them.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c", or by ALPN after a TLS
//! handshake on TLS listeners, see [`crate::tls`]) on the same port, through
//! hyper-util's auto connection. Header sizes and the header read time are
//! bounded here; everything about a request's meaning is [`crate::proxy`]'s.
//! On shutdown the accept loops stop and every connection finishes its
//! in-flight requests (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`); an idle
//! connection is closed at once. Connection limits and timeouts are
//! [`crate::limits`]'s: a connection over a limit is closed unread.

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
use crate::limits::{self, ConnLimits, Timeouts, Watched};
use crate::proxy::{self, ConnInfo};

/// How long a client may take to send a request head once it began (slowloris bound);
/// the whole wait for a first request is `client_header_timeout`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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

/// The shared connection builder, configured once.
pub fn builder(max_header_bytes: usize) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
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
                let info = ConnInfo { peer, local, scheme };
                let (state, serving) = (state.clone(), serving.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(stream, info, state, serving).await,
                        Some(tls) => serve_tls(tls, stream, info, state, serving).await,
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

/// Completes the TLS handshake (signing through the keyholder), then serves.
async fn serve_tls(
    tls: TlsAcceptor,
    stream: tokio::net::TcpStream,
    info: ConnInfo,
    state: Arc<State>,
    serving: Serving,
) {
    match tokio::time::timeout(serving.timeouts.header, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            let alpn = stream.get_ref().1.alpn_protocol();
            let serving = crate::tls::by_alpn(alpn, serving);
            serve_conn(stream, info, state, serving).await
        }
        Ok(Err(e)) => debug!(peer = %info.peer, cause = %e, "TLS handshake failed"),
        Err(_) => debug!(peer = %info.peer, "TLS handshake timed out"),
    }
}

async fn serve_conn<S>(stream: S, info: ConnInfo, state: Arc<State>, mut serving: Serving)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = limits::Activity::new();
    let seen = Arc::clone(&activity);
    let svc = service_fn(move |req| {
        let (state, guard) = (state.clone(), seen.request());
        async move {
            let resp = proxy::handle(state, info, req).await;
            resp.map(|resp| resp.map(|body| limits::Counted::new(body, guard)))
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
            return debug!(peer = %info.peer, ?expired, "client connection timed out; closing it");
        }
        () = stopped(&mut serving.stop) => {
            if activity.idle() {
                return;
            }
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                expired = watchdog.as_mut() => {
                    return debug!(peer = %info.peer, ?expired, "client connection timed out while draining");
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(peer = %info.peer, cause = %e, "client connection ended with an error");
    }
}

/// Completes once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
