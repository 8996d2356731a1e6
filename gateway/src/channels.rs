//! Channels to workers: one HTTP/2 client connection per worker socket.
//!
//! The broker hands the gateway a connected Unix stream for each worker it
//! starts; this module runs an HTTP/2 client connection over it and keeps,
//! per app, the live senders with the config generation they belong to.
//! Requests are spread round-robin; a channel that fails or that its worker
//! closes while still in use is dropped and reported to the broker
//! ([`ToBroker::ChannelLost`]), which hands out a replacement; retired channels
//! are forgotten (requests already sent on them finish) and never reported. The gateway never opens a channel itself: it has no way to
//! reach a worker the broker did not give it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::body::RequestBody;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use privsep::msg::ToBroker;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

/// The largest response head accepted from a worker, in HTTP/2's accounting (each field
/// counts its name, its value and 32 bytes): the worker passes on a CGI header block of
/// up to 64 KiB in at most 256 lines (64 KiB + 256 × 32 = 72 KiB) and adds a few fields
/// of its own. hyper's default, 16 KiB, refused a script's 12 cookies of 1.5 KB.
pub const WORKER_HEADER_LIST: u32 = 128 * 1024;

/// Which limit, if any, a failed worker request most likely ran into, for its log line.
/// h2 gives one reason for a response head over [`WORKER_HEADER_LIST`] and for other
/// breaches of HTTP/2 by the worker: a PROTOCOL_ERROR reset of its own.
pub fn limit_hint(e: &hyper::Error) -> &'static str {
    let h2 = std::error::Error::source(e).and_then(|s| s.downcast_ref::<h2::Error>());
    match h2 {
        Some(h2) if h2.is_library() && h2.reason() == Some(h2::Reason::PROTOCOL_ERROR) => {
            "the worker's response head passed the gateway's max_header_list_size \
             (WORKER_HEADER_LIST, 128 KiB) or broke HTTP/2"
        }
        Some(h2) if h2.is_remote() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) => {
            "the worker refused the stream (its max_concurrent_streams)"
        }
        Some(_) => "none known (an HTTP/2 error on the channel)",
        None => "none",
    }
}

/// Every app's live channels.
#[derive(Debug)]
pub struct Channels {
    apps: Arc<Mutex<HashMap<String, AppChannels>>>,
    /// Woken whenever a channel is added (requests waiting for an on-demand app).
    added: Notify,
    /// Where lost channels are reported (the control task forwards to the broker).
    lost: mpsc::UnboundedSender<ToBroker>,
    /// Names each channel, so its connection task can find (and drop) it when it ends.
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct AppChannels {
    senders: Vec<Channel>,
    next: usize,
    /// The newest generation a channel was given for (kept after its channels are gone).
    generation: u64,
}

#[derive(Debug)]
struct Channel {
    id: u64,
    generation: u64,
    sender: SendRequest<RequestBody>,
}

impl Channels {
    /// No channels yet; lost ones are reported on `lost`.
    pub fn new(lost: mpsc::UnboundedSender<ToBroker>) -> Self {
        Self { apps: Arc::default(), added: Notify::new(), lost, next_id: AtomicU64::new(0) }
    }

