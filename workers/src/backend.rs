//! Runs one FastCGI exchange with the app's backend and turns it into an HTTP response.
//!
//! Each exchange runs in its own tokio task, so a panic inside the `fastcgi-client`
//! crate becomes a `JoinError` and a 502 instead of a dead worker. By default each
//! exchange gets a fresh connection (short-connection mode); with `fastcgi_keepalive`
//! the connection is asked to stay open and, if the exchange ended cleanly, goes back
//! to the app's [`Pool`] for the next request. A kept connection that the backend
//! closed meanwhile (a php-fpm child that reached `pm.max_requests`, or was restarted)
//! is noticed before use; if it closes while the request is sent, the request goes
//! once more on a new connection when php-fpm cannot have run it (see
//! `BackendError::may_resend`). The socket is
//! wrapped in a [`RecordGuard`], every wait on the backend (connect, send, first byte,
//! each later record) is bounded by the app's timeout, and the body is streamed
//! through a bounded channel. stderr is logged (capped), never sent to the client.
//! This module must never report a truncated, malformed or timed-out exchange as a
//! complete response, and never reuse a connection whose exchange was not complete.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::response::Content;
use fastcgi_client::{Client, ClientError, Params, Request, StreamExt};
use futures_util::Stream;
use http::Response;
use privsep::msg::Backend;
use socket2::{SockRef, Socket};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::timeout;
use tracing::{Instrument, debug, warn};

use crate::app::App;
use crate::body::{self, Body, Chunk};
use crate::cgi::{CgiError, Head, HeadBuffer};
use crate::keepalive::{Acquire, Grant, Pool, Slot};
use crate::params::ParamMap;
use crate::record::{Progress, RecordGuard};
use crate::request_body::Buffered;

/// The most stderr bytes logged per request.
const STDERR_LOG_BYTES: usize = 4096;
/// The first pause before a connect that reached nothing is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(20);
/// The longest pause between two connect attempts.
const RETRY_MAX: Duration = Duration::from_millis(500);
/// How long a connect that reached nothing is tried again.
const RETRY_FOR: Duration = Duration::from_secs(3);

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
    #[error("the request body could not be read back: {0}")]
    Body(std::io::Error),
    #[error("the FastCGI exchange task failed: {0}")]
    Task(String),
}

trait Io: AsyncRead + AsyncWrite + AsFd + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + AsFd + Unpin + Send> Io for T {}

/// The app's FastCGI backend: where it is, how long to wait for it, and the
/// keep-alive connections to it.
#[derive(Debug)]
pub struct Upstream {
    backend: Backend,
    wait: Duration,
    pool: Pool<Kept>,
    /// Signalled when the Unix backend socket refuses or is gone (see `process`).
    stale: Notify,
}

impl Upstream {
    /// Up to `keepalive` connections are kept open for reuse; 0 opens one per request.
    pub fn new(backend: Backend, wait: Duration, keepalive: usize) -> Self {
        Self { backend, wait, pool: Pool::new(keepalive), stale: Notify::new() }
    }

    /// Notified when the backend's Unix socket looks stale.
    pub fn stale(&self) -> &Notify {
        &self.stale
    }

    /// The keep-alive connections to the backend.
    pub fn pool(&self) -> &Pool<Kept> {
        &self.pool
    }

    /// With keep-alive off, a connection for this request only. Else an idle kept
    /// connection that is still open and quiet, or a new one in a free slot, waiting
    /// (within the app's timeout) for either when all are busy.
    async fn connection(&self) -> Result<Conn, BackendError> {
        if !self.pool.enabled() {
            return Ok(Conn::Once(self.connect().await?));
        }
        let grant = match self.pool.acquire() {
            Acquire::Now(grant) => grant,
            Acquire::Wait(turn) => match timeout(self.wait, turn).await {
                Err(_) => return Err(BackendError::Timeout),
                Ok(grant) => grant.map_err(|_| BackendError::Task("the pool went away".into()))?,
            },
        };
        match grant {
            Grant::Conn(kept) if kept.open_and_quiet() => Ok(Conn::Reused(kept)),
            Grant::Conn(kept) => {
                debug!(backend = %self.backend, "a kept connection was closed by the backend");
                Ok(Conn::Kept(self.connect_kept(kept.retire()).await?))
            }
            Grant::Slot(slot) => Ok(Conn::Kept(self.connect_kept(slot).await?)),
        }
    }

