//! Builds Bulkhead TOML configurations from typed app descriptions, so tests state what
//! differs (a host, a secret, a bad key) and the rest is a known-valid default.
//!
//! Strings are quoted by the `toml` crate, so any path or value round-trips.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where an app's secret comes from (secrets are referenced, never inlined).
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `{ file = "…" }`: read by the broker.
    File(PathBuf),
    /// `{ env = "…" }`: read from the broker's environment.
    Env(String),
}

/// One `[[app]]` table.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// `[a-z0-9-]+`, unique.
    pub name: String,
    /// Exact names and `*.` wildcards.
    pub hosts: Vec<String>,
    /// The document root (must exist).
    pub root: PathBuf,
    /// Index files tried for a directory.
    pub index: Vec<String>,
    /// `unix:/abs/path.sock` or `host:port`.
    pub fastcgi: String,
    /// `[app.secrets]`: name → source.
    pub secrets: Vec<(String, SecretSource)>,
    /// `[app.limits] max_body`, e.g. `"8M"`.
    pub max_body: Option<String>,
    /// `[app.limits] timeout`, e.g. `"30s"`.
    pub timeout: Option<String>,
    /// Raw `key = value` lines appended to the `[[app]]` table (for unknown-key tests).
    pub extra_lines: Vec<String>,
}

impl AppSpec {
    /// An app answering `NAME.localhost`, with `index.php`/`index.html` as index files.
    pub fn new(name: &str, root: &Path, fastcgi: &str) -> Self {
        Self {
            name: name.to_owned(),
            hosts: vec![format!("{name}.localhost")],
            root: root.to_path_buf(),
            index: vec!["index.php".to_owned(), "index.html".to_owned()],
            fastcgi: fastcgi.to_owned(),
            secrets: Vec::new(),
            max_body: None,
            timeout: None,
            extra_lines: Vec::new(),
        }
    }

    /// Adds a host name.
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.to_owned());
        self
    }

    /// Adds a secret read from a file.
    pub fn secret_file(mut self, name: &str, path: &Path) -> Self {
        let source = SecretSource::File(path.to_path_buf());
        self.secrets.push((name.to_owned(), source));
        self
    }

    /// Adds a secret read from the broker's environment variable `var`.
    pub fn secret_env(mut self, name: &str, var: &str) -> Self {
        let source = SecretSource::Env(var.to_owned());
        self.secrets.push((name.to_owned(), source));
        self
    }

    /// The first host name (the one tests send requests to).
    pub fn primary_host(&self) -> &str {
        self.hosts.first().map_or("", String::as_str)
    }

    /// This app as a `[[app]]` table with its sub-tables.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("[[app]]\n");
        let _ = writeln!(out, "name = {}", quote(&self.name));
        let _ = writeln!(out, "hosts = {}", quote_list(&self.hosts));
        let _ = writeln!(out, "root = {}", quote(&self.root.to_string_lossy()));
        let _ = writeln!(out, "index = {}", quote_list(&self.index));
        let _ = writeln!(out, "fastcgi = {}", quote(&self.fastcgi));
        for line in &self.extra_lines {
            let _ = writeln!(out, "{line}");
        }
        out.push_str(&self.secrets_toml());
        out.push_str(&self.limits_toml());
        out
    }

    fn secrets_toml(&self) -> String {
        if self.secrets.is_empty() {
            return String::new();
        }
        let mut out = String::from("[app.secrets]\n");
        for (name, source) in &self.secrets {
            let value = match source {
                SecretSource::File(path) => {
                    format!("{{ file = {} }}", quote(&path.to_string_lossy()))
                }
                SecretSource::Env(var) => format!("{{ env = {} }}", quote(var)),
            };
            let _ = writeln!(out, "{name} = {value}");
        }
        out
    }

    fn limits_toml(&self) -> String {
        let pairs = [("max_body", &self.max_body), ("timeout", &self.timeout)];
        let set: Vec<String> = pairs
            .iter()
            .filter_map(|(key, value)| Some(format!("{key} = {}\n", quote(value.as_deref()?))))
            .collect();
        if set.is_empty() {
            return String::new();
        }
        format!("[app.limits]\n{}", set.concat())
    }
}

/// A whole configuration: the plain-HTTP listeners, then the apps.
pub fn config_toml(listen: &[SocketAddr], apps: &[AppSpec]) -> String {
    config_toml_with(listen, &[], apps)
}

/// Like [`config_toml`], with raw top-level `key = value` lines (e.g. `shutdown_timeout`).
pub fn config_toml_with(listen: &[SocketAddr], top: &[String], apps: &[AppSpec]) -> String {
    let addrs: Vec<String> = listen.iter().map(ToString::to_string).collect();
    let mut out = format!("listen = {}\n", quote_list(&addrs));
    for line in top {
        out.push_str(line);
        out.push('\n');
    }
    for app in apps {
        out.push('\n');
        out.push_str(&app.to_toml());
    }
    out
}

/// A TOML string literal.
pub fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quote(item)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The first `listen` address of a configuration, parsed back out of its text.
pub fn first_listen(config_toml: &str) -> SocketAddr {
    let table: toml::Table = config_toml.parse().expect("the config is valid TOML");
    let first = table
        .get("listen")
        .and_then(|listen| listen.as_array()?.first()?.as_str())
        .expect("the config has a non-empty `listen` array");
    first.parse().expect("the first `listen` entry is an IP:port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_toml_with_the_listen_address() {
        let app = AppSpec::new("alpha", Path::new("/srv/a \"b\""), "unix:/run/a.sock")
            .host("*.alpha.localhost")
            .secret_file("DB_PASSWORD", Path::new("/run/secret"))
            .secret_env("API_KEY", "ALPHA_API_KEY");
        let addr: SocketAddr = "127.0.0.1:18080".parse().expect("literal address");
        let text = config_toml(&[addr], &[app]);
        let table: toml::Table = text.parse().expect("generated TOML parses");
        assert_eq!(first_listen(&text), addr);
        let app = &table["app"][0];
        assert_eq!(app["root"].as_str(), Some("/srv/a \"b\""));
        assert_eq!(app["secrets"]["API_KEY"]["env"].as_str(), Some("ALPHA_API_KEY"));
    }
}
