//! Tests of path-prefix mounts (`hosts = ["example.com/blog/"]`) and `trusted_proxies`.

use std::path::Path;

use privsep::msg::Cidr;

use super::*;

fn parse(text: &str, root: &Path) -> Result<Config, ConfigError> {
    let text = text.replace("{dir}", &root.display().to_string());
    super::parse(&text, Path::new("test.toml"), &|_| None)
}

fn app(name: &str, hosts: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\nhosts = {hosts}\nroot = \"{{dir}}\"\nfastcgi = \"unix:/run/{name}.sock\"\n"
    )
}

fn problems(text: &str, root: &Path) -> Vec<String> {
    let err = parse(text, root).expect_err("config must be refused");
    err.problems().iter().map(ToString::to_string).collect()
}

const LISTEN: &str = "listen = [\"127.0.0.1:8080\"]\n";

#[test]
fn two_apps_share_a_host_under_different_prefixes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "{LISTEN}{}{}",
        app("main", r#"["example.com"]"#),
        app("blog", r#"["example.com/blog/", "www.example.com/blog/"]"#)
    );
    let config = parse(&text, dir.path()).expect("valid");
    assert_eq!(config.apps[0].spec.prefix, "/");
    let blog = &config.apps[1];
    assert_eq!(blog.spec.prefix, "/blog/");
    assert_eq!(blog.hosts, ["example.com", "www.example.com"]);
    assert_eq!(blog.spec.server_name, "example.com");
    assert_eq!(blog.route().prefix, "/blog/");
}

#[test]
fn the_same_host_and_prefix_twice_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "{LISTEN}{}{}",
        app("blog", r#"["example.com/blog/"]"#),
        app("other", r#"["example.com/blog/"]"#)
    );
    let expected =
        [r#"app[1].hosts[0]: host "example.com/blog/" is already claimed by app[0] ("blog")"#];
    assert_eq!(problems(&text, dir.path()), expected);
}

#[test]
fn prefixes_must_be_slash_delimited_and_shared_by_all_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = format!("{LISTEN}{}", app("blog", r#"["example.com/blog"]"#));
    let found = problems(&bad, dir.path());
    assert!(found[0].starts_with("app[0].hosts[0]: path prefix \"/blog\""), "{found:?}");
    let mixed = format!("{LISTEN}{}", app("blog", r#"["a.com/blog/", "b.com"]"#));
    let found = problems(&mixed, dir.path());
    assert_eq!(found, ["app[0].hosts: every host of an app must carry the same path prefix"]);
}

#[test]
fn trusted_proxies_reach_every_app_and_bad_blocks_are_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n{LISTEN}{}",
        app("blog", r#"["blog.localhost"]"#)
    );
    let config = parse(&text, dir.path()).expect("valid");
    let expected: Vec<Cidr> =
        ["127.0.0.1/32", "10.0.0.0/8"].iter().map(|c| Cidr::parse(c).expect("valid")).collect();
    assert_eq!(config.apps[0].spec.trusted_proxies, expected);
    let bad = format!("trusted_proxies = [\"10.0.0.1/8\"]\n{LISTEN}{}", app("a", r#"["a.b"]"#));
    let found = problems(&bad, dir.path());
    assert!(found[0].starts_with("trusted_proxies[0]: \"10.0.0.1/8\""), "{found:?}");
}
