//! Handles one request from the gateway: map its path, then serve a file or run a script.
//!
//! The order is fixed: trusted metadata, path mapping, body buffering (up to the app's
//! limit), params (with the size check), and only then the backend. Every failure becomes
//! an error response here, with one log line. This module must never reach the backend
//! with a request that failed a check, and never answer with a panic.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body as HttpBody;
use tracing::{Instrument, debug, info_span, warn};

use crate::app::App;
use crate::backend;
use crate::body::Body;
use crate::error::RequestError;
use crate::params::{self, GatewayMeta, RequestInfo};
use crate::path::{Script, Target};
use crate::request_body;
use crate::static_file;

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
    if status.is_server_error() {
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
    match app.root().resolve(parts.uri.path())? {
        Target::Static(file) => Ok(static_file::serve(&file, &parts.method).await?),
        Target::Script(script) => run_script(app, &parts, &meta, &script, body).await,
    }
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
    let body = request_body::buffer(body, declared_length(parts), app.max_body()).await?;
    let info = RequestInfo { parts, meta, script, body_len: body.len() };
    let params = params::build(app, &info)?;
    params::check_size(&params)?;
    Ok(backend::forward(app, params, body).await?)
}

fn declared_length(parts: &Parts) -> Option<u64> {
    let value = parts.headers.get(CONTENT_LENGTH)?;
    value.to_str().ok()?.parse().ok()
}
