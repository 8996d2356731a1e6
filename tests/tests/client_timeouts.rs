//! nginx's client timeouts and connection limits, end to end with 2 s timeouts: a silent
//! connection, a partial HTTP/2 preface, a partial HTTP/1.1 head and an h2c connection that
//! sent only SETTINGS are closed by `client_header_timeout`; idle HTTP/1.1 and h2c
//! keep-alive connections by `keepalive_timeout`; a stalled upload gets 408
//! (`client_body_timeout`); a client that never reads a large response is cut by
//! `send_timeout`. SIGTERM with idle connections exits at once. `max_connections` and
//! `max_connections_per_client` close the connections past them with a log line, while
//! other addresses are still served. Every measured time is printed; the assertions only
//! bound it loosely (closed after at least half the timeout, before three times it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bulkhead_tests::probe::h2_preface;
use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::signal::Signal;

const HOST: &str = "victim.localhost";
const TIMEOUT: Duration = Duration::from_secs(2);
/// 64 MiB, far more than the socket buffers and windows between PHP and the client.
const LARGE: &str = "<?php $s = str_repeat('x', 1 << 20); for ($i = 0; $i < 64; $i++) { echo $s; }";

/// A stack with every timeout at 2 s, except those `top` sets.
fn stack(top: &[&str]) -> Stack {
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let mut lines: Vec<String> =
        ["client_header_timeout", "keepalive_timeout", "send_timeout", "client_body_timeout"]
            .iter()
            .filter(|k| !top.iter().any(|l| key(l) == **k))
            .map(|k| format!("{k} = \"2s\""))
            .collect();
    lines.extend(top.iter().map(|l| (*l).to_owned()));
    let plan = AppPlan::new("victim")
        .file("echo.php", "<?php echo 'echo-ok';")
        .file("static.txt", "static-ok")
        .file("large.php", LARGE);
    Stack::start_with(&[plan], &StackOptions { top: lines, ..Default::default() })
}

/// How long until the gateway closes `conn` (reading and discarding meanwhile).
fn time_to_close(mut conn: TcpStream, since: Instant) -> Duration {
    conn.set_read_timeout(Some(TIMEOUT * 10)).expect("setting a read timeout");
    let mut buf = [0; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    since.elapsed()
}

/// Asserts `took` is a close by a 2 s timeout: not at once, and well before 3 × 2 s.
fn closed_by_the_timeout(what: &str, took: Duration) {
    println!("{what}: closed after {took:?}");
    assert!(took >= TIMEOUT / 2, "{what}: closed too early, after {took:?}");
    assert!(took < TIMEOUT * 3, "{what}: still open after {took:?}");
}

fn connect_and_send(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut conn = TcpStream::connect(addr).expect("connecting to the gateway");
    let at = Instant::now();
    conn.write_all(bytes).expect("sending");
    (conn, at)
}

/// Reads one HTTP/1.1 response with a `Content-Length` off `conn`; returns it whole.
fn read_response(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(TIMEOUT * 5)).expect("setting a read timeout");
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn silent_connections_partial_prefaces_and_heads_are_closed_at_the_header_timeout() {
    let stack = stack(&[]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("a silent connection", Vec::new()),
        ("a partial HTTP/2 preface", b"PRI * HTTP/2.0\r\n".to_vec()),
        (
            "a partial HTTP/1.1 head",
            format!("GET /echo.php HTTP/1.1\r\nHost: {HOST}\r\n").into_bytes(),
        ),
        ("an h2c connection that sent only its preface and SETTINGS", h2_preface()),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(what, bytes)| {
            let (conn, at) = connect_and_send(stack.addr(), &bytes);
            std::thread::spawn(move || (what, time_to_close(conn, at)))
        })
        .collect();
    for thread in threads {
        let (what, took) = thread.join().expect("a timing thread panicked");
        closed_by_the_timeout(what, took);
    }
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(HOST, "/echo.php").text(), "echo-ok");
}

