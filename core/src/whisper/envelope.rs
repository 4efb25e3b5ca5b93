//! The Whisper envelope: codec, hash, proof of work and sealing (whisper-v6.md §3–§4).
//!
//! Contract:
//! - [`Envelope::decode`] accepts exactly Go's strict 5-item list
//!   `[Expiry u32, TTL u32, Topic [4]byte, Data []byte, Nonce u64]` and returns a typed error for
//!   anything else; it never panics. Because decoding is Go-strict, re-encoding a decoded
//!   envelope gives back the received bytes, so [`Envelope::hash`] equals Go's hash of the raw
//!   bytes [W-env `DecodeRLP`].
//! - [`EnvelopeView`] is the same strict decode without a copy: the fields, and the data as a
//!   slice of the received bytes. Its hash and PoW are computed from those bytes: the PoW input
//!   `RLP([Expiry, TTL, Topic, Data])` is a re-framing of a prefix of the received list (same
//!   items, shorter list header), hashed as `header ‖ items` without building it.
//! - [`Envelope::pow`] implements both PoW formulas ([`PowFormula`]); [`Envelope::seal`] searches
//!   nonces deterministically from a caller-chosen start for at most a caller-chosen number of
//!   iterations (Go seals for a wall-clock budget; core has no clock).
//! - [`PowHasher`] absorbs the fixed part of the PoW input once (every full 136-byte Keccak block
//!   of it, and the rest in the state's buffer); each nonce then costs a copy of that state and
//!   the final block, whatever the envelope's size. [`Envelope::seal`] goes further where the CPU
//!   has AVX2 or AVX-512: eight nonces per permutation call ([`PrefixedKeccak256`]), the same
//!   nonce found in the same order. Digests are those of the plain computation.

use std::ops::Range;

use super::bloom::{topic_to_bloom, Bloom, Topic};
use super::WhisperError;
use crate::keccak::{keccak256, Keccak256, PrefixedKeccak256};
use crate::rlp::{header_len, list_header, Encoder, Rlp, RlpError};
use hush_keccak_lanes::LANES;

/// `EnvelopeHeaderLength` [W-doc]: the fixed part counted by Go's `size()`.
pub const ENVELOPE_HEADER_LEN: usize = 20;

/// `DefaultTTL` [W-doc]: TTL used when a caller passes 0, in seconds.
pub const DEFAULT_TTL_SECS: u32 = 50;

/// Which proof-of-work formula to compute (whisper-v6.md §4, README disagreement 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PowFormula {
    /// go-ethereum ≥ 1.9.0 / status-im/whisper ≥ v1.5.0 (status-go ≥ v0.34): leading zero bits,
    /// divided by the length of the 4-item RLP without nonce. The default.
    #[default]
    Current,
    /// go-ethereum ≤ 1.8.27 / status-im/whisper ≤ v1.4.14: trailing zero bits ("first bit set"),
    /// divided by `size()` = 20 + len(Data).
    Legacy,
}

/// One Whisper envelope as it travels on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Unix seconds after which the envelope is dropped.
    pub expiry: u32,
    /// Time to live in seconds; `expiry - ttl` is the sent time.
    pub ttl: u32,
    /// The topic.
    pub topic: Topic,
    /// The encrypted message (§6–§7).
    pub data: Vec<u8>,
    /// The proof-of-work nonce.
    pub nonce: u64,
}

impl Envelope {
    /// Go's `size()`: 20 + len(Data); used for size limits, the seal target and the legacy PoW.
    pub fn size(&self) -> usize {
        ENVELOPE_HEADER_LEN.saturating_add(self.data.len())
    }

    /// Sent time as Go computes it (`Expiry - TTL` in wrapping `uint32` arithmetic).
    pub fn sent_secs(&self) -> u32 {
        self.expiry.wrapping_sub(self.ttl)
    }

    /// The topic's bloom filter.
    pub fn bloom(&self) -> Bloom {
        topic_to_bloom(self.topic)
    }

