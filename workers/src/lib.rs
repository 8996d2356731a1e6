//! Bulkhead's per-app worker: turns requests from the gateway into static files or
//! FastCGI requests to the app's own backend, and streams the answers back.
//!
//! A worker holds one app's document root, secrets and backend socket, and nothing of
//! any other app. Everything it receives on its channel is client data except the
//! gateway's `x-bulkhead-*` headers; everything its backend sends is only semi-trusted.
//! It must never panic on either, never send a secret anywhere but its own backend, and
//! never serve a script as a file.
//!
//! # Layout
//! - [`process`]: the worker's life: channels and drain orders from the broker, idle reports.
//! - [`app`]: the app's validated configuration, shared by every request.
//! - [`handler`]: one request, from mapping to response; errors become responses.
//! - [`path`]: request path → script (with PATH_INFO) or static file.
//! - [`rules`]: the app's deny, no-scripts, internal, rewrite and headers rules.
//! - [`params`]: nginx-style FastCGI params and their encoded-size limit.
//! - [`forwarded`]: the client behind a trusted proxy (X-Forwarded-For/-Proto).
//! - [`request_body`]: buffers a request body up to the app's limit (memory, then a temp file).
//! - [`backend`]: one FastCGI exchange per task, with deadlines and a streamed body.
//! - [`record`]: validates the backend's FastCGI records before the client crate parses them.
//! - [`cgi`]: parses the CGI response header block.
//! - [`static_file`]: serves files that are not scripts: precompressed siblings, 304, ranges.
//! - [`conditional`]: ETag/Last-Modified, If-None-Match/If-Modified-Since, Range/If-Range.
//! - [`mime`]: content types by extension.
//! - [`body`]: response body types; a stream that ends cleanly only on purpose.
//! - [`error`]: every request error and its HTTP status, in one place.
#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod body;
pub mod cgi;
pub mod compress;
pub mod conditional;
pub mod error;
pub mod forwarded;
pub mod handler;
pub mod keepalive;
pub mod mime;
pub mod params;
pub mod path;
pub mod process;
pub mod record;
pub mod request_body;
pub mod rules;
pub mod static_file;
#[cfg(test)]
mod test_util;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio::sync::watch;

pub use app::{App, AppError};

/// The largest request header list accepted on the channel. The gateway enforces the
/// client-facing limit; this only has to be larger, so that the params-size check
/// answers 431 rather than the HTTP/2 layer refusing the stream.
const MAX_HEADER_LIST: u32 = 1024 * 1024;

/// HTTP/2 frame size on the gateway channel (the protocol's default is 16 KiB).
const CHANNEL_FRAME: u32 = 64 * 1024;
/// Flow-control windows on the gateway channel: a 1 MiB upload needs no window update.
const CHANNEL_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CHANNEL_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Requests one channel carries at once (the gateway queues beyond that).
const CHANNEL_STREAMS: u32 = 1024;
/// Streams the gateway may have reset before the worker took them up, at once (h2's
/// default is 20): one burst of cancelled client requests must never end the channel.
const CHANNEL_PENDING_RESETS: usize = 64 * 1024;

/// Why the worker stopped serving its channel.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("channel socket: {0}")]
    Channel(#[from] std::io::Error),
    #[error("HTTP/2 connection with the gateway failed: {0}")]
    Http(#[from] hyper::Error),
}

/// Turns a channel descriptor from the broker (a connected Unix stream socket) into a
/// tokio stream.
pub fn channel_stream(fd: OwnedFd) -> std::io::Result<UnixStream> {
    let channel = std::os::unix::net::UnixStream::from(fd);
    channel.set_nonblocking(true)?;
    UnixStream::from_std(channel)
}

/// Serves HTTP/2 (prior knowledge) on `io` until the peer closes it. Once `drain`
/// turns true, no new stream is accepted and the call returns when the in-flight
/// ones are done; a dropped sender never drains.
pub async fn serve_connection<I>(
    app: Arc<App>,
    io: I,
    drain: watch::Receiver<bool>,
) -> Result<(), ServeError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handler::handle(Arc::clone(&app), req));
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .max_header_list_size(MAX_HEADER_LIST)
        // Larger frames and windows than HTTP/2's defaults: the channel is a local
        // socketpair, so fewer, bigger frames cost less than flow-control round trips.
        .max_frame_size(CHANNEL_FRAME)
        .initial_stream_window_size(CHANNEL_STREAM_WINDOW)
        .initial_connection_window_size(CHANNEL_CONNECTION_WINDOW)
        .max_concurrent_streams(CHANNEL_STREAMS)
        // The gateway resets a stream whenever its client goes away, so hundreds of
        // resets in a burst are ordinary here, not an attack to end the channel for:
        // h2's limits on them (20 reset before accept, 1024 locally reset) are meant for
        // internet peers. The gateway is the only peer and bounds its own clients.
        .max_pending_accept_reset_streams(CHANNEL_PENDING_RESETS)
        .max_local_error_reset_streams(None);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => return Ok(served?),
        () = drained(drain) => conn.as_mut().graceful_shutdown(),
    }
    Ok(conn.await?)
}

async fn drained(mut drain: watch::Receiver<bool>) {
    if drain.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}
