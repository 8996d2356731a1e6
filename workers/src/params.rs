//! Builds the FastCGI params of one request, like nginx's `fastcgi.conf` plus PATH_INFO.
//!
//! Client headers become `HTTP_*` params only: names are upper-cased with `-` → `_`,
//! names with anything but letters, digits and `-` are dropped (so `X_Forwarded_For`
//! cannot pose as `X-Forwarded-For`), `Proxy` is dropped (httpoxy), duplicates are
//! merged (`, `, or `; ` for Cookie). The gateway's `x-bulkhead-*` headers are read as
//! trusted metadata and never forwarded. The app's `fastcgi_params` follow the CGI
//! variables (the broker refuses names that would replace one), its secrets come last.
//! This module must never let client data set a param that does not start with `HTTP_`,
//! and must never produce more than [`MAX_PARAMS_BYTES`] of encoded params (php-fpm
//! drops the connection beyond that).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use http::header::{CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, request::Parts};
use privsep::wire;

use crate::app::App;
use crate::forwarded;
use crate::path::Script;

/// The most encoded param bytes php-fpm accepts: one PARAMS record of 65,535
/// bytes, minus the padding that rounds it to a multiple of 8.
pub const MAX_PARAMS_BYTES: usize = 65_528;

/// Names nginx on purpose: applications sniff SERVER_SOFTWARE to decide whether URL
/// rewriting works (WordPress's `got_url_rewrite()` offers pretty permalinks only for
/// Apache, nginx, IIS or Caddy), and Bulkhead's rules do what their nginx recipes do.
pub const SERVER_SOFTWARE: &str =
    concat!("bulkhead/", env!("CARGO_PKG_VERSION"), " (nginx-compatible)");

/// Params by name; a later insert replaces an earlier one. CGI variable names are
/// borrowed: only header-derived names and secrets' names are allocated.
pub type ParamMap = BTreeMap<Cow<'static, str>, String>;

/// Why a request cannot become FastCGI params.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("header {0} has a value that is not UTF-8")]
    NonUtf8Header(String),
    #[error("gateway metadata header {0} is missing or malformed")]
    BadMetadata(&'static str),
    #[error("path {0} is not UTF-8")]
    NonUtf8Path(String),
    #[error("encoded params take {len} bytes, more than the {MAX_PARAMS_BYTES}-byte limit")]
    TooLarge { len: usize },
}

/// What the gateway says about the client connection (trusted headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayMeta {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    pub proto: &'static str,
}

impl GatewayMeta {
    /// Reads the `x-bulkhead-*` headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ParamsError> {
        let https = match header_str(headers, wire::SCHEME)? {
            "http" => false,
            "https" => true,
            _ => return Err(ParamsError::BadMetadata(wire::SCHEME)),
        };
        let proto = match header_str(headers, wire::PROTO)? {
            "HTTP/1.0" => "HTTP/1.0",
            "HTTP/1.1" => "HTTP/1.1",
            "HTTP/2.0" => "HTTP/2.0",
            _ => return Err(ParamsError::BadMetadata(wire::PROTO)),
        };
        let peer = socket_addr(headers, wire::PEER)?;
        let local = socket_addr(headers, wire::LOCAL)?;
        Ok(Self { peer, local, https, proto })
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, ParamsError> {
    let value = headers.get(name).ok_or(ParamsError::BadMetadata(name))?;
    value.to_str().map_err(|_| ParamsError::BadMetadata(name))
}

fn socket_addr(headers: &HeaderMap, name: &'static str) -> Result<SocketAddr, ParamsError> {
    header_str(headers, name)?.parse().map_err(|_| ParamsError::BadMetadata(name))
}

/// Everything about one request that its params are built from.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub parts: &'a Parts,
    pub meta: &'a GatewayMeta,
    pub script: &'a Script,
    /// The exact length of the buffered body.
    pub body_len: u64,
}

/// All params of a request: client headers, then CGI variables, then the app's secrets.
pub fn build(app: &App, req: &RequestInfo<'_>) -> Result<ParamMap, ParamsError> {
    let mut params = header_params(&req.parts.headers)?;
    forwarded::drop_untrusted(app.trusted_proxies(), req.meta, &mut params);
    if let Some(host) = host(req.parts) {
        params.insert("HTTP_HOST".into(), host.to_owned());
    }
    cgi_params(app, req, &mut params)?;
    for (name, value) in app.fastcgi_params() {
        params.insert(Cow::Owned(name.clone()), value.clone());
    }
    for (name, secret) in app.secrets() {
        params.insert(Cow::Owned(name.clone()), secret.expose().to_owned());
    }
    Ok(params)
}

/// Params that carry a client's credentials: logged like secrets.
const CREDENTIAL_PARAMS: &[&str] =
    &["HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_PROXY_AUTHORIZATION"];

/// The params of a request as a log field: `NAME=value` pairs, with the value of
/// each of the app's secrets and of each client credential printed as `***`.
#[derive(Debug)]
pub struct Redacted<'a> {
    pub params: &'a ParamMap,
    pub app: &'a App,
}

