//! Checks an app's response options, `types`, `charset` and `compress`, into the
//! [`ResponseSpec`] its workers get.
//!
//! `types` keys are `.ext` (one extension, as a file name ends) and values a media type
//! `type/subtype` with optional parameters, so the worker can send them as they are.
//! This module must never pass on a value that is not a valid header value.

use privsep::msg::{CompressSpec, ResponseSpec};

use super::Problems;
use super::raw::{RawApp, RawCompress};

/// The app's response options, or `None` after recording what is wrong.
pub(super) fn check(at: &str, raw: &RawApp, p: &mut Problems) -> Option<ResponseSpec> {
    let mut ok = true;
    let mut types = Vec::new();
    for (ext, media) in &raw.types {
        match extension(ext).and_then(|ext| media_type(media).map(|()| ext)) {
            Ok(ext) => types.push((ext, media.clone())),
            Err(message) => {
                p.push(format!("{at}.types.{ext}"), message);
                ok = false;
            }
        }
    }
    let charset = match raw.charset.as_deref() {
        None => None,
        Some(name) if is_charset(name) => Some(name.to_owned()),
        Some(_) => {
            p.push(format!("{at}.charset"), "a charset name such as \"utf-8\" or \"iso-8859-1\"");
            ok = false;
            None
        }
    };
    let compress = match raw.compress {
        None | Some(RawCompress::Switch(true)) => CompressSpec::default(),
        Some(RawCompress::Switch(false)) => CompressSpec::off(),
        Some(RawCompress::Table(table)) => {
            let default = CompressSpec::default();
            CompressSpec {
                gzip: table.gzip.unwrap_or(default.gzip),
                brotli: table.brotli.unwrap_or(default.brotli),
                min_length: table.min_length.unwrap_or(default.min_length),
            }
        }
    };
    ok.then_some(ResponseSpec { types, charset, compress })
}

/// `.ext` to `ext`, lowercase: one extension, as `Path::extension` sees it.
fn extension(key: &str) -> Result<String, String> {
    let ext = key.strip_prefix('.').ok_or("an extension starts with a dot, like \".docx\"")?;
    let fine = |b: u8| b.is_ascii_alphanumeric() || b"-_+~".contains(&b);
    if ext.is_empty() || ext.len() > 32 || !ext.bytes().all(fine) {
        return Err("one extension of letters, digits, - _ + or ~, like \".docx\"".into());
    }
    Ok(ext.to_ascii_lowercase())
}

/// `type/subtype` with optional `; name=value` parameters, all visible ASCII.
fn media_type(text: &str) -> Result<(), String> {
    let wrong = || format!("{text:?} is not a media type like \"text/markdown; charset=utf-8\"");
    let (essence, params) = text.split_once(';').unwrap_or((text, ""));
    let (kind, sub) = essence.trim().split_once('/').ok_or_else(wrong)?;
    let token = |t: &str| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !token(sub) || !params.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(wrong());
    }
    Ok(())
}

fn is_charset(name: &str) -> bool {
    let fine = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    !name.is_empty() && name.len() <= 40 && name.bytes().all(fine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_media_types_are_checked() {
        assert_eq!(extension(".DocX"), Ok("docx".into()));
        for bad in ["docx", ".", ".tar.gz", ".a b", ".é"] {
            assert!(extension(bad).is_err(), "{bad:?}");
        }
        for good in ["text/markdown", "text/markdown; charset=utf-8", "application/vnd.ms-excel"] {
            assert!(media_type(good).is_ok(), "{good:?}");
        }
        for bad in ["text", "/x", "text/", "text/a b", "text/x; a=\n", "a/b/c"] {
            assert!(media_type(bad).is_err(), "{bad:?}");
        }
        assert!(is_charset("utf-8") && is_charset("iso-8859-1"));
        assert!(!is_charset("") && !is_charset("utf 8") && !is_charset("x\"y"));
    }
}
