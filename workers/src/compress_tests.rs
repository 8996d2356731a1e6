use super::*;

fn accept(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT_ENCODING, HeaderValue::try_from(value).expect("ASCII"));
    h
}

#[test]
fn negotiation_follows_q_values() {
    let on = CompressSpec::default();
    let cases = [
        ("gzip", Some(Coding::Gzip)),
        ("gzip, deflate, br, zstd", Some(Coding::Brotli)),
        ("br;q=0.5, gzip", Some(Coding::Gzip)),
        ("gzip;q=0", None),
        ("GZIP;Q=0.0, br;q=0", None),
        ("*", Some(Coding::Brotli)),
        ("*;q=0", None),
        ("br;q=0, *", Some(Coding::Gzip)),
        ("identity", None),
        ("", None),
        ("x-gzip", Some(Coding::Gzip)),
        ("gzip;q=2", None),
    ];
    for (value, expected) in cases {
        assert_eq!(negotiate(&accept(value), &on), expected, "{value:?}");
    }
    let gzip_only = CompressSpec { brotli: false, ..on };
    assert_eq!(negotiate(&accept("br, gzip;q=0.1"), &gzip_only), Some(Coding::Gzip));
    assert_eq!(negotiate(&accept("br"), &gzip_only), None);
    assert_eq!(negotiate(&accept("gzip, br"), &CompressSpec::off()), None);
}

#[test]
fn compressible_types() {
    for ty in [
        "text/html",
        "text/css; charset=utf-8",
        "application/json",
        "image/svg+xml",
        "application/rss+xml",
        "application/manifest+json",
        "text/javascript",
    ] {
        assert!(is_compressible(ty), "{ty}");
    }
    for ty in ["image/png", "application/octet-stream", "video/mp4", "application/zip", ""] {
        assert!(!is_compressible(ty), "{ty}");
    }
}

#[test]
fn etags_weaken_once_and_vary_is_not_repeated() {
    let mut h = HeaderMap::new();
    h.insert(ETAG, HeaderValue::from_static("\"abc\""));
    weaken_etag(&mut h);
    weaken_etag(&mut h);
    assert_eq!(h[ETAG], "W/\"abc\"");
    h.insert(VARY, HeaderValue::from_static("Cookie, accept-encoding"));
    add_vary(&mut h);
    assert_eq!(h.get_all(VARY).iter().count(), 1);
}
