//! The worker against a malicious FastCGI backend on a real Unix socket.
//!
//! The mock plays only the hostile side: it reads a whole FastCGI request, then answers
//! with whatever its script says (a malformed END_REQUEST, a cut-off body, silence). A
//! second mock keeps its connections open, as php-fpm does for `fastcgi_keepalive`, and
//! sends a forged response nobody asked for. The worker side is the real
//! `serve_connection` driven over HTTP/2.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TempDir, request, send, spec, start};
use http::StatusCode;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The gateway's end of a worker channel.
type Client = hyper::client::conn::http2::SendRequest<Full<bytes::Bytes>>;

const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;

/// What the mock answers to one connection.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// A well-formed response with this body.
    Good(&'static str),
    /// An END_REQUEST whose content length is 0 (panics an unguarded client).
    ShortEndRequest,
    /// Headers and part of a body, then a clean close without END_REQUEST.
    CutOff,
    /// Nothing at all, for longer than any timeout.
    Silence,
    /// A complete head, then nothing for longer than any timeout.
    StallAfterHead,
}

/// A hostile backend: counts connections, records params, answers from a script.
struct Mock {
    accepted: Arc<AtomicUsize>,
    params: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl Mock {
    fn start(socket: &Path, answers: Vec<Answer>) -> Self {
        let listener = UnixListener::bind(socket).expect("bind mock socket");
        let accepted = Arc::new(AtomicUsize::new(0));
        let params = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (Arc::clone(&accepted), Arc::clone(&params));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let answer = answers.get(n).copied().unwrap_or(Answer::Good("default"));
                tokio::spawn(answer_one(stream, answer, Arc::clone(&seen)));
            }
        });
        Self { accepted, params }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn last_params(&self) -> HashMap<String, String> {
        self.params.lock().expect("not poisoned").last().cloned().expect("a request arrived")
    }
}

async fn answer_one(
    mut stream: UnixStream,
    answer: Answer,
    seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
) {
    let params = read_request(&mut stream).await;
    seen.lock().expect("not poisoned").push(params);
    let bytes = match answer {
        Answer::Good(body) => {
            let mut out =
                record(STDOUT, format!("Content-Type: text/plain\r\n\r\n{body}").as_bytes());
            out.extend(record(STDOUT, b""));
            out.extend(record(END_REQUEST, &[0; 8]));
            out
        }
        Answer::ShortEndRequest => vec![1, END_REQUEST, 0, 1, 0, 0, 0, 0],
        Answer::CutOff => {
            record(STDOUT, b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nthe first half of")
        }
        Answer::Silence => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Vec::new()
        }
        Answer::StallAfterHead => {
            let _ =
                stream.write_all(&record(STDOUT, b"Content-Type: text/plain\r\n\r\nstart")).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Vec::new()
        }
    };
    let _ = stream.write_all(&bytes).await;
    if matches!(answer, Answer::CutOff) {
        // Let the head reach the client before the cut.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stream.shutdown().await;
    // Like php-fpm: drain what the client still sends (it ends STDIN twice) until it
    // closes, so the close is clean rather than a reset.
    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
}

/// Reads records up to the empty STDIN record; returns the decoded params.
async fn read_request(stream: &mut UnixStream) -> HashMap<String, String> {
    next_request(stream).await.expect("a whole request")
}

/// Like [`read_request`]; `None` once the client has closed the connection. Records
/// before BEGIN_REQUEST are skipped, as php-fpm does: the client crate ends an empty
/// body with two empty STDIN records, and on a kept connection the second one comes
/// before the next request.
async fn next_request(stream: &mut UnixStream) -> Option<HashMap<String, String>> {
    let mut params = Vec::new();
    let mut begun = false;
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await.ok()?;
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0; len + usize::from(header[6])];
        stream.read_exact(&mut content).await.ok()?;
        content.truncate(len);
        match header[1] {
            BEGIN_REQUEST => begun = true,
            PARAMS => params.extend(content),
            STDIN if len == 0 && begun => return Some(decode_params(&params)),
            _ => {}
        }
    }
}