#[test]
fn an_idle_http1_keepalive_connection_is_closed_after_keepalive_timeout() {
    let stack = stack(&[]);
    let request = format!("GET /static.txt HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let (mut conn, _) = connect_and_send(stack.addr(), request.as_bytes());
    // A second request later on the same connection keeps it alive past one timeout.
    assert!(read_response(&mut conn).ends_with("static-ok"));
    std::thread::sleep(TIMEOUT / 2);
    conn.write_all(request.as_bytes()).expect("sending a second request");
    assert!(read_response(&mut conn).ends_with("static-ok"));
    let idle_since = Instant::now();
    closed_by_the_timeout(
        "an idle HTTP/1.1 keep-alive connection",
        time_to_close(conn, idle_since),
    );
}

#[test]
fn an_idle_h2c_connection_is_closed_after_keepalive_timeout() {
    let stack = stack(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let took = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(stack.addr()).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("HTTP/2 handshake");
        let conn = tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://{HOST}/static.txt"))
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let resp = sender.send_request(req).await.expect("a response");
        let body = resp.into_body().collect().await.expect("a body").to_bytes();
        assert_eq!(&body[..], b"static-ok");
        let idle_since = Instant::now();
        let _ = tokio::time::timeout(TIMEOUT * 10, conn).await;
        idle_since.elapsed()
    });
    closed_by_the_timeout("an idle h2c connection", took);
}

#[test]
fn a_stalled_upload_gets_408_after_client_body_timeout() {
    let stack = stack(&[]);
    for declared in [1000, 1 << 20] {
        let head = format!(
            "POST /echo.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {declared}\r\n\r\n0123456789"
        );
        let (mut conn, at) = connect_and_send(stack.addr(), head.as_bytes());
        let answer = read_response(&mut conn);
        let took = at.elapsed();
        println!(
            "an upload of {declared} bytes stalled after 10: {:?} after {took:?}",
            answer.lines().next()
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{declared}: {answer:?}");
        assert!(took < TIMEOUT * 3, "{declared}: answered after {took:?}");
    }
}

/// A small upload (read whole before it goes to a worker) that trickles in, each byte
/// well within `client_body_timeout` of the last, is cut off once the timeout has passed
/// in all, so a slow sender holds its share of the gateway's body budget no longer.
#[test]
fn a_trickling_small_upload_gets_408_once_the_timeout_has_passed_in_all() {
    let stack = stack(&[]);
    let head = format!("POST /echo.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\n\r\n");
    let (mut conn, at) = connect_and_send(stack.addr(), head.as_bytes());
    let mut writer = conn.try_clone().expect("cloning the connection");
    let trickle = std::thread::spawn(move || {
        let mut sent = 0;
        // 1000 bytes at one per 200 ms would take 200 s; each gap is a tenth of 2 s.
        while sent < 1000 && writer.write_all(b"x").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        sent
    });
    let answer = read_response(&mut conn);
    let took = at.elapsed();
    // Ends the sender's writes too (it holds a clone of this socket).
    let _ = conn.shutdown(std::net::Shutdown::Both);
    let sent = trickle.join().expect("the sender");
    println!("trickled {sent} bytes: {:?} after {took:?}", answer.lines().next());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(sent < 1000, "the whole body was accepted at one byte per 200 ms");
    assert!(took < TIMEOUT * 5, "answered after {took:?}");
}

#[test]
fn a_client_that_never_reads_a_large_response_is_cut_by_send_timeout() {
    let stack = stack(&[]);
    let request = format!("GET /large.php HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let (mut conn, _) = connect_and_send(stack.addr(), request.as_bytes());
    // Not reading for three times send_timeout; then everything that arrived is read.
    std::thread::sleep(TIMEOUT * 3);
    conn.set_read_timeout(Some(TIMEOUT)).expect("setting a read timeout");
    let mut received = 0usize;
    let mut buf = vec![0; 1 << 16];
    let ended = loop {
        match conn.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break "still open",
            Err(_) => break "reset",
        }
    };
    println!(
        "a client that did not read for {:?}: {received} bytes of 64 MiB, then {ended}",
        TIMEOUT * 3
    );
    assert!(ended != "still open", "the gateway kept a client that takes no byte");
    assert!(received < 64 << 20, "the whole response arrived: {received}");
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(HOST, "/echo.php").text(), "echo-ok");
}

