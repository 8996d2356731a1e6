//! What clients see when the backend is missing or says no: a stopped or never-started
//! php-fpm gives 502 "backend is unavailable" for that app only, and a missing script gives
//! php-fpm's own 404.

use bulkhead_tests::{AppPlan, Proto, Reply, Stack, php};

const UNAVAILABLE: &str = "backend is unavailable";

fn assert_unavailable(reply: &Reply) {
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(
        reply.text().to_lowercase().contains(UNAVAILABLE),
        "the body should say the {UNAVAILABLE}: {reply:?}"
    );
}

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

#[test]
fn stopped_php_fpm_gives_502_and_other_apps_keep_working() {
    let mut stack = Stack::start(&[hello_app("alpha"), hello_app("beta")]);
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get("alpha.localhost", "/hello.php?n=1").status, 200);
    stack.fpm.stop("alpha");
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        assert_unavailable(&client.get("alpha.localhost", "/hello.php?n=2"));
        let beta = client.get("beta.localhost", "/hello.php?n=3");
        assert_eq!(beta.status, 200, "beta must not notice alpha's outage: {beta:?}");
        assert_eq!(beta.text(), php::hello_body("beta", 3));
    }
}

/// The worker's sandbox holds the socket file it saw at start-up; after a php-fpm
/// restart that inode is dead. The worker reports it and the broker replaces the
/// app's workers, so the app serves again within a few seconds, untouched by hand.
#[test]
fn restarted_php_fpm_is_reached_again() {
    recovers_after_a_restart(hello_app("alpha"));
}

/// As above, with connections kept to php-fpm: the restart kills the children that
/// hold them, and the kept connections are given up, not served from.
#[test]
fn restarted_php_fpm_behind_kept_connections_is_reached_again() {
    recovers_after_a_restart(hello_app("alpha").line("fastcgi_keepalive = 2"));
}

fn recovers_after_a_restart(alpha: AppPlan) {
    let mut stack = Stack::start(&[alpha, hello_app("beta")]);
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get("alpha.localhost", "/hello.php?n=1").status, 200);
    stack.fpm.restart("alpha");
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    let recovered = loop {
        let reply = client.get("alpha.localhost", "/hello.php?n=2");
        statuses.push(reply.status);
        if reply.status == 200 {
            assert_eq!(reply.text(), php::hello_body("alpha", 2));
            break true;
        }
        if started.elapsed() > std::time::Duration::from_secs(15) {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    println!("alpha answered {statuses:?} until it recovered after {:?}", started.elapsed());
    assert!(recovered, "alpha never reached its restarted php-fpm: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 502)), "{statuses:?}");
    assert_eq!(client.get("beta.localhost", "/hello.php?n=3").status, 200);
}

#[test]
fn never_started_backend_gives_502() {
    let stack = Stack::start(&[hello_app("alpha").without_backend(), hello_app("beta")]);
    let client = stack.client(Proto::Http1);
    assert_unavailable(&client.get("alpha.localhost", "/hello.php?n=1"));
    assert_eq!(client.get("beta.localhost", "/hello.php?n=1").status, 200);
}

#[test]
fn missing_script_gives_php_fpm_404() {
    let stack = Stack::start(&[hello_app("alpha")]);
    for proto in [Proto::Http1, Proto::H2c] {
        let reply = stack.client(proto).get("alpha.localhost", "/no-such-script.php");
        assert_eq!(reply.status, 404, "{proto:?}: {reply:?}");
        assert!(reply.text().contains("File not found."), "{proto:?}: {reply:?}");
    }
}
