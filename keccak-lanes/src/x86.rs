//! `keccak::LaneSize` for AVX-512 and AVX2 registers. The keccak crate's generic `keccak_p` is
//! instantiated once per register type and inlined into that type's one `#[target_feature]`
//! function, so the rounds and the lane operations compile to vector instructions.

use core::arch::x86_64::{__m256i, __m512i};
use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitXor, BitXorAssign, Not};

use crate::{States, LANES, WORDS};

/// Keccak-f[1600] rounds.
const ROUNDS: usize = 24;

macro_rules! lane_type {
    ($name:ident, $reg:ty, $words:expr) => {
        /// One state word of several lanes, kept in a vector register. The operations are
        /// written element-wise on the register's words (no intrinsic calls), so `keccak_p`
        /// stays small enough to be inlined into its `#[target_feature]` caller, where the
        /// compiler turns each into one vector instruction.
        #[derive(Clone, Copy)]
        #[repr(transparent)]
        struct $name($reg);

        impl $name {
            #[inline(always)]
            fn words(self) -> [u64; $words] {
                // SAFETY: the register and the array are the same plain bits.
                unsafe { core::mem::transmute::<$reg, [u64; $words]>(self.0) }
            }

            #[inline(always)]
            fn from_words(words: [u64; $words]) -> Self {
                // SAFETY: as for `words`.
                $name(unsafe { core::mem::transmute::<[u64; $words], $reg>(words) })
            }

            #[inline(always)]
            fn zip(self, rhs: Self, f: impl Fn(u64, u64) -> u64) -> Self {
                let (a, b) = (self.words(), rhs.words());
                Self::from_words(core::array::from_fn(|i| f(a[i], b[i])))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.words().fmt(f)
            }
        }

        impl Default for $name {
            #[inline(always)]
            fn default() -> Self {
                Self::from_words([0; $words])
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.words() == other.words()
            }
        }

        impl BitXor for $name {
            type Output = Self;
            #[inline(always)]
            fn bitxor(self, rhs: Self) -> Self {
                self.zip(rhs, |a, b| a ^ b)
            }
        }

        impl BitXorAssign for $name {
            #[inline(always)]
            fn bitxor_assign(&mut self, rhs: Self) {
                *self = *self ^ rhs;
            }
        }

        impl BitAnd for $name {
            type Output = Self;
            #[inline(always)]
            fn bitand(self, rhs: Self) -> Self {
                self.zip(rhs, |a, b| a & b)
            }
        }

        impl BitAndAssign for $name {
            #[inline(always)]
            fn bitand_assign(&mut self, rhs: Self) {
                *self = *self & rhs;
            }
        }

        impl Not for $name {
            type Output = Self;
            #[inline(always)]
            fn not(self) -> Self {
                Self::from_words(self.words().map(|a| !a))
            }
        }

        impl keccak::LaneSize for $name {
            const KECCAK_F_ROUND_COUNT: usize = ROUNDS;

            #[inline(always)]
            fn truncate_rc(rc: u64) -> Self {
                Self::from_words([rc; $words])
            }

            #[inline(always)]
            fn rotate_left(self, n: u32) -> Self {
                Self::from_words(self.words().map(|a| a.rotate_left(n)))
            }
        }
    };
}

lane_type!(Lanes8, __m512i, 8);
lane_type!(Lanes4, __m256i, 4);

/// Keccak-f[1600] on eight states, one AVX-512 register per word.
/// Callers check that the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn f1600x8_avx512(state: &mut States) {
    let mut regs: [Lanes8; WORDS] = state.map(Lanes8::from_words);
    keccak::keccak_p(&mut regs, ROUNDS);
    *state = regs.map(Lanes8::words);
}

/// Keccak-f[1600] on eight states, as two halves of four, one AVX2 register per word.
/// Callers check that the CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(crate) fn f1600x8_avx2(state: &mut States) {
    const HALF: usize = LANES / 2;
    for at in [0, HALF] {
        let mut regs: [Lanes4; WORDS] = core::array::from_fn(|w| {
            Lanes4::from_words(core::array::from_fn(|i| state[w][at + i]))
        });
        keccak::keccak_p(&mut regs, ROUNDS);
        for (words, reg) in state.iter_mut().zip(regs) {
            for (word, value) in words[at..at + HALF].iter_mut().zip(reg.words()) {
                *word = value;
            }
        }
    }
}
