//! The one log setup every Bulkhead binary uses: structured lines on stderr.
//!
//! A child's stderr is a pipe the broker reads and logs line by line, marked
//! as that child's, so the broker's stderr carries every process's log. The
//! filter comes from `RUST_LOG`, else from the config's `log_level` through
//! [`directives`], which applies the level to Bulkhead's own targets only:
//! libraries (h2's and hyper's frame dumps, rustls) stay at `info` at most.
//! The broker passes the filter it uses ([`filter`]) to every child as
//! `RUST_LOG`. `log_format = "json"` makes the broker's lines JSON objects (a
//! child's line is one field of one). Colours only when stderr is a terminal
//! and `NO_COLOR` is unset. Whatever `RUST_LOG` says, the targets in
//! [`HELD_AT_INFO`] never log below `info`: the FastCGI client logs every
//! param it sends at `debug`, and an app's secrets are params. This module
//! must never let a directive, a span filter or a more specific target
//! re-enable them.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Log targets (and every target below them) held at `info`, because their
/// `debug` and `trace` events carry request params, secrets included.
pub const HELD_AT_INFO: &[&str] = &["fastcgi_client"];

/// Bulkhead's own log targets (crate names; a directive matches every target it prefixes).
const OWN_TARGETS: &[&str] = &["bulkhead", "privsep"];

/// The filter in use, for children's `RUST_LOG`.
static FILTER: OnceLock<String> = OnceLock::new();

/// Installs the global subscriber from `RUST_LOG` (default `info`), as text; call once,
/// first thing in `main`.
pub fn init() {
    init_with("info", false);
}

/// Installs the global subscriber: `RUST_LOG` if set, else [`directives`]`(level)`; JSON
/// lines when `json`. Call once, first thing in `main`.
pub fn init_with(level: &str, json: bool) {
    let wanted = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let wanted = wanted.unwrap_or_else(|| directives(level));
    let env = EnvFilter::try_new(&wanted).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = FILTER.set(wanted);
    let held = filter_fn(|meta| allowed(meta.target(), LevelFilter::from_level(*meta.level())));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = fmt::layer().with_writer(std::io::stderr);
    let layer = if json {
        layer.json().flatten_event(true).with_filter(env.and(held)).boxed()
    } else {
        layer.with_ansi(ansi).with_filter(env.and(held)).boxed()
    };
    tracing_subscriber::registry().with(layer).init();
}

/// The filter installed by [`init_with`] (`info` before that).
pub fn filter() -> &'static str {
    FILTER.get().map_or("info", String::as_str)
}

/// `level` for Bulkhead's own targets; every other target at `level` or `info`, whichever
/// is quieter, so `debug` never turns on h2's and hyper's frame dumps.
pub fn directives(level: &str) -> String {
    let base = match level {
        "error" | "warn" => level,
        _ => "info",
    };
    let own = OWN_TARGETS.iter().map(|t| format!(",{t}={level}"));
    std::iter::once(base.to_owned()).chain(own).collect()
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
    fn log_level_applies_to_bulkhead_targets_only() {
        assert_eq!(directives("debug"), "info,bulkhead=debug,privsep=debug");
        assert_eq!(directives("warn"), "warn,bulkhead=warn,privsep=warn");
    }

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
