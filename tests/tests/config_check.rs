//! `bulkhead check` validates a configuration without starting anything: every class of
//! problem exits 64 and names the offending key as `key.path: message`; a valid config
//! exits 0. `bulkhead run` refuses the same configs with the same status before binding.

use bulkhead_tests::bulkhead::{self, EXIT_CONFIG};
use bulkhead_tests::net::{accepts, free_port, loopback};
use bulkhead_tests::{AppSpec, Bulkhead, CheckOutcome, config_toml};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// A valid two-app world on disk: roots and a secret file exist.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = bulkhead_tests::temp_dir();
        for app in ["alpha", "beta"] {
            std::fs::create_dir_all(dir.path().join(app)).expect("creating a root");
        }
        std::fs::write(dir.path().join("alpha-db"), "not-a-real-password").expect("secret");
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Alpha on a Unix socket with a file secret, beta on TCP: valid as written.
    fn apps(&self) -> [AppSpec; 2] {
        let socket = format!("unix:{}", self.path("php-alpha.sock").display());
        let alpha = AppSpec::new("alpha", &self.path("alpha"), &socket)
            .host("*.alpha.localhost")
            .secret_file("DB_PASSWORD", &self.path("alpha-db"));
        let beta = AppSpec::new("beta", &self.path("beta"), "127.0.0.1:9000");
        [alpha, beta]
    }
}

fn toml(apps: &[AppSpec]) -> String {
    config_toml(&[loopback(free_port())], apps)
}

/// The line of the report that names `key`, after checking the exit status.
fn rejected_line(outcome: &CheckOutcome, key: &str) -> String {
    assert_eq!(outcome.code, Some(EXIT_CONFIG), "{outcome:?}");
    outcome
        .output()
        .lines()
        .find(|line| line.contains(key))
        .unwrap_or_else(|| panic!("no problem reported for `{key}`: {outcome:?}"))
        .to_owned()
}

fn assert_rejected(apps: &[AppSpec], key: &str) -> String {
    rejected_line(&bulkhead::check(&toml(apps)), key)
}

#[test]
fn valid_config_passes() {
    let fixture = Fixture::new();
    let outcome = bulkhead::check(&toml(&fixture.apps()));
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
}

#[test]
fn host_claimed_by_two_apps_is_rejected() {
    let fixture = Fixture::new();
    let [alpha, mut beta] = fixture.apps();
    beta.hosts = vec!["alpha.localhost".to_owned()];
    let line = assert_rejected(&[alpha, beta], "app[1].hosts[0]");
    assert!(line.contains("alpha.localhost"), "{line}");
}

#[test]
fn missing_root_is_rejected() {
    let fixture = Fixture::new();
    let [mut alpha, beta] = fixture.apps();
    alpha.root = fixture.path("no-such-root");
    assert_rejected(&[alpha, beta], "app[0].root");
}

#[test]
fn relative_root_is_rejected() {
    let fixture = Fixture::new();
    let [mut alpha, beta] = fixture.apps();
    alpha.root = Path::new("alpha").to_path_buf();
    assert_rejected(&[alpha, beta], "app[0].root");
}

#[test]
fn missing_secret_file_is_rejected() {
    let fixture = Fixture::new();
    let [alpha, beta] = fixture.apps();
    let alpha = AppSpec { secrets: Vec::new(), ..alpha };
    let alpha = alpha.secret_file("DB_PASSWORD", &fixture.path("no-such-secret"));
    assert_rejected(&[alpha, beta], "app[0].secrets.DB_PASSWORD");
}

#[test]
fn directory_as_secret_file_is_rejected() {
    let fixture = Fixture::new();
    let [alpha, beta] = fixture.apps();
    let alpha = AppSpec { secrets: Vec::new(), ..alpha };
    let alpha = alpha.secret_file("DB_PASSWORD", &fixture.path("beta"));
    assert_rejected(&[alpha, beta], "app[0].secrets.DB_PASSWORD");
}

#[test]
fn unparsable_backend_address_is_rejected() {
    let fixture = Fixture::new();
    let [alpha, mut beta] = fixture.apps();
    beta.fastcgi = "not a backend".to_owned();
    assert_rejected(&[alpha, beta], "app[1].fastcgi");
}

