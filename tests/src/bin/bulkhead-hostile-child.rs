//! `bulkhead-hostile-child STATE_DIR`: stands in for a compromised worker and attacks the
//! broker over its control socket (fd 3). Exists only in the test package.
//!
//! Each start is one attempt, counted in `STATE_DIR/attempts`; attempt N makes attack
//! N (modulo the list): an unknown message type, an oversized datagram, random bytes, a
//! `NeedChannel` (only the gateway may send it), a `Ready` carrying a descriptor, and a
//! flood of 10,000 allowed messages followed by a second `Ready`. After the attack it
//! waits to be killed, and
//! exits 1 by itself if the broker lets it live, so the broker sees every attempt end.
//! What it did is appended to `STATE_DIR/log`.
//!
//! `bulkhead-hostile-child STATE_DIR ATTACK [APP]` makes one named attack instead; the
//! gateway's: `long-names` (20,000 `NeedChannel`s naming a 60 KiB app) and
//! `need-channel-flood` (20,000 naming `APP`). Each stops at the first refused send
//! and says how many messages got through.

#![forbid(unsafe_code)]

use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

/// The control socket every child inherits.
const CONTROL_FD: i32 = 3;
/// Messages in the flood.
const FLOOD: usize = 10_000;
/// Channel requests in a hostile gateway's flood.
const GATEWAY_FLOOD: usize = 20_000;
/// An app name that fills most of the largest control message.
const LONG_NAME: usize = 60 * 1000;
/// More than the broker's largest control message.
const OVERSIZED: usize = 70 * 1024;
/// How long to wait for the broker's verdict before leaving on its own.
const WAIT_FOR_KILL: Duration = Duration::from_secs(5);

/// The flood comes last: it is the only attack that says `Ready`, which lets the gateway
/// start, and the others then run while nothing depends on the attacker.
const ATTACKS: [&str; 6] = ["unknown", "oversized", "garbage", "need-channel", "fd", "flood"];

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: bulkhead-hostile-child STATE_DIR");
        return ExitCode::from(2);
    };
    let attempt = next_attempt(&dir);
    let named = std::env::args().nth(2);
    let app = std::env::args().nth(3).unwrap_or_default();
    let attack = named.as_deref().unwrap_or(ATTACKS[attempt % ATTACKS.len()]);
    note(&dir, &format!("attempt {attempt}: {attack}: started"));
    let outcome = run(attack, &app);
    note(&dir, &format!("attempt {attempt}: {attack}: {outcome}"));
    std::thread::sleep(WAIT_FOR_KILL);
    note(&dir, &format!("attempt {attempt}: still alive after {WAIT_FOR_KILL:?}"));
    ExitCode::FAILURE
}

fn run(attack: &str, app: &str) -> String {
    let sent = match attack {
        "flood" => flood(),
        "long-names" => need_channels(&"x".repeat(LONG_NAME)),
        "need-channel-flood" => need_channels(app),
        "unknown" => send(br#""Shutdown""#),
        "oversized" => send(&vec![b' '; OVERSIZED]),
        "garbage" => send(&pseudo_random(512)),
        "need-channel" => send(br#"{"NeedChannel":{"app":"victim"}}"#),
        "fd" => send_with_fd(br#""Ready""#),
        _ => Err(std::io::Error::other("no such attack")),
    };
    match sent {
        Ok(n) => format!("sent {n} message(s)"),
        Err(e) => format!("stopped: {e}"),
    }
}

/// `Ready`, then [`FLOOD`] `Idle`s (each allowed on its own), then `Ready` again (one-shot).
fn flood() -> std::io::Result<usize> {
    send(br#""Ready""#)?;
    for _ in 0..FLOOD {
        send(br#""Idle""#)?;
    }
    send(br#""Ready""#)?;
    Ok(FLOOD + 2)
}

/// [`GATEWAY_FLOOD`] `NeedChannel`s for `app`; stops at the first refused send.
fn need_channels(app: &str) -> std::io::Result<usize> {
    let msg = format!(r#"{{"NeedChannel":{{"app":"{app}"}}}}"#);
    for sent in 0..GATEWAY_FLOOD {
        if let Err(e) = send(msg.as_bytes()) {
            return Err(std::io::Error::other(format!("after {sent} messages: {e}")));
        }
    }
    Ok(GATEWAY_FLOOD)
}

fn send(bytes: &[u8]) -> std::io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    sendmsg::<()>(CONTROL_FD, &iov, &[], MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(1)
}

fn send_with_fd(bytes: &[u8]) -> std::io::Result<usize> {
    let fds = [0];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(bytes)];
    sendmsg::<()>(CONTROL_FD, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(1)
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

fn next_attempt(dir: &Path) -> usize {
    let path = dir.join("attempts");
    let n = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let _ = std::fs::write(&path, (n + 1).to_string());
    n
}

fn note(dir: &Path, line: &str) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log"));
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{line}");
    }
}
