//! Randomness as an input.
//!
//! Contract: every stateful machine owns a [`Rng`] (ChaCha20, not `StdRng`, whose output may
//! change between `rand` versions) built from a 32-byte seed given to its constructor. A parent
//! seeds each child from its own RNG with [`child_seed`]. Same seed and same inputs give the same
//! outputs, byte for byte.

use rand_core::{RngCore, SeedableRng};

/// The RNG every machine in hush-core owns.
pub type Rng = rand_chacha::ChaCha20Rng;

/// A 32-byte seed.
pub type Seed = [u8; 32];

/// Builds a machine RNG from its seed.
pub fn rng_from_seed(seed: Seed) -> Rng {
    Rng::from_seed(seed)
}

/// Draws a child's seed from a parent's RNG.
pub fn child_seed(parent: &mut Rng) -> Seed {
    let mut seed = [0u8; 32];
    parent.fill_bytes(&mut seed);
    seed
}

/// Expands a `u64` (a simulator or CLI seed) into a 32-byte seed, deterministically.
pub fn seed_from_u64(value: u64) -> Seed {
    let mut rng = Rng::seed_from_u64(value);
    child_seed(&mut rng)
}
