//! An app's declarative rules (`[[app.rules]]`), compiled once and asked by path mapping
//! and the handler: deny, no scripts here, internal only, rewrite, response headers.
//!
//! Every rule matches the decoded, normalised request path below the app's mount prefix
//! (what nginx's `location` sees as `$uri`), by string prefix, glob or regular
//! expression. Precedence, whatever the order in the file: deny and internal first (on
//! the path as requested, and again on a rewritten path, deny only), then the first
//! matching rewrite (fallback rewrites only when no file or directory answers), then
//! no-scripts on the script finally chosen; every matching headers rule applies to a
//! successful answer, later ones replacing earlier ones of the same name. Rules never
//! loop: a path is rewritten at most once. This module reads no file and must never
//! panic on a request path: everything that can fail is checked when compiling.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use http::{HeaderName, HeaderValue, StatusCode};
use privsep::msg::{RuleAction, RuleMatch, RuleSpec};
use regex::Regex;

/// Why a rule cannot be compiled (the broker's check refuses these first).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {index}: {message}")]
    Invalid { index: usize, message: String },
}

/// A compiled matcher.
#[derive(Debug, Clone)]
enum Matcher {
    Prefix(Vec<String>),
    Glob(GlobSet),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, uri: &str) -> bool {
        match self {
            Self::Prefix(prefixes) => prefixes.iter().any(|p| uri.starts_with(p.as_str())),
            Self::Glob(set) => set.is_match(uri),
            Self::Regex(re) => re.is_match(uri),
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Deny(StatusCode),
    NoScripts(StatusCode),
    Internal,
    Rewrite { target: String, fallback: bool },
    Headers(Vec<(HeaderName, HeaderValue)>),
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    action: Action,
}

/// A path after a rewrite: decoded path, and the query to send instead of the
/// client's (the client's query appended after the target's own, like nginx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub path: String,
    pub query: Option<String>,
}

/// An app's rules, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compiles the broker's rule specs.
    pub fn compile(specs: &[RuleSpec]) -> Result<Self, RuleError> {
        let rules = specs.iter().enumerate().map(|(index, spec)| {
            compile_rule(spec).map_err(|message| RuleError::Invalid { index, message })
        });
        Ok(Self { rules: rules.collect::<Result<_, _>>()? })
    }

    fn matching<'a>(&'a self, uri: &'a str) -> impl Iterator<Item = &'a Action> + 'a {
        self.rules.iter().filter(move |r| r.matcher.is_match(uri)).map(|r| &r.action)
    }

    /// The status of the first deny rule matching `uri`.
    pub fn denied(&self, uri: &str) -> Option<StatusCode> {
        self.matching(uri).find_map(|a| match a {
            Action::Deny(status) => Some(*status),
            _ => None,
        })
    }

    /// Whether `uri` may be served only through `X-Accel-Redirect`.
    pub fn is_internal(&self, uri: &str) -> bool {
        self.matching(uri).any(|a| matches!(a, Action::Internal))
    }

    /// The status a script at `script_name` gets instead of running, if any.
    pub fn no_scripts(&self, script_name: &str) -> Option<StatusCode> {
        self.matching(script_name).find_map(|a| match a {
            Action::NoScripts(status) => Some(*status),
            _ => None,
        })
    }

    /// The first rewrite of kind `fallback` matching `uri`, applied.
    pub fn rewrite(&self, uri: &str, query: Option<&str>, fallback: bool) -> Option<Rewritten> {
        self.rules.iter().find_map(|rule| match (&rule.matcher, &rule.action) {
            (Matcher::Regex(re), Action::Rewrite { target, fallback: f }) if *f == fallback => {
                let caps = re.captures(uri)?;
                Some(expand(target, &caps, query))
            }
            _ => None,
        })
    }

    /// Whether any headers rule exists (so answers need no second look otherwise).
    pub fn has_headers(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.action, Action::Headers(_)))
    }

    /// Every header the headers rules matching `uri` set, later rules last.
    pub fn headers(&self, uri: &str) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for action in self.matching(uri) {
            if let Action::Headers(headers) = action {
                out.extend(headers.iter().cloned());
            }
        }
        out
    }
}

fn compile_rule(spec: &RuleSpec) -> Result<Rule, String> {
    let matcher = compile_match(&spec.matcher)?;
    let action = match &spec.action {
        RuleAction::Deny(code) => Action::Deny(client_error(*code)?),
        RuleAction::NoScripts(code) => Action::NoScripts(client_error(*code)?),
        RuleAction::Internal => Action::Internal,
        RuleAction::Rewrite { target, fallback } => {
            let Matcher::Regex(re) = &matcher else {
                return Err("a rewrite needs a `regex` matcher".to_owned());
            };
            check_target(target, re)?;
            Action::Rewrite { target: target.clone(), fallback: *fallback }
        }
        RuleAction::Headers(headers) => Action::Headers(compile_headers(headers)?),
    };
    Ok(Rule { matcher, action })
}

