//! Many requests at once: 200 requests over 16 connections, each connection its own client
//! on its own thread, half of them to each of two apps; every answer must be 200 with the
//! content of the right app. Run over HTTP/1.1 and over h2c.

use bulkhead_tests::{AppPlan, Proto, Stack, php};
use reqwest::Method;

const REQUESTS: usize = 200;
const CONNECTIONS: usize = 16;
const APPS: [&str; 2] = ["alpha", "beta"];

fn two_apps() -> Stack {
    let plans: Vec<AppPlan> =
        APPS.iter().map(|app| AppPlan::new(app).file("hello.php", &php::hello(app))).collect();
    Stack::start(&plans)
}

/// Requests `connection`, `connection + CONNECTIONS`, … on one client; returns the failures.
fn one_connection(stack: &Stack, proto: Proto, connection: usize) -> Vec<String> {
    let client = stack.client(proto);
    let app = APPS[connection % APPS.len()];
    let host = format!("{app}.localhost");
    let mut failures = Vec::new();
    for n in (connection..REQUESTS).step_by(CONNECTIONS) {
        let path = format!("/hello.php?n={n}");
        let expected = php::hello_body(app, i64::try_from(n).expect("small number"));
        match client.send(client.request(Method::GET, &host, &path)) {
            Ok(reply) if reply.status == 200 && reply.text() == expected => {
                if reply.version != proto.version() {
                    failures.push(format!("{host}{path}: version {:?}", reply.version));
                }
            }
            Ok(reply) => failures.push(format!("{host}{path}: {reply:?}")),
            Err(err) => failures.push(format!("{host}{path}: {err:?}")),
        }
    }
    failures
}

fn all_succeed(proto: Proto) {
    let stack = two_apps();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|connection| {
                let stack = &stack;
                scope.spawn(move || one_connection(stack, proto, connection))
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a client thread panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{proto:?}: {} of {REQUESTS} requests failed; first ones:\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn two_hundred_requests_over_sixteen_http1_connections() {
    all_succeed(Proto::Http1);
}

#[test]
fn two_hundred_requests_over_sixteen_h2c_connections() {
    all_succeed(Proto::H2c);
}
