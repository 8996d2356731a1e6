use http::HeaderValue;

use super::*;

fn validators() -> Validators {
    Validators {
        etag: "\"5f5e100-64\"".into(),
        modified: UNIX_EPOCH + Duration::from_secs(100_000_000),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

#[test]
fn if_none_match_wins_over_if_modified_since() {
    let v = validators();
    assert!(not_modified(&headers(&[("if-none-match", "\"x\", W/\"5f5e100-64\"")]), &v));
    assert!(not_modified(&headers(&[("if-none-match", "*")]), &v));
    let stale =
        headers(&[("if-none-match", "\"other\""), ("if-modified-since", &v.last_modified())]);
    assert!(!not_modified(&stale, &v), "a tag mismatch is not saved by the date");
    assert!(not_modified(&headers(&[("if-modified-since", &v.last_modified())]), &v));
    let earlier = httpdate::fmt_http_date(v.modified - Duration::from_secs(1));
    assert!(!not_modified(&headers(&[("if-modified-since", &earlier)]), &v));
    assert!(!not_modified(&headers(&[("if-modified-since", "yesterday")]), &v));
    assert!(!not_modified(&HeaderMap::new(), &v));
}

#[test]
fn single_ranges() {
    let v = validators();
    let at = |r: &str| part(&headers(&[("range", r)]), 100, &v);
    assert_eq!(at("bytes=0-9"), Part::Range { first: 0, last: 9 });
    assert_eq!(at("bytes=90-"), Part::Range { first: 90, last: 99 });
    assert_eq!(at("bytes=-10"), Part::Range { first: 90, last: 99 });
    assert_eq!(at("bytes=-1000"), Part::Range { first: 0, last: 99 });
    assert_eq!(at("bytes=95-1000"), Part::Range { first: 95, last: 99 });
    assert_eq!(at("bytes=100-"), Part::Unsatisfiable);
    assert_eq!(at("bytes=-0"), Part::Unsatisfiable);
    assert_eq!(at("bytes=0-1,5-6"), Part::Whole, "multi-range gets the whole file");
    assert_eq!(at("bytes=9-3"), Part::Whole, "malformed is ignored");
    assert_eq!(at("items=0-1"), Part::Whole);
    assert_eq!(part(&headers(&[("range", "bytes=0-")]), 0, &v), Part::Unsatisfiable);
}

#[test]
fn if_range_must_match_the_current_file() {
    let v = validators();
    let with =
        |if_range: &str| part(&headers(&[("range", "bytes=0-0"), ("if-range", if_range)]), 100, &v);
    assert_eq!(with("\"5f5e100-64\""), Part::Range { first: 0, last: 0 });
    assert_eq!(with(&v.last_modified()), Part::Range { first: 0, last: 0 });
    assert_eq!(with("\"old\""), Part::Whole);
}
