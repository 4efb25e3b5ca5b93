//! Keccak-256 (the pre-NIST padding Ethereum uses), via `keccak-asm` (cryptogams' Keccak-f
//! assembly, the backend of alloy's `asm-keccak`; built by its build script with perl and the C
//! compiler). Every Keccak in the stack goes through this module, so the backend is one file.
//!
//! Contract: [`keccak256`] / [`keccak256_concat`] hash byte strings; [`Keccak256`] is a running
//! state for incremental use (the RLPx MAC, rlpx.md §5), whose [`Keccak256::digest`] hashes
//! everything absorbed so far without ending the state. [`PrefixedKeccak256`] hashes eight
//! inputs that share a prefix and differ in an 8-byte suffix at once (PoW sealing's nonces), on
//! the keccak crate's permutation run eight lanes wide ([`hush_keccak_lanes`]).

use hush_keccak_lanes::{f1600x8, States, LANES, WORDS};
use keccak_asm::Digest;

/// Keccak-256's rate (1088 bits): the bytes absorbed per permutation.
pub const RATE_BYTES: usize = 136;

/// Words of the state the rate covers.
const RATE_WORDS: usize = RATE_BYTES / 8;

/// Longest remainder a [`PrefixedKeccak256`] ends with: `tail (< RATE_BYTES) ‖ 8-byte suffix ‖
/// padding` fills at most two blocks.
const MAX_TAIL_BLOCKS: usize = 2;

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

/// Keccak-256 of `prefix ‖ suffix` for many 8-byte suffixes, eight per call.
///
/// The prefix's full blocks are absorbed once into a plain state; each call copies that state
/// into eight lanes, absorbs `tail ‖ suffix ‖ pad` (Keccak's `0x01 … 0x80` padding, one or two
/// blocks) and permutes all eight at once. Digests equal [`keccak256_concat`] of the same bytes
/// (tests below and the PoW property test).
#[derive(Clone)]
pub struct PrefixedKeccak256 {
    /// State after the prefix's full blocks.
    state: [u64; WORDS],
    /// The prefix's last, partial block: fewer than [`RATE_BYTES`] bytes.
    tail: Vec<u8>,
}

impl core::fmt::Debug for PrefixedKeccak256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PrefixedKeccak256(..)")
    }
}

impl PrefixedKeccak256 {
    /// Absorbs the prefix, given as consecutive pieces.
    pub fn new(prefix: &[&[u8]]) -> Self {
        let mut state = [0u64; WORDS];
        let mut tail = Vec::with_capacity(RATE_BYTES);
        for piece in prefix {
            let mut rest: &[u8] = piece;
            while !rest.is_empty() {
                let take = (RATE_BYTES - tail.len()).min(rest.len());
                let (now, later) = rest.split_at(take);
                tail.extend_from_slice(now);
                rest = later;
                if tail.len() == RATE_BYTES {
                    for (word, bytes) in state.iter_mut().zip(tail.chunks_exact(8)) {
                        *word ^= u64::from_le_bytes(bytes.try_into().unwrap_or_default());
                    }
                    keccak::f1600(&mut state);
                    tail.clear();
                }
            }
        }
        PrefixedKeccak256 { state, tail }
    }

    /// Keccak-256 of `prefix ‖ suffixes[i]` for each `i`.
    pub fn digests(&self, suffixes: &[[u8; 8]; LANES]) -> [[u8; 32]; LANES] {
        let len = self.tail.len() + 8;
        // pad10*1 needs at least one byte after the message.
        let blocks = if len < RATE_BYTES { 1 } else { MAX_TAIL_BLOCKS };
        let end = blocks * RATE_BYTES;
        let mut lanes = [[0u64; LANES]; WORDS];
        for (word, lane_words) in self.state.iter().zip(lanes.iter_mut()) {
            *lane_words = [*word; LANES];
        }
        let mut rest = [[0u8; MAX_TAIL_BLOCKS * RATE_BYTES]; LANES];
        for (bytes, suffix) in rest.iter_mut().zip(suffixes) {
            let (tail, after) = bytes.split_at_mut(self.tail.len());
            tail.copy_from_slice(&self.tail);
            let (nonce, _) = after.split_at_mut(8);
            nonce.copy_from_slice(suffix);
            if let Some(b) = bytes.get_mut(len) {
                *b ^= 0x01;
            }
            if let Some(b) = bytes.get_mut(end - 1) {
                *b ^= 0x80;
            }
        }
        for block in 0..blocks {
            absorb_lanes(&mut lanes, &rest, block * RATE_BYTES);
            f1600x8(&mut lanes);
        }
        let mut out = [[0u8; 32]; LANES];
        for (lane, digest) in out.iter_mut().enumerate() {
            for (bytes, word) in digest.chunks_exact_mut(8).zip(&lanes) {
                bytes.copy_from_slice(&word.get(lane).copied().unwrap_or_default().to_le_bytes());
            }
        }
        out
    }
}

