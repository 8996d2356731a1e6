//! The checks a request head must pass before it is routed: how its body is framed and
//! which host it names.
//!
//! hyper parses the bytes; this module refuses what hyper accepts but RFC 9112 and nginx
//! do not, so that a request whose framing or target two parsers could read differently
//! never reaches an app. `Transfer-Encoding` must be exactly `chunked` (else 501, or 400
//! beside `Content-Length`, twice, or on HTTP/1.0); the host comes from the target when it
//! is in absolute form (RFC 9112 §3.2.2), else from exactly one valid `Host`; authority
//! form, asterisk form and `CONNECT` are refused (the gateway is not a proxy). It also
//! drops the trailer fields a sender may not put in trailers (RFC 9110 §6.5.1). It reads
//! no body and never allocates for a request it accepts.

use http::header::{self, HeaderMap, HeaderName};
use http::uri::Authority;
use http::{Method, Request, StatusCode, Version};

/// Why a request head is refused; every variant is the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Transfer-Encoding other than \"chunked\"")]
    UnknownCoding,
    #[error("Transfer-Encoding sent more than once")]
    RepeatedCoding,
    #[error("both Transfer-Encoding and Content-Length")]
    CodingAndLength,
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    CodingOnHttp10,
    #[error("an HTTP/1.1 request without Host")]
    NoHost,
    #[error("Host sent more than once")]
    RepeatedHost,
    #[error("Host is not one valid authority")]
    BadHost,
    #[error(":authority and Host name different hosts")]
    HostMismatch,
    #[error("a request target in authority form")]
    AuthorityForm,
    #[error("a request target in asterisk form")]
    AsteriskForm,
    #[error("CONNECT (this server is not a proxy)")]
    Connect,
    #[error("an absolute target whose scheme is not http or https")]
    BadScheme,
}

impl Refusal {
    /// nginx's answer: 501 for a coding it does not implement, 400 for the rest.
    pub fn status(self) -> StatusCode {
        match self {
            Self::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks `req`'s framing and target; the host to route by if they are acceptable.
pub fn check<B>(req: &Request<B>) -> Result<&str, Refusal> {
    if req.version() < Version::HTTP_2 {
        check_coding(req.version(), req.headers())?;
    }
    check_target(req)?;
    host(req)
}

fn check_coding(version: Version, h: &HeaderMap) -> Result<(), Refusal> {
    let mut codings = h.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else { return Ok(()) };
    if codings.next().is_some() {
        return Err(Refusal::RepeatedCoding);
    }
    if version == Version::HTTP_10 {
        return Err(Refusal::CodingOnHttp10);
    }
    if h.contains_key(header::CONTENT_LENGTH) {
        return Err(Refusal::CodingAndLength);
    }
    let chunked = coding.to_str().is_ok_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
    if chunked { Ok(()) } else { Err(Refusal::UnknownCoding) }
}

fn check_target<B>(req: &Request<B>) -> Result<(), Refusal> {
    if req.method() == Method::CONNECT {
        return Err(Refusal::Connect);
    }
    let uri = req.uri();
    if uri.path() == "*" {
        return Err(Refusal::AsteriskForm);
    }
    match (uri.scheme_str(), uri.authority()) {
        (None, Some(_)) => Err(Refusal::AuthorityForm),
        (Some("http" | "https"), Some(auth)) if valid_authority(auth) => Ok(()),
        (Some("http" | "https"), _) => Err(Refusal::BadHost),
        (Some(_), _) => Err(Refusal::BadScheme),
        (None, None) => Ok(()),
    }
}

/// The host a request is for: the target's authority when it has one (absolute form, or
/// HTTP/2's `:authority`), else its one `Host`. HTTP/1.1 requires `Host` either way.
fn host<B>(req: &Request<B>) -> Result<&str, Refusal> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, more) = (hosts.next(), hosts.next().is_some());
    if more {
        return Err(Refusal::RepeatedHost);
    }
    let field = match first {
        Some(value) => {
            Some(value.to_str().ok().filter(|v| is_authority(v)).ok_or(Refusal::BadHost)?)
        }
        None => None,
    };
    let h2 = req.version() == Version::HTTP_2;
    match (req.uri().authority(), field) {
        (Some(_), None) if req.version() == Version::HTTP_11 => Err(Refusal::NoHost),
        (Some(target), Some(field)) if h2 && !target.as_str().eq_ignore_ascii_case(field) => {
            Err(Refusal::HostMismatch)
        }
        (Some(target), _) => Ok(target.as_str()),
        (None, Some(field)) => Ok(field),
        (None, None) => Err(Refusal::NoHost),
    }
}

/// `host[:port]` with no user information: what a Host field or a target may name.
fn is_authority(text: &str) -> bool {
    text.parse::<Authority>().is_ok_and(|auth| valid_authority(&auth))
}

/// No user information, a host that is a name (letters, digits, `-`, `.`, `_`) or an
/// IP literal, and a decimal port if any: a comma (a list of hosts) or a percent sign is
/// no host.
fn valid_authority(auth: &Authority) -> bool {
    let (text, host) = (auth.as_str(), auth.host());
    let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    let port = match text.strip_prefix(host) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()),
        None => false,
    };
    port && !host.is_empty() && (host.starts_with('[') || host.bytes().all(name))
}

/// Fields a sender must not put in trailers (RFC 9110 §6.5.1: framing, routing,
/// request modifiers, authentication, content processing), plus hop-by-hop ones.
const NOT_IN_TRAILERS: &[&str] = &[
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "max-forwards",
    "pragma",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "www-authenticate",
];

/// Drops from client trailers every field [`NOT_IN_TRAILERS`] names and every
/// gateway-only field; how many were dropped.
pub fn clean_trailers(trailers: &mut HeaderMap) -> usize {
    let refused: Vec<HeaderName> = trailers
        .keys()
        .filter(|name| {
            NOT_IN_TRAILERS.contains(&name.as_str())
                || name.as_str().starts_with(privsep::wire::PREFIX)
        })
        .cloned()
        .collect();
    let mut dropped = 0;
    for name in refused {
        dropped += trailers.get_all(&name).iter().count();
        trailers.remove(name);
    }
    dropped
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
