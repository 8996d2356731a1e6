//! Maps a request path to what serves it: a PHP script through FastCGI, or a static file.
//!
//! The raw path is percent-decoded, checked (UTF-8, no control bytes), normalised
//! (`.`/`..` resolved, slashes merged) and split at its first `.php` segment into
//! SCRIPT_NAME and PATH_INFO, the way nginx's `fastcgi_split_path_info` is usually
//! configured, but deterministically. Files are looked up under the app's canonical
//! document root, after the app's mount prefix (`/blog/`) is stripped; SCRIPT_NAME and
//! DOCUMENT_URI keep the prefix, like nginx's `alias` with `$fastcgi_script_name`.
//! A directory requested without its slash is redirected when it has an index file; a
//! directory without one is a 404 (never a listing). The app's [`Rules`] are applied
//! here (deny, internal, rewrites, no-scripts; see `rules` for their precedence).
//!
//! What a miss means is decided carefully, like nginx: a missing `.php` is a 404, never
//! the front controller; a hidden segment (`.env`, `.git/`) that exists is a 404, while a
//! path whose dot segment exists nowhere (`/wiki/.NET_Framework`) is a miss like any
//! other; a path the worker may not read is a 403 ([`PathError::Forbidden`]), never a
//! miss; a symlink that resolves nowhere is a 404. Symlinks may leave the root only
//! towards the app's declared `symlink_targets`, and only for static files. This module
//! must never return a file outside those directories, never hand a PHP file to static
//! serving, and never let a control byte through.

use std::path::{Path, PathBuf};

use http::StatusCode;
use tracing::debug;

use crate::rules::{Rewritten, Rules};

/// Extensions never served as static files, whatever the state of the backend.
const SCRIPT_EXTENSIONS: &[&str] =
    &["php", "phtml", "phar", "phps", "php3", "php4", "php5", "php7", "php8"];

/// The one hidden first segment that may be served (ACME challenges, security.txt).
const WELL_KNOWN: &str = ".well-known";

/// Why a path maps to nothing.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("malformed percent-encoding in the request path")]
    BadEncoding,
    #[error("the decoded request path is not UTF-8")]
    NotUtf8,
    #[error("the decoded request path contains a control byte")]
    ControlByte,
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    #[error("the request path climbs above the document root")]
    AboveRoot,
    #[error("nothing serves {0}")]
    NotFound(String),
    /// A `.php` path without that file: never forwarded, so php-fpm's
    /// `cgi.fix_pathinfo` cannot walk up to another file and run it.
    #[error("no script {0}")]
    NoScript(String),
    #[error("{0} resolves outside the document root")]
    Escapes(String),
    /// The worker may not read this file or directory: a 403, and a warning.
    #[error("permission denied on {}", .0.display())]
    Forbidden(PathBuf),
    /// A rule refused the path.
    #[error("{path} is refused by a rule ({status})")]
    Denied { path: String, status: StatusCode },
    /// A symlink that leads nowhere (dangling, a loop).
    #[error("{0} is a symlink that does not resolve")]
    BrokenSymlink(String),
}

/// What serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A PHP script run by the app's FastCGI backend.
    Script(Script),
    /// An existing regular file under the root, never a script.
    Static(PathBuf),
    /// A permanent redirect to this path (percent-encoded, prefix included): a
    /// directory requested without its trailing slash.
    Redirect(String),
}

impl Target {
    /// The target with the app's mount point (`/blog`, or empty) before its URL paths.
    fn rebased(self, base: &str) -> Self {
        match self {
            Self::Script(s) => Self::Script(Script {
                name: format!("{base}{}", s.name),
                document_uri: format!("{base}{}", s.document_uri),
                ..s
            }),
            Self::Redirect(to) => Self::Redirect(format!("{base}{to}")),
            other => other,
        }
    }
}