/// Keccak-256 of each input (the concatenation of its three pieces), eight inputs at a time
/// where the CPU has AVX2 or AVX-512 (multi-buffer hashing: each lane absorbs one block of its
/// input per permutation call and, when its input ends, takes the next one); elsewhere one at a
/// time with [`keccak256_concat`]. Digests are in input order.
pub fn keccak256_each(inputs: &[[&[u8]; 3]]) -> Vec<[u8; 32]> {
    if hush_keccak_lanes::backend() == hush_keccak_lanes::Backend::Portable {
        return inputs.iter().map(|p| keccak256_concat(p)).collect();
    }
    let mut out = vec![[0u8; 32]; inputs.len()];
    let mut lanes: States = [[0u64; LANES]; WORDS];
    let mut busy: [Option<LaneJob>; LANES] = [None; LANES];
    let mut queued = inputs.iter().enumerate();
    loop {
        for (lane, job) in busy.iter_mut().enumerate() {
            if job.is_some() {
                continue;
            }
            let Some((input, pieces)) = queued.next() else {
                break;
            };
            let len = pieces.iter().map(|p| p.len()).sum::<usize>();
            *job = Some(LaneJob {
                input,
                block: 0,
                blocks: len / RATE_BYTES + 1,
                len,
            });
            for words in lanes.iter_mut() {
                if let Some(w) = words.get_mut(lane) {
                    *w = 0;
                }
            }
        }
        if busy.iter().all(Option::is_none) {
            return out;
        }
        for (lane, job) in busy.iter().enumerate() {
            if let Some(job) = job {
                let pieces = inputs.get(job.input).copied().unwrap_or_default();
                absorb_block(&mut lanes, lane, &pieces, job);
            }
        }
        f1600x8(&mut lanes);
        for (lane, slot) in busy.iter_mut().enumerate() {
            let Some(job) = slot else { continue };
            job.block += 1;
            if job.block < job.blocks {
                continue;
            }
            if let Some(digest) = out.get_mut(job.input) {
                for (bytes, words) in digest.chunks_exact_mut(8).zip(&lanes) {
                    let word = words.get(lane).copied().unwrap_or_default();
                    bytes.copy_from_slice(&word.to_le_bytes());
                }
            }
            *slot = None;
        }
    }
}

/// One input of [`keccak256_each`] in a lane: which, the next block, of how many, its length.
#[derive(Clone, Copy)]
struct LaneJob {
    input: usize,
    block: usize,
    blocks: usize,
    len: usize,
}

/// XORs block `job.block` of `pieces` (Keccak-padded when it is the last) into `lane`.
fn absorb_block(lanes: &mut States, lane: usize, pieces: &[&[u8]; 3], job: &LaneJob) {
    let start = job.block * RATE_BYTES;
    let last = job.block + 1 == job.blocks;
    // The usual case: a full block inside one piece, read in place.
    if !last {
        let mut offset = start;
        for piece in pieces {
            if offset < piece.len() {
                if let Some(block) = piece.get(offset..offset + RATE_BYTES) {
                    xor_block(lanes, lane, block);
                    return;
                }
                break;
            }
            offset -= piece.len();
        }
    }
    let mut block = [0u8; RATE_BYTES];
    let end = (start + RATE_BYTES).min(job.len);
    let (mut at, mut piece_start) = (0usize, 0usize);
    for piece in pieces {
        let piece_end = piece_start + piece.len();
        let from = start.max(piece_start);
        let to = end.min(piece_end);
        if from < to {
            if let (Some(dst), Some(src)) = (
                block.get_mut(at..at + (to - from)),
                piece.get(from - piece_start..to - piece_start),
            ) {
                dst.copy_from_slice(src);
            }
            at += to - from;
        }
        piece_start = piece_end;
    }
    if last {
        // pad10*1 with Keccak's (pre-SHA-3) domain bit.
        if let Some(b) = block.get_mut(job.len - start) {
            *b ^= 0x01;
        }
        block[RATE_BYTES - 1] ^= 0x80;
    }
    xor_block(lanes, lane, &block);
}

