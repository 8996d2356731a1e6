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

/// The client address in all `X-Forwarded-For` headers, as nginx's realip module with
/// `real_ip_recursive on` finds it: hops are walked from the right, every trusted one
/// is skipped, and the first untrusted hop is the client. A hop that does not parse
/// (`unknown`, `_hidden`, garbage) ends the walk at the last address that did, so
/// garbage left of the client's own hop changes nothing and garbage right of it (which
/// only a trusted proxy could have written) never makes an address up. `None` when the
/// rightmost hop does not parse or there is no header.
fn forwarded_for(trusted: &[Cidr], headers: &HeaderMap) -> Option<IpAddr> {
    let values: Vec<&[u8]> =
        headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes()).collect();
    let mut found = None;
    for hop in values.iter().rev().flat_map(|value| value.rsplit(|&b| b == b',')) {
        let Some(addr) = parse_hop(hop) else { break };
        found = Some(addr);
        if !is_trusted(trusted, addr) {
            break;
        }
    }
    found
}

/// One `X-Forwarded-For` hop as proxies write it: `192.0.2.7`, `2001:db8::1`,
/// `[2001:db8::1]`, with a port (`192.0.2.7:4711`, `[2001:db8::1]:4711`), quoted, with
/// spaces or tabs around; an IPv4-mapped IPv6 address is its IPv4 address.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim_matches([' ', '\t']);
    let hop = hop.strip_prefix('"').and_then(|h| h.strip_suffix('"')).unwrap_or(hop);
    let addr = if let Some(bracketed) = hop.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(ip.parse().ok()?)
    } else if let Ok(ip) = hop.parse::<IpAddr>() {
        ip
    } else {
        let (ip, port) = hop.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(ip.parse().ok()?)
    };
    Some(addr.to_canonical())
}

fn is_port(port: &str) -> bool {
    port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
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

    fn client_of(xff: &[&[u8]]) -> IpAddr {
        let mut h = HeaderMap::new();
        for value in xff {
            h.append("x-forwarded-for", HeaderValue::from_bytes(value).expect("value"));
        }
        client(&trusted(), &meta("127.0.0.1:4000"), &h).addr
    }

    #[test]
    fn hops_as_load_balancers_write_them() {
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"unknown, 198.51.100.7"], "198.51.100.7"),
            (&[b"_hidden, 198.51.100.7"], "198.51.100.7"),
            (&[b"\xff\xfe, 198.51.100.7"], "198.51.100.7"),
            (&[b"198.51.100.7:4711"], "198.51.100.7"),
            (&[b"[2001:db8::7]:4711, 10.0.0.1"], "2001:db8::7"),
            (&[b"[2001:db8::7]"], "2001:db8::7"),
            (&[b"2001:db8::7"], "2001:db8::7"),
            (&[b"\"198.51.100.7\""], "198.51.100.7"),
            (&[b"\t198.51.100.7 ,\t10.0.0.2 "], "198.51.100.7"),
            (&[b"::ffff:198.51.100.7"], "198.51.100.7"),
            (&[b"6.6.6.6", b"198.51.100.7, 10.0.0.9"], "198.51.100.7"),
            (&[b"198.51.100.7,,10.0.0.9"], "10.0.0.9"),
            (&[b"1.2.3.4, garbage, 10.0.0.9"], "10.0.0.9"),
            (&[b"198.51.100.7, unknown"], "127.0.0.1"),
            (&[b"198.51.100.7:99999"], "127.0.0.1"),
            (&[b"[2001:db8::7]x"], "127.0.0.1"),
            (&[b"198.51.100"], "127.0.0.1"),
            (&[b""], "127.0.0.1"),
        ];
        for (xff, want) in cases {
            let got = client_of(xff);
            assert_eq!(got, want.parse::<IpAddr>().expect("ip"), "X-Forwarded-For {xff:?}");
        }
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
