//! The one log setup every Bulkhead binary uses: structured lines on stderr.
//!
//! Children inherit the broker's stderr, so one stream carries every
//! process's log. The filter comes from `RUST_LOG` (default `info`); colours
//! only when stderr is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
