//! After traffic to both apps, no process holds a secret it was never given:
//! the gateway and app B's worker hold no copy of app A's secret (and vice
//! versa). Positive control: the same scan finds A's secret in A's worker.

use bulkhead_tests::binaries::{GATEWAY, WORKER};
use bulkhead_tests::procfs::{self, Pid};
use bulkhead_tests::{AppPlan, Proto, Stack, php, unique_token};

const APPS: [&str; 2] = ["alpha", "beta"];

fn role(pid: Pid) -> String {
    let env = procfs::environ(pid).unwrap_or_default();
    env.split(|b| *b == 0)
        .find_map(|e| {
            e.strip_prefix(b"BULKHEAD_ROLE=").map(|r| String::from_utf8_lossy(r).into_owned())
        })
        .unwrap_or_default()
}

#[test]
fn no_process_holds_another_partys_secret() {
    let secrets: Vec<String> =
        APPS.iter().map(|app| unique_token(&format!("{app}-memory-secret"))).collect();
    let plans: Vec<AppPlan> = APPS
        .iter()
        .zip(&secrets)
        .map(|(app, secret)| {
            AppPlan::new(app).file("hello.php", &php::hello(app)).secret("DB_PASSWORD", secret)
        })
        .collect();
    let stack = Stack::start(&plans);
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        for n in 0..5 {
            for app in APPS {
                let reply = client.get(&format!("{app}.localhost"), &format!("/hello.php?n={n}"));
                assert_eq!(reply.status, 200, "{app}: {reply:?}");
            }
        }
    }
    let children = stack.bulkhead.children();
    let gateway = children
        .iter()
        .copied()
        .find(|&p| procfs::exe_name(p).as_deref() == Some(GATEWAY))
        .expect("gateway");
    let worker = |app: &str| {
        children
            .iter()
            .copied()
            .find(|&p| {
                procfs::exe_name(p).as_deref() == Some(WORKER)
                    && role(p) == format!("worker[{app}]")
            })
            .unwrap_or_else(|| panic!("no worker for {app}"))
    };
    let (alpha, beta) = (worker("alpha"), worker("beta"));
    let (a, b) = (secrets[0].as_bytes(), secrets[1].as_bytes());
    let found = [
        ("gateway", "alpha's", procfs::memory_occurrences(gateway, a)),
        ("gateway", "beta's", procfs::memory_occurrences(gateway, b)),
        ("worker[beta]", "alpha's", procfs::memory_occurrences(beta, a)),
        ("worker[alpha]", "beta's", procfs::memory_occurrences(alpha, b)),
    ];
    println!("memory scan: {found:?}");
    assert!(found.iter().all(|(_, _, n)| *n == 0), "secrets where they must not be: {found:?}");
    let control = procfs::memory_occurrences(alpha, a);
    println!("positive control: alpha's secret found {control} time(s) in worker[alpha]");
    assert!(control > 0, "the scan must find alpha's secret in alpha's own worker");
}
