//! Accepting client connections on inherited listeners and serving them.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c", or by ALPN after a TLS
//! handshake on TLS listeners, see [`crate::tls`]) on the same port, through
//! hyper-util's auto connection. Header sizes and the header read time are
//! bounded here; everything about a request's meaning is [`crate::proxy`]'s.
//! On shutdown the accept loops stop and every connection finishes its
//! in-flight requests (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`).

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
use crate::proxy::{self, ConnInfo};

/// How long a client may take to send a request head (slowloris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let scheme = if tls.is_some() { "https" } else { "http" };
                let info = ConnInfo { peer, local, scheme };
                let (state, serving) = (state.clone(), serving.clone());
                match &tls {
                    None => tokio::spawn(serve_conn(stream, info, state, serving)),
                    Some(tls) => tokio::spawn(serve_tls(tls.clone(), stream, info, state, serving)),
                };
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
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve_conn(stream, info, state, serving).await,
        Ok(Err(e)) => debug!(peer = %info.peer, cause = %e, "TLS handshake failed"),
        Err(_) => debug!(peer = %info.peer, "TLS handshake timed out"),
    }
}

async fn serve_conn<S>(stream: S, info: ConnInfo, state: Arc<State>, mut serving: Serving)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| proxy::handle(state.clone(), info, req));
    let conn = serving.builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut serving.stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
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
