//! Request heads larger than `client_max_header_size` get 431: over HTTP/1.1 the
//! connection is then closed, lingering so that a client still sending its 1 MiB of
//! headers reads the status instead of a reset; over h2c the 431 answers that stream only
//! and the connection serves the next request (64 and 100 KiB heads, past the default
//! limit), while a 1 MiB header block, past what the HTTP/2 layer holds, ends its
//! connection. With a limit of 8K, 6 KiB of headers are
//! served and 9 KiB are not, on both protocols.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::socket::{setsockopt, sockopt};

const HOST: &str = "alpha.localhost";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn stack(top: &[&str]) -> Stack {
    let plan = AppPlan::new("alpha").file("static.txt", "static-ok");
    let top = top.iter().map(|l| (*l).to_owned()).collect();
    Stack::start_with(&[plan], &StackOptions { top, ..Default::default() })
}

#[test]
fn a_mib_of_http1_headers_gets_431_which_a_client_still_sending_reads() {
    let stack = stack(&[]);
    let mut conn = TcpStream::connect(stack.addr()).expect("connecting to the gateway");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("setting a read timeout");
    conn.set_write_timeout(Some(Duration::from_secs(20))).expect("setting a write timeout");
    // A fixed send buffer, so the headers are still being sent when the 431 comes (an
    // autotuned one would take the whole MiB at once on loopback).
    setsockopt(&conn, sockopt::SndBuf, &(32 * KIB)).expect("setting SO_SNDBUF");
    let head =
        format!("GET /static.txt HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {}\r\n\r\n", "a".repeat(MIB));
    // Like a naive client: everything is written before anything is read.
    let written = conn.write_all(head.as_bytes());
    let mut answer = String::new();
    let read = conn.read_to_string(&mut answer);
    println!(
        "1 MiB of headers: write {written:?}, read {read:?}, answer {:?}",
        answer.lines().next()
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "write {written:?}, read {read:?}: {answer:?}");
    // Without lingering the write fails (EPIPE, a reset), and a client such as curl gives up
    // there without reading the status.
    assert!(
        written.is_ok(),
        "the gateway stopped reading while the client was sending: {written:?}"
    );
    assert!(read.is_ok(), "the connection must end with a close, not a reset: {read:?}");
    assert_eq!(stack.client(Proto::Http1).get(HOST, "/static.txt").text(), "static-ok");
}

/// Sends GETs with an `x-pad` header of each size on one h2c connection; their statuses.
fn h2c_statuses(stack: &Stack, pads: &[usize]) -> Vec<u16> {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(stack.addr()).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        let mut statuses = Vec::new();
        for pad in pads {
            let mut req = hyper::Request::get(format!("http://{HOST}/static.txt"));
            if *pad > 0 {
                req = req.header("x-pad", "a".repeat(*pad));
            }
            let req = req.body(Empty::<Bytes>::new()).expect("a request");
            sender.ready().await.expect("the connection still serves");
            let resp = sender.send_request(req).await.expect("a response on the same connection");
            statuses.push(resp.status().as_u16());
            let _ = resp.into_body().collect().await;
        }
        statuses
    })
}

/// A head past `client_max_header_size` but within what the HTTP/2 layer holds (twice
/// that) gets a 431 on its stream, and the connection serves on. A 1 MiB header block
/// ends its connection (GOAWAY ENHANCE_YOUR_CALM: more CONTINUATION frames than that bound
/// allows), so that a slow client cannot make the gateway hold a MiB per connection; the
/// next connection is served.
#[test]
fn h2c_heads_of_64_kib_get_431_and_of_a_mib_end_their_connection() {
    let stack = stack(&[]);
    let statuses = h2c_statuses(&stack, &[64 * KIB, 0, 100 * KIB, 0]);
    println!("h2c: 64 KiB, none, 100 KiB, none: {statuses:?}");
    assert_eq!(statuses, [431, 200, 431, 200]);
    let huge = std::panic::catch_unwind(|| h2c_statuses(&stack, &[MIB]));
    println!("h2c: 1 MiB: {huge:?}");
    assert!(huge.as_ref().is_err() || huge.as_ref().is_ok_and(|s| s == &[431]), "{huge:?}");
    assert_eq!(h2c_statuses(&stack, &[0]), [200], "a new connection is served");
}

#[test]
fn with_a_limit_of_8k_6_kib_of_headers_are_served_and_9_kib_get_431() {
    let stack = stack(&["client_max_header_size = \"8K\""]);
    let statuses = h2c_statuses(&stack, &[6 * KIB, 9 * KIB, 0]);
    println!("h2c with 8K: 6 KiB, 9 KiB, none: {statuses:?}");
    assert_eq!(statuses, [200, 431, 200]);
    let client = stack.client(Proto::Http1);
    for (pad, expected) in [(6 * KIB, 200), (9 * KIB, 431)] {
        let request = client
            .request(reqwest::Method::GET, HOST, "/static.txt")
            .header("x-pad", "a".repeat(pad));
        let reply = client.send(request).expect("an answer");
        println!("HTTP/1.1 with 8K: {pad} bytes: {}", reply.status);
        assert_eq!(reply.status, expected, "{pad} bytes of headers");
    }
}

/// nginx limits a head by its bytes only; so does Bulkhead, up to 1,000 fields: 300 small
/// fields (4 KiB in all) are served over HTTP/1.1, as over h2c.
#[test]
fn three_hundred_small_header_fields_are_served() {
    let stack = stack(&[]);
    let mut conn = TcpStream::connect(stack.addr()).expect("connecting to the gateway");
    conn.set_read_timeout(Some(Duration::from_secs(10))).expect("setting a read timeout");
    let fields: String = (0..300).map(|i| format!("X-F{i}: v\r\n")).collect();
    let head =
        format!("GET /static.txt HTTP/1.1\r\nHost: {HOST}\r\n{fields}Connection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).expect("sending the head");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("static-ok"), "{answer}");
}
