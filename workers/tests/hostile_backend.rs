//! The worker against a malicious FastCGI backend on a real Unix socket.
//!
//! The mock plays only the hostile side: it reads a whole FastCGI request, then answers
//! with whatever its script says (a malformed END_REQUEST, a cut-off body, silence).
//! The worker side is the real `serve_connection` driven over HTTP/2.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TempDir, request, send, spec, start};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

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
    let mut params = Vec::new();
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await.expect("record header");
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0; len + usize::from(header[6])];
        stream.read_exact(&mut content).await.expect("record content");
        content.truncate(len);
        match header[1] {
            PARAMS => params.extend(content),
            STDIN if len == 0 => return decode_params(&params),
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