    /// A new keep-alive connection in `slot`, with a second descriptor of its socket to
    /// look at it while it is idle (the client crate keeps the stream to itself).
    async fn connect_kept(&self, slot: Slot<Kept>) -> Result<Kept, BackendError> {
        let io = self.connect().await?;
        let probe = SockRef::from(&io.as_fd()).try_clone().map_err(|source| {
            BackendError::Unavailable { backend: self.backend.to_string(), source }
        })?;
        Ok(Kept::new(io, probe, slot))
    }

    /// A new connection to the backend. A connect that failed without reaching php-fpm
    /// (a TCP port refused while php-fpm restarts, a Unix listen backlog full) sent
    /// nothing, so it is tried again, [`RETRY_FIRST`] doubling to [`RETRY_MAX`] apart,
    /// for up to [`RETRY_FOR`] (within the app's timeout): a restart is over by then,
    /// and a backend that is down gets its 502 without holding the client long. A Unix socket that refuses or is missing is this
    /// worker's stale view (see `is_stale_unix_socket`): it fails at once, and the broker
    /// replaces the worker.
    async fn connect(&self) -> Result<Box<dyn Io>, BackendError> {
        let attempt = async {
            let mut pause = RETRY_FIRST;
            let started = tokio::time::Instant::now();
            loop {
                let connected: std::io::Result<Box<dyn Io>> = match &self.backend {
                    Backend::Unix(path) => connect_unix(path).map(|s| Box::new(s) as Box<dyn Io>),
                    Backend::Tcp(addr) => match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            stream.set_nodelay(true).map(|()| Box::new(stream) as Box<dyn Io>)
                        }
                        Err(e) => Err(e),
                    },
                };
                match connected {
                    Err(e) if self.may_retry_connect(&e) && started.elapsed() < RETRY_FOR => {
                        debug!(backend = %self.backend, cause = %e, "connect failed before reaching the backend; trying again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                    other => break other,
                }
            }
        };
        match timeout(self.wait, attempt).await {
            Err(_) => Err(BackendError::Timeout),
            Ok(Err(source)) => {
                let err = BackendError::Unavailable { backend: self.backend.to_string(), source };
                if err.is_stale_unix_socket() {
                    self.stale.notify_one();
                }
                Err(err)
            }
            Ok(Ok(connected)) => Ok(connected),
        }
    }
}

/// Sends one request to the backend; returns once the response head has arrived.
pub async fn forward(
    app: &App,
    params: ParamMap,
    body: Buffered,
) -> Result<Response<Body>, BackendError> {
    let upstream = Arc::clone(app.upstream());
    let conn = upstream.connection().await?;
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, response_body) = body::channel();
    let reply = Reply { head: Some(head_tx), body: body_tx };
    let job = Exchange { app: app.name().to_owned(), reply, upstream };
    let task = tokio::spawn(job.run(conn, params, body).in_current_span());
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

impl Upstream {
    /// Whether a failed connect reached nothing and another attempt may succeed: a TCP
    /// backend that refused (restarting), or a Unix backlog that is full (`EAGAIN`).
    fn may_retry_connect(&self, e: &std::io::Error) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, WouldBlock};
        match self.backend {
            Backend::Tcp(_) => e.kind() == ConnectionRefused,
            Backend::Unix(_) => e.kind() == WouldBlock,
        }
    }
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

    /// Whether a request that failed like this on a reused connection, before any byte
    /// of the response came, may be sent again on a new one. EPIPE (the write found no
    /// reader) and ECONNRESET (the close discarded what was sent) mean php-fpm never saw
    /// the request. A plain end of stream also comes from a child that closes after its
    /// last request (`pm.max_requests`), having read the request without running it,
    /// but it could be a crash mid-script: only a safe method (GET, HEAD, OPTIONS) is
    /// sent again then, as nginx does.
    fn may_resend(&self, safe_method: bool) -> bool {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
        match self {
            Self::Protocol(ClientError::Io(e)) => match e.kind() {
                BrokenPipe | ConnectionReset => true,
                UnexpectedEof => safe_method,
                _ => false,
            },
            Self::Truncated | Self::NoHead => safe_method,
            _ => false,
        }
    }
}

