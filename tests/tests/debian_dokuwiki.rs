//! A real application through its recipe: Debian's `dokuwiki` package, copied into a
//! private directory laid out as upstream ships it (`conf/` and `data/` inside the
//! tree), served through real php-fpm with the rules of `deploy/examples/dokuwiki.toml`.
//! Nice URLs (`userewrite = 1`) work; `data/`, `conf/`, `inc/`, `bin/`, `install.php`
//! and an ACL-protected page's source are unreachable by every URL tried.
//!
//! (WordPress with MariaDB, MediaWiki and phpMyAdmin are exercised with synthetic trees in
//! `app_rules.rs`: installing and seeding them is too slow for CI today.)

use std::path::Path;
use std::process::Command;

use bulkhead_tests::{AppPlan, Proto, Stack};

const SHARE: &str = "/usr/share/dokuwiki";
const HOST: &str = "dokuwiki.localhost";
const SECRET: &str = "TOP SECRET LAUNCH CODES";

fn copy(from: &str, to: &Path) {
    let status = Command::new("cp").arg("-rL").arg(from).arg(to).status().expect("running cp");
    assert!(status.success(), "cp -rL {from} {}", to.display());
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Debian's tree, made self-contained: `conf/` from /etc/dokuwiki, `data/` from
/// /var/lib/dokuwiki, Debian's preload.php (which points at /etc) removed.
fn private_copy(dir: &Path) -> std::path::PathBuf {
    assert!(
        Path::new(SHARE).join("doku.php").is_file(),
        "{SHARE}/doku.php missing: install it with `apt-get install --no-install-recommends dokuwiki`"
    );
    let root = dir.join("dokuwiki");
    copy(SHARE, &root);
    copy("/etc/dokuwiki", &root.join("conf"));
    copy("/var/lib/dokuwiki/data", &root.join("data"));
    std::fs::remove_file(root.join("inc/preload.php")).expect("removing Debian's preload.php");
    write(
        &root,
        "conf/local.php",
        "<?php\n$conf['savedir'] = DOKU_INC.'data';\n$conf['userewrite'] = 1;\n$conf['useacl'] = 1;\n$conf['superuser'] = '@admin';\n$conf['title'] = 'Bulkhead Wiki';\n",
    );
    write(&root, "conf/acl.auth.php", "*\t@ALL\t1\nsecret:*\t@ALL\t0\nsecret:*\t@admin\t16\n");
    write(&root, "conf/users.auth.php", "");
    write(
        &root,
        "data/pages/wiki/syntax.txt",
        "====== Formatting Syntax ======\n\nSee [[wiki:dokuwiki]].\n",
    );
    write(&root, "data/pages/secret/plans.txt", &format!("====== Plans ======\n\n{SECRET}\n"));
    // php-fpm writes caches, locks and indexes here.
    let status = Command::new("chmod").args(["-R", "a+rwX"]).arg(root.join("data")).status();
    assert!(status.expect("chmod").success());
    root
}

/// The example's rules, as one inline TOML line.
fn example_rules() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/dokuwiki.toml");
    let table: toml::Table = std::fs::read_to_string(path).expect("example").parse().expect("TOML");
    let rules = table["app"][0]["rules"].clone();
    format!("rules = {rules}")
}

#[test]
fn debian_dokuwiki_serves_nice_urls_and_hides_its_data_and_conf() {
    let dir = bulkhead_tests::temp_dir();
    let root = private_copy(dir.path());
    let plan = AppPlan::new("dokuwiki").root(&root).line(&example_rules());
    let stack = Stack::start(&[plan]);
    let client = stack.client(Proto::Http1);

    let page = client.get(HOST, "/wiki:syntax");
    assert_eq!(page.status, 200, "{page:?}");
    let html = page.text();
    assert!(html.contains("Formatting Syntax"), "{html}");
    assert!(html.contains("href=\"/wiki:dokuwiki\""), "links are nice URLs: {html}");
    let raw = client.get(HOST, "/_export/raw/wiki:syntax");
    assert_eq!(raw.status, 200, "{raw:?}");
    assert!(raw.text().starts_with("====== Formatting Syntax ======"), "{raw:?}");
    let logo = client.get(HOST, "/_media/wiki:dokuwiki-128.png");
    assert_eq!(logo.status, 200, "{logo:?}");
    assert_eq!(logo.header("content-type"), Some("image/png"), "{logo:?}");
    let css = client.get(HOST, "/lib/exe/css.php");
    assert_eq!(css.status, 200, "{css:?}");

    let denied = client.get(HOST, "/secret:plans").text();
    assert!(denied.contains(r#""ACT":"denied""#), "DokuWiki's ACL refused the page: {denied}");
    let mut refused = 0;
    for path in [
        "/data/pages/secret/plans.txt",
        "/data/pages/wiki/syntax.txt",
        "/data/attic/",
        "/data/cache/",
        "/conf/local.php",
        "/conf/users.auth.php",
        "/conf/acl.auth.php",
        "/inc/init.php",
        "/bin/indexer.php",
        "/install.php",
        "/vendor/autoload.php",
        "/%64ata/pages/secret/plans.txt",
        "/lib/../data/pages/secret/plans.txt",
    ] {
        let reply = client.get(HOST, path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert!(!reply.text().contains(SECRET), "{path}");
        refused += 1;
    }
    for path in
        ["/secret:plans", "/_export/raw/secret:plans", "/doku.php?id=secret:plans&do=export_raw"]
    {
        let reply = client.get(HOST, path);
        assert!(!reply.text().contains(SECRET), "ACL-protected source leaked by {path}: {reply:?}");
        refused += 1;
    }
    println!("{refused} attempts on DokuWiki's private files and ACL-protected page refused");
}
