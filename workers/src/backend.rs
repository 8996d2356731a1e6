//! Runs one FastCGI exchange with the app's backend and turns it into an HTTP response.
//!
//! Each exchange gets a fresh connection (short-connection mode) and its own tokio
//! task, so a panic inside the `fastcgi-client` crate becomes a `JoinError` and a 502
//! instead of a dead worker. The socket is wrapped in a [`RecordGuard`], every wait on
//! the backend (connect, send, first byte, each later record) is bounded by the app's
//! timeout, and the body is streamed through a bounded channel. stderr is logged
//! (capped), never sent to the client. This module must never report a truncated,
//! malformed or timed-out exchange as a complete response.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use fastcgi_client::response::Content;
use fastcgi_client::{Client, ClientError, Params, Request, StreamExt};
use futures_util::Stream;
use http::Response;
use privsep::msg::Backend;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tracing::{Instrument, warn};

use crate::app::App;
use crate::body::{self, Body, Chunk};
use crate::cgi::{CgiError, Head, HeadBuffer};
use crate::params::ParamMap;
use crate::record::{EndSeen, RecordGuard};
use crate::request_body::Buffered;

/// The most stderr bytes logged per request.
const STDERR_LOG_BYTES: usize = 4096;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {backend} is unavailable: {source}")]
    Unavailable { backend: String, source: std::io::Error },
    #[error("timed out waiting for the backend")]
    Timeout,
    #[error("FastCGI protocol error: {0}")]
    Protocol(#[from] ClientError),
    #[error("the backend closed the connection before FCGI_END_REQUEST")]
    Truncated,
    #[error("the backend ended its response without a header block")]
    NoHead,
    #[error("bad CGI response header: {0}")]
    Head(#[from] CgiError),
    #[error("the FastCGI exchange task failed: {0}")]
    Task(String),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Sends one request to the backend; returns once the response head has arrived.
pub async fn forward(
    app: &App,
    params: ParamMap,
    body: Buffered,
) -> Result<Response<Body>, BackendError> {
    let io = connect(app.backend(), app.timeout()).await.inspect_err(|e| {
        if e.is_stale_unix_socket() {
            app.backend_stale().notify_one();
        }
    })?;
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, response_body) = body::channel();
    let job = Exchange { wait: app.timeout(), app: app.name().to_owned(), head_tx, body_tx };
    let task = tokio::spawn(job.run(io, params, body).in_current_span());
    let mut abort = AbortGuard(Some(task.abort_handle()));
    let head = match head_rx.await {
        Ok(head) => head?,
        Err(_) => return Err(task_failure(task.await)),
    };
    abort.0 = None;
    Ok(response(head, response_body))
}

/// Aborts the exchange if the client goes away while it waits for the head.
struct AbortGuard(Option<tokio::task::AbortHandle>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

fn task_failure(joined: Result<(), tokio::task::JoinError>) -> BackendError {
    match joined {
        Err(err) if err.is_panic() => BackendError::Task("panicked".into()),
        Err(err) => BackendError::Task(err.to_string()),
        Ok(()) => BackendError::Task("ended without a response".into()),
    }
}

/// Carried in a response's extensions: the script asked, with `X-Accel-Redirect`,
/// for this path under the document root to be served instead of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelRedirect(pub String);

fn response(head: Head, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if let Some(path) = head.accel_redirect {
        response.extensions_mut().insert(AccelRedirect(path));
    }
    response
}

impl BackendError {
    /// A Unix socket that refuses or is missing. The worker's sandbox holds the
    /// socket file it found at start-up: after a php-fpm restart that is a dead
    /// inode, and only a fresh worker sees the new socket.
    fn is_stale_unix_socket(&self) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, NotFound};
        matches!(self, Self::Unavailable { backend, source }
            if backend.starts_with("unix:") && matches!(source.kind(), ConnectionRefused | NotFound))
    }
}

async fn connect(backend: &Backend, wait: Duration) -> Result<Box<dyn Io>, BackendError> {
    let attempt = async {
        Ok::<Box<dyn Io>, std::io::Error>(match backend {
            Backend::Unix(path) => Box::new(connect_unix(path)?),
            Backend::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
        })
    };
    match timeout(wait, attempt).await {
        Err(_) => Err(BackendError::Timeout),
        Ok(Err(source)) => Err(BackendError::Unavailable { backend: backend.to_string(), source }),
        Ok(Ok(io)) => Ok(io),
    }
}

