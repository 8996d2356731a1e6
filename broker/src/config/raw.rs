//! The configuration as serde reads it: the right keys and types, values not
//! yet checked. Every struct denies unknown fields.
//!
//! The top level and each `[[app]]` are deserialized on their own, so a bad key
//! in one app is reported alongside the bad keys of the others. Serde errors
//! carry their key path (via `serde_path_to_error`), prefixed with `app[N]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, DeserializeOwned, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

use super::Problems;

/// The parts of the file that deserialized; the rest are recorded as problems.
#[derive(Debug)]
pub(super) struct RawConfig {
    pub top: Option<RawTop>,
    /// `(index in the file, app)`.
    pub apps: Vec<(usize, RawApp)>,
}

/// Everything but `[[app]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(super) struct RawTop {
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub listen_tls: Vec<String>,
    #[serde(default)]
    pub sandbox: RawSandbox,
    pub control_socket: Option<PathBuf>,
    pub shutdown_timeout: Option<String>,
    /// The longest wait between two reads of a request body, e.g. `"60s"`.
    pub client_body_timeout: Option<String>,
    /// How long a connection may take to begin its first request.
    pub client_header_timeout: Option<String>,
    /// How long an idle connection is kept.
    pub keepalive_timeout: Option<String>,
    /// How long a client may take no response byte.
    pub send_timeout: Option<String>,
    /// The most bytes of a request head, e.g. `"32K"`.
    pub client_max_header_size: Option<String>,
    /// Client connections open at once.
    pub max_connections: Option<u32>,
    /// Client connections open at once from one address.
    pub max_connections_per_client: Option<u32>,
    /// CIDR blocks whose X-Forwarded-For/-Proto headers the workers believe.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The app whose certificate is served when SNI names no app.
    pub default_cert: Option<String>,
    /// Keyholder signatures a second per gateway.
    pub tls_signatures_per_second: Option<u32>,
    /// `{ path = "/var/log/bulkhead/access.log" | "stderr", format = "combined" | "json" }`.
    pub access_log: Option<RawAccessLog>,
    /// Bulkhead's own log: `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<String>,
    /// Bulkhead's own log: `text` or `json`.
    pub log_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an access_log table")]
pub(super) struct RawAccessLog {
    pub path: PathBuf,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [sandbox] table")]
pub(super) struct RawSandbox {
    pub mode: Option<String>,
    pub uid_range: Option<String>,
    #[serde(default)]
    pub allow_weaker: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[app]] table")]
pub(super) struct RawApp {
    pub name: String,
    pub hosts: Vec<String>,
    pub root: PathBuf,
    pub index: Option<Vec<String>>,
    pub front_controller: Option<String>,
    /// An external pool; exactly one of `fastcgi` and `php` is set.
    pub fastcgi: Option<String>,
    /// A pool the broker starts and sandboxes itself.
    pub php: Option<super::php::RawPhp>,
    pub fastcgi_keepalive: Option<u32>,
    pub user: Option<String>,
    #[serde(default)]
    pub writable: Vec<PathBuf>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub redirect_https: bool,
    pub hsts: Option<HstsValue>,
    #[serde(default)]
    pub secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    pub limits: RawLimits,
    pub workers: Option<u32>,
    #[serde(default)]
    pub on_demand: bool,
    pub idle_timeout: Option<String>,
    /// Directories outside `root` that symlinks under it may lead to (static files).
    #[serde(default)]
    pub symlink_targets: Vec<PathBuf>,
    /// Extra FastCGI params: name → value.
    #[serde(default)]
    pub fastcgi_params: BTreeMap<String, String>,
    /// `[[app.rules]]`, in file order.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// `types = { ".ext" = "type/subtype" }`: content types before the built-in table.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    /// `charset = "utf-8"`: added to text/html and text/plain (nginx's `charset`).
    pub charset: Option<String>,
    /// `compress = false` or `{ gzip, brotli, min_length }`.
    pub compress: Option<RawCompress>,
    /// A recipe from `deploy/examples/` whose rules come first (`"wordpress"`, …).
    pub preset: Option<String>,
}

/// One `[[app.rules]]` entry as written: one matcher key and one action key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[app.rules]] table")]
pub(super) struct RawRule {
    pub prefix: Option<OneOrMany>,
    pub glob: Option<OneOrMany>,
    pub regex: Option<String>,
    pub deny: Option<StatusValue>,
    pub no_scripts: Option<StatusValue>,
    pub internal: Option<bool>,
    pub rewrite: Option<String>,
    pub fallback: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// `compress = true | false | { gzip = …, brotli = …, min_length = … }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged, expecting = "true, false or a table { gzip, brotli, min_length }")]
pub(super) enum RawCompress {
    Switch(bool),
    Table(RawCompressTable),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompressTable {
    pub gzip: Option<bool>,
    pub brotli: Option<bool>,
    pub min_length: Option<u64>,
}

/// `true` (the default status) or a status code.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged, expecting = "true or a status code such as 404")]
pub(super) enum StatusValue {
    Switch(bool),
    Code(u16),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table { cert = \"…\", key = \"…\" }")]
pub(super) struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `"1.2"` (the default) or `"1.3"`.
    pub min_version: Option<String>,
}

/// `hsts = true | false | "max-age=…"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "true, false or a header value such as \"max-age=31536000\"")]
pub(super) enum HstsValue {
    Switch(bool),
    Value(String),
}

/// A secret reference as written: exactly one of its keys must be set.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table { file = \"…\" }, { env = \"…\" } or { credential = \"…\" }"
)]
pub(super) struct RawSecret {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
    pub credential: Option<String>,
}

