//! What clients see when the backend is missing or says no: a stopped or never-started
//! php-fpm gives 502 "backend is unavailable" for that app only, and a missing script gives
//! php-fpm's own 404. A php-fpm that starts after Bulkhead, or restarts, is noticed by the
//! broker itself: the app serves again without waiting for a request to fail first.

use std::time::{Duration, Instant};

use bulkhead_tests::net::{free_port, loopback};
use bulkhead_tests::{AppPlan, AppSpec, Bulkhead, Client, PhpFpm, Pool, Proto, Reply, Stack, php};

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

/// Four requests at once, all of which must be served.
fn four_at_once(stack: &Stack, n: i64) -> Vec<u16> {
    std::thread::scope(|scope| {
        let requests: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    stack.client(Proto::Http1).get("alpha.localhost", &format!("/hello.php?n={n}"))
                })
            })
            .collect();
        requests.into_iter().map(|r| r.join().expect("a request thread").status).collect()
    })
}

/// Polls alpha every 25 ms until it serves; how long that took, and what it answered.
fn time_to_serve(stack: &Stack) -> (Duration, Vec<u16>) {
    let client = stack.client(Proto::Http1);
    let started = Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_secs(15) {
        let status = client.get("alpha.localhost", "/hello.php?n=4").status;
        statuses.push(status);
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    (started.elapsed(), statuses)
}

/// systemd may start Bulkhead before php-fpm: the pool's socket appears later, and the
/// broker starts workers that can reach it as soon as it sees it.
#[test]
fn php_fpm_started_after_bulkhead_is_served_as_soon_as_its_socket_appears() {
    let stack = Stack::start(&[hello_app("alpha").without_backend(), hello_app("beta")]);
    assert_unavailable(&stack.client(Proto::Http1).get("alpha.localhost", "/hello.php?n=1"));
    let _fpm = PhpFpm::start(stack.dir(), &[Pool::new("alpha")]);
    let (took, statuses) = time_to_serve(&stack);
    println!("alpha served {took:?} after its socket appeared: {statuses:?}");
    assert_eq!(statuses.last(), Some(&200), "alpha never reached its php-fpm: {statuses:?}");
    assert!(took < Duration::from_secs(3), "the broker must notice the socket itself: {took:?}");
    assert_eq!(four_at_once(&stack, 5), [200; 4]);
}

/// After a restart of php-fpm, nothing has to fail for the app to come back: requests
/// arriving once the broker has seen the new socket are all served.
#[test]
fn a_php_fpm_restart_is_noticed_before_any_request_fails() {
    for keepalive in [0, 2] {
        let alpha = hello_app("alpha").line(&format!("fastcgi_keepalive = {keepalive}"));
        let mut stack = Stack::start(&[alpha, hello_app("beta")]);
        assert_eq!(four_at_once(&stack, 1), [200; 4]);
        stack.fpm.restart("alpha");
        std::thread::sleep(Duration::from_millis(800));
        let statuses = four_at_once(&stack, 2);
        println!("fastcgi_keepalive = {keepalive}: 0.8 s after the restart: {statuses:?}");
        assert_eq!(statuses, [200; 4], "fastcgi_keepalive = {keepalive}");
        let log = stack.bulkhead.log();
        assert!(log.contains("backend socket appeared or was recreated"), "{log}");
    }
}

/// A TCP backend that refuses (php-fpm restarting) sent nothing: the worker tries again
/// for a few seconds, so a request that arrives during the restart is served once php-fpm
/// listens again; one that stays down is a 502 after those seconds, not the app's timeout.
#[test]
fn a_refused_tcp_backend_is_tried_again_until_it_listens() {
    let dir = bulkhead_tests::temp_dir();
    let root = dir.path().join("alpha");
    std::fs::create_dir_all(&root).expect("creating the root");
    php::write_file(&root, "hello.php", &php::hello("alpha"));
    let port = free_port();
    let pool = Pool { tcp: Some(port), ..Pool::new("alpha") };
    let mut fpm = PhpFpm::start(dir.path(), std::slice::from_ref(&pool));
    let listen = loopback(free_port());
    let app = AppSpec::new("alpha", &root, &format!("127.0.0.1:{port}"));
    let bulkhead = Bulkhead::start(&bulkhead_tests::config_toml(&[listen], &[app]));
    let client = Client::new(listen, Proto::Http1, &["alpha.localhost"]);
    assert_eq!(client.get("alpha.localhost", "/hello.php?n=1").status, 200);

    fpm.stop("alpha");
    let started = Instant::now();
    let waiting = std::thread::spawn(move || client.get("alpha.localhost", "/hello.php?n=2"));
    std::thread::sleep(Duration::from_millis(700));
    let _fpm = PhpFpm::start(dir.path(), &[pool]);
    let reply = waiting.join().expect("the request thread");
    println!(
        "a request sent while php-fpm was down: {} after {:?}",
        reply.status,
        started.elapsed()
    );
    assert_eq!((reply.status, reply.text()), (200, php::hello_body("alpha", 2)));
    drop(_fpm);

    let started = Instant::now();
    let down = Client::new(listen, Proto::Http1, &["alpha.localhost"])
        .get("alpha.localhost", "/hello.php?n=3");
    let took = started.elapsed();
    println!("with php-fpm down for good: {} after {took:?}", down.status);
    assert_unavailable(&down);
    assert!(took < Duration::from_secs(10), "a backend that stays down: {took:?}");
    drop(bulkhead);
}
