//! Checks `[[app.rules]]`, `symlink_targets` and `fastcgi_params` into the typed
//! values the worker receives.
//!
//! A rule has exactly one matcher (`prefix`, `glob`, `regex`) and exactly one action
//! (`deny`, `no_scripts`, `internal`, `rewrite`, `headers`); regexes and globs are
//! compiled here with the same options the worker uses (`workers/src/rules.rs`), so a
//! config that passes `bulkhead check` never stops a worker. Problems carry key paths
//! such as `app[0].rules[2].regex`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use privsep::msg::{RuleAction, RuleMatch, RuleSpec};

use super::raw::{RawRule, StatusValue};
use super::{Problems, paths, secrets};

/// The default status of `deny = true` and `no_scripts = true`.
const DEFAULT_DENY: u16 = 403;
/// The largest compiled regex (the worker uses the same limit).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// `$1`..`$9`, like nginx.
const MAX_CAPTURE: usize = 9;

/// Every rule, or `None` after recording what is wrong.
pub(super) fn rules(at: &str, raw: &[RawRule], p: &mut Problems) -> Option<Vec<RuleSpec>> {
    let checked: Vec<Option<RuleSpec>> = raw
        .iter()
        .enumerate()
        .map(|(i, rule)| self::rule(&format!("{at}.rules[{i}]"), rule, p))
        .collect();
    checked.into_iter().collect()
}

fn rule(at: &str, raw: &RawRule, p: &mut Problems) -> Option<RuleSpec> {
    let matcher = matcher(at, raw, p);
    let action = action(at, raw, matcher.as_ref(), p);
    Some(RuleSpec { matcher: matcher?, action: action? })
}

fn matcher(at: &str, raw: &RawRule, p: &mut Problems) -> Option<RuleMatch> {
    let given = [raw.prefix.is_some(), raw.glob.is_some(), raw.regex.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        p.push(at.to_owned(), "needs exactly one of prefix, glob or regex");
        return None;
    }
    if let Some(prefixes) = &raw.prefix {
        let prefixes = prefixes.clone().into_vec();
        let ok = each(p, &format!("{at}.prefix"), &prefixes, |s| absolute(s, "prefix"));
        return ok.then_some(RuleMatch::Prefix(prefixes));
    }
    if let Some(globs) = &raw.glob {
        let globs = globs.clone().into_vec();
        let ok = each(p, &format!("{at}.glob"), &globs, glob);
        return ok.then_some(RuleMatch::Glob(globs));
    }
    let text = raw.regex.clone()?;
    p.take(format!("{at}.regex"), regex(&text).map(|_| RuleMatch::Regex(text)))
}

fn action(
    at: &str,
    raw: &RawRule,
    matcher: Option<&RuleMatch>,
    p: &mut Problems,
) -> Option<RuleAction> {
    let given = [
        raw.deny.is_some(),
        raw.no_scripts.is_some(),
        raw.internal.is_some(),
        raw.rewrite.is_some(),
        raw.headers.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        p.push(
            at.to_owned(),
            "needs exactly one of deny, no_scripts, internal, rewrite or headers",
        );
        return None;
    }
    if raw.fallback.is_some() && raw.rewrite.is_none() {
        p.push(format!("{at}.fallback"), "applies only to a rewrite");
        return None;
    }
    if let Some(deny) = raw.deny {
        return p.take(format!("{at}.deny"), status(deny)).map(RuleAction::Deny);
    }
    if let Some(no_scripts) = raw.no_scripts {
        return p.take(format!("{at}.no_scripts"), status(no_scripts)).map(RuleAction::NoScripts);
    }
    if let Some(internal) = raw.internal {
        if !internal {
            p.push(format!("{at}.internal"), "must be true (leave the rule out otherwise)");
            return None;
        }
        return Some(RuleAction::Internal);
    }
    if let Some(headers) = &raw.headers {
        return self::headers(&format!("{at}.headers"), headers, p).map(RuleAction::Headers);
    }
    let target = raw.rewrite.clone()?;
    let Some(RuleMatch::Regex(re)) = matcher else {
        if matcher.is_some() {
            p.push(format!("{at}.rewrite"), "needs a `regex` matcher (its captures are $1..$9)");
        }
        return None;
    };
    let checked = regex(re).and_then(|re| rewrite_target(&target, &re));
    let fallback = raw.fallback.unwrap_or(false);
    p.take(format!("{at}.rewrite"), checked).map(|()| RuleAction::Rewrite { target, fallback })
}

