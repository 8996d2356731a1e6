use super::*;

fn rule(matcher: RuleMatch, action: RuleAction) -> RuleSpec {
    RuleSpec { matcher, action }
}

fn prefix(p: &[&str]) -> RuleMatch {
    RuleMatch::Prefix(p.iter().map(|s| (*s).to_owned()).collect())
}

fn glob(g: &[&str]) -> RuleMatch {
    RuleMatch::Glob(g.iter().map(|s| (*s).to_owned()).collect())
}

fn rewrite(re: &str, target: &str, fallback: bool) -> RuleSpec {
    let action = RuleAction::Rewrite { target: target.to_owned(), fallback };
    rule(RuleMatch::Regex(re.to_owned()), action)
}

fn compiled(specs: Vec<RuleSpec>) -> Rules {
    Rules::compile(&specs).expect("valid rules")
}

#[test]
fn deny_by_prefix_and_glob_with_their_statuses() {
    let rules = compiled(vec![
        rule(prefix(&["/conf/", "/install.php"]), RuleAction::Deny(404)),
        rule(glob(&["/libraries/**/*.php", "/templates/**"]), RuleAction::Deny(403)),
    ]);
    let table: &[(&str, Option<u16>)] = &[
        ("/conf/local.php", Some(404)),
        ("/conf/", Some(404)),
        ("/install.php", Some(404)),
        ("/conference", None),
        ("/libraries/a/b.php", Some(403)),
        ("/libraries/b.php", Some(403)),
        ("/libraries/b.css", None),
        ("/templates/x.twig", Some(403)),
        ("/x/templates/y", None),
        ("/", None),
    ];
    for (path, want) in table {
        assert_eq!(rules.denied(path).map(|s| s.as_u16()), *want, "{path}");
    }
}

#[test]
fn a_single_star_stays_within_a_segment() {
    let rules = compiled(vec![rule(glob(&["/data/*.txt"]), RuleAction::Deny(403))]);
    assert!(rules.denied("/data/a.txt").is_some());
    assert!(rules.denied("/data/pages/a.txt").is_none(), "`*` must not cross '/'");
}

#[test]
fn no_scripts_and_internal_answer_only_their_own_question() {
    let rules = compiled(vec![
        rule(prefix(&["/wp-content/uploads/"]), RuleAction::NoScripts(403)),
        rule(prefix(&["/private/"]), RuleAction::Internal),
    ]);
    let table: &[(&str, Option<u16>, bool)] = &[
        ("/wp-content/uploads/x.php", Some(403), false),
        ("/wp-content/uploads/2024/a.jpg", Some(403), false),
        ("/wp-content/plugins/x.php", None, false),
        ("/private/7f3e9a", None, true),
        ("/privatex", None, false),
    ];
    for (path, scripts, internal) in table {
        assert_eq!(rules.no_scripts(path).map(|s| s.as_u16()), *scripts, "{path}");
        assert_eq!(rules.is_internal(path), *internal, "{path}");
        assert_eq!(rules.denied(path), None, "{path}");
    }
}

/// (path, client query, fallback?, rewritten path, rewritten query).
type RewriteCase = (&'static str, Option<&'static str>, bool, &'static str, Option<&'static str>);

#[test]
fn rewrites_with_captures_like_dokuwiki_and_mediawiki() {
    let rules = compiled(vec![
        rewrite("^/_media/(.*)", "/lib/exe/fetch.php?media=$1", true),
        rewrite("^/_export/([^/]+)/(.*)", "/doku.php?do=export_$1&id=$2", true),
        rewrite("^/(.*)", "/doku.php?id=$1", true),
        rewrite("^/wiki/(.*)$", "/index.php?title=$1", false),
    ]);
    let table: &[RewriteCase] = &[
        ("/_media/wiki:logo.png", None, true, "/lib/exe/fetch.php", Some("media=wiki:logo.png")),
        ("/_export/raw/wiki:syntax", None, true, "/doku.php", Some("do=export_raw&id=wiki:syntax")),
        ("/wiki:syntax", Some("do=edit"), true, "/doku.php", Some("id=wiki:syntax&do=edit")),
        ("/a b&c=d", None, true, "/doku.php", Some("id=a%20b%26c%3Dd")),
        ("/wiki/.NET_Framework", None, false, "/index.php", Some("title=.NET_Framework")),
        ("/wiki/Caf\u{e9}", None, false, "/index.php", Some("title=Caf%C3%A9")),
    ];
    for (path, query, fallback, want_path, want_query) in table {
        let got = rules.rewrite(path, *query, *fallback).expect("rewritten");
        assert_eq!(got.path, *want_path, "{path}");
        assert_eq!(got.query.as_deref(), *want_query, "{path}");
    }
    assert_eq!(rules.rewrite("/wiki/x", None, true).map(|r| r.path), Some("/doku.php".into()));
    assert!(rules.rewrite("/other", None, false).is_none(), "only the non-fallback rule");
}

#[test]
fn captures_go_raw_into_the_path_and_the_client_query_survives() {
    let rules = compiled(vec![rewrite("^/u/([^/]+)/(.*)$", "/$1/files/$2", false)]);
    let got = rules.rewrite("/u/ann/a b.png", Some("v=1"), false).expect("rewritten");
    assert_eq!((got.path.as_str(), got.query.as_deref()), ("/ann/files/a b.png", Some("v=1")));
}

#[test]
fn headers_of_every_matching_rule_apply_later_ones_last() {
    let headers = |pairs: &[(&str, &str)]| {
        RuleAction::Headers(pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect())
    };
    let rules = compiled(vec![
        rule(glob(&["**/*.{css,js}"]), headers(&[("Cache-Control", "max-age=31536000")])),
        rule(prefix(&["/"]), headers(&[("X-Frame-Options", "SAMEORIGIN")])),
    ]);
    let names = |path| -> Vec<String> {
        rules
            .headers(path)
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("")))
            .collect()
    };
    assert_eq!(
        names("/lib/a.css"),
        ["cache-control: max-age=31536000", "x-frame-options: SAMEORIGIN"]
    );
    assert_eq!(names("/index.php"), ["x-frame-options: SAMEORIGIN"]);
}

#[test]
fn invalid_rules_do_not_compile() {
    let bad = [
        rule(RuleMatch::Regex("(".into()), RuleAction::Internal),
        rule(glob(&["/a/[z-a]"]), RuleAction::Internal),
        rule(glob(&["relative/**"]), RuleAction::Internal),
        rule(prefix(&["relative"]), RuleAction::Internal),
        rule(prefix(&["/"]), RuleAction::Deny(200)),
        rule(prefix(&["/"]), RuleAction::NoScripts(502)),
        rewrite("^/(.*)", "/x?a=$2", false),
        rewrite("^/(.*)", "relative", false),
        rule(prefix(&["/"]), RuleAction::Rewrite { target: "/x".into(), fallback: false }),
        rule(prefix(&["/"]), RuleAction::Headers(vec![("bad name".into(), "v".into())])),
        rule(prefix(&["/"]), RuleAction::Headers(vec![("X-A".into(), "a\nb".into())])),
    ];
    for spec in bad {
        assert!(Rules::compile(std::slice::from_ref(&spec)).is_err(), "{spec:?}");
    }
}