    /// `RLP([Expiry, TTL, Topic, Data])` [W-env `rlpWithoutNonce`].
    pub fn rlp_without_nonce(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(self.data.len() + 32);
        e.list(|e| {
            e.u64(self.expiry.into())
                .u64(self.ttl.into())
                .bytes(&self.topic.0)
                .bytes(&self.data);
        });
        e.finish()
    }

    /// Appends the canonical 5-item encoding to `e`.
    pub fn encode_to(&self, e: &mut Encoder) {
        e.list(|e| {
            e.u64(self.expiry.into())
                .u64(self.ttl.into())
                .bytes(&self.topic.0)
                .bytes(&self.data)
                .u64(self.nonce);
        });
    }

    /// The canonical 5-item encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(self.data.len() + 40);
        self.encode_to(&mut e);
        e.finish()
    }

    /// Decodes one envelope that spans all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Envelope, WhisperError> {
        Ok(EnvelopeView::decode(buf)?.to_envelope())
    }

    /// Decodes one envelope from an RLP item (Go struct: exactly 5 items).
    pub fn from_rlp(item: &Rlp<'_>) -> Result<Envelope, RlpError> {
        Ok(EnvelopeView::from_rlp(item)?.to_envelope())
    }

    /// keccak256 of the RLP encoding [W-env `Hash`] (= of the received bytes, see module docs).
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.encode())
    }

    /// Proof of work of this envelope under `formula`; `diff` is added to TTL (Go passes
    /// `sent - now + 1` for envelopes slightly from the future, else 0) [W-env `calculatePoW`].
    pub fn pow(&self, formula: PowFormula, diff: u32) -> f64 {
        let rlp = self.rlp_without_nonce();
        let bits = PowHasher::new(formula, &[&rlp]).into_bits(self.nonce);
        pow_value(formula, bits, rlp.len(), self.size(), self.ttl, diff)
    }

    /// The borrowed form of this envelope (data not copied).
    pub fn view(&self) -> EnvelopeFields<'_> {
        EnvelopeFields {
            expiry: self.expiry,
            ttl: self.ttl,
            topic: self.topic,
            data: &self.data,
            nonce: self.nonce,
        }
    }

    /// Go's `powToFirstBit`: the number of zero bits a nonce must produce for `target_pow`
    /// (`max(1, ceil(log2(pow × size() × TTL)))`).
    pub fn pow_target_bits(&self, target_pow: f64) -> u32 {
        let x = target_pow * self.size() as f64 * f64::from(self.ttl);
        let bits = x.log2().ceil();
        if bits.is_nan() || bits < 1.0 {
            1
        } else if bits > 256.0 {
            257 // unreachable target: no hash has more than 256 zero bits
        } else {
            bits as u32
        }
    }

    /// Searches for a nonce reaching `target_pow` [W-env `Seal`], trying
    /// `start_nonce, start_nonce+1, …` for at most `max_iterations` nonces.
    ///
    /// - `target_pow == 0`: no work, the nonce is left unchanged (Go: "PoW is not required").
    /// - `target_pow < 0`: best effort; keeps the nonce with the most zero bits found within
    ///   the budget (Go's `WorkTime` mode; unlike Go, Expiry is not extended, since there is no
    ///   wall-clock work time here).
    /// - otherwise: the first nonce whose zero-bit count reaches [`Self::pow_target_bits`];
    ///   [`WhisperError::PowTargetNotReached`] if the budget runs out.
    ///
    /// Returns the number of nonces tried.
    pub fn seal(
        &mut self,
        formula: PowFormula,
        target_pow: f64,
        start_nonce: u64,
        max_iterations: u64,
    ) -> Result<u64, WhisperError> {
        let lanes = hush_keccak_lanes::backend() != hush_keccak_lanes::Backend::Portable;
        self.seal_with(lanes, formula, target_pow, start_nonce, max_iterations)
    }

    /// [`Self::seal`], eight nonces per permutation call (`lanes`) or one at a time from the
    /// midstate (the faster of the two where the CPU has no AVX2). Same nonce, same count.
    pub(crate) fn seal_with(
        &mut self,
        lanes: bool,
        formula: PowFormula,
        target_pow: f64,
        start_nonce: u64,
        max_iterations: u64,
    ) -> Result<u64, WhisperError> {
        if target_pow.is_nan() {
            return Err(WhisperError::InvalidPowTarget);
        }
        if target_pow == 0.0 {
            return Ok(0);
        }
        let mut search = NonceSearch {
            target: (target_pow > 0.0).then(|| self.pow_target_bits(target_pow)),
            best: None,
            tried: 0,
        };
        let rlp = self.rlp_without_nonce();
        let mut nonce = start_nonce;
        let found = if lanes {
            // Each permutation call tries `LANES` consecutive nonces; the fixed part of the input
            // is absorbed once.
            let legacy_prefix;
            let prefix: [&[u8]; 2] = match formula {
                PowFormula::Current => [&rlp, &[]],
                PowFormula::Legacy => {
                    legacy_prefix = keccak256(&rlp);
                    [&legacy_prefix, &[0u8; 24]]
                }
            };
            let hasher = PrefixedKeccak256::new(&prefix);
            'batches: loop {
                let nonces: [u64; LANES] = core::array::from_fn(|i| nonce.wrapping_add(i as u64));
                let digests = hasher.digests(&nonces.map(u64::to_be_bytes));
                for (&n, digest) in nonces.iter().zip(&digests) {
                    if search.tried == max_iterations {
                        break 'batches None;
                    }
                    if search.offer(score(formula, digest), n) {
                        break 'batches Some(n);
                    }
                }
                nonce = nonce.wrapping_add(LANES as u64);
            }
        } else {
            // The fixed part is absorbed once; each nonce costs one state copy and the last block.
            let hasher = PowHasher::new(formula, &[&rlp]);
            loop {
                if search.tried == max_iterations {
                    break None;
                }
                if search.offer(hasher.bits(nonce), nonce) {
                    break Some(nonce);
                }
                nonce = nonce.wrapping_add(1);
            }
        };
        match (found, search.target, search.best) {
            (Some(n), _, _) => {
                self.nonce = n;
                Ok(search.tried)
            }
            (None, None, Some((_, n))) => {
                self.nonce = n;
                Ok(max_iterations)
            }
            (None, None, None) => Ok(0),
            (None, Some(_), _) => Err(WhisperError::PowTargetNotReached {
                iterations: max_iterations,
            }),
        }
    }
}