impl Redacted<'_> {
    fn is_secret(&self, name: &str) -> bool {
        CREDENTIAL_PARAMS.contains(&name) || self.app.secrets().iter().any(|(n, _)| n == name)
    }
}

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, value)) in self.params.iter().enumerate() {
            let value = if self.is_secret(name) { "***" } else { value.as_str() };
            write!(f, "{}{name}={value:?}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

fn host(parts: &Parts) -> Option<&str> {
    let from_uri = parts.uri.authority().map(|a| a.as_str());
    from_uri.or_else(|| parts.headers.get(HOST).and_then(|v| v.to_str().ok()))
}

fn cgi_params(app: &App, req: &RequestInfo<'_>, out: &mut ParamMap) -> Result<(), ParamsError> {
    let root = path_str(app.root().dir())?;
    let script = req.script;
    let mut set = |k: &'static str, v: String| out.insert(Cow::Borrowed(k), v);
    set("SCRIPT_FILENAME", path_str(&script.filename)?.to_owned());
    set("SCRIPT_NAME", script.name.clone());
    set("PATH_INFO", script.path_info.clone());
    if !script.path_info.is_empty() {
        set("PATH_TRANSLATED", format!("{root}{}", script.path_info));
    }
    set("DOCUMENT_ROOT", root.to_owned());
    set("DOCUMENT_URI", script.document_uri.clone());
    let uri = &req.parts.uri;
    set("REQUEST_URI", uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned());
    let query = script.query.as_deref().or(uri.query());
    set("QUERY_STRING", query.unwrap_or("").to_owned());
    set("REQUEST_METHOD", req.parts.method.as_str().to_owned());
    let content_type = req.parts.headers.get(CONTENT_TYPE).map(|v| utf8(CONTENT_TYPE.as_str(), v));
    set("CONTENT_TYPE", content_type.transpose()?.unwrap_or("").to_owned());
    set("CONTENT_LENGTH", req.body_len.to_string());
    let client = forwarded::client(app.trusted_proxies(), req.meta, &req.parts.headers);
    connection_params(app, req.meta, &client, &mut set);
    Ok(())
}

fn connection_params(
    app: &App,
    meta: &GatewayMeta,
    client: &forwarded::ClientView,
    set: &mut impl FnMut(&'static str, String) -> Option<String>,
) {
    set("SERVER_PROTOCOL", meta.proto.to_owned());
    set("REQUEST_SCHEME", if client.https { "https" } else { "http" }.to_owned());
    if client.https {
        set("HTTPS", "on".to_owned());
    }
    set("GATEWAY_INTERFACE", "CGI/1.1".to_owned());
    set("SERVER_SOFTWARE", SERVER_SOFTWARE.to_owned());
    set("REMOTE_ADDR", client.addr.to_string());
    set("REMOTE_PORT", client.port.map(|p| p.to_string()).unwrap_or_default());
    set("SERVER_ADDR", meta.local.ip().to_string());
    set("SERVER_PORT", meta.local.port().to_string());
    set("SERVER_NAME", app.server_name().to_owned());
    set("REDIRECT_STATUS", "200".to_owned());
}

fn path_str(path: &std::path::Path) -> Result<&str, ParamsError> {
    path.to_str().ok_or_else(|| ParamsError::NonUtf8Path(path.display().to_string()))
}

fn utf8<'v>(name: &str, value: &'v HeaderValue) -> Result<&'v str, ParamsError> {
    std::str::from_utf8(value.as_bytes()).map_err(|_| ParamsError::NonUtf8Header(name.to_owned()))
}

/// `HTTP_*` params for every forwardable client header, duplicates merged.
pub fn header_params(headers: &HeaderMap) -> Result<ParamMap, ParamsError> {
    let mut out = ParamMap::new();
    for name in headers.keys() {
        let Some(param) = param_name(name.as_str()) else {
            continue;
        };
        let sep = if name == COOKIE { "; " } else { ", " };
        let mut joined = String::new();
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push_str(sep);
            }
            joined.push_str(utf8(name.as_str(), value)?);
        }
        out.insert(Cow::Owned(param), joined);
    }
    Ok(out)
}

/// `HTTP_` + the upper-cased name, or `None` for a header that is not forwarded.
pub fn param_name(header: &str) -> Option<String> {
    let plain = header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let prefixed =
        header.get(..wire::PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(wire::PREFIX));
    let skipped = header.eq_ignore_ascii_case("proxy")
        || header.eq_ignore_ascii_case(HOST.as_str())
        || prefixed;
    if !plain || skipped || header.is_empty() {
        return None;
    }
    let mut param = String::with_capacity(5 + header.len());
    param.push_str("HTTP_");
    param.extend(header.bytes().map(|b| match b {
        b'-' => '_',
        b => char::from(b.to_ascii_uppercase()),
    }));
    Some(param)
}

/// The size of `params` in FastCGI name-value pair encoding.
pub fn encoded_len(params: &ParamMap) -> usize {
    params.iter().map(|(k, v)| pair_len(k.len(), v.len())).sum()
}

fn pair_len(name: usize, value: usize) -> usize {
    let prefix = |n: usize| if n < 128 { 1 } else { 4 };
    prefix(name) + prefix(value) + name + value
}

/// Fails when `params` would not fit the single PARAMS record php-fpm accepts.
pub fn check_size(params: &ParamMap) -> Result<(), ParamsError> {
    match encoded_len(params) {
        len if len > MAX_PARAMS_BYTES => Err(ParamsError::TooLarge { len }),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
