//! The keyholder's request decoder and policy on arbitrary bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privsep::keyproto::{KeyKind, Request, check};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        let _ = check(KeyKind::EcdsaP256, req.scheme, req.message);
        let _ = check(KeyKind::Rsa, req.scheme, req.message);
    }
});