/// The bookkeeping of [`Envelope::seal`]: nonces tried, the best so far (the first with the
/// most zero bits), and whether a nonce reaches the target.
struct NonceSearch {
    target: Option<u32>,
    best: Option<(u32, u64)>,
    tried: u64,
}

impl NonceSearch {
    /// Counts one nonce; true if it reaches the target.
    fn offer(&mut self, bits: u32, nonce: u64) -> bool {
        self.tried += 1;
        if self.best.is_some_and(|(b, _)| bits <= b) {
            return false;
        }
        self.best = Some((bits, nonce));
        self.target.is_some_and(|t| bits >= t)
    }
}

/// Go's PoW value: `2^bits / len / (TTL + diff)` (`uint32` wrapping add), where `len` is the
/// length of the RLP without nonce (current formula) or `size()` (legacy).
fn pow_value(
    formula: PowFormula,
    bits: u32,
    rlp_without_nonce_len: usize,
    size: usize,
    ttl: u32,
    diff: u32,
) -> f64 {
    let divisor_len = match formula {
        PowFormula::Current => rlp_without_nonce_len,
        PowFormula::Legacy => size,
    };
    // Go: x := 2^bits; x /= float64(len); x /= float64(TTL + diff).
    let mut x = 2f64.powi(bits as i32);
    x /= divisor_len as f64;
    x /= f64::from(ttl.wrapping_add(diff));
    x
}

