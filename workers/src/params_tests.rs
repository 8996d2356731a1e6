use privsep::msg::{AppSpec, Backend, ResponseSpec, WorkerInit};
use privsep::sandbox::Profile;
use privsep::secret::Secret;

use super::*;
use crate::test_util::TempDir;

fn app(dir: &TempDir) -> App {
    let init = WorkerInit {
        app: AppSpec {
            name: "blog".into(),
            server_name: "blog.example".into(),
            root: dir.path().to_owned(),
            index: vec!["index.php".into()],
            front_controller: None,
            fastcgi: Backend::Unix("/nonexistent.sock".into()),
            max_body: 1024,
            timeout_ms: 1000,
            idle_timeout_ms: None,
            fastcgi_keepalive: 0,
            prefix: "/".into(),
            trusted_proxies: Vec::new(),
            symlink_targets: Vec::new(),
            fastcgi_params: Vec::new(),
            rules: Vec::new(),
            responses: ResponseSpec::default(),
        },
        sandbox: Profile::default(),
        secrets: vec![("DB_PASSWORD".into(), Secret::new("s3cret".into()))],
    };
    App::new(init).expect("root exists")
}

fn parts(headers: &[(&str, &[u8])]) -> Parts {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("http://blog.example:8080/x.php/a%20b?q=1&r=%41");
    for (k, v) in headers {
        req = req.header(*k, HeaderValue::from_bytes(v).expect("valid header value"));
    }
    req.body(()).expect("valid request").into_parts().0
}

fn meta(https: bool) -> GatewayMeta {
    GatewayMeta {
        peer: "[2001:db8::1]:4242".parse().expect("addr"),
        local: "10.0.0.1:443".parse().expect("addr"),
        https,
        proto: "HTTP/2.0",
    }
}

fn script(dir: &TempDir) -> Script {
    Script {
        filename: dir.path().join("x.php"),
        name: "/x.php".into(),
        path_info: "/a b".into(),
        document_uri: "/x.php/a b".into(),
        query: None,
    }
}

