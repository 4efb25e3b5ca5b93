//! Fuzz target: application payloads of both 2019 eras and their consumers (`hush_core_fuzz::chat::chat_app`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_core_fuzz::chat::chat_app(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(hush_core_fuzz::chat::chat_app);
}
