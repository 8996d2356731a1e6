//! Request framing, byte for byte: what the gateway refuses (and with which status), what
//! it accepts, whether the connection stays open, and what PHP received.
//!
//! Every request is written raw to a TCP socket exactly as a client could send it. A
//! PHP script answers with `$_SERVER` and the body as JSON and logs `framing-probe CASE`,
//! so a refused request is proven to have reached no PHP by the absence of its line, and
//! the served cases prove the line would be there. The answers follow nginx 1.22
//! (checked side by side): 400 for bad chunked bodies, two `Host`s, a list in `Host`,
//! authority and asterisk form, `CONNECT`, absolute form without `Host`; 501 for a
//! `Transfer-Encoding` other than `chunked`; 413 without `100 Continue` past `max_body`;
//! over HTTP/2, 400 for a `Host` naming another host than `:authority` (sent with nghttp).
//! Where hyper is stricter than nginx (a bare LF ending a chunk line, more than 16 KiB of
//! chunk extensions) the answer is still the client's 400, never a 502.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use bulkhead_tests::net::poll_until;
use bulkhead_tests::raw::{Answer, READ_TIMEOUT, Raw, field};
use bulkhead_tests::tls::{KeyType, TlsWorld};
use bulkhead_tests::{AppPlan, Proto, Stack};
use rustls::pki_types::ServerName;

const HOST: &str = "frame.localhost";
const OTHER: &str = "other.localhost";

/// Answers with the request's `$_SERVER` fields and body as JSON; logs its case.
const ECHO: &str = r#"<?php
header('Content-Type: application/json');
$body = file_get_contents('php://input');
error_log('framing-probe ' . ($_GET['case'] ?? '-') . ' app=' . basename(__DIR__));
$keep = ['REQUEST_METHOD', 'REQUEST_URI', 'SERVER_NAME', 'CONTENT_LENGTH', 'SERVER_PROTOCOL'];
$server = [];
foreach ($_SERVER as $k => $v) {
    if (is_string($v) && (str_starts_with($k, 'HTTP_') || in_array($k, $keep, true))) {
        $server[$k] = $v;
    }
}
echo json_encode(['server' => $server, 'body' => $body]);
"#;

/// Sets 12 cookies of 1.5 KB each: about 19 KB of response head (48 in `cookies48.php`:
/// about 74 KB, past the worker's 64 KiB CGI header block).
const COOKIES: &str = r#"<?php
for ($i = 0; $i < 12; $i++) {
    setcookie("c$i", str_repeat(chr(97 + $i), 1500));
}
echo 'cookies set';
"#;

fn stack() -> Stack {
    let frame = AppPlan::new("frame")
        .file("echo.php", ECHO)
        .file("cookies.php", COOKIES)
        .file("cookies48.php", &COOKIES.replace("$i < 12", "$i < 48"))
        .max_body("4k");
    let other = AppPlan::new("other").file("echo.php", ECHO);
    Stack::start(&[frame, other])
}

/// Whether `raw` still serves: a second request gets an answer.
fn still_serves(raw: &mut Raw) -> bool {
    let next = format!("GET /echo.php?case=after HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    if raw.stream.write_all(next.as_bytes()).is_err() {
        return false;
    }
    raw.answer().is_some_and(|a| a.status == 200)
}

