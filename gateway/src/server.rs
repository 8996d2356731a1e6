//! Accepting client connections on inherited listeners and serving them.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c") on the same port, through
//! hyper-util's auto connection. Header sizes and the header read time are
//! bounded here; everything about a request's meaning is [`crate::proxy`]'s.
//! On shutdown the accept loops stop and every connection finishes its
//! in-flight requests (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`).

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::State;
use crate::proxy::{self, ConnInfo};

/// How long a client may take to send a request head (slowloris bound).
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

/// Accepts connections on `listener` until told to stop.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut serving: Serving) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut serving.stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(local) = stream.local_addr() else { continue };
                let _ = stream.set_nodelay(true);
                let info = ConnInfo { peer, local, scheme: "http" };
                tokio::spawn(serve_conn(stream, info, state.clone(), serving.clone()));
            }
            Err(e) => {
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    info: ConnInfo,
    state: Arc<State>,
    mut serving: Serving,
) {
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
