//! Checks on paths named by the configuration: they must be absolute and, for
//! directories and TLS files, exist now. Only metadata is read here; secret
//! contents are read by `secrets`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// An absolute path to an existing directory, canonicalised.
pub(super) fn existing_dir(path: &Path) -> Result<PathBuf, String> {
    absolute(path)?;
    let canonical = fs::canonicalize(path).map_err(|err| not_found_or(path, &err))?;
    if !canonical.is_dir() {
        return Err(format!("{path:?} is not a directory"));
    }
    Ok(canonical)
}

/// An absolute path to a regular file this process can open for reading.
pub(super) fn readable_file(path: &Path) -> Result<PathBuf, String> {
    absolute(path)?;
    let meta = fs::metadata(path).map_err(|err| not_found_or(path, &err))?;
    if !meta.is_file() {
        return Err(format!("{path:?} is not a regular file"));
    }
    File::open(path).map_err(|err| cannot_read(path, &err))?;
    Ok(path.to_path_buf())
}

/// Refuses relative paths: they would depend on the broker's working directory.
pub(super) fn absolute(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("{path:?} must be an absolute path"));
    }
    Ok(())
}

fn not_found_or(path: &Path, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => format!("{path:?} does not exist"),
        _ => format!("cannot access {path:?}: {}", describe(err)),
    }
}

/// `cannot read "/x": permission denied (os error 13)`.
pub(super) fn cannot_read(path: &Path, err: &io::Error) -> String {
    format!("cannot read {path:?}: {}", describe(err))
}

/// An I/O error as a message fragment: its text with a lower-case first letter.
pub(super) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Where the broker listens for `bulkhead reload`/`audit` unless `control_socket`
/// says otherwise: one socket per configuration file, in the runtime directory
/// (`/run/bulkhead` for root, `$XDG_RUNTIME_DIR/bulkhead` or `/tmp/bulkhead-UID`
/// otherwise), named after a hash of the file's canonical path.
pub(super) fn default_control_socket(config: &Path) -> PathBuf {
    let canonical = config.canonicalize().unwrap_or_else(|_| config.to_path_buf());
    let uid = nix::unistd::geteuid().as_raw();
    let dir = match (uid, std::env::var_os("XDG_RUNTIME_DIR")) {
        (0, _) => PathBuf::from("/run/bulkhead"),
        (_, Some(xdg)) => PathBuf::from(xdg).join("bulkhead"),
        (_, None) => PathBuf::from(format!("/tmp/bulkhead-{uid}")),
    };
    dir.join(format!("control-{:016x}.sock", fnv1a(canonical.as_os_str().as_encoded_bytes())))
}

/// FNV-1a, 64 bits: a stable name from a path (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
