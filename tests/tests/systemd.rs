//! systemd integration: readiness notifications over `NOTIFY_SOCKET` (READY=1, then
//! RELOADING=1 with MONOTONIC_USEC and READY=1 around a reload, STOPPING=1 on SIGTERM),
//! and socket activation: a listener passed as fd 3 with `LISTEN_FDS`/`LISTEN_PID` is
//! served instead of binding `listen`.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use bulkhead_tests::net::{accepts, free_port, loopback};
use bulkhead_tests::{AppPlan, Launch, Proto, Stack, StackOptions, php};
use nix::sys::signal::Signal;

const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

fn hello_app(name: &str) -> AppPlan {
    AppPlan::new(name).file("hello.php", &php::hello(name))
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Manager {
    fn new() -> Self {
        let dir = bulkhead_tests::temp_dir();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
        socket.set_read_timeout(Some(Duration::from_secs(20))).expect("setting a read timeout");
        Self { socket, _dir: dir, path }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("no notification within 20 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

fn monotonic_usec() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    u64::try_from(now.tv_sec()).expect("positive") * 1_000_000
        + u64::try_from(now.tv_nsec()).expect("positive") / 1000
}

#[test]
fn notifies_ready_reloading_and_stopping() {
    let manager = Manager::new();
    let env = vec![("NOTIFY_SOCKET".to_owned(), manager.path.to_string_lossy().into_owned())];
    let mut stack =
        Stack::start_with(&[hello_app("alpha")], &StackOptions { env, ..Default::default() });
    assert_eq!(manager.next(), "READY=1");
    let before = monotonic_usec();
    let reload = stack.bulkhead.reload();
    assert_eq!(reload.code, Some(0), "{}", reload.output());
    let reloading = manager.next();
    println!("on reload: {reloading:?}");
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
    let usec: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {reloading:?}"));
    assert!(usec >= before && usec <= monotonic_usec(), "{usec} is not the reload's time");
    assert_eq!(manager.next(), "READY=1");
    stack.bulkhead.signal(Signal::SIGTERM);
    assert_eq!(manager.next(), "STOPPING=1");
    let status = stack.bulkhead.wait_exit(Duration::from_secs(15)).expect("the broker exits");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn socket_activation_serves_the_passed_listener() {
    assert!(
        std::path::Path::new(SOCKET_ACTIVATE).is_file(),
        "{SOCKET_ACTIVATE} is missing: install it with `apt-get install systemd`"
    );
    let activated = loopback(free_port());
    let configured = loopback(free_port());
    let args = vec!["-l".to_owned(), activated.to_string(), "-E".into(), "NO_COLOR=1".into()];
    let launch = Launch {
        wrapper: Some((SOCKET_ACTIVATE.into(), args)),
        addr: Some(activated),
        ..Default::default()
    };
    let options = StackOptions { launch, listen: Some(configured), ..Default::default() };
    let stack = Stack::start_with(&[hello_app("alpha")], &options);
    let reply = stack.client(Proto::Http1).get("alpha.localhost", "/hello.php?n=5");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), php::hello_body("alpha", 5));
    let log = stack.bulkhead.log();
    assert!(log.contains("socket activation"), "{log}");
    assert!(!accepts(configured), "the configured address must not be bound");
}
