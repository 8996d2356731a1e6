//! The broker's own exposure, checked from outside like the children's: is it
//! non-dumpable (so a process of its uid cannot read its memory or
//! environment), and does its `/proc/PID/environ` hold no secret?
//!
//! A broker that does not run as root and is non-dumpable has its `/proc/PID`
//! owned by root; a root broker's flag does not show in `/proc`, so its own
//! report is used and labelled as such. Read-only, like the rest of the audit.

use std::fmt::Write as _;
use std::fs;

use crate::config::Config;

/// The report lines and findings for the broker `pid`.
pub(super) fn check(pid: u32, config: &Config) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut findings = Vec::new();
    match dumpable(pid, config, &mut text) {
        Some(true) => findings.push(format!(
            "broker (pid {pid}): dumpable: any process of its uid can read its memory and secrets"
        )),
        Some(false) => {
            text.push_str("  non-dumpable: its uid's other processes cannot read its memory\n")
        }
        None => {
            text.push_str("  dumpable: cannot tell (run audit as root or as the broker's user)\n")
        }
    }
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => {
            let held = secrets_in(&environ, config);
            let _ = writeln!(text, "  environ: {} secret(s) found", held.len());
            findings.extend(
                held.into_iter().map(|what| format!("broker (pid {pid}): environ holds {what}")),
            );
        }
        Err(e) => {
            let _ = writeln!(text, "  environ: unreadable to audit ({e})");
        }
    }
    (text, findings)
}

/// `Some(true)` if a process of the broker's uid could read it, `None` if unknown.
///
/// A root broker's flag is not visible from outside (every reader it does not
/// already refuse for lacking its capabilities holds `CAP_SYS_PTRACE`), so for
/// one the broker's own `PR_GET_DUMPABLE`, from `status`, is reported as such.
fn dumpable(pid: u32, config: &Config, text: &mut String) -> Option<bool> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let euid: u32 = super::status_field(&status, "Uid")?.split_whitespace().nth(1)?.parse().ok()?;
    if euid != 0 {
        text.push_str("  dumpable flag: read from the owner of its /proc entry\n");
        return privsep::exposure::dump_owner_is_root(pid).ok().map(|root| !root);
    }
    text.push_str("  dumpable flag: as the root broker reports it (not visible in /proc)\n");
    match crate::admin::request(&config.control_socket, &crate::admin::Request::Status) {
        Ok(crate::admin::Response::Status(status)) => status.dumpable,
        _ => None,
    }
}

/// What of the configuration's secrets `environ` holds: a value of a variable
/// named by `{ env = … }`, or any app secret's value anywhere.
fn secrets_in(environ: &[u8], config: &Config) -> Vec<String> {
    let mut held = Vec::new();
    for entry in environ.split(|&b| b == 0) {
        for name in &config.env_secrets {
            let value =
                entry.strip_prefix(name.as_bytes()).and_then(|rest| rest.strip_prefix(b"="));
            if value.is_some_and(|v| !v.is_empty()) {
                held.push(format!("the value of ${name}"));
            }
        }
    }
    for app in &config.apps {
        for (name, secret) in &app.secrets {
            let value = secret.expose().as_bytes();
            if !value.is_empty() && environ.windows(value.len()).any(|w| w == value) {
                held.push(format!("app {}'s {name}", app.spec.name));
            }
        }
    }
    held
}
