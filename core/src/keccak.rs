//! Keccak-256 (the pre-NIST padding Ethereum uses), via `keccak-asm` (cryptogams' Keccak-f
//! assembly, the backend of alloy's `asm-keccak`; built by its build script with perl and the C
//! compiler). Every Keccak in the stack goes through this module, so the backend is one file.
//!
//! Contract: [`keccak256`] / [`keccak256_concat`] hash byte strings; [`Keccak256`] is a running
//! state for incremental use (the RLPx MAC, rlpx.md §5), whose [`Keccak256::digest`] hashes
//! everything absorbed so far without ending the state.

use keccak_asm::Digest;

/// Keccak-256 of the concatenation of `parts`.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut k = Keccak256::new();
    for p in parts {
        k.update(p);
    }
    k.finalize()
}

/// Keccak-256 of `data` (keccak-asm's one-shot path: no running state copied around, ≈ 6 %
/// faster than the incremental one on 32–256-byte inputs in core/benches/keccak.rs).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    keccak_asm::Keccak256::digest(data).into()
}

/// A running Keccak-256 state.
#[derive(Clone)]
pub struct Keccak256(keccak_asm::Keccak256);

impl Default for Keccak256 {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Keccak256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Keccak256(..)")
    }
}

impl Keccak256 {
    /// The empty state.
    pub fn new() -> Self {
        Keccak256(keccak_asm::Keccak256::new())
    }

    /// Absorbs `data`.
    pub fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    /// Keccak-256 of everything absorbed so far; the state goes on (geth's `hash.Sum(nil)`).
    pub fn digest(&self) -> [u8; 32] {
        self.clone().finalize()
    }

    /// Keccak-256 of everything absorbed, ending the state.
    pub fn finalize(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            hex::encode(keccak256(b"The quick brown fox jumps over the lazy dog")),
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15"
        );
    }

    #[test]
    fn incremental_matches_one_shot_across_block_boundaries() {
        // The rate is 136 bytes: cover inputs below, at and across it, in uneven pieces.
        let data: Vec<u8> = (0..1_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 16, 135, 136, 137, 271, 272, 273, 999] {
            let Some(input) = data.get(..len) else {
                continue;
            };
            let mut k = Keccak256::new();
            let mut absorbed = 0;
            for piece in input.chunks(17) {
                k.update(piece);
                absorbed += piece.len();
                let so_far = data.get(..absorbed).unwrap_or_default();
                assert_eq!(k.digest(), keccak256(so_far), "digest after {absorbed}");
            }
            assert_eq!(k.finalize(), keccak256(input), "len {len}");
        }
    }
}
