//! The Status (handshake) packet, code 0 (whisper-v6.md §2), and the small control packets
//! (PoW requirement, code 2; bloom filter, code 3).
//!
//! Contract: [`StatusPacket::encode`] writes the 2019 5-field form
//! `[version, powBits, bloom, isLightNode, confirmationsEnabled]` (6 fields if rate limits are
//! set); [`StatusPacket::decode`] follows Go's receiver rules: only the version is mandatory,
//! later items are optional and read in order, extra trailing items are ignored (so the 2020
//! 6-field form and geth's 4-field form are accepted). Total: never panics.

use super::bloom::{Bloom, BLOOM_LEN};
use super::WhisperError;
use crate::rlp::{Encoder, Rlp};

/// Whisper protocol version carried in the Status packet (`ProtocolVersion`).
pub const PROTOCOL_VERSION: u64 = 6;

/// `[IPLimits, PeerIDLimits, TopicLimits]` of status-go whisper ≥ v6.1.0 (all zero = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Packets per second per IP.
    pub ip_limit: u64,
    /// Packets per second per peer id.
    pub peer_id_limit: u64,
    /// Packets per second per topic.
    pub topic_limit: u64,
}

/// The handshake packet.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPacket {
    /// Protocol version (must be 6).
    pub version: u64,
    /// The sender's minimum accepted PoW (sent as float64 bits).
    pub min_pow: f64,
    /// The sender's bloom filter; `None` = empty string on the wire = full node.
    pub bloom: Option<Bloom>,
    /// `isLightNode`.
    pub light_node: bool,
    /// `confirmationsEnabled` (Status); `false` when absent.
    pub confirmations_enabled: bool,
    /// 6th field of the 2020 form; not sent when `None`.
    pub rate_limits: Option<RateLimits>,
}

impl StatusPacket {
    /// Encodes the packet body (the RLP list).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(96);
        e.list(|e| {
            e.u64(self.version).u64(self.min_pow.to_bits());
            match &self.bloom {
                Some(b) => e.bytes(&b.0),
                None => e.bytes(&[]),
            };
            e.bool(self.light_node).bool(self.confirmations_enabled);
            if let Some(r) = &self.rate_limits {
                e.list(|e| {
                    e.u64(r.ip_limit).u64(r.peer_id_limit).u64(r.topic_limit);
                });
            }
        });
        e.finish()
    }

    /// Decodes a received Status body with Go's tolerance (see module docs).
    pub fn decode(buf: &[u8]) -> Result<StatusPacket, WhisperError> {
        // Go reads with rlp.Stream and never checks what follows the list.
        let (item, _rest) = Rlp::new_prefix(buf)?;
        let mut l = item.list()?;
        let version = l.item()?.u64()?;
        if version != PROTOCOL_VERSION {
            return Err(WhisperError::VersionMismatch { version });
        }
        let mut p = StatusPacket {
            version,
            min_pow: 0.0,
            bloom: None,
            light_node: false,
            confirmations_enabled: false,
            rate_limits: None,
        };
        // Optional items: a missing or undecodable item ends the parse (Go ignores the error
        // and everything after it), except the explicit range checks Go makes.
        let Some(Ok(bits)) = l.next_item()?.map(|i| i.u64()) else {
            return Ok(p);
        };
        let pow = f64::from_bits(bits);
        if !pow.is_finite() || pow < 0.0 {
            return Err(WhisperError::InvalidPow);
        }
        p.min_pow = pow;
        let Some(Ok(bloom)) = l.next_item()?.map(|i| i.bytes()) else {
            return Ok(p);
        };
        p.bloom = match bloom.len() {
            0 => None,
            BLOOM_LEN => {
                let mut b = [0u8; BLOOM_LEN];
                b.copy_from_slice(bloom);
                Some(Bloom(b))
            }
            found => return Err(WhisperError::BadBloomLength { found }),
        };
        let Some(Ok(light)) = l.next_item()?.map(|i| i.bool()) else {
            return Ok(p);
        };
        p.light_node = light;
        let Some(Ok(conf)) = l.next_item()?.map(|i| i.bool()) else {
            return Ok(p);
        };
        p.confirmations_enabled = conf;
        if let Ok(Some(item)) = l.next_item() {
            p.rate_limits = decode_rate_limits(&item);
        }
        Ok(p)
    }
}

fn decode_rate_limits(item: &Rlp<'_>) -> Option<RateLimits> {
    let mut l = item.list().ok()?;
    let ip_limit = l.item().ok()?.u64().ok()?;
    let peer_id_limit = l.item().ok()?.u64().ok()?;
    let topic_limit = l.item().ok()?.u64().ok()?;
    Some(RateLimits {
        ip_limit,
        peer_id_limit,
        topic_limit,
    })
}

/// Encodes a PoW-requirement packet (code 2): a bare RLP integer, the float64 bits.
pub fn encode_pow_requirement(pow: f64) -> Vec<u8> {
    crate::rlp::encode_u64(pow.to_bits())
}

/// Decodes a PoW-requirement packet (code 2); the value must be finite and non-negative.
pub fn decode_pow_requirement(buf: &[u8]) -> Result<f64, WhisperError> {
    let pow = f64::from_bits(Rlp::new(buf)?.u64()?);
    if !pow.is_finite() || pow < 0.0 {
        return Err(WhisperError::InvalidPow);
    }
    Ok(pow)
}

/// Encodes a bloom-filter packet (code 3): a bare 64-byte RLP string.
pub fn encode_bloom_filter(bloom: &Bloom) -> Vec<u8> {
    crate::rlp::encode_bytes(&bloom.0)
}

/// Decodes a bloom-filter packet (code 3): must be exactly 64 bytes.
pub fn decode_bloom_filter(buf: &[u8]) -> Result<Bloom, WhisperError> {
    let b = Rlp::new(buf)?.bytes()?;
    let arr: [u8; BLOOM_LEN] = b
        .try_into()
        .map_err(|_| WhisperError::BadBloomLength { found: b.len() })?;
    Ok(Bloom(arr))
}

/// Encodes a rate-limits packet (code 20, status-go whisper ≥ v6.1.0): `[ip, peerId, topic]`.
pub fn encode_rate_limits_packet(limits: &RateLimits) -> Vec<u8> {
    let mut e = Encoder::with_capacity(32);
    e.list(|e| {
        e.u64(limits.ip_limit)
            .u64(limits.peer_id_limit)
            .u64(limits.topic_limit);
    });
    e.finish()
}

/// Decodes a rate-limits packet (code 20): exactly three unsigned integers (Go struct decode).
pub fn decode_rate_limits_packet(buf: &[u8]) -> Result<RateLimits, WhisperError> {
    let item = Rlp::new(buf)?;
    let mut l = item.list()?;
    let ip_limit = l.item()?.u64()?;
    let peer_id_limit = l.item()?.u64()?;
    let topic_limit = l.item()?.u64()?;
    l.finish()?;
    Ok(RateLimits {
        ip_limit,
        peer_id_limit,
        topic_limit,
    })
}
