//! Bulkhead's broker: configuration, secrets, listeners, children.
//!
//! The broker is the only process that reads the configuration and the
//! secrets and binds the listening sockets. It starts every other process by
//! fork+exec, hands each exactly what its role needs over a control socket,
//! and restarts them when they exit. It never parses a byte of client
//! traffic, and treats every message from a child as possibly hostile.
//!
//! # Layout
//! - [`access_log`]: the gateway's access-log pipe, written to a file (reopened on SIGUSR1).
//! - [`audit`]: `bulkhead audit`, the running instance checked against its profiles.
//! - [`commands`]: the `bulkhead` subcommands.
//! - [`config`]: the TOML file, validated in full with key paths.
//! - [`environ`]: `{ env = … }` secrets, kept and scrubbed from the environment.
//! - [`keyholder`]: the `bulkhead-keyholder` process, and the broker's reading of TLS files.
//! - [`supervise`]: starting, watching and restarting one child.
//! - [`child_log`]: each child's stdout and stderr, logged as the child's.
//! - [`profiles`]: each child's sandbox profile, from the config.
//! - [`listeners`]: the listening sockets, bound once or socket-activated.
//! - [`orchestrate`]: the event loop that starts, connects, restarts, reloads and stops children.
//! - [`admin`]: the admin socket behind `bulkhead reload` and `bulkhead status`.
//! - [`systemd`]: readiness notifications.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod child_log;
pub mod commands;
pub mod config;
pub mod environ;
pub mod keyholder;
pub mod listeners;
pub mod orchestrate;
pub mod profiles;
pub mod supervise;
pub mod systemd;
