//! End-to-end test harness for Bulkhead: it runs the real `bulkhead` binaries against a
//! real php-fpm on loopback and talks to them with a real HTTP client.
//!
//! Every test builds its own world in a temporary directory (document roots, secret files,
//! php-fpm sockets, the config) so tests run in parallel without sharing anything but the
//! machine. Everything the harness starts is stopped when its handle is dropped; when a test
//! panics, the handles print the logs of what they ran (broker stderr, php-fpm error log).
//!
//! The harness never skips: a missing php-fpm or unbuilt binaries are failures with the
//! command that fixes them.
//!
//! # Layout
//!
//! - [`admin`]: `bulkhead status` (parsed), `bulkhead reload`, rewriting the config.
//! - [`binaries`]: finds `bulkhead`, `bulkhead-gateway` and `bulkhead-worker` in the target dir.
//! - [`bulkhead`]: starts the broker with a config, waits for it to answer HTTP, stops it and
//!   every process it started; runs `bulkhead check`.
//! - [`config`]: builds TOML configurations from typed app descriptions.
//! - [`http`]: a blocking reqwest client over HTTP/1.1 or h2c that resolves test host names
//!   to the gateway's loopback port.
//! - [`load`]: bounded load loops that count statuses, refused connections and other errors.
//! - [`net`]: free loopback ports, polling, a raw HTTP readiness probe.
//! - [`php`]: writes small PHP applications (and the Rust twins of what they print).
//! - [`php_fpm`]: one php-fpm master per app on a Unix socket, stopped on drop.
//! - [`procfs`]: the process tree and what each process exposes in `/proc`.
//! - [`raw`]: a raw HTTP/1.1 client that sends exact bytes and parses the answers.
//! - [`rigged`]: a bin directory where chosen apps' worker is another program.
//! - [`stack`]: one call that assembles all of the above for the common case.
//! - [`tls`]: certificates made with `openssl`, HTTPS worlds, a rustls client, memory scans.
#![forbid(unsafe_code)]

pub mod admin;
pub mod binaries;
pub mod bulkhead;
pub mod config;
pub mod http;
pub mod load;
pub mod net;
pub mod php;
pub mod php_fpm;
pub mod probe;
pub mod procfs;
pub mod raw;
pub mod rigged;
pub mod stack;
pub mod tls;

pub use bulkhead::{Bulkhead, CheckOutcome, Launch};
pub use config::{AppSpec, SecretSource, config_toml, config_toml_with};
pub use http::{Client, Proto, Reply, sha256_hex};
pub use load::{Load, LoadReport, LoadSpec};
pub use php_fpm::{PhpFpm, Pool};
pub use stack::{AppPlan, Stack, StackOptions};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A string unique to this process and call, for secrets and markers that must not collide
/// with anything else in memory, `/proc` or logs.
pub fn unique_token(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id())
}

/// A fresh temporary directory that other users can traverse (children may later run under
/// their own uids and still need to reach document roots and sockets inside it).
pub fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bulkhead-test-")
        .tempdir()
        .expect("creating a temporary directory");
    set_mode(dir.path(), 0o755);
    dir
}

/// Writes `contents` to a new file at `path` with mode 0600 (a config, a secret).
pub fn write_private(path: &Path, contents: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
    file.write_all(contents).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// Reads a log file for display; a missing file reads as a note rather than a panic.
pub fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|err| format!("<cannot read {}: {err}>", path.display()))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("setting permissions on a directory the test created");
}

/// The runtime threads the gateway runs on this machine: one per two CPUs, at least one
/// (as `bulkhead-gateway` chooses them; with one, it is a current-thread runtime).
pub fn gateway_runtime_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