#[test]
fn builds_nginx_style_params() {
    let dir = TempDir::new();
    let (app, script, meta) = (app(&dir), script(&dir), meta(true));
    let parts = parts(&[("content-type", b"text/plain"), ("x-bulkhead-peer", b"1.2.3.4:5")]);
    let req = RequestInfo { parts: &parts, meta: &meta, script: &script, body_len: 7 };
    let p = build(&app, &req).expect("builds");
    let root = dir.path().to_str().expect("utf-8 temp dir");
    let get = |k: &str| p.get(k).map(String::as_str);
    assert_eq!(get("SCRIPT_FILENAME"), Some(format!("{root}/x.php").as_str()));
    assert_eq!(get("PATH_TRANSLATED"), Some(format!("{root}/a b").as_str()));
    assert_eq!(get("REQUEST_URI"), Some("/x.php/a%20b?q=1&r=%41"));
    assert_eq!(get("QUERY_STRING"), Some("q=1&r=%41"));
    assert_eq!(get("CONTENT_LENGTH"), Some("7"));
    assert_eq!(get("CONTENT_TYPE"), Some("text/plain"));
    assert_eq!(get("HTTP_HOST"), Some("blog.example:8080"));
    assert_eq!(get("REMOTE_ADDR"), Some("2001:db8::1"));
    assert_eq!(get("REMOTE_PORT"), Some("4242"));
    assert_eq!(get("SERVER_PORT"), Some("443"));
    assert_eq!(get("SERVER_NAME"), Some("blog.example"));
    assert_eq!(get("HTTPS"), Some("on"));
    assert_eq!(get("REQUEST_SCHEME"), Some("https"));
    assert_eq!(get("GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(get("SERVER_SOFTWARE"), Some(SERVER_SOFTWARE));
    assert_eq!(get("DB_PASSWORD"), Some("s3cret"));
    assert_eq!(get("HTTP_X_BULKHEAD_PEER"), None);
}

#[test]
fn omits_https_and_path_translated_when_not_applicable() {
    let dir = TempDir::new();
    let (app, meta) = (app(&dir), meta(false));
    let script = Script { path_info: String::new(), ..script(&dir) };
    let parts = parts(&[]);
    let req = RequestInfo { parts: &parts, meta: &meta, script: &script, body_len: 0 };
    let p = build(&app, &req).expect("builds");
    assert!(!p.contains_key("HTTPS") && !p.contains_key("PATH_TRANSLATED"));
    assert_eq!(p.get("PATH_INFO").map(String::as_str), Some(""));
}

#[test]
fn merges_duplicates_and_joins_cookies_with_semicolons() {
    let parts =
        parts(&[("accept", b"a/b"), ("accept", b"c/d"), ("cookie", b"a=1"), ("cookie", b"b=2")]);
    let p = header_params(&parts.headers).expect("utf-8");
    assert_eq!(p.get("HTTP_ACCEPT").map(String::as_str), Some("a/b, c/d"));
    assert_eq!(p.get("HTTP_COOKIE").map(String::as_str), Some("a=1; b=2"));
}

#[test]
fn drops_underscore_proxy_and_gateway_headers() {
    let parts = parts(&[
        ("x_forwarded_for", b"6.6.6.6"),
        ("x-forwarded-for", b"1.1.1.1"),
        ("proxy", b"http://evil"),
        ("x-bulkhead-scheme", b"https"),
        ("x.dotted", b"1"),
    ]);
    let p = header_params(&parts.headers).expect("utf-8");
    let names: Vec<&str> = p.keys().map(AsRef::as_ref).collect();
    assert_eq!(names, ["HTTP_X_FORWARDED_FOR"]);
    assert_eq!(p["HTTP_X_FORWARDED_FOR"], "1.1.1.1");
}

#[test]
fn every_header_param_starts_with_http() {
    for name in ["php-value", "script-filename", "content-length", "a"] {
        let param = param_name(name).expect("forwarded");
        assert!(param.starts_with("HTTP_"), "{param}");
    }
}

#[test]
fn accepts_utf8_header_values_and_rejects_other_bytes() {
    let ok = parts(&[("x-name", "Zoë".as_bytes())]);
    assert_eq!(header_params(&ok.headers).expect("utf-8")["HTTP_X_NAME"], "Zoë");
    let bad = parts(&[("x-name", b"\xff\xfe")]);
    assert!(
        matches!(header_params(&bad.headers), Err(ParamsError::NonUtf8Header(n)) if n == "x-name")
    );
}

#[test]
fn encodes_lengths_with_one_or_four_bytes() {
    assert_eq!(pair_len(3, 127), 1 + 1 + 3 + 127);
    assert_eq!(pair_len(3, 128), 1 + 4 + 3 + 128);
    assert_eq!(pair_len(200, 0), 4 + 1 + 200);
    let mut p = ParamMap::new();
    p.insert("A".into(), "x".repeat(MAX_PARAMS_BYTES - 1 - 4 - 1));
    assert_eq!(encoded_len(&p), MAX_PARAMS_BYTES);
    assert!(check_size(&p).is_ok());
    p.insert("B".into(), String::new());
    assert!(
        matches!(check_size(&p), Err(ParamsError::TooLarge { len }) if len == MAX_PARAMS_BYTES + 3)
    );
}

#[test]
fn reads_gateway_metadata_strictly() {
    let good = parts(&[
        ("x-bulkhead-peer", b"127.0.0.1:5000"),
        ("x-bulkhead-local", b"127.0.0.1:80"),
        ("x-bulkhead-scheme", b"http"),
        ("x-bulkhead-proto", b"HTTP/1.1"),
    ]);
    let meta = GatewayMeta::from_headers(&good.headers).expect("complete");
    assert_eq!((meta.peer.port(), meta.https, meta.proto), (5000, false, "HTTP/1.1"));
    let bad = parts(&[("x-bulkhead-peer", b"nope")]);
    assert!(GatewayMeta::from_headers(&bad.headers).is_err());
}

#[test]
fn logged_params_redact_secrets_and_client_credentials() {
    let dir = TempDir::new();
    let (app, script, meta) = (app(&dir), script(&dir), meta(false));
    let parts = parts(&[("authorization", b"Basic dXNlcjpwdw=="), ("cookie", b"sid=abc")]);
    let req = RequestInfo { parts: &parts, meta: &meta, script: &script, body_len: 0 };
    let p = build(&app, &req).expect("builds");
    let logged = Redacted { params: &p, app: &app }.to_string();
    assert!(logged.contains(r#"DB_PASSWORD="***""#), "{logged}");
    assert!(logged.contains(r#"HTTP_COOKIE="***""#), "{logged}");
    assert!(logged.contains(r#"REQUEST_METHOD="POST""#), "{logged}");
    for secret in ["s3cret", "dXNlcjpwdw", "sid=abc"] {
        assert!(!logged.contains(secret), "{secret} in {logged}");
    }
}
