//! Fuzz target: Whisper envelope decoding in place (against the owned decoder) and Messages
//! packets through a machine.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_core_fuzz::whisper(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(hush_core_fuzz::whisper);
}