/// A script and the CGI path variables that describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The file php-fpm runs: canonical, and known to exist when it was mapped.
    pub filename: PathBuf,
    /// SCRIPT_NAME: the decoded, normalised path up to and including the script.
    pub name: String,
    /// PATH_INFO: what followed the script in the path, empty or starting with `/`.
    pub path_info: String,
    /// DOCUMENT_URI: the normalised path that was finally served.
    pub document_uri: String,
    /// QUERY_STRING after a rewrite; `None`: the client's, unchanged.
    pub query: Option<String>,
}

/// An app's document root and the rules for finding files in it.
#[derive(Debug, Clone)]
pub struct Root {
    /// Canonical (symlink-free) absolute path; every served file must be under it.
    dir: PathBuf,
    index: Vec<String>,
    front_controller: Option<String>,
    /// Where the app is mounted: `/`, or `/blog/`.
    prefix: String,
    /// Canonical directories outside `dir` that symlinks may lead to (static files only).
    symlink_targets: Vec<PathBuf>,
    rules: Rules,
}

/// What to do when nothing under the root answers a path.
#[derive(Clone, Copy)]
enum Miss<'q> {
    /// A 404.
    NotFound,
    /// The front controller, if any.
    Front,
    /// A fallback rewrite (with the client's query), else the front controller.
    Rewrite(Option<&'q str>),
}

impl Root {
    /// `dir` must already be canonical (see [`std::fs::canonicalize`]).
    pub fn new(dir: PathBuf, index: Vec<String>, front_controller: Option<String>) -> Self {
        Self {
            dir,
            index,
            front_controller,
            prefix: "/".to_owned(),
            symlink_targets: Vec::new(),
            rules: Rules::default(),
        }
    }

    /// The same root with rules and symlink targets (canonical directories).
    pub fn with_rules(mut self, rules: Rules, symlink_targets: Vec<PathBuf>) -> Self {
        self.rules = rules;
        self.symlink_targets = symlink_targets;
        self
    }

    /// The app's rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The path rules match for a raw request path: decoded, normalised, below the
    /// mount prefix; `None` when the path maps to nothing.
    pub fn rule_path(&self, raw_path: &str) -> Option<String> {
        let full = normalize(&decode(raw_path).ok()?).ok()?;
        let uri = full.strip_prefix(self.base())?;
        uri.starts_with('/').then(|| uri.to_owned())
    }

