//! Writes small PHP applications into document roots, and computes in Rust what they are
//! expected to print, so tests compare against an independent twin rather than trusting
//! either side alone.
//!
//! Scripts never echo raw client input.

use std::path::Path;

/// Number of lines in [`MIB_RESPONSE`]; each line is 16 bytes, so the body is 1 MiB.
pub const MIB_LINES: usize = 65_536;

/// Prints `app=NAME n=N` where `N` is the `n` query parameter as an integer.
pub fn hello(app: &str) -> String {
    format!(
        "<?php\nheader('Content-Type: text/plain');\necho {}, (int) ($_GET['n'] ?? -1);\n",
        php_string(&format!("app={app} n="))
    )
}

/// What [`hello`] prints for `n`.
pub fn hello_body(app: &str, n: i64) -> String {
    format!("app={app} n={n}")
}

/// Prints JSON `{"app", "secret", "foreign_seen"}`: the value of `$_SERVER[KEY]` (or
/// null), and for each foreign string whether it appears anywhere PHP can look: `$_SERVER`,
/// `getenv()`, `$_ENV`.
pub fn secret_probe(app: &str, key: &str, foreign: &[&str]) -> String {
    let foreign: Vec<String> = foreign.iter().map(|s| php_string(s)).collect();
    format!(
        "<?php\n\
         header('Content-Type: application/json');\n\
         $seen = print_r($_SERVER, true) . print_r(getenv(), true) . print_r($_ENV, true);\n\
         $foreign = [{foreign}];\n\
         echo json_encode([\n\
         \x20   'app' => {app},\n\
         \x20   'secret' => $_SERVER[{key}] ?? null,\n\
         \x20   'foreign_seen' => array_map(fn ($s) => strpos($seen, $s) !== false, $foreign),\n\
         ]);\n",
        foreign = foreign.join(", "),
        app = php_string(app),
        key = php_string(key),
    )
}

/// Prints `LENGTH SHA256` of the request body.
pub const BODY_SHA256: &str = "<?php
header('Content-Type: text/plain');
$body = file_get_contents('php://input');
echo strlen($body), ' ', hash('sha256', $body);
";

/// Prints exactly 1 MiB: the numbers 0‥65535, zero-padded to 15 digits, one per line.
pub const MIB_RESPONSE: &str = "<?php
header('Content-Type: application/octet-stream');
$out = '';
for ($i = 0; $i < 65536; $i++) {
    $out .= sprintf(\"%015d\\n\", $i);
}
echo $out;
";

/// The bytes [`MIB_RESPONSE`] prints.
pub fn mib_response_bytes() -> Vec<u8> {
    (0..MIB_LINES).flat_map(|i| format!("{i:015}\n").into_bytes()).collect()
}

/// Deterministic, non-repeating-looking bytes for request bodies.
pub fn pattern_bytes(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Writes `contents` to `root/relative`, creating directories as needed.
pub fn write_file(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating a document-root directory");
    }
    std::fs::write(&path, contents)
        .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// A single-quoted PHP string literal.
pub fn php_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_response_is_one_mebibyte() {
        assert_eq!(mib_response_bytes().len(), 1 << 20);
    }

    #[test]
    fn php_strings_escape_quotes_and_backslashes() {
        assert_eq!(php_string(r"it's a \ test"), r"'it\'s a \\ test'");
    }
}
