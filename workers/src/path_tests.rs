use super::*;
use crate::test_util::TempDir;

fn root(dir: &TempDir, front: Option<&str>) -> Root {
    let index = vec!["index.php".to_owned(), "index.html".to_owned()];
    Root::new(dir.path().to_owned(), index, front.map(str::to_owned))
}

fn expect_script(target: Target) -> Script {
    match target {
        Target::Script(s) => s,
        other => panic!("expected a script, got {other:?}"),
    }
}

#[test]
fn decodes_percent_escapes_and_rejects_bad_ones() {
    assert_eq!(decode("/a%20b/%C3%A9.php").expect("valid"), "/a b/é.php");
    assert!(matches!(decode("/a%zz"), Err(PathError::BadEncoding)));
    assert!(matches!(decode("/a%4"), Err(PathError::BadEncoding)));
    assert!(matches!(decode("/%ff%fe"), Err(PathError::NotUtf8)));
}

#[test]
fn rejects_control_bytes_after_decoding() {
    for raw in ["/a%00.php", "/index.php%0a", "/x%0d/y", "/del%7f", "/tab%09"] {
        assert!(matches!(decode(raw), Err(PathError::ControlByte)), "{raw}");
    }
}

#[test]
fn normalises_dots_and_slashes() {
    assert_eq!(normalize("/a//b/./c").expect("ok"), "/a/b/c");
    assert_eq!(normalize("/a/b/../c/").expect("ok"), "/a/c/");
    assert_eq!(normalize("/a/..").expect("ok"), "/");
    assert_eq!(normalize("/a/.").expect("ok"), "/a/");
    assert!(matches!(normalize("/../etc/passwd"), Err(PathError::AboveRoot)));
    assert!(matches!(normalize("a"), Err(PathError::NotAbsolute)));
}

#[test]
fn splits_path_info_at_the_first_php_segment() {
    assert_eq!(split_php("/index.php"), Some(("/index.php", "")));
    assert_eq!(split_php("/a/x.PhP/b/c.php"), Some(("/a/x.PhP", "/b/c.php")));
    assert_eq!(split_php("/x.phpx/y"), None);
    assert_eq!(split_php("/.php/y"), None);
    assert_eq!(split_php("/dir/"), None);
    // Non-ASCII before the suffix is fine; a short non-ASCII segment never panics.
    assert_eq!(split_php("/é.pHp"), Some(("/é.pHp", "")));
    assert_eq!(split_php("/aé"), None);
}

#[test]
fn maps_an_existing_script_with_path_info() {
    let dir = TempDir::new();
    let file = dir.file("app/x.php", "<?php");
    let s = expect_script(root(&dir, None).resolve("/app/x.php/more/info").expect("maps"));
    assert_eq!(s.filename, file);
    assert_eq!(s.name, "/app/x.php");
    assert_eq!(s.path_info, "/more/info");
    assert_eq!(s.document_uri, "/app/x.php/more/info");
}

#[test]
fn never_forwards_a_missing_script() {
    let dir = TempDir::new();
    dir.file("uploads/x.jpg", "<?php echo 'EXECUTED';");
    let r = root(&dir, None);
    assert!(matches!(r.resolve("/missing.php"), Err(PathError::NoScript(_))));
    assert!(matches!(r.resolve("/uploads/x.jpg/a.php"), Err(PathError::NoScript(_))));
}

#[test]
fn uses_index_then_front_controller() {
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    dir.file("docs/index.html", "hi");
    let r = root(&dir, Some("/index.php"));
    assert_eq!(expect_script(r.resolve("/").expect("maps")).name, "/index.php");
    let docs = r.resolve("/docs/").expect("maps");
    assert_eq!(docs, Target::Static(dir.path().join("docs/index.html")));
    let fc = expect_script(r.resolve("/blog/post-1").expect("maps"));
    assert_eq!((fc.name.as_str(), fc.path_info.as_str()), ("/index.php", ""));
    // nginx's `location ~ \.php$ { try_files $uri =404; }`: never the front controller.
    assert!(matches!(r.resolve("/gone.php"), Err(PathError::NoScript(_))));
    assert!(matches!(r.resolve("/gone.php/x"), Err(PathError::NoScript(_))));
}

