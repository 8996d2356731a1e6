//! Responses as nginx shapes them: gzip and brotli negotiated from Accept-Encoding for
//! PHP pages and static files (decompressing to the exact bytes sent), the cases never
//! compressed (q=0, HEAD, ranges, small bodies, images, no-transform), a flushed script
//! still streaming when compressed, 304s with only ETag and Vary, content types without
//! a charset unless the app sets one, and `bulkhead check` on the new keys.

use std::io::Read;
use std::time::{Duration, Instant};

use bulkhead_tests::bulkhead::{self, EXIT_CONFIG};
use bulkhead_tests::{AppPlan, Client, Proto, Reply, Stack};
use reqwest::Method;

const HOST: &str = "alpha.localhost";
const UTF8_HOST: &str = "beta.localhost";

/// A page of 800 table rows, about 21 KB.
const PAGE: &str = r#"<?php
header('Content-Type: text/html; charset=utf-8');
for ($i = 0; $i < 800; $i++) { echo "<p>row $i of the table</p>\n"; }
"#;

const STREAM: &str = r#"<?php
header('Content-Type: text/plain');
while (ob_get_level()) { ob_end_flush(); }
echo str_repeat("first\n", 100);
flush();
sleep(1);
echo str_repeat("second\n", 100);
"#;

fn page_bytes() -> Vec<u8> {
    (0..800).map(|i| format!("<p>row {i} of the table</p>\n")).collect::<String>().into_bytes()
}

fn css() -> String {
    (0..600).map(|i| format!(".c{i} {{ color: #{:06x}; }}\n", i * 97)).collect()
}

fn stack() -> Stack {
    let latin1 = "<meta charset=\"iso-8859-1\"><p>caf\u{e9}</p>";
    let alpha = AppPlan::new("alpha")
        .file("page.php", PAGE)
        .file("stream.php", STREAM)
        .file(
            "notransform.php",
            &format!("<?php header('Cache-Control: no-transform'); ?>{}", "x".repeat(5000)),
        )
        .file("style.css", &css())
        .file("small.txt", "short")
        .file("image.png", &"P".repeat(5000))
        .file("latin1.html", latin1)
        .file("notes.md", "# notes")
        .file("report.docx", "PK")
        .line("types = { \".md\" = \"text/markdown\" }");
    let beta = AppPlan::new("beta")
        .file("a.html", "<p>x</p>")
        .file("a.txt", "x")
        .file("a.css", "p{}")
        .file("page.php", PAGE)
        .line("charset = \"utf-8\"")
        .line("compress = { brotli = false }");
    Stack::start(&[alpha, beta])
}

fn get(client: &Client, host: &str, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let request =
        headers.iter().fold(client.request(method, host, path), |r, (k, v)| r.header(*k, *v));
    client.send(request).expect("a reply")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("valid brotli");
    out
}

#[test]
fn php_pages_are_compressed_and_decompress_to_what_php_sent() {
    let stack = stack();
    let sent = page_bytes();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let plain = get(&client, HOST, Method::GET, "/page.php", &[]);
        assert_eq!(plain.body, sent, "{proto:?}: identity without Accept-Encoding");
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "{plain:?}");
        assert!(plain.header("content-encoding").is_none());

        let gz =
            get(&client, HOST, Method::GET, "/page.php", &[("accept-encoding", "gzip, deflate")]);
        assert_eq!(gz.status, 200, "{gz:?}");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{gz:?}");
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
        assert!(gz.body.len() * 4 < sent.len(), "gzip: {} of {} bytes", gz.body.len(), sent.len());
        assert_eq!(gunzip(&gz.body), sent);

        let br = get(&client, HOST, Method::GET, "/page.php", &[("accept-encoding", "gzip, br")]);
        assert_eq!(br.header("content-encoding"), Some("br"), "{br:?}");
        assert!(br.body.len() * 4 < sent.len(), "br: {} of {} bytes", br.body.len(), sent.len());
        assert_eq!(unbrotli(&br.body), sent);
        eprintln!(
            "{proto:?}: page {} B, gzip {} B, br {} B",
            sent.len(),
            gz.body.len(),
            br.body.len()
        );
    }
    // The app that turned brotli off answers gzip to the same client.
    let client = stack.client(Proto::Http1);
    let beta =
        get(&client, UTF8_HOST, Method::GET, "/page.php", &[("accept-encoding", "br, gzip")]);
    assert_eq!(beta.header("content-encoding"), Some("gzip"), "{beta:?}");
    assert_eq!(gunzip(&beta.body), sent);
}

