//! The broker's control plane against a compromised gateway and a crash-looping app.
//!
//! A rigged bin directory (see `bulkhead_tests::rigged`) replaces the gateway, after its
//! first start, by `bulkhead-hostile-child` three times: a flood of channel requests
//! naming a 60 KiB app, a flood naming a real on-demand app (more than the budget), and
//! one naming an app that is not on demand. Each must be stopped at once, the broker
//! must not grow or flood its log, and the real gateway must serve again afterwards.
//! An app whose worker cannot start is retried at the longest backoff while in a crash
//! loop, and at once by a reload.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_tests::net::poll_until;
use bulkhead_tests::rigged::{self, shell_quote};
use bulkhead_tests::{AppPlan, Launch, Proto, Stack, StackOptions, binaries, php, procfs};

/// How long a stack may take to serve again after an attack or a fix.
const RECOVERY: Duration = Duration::from_secs(40);
/// The broker may grow by at most this much during the floods (bytes).
const MAX_GROWTH: u64 = 10 * 1024 * 1024;

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    let line = text.lines().find(|l| l.starts_with(field)).expect("the field is in status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number");
    kib * 1024
}

/// Whether `host` answers `/hello.php` with 200.
fn serves(stack: &Stack, host: &str) -> bool {
    let client = stack.client(Proto::Http1);
    let request = client.request(reqwest::Method::GET, host, "/hello.php?n=1");
    client.send(request).is_ok_and(|reply| reply.status == 200)
}

#[test]
fn a_gateway_flooding_the_broker_is_stopped_at_once_and_the_broker_stays_small() {
    let dir = bulkhead_tests::temp_dir();
    let state = dir.path().join("hostile");
    std::fs::create_dir_all(&state).expect("creating the state dir");
    let hostile = shell_quote(&binaries::binary("bulkhead-hostile-child"));
    let st = shell_quote(&state);
    // Start 0 is the real gateway; starts 1–3 attack; then the real one again.
    let gateway = format!(
        "n=$(cat {st}/starts 2>/dev/null || echo 0); echo $((n + 1)) > {st}/starts\n\
         case $n in\n\
           1) exec {hostile} {st} long-names ;;\n\
           2) exec {hostile} {st} need-channel-flood lazy ;;\n\
           3) exec {hostile} {st} need-channel-flood victim ;;\n\
         esac\n\
         exec $REAL_GATEWAY \"$@\""
    );
    let broker = rigged::bin_dir_with_gateway(dir.path(), &[], &gateway);
    let launch = Launch { broker: Some(broker), ..Default::default() };
    let lazy = hello_app("lazy").line("on_demand = true");
    let stack = Stack::start_with(
        &[hello_app("victim"), lazy],
        &StackOptions { launch, ..Default::default() },
    );
    assert!(serves(&stack, "victim.localhost"), "the first gateway serves");
    let broker_pid = stack.bulkhead.pid();
    let rss_before = status_bytes(broker_pid, "VmRSS");
    let log_before = stack.bulkhead.log().len();
    let gateway_pid = stack.bulkhead.gateway_pid().expect("a live gateway");
    let _ = std::process::Command::new("kill").args(["-KILL", &gateway_pid.to_string()]).status();

    let started = Instant::now();
    let served = poll_until(RECOVERY, || {
        let starts = std::fs::read_to_string(state.join("starts")).unwrap_or_default();
        let attacked = starts.trim().parse::<u32>().unwrap_or(0) >= 5;
        (attacked && serves(&stack, "victim.localhost")).then_some(())
    });
    let took = started.elapsed();
    let log = stack.bulkhead.log();
    let added = &log[log_before.min(log.len())..];
    let peak_growth = status_bytes(broker_pid, "VmHWM").saturating_sub(rss_before);
    let attacks = bulkhead_tests::read_log(&state.join("log"));
    println!("three hostile gateways, served again after {took:?}");
    println!("broker: RSS before {rss_before} B, peak growth {peak_growth} B");
    println!("log lines added: {} ({} bytes)\n{attacks}", added.lines().count(), added.len());
    assert!(served.is_some(), "the real gateway never served again:\n{added}");
    assert!(procfs::is_alive(broker_pid), "the broker died");
    assert!(!attacks.contains("still alive"), "a hostile gateway was not killed:\n{attacks}");
    assert!(peak_growth < MAX_GROWTH, "the broker grew by {peak_growth} bytes");
    assert!(added.len() < 64 * 1024, "the floods wrote {} bytes of log:\n{added}", added.len());
    assert!(!added.contains("xxxxxxxx"), "a hostile app name reached the log");
    assert!(added.lines().count() < 100, "the floods were logged line by line:\n{added}");
    let violations: Vec<&str> =
        added.lines().filter(|l| l.contains("protocol violation")).collect();
    assert_eq!(violations.len(), 3, "one line per hostile gateway:\n{added}");
    assert!(
        violations[0].contains("an app name of 60000 bytes that no configuration holds"),
        "the long name is named as the reason:\n{added}"
    );
    assert!(
        violations[1].contains("more than 200 control messages in a burst"),
        "the flood for an on-demand app is stopped by the message budget:\n{added}"
    );
    // A flood for an app that is not on demand is stopped by whichever check sees it
    // first: the budget or the orchestrator's rule. Either way, once.
    let victim = violations[2];
    assert!(
        victim.contains("asked for a channel to an app that is not on demand")
            || victim.contains("more than 200 control messages in a burst"),
        "the flood for an app that is not on demand is stopped:\n{added}"
    );
    assert!(serves(&stack, "lazy.localhost"), "the on-demand app starts for the new gateway");
}

