//! The sandboxes of a real running instance, read from `/proc`: every thread
//! of the gateway and of each worker is filtered by seccomp, has
//! no_new_privs and no capabilities; the gateway's root is empty and its
//! network and mount namespaces are not the broker's; the two apps' workers
//! run as different uids; `bulkhead audit` agrees.

use std::process::Command;

use bulkhead_tests::binaries::{self, GATEWAY, WORKER};
use bulkhead_tests::procfs::{self, Pid};
use bulkhead_tests::{AppPlan, Proto, Stack, php};

const APPS: [&str; 2] = ["alpha", "beta"];

fn running() -> Stack {
    let plans: Vec<AppPlan> =
        APPS.iter().map(|app| AppPlan::new(app).file("hello.php", &php::hello(app))).collect();
    let stack = Stack::start(&plans);
    let client = stack.client(Proto::H2c);
    for app in APPS {
        let reply = client.get(&format!("{app}.localhost"), "/hello.php?n=1");
        assert_eq!(reply.status, 200, "{app}: {reply:?}");
    }
    stack
}

fn children_named(stack: &Stack, name: &str) -> Vec<Pid> {
    stack
        .bulkhead
        .children()
        .into_iter()
        .filter(|&p| procfs::exe_name(p).as_deref() == Some(name))
        .collect()
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

/// `(tid, status)` of every thread of `pid`.
fn threads(pid: Pid) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("listing threads")
        .filter_map(Result::ok)
        .map(|e| {
            let tid = e.file_name().to_string_lossy().into_owned();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            (tid, status)
        })
        .collect()
}

fn ns(pid: Pid, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .expect("reading a namespace link")
        .display()
        .to_string()
}

#[test]
fn every_thread_of_every_child_is_locked_down() {
    let stack = running();
    let mut children = children_named(&stack, GATEWAY);
    children.extend(children_named(&stack, WORKER));
    assert_eq!(children.len(), 1 + APPS.len(), "a gateway and a worker per app");
    for pid in children {
        let name = procfs::exe_name(pid).unwrap_or_default();
        let threads = threads(pid);
        // The gateway runs one runtime thread per two CPUs: on a bigger machine they
        // exist before seccomp (TSYNC must reach them); on two cores it is one thread.
        // A worker runs one thread, plus blocking-pool threads born later.
        if name == GATEWAY {
            let multi = bulkhead_tests::gateway_runtime_threads() > 1;
            assert_eq!(threads.len() > 1, multi, "{name} has {} threads", threads.len());
        }
        for (tid, status) in threads {
            assert_eq!(field(&status, "Seccomp"), "2", "{name} thread {tid}");
            assert_eq!(field(&status, "NoNewPrivs"), "1", "{name} thread {tid}");
            assert_eq!(field(&status, "CapEff"), "0000000000000000", "{name} thread {tid}");
            assert_eq!(field(&status, "CapBnd"), "0000000000000000", "{name} thread {tid}");
        }
    }
}

#[test]
fn gateway_sees_an_empty_root_and_its_own_network() {
    let stack = running();
    let gateway = children_named(&stack, GATEWAY)[0];
    let broker = stack.bulkhead.pid();
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{gateway}/root"))
        .expect("listing the gateway's root")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(root.is_empty(), "the gateway's root shows {root:?}");
    for kind in ["net", "mnt"] {
        assert_ne!(ns(gateway, kind), ns(broker, kind), "{kind} namespace");
    }
}

#[test]
fn each_app_runs_as_its_own_uid() {
    let stack = running();
    let uids: Vec<String> = children_named(&stack, WORKER)
        .into_iter()
        .map(|pid| {
            field(&std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status"), "Uid")
        })
        .collect();
    assert_eq!(uids.len(), 2);
    assert_ne!(uids[0], uids[1], "workers of different apps share a uid");
    let gateway = children_named(&stack, GATEWAY)[0];
    let gateway_uid =
        field(&std::fs::read_to_string(format!("/proc/{gateway}/status")).expect("status"), "Uid");
    assert!(!uids.contains(&gateway_uid), "the gateway shares a uid with a worker");
    assert!(!gateway_uid.starts_with("0\t"), "the gateway runs as root");
}

#[test]
fn audit_passes_on_the_live_instance() {
    let stack = running();
    let out = Command::new(binaries::binary(binaries::BROKER))
        .args(["audit", "--config"])
        .arg(stack.bulkhead.config_path())
        .output()
        .expect("running bulkhead audit");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "audit failed:\n{text}");
    assert!(text.contains("gateway (pid"), "{text}");
    assert_eq!(text.matches("worker[").count(), 2, "{text}");
}
