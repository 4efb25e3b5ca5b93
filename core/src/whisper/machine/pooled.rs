//! Storage of the pooled envelopes: one heap buffer per envelope (its RLP) and compact indexes.
//!
//! Contract:
//! - [`PooledSet`] holds each envelope's RLP once (what gossip sends and duplicates are compared
//!   with) next to the few fields the machine reads after pooling (hash, expiry, topic, PoW,
//!   `size()`), in a slab addressed by [`Slot`]. A slot is reused after its envelope leaves.
//! - Lookups: by hash ([`PooledSet::find_hash`]), and by exact bytes
//!   ([`PooledSet::find_bytes`], without hashing the envelope with Keccak: a seeded 32-bit
//!   fingerprint of the bytes selects candidates, whose bytes are compared). Both are hash
//!   tables of slot numbers (4 bytes per entry, 8 with the fingerprint, plus hashbrown's
//!   control byte); the fingerprint seed comes from the machine's seed, so peers cannot aim
//!   collisions at it.
//!   The tables are never iterated, so their layout never shows in any output.
//! - Expiry order: [`PooledSet::by_expiry`] walks envelopes by (expiry, hash), soonest first;
//!   hashes are compared on their first 8 bytes there (a tie on all 64 bits falls back to
//!   slot order, deterministic too).
//! - Memory: about the RLP plus 100 bytes per envelope (core/tests/whisper_pool_memory.rs
//!   measures it with a counting allocator and holds it to 1.5× the RLP).

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use super::*;

/// Index of a pooled envelope in the slab.
pub(super) type Slot = u32;

/// A set of pooled envelopes (a peer's gossip queue). Unordered: a broadcast sorts what it
/// sends by hash. Hashed with a fixed seed, so runs stay deterministic.
pub(super) type SlotSet = hashbrown::HashSet<Slot, FixedState>;

/// One pooled envelope.
#[derive(Clone, Debug)]
pub(super) struct Pooled {
    /// The envelope's RLP (as received, or our post's encoding).
    pub(super) raw: Box<[u8]>,
    /// keccak256 of `raw`.
    pub(super) hash: [u8; 32],
    /// PoW as computed when it was pooled.
    pub(super) pow: f64,
    /// Unix seconds after which it is dropped.
    pub(super) expiry: u32,
    /// `Expiry - TTL` (wrapping), for the clock checks of a duplicate.
    pub(super) sent: u32,
    /// Its topic.
    pub(super) topic: Topic,
    /// Go's `size()` (20 + len(Data)), what [`Config::max_pool_bytes`] counts.
    pub(super) size: u32,
    /// Our own post (not evicted while a peer still awaits it).
    pub(super) own: bool,
}

/// The first 8 bytes of a hash, the key of the hash table and the expiry order's tie-break.
pub(super) fn hash_prefix(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(b)
}

/// Slots per slab chunk: the slab grows a chunk at a time, so nothing pooled is ever moved
/// and at most this many slots (72 bytes each) stand empty.
pub(super) const SLAB_CHUNK_SLOTS: usize = 64;

/// Pool size at which the hash tables are sized for the pool's bound at once: a pool that
/// gets this busy is likely to fill, and growing step by step rehashes every entry each
/// time; a quiet pool (most simulator nodes) keeps small tables.
pub(super) const TABLE_PRESIZE_AT_ENVELOPES: usize = 1024;

/// The seeded fingerprint of an envelope's bytes, as [`PooledSet::fingerprint`] computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint(u32);

