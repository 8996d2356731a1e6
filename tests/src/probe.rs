//! Clients measured while a test attacks the gateway: one thread per target sends
//! sequential requests on its own keep-alive connection until stopped, and reports each
//! failure word for word and its p99 latency (printed, never asserted). [`survives`]
//! runs an attack on a two-app stack ([`two_apps`]) under such probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{AppPlan, Client, Proto, Stack};

/// One probe thread's result: its target, its failures word for word, its latencies.
type Probed = (String, Vec<String>, Vec<Duration>);

/// Sequential requests from one client per target until stopped.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Probed>>,
}

impl Probe {
    /// One thread per `(host, path, expected body)`, each with its own keep-alive client.
    pub fn start(stack: &Stack, targets: &[(&str, &str, &str)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = targets
            .iter()
            .map(|(host, path, expect)| {
                let (host, path, expect) = (host.to_string(), path.to_string(), expect.to_string());
                let client = stack.client(Proto::Http1);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || probe(&client, &host, &path, &expect, &stop))
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops every thread; prints each one's p99 and returns every failure.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for thread in self.threads {
            let (name, failed, mut latencies) = thread.join().expect("a probe thread panicked");
            latencies.sort();
            let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
            let max = latencies.last().copied().unwrap_or_default();
            println!(
                "{name}: {} requests, {} failed, p99 {p99:?}, max {max:?}",
                latencies.len() + failed.len(),
                failed.len()
            );
            failures.extend(failed);
        }
        failures
    }
}

/// The attacked app's host in [`two_apps`].
pub const VICTIM: &str = "victim.localhost";
/// The other app's host in [`two_apps`].
pub const OTHER: &str = "other.localhost";
/// A script that takes a moment, so cancelled requests are still in the worker's hands.
pub const ECHO: &str = "<?php usleep(2000); header('Content-Type: text/plain'); echo 'echo-ok';";

/// Two apps: `victim` (`/echo.php` answers `echo-ok`, `/static.txt` is `static-ok`) and
/// `other` (`/echo.php`).
pub fn two_apps() -> Stack {
    Stack::start(&[
        AppPlan::new("victim").file("echo.php", ECHO).file("static.txt", "static-ok"),
        AppPlan::new("other").file("echo.php", ECHO),
    ])
}

/// Runs `attack` on a fresh [`two_apps`] stack while a script and a static file of the
/// victim and a script of the other app are probed. Asserts that no probe request
/// failed, that the victim still serves afterwards, and that no gateway channel failed.
pub fn survives(what: &str, attack: impl FnOnce(&Stack)) {
    let stack = two_apps();
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(VICTIM, "/echo.php").text(), "echo-ok");
    let probe = Probe::start(
        &stack,
        &[
            (VICTIM, "/echo.php", "echo-ok"),
            (VICTIM, "/static.txt", "static-ok"),
            (OTHER, "/echo.php", "echo-ok"),
        ],
    );
    let started = Instant::now();
    attack(&stack);
    println!("{what}: over in {:?}", started.elapsed());
    let failures = probe.finish();
    let log = stack.bulkhead.log();
    assert!(
        failures.is_empty(),
        "{} probe requests failed during {what}; first ones:\n{}\nlog:\n{log}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n"),
    );
    let after = client.get(VICTIM, "/echo.php");
    assert_eq!((after.status, after.text()), (200, "echo-ok".to_owned()), "after {what}");
    assert!(!log.contains("gateway channel failed"), "a channel died during {what}:\n{log}");
}

fn probe(client: &Client, host: &str, path: &str, expect: &str, stop: &AtomicBool) -> Probed {
    let (mut failures, mut latencies) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        match client.send(client.request(reqwest::Method::GET, host, path)) {
            Ok(reply) if reply.status == 200 && reply.text() == expect => {
                latencies.push(sent.elapsed());
            }
            Ok(reply) => failures.push(format!("{:?} {host}{path}: {reply:?}", started.elapsed())),
            Err(err) => failures.push(format!("{:?} {host}{path}: {err:?}", started.elapsed())),
        }
    }
    (format!("{host}{path}"), failures, latencies)
}

/// Appends one HTTP/2 frame (RFC 9113 §4.1).
pub fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a frame under 16 MiB");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The client connection preface and an empty SETTINGS frame.
pub fn h2_preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_frame(&mut out, 0x4, 0, 0, &[]);
    out
}

/// An HPACK block for `GET http://{host}{path}` (static-table names, no Huffman coding).
pub fn h2_get_block(host: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    for (index, value) in [(0x04, path), (0x01, host)] {
        block.push(index);
        block.push(u8::try_from(value.len()).expect("a header value under 127 bytes"));
        block.extend_from_slice(value.as_bytes());
    }
    block
}
