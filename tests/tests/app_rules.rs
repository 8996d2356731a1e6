//! Per-app rules and what a miss means, end to end against real php-fpm, on synthetic
//! trees laid out like the apps whose nginx recipes the rules translate: WordPress
//! (uploads never run PHP, pretty permalinks, SERVER_SOFTWARE that enables them),
//! DokuWiki (nice URLs through fallback rewrites, `data/` and `conf/` unreachable),
//! MediaWiki short URLs (`/wiki/.NET_Framework` included), Laravel's `storage:link`
//! symlink, X-Accel-Redirect to internal-only paths, and paths the worker may not read.

use std::os::unix::fs::PermissionsExt;

use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions};

/// Says which script ran, with what the rules decided for it.
const DUMP: &str = r#"<?php
header('Content-Type: application/json');
$keys = ['SCRIPT_NAME', 'QUERY_STRING', 'REQUEST_URI', 'SERVER_SOFTWARE', 'APP_ENV'];
$out = ['script' => basename(__FILE__), 'get' => $_GET];
foreach ($keys as $k) { $out[$k] = $_SERVER[$k] ?? null; }
// wp-includes/vars.php and got_url_rewrite(): pretty permalinks need one of these.
$s = $_SERVER['SERVER_SOFTWARE'];
$out['wp_got_url_rewrite'] = str_contains($s, 'nginx') || str_contains($s, 'Caddy')
    || str_contains($s, 'Apache');
echo json_encode($out);
"#;

