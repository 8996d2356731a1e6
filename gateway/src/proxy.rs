//! One request's trip through the gateway: route by Host and path prefix, clean, forward.
//!
//! The gateway decides only *which app* gets a request. It strips hop-by-hop
//! headers and every client header that only the gateway may set
//! ([`privsep::wire::PREFIX`]), adds the connection facts, and forwards the
//! request over one of the app's channels. It reads a small body whole before
//! that (see [`crate::body`]) but never looks inside it, and never opens anything: errors are answered here with a status and a reason.
//! A request whose framing or target [`crate::framing`] refuses, or whose body fails
//! on the client's side, is the client's fault: 400 (501, 408, 413) with a log line
//! naming the client, and over HTTP/1 the connection is closed after the answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use privsep::wire;
use tracing::{debug, info, warn};

use crate::State;
use crate::body::{self, BodyError, Fault, Reading, RequestBody};
use crate::framing::{self, Refusal};

/// What the gateway sends back: a worker's streamed body, or its own short answer.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'static str,
    /// The TLS version (`TLSv1.3`, nginx's `$ssl_protocol`) on TLS connections.
    pub tls: Option<&'static str>,
}

/// Why the gateway answers a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request is not framed or addressed acceptably: {0}")]
    Framing(#[from] Refusal),
    #[error("the Host is not a valid authority")]
    BadHost,
    #[error("no application is configured for this host")]
    UnknownHost,
    #[error("no worker is available for this application")]
    NoWorker,
    #[error("the application's worker failed to answer")]
    Worker(#[source] hyper::Error),
    #[error(transparent)]
    Body(BodyError),
    #[error("the request head has {len} bytes, more than client_max_header_size ({limit})")]
    HeadTooLarge { len: usize, limit: usize },
}

impl ProxyError {
    /// The one place where gateway errors become HTTP statuses.
    fn status(&self) -> StatusCode {
        match self {
            Self::Framing(refusal) => refusal.status(),
            Self::BadHost => StatusCode::BAD_REQUEST,
            Self::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Self::NoWorker | Self::Worker(_) => StatusCode::BAD_GATEWAY,
            Self::Body(BodyError::Timeout(_) | BodyError::TooSlow(_)) => {
                StatusCode::REQUEST_TIMEOUT
            }
            Self::Body(BodyError::Client(_)) => StatusCode::BAD_REQUEST,
            Self::Body(BodyError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Whether the client is at fault: its request or body was malformed, too large or
    /// too slow. Such answers end an HTTP/1 connection, whose framing is now in doubt.
    fn is_clients(&self) -> bool {
        matches!(self, Self::Framing(_) | Self::BadHost | Self::Body(_) | Self::HeadTooLarge { .. })
    }

    fn into_response(self, version: Version) -> Response<Body> {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("");
        let body = format!("{} {reason}: {self}\n", status.as_u16());
        let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if version < Version::HTTP_2 && self.is_clients() {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Serves one request; never fails at the HTTP level. `app` is set once it is routed.
pub async fn handle(
    state: Arc<State>,
    conn: ConnInfo,
    req: Request<Incoming>,
    app: &mut Option<String>,
) -> Result<Response<Body>, Infallible> {
    let (version, method, target) = (req.version(), req.method().clone(), req.uri().clone());
    let (parts, body) = req.into_parts();
    let fault = Fault::holding(body);
    let answered = forward(&state, conn, Request::from_parts(parts, ()), &fault, app).await;
    let resp = answered.unwrap_or_else(|e| {
        if e.is_clients() {
            let status = e.status().as_u16();
            info!(client = %conn.peer, %method, %target, status, cause = %e, "client sent a bad request");
        }
        e.into_response(version)
    });
    let unread = fault.take_body().filter(|b| version == Version::HTTP_2 && !b.is_end_stream());
    if let Some(unread) = unread {
        tokio::spawn(body::discard(unread));
    }
    Ok(resp)
}

/// The size of a request head as HTTP/1.1 writes it: request line, then `name: value`
/// lines (HTTP/2 pseudo-headers count as the request line).
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let fields: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    line + fields
}

/// Routes and forwards a request whose body `fault` holds (and takes to send it).
async fn forward(
    state: &State,
    conn: ConnInfo,
    req: Request<()>,
    fault: &Fault,
    routed: &mut Option<String>,
) -> Result<Response<Body>, ProxyError> {
    let (len, limit) = (head_size(&req), state.max_header_bytes);
    if len > limit {
        return Err(ProxyError::HeadTooLarge { len, limit });
    }
    let host = framing::check(&req)?.to_ascii_lowercase();
    let app = state.app_at(&host, req.uri().path()).ok_or(ProxyError::UnknownHost)?;
    *routed = Some(app.clone());
    if let Some(resp) = redirect_https(state, conn, &app, &host, req.uri()) {
        return Ok(resp);
    }
    let (parts, ()) = rewrite(req, &host, conn)?.into_parts();
    let reading = Reading { timeout: state.client_body_timeout, max_body: state.max_body(&app) };
    let incoming = fault.take_body().expect("handle parks the body and only this takes it");
    let body = body::prepare(incoming, reading, conn.peer.ip(), &state.body_budget, fault)
        .await
        .map_err(ProxyError::Body)?;
    let req = Request::from_parts(parts, body);
    let mut resp = send(state, &app, req, fault).await?;
    if let Some(hsts) = state.tls.hsts(&app).filter(|_| conn.scheme == "https") {
        resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    Ok(resp.map(Either::Left))
}

/// Sends `req` on one of `app`'s channels. A request that a dying channel never
/// took (its worker just crashed or drained) goes once more to another channel,
/// so only requests a worker actually had in hand can fail with it. A failure
/// caused by the client's body (recorded in `fault`) is the client's, not the worker's.
async fn send(
    state: &State,
    app: &str,
    mut req: Request<RequestBody>,
    fault: &Fault,
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
                if let Some(fault) = fault.get() {
                    return Err(ProxyError::Body(fault.clone()));
                }
                let e = failed.into_error();
                warn!(app, cause = %e, limit = crate::channels::limit_hint(&e), "worker request failed");
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

/// Turns a client request into the request a worker receives (see [`privsep::wire`]).
fn rewrite(req: Request<()>, host: &str, conn: ConnInfo) -> Result<Request<()>, ProxyError> {
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

/// `$server_protocol`'s name of `v`.
pub fn proto_name(v: Version) -> &'static str {
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
        assert_eq!(ProxyError::Framing(Refusal::NoHost).status(), StatusCode::BAD_REQUEST);
        let too_large = ProxyError::Body(BodyError::TooLarge(1));
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(too_large.is_clients() && !ProxyError::NoWorker.is_clients());
        assert_eq!(ProxyError::NoWorker.status(), StatusCode::BAD_GATEWAY);
        let large = ProxyError::HeadTooLarge { len: 2, limit: 1 };
        assert_eq!(large.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(large.is_clients(), "an HTTP/1.1 connection is closed after it");
    }

    #[test]
    fn head_size_counts_the_request_line_and_every_field() {
        let req = Request::get("/abc").header("x-a", "12345").body(()).expect("a request");
        // "GET /abc HTTP/1.1\r\n" + "x-a: 12345\r\n"
        assert_eq!(head_size(&req), 3 + 4 + 12 + 3 + 5 + 4);
    }
}
