//! Checkers for single configuration values that need no file system:
//! names, addresses, sizes, durations. Each returns the typed value or the
//! message for its key path; none does I/O.

use std::net::SocketAddr;
use std::path::PathBuf;

use privsep::msg::Backend;

use super::{SandboxMode, UidRange};

/// The longest app name: one DNS label, so it can appear in unit and host names.
pub const MAX_APP_NAME: usize = 63;

/// `[a-z0-9-]+`, at most [`MAX_APP_NAME`] characters.
pub(super) fn app_name(name: &str) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(format!("{name:?} must match [a-z0-9-]+"));
    }
    if name.len() > MAX_APP_NAME {
        return Err(format!("{name:?} is longer than {MAX_APP_NAME} characters"));
    }
    Ok(name.to_owned())
}

/// A listening address: `ip:port` or `[ipv6]:port`.
pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not ip:port (e.g. \"127.0.0.1:8080\" or \"[::]:443\")"))
}

/// A FastCGI backend: `unix:/absolute/path` or `ip:port`. The socket need not exist yet.
pub(super) fn backend(text: &str) -> Result<Backend, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return unix_socket(path).map_err(|why| format!("{text:?}: {why}"));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Backend::Tcp(addr));
    }
    if looks_like_host_port(text) {
        return Err(format!(
            "{text:?}: use an IP address, not a host name (e.g. \"127.0.0.1:9000\")"
        ));
    }
    Err(format!("{text:?} is not \"unix:/path\" or host:port"))
}

fn unix_socket(path: &str) -> Result<Backend, &'static str> {
    if !path.starts_with('/') {
        return Err("the socket path must be absolute");
    }
    Ok(Backend::Unix(PathBuf::from(path)))
}

/// `name:port`, where name is a plausible DNS name.
fn looks_like_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else { return false };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    host_ok && port.parse::<u16>().is_ok()
}

/// A byte count: plain bytes or a number with a binary `K`, `M` or `G` suffix.
pub(super) fn size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a size (bytes, or a whole number with K, M or G, e.g. \"64M\")")
    };
    let (number, unit) = split_number(text);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

/// A positive duration in milliseconds, written with an `ms`, `s` or `m` suffix.
pub(super) fn duration_ms(text: &str) -> Result<u64, String> {
    let bad =
        || format!("{text:?} is not a duration (a whole number with ms, s or m, e.g. \"60s\")");
    let (number, unit) = split_number(text);
    let multiplier: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        _ => return Err(bad()),
    };
    let ms = number.parse::<u64>().map_err(|_| bad())?.checked_mul(multiplier);
    match ms {
        None => Err(format!("{text:?} is too long")),
        Some(0) => Err(format!("{text:?} must be longer than zero")),
        Some(ms) => Ok(ms),
    }
}

/// The leading ASCII digits and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    text.split_at(end)
}

/// `sandbox.mode`: `"root"` or `"rootless"`.
pub(super) fn sandbox_mode(text: &str) -> Result<SandboxMode, String> {
    match text {
        "root" => Ok(SandboxMode::Root),
        "rootless" => Ok(SandboxMode::Rootless),
        "off" => Ok(SandboxMode::Off),
        _ => Err(format!("{text:?} is not \"root\", \"rootless\" or \"off\"")),
    }
}

/// `"FIRST-LAST"`, inclusive, with 0 < FIRST <= LAST.
pub(super) fn uid_range(text: &str) -> Result<UidRange, String> {
    let bad = || format!("{text:?} is not a uid range such as \"61184-65519\"");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u32 = first.trim().parse().map_err(|_| bad())?;
    let last: u32 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 {
        return Err(format!("{text:?} must not include uid 0 (root)"));
    }
    if first > last {
        return Err(format!("{text:?}: the first uid is above the last"));
    }
    Ok(UidRange { first, last })
}

/// An `index` entry: a plain file name.
pub(super) fn file_name(name: &str) -> Result<String, String> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    if !plain {
        return Err(format!("{name:?} must be a plain file name (no '/')"));
    }
    Ok(name.to_owned())
}

/// A URL path starting with `/`, without `..` segments.
pub(super) fn front_controller(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path.split('/').any(|segment| segment == "..") {
        return Err(format!("{path:?} must not contain \"..\" segments"));
    }
    if path.contains('\0') {
        return Err(format!("{path:?} must not contain NUL"));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_binary_multiples() {
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert_eq!(size("2k"), Ok(2048));
        assert_eq!(size("1G"), Ok(1 << 30));
        for bad in ["", "M", "1.5M", "64MB", "-1", "+1", " 1M", "1T"] {
            assert!(size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(size("99999999999999999999G").is_err());
        assert!(size("17179869184G").is_err(), "overflow must not wrap");
    }

    #[test]
    fn durations_need_a_unit_and_must_be_positive() {
        assert_eq!(duration_ms("60s"), Ok(60_000));
        assert_eq!(duration_ms("250ms"), Ok(250));
        assert_eq!(duration_ms("2m"), Ok(120_000));
        for bad in ["60", "s", "1h", "1.5s", "0s", "-1s", "60 s"] {
            assert!(duration_ms(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn backends_are_unix_paths_or_socket_addresses() {
        assert_eq!(backend("unix:/run/php/a.sock"), Ok(Backend::Unix("/run/php/a.sock".into())));
        assert_eq!(
            backend("127.0.0.1:9000"),
            Ok(Backend::Tcp("127.0.0.1:9000".parse().expect("valid address")))
        );
        assert_eq!(
            backend("[::1]:9000"),
            Ok(Backend::Tcp("[::1]:9000".parse().expect("valid address")))
        );
        assert!(backend("unix:run/php.sock").is_err());
        assert!(backend("unix:").is_err());
        assert!(backend("localhost:9000").expect_err("must be refused").contains("IP address"));
        assert_eq!(
            backend("tcp:foo").expect_err("must be refused"),
            r#""tcp:foo" is not "unix:/path" or host:port"#
        );
    }

    #[test]
    fn uid_ranges_are_ordered_and_exclude_root() {
        assert_eq!(uid_range("61184-65519"), Ok(UidRange { first: 61184, last: 65519 }));
        assert_eq!(uid_range("5-5"), Ok(UidRange { first: 5, last: 5 }));
        assert!(uid_range("65519-61184").is_err());
        assert!(uid_range("0-100").expect_err("must be refused").contains("uid 0"));
        assert!(uid_range("100").is_err());
    }

    #[test]
    fn app_names_are_dns_labels() {
        assert!(app_name("blog-2").is_ok());
        assert_eq!(
            app_name("Bad_Name").expect_err("must be refused"),
            r#""Bad_Name" must match [a-z0-9-]+"#
        );
        assert!(app_name("").is_err());
        assert!(app_name(&"a".repeat(64)).is_err());
        assert!(app_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn index_names_and_front_controllers() {
        assert!(file_name("index.php").is_ok());
        assert!(file_name("a/b.php").is_err());
        assert!(file_name("..").is_err());
        assert!(front_controller("/index.php").is_ok());
        assert!(front_controller("index.php").is_err());
        assert!(front_controller("/../x.php").is_err());
        assert!(front_controller("/a..b.php").is_ok());
    }
}
