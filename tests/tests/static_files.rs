//! Static files through the whole stack: content types, ETag/Last-Modified with 304,
//! single ranges (206) and unsatisfiable ones (416), HEAD, precompressed siblings chosen
//! by Accept-Encoding, and no directory listings.

use bulkhead_tests::{AppPlan, Client, Proto, Reply, Stack};
use reqwest::Method;

const HOST: &str = "alpha.localhost";
const DIGITS: &str = "0123456789abcdefghij";

fn app() -> Stack {
    let plan = AppPlan::new("alpha")
        .file("index.php", "<?php echo 'php';")
        .file("digits.txt", DIGITS)
        .file("app.js", "console.log('plain')")
        .file("app.js.gz", "GZIPPED-BYTES")
        .file("app.js.br", "BROTLI-BYTES")
        .file("assets/readme.txt", "in a directory without index");
    let types = [
        "a.html", "a.css", "a.js", "a.mjs", "a.json", "a.svg", "a.png", "a.jpg", "a.jpeg", "a.gif",
        "a.webp", "a.avif", "a.ico", "a.woff", "a.woff2", "a.ttf", "a.otf", "a.txt", "a.xml",
        "a.pdf", "a.wasm", "a.map", "a.mp4", "a.webm", "a.mp3", "a.zip",
    ];
    let plan = types.iter().fold(plan, |plan, name| plan.file(&format!("types/{name}"), "x"));
    Stack::start(&[plan])
}

fn get(client: &Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let request =
        headers.iter().fold(client.request(Method::GET, HOST, path), |r, (k, v)| r.header(*k, *v));
    client.send(request).expect("a reply")
}

#[test]
fn common_web_types_get_the_right_content_type() {
    let stack = app();
    let client = stack.client(Proto::Http1);
    let expected = [
        ("a.html", "text/html"),
        ("a.css", "text/css"),
        ("a.js", "text/javascript"),
        // mime_guess still says application/javascript for .mjs; browsers take either.
        ("a.mjs", "application/javascript"),
        ("a.json", "application/json"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("a.ico", "image/x-icon"),
        // mime_guess's older name for WOFF 1; browsers load fonts whatever the type.
        ("a.woff", "application/font-woff"),
        ("a.woff2", "font/woff2"),
        ("a.ttf", "font/ttf"),
        ("a.otf", "application/font-sfnt"),
        ("a.txt", "text/plain"),
        ("a.xml", "text/xml"),
        ("a.pdf", "application/pdf"),
        ("a.wasm", "application/wasm"),
        ("a.map", "text/plain"),
        ("a.mp4", "video/mp4"),
        ("a.webm", "video/webm"),
        ("a.mp3", "audio/mpeg"),
        ("a.zip", "application/zip"),
    ];
    for (name, ty) in expected {
        let reply = client.get(HOST, &format!("/types/{name}"));
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
        let got = reply.header("content-type").unwrap_or("");
        assert!(got.starts_with(ty), "{name}: expected {ty}, got {got}");
    }
}

#[test]
fn conditional_requests_get_304() {
    let stack = app();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let first = client.get(HOST, "/digits.txt");
        assert_eq!((first.status, first.text().as_str()), (200, DIGITS), "{first:?}");
        let etag = first.header("etag").expect("an ETag").to_owned();
        let modified = first.header("last-modified").expect("a Last-Modified").to_owned();
        assert_eq!(first.header("accept-ranges"), Some("bytes"));
        let by_tag = get(&client, "/digits.txt", &[("if-none-match", &etag)]);
        assert_eq!(by_tag.status, 304, "{proto:?}: {by_tag:?}");
        assert!(by_tag.body.is_empty());
        let by_date = get(&client, "/digits.txt", &[("if-modified-since", &modified)]);
        assert_eq!(by_date.status, 304, "{proto:?}: {by_date:?}");
        let changed = get(&client, "/digits.txt", &[("if-none-match", "\"other\"")]);
        assert_eq!(changed.status, 200, "{proto:?}: {changed:?}");
    }
}

#[test]
fn range_requests_get_206_or_416_and_head_gets_headers_only() {
    let stack = app();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let part = get(&client, "/digits.txt", &[("range", "bytes=2-5")]);
        assert_eq!(part.status, 206, "{proto:?}: {part:?}");
        assert_eq!(part.header("content-range"), Some("bytes 2-5/20"));
        assert_eq!(part.text(), "2345");
        let tail = get(&client, "/digits.txt", &[("range", "bytes=-3")]);
        assert_eq!((tail.status, tail.text().as_str()), (206, "hij"), "{tail:?}");
        let past = get(&client, "/digits.txt", &[("range", "bytes=20-")]);
        assert_eq!(past.status, 416, "{proto:?}: {past:?}");
        assert_eq!(past.header("content-range"), Some("bytes */20"));
        let multi = get(&client, "/digits.txt", &[("range", "bytes=0-1,4-5")]);
        assert_eq!((multi.status, multi.text().as_str()), (200, DIGITS), "{multi:?}");
        let head = client.send(client.request(Method::HEAD, HOST, "/digits.txt")).expect("reply");
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.header("content-length"), Some("20"));
        assert!(head.body.is_empty());
    }
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let stack = app();
    let client = stack.client(Proto::Http1);
    let br = get(&client, "/app.js", &[("accept-encoding", "gzip, deflate, br")]);
    assert_eq!(br.header("content-encoding"), Some("br"), "{br:?}");
    assert_eq!(br.text(), "BROTLI-BYTES");
    assert!(br.header("content-type").unwrap_or("").starts_with("text/javascript"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    let gz = get(&client, "/app.js", &[("accept-encoding", "gzip")]);
    assert_eq!(
        (gz.header("content-encoding"), gz.text().as_str()),
        (Some("gzip"), "GZIPPED-BYTES")
    );
    let plain = get(&client, "/app.js", &[("accept-encoding", "identity")]);
    assert_eq!(plain.header("content-encoding"), None, "{plain:?}");
    assert_eq!(plain.text(), "console.log('plain')");
    // JavaScript is compressible, so its answer varies whatever this client takes.
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "{plain:?}");
    let refused = get(&client, "/app.js", &[("accept-encoding", "br;q=0, gzip")]);
    assert_eq!(refused.header("content-encoding"), Some("gzip"), "{refused:?}");
    assert_eq!(refused.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn directories_are_never_listed() {
    let stack = app();
    let client = stack.client(Proto::Http1);
    for path in ["/assets/", "/assets", "/types/"] {
        let reply = client.get(HOST, path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert!(!reply.text().contains("readme.txt") && !reply.text().contains("a.css"));
    }
}
