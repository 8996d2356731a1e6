//! Routing inside an app, as nginx + php-fpm does it, against real php-fpm: a front
//! controller receives pretty URLs with the CGI path variables nginx would send, index
//! files and the trailing-slash redirect, PATH_INFO, redirects and repeated Set-Cookie
//! headers from PHP, an app mounted under a path prefix next to another on one host, and
//! X-Forwarded-For believed only from `trusted_proxies`.

use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions};

/// Prints the CGI variables routing decides, as JSON.
const DUMP: &str = r#"<?php
header('Content-Type: application/json');
$keys = ['SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'REQUEST_URI', 'DOCUMENT_URI',
    'QUERY_STRING', 'REMOTE_ADDR', 'REMOTE_PORT', 'HTTPS', 'REQUEST_SCHEME', 'SERVER_NAME',
    'HTTP_X_FORWARDED_FOR', 'DOCUMENT_ROOT'];
$out = ['app' => basename(__DIR__)];
foreach ($keys as $k) { $out[$k] = $_SERVER[$k] ?? null; }
echo json_encode($out);
"#;

fn front_app(name: &str) -> AppPlan {
    AppPlan::new(name)
        .front_controller("/index.php")
        .file("index.php", DUMP)
        .file("info.php", DUMP)
        .file("style.css", "body { color: red }")
        .file("docs/index.html", "<h1>docs</h1>")
        .file("empty/readme.txt", "no index here")
        .file(
            "cookies.php",
            "<?php setcookie('a', '1'); setcookie('b', '2'); setcookie('c', '3'); echo 'ok';",
        )
        .file("redirect.php", "<?php header('Location: /x'); echo 'moved';")
}

#[test]
fn front_controller_gets_pretty_urls_with_nginx_variables() {
    let stack = Stack::start(&[front_app("alpha")]);
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let reply = client.get("alpha.localhost", "/users/42?tab=posts&x=%41");
        assert_eq!(reply.status, 200, "{proto:?}: {reply:?}");
        let json = reply.json();
        assert_eq!(json["SCRIPT_NAME"], "/index.php", "{json}");
        assert_eq!(json["REQUEST_URI"], "/users/42?tab=posts&x=%41", "as sent: {json}");
        assert_eq!(json["QUERY_STRING"], "tab=posts&x=%41", "raw: {json}");
        assert_eq!(json["PATH_INFO"], "", "{json}");
        assert_eq!(json["SERVER_NAME"], "alpha.localhost", "{json}");
        let filename = json["SCRIPT_FILENAME"].as_str().expect("a string");
        assert!(filename.ends_with("/apps/alpha/index.php"), "{json}");
        let css = client.get("alpha.localhost", "/style.css");
        assert_eq!((css.status, css.text().as_str()), (200, "body { color: red }"), "{css:?}");
    }
}

#[test]
fn path_info_is_split_at_the_first_php_segment() {
    let stack = Stack::start(&[front_app("alpha")]);
    let reply = stack.client(Proto::Http1).get("alpha.localhost", "/info.php/extra/path?q=1");
    assert_eq!(reply.status, 200, "{reply:?}");
    let json = reply.json();
    assert_eq!(json["SCRIPT_NAME"], "/info.php", "{json}");
    assert_eq!(json["PATH_INFO"], "/extra/path", "{json}");
    assert_eq!(json["DOCUMENT_URI"], "/info.php/extra/path", "{json}");
    assert_eq!(json["REQUEST_URI"], "/info.php/extra/path?q=1", "{json}");
}

#[test]
fn directories_redirect_to_their_slash_and_are_never_listed() {
    let stack = Stack::start(&[front_app("alpha"), AppPlan::new("plain").file("empty/a.txt", "x")]);
    let client = stack.client(Proto::Http1);
    let moved = client.get("alpha.localhost", "/docs?x=1");
    assert_eq!(moved.status, 301, "{moved:?}");
    assert_eq!(moved.header("location"), Some("/docs/?x=1"), "{moved:?}");
    let docs = client.get("alpha.localhost", "/docs/");
    assert_eq!((docs.status, docs.text().as_str()), (200, "<h1>docs</h1>"), "{docs:?}");
    let listing = client.get("plain.localhost", "/empty/");
    assert_eq!(listing.status, 404, "no directory listing: {listing:?}");
    assert!(!listing.text().contains("a.txt"), "{listing:?}");
}

