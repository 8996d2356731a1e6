//! The admin socket: how `bulkhead reload` and `bulkhead status` reach a running broker.
//!
//! A Unix stream socket at the configuration's `control_socket`, mode 0600
//! in a 0700 directory, so only root or the broker's own user can connect.
//! Each peer is then checked with `SO_PEERCRED` ([`admit`]): root is admitted
//! to a broker that is not root (it could do anything to it anyway); any other
//! peer must run as the broker's own uid *and* in every one of the broker's
//! namespaces, so a
//! child in its sandbox (or anything else in a user, mount, network, PID, IPC,
//! UTS or cgroup namespace of its own) is refused even with the broker's uid.
//! One JSON request line in, one JSON response line out. Requests are bounded
//! in size and time.

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
    /// The broker's own `PR_GET_DUMPABLE` (it makes itself non-dumpable at start).
    #[serde(default)]
    pub dumpable: Option<bool>,
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
    let cred = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => return warn!(cause = %e, "admin socket: refused a peer without credentials"),
    };
    let me = nix::unistd::geteuid().as_raw();
    let admitted = admit(cred.uid(), cred.pid(), me, &|pid, ns| namespace(pid, ns));
    // The request is read (bounded) even from a refused peer, so that it gets the
    // refusal as its answer rather than a broken pipe.
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await;
    if let Err(why) = admitted {
        warn!(peer_pid = ?cred.pid(), peer_uid = cred.uid(), %why, "admin socket: refused a peer");
        return reply(&mut stream, &Response::Error(format!("refused: {why}"))).await;
    }
    let request = match request {
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

/// The namespaces a peer must share with the broker.
const NAMESPACES: [&str; 7] = ["user", "mnt", "net", "pid", "ipc", "uts", "cgroup"];

/// Whether a peer of `uid` and `pid` may use the admin socket of a broker
/// running as `me`; `ns(pid, kind)` reads a namespace link (`"self"` for the
/// broker). A namespace that cannot be read counts as another one.
pub fn admit(
    uid: u32,
    pid: Option<i32>,
    me: u32,
    ns: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<(), String> {
    if uid == 0 && me != 0 {
        return Ok(());
    }
    if uid != me {
        return Err(format!("uid {uid} is neither the broker's ({me}) nor root"));
    }
    let pid = pid.filter(|&p| p > 0).ok_or("the peer's pid is not visible here")?;
    for kind in NAMESPACES {
        let ours = ns("self", kind);
        if ours.is_none() || ns(&pid.to_string(), kind) != ours {
            return Err(format!("pid {pid} is not in the broker's {kind} namespace"));
        }
    }
    Ok(())
}

fn namespace(pid: &str, kind: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    Some(link.to_string_lossy().into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(peer_net: &'static str) -> impl Fn(&str, &str) -> Option<String> {
        move |pid, kind| match (pid, kind) {
            ("self", _) => Some(format!("{kind}:[1]")),
            (_, "net") => (!peer_net.is_empty()).then(|| peer_net.to_owned()),
            (_, _) => Some(format!("{kind}:[1]")),
        }
    }

    #[test]
    fn a_peer_needs_the_brokers_uid_and_namespaces_or_root() {
        assert_eq!(admit(1000, Some(7), 1000, &ns("net:[1]")), Ok(()));
        assert_eq!(admit(0, Some(7), 1000, &ns("net:[2]")), Ok(()), "root, for a user's broker");
        assert!(admit(0, Some(7), 0, &ns("net:[2]")).is_err(), "a root broker checks root too");
        assert!(admit(1001, Some(7), 1000, &ns("net:[1]")).is_err());
        let other = admit(1000, Some(7), 1000, &ns("net:[2]"));
        assert_eq!(other, Err("pid 7 is not in the broker's net namespace".into()));
        assert!(admit(1000, Some(7), 1000, &ns("")).is_err(), "unreadable counts as other");
        assert!(admit(1000, None, 1000, &ns("net:[1]")).is_err());
    }
}
