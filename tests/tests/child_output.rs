//! A child's stdin, stdout and stderr are its own, never the broker's terminal.
//!
//! The broker runs on a pseudo-terminal, as from an operator's shell. The "worker" of app
//! `evil` is a shell script running as the broker's user with no sandbox at all (see
//! `bulkhead_tests::rigged`): it records where its fds 0–2 lead, forges a broker log
//! line, writes terminal escapes and a 100 KB line, and tries to read what the operator
//! types through `/dev/tty`. The broker logs each line marked as the child's, escaped and
//! capped, and the child reads nothing from the terminal.

use std::time::Duration;

use bulkhead_tests::net::poll_until;
use bulkhead_tests::rigged::{self, shell_quote};
use bulkhead_tests::{AppPlan, Launch, Proto, Stack, StackOptions, php};

/// What the operator types while the child tries to read the terminal.
const TYPED: &str = "operator-typed-passphrase-4711";
/// The child's forged line, with a marker to find it by.
const FORGED: &str = "worker exited app=victim status=forged-by-the-child";

const SCRIPT: &str = r#"#!/bin/sh
state="$1"
for fd in 0 1 2; do echo "fd$fd=$(readlink /proc/self/fd/$fd)"; done > "$state/fds.tmp"
mv "$state/fds.tmp" "$state/fds"
echo "2026-12-04T20:00:00.000000Z  INFO bulkhead::orchestrate: FORGED"
printf 'on stderr \033[31mred\033[0m\rrewritten\n' >&2
head -c 100000 /dev/zero | tr '\0' x; echo " end of the long line"
echo "stdin holds $(wc -c) bytes"
touch "$state/ready"
timeout --foreground 5 cat /dev/tty > "$state/tty" 2> "$state/tty.err"
echo "exit $?" >> "$state/tty.err"
mv "$state/tty.err" "$state/tty.done"
exec sleep 600
"#;

#[test]
fn a_child_writes_only_to_pipes_the_broker_marks_and_cannot_read_the_terminal() {
    let dir = bulkhead_tests::temp_dir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("creating the state dir");
    let script = dir.path().join("evil.sh");
    std::fs::write(&script, SCRIPT.replace("FORGED", FORGED)).expect("writing the script");
    let command = format!("/bin/sh {} {}", shell_quote(&script), shell_quote(&state));
    let broker = rigged::bin_dir(dir.path(), &[("evil", command)]);
    let launch = Launch { broker: Some(broker), terminal: true, ..Default::default() };
    let plans = [
        AppPlan::new("victim").file("hello.php", &php::hello("victim")),
        AppPlan::new("evil").without_backend(),
    ];
    let stack = Stack::start_with(&plans, &StackOptions { launch, ..Default::default() });

    let wait = Duration::from_secs(15);
    poll_until(wait, || state.join("ready").exists().then_some(()))
        .expect("the child never got to the terminal attack");
    stack.bulkhead.type_on_terminal(&format!("{TYPED}\n"));
    let done = poll_until(wait, || std::fs::read_to_string(state.join("tty.done")).ok())
        .expect("the child's terminal read never ended");
    let read = std::fs::read_to_string(state.join("tty")).unwrap_or_default();
    let fds = std::fs::read_to_string(state.join("fds")).expect("reading the child's fds");
    println!("the child's fds:\n{fds}/dev/tty: {done:?}, read {} bytes", read.len());

    let reply = stack.client(Proto::Http1).get("victim.localhost", "/hello.php?n=3");
    assert_eq!(reply.status, 200, "the other app must serve: {reply:?}");

    for fd in ["fd0=/dev/null", "fd1=pipe:", "fd2=pipe:"] {
        assert!(fds.contains(fd), "{fd} expected:\n{fds}");
    }
    assert!(!read.contains(TYPED), "the child read the operator's terminal: {read:?}");
    assert!(done.contains("No such device or address"), "/dev/tty must not open: {done}");

    let log = stack.bulkhead.log();
    let forged: Vec<&str> = log.lines().filter(|line| line.contains(FORGED)).collect();
    assert_eq!(forged.len(), 1, "the forged line, once:\n{log}");
    assert!(
        forged[0].contains("bulkhead::child")
            && forged[0].contains("[worker[evil]] bulkhead::orchestrate"),
        "a child's line must be marked as the child's: {}",
        forged[0]
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "control characters reached the log");
    assert!(
        log.contains(r"on stderr \u{1b}[31mred\u{1b}[0m\rrewritten"),
        "stderr, escaped:\n{log}"
    );
    let long = log.lines().find(|line| line.contains("xxxxxxxx")).expect("the long line");
    assert!(long.len() < 4096 + 200, "{} bytes: the line must be capped", long.len());
    assert!(long.contains("xxxx [line truncated]"), "{}", &long[long.len() - 60..]);
    assert!(!log.contains("end of the long line"), "the rest of the long line is dropped");
    assert!(log.contains("[worker[evil]] stdin holds 0 bytes"), "stdin is empty:\n{log}");
    assert!(log.contains("[gateway]"), "the gateway's own log lines are marked too:\n{log}");
    assert!(!log.contains(TYPED), "nothing typed is echoed into the log");
}