fn decode_params(mut bytes: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    while !bytes.is_empty() {
        let name_len = take_len(&mut bytes);
        let value_len = take_len(&mut bytes);
        let (name, rest) = bytes.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        out.insert(String::from_utf8_lossy(name).into(), String::from_utf8_lossy(value).into());
        bytes = rest;
    }
    out
}

fn take_len(bytes: &mut &[u8]) -> usize {
    if bytes[0] < 128 {
        let len = usize::from(bytes[0]);
        *bytes = &bytes[1..];
        return len;
    }
    let len = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    *bytes = &bytes[4..];
    usize::try_from(len).expect("fits")
}

fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("one record");
    let padding = (8 - content.len() % 8) % 8;
    let mut out = vec![1, kind, 0, 1];
    out.extend(len.to_be_bytes());
    out.extend([u8::try_from(padding).expect("< 8"), 0]);
    out.extend(content);
    out.resize(out.len() + padding, 0);
    out
}

fn docroot() -> TempDir {
    let dir = TempDir::new();
    dir.file("www/index.php", "<?php echo 'mock answers instead';");
    dir
}

#[tokio::test]
async fn malformed_end_request_is_a_502_and_the_worker_keeps_serving() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let mock = Mock::start(&socket, vec![Answer::ShortEndRequest, Answer::Good("still here")]);
    let mut client = start(spec(&dir.path().join("www"), &socket)).await;

    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY);
    assert!(body.is_ok(), "an error response is complete");

    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(body.expect("complete"), "still here");
    assert_eq!(mock.connections(), 2);
}

#[tokio::test]
async fn a_cut_off_body_ends_in_an_error_not_a_clean_end() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let _mock = Mock::start(&socket, vec![Answer::CutOff]);
    let mut client = start(spec(&dir.path().join("www"), &socket)).await;

    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_err(), "a truncated response must not end cleanly: {body:?}");
}

#[tokio::test]
async fn oversized_params_get_431_without_touching_the_backend() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let mock = Mock::start(&socket, vec![]);
    let mut client = start(spec(&dir.path().join("www"), &socket)).await;

    let mut req = request("GET", "/index.php", b"");
    let big = "a".repeat(70_000);
    req.headers_mut().insert("x-big", big.parse().expect("valid value"));
    let (head, _) = send(&mut client, req).await;
    assert_eq!(head.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(mock.connections(), 0);
}

#[tokio::test]
async fn a_silent_backend_gets_504() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let _mock = Mock::start(&socket, vec![Answer::Silence]);
    let mut init = spec(&dir.path().join("www"), &socket);
    init.app.timeout_ms = 300;
    let mut client = start(init).await;

    let (head, _) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_backend_that_stalls_after_the_head_cuts_the_body() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let _mock = Mock::start(&socket, vec![Answer::StallAfterHead]);
    let mut init = spec(&dir.path().join("www"), &socket);
    init.app.timeout_ms = 300;
    let mut client = start(init).await;

    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_err(), "an idle timeout must not end the body cleanly: {body:?}");
}

#[tokio::test]
async fn a_missing_backend_is_a_502_that_says_so() {
    let dir = docroot();
    let mut client = start(spec(&dir.path().join("www"), &dir.path().join("absent.sock"))).await;

    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY);
    let body = body.expect("complete");
    assert!(String::from_utf8_lossy(&body).contains("backend is unavailable"), "{body:?}");
}

