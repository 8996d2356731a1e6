//! The admin socket: how `bulkhead reload` and `bulkhead status` reach a running broker.
//!
//! A Unix stream socket at the configuration's `control_socket`, mode 0600
//! in a 0700 directory, so only root or the broker's own user can connect;
//! the peer's uid is checked again with `SO_PEERCRED`. One JSON request line
//! in, one JSON response line out. Requests are bounded in size and time.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::orchestrate::Event;

/// The longest request line accepted.
const MAX_REQUEST: u64 = 4096;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What an operator can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Request {
    Reload,
    Status,
}

/// The broker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Reload(ReloadOutcome),
    Status(Status),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReloadOutcome {
    Reloaded { summary: String },
    Refused { problems: Vec<String> },
}

/// Every live component, for `bulkhead status` and `bulkhead audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub broker_pid: u32,
    pub gateway: Option<ChildStatus>,
    /// `None` when no app serves HTTPS (or between a keyholder's exit and its restart).
    #[serde(default)]
    pub keyholder: Option<ChildStatus>,
    pub apps: Vec<AppStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub pid: Option<u32>,
    pub ready: bool,
    pub restarts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub name: String,
    pub generation: u64,
    /// `running`, `idle` (on-demand, no worker) or `crash-loop`.
    pub state: String,
    pub restarts: u64,
    /// In a crash loop: milliseconds until the next worker is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    pub workers: Vec<WorkerStatus>,
    /// The launcher of the app's managed php-fpm pool (php-fpm is its only child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub pid: Option<u32>,
    pub generation: u64,
    pub ready: bool,
    pub draining: bool,
}

/// Binds the admin socket and answers requests by asking the broker's loop.
pub fn serve(path: &Path, events: mpsc::UnboundedSender<Event>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(answer(stream, events.clone()));
        }
    });
    Ok(())
}

async fn answer(mut stream: UnixStream, events: mpsc::UnboundedSender<Event>) {
    let me = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 || cred.uid() == me => {}
        _ => return warn!("admin socket: refused a peer of another user"),
    }
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return reply(&mut stream, &Response::Error(e)).await,
        Err(_) => return,
    };
    let response = match request {
        Request::Reload => ask(&events, |tx| Event::Reload(Some(tx))).await.map(Response::Reload),
        Request::Status => ask(&events, Event::Status).await.map(Response::Status),
    };
    reply(&mut stream, &response.unwrap_or_else(|| Response::Error("shutting down".into()))).await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stream.take(MAX_REQUEST));
    reader.read_line(&mut line).await.map_err(|e| e.to_string())?;
    serde_json::from_str(line.trim_end()).map_err(|e| format!("bad request: {e}"))
}

async fn ask<T>(
    events: &mpsc::UnboundedSender<Event>,
    make: impl FnOnce(oneshot::Sender<T>) -> Event,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    events.send(make(tx)).ok()?;
    rx.await.ok()
}

async fn reply(stream: &mut UnixStream, response: &Response) {
    let Ok(mut line) = serde_json::to_vec(response) else { return };
    line.push(b'\n');
    let _ = stream.write_all(&line).await;
}

/// Sends one request to the broker listening at `path` (blocking; for the CLI).
pub fn request(path: &Path, request: &Request) -> std::io::Result<Response> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
