//! One request's trip through the gateway: route by Host and path prefix, clean, forward.
//!
//! The gateway decides only *which app* gets a request. It strips hop-by-hop
//! headers and every client header that only the gateway may set
//! ([`privsep::wire::PREFIX`]), adds the connection facts, and forwards the
//! request over one of the app's channels. It reads a small body whole before
//! that (see [`crate::body`]) but never looks inside it, and never opens anything: errors are answered here with a status and a reason.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use privsep::wire;
use tracing::{debug, warn};

use crate::State;
use crate::body::{self, BodyError, RequestBody};

/// What the gateway sends back: a worker's streamed body, or its own short answer.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'static str,
}

/// Why the gateway answers a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request has no Host")]
    NoHost,
    #[error("the Host is not a valid authority")]
    BadHost,
    #[error("no application is configured for this host")]
    UnknownHost,
    #[error("no worker is available for this application")]
    NoWorker,
    #[error("the application's worker failed to answer")]
    Worker(#[source] hyper::Error),
    #[error("the request body did not arrive")]
    Body(#[source] BodyError),
    #[error("the request head has {len} bytes, more than client_max_header_size ({limit})")]
    HeadTooLarge { len: usize, limit: usize },
}

impl ProxyError {
    /// The one place where gateway errors become HTTP statuses.
    fn status(&self) -> StatusCode {
        match self {
            Self::NoHost | Self::BadHost => StatusCode::BAD_REQUEST,
            Self::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Self::NoWorker | Self::Worker(_) => StatusCode::BAD_GATEWAY,
            Self::Body(BodyError::Timeout(_)) => StatusCode::REQUEST_TIMEOUT,
            Self::Body(BodyError::Client(_)) => StatusCode::BAD_REQUEST,
            Self::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn into_response(self) -> Response<Body> {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("");
        let body = format!("{} {reason}: {self}\n", status.as_u16());
        let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        resp
    }
}

/// Serves one request; never fails at the HTTP level. An HTTP/1.x request whose head is
/// too large is answered and its connection closed, as hyper does for larger ones; an
/// HTTP/2 stream is answered alone.
pub async fn handle(
    state: Arc<State>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let version = req.version();
    Ok(forward(&state, conn, req).await.unwrap_or_else(|e| {
        let close = matches!(e, ProxyError::HeadTooLarge { .. }) && version < Version::HTTP_2;
        let mut resp = e.into_response();
        if close {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }))
}

/// The size of a request head as HTTP/1.1 writes it: request line, then `name: value`
/// lines (HTTP/2 pseudo-headers count as the request line).
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let fields: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    line + fields
}

async fn forward(
    state: &State,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (len, limit) = (head_size(&req), state.max_header_bytes);
    if len > limit {
        return Err(ProxyError::HeadTooLarge { len, limit });
    }
    let host = request_host(&req).ok_or(ProxyError::NoHost)?.to_ascii_lowercase();
    let app = state.app_at(&host, req.uri().path()).ok_or(ProxyError::UnknownHost)?;
    if let Some(resp) = redirect_https(state, conn, &app, &host, req.uri()) {
        return Ok(resp);
    }
    let (parts, incoming) = rewrite(req, &host, conn)?.into_parts();
    let stalled = body::Stalled::default();
    let body = body::prepare(incoming, state.client_body_timeout, &state.body_budget, &stalled)
        .await
        .map_err(ProxyError::Body)?;
    let req = Request::from_parts(parts, body);
    let mut resp = match send(state, &app, req).await {
        // The client stalled its streamed body: its fault, not the worker's.
        Err(ProxyError::Worker(_)) if stalled.happened() => {
            return Err(ProxyError::Body(BodyError::Timeout(state.client_body_timeout)));
        }
        resp => resp?,
    };
    if let Some(hsts) = state.tls.hsts(&app).filter(|_| conn.scheme == "https") {
        resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    Ok(resp.map(Either::Left))
}

/// Sends `req` on one of `app`'s channels. A request that a dying channel never
/// took (its worker just crashed or drained) goes once more to another channel,
/// so only requests a worker actually had in hand can fail with it.
async fn send(
    state: &State,
    app: &str,
    mut req: Request<RequestBody>,
) -> Result<Response<Incoming>, ProxyError> {
    for attempt in 1..=SEND_ATTEMPTS {
        let mut sender = state.channel(app).await.ok_or(ProxyError::NoWorker)?;
        let mut failed = match sender.try_send_request(req).await {
            Ok(resp) => return Ok(resp),
            Err(failed) => failed,
        };
        match failed.take_message() {
            Some(unsent) if attempt < SEND_ATTEMPTS => {
                debug!(app, cause = %failed.error(), "channel refused a request; trying another");
                req = unsent;
            }
            _ => {
                let e = failed.into_error();
                warn!(app, cause = %e, "worker request failed");
                return Err(ProxyError::Worker(e));
            }
        }
    }
    Err(ProxyError::NoWorker)
}

/// How many channels one request may be offered to (see [`send`]).
const SEND_ATTEMPTS: u32 = 2;

/// A 308 to `https://` for a plain-HTTP request to an app with `redirect_https`.
fn redirect_https(
    state: &State,
    conn: ConnInfo,
    app: &str,
    host: &str,
    uri: &Uri,
) -> Option<Response<Body>> {
    if conn.scheme != "http" {
        return None;
    }
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = HeaderValue::try_from(state.tls.redirect(app, host, pq)?).ok()?;
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    Some(resp)
}

/// The Host of a request: the HTTP/2 `:authority`, else the `Host` header.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    if let Some(auth) = req.uri().authority() {
        return Some(auth.as_str());
    }
    req.headers().get(header::HOST)?.to_str().ok().filter(|h| !h.is_empty())
}

/// Turns a client request into the request a worker receives (see [`privsep::wire`]).
fn rewrite(
    req: Request<Incoming>,
    host: &str,
    conn: ConnInfo,
) -> Result<Request<Incoming>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(pq)
        .build()
        .map_err(|_| ProxyError::BadHost)?;
    let proto = proto_name(parts.version);
    parts.version = Version::HTTP_2;
    clean_headers(&mut parts.headers);
    let h = &mut parts.headers;
    h.insert(HeaderName::from_static(wire::PEER), addr_value(conn.peer));
    h.insert(HeaderName::from_static(wire::LOCAL), addr_value(conn.local));
    h.insert(HeaderName::from_static(wire::SCHEME), HeaderValue::from_static(conn.scheme));
    h.insert(HeaderName::from_static(wire::PROTO), HeaderValue::from_static(proto));
    Ok(Request::from_parts(parts, body))
}

/// Removes hop-by-hop headers, those named by `Connection`, `Host` (now in
/// the URI) and every gateway-only header a client may have sent.
fn clean_headers(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in HOP_BY_HOP {
        h.remove(*name);
    }
    if h.get(header::TE).is_some_and(|v| v != "trailers") {
        h.remove(header::TE);
    }
    let forged: Vec<HeaderName> =
        h.keys().filter(|k| k.as_str().starts_with(wire::PREFIX)).cloned().collect();
    for name in forged {
        h.remove(name);
    }
}

const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"];

fn proto_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn addr_value(addr: SocketAddr) -> HeaderValue {
    HeaderValue::try_from(addr.to_string()).expect("a socket address is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_connection_named_and_forged_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert("x-bulkhead-peer", HeaderValue::from_static("6.6.6.6:1"));
        h.insert("X-Bulkhead-Anything", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        clean_headers(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn keeps_te_trailers() {
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers"));
        clean_headers(&mut h);
        assert!(h.contains_key("te"));
    }

    #[test]
    fn error_statuses() {
        assert_eq!(ProxyError::UnknownHost.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(ProxyError::NoHost.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ProxyError::NoWorker.status(), StatusCode::BAD_GATEWAY);
        let large = ProxyError::HeadTooLarge { len: 2, limit: 1 };
        assert_eq!(large.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn head_size_counts_the_request_line_and_every_field() {
        let req = Request::get("/abc").header("x-a", "12345").body(()).expect("a request");
        // "GET /abc HTTP/1.1\r\n" + "x-a: 12345\r\n"
        assert_eq!(head_size(&req), 3 + 4 + 12 + 3 + 5 + 4);
    }
}