impl Fingerprint {
    /// The hash-table hash: the 32 bits spread over 64 (hashbrown takes the bucket from the
    /// low bits and a tag from the top 7).
    fn table_hash(self) -> u64 {
        u64::from(self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Pooled envelopes and their indexes (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct PooledSet {
    /// The slab, in chunks of [`SLAB_CHUNK_SLOTS`].
    chunks: Vec<Vec<Option<Pooled>>>,
    free: Vec<Slot>,
    len: usize,
    /// Sum of `size` over the pooled envelopes.
    bytes: usize,
    /// Envelopes removed so far (a slot looked up before a removal may since hold another).
    removals: u64,
    by_hash: HashTable<Slot>,
    /// Slots with their byte fingerprint (kept so that growing the table hashes nothing).
    by_bytes: HashTable<(Slot, Fingerprint)>,
    /// `(expiry, hash prefix, slot)` packed into one integer ([`expiry_key`]): one compare per
    /// tree step instead of a tuple's three (the tree walk was ~40 % of an insert's cost).
    by_expiry: BTreeSet<u128>,
    fingerprint: FixedState,
    /// The pool's bound in envelopes ([`Config::max_envelopes`]).
    max_envelopes: usize,
}

impl PooledSet {
    /// An empty set of at most `max_envelopes` whose byte fingerprints are keyed by `seed`.
    pub(super) fn new(seed: u64, max_envelopes: usize) -> PooledSet {
        PooledSet {
            chunks: Vec::new(),
            free: Vec::new(),
            len: 0,
            bytes: 0,
            removals: 0,
            by_hash: HashTable::new(),
            by_bytes: HashTable::new(),
            by_expiry: BTreeSet::new(),
            fingerprint: FixedState::with_seed(seed),
            max_envelopes,
        }
    }

    /// Envelopes held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Sum of their `size()`.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Envelopes removed so far.
    pub(super) fn removals(&self) -> u64 {
        self.removals
    }

    /// The envelope in `slot`, if any.
    pub(super) fn get(&self, slot: Slot) -> Option<&Pooled> {
        slot_of(&self.chunks, slot)
    }

    /// Every occupied slot, in slot order.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as Slot)
    }

    /// The slot of the envelope with this hash.
    pub(super) fn find_hash(&self, hash: &[u8; 32]) -> Option<Slot> {
        let chunks = &self.chunks;
        self.by_hash
            .find(hash_prefix(hash), |&s| {
                slot_of(chunks, s).is_some_and(|p| p.hash == *hash)
            })
            .copied()
    }

    /// The seeded fingerprint of `raw`.
    pub(super) fn fingerprint(&self, raw: &[u8]) -> Fingerprint {
        let h = self.fingerprint.hash_one(raw);
        Fingerprint((h >> 32) as u32 ^ h as u32)
    }

    /// The slot of the envelope whose RLP is exactly `raw`, or `raw`'s fingerprint (to give
    /// to [`Self::insert`]).
    pub(super) fn find_bytes(&self, raw: &[u8]) -> Result<Slot, Fingerprint> {
        let fp = self.fingerprint(raw);
        let chunks = &self.chunks;
        self.by_bytes
            .find(fp.table_hash(), |&(s, f)| {
                f == fp && slot_of(chunks, s).is_some_and(|p| *p.raw == *raw)
            })
            .map(|&(s, _)| s)
            .ok_or(fp)
    }

    /// Envelopes by (expiry, hash), soonest first: `(expiry, hash prefix, slot)`.
    pub(super) fn by_expiry(&self) -> impl Iterator<Item = (u32, u64, Slot)> + '_ {
        self.by_expiry.iter().map(|&k| unpack_expiry_key(k))
    }

    /// The soonest expiry held.
    pub(super) fn first_expiry(&self) -> Option<u32> {
        self.soonest().map(|(e, _, _)| e)
    }

    /// The envelope expiring soonest: `(expiry, hash prefix, slot)`.
    pub(super) fn soonest(&self) -> Option<(u32, u64, Slot)> {
        self.by_expiry.first().map(|&k| unpack_expiry_key(k))
    }

    /// Adds an envelope that is not held yet (callers check [`Self::find_hash`]); `fp` is
    /// its [`Self::fingerprint`] if the caller has it.
    pub(super) fn insert(&mut self, entry: Pooled, fp: Option<Fingerprint>) -> Slot {
        let prefix = hash_prefix(&entry.hash);
        let fp = fp.unwrap_or_else(|| self.fingerprint(&entry.raw));
        let expiry = entry.expiry;
        self.bytes += entry.size as usize;
        self.len += 1;
        if self.len == TABLE_PRESIZE_AT_ENVELOPES && self.max_envelopes > self.len {
            let more = self.max_envelopes - self.len;
            let chunks = &self.chunks;
            self.by_hash.reserve(more, |&s| {
                slot_of(chunks, s).map_or(0, |p| hash_prefix(&p.hash))
            });
            self.by_bytes.reserve(more, |&(_, f)| f.table_hash());
        }
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(cell) = slot_mut(&mut self.chunks, s) {
                    *cell = Some(entry);
                }
                s
            }
            None => {
                // Slots in the slab: every chunk but the last is full.
                let used = self
                    .chunks
                    .last()
                    .map_or(0, |c| (self.chunks.len() - 1) * SLAB_CHUNK_SLOTS + c.len());
                if self
                    .chunks
                    .last()
                    .is_none_or(|c| c.len() == SLAB_CHUNK_SLOTS)
                {
                    self.chunks.push(Vec::with_capacity(SLAB_CHUNK_SLOTS));
                }
                if let Some(c) = self.chunks.last_mut() {
                    c.push(Some(entry));
                }
                used as Slot
            }
        };
        let chunks = &self.chunks;
        self.by_hash.insert_unique(prefix, slot, |&s| {
            slot_of(chunks, s).map_or(0, |p| hash_prefix(&p.hash))
        });
        self.by_bytes
            .insert_unique(fp.table_hash(), (slot, fp), |&(_, f)| f.table_hash());
        self.by_expiry.insert(expiry_key(expiry, prefix, slot));
        slot
    }

