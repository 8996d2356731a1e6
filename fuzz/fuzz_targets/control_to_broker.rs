//! Any bytes a peer sends as a `ToBroker` control message: decoding must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = privsep::msg::decode::<privsep::msg::ToBroker>(data);
});