/// A worker stand-in that fails while `flag` exists and is the real worker otherwise.
fn flaky_worker(dir: &Path, flag: &Path) -> String {
    let script = dir.join("flaky-worker");
    let real = shell_quote(&binaries::binary(binaries::WORKER));
    let body = format!("#!/bin/sh\n[ -e {} ] && exit 1\nexec {real}\n", shell_quote(flag));
    std::fs::write(&script, body).expect("writing the flaky worker");
    let _ = std::process::Command::new("chmod").arg("755").arg(&script).status();
    shell_quote(&script)
}

#[test]
fn a_crash_loop_is_retried_at_the_longest_backoff_and_at_once_by_a_reload() {
    let dir = bulkhead_tests::temp_dir();
    let flag = dir.path().join("broken");
    std::fs::write(&flag, "").expect("creating the flag");
    let broker = rigged::bin_dir(dir.path(), &[("flaky", flaky_worker(dir.path(), &flag))]);
    let launch = Launch { broker: Some(broker), ..Default::default() };
    let options = StackOptions { launch, ..Default::default() };
    let stack = Stack::start_with(&[hello_app("steady"), hello_app("flaky")], &options);
    let looping = |s: &bulkhead_tests::admin::AppState| s.state == "crash-loop";
    let state = stack.bulkhead.wait_app("flaky", RECOVERY, looping);
    assert!(state.is_ok(), "no crash loop: {state:?}");
    let flaky = &stack.bulkhead.status()["apps"].as_array().expect("apps").clone();
    let flaky = flaky.iter().find(|a| a["name"] == "flaky").expect("flaky in status");
    let next = flaky["next_attempt_ms"].as_u64();
    println!("status in the crash loop: {flaky}");
    assert!(next.is_some_and(|ms| ms <= 10_000), "status says when it is tried next: {flaky}");

    // Fixed, and reloaded with an unchanged configuration: retried at once.
    std::fs::remove_file(&flag).expect("removing the flag");
    let reloaded = Instant::now();
    let outcome = stack.bulkhead.reload();
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    assert!(outcome.stdout.contains("retried after a crash loop"), "{outcome:?}");
    let back = poll_until(RECOVERY, || serves(&stack, "flaky.localhost").then_some(()));
    println!("served {:?} after the reload", reloaded.elapsed());
    assert!(back.is_some(), "the reload did not revive the app:\n{}", stack.bulkhead.log());

    // Broken again until a crash loop; fixed without a reload: tried again by itself.
    std::fs::write(&flag, "").expect("creating the flag");
    let pid = stack.bulkhead.app_state("flaky").workers.first().map(|w| w.0).expect("a worker");
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    let state = stack.bulkhead.wait_app("flaky", RECOVERY, looping);
    assert!(state.is_ok(), "no second crash loop: {state:?}");
    std::fs::remove_file(&flag).expect("removing the flag");
    let fixed = Instant::now();
    let back = poll_until(RECOVERY, || serves(&stack, "flaky.localhost").then_some(()));
    println!("served {:?} after the fix, without a reload", fixed.elapsed());
    assert!(back.is_some(), "a crash-looping app is never retried:\n{}", stack.bulkhead.log());
    assert!(serves(&stack, "steady.localhost"), "the other app never noticed");
    let log = stack.bulkhead.log();
    assert!(log.contains("retrying at the longest backoff"), "{log}");
}
