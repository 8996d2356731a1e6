//! A script's response reaches the client framed exactly as it declared it.
//!
//! A body longer than the script's `Content-Length` is cut to it (the client gets the
//! declared response and the connection stays usable); a shorter one is a 502 when the
//! gateway learns it before the head went out, else it reaches the client cut (HTTP/1.1:
//! the connection closes after what there is; HTTP/2: the stream is reset): never a
//! complete shorter response. An unparsable `Content-Length` is a 502. Each case is logged with the app's name. `X-Accel-Redirect` takes raw UTF-8.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bulkhead_tests::{AppPlan, Proto, Stack};

const LONG: &str =
    "<?php header('Content-Length: 10'); echo str_repeat('a', 10), str_repeat('b', 10);";
const SHORT: &str = "<?php header('Content-Length: 30'); echo str_repeat('a', 10);";
const BAD: &str = "<?php header('Content-Length: ten'); echo 'x';";
const ACCEL: &str = "<?php header('X-Accel-Redirect: /files/résumé 2024.txt'); echo 'not this';";

fn stack() -> Stack {
    let app = AppPlan::new("framed")
        .file("long.php", LONG)
        .file("short.php", SHORT)
        .file("bad.php", BAD)
        .file("accel.php", ACCEL)
        .file("files/résumé 2024.txt", "the résumé");
    Stack::start(&[app])
}

/// One HTTP/1.1 request on a raw connection; everything the gateway sends until it closes
/// (or 3 s pass with the connection open, which is reported as `false`).
fn raw_exchange(stack: &Stack, path: &str) -> (String, bool) {
    let mut conn = TcpStream::connect(stack.addr()).expect("connecting");
    conn.set_read_timeout(Some(Duration::from_secs(3))).expect("a timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: framed.localhost\r\n\r\n");
    conn.write_all(request.as_bytes()).expect("sending");
    let mut got = Vec::new();
    let closed = conn.read_to_end(&mut got).is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn a_body_is_held_to_the_scripts_content_length() {
    let stack = stack();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let long = client.get("framed.localhost", "/long.php");
        assert_eq!((long.status, long.text().as_str()), (200, "aaaaaaaaaa"), "{proto:?}: {long:?}");
        let again = client.get("framed.localhost", "/long.php");
        assert_eq!(again.text(), "aaaaaaaaaa", "{proto:?}: the connection keeps serving");
        let head =
            client.send(client.request(reqwest::Method::HEAD, "framed.localhost", "/long.php"));
        let head = head.expect("a HEAD response");
        assert_eq!((head.status, head.header("content-length")), (200, Some("10")), "{proto:?}");
        let short =
            client.send(client.request(reqwest::Method::GET, "framed.localhost", "/short.php"));
        assert!(
            short.as_ref().is_err_and(reqwest::Error::is_body)
                || short.as_ref().is_ok_and(|r| r.status == 502),
            "{proto:?}: a short body must not look complete: {short:?}"
        );
        let bad = client.get("framed.localhost", "/bad.php");
        assert_eq!(bad.status, 502, "{proto:?}: {bad:?}");
        let accel = client.get("framed.localhost", "/accel.php");
        assert_eq!((accel.status, accel.text().as_str()), (200, "the résumé"), "{proto:?}");
    }

    let (short, closed) = raw_exchange(&stack, "/short.php");
    let cut = short.to_ascii_lowercase().contains("content-length: 30")
        && short.ends_with("\r\n\r\naaaaaaaaaa")
        && closed;
    assert!(
        cut || short.starts_with("HTTP/1.1 502 "),
        "a 502, or the head and what there is, then the close:\n{short}"
    );

    let log = stack.bulkhead.log();
    assert!(log.contains("the script sent more than its Content-Length"), "{log}");
    assert!(log.contains("the script sent less than its Content-Length"), "{log}");
    assert!(log.contains("invalid CGI header Content-Length"), "{log}");
}
