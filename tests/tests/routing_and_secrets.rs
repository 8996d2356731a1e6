//! Routing by Host and secret routing: each app answers with its own content, and each
//! app's PHP sees its own secret and nothing of the other app's.
//!
//! Alpha's secret comes from a file, beta's from the broker's environment, so both secret
//! sources are covered.

use bulkhead_tests::{AppPlan, Proto, Stack, php, unique_token};

const KEY: &str = "DB_PASSWORD";
const BETA_VAR: &str = "BULKHEAD_TEST_BETA_DB_PASSWORD";

struct Secrets {
    alpha: String,
    beta: String,
}

fn two_apps() -> (Stack, Secrets) {
    let secrets = Secrets {
        alpha: unique_token("alpha-db-password"),
        beta: unique_token("beta-db-password"),
    };
    let alpha = AppPlan::new("alpha")
        .host("*.alpha.localhost")
        .file("index.php", &php::secret_probe("alpha", KEY, &[&secrets.beta]))
        .file("hello.php", &php::hello("alpha"))
        .secret(KEY, &secrets.alpha);
    let beta = AppPlan::new("beta")
        .file("index.php", &php::secret_probe("beta", KEY, &[&secrets.alpha]))
        .file("hello.php", &php::hello("beta"))
        .secret_env(KEY, BETA_VAR, &secrets.beta);
    (Stack::start(&[alpha, beta]), secrets)
}

#[test]
fn each_host_reaches_its_own_app() {
    let (stack, _) = two_apps();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        for (n, app) in [(1, "alpha"), (2, "beta")] {
            let host = format!("{app}.localhost");
            let reply = client.get(&host, &format!("/hello.php?n={n}"));
            assert_eq!(reply.status, 200, "{proto:?} {host}: {reply:?}");
            assert_eq!(reply.version, proto.version(), "{reply:?}");
            assert_eq!(reply.text(), php::hello_body(app, n), "{proto:?} {host}");
        }
    }
}

#[test]
fn wildcard_host_reaches_its_app() {
    let (stack, _) = two_apps();
    let client = stack.client_with(Proto::Http1, &["www.alpha.localhost"]);
    let reply = client.get("www.alpha.localhost", "/hello.php?n=7");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), php::hello_body("alpha", 7));
}

#[test]
fn each_app_sees_its_own_secret_and_not_the_other() {
    let (stack, secrets) = two_apps();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        for (app, own) in [("alpha", &secrets.alpha), ("beta", &secrets.beta)] {
            let reply = client.get(&format!("{app}.localhost"), "/");
            assert_eq!(reply.status, 200, "{proto:?} {app}: {reply:?}");
            let json = reply.json();
            assert_eq!(json["app"], app, "{reply:?}");
            assert_eq!(json["secret"], own.as_str(), "{app} must see its own {KEY}");
            assert_eq!(
                json["foreign_seen"],
                serde_json::json!([false]),
                "{app} must not see the other app's secret anywhere: {reply:?}"
            );
        }
    }
}

#[test]
fn unknown_host_is_refused_without_naming_any_app() {
    let (stack, _) = two_apps();
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client_with(proto, &["nobody.localhost"]);
        let reply = client.get("nobody.localhost", "/");
        assert!((400..500).contains(&reply.status), "{proto:?}: {reply:?}");
        assert!(!reply.body.is_empty(), "a refusal says why: {reply:?}");
        let text = reply.text();
        assert!(
            !text.contains("alpha") && !text.contains("beta"),
            "the refusal must not reveal which apps exist: {reply:?}"
        );
    }
}
