//! Channels to workers: one HTTP/2 client connection per worker socket.
//!
//! The broker hands the gateway a connected Unix stream for each worker it
//! starts; this module runs an HTTP/2 client connection over it and keeps,
//! per app, the live senders with the config generation they belong to.
//! Requests are spread round-robin; a closed channel is dropped the next time
//! it is picked; retired channels are forgotten (requests already sent on
//! them finish). The gateway never opens a channel itself: it has no way to
//! reach a worker the broker did not give it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Every app's live channels.
#[derive(Debug, Default)]
pub struct Channels {
    apps: Mutex<HashMap<String, AppChannels>>,
    /// Woken whenever a channel is added (requests waiting for an on-demand app).
    added: Notify,
}

#[derive(Debug, Default)]
struct AppChannels {
    senders: Vec<(u64, SendRequest<Incoming>)>,
    next: usize,
}

impl Channels {
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
            .max_concurrent_reset_streams(1024)
            // The h2 default closes a connection after 1024 streams reset for a
            // local error over its whole life; on a long-lived channel, clients
            // that hang up early would add up to that. The peer is our own worker.
            .max_local_error_reset_streams(None)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let name = app.to_owned();
        tokio::spawn(async move {
            match conn.await {
                Ok(()) => debug!(app = %name, "worker channel closed"),
                Err(e) => warn!(app = %name, cause = %e, "worker channel failed"),
            }
        });
        self.lock().entry(app.to_owned()).or_default().senders.push((generation, sender));
        self.added.notify_waiters();
        Ok(())
    }

    /// Forgets `app`'s channels older than generation `below`.
    pub fn retire(&self, app: &str, below: u64) {
        if let Some(chans) = self.lock().get_mut(app) {
            chans.senders.retain(|(generation, _)| *generation >= below);
        }
    }

    /// Forgets every channel of `app`.
    pub fn remove_app(&self, app: &str) {
        self.lock().remove(app);
    }

    /// A live sender for `app`, round-robin; `None` if it has none.
    pub fn pick(&self, app: &str) -> Option<SendRequest<Incoming>> {
        let mut apps = self.lock();
        let chans = apps.get_mut(app)?;
        chans.senders.retain(|(_, s)| !s.is_closed());
        if chans.senders.is_empty() {
            return None;
        }
        chans.next = chans.next.wrapping_add(1);
        Some(chans.senders[chans.next % chans.senders.len()].1.clone())
    }

    /// Completes at the next [`Channels::add`]; create it *before* checking [`Channels::pick`].
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppChannels>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
