//! Large bodies in both directions: a 1 MiB request body reaches PHP byte for byte, and a
//! 1 MiB response body reaches the client byte for byte, over HTTP/1.1 and h2c.

use bulkhead_tests::php::{self, BODY_SHA256, MIB_RESPONSE};
use bulkhead_tests::{AppPlan, Proto, Stack, sha256_hex};

const MIB: usize = 1 << 20;

fn app() -> Stack {
    let plan = AppPlan::new("alpha")
        .file("hash.php", BODY_SHA256)
        .file("mib.php", MIB_RESPONSE)
        .max_body("8M");
    Stack::start(&[plan])
}

#[test]
fn mib_request_body_reaches_php_intact() {
    let stack = app();
    let body = php::pattern_bytes(MIB);
    let expected = format!("{MIB} {}", sha256_hex(&body));
    for proto in [Proto::Http1, Proto::H2c] {
        let client = stack.client(proto);
        let reply =
            client.post("alpha.localhost", "/hash.php", "application/octet-stream", body.clone());
        assert_eq!(reply.status, 200, "{proto:?}: {reply:?}");
        assert_eq!(reply.text(), expected, "{proto:?}: PHP saw a different body");
    }
}

#[test]
fn mib_response_body_reaches_the_client_intact() {
    let stack = app();
    let expected = php::mib_response_bytes();
    for proto in [Proto::Http1, Proto::H2c] {
        let reply = stack.client(proto).get("alpha.localhost", "/mib.php");
        assert_eq!(reply.status, 200, "{proto:?}: {reply:?}");
        assert_eq!(reply.body.len(), MIB, "{proto:?}: length");
        assert_eq!(sha256_hex(&reply.body), sha256_hex(&expected), "{proto:?}: content");
    }
}
