//! A compromised worker attacks the broker over its control socket: a flood of 10,000
//! messages, an unknown message type, an oversized datagram, random bytes, a message only
//! the gateway may send, a message smuggling a descriptor. The broker stays up, kills and
//! logs each offender, other apps lose nothing, and the attacker ends in "crash-loop".
//!
//! The broker starts its children from the directory of its own executable, so the tests
//! give it a rigged one (see `bulkhead_tests::rigged`) where the "worker" of app `evil` is
//! `bulkhead-hostile-child`, or a program that exits at once.

use std::time::{Duration, Instant};

use bulkhead_tests::binaries;
use bulkhead_tests::load::{Load, LoadSpec};
use bulkhead_tests::rigged::{self, shell_quote};
use bulkhead_tests::{AppPlan, Launch, Proto, Stack, StackOptions, php, procfs};

const SETTLE: Duration = Duration::from_secs(45);

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

#[test]
fn garbage_on_the_control_socket_never_hurts_the_broker_or_other_apps() {
    let dir = bulkhead_tests::temp_dir();
    let state = dir.path().join("hostile");
    std::fs::create_dir_all(&state).expect("creating the state dir");
    let hostile = binaries::binary("bulkhead-hostile-child");
    let command = format!("{} {}", shell_quote(&hostile), shell_quote(&state));
    let broker = rigged::bin_dir(dir.path(), &[("evil", command)]);
    let launch = Launch { broker: Some(broker), ..Default::default() };
    let plans = [hello_app("victim"), hello_app("evil").without_backend()];
    let started = Instant::now();
    let stack = Stack::start_with(&plans, &StackOptions { launch, ..Default::default() });
    let spec = LoadSpec::new("victim.localhost", "/hello.php?n=7", 3, Duration::from_secs(10))
        .expect(&php::hello_body("victim", 7));
    let running = Load::start(stack.addr(), &spec);
    let evil = stack.bulkhead.wait_app("evil", SETTLE, |s| s.state == "crash-loop");
    let took = started.elapsed();
    let report = running.stop();
    let attacks = bulkhead_tests::read_log(&state.join("log"));
    println!("hostile child, crash loop after {took:?}:\n{attacks}");
    let evil = evil.unwrap_or_else(|last| panic!("the attacker is not in crash-loop: {last:?}"));
    assert_eq!(report.failed(), 0, "the victim app must not notice: {report}");
    assert!(report.ok > 0, "{report}");
    assert!(procfs::is_alive(stack.bulkhead.pid()), "the broker died");
    assert!(evil.restarts >= 6, "{evil:?}");
    assert!(!attacks.contains("still alive"), "an offender was not killed: {attacks}");
    let log = stack.bulkhead.log();
    let violations = log.matches("protocol violation").count();
    println!("protocol violations logged: {violations}");
    assert!(violations >= 6, "every attack must be logged as a violation:\n{log}");
    let reasons = [
        // The flood of 10,000 allowed messages is over the budget long before its second
        // `Ready` (whose refusal is a unit test of the broker's).
        "more than 200 control messages in a burst",
        "unknown variant `Shutdown`",
        "truncated",
        "malformed control message: expected value",
        "NeedChannel",
        "descriptors, expected 0",
    ];
    for reason in reasons {
        assert!(log.contains(reason), "no log line about {reason:?}:\n{log}");
    }
    assert!(stack.bulkhead.has_app("victim"), "status still answers");
    // A channel to an attacker that died before the gateway took it up is the attacker's
    // loss only: the gateway must not exit over it.
    let gateway = stack.bulkhead.status()["gateway"].clone();
    assert_eq!(gateway["restarts"].as_u64(), Some(0), "the gateway restarted: {gateway}\n{log}");
}

#[test]
fn an_app_whose_worker_exits_at_once_does_not_hold_up_the_gateway() {
    let dir = bulkhead_tests::temp_dir();
    let broker = rigged::bin_dir(dir.path(), &[("broken", "/bin/false".to_owned())]);
    let options = StackOptions {
        launch: Launch { broker: Some(broker), ..Default::default() },
        ..Default::default()
    };
    let started = Instant::now();
    let stack = Stack::start_with(&[hello_app("alpha"), hello_app("broken")], &options);
    let took = started.elapsed();
    let state = stack.bulkhead.app_state("broken");
    println!("served after {took:?} beside a crash-looping app: {state:?}");
    assert_eq!(state.state, "crash-loop", "the gateway started before the crash loop: {state:?}");
    let reply = stack.client(Proto::Http1).get("alpha.localhost", "/hello.php?n=1");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(took < Duration::from_secs(8), "the crash loop held up the gateway for {took:?}");
}