    /// Removes the envelope in `slot` from the set and its indexes.
    pub(super) fn remove(&mut self, slot: Slot) -> Option<Pooled> {
        let entry = slot_mut(&mut self.chunks, slot)?.take()?;
        self.removals += 1;
        let prefix = hash_prefix(&entry.hash);
        if let Ok(e) = self.by_hash.find_entry(prefix, |&s| s == slot) {
            e.remove();
        }
        let fp = self.fingerprint(&entry.raw);
        if let Ok(e) = self
            .by_bytes
            .find_entry(fp.table_hash(), |&(s, _)| s == slot)
        {
            e.remove();
        }
        self.by_expiry
            .remove(&expiry_key(entry.expiry, prefix, slot));
        self.bytes -= entry.size as usize;
        self.len -= 1;
        self.free.push(slot);
        Some(entry)
    }
}

/// `(expiry, prefix, slot)` as one integer that orders as the tuple does.
fn expiry_key(expiry: u32, prefix: u64, slot: Slot) -> u128 {
    (u128::from(expiry) << 96) | (u128::from(prefix) << 32) | u128::from(slot)
}

/// The inverse of [`expiry_key`].
fn unpack_expiry_key(key: u128) -> (u32, u64, Slot) {
    ((key >> 96) as u32, (key >> 32) as u64, key as u32)
}

fn slot_of(chunks: &[Vec<Option<Pooled>>], s: Slot) -> Option<&Pooled> {
    let s = s as usize;
    chunks
        .get(s / SLAB_CHUNK_SLOTS)?
        .get(s % SLAB_CHUNK_SLOTS)?
        .as_ref()
}

fn slot_mut(chunks: &mut [Vec<Option<Pooled>>], s: Slot) -> Option<&mut Option<Pooled>> {
    let s = s as usize;
    chunks
        .get_mut(s / SLAB_CHUNK_SLOTS)?
        .get_mut(s % SLAB_CHUNK_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn expiry_keys_order_as_their_tuples_and_unpack(a in any::<(u32, u64, u32)>(), b in any::<(u32, u64, u32)>()) {
            let (ka, kb) = (expiry_key(a.0, a.1, a.2), expiry_key(b.0, b.1, b.2));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(unpack_expiry_key(ka), a);
        }
    }
}
