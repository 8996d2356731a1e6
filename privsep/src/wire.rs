//! The request metadata the gateway adds when it forwards a request to a worker.
//!
//! The gateway strips every client header starting with [`PREFIX`] before it
//! adds these, so a worker can trust them: they come from the gateway alone.
//! The request travels as HTTP/2 over the app's channel with an absolute URI
//! `http://{host}{path?query}` whose authority is the client's Host (port
//! included, lower case) and whose path and query are the request-target as
//! the client sent it.

/// Prefix of every gateway-only header.
pub const PREFIX: &str = "x-bulkhead-";
/// The client's address, `ip:port`.
pub const PEER: &str = "x-bulkhead-peer";
/// The local address the client connected to, `ip:port`.
pub const LOCAL: &str = "x-bulkhead-local";
/// `http` or `https`.
pub const SCHEME: &str = "x-bulkhead-scheme";
/// The client's protocol: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
pub const PROTO: &str = "x-bulkhead-proto";
