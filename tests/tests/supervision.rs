//! Supervision under load: a killed worker costs only its app's in-flight requests and is
//! back within a second; a killed gateway costs no refused connection; an app whose worker
//! cannot start ends in "crash-loop" without disturbing the others; on-demand apps start at
//! their first request and stop when idle; `workers = 3` runs three ready workers.

use std::time::{Duration, Instant};

use bulkhead_tests::load::{self, Load, LoadSpec};
use bulkhead_tests::procfs;
use bulkhead_tests::{AppPlan, Proto, Stack, php};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid as NixPid;

/// Generous: readiness on a loaded two-core machine.
const SETTLE: Duration = Duration::from_secs(15);
/// How soon a killed worker's app must serve again.
const RECOVERY: Duration = Duration::from_secs(1);
/// Client threads per app in the load loops.
const THREADS: usize = 4;

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

fn sigkill(pid: u32) {
    let pid = NixPid::from_raw(i32::try_from(pid).expect("pids fit in i32"));
    kill(pid, Signal::SIGKILL).expect("sending SIGKILL");
}

fn hello_load(name: &str, threads: usize, duration: Duration) -> LoadSpec {
    LoadSpec::new(&format!("{name}.localhost"), "/hello.php?n=7", threads, duration)
        .expect(&php::hello_body(name, 7))
}

fn ready_worker(stack: &Stack, app: &str) -> u32 {
    let state = stack
        .bulkhead
        .wait_app(app, SETTLE, |s| !s.ready_pids().is_empty())
        .unwrap_or_else(|last| panic!("{app} has no ready worker: {last:?}"));
    state.ready_pids()[0]
}

#[test]
fn kill_9_of_a_worker_costs_only_its_in_flight_requests() {
    let stack = Stack::start(&[hello_app("alpha"), hello_app("beta")]);
    let victim = ready_worker(&stack, "alpha");
    ready_worker(&stack, "beta");
    let window = Duration::from_secs(4);
    let alpha = Load::start(stack.addr(), &hello_load("alpha", THREADS, window));
    let beta = Load::start(stack.addr(), &hello_load("beta", THREADS, window));
    std::thread::sleep(Duration::from_millis(1200));
    let in_flight = alpha.in_flight();
    sigkill(victim);
    let killed = Instant::now();
    let expect = php::hello_body("alpha", 7);
    let back =
        load::time_until_ok(stack.addr(), "alpha.localhost", "/hello.php?n=7", &expect, SETTLE)
            .map(|_| killed.elapsed());
    let (alpha, beta) = (alpha.finish(), beta.finish());
    println!(
        "worker kill: alpha in flight at the kill {in_flight}, alpha failed {}, beta failed {}, \
         alpha served again after {back:?}",
        alpha.failed(),
        beta.failed()
    );
    assert_eq!(beta.failed(), 0, "beta must not notice alpha's crash: {beta}");
    assert!(beta.ok > 0 && alpha.ok > 0, "both loads must have run: {alpha}\n{beta}");
    assert!(
        alpha.failed() <= THREADS,
        "alpha may lose at most its in-flight requests ({THREADS} client threads): {alpha}"
    );
    let back = back.expect("alpha never served again");
    assert!(back <= RECOVERY, "alpha took {back:?} to serve again (limit {RECOVERY:?})");
    let state = stack.bulkhead.app_state("alpha");
    assert_eq!(state.restarts, 1, "{state:?}");
    assert!(!state.ready_pids().contains(&victim), "{state:?}");
}

#[test]
fn kill_9_of_the_gateway_refuses_no_connection() {
    let stack = Stack::start(&[hello_app("alpha")]);
    ready_worker(&stack, "alpha");
    let gateway = stack.bulkhead.gateway_pid().expect("a gateway runs");
    let spec = hello_load("alpha", THREADS, Duration::from_secs(4)).fresh_connections();
    let running = Load::start(stack.addr(), &spec);
    std::thread::sleep(Duration::from_millis(1000));
    sigkill(gateway);
    let killed = Instant::now();
    let expect = php::hello_body("alpha", 7);
    let back =
        load::time_until_ok(stack.addr(), "alpha.localhost", "/hello.php?n=7", &expect, SETTLE)
            .map(|_| killed.elapsed());
    let report = running.finish();
    let after = load::run(stack.addr(), &spec.clone().max_per_thread(10));
    println!(
        "gateway kill: connection refused {}, other errors {}, served again after {back:?}; \
         afterwards {} of {} ok",
        report.refused,
        report.other_errors,
        after.ok,
        after.total()
    );
    assert_eq!(report.refused, 0, "the listeners must outlive the gateway: {report}");
    assert!(back.is_some(), "requests never resumed after the gateway was killed");
    assert_eq!(after.failed(), 0, "{after}");
    let new_gateway = stack.bulkhead.gateway_pid().expect("a gateway runs again");
    assert_ne!(new_gateway, gateway);
    assert!(!procfs::is_alive(gateway));
}

