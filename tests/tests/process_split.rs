//! The privilege split is real: the broker, the gateway and one worker per app are
//! separate processes started from their own binaries, and no secret is visible in any of
//! their command lines or environments. SIGTERM stops the broker and all of them.

use bulkhead_tests::binaries::{BROKER, GATEWAY, WORKER};
use bulkhead_tests::net::poll_until;
use bulkhead_tests::procfs::{self, Pid};
use bulkhead_tests::{AppPlan, Proto, Stack, php, unique_token};
use nix::sys::signal::Signal;
use std::time::Duration;

const APPS: [&str; 2] = ["alpha", "beta"];
const ENV_VAR: &str = "BULKHEAD_TEST_BETA_API_TOKEN";

struct Secrets {
    files: Vec<String>,
    env: String,
}

fn two_apps() -> (Stack, Secrets) {
    let secrets = Secrets {
        files: APPS.iter().map(|app| unique_token(&format!("{app}-db"))).collect(),
        env: unique_token("beta-api-token"),
    };
    let mut plans: Vec<AppPlan> = APPS
        .iter()
        .zip(&secrets.files)
        .map(|(app, secret)| {
            AppPlan::new(app).file("hello.php", &php::hello(app)).secret("DB_PASSWORD", secret)
        })
        .collect();
    plans[1] = plans[1].clone().secret_env("API_TOKEN", ENV_VAR, &secrets.env);
    let stack = Stack::start(&plans);
    warm_up(&stack);
    (stack, secrets)
}

/// One request per app, so every worker exists and has served.
fn warm_up(stack: &Stack) {
    let client = stack.client(Proto::Http1);
    for app in APPS {
        let reply = client.get(&format!("{app}.localhost"), "/hello.php?n=0");
        assert_eq!(reply.status, 200, "{app}: {reply:?}");
    }
}

fn names(pids: &[Pid]) -> Vec<String> {
    pids.iter()
        .map(|&pid| procfs::exe_name(pid).unwrap_or_else(|| format!("<pid {pid} gone>")))
        .collect()
}

#[test]
fn broker_gateway_and_workers_are_separate_processes() {
    let (stack, _) = two_apps();
    let broker = stack.bulkhead.pid();
    assert_eq!(procfs::exe_name(broker).as_deref(), Some(BROKER));
    let children = stack.bulkhead.children();
    let names = names(&children);
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count(GATEWAY), 1, "one gateway among the broker's children: {names:?}");
    assert_eq!(count(WORKER), APPS.len(), "one worker per app: {names:?}");
    assert!(!children.contains(&broker), "{children:?}");
}

/// The broker plus everything below it, with names, for assertion messages.
fn family(stack: &Stack) -> Vec<(Pid, String)> {
    let broker = stack.bulkhead.pid();
    let mut pids = vec![broker];
    pids.extend(procfs::descendants(broker));
    let names = names(&pids);
    pids.into_iter().zip(names).collect()
}

#[test]
fn no_secret_in_any_command_line_or_environment() {
    let (stack, secrets) = two_apps();
    let mut leaks = Vec::new();
    for (pid, name) in family(&stack) {
        let cmdline = procfs::cmdline(pid);
        let environ = procfs::environ(pid).expect("reading /proc/PID/environ");
        for secret in &secrets.files {
            for (what, bytes) in [("cmdline", &cmdline), ("environ", &environ)] {
                if procfs::contains_bytes(bytes, secret.as_bytes()) {
                    leaks.push(format!("{name} ({pid}) {what} holds a file secret"));
                }
            }
        }
        // The operator put the env secret into the broker's environment; no child may inherit it.
        if pid != stack.bulkhead.pid() && procfs::contains_bytes(&environ, secrets.env.as_bytes()) {
            leaks.push(format!("{name} ({pid}) environ holds {ENV_VAR}"));
        }
    }
    assert!(leaks.is_empty(), "secrets visible in /proc: {leaks:#?}");
}

#[test]
fn sigterm_stops_the_broker_and_its_children() {
    let (mut stack, _) = two_apps();
    let children = stack.bulkhead.children();
    assert!(!children.is_empty(), "the broker has children to stop");
    stack.bulkhead.signal(Signal::SIGTERM);
    let status = stack.bulkhead.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "the broker must exit after SIGTERM");
    let gone = poll_until(Duration::from_secs(5), || {
        children.iter().all(|&pid| !procfs::is_alive(pid)).then_some(())
    });
    let alive: Vec<Pid> = children.into_iter().filter(|&p| procfs::is_alive(p)).collect();
    assert!(gone.is_some(), "children still running after the broker exited: {:?}", names(&alive));
}

/// logrotate sends SIGUSR1 and nginx habits send SIGUSR2: neither may stop anything.
#[test]
fn sigusr1_and_sigusr2_are_logged_and_change_nothing() {
    let (stack, _) = two_apps();
    let children = stack.bulkhead.children();
    for signal in [Signal::SIGUSR1, Signal::SIGUSR2] {
        stack.bulkhead.signal(signal);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(procfs::is_alive(stack.bulkhead.pid()), "the broker must survive SIGUSR1 and SIGUSR2");
    assert!(children.iter().all(|&pid| procfs::is_alive(pid)), "no child may stop");
    let reply = stack.client(Proto::Http1).get(&format!("{}.localhost", APPS[0]), "/hello.php?n=1");
    assert_eq!(reply.status, 200, "the first app still serves: {reply:?}");
    let log = stack.bulkhead.log();
    assert!(log.contains("SIGUSR1 ignored") && log.contains("SIGUSR2 ignored"), "{log}");
}