/// A Unix-socket connect completes or fails at once (a full listen backlog is
/// `EAGAIN`, as with tokio's own connect), so it is done in place: no wait for
/// writability and no `SO_ERROR` read, one reactor turn and one syscall less per
/// request than `UnixStream::connect`.
fn connect_unix(path: &Path) -> std::io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    socket.connect(&SockAddr::unix(path)?)?;
    UnixStream::from_std(std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

/// Bytes of FastCGI request records gathered before a write to the backend.
const WRITE_BUFFER: usize = 16 * 1024;

/// The backend socket as the client crate sees it: buffered writes (the crate writes
/// each record piece on its own and flushes once at the end, so a small request
/// leaves in one or two writes, not eight) and validated reads.
type Guarded = RecordGuard<BufWriter<Box<dyn Io>>>;

fn guarded(io: Box<dyn Io>) -> (Guarded, Progress) {
    RecordGuard::new(BufWriter::with_capacity(WRITE_BUFFER, io))
}

/// A keep-alive connection: the client, how far its current exchange got, a second
/// descriptor of the same socket to look at it while it is idle, and its slot.
pub struct Kept {
    client: Client<TokioCompat<Guarded>, KeepAlive>,
    progress: Progress,
    probe: Socket,
    _slot: Slot<Kept>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("probe", &self.probe).finish_non_exhaustive()
    }
}

impl Kept {
    fn new(io: Box<dyn Io>, probe: Socket, slot: Slot<Kept>) -> Self {
        let (guard, progress) = guarded(io);
        Self { client: Client::new_keep_alive_tokio(guard), progress, probe, _slot: slot }
    }

    /// Closes the connection, keeping its slot for a new one.
    fn retire(self) -> Slot<Kept> {
        let Self { client, probe, _slot: slot, .. } = self;
        drop((client, probe));
        slot
    }

    /// Open, with nothing to read: the backend has not closed it and sent nothing
    /// unasked. One `recv(MSG_PEEK)` on the non-blocking socket.
    fn open_and_quiet(&self) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        matches!(self.probe.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// The connection an exchange runs on.
enum Conn {
    /// Short-connection mode: the backend closes it after the response.
    Once(Box<dyn Io>),
    /// A new keep-alive connection.
    Kept(Kept),
    /// A keep-alive connection from the pool.
    Reused(Kept),
}

/// Where an exchange's results go: the head (once), then the body.
struct Reply {
    head: Option<oneshot::Sender<Result<Head, BackendError>>>,
    body: mpsc::Sender<Chunk>,
}

/// How an exchange that delivered its head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// The whole response was read, up to END_REQUEST.
    Complete,
    /// The client went away, or the body failed: the connection's state is unknown.
    Abandoned,
}

/// One exchange's task.
struct Exchange {
    app: String,
    reply: Reply,
    upstream: Arc<Upstream>,
}

impl Exchange {
    async fn run(self, conn: Conn, params: ParamMap, body: Buffered) {
        let Self { app, mut reply, upstream } = self;
        let mut stderr = StderrLog::new(&app);
        let round = Round { params: &params, body: &body, wait: upstream.wait };
        let outcome = match conn {
            Conn::Once(io) => round.once(io, &mut reply, &mut stderr).await.map(drop),
            Conn::Kept(kept) => round.kept(kept, false, &upstream, &mut reply, &mut stderr).await,
            Conn::Reused(kept) => round.kept(kept, true, &upstream, &mut reply, &mut stderr).await,
        };
        if let (Err(err), Some(head)) = (outcome, reply.head.take()) {
            let _ = head.send(Err(err));
        }
    }
}

type BodyReader = Box<dyn AsyncRead + Unpin + Send>;

/// What every attempt of one exchange sends.
struct Round<'a> {
    params: &'a ParamMap,
    body: &'a Buffered,
    wait: Duration,
}