#[test]
fn a_worker_that_cannot_come_back_ends_in_crash_loop_and_others_keep_serving() {
    let stack = Stack::start(&[hello_app("alpha"), hello_app("fragile")]);
    let victim = ready_worker(&stack, "fragile");
    // Its document root disappears: no new worker can enter its sandbox.
    let root = stack.app("fragile").root.clone();
    std::fs::rename(&root, root.with_extension("gone")).expect("moving the document root away");
    let running = Load::start(stack.addr(), &hello_load("alpha", 2, Duration::from_secs(10)));
    let started = Instant::now();
    sigkill(victim);
    let state = stack.bulkhead.wait_app("fragile", SETTLE, |s| s.state == "crash-loop");
    let took = started.elapsed();
    let report = running.stop();
    let state = state.unwrap_or_else(|last| panic!("no crash loop: {last:?}"));
    println!("crash loop declared after {took:?} and {} restarts: {state:?}", state.restarts);
    assert!(state.restarts > 5, "{state:?}");
    assert!(state.workers.is_empty(), "{state:?}");
    assert_eq!(report.failed(), 0, "alpha must not notice: {report}");
    assert!(stack.bulkhead.log().contains("crash loop"), "the crash loop must be logged");
    // A crash loop holds until the next reload, even once the cause is gone.
    std::fs::rename(root.with_extension("gone"), &root).expect("restoring the document root");
    let audit = stack.bulkhead.admin("audit");
    assert!(audit.stdout.contains("app fragile crash-loop"), "audit must show it: {audit:?}");
    let reply = stack.client(Proto::Http1).get("fragile.localhost", "/hello.php");
    assert_eq!(reply.status, 502, "{reply:?}");
}

fn bulkhead_workers(stack: &Stack) -> usize {
    let children = stack.bulkhead.children();
    children.iter().filter(|p| procfs::exe_name(**p).as_deref() == Some("bulkhead-worker")).count()
}

#[test]
fn on_demand_app_starts_at_first_request_and_stops_when_idle() {
    let lazy = hello_app("lazy").line("on_demand = true").line("idle_timeout = \"1s\"");
    let stack = Stack::start(&[hello_app("alpha"), lazy]);
    ready_worker(&stack, "alpha");
    let before = stack.bulkhead.app_state("lazy");
    assert_eq!(before.state, "idle", "{before:?}");
    assert!(before.workers.is_empty(), "no worker before the first request: {before:?}");
    assert_eq!(bulkhead_workers(&stack), 1, "only alpha's worker runs");
    let client = stack.client(Proto::Http1);
    let cold = timed(|| client.get("lazy.localhost", "/hello.php?n=1"));
    let warm = timed(|| client.get("lazy.localhost", "/hello.php?n=2"));
    println!("on-demand: cold start {:?}, warm request {:?}", cold.1, warm.1);
    assert_eq!(cold.0.status, 200, "{:?}", cold.0);
    assert_eq!(cold.0.text(), php::hello_body("lazy", 1));
    assert_eq!(warm.0.status, 200, "{:?}", warm.0);
    let pid = ready_worker(&stack, "lazy");
    assert_eq!(bulkhead_workers(&stack), 2);
    let stopped = stack.bulkhead.wait_app("lazy", SETTLE, |s| s.workers.is_empty());
    let stopped = stopped.unwrap_or_else(|last| panic!("the idle worker kept running: {last:?}"));
    assert_eq!(stopped.state, "idle", "{stopped:?}");
    assert!(procfs::poll_gone(pid, SETTLE), "worker {pid} is still alive");
    assert_eq!(stopped.restarts, 0, "an idle stop is no crash: {stopped:?}");
    let again = timed(|| client.get("lazy.localhost", "/hello.php?n=3"));
    println!("on-demand: second cold start {:?}", again.1);
    assert_eq!(again.0.status, 200, "{:?}", again.0);
    assert_eq!(again.0.text(), php::hello_body("lazy", 3));
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

#[test]
fn three_workers_all_serve_a_share_of_the_load() {
    let stack = Stack::start(&[hello_app("multi").line("workers = 3")]);
    let state = stack.bulkhead.wait_app("multi", SETTLE, |s| s.ready_pids().len() == 3);
    let state = state.unwrap_or_else(|last| panic!("three ready workers expected: {last:?}"));
    let pids = state.ready_pids();
    let before: Vec<u64> = pids.iter().map(|p| procfs::syscalls(*p)).collect();
    let spec = hello_load("multi", 6, Duration::from_secs(10)).max_per_thread(50);
    let report = load::run(stack.addr(), &spec);
    let grew: Vec<u64> =
        pids.iter().zip(&before).map(|(p, b)| procfs::syscalls(*p).saturating_sub(*b)).collect();
    println!("workers = 3: pids {pids:?}, I/O syscalls during the load {grew:?}");
    assert_eq!(report.total(), 300, "{report}");
    assert_eq!(report.failed(), 0, "{report}");
    for (pid, n) in pids.iter().zip(&grew) {
        assert!(*n >= 100, "worker {pid} did hardly any I/O ({n} syscalls): no share of the load");
    }
}