/// The PoW hash of `rlp` = `RLP([Expiry, TTL, Topic, Data])` for any nonce, from a Keccak state
/// that has absorbed the fixed part once (see the module docs):
/// - current: `keccak256(rlp ‖ nonce(8, big-endian))`, scored by leading zero bits [W-env
///   `calculatePoW`, go-ethereum v1.9.0; reproduces the `envelope_test.go` vectors];
/// - legacy: `keccak256(keccak256(rlp) ‖ 24 zero bytes ‖ nonce(8, big-endian))`, scored by
///   trailing zero bits ("first bit set", 0 for a zero hash) [G1827 with `math.FirstBitSet`].
#[derive(Clone, Debug)]
pub struct PowHasher {
    formula: PowFormula,
    /// Keccak state after the fixed prefix of the hash input.
    prefix: Keccak256,
}

impl PowHasher {
    /// Absorbs `rlp`, given as consecutive pieces (e.g. a list header and the items it frames).
    pub fn new(formula: PowFormula, rlp: &[&[u8]]) -> PowHasher {
        let mut k = Keccak256::new();
        for piece in rlp {
            k.update(piece);
        }
        let prefix = match formula {
            PowFormula::Current => k,
            PowFormula::Legacy => {
                let mut outer = Keccak256::new();
                outer.update(&k.finalize());
                outer.update(&[0u8; 24]);
                outer
            }
        };
        PowHasher { formula, prefix }
    }

    /// The PoW hash for `nonce`.
    pub fn digest(&self, nonce: u64) -> [u8; 32] {
        let mut k = self.prefix.clone();
        k.update(&nonce.to_be_bytes());
        k.finalize()
    }

    /// The zero-bit count `nonce` earns (leading zeros, or trailing zeros for the legacy
    /// formula).
    pub fn bits(&self, nonce: u64) -> u32 {
        score(self.formula, &self.digest(nonce))
    }

    /// [`Self::bits`] for one last nonce, without copying the state (verification).
    pub fn into_bits(self, nonce: u64) -> u32 {
        let mut k = self.prefix;
        k.update(&nonce.to_be_bytes());
        score(self.formula, &k.finalize())
    }
}

/// The zero-bit count of a PoW digest under `formula`.
fn score(formula: PowFormula, h: &[u8; 32]) -> u32 {
    match formula {
        PowFormula::Current => leading_zero_bits(h),
        PowFormula::Legacy => {
            if h.iter().all(|&b| b == 0) {
                0
            } else {
                trailing_zero_bits(h)
            }
        }
    }
}

fn leading_zero_bits(h: &[u8; 32]) -> u32 {
    let mut n = 0;
    for &b in h {
        if b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

fn trailing_zero_bits(h: &[u8; 32]) -> u32 {
    let mut n = 0;
    for &b in h.iter().rev() {
        if b == 0 {
            n += 8;
        } else {
            return n + b.trailing_zeros();
        }
    }
    n
}

/// The fields of an envelope with its data borrowed, for code that reads envelopes without
/// owning them (filters, the archive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeFields<'a> {
    /// Unix seconds after which the envelope is dropped.
    pub expiry: u32,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The topic.
    pub topic: Topic,
    /// The encrypted message.
    pub data: &'a [u8],
    /// The proof-of-work nonce.
    pub nonce: u64,
}

impl EnvelopeFields<'_> {
    /// Go's `size()`: 20 + len(Data).
    pub fn size(&self) -> usize {
        ENVELOPE_HEADER_LEN.saturating_add(self.data.len())
    }

    /// `Expiry - TTL` in wrapping `uint32` arithmetic.
    pub fn sent_secs(&self) -> u32 {
        self.expiry.wrapping_sub(self.ttl)
    }

    /// The topic's bloom filter.
    pub fn bloom(&self) -> Bloom {
        topic_to_bloom(self.topic)
    }
}

/// One envelope decoded in place from its RLP (see the module docs): the fields, plus where the
/// four items without the nonce lie in the received bytes, for hashing without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeView<'a> {
    /// The whole envelope's RLP.
    raw: &'a [u8],
    /// The fields; `data` borrows from `raw`.
    fields: EnvelopeFields<'a>,
    /// `raw[items]` = the encodings of Expiry, TTL, Topic and Data, back to back.
    items: Range<usize>,
}

