//! Fuzz target: RLPx auth/ack decoders (both formats) and a responder session fed the bytes.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_core_fuzz::handshake(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(hush_core_fuzz::handshake);
}
