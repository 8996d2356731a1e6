use super::*;

fn types(overrides: &[(&str, &str)], charset: Option<&str>) -> Types {
    let spec = ResponseSpec {
        types: overrides.iter().map(|(e, t)| ((*e).to_owned(), (*t).to_owned())).collect(),
        charset: charset.map(str::to_owned),
        ..ResponseSpec::default()
    };
    Types::new(&spec)
}

fn ty(types: &Types, name: &str) -> String {
    types.content_type(Path::new(name)).to_str().expect("ASCII").to_owned()
}

/// Where `mime_guess`'s table and Debian's nginx `mime.types` disagree: (extension,
/// nginx's type, ours). An app that needs nginx's type sets it in `types`.
const DIFFERS_FROM_NGINX: &[(&str, &str, &str)] = &[
    // RFC 9239 made text/javascript the type; nginx 1.22's table predates it.
    ("js", "application/javascript", "text/javascript"),
    // image/bmp is the IANA-registered type.
    ("bmp", "image/x-ms-bmp", "image/bmp"),
    // font/woff (RFC 8081) is nginx's; the older name still loads in every browser.
    ("woff", "font/woff", "application/font-woff"),
    // Both are accepted by HLS players; nginx's is Apple's registered one.
    ("m3u8", "application/vnd.apple.mpegurl", "audio/x-mpegurl"),
    // Palm and Mobipocket formats: no browser renders either.
    ("prc", "application/x-pilot", "application/x-mobipocket-ebook"),
    ("pdb", "application/x-pilot", "application/vnd.palm"),
    // Downloads either way; mime_guess follows the RealPlayer plugin convention.
    ("rpm", "application/x-redhat-package-manager", "audio/x-pn-realaudio-plugin"),
    ("sea", "application/x-sea", "application/octet-stream"),
    ("dll", "application/octet-stream", "application/x-msdownload"),
    // Media that browsers sniff: audio/midi and audio/mp4 are the registered forms.
    ("mid", "audio/midi", "audio/mid"),
    ("midi", "audio/midi", "audio/mid"),
    ("m4a", "audio/x-m4a", "audio/m4a"),
    ("ra", "audio/x-realaudio", "audio/x-pn-realaudio"),
    // MPEG transport streams: players fetch segments by script and ignore the type.
    ("ts", "video/mp2t", "video/vnd.dlna.mpeg-tts"),
];

/// `(extension, type)` for every extension nginx's `mime.types` lists.
fn nginx_types() -> Vec<(String, String)> {
    let path = "/etc/nginx/mime.types";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; install Debian's nginx (apt-get install nginx)"));
    let body = text.split_once('{').expect("a types block").1;
    let mut out = Vec::new();
    for entry in body.split(';') {
        let mut words = entry.split_whitespace().filter(|w| !w.starts_with('#'));
        let Some(media) = words.next().filter(|m| m.contains('/')) else { continue };
        out.extend(words.map(|ext| (ext.to_owned(), media.to_owned())));
    }
    out
}

#[test]
fn every_extension_in_nginx_mime_types_gets_nginx_type() {
    let table = types(&[], None);
    let listed = nginx_types();
    assert!(listed.len() > 100, "read only {} extensions", listed.len());
    let mut differ = Vec::new();
    for (ext, nginx) in &listed {
        let ours = ty(&table, &format!("a.{ext}"));
        if &ours != nginx {
            differ.push((ext.clone(), nginx.clone(), ours));
        }
    }
    let known: Vec<_> = DIFFERS_FROM_NGINX
        .iter()
        .map(|(e, n, o)| ((*e).to_owned(), (*n).to_owned(), (*o).to_owned()))
        .collect();
    assert_eq!(differ, known, "{} of {} extensions differ", differ.len(), listed.len());
}

#[test]
fn overrides_come_first_and_charset_only_when_asked() {
    let plain = types(&[], None);
    assert_eq!(ty(&plain, "latin1.html"), "text/html");
    assert_eq!(ty(&plain, "a.TXT"), "text/plain");
    assert_eq!(ty(&plain, "a"), DEFAULT_TYPE);
    assert_eq!(ty(&plain, "a.unknown-ext"), DEFAULT_TYPE);
    let utf8 = types(
        &[("md", "text/markdown; charset=utf-8"), ("docx", "application/x-ours")],
        Some("utf-8"),
    );
    assert_eq!(ty(&utf8, "a.html"), "text/html; charset=utf-8");
    assert_eq!(ty(&utf8, "a.txt"), "text/plain; charset=utf-8");
    assert_eq!(ty(&utf8, "a.css"), "text/css", "not in nginx's charset_types");
    assert_eq!(ty(&utf8, "a.png"), "image/png");
    assert_eq!(ty(&utf8, "a.MD"), "text/markdown; charset=utf-8");
    assert_eq!(ty(&utf8, "report.docx"), "application/x-ours");
}