/// The broker's log once a line satisfies `wanted` (child lines are relayed through
/// a pipe, so they may trail the response by a moment), or after 10 s.
fn logged(stack: &Stack, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = stack.bulkhead.log();
        if log.lines().any(&wanted) || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const RAN: &str = "<?php echo 'SCRIPT RAN';";

fn wordpress() -> AppPlan {
    AppPlan::new("wp")
        .front_controller("/index.php")
        .file("index.php", DUMP)
        .file("wp-login.php", DUMP)
        .file("wp-content/uploads/2024/01/x.php", RAN)
        .file("wp-content/uploads/2024/01/photo.jpg", "JPEG")
        .file("wp-content/themes/t/style.css", "body{}")
        .file("wp-config.php", RAN)
        .line(r#"fastcgi_params = { APP_ENV = "production" }"#)
        .line(concat!(
            r#"rules = [ { prefix = "/wp-content/uploads/", no_scripts = true }, "#,
            r#"{ glob = "**/*.{css,js,jpg}", headers = { Cache-Control = "max-age=31536000" } } ]"#
        ))
}

#[test]
fn wordpress_uploads_never_run_and_pretty_permalinks_are_offered() {
    let stack = Stack::start(&[wordpress()]);
    let client = stack.client(Proto::Http1);
    let upload = client.get("wp.localhost", "/wp-content/uploads/2024/01/x.php");
    assert_eq!(upload.status, 403, "{upload:?}");
    assert!(!upload.text().contains("SCRIPT RAN"), "{upload:?}");
    let photo = client.get("wp.localhost", "/wp-content/uploads/2024/01/photo.jpg");
    assert_eq!((photo.status, photo.text().as_str()), (200, "JPEG"), "{photo:?}");
    assert_eq!(photo.header("cache-control"), Some("max-age=31536000"), "{photo:?}");
    let css = client.get("wp.localhost", "/wp-content/themes/t/style.css");
    assert_eq!(css.header("cache-control"), Some("max-age=31536000"), "{css:?}");
    for pretty in ["/2024/01/hello-world/", "/feed/", "/wp-json/wp/v2/posts"] {
        let reply = client.get("wp.localhost", pretty);
        assert_eq!(reply.status, 200, "{pretty}: {reply:?}");
        let json = reply.json();
        assert_eq!(json["script"], "index.php", "{pretty}: {json}");
        assert_eq!(json["wp_got_url_rewrite"], true, "{json}");
        assert_eq!(json["APP_ENV"], "production", "fastcgi_params: {json}");
        assert!(reply.header("cache-control").is_none(), "{reply:?}");
    }
    let missing = client.get("wp.localhost", "/nope.php");
    assert_eq!(missing.status, 404, "a missing .php never reaches index.php: {missing:?}");
    let software = client.get("wp.localhost", "/").json()["SERVER_SOFTWARE"].clone();
    assert!(software.as_str().is_some_and(|s| s.starts_with("bulkhead/")), "{software}");
}

fn dokuwiki() -> AppPlan {
    AppPlan::new("doku")
        .file("doku.php", DUMP)
        .file("lib/exe/fetch.php", DUMP)
        .file("lib/exe/detail.php", DUMP)
        .file("lib/tpl/dokuwiki/style.css", "css")
        .file("data/pages/secret.txt", "ACL-protected page source")
        .file("data/changes.log", "changelog")
        .file("conf/users.auth.php", RAN)
        .file("conf/local.php", RAN)
        .file("inc/init.php", RAN)
        .file("bin/indexer.php", RAN)
        .file("install.php", RAN)
        .line(concat!(
            "rules = [ ",
            r#"{ prefix = ["/data/", "/conf/", "/bin/", "/inc/", "/vendor/", "/install.php"], deny = 404 }, "#,
            r#"{ regex = "^/_media/(.*)", rewrite = "/lib/exe/fetch.php?media=$1", fallback = true }, "#,
            r#"{ regex = "^/_detail/(.*)", rewrite = "/lib/exe/detail.php?media=$1", fallback = true }, "#,
            r#"{ regex = "^/_export/([^/]+)/(.*)", rewrite = "/doku.php?do=export_$1&id=$2", fallback = true }, "#,
            r#"{ regex = "^/(.*)", rewrite = "/doku.php?id=$1", fallback = true } ]"#
        ))
}

#[test]
fn dokuwiki_nice_urls_work_and_its_data_and_conf_are_unreachable() {
    let stack = Stack::start(&[dokuwiki()]);
    let client = stack.client(Proto::Http1);
    let page = client.get("doku.localhost", "/wiki:syntax?do=edit");
    assert_eq!(page.status, 200, "{page:?}");
    let json = page.json();
    assert_eq!(
        (json["script"].as_str(), json["get"]["id"].as_str()),
        (Some("doku.php"), Some("wiki:syntax")),
        "{json}"
    );
    assert_eq!(json["get"]["do"], "edit", "the client's query is kept: {json}");
    assert_eq!(json["REQUEST_URI"], "/wiki:syntax?do=edit", "as sent: {json}");
    let media = client.get("doku.localhost", "/_media/wiki:dokuwiki-128.png").json();
    assert_eq!(
        (media["script"].as_str(), media["get"]["media"].as_str()),
        (Some("fetch.php"), Some("wiki:dokuwiki-128.png")),
        "{media}"
    );
    let export = client.get("doku.localhost", "/_export/raw/wiki:syntax").json();
    assert_eq!(export["get"]["do"], "export_raw", "{export}");
    assert_eq!(export["get"]["id"], "wiki:syntax", "{export}");
    let css = client.get("doku.localhost", "/lib/tpl/dokuwiki/style.css");
    assert_eq!((css.status, css.text().as_str()), (200, "css"), "files win over rewrites: {css:?}");
    let mut refused = 0;
    for path in [
        "/data/pages/secret.txt",
        "/data/changes.log",
        "/conf/users.auth.php",
        "/conf/local.php",
        "/inc/init.php",
        "/bin/indexer.php",
        "/install.php",
        "/data/../conf/local.php",
        "/%64ata/pages/secret.txt",
        "//data/pages/secret.txt",
    ] {
        let reply = client.get("doku.localhost", path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        let text = reply.text();
        assert!(!text.contains("SCRIPT RAN") && !text.contains("ACL-protected"), "{path}: {text}");
        refused += 1;
    }
    println!("{refused} attempts on DokuWiki's private files refused");
}

fn mediawiki() -> AppPlan {
    AppPlan::new("mw")
        .file("index.php", DUMP)
        .file("load.php", DUMP)
        .file("maintenance/update.php", RAN)
        .file("images/a/ab/Logo.png", "PNG")
        .file(".htaccess", "Deny from all")
        .line(concat!(
            "rules = [ ",
            r#"{ prefix = ["/maintenance/", "/cache/", "/includes/"], deny = 403 }, "#,
            r#"{ prefix = "/images/", no_scripts = true }, "#,
            r#"{ regex = "^/wiki/(.*)$", rewrite = "/index.php?title=$1" } ]"#
        ))
}

#[test]
fn mediawiki_short_urls_reach_index_php_dot_titles_included() {
    let stack = Stack::start(&[mediawiki()]);
    let client = stack.client(Proto::Http1);
    for (path, title) in [
        ("/wiki/Main_Page", "Main_Page"),
        ("/wiki/.NET_Framework", ".NET_Framework"),
        ("/wiki/Caf%C3%A9", "Caf\u{e9}"),
        ("/wiki/A%26B%3DC", "A&B=C"),
        ("/wiki/Help:Contents/Sub", "Help:Contents/Sub"),
    ] {
        let reply = client.get("mw.localhost", path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        let json = reply.json();
        assert_eq!(
            (json["script"].as_str(), json["get"]["title"].as_str()),
            (Some("index.php"), Some(title)),
            "{path}: {json}"
        );
        assert_eq!(json["REQUEST_URI"], path, "{json}");
    }
    let logo = client.get("mw.localhost", "/images/a/ab/Logo.png");
    assert_eq!((logo.status, logo.text().as_str()), (200, "PNG"), "{logo:?}");
    assert_eq!(client.get("mw.localhost", "/maintenance/update.php").status, 403);
    assert_eq!(
        client.get("mw.localhost", "/.htaccess").status,
        404,
        "existing dotfiles stay hidden"
    );
}

#[test]
fn a_missing_dot_segment_reaches_the_front_controller_and_existing_dotfiles_stay_hidden() {
    let plan = AppPlan::new("dots")
        .front_controller("/index.php")
        .file("index.php", DUMP)
        .file(".env", "DB_PASSWORD=hunter2")
        .file(".git/config", "[core]")
        .file(".well-known/security.txt", "Contact: mailto:x@example.com");
    let stack = Stack::start(&[plan]);
    let client = stack.client(Proto::Http1);
    let article = client.get("dots.localhost", "/wiki/.NET_Framework");
    assert_eq!(article.status, 200, "{article:?}");
    assert_eq!(article.json()["script"], "index.php");
    for hidden in ["/.env", "/.git/config", "/.git/HEAD", "/.git/"] {
        let reply = client.get("dots.localhost", hidden);
        assert_eq!(reply.status, 404, "{hidden}: {reply:?}");
        assert!(!reply.text().contains("hunter2"), "{reply:?}");
    }
    let txt = client.get("dots.localhost", "/.well-known/security.txt");
    assert_eq!(txt.status, 200, "{txt:?}");
}

#[test]
fn unreadable_paths_are_403_and_logged_with_the_workers_uid_never_the_front_controller() {
    let plan = AppPlan::new("locked")
        .front_controller("/index.php")
        .file("index.php", DUMP)
        .file("images/a.png", "PNG")
        .file("secret.html", "top secret")
        .file("admin.php", RAN);
    let stack = Stack::start(&[plan]);
    let root = stack.app("locked").root.clone();
    let chmod = |rel: &str, mode| {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    };
    // Owned by root with no access for others: the worker runs as an app uid.
    chmod("images", 0o700);
    chmod("secret.html", 0o600);
    chmod("admin.php", 0o600);
    let client = stack.client(Proto::Http1);
    for path in [
        "/images/a.png",
        "/images/missing.png",
        "/images/",
        "/images",
        "/secret.html",
        "/admin.php",
    ] {
        let reply = client.get("locked.localhost", path);
        assert_eq!(reply.status, 403, "{path}: {reply:?}");
        assert!(!reply.text().contains("SERVER_SOFTWARE"), "never the front controller: {path}");
    }
    let log = logged(&stack, |l| l.contains("permission denied") && l.contains("secret.html"));
    let line = log
        .lines()
        .find(|l| l.contains("permission denied") && l.contains("/images"))
        .unwrap_or_else(|| panic!("no warning naming the directory:\n{log}"));
    assert!(line.contains("WARN") && line.contains("uid="), "{line}");
    assert!(!line.contains("uid=0 "), "the worker must not run as root: {line}");
    assert!(
        log.lines().any(|l| l.contains("permission denied") && l.contains("secret.html")),
        "{log}"
    );
}

#[test]
fn broken_symlinks_404_with_a_debug_line_and_declared_targets_are_served() {
    let dir = bulkhead_tests::temp_dir();
    let storage = dir.path().join("storage/app/public");
    std::fs::create_dir_all(&storage).expect("mkdir");
    std::fs::write(storage.join("avatar.png"), "AVATAR").expect("write");
    std::fs::write(storage.join("x.php"), RAN).expect("write");
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), "SECRET").expect("write");
    let public = dir.path().join("public");
    std::fs::create_dir_all(&public).expect("mkdir");
    std::os::unix::fs::symlink(&storage, public.join("storage")).expect("link");
    std::os::unix::fs::symlink(&outside, public.join("other")).expect("link");
    std::os::unix::fs::symlink(public.join("nowhere"), public.join("gone.css")).expect("link");
    let plan = AppPlan::new("laravel")
        .root(&public)
        .front_controller("/index.php")
        .file("index.php", DUMP)
        .line(&format!(
            "symlink_targets = [{}]",
            bulkhead_tests::config::quote(&storage.to_string_lossy())
        ));
    let options = StackOptions {
        env: vec![("RUST_LOG".into(), "info,bulkhead_worker=debug,bulkhead::child=debug".into())],
        ..StackOptions::default()
    };
    let stack = Stack::start_with(&[plan], &options);
    let client = stack.client(Proto::Http1);
    let avatar = client.get("laravel.localhost", "/storage/avatar.png");
    assert_eq!((avatar.status, avatar.text().as_str()), (200, "AVATAR"), "{avatar:?}");
    assert_eq!(client.get("laravel.localhost", "/storage/x.php").status, 404, "no scripts there");
    assert_eq!(client.get("laravel.localhost", "/other/secret.txt").status, 404, "undeclared");
    assert_eq!(client.get("laravel.localhost", "/gone.css").status, 404);
    let found = |l: &str| {
        l.contains("DEBUG") && l.contains("symlink does not resolve") && l.contains("gone.css")
    };
    let log = logged(&stack, found);
    assert!(log.lines().any(found), "{log}");
}

#[test]
fn x_accel_redirect_keeps_the_scripts_content_type_and_internal_paths_are_hidden() {
    let plan = AppPlan::new("files")
        .file("download.php", "<?php header('Content-Type: application/pdf'); header('Content-Disposition: attachment; filename=\"r.pdf\"'); header('X-Accel-Redirect: /private/7f3e9a');")
        .file("private/7f3e9a", "%PDF-1.4")
        .line(r#"rules = [ { prefix = "/private/", internal = true } ]"#);
    let stack = Stack::start(&[plan]);
    let client = stack.client(Proto::Http1);
    let pdf = client.get("files.localhost", "/download.php");
    assert_eq!((pdf.status, pdf.text().as_str()), (200, "%PDF-1.4"), "{pdf:?}");
    assert_eq!(pdf.header("content-type"), Some("application/pdf"), "{pdf:?}");
    assert!(pdf.header("content-disposition").is_some_and(|v| v.contains("r.pdf")), "{pdf:?}");
    let direct = client.get("files.localhost", "/private/7f3e9a");
    assert_eq!(direct.status, 404, "internal only: {direct:?}");
    assert!(!direct.text().contains("PDF"), "{direct:?}");
}

#[test]
fn a_preset_brings_its_recipes_rules_and_front_controller() {
    let plan = AppPlan::new("preset")
        .file("index.php", DUMP)
        .file("wp-content/uploads/x.php", RAN)
        .file("wp-config.php", RAN)
        .line(r#"preset = "wordpress""#)
        .line(r#"rules = [ { prefix = "/private/", deny = 410 } ]"#);
    let stack = Stack::start(&[plan]);
    let client = stack.client(Proto::Http1);
    let pretty = client.get("preset.localhost", "/2024/01/hello/");
    assert_eq!(pretty.status, 200, "the preset's front controller: {pretty:?}");
    assert_eq!(pretty.json()["script"], "index.php");
    let upload = client.get("preset.localhost", "/wp-content/uploads/x.php");
    assert_eq!(upload.status, 403, "{upload:?}");
    assert!(!upload.text().contains("SCRIPT RAN"));
    assert_eq!(client.get("preset.localhost", "/wp-config.php").status, 403);
    assert_eq!(
        client.get("preset.localhost", "/private/x").status,
        410,
        "the app's own rules follow"
    );
}
