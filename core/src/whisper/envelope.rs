//! The Whisper envelope: codec, hash, proof of work and sealing (whisper-v6.md §3–§4).
//!
//! Contract:
//! - [`Envelope::decode`] accepts exactly Go's strict 5-item list
//!   `[Expiry u32, TTL u32, Topic [4]byte, Data []byte, Nonce u64]` and returns a typed error for
//!   anything else; it never panics. Because decoding is Go-strict, re-encoding a decoded
//!   envelope gives back the received bytes, so [`Envelope::hash`] equals Go's hash of the raw
//!   bytes [W-env `DecodeRLP`].
//! - [`Envelope::pow`] implements both PoW formulas ([`PowFormula`]); [`Envelope::seal`] searches
//!   nonces deterministically from a caller-chosen start for at most a caller-chosen number of
//!   iterations (Go seals for a wall-clock budget; core has no clock).

use super::bloom::{topic_to_bloom, Bloom, Topic};
use super::WhisperError;
use crate::keccak::{keccak256, keccak256_concat};
use crate::rlp::{Encoder, Rlp, RlpError};

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
        Ok(Self::from_rlp(&Rlp::new(buf)?)?)
    }

    /// Decodes one envelope from an RLP item (Go struct: exactly 5 items).
    pub fn from_rlp(item: &Rlp<'_>) -> Result<Envelope, RlpError> {
        let mut l = item.list()?;
        let expiry = l.item()?.u32()?;
        let ttl = l.item()?.u32()?;
        let topic = Topic(l.item()?.fixed::<4>()?);
        let data = l.item()?.bytes()?.to_vec();
        let nonce = l.item()?.u64()?;
        l.finish()?;
        Ok(Envelope {
            expiry,
            ttl,
            topic,
            data,
            nonce,
        })
    }

    /// keccak256 of the RLP encoding [W-env `Hash`] (= of the received bytes, see module docs).
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.encode())
    }

    /// Proof of work of this envelope under `formula`; `diff` is added to TTL (Go passes
    /// `sent - now + 1` for envelopes slightly from the future, else 0) [W-env `calculatePoW`].
    pub fn pow(&self, formula: PowFormula, diff: u32) -> f64 {
        let rlp = self.rlp_without_nonce();
        let bits = pow_bits(formula, &rlp, self.nonce);
        let divisor_len = match formula {
            PowFormula::Current => rlp.len(),
            PowFormula::Legacy => self.size(),
        };
        // Go: x := 2^bits; x /= float64(len); x /= float64(TTL + diff) — uint32 wrapping add.
        let mut x = 2f64.powi(bits as i32);
        x /= divisor_len as f64;
        x /= f64::from(self.ttl.wrapping_add(diff));
        x
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
        if target_pow.is_nan() {
            return Err(WhisperError::InvalidPowTarget);
        }
        if target_pow == 0.0 {
            return Ok(0);
        }
        let target = if target_pow > 0.0 {
            Some(self.pow_target_bits(target_pow))
        } else {
            None
        };
        let rlp = self.rlp_without_nonce();
        let mut best: Option<(u32, u64)> = None;
        let mut nonce = start_nonce;
        for i in 0..max_iterations {
            let bits = pow_bits(formula, &rlp, nonce);
            let improves = match best {
                None => true,
                Some((b, _)) => bits > b,
            };
            if improves {
                best = Some((bits, nonce));
                if let Some(t) = target {
                    if bits >= t {
                        self.nonce = nonce;
                        return Ok(i + 1);
                    }
                }
            }
            nonce = nonce.wrapping_add(1);
        }
        match (target, best) {
            (None, Some((_, n))) => {
                self.nonce = n;
                Ok(max_iterations)
            }
            (None, None) => Ok(0),
            (Some(_), _) => Err(WhisperError::PowTargetNotReached {
                iterations: max_iterations,
            }),
        }
    }
}

/// The zero-bit count a nonce earns for `rlp` = `RLP([Expiry, TTL, Topic, Data])`:
/// - current: leading zero bits of `keccak256(rlp ‖ nonce(8, big-endian))` [W-env
///   `calculatePoW`, go-ethereum v1.9.0; reproduces the `envelope_test.go` vectors];
/// - legacy: trailing zero bits ("first bit set", 0 for a zero hash) of
///   `keccak256(keccak256(rlp) ‖ 24 zero bytes ‖ nonce(8, big-endian))` [G1827 with
///   `math.FirstBitSet`].
fn pow_bits(formula: PowFormula, rlp: &[u8], nonce: u64) -> u32 {
    let nonce_be = nonce.to_be_bytes();
    match formula {
        PowFormula::Current => leading_zero_bits(&keccak256_concat(&[rlp, &nonce_be])),
        PowFormula::Legacy => {
            let h = keccak256_concat(&[&keccak256(rlp), &[0u8; 24], &nonce_be]);
            if h.iter().all(|&b| b == 0) {
                0
            } else {
                trailing_zero_bits(&h)
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