#[test]
fn what_is_never_compressed() {
    let stack = stack();
    let client = stack.client(Proto::Http1);
    let gzip = [("accept-encoding", "gzip, br")];
    let refused =
        get(&client, HOST, Method::GET, "/page.php", &[("accept-encoding", "gzip;q=0, br;q=0")]);
    assert!(refused.header("content-encoding").is_none(), "q=0: {refused:?}");
    assert_eq!(refused.body, page_bytes());
    assert_eq!(refused.header("vary"), Some("Accept-Encoding"));
    let star = get(&client, HOST, Method::GET, "/page.php", &[("accept-encoding", "*;q=0")]);
    assert!(star.header("content-encoding").is_none(), "*;q=0: {star:?}");
    let head = get(&client, HOST, Method::HEAD, "/style.css", &gzip);
    assert!(head.header("content-encoding").is_none(), "HEAD: {head:?}");
    assert_eq!(head.header("content-length"), Some(css().len().to_string().as_str()));
    let range = get(&client, HOST, Method::GET, "/style.css", &[gzip[0], ("range", "bytes=0-9")]);
    assert_eq!(range.status, 206, "{range:?}");
    assert!(range.header("content-encoding").is_none(), "range: {range:?}");
    assert_eq!(range.body, &css().as_bytes()[..10]);
    assert_eq!(range.header("content-length"), Some("10"));
    assert_eq!(range.header("content-range"), Some(format!("bytes 0-9/{}", css().len()).as_str()));
    let small = get(&client, HOST, Method::GET, "/small.txt", &gzip);
    assert_eq!((small.header("content-encoding"), small.text().as_str()), (None, "short"));
    let image = get(&client, HOST, Method::GET, "/image.png", &gzip);
    assert!(image.header("content-encoding").is_none(), "image: {image:?}");
    assert!(image.header("vary").is_none(), "an image never varies: {image:?}");
    let kept = get(&client, HOST, Method::GET, "/notransform.php", &gzip);
    assert!(kept.header("content-encoding").is_none(), "no-transform: {kept:?}");
    assert_eq!(kept.body.len(), 5000);
}

#[test]
fn static_files_are_compressed_and_their_304s_carry_only_etag_and_vary() {
    let stack = stack();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let gz = get(&client, HOST, Method::GET, "/style.css", &[("accept-encoding", "gzip")]);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{gz:?}");
        assert_eq!(gz.header("content-type"), Some("text/css"));
        assert!(
            gz.header("content-length").is_none()
                || proto == Proto::Http1 && gz.header("transfer-encoding").is_none()
        );
        assert!(gz.header("accept-ranges").is_none(), "{gz:?}");
        assert_eq!(gunzip(&gz.body), css().as_bytes());
        eprintln!("{proto:?}: style.css {} B, gzip {} B", css().len(), gz.body.len());
        let etag = gz.header("etag").expect("an ETag").to_owned();
        assert!(etag.starts_with("W/\""), "a compressed body has a weak ETag: {etag}");

        let cached = get(
            &client,
            HOST,
            Method::GET,
            "/style.css",
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        );
        assert_eq!(cached.status, 304, "{cached:?}");
        assert_eq!(cached.header("etag"), Some(etag.as_str()));
        assert_eq!(cached.header("vary"), Some("Accept-Encoding"));
        for absent in
            ["content-type", "content-length", "accept-ranges", "last-modified", "content-encoding"]
        {
            assert!(cached.header(absent).is_none(), "{proto:?}: a 304 with {absent}: {cached:?}");
        }
        assert!(cached.body.is_empty());

        let plain = get(&client, HOST, Method::GET, "/style.css", &[]);
        let strong = plain.header("etag").expect("an ETag").to_owned();
        assert!(!strong.starts_with("W/"), "{strong}");
        let by_date = plain.header("last-modified").expect("a Last-Modified").to_owned();
        let cached =
            get(&client, HOST, Method::GET, "/style.css", &[("if-modified-since", &by_date)]);
        assert_eq!(cached.status, 304, "{cached:?}");
        assert_eq!(cached.header("etag"), Some(strong.as_str()));
        assert!(
            cached.header("content-type").is_none() && cached.header("accept-ranges").is_none()
        );
    }
}

