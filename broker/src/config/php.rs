//! `php = { … }` in `[[app]]`: a php-fpm pool the broker starts and sandboxes itself.
//!
//! Only checks values; the pool's php-fpm configuration is written by the
//! orchestrator and its sandbox built in `profiles`. Nothing here may accept a
//! value that could change the meaning of the generated php-fpm configuration
//! (a newline, a quote, a bracket in a key).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::paths;

/// Children php-fpm keeps per pool unless `max_children` says otherwise.
pub const DEFAULT_MAX_CHILDREN: u32 = 5;
/// The most children one pool may have.
pub const MAX_CHILDREN: u32 = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table php = { max_children = 5, … }")]
pub(super) struct RawPhp {
    pub binary: Option<PathBuf>,
    pub max_children: Option<u32>,
    #[serde(default)]
    pub php_admin_value: BTreeMap<String, String>,
    #[serde(default)]
    pub read: Vec<PathBuf>,
    #[serde(default)]
    pub write: Vec<PathBuf>,
    #[serde(default)]
    pub connect: Vec<String>,
    #[serde(default)]
    pub programs: bool,
}

/// A managed pool, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpPool {
    /// The php-fpm binary (canonical).
    pub binary: PathBuf,
    pub max_children: u32,
    /// `php_admin_value[key] = value` lines, sorted by key.
    pub admin_values: Vec<(String, String)>,
    /// Extra paths PHP may read (canonical).
    pub read: Vec<PathBuf>,
    /// Extra paths PHP may write, besides the app's `writable` (canonical).
    pub write: Vec<PathBuf>,
    /// Network endpoints PHP may reach.
    pub connect: Vec<Endpoint>,
    /// Whether PHP may run programs (`system()`, `proc_open()`, `mail()`).
    pub programs: bool,
    /// The broker-owned directory holding the pool's configuration and socket.
    pub dir: PathBuf,
}

impl PhpPool {
    /// The generated php-fpm configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("php-fpm.conf")
    }

    /// The FastCGI socket between the app's worker and this pool.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("php-fpm.sock")
    }

    /// The TCP endpoints in `connect`.
    pub fn tcp(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.connect.iter().filter_map(|e| match e {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        })
    }
}

/// One entry of `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket, shown in the pool's mount view.
    Unix(PathBuf),
    /// A TCP address; Landlock allows its port (on every address).
    Tcp(SocketAddr),
}

/// The pool's directory for app `name`: beside the control socket, one per app.
pub fn pool_dir(control_socket: &Path, name: &str) -> PathBuf {
    control_socket.with_extension("pools").join(name)
}

/// Each value checked; `Err` lists `(key under php, problem)`.
pub(super) fn check(
    raw: &RawPhp,
    name: &str,
    control_socket: &Path,
) -> Result<PhpPool, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut note = |key: &str, why: String| problems.push((key.to_owned(), why));
    let binary = match &raw.binary {
        Some(path) => paths::readable_file(path).map_err(|why| note("binary", why)).ok(),
        None => default_binary().map_err(|why| note("binary", why)).ok(),
    };
    let max_children = match raw.max_children {
        None => DEFAULT_MAX_CHILDREN,
        Some(n @ 1..=MAX_CHILDREN) => n,
        Some(n) => {
            note("max_children", format!("{n} is not between 1 and {MAX_CHILDREN}"));
            0
        }
    };
    for (key, value) in &raw.php_admin_value {
        if let Err(why) = admin_value(key, value) {
            note(&format!("php_admin_value.{key}"), why);
        }
    }
    let mut canonical = |key: &str, list: &[PathBuf]| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (i, path) in list.iter().enumerate() {
            match path.canonicalize() {
                Ok(path) => out.push(path),
                Err(e) => note(&format!("{key}[{i}]"), paths::cannot_read(path, &e)),
            }
        }
        out
    };
    let read = canonical("read", &raw.read);
    let write = canonical("write", &raw.write);
    let mut connect = Vec::new();
    for (i, text) in raw.connect.iter().enumerate() {
        match endpoint(text) {
            Ok(e) => connect.push(e),
            Err(why) => note(&format!("connect[{i}]"), why),
        }
    }
    match (binary, problems.is_empty()) {
        (Some(binary), true) => Ok(PhpPool {
            binary,
            max_children,
            admin_values: raw.php_admin_value.clone().into_iter().collect(),
            read,
            write,
            connect,
            programs: raw.programs,
            dir: pool_dir(control_socket, name),
        }),
        _ => Err(problems),
    }
}

/// The newest `php-fpm8.N` (or `php-fpm`) on PATH or in `/usr/sbin`.
fn default_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/sbin"));
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "php-fpm"
                || name.strip_prefix("php-fpm8.").is_some_and(|v| v.parse::<u8>().is_ok())
            {
                found.push(entry.path());
            }
        }
    }
    found.sort_by_key(|p| p.file_name().map(|n| n.len()).unwrap_or(0));
    found.sort();
    found.pop().and_then(|p| p.canonicalize().ok()).ok_or_else(|| {
        "no php-fpm8.x found on PATH or in /usr/sbin; install php8.2-fpm or set php.binary"
            .to_owned()
    })
}

fn admin_value(key: &str, value: &str) -> Result<(), String> {
    let key_ok =
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !key_ok {
        return Err("a php.ini directive name is letters, digits, `_` and `.`".into());
    }
    if value.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err("the value may not hold control characters, quotes or backslashes".into());
    }
    Ok(())
}

fn endpoint(text: &str) -> Result<Endpoint, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(format!("{text:?}: the socket path must be absolute"));
        }
        return Ok(Endpoint::Unix(path.to_path_buf()));
    }
    if let Some(addr) = text.strip_prefix("tcp:") {
        return addr
            .parse()
            .map(Endpoint::Tcp)
            .map_err(|_| format!("{text:?}: expected tcp:IP:PORT, e.g. \"tcp:127.0.0.1:5432\""));
    }
    Err(format!("{text:?} is not \"unix:/path\" or \"tcp:IP:PORT\""))
}
