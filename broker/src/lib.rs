//! Bulkhead's broker: configuration, secrets, listeners, children.
//!
//! The broker is the only process that reads the configuration and the
//! secrets and binds the listening sockets. It starts every other process by
//! fork+exec, hands each exactly what its role needs over a control socket,
//! and restarts them when they exit. It never parses a byte of client
//! traffic, and treats every message from a child as possibly hostile.
//!
//! # Layout
//! - [`config`]: the TOML file, validated in full with key paths.
//! - [`supervise`]: starting, watching and restarting one child.
//! - [`profiles`]: each child's sandbox profile, from the config.
//! - [`orchestrate`]: wiring listeners, workers, channels and the gateway.

#![forbid(unsafe_code)]

pub mod config;
pub mod orchestrate;
pub mod profiles;
pub mod supervise;
