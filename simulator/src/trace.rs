//! The trace hash: Keccak-256 over a canonical serialization of every processed event.
//!
//! Contract: two runs that process the same events at the same (relative) times in the same
//! order produce the same hash. Each record is fixed-width big-endian integers followed by
//! length-prefixed byte strings; delivered payloads enter as `len ‖ keccak256(bytes)` so the
//! hasher's work stays proportional to the traffic, not a multiple of it.

use tiny_keccak::{Hasher, Keccak};

/// Incremental canonical serializer feeding Keccak-256.
#[derive(Clone)]
pub struct TraceHasher {
    keccak: Keccak,
}

impl Default for TraceHasher {
    fn default() -> Self {
        TraceHasher {
            keccak: Keccak::v256(),
        }
    }
}

impl TraceHasher {
    /// A hasher over the empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.keccak.update(&[v]);
        self
    }

    /// Appends a `u64`, big-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.keccak.update(&v.to_be_bytes());
        self
    }

    /// Appends `len(bytes)` as a `u64` then the bytes themselves.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64);
        self.keccak.update(bytes);
        self
    }

    /// The hash of everything appended so far (the hasher can keep going).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.keccak.clone().finalize(&mut out);
        out
    }

    /// [`TraceHasher::digest`] as lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_trace_is_keccak_of_nothing() {
        assert_eq!(
            TraceHasher::new().digest(),
            hush_core::keccak::keccak256(b"")
        );
    }

    #[test]
    fn framing_separates_fields() {
        let mut a = TraceHasher::new();
        a.bytes(b"ab").bytes(b"c");
        let mut b = TraceHasher::new();
        b.bytes(b"a").bytes(b"bc");
        assert_ne!(a.digest(), b.digest());
        // digest() does not consume: appending more changes the hash.
        let before = a.hex();
        assert_eq!(before, a.hex());
        a.u8(0);
        assert_ne!(before, a.hex());
    }
}
