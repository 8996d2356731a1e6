//! Who the client is when the peer is a trusted proxy: `X-Forwarded-For` and
//! `X-Forwarded-Proto`, believed only from the configured `trusted_proxies`.
//!
//! Like nginx's realip module with `real_ip_recursive on`: the addresses in
//! `X-Forwarded-For` are walked from the right, skipping trusted ones, and the first
//! untrusted one is the client. From any other peer these headers are client data:
//! ignored here and not forwarded to the app at all, so an app that trusts them
//! blindly cannot be fooled. This module must never believe a header from a peer
//! outside the trusted list.

use std::net::IpAddr;

use http::HeaderMap;
use privsep::msg::Cidr;

use crate::params::{GatewayMeta, ParamMap};

/// `HTTP_*` params that describe the path to the client; dropped from untrusted peers.
const FORWARDING_PARAMS: &[&str] = &[
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
];

/// The client as the app should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    pub addr: IpAddr,
    /// `None` when the address came from a header (REMOTE_PORT is then empty, as in nginx).
    pub port: Option<u16>,
    pub https: bool,
}

/// The client behind `meta.peer`, following trusted proxies' headers.
pub fn client(trusted: &[Cidr], meta: &GatewayMeta, headers: &HeaderMap) -> ClientView {
    let direct =
        ClientView { addr: meta.peer.ip(), port: Some(meta.peer.port()), https: meta.https };
    if !is_trusted(trusted, meta.peer.ip()) {
        return direct;
    }
    let https = match last_value(headers, "x-forwarded-proto").as_deref() {
        Some("https") => true,
        Some("http") => false,
        _ => meta.https,
    };
    match forwarded_for(trusted, headers) {
        Some(addr) => ClientView { addr, port: None, https },
        None => ClientView { https, ..direct },
    }
}

/// Removes the forwarding params when the peer is not a trusted proxy.
pub fn drop_untrusted(trusted: &[Cidr], meta: &GatewayMeta, params: &mut ParamMap) {
    if !is_trusted(trusted, meta.peer.ip()) {
        for name in FORWARDING_PARAMS {
            params.remove(*name);
        }
    }
}

fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|cidr| cidr.contains(ip))
}

/// The rightmost untrusted address of all `X-Forwarded-For` headers; the leftmost if
/// every one is trusted; `None` if there is none or one does not parse.
fn forwarded_for(trusted: &[Cidr], headers: &HeaderMap) -> Option<IpAddr> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for hop in value.to_str().ok()?.split(',') {
            hops.push(hop.trim().parse::<IpAddr>().ok()?);
        }
    }
    let untrusted = hops.iter().rev().find(|ip| !is_trusted(trusted, **ip));
    untrusted.or(hops.first()).copied()
}

fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim().to_ascii_lowercase();
    Some(last)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn meta(peer: &str) -> GatewayMeta {
        GatewayMeta {
            peer: peer.parse().expect("addr"),
            local: "127.0.0.1:80".parse().expect("addr"),
            https: false,
            proto: "HTTP/1.1",
        }
    }

    fn headers(xff: &str, proto: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).expect("value"));
        h.insert("x-forwarded-proto", HeaderValue::from_str(proto).expect("value"));
        h
    }

    fn trusted() -> Vec<Cidr> {
        ["127.0.0.1/32", "10.0.0.0/8"].iter().map(|c| Cidr::parse(c).expect("valid")).collect()
    }

    #[test]
    fn ignores_headers_from_untrusted_peers() {
        let view = client(&trusted(), &meta("192.0.2.7:4000"), &headers("6.6.6.6", "https"));
        assert_eq!(
            view,
            ClientView { addr: "192.0.2.7".parse().expect("ip"), port: Some(4000), https: false }
        );
        let mut params = ParamMap::new();
        params.insert("HTTP_X_FORWARDED_FOR".into(), "6.6.6.6".into());
        params.insert("HTTP_ACCEPT".into(), "*/*".into());
        drop_untrusted(&trusted(), &meta("192.0.2.7:4000"), &mut params);
        assert_eq!(params.keys().collect::<Vec<_>>(), ["HTTP_ACCEPT"]);
    }

    #[test]
    fn takes_the_rightmost_untrusted_hop_from_a_trusted_peer() {
        let h = headers("6.6.6.6, 203.0.113.9, 10.1.1.1", "https");
        let view = client(&trusted(), &meta("127.0.0.1:4000"), &h);
        assert_eq!(
            view,
            ClientView { addr: "203.0.113.9".parse().expect("ip"), port: None, https: true }
        );
    }

    #[test]
    fn garbage_or_all_trusted_hops() {
        let view = client(&trusted(), &meta("127.0.0.1:4000"), &headers("not-an-ip", "gopher"));
        assert_eq!(view.addr, "127.0.0.1".parse::<IpAddr>().expect("ip"));
        assert!(!view.https);
        let view =
            client(&trusted(), &meta("127.0.0.1:4000"), &headers("10.0.0.1, 10.0.0.2", "http"));
        assert_eq!(view.addr, "10.0.0.1".parse::<IpAddr>().expect("ip"));
        let none = client(&[], &meta("127.0.0.1:4000"), &headers("1.2.3.4", "https"));
        assert_eq!(none.addr, "127.0.0.1".parse::<IpAddr>().expect("ip"));
    }
}
