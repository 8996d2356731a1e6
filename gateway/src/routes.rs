//! The routing table: which app answers a Host.
//!
//! Exact names win over wildcards; among wildcards the longest suffix wins,
//! as in nginx's `server_name`. Lookup normalises the client's Host (lower
//! case, port and trailing dot removed) and never allocates on a miss of an
//! already lower-case name.

use std::collections::{HashMap, HashSet};

use privsep::msg::Route;

/// Host patterns to app names.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, String>,
    /// `(".suffix", app)`, longest suffix first.
    wildcards: Vec<(String, String)>,
    /// Apps whose workers start at their first request.
    on_demand: HashSet<String>,
}

impl RouteTable {
    /// Adds or replaces an app's routes.
    pub fn insert(&mut self, route: &Route) {
        self.remove(&route.app);
        for host in &route.hosts {
            match host.strip_prefix('*') {
                Some(suffix) => self.wildcards.push((suffix.to_owned(), route.app.clone())),
                None => {
                    self.exact.insert(host.clone(), route.app.clone());
                }
            }
        }
        self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        if route.on_demand {
            self.on_demand.insert(route.app.clone());
        }
    }

    /// Whether `app`'s workers start on demand.
    pub fn is_on_demand(&self, app: &str) -> bool {
        self.on_demand.contains(app)
    }

    /// Removes every route of `app`.
    pub fn remove(&mut self, app: &str) {
        self.exact.retain(|_, a| a != app);
        self.wildcards.retain(|(_, a)| a != app);
        self.on_demand.remove(app);
    }

    /// The app serving `host` (a Host header or :authority value).
    pub fn lookup(&self, host: &str) -> Option<&str> {
        let name = normalise(host)?;
        if let Some(app) = self.exact.get(name.as_ref()) {
            return Some(app);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map(|(_, app)| app.as_str())
    }
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
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut t = RouteTable::default();
        t.insert(&Route {
            app: "blog".into(),
            hosts: vec!["blog.example.com".into(), "*.blog.example.com".into()],
            on_demand: false,
        });
        t.insert(&Route {
            app: "shop".into(),
            hosts: vec!["*.example.com".into(), "cdn.blog.example.com".into()],
            on_demand: true,
        });
        t
    }

    #[test]
    fn exact_beats_wildcard_and_longest_suffix_wins() {
        let t = table();
        assert_eq!(t.lookup("blog.example.com"), Some("blog"));
        assert_eq!(t.lookup("www.blog.example.com"), Some("blog"));
        assert_eq!(t.lookup("cdn.blog.example.com"), Some("shop"));
        assert_eq!(t.lookup("x.example.com"), Some("shop"));
        assert_eq!(t.lookup("example.com"), None);
    }

    #[test]
    fn normalises_case_port_and_trailing_dot() {
        let t = table();
        assert_eq!(t.lookup("BLOG.Example.com:8080"), Some("blog"));
        assert_eq!(t.lookup("blog.example.com."), Some("blog"));
    }

    #[test]
    fn refuses_implausible_hosts() {
        let t = table();
        assert_eq!(t.lookup(""), None);
        assert_eq!(t.lookup("blog.example.com/x"), None);
        assert_eq!(t.lookup("[::1]:80"), None);
    }

    #[test]
    fn reinserting_an_app_replaces_its_routes() {
        let mut t = table();
        t.insert(&Route {
            app: "blog".into(),
            hosts: vec!["new.example.org".into()],
            on_demand: false,
        });
        assert!(t.is_on_demand("shop") && !t.is_on_demand("blog"));
        assert_eq!(t.lookup("blog.example.com"), Some("shop"));
        assert_eq!(t.lookup("new.example.org"), Some("blog"));
    }
}
