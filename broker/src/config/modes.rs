//! Warnings for files the configuration depends on that other users can read:
//! the configuration itself (it names every app's root, socket and secret
//! files) and each `{ file = … }` secret. Each warning names its fix.
//!
//! Warnings never make a configuration invalid: `check` prints them and exits
//! 0, `run` logs them and starts. Only metadata is read here.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Config;

/// Group and other permission bits: what must be clear on a secret.
const SHARED_BITS: u32 = 0o077;

/// One line per file that other users can read or another user owns.
pub fn file_warnings(config_path: &Path, config: &Config) -> Vec<String> {
    let me = nix::unistd::geteuid().as_raw();
    let mut warnings = Vec::new();
    let what = "it names every app's root, socket and secret files";
    warnings.extend(file_warning("configuration", config_path, what, me));
    for (key, path) in &config.secret_files {
        warnings.extend(file_warning(key, path, "it is a secret", me));
    }
    warnings
}

fn file_warning(key: &str, path: &Path, what: &str, me: u32) -> Vec<String> {
    let Ok(meta) = std::fs::metadata(path) else { return Vec::new() };
    let (mode, shown) = (meta.mode() & 0o7777, path.display());
    let mut out = Vec::new();
    if mode & SHARED_BITS != 0 {
        let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
            (true, true) => "its group and other users",
            (true, false) => "its group",
            _ => "other users",
        };
        out.push(format!(
            "{key}: {shown} is open to {who} (mode {mode:04o}) and {what}; fix: chmod 600 {shown}"
        ));
    }
    let owner = meta.uid();
    if owner != me && owner != 0 {
        out.push(format!(
            "{key}: {shown} belongs to uid {owner}, who can change its mode and contents; fix: chown {me} {shown}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn warns_of_group_and_other_bits_with_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "x").expect("write");
        let me = nix::unistd::geteuid().as_raw();
        for (mode, expect) in
            [(0o600, None), (0o640, Some("its group")), (0o604, Some("other users"))]
        {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let warnings = file_warning("k", &path, "it is a secret", me);
            match expect {
                None => assert!(warnings.is_empty(), "{warnings:?}"),
                Some(who) => {
                    assert_eq!(warnings.len(), 1, "{warnings:?}");
                    assert!(warnings[0].contains(who), "{warnings:?}");
                    assert!(warnings[0].ends_with(&format!("fix: chmod 600 {}", path.display())));
                }
            }
        }
    }
}
