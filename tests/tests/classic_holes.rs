//! The classic nginx + php-fpm holes, each tried against real php-fpm through the whole
//! stack: an image run as PHP through a `.php` suffix, CVE-2019-11043's `%0a`, control
//! bytes, `..` and encoded slashes, dotfiles, PHP source while php-fpm is down, httpoxy,
//! underscore header smuggling, and client data posing as PHP_VALUE.
//!
//! Paths that an HTTP client library would normalise (`%2e%2e`) are sent over a raw TCP
//! connection, byte for byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bulkhead_tests::{AppPlan, Proto, Stack};
use reqwest::Method;

const HOST: &str = "alpha.localhost";

/// Prints what a request could have changed: ini values and proxy-ish variables.
const PROBE: &str = r#"<?php
header('Content-Type: application/json');
echo json_encode([
    'memory_limit' => ini_get('memory_limit'),
    'auto_prepend_file' => ini_get('auto_prepend_file'),
    'http_proxy_server' => $_SERVER['HTTP_PROXY'] ?? null,
    'http_proxy_env' => getenv('HTTP_PROXY'),
    'xff' => $_SERVER['HTTP_X_FORWARDED_FOR'] ?? null,
    'php_value' => $_SERVER['PHP_VALUE'] ?? null,
    'php_admin_value' => $_SERVER['PHP_ADMIN_VALUE'] ?? null,
]);
"#;

fn app() -> Stack {
    let plan = AppPlan::new("alpha")
        .file("index.php", PROBE)
        .file("uploads/x.jpg", "<?php echo 'EXECUTED-JPG-AS-PHP';")
        .file(".env", "APP_KEY=dotenv-secret")
        .file(".git/config", "[core] git-secret")
        .file(".user.ini", "; user-ini-secret\n")
        .file(".htaccess", "# htaccess-secret")
        .file("uploads/.htaccess", "# nested-htaccess-secret")
        .file(".well-known/security.txt", "Contact: mailto:security@example.com")
        .file("source.php", "<?php // PHP-SOURCE-MARKER\necho 'ran';")
        .file("old.phps", "<?php // PHPS-SOURCE-MARKER");
    Stack::start(&[plan])
}

/// Sends `GET target` exactly as written; returns the status and the raw response.
fn raw_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the gateway");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn an_image_is_never_run_through_a_php_suffix() {
    let stack = app();
    for path in ["/uploads/x.jpg/a.php", "/uploads/x.jpg/.php", "/uploads/x.jpg/x.PHP/y"] {
        let (status, text) = raw_get(stack.addr(), path);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("EXECUTED-JPG-AS-PHP"), "{path}: {text}");
    }
    let log = stack.fpm.log("alpha");
    assert!(!log.contains("x.jpg"), "the request never reached php-fpm: {log}");
}

#[test]
fn newlines_and_control_bytes_in_the_path_get_400() {
    let stack = app();
    for path in [
        "/index.php%0a",
        "/index.php/%0afoo.php",
        "/a%0d%0aSet-Cookie:x/index.php",
        "/index.php%00.jpg",
        "/x%00.php",
        "/%09/index.php",
    ] {
        let (status, text) = raw_get(stack.addr(), path);
        assert_eq!(status, 400, "{path}: {text}");
    }
}

#[test]
fn dot_dot_and_encoded_slashes_never_escape_the_root() {
    let stack = app();
    let paths = [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/uploads/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/uploads/..%5c..%5c..%5cetc%5cpasswd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd%2500.php",
    ];
    for path in paths {
        let (status, text) = raw_get(stack.addr(), path);
        assert!(matches!(status, 400 | 404), "{path}: {text}");
        assert!(!text.contains("root:"), "{path}: {text}");
    }
    let (status, text) = raw_get(stack.addr(), "/uploads/..%2fsource.php");
    assert_eq!(status, 200, "an encoded slash inside the root is only a slash: {text}");
    assert!(text.contains("\r\nran") && !text.contains("PHP-SOURCE-MARKER"), "{text}");
}

#[test]
fn dotfiles_are_hidden_except_well_known() {
    let stack = app();
    let client = stack.client(Proto::Http1);
    for path in [
        "/.env",
        "/.git/config",
        "/.user.ini",
        "/.htaccess",
        "/uploads/.htaccess",
        "/.git/",
        "/.%65nv",
    ] {
        let (status, text) = raw_get(stack.addr(), path);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("secret"), "{path}: {text}");
    }
    let txt = client.get(HOST, "/.well-known/security.txt");
    assert_eq!(txt.status, 200, "{txt:?}");
    assert!(txt.text().starts_with("Contact:"));
}

#[test]
fn php_source_is_never_served_even_when_php_fpm_is_down() {
    let mut stack = app();
    stack.fpm.stop("alpha");
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        for path in ["/source.php", "/SOURCE.PHP", "/source.php/x"] {
            let reply = client.get(HOST, path);
            assert!(matches!(reply.status, 404 | 502 | 503), "{proto:?} {path}: {reply:?}");
            assert!(!reply.text().contains("PHP-SOURCE-MARKER"), "{path}: {reply:?}");
        }
        let reply = client.get(HOST, "/source.php");
        assert_eq!(reply.status, 502, "{reply:?}");
        let phps = client.get(HOST, "/old.phps");
        assert_eq!(phps.status, 404, "{phps:?}");
        assert!(!phps.text().contains("PHPS-SOURCE-MARKER"));
    }
}

#[test]
fn proxy_and_underscore_headers_and_php_value_never_reach_php() {
    let stack = app();
    let client = stack.client(Proto::Http1);
    let baseline = client.get(HOST, "/index.php").json();
    let request = client
        .request(Method::GET, HOST, "/index.php?PHP_VALUE=memory_limit%3D7M&PHP_ADMIN_VALUE=auto_prepend_file%3D/etc/passwd")
        .header("Proxy", "http://attacker.example:8080")
        .header("X_Forwarded_For", "6.6.6.6")
        .header("PHP_VALUE", "memory_limit=7M")
        .header("PHP-VALUE", "memory_limit=7M")
        .header("PHP_ADMIN_VALUE", "auto_prepend_file=/etc/passwd");
    let reply = client.send(request).expect("a reply");
    assert_eq!(reply.status, 200, "{reply:?}");
    let json = reply.json();
    assert_eq!(json["memory_limit"], baseline["memory_limit"], "ini unchanged: {json}");
    assert_ne!(json["memory_limit"], "7M", "{json}");
    assert_eq!(json["auto_prepend_file"], baseline["auto_prepend_file"], "{json}");
    assert!(json["http_proxy_server"].is_null(), "httpoxy: {json}");
    assert_eq!(json["http_proxy_env"], false, "httpoxy: {json}");
    assert!(json["xff"].is_null(), "underscore header dropped: {json}");
    assert!(json["php_value"].is_null() && json["php_admin_value"].is_null(), "{json}");
}