#[test]
fn php_redirects_and_several_cookies_reach_the_client() {
    let stack = Stack::start(&[front_app("alpha")]);
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let moved = client.get("alpha.localhost", "/redirect.php");
        assert_eq!(moved.status, 302, "{proto:?}: {moved:?}");
        assert_eq!(moved.header("location"), Some("/x"), "{moved:?}");
        let cookies = client.get("alpha.localhost", "/cookies.php");
        let set: Vec<&str> =
            cookies.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(set, ["a=1", "b=2", "c=3"], "{proto:?}: {cookies:?}");
    }
}

#[test]
fn an_app_mounted_under_a_prefix_shares_a_host_with_another() {
    let main = AppPlan::new("main").host("shared.localhost").file("index.php", DUMP);
    let blog = front_app("blog").host("shared.localhost").prefix("/blog/");
    let stack = Stack::start(&[main, blog]);
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let root = client.get("shared.localhost", "/");
        assert_eq!(root.json()["app"], "main", "{proto:?}: {root:?}");
        let post = client.get("shared.localhost", "/blog/posts/7?c=1");
        assert_eq!(post.status, 200, "{proto:?}: {post:?}");
        let json = post.json();
        assert_eq!(json["app"], "blog", "{json}");
        assert_eq!(json["SCRIPT_NAME"], "/blog/index.php", "{json}");
        assert_eq!(json["REQUEST_URI"], "/blog/posts/7?c=1", "{json}");
        let info = client.get("shared.localhost", "/blog/info.php/a/b").json();
        assert_eq!(
            (info["SCRIPT_NAME"].as_str(), info["PATH_INFO"].as_str()),
            (Some("/blog/info.php"), Some("/a/b"))
        );
        let css = client.get("shared.localhost", "/blog/style.css");
        assert_eq!((css.status, css.text().as_str()), (200, "body { color: red }"), "{css:?}");
        let bare = client.get("shared.localhost", "/blog");
        assert_eq!((bare.status, bare.header("location")), (301, Some("/blog/")), "{bare:?}");
        let docs = client.get("shared.localhost", "/blog/docs");
        assert_eq!(docs.header("location"), Some("/blog/docs/"), "{docs:?}");
    }
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let forwarded_as = |stack: &Stack, xff: &str| {
        let client = stack.client(Proto::Http1);
        let request = client
            .request(reqwest::Method::GET, "alpha.localhost", "/info.php")
            .header("x-forwarded-for", xff)
            .header("x-forwarded-proto", "https");
        client.send(request).expect("a reply").json()
    };
    let forwarded = |stack: &Stack| forwarded_as(stack, "198.51.100.1, 203.0.113.5");
    let untrusted = Stack::start(&[front_app("alpha")]);
    let json = forwarded(&untrusted);
    assert_eq!(json["REMOTE_ADDR"], "127.0.0.1", "{json}");
    assert_eq!(json["REQUEST_SCHEME"], "http", "{json}");
    assert!(json["HTTP_X_FORWARDED_FOR"].is_null(), "spoofable header withheld: {json}");
    let options = StackOptions {
        top: vec![r#"trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]"#.to_owned()],
        ..StackOptions::default()
    };
    let trusted = Stack::start_with(&[front_app("alpha")], &options);
    let json = forwarded(&trusted);
    assert_eq!(json["REMOTE_ADDR"], "203.0.113.5", "{json}");
    assert_eq!(
        (json["HTTPS"].as_str(), json["REQUEST_SCHEME"].as_str()),
        (Some("on"), Some("https"))
    );
    assert_eq!(json["HTTP_X_FORWARDED_FOR"], "198.51.100.1, 203.0.113.5", "{json}");
    // Hops as real load balancers write them; garbage left of the client changes nothing.
    for (xff, client) in [
        ("unknown, 198.51.100.7", "198.51.100.7"),
        ("198.51.100.7:4711", "198.51.100.7"),
        ("[2001:db8::7]:4711, 10.0.0.1", "2001:db8::7"),
        ("203.0.113.5, 198.51.100.7, unknown", "127.0.0.1"),
    ] {
        let json = forwarded_as(&trusted, xff);
        assert_eq!(json["REMOTE_ADDR"], client, "X-Forwarded-For: {xff}: {json}");
    }
}
