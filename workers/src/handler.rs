//! Handles one request from the gateway: map its path, then serve a file or run a script.
//!
//! The order is fixed: trusted metadata, path mapping, body buffering (up to the app's
//! limit), params (with the size check), and only then the backend. A script's
//! `X-Accel-Redirect` is served here as a static file under the root (mapped like any
//! request path: never a script, a hidden file or outside the root; paths the app's
//! rules mark `internal` are reachable only this way). Every failure
//! becomes an error response here, with one log line. This module must never reach the
//! backend with a request that failed a check, and never answer with a panic.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, EXPIRES, HeaderName,
    LOCATION, SET_COOKIE,
};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use tracing::{Instrument, debug, info_span, trace, warn};

use crate::app::App;
use crate::backend::{self, AccelRedirect};
use crate::body::{self, Body};
use crate::compress;
use crate::error::RequestError;
use crate::params::{self, GatewayMeta, RequestInfo};
use crate::path::{Script, Target};
use crate::request_body;
use crate::static_file::{self, StaticRequest};

/// Headers of a script's response that still apply when `X-Accel-Redirect` replaces
/// its body with a file (nginx keeps these from the upstream response too). A
/// Content-Type the script chose wins over the file's; PHP's default `text/html` does not.
const KEPT_ON_ACCEL: [HeaderName; 5] =
    [SET_COOKIE, CONTENT_DISPOSITION, CACHE_CONTROL, EXPIRES, CONTENT_TYPE];

/// Answers one request; never fails (errors become responses).
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: HttpBody<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let _busy = app.activity().begin();
    let span =
        info_span!("request", app = %app.name(), method = %req.method(), path = %req.uri().path());
    let response = match route(&app, req).instrument(span.clone()).await {
        Ok(response) => response,
        Err(err) => span.in_scope(|| error_response(&app, &err)),
    };
    Ok(response)
}

fn error_response(app: &App, err: &RequestError) -> Response<Body> {
    let status = err.status();
    if let Some(path) = err.permission_denied() {
        let uid = app.uid();
        warn!(app = %app.name(), path = %path, uid, "permission denied: the worker cannot read this path");
    } else if status.is_server_error() {
        warn!(app = %app.name(), status = status.as_u16(), cause = %err, "request failed");
    } else {
        debug!(app = %app.name(), status = status.as_u16(), cause = %err, "request refused");
    }
    err.response()
}

async fn route<B>(app: &App, req: Request<B>) -> Result<Response<Body>, RequestError>
where
    B: HttpBody<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    let meta = GatewayMeta::from_headers(&parts.headers)?;
    let mut response = match app.root().resolve_request(parts.uri.path(), parts.uri.query())? {
        Target::Static(file) => static_file::serve(&file, static_request(app, &parts)).await?,
        Target::Script(script) => {
            let response = run_script(app, &parts, &meta, &script, body).await?;
            accel_redirect(app, &parts, response).await?
        }
        Target::Redirect(path) => redirect(&path, parts.uri.query()),
    };
    add_rule_headers(app, parts.uri.path(), &mut response);
    Ok(compress::apply(&parts.method, &parts.headers, app.compress(), response))
}

/// The headers rules' headers, on answers that are not errors (nginx's `add_header`).
fn add_rule_headers(app: &App, raw_path: &str, response: &mut Response<Body>) {
    let error = response.status().is_client_error() || response.status().is_server_error();
    if error || !app.root().rules().has_headers() {
        return;
    }
    let Some(uri) = app.root().rule_path(raw_path) else { return };
    for (name, value) in app.root().rules().headers(&uri) {
        response.headers_mut().insert(name, value);
    }
}

fn static_request<'a>(app: &'a App, parts: &'a Parts) -> StaticRequest<'a> {
    StaticRequest {
        method: &parts.method,
        headers: &parts.headers,
        root: app.root().dir(),
        types: app.types(),
        compress: app.compress(),
    }
}

/// 301 to a directory's slash-terminated path, with the query kept.
fn redirect(path: &str, query: Option<&str>) -> Response<Body> {
    let location = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Serves the file a script named in `X-Accel-Redirect`, or passes its response on.
async fn accel_redirect(
    app: &App,
    parts: &Parts,
    response: Response<Body>,
) -> Result<Response<Body>, RequestError> {
    let Some(AccelRedirect(path)) = response.extensions().get::<AccelRedirect>().cloned() else {
        return Ok(response);
    };
    let (script, _dropped_body) = response.into_parts();
    let file = app.root().internal(&path)?;
    let method = if parts.method == Method::HEAD { Method::HEAD } else { Method::GET };
    let request = StaticRequest { method: &method, ..static_request(app, parts) };
    let mut served = static_file::serve(&file, request).await?;
    for name in KEPT_ON_ACCEL {
        if !script.headers.contains_key(&name) || is_php_default_type(&name, &script.headers) {
            continue;
        }
        served.headers_mut().remove(&name);
        for value in script.headers.get_all(&name) {
            served.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(served)
}

/// PHP sends `text/html` (its `default_mimetype`) unless the script chose a type; that
/// default says nothing about the file, so the file's own type is kept instead.
fn is_php_default_type(name: &HeaderName, headers: &http::HeaderMap) -> bool {
    let value = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = value.split(';').next().unwrap_or("").trim();
    name == CONTENT_TYPE && media.eq_ignore_ascii_case("text/html")
}

async fn run_script<B>(
    app: &App,
    parts: &Parts,
    meta: &GatewayMeta,
    script: &Script,
    body: B,
) -> Result<Response<Body>, RequestError>
where
    B: HttpBody<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let tmp = std::env::temp_dir();
    let body = request_body::buffer(body, declared_length(parts), app.max_body(), &tmp).await?;
    let info = RequestInfo { parts, meta, script, body_len: body.len() };
    let params = params::build(app, &info)?;
    params::check_size(&params)?;
    trace!(app = %app.name(), params = %params::Redacted { params: &params, app }, "FastCGI params");
    Ok(backend::forward(app, params, body).await?)
}

fn declared_length(parts: &Parts) -> Option<u64> {
    let value = parts.headers.get(CONTENT_LENGTH)?;
    value.to_str().ok()?.parse().ok()
}
