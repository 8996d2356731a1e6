//! Host patterns: exact DNS names or `*.` wildcards, lower case, no port, and
//! each claimed by one app only. An exact name inside another app's wildcard
//! is allowed (the gateway prefers the exact match); the same pattern twice is not.
//!
//! A pattern may carry a path prefix (`example.com/blog/`): the app is then
//! mounted under that prefix, and several apps may share a host with different
//! prefixes (the gateway picks the longest); the same host and prefix twice is
//! an error.

use std::collections::HashMap;

/// The longest DNS name, in characters (RFC 1035).
const MAX_NAME: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// The pattern in lower case, if it is an exact name or `*.` + name.
pub(super) fn pattern(raw: &str) -> Result<String, String> {
    let host = raw.to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    dns_name(name).map_err(|why| format!("host {raw:?} {why}"))?;
    Ok(host)
}

/// `(pattern, prefix)` of a `hosts` entry: `host` (prefix `/`) or `host/path/`.
pub(super) fn mount(raw: &str) -> Result<(String, String), String> {
    let Some(slash) = raw.find('/') else {
        return Ok((pattern(raw)?, "/".to_owned()));
    };
    let (host, path) = raw.split_at(slash);
    let prefix = prefix(path).map_err(|why| format!("path prefix {path:?} of {raw:?} {why}"))?;
    Ok((pattern(host)?, prefix))
}

/// A path prefix: starts and ends with `/`, plain segments (no `.`, `..`, `%`).
fn prefix(path: &str) -> Result<String, &'static str> {
    if path == "/" {
        return Ok(path.to_owned());
    }
    let inner = path.strip_prefix('/').and_then(|p| p.strip_suffix('/'));
    let Some(inner) = inner.filter(|_| path.len() > 1) else {
        return Err("must start and end with '/'");
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    for segment in inner.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("must not contain empty, '.' or '..' segments");
        }
        if !segment.bytes().all(plain) {
            return Err("may contain only letters, digits, '-', '.', '_', '~' and '/'");
        }
    }
    Ok(path.to_owned())
}

fn dns_name(name: &str) -> Result<(), &'static str> {
    if name.contains(':') {
        return Err("must not have a port (or be an IPv6 address)");
    }
    if !name.is_ascii() {
        return Err("must be ASCII (write international names in their xn-- form)");
    }
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("must be a DNS name of 1 to 253 characters");
    }
    name.split('.').try_for_each(label)
}

fn label(label: &str) -> Result<(), &'static str> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if label.is_empty() || label.len() > MAX_LABEL {
        return Err("must consist of dot-separated labels of 1 to 63 characters");
    }
    if !label.bytes().all(allowed) {
        return Err(
            "may contain only letters, digits, '-' and '.', after an optional leading \"*.\"",
        );
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must not have a label that starts or ends with '-'");
    }
    Ok(())
}

/// Which app claimed each pattern so far.
#[derive(Debug, Default)]
pub(super) struct Claims {
    /// pattern + prefix → (app index, app name).
    owners: HashMap<String, (usize, String)>,
}

impl Claims {
    /// Records that app `app` (named `name`) answers to `pattern` under `prefix`,
    /// unless that pair is already claimed.
    pub(super) fn claim(
        &mut self,
        pattern: &str,
        prefix: &str,
        app: usize,
        name: &str,
    ) -> Result<(), String> {
        let mount = match prefix {
            "/" => pattern.to_owned(),
            _ => format!("{pattern}{prefix}"),
        };
        match self.owners.get(&mount) {
            Some((owner, _)) if *owner == app => Err(format!("host {mount:?} is listed twice")),
            Some((owner, owner_name)) => {
                Err(format!("host {mount:?} is already claimed by app[{owner}] ({owner_name:?})"))
            }
            None => {
                self.owners.insert(mount, (app, name.to_owned()));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_lower_cased_dns_names_or_wildcards() {
        assert_eq!(pattern("Blog.Example.COM"), Ok("blog.example.com".into()));
        assert_eq!(pattern("*.blog.localhost"), Ok("*.blog.localhost".into()));
        assert_eq!(pattern("localhost"), Ok("localhost".into()));
        let bad = [
            "",
            "*",
            "*.",
            "a.*.b",
            "blog.localhost:8080",
            "a..b",
            "-a.b",
            "a_b.c",
            "b\u{e4}r.de",
            "a.b.",
        ];
        for host in bad {
            assert!(pattern(host).is_err(), "{host:?} accepted");
        }
        assert!(pattern(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn a_pattern_belongs_to_one_app() {
        let mut claims = Claims::default();
        assert!(claims.claim("blog.localhost", "/", 0, "blog").is_ok());
        assert!(claims.claim("*.blog.localhost", "/", 0, "blog").is_ok());
        assert!(
            claims.claim("a.blog.localhost", "/", 1, "shop").is_ok(),
            "exact inside a wildcard is fine"
        );
        assert_eq!(
            claims.claim("blog.localhost", "/", 1, "shop"),
            Err(r#"host "blog.localhost" is already claimed by app[0] ("blog")"#.into())
        );
        assert_eq!(
            claims.claim("*.blog.localhost", "/", 0, "blog"),
            Err(r#"host "*.blog.localhost" is listed twice"#.into())
        );
    }

    #[test]
    fn apps_may_share_a_host_under_different_prefixes() {
        let mut claims = Claims::default();
        assert!(claims.claim("example.com", "/", 0, "main").is_ok());
        assert!(claims.claim("example.com", "/blog/", 1, "blog").is_ok());
        assert!(claims.claim("example.com", "/blog/x/", 2, "deep").is_ok());
        assert_eq!(
            claims.claim("example.com", "/blog/", 3, "other"),
            Err(r#"host "example.com/blog/" is already claimed by app[1] ("blog")"#.into())
        );
    }

    #[test]
    fn mounts_split_a_host_from_its_prefix() {
        assert_eq!(mount("Example.com"), Ok(("example.com".into(), "/".into())));
        assert_eq!(mount("example.com/blog/"), Ok(("example.com".into(), "/blog/".into())));
        assert_eq!(mount("*.a.com/x/y/"), Ok(("*.a.com".into(), "/x/y/".into())));
        for bad in ["a.com/blog", "a.com//", "a.com/x//", "a.com/../", "a.com/a%2f/", "a.com/./"] {
            assert!(mount(bad).is_err(), "{bad:?} accepted");
        }
    }
}
