//! `fastcgi_keepalive`: the worker keeps FastCGI connections to php-fpm open and reuses
//! them, never more than configured at once, and copes with php-fpm closing them.
//!
//! php-fpm serves one connection per child, so which children answer (their pids) shows
//! which connections carried the requests: one kept connection means one child, and a
//! child recycled by `pm.max_requests` means a closed connection that had to be replaced.

use std::collections::BTreeSet;
use std::time::Duration;

use bulkhead_tests::{AppPlan, Proto, Stack};
use reqwest::Method;

/// Answers its php-fpm child's pid and the length of the request body.
const PID_SCRIPT: &str = "<?php echo getmypid(), ' ', strlen(file_get_contents('php://input'));";

fn app(keepalive: u32) -> AppPlan {
    AppPlan::new("kept")
        .file("pid.php", PID_SCRIPT)
        .line(&format!("fastcgi_keepalive = {keepalive}"))
}

/// `count` requests in a row on one client (a POST with `body_len` bytes every third,
/// unless `body_len` is 0); the pids that answered. Fails on any status but 200 or a
/// body length that is off.
fn pids_in_a_row(stack: &Stack, count: usize, body_len: usize) -> Vec<u32> {
    let client = stack.client(Proto::Http1);
    (0..count)
        .map(|n| {
            let post = n % 3 == 2 && body_len > 0;
            let (method, sent) = if post { (Method::POST, body_len) } else { (Method::GET, 0) };
            let request =
                client.request(method, "kept.localhost", "/pid.php").body(vec![b'x'; sent]);
            let reply = client.send(request).expect("an answer");
            assert_eq!(reply.status, 200, "request {n}: {reply:?}");
            let text = reply.text();
            let (pid, len) = text.split_once(' ').expect("pid and length");
            assert_eq!(len, sent.to_string(), "request {n}: the body arrived whole");
            pid.parse().expect("a pid")
        })
        .collect()
}

fn distinct(pids: &[u32]) -> BTreeSet<u32> {
    pids.iter().copied().collect()
}

#[test]
fn one_kept_connection_carries_every_request_to_one_child() {
    let stack = Stack::start(&[app(1)]);
    let pids = pids_in_a_row(&stack, 30, 1000);
    assert_eq!(distinct(&pids).len(), 1, "one connection, one child: {pids:?}");
}

#[test]
fn without_keepalive_the_children_take_turns() {
    // The control for the test above: a connection per request, accepted by whichever
    // child waits, so the pool's four children share the work.
    let stack = Stack::start(&[app(0)]);
    let pids = pids_in_a_row(&stack, 30, 1000);
    assert!(distinct(&pids).len() > 1, "a connection per request: {pids:?}");
}

#[test]
fn concurrent_requests_never_use_more_connections_than_allowed() {
    let stack = Stack::start(&[app(2)]);
    let pids = in_parallel(&stack, 8, 15, 70_000);
    assert_eq!(pids.len(), 120);
    let children = distinct(&pids);
    assert!(children.len() <= 2, "two connections, so at most two of four children: {children:?}");
}

fn in_parallel(stack: &Stack, clients: usize, each: usize, body_len: usize) -> Vec<u32> {
    std::thread::scope(|scope| {
        let threads: Vec<_> =
            (0..clients).map(|_| scope.spawn(|| pids_in_a_row(stack, each, body_len))).collect();
        threads.into_iter().flat_map(|t| t.join().expect("a client thread panicked")).collect()
    })
}

#[test]
fn children_that_php_fpm_recycles_are_replaced_without_a_failed_request() {
    // Each child exits after 2 requests, closing its kept connection: 40 requests in a
    // row find their connection closed about every other time, before use or while
    // sending; every one must still succeed, bodies included (70 KB goes to a temp file).
    let stack = Stack::start(&[app(2).fpm_max_requests(2)]);
    let pids = pids_in_a_row(&stack, 40, 70_000);
    assert!(distinct(&pids).len() >= 20, "recycled children answered: {pids:?}");
}

#[test]
fn under_load_a_child_closing_after_its_last_request_costs_no_request() {
    // Eight clients at once: a connection is handed to the next request the moment its
    // response ends, often before the child that is about to exit has closed it. Such a
    // GET finds the connection closing under it and is sent again on a new one.
    let stack = Stack::start(&[app(2).fpm_max_requests(3)]);
    let pids = in_parallel(&stack, 8, 20, 0);
    assert!(distinct(&pids).len() >= 40, "recycled children answered: {}", distinct(&pids).len());
}

/// Busy for 2.4 s but never silent for more than 0.3 s: a dot at a time, then its pid.
const TRICKLE: &str = r#"<?php
header('Content-Type: text/plain');
while (ob_get_level()) { ob_end_flush(); }
for ($i = 0; $i < 8; $i++) { echo '.'; flush(); usleep(300000); }
echo getmypid();
"#;

/// While `fastcgi_keepalive = 1`'s only connection serves the trickle, one more request:
/// its status and answer, and the trickle's.
fn behind_a_busy_connection(timeout: &str) -> ((u16, String), (u16, String)) {
    let stack = Stack::start(&[app(1).file("trickle.php", TRICKLE).timeout(timeout)]);
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| stack.client(Proto::Http1).get("kept.localhost", "/trickle.php"));
        std::thread::sleep(Duration::from_millis(300));
        let waiting = stack.client(Proto::Http1).get("kept.localhost", "/pid.php");
        let busy = busy.join().expect("the trickle's client thread panicked");
        ((waiting.status, waiting.text()), (busy.status, busy.text()))
    })
}

#[test]
fn a_request_waits_for_the_busy_connection_and_takes_it_over() {
    let ((status, text), (busy_status, busy_text)) = behind_a_busy_connection("10s");
    assert_eq!((status, busy_status), (200, 200), "{text} / {busy_text}");
    let trickle_pid = busy_text.trim_start_matches('.');
    let waited_pid = text.split(' ').next().unwrap_or_default();
    assert_eq!(waited_pid, trickle_pid, "served on the one connection, by the same child");
}

#[test]
fn a_request_waits_for_a_connection_no_longer_than_the_timeout() {
    // The trickle is never silent for the 1 s timeout; the waiting request gets no
    // connection within it.
    let ((status, text), (busy_status, _)) = behind_a_busy_connection("1s");
    assert_eq!(status, 504, "{text}");
    assert_eq!(busy_status, 200, "the busy request is unaffected");
}
