//! App secrets: checks their param names and reads their values from a file,
//! an environment variable or a systemd credential.
//!
//! Values go straight into a [`Secret`]; messages name where a value should
//! have come from, never the value itself.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use privsep::secret::Secret;

use super::EnvLookup;
use super::paths::{absolute, cannot_read};
use super::raw::SecretSource;

/// The largest secret read from a file, in bytes. Secrets are passwords and
/// tokens; a larger file is a mistake (or `/dev/zero`), not a secret.
pub(super) const MAX_SECRET_BYTES: u64 = 16 * 1024;

/// Where systemd puts an ExecStart's credentials (`LoadCredential=`).
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Params that the worker or PHP itself sets; a secret must not replace them.
const RESERVED_PARAMS: &[&str] = &[
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "GATEWAY_INTERFACE",
    "HTTPS",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "PHP_ADMIN_VALUE",
    "PHP_AUTH_DIGEST",
    "PHP_AUTH_PW",
    "PHP_AUTH_USER",
    "PHP_SELF",
    "PHP_VALUE",
    "QUERY_STRING",
    "REDIRECT_STATUS",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_PORT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "SCRIPT_NAME",
    "SERVER_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
];

/// `[A-Z][A-Z0-9_]*`, not `HTTP_*` (request headers) and not a CGI/PHP param.
pub(super) fn param_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase());
    if !first_ok || !bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return Err(format!("{name:?} must match [A-Z][A-Z0-9_]*"));
    }
    if name.starts_with("HTTP_") {
        return Err(format!(
            "{name:?} must not start with HTTP_ (those params carry request headers)"
        ));
    }
    if RESERVED_PARAMS.contains(&name) {
        return Err(format!("{name:?} is a param the gateway or PHP sets itself"));
    }
    Ok(())
}

/// Reads the secret's value from its source.
pub(super) fn resolve(source: &SecretSource, env: EnvLookup<'_>) -> Result<Secret, String> {
    match source {
        SecretSource::File(path) => read_file(path),
        SecretSource::Env(var) => from_env(var, env),
        SecretSource::Credential(name) => credential(name, env),
    }
}

/// A file's contents, minus one trailing newline (as `echo > file` leaves).
fn read_file(path: &Path) -> Result<Secret, String> {
    absolute(path)?;
    let meta = fs::metadata(path).map_err(|err| cannot_read(path, &err))?;
    if !meta.is_file() {
        return Err(format!("cannot read {path:?}: not a regular file"));
    }
    let mut value = String::new();
    let file = File::open(path).map_err(|err| cannot_read(path, &err))?;
    let read = file.take(MAX_SECRET_BYTES + 1).read_to_string(&mut value);
    let secret = Secret::new(value);
    read.map_err(|err| cannot_read(path, &err))?;
    if secret.expose().len() as u64 > MAX_SECRET_BYTES {
        return Err(format!("{path:?} is larger than {MAX_SECRET_BYTES} bytes"));
    }
    Ok(trim_newline(secret))
}

/// Drops one trailing `\n` or `\r\n`, keeping the value in zeroed-on-drop storage.
fn trim_newline(secret: Secret) -> Secret {
    let value = secret.expose();
    let trimmed = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v));
    match trimmed {
        Some(v) => Secret::new(v.to_owned()),
        None => secret,
    }
}

fn from_env(var: &str, env: EnvLookup<'_>) -> Result<Secret, String> {
    let value = env(var).ok_or_else(|| format!("environment variable {var:?} is not set"))?;
    let value =
        value.into_string().map_err(|_| format!("environment variable {var:?} is not UTF-8"))?;
    Ok(Secret::new(value))
}

/// `$CREDENTIALS_DIRECTORY/name`, as systemd's `LoadCredential=` provides.
fn credential(name: &str, env: EnvLookup<'_>) -> Result<Secret, String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!("credential {name:?} must be a plain file name"));
    }
    let dir = env(CREDENTIALS_DIRECTORY).ok_or_else(|| {
        format!("credential {name:?}: ${CREDENTIALS_DIRECTORY} is not set (run under systemd)")
    })?;
    read_file(&Path::new(&dir).join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_names_are_upper_case_and_not_reserved() {
        assert!(param_name("DB_PASSWORD").is_ok());
        assert!(param_name("APP_KEY2").is_ok());
        for bad in [
            "db_password",
            "1KEY",
            "",
            "A-B",
            "HTTP_HOST",
            "SCRIPT_FILENAME",
            "PHP_VALUE",
            "PHP_ADMIN_VALUE",
        ] {
            assert!(param_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn exactly_one_trailing_newline_is_trimmed() {
        let trim = |s: &str| trim_newline(Secret::new(s.into())).expose().to_owned();
        assert_eq!(trim("pw\n"), "pw");
        assert_eq!(trim("pw\r\n"), "pw");
        assert_eq!(trim("pw\n\n"), "pw\n");
        assert_eq!(trim("pw"), "pw");
        assert_eq!(trim(" pw "), " pw ");
    }

    #[test]
    fn oversized_and_special_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; MAX_SECRET_BYTES as usize + 1]).expect("write");
        assert!(read_file(&big).expect_err("must be refused").contains("larger than"));
        assert!(
            read_file(Path::new("/dev/zero"))
                .expect_err("must be refused")
                .contains("not a regular file")
        );
        assert!(
            read_file(Path::new("relative/secret"))
                .expect_err("must be refused")
                .contains("absolute")
        );
    }

    #[test]
    fn credentials_come_from_the_credentials_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("db"), "pw\n").expect("write");
        let dir_os = dir.path().as_os_str().to_owned();
        let env = move |name: &str| (name == CREDENTIALS_DIRECTORY).then(|| dir_os.clone());
        let secret = credential("db", &env).expect("credential reads");
        assert_eq!(secret.expose(), "pw");
        assert!(credential("../db", &env).is_err());
        assert!(
            credential("db", &|_| None)
                .expect_err("must be refused")
                .contains("CREDENTIALS_DIRECTORY")
        );
    }
}
