//! The worker's library against a real php-fpm 8.2 pool started for the test.
//!
//! Needs `php-fpm8.2` (Debian/Ubuntu package `php8.2-fpm`); the path can be overridden
//! with `PHP_FPM`. The pool listens on a Unix socket in a temporary directory and is
//! killed when the test ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, request, send, spec, start};
use http::StatusCode;

const DEFAULT_PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

/// A php-fpm master serving one pool; killed on drop.
struct PhpFpm {
    child: Child,
    socket: PathBuf,
}

impl PhpFpm {
    fn start(dir: &Path) -> Self {
        let binary = std::env::var("PHP_FPM").unwrap_or_else(|_| DEFAULT_PHP_FPM.into());
        assert!(
            Path::new(&binary).exists(),
            "{binary} not found: install php8.2-fpm (apt-get install php8.2-fpm) or set PHP_FPM"
        );
        let socket = dir.join("fpm.sock");
        let conf = dir.join("fpm.conf");
        std::fs::write(&conf, config(dir, &socket)).expect("write php-fpm config");
        let child = Command::new(&binary)
            .args(["-F", "-R", "-n", "-y"])
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php-fpm");
        let fpm = Self { child, socket };
        fpm.wait_for_socket();
        fpm
    }

    fn wait_for_socket(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket.exists() {
            assert!(Instant::now() < deadline, "php-fpm did not create {}", self.socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PhpFpm {
    /// SIGTERM, so the master stops its children too (SIGKILL would orphan them).
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let terminated = Command::new("kill").args(["-TERM", &pid]).status();
        if !terminated.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, socket: &Path) -> String {
    let root_user = if running_as_root() { "user = root\ngroup = root\n" } else { "" };
    format!(
        "[global]\nerror_log = {log}\ndaemonize = no\npid = {pid}\n\n\
         [app]\nlisten = {socket}\nlisten.mode = 0666\n{root_user}\
         pm = static\npm.max_children = 2\nsecurity.limit_extensions = .php\n\
         clear_env = yes\ncatch_workers_output = yes\n",
        log = dir.join("fpm.log").display(),
        pid = dir.join("fpm.pid").display(),
        socket = socket.display(),
    )
}

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn docroot() -> TempDir {
    let dir = TempDir::new();
    dir.file(
        "www/index.php",
        r#"<?php
setcookie('a', '1');
setcookie('b', '2');
header('X-Accel-Charset: utf-8');
error_log('this goes to stderr, not the client');
printf("script=%s info=%s secret=%s body=%s https=%s host=%s method=%s remote=%s",
    $_SERVER['SCRIPT_NAME'], $_SERVER['PATH_INFO'] ?? '', $_SERVER['DB_PASSWORD'] ?? '',
    file_get_contents('php://input'), $_SERVER['HTTPS'] ?? 'off', $_SERVER['HTTP_HOST'],
    $_SERVER['REQUEST_METHOD'], $_SERVER['REMOTE_ADDR']);
"#,
    );
    dir.file("www/redirect.php", "<?php header('Location: /elsewhere');");
    dir.file(
        "www/big.php",
        "<?php for ($i = 0; $i < 64; $i++) { echo str_repeat('x', 16384); flush(); }",
    );
    dir.file("www/style.css", "body { color: red }");
    dir
}

#[tokio::test]
async fn runs_scripts_through_a_real_php_fpm() {
    let dir = docroot();
    let fpm = PhpFpm::start(dir.path());
    let mut client = start(spec(&dir.path().join("www"), &fpm.socket)).await;

    let (head, body) = send(&mut client, request("POST", "/index.php/extra?x=1", b"payload")).await;
    assert_eq!(head.status(), StatusCode::OK);
    let body = String::from_utf8(body.expect("complete").to_vec()).expect("utf-8");
    let expected = "script=/index.php info=/extra secret=s3cret-value body=payload https=off \
                    host=blog.test:8080 method=POST remote=192.0.2.7";
    assert_eq!(body, expected);
    let cookies: Vec<_> = head.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert!(!head.headers().contains_key("x-accel-charset"));
    assert!(!body.contains("stderr"));
}

#[tokio::test]
async fn passes_php_fpm_statuses_and_streams_large_bodies() {
    let dir = docroot();
    let fpm = PhpFpm::start(dir.path());
    let mut client = start(spec(&dir.path().join("www"), &fpm.socket)).await;

    let (head, body) = send(&mut client, request("GET", "/missing.php", b"")).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    assert_eq!(body.expect("complete"), "File not found.\n");

    let (head, _) = send(&mut client, request("GET", "/redirect.php", b"")).await;
    assert_eq!(head.status(), StatusCode::FOUND);
    assert_eq!(head.headers()["location"], "/elsewhere");

    let (head, body) = send(&mut client, request("GET", "/big.php", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(body.expect("complete").len(), 64 * 16384);

    let (head, body) = send(&mut client, request("GET", "/style.css", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-type"], "text/css");
    assert_eq!(body.expect("complete"), "body { color: red }");
}