impl<'a> EnvelopeView<'a> {
    /// Decodes one envelope that spans all of `raw` (the strict 5-item list).
    pub fn decode(raw: &'a [u8]) -> Result<EnvelopeView<'a>, RlpError> {
        Self::from_rlp(&Rlp::new(raw)?)
    }

    /// Decodes one envelope from an RLP item (Go struct: exactly 5 items).
    pub fn from_rlp(item: &Rlp<'a>) -> Result<EnvelopeView<'a>, RlpError> {
        let raw = item.raw();
        let mut l = item.list()?;
        let items_start = raw.len() - item.payload().len();
        let expiry = l.item()?.u32()?;
        let ttl = l.item()?.u32()?;
        let topic = Topic(l.item()?.fixed::<4>()?);
        let data_item = l.item()?;
        let data = data_item.bytes()?;
        let nonce_item = l.item()?;
        let nonce = nonce_item.u64()?;
        l.finish()?;
        // The nonce is the last item: the four before it end where its encoding starts.
        let items_end = raw.len() - nonce_item.raw().len();
        Ok(EnvelopeView {
            raw,
            fields: EnvelopeFields {
                expiry,
                ttl,
                topic,
                data,
                nonce,
            },
            items: items_start..items_end,
        })
    }

    /// The fields (data borrowed from the received bytes).
    pub fn fields(&self) -> EnvelopeFields<'a> {
        self.fields
    }

    /// The envelope's RLP, as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// keccak256 of the received bytes (Go's hash: decoding is strict, see the module docs).
    pub fn hash(&self) -> [u8; 32] {
        keccak256(self.raw)
    }

    /// The encodings of Expiry, TTL, Topic and Data.
    fn items(&self) -> &'a [u8] {
        self.raw.get(self.items.clone()).unwrap_or_default()
    }

    /// Length of `RLP([Expiry, TTL, Topic, Data])`.
    pub fn rlp_without_nonce_len(&self) -> usize {
        let n = self.items.len();
        header_len(n) + n
    }

    /// The PoW hasher of this envelope's RLP without nonce, fed from the received bytes.
    pub fn pow_hasher(&self, formula: PowFormula) -> PowHasher {
        let items = self.items();
        let (header, header_len) = list_header(items.len());
        PowHasher::new(
            formula,
            &[header.get(..header_len).unwrap_or_default(), items],
        )
    }

    /// The current formula's PoW input as pieces: `RLP([Expiry, TTL, Topic, Data])`'s list
    /// header (bytes, length), the received items, and the nonce (8 bytes, big-endian).
    pub fn pow_input(&self) -> (([u8; 9], usize), &'a [u8], [u8; 8]) {
        let items = self.items();
        (
            list_header(items.len()),
            items,
            self.fields.nonce.to_be_bytes(),
        )
    }

    /// [`Self::pow`] from the PoW digest already computed (`keccak256` of [`Self::pow_input`]
    /// under [`PowFormula::Current`]; the legacy formula's digest otherwise).
    pub fn pow_from_digest(&self, formula: PowFormula, digest: &[u8; 32], diff: u32) -> f64 {
        self.pow_value(formula, score(formula, digest), diff)
    }

    /// [`Envelope::pow`], computed from the received bytes.
    pub fn pow(&self, formula: PowFormula, diff: u32) -> f64 {
        let bits = self.pow_hasher(formula).into_bits(self.fields.nonce);
        self.pow_value(formula, bits, diff)
    }

    fn pow_value(&self, formula: PowFormula, bits: u32, diff: u32) -> f64 {
        pow_value(
            formula,
            bits,
            self.rlp_without_nonce_len(),
            self.fields.size(),
            self.fields.ttl,
            diff,
        )
    }

    /// The owned envelope (copies the data).
    pub fn to_envelope(&self) -> Envelope {
        let f = &self.fields;
        Envelope {
            expiry: f.expiry,
            ttl: f.ttl,
            topic: f.topic,
            data: f.data.to_vec(),
            nonce: f.nonce,
        }
    }
}
