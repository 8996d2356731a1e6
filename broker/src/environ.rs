//! The broker's `{ env = … }` secrets: read from the environment once, then
//! kept here and scrubbed from the environment, including the original block
//! that `/proc/PID/environ` shows.
//!
//! A reload resolves `{ env = … }` through [`lookup`], which answers from
//! what was kept before it looks at the (scrubbed) environment, so a reload
//! still finds every variable the broker was started with. This module must
//! never print a value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Mutex;

use privsep::secret::Secret;

/// Values already scrubbed from the environment, by variable name.
static KEPT: Mutex<BTreeMap<String, Secret>> = Mutex::new(BTreeMap::new());

/// The variable `name`: its kept value if it was scrubbed, else the environment's.
pub fn lookup(name: &str) -> Option<OsString> {
    let kept = KEPT.lock().unwrap_or_else(|poison| poison.into_inner());
    match kept.get(name) {
        Some(secret) => Some(secret.expose().into()),
        None => std::env::var_os(name),
    }
}

/// Keeps the values of `names` and scrubs them from the environment (see
/// [`privsep::exposure::scrub_env`]: only while the process has one thread).
/// Returns how many values were overwritten in the original block.
pub fn scrub(names: &[String]) -> std::io::Result<usize> {
    let mut kept = KEPT.lock().unwrap_or_else(|poison| poison.into_inner());
    let fresh: Vec<&str> =
        names.iter().map(String::as_str).filter(|name| !kept.contains_key(*name)).collect();
    for name in &fresh {
        if let Some(value) = std::env::var_os(name).and_then(|v| v.into_string().ok()) {
            kept.insert((*name).to_owned(), Secret::new(value));
        }
    }
    privsep::exposure::scrub_env(&fresh)
}
