//! Eight independent Keccak-f[1600] states permuted at once.
//!
//! Contract: [`f1600x8`] applies Keccak-f[1600] to eight states stored interleaved
//! (`state[word][lane]`, the layout of 25 eight-lane registers). It picks, once per process, the
//! widest backend the CPU has ([`backend`]): AVX-512 (one 512-bit register per word), AVX2 (two
//! 256-bit halves) or portable (eight calls of the keccak crate's scalar `f1600`). Every
//! backend gives the scalar permutation's result exactly (tests below).
//!
//! The permutation itself is RustCrypto's generic `keccak::keccak_p` (rounds, constants, ρ/π
//! schedule); this crate only implements its `LaneSize` trait for eight words side by side and
//! compiles it for the CPU's vector width. It is a crate of its own because entering a
//! `#[target_feature]` function after the runtime check takes `unsafe`, which hush-core
//! forbids. PoW sealing (`Envelope::seal` in hush-core) tries eight nonces per call.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Lanes per call.
pub const LANES: usize = 8;

/// Words in a Keccak-f[1600] state.
pub const WORDS: usize = 25;

/// Eight interleaved states: `state[word][lane]`.
pub type States = [[u64; LANES]; WORDS];

/// The implementation [`f1600x8`] uses on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One AVX-512 register per state word.
    Avx512,
    /// Two AVX2 registers per state word.
    Avx2,
    /// The keccak crate's scalar permutation, lane by lane.
    Portable,
}

/// The backend of this CPU (detected once; the standard library caches CPUID).
pub fn backend() -> Backend {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Backend::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Backend::Avx2;
        }
    }
    Backend::Portable
}

/// Keccak-f[1600] on each of the eight interleaved states.
pub fn f1600x8(state: &mut States) {
    f1600x8_with(backend(), state)
}

/// [`f1600x8`] with a chosen backend; a backend the CPU lacks falls back to the portable one.
pub fn f1600x8_with(backend: Backend, state: &mut States) {
    #[cfg(target_arch = "x86_64")]
    {
        match backend {
            Backend::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { x86::f1600x8_avx512(state) };
                return;
            }
            Backend::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { x86::f1600x8_avx2(state) };
                return;
            }
            _ => {}
        }
    }
    let _ = backend;
    portable(state)
}

fn portable(state: &mut States) {
    for lane in 0..LANES {
        let mut one: [u64; WORDS] = core::array::from_fn(|w| state[w][lane]);
        keccak::f1600(&mut one);
        for (words, value) in state.iter_mut().zip(one) {
            words[lane] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64) -> States {
        // SplitMix64: a spread of bit patterns, deterministic.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut s = [[0u64; LANES]; WORDS];
        for word in s.iter_mut() {
            for v in word.iter_mut() {
                *v = next();
            }
        }
        s
    }

    fn scalar(state: &States) -> States {
        let mut s = *state;
        portable(&mut s);
        s
    }

    #[test]
    fn portable_is_keccak_f_on_each_lane() {
        // The all-zero state's image is the Keccak team's published KeccakF-1600 test vector.
        let mut s = [[0u64; LANES]; WORDS];
        portable(&mut s);
        assert_eq!(s[0], [0xF1258F7940E1DDE7; LANES]);
        assert_eq!(s[24], [0xEAF1FF7B5CECA249; LANES]);
    }

    #[test]
    fn every_backend_equals_the_scalar_permutation() {
        for seed in 0..64 {
            let input = sample(seed);
            let want = scalar(&input);
            for b in [Backend::Avx512, Backend::Avx2, Backend::Portable] {
                let mut got = input;
                f1600x8_with(b, &mut got);
                assert_eq!(got, want, "backend {b:?}, seed {seed}");
            }
        }
    }

    #[test]
    fn lanes_are_independent() {
        let input = sample(7);
        let mut changed = input;
        changed[3][5] ^= 1;
        let (mut a, mut b) = (input, changed);
        f1600x8(&mut a);
        f1600x8(&mut b);
        for lane in 0..LANES {
            let same = (0..WORDS).all(|w| a[w][lane] == b[w][lane]);
            assert_eq!(same, lane != 5, "lane {lane}");
        }
    }
}
