//! A third-party application, as Debian installs it: Adminer (package
//! `adminer`, source tree in `/usr/share/adminer/adminer`), served unchanged through
//! Bulkhead and real php-fpm. Its login page renders without a database.

use std::path::Path;

use bulkhead_tests::{AppPlan, Proto, Stack};

const ROOT: &str = "/usr/share/adminer/adminer";
const HOST: &str = "adminer.localhost";

#[test]
fn adminer_login_page_and_its_stylesheet_are_served() {
    let root = Path::new(ROOT);
    assert!(
        root.join("index.php").is_file(),
        "{ROOT}/index.php missing: install it with `apt-get install adminer`"
    );
    let stack = Stack::start(&[AppPlan::new("adminer").root(root)]);
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let page = client.get(HOST, "/");
        assert_eq!(page.status, 200, "{proto:?}: {page:?}");
        let html = page.text();
        assert!(html.contains("<title>Login - Adminer</title>"), "{proto:?}: {page:?}");
        assert!(html.contains("static/default.css"), "the page links its stylesheet");
        let css = client.get(HOST, "/static/default.css");
        assert_eq!(css.status, 200, "{proto:?}: {css:?}");
        assert_eq!(css.header("content-type"), Some("text/css"));
        assert!(css.text().contains("body"), "{css:?}");
        let js = client.get(HOST, "/static/functions.js");
        assert!(js.header("content-type").unwrap_or("").starts_with("text/javascript"));
        let source = client.get(HOST, "/include/bootstrap.inc.php");
        assert!(!source.text().contains("<?php"), "PHP source never served: {source:?}");
    }
}
