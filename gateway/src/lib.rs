//! Bulkhead's gateway: the only process that speaks to the internet.
//!
//! It holds inherited listening sockets, one channel per worker (handed over
//! by the broker), and the routing table. It must never open a file, read a
//! secret or open a connection of its own: everything it can reach arrives as
//! a descriptor on its control socket.
//!
//! # Layout
//! - [`control`]: the broker's messages (listeners, routes, channels, shutdown).
//! - [`routes`]: Host → app.
//! - [`channels`]: HTTP/2 client connections to workers, per app.
//! - [`server`]: accept loops, the HTTP/1.1 + HTTP/2 connection builder, graceful stop.
//! - [`limits`]: connection limits and nginx's connection timeouts.
//! - [`linger`]: lingering close, so a client still sending reads the last answer.
//! - [`body`]: request bodies: small ones read whole first, others under `client_body_timeout`.
//! - [`framing`]: what a request head must be to be routed (Transfer-Encoding, Host, target form).
//! - [`access_log`]: one line per request, to the broker's pipe; dropped when it is full.
//! - [`proxy`]: one request: route, clean headers, forward, answer errors.
//! - [`tls`]: certificates by SNI, the rustls configuration, HTTPS redirects and HSTS.
//! - [`tls_keyholder`]: the signing key that asks the keyholder, with a deadline.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod body;
pub mod channels;
pub mod control;
pub mod framing;
pub mod limits;
pub mod linger;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod tls;
pub mod tls_keyholder;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use privsep::msg::ToBroker;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use control::run;

/// How long a request waits for an on-demand app's first worker.
const COLD_START_WAIT: Duration = Duration::from_secs(15);
/// How long a request waits for an app whose workers are all being restarted.
const RESTART_WAIT: Duration = Duration::from_secs(3);
/// How often the gateway repeats a channel request for one app.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// What every connection shares.
#[derive(Debug)]
pub struct State {
    pub routes: RwLock<routes::RouteTable>,
    pub channels: channels::Channels,
    /// Certificates, HTTPS options and the keyholder channel.
    pub tls: tls::TlsState,
    /// Requests for the broker (via the control task): `NeedChannel`, `ChannelLost`.
    to_broker: mpsc::UnboundedSender<ToBroker>,
    asked: Mutex<HashMap<String, Instant>>,
    /// The longest wait between two reads of a request body (`client_body_timeout`).
    pub client_body_timeout: Duration,
    /// The most bytes of a request head (`client_max_header_size`); more gets 431.
    pub max_header_bytes: usize,
    /// Bytes of request bodies read whole, across every request.
    pub body_budget: body::Budget,
    /// Where access-log lines go, if the access log is on.
    pub access_log: Option<std::sync::Arc<access_log::AccessLog>>,
}

impl State {
    /// State whose channel requests go to `to_broker`.
    pub fn new(
        to_broker: mpsc::UnboundedSender<ToBroker>,
        client_body_timeout: Duration,
        max_header_bytes: usize,
    ) -> Self {
        Self {
            routes: RwLock::default(),
            channels: channels::Channels::new(to_broker.clone()),
            tls: tls::TlsState::default(),
            to_broker,
            asked: Mutex::default(),
            client_body_timeout,
            max_header_bytes,
            body_budget: body::Budget::default(),
            access_log: None,
        }
    }

    /// The app answering `host`, if any (TLS: SNI has no path).
    pub fn app_for(&self, host: &str) -> Option<String> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes.lookup(host).map(str::to_owned)
    }

    /// The app mounted at `path` on `host` (longest prefix), if any.
    pub fn app_at(&self, host: &str, path: &str) -> Option<String> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes.route(host, path).map(str::to_owned)
    }

    /// The longest request body `app` accepts, if the gateway knows it.
    pub fn max_body(&self, app: &str) -> Option<u64> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).max_body(app)
    }

    /// A channel to `app`; without one, waits a bounded time for one (a restarting worker),
    /// and asks the broker: to start an on-demand app, or to replace a lost channel.
    pub async fn channel(&self, app: &str) -> Option<SendRequest<body::RequestBody>> {
        if let Some(sender) = self.channels.pick(app) {
            return Some(sender);
        }
        let on_demand =
            self.routes.read().unwrap_or_else(PoisonError::into_inner).is_on_demand(app);
        // A crashed worker is being restarted: hold the request rather than fail it.
        let wait = if on_demand { COLD_START_WAIT } else { RESTART_WAIT };
        let deadline = Instant::now() + wait;
        loop {
            let added = self.channels.added();
            if let Some(sender) = self.channels.pick(app) {
                return Some(sender);
            }
            self.ask(app, on_demand);
            let wake = deadline.min(Instant::now() + ASK_AGAIN_AFTER);
            if tokio::time::timeout_at(wake, added).await.is_err() && Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Tells the broker `app` needs a worker (on demand) or a channel to its workers, at
    /// most once per [`ASK_AGAIN_AFTER`].
    fn ask(&self, app: &str, on_demand: bool) {
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if asked.get(app).is_some_and(|at| now.duration_since(*at) < ASK_AGAIN_AFTER) {
            return;
        }
        asked.insert(app.to_owned(), now);
        let msg = match (on_demand, self.channels.generation(app)) {
            (true, _) => ToBroker::NeedChannel { app: app.to_owned() },
            (false, Some(generation)) => ToBroker::ChannelLost { app: app.to_owned(), generation },
            (false, None) => return,
        };
        let _ = self.to_broker.send(msg);
    }
}