#[tokio::test]
async fn the_backend_gets_exact_params_and_no_smuggled_ones() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let mock = Mock::start(&socket, vec![Answer::Good("ok")]);
    let mut client = start(spec(&dir.path().join("www"), &socket)).await;

    let mut req = request("POST", "/index.php/extra?a=%41", b"hello");
    let headers = req.headers_mut();
    headers.insert("x_forwarded_for", "6.6.6.6".parse().expect("valid"));
    headers.insert("proxy", "http://evil".parse().expect("valid"));
    let (head, _) = send(&mut client, req).await;
    assert_eq!(head.status(), StatusCode::OK);

    let p = mock.last_params();
    assert_eq!(p["CONTENT_LENGTH"], "5");
    assert_eq!(p["SCRIPT_NAME"], "/index.php");
    assert_eq!(p["PATH_INFO"], "/extra");
    assert_eq!(p["REQUEST_URI"], "/index.php/extra?a=%41");
    assert_eq!(p["HTTP_HOST"], "blog.test:8080");
    assert_eq!(p["REMOTE_ADDR"], "192.0.2.7");
    assert_eq!(p["DB_PASSWORD"], "s3cret-value");
    assert!(!p.contains_key("HTTP_X_FORWARDED_FOR") && !p.contains_key("HTTP_PROXY"));
    assert!(p.keys().all(|k| !k.starts_with("HTTP_X_BULKHEAD")));
}

#[tokio::test]
async fn an_oversized_body_gets_413_without_touching_the_backend() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let mock = Mock::start(&socket, vec![]);
    let mut init = spec(&dir.path().join("www"), &socket);
    init.app.max_body = 4;
    let mut client = start(init).await;

    let (head, _) = send(&mut client, request("POST", "/index.php", b"too long")).await;
    assert_eq!(head.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(mock.connections(), 0);
}

/// How a keep-alive backend misbehaves on its first connection's first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unasked {
    /// A second, forged response in the same write as the real one.
    Appended,
    /// A forged response a moment later, while the connection sits idle.
    Later,
}

/// A backend that keeps its connections open, as php-fpm does when asked to, and answers
/// every request with "conn C req R"; on its first response it also sends a forged one.
fn kept_mock(socket: &Path, unasked: Unasked) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(socket).expect("bind mock socket");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let conn = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                for req in 0.. {
                    if next_request(&mut stream).await.is_none() {
                        return;
                    }
                    let mut bytes = good(&format!("conn {conn} req {req}"));
                    let first = conn == 0 && req == 0;
                    if first && unasked == Unasked::Appended {
                        bytes.extend(good("forged"));
                    }
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                    if first && unasked == Unasked::Later {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = stream.write_all(&good("forged")).await;
                    }
                }
            });
        }
    });
    accepted
}

fn good(body: &str) -> Vec<u8> {
    let mut out = record(STDOUT, format!("Content-Type: text/plain\r\n\r\n{body}").as_bytes());
    out.extend(record(END_REQUEST, &[0; 8]));
    out
}

/// The worker with `fastcgi_keepalive = 2`, in front of `socket`.
async fn kept_worker(dir: &TempDir, socket: &Path) -> Client {
    let mut init = spec(&dir.path().join("www"), socket);
    init.app.fastcgi_keepalive = 2;
    start(init).await
}

#[tokio::test]
async fn a_kept_connection_carries_the_next_requests() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let accepted = kept_mock(&socket, Unasked::Later);
    let mut client = kept_worker(&dir, &socket).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The forged bytes arrived on connection 0 while it was idle: it is not reused.
    for n in 0..3 {
        let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
        assert_eq!(head.status(), StatusCode::OK, "request {n}");
        let body = body.expect("complete");
        if n == 0 {
            assert_eq!(body, "conn 0 req 0");
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            assert_eq!(body, format!("conn 1 req {}", n - 1), "a new connection, then kept");
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_second_response_in_one_write_is_a_502_and_never_answers_the_next_request() {
    let dir = docroot();
    let socket = dir.path().join("fpm.sock");
    let accepted = kept_mock(&socket, Unasked::Appended);
    let mut client = kept_worker(&dir, &socket).await;
    let (head, _) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY, "bytes after END_REQUEST are malformed");
    let (head, body) = send(&mut client, request("GET", "/index.php", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(body.expect("complete"), "conn 1 req 0", "the forged answer is never served");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