#[test]
fn serves_static_files_but_never_scripts() {
    let dir = TempDir::new();
    let css = dir.file("a.css", "body{}");
    dir.file("b.phtml", "<?php");
    let r = root(&dir, None);
    assert_eq!(r.resolve("/a.css").expect("maps"), Target::Static(css));
    assert!(matches!(r.resolve("/b.phtml"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/nothing.txt"), Err(PathError::NotFound(_))));
}

#[test]
fn hides_dotfiles_except_well_known() {
    let dir = TempDir::new();
    dir.file(".env", "SECRET=1");
    let token = dir.file(".well-known/acme", "t");
    let r = root(&dir, None);
    assert!(matches!(r.resolve("/.env"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/a/.user.ini"), Err(PathError::NotFound(_))));
    assert_eq!(r.resolve("/.well-known/acme").expect("maps"), Target::Static(token));
}

#[test]
fn refuses_symlinks_out_of_the_root() {
    let outside = TempDir::new();
    let secret = outside.file("secret.php", "<?php");
    let dir = TempDir::new();
    std::os::unix::fs::symlink(&secret, dir.path().join("link.php")).expect("symlink");
    assert!(matches!(root(&dir, None).resolve("/link.php"), Err(PathError::Escapes(_))));
}

#[test]
fn refuses_a_symlinked_directory_out_of_the_root() {
    let outside = TempDir::new();
    outside.file("lib/secret.php", "<?php");
    outside.file("lib/style.css", "x");
    let dir = TempDir::new();
    std::os::unix::fs::symlink(outside.path().join("lib"), dir.path().join("lib")).expect("link");
    let r = root(&dir, None);
    assert!(matches!(r.resolve("/lib/secret.php"), Err(PathError::Escapes(_))));
    assert!(matches!(r.resolve("/lib/style.css"), Err(PathError::Escapes(_))));
}

#[test]
fn follows_symlinks_that_stay_in_the_root_to_the_canonical_file() {
    let dir = TempDir::new();
    let real = dir.file("releases/v2/app.php", "<?php");
    let css = dir.file("releases/v2/site.css", "x");
    std::os::unix::fs::symlink(dir.path().join("releases/v2"), dir.path().join("current"))
        .expect("link");
    let r = root(&dir, None);
    assert_eq!(expect_script(r.resolve("/current/app.php").expect("maps")).filename, real);
    assert_eq!(r.resolve("/current/site.css").expect("maps"), Target::Static(css));
}

#[test]
fn finds_nested_files_and_nothing_under_a_file() {
    let dir = TempDir::new();
    let deep = dir.file("a/b/c/page.html", "x");
    dir.file("plain.txt", "x");
    let r = root(&dir, None);
    assert_eq!(r.resolve("/a/b/c/page.html").expect("maps"), Target::Static(deep));
    assert!(matches!(r.resolve("/plain.txt/x.css"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/a/b/missing.css"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/plain.txt/x.php"), Err(PathError::NoScript(_))));
}

#[test]
fn a_dot_dot_front_controller_cannot_leave_the_root() {
    let outside = TempDir::new();
    outside.file("evil.php", "<?php");
    let dir = TempDir::new();
    let name = outside.path().file_name().and_then(|n| n.to_str()).expect("name").to_owned();
    let r = root(&dir, Some(&format!("/../{name}/evil.php")));
    assert!(r.resolve("/anything").is_err());
}

#[test]
fn redirects_a_directory_with_an_index_to_its_slash() {
    let dir = TempDir::new();
    dir.file("docs/index.html", "hi");
    dir.file("empty/readme.txt", "x");
    let r = root(&dir, None);
    assert_eq!(r.resolve("/docs").expect("maps"), Target::Redirect("/docs/".into()));
    assert!(matches!(r.resolve("/docs/").expect("maps"), Target::Static(_)));
    assert!(matches!(r.resolve("/empty"), Err(PathError::NotFound(_))), "no listing");
    assert!(matches!(r.resolve("/empty/"), Err(PathError::NotFound(_))), "no listing");
}

#[test]
fn a_prefixed_app_strips_its_prefix_and_keeps_it_in_script_name() {
    let dir = TempDir::new();
    let file = dir.file("index.php", "<?php");
    dir.file("docs/index.html", "hi");
    dir.file(".env", "SECRET=1");
    let r = root(&dir, Some("/index.php")).with_prefix("/blog/");
    let s = expect_script(r.resolve("/blog/users/42").expect("maps"));
    assert_eq!((s.filename, s.name.as_str(), s.path_info.as_str()), (file, "/blog/index.php", ""));
    assert_eq!(s.document_uri, "/blog/index.php");
    assert_eq!(r.resolve("/blog").expect("maps"), Target::Redirect("/blog/".into()));
    assert_eq!(r.resolve("/blog/docs").expect("maps"), Target::Redirect("/blog/docs/".into()));
    assert!(matches!(r.resolve("/blog/../index.php"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/blogx/index.php"), Err(PathError::NotFound(_))));
    assert!(matches!(r.resolve("/blog/.env"), Err(PathError::NotFound(_))));
}

#[test]
fn internal_redirects_reach_only_static_files_inside_the_root() {
    let dir = TempDir::new();
    let zip = dir.file("protected/file.zip", "zip");
    dir.file("protected/x.php", "<?php");
    dir.file(".env", "SECRET=1");
    let r = root(&dir, None);
    assert_eq!(r.internal("/protected/file.zip?x=1").expect("served"), zip);
    for bad in ["/protected/x.php", "/.env", "/../etc/passwd", "/protected", "/nope"] {
        assert!(r.internal(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn location_paths_are_percent_encoded() {
    assert_eq!(encode_path("/a b/é/"), "/a%20b/%C3%A9/");
    assert_eq!(encode_path("/ok-._~/"), "/ok-._~/");
}

fn ruled(dir: &TempDir, front: Option<&str>, specs: Vec<privsep::msg::RuleSpec>) -> Root {
    let rules = crate::rules::Rules::compile(&specs).expect("valid rules");
    root(dir, front).with_rules(rules, Vec::new())
}

fn status_of(result: Result<Target, PathError>) -> Option<u16> {
    match result {
        Err(PathError::Denied { status, .. }) => Some(status.as_u16()),
        Err(PathError::NotFound(_) | PathError::NoScript(_) | PathError::BrokenSymlink(_)) => {
            Some(404)
        }
        Err(PathError::Forbidden(_)) => Some(403),
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => None,
    }
}

#[test]
fn a_missing_dot_segment_reaches_the_front_controller_an_existing_one_never() {
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    dir.file(".env", "SECRET=1");
    dir.file(".git/config", "x");
    dir.file("wiki/.hidden", "x");
    let token = dir.file(".well-known/acme", "t");
    let r = root(&dir, Some("/index.php"));
    let front = |path: &str| match r.resolve(path) {
        Ok(Target::Script(s)) => s.name == "/index.php",
        _ => false,
    };
    let table: &[(&str, bool)] = &[
        ("/wiki/.NET_Framework", true),
        ("/.NET_Framework", true),
        ("/a/.b/c", true),
        ("/.env", false),
        ("/.git/config", false),
        ("/.git/nothing-here", false),
        ("/wiki/.hidden", false),
        ("/.well-known/missing", true),
    ];
    for (path, to_front) in table {
        assert_eq!(front(path), *to_front, "{path}");
    }
    assert_eq!(r.resolve("/.well-known/acme").expect("served"), Target::Static(token));
    assert!(matches!(r.resolve("/.git/x.php"), Err(PathError::NotFound(_))));
}

#[test]
fn broken_symlinks_are_404_and_declared_targets_are_followed() {
    let outside = TempDir::new();
    let stored = outside.file("public/avatar.png", "png");
    outside.file("public/x.php", "<?php");
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    std::os::unix::fs::symlink(outside.path().join("public"), dir.path().join("storage"))
        .expect("link");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling.css"))
        .expect("link");
    std::os::unix::fs::symlink(dir.path().join("loop"), dir.path().join("loop")).expect("link");
    let plain = root(&dir, Some("/index.php"));
    assert!(matches!(plain.resolve("/storage/avatar.png"), Err(PathError::Escapes(_))));
    assert!(matches!(plain.resolve("/dangling.css"), Err(PathError::BrokenSymlink(_))));
    assert!(matches!(plain.resolve("/loop"), Err(PathError::BrokenSymlink(_))));
    let allowed = root(&dir, Some("/index.php"))
        .with_rules(crate::rules::Rules::default(), vec![outside.path().join("public")]);
    assert_eq!(allowed.resolve("/storage/avatar.png").expect("served"), Target::Static(stored));
    assert!(
        matches!(allowed.resolve("/storage/x.php"), Err(PathError::Escapes(_))),
        "scripts never run from a symlink target"
    );
    assert!(matches!(allowed.resolve("/storage/missing.png"), Ok(Target::Script(_))));
}

#[test]
fn rules_deny_and_keep_scripts_from_running() {
    use privsep::msg::{RuleAction, RuleMatch, RuleSpec};
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    dir.file("wp-content/uploads/x.php", "<?php");
    dir.file("wp-content/uploads/a.jpg", "jpg");
    dir.file("data/pages/start.txt", "raw");
    dir.file("private/7f3e9a", "pdf");
    let prefix = |p: &str| RuleMatch::Prefix(vec![p.to_owned()]);
    let r = ruled(
        &dir,
        Some("/index.php"),
        vec![
            RuleSpec {
                matcher: prefix("/wp-content/uploads/"),
                action: RuleAction::NoScripts(403),
            },
            RuleSpec { matcher: prefix("/data/"), action: RuleAction::Deny(404) },
            RuleSpec { matcher: prefix("/private/"), action: RuleAction::Internal },
            RuleSpec { matcher: prefix("/index.php/forbidden"), action: RuleAction::Deny(410) },
        ],
    );
    let table: &[(&str, Option<u16>)] = &[
        ("/wp-content/uploads/x.php", Some(403)),
        ("/wp-content/uploads/x.php/info", Some(403)),
        ("/wp-content/uploads/a.jpg", None),
        ("/wp-content/uploads/missing.jpg", None),
        ("/data/pages/start.txt", Some(404)),
        ("/data/missing", Some(404)),
        ("/private/7f3e9a", Some(404)),
        ("/index.php/forbidden", Some(410)),
        ("/post/1", None),
    ];
    for (path, want) in table {
        assert_eq!(status_of(r.resolve(path)), *want, "{path}");
    }
    assert!(r.internal("/private/7f3e9a").is_ok(), "reachable through X-Accel-Redirect");
    assert!(r.internal("/data/pages/start.txt").is_err(), "deny applies there too");
}

#[test]
fn a_deny_on_scripts_holds_whatever_path_info_follows() {
    use privsep::msg::{RuleAction, RuleMatch, RuleSpec};
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    dir.file("maintenance/run.php", "<?php");
    let r = ruled(
        &dir,
        Some("/index.php"),
        vec![RuleSpec {
            matcher: RuleMatch::Regex(r"^/maintenance/.*\.php$".to_owned()),
            action: RuleAction::Deny(403),
        }],
    );
    for path in ["/maintenance/run.php", "/maintenance/run.php/x", "/maintenance/run.php/a/b.css"] {
        assert_eq!(status_of(r.resolve(path)), Some(403), "{path}");
    }
    assert_eq!(
        status_of(r.resolve("/index.php/maintenance/run.php")),
        None,
        "PATH_INFO of another"
    );
}

#[test]
fn rewrites_route_nice_urls_and_fallbacks_only_on_a_miss() {
    use privsep::msg::{RuleAction, RuleMatch, RuleSpec};
    let dir = TempDir::new();
    dir.file("doku.php", "<?php");
    dir.file("lib/exe/fetch.php", "<?php");
    dir.file("lib/tpl/style.css", "css");
    dir.file("data/pages/start.txt", "raw");
    let rewrite = |re: &str, target: &str| RuleSpec {
        matcher: RuleMatch::Regex(re.to_owned()),
        action: RuleAction::Rewrite { target: target.to_owned(), fallback: true },
    };
    let r = ruled(
        &dir,
        None,
        vec![
            RuleSpec {
                matcher: RuleMatch::Prefix(vec!["/data/".into()]),
                action: RuleAction::Deny(404),
            },
            rewrite("^/_media/(.*)", "/lib/exe/fetch.php?media=$1"),
            rewrite("^/(.*)", "/doku.php?id=$1"),
        ],
    );
    let script = |path: &str, query: Option<&str>| match r.resolve_request(path, query) {
        Ok(Target::Script(s)) => (s.name, s.query.unwrap_or_default()),
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(
        script("/wiki:syntax", Some("do=edit")),
        ("/doku.php".into(), "id=wiki:syntax&do=edit".into())
    );
    assert_eq!(
        script("/_media/logo.png", None),
        ("/lib/exe/fetch.php".into(), "media=logo.png".into())
    );
    assert_eq!(script("/", None), ("/doku.php".into(), "id=".into()));
    assert!(matches!(r.resolve("/lib/tpl/style.css"), Ok(Target::Static(_))), "files win");
    assert_eq!(status_of(r.resolve("/data/pages/start.txt")), Some(404));
    assert_eq!(status_of(r.resolve("/missing.php")), Some(404), "never rewritten");
}

#[test]
fn a_rewrite_cannot_route_around_a_deny() {
    use privsep::msg::{RuleAction, RuleMatch, RuleSpec};
    let dir = TempDir::new();
    dir.file("conf/users.auth.php", "<?php");
    let r = ruled(
        &dir,
        None,
        vec![
            RuleSpec {
                matcher: RuleMatch::Prefix(vec!["/conf/".into()]),
                action: RuleAction::Deny(403),
            },
            RuleSpec {
                matcher: RuleMatch::Regex("^/c/(.*)".into()),
                action: RuleAction::Rewrite { target: "/conf/$1".into(), fallback: false },
            },
        ],
    );
    assert_eq!(status_of(r.resolve("/c/users.auth.php")), Some(403));
}

#[test]
fn a_symlink_to_an_invisible_place_outside_the_root_is_an_escape_not_a_miss() {
    // Inside the worker's sandbox nothing outside the root is visible: the link's own
    // target, not what resolving it finds, says whether it escapes.
    let dir = TempDir::new();
    dir.file("index.php", "<?php");
    std::os::unix::fs::symlink("/nonexistent-bulkhead-dir", dir.path().join("out")).expect("link");
    std::os::unix::fs::symlink("sub/../../elsewhere", dir.path().join("up")).expect("link");
    std::os::unix::fs::symlink("missing-inside", dir.path().join("in")).expect("link");
    let r = root(&dir, Some("/index.php"));
    assert!(matches!(r.resolve("/out/secret.txt"), Err(PathError::Escapes(_))));
    assert!(matches!(r.resolve("/up/x.css"), Err(PathError::Escapes(_))));
    assert!(matches!(r.resolve("/in"), Err(PathError::BrokenSymlink(_))));
    assert!(matches!(r.resolve("/in/x.css"), Ok(Target::Script(_))), "a miss under it");
}