/// XORs a 136-byte block into `lane`.
fn xor_block(lanes: &mut States, lane: usize, block: &[u8]) {
    for (words, bytes) in lanes.iter_mut().zip(block.chunks_exact(8)) {
        if let Some(w) = words.get_mut(lane) {
            *w ^= u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        }
    }
}

/// XORs the block at `offset` of each lane's bytes into that lane's state.
fn absorb_lanes(
    lanes: &mut States,
    rest: &[[u8; MAX_TAIL_BLOCKS * RATE_BYTES]; LANES],
    offset: usize,
) {
    for (w, lane_words) in lanes.iter_mut().take(RATE_WORDS).enumerate() {
        let at = offset + 8 * w;
        for (word, bytes) in lane_words.iter_mut().zip(rest) {
            if let Some(b) = bytes.get(at..at + 8) {
                *word ^= u64::from_le_bytes(b.try_into().unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_digests_equal_the_plain_hash_in_input_order() {
        // Lengths around the rate and its multiples, split into three pieces at every kind of
        // place (empty pieces, a block straddling pieces), more inputs than lanes so that lanes
        // finish at different rounds and take new inputs.
        let data: Vec<u8> = (0..1_100u32).map(|i| (i * 7 + 1) as u8).collect();
        let lens = [
            0usize, 1, 8, 135, 136, 137, 271, 272, 273, 500, 999, 40, 300, 3, 136, 680,
        ];
        let mut inputs = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let input = &data[i..i + len];
            let (a, rest) = input.split_at(len * (i % 3) / 5);
            let (b, c) = rest.split_at(rest.len() * (i % 4) / 4);
            inputs.push([a, b, c]);
        }
        let got = keccak256_each(&inputs);
        assert_eq!(got.len(), inputs.len());
        for (pieces, digest) in inputs.iter().zip(&got) {
            assert_eq!(*digest, keccak256_concat(pieces));
        }
        assert!(keccak256_each(&[]).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn many_digests_equal_the_plain_hash_for_arbitrary_inputs(
            inputs in proptest::collection::vec(
                proptest::array::uniform3(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)),
                0..20,
            )
        ) {
            let pieces: Vec<[&[u8]; 3]> =
                inputs.iter().map(|[a, b, c]| [&a[..], &b[..], &c[..]]).collect();
            let got = keccak256_each(&pieces);
            let want: Vec<[u8; 32]> = pieces.iter().map(|p| keccak256_concat(p)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn prefixed_digests_equal_the_plain_hash_at_every_tail_length() {
        // Tails of 0..136 bytes cover one block, the 128..136 straddle into a second block, and
        // prefixes of several blocks; pieces of uneven size cover the absorption loop.
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + 5) as u8).collect();
        for len in (0..=300).chain([407, 408, 543, 544, 545, 680]) {
            let Some(prefix) = data.get(..len) else {
                continue;
            };
            let (a, b) = prefix.split_at(len / 3);
            let hasher = PrefixedKeccak256::new(&[a, b]);
            let suffixes: [[u8; 8]; LANES] =
                core::array::from_fn(|i| (len as u64 * 1_000 + i as u64).to_be_bytes());
            let got = hasher.digests(&suffixes);
            for (suffix, digest) in suffixes.iter().zip(got) {
                assert_eq!(
                    digest,
                    keccak256_concat(&[prefix, suffix]),
                    "prefix length {len}"
                );
            }
        }
    }

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
