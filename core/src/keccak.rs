//! Keccak-256 (the pre-NIST padding Ethereum uses), via `tiny-keccak`.

use tiny_keccak::{Hasher, Keccak};

/// Keccak-256 of the concatenation of `parts`.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut k = Keccak::v256();
    for p in parts {
        k.update(p);
    }
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    keccak256_concat(&[data])
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_input() {
        assert_eq!(
            hex::encode(super::keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
