//! The gateway–worker channel under hostile clients: requests cancelled in bursts (HTTP/1.1
//! connections reset with `SO_LINGER` 0, h2c HEADERS followed by RST_STREAM) must not look
//! like an attack to the worker's HTTP/2 server, and while they run a second client of the
//! same app and a client of another app are served without a single failure (their p99
//! latency is printed, not asserted). An app whose worker is killed serves again on a new
//! channel (the recovery time is printed). More stalled uploads than a channel has streams
//! (1100 over HTTP/1.1, 11 × 100 over h2c) hold only their own connections: the app's other
//! clients are served throughout.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bulkhead_tests::probe::{
    ECHO, OTHER, VICTIM, h2_frame as frame, h2_get_block, h2_preface, survives, two_apps,
};
use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions};
use nix::sys::socket::{setsockopt, sockopt};

const BURSTS: usize = 20;
const HTTP1_PER_BURST: usize = 200;
const H2_STREAMS_PER_BURST: u32 = 100;
/// The pause between two bursts, so each lands on a gateway that has handled the last.
const BURST_GAP: Duration = Duration::from_millis(50);

/// `n` connections that each send a request and are then reset at once (`SO_LINGER` 0).
fn http1_abort_burst(addr: SocketAddr, n: usize) {
    let request = format!("GET /echo.php HTTP/1.1\r\nHost: {VICTIM}\r\n\r\n");
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut conn) = TcpStream::connect(addr) else { continue };
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        setsockopt(&conn, sockopt::Linger, &linger).expect("setting SO_LINGER");
        if conn.write_all(request.as_bytes()).is_ok() {
            conns.push(conn);
        }
    }
    drop(conns);
}

/// One h2c connection: `streams` HEADERS in one write, then as many RST_STREAM in a second.
fn h2c_reset_burst(addr: SocketAddr, streams: u32) {
    let Ok(mut conn) = TcpStream::connect(addr) else { return };
    let mut opening = h2_preface();
    let block = h2_get_block(VICTIM, "/echo.php");
    let ids: Vec<u32> = (0..streams).map(|n| 2 * n + 1).collect();
    for id in &ids {
        frame(&mut opening, 0x1, 0x5, *id, &block);
    }
    let mut resets = Vec::new();
    for id in &ids {
        frame(&mut resets, 0x3, 0, *id, &8u32.to_be_bytes());
    }
    if conn.write_all(&opening).is_ok() {
        let _ = conn.write_all(&resets);
    }
}

/// Runs [`BURSTS`] bursts of `burst`, [`BURST_GAP`] apart, under [`survives`].
fn bursts(burst: impl Fn(SocketAddr)) {
    survives(&format!("{BURSTS} bursts"), |stack| {
        for _ in 0..BURSTS {
            burst(stack.addr());
            std::thread::sleep(BURST_GAP);
        }
    });
}

#[test]
fn http1_requests_reset_in_bursts_leave_the_app_serving() {
    bursts(|addr| http1_abort_burst(addr, HTTP1_PER_BURST));
}

#[test]
fn h2c_headers_then_rst_stream_in_bursts_leave_the_app_serving() {
    bursts(|addr| h2c_reset_burst(addr, H2_STREAMS_PER_BURST));
}

/// How long an app whose channel died may take to serve again (measured and printed).
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

#[test]
fn an_app_whose_worker_was_killed_serves_again_on_a_new_channel() {
    let stack = two_apps();
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(VICTIM, "/echo.php").text(), "echo-ok");
    let pids = stack.bulkhead.app_state("victim").ready_pids();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pids[0]).expect("pids fit in i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("sending SIGKILL");
    let killed = Instant::now();
    let recovered = bulkhead_tests::load::time_until_ok(
        stack.addr(),
        VICTIM,
        "/echo.php",
        "echo-ok",
        RECOVERY_BOUND,
    );
    println!(
        "worker killed: served again after {recovered:?} ({:?} since the kill)",
        killed.elapsed()
    );
    assert!(recovered.is_some(), "not served again:\n{}", stack.bulkhead.log());
    assert_eq!(client.get(OTHER, "/echo.php").text(), "echo-ok");
}

/// More stalled uploads than one channel has streams (1024).
const STALLED_UPLOADS: usize = 1100;
const STALLED_H2_CONNECTIONS: u32 = 11;
const STALLED_H2_STREAMS: u32 = 100;

/// A length the gateway reads whole before forwarding.
const SMALL: usize = 1000;
/// A length the gateway streams to the worker.
const LARGE: usize = 1 << 20;

/// An upload that declares `declared` bytes and sends 10, then stalls (kept open by the
/// caller).
fn stalled_http1_upload(addr: SocketAddr, declared: usize) -> Option<TcpStream> {
    let mut conn = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST /echo.php HTTP/1.1\r\nHost: {VICTIM}\r\nContent-Length: {declared}\r\n\r\n0123456789"
    );
    conn.write_all(head.as_bytes()).ok()?;
    Some(conn)
}

/// One h2c connection with `streams` uploads that declare `declared` bytes and send 10.
fn stalled_h2c_uploads(addr: SocketAddr, streams: u32, declared: usize) -> Option<TcpStream> {
    let mut conn = TcpStream::connect(addr).ok()?;
    let mut out = h2_preface();
    let mut block = h2_get_block(VICTIM, "/echo.php");
    block[0] = 0x83; // :method POST
    // content-length: literal without indexing, static name index 28.
    let declared = declared.to_string();
    block.extend_from_slice(&[0x0f, 28 - 15, u8::try_from(declared.len()).expect("short")]);
    block.extend_from_slice(declared.as_bytes());
    for id in (0..streams).map(|n| 2 * n + 1) {
        frame(&mut out, 0x1, 0x4, id, &block);
        frame(&mut out, 0x0, 0, id, b"0123456789");
    }
    conn.write_all(&out).ok()?;
    Some(conn)
}

/// Holds `stalled` open for 3 s under [`survives`].
fn stalled_bodies_hold_only_their_connections(stall: impl Fn(&Stack) -> Vec<TcpStream>) {
    survives("stalled uploads", |stack| {
        let stalled = stall(stack);
        println!("{} stalled connections open", stalled.len());
        std::thread::sleep(Duration::from_secs(3));
    });
}

#[test]
fn eleven_hundred_stalled_http1_uploads_starve_no_client_of_the_app() {
    for declared in [SMALL, LARGE] {
        stalled_bodies_hold_only_their_connections(|stack| {
            (0..STALLED_UPLOADS)
                .filter_map(|_| stalled_http1_upload(stack.addr(), declared))
                .collect()
        });
    }
}

#[test]
fn eleven_hundred_stalled_h2c_uploads_starve_no_client_of_the_app() {
    for declared in [SMALL, LARGE] {
        stalled_bodies_hold_only_their_connections(|stack| {
            (0..STALLED_H2_CONNECTIONS)
                .filter_map(|_| stalled_h2c_uploads(stack.addr(), STALLED_H2_STREAMS, declared))
                .collect()
        });
    }
}

#[test]
fn a_small_upload_stalled_past_client_body_timeout_gets_408() {
    let options =
        StackOptions { top: vec!["client_body_timeout = \"1s\"".into()], ..Default::default() };
    let stack = Stack::start_with(&[AppPlan::new("victim").file("echo.php", ECHO)], &options);
    let mut conn = stalled_http1_upload(stack.addr(), SMALL).expect("connecting to the gateway");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("setting a read timeout");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(VICTIM, "/echo.php").text(), "echo-ok");
}
