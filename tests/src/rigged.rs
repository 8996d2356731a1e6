//! A bin directory in which some apps' "worker" is another program.
//!
//! The broker starts its children from the directory of its own executable. A rigged
//! directory holds links to the real `bulkhead` and `bulkhead-gateway` and a
//! `bulkhead-worker` script that execs the real worker, except for the apps named in the
//! overrides, whose `BULKHEAD_ROLE` (`worker[APP]`) selects another command: a hostile
//! child, or one that exits at once. Start the broker from it with [`crate::Launch`].

use crate::binaries;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Creates `dir/bin` with the overrides `(app, shell command)`; returns the broker's path.
pub fn bin_dir(dir: &Path, overrides: &[(&str, String)]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("creating the rigged bin dir");
    for name in [binaries::BROKER, binaries::GATEWAY] {
        let (from, to) = (binaries::binary(name), bin.join(name));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).expect("copying a binary into the rigged bin dir");
        }
    }
    let mut script = String::from("#!/bin/sh\ncase \"$BULKHEAD_ROLE\" in\n");
    for (app, command) in overrides {
        let _ = writeln!(script, "  'worker[{app}]') exec {command} ;;");
    }
    let worker = binaries::binary(binaries::WORKER);
    let _ = writeln!(script, "  *) exec {} \"$@\" ;;\nesac", shell_quote(&worker));
    let path = bin.join(binaries::WORKER);
    std::fs::write(&path, script).expect("writing the rigged worker script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("making the rigged worker script executable");
    bin.join(binaries::BROKER)
}

/// A single-quoted shell word.
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}
