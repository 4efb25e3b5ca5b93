//! Storage of the pooled envelopes: one heap buffer per envelope (its RLP) and compact indexes.
//!
//! Contract:
//! - [`PooledSet`] holds each envelope's RLP once (what gossip sends and duplicates are compared
//!   with) next to the few fields the machine reads after pooling (hash, expiry, topic, PoW,
//!   `size()`), in a slab addressed by [`Slot`]. A slot is reused after its envelope leaves.
//! - Lookups: by hash ([`PooledSet::find_hash`]), and by exact bytes
//!   ([`PooledSet::find_bytes`], without hashing the envelope with Keccak: a seeded 64-bit
//!   fingerprint of the bytes selects candidates, whose bytes are compared). Both are hash
//!   tables of slot numbers (4 bytes per entry, plus hashbrown's control byte); the
//!   fingerprint seed comes from the machine's seed, so peers cannot aim collisions at it.
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
}

/// The first 8 bytes of a hash, the key of the hash table and the expiry order's tie-break.
pub(super) fn hash_prefix(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(b)
}

/// Pooled envelopes and their indexes (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct PooledSet {
    slots: Vec<Option<Pooled>>,
    free: Vec<Slot>,
    len: usize,
    /// Sum of `size` over the pooled envelopes.
    bytes: usize,
    by_hash: HashTable<Slot>,
    by_bytes: HashTable<Slot>,
    by_expiry: BTreeSet<(u32, u64, Slot)>,
    fingerprint: FixedState,
}

impl PooledSet {
    /// An empty set whose byte fingerprints are keyed by `seed`.
    pub(super) fn new(seed: u64) -> PooledSet {
        PooledSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            bytes: 0,
            by_hash: HashTable::new(),
            by_bytes: HashTable::new(),
            by_expiry: BTreeSet::new(),
            fingerprint: FixedState::with_seed(seed),
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

    /// The envelope in `slot`, if any.
    pub(super) fn get(&self, slot: Slot) -> Option<&Pooled> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Every occupied slot, in slot order.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as Slot)
    }

    /// The slot of the envelope with this hash.
    pub(super) fn find_hash(&self, hash: &[u8; 32]) -> Option<Slot> {
        let slots = &self.slots;
        self.by_hash
            .find(hash_prefix(hash), |&s| {
                slot_of(slots, s).is_some_and(|p| p.hash == *hash)
            })
            .copied()
    }

    /// The slot of the envelope whose RLP is exactly `raw`.
    pub(super) fn find_bytes(&self, raw: &[u8]) -> Option<Slot> {
        let slots = &self.slots;
        self.by_bytes
            .find(self.fingerprint.hash_one(raw), |&s| {
                slot_of(slots, s).is_some_and(|p| *p.raw == *raw)
            })
            .copied()
    }

    /// Envelopes by (expiry, hash), soonest first: `(expiry, hash prefix, slot)`.
    pub(super) fn by_expiry(&self) -> impl Iterator<Item = (u32, u64, Slot)> + '_ {
        self.by_expiry.iter().copied()
    }

    /// The soonest expiry held.
    pub(super) fn first_expiry(&self) -> Option<u32> {
        self.soonest().map(|(e, _, _)| e)
    }

    /// The envelope expiring soonest: `(expiry, hash prefix, slot)`.
    pub(super) fn soonest(&self) -> Option<(u32, u64, Slot)> {
        self.by_expiry.first().copied()
    }

    /// Adds an envelope that is not held yet (callers check [`Self::find_hash`]).
    pub(super) fn insert(&mut self, entry: Pooled) -> Slot {
        let prefix = hash_prefix(&entry.hash);
        let fp = self.fingerprint.hash_one(&*entry.raw);
        let key = (entry.expiry, prefix);
        self.bytes += entry.size as usize;
        self.len += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(cell) = self.slots.get_mut(s as usize) {
                    *cell = Some(entry);
                }
                s
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by a quarter, not the default doubling: the slab is most of the
                    // per-envelope overhead, and this keeps its slack under 25 %.
                    self.slots.reserve_exact(self.slots.len() / 4 + 16);
                }
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as Slot
            }
        };
        let (slots, fingerprint) = (&self.slots, &self.fingerprint);
        self.by_hash.insert_unique(prefix, slot, |&s| {
            slot_of(slots, s).map_or(0, |p| hash_prefix(&p.hash))
        });
        self.by_bytes.insert_unique(fp, slot, |&s| {
            slot_of(slots, s).map_or(0, |p| fingerprint.hash_one(&*p.raw))
        });
        self.by_expiry.insert((key.0, key.1, slot));
        slot
    }

    /// Removes the envelope in `slot` from the set and its indexes.
    pub(super) fn remove(&mut self, slot: Slot) -> Option<Pooled> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        let prefix = hash_prefix(&entry.hash);
        if let Ok(e) = self.by_hash.find_entry(prefix, |&s| s == slot) {
            e.remove();
        }
        let fp = self.fingerprint.hash_one(&*entry.raw);
        if let Ok(e) = self.by_bytes.find_entry(fp, |&s| s == slot) {
            e.remove();
        }
        self.by_expiry.remove(&(entry.expiry, prefix, slot));
        self.bytes -= entry.size as usize;
        self.len -= 1;
        self.free.push(slot);
        Some(entry)
    }
}

fn slot_of(slots: &[Option<Pooled>], s: Slot) -> Option<&Pooled> {
    slots.get(s as usize).and_then(Option::as_ref)
}