/// Where a secret comes from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SecretSource {
    File(PathBuf),
    Env(String),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl RawSecret {
    /// The one source named.
    pub fn source(&self) -> Result<SecretSource, String> {
        match (&self.file, &self.env, &self.credential) {
            (Some(path), None, None) => Ok(SecretSource::File(path.clone())),
            (None, Some(var), None) => Ok(SecretSource::Env(var.clone())),
            (None, None, Some(name)) => Ok(SecretSource::Credential(name.clone())),
            _ => Err("must set exactly one of file, env or credential".to_owned()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [app.limits] table")]
pub(super) struct RawLimits {
    pub max_body: Option<SizeValue>,
    pub timeout: Option<String>,
}

/// A size as written: a TOML integer (bytes) or a string such as `"64M"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = SizeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size: a number of bytes or a string such as \"64M\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
        Ok(SizeValue::Bytes(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
        let bytes = u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))?;
        Ok(SizeValue::Bytes(bytes))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
        Ok(SizeValue::Text(v.to_owned()))
    }
}

/// Maps the document onto the raw structs, recording every serde failure.
pub(super) fn read(mut table: toml::Table, problems: &mut Problems) -> RawConfig {
    let apps = table.remove("app");
    let top = typed(toml::Value::Table(table), "", problems);
    let apps = match apps {
        Some(toml::Value::Array(items)) if !items.is_empty() => apps_of(items, problems),
        Some(toml::Value::Array(_)) | None => missing(problems, "at least one [[app]] is required"),
        Some(_) => missing(problems, "must be an array of tables, written [[app]]"),
    };
    RawConfig { top, apps }
}

fn missing(problems: &mut Problems, message: &str) -> Vec<(usize, RawApp)> {
    problems.push("app", message);
    Vec::new()
}

fn apps_of(items: Vec<toml::Value>, problems: &mut Problems) -> Vec<(usize, RawApp)> {
    let typed_app = |(i, item)| typed(item, &format!("app[{i}]"), problems).map(|app| (i, app));
    items.into_iter().enumerate().filter_map(typed_app).collect()
}

/// Deserializes `value`, or records the serde error at `prefix` + its key path.
fn typed<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    problems: &mut Problems,
) -> Option<T> {
    serde_path_to_error::deserialize(value)
        .map_err(|err| problems.push(join(prefix, &err.path().to_string()), err.inner().message()))
        .ok()
}

/// `prefix` and a serde path (`.` when empty) as one key path.
fn join(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", ".") => "(top level)".to_owned(),
        ("", path) => path.to_owned(),
        (prefix, ".") => prefix.to_owned(),
        (prefix, path) => format!("{prefix}.{path}"),
    }
}