/// The matcher, compiled exactly as `bulkhead check` compiles it.
fn compile_match(spec: &RuleMatch) -> Result<Matcher, String> {
    match spec {
        RuleMatch::Prefix(prefixes) => {
            for p in prefixes {
                check_prefix(p)?;
            }
            Ok(Matcher::Prefix(prefixes.clone()))
        }
        RuleMatch::Glob(globs) => glob_set(globs).map(Matcher::Glob),
        RuleMatch::Regex(re) => regex(re).map(Matcher::Regex),
    }
}

/// A prefix is an absolute path.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    match prefix.starts_with('/') {
        true => Ok(()),
        false => Err(format!("prefix {prefix:?} must start with '/'")),
    }
}

/// Globs with `*` and `?` kept within one path segment (`**` crosses segments).
pub fn glob_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        if !glob.starts_with('/') && !glob.starts_with("**") {
            return Err(format!("glob {glob:?} must start with '/' or '**'"));
        }
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|err| format!("glob {glob:?}: {err}"))?;
        set.add(compiled);
    }
    set.build().map_err(|err| format!("globs: {err}"))
}

/// A regular expression of bounded size.
pub fn regex(text: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(text)
        .size_limit(1 << 20)
        .build()
        .map_err(|err| format!("regex {text:?}: {}", one_line(&err.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A 4xx status.
pub fn client_error(code: u16) -> Result<StatusCode, String> {
    match StatusCode::from_u16(code) {
        Ok(status) if status.is_client_error() => Ok(status),
        _ => Err(format!("{code} is not a client error status (400 to 499)")),
    }
}

/// A rewrite target: a path starting with `/`, captures that exist, no control bytes.
pub fn check_target(target: &str, re: &Regex) -> Result<(), String> {
    if !target.starts_with('/') {
        return Err(format!("rewrite target {target:?} must start with '/'"));
    }
    if target.bytes().any(|b| b.is_ascii_control() || b == b'#') {
        return Err(format!("rewrite target {target:?} has a control byte or '#'"));
    }
    let groups = re.captures_len() - 1;
    for n in captures_named(target) {
        if n > groups {
            return Err(format!("rewrite target names ${n}, the regex has {groups} group(s)"));
        }
    }
    Ok(())
}

/// The capture numbers `$N` a target names.
fn captures_named(target: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = target.as_bytes();
    (0..bytes.len()).filter_map(move |i| {
        let digit = *bytes.get(i + 1)?;
        (bytes[i] == b'$' && digit.is_ascii_digit()).then(|| usize::from(digit - b'0'))
    })
}

/// Header names and values valid in HTTP.
pub fn compile_headers(
    headers: &[(String, String)],
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("{name:?} is not a header name"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of {name} is not a valid header value"))?;
            Ok((name, value))
        })
        .collect()
}

/// The target with `$N` replaced: raw in the path part, percent-encoded in the query
/// part (as nginx escapes captures in arguments); the client's query appended.
fn expand(target: &str, caps: &regex::Captures<'_>, query: Option<&str>) -> Rewritten {
    let (path, own_query) = match target.split_once('?') {
        Some((path, q)) => (path, Some(q)),
        None => (target, None),
    };
    let path = substitute(path, caps, |s, out| out.push_str(s));
    let own = own_query.map(|q| substitute(q, caps, encode_query_into));
    let query = match (own, query.filter(|q| !q.is_empty())) {
        (Some(own), Some(client)) if !own.is_empty() => Some(format!("{own}&{client}")),
        (Some(own), _) => Some(own),
        (None, client) => client.map(str::to_owned),
    };
    Rewritten { path, query }
}

fn substitute(
    template: &str,
    caps: &regex::Captures<'_>,
    mut put: impl FnMut(&str, &mut String),
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        let digit = chars.peek().and_then(|d| d.to_digit(10));
        match (c, digit) {
            ('$', Some(n)) => {
                chars.next();
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                put(caps.get(n).map_or("", |m| m.as_str()), &mut out);
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// Percent-encodes a captured value for a query: unreserved characters and `/`, `:`,
/// `@` stay; everything else (`&`, `=`, `+`, `%`, space, non-ASCII) is escaped.
fn encode_query_into(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@!$'()*,;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
