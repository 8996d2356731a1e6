use super::*;

fn route(app: &str, hosts: &[&str], prefix: &str, on_demand: bool) -> Route {
    Route {
        app: app.into(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        on_demand,
        prefix: prefix.into(),
        max_body: Some(1024),
    }
}

fn table() -> RouteTable {
    let mut t = RouteTable::default();
    t.insert(&route("blog", &["blog.example.com", "*.blog.example.com"], "/", false));
    t.insert(&route("shop", &["*.example.com", "cdn.blog.example.com"], "/", true));
    t
}

#[test]
fn exact_beats_wildcard_and_longest_suffix_wins() {
    let t = table();
    assert_eq!(t.lookup("blog.example.com"), Some("blog"));
    assert_eq!(t.lookup("www.blog.example.com"), Some("blog"));
    assert_eq!(t.lookup("cdn.blog.example.com"), Some("shop"));
    assert_eq!(t.lookup("x.example.com"), Some("shop"));
    assert_eq!(t.lookup("example.com"), None);
}

#[test]
fn normalises_case_port_and_trailing_dot() {
    let t = table();
    assert_eq!(t.lookup("BLOG.Example.com:8080"), Some("blog"));
    assert_eq!(t.lookup("blog.example.com."), Some("blog"));
}

#[test]
fn refuses_implausible_hosts() {
    let t = table();
    assert_eq!(t.lookup(""), None);
    assert_eq!(t.lookup("blog.example.com/x"), None);
    assert_eq!(t.lookup("[::1]:80"), None);
}

#[test]
fn reinserting_an_app_replaces_its_routes() {
    let mut t = table();
    t.insert(&route("blog", &["new.example.org"], "/", false));
    assert!(t.is_on_demand("shop") && !t.is_on_demand("blog"));
    assert_eq!(t.lookup("blog.example.com"), Some("shop"));
    assert_eq!(t.lookup("new.example.org"), Some("blog"));
}

#[test]
fn the_longest_prefix_on_a_host_wins() {
    let mut t = RouteTable::default();
    t.insert(&route("main", &["example.com"], "/", false));
    t.insert(&route("blog", &["example.com", "*.example.org"], "/blog/", false));
    t.insert(&route("deep", &["example.com"], "/blog/deep/", false));
    assert_eq!(t.route("example.com", "/"), Some("main"));
    assert_eq!(t.route("example.com", "/blogger"), Some("main"));
    assert_eq!(t.route("example.com", "/blog"), Some("blog"), "redirected by the app");
    assert_eq!(t.route("example.com", "/blog/a.php"), Some("blog"));
    assert_eq!(t.route("example.com", "/blog/deep/x"), Some("deep"));
    assert_eq!(t.route("www.example.org", "/blog/x"), Some("blog"));
    assert_eq!(t.route("www.example.org", "/other"), None, "no app at / there");
}

#[test]
fn removing_a_prefixed_app_keeps_the_others_on_its_host() {
    let mut t = RouteTable::default();
    t.insert(&route("main", &["example.com"], "/", false));
    t.insert(&route("blog", &["example.com"], "/blog/", false));
    t.remove("blog");
    assert_eq!(t.route("example.com", "/blog/x"), Some("main"));
    t.remove("main");
    assert_eq!(t.route("example.com", "/"), None);
}

#[test]
fn max_body_follows_the_latest_route_and_goes_with_the_app() {
    let mut t = RouteTable::default();
    t.insert(&route("blog", &["example.com"], "/", false));
    assert_eq!(t.max_body("blog"), Some(1024));
    t.insert(&Route { max_body: Some(8), ..route("blog", &["example.com"], "/", false) });
    assert_eq!(t.max_body("blog"), Some(8));
    t.insert(&Route { max_body: None, ..route("blog", &["example.com"], "/", false) });
    assert_eq!(t.max_body("blog"), None, "a route without a limit leaves it to the worker");
    t.insert(&route("blog", &["example.com"], "/", false));
    t.remove("blog");
    assert_eq!(t.max_body("blog"), None);
}
