//! Fuzz target: RLPx frame decoder (raw, and valid frames with mutations) and an established
//! session's message handling.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_core_fuzz::frame(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(hush_core_fuzz::frame);
}