/// A Unix-socket connect completes or fails at once (a full listen backlog is
/// `EAGAIN`, as with tokio's own connect), so it is done in place: no wait for
/// writability and no `SO_ERROR` read, one reactor turn and one syscall less per
/// request than `UnixStream::connect`.
fn connect_unix(path: &Path) -> std::io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    socket.connect(&SockAddr::unix(path)?)?;
    UnixStream::from_std(std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

/// One exchange's task: its deadlines and where its results go.
struct Exchange {
    wait: Duration,
    app: String,
    head_tx: oneshot::Sender<Result<Head, BackendError>>,
    body_tx: mpsc::Sender<Chunk>,
}

impl Exchange {
    async fn run(self, io: Box<dyn Io>, params: ParamMap, body: Buffered) {
        let mut stderr = StderrLog::new(&self.app);
        let started = async {
            let (mut stream, end) = open(io, params, body, self.wait).await?;
            let (head, rest) = read_head(&mut stream, self.wait, &end, &mut stderr).await?;
            Ok::<_, BackendError>((head, rest, stream, end))
        };
        let (head, rest, mut stream, end) = match started.await {
            Ok(started) => started,
            Err(err) => {
                let _ = self.head_tx.send(Err(err));
                return;
            }
        };
        if self.head_tx.send(Ok(head)).is_err() {
            return;
        }
        let pumped = pump(&mut stream, rest, self.wait, &end, &mut stderr, &self.body_tx).await;
        let last = match pumped {
            Ok(()) => Chunk::End,
            Err(err) => {
                warn!(app = %self.app, cause = %err, "response body aborted");
                Chunk::Fail(err.to_string())
            }
        };
        let _ = self.body_tx.send(last).await;
    }
}

/// Bytes of FastCGI request records gathered before a write to the backend.
const WRITE_BUFFER: usize = 16 * 1024;

/// Sends the request through a guarded connection; returns the response stream.
async fn open(
    io: Box<dyn Io>,
    params: ParamMap,
    body: Buffered,
    wait: Duration,
) -> Result<(impl Stream<Item = Item> + Unpin + Send, EndSeen), BackendError> {
    // The client crate writes each record piece on its own and flushes once at
    // the end: buffered, a small request leaves in one or two writes, not eight.
    let (guard, end) = RecordGuard::new(BufWriter::with_capacity(WRITE_BUFFER, io));
    let request = Request::new_tokio(to_params(params), body.into_reader());
    let exchange = Client::new_tokio(guard).execute_once_stream(request);
    let stream = timeout(wait, exchange).await.map_err(|_| BackendError::Timeout)??;
    Ok((stream, end))
}

fn to_params(map: ParamMap) -> Params<'static> {
    let mut params = Params::default();
    params.clear();
    params.reserve(map.len());
    params.extend(map.into_iter().map(|(k, v)| (k, Cow::Owned(v))));
    params
}

type Item = Result<Content, ClientError>;

/// The next record, within the idle deadline; `None` only after a complete END_REQUEST.
async fn next<S>(
    stream: &mut S,
    wait: Duration,
    end: &EndSeen,
) -> Result<Option<Content>, BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    match timeout(wait, stream.next()).await {
        Err(_) => Err(BackendError::Timeout),
        Ok(Some(item)) => Ok(Some(item?)),
        Ok(None) if end.get() => Ok(None),
        Ok(None) => Err(BackendError::Truncated),
    }
}

async fn read_head<S>(
    stream: &mut S,
    wait: Duration,
    end: &EndSeen,
    stderr: &mut StderrLog<'_>,
) -> Result<(Head, Bytes), BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    let mut head = HeadBuffer::default();
    loop {
        match next(stream, wait, end).await? {
            None => return Err(BackendError::NoHead),
            Some(Content::Stderr(bytes)) => stderr.log(&bytes),
            Some(Content::Stdout(bytes)) => {
                if let Some(found) = head.push(&bytes)? {
                    return Ok(found);
                }
            }
        }
    }
}

async fn pump<S>(
    stream: &mut S,
    rest: Bytes,
    wait: Duration,
    end: &EndSeen,
    stderr: &mut StderrLog<'_>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    let mut data = Some(rest);
    loop {
        if let Some(bytes) = data.take().filter(|b| !b.is_empty())
            && tx.send(Chunk::Data(bytes)).await.is_err()
        {
            return Ok(()); // the client went away; dropping the stream cancels
        }
        let record = tokio::select! {
            () = tx.closed() => return Ok(()),
            record = next(stream, wait, end) => record?,
        };
        match record {
            None => return Ok(()),
            Some(Content::Stderr(bytes)) => stderr.log(&bytes),
            Some(Content::Stdout(bytes)) => data = Some(bytes),
        }
    }
}

/// Logs a request's stderr up to [`STDERR_LOG_BYTES`].
struct StderrLog<'a> {
    app: &'a str,
    left: usize,
}

impl<'a> StderrLog<'a> {
    fn new(app: &'a str) -> Self {
        Self { app, left: STDERR_LOG_BYTES }
    }

    fn log(&mut self, bytes: &[u8]) {
        if self.left == 0 || bytes.is_empty() {
            return;
        }
        let shown = &bytes[..bytes.len().min(self.left)];
        self.left -= shown.len();
        let text = String::from_utf8_lossy(shown);
        let truncated = shown.len() < bytes.len();
        warn!(app = %self.app, truncated, stderr = %text.trim_end(), "backend stderr");
    }
}
