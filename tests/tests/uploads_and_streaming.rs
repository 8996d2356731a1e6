//! Request bodies and responses through the whole stack against real php-fpm: a 5 MiB
//! multipart upload (spilled to the worker's private temp dir on the way), a chunked
//! upload with no Content-Length, 413 past `max_body`, a streamed response whose first
//! bytes arrive while the script still sleeps, `X-Accel-Redirect` served by the worker,
//! and php-fpm's stderr logged with the app's name but never sent to the client.

use std::io::Read;
use std::time::{Duration, Instant};

use bulkhead_tests::php::{BODY_SHA256, pattern_bytes};
use bulkhead_tests::{AppPlan, Proto, Reply, Stack, sha256_hex, unique_token};
use reqwest::Method;

const HOST: &str = "alpha.localhost";
const BOUNDARY: &str = "bulkhead-test-boundary-7d1f";

const UPLOAD: &str = r#"<?php
header('Content-Type: application/json');
$f = $_FILES['upload'] ?? null;
echo json_encode([
    'error' => $f['error'] ?? null,
    'name' => $f['name'] ?? null,
    'size' => $f['size'] ?? null,
    'sha256' => $f ? hash_file('sha256', $f['tmp_name']) : null,
    'field' => $_POST['note'] ?? null,
]);
"#;

const STREAM: &str = r#"<?php
header('X-Accel-Buffering: no');
header('Content-Type: text/plain');
while (ob_get_level()) { ob_end_flush(); }
echo "first\n";
flush();
sleep(1);
echo "second\n";
"#;

fn app(stderr_marker: &str) -> Stack {
    let plan = AppPlan::new("alpha")
        .file("upload.php", UPLOAD)
        .file("hash.php", BODY_SHA256)
        .file("stream.php", STREAM)
        .file(".user.ini", "upload_max_filesize = 16M\npost_max_size = 16M\n")
        .file("download.php", "<?php header('Content-Disposition: attachment; filename=\"f.zip\"'); header('X-Accel-Redirect: /protected/file.zip'); echo 'SCRIPT BODY';")
        .file("sneaky.php", "<?php header('X-Accel-Redirect: ' . $_GET['to']); echo 'SCRIPT BODY';")
        .file("protected/file.zip", "PK-zip-bytes")
        .file("protected/secret.php", "<?php // PHP-SOURCE-MARKER")
        .file(".env", "APP_KEY=dotenv-secret")
        .file("noisy.php", &format!("<?php error_log('{stderr_marker}'); echo 'quiet';"))
        .max_body("8M");
    Stack::start(&[plan])
}

fn multipart(file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[test]
fn a_5_mib_multipart_upload_reaches_php_intact() {
    let stack = app("unused");
    let file = pattern_bytes(5 << 20);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    for proto in [Proto::Http1, Proto::H2c] {
        let reply = stack.client(proto).post(HOST, "/upload.php", &content_type, multipart(&file));
        assert_eq!(reply.status, 200, "{proto:?}: {reply:?}");
        let json = reply.json();
        assert_eq!(json["error"], 0, "{proto:?}: {json}");
        assert_eq!(json["size"], 5 << 20, "{json}");
        assert_eq!(json["sha256"], sha256_hex(&file), "{json}");
        assert_eq!(
            (json["name"].as_str(), json["field"].as_str()),
            (Some("big.bin"), Some("hello"))
        );
    }
}

#[test]
fn a_chunked_upload_gets_an_exact_length_and_an_excess_gets_413() {
    let stack = app("unused");
    let client = stack.client(Proto::Http1);
    let body = pattern_bytes(300_000);
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(body.clone()));
    let request = client.request(Method::POST, HOST, "/hash.php").body(chunked);
    let reply = client.send(request).expect("a reply");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), format!("300000 {}", sha256_hex(&body)));
    let too_big = pattern_bytes((8 << 20) + 1);
    // The 413 comes before the body has been read, and the connection then
    // closes: a client still writing may see the reset before the answer.
    let declared = client.request(Method::POST, HOST, "/hash.php").body(too_big.clone());
    assert_refused_as_too_large(client.send(declared));
    let counted = reqwest::blocking::Body::new(std::io::Cursor::new(too_big));
    let request = client.request(Method::POST, HOST, "/hash.php").body(counted);
    assert_refused_as_too_large(client.send(request));
}

fn assert_refused_as_too_large(sent: Result<Reply, reqwest::Error>) {
    match sent {
        Ok(reply) => assert_eq!(reply.status, 413, "{reply:?}"),
        Err(err) => assert!(err.is_request() || err.is_body(), "{err:?}"),
    }
}

#[test]
fn streamed_output_reaches_the_client_before_the_script_ends() {
    let stack = app("unused");
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let started = Instant::now();
        let mut response =
            client.request(Method::GET, HOST, "/stream.php").send().expect("response head");
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-accel-buffering").is_none(), "X-Accel-* hidden");
        let mut first = [0u8; 6];
        response.read_exact(&mut first).expect("first chunk");
        let first_at = started.elapsed();
        let mut rest = String::new();
        response.read_to_string(&mut rest).expect("the rest");
        let done_at = started.elapsed();
        assert_eq!(&first, b"first\n");
        assert_eq!(rest, "second\n");
        assert!(first_at < Duration::from_millis(700), "{proto:?}: first chunk after {first_at:?}");
        assert!(done_at >= Duration::from_secs(1), "{proto:?}: the script sleeps 1 s");
    }
}

#[test]
fn x_accel_redirect_serves_a_file_inside_the_root_only() {
    let stack = app("unused");
    let client = stack.client(Proto::Http1);
    let reply = client.get(HOST, "/download.php");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), "PK-zip-bytes");
    assert_eq!(reply.header("content-type"), Some("application/zip"));
    assert_eq!(reply.header("content-disposition"), Some("attachment; filename=\"f.zip\""));
    assert!(reply.header("x-accel-redirect").is_none(), "{reply:?}");
    for target in ["/protected/secret.php", "/.env", "/../../../../etc/passwd", "/protected/"] {
        let reply = client.get(HOST, &format!("/sneaky.php?to={target}"));
        assert!(matches!(reply.status, 400 | 404), "{target}: {reply:?}");
        let text = reply.text();
        assert!(!text.contains("PHP-SOURCE-MARKER") && !text.contains("dotenv-secret"));
        assert!(!text.contains("SCRIPT BODY") && !text.contains("root:"), "{target}: {reply:?}");
    }
}

#[test]
fn php_stderr_is_logged_with_the_app_name_and_never_sent() {
    let marker = unique_token("stderr-marker");
    let stack = app(&marker);
    let reply = stack.client(Proto::Http1).get(HOST, "/noisy.php");
    assert_eq!((reply.status, reply.text().as_str()), (200, "quiet"), "{reply:?}");
    assert!(!reply.text().contains(&marker));
    let logged = bulkhead_tests::net::poll_until(Duration::from_secs(5), || {
        let log = stack.bulkhead.log();
        log.lines().find(|l| l.contains(&marker)).map(str::to_owned)
    });
    let line = logged.unwrap_or_else(|| panic!("stderr not logged:\n{}", stack.bulkhead.log()));
    assert!(line.contains("alpha"), "the log line names the app: {line}");
}
