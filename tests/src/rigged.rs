//! A bin directory in which some apps' "worker" is another program.
//!
//! The broker starts its children from the directory of its own executable. A rigged
//! directory holds links to the real `bulkhead` and `bulkhead-gateway` and a
//! `bulkhead-worker` script that execs the real worker, except for the apps named in the
//! overrides, whose `BULKHEAD_ROLE` (`worker[APP]`) selects another command: a hostile
//! child, or one that exits at once. [`bin_dir_with_gateway`] also replaces the gateway
//! with a shell command. Start the broker from it with [`crate::Launch`].

use crate::binaries;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Creates `dir/bin` with the overrides `(app, shell command)`; returns the broker's path.
pub fn bin_dir(dir: &Path, overrides: &[(&str, String)]) -> PathBuf {
    rig(dir, overrides, None)
}

/// As [`bin_dir`], and the gateway is `gateway`, a shell script body that may `exec`
/// the real gateway, whose quoted path is in `$REAL_GATEWAY`.
pub fn bin_dir_with_gateway(dir: &Path, overrides: &[(&str, String)], gateway: &str) -> PathBuf {
    rig(dir, overrides, Some(gateway))
}

fn rig(dir: &Path, overrides: &[(&str, String)], gateway: Option<&str>) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("creating the rigged bin dir");
    let linked: &[&str] = if gateway.is_some() {
        &[binaries::BROKER]
    } else {
        &[binaries::BROKER, binaries::GATEWAY]
    };
    if let Some(body) = gateway {
        let real = shell_quote(&binaries::binary(binaries::GATEWAY));
        let script = format!(
            "#!/bin/sh
REAL_GATEWAY={real}
{body}
"
        );
        write_script(&bin.join(binaries::GATEWAY), &script);
    }
    for name in linked.iter().copied() {
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
    write_script(&bin.join(binaries::WORKER), &script);
    bin.join(binaries::BROKER)
}

fn write_script(path: &Path, script: &str) {
    std::fs::write(path, script).expect("writing a rigged script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("making a rigged script executable");
}

/// A single-quoted shell word.
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}
