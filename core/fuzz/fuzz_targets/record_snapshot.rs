//! Fuzz target `record_snapshot`: see `hush_core_fuzz::chat::record_snapshot` for what it reaches.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_core_fuzz::chat::record_snapshot(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(hush_core_fuzz::chat::record_snapshot);
}