#[test]
fn sigterm_with_25_idle_connections_exits_at_once() {
    let mut stack = stack(&["shutdown_timeout = \"30s\""]);
    let request = format!("GET /static.txt HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let idle: Vec<TcpStream> = (0..25)
        .map(|n| {
            let (mut conn, _) = connect_and_send(stack.addr(), request.as_bytes());
            if n % 2 == 0 {
                assert!(read_response(&mut conn).ends_with("static-ok"));
            }
            conn
        })
        .collect();
    let signalled = Instant::now();
    stack.bulkhead.signal(Signal::SIGTERM);
    let status = stack.bulkhead.wait_exit(Duration::from_secs(40));
    let took = signalled.elapsed();
    println!("SIGTERM with {} idle connections: exit {status:?} after {took:?}", idle.len());
    assert_eq!(status.expect("the broker did not exit").code(), Some(0));
    assert!(took < Duration::from_secs(10), "idle connections held the shutdown for {took:?}");
}

/// A connection from `local` (a loopback address) to the gateway.
async fn connect_from(local: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::from((local, 0))).expect("binding a loopback address");
    socket.connect(addr).await.expect("connecting to the gateway")
}

/// Whether the gateway closes `conn` unread within a second (a refused connection).
async fn closed_at_once(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A GET on `conn` answered with 200.
async fn served(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /static.txt HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    if conn.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT * 5, conn.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

#[test]
fn the_fourth_connection_of_an_address_allowed_three_is_closed_and_others_are_served() {
    let top = ["client_header_timeout = \"60s\"", "max_connections_per_client = 3"];
    let stack = stack(&top);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(connect_from([127, 0, 0, 1], stack.addr()).await);
        }
        let mut fourth = connect_from([127, 0, 0, 1], stack.addr()).await;
        assert!(closed_at_once(&mut fourth).await, "the 4th connection of 127.0.0.1 was kept");
        let mut other = connect_from([127, 0, 0, 2], stack.addr()).await;
        assert!(served(&mut other).await, "127.0.0.2 was not served");
        let first = open.first_mut().expect("three connections");
        assert!(served(first).await, "a connection within the limit was not served");
        drop(open);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = connect_from([127, 0, 0, 1], stack.addr()).await;
        assert!(served(&mut again).await, "closed connections did not free their places");
    });
    let log = stack.bulkhead.log();
    let line = log.lines().find(|l| l.contains("connection limit reached"));
    println!("{line:?}");
    assert!(
        line.is_some_and(|l| l.contains("max_connections_per_client") && l.contains("127.0.0.1")),
        "{log}"
    );
}

#[test]
fn connections_past_max_connections_are_closed_whatever_their_address() {
    let top = [
        "client_header_timeout = \"60s\"",
        "max_connections = 4",
        "max_connections_per_client = 2",
    ];
    let stack = stack(&top);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut open = Vec::new();
        for local in [[127, 0, 0, 1], [127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 2]] {
            open.push(connect_from(local, stack.addr()).await);
        }
        let mut fifth = connect_from([127, 0, 0, 3], stack.addr()).await;
        assert!(closed_at_once(&mut fifth).await, "a 5th connection was kept");
        let first = open.first_mut().expect("four connections");
        assert!(served(first).await, "a connection within the limit was not served");
    });
    let log = stack.bulkhead.log();
    let line = log.lines().find(|l| l.contains("connection limit reached"));
    println!("{line:?}");
    let global = |l: &str| l.contains("max_connections") && !l.contains("max_connections_per");
    assert!(line.is_some_and(global), "{log}");
}
