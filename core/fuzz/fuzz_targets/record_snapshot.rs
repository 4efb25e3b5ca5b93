//! Fuzz target: the record-log snapshot decoder (`hush_core::chat::direct::decode_snapshot`,
//! issue 16 item 10). Any bytes: records or a typed error; what decodes re-encodes to a
//! snapshot that decodes to the same records, and folding it again changes nothing.
#![cfg_attr(feature = "libfuzzer", no_main)]

use hush_core::chat::direct::{compact, decode_snapshot, encode_snapshot};

fn record_snapshot(data: &[u8]) {
    if let Ok(records) = decode_snapshot(data) {
        let again = decode_snapshot(&encode_snapshot(&records));
        assert_eq!(again.as_ref(), Ok(&records));
        let folded = compact(records);
        assert_eq!(compact(folded.clone()), folded);
    }
}

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| record_snapshot(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hush_core_fuzz::run_inputs(record_snapshot);
}
