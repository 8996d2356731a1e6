//! Any bytes a peer sends as a `ToGateway` control message: decoding must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = privsep::msg::decode::<privsep::msg::ToGateway>(data);
});