/// `POST /echo.php?case=CASE` with `headers` (lines ending in CRLF) and `body`, raw.
fn post(case: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST /echo.php?case={case} HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n")
        .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Sends `bytes` on a fresh connection: the answer and whether the connection still serves.
fn exchange(stack: &Stack, bytes: &[u8]) -> (Answer, bool) {
    let mut raw = Raw::connect(stack.addr());
    raw.send(bytes);
    let answer = raw.answer().unwrap_or_else(|| {
        panic!("no answer to {:?}\n{}", String::from_utf8_lossy(bytes), stack.bulkhead.log())
    });
    let kept = still_serves(&mut raw);
    (answer, kept)
}

/// Every `framing-probe` line PHP logged, wherever it went.
fn probes(stack: &Stack) -> String {
    let all =
        format!("{}\n{}\n{}", stack.bulkhead.log(), stack.fpm.log("frame"), stack.fpm.log("other"));
    all.lines().filter(|l| l.contains("framing-probe")).collect::<Vec<_>>().join("\n")
}

/// Whether PHP logged `case` (already: see [`assert_refused`]'s sentinel).
fn ran(stack: &Stack, case: &str) -> bool {
    let marker = format!("framing-probe {case} ");
    probes(stack).contains(&marker)
}

/// Whether PHP logs `case` within [`READ_TIMEOUT`] (its log line travels through pipes).
fn ran_eventually(stack: &Stack, case: &str) -> bool {
    poll_until(READ_TIMEOUT, || ran(stack, case).then_some(())).is_some()
}

/// Asserts that each `(case, bytes)` is answered `status` by the gateway itself, that the
/// connection is closed after it, that the log names the client, and that PHP never ran.
fn assert_refused(stack: &Stack, cases: &[(&str, Vec<u8>)], status: u16) {
    for (case, bytes) in cases {
        let (answer, kept) = exchange(stack, bytes);
        assert_eq!(answer.status, status, "case {case}: {answer:?}\n{}", stack.bulkhead.log());
        assert!(!kept, "case {case}: the connection was kept after {status}");
        assert_eq!(field(&answer.head, "content-type"), Some("text/plain; charset=utf-8"));
    }
    let named = |log: &str| log.lines().filter(|l| l.contains("client sent a bad request")).count();
    let logged = poll_until(READ_TIMEOUT, || {
        let log = stack.bulkhead.log();
        (named(&log) >= cases.len()).then_some(log)
    });
    let log = logged.unwrap_or_else(|| {
        panic!("fewer log lines than {} refusals:\n{}", cases.len(), stack.bulkhead.log())
    });
    assert!(log.contains("client=127.0.0.1:"), "the log does not name the client:\n{log}");
    assert!(!log.contains("worker request failed"), "blamed on the worker:\n{log}");
    // A request served after the refused ones: once its line is in, theirs would be too.
    let sentinel = format!("{}-after", cases[0].0);
    assert_served(stack, &sentinel, &post(&sentinel, "Content-Length: 2\r\n", b"ok"), "ok");
    for (case, _) in cases {
        assert!(!ran(stack, case), "PHP ran for refused case {case}:\n{}", probes(stack));
    }
}

/// Asserts that `bytes` is served by PHP (200, the connection kept) with body `body`.
fn assert_served(stack: &Stack, case: &str, bytes: &[u8], body: &str) -> serde_json::Value {
    let (answer, kept) = exchange(stack, bytes);
    assert_eq!(answer.status, 200, "case {case}: {answer:?}\n{}", stack.bulkhead.log());
    assert!(kept, "case {case}: the connection was closed after a 200");
    let json = answer.json();
    assert_eq!(json["body"], body, "case {case}: {json}");
    assert!(ran_eventually(stack, case), "case {case}: no probe line:\n{}", probes(stack));
    json
}

const TE: &str = "Transfer-Encoding: chunked\r\n";

#[test]
fn bad_chunked_bodies_are_the_clients_400_and_reach_no_php() {
    let stack = stack();
    let chunked = |case: &str, body: &str| (case.to_owned(), post(case, TE, body.as_bytes()));
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(17 * 1024));
    let cases = [
        chunked("leading-space", " 5\r\nhello\r\n0\r\n\r\n"),
        chunked("hex-prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        chunked("negative", "-5\r\nhello\r\n0\r\n\r\n"),
        chunked("over-64-bits", "10000000000000000\r\nhello\r\n0\r\n\r\n"),
        chunked("huge-digits", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        chunked("data-too-long", "5\r\nhelloXX\r\n0\r\n\r\n"),
        chunked("no-crlf-after-data", "5\r\nhello0\r\n\r\n"),
        chunked("bare-cr", "5\rhello\r\n0\r\n\r\n"),
        chunked("not-hex", "g\r\nhello\r\n0\r\n\r\n"),
        chunked("ext-bare-lf", "5;a=b\nhello\r\n0\r\n\r\n"),
        // Stricter than nginx, which accepts these: hyper refuses a size line ended by a
        // bare LF, and more than 16 KiB of extensions in one body.
        chunked("bare-lf", "5\nhello\n0\n\n"),
        chunked("extensions-over-16k", &long_ext),
    ];
    let cases: Vec<(&str, Vec<u8>)> = cases.iter().map(|(c, b)| (c.as_str(), b.clone())).collect();
    assert_refused(&stack, &cases, 400);
}

#[test]
fn chunk_extensions_and_whitespace_within_bounds_are_served() {
    let stack = stack();
    let many = format!("5{}\r\nhello\r\n0\r\n\r\n", ";x=y".repeat(200));
    let cases = [
        ("extensions", "5;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n".to_owned()),
        ("many-extensions", many),
        ("long-extension", format!("5;{}\r\nhello\r\n0\r\n\r\n", "v".repeat(8 * 1024))),
        ("space-after-size", "5 \r\nhello\r\n0\r\n\r\n".to_owned()),
        ("two-chunks", "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n".to_owned()),
        ("upper-hex", "A\r\nhellohello\r\n0\r\n\r\n".to_owned()),
    ];
    for (case, body) in &cases {
        let expected = if *case == "upper-hex" { "hellohello" } else { "hello" };
        assert_served(&stack, case, &post(case, TE, body.as_bytes()), expected);
    }
}

#[test]
fn forbidden_trailers_are_dropped_and_the_request_served() {
    let stack = stack();
    let trailers = [
        "Transfer-Encoding: chunked\r\n",
        "Connection: close\r\n",
        "Content-Length: 999\r\n",
        "Host: other.localhost\r\n",
        "X-Bulkhead-Peer: 6.6.6.6:1\r\n",
        "X-Checksum: abc\r\n",
    ];
    for (n, trailer) in trailers.iter().enumerate() {
        let case = format!("trailer-{n}");
        let body = format!("5\r\nhello\r\n0\r\n{trailer}\r\n");
        let json = assert_served(&stack, &case, &post(&case, TE, body.as_bytes()), "hello");
        assert_eq!(json["server"]["HTTP_HOST"], HOST, "{trailer}: {json}");
    }
    assert!(!probes(&stack).contains("app=other"), "a trailer routed the request");
}

#[test]
fn a_body_cut_short_is_the_clients_400_buffered_or_streamed() {
    let stack = stack();
    // Past 64 KiB a body is streamed to the worker: that takes the other app's max_body.
    let cases = [
        ("short-buffered", format!("Host: {HOST}\r\nContent-Length: 10\r\n\r\nhello")),
        ("short-streamed", format!("Host: {OTHER}\r\nContent-Length: 100000\r\n\r\nhello")),
        ("short-chunked", format!("Host: {HOST}\r\n{TE}\r\n5\r\nhel")),
    ];
    for (case, rest) in cases {
        let mut raw = Raw::connect(stack.addr());
        raw.send(format!("POST /echo.php?case={case} HTTP/1.1\r\n{rest}").as_bytes());
        raw.stream.shutdown(std::net::Shutdown::Write).expect("half-closing the connection");
        let answer = raw.answer();
        let log = stack.bulkhead.log();
        let answer = answer.unwrap_or_else(|| panic!("case {case}: no answer\n{log}"));
        assert_eq!(answer.status, 400, "case {case}: {answer:?}\n{log}");
    }
    let sentinel = post("short-after", "Content-Length: 2\r\n", b"ok");
    assert_served(&stack, "short-after", &sentinel, "ok");
    for case in ["short-buffered", "short-streamed", "short-chunked"] {
        assert!(!ran(&stack, case), "PHP ran for {case}: {}", probes(&stack));
    }
    let log = stack.bulkhead.log();
    assert!(!log.contains("worker request failed"), "blamed on the worker:\n{log}");
}

#[test]
fn a_transfer_coding_other_than_chunked_is_501_before_php() {
    let stack = stack();
    fn coded<'a>(case: &'a str, te: &str) -> (&'a str, Vec<u8>) {
        (case, post(case, te, b"5\r\nhello\r\n0\r\n\r\n"))
    }
    let cases = [
        coded("gzip-chunked", "Transfer-Encoding: gzip, chunked\r\n"),
        coded("chunked-chunked", "Transfer-Encoding: chunked, chunked\r\n"),
        coded("deflate-chunked", "Transfer-Encoding: deflate,chunked\r\n"),
    ];
    assert_refused(&stack, &cases, 501);
    let two = coded("two-te-lines", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n");
    assert_refused(&stack, &[two], 400);
    // hyper's own parser answers these 400 before the gateway sees them (nginx: 400 for
    // HTTP/1.0, 501 for a coding that does not end in chunked); nothing reaches PHP.
    let old = b"POST /echo.php?case=http10 HTTP/1.0\r\nHost: frame.localhost\r\n\
                Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let gzip = coded("gzip-only", "Transfer-Encoding: gzip\r\n");
    for (case, bytes) in [("http10", old.to_vec()), gzip] {
        let (answer, kept) = exchange(&stack, &bytes);
        assert_eq!((answer.status, kept), (400, false), "{case}: {answer:?}");
        assert!(!ran(&stack, case), "PHP ran for {case}");
    }
    // Both Transfer-Encoding and Content-Length: hyper drops the length and reads the
    // body as chunked (RFC 9112 §6.3 allows that; nginx answers 400), and closes the
    // connection after the answer, so no second request can hide behind the first.
    let te = coded("te-and-length", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n").1;
    let (answer, kept) = exchange(&stack, &te);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["body"], "hello", "{answer:?}");
    assert!(!kept, "the connection was kept after Transfer-Encoding with Content-Length");
    assert_served(
        &stack,
        "upper-chunked",
        &post("upper-chunked", "Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        "hello",
    );
}

/// A GET of `target` with raw header lines.
fn get(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

#[test]
fn hosts_and_targets_the_client_may_not_send_are_400() {
    let stack = stack();
    let host = format!("Host: {HOST}\r\n");
    let cases = [
        ("two-hosts", get("GET", "/echo.php?case=two-hosts", &format!("{host}{host}"))),
        (
            "two-different-hosts",
            get("GET", "/echo.php?case=two-different-hosts", &format!("{host}Host: {OTHER}\r\n")),
        ),
        (
            "host-list",
            get("GET", "/echo.php?case=host-list", &format!("Host: {HOST}, {OTHER}\r\n")),
        ),
        (
            "host-userinfo",
            get("GET", "/echo.php?case=host-userinfo", &format!("Host: u@{HOST}\r\n")),
        ),
        ("no-host", get("GET", "/echo.php?case=no-host", "")),
        ("authority-form", get("GET", &format!("{OTHER}:80"), &host)),
        ("connect", get("CONNECT", &format!("{OTHER}:80"), &host)),
        ("asterisk", get("OPTIONS", "*", &host)),
        (
            "absolute-no-host",
            get("GET", &format!("http://{OTHER}/echo.php?case=absolute-no-host"), ""),
        ),
        ("absolute-ftp", get("GET", &format!("ftp://{OTHER}/echo.php?case=absolute-ftp"), &host)),
    ];
    assert_refused(&stack, &cases, 400);
    let all = probes(&stack);
    assert!(!all.contains("app=other"), "a refused target reached the other app:\n{all}");
}

#[test]
fn in_absolute_form_the_target_names_the_host() {
    let stack = stack();
    let target = format!("http://{OTHER}/echo.php?case=absolute");
    let json =
        assert_served(&stack, "absolute", &get("GET", &target, &format!("Host: {HOST}\r\n")), "");
    assert_eq!(json["server"]["HTTP_HOST"], OTHER, "{json}");
    assert!(probes(&stack).contains("framing-probe absolute app=other"), "{}", probes(&stack));
    let upper = format!("http://{}/echo.php?case=absolute-upper", OTHER.to_uppercase());
    let json = assert_served(
        &stack,
        "absolute-upper",
        &get("GET", &upper, &format!("Host: {HOST}\r\n")),
        "",
    );
    assert_eq!(json["server"]["HTTP_HOST"], OTHER, "{json}");
}

#[test]
fn expect_100_continue_past_max_body_is_413_at_once() {
    let stack = stack();
    let expect = "Expect: 100-continue\r\n";
    let mut raw = Raw::connect(stack.addr());
    raw.send(&post("expect-over", &format!("{expect}Content-Length: 5000\r\n"), b""));
    let answer = raw.answer().expect("an answer without sending the body");
    assert_eq!(answer.status, 413, "{answer:?}");
    // Within max_body: 100 Continue, then the body, then PHP's answer.
    let mut raw = Raw::connect(stack.addr());
    raw.send(&post("expect-within", &format!("{expect}Content-Length: 5\r\n"), b""));
    let first = raw.answer().expect("100 Continue");
    assert_eq!(first.status, 100, "{first:?}");
    raw.send(b"hello");
    let answer = raw.answer().expect("PHP's answer");
    assert_eq!((answer.status, answer.json()["body"].as_str()), (200, Some("hello")));
    assert!(ran_eventually(&stack, "expect-within"));
    assert!(!ran(&stack, "expect-over"), "PHP ran for a body over max_body");
    // Over max_body without Expect, by length or streamed: 413, no PHP.
    let big = vec![b'x'; 5000];
    let (answer, _) = exchange(&stack, &post("length-over", "Content-Length: 5000\r\n", &big));
    assert_eq!(answer.status, 413, "{answer:?}");
    let chunked = format!("1388\r\n{}\r\n0\r\n\r\n", "x".repeat(5000));
    let (answer, _) = exchange(&stack, &post("chunked-over", TE, chunked.as_bytes()));
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_served(&stack, "over-after", &post("over-after", "Content-Length: 2\r\n", b"ok"), "ok");
    assert!(!ran(&stack, "length-over") && !ran(&stack, "chunked-over"), "{}", probes(&stack));
}

#[test]
fn an_h2_upload_past_max_body_is_a_413_response() {
    let stack = stack();
    let client = stack.client(Proto::H2c);
    let big = vec![b'x'; 64 * 1024];
    let reply = client.post(HOST, "/echo.php?case=h2-length", "text/plain", big.clone());
    assert_eq!(reply.status, 413, "{reply:?}\n{}", stack.bulkhead.log());
    // Streamed (no length): a complete 413 once the body passes max_body, then
    // RST_STREAM(NO_ERROR) for the rest of the upload (RFC 9113 §8.1), never a bare reset.
    let status = h2_upload(stack.addr(), "/echo.php?case=h2-streamed", 4 << 20);
    assert_eq!(status, 413, "{}", stack.bulkhead.log());
    // curl too: the rest of the upload is read and dropped, so its stream ends cleanly.
    let (status, stderr) = curl_h2_upload(&stack, "/echo.php?case=h2-curl", 512 * 1024);
    assert_eq!(status, "413", "{stderr}\n{}", stack.bulkhead.log());
    let reply = client.post(HOST, "/echo.php?case=h2-within", "text/plain", b"hello".to_vec());
    assert_eq!((reply.status, reply.json()["body"].as_str()), (200, Some("hello")));
    assert!(ran_eventually(&stack, "h2-within"));
    for case in ["h2-length", "h2-streamed", "h2-curl"] {
        assert!(!ran(&stack, case), "PHP ran for {case}: {}", probes(&stack));
    }
}

/// POSTs `len` bytes from a pipe (so without a length) over h2c with curl; its status
/// and its stderr.
fn curl_h2_upload(stack: &Stack, path: &str, len: usize) -> (String, String) {
    let port = stack.addr().port();
    let mut child = std::process::Command::new("curl")
        .args(["-sSv", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "20", "-X", "POST", "-T", "-"])
        .args(["--resolve", &format!("{HOST}:{port}:127.0.0.1")])
        .arg(format!("http://{HOST}:{port}{path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running curl (apt-get install curl)");
    let mut stdin = child.stdin.take().expect("curl's stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&vec![b'x'; len]);
    });
    let out = child.wait_with_output().expect("curl's output");
    let _ = writer.join();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr))
}

/// A request body of `left` bytes in 4 KiB frames with no length known in advance.
struct Chunks {
    left: usize,
}

impl hyper::body::Body for Chunks {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let n = self.left.min(4096);
        if n == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= n;
        let data = hyper::body::Bytes::from(vec![b'x'; n]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

/// POSTs `len` bytes without a length over h2c with hyper's client; the status.
fn h2_upload(addr: SocketAddr, path: &str, len: usize) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    runtime.expect("a test runtime").block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connecting to the gateway");
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("an h2c handshake");
        tokio::spawn(conn);
        let body = Chunks { left: len };
        let request =
            hyper::Request::post(format!("http://{HOST}{path}")).body(body).expect("a request");
        let call = sender.send_request(request);
        let response = tokio::time::timeout(READ_TIMEOUT, call).await.expect("an answer in time");
        let response = response.unwrap_or_else(|e| panic!("no response, {e:?}"));
        response.status().as_u16()
    })
}

#[test]
fn twelve_cookies_of_1500_bytes_pass_the_channel() {
    let stack = stack();
    let reply = stack.client(Proto::Http1).get(HOST, "/cookies.php");
    assert_eq!(reply.status, 200, "{reply:?}\n{}", stack.bulkhead.log());
    assert_twelve_cookies(&reply.headers);
    // The test client's own limit (reqwest's default is 16 KiB) raised to take the head.
    let h2 = reqwest::blocking::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .http2_max_header_list_size(256 * 1024)
        .resolve(HOST, stack.addr())
        .build()
        .expect("an HTTP/2 client taking large heads");
    let url = format!("http://{HOST}:{}/cookies.php", stack.addr().port());
    let reply = h2.get(url).send().unwrap_or_else(|e| panic!("{e:?}\n{}", stack.bulkhead.log()));
    assert_eq!((reply.status().as_u16(), reply.version()), (200, reqwest::Version::HTTP_2));
    assert_twelve_cookies(reply.headers());
}

fn assert_twelve_cookies(headers: &reqwest::header::HeaderMap) {
    let cookies: Vec<&str> =
        headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies.len(), 12, "{cookies:?}");
    for (i, cookie) in cookies.iter().enumerate() {
        let letter = char::from(b'a' + u8::try_from(i).expect("12 cookies"));
        let expected = format!("c{i}={}", letter.to_string().repeat(1500));
        assert!(cookie.starts_with(&expected), "cookie {i}: {cookie}");
    }
}