/// Landlock lets a worker connect to its backend's port on every address: with A on
/// 127.0.0.1:P and B on 127.0.0.2:P, A's worker could run code in B's php-fpm.
#[test]
fn tcp_backends_sharing_a_port_at_different_addresses_are_rejected() {
    let fixture = Fixture::new();
    let [mut alpha, beta] = fixture.apps();
    alpha.fastcgi = "127.0.0.2:9000".to_owned();
    let line = assert_rejected(&[alpha, beta], "app[1].fastcgi");
    assert!(
        line.contains("port 9000 is also app[0] (\"alpha\")'s backend at 127.0.0.2:9000"),
        "{line}"
    );
    assert!(line.contains("pins TCP ports, not addresses"), "{line}");
}

#[test]
fn unknown_key_is_rejected() {
    let fixture = Fixture::new();
    let [mut alpha, beta] = fixture.apps();
    alpha.extra_lines.push("colour = \"red\"".to_owned());
    let line = assert_rejected(&[alpha, beta], "app[0]");
    assert!(line.contains("colour"), "the unknown key must be named: {line}");
}

#[test]
fn bad_app_name_is_rejected() {
    let fixture = Fixture::new();
    let [mut alpha, beta] = fixture.apps();
    alpha.name = "Alpha_App".to_owned();
    assert_rejected(&[alpha, beta], "app[0].name");
}

#[test]
fn every_problem_is_reported_at_once() {
    let fixture = Fixture::new();
    let [mut alpha, mut beta] = fixture.apps();
    alpha.root = fixture.path("no-such-root");
    beta.fastcgi = "not a backend".to_owned();
    let outcome = bulkhead::check(&toml(&[alpha, beta]));
    rejected_line(&outcome, "app[0].root");
    rejected_line(&outcome, "app[1].fastcgi");
}

#[test]
fn run_refuses_an_invalid_config_before_binding() {
    let fixture = Fixture::new();
    let [alpha, mut beta] = fixture.apps();
    beta.hosts = vec!["alpha.localhost".to_owned()];
    let addr = loopback(free_port());
    let mut bulkhead = Bulkhead::spawn(&config_toml(&[addr], &[alpha, beta]), &[]);
    let status = bulkhead.wait_exit(Duration::from_secs(10));
    let log = bulkhead.log();
    assert_eq!(status.and_then(|s| s.code()), Some(EXIT_CONFIG), "{log}");
    assert!(log.contains("app[1].hosts[0]"), "{log}");
    assert!(!accepts(addr), "nothing may listen on {addr}");
}

/// A config or secret file open to other users passes with a warning naming the file,
/// who can read it and the fix; a file another user owns is warned of with `chown`.
#[test]
fn files_open_to_other_users_are_warned_of_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::new();
    let config = fixture.path("bulkhead.toml");
    let secret = fixture.path("alpha-db");
    std::fs::write(&config, toml(&fixture.apps())).expect("writing the config");
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let warnings = |outcome: &CheckOutcome| -> Vec<String> {
        assert_eq!(outcome.code, Some(0), "warnings never fail a check: {outcome:?}");
        let lines = outcome.stderr.lines().filter(|l| l.starts_with("warning: "));
        lines.map(str::to_owned).collect()
    };
    let cases = [
        (0o644, 0o644, 2, "other users"),
        (0o600, 0o640, 1, "its group"),
        (0o640, 0o600, 1, "its group"),
        (0o600, 0o600, 0, ""),
    ];
    for (config_mode, secret_mode, count, who) in cases {
        chmod(&config, config_mode);
        chmod(&secret, secret_mode);
        let found = warnings(&bulkhead::check_file(&config));
        assert_eq!(found.len(), count, "config {config_mode:o}, secret {secret_mode:o}: {found:?}");
        for line in &found {
            let path = if line.contains("secrets.DB_PASSWORD") { &secret } else { &config };
            assert!(line.contains(who), "{line}");
            assert!(line.ends_with(&format!("fix: chmod 600 {}", path.display())), "{line}");
        }
    }
    std::os::unix::fs::chown(&secret, Some(54321), None).expect("chown");
    let found = warnings(&bulkhead::check_file(&config));
    assert_eq!(found.len(), 1, "{found:?}");
    let owner = found[0].contains("app[0].secrets.DB_PASSWORD") && found[0].contains("uid 54321");
    assert!(owner && found[0].contains(&format!("fix: chown 0 {}", secret.display())), "{found:?}");
}