    /// The same root, mounted under `prefix` (`/` or `/segment/…/`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let valid = prefix.starts_with('/') && prefix.ends_with('/');
        self.prefix = if valid { prefix.to_owned() } else { "/".to_owned() };
        self
    }

    /// The prefix without its final slash: empty for an app mounted at `/`.
    fn base(&self) -> &str {
        &self.prefix[..self.prefix.len() - 1]
    }

    /// The canonical document root.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Maps the raw (still percent-encoded) path of a request without a query.
    pub fn resolve(&self, raw_path: &str) -> Result<Target, PathError> {
        self.resolve_request(raw_path, None)
    }

    /// Maps the raw (still percent-encoded) path and query of a request, rules applied.
    pub fn resolve_request(
        &self,
        raw_path: &str,
        query: Option<&str>,
    ) -> Result<Target, PathError> {
        let full = normalize(&decode(raw_path)?)?;
        if full == self.base() && !full.is_empty() {
            return Ok(Target::Redirect(encode_path(&self.prefix)));
        }
        let uri = match full.strip_prefix(self.base()) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => return Err(PathError::NotFound(full)),
        };
        self.refuse_hidden(uri)?;
        self.refuse_denied(uri)?;
        if self.rules.is_internal(uri) {
            return Err(PathError::NotFound(full));
        }
        let target = match self.rules.rewrite(uri, query, false) {
            Some(rewritten) => self.rewritten(rewritten)?,
            None => self.resolve_uri(uri, Miss::Rewrite(query))?,
        };
        self.refuse_scripts(&target)?;
        Ok(target.rebased(self.base()))
    }

    /// A rewritten path: checked again (hidden, deny), then mapped, rewritten no more.
    fn rewritten(&self, rewritten: Rewritten) -> Result<Target, PathError> {
        let uri = normalize(&rewritten.path)?;
        self.refuse_hidden(&uri)?;
        self.refuse_denied(&uri)?;
        match self.resolve_uri(&uri, Miss::Front)? {
            Target::Script(script) => {
                Ok(Target::Script(Script { query: rewritten.query, ..script }))
            }
            other => Ok(other),
        }
    }

    fn refuse_denied(&self, uri: &str) -> Result<(), PathError> {
        match self.rules.denied(uri) {
            Some(status) => Err(PathError::Denied { path: uri.to_owned(), status }),
            None => Ok(()),
        }
    }

    /// The script finally chosen is held to `no_scripts` and to `deny` by its own name:
    /// a deny written for `*.php` must not be passed by PATH_INFO (`/x/evil.php/anything`).
    fn refuse_scripts(&self, target: &Target) -> Result<(), PathError> {
        let Target::Script(script) = target else { return Ok(()) };
        self.refuse_denied(&script.name)?;
        match self.rules.no_scripts(&script.name) {
            Some(status) => Err(PathError::Denied { path: script.name.clone(), status }),
            None => Ok(()),
        }
    }

    /// A hidden segment (`.env`, `.git/…`) that exists is a 404; one that exists
    /// nowhere (`/wiki/.NET_Framework`) is just a missing path.
    fn refuse_hidden(&self, uri: &str) -> Result<(), PathError> {
        if !is_hidden(uri) {
            return Ok(());
        }
        let mut path = self.dir.clone();
        for (i, segment) in uri.split('/').filter(|s| !s.is_empty()).enumerate() {
            path.push(segment);
            let hidden = segment.starts_with('.') && !(i == 0 && segment == WELL_KNOWN);
            match std::fs::symlink_metadata(&path) {
                Ok(_) if hidden => return Err(PathError::NotFound(uri.to_owned())),
                Ok(_) => {}
                Err(err) if is_missing(&err) => return Ok(()),
                Err(_) => return Err(PathError::NotFound(uri.to_owned())),
            }
        }
        Ok(())
    }

    /// The static file an `X-Accel-Redirect` from the app names: a path under the
    /// document root (not under the mount prefix), query ignored. Never a script, a
    /// hidden file or a directory.
    pub fn internal(&self, raw: &str) -> Result<PathBuf, PathError> {
        let path = raw.split('?').next().unwrap_or_default();
        let uri = normalize(&decode(path)?)?;
        if is_hidden(&uri) {
            return Err(PathError::NotFound(uri));
        }
        self.refuse_denied(&uri)?;
        match self.lookup(&uri)? {
            Some(file) => match static_target(file, &uri)? {
                Target::Static(file) => Ok(file),
                _ => Err(PathError::NotFound(uri)),
            },
            None => Err(PathError::NotFound(uri)),
        }
    }

    fn resolve_uri(&self, uri: &str, miss: Miss<'_>) -> Result<Target, PathError> {
        if let Some((name, info)) = split_php(uri) {
            // nginx's `location ~ \.php$ { try_files $uri =404; }`: never the front controller.
            return match self.lookup(name)? {
                Some(file) => self.script(file, name, info, uri),
                None => Err(PathError::NoScript(name.to_owned())),
            };
        }
        if uri.ends_with('/') {
            if let Some(target) = self.index(uri)? {
                return Ok(target);
            }
        } else if let Some(file) = self.lookup(uri)? {
            return static_target(file, uri);
        } else if !matches!(miss, Miss::NotFound) && self.is_indexed_dir(uri)? {
            return Ok(Target::Redirect(encode_path(&format!("{uri}/"))));
        }
        match miss {
            Miss::NotFound => Err(PathError::NotFound(uri.to_owned())),
            Miss::Front => self.front(uri),
            Miss::Rewrite(query) => match self.rules.rewrite(uri, query, true) {
                Some(rewritten) => self.rewritten(rewritten),
                None => self.front(uri),
            },
        }
    }

    /// A script target; a script the worker may not read is a 403 here, not php-fpm's 404.
    fn script(
        &self,
        file: PathBuf,
        name: &str,
        info: &str,
        uri: &str,
    ) -> Result<Target, PathError> {
        if !file.starts_with(&self.dir) {
            return Err(PathError::Escapes(name.to_owned()));
        }
        match std::fs::File::open(&file) {
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(PathError::Forbidden(file))
            }
            _ => Ok(script(file, name, info, uri)),
        }
    }

    fn index(&self, dir_uri: &str) -> Result<Option<Target>, PathError> {
        for name in &self.index {
            let uri = format!("{dir_uri}{name}");
            if self.lookup(&uri)?.is_some() {
                return self.resolve_uri(&uri, Miss::NotFound).map(Some);
            }
        }
        Ok(None)
    }

    fn front(&self, uri: &str) -> Result<Target, PathError> {
        match &self.front_controller {
            Some(front) => self.resolve_uri(front, Miss::NotFound),
            None => Err(PathError::NotFound(uri.to_owned())),
        }
    }

    /// Whether `uri` is a directory under the root with one of the index files.
    fn is_indexed_dir(&self, uri: &str) -> Result<bool, PathError> {
        for name in &self.index {
            if self.lookup(&format!("{uri}/{name}"))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The canonical regular file at `uri`, `None` if there is none, an error if
    /// it resolves (through a symlink) outside the root.
    fn lookup(&self, uri: &str) -> Result<Option<PathBuf>, PathError> {
        let joined = self.join(uri);
        match self.plain_file(uri) {
            Plain::File => return Ok(Some(joined)),
            Plain::Missing => return Ok(None),
            Plain::Denied(path) => return Err(PathError::Forbidden(path)),
            Plain::Symlink(link) => self.refuse_escaping_link(uri, &link)?,
        }
        // A symlink on the way: only resolving every component says where it leads.
        match std::fs::metadata(&joined) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(PathError::Forbidden(joined));
            }
            Err(err) => return self.unresolved(uri, &joined, &err),
        }
        let real = match std::fs::canonicalize(&joined) {
            Ok(real) => real,
            Err(err) => return self.unresolved(uri, &joined, &err),
        };
        let allowed = |dir: &PathBuf| real.starts_with(dir);
        if !allowed(&self.dir) && !self.symlink_targets.iter().any(allowed) {
            return Err(PathError::Escapes(uri.to_owned()));
        }
        Ok(Some(real))
    }

    /// A symlink whose own target lies outside the root and the declared targets is an
    /// escape even when (as inside the worker's sandbox) nothing is visible there.
    fn refuse_escaping_link(&self, uri: &str, link: &Path) -> Result<(), PathError> {
        let Ok(target) = std::fs::read_link(link) else { return Ok(()) };
        let parent = link.parent().unwrap_or(&self.dir);
        let target = lexical(&parent.join(target));
        let inside = |dir: &PathBuf| target.starts_with(dir);
        match inside(&self.dir) || self.symlink_targets.iter().any(inside) {
            true => Ok(()),
            false => Err(PathError::Escapes(uri.to_owned())),
        }
    }

    /// A path with a symlink on the way that does not lead to a file: a miss, unless
    /// the last component is itself a symlink that resolves nowhere (a 404, logged).
    fn unresolved(
        &self,
        uri: &str,
        joined: &Path,
        err: &std::io::Error,
    ) -> Result<Option<PathBuf>, PathError> {
        let last_is_link = std::fs::symlink_metadata(joined).is_ok_and(|m| m.is_symlink());
        if !last_is_link && is_missing(err) {
            return Ok(None);
        }
        debug!(path = %joined.display(), cause = %err, "symlink does not resolve");
        Err(PathError::BrokenSymlink(uri.to_owned()))
    }

    /// Walks `uri` (normalised: no `.`, `..` or empty segment) below the canonical
    /// root with one `lstat` per component. Without a symlink on the way, the joined
    /// path is already canonical, so the common case costs as many syscalls as the
    /// path has components below the root, not one per component from `/`.
    fn plain_file(&self, uri: &str) -> Plain {
        let mut path = self.dir.clone();
        let mut segments = uri.split('/').filter(|s| !s.is_empty()).peekable();
        while let Some(segment) = segments.next() {
            if segment == "." || segment == ".." {
                return Plain::Symlink(path);
            }
            path.push(segment);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                    path.pop();
                    return Plain::Denied(path);
                }
                Err(_) => return Plain::Missing,
            };
            let kind = meta.file_type();
            let last = segments.peek().is_none();
            if kind.is_symlink() {
                return Plain::Symlink(path);
            } else if last && kind.is_file() {
                return Plain::File;
            } else if last || !kind.is_dir() {
                return Plain::Missing;
            }
        }
        Plain::Missing
    }

    fn join(&self, uri: &str) -> PathBuf {
        self.dir.join(uri.trim_start_matches('/'))
    }
}

