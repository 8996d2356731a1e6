//! The one log setup every Bulkhead binary uses: structured lines on stderr.
//!
//! A child's stderr is a pipe the broker reads and logs line by line, marked
//! as that child's, so the broker's stderr carries every process's log. The
//! filter comes from `RUST_LOG` (default `info`); colours only when stderr is
//! a terminal and `NO_COLOR` is unset. Whatever `RUST_LOG` says, the targets in
//! [`HELD_AT_INFO`] never log below `info`: the FastCGI client logs every
//! param it sends at `debug`, and an app's secrets are params. This module
//! must never let a directive, a span filter or a more specific target
//! re-enable them.

use std::io::IsTerminal;

use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Log targets (and every target below them) held at `info`, because their
/// `debug` and `trace` events carry request params, secrets included.
pub const HELD_AT_INFO: &[&str] = &["fastcgi_client"];

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init() {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let held = filter_fn(|meta| allowed(meta.target(), LevelFilter::from_level(*meta.level())));
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_filter(env.and(held));
    tracing_subscriber::registry().with(layer).init();
}

/// Whether an event or span of `target` at `level` may be logged at all.
pub fn allowed(target: &str, level: LevelFilter) -> bool {
    level <= LevelFilter::INFO || !HELD_AT_INFO.iter().any(|held| under(target, held))
}

/// `target` is `held` itself or a module inside it.
fn under(target: &str, held: &str) -> bool {
    target.strip_prefix(held).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastcgi_client_is_held_at_info_and_nothing_else_is() {
        let debug = LevelFilter::DEBUG;
        assert!(!allowed("fastcgi_client", debug));
        assert!(!allowed("fastcgi_client::client", LevelFilter::TRACE));
        assert!(allowed("fastcgi_client::client", LevelFilter::INFO));
        assert!(allowed("fastcgi_client", LevelFilter::WARN));
        assert!(allowed("fastcgi_clientele", debug));
        assert!(allowed("bulkhead_worker::backend", LevelFilter::TRACE));
    }
}
