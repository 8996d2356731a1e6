//! Bulkhead's gateway: the only process that speaks to the internet.
//!
//! It holds inherited listening sockets, one channel per worker (handed over
//! by the broker), and the routing table. It must never open a file, read a
//! secret or open a connection of its own: everything it can reach arrives as
//! a descriptor on its control socket.
//!
//! # Layout
//! - [`control`]: the broker's messages (listeners, routes, channels), in order.
//! - [`routes`]: Host → app.
//! - [`channels`]: HTTP/2 client connections to workers, per app.
//! - [`server`]: accept loops and the HTTP/1.1 + HTTP/2 connection builder.
//! - [`proxy`]: one request: route, clean headers, forward, answer errors.

#![forbid(unsafe_code)]

pub mod channels;
pub mod control;
pub mod proxy;
pub mod routes;
pub mod server;

use std::sync::{PoisonError, RwLock};

pub use control::run;

/// What every connection shares.
#[derive(Debug, Default)]
pub struct State {
    pub routes: RwLock<routes::RouteTable>,
    pub channels: channels::Channels,
}

impl State {
    /// The app answering `host`, if any.
    pub fn app_for(&self, host: &str) -> Option<String> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes.lookup(host).map(str::to_owned)
    }
}