/// Everything the gateway sends on a TLS connection (negotiating `alpn`) after `request`,
/// until it closes; and the protocol ALPN chose.
fn over_tls(world: &TlsWorld, alpn: &[u8], request: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    let name = ServerName::try_from("alpha.localhost").expect("a DNS name");
    let conn = rustls::ClientConnection::new(world.client_config(&[alpn]), name)
        .expect("a client connection");
    let sock = TcpStream::connect(world.https).expect("connecting to the TLS listener");
    sock.set_read_timeout(Some(READ_TIMEOUT)).expect("a read timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request).expect("sending over TLS");
    let chosen = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading over TLS: {e} (after {} bytes)", out.len()),
        }
        if out.starts_with(b"HTTP/1.1") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    (chosen, out)
}

/// The HTTP/2 frames in `bytes`: `(type, payload)`.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let Some(payload) = bytes.get(9..9 + len) else { break };
        out.push((bytes[3], payload.to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}

#[test]
fn after_alpn_h2_http11_bytes_get_a_goaway_not_an_answer() {
    let world = TlsWorld::start(&[("alpha", KeyType::P256)], &[]);
    let request = b"GET / HTTP/1.1\r\nHost: alpha.localhost\r\n\r\n";
    let (chosen, out) = over_tls(&world, b"h2", request);
    assert_eq!(chosen.as_deref(), Some(&b"h2"[..]));
    assert!(!out.windows(8).any(|w| w == b"HTTP/1.1"), "served as HTTP/1.1: {out:?}");
    // Only HTTP/2 frames (the server's SETTINGS, perhaps a GOAWAY), then the end.
    let sent = frames(&out);
    assert_eq!(sent.first().map(|f| f.0), Some(0x4), "no SETTINGS first: {out:?}");
    let framed: usize = sent.iter().map(|(_, payload)| 9 + payload.len()).sum();
    assert_eq!(framed, out.len(), "bytes that are no HTTP/2 frame: {out:?}");
    for (kind, payload) in &sent {
        assert!(matches!(kind, 0x4 | 0x7 | 0x8), "frame type {kind}: {payload:?}");
        if *kind == 0x7 {
            assert_eq!(payload.get(4..8), Some(&[0u8, 0, 0, 1][..]), "GOAWAY: {payload:?}");
        }
    }
    // The same bytes after ALPN http/1.1 are served.
    let (chosen, out) = over_tls(&world, b"http/1.1", request);
    assert_eq!(chosen.as_deref(), Some(&b"http/1.1"[..]));
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_streamed_body_stalled_past_client_body_timeout_is_408_not_502() {
    let options = bulkhead_tests::StackOptions {
        top: vec!["client_body_timeout = \"1s\"".into()],
        ..Default::default()
    };
    let stack = Stack::start_with(&[AppPlan::new("frame").file("echo.php", ECHO)], &options);
    for (case, head, body) in [
        ("stalled-chunked", TE.to_owned(), &b"5\r\nhel"[..]),
        ("stalled-long", "Content-Length: 100000\r\n".to_owned(), &b"hello"[..]),
    ] {
        let mut raw = Raw::connect(stack.addr());
        raw.send(&post(case, &head, body));
        let answer = raw.answer().unwrap_or_else(|| panic!("{case}: no answer"));
        assert_eq!(answer.status, 408, "{case}: {answer:?}\n{}", stack.bulkhead.log());
    }
    let log = stack.bulkhead.log();
    assert!(!log.contains("worker request failed"), "blamed on the worker:\n{log}");
}

#[test]
fn a_head_past_the_workers_limit_is_502_and_the_log_names_the_limit() {
    let stack = stack();
    let reply = stack.client(Proto::Http1).get(HOST, "/cookies48.php");
    assert_eq!(reply.status, 502, "{reply:?}");
    // The worker's limit is the first on the path and its line names it; the gateway's
    // channel (128 KiB) is never what refuses.
    let named = poll_until(READ_TIMEOUT, || {
        let log = stack.bulkhead.log();
        log.contains("CGI header block exceeds 65536 bytes").then_some(log)
    });
    let log = named.unwrap_or_else(|| panic!("no line names the limit:\n{}", stack.bulkhead.log()));
    assert!(!log.contains("worker request failed"), "the channel refused the head:\n{log}");
}

/// `GET path` over h2c with nghttp and the given extra fields; the `:status` it printed.
fn nghttp_status(stack: &Stack, path: &str, fields: &[&str]) -> (Option<u16>, String) {
    let url = format!("http://127.0.0.1:{}{path}", stack.addr().port());
    let mut cmd = std::process::Command::new("nghttp");
    cmd.args(["-v", "-t", "20"]).arg(&url);
    for f in fields {
        cmd.args(["-H", f]);
    }
    let out = cmd.output().expect("running nghttp (apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.trim().split_once(":status: ").map(|(_, s)| s.trim().to_owned()))
        .and_then(|s| s.parse().ok());
    (status, text)
}

#[test]
fn over_h2_a_host_field_must_name_the_authority() {
    let stack = stack();
    let authority = format!(":authority: {HOST}");
    let (status, out) = nghttp_status(&stack, "/echo.php?case=h2-same", &[&authority]);
    assert_eq!(status, Some(200), "{out}");
    let other = format!("host: {OTHER}");
    let (status, out) = nghttp_status(&stack, "/echo.php?case=h2-mismatch", &[&authority, &other]);
    assert_eq!(status, Some(400), "{out}\n{}", stack.bulkhead.log());
    assert!(ran_eventually(&stack, "h2-same"));
    assert!(!probes(&stack).contains("h2-mismatch"), "{}", probes(&stack));
}
