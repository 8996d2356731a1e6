//! Locates the Bulkhead binaries that `cargo build --workspace --bins` produced.
//!
//! Test executables live in `target/<profile>/deps/`; the binaries are in `target/<profile>/`.
//! `BULKHEAD_BIN_DIR` overrides the directory (for example to test a release build). A
//! missing binary is a failure with the command that builds it, never a skip.

use std::path::PathBuf;

/// The broker binary.
pub const BROKER: &str = "bulkhead";
/// The HTTP front process.
pub const GATEWAY: &str = "bulkhead-gateway";
/// The per-app worker process.
pub const WORKER: &str = "bulkhead-worker";
/// The process that holds the TLS private keys.
pub const KEYHOLDER: &str = "bulkhead-keyholder";

/// The directory that holds the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BULKHEAD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    let mut dir = exe.parent().expect("the test executable lives in a directory").to_path_buf();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    dir
}

/// The path of one of the workspace's binaries; panics if it has not been built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The broker binary, checked together with the children it starts from the same directory.
pub fn broker() -> PathBuf {
    binary(GATEWAY);
    binary(WORKER);
    binary(BROKER)
}
