//! The client-connection keys of the top level: nginx's timeouts, the request-head size
//! and the connection limits, checked into the [`GatewayLimits`] the gateway receives.
//! A key left out takes nginx's default ([`GatewayLimits::default`]).

use privsep::msg::GatewayLimits;

use super::raw::RawTop;
use super::{MAX_CLIENT_HEADER_SIZE, MIN_CLIENT_HEADER_SIZE, Problems, values};

/// The most connections `max_connections` may allow (each costs a descriptor).
pub const MAX_MAX_CONNECTIONS: u32 = 1_000_000;

/// Every client key of `raw`, or `None` with the reasons in `p`.
pub(super) fn limits(raw: &RawTop, p: &mut Problems) -> Option<GatewayLimits> {
    let d = GatewayLimits::default();
    let mut timeout = |key: &str, text: &Option<String>, default: u64| match text {
        None => Some(default),
        Some(text) => p.take(key.to_owned(), positive_ms(text)),
    };
    let body = timeout("client_body_timeout", &raw.client_body_timeout, d.client_body_timeout_ms);
    let header =
        timeout("client_header_timeout", &raw.client_header_timeout, d.client_header_timeout_ms);
    let keepalive = timeout("keepalive_timeout", &raw.keepalive_timeout, d.keepalive_timeout_ms);
    let send = timeout("send_timeout", &raw.send_timeout, d.send_timeout_ms);
    let head = match &raw.client_max_header_size {
        None => Some(d.max_header_bytes),
        Some(text) => p.take("client_max_header_size", header_size(text)),
    };
    let max =
        count(p, "max_connections", raw.max_connections, d.max_connections, MAX_MAX_CONNECTIONS);
    let per_client = count(
        p,
        "max_connections_per_client",
        raw.max_connections_per_client,
        d.max_connections_per_client.min(max.unwrap_or(u32::MAX)),
        max.unwrap_or(MAX_MAX_CONNECTIONS),
    );
    Some(GatewayLimits {
        max_header_bytes: head?,
        client_body_timeout_ms: body?,
        client_header_timeout_ms: header?,
        keepalive_timeout_ms: keepalive?,
        send_timeout_ms: send?,
        max_connections: max?,
        max_connections_per_client: per_client?,
    })
}

/// A duration of at least 1 ms.
fn positive_ms(text: &str) -> Result<u64, String> {
    let ms = values::duration_ms(text)?;
    if ms == 0 {
        return Err(format!("{text:?}: must be at least 1ms"));
    }
    Ok(ms)
}

fn header_size(text: &str) -> Result<usize, String> {
    let bytes = values::size(text)?;
    if !(MIN_CLIENT_HEADER_SIZE..=MAX_CLIENT_HEADER_SIZE).contains(&bytes) {
        return Err(format!(
            "{text:?} is not from 1K to 60K (a request head must fit the worker's 64 KiB of FastCGI params)"
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("{text:?} is too large"))
}

fn count(p: &mut Problems, key: &str, value: Option<u32>, default: u32, most: u32) -> Option<u32> {
    match value {
        None => Some(default),
        Some(n) if (1..=most).contains(&n) => Some(n),
        Some(n) => {
            p.push(key, format!("{n} is not a count from 1 to {most}"));
            None
        }
    }
}
