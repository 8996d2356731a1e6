//! The routing table: which app answers a Host and path.
//!
//! Exact names win over wildcards; among wildcards the longest suffix wins,
//! as in nginx's `server_name`. Within a host, the app mounted under the
//! longest matching path prefix wins (`/blog/` before `/`), like nginx's
//! prefix `location`s; `/blog` without its slash also goes to the `/blog/` app,
//! which redirects it. Lookup normalises the client's Host (lower case, port
//! and trailing dot removed) and never allocates on a miss of an already
//! lower-case name. The path is matched raw (still percent-encoded); the
//! worker re-checks its prefix after decoding, so a path that only looks like
//! it is under a prefix reaches no file outside that app.

use std::collections::{HashMap, HashSet};

use privsep::msg::Route;

/// `(prefix, app)` pairs of one host pattern, longest prefix first.
type Mounts = Vec<(String, String)>;

/// Host patterns and path prefixes to app names.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, Mounts>,
    /// `(".suffix", mounts)`, longest suffix first.
    wildcards: Vec<(String, Mounts)>,
    /// Apps whose workers start at their first request.
    on_demand: HashSet<String>,
    /// Each app's `max_body`, where the broker sent one.
    max_body: HashMap<String, u64>,
}

impl RouteTable {
    /// Adds or replaces an app's routes.
    pub fn insert(&mut self, route: &Route) {
        self.remove(&route.app);
        let mount = (route.prefix.clone(), route.app.clone());
        for host in &route.hosts {
            let mounts = match host.strip_prefix('*') {
                Some(suffix) => self.wildcard_mounts(suffix),
                None => self.exact.entry(host.clone()).or_default(),
            };
            mounts.push(mount.clone());
            mounts.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        }
        self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        if route.on_demand {
            self.on_demand.insert(route.app.clone());
        }
        if let Some(max) = route.max_body {
            self.max_body.insert(route.app.clone(), max);
        }
    }

    fn wildcard_mounts(&mut self, suffix: &str) -> &mut Mounts {
        let at = match self.wildcards.iter().position(|(s, _)| s == suffix) {
            Some(at) => at,
            None => {
                self.wildcards.push((suffix.to_owned(), Vec::new()));
                self.wildcards.len() - 1
            }
        };
        &mut self.wildcards[at].1
    }

    /// Whether `app`'s workers start on demand.
    pub fn is_on_demand(&self, app: &str) -> bool {
        self.on_demand.contains(app)
    }

    /// The longest request body `app` accepts, if the gateway knows it.
    pub fn max_body(&self, app: &str) -> Option<u64> {
        self.max_body.get(app).copied()
    }

    /// Removes every route of `app`.
    pub fn remove(&mut self, app: &str) {
        for mounts in self.exact.values_mut().chain(self.wildcards.iter_mut().map(|w| &mut w.1)) {
            mounts.retain(|(_, a)| a != app);
        }
        self.exact.retain(|_, mounts| !mounts.is_empty());
        self.wildcards.retain(|(_, mounts)| !mounts.is_empty());
        self.on_demand.remove(app);
        self.max_body.remove(app);
    }

    /// The app serving the root of `host` (a Host header or :authority value).
    pub fn lookup(&self, host: &str) -> Option<&str> {
        self.route(host, "/")
    }

    /// The app serving `path` (the raw request path) on `host`.
    pub fn route(&self, host: &str, path: &str) -> Option<&str> {
        let name = normalise(host)?;
        let exact = self.exact.get(name.as_ref()).into_iter();
        let wildcards = self
            .wildcards
            .iter()
            .filter(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map(|(_, mounts)| mounts);
        exact.chain(wildcards).find_map(|mounts| mounted(mounts, path))
    }
}

/// The app of the longest prefix that `path` is under (or is, without its slash).
fn mounted<'a>(mounts: &'a Mounts, path: &str) -> Option<&'a str> {
    let under = |prefix: &str| {
        path.starts_with(prefix) || prefix.strip_suffix('/').is_some_and(|bare| path == bare)
    };
    mounts.iter().find(|(prefix, _)| under(prefix)).map(|(_, app)| app.as_str())
}

/// `Host` without port or trailing dot, lower case; `None` if it is not a plausible name.
fn normalise(host: &str) -> Option<std::borrow::Cow<'_, str>> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(name.to_ascii_lowercase().into());
    }
    Some(name.into())
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
