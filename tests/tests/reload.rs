//! Reload under load: one app added, one removed and one changed while two others serve
//! steadily: the steady ones lose nothing, the changed one serves its new document root,
//! the removed host gets 421 and the added one answers. An invalid config changes nothing
//! and `bulkhead reload` exits 64 naming the key; SIGHUP reloads like the command.

use std::time::Duration;

use bulkhead_tests::load::{self, Load, LoadSpec};
use bulkhead_tests::php::{self, write_file};
use bulkhead_tests::{AppPlan, AppSpec, Proto, Stack, StackOptions};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(15);

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

fn hello_load(name: &str, threads: usize) -> LoadSpec {
    LoadSpec::new(&format!("{name}.localhost"), "/hello.php?n=7", threads, Duration::from_secs(5))
        .expect(&php::hello_body(name, 7))
}

/// A second document root for `app` whose hello.php says it is `label`.
fn new_root(stack: &Stack, app: &str, label: &str) -> AppSpec {
    let root = stack.dir().join("apps").join(format!("{app}-v2"));
    write_file(&root, "hello.php", &php::hello(label));
    let mut spec = stack.app(app).clone();
    spec.root = root;
    spec
}

fn wait_for_status(stack: &Stack, host: &str, status: u16) -> bool {
    let client = stack.client_with(Proto::Http1, &[host]);
    bulkhead_tests::net::poll_until(SETTLE, || {
        let reply = client.send(client.request(reqwest::Method::GET, host, "/hello.php?n=7"));
        reply.ok().filter(|r| r.status == status).map(|_| ())
    })
    .is_some()
}

#[test]
fn reload_during_load_adds_removes_and_changes_apps() {
    let plans = ["steady", "calm", "changed", "removed", "added"].map(hello_app);
    let options = StackOptions { not_configured: vec!["added".into()], ..Default::default() };
    let stack = Stack::start_with(&plans, &options);
    for app in ["steady", "calm", "changed", "removed"] {
        let state = stack.bulkhead.wait_app(app, SETTLE, |s| !s.ready_pids().is_empty());
        state.unwrap_or_else(|last| panic!("{app} never got ready: {last:?}"));
    }
    let changed_v2 = new_root(&stack, "changed", "changed-v2");
    let steady = Load::start(stack.addr(), &hello_load("steady", 3));
    let calm = Load::start(stack.addr(), &hello_load("calm", 3));
    let changed = Load::start(
        stack.addr(),
        &LoadSpec::new("changed.localhost", "/hello.php?n=7", 2, Duration::from_secs(5))
            .expect(" n=7"),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let apps = [stack.app("steady"), stack.app("calm"), &changed_v2, stack.app("added")];
    let apps: Vec<AppSpec> = apps.into_iter().cloned().collect();
    stack.bulkhead.rewrite_config(&stack.config_for(&apps));
    let reload = stack.bulkhead.reload();
    println!("bulkhead reload: {}", reload.output().trim_end());
    let (steady, calm, changed) = (steady.finish(), calm.finish(), changed.finish());
    assert_eq!(reload.code, Some(0), "{}", reload.output());
    assert!(reload.stdout.contains("1 added, 1 changed, 1 removed"), "{}", reload.output());
    assert_eq!(steady.failed(), 0, "an unchanged app lost requests: {steady}");
    assert_eq!(calm.failed(), 0, "an unchanged app lost requests: {calm}");
    assert_eq!(changed.failed(), 0, "the changed app lost requests: {changed}");
    let expect = php::hello_body("changed-v2", 7);
    let new_content =
        load::time_until_ok(stack.addr(), "changed.localhost", "/hello.php?n=7", &expect, SETTLE);
    println!("changed app served its new root {new_content:?} after the reload returned");
    assert!(new_content.is_some(), "the changed app never served its new document root");
    let spec = hello_load("changed", 2).max_per_thread(10).expect(&expect);
    let after = load::run(stack.addr(), &spec);
    assert_eq!(after.failed(), 0, "after the reload only the new content is served: {after}");
    assert!(wait_for_status(&stack, "removed.localhost", 421), "the removed app still answers");
    let added = stack.client(Proto::Http1).get("added.localhost", "/hello.php?n=7");
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.text(), php::hello_body("added", 7));
    assert!(!stack.bulkhead.has_app("removed"));
}

#[test]
fn invalid_config_on_reload_changes_nothing() {
    let stack = Stack::start(&[hello_app("alpha")]);
    let before = stack.bulkhead.wait_app("alpha", SETTLE, |s| !s.ready_pids().is_empty());
    let before = before.unwrap_or_else(|last| panic!("alpha never got ready: {last:?}"));
    let running = Load::start(stack.addr(), &hello_load("alpha", 3));
    let mut broken = stack.app("alpha").clone();
    broken.extra_lines.push("workers = 0".into());
    stack.bulkhead.rewrite_config(&stack.config_for(&[broken]));
    let reload = stack.bulkhead.reload();
    let report = running.finish();
    println!("bulkhead reload (invalid): exit {:?}\n{}", reload.code, reload.output().trim_end());
    assert_eq!(reload.code, Some(64), "{}", reload.output());
    assert!(reload.stderr.contains("app[0].workers"), "must name the key: {}", reload.output());
    assert_eq!(report.failed(), 0, "{report}");
    let after = stack.bulkhead.app_state("alpha");
    assert_eq!(after.generation, before.generation, "{after:?}");
    assert_eq!(after.ready_pids(), before.ready_pids(), "the worker must be untouched");
    assert!(stack.bulkhead.log().contains("reload refused"), "the log must say why");
}

#[test]
fn sighup_reloads_like_the_command() {
    let stack = Stack::start(&[hello_app("alpha")]);
    let v2 = new_root(&stack, "alpha", "alpha-v2");
    stack.bulkhead.rewrite_config(&stack.config_for(&[v2]));
    stack.bulkhead.signal(Signal::SIGHUP);
    let expect = php::hello_body("alpha-v2", 7);
    let took =
        load::time_until_ok(stack.addr(), "alpha.localhost", "/hello.php?n=7", &expect, SETTLE);
    println!("SIGHUP: new content after {took:?}");
    assert!(took.is_some(), "SIGHUP did not apply the new document root");
    assert!(stack.bulkhead.log().contains("0 added, 1 changed, 0 removed"));
}