/// Runs `check` on every item, recording problems at `path[i]`.
fn each(
    p: &mut Problems,
    path: &str,
    items: &[String],
    check: impl Fn(&str) -> Result<(), String>,
) -> bool {
    let results: Vec<bool> = items
        .iter()
        .enumerate()
        .map(|(i, item)| p.take(format!("{path}[{i}]"), check(item)).is_some())
        .collect();
    !items.is_empty() && results.into_iter().all(|ok| ok)
}

fn absolute(text: &str, what: &str) -> Result<(), String> {
    match text.starts_with('/') {
        true => Ok(()),
        false => Err(format!("{what} {text:?} must start with '/'")),
    }
}

fn glob(text: &str) -> Result<(), String> {
    if !text.starts_with('/') && !text.starts_with("**") {
        return Err(format!("glob {text:?} must start with '/' or '**'"));
    }
    let built =
        globset::GlobBuilder::new(text).literal_separator(true).backslash_escape(true).build();
    built.map(drop).map_err(|err| format!("glob {text:?}: {err}"))
}

fn regex(text: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(text).size_limit(REGEX_SIZE_LIMIT).build().map_err(|err| {
        let message = err.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        format!("regex {text:?}: {message}")
    })
}

fn status(value: StatusValue) -> Result<u16, String> {
    match value {
        StatusValue::Switch(true) => Ok(DEFAULT_DENY),
        StatusValue::Switch(false) => {
            Err("must be true or a status (leave the rule out otherwise)".to_owned())
        }
        StatusValue::Code(code @ 400..=499) => Ok(code),
        StatusValue::Code(code) => Err(format!("{code} is not a client error status (400 to 499)")),
    }
}

fn rewrite_target(target: &str, re: &regex::Regex) -> Result<(), String> {
    absolute(target, "rewrite target")?;
    if target.bytes().any(|b| b.is_ascii_control() || b == b'#') {
        return Err(format!("rewrite target {target:?} has a control byte or '#'"));
    }
    let groups = re.captures_len() - 1;
    let bytes = target.as_bytes();
    for pair in bytes.windows(2) {
        if pair[0] == b'$' && pair[1].is_ascii_digit() {
            let n = usize::from(pair[1] - b'0');
            if n > groups.min(MAX_CAPTURE) {
                return Err(format!("names ${n}, but the regex has {groups} capture group(s)"));
            }
        }
    }
    Ok(())
}

fn headers(
    at: &str,
    raw: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<Vec<(String, String)>> {
    if raw.is_empty() {
        p.push(at.to_owned(), "must set at least one header");
        return None;
    }
    let checked: Vec<Option<(String, String)>> = raw
        .iter()
        .map(|(name, value)| {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            let result = if name.is_empty() || !name.bytes().all(token) {
                Err(format!("{name:?} is not a header name"))
            } else if !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                Err("the value must be printable ASCII".to_owned())
            } else {
                Ok((name.clone(), value.clone()))
            };
            p.take(format!("{at}.{name}"), result)
        })
        .collect();
    checked.into_iter().collect()
}

/// `symlink_targets`: existing directories, canonicalised.
pub(super) fn symlink_targets(at: &str, raw: &[PathBuf], p: &mut Problems) -> Option<Vec<PathBuf>> {
    let checked: Vec<Option<PathBuf>> = raw
        .iter()
        .enumerate()
        .map(|(i, dir)| p.take(format!("{at}.symlink_targets[{i}]"), paths::existing_dir(dir)))
        .collect();
    checked.into_iter().collect()
}

/// `fastcgi_params`: names like secrets', never a secret's name or a param Bulkhead sets.
pub(super) fn fastcgi_params(
    at: &str,
    raw: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, super::raw::RawSecret>,
    p: &mut Problems,
) -> Option<Vec<(String, String)>> {
    let checked: Vec<Option<(String, String)>> = raw
        .iter()
        .map(|(name, value)| {
            let result = secrets::param_name(name).and_then(|()| {
                if secrets.contains_key(name) {
                    return Err(format!(
                        "{name:?} is also a secret of this app; a param never replaces one"
                    ));
                }
                if value.bytes().any(|b| b.is_ascii_control()) {
                    return Err("the value must not contain control bytes".to_owned());
                }
                Ok((name.clone(), value.clone()))
            });
            p.take(format!("{at}.fastcgi_params.{name}"), result)
        })
        .collect();
    checked.into_iter().collect()
}
