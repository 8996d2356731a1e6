//! Any bytes a peer sends as a `ToWorker` control message: decoding must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = privsep::msg::decode::<privsep::msg::ToWorker>(data);
});
