use http::header::{IF_NONE_MATCH, RANGE};
use http_body_util::BodyExt;

use super::*;
use crate::mime::Types;
use crate::test_util::TempDir;
use privsep::msg::CompressSpec;

async fn get(dir: &TempDir, file: &Path, headers: &[(&'static str, &str)]) -> Response<Body> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    let req = StaticRequest {
        method: &Method::GET,
        headers: &h,
        root: dir.path(),
        types: &Types::default(),
        compress: &CompressSpec::default(),
    };
    serve(file, req).await.expect("served")
}

async fn bytes(response: Response<Body>) -> bytes::Bytes {
    response.into_body().collect().await.expect("complete").to_bytes()
}

#[tokio::test]
async fn streams_a_file_and_answers_head() {
    let dir = TempDir::new();
    let file = dir.file("a.txt", &"x".repeat(CHUNK * 2 + 3));
    let got = get(&dir, &file, &[]).await;
    assert_eq!(got.headers()[CONTENT_LENGTH], (CHUNK * 2 + 3).to_string().as_str());
    assert_eq!(bytes(got).await.len(), CHUNK * 2 + 3);
    let h = HeaderMap::new();
    let req = StaticRequest {
        method: &Method::HEAD,
        headers: &h,
        root: dir.path(),
        types: &Types::default(),
        compress: &CompressSpec::default(),
    };
    let head = serve(&file, req).await.expect("served");
    assert_eq!(head.headers()[CONTENT_LENGTH], (CHUNK * 2 + 3).to_string().as_str());
    assert!(bytes(head).await.is_empty());
}

#[tokio::test]
async fn refuses_scripts_and_other_methods() {
    let dir = TempDir::new();
    let h = HeaderMap::new();
    let php = dir.file("a.php", "<?php echo 1;");
    let get = StaticRequest {
        method: &Method::GET,
        headers: &h,
        root: dir.path(),
        types: &Types::default(),
        compress: &CompressSpec::default(),
    };
    assert!(matches!(serve(&php, get).await, Err(StaticError::Script(_))));
    let txt = dir.file("a.txt", "x");
    let post = StaticRequest {
        method: &Method::POST,
        headers: &h,
        root: dir.path(),
        types: &Types::default(),
        compress: &CompressSpec::default(),
    };
    assert!(matches!(serve(&txt, post).await, Err(StaticError::Method(_))));
}

#[tokio::test]
async fn etag_gives_304_and_ranges_give_206_or_416() {
    let dir = TempDir::new();
    let file = dir.file("a.txt", "0123456789");
    let first = get(&dir, &file, &[]).await;
    let etag = first.headers()[ETAG].to_str().expect("ascii").to_owned();
    assert!(first.headers().contains_key(LAST_MODIFIED));
    let again = get(&dir, &file, &[(IF_NONE_MATCH.as_str(), &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let part = get(&dir, &file, &[(RANGE.as_str(), "bytes=2-4")]).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()[CONTENT_RANGE], "bytes 2-4/10");
    assert_eq!(bytes(part).await, "234");
    let past = get(&dir, &file, &[(RANGE.as_str(), "bytes=10-")]).await;
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers()[CONTENT_RANGE], "bytes */10");
}

#[tokio::test]
async fn serves_precompressed_siblings_when_accepted() {
    let dir = TempDir::new();
    let file = dir.file("app.js", "plain");
    dir.file("app.js.gz", "gzipped");
    dir.file("app.js.br", "brotli");
    let br = get(&dir, &file, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(br.headers()[CONTENT_ENCODING], "br");
    assert_eq!(br.headers()[CONTENT_TYPE], "text/javascript");
    assert_eq!(br.headers()[VARY], "Accept-Encoding");
    assert_eq!(bytes(br).await, "brotli");
    let gz = get(&dir, &file, &[("accept-encoding", "gzip, br;q=0")]).await;
    assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(bytes(gz).await, "gzipped");
    // A client that takes no coding costs no lookup of siblings, as with nginx's
    // gzip_static: its identity answer is right for any client.
    let refused = get(&dir, &file, &[("accept-encoding", "gzip;q=0, br;q=0, deflate")]).await;
    assert!(!refused.headers().contains_key(CONTENT_ENCODING));
    assert_eq!(bytes(refused).await, "plain");
    let plain = get(&dir, &file, &[]).await;
    assert!(!plain.headers().contains_key(CONTENT_ENCODING));
    assert!(!plain.headers().contains_key(VARY));
    assert_eq!(bytes(plain).await, "plain");
}