#[test]
fn a_flushed_script_still_streams_when_compressed() {
    let stack = stack();
    for (coding, proto) in [("gzip", Proto::Http1), ("gzip", Proto::H2c), ("br", Proto::Http1)] {
        let client = stack.client(proto);
        let started = Instant::now();
        let response = client
            .request(Method::GET, HOST, "/stream.php")
            .header("accept-encoding", coding)
            .send()
            .expect("response head");
        assert_eq!(response.status(), 200);
        let encoding = response.headers().get("content-encoding").and_then(|v| v.to_str().ok());
        assert_eq!(encoding, Some(coding), "{proto:?}");
        let mut decoder: Box<dyn Read> = match coding {
            "gzip" => Box::new(flate2::read::GzDecoder::new(response)),
            _ => Box::new(brotli::Decompressor::new(response, 4096)),
        };
        let mut first = vec![0u8; 600];
        decoder.read_exact(&mut first).expect("the first flush decompresses");
        let first_at = started.elapsed();
        let mut rest = Vec::new();
        decoder.read_to_end(&mut rest).expect("the rest");
        let done_at = started.elapsed();
        assert_eq!(first, "first\n".repeat(100).into_bytes());
        assert_eq!(rest, "second\n".repeat(100).into_bytes());
        assert!(
            first_at < Duration::from_millis(700),
            "{coding} {proto:?}: first part after {first_at:?}"
        );
        assert!(done_at >= Duration::from_secs(1), "the script sleeps 1 s");
    }
}

#[test]
fn content_types_carry_a_charset_only_where_the_app_asks() {
    let stack = stack();
    let client = stack.client(Proto::Http1);
    let cases = [
        (HOST, "/latin1.html", "text/html"),
        (HOST, "/small.txt", "text/plain"),
        (HOST, "/notes.md", "text/markdown"),
        (
            HOST,
            "/report.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (UTF8_HOST, "/a.html", "text/html; charset=utf-8"),
        (UTF8_HOST, "/a.txt", "text/plain; charset=utf-8"),
        (UTF8_HOST, "/a.css", "text/css"),
    ];
    for (host, path, ty) in cases {
        let reply = get(&client, host, Method::GET, path, &[]);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some(ty), "{host}{path}");
    }
    let latin1 = get(&client, HOST, Method::GET, "/latin1.html", &[]);
    assert!(latin1.text().contains("caf"), "{latin1:?}");
}

#[test]
fn check_reports_bad_types_charset_and_compress() {
    let dir = bulkhead_tests::temp_dir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let quoted = bulkhead_tests::config::quote(&root.to_string_lossy());
    let cases = [
        ("types = { \"md\" = \"text/markdown\" }", "app[0].types.md", "starts with a dot"),
        ("types = { \".md\" = \"markdown\" }", "app[0].types..md", "not a media type"),
        ("types = { \".tar.gz\" = \"application/gzip\" }", "app[0].types..tar.gz", "one extension"),
        ("charset = \"utf 8\"", "app[0].charset", "charset name"),
        ("compress = { level = 9 }", "app[0].compress", "true, false or a table"),
        ("compress = \"yes\"", "app[0].compress", "true, false or a table"),
    ];
    for (line, key, message) in cases {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[[app]]\nname = \"a\"\nhosts = [\"a.localhost\"]\nroot = {quoted}\nfastcgi = \"127.0.0.1:9000\"\n{line}\n"
        );
        let outcome = bulkhead::check(&text);
        assert_eq!(outcome.code, Some(EXIT_CONFIG), "{text}\n{outcome:?}");
        let output = outcome.output();
        let found = output.lines().find(|l| l.starts_with(&format!("{key}:")));
        let line = found.unwrap_or_else(|| panic!("no problem at `{key}` for:\n{text}\n{output}"));
        assert!(line.contains(message), "{key}: expected {message:?} in {line:?}");
    }
    let good = format!(
        "listen = [\"127.0.0.1:0\"]\n[[app]]\nname = \"a\"\nhosts = [\"a.localhost\"]\nroot = {quoted}\nfastcgi = \"127.0.0.1:9000\"\ntypes = {{ \".md\" = \"text/markdown; charset=utf-8\" }}\ncharset = \"utf-8\"\ncompress = false\n"
    );
    let outcome = bulkhead::check(&good);
    assert_eq!(outcome.code, Some(0), "{good}\n{outcome:?}");
}
