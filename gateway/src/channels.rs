//! Channels to workers: one HTTP/2 client connection per worker socket.
//!
//! The broker hands the gateway a connected Unix stream for each worker it
//! starts; this module runs an HTTP/2 client connection over it and keeps,
//! per app, the live senders. Requests are spread round-robin; a closed
//! channel is dropped the next time it is picked. The gateway never opens a
//! channel itself: it has no way to reach a worker the broker did not give it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::{info, warn};

/// Every app's live channels.
#[derive(Debug, Default)]
pub struct Channels {
    apps: Mutex<HashMap<String, AppChannels>>,
}

#[derive(Debug, Default)]
struct AppChannels {
    senders: Vec<SendRequest<Incoming>>,
    next: AtomicUsize,
}

impl Channels {
    /// Runs HTTP/2 over `fd` (a connected Unix stream to a worker of `app`) and adds it.
    pub async fn add(&self, app: &str, fd: OwnedFd) -> std::io::Result<()> {
        let std_stream = std::os::unix::net::UnixStream::from(fd);
        std_stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(std_stream)?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_concurrent_reset_streams(1024)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let name = app.to_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                warn!(app = %name, cause = %e, "worker channel failed");
            }
            info!(app = %name, "worker channel closed");
        });
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        apps.entry(app.to_owned()).or_default().senders.push(sender);
        Ok(())
    }

    /// Forgets every channel of `app`.
    pub fn remove_app(&self, app: &str) {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner).remove(app);
    }

    /// A live sender for `app`, round-robin; `None` if it has none.
    pub fn pick(&self, app: &str) -> Option<SendRequest<Incoming>> {
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        let chans = apps.get_mut(app)?;
        chans.senders.retain(|s| !s.is_closed());
        if chans.senders.is_empty() {
            return None;
        }
        let i = chans.next.fetch_add(1, Ordering::Relaxed) % chans.senders.len();
        Some(chans.senders[i].clone())
    }
}