impl Round<'_> {
    /// Whether the request's method is safe to run twice.
    fn safe(&self) -> bool {
        matches!(
            self.params.get("REQUEST_METHOD").map(String::as_str),
            Some("GET" | "HEAD" | "OPTIONS")
        )
    }

    /// Whether the response to this request never has a body (HEAD).
    fn bodyless(&self) -> bool {
        self.params.get("REQUEST_METHOD").is_some_and(|m| m == "HEAD")
    }

    fn request(&self) -> Result<Request<'_, TokioCompat<BodyReader>>, BackendError> {
        let body = self.body.reader().map_err(BackendError::Body)?;
        Ok(Request::new_tokio(params(self.params), body))
    }

    /// Short-connection mode.
    async fn once(
        &self,
        io: Box<dyn Io>,
        reply: &mut Reply,
        stderr: &mut StderrLog<'_>,
    ) -> Result<Finish, BackendError> {
        let (guard, progress) = guarded(io);
        let exchange = Client::new_tokio(guard).execute_once_stream(self.request()?);
        let mut stream =
            timeout(self.wait, exchange).await.map_err(|_| BackendError::Timeout)??;
        respond(&mut stream, &progress, self.wait, self.bodyless(), reply, stderr).await
    }

    /// Keep-alive mode: a complete exchange puts the connection back in the pool; a
    /// reused one that the backend had closed unread is replaced once.
    async fn kept(
        &self,
        mut kept: Kept,
        mut reused: bool,
        upstream: &Upstream,
        reply: &mut Reply,
        stderr: &mut StderrLog<'_>,
    ) -> Result<(), BackendError> {
        loop {
            let result = async {
                let exchange = kept.client.execute_stream(self.request()?);
                let mut stream =
                    timeout(self.wait, exchange).await.map_err(|_| BackendError::Timeout)??;
                respond(&mut stream, &kept.progress, self.wait, self.bodyless(), reply, stderr)
                    .await
            }
            .await;
            match result {
                Ok(Finish::Complete) => {
                    upstream.pool().put(kept);
                    break Ok(());
                }
                Ok(Finish::Abandoned) => break Ok(()),
                Err(err) if reused && !kept.progress.received() && err.may_resend(self.safe()) => {
                    debug!(cause = %err, "a kept connection was closed unread; sending again");
                    (kept, reused) = (upstream.connect_kept(kept.retire()).await?, false);
                }
                Err(err) => break Err(err),
            }
        }
    }
}

/// The params as the client crate wants them, borrowed: a second attempt sends them again.
fn params(map: &ParamMap) -> Params<'_> {
    let mut params = Params::default();
    params.clear();
    params.reserve(map.len());
    params.extend(map.iter().map(|(k, v)| (Cow::Borrowed(k.as_ref()), Cow::Borrowed(v.as_str()))));
    params
}

/// Reads the head and hands it over, then streams the body. An error is returned
/// only while the head has not been handed over; later ones end the body.
///
/// A body is held to the script's `Content-Length`, as nginx does: bytes past it are
/// read and dropped (the response the client gets is the declared one), and a body
/// that ends short ends the response with an error, so the client sees it cut (the
/// connection closed, or the stream reset), never a shorter body passed off as whole.
/// Both are logged with the app's name. `bodyless` (HEAD) responses have no body to
/// hold.
async fn respond<S>(
    stream: &mut S,
    progress: &Progress,
    wait: Duration,
    bodyless: bool,
    reply: &mut Reply,
    stderr: &mut StderrLog<'_>,
) -> Result<Finish, BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    let (head, rest) = read_head(stream, wait, progress, stderr).await?;
    let mut length = match bodyless || !may_have_body(head.status) {
        true => Length::default(),
        false => Length::declared(&head.headers),
    };
    let Some(head_tx) = reply.head.take() else {
        return Ok(Finish::Abandoned);
    };
    if head_tx.send(Ok(head)).is_err() {
        return Ok(Finish::Abandoned);
    }
    let outcome = pump(stream, rest, wait, progress, stderr, &mut length, &reply.body).await;
    if let Some(declared) = length.declared
        && length.dropped > 0
    {
        warn!(app = %stderr.app, declared, dropped = length.dropped, "the script sent more than its Content-Length; the rest was dropped");
    }
    match outcome {
        Ok(Finish::Complete) if length.short() => {
            let (sent, declared) = (length.sent, length.declared.unwrap_or_default());
            warn!(app = %stderr.app, declared, sent, "the script sent less than its Content-Length; the response is cut");
            let why = format!("the script sent {sent} of its Content-Length {declared} bytes");
            let _ = reply.body.send(Chunk::Fail(why)).await;
            Ok(Finish::Complete)
        }
        Ok(Finish::Complete) => {
            let _ = reply.body.send(Chunk::End).await;
            Ok(Finish::Complete)
        }
        Ok(Finish::Abandoned) => Ok(Finish::Abandoned),
        Err(err) => {
            warn!(app = %stderr.app, cause = %err, "response body aborted");
            let _ = reply.body.send(Chunk::Fail(err.to_string())).await;
            Ok(Finish::Abandoned)
        }
    }
}

type Item = Result<Content, ClientError>;

