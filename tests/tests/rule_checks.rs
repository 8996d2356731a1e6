//! `bulkhead check` on rules: every example in `deploy/examples/` passes (with its paths
//! made to exist under a temporary directory), so the recipes never rot; and every kind
//! of rule mistake exits 64 naming its key path.

use std::path::{Path, PathBuf};

use bulkhead_tests::bulkhead::{self, EXIT_CONFIG};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/examples exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The example with `/srv/…` and `/run/…` moved under `base`, its directories created.
fn localized(text: &str, base: &Path) -> String {
    let base = base.display();
    let text = text.replace("\"/srv/", &format!("\"{base}/srv/"));
    let text = text.replace("unix:/run/", &format!("unix:{base}/run/"));
    let table: toml::Table = text.parse().expect("the example is TOML");
    for app in table["app"].as_array().expect("[[app]]") {
        let mut dirs = vec![app["root"].clone()];
        for key in ["writable", "symlink_targets"] {
            dirs.extend(app.get(key).and_then(|v| v.as_array()).into_iter().flatten().cloned());
        }
        for dir in dirs {
            std::fs::create_dir_all(dir.as_str().expect("a path")).expect("mkdir");
        }
    }
    text
}

#[test]
fn every_example_config_passes_check() {
    let files = examples();
    assert!(files.len() >= 4, "expected the app recipes, found {files:?}");
    for file in &files {
        let dir = bulkhead_tests::temp_dir();
        let text = std::fs::read_to_string(file).expect("readable example");
        let outcome = bulkhead::check(&localized(&text, dir.path()));
        assert_eq!(outcome.code, Some(0), "{}: {outcome:?}", file.display());
    }
    println!("{} example configs pass `bulkhead check`", files.len());
}

#[test]
fn rule_mistakes_are_reported_with_their_key_paths() {
    let dir = bulkhead_tests::temp_dir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let quoted = bulkhead_tests::config::quote(&root.to_string_lossy());
    let cases: &[(&str, &str, &str)] = &[
        (r#"{ prefix = "/a/" }"#, "app[0].rules[0]", "exactly one of deny"),
        (r#"{ deny = true }"#, "app[0].rules[0]", "exactly one of prefix"),
        (
            r#"{ prefix = "/a/", glob = "/b", deny = true }"#,
            "app[0].rules[0]",
            "exactly one of prefix",
        ),
        (r#"{ prefix = "a/", deny = true }"#, "app[0].rules[0].prefix[0]", "must start with '/'"),
        (r#"{ glob = "/a/[z-a]", deny = true }"#, "app[0].rules[0].glob[0]", "glob"),
        (r#"{ regex = "(", deny = true }"#, "app[0].rules[0].regex", "regex"),
        (r#"{ prefix = "/", deny = 200 }"#, "app[0].rules[0].deny", "not a client error"),
        (
            r#"{ prefix = "/", no_scripts = 502 }"#,
            "app[0].rules[0].no_scripts",
            "not a client error",
        ),
        (r#"{ prefix = "/", internal = false }"#, "app[0].rules[0].internal", "must be true"),
        (r#"{ prefix = "/", rewrite = "/x" }"#, "app[0].rules[0].rewrite", "needs a `regex`"),
        (r#"{ regex = "^/(.*)", rewrite = "/x?a=$2" }"#, "app[0].rules[0].rewrite", "$2"),
        (
            r#"{ regex = "^/(.*)", rewrite = "x" }"#,
            "app[0].rules[0].rewrite",
            "must start with '/'",
        ),
        (
            r#"{ prefix = "/", deny = true, fallback = true }"#,
            "app[0].rules[0].fallback",
            "only to a rewrite",
        ),
        (
            r#"{ prefix = "/", headers = { "bad name" = "v" } }"#,
            "app[0].rules[0].headers.bad name",
            "not a header name",
        ),
        (r#"{ prefix = "/", headers = {} }"#, "app[0].rules[0].headers", "at least one"),
        (r#"{ prefix = "/", nope = 1 }"#, "app[0].rules[0].nope", "unknown field"),
    ];
    for (rule, key, message) in cases {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[[app]]\nname = \"a\"\nhosts = [\"a.localhost\"]\nroot = {quoted}\nfastcgi = \"127.0.0.1:9000\"\nrules = [ {rule} ]\n"
        );
        assert_problem(&text, key, message);
    }
    let params = [
        (
            "fastcgi_params = { SCRIPT_FILENAME = \"/etc/passwd\" }",
            "app[0].fastcgi_params.SCRIPT_FILENAME",
            "sets itself",
        ),
        ("fastcgi_params = { HTTP_HOST = \"x\" }", "app[0].fastcgi_params.HTTP_HOST", "HTTP_"),
        (
            "fastcgi_params = { DB_PASSWORD = \"x\" }",
            "app[0].fastcgi_params.DB_PASSWORD",
            "also a secret",
        ),
        ("fastcgi_params = { lower = \"x\" }", "app[0].fastcgi_params.lower", "[A-Z]"),
        ("symlink_targets = [\"/nonexistent/dir\"]", "app[0].symlink_targets[0]", "does not exist"),
        ("symlink_targets = [\"relative\"]", "app[0].symlink_targets[0]", "absolute"),
        ("preset = \"joomla\"", "app[0].preset", "not a preset"),
    ];
    let secret = dir.path().join("db");
    std::fs::write(&secret, "pw").expect("secret");
    let secret = bulkhead_tests::config::quote(&secret.to_string_lossy());
    for (line, key, message) in params {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[[app]]\nname = \"a\"\nhosts = [\"a.localhost\"]\nroot = {quoted}\nfastcgi = \"127.0.0.1:9000\"\n{line}\n[app.secrets]\nDB_PASSWORD = {{ file = {secret} }}\n"
        );
        assert_problem(&text, key, message);
    }
}

fn assert_problem(text: &str, key: &str, message: &str) {
    let outcome = bulkhead::check(text);
    assert_eq!(outcome.code, Some(EXIT_CONFIG), "{text}\n{outcome:?}");
    let output = outcome.output();
    let line = output
        .lines()
        .find(|line| line.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no problem at `{key}` for:\n{text}\n{output}"));
    assert!(line.contains(message), "{key}: expected {message:?} in {line:?}");
}