/// What [`Root::plain_file`] found.
enum Plain {
    /// A regular file, reached through directories only.
    File,
    /// Nothing, or not a regular file.
    Missing,
    /// A directory on the way the worker may not search.
    Denied(PathBuf),
    /// A symlink (or a `..` from configuration) on the way, at this path: only full
    /// resolution can tell.
    Symlink(PathBuf),
}

/// `path` with `.` and `..` resolved by name (no file system access).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Not found, or a file where a directory was expected.
fn is_missing(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(err.kind(), K::NotFound | K::NotADirectory)
}

fn script(filename: PathBuf, name: &str, info: &str, uri: &str) -> Target {
    Target::Script(Script {
        filename,
        name: name.to_owned(),
        path_info: info.to_owned(),
        document_uri: uri.to_owned(),
        query: None,
    })
}

fn static_target(file: PathBuf, uri: &str) -> Result<Target, PathError> {
    match is_script_file(&file) {
        true => Err(PathError::NotFound(uri.to_owned())),
        false => Ok(Target::Static(file)),
    }
}

/// Whether a file has an extension that must never be served as static.
pub fn is_script_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    SCRIPT_EXTENSIONS.iter().any(|s| s.eq_ignore_ascii_case(ext))
}

/// Percent-decodes `raw`; the result must be UTF-8 without control bytes.
pub fn decode(raw: &str) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(hex).ok_or(PathError::BadEncoding)?;
        let lo = bytes.next().and_then(hex).ok_or(PathError::BadEncoding)?;
        out.push(hi << 4 | lo);
    }
    if out.iter().any(|b| b.is_ascii_control()) {
        return Err(PathError::ControlByte);
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Percent-encodes a decoded path for a `Location` header; `/` and the characters
/// RFC 3986 allows in a path segment stay as they are.
pub fn encode_path(path: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b);
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match keep(b) {
            true => out.push(char::from(b)),
            false => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Resolves `.` and `..` and merges slashes; a trailing slash is kept.
pub fn normalize(path: &str) -> Result<String, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut dir = path.ends_with('/');
    for seg in rest.split('/') {
        dir = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if dir && !out.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// Splits a normalised path after its first segment ending in `.php` (ASCII,
/// case-insensitive): `(SCRIPT_NAME, PATH_INFO)`.
pub fn split_php(uri: &str) -> Option<(&str, &str)> {
    let mut end = 0;
    for seg in uri.split('/') {
        end += seg.len();
        let is_php = seg.len() > 4
            && seg.is_char_boundary(seg.len() - 4)
            && seg[seg.len() - 4..].eq_ignore_ascii_case(".php");
        if is_php {
            return Some(uri.split_at(end));
        }
        end += 1;
    }
    None
}

/// Whether any segment is hidden (starts with `.`), `/.well-known/` excepted.
fn is_hidden(uri: &str) -> bool {
    let mut segments = uri.split('/').filter(|s| !s.is_empty());
    match segments.next() {
        Some(first) if first.starts_with('.') && first != WELL_KNOWN => true,
        _ => segments.any(|s| s.starts_with('.')),
    }
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
