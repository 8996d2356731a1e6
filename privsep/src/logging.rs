//! The one log setup every Bulkhead binary uses: structured lines on stderr.
//!
//! A child's stderr is a pipe the broker reads and logs line by line, marked
//! as that child's, so the broker's stderr carries every process's log. The
//! filter comes from `RUST_LOG` (default `info`); colours only when stderr is
//! a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}
