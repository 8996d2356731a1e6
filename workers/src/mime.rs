//! Content types of static files, by extension (case-insensitive).
//!
//! The app's own `types` come first, then `mime_guess`'s table (kept from the same
//! sources as Apache's and nginx's `mime.types`), then `application/octet-stream`,
//! which browsers download rather than render. A charset is added only when the app
//! sets `charset`, and only to nginx's default `charset_types`: the worker cannot
//! know a file's encoding, and a wrong label breaks a Latin-1 page that declares its
//! own. This module must never guess from file contents.

use std::collections::HashMap;
use std::path::Path;

use http::HeaderValue;
use privsep::msg::ResponseSpec;

/// What a file without a known extension is served as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// The media types `charset` applies to: nginx's default `charset_types` (text/html
/// is always among them there).
const CHARSET_TYPES: &[&str] = &[
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

/// An app's content-type table: its overrides, its charset, then the built-in table.
#[derive(Debug, Default)]
pub struct Types {
    /// Lowercase extension (without the dot) to Content-Type.
    overrides: HashMap<String, HeaderValue>,
    charset: Option<String>,
}

impl Types {
    /// From the broker's checked spec; a value that is not a header value is dropped
    /// (the broker refuses those, so none is).
    pub fn new(spec: &ResponseSpec) -> Self {
        let overrides = spec
            .types
            .iter()
            .filter_map(|(ext, ty)| {
                Some((ext.to_ascii_lowercase(), HeaderValue::try_from(ty).ok()?))
            })
            .collect();
        Self { overrides, charset: spec.charset.clone() }
    }

    /// The Content-Type for a file name's extension.
    pub fn content_type(&self, path: &Path) -> HeaderValue {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if let Some(ty) = self.overrides.get(&ext) {
            return ty.clone();
        }
        let media = if ext.is_empty() { None } else { mime_guess::from_ext(&ext).first_raw() };
        let media = media.unwrap_or(DEFAULT_TYPE);
        match &self.charset {
            Some(charset) if CHARSET_TYPES.contains(&media) => {
                HeaderValue::try_from(format!("{media}; charset={charset}"))
                    .unwrap_or_else(|_| HeaderValue::from_static(media))
            }
            _ => HeaderValue::from_static(media),
        }
    }
}

#[cfg(test)]
#[path = "mime_tests.rs"]
mod tests;
