//! Resolving `user = "name"` to a uid and gid through the password database
//! (`/etc/passwd`), once, when the configuration is loaded.
//!
//! Root is refused: a sandboxed child must never run as uid 0.

use std::path::Path;

/// The password database consulted.
pub const PASSWD: &str = "/etc/passwd";

/// A resolved account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// Looks `name` up in [`PASSWD`].
pub fn lookup(name: &str) -> Result<Account, String> {
    lookup_in(Path::new(PASSWD), name)
}

/// Looks `name` up in the passwd-format file at `path`.
pub fn lookup_in(path: &Path, name: &str) -> Result<Account, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let account = text
        .lines()
        .filter_map(|line| parse_line(line, name))
        .next()
        .ok_or_else(|| format!("no user {name:?} in {}", path.display()))?;
    if account.uid == 0 || account.gid == 0 {
        return Err(format!("user {name:?} is root; children must not run as uid or gid 0"));
    }
    Ok(account)
}

/// `name:x:uid:gid:…` for the given name.
fn parse_line(line: &str, name: &str) -> Option<Account> {
    let mut fields = line.split(':');
    if fields.next()? != name {
        return None;
    }
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Account { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_refuses_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "root:x:0:0::/root:/bin/sh\nblog:x:1001:1002::/srv:/bin/false\n")
            .expect("write");
        assert_eq!(lookup_in(&path, "blog"), Ok(Account { uid: 1001, gid: 1002 }));
        assert!(lookup_in(&path, "root").is_err());
        assert!(lookup_in(&path, "shop").is_err());
    }
}