    /// Runs HTTP/2 over `fd` (a connected Unix stream to a worker of `app`) and adds it.
    pub async fn add(&self, app: &str, generation: u64, fd: OwnedFd) -> std::io::Result<()> {
        let std_stream = std::os::unix::net::UnixStream::from(fd);
        std_stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(std_stream)?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(2 << 20)
            .initial_connection_window_size(8 << 20)
            .max_frame_size(64 << 10)
            .max_header_list_size(WORKER_HEADER_LIST)
            .max_concurrent_reset_streams(1024)
            // The h2 default closes a connection after 1024 streams reset for a
            // local error over its whole life; on a long-lived channel, clients
            // that hang up early would add up to that. The peer is our own worker.
            .max_local_error_reset_streams(None)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (name, apps, lost) = (app.to_owned(), Arc::clone(&self.apps), self.lost.clone());
        tokio::spawn(async move {
            match conn.await {
                Ok(()) => debug!(app = %name, "worker channel closed"),
                Err(e) => warn!(app = %name, cause = %e, "worker channel failed"),
            }
            if let Some(generation) = forget(&apps, &name, id) {
                warn!(app = %name, generation, "lost a channel in use; asking for another");
                let _ = lost.send(ToBroker::ChannelLost { app: name, generation });
            }
        });
        let mut apps = self.lock();
        let chans = apps.entry(app.to_owned()).or_default();
        chans.generation = chans.generation.max(generation);
        chans.senders.push(Channel { id, generation, sender });
        drop(apps);
        self.added.notify_waiters();
        Ok(())
    }

    /// Forgets `app`'s channels older than generation `below`.
    pub fn retire(&self, app: &str, below: u64) {
        if let Some(chans) = self.lock().get_mut(app) {
            chans.senders.retain(|c| c.generation >= below);
        }
    }

    /// Forgets every channel of `app`.
    pub fn remove_app(&self, app: &str) {
        self.lock().remove(app);
    }

    /// A live sender for `app`, round-robin; `None` if it has none.
    pub fn pick(&self, app: &str) -> Option<SendRequest<RequestBody>> {
        let mut apps = self.lock();
        let chans = apps.get_mut(app)?;
        let live: Vec<&Channel> = chans.senders.iter().filter(|c| !c.sender.is_closed()).collect();
        if live.is_empty() {
            return None;
        }
        chans.next = chans.next.wrapping_add(1);
        Some(live[chans.next % live.len()].sender.clone())
    }

    /// The newest generation `app` was given a channel for, if any.
    pub fn generation(&self, app: &str) -> Option<u64> {
        self.lock().get(app).map(|chans| chans.generation)
    }

    /// Completes at the next [`Channels::add`]; create it *before* checking [`Channels::pick`].
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppChannels>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops channel `id` of `app` if it is still in use; its generation if it was.
fn forget(apps: &Mutex<HashMap<String, AppChannels>>, app: &str, id: u64) -> Option<u64> {
    let mut apps = apps.lock().unwrap_or_else(PoisonError::into_inner);
    let chans = apps.get_mut(app)?;
    let at = chans.senders.iter().position(|c| c.id == id)?;
    Some(chans.senders.remove(at).generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A worker end that serves HTTP/2 until `close` fires, then drops the connection.
    fn worker_end(close: tokio::sync::oneshot::Receiver<()>) -> OwnedFd {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("a socketpair");
        theirs.set_nonblocking(true).expect("non-blocking");
        tokio::spawn(async move {
            let io = tokio::net::UnixStream::from_std(theirs).expect("a tokio stream");
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service);
            tokio::select! {
                _ = conn => {}
                _ = close => {}
            }
        });
        ours.into()
    }

    #[tokio::test]
    async fn a_channel_closed_in_use_is_reported_and_a_retired_one_is_not() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let channels = Channels::new(tx);
        let (close_old, old) = tokio::sync::oneshot::channel();
        channels.add("a", 1, worker_end(old)).await.expect("handshake");
        let (close_new, new) = tokio::sync::oneshot::channel();
        channels.add("a", 2, worker_end(new)).await.expect("handshake");
        channels.retire("a", 2);
        let _ = close_old.send(());
        let _ = close_new.send(());
        let report = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        let lost = ToBroker::ChannelLost { app: "a".into(), generation: 2 };
        assert_eq!(report.expect("a report arrives"), Some(lost));
        let more = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        assert!(more.is_err(), "a retired channel was reported: {more:?}");
        assert!(channels.pick("a").is_none());
        assert_eq!(channels.generation("a"), Some(2));
    }
}
