use super::*;

use http::HeaderValue;

/// A request as hyper would hand it over: method, target, version, header lines.
fn req(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri(target).version(version);
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(()).expect("a test request builds")
}

/// Header lines of a test request.
type Fields<'a> = &'a [(&'a str, &'a str)];
/// What [`check`] answers.
type Checked = Result<&'static str, Refusal>;

fn h11(target: &str, headers: &[(&str, &str)]) -> Request<()> {
    req("POST", target, Version::HTTP_11, headers)
}

#[test]
fn transfer_encoding_must_be_exactly_chunked() {
    let host = ("host", "a.test");
    let cases: &[(Fields, Checked)] = &[
        (&[host, ("transfer-encoding", "chunked")], Ok("a.test")),
        (&[host, ("transfer-encoding", "Chunked")], Ok("a.test")),
        (&[host, ("transfer-encoding", " chunked ")], Ok("a.test")),
        (&[host, ("transfer-encoding", "gzip, chunked")], Err(Refusal::UnknownCoding)),
        (&[host, ("transfer-encoding", "chunked, chunked")], Err(Refusal::UnknownCoding)),
        (&[host, ("transfer-encoding", "deflate,chunked")], Err(Refusal::UnknownCoding)),
        (&[host, ("transfer-encoding", "identity")], Err(Refusal::UnknownCoding)),
        (&[host, ("transfer-encoding", "chunked;q=1")], Err(Refusal::UnknownCoding)),
        (&[host, ("transfer-encoding", "")], Err(Refusal::UnknownCoding)),
        (
            &[host, ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
            Err(Refusal::RepeatedCoding),
        ),
        (
            &[host, ("transfer-encoding", "chunked"), ("content-length", "5")],
            Err(Refusal::CodingAndLength),
        ),
        (&[host, ("content-length", "5")], Ok("a.test")),
    ];
    for (headers, expected) in cases {
        assert_eq!(check(&h11("/", headers)), *expected, "{headers:?}");
    }
    let old = req("POST", "/", Version::HTTP_10, &[host, ("transfer-encoding", "chunked")]);
    assert_eq!(check(&old), Err(Refusal::CodingOnHttp10));
}

#[test]
fn the_host_is_one_valid_authority() {
    let cases: &[(Fields, Checked)] = &[
        (&[("host", "a.test")], Ok("a.test")),
        (&[("host", "A.Test:8080")], Ok("A.Test:8080")),
        (&[("host", "[::1]:80")], Ok("[::1]:80")),
        (&[("host", "127.0.0.1")], Ok("127.0.0.1")),
        (&[], Err(Refusal::NoHost)),
        (&[("host", "a.test"), ("host", "a.test")], Err(Refusal::RepeatedHost)),
        (&[("host", "a.test"), ("host", "b.test")], Err(Refusal::RepeatedHost)),
        (&[("host", "a, b")], Err(Refusal::BadHost)),
        (&[("host", "a.test,b.test")], Err(Refusal::BadHost)),
        (&[("host", "user@a.test")], Err(Refusal::BadHost)),
        (&[("host", "a.test/x")], Err(Refusal::BadHost)),
        (&[("host", "a%2etest")], Err(Refusal::BadHost)),
        (&[("host", "")], Err(Refusal::BadHost)),
        (&[("host", "a.test:port")], Err(Refusal::BadHost)),
        (&[("host", "a.test:99999")], Err(Refusal::BadHost)),
        (&[("host", "a.test:")], Err(Refusal::BadHost)),
    ];
    for (headers, expected) in cases {
        assert_eq!(check(&h11("/", headers)), *expected, "{headers:?}");
    }
    let latin1 = {
        let mut r = h11("/", &[]);
        let value = HeaderValue::from_bytes(b"caf\xe9.test").expect("a valid field value");
        r.headers_mut().insert(header::HOST, value);
        r
    };
    assert_eq!(check(&latin1), Err(Refusal::BadHost));
}

#[test]
fn only_origin_and_absolute_form_targets_are_served() {
    let host = ("host", "a.test");
    let cases: &[(&str, &str, Fields, Checked)] = &[
        ("GET", "/x?y", &[host], Ok("a.test")),
        ("GET", "http://b.test/x", &[host], Ok("b.test")),
        ("GET", "https://b.test:8443/x", &[host], Ok("b.test:8443")),
        ("GET", "http://b.test/x", &[], Err(Refusal::NoHost)),
        ("GET", "http://user@b.test/x", &[host], Err(Refusal::BadHost)),
        ("GET", "ftp://b.test/x", &[host], Err(Refusal::BadScheme)),
        ("GET", "other.test:80", &[host], Err(Refusal::AuthorityForm)),
        ("CONNECT", "other.test:80", &[host], Err(Refusal::Connect)),
        ("CONNECT", "/", &[host], Err(Refusal::Connect)),
        ("OPTIONS", "*", &[host], Err(Refusal::AsteriskForm)),
    ];
    for (method, target, headers, expected) in cases {
        let r = req(method, target, Version::HTTP_11, headers);
        assert_eq!(check(&r), *expected, "{method} {target} {headers:?}");
    }
    let old = req("GET", "http://b.test/x", Version::HTTP_10, &[]);
    assert_eq!(check(&old), Ok("b.test"), "HTTP/1.0 needs no Host");
    assert_eq!(check(&req("GET", "/", Version::HTTP_10, &[])), Err(Refusal::NoHost));
}

#[test]
fn over_http2_the_authority_wins_and_host_must_agree() {
    let h2 = |headers: &[(&str, &str)]| req("GET", "https://a.test/", Version::HTTP_2, headers);
    assert_eq!(check(&h2(&[])), Ok("a.test"));
    assert_eq!(check(&h2(&[("host", "A.TEST")])), Ok("a.test"));
    assert_eq!(check(&h2(&[("host", "b.test")])), Err(Refusal::HostMismatch));
    let no_authority = req("GET", "/", Version::HTTP_2, &[("host", "b.test")]);
    assert_eq!(check(&no_authority), Ok("b.test"));
    let coded = h2(&[("transfer-encoding", "gzip")]);
    assert_eq!(check(&coded), Ok("a.test"), "HTTP/2 has no Transfer-Encoding to check");
}

#[test]
fn statuses_follow_nginx() {
    assert_eq!(Refusal::UnknownCoding.status(), StatusCode::NOT_IMPLEMENTED);
    for refusal in [Refusal::RepeatedHost, Refusal::AuthorityForm, Refusal::Connect] {
        assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn forbidden_trailer_fields_are_dropped_and_others_kept() {
    let mut t = HeaderMap::new();
    for (name, value) in [
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("content-length", "9"),
        ("host", "b.test"),
        ("authorization", "Basic x"),
        ("x-bulkhead-peer", "6.6.6.6:1"),
        ("trailer", "x"),
        ("x-checksum", "abc"),
        ("server-timing", "db;dur=5"),
    ] {
        t.append(name, HeaderValue::from_static(value));
    }
    t.append("connection", HeaderValue::from_static("keep-alive"));
    assert_eq!(clean_trailers(&mut t), 8);
    let mut left: Vec<&str> = t.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["server-timing", "x-checksum"]);
}
