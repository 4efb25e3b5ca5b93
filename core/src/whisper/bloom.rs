//! Topics and 64-byte bloom filters (whisper-v6.md §5).
//!
//! Contract: [`topic_to_bloom`] reproduces Go's `TopicToBloom` bit for bit, including its
//! quirk of *assigning* (not OR-ing) the bit within a byte; [`bloom_match`] is Go's
//! `BloomFilterMatch`. Nothing here allocates or panics.

use core::fmt;

/// Length of a Whisper topic in bytes (`TopicLength` in [W-doc]).
pub const TOPIC_LEN: usize = 4;
/// Length of a Whisper bloom filter in bytes (`BloomFilterSize` in [W-doc]: 512 bits).
pub const BLOOM_LEN: usize = 64;

/// A 4-byte Whisper topic.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(pub [u8; TOPIC_LEN]);

impl Topic {
    /// Go's `BytesToTopic`: the first four bytes of `b`, zero-padded when shorter.
    pub fn from_bytes(b: &[u8]) -> Topic {
        let mut t = [0u8; TOPIC_LEN];
        for (dst, src) in t.iter_mut().zip(b) {
            *dst = *src;
        }
        Topic(t)
    }

    /// The topic's bloom filter ([`topic_to_bloom`]).
    pub fn bloom(&self) -> Bloom {
        topic_to_bloom(*self)
    }
}

impl fmt::Display for Topic {
    /// Go's `TopicType.String`: `0x` + lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({self})")
    }
}

/// A 64-byte bloom filter over topics.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bloom(pub [u8; BLOOM_LEN]);

impl Bloom {
    /// The all-ones filter: matches every topic (a "full node").
    pub const FULL: Bloom = Bloom([0xff; BLOOM_LEN]);
    /// The all-zero filter: matches nothing (status-go's initial light-client filter).
    pub const EMPTY: Bloom = Bloom([0; BLOOM_LEN]);

    /// True if every bit is set (Go `isFullNode`).
    pub fn is_full(&self) -> bool {
        self.0.iter().all(|&b| b == 0xff)
    }

    /// Byte-wise OR (aggregating the filters of several topics).
    pub fn union(&self, other: &Bloom) -> Bloom {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(other.0.iter()) {
            *o |= *b;
        }
        Bloom(out)
    }

    /// True if `sample` is covered by this filter (Go `BloomFilterMatch`).
    pub fn matches(&self, sample: &Bloom) -> bool {
        bloom_match(Some(self), sample)
    }
}

impl Default for Bloom {
    fn default() -> Self {
        Bloom::FULL
    }
}

impl fmt::Debug for Bloom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bloom({})", hex::encode(self.0))
    }
}

/// Go's `TopicToBloom` [W-env]: three bit indices (0..511) from the topic's first three bytes,
/// the ninth bit of index `j` taken from bit `j` of `topic[3]`.
///
/// Quirk kept on purpose: Go writes `b[byteIndex] = 1 << bitIndex` (assignment), so when two
/// indices fall into the same byte only the later bit survives. Peers compare this value with
/// their advertised filters, so it must be reproduced exactly.
pub fn topic_to_bloom(topic: Topic) -> Bloom {
    let mut b = [0u8; BLOOM_LEN];
    for j in 0..3 {
        let mut index = usize::from(topic.0[j]);
        if topic.0[3] & (1 << j) != 0 {
            index += 256;
        }
        // index < 512, so index / 8 < 64: in bounds.
        if let Some(byte) = b.get_mut(index / 8) {
            *byte = 1 << (index % 8);
        }
    }
    Bloom(b)
}

/// Go's `BloomFilterMatch`: `None` (a nil filter) matches everything; otherwise every bit of
/// `sample` must be set in `filter`.
pub fn bloom_match(filter: Option<&Bloom>, sample: &Bloom) -> bool {
    match filter {
        None => true,
        Some(f) => f.0.iter().zip(sample.0.iter()).all(|(&f, &s)| f | s == f),
    }
}
