//! SIGTERM: the gateway stops accepting, the requests in flight finish (a PHP `sleep(2)`
//! each), the broker exits 0 and none of its children outlives it; a request slower than
//! `shutdown_timeout` is cut at the deadline and the broker still exits 0. A Ctrl-C, which
//! reaches the whole process group, drains the same way: children stop on the broker's word.

use std::time::{Duration, Instant};

use bulkhead_tests::load::{Load, LoadSpec};
use bulkhead_tests::{AppPlan, Stack, StackOptions, procfs};
use nix::sys::signal::Signal;

const SLOW: &str = "<?php\nsleep((int) ($_GET['s'] ?? 2));\necho 'slow done';\n";

fn slow_stack(shutdown_timeout: &str) -> Stack {
    let app = AppPlan::new("slow").file("slow.php", SLOW);
    let top = vec![format!("shutdown_timeout = \"{shutdown_timeout}\"")];
    Stack::start_with(&[app], &StackOptions { top, ..Default::default() })
}

fn slow_requests(stack: &Stack, seconds: u64, threads: usize) -> Load {
    let path = format!("/slow.php?s={seconds}");
    let spec = LoadSpec::new("slow.localhost", &path, threads, Duration::from_secs(10))
        .max_per_thread(1)
        .expect("slow done");
    let load = Load::start(stack.addr(), &spec);
    let sent = bulkhead_tests::net::poll_until(Duration::from_secs(5), || {
        (load.in_flight() == threads).then_some(())
    });
    assert!(sent.is_some(), "the slow requests were not all sent");
    // Let them reach php-fpm.
    std::thread::sleep(Duration::from_millis(500));
    load
}

#[test]
fn sigterm_lets_slow_requests_finish_and_exits_0() {
    let mut stack = slow_stack("10s");
    let children = stack.bulkhead.children();
    assert!(children.len() >= 2, "a gateway and a worker: {children:?}");
    let load = slow_requests(&stack, 2, 3);
    let in_flight = load.in_flight();
    let signalled = Instant::now();
    stack.bulkhead.signal(Signal::SIGTERM);
    let status = stack.bulkhead.wait_exit(Duration::from_secs(20));
    let took = signalled.elapsed();
    let report = load.finish();
    println!("SIGTERM with {in_flight} slow requests in flight: exit {status:?} after {took:?}");
    assert_eq!(report.ok, 3, "every in-flight request must complete with 200: {report}");
    let status = status.expect("the broker did not exit");
    assert_eq!(status.code(), Some(0), "{status}");
    for pid in children {
        assert!(procfs::poll_gone(pid, Duration::from_secs(2)), "child {pid} outlived the broker");
    }
    let log = stack.bulkhead.log();
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn ctrl_c_to_the_process_group_drains_like_sigterm() {
    let mut stack = slow_stack("10s");
    let load = slow_requests(&stack, 2, 2);
    stack.bulkhead.signal_group(Signal::SIGINT);
    let status = stack.bulkhead.wait_exit(Duration::from_secs(20));
    let report = load.finish();
    assert_eq!(report.ok, 2, "the children must not die of the group's SIGINT: {report}");
    assert_eq!(status.expect("the broker did not exit").code(), Some(0));
}

#[test]
fn sigterm_cuts_requests_at_the_shutdown_timeout_and_still_exits_0() {
    let mut stack = slow_stack("1s");
    let children = stack.bulkhead.children();
    let load = slow_requests(&stack, 8, 1);
    let signalled = Instant::now();
    stack.bulkhead.signal(Signal::SIGTERM);
    let status = stack.bulkhead.wait_exit(Duration::from_secs(15));
    let took = signalled.elapsed();
    let report = load.finish();
    println!("SIGTERM with an 8 s request and a 1 s deadline: exit {status:?} after {took:?}");
    let status = status.expect("the broker did not exit");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took < Duration::from_secs(6), "the deadline was not kept: {took:?}");
    assert_eq!(report.ok, 0, "{report}");
    for pid in children {
        assert!(procfs::poll_gone(pid, Duration::from_secs(2)), "child {pid} outlived the broker");
    }
}
