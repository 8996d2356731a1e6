//! HTTP/2 behaviours h2spec checks, as exact frames in and frames out over h2c (h2spec
//! itself is not packaged for Debian; where it is available, run
//! `h2spec -h 127.0.0.1 -p PORT` against a listener): an invalid connection preface
//! (§3.5), SETTINGS_INITIAL_WINDOW_SIZE given twice in one frame (§6.5.3), a stream
//! window of 1 (§6.9.1), a window changed after the request (§6.9.2), and a header block
//! split over CONTINUATION frames (§6.10).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bulkhead_tests::probe::{h2_frame, h2_get_block};
use bulkhead_tests::{AppPlan, Stack};

const HOST: &str = "alpha.localhost";
const BODY: &str = "static-ok";
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const INITIAL_WINDOW_SIZE: u16 = 0x4;

fn stack() -> Stack {
    Stack::start(&[AppPlan::new("alpha").file("static.txt", BODY)])
}

/// One frame as read: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

struct Conn(TcpStream);

impl Conn {
    fn open(stack: &Stack) -> Self {
        let conn = TcpStream::connect(stack.addr()).expect("connecting to the gateway");
        conn.set_read_timeout(Some(Duration::from_secs(5))).expect("setting a read timeout");
        Self(conn)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("sending frames");
    }

    /// The next frame; `None` at the end of the stream or after 5 s of silence.
    fn frame(&mut self) -> Option<Frame> {
        let mut head = [0; 9];
        self.0.read_exact(&mut head).ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        self.0.read_exact(&mut payload).ok()?;
        Some((head[3], head[4], stream, payload))
    }

    /// Frames until one of `kind` on `stream` (returned) or the end.
    fn until(&mut self, kind: u8, stream: u32, seen: &mut Vec<Frame>) -> Option<Frame> {
        while let Some(frame) = self.frame() {
            if frame.0 == kind && frame.2 == stream {
                return Some(frame);
            }
            seen.push(frame);
        }
        None
    }
}

fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, v)| [id.to_be_bytes().to_vec(), v.to_be_bytes().to_vec()].concat())
        .collect();
    let mut out = Vec::new();
    h2_frame(&mut out, SETTINGS, 0, 0, &payload);
    out
}

fn get(stream: u32) -> Vec<u8> {
    let mut out = Vec::new();
    h2_frame(
        &mut out,
        HEADERS,
        END_STREAM | END_HEADERS,
        stream,
        &h2_get_block(HOST, "/static.txt"),
    );
    out
}

/// After `opening`, the first DATA frame of stream 1 must carry exactly one byte, and the
/// rest of the body follows one WINDOW_UPDATE at a time.
fn one_byte_at_a_time(opening: &[u8], after_headers: &[u8]) {
    let stack = stack();
    let mut conn = Conn::open(&stack);
    conn.send(opening);
    conn.send(&get(1));
    conn.send(after_headers);
    let mut seen = Vec::new();
    let mut body = Vec::new();
    while body.len() < BODY.len() {
        let data = conn.until(DATA, 1, &mut seen);
        let (_, flags, _, payload) = data.unwrap_or_else(|| panic!("no DATA frame; saw {seen:?}"));
        assert_eq!(payload.len(), 1, "a stream window of 1 allows one byte a frame: {payload:?}");
        body.extend_from_slice(&payload);
        if body.len() < BODY.len() {
            assert_eq!(flags & END_STREAM, 0, "the body is not over yet");
            let mut update = Vec::new();
            h2_frame(&mut update, WINDOW_UPDATE, 0, 1, &1u32.to_be_bytes());
            conn.send(&update);
        }
    }
    assert_eq!(String::from_utf8_lossy(&body), BODY);
    assert!(seen.iter().any(|f| f.0 == HEADERS && f.2 == 1), "the response's HEADERS came first");
}

#[test]
fn a_stream_window_of_one_gets_one_byte_a_frame() {
    // h2spec 6.9.1/1.
    let mut opening = PREFACE.to_vec();
    opening.extend(settings(&[(INITIAL_WINDOW_SIZE, 1)]));
    one_byte_at_a_time(&opening, &[]);
}

#[test]
fn of_two_initial_window_sizes_in_one_frame_the_last_counts() {
    // h2spec 6.5.3/1.
    let mut opening = PREFACE.to_vec();
    opening.extend(settings(&[(INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)]));
    one_byte_at_a_time(&opening, &[]);
}

#[test]
fn a_window_opened_after_the_request_lets_one_byte_through() {
    // h2spec 6.9.2/1: window 0 at the request, then 1.
    let mut opening = PREFACE.to_vec();
    opening.extend(settings(&[(INITIAL_WINDOW_SIZE, 0)]));
    one_byte_at_a_time(&opening, &settings(&[(INITIAL_WINDOW_SIZE, 1)]));
}

#[test]
fn a_header_block_in_continuation_frames_is_answered() {
    // h2spec 6.10/1.
    let stack = stack();
    let mut conn = Conn::open(&stack);
    let block = h2_get_block(HOST, "/static.txt");
    let (a, rest) = block.split_at(2);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut out = PREFACE.to_vec();
    out.extend(settings(&[]));
    h2_frame(&mut out, HEADERS, END_STREAM, 1, a);
    h2_frame(&mut out, CONTINUATION, 0, 1, b);
    h2_frame(&mut out, CONTINUATION, END_HEADERS, 1, c);
    conn.send(&out);
    let mut seen = Vec::new();
    let headers = conn.until(HEADERS, 1, &mut seen);
    assert!(headers.is_some(), "the request must be answered; saw {seen:?}");
    let data = conn.until(DATA, 1, &mut seen).expect("the body");
    assert_eq!(String::from_utf8_lossy(&data.3), BODY);
}

#[test]
fn an_invalid_connection_preface_ends_the_connection_at_once() {
    // h2spec 3.5/2 sends this instead of the preface. Over h2c it reads as a malformed
    // HTTP/1.1 request line: either way the connection must end, not wait.
    let stack = stack();
    for bytes in [&b"INVALID CONNECTION PREFACE\r\n\r\n"[..], b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"] {
        let mut conn = Conn::open(&stack);
        let started = Instant::now();
        conn.send(bytes);
        let mut got = Vec::new();
        let mut buf = [0; 4096];
        let ended = loop {
            match conn.0.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&got);
        println!(
            "{:?}: {} bytes back, ended after {took:?}",
            String::from_utf8_lossy(bytes),
            got.len()
        );
        assert!(ended, "the connection must be closed, not left open: {text:?}");
        let goaway = contains_frame(&got, GOAWAY);
        assert!(goaway || text.starts_with("HTTP/1.1 400"), "a GOAWAY or a 400: {text:?}");
        assert!(took < Duration::from_secs(3), "at once, not after a timeout: {took:?}");
    }
}

/// Whether `bytes`, read as frames after the server's preface, hold one of `kind`.
fn contains_frame(bytes: &[u8], kind: u8) -> bool {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        if bytes[at + 3] == kind {
            return true;
        }
        at += 9 + len;
    }
    false
}
