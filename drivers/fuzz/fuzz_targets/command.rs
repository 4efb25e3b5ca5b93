//! Fuzz target `command`: the stdin command parser (`hush_drivers_fuzz::command`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hush_drivers_fuzz::command(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_drivers_fuzz::run_inputs(hush_drivers_fuzz::command);
}
