//! No secret reaches a log, at any level: a whole run at `RUST_LOG=trace` (broker,
//! gateway, keyholder-less workers, requests that use the secrets, a reload that reads
//! them again, a shutdown) is captured, and every line of it is searched for every
//! secret, raw, hex-encoded and as a Rust byte list.
//!
//! The run must have logged the params it sent (redacted), so the test cannot pass by
//! logging nothing.

use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions, php, sha256_hex, unique_token};

const KEY: &str = "DB_PASSWORD";
const TOKEN_KEY: &str = "API_TOKEN";
const BETA_VAR: &str = "BULKHEAD_TEST_LOG_BETA_DB_PASSWORD";

/// Prints the SHA-256 of `$_SERVER[KEY]`: the script uses the secret without echoing it.
fn hash_probe(key: &str) -> String {
    format!(
        "<?php\nheader('Content-Type: text/plain');\necho hash('sha256', $_SERVER[{}] ?? '');\n",
        php::php_string(key)
    )
}

/// Every form in which a secret's bytes could show up in a log line.
fn encodings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let list = format!("{bytes:?}");
    vec![secret.to_owned(), hex, list.trim_matches(['[', ']']).to_owned()]
}

#[test]
fn a_full_run_at_trace_logs_no_secret() {
    full_run_logs_no_secret("trace");
}

/// A `RUST_LOG` that asks for the FastCGI client's params by name gets them held at `info`.
#[test]
fn naming_the_fastcgi_client_in_rust_log_logs_no_secret() {
    full_run_logs_no_secret("trace,fastcgi_client=trace,fastcgi_client::client=trace");
}

fn full_run_logs_no_secret(rust_log: &str) {
    let secrets = [
        unique_token("alpha-db-password"),
        unique_token("alpha-api-token"),
        unique_token("beta-db-password"),
    ];
    let alpha = AppPlan::new("alpha")
        .file("index.php", &hash_probe(KEY))
        .file("token.php", &hash_probe(TOKEN_KEY))
        .secret(KEY, &secrets[0])
        .secret(TOKEN_KEY, &secrets[1]);
    let beta = AppPlan::new("beta").file("index.php", &hash_probe(KEY)).secret_env(
        KEY,
        BETA_VAR,
        &secrets[2],
    );
    let options =
        StackOptions { env: vec![("RUST_LOG".into(), rust_log.into())], ..StackOptions::default() };
    let mut stack = Stack::start_with(&[alpha, beta], &options);
    let expect = [
        ("alpha", "/", &secrets[0]),
        ("alpha", "/token.php", &secrets[1]),
        ("beta", "/", &secrets[2]),
    ];
    let mut requests = 0;
    for round in 0..2 {
        for proto in [Proto::Http1, Proto::H2c] {
            let client = stack.client(proto);
            for (app, path, secret) in expect {
                let reply = client.get(&format!("{app}.localhost"), path);
                assert_eq!(reply.status, 200, "{proto:?} {app}{path}: {reply:?}");
                assert_eq!(
                    reply.text(),
                    sha256_hex(secret.as_bytes()),
                    "{app}{path} used its secret"
                );
                requests += 1;
            }
        }
        if round == 0 {
            let reload = stack.bulkhead.reload();
            assert_eq!(reload.code, Some(0), "reload: {}", reload.output());
        }
    }
    stack.bulkhead.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(stack.bulkhead.wait_exit(bulkhead_tests::bulkhead::STOP_TIMEOUT).is_some());
    let log = format!("{}{}", stack.bulkhead.log(), stack.fpm.logs());

    let params_lines = log.lines().filter(|line| line.contains("FastCGI params")).count();
    assert!(
        params_lines >= requests,
        "{params_lines} params lines for {requests} requests:\n{log}"
    );
    assert!(
        log.contains(&format!("{KEY}=\"***\"")),
        "the secret's name is logged, its value redacted"
    );
    let mut searched = 0;
    for (n, line) in log.lines().enumerate() {
        for secret in &secrets {
            for form in encodings(secret) {
                assert!(!line.contains(&form), "log line {n} holds a secret ({form}): {line}");
                searched += 1;
            }
        }
    }
    let lines = log.lines().count();
    println!(
        "RUST_LOG={rust_log}: {requests} requests, {lines} log lines, {searched} searches: no secret in any line"
    );
}
