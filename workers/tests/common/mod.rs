//! Shared helpers for the worker's integration tests: a temporary document root, an app
//! built from it, and an HTTP/2 client that plays the gateway on a socketpair against
//! the worker's real `serve_connection`.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use privsep::msg::{AppSpec, Backend, ResponseSpec, WorkerInit};
use privsep::sandbox::Profile;
use privsep::secret::Secret;
use tokio::net::UnixStream;

/// The unit tests' temporary directory, the same source file: one helper, not two.
#[path = "../../src/test_util.rs"]
mod test_util;
pub use test_util::TempDir;

/// An app spec rooted at `root` whose backend listens on `socket`.
pub fn spec(root: &Path, socket: &Path) -> WorkerInit {
    WorkerInit {
        app: AppSpec {
            name: "blog".into(),
            server_name: "blog.test".into(),
            root: root.to_owned(),
            index: vec!["index.php".into()],
            front_controller: None,
            fastcgi: Backend::Unix(socket.to_owned()),
            max_body: 1024 * 1024,
            timeout_ms: 5_000,
            idle_timeout_ms: None,
            fastcgi_keepalive: 0,
            prefix: "/".into(),
            trusted_proxies: Vec::new(),
            symlink_targets: Vec::new(),
            fastcgi_params: Vec::new(),
            rules: Vec::new(),
            responses: ResponseSpec::default(),
        },
        sandbox: Profile::default(),
        secrets: vec![("DB_PASSWORD".into(), Secret::new("s3cret-value".into()))],
    }
}

/// Starts the worker on one end of a socketpair; returns an HTTP/2 client on the other.
pub async fn start(init: WorkerInit) -> SendRequest<Full<Bytes>> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("bulkhead_worker=debug")
        .try_init();
    let app = Arc::new(bulkhead_worker::App::new(init).expect("valid app"));
    let (client, server) = UnixStream::pair().expect("socketpair");
    let (_never, drain) = tokio::sync::watch::channel(false);
    tokio::spawn(bulkhead_worker::serve_connection(app, server, drain));
    self::client(client).await
}

/// An HTTP/2 client on a tokio Unix stream (the gateway's end of a channel).
pub async fn client(io: UnixStream) -> SendRequest<Full<Bytes>> {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// A request as the gateway forwards it: absolute URI plus the trusted headers.
pub fn request(method: &str, path_and_query: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://blog.test:8080{path_and_query}"))
        .body(Full::new(Bytes::from_static(body)))
        .expect("valid request");
    let headers = req.headers_mut();
    for (name, value) in [
        ("x-bulkhead-peer", "192.0.2.7:50000"),
        ("x-bulkhead-local", "127.0.0.1:8080"),
        ("x-bulkhead-scheme", "http"),
        ("x-bulkhead-proto", "HTTP/1.1"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    req
}

/// A response head and its collected body (an error if the body was cut).
pub type Answer = (Response<()>, Result<Bytes, hyper::Error>);

/// Sends `req`; panics if no response head arrives.
pub async fn send(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> Answer {
    try_send(sender, req).await.expect("a response head")
}

/// Sends `req`; an error if the stream was reset before the head.
pub async fn try_send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Answer, hyper::Error> {
    sender.ready().await.expect("connection open");
    let (parts, body) = sender.send_request(req).await?.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes());
    Ok((Response::from_parts(parts, ()), body))
}