/// The next record, within the idle deadline; `None` only after a complete END_REQUEST.
async fn next<S>(
    stream: &mut S,
    wait: Duration,
    progress: &Progress,
) -> Result<Option<Content>, BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    match timeout(wait, stream.next()).await {
        Err(_) => Err(BackendError::Timeout),
        Ok(Some(item)) => Ok(Some(item?)),
        Ok(None) if progress.ended() => Ok(None),
        Ok(None) => Err(BackendError::Truncated),
    }
}

async fn read_head<S>(
    stream: &mut S,
    wait: Duration,
    progress: &Progress,
    stderr: &mut StderrLog<'_>,
) -> Result<(Head, Bytes), BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    let mut head = HeadBuffer::default();
    loop {
        match next(stream, wait, progress).await? {
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

/// Whether a response with `status` can carry a body at all (RFC 9110 §6.4.1).
fn may_have_body(status: http::StatusCode) -> bool {
    !(status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED)
}

/// A response body held to the script's `Content-Length`.
#[derive(Debug, Default)]
struct Length {
    /// The declared length, if any (an unparsable one was refused with the head).
    declared: Option<u64>,
    /// Body bytes passed on.
    sent: u64,
    /// Body bytes past the declared length, read and dropped.
    dropped: u64,
}

impl Length {
    fn declared(headers: &http::HeaderMap) -> Self {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Self { declared, ..Self::default() }
    }

    /// The part of `bytes` within the declared length.
    fn admit(&mut self, mut bytes: Bytes) -> Bytes {
        if let Some(declared) = self.declared {
            let room = declared.saturating_sub(self.sent);
            let len = bytes.len() as u64;
            if len > room {
                self.dropped += len - room;
                bytes.truncate(usize::try_from(room).unwrap_or(usize::MAX));
            }
        }
        self.sent += bytes.len() as u64;
        bytes
    }

    /// Whether the body ended before its declared length.
    fn short(&self) -> bool {
        self.declared.is_some_and(|declared| self.sent < declared)
    }
}

async fn pump<S>(
    stream: &mut S,
    rest: Bytes,
    wait: Duration,
    progress: &Progress,
    stderr: &mut StderrLog<'_>,
    length: &mut Length,
    tx: &mpsc::Sender<Chunk>,
) -> Result<Finish, BackendError>
where
    S: Stream<Item = Item> + Unpin,
{
    let mut data = Some(rest);
    loop {
        if let Some(bytes) = data.take().map(|b| length.admit(b)).filter(|b| !b.is_empty())
            && tx.send(Chunk::Data(bytes)).await.is_err()
        {
            return Ok(Finish::Abandoned); // the client went away; dropping the stream cancels
        }
        let record = tokio::select! {
            () = tx.closed() => return Ok(Finish::Abandoned),
            record = next(stream, wait, progress) => record?,
        };
        match record {
            None => return Ok(Finish::Complete),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn length(declared: Option<&str>) -> Length {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = declared {
            headers.insert(http::header::CONTENT_LENGTH, value.parse().expect("a value"));
        }
        Length::declared(&headers)
    }

    #[test]
    fn a_body_is_held_to_its_declared_length() {
        let mut long = length(Some("10"));
        assert_eq!(long.admit(Bytes::from_static(b"0123456")), "0123456");
        assert_eq!(long.admit(Bytes::from_static(b"789abc")), "789");
        assert_eq!(long.admit(Bytes::from_static(b"def")), "");
        assert_eq!((long.sent, long.dropped, long.short()), (10, 6, false));
        let mut short = length(Some("30"));
        assert_eq!(short.admit(Bytes::from_static(b"0123456789")), "0123456789");
        assert!(short.short());
        let mut zero = length(Some("0"));
        assert_eq!(zero.admit(Bytes::from_static(b"x")), "");
        assert_eq!((zero.dropped, zero.short()), (1, false));
        let mut none = length(None);
        assert_eq!(none.admit(Bytes::from_static(b"anything")), "anything");
        assert!(!none.short());
    }

    #[test]
    fn only_some_statuses_have_a_body() {
        for code in [100u16, 204, 304] {
            assert!(!may_have_body(http::StatusCode::from_u16(code).expect("a status")), "{code}");
        }
        for code in [200u16, 206, 404, 500] {
            assert!(may_have_body(http::StatusCode::from_u16(code).expect("a status")), "{code}");
        }
    }
}
