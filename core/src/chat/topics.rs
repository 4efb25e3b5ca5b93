//! 1:1 topics and keys (status-chat.md §2): contact code, partitioned, negotiated, generic and
//! personal discovery.
//!
//! Contract: pure functions of public keys and shared secrets. Every topic is
//! `keccak256(utf8(topic string))[0..4]` [SG-tr `toTopic`]; symmetric Whisper keys are
//! PBKDF2 of the same string (whisper-v6.md §8). "pubhex" is the lowercase hex of the 65-byte
//! uncompressed public key (with its `04` prefix, no `0x`) [SG-tr `publicKeyToStr`]. The
//! functions return both the topic string (what status-go logs and stores as the filter's chat
//! id) and the derived topic/key, so callers never rebuild strings by hand.

use secp256k1::{PublicKey, SecretKey};

use crate::ecies::ecdh_x;
use crate::keccak::keccak256;
use crate::whisper::{sym_key_from_password, Topic};

/// Number of partitions of the partitioned 1:1 topic (`nPartitions` in status-go's
/// `filter.go`): a key's partition is its X coordinate mod 5000, so about 1/5000 of all 1:1
/// traffic reaches a listener.
pub const PARTITIONS: u16 = 5000;

/// Generic discovery topic string (legacy 1:1, [SG-tr `discoveryTopic`], [SP-x7]).
pub const DISCOVERY_TOPIC_STRING: &str = "contact-discovery";

/// Prefix of the personal discovery and partitioned topic strings.
const DISCOVERY_PREFIX: &str = "contact-discovery-";

/// Suffix of the contact-code topic string [SG-tr `contactCodeTopic`].
pub const CONTACT_CODE_SUFFIX: &str = "-contact-code";

/// Topic of any topic string: the first 4 bytes of its keccak256.
pub fn topic_from_string(s: &str) -> Topic {
    Topic::from_bytes(&keccak256(s.as_bytes()))
}

/// Lowercase hex of the 65-byte uncompressed key, no `0x` ("pubhex").
pub fn pubhex(key: &PublicKey) -> String {
    hex::encode(key.serialize_uncompressed())
}

/// Contact-code topic string of `key`: `"0x" + pubhex + "-contact-code"`.
pub fn contact_code_topic_string(key: &PublicKey) -> String {
    format!("0x{}{CONTACT_CODE_SUFFIX}", pubhex(key))
}

/// Contact-code topic of `key` (symmetric, see [`contact_code_key`]).
pub fn contact_code_topic(key: &PublicKey) -> Topic {
    topic_from_string(&contact_code_topic_string(key))
}

/// Whisper symmetric key of `key`'s contact-code topic: PBKDF2 of the topic string
/// [SG-tr `LoadContactCode`].
pub fn contact_code_key(key: &PublicKey) -> [u8; 32] {
    sym_key_from_password(contact_code_topic_string(key).as_bytes())
}

/// Partition of `key`: its affine X coordinate, as a big-endian integer, mod [`PARTITIONS`]
/// [SG-tr `partitionedTopic`: `partition.Mod(publicKey.X, nPartitions)`].
pub fn partition(key: &PublicKey) -> u16 {
    let full = key.serialize_uncompressed();
    // Bytes 1..33 are X (byte 0 is the 04 tag). Horner's rule keeps every step below
    // 5000 * 256, far inside u32.
    let x = full.get(1..33).unwrap_or_default();
    let rem = x.iter().fold(0u32, |acc, b| {
        (acc * 256 + u32::from(*b)) % u32::from(PARTITIONS)
    });
    // rem < 5000 by construction.
    u16::try_from(rem).unwrap_or_default()
}

/// Partitioned topic string of `key`: `"contact-discovery-" + decimal(partition)`.
pub fn partitioned_topic_string(key: &PublicKey) -> String {
    format!("{DISCOVERY_PREFIX}{}", partition(key))
}

/// Partitioned topic of `key` (asymmetric: envelopes on it are ECIES-encrypted to `key`).
pub fn partitioned_topic(key: &PublicKey) -> Topic {
    topic_from_string(&partitioned_topic_string(key))
}

/// Generic discovery topic (`0xf8946aac`, asymmetric).
pub fn discovery_topic() -> Topic {
    topic_from_string(DISCOVERY_TOPIC_STRING)
}

/// Personal discovery topic string of `own`: `"contact-discovery-" + pubhex(own)`; listened
/// to by status-go, never sent to [SG-tr `personalDiscoveryTopic`].
pub fn personal_discovery_topic_string(own: &PublicKey) -> String {
    format!("{DISCOVERY_PREFIX}{}", pubhex(own))
}

/// Personal discovery topic of `own` (asymmetric).
pub fn personal_discovery_topic(own: &PublicKey) -> Topic {
    topic_from_string(&personal_discovery_topic_string(own))
}

/// The 1:1 negotiated secret: ECDH X coordinate of `own · their` (status-go `sharedsecret`
/// `GenerateShared(.., 16, 16)`, 32 bytes). Symmetric: both sides compute the same value.
pub fn negotiated_secret(own: &SecretKey, their: &PublicKey) -> [u8; 32] {
    ecdh_x(own, their)
}

/// Negotiated topic string: lowercase hex of the secret, no `0x` [SG-tr `LoadNegotiated`].
pub fn negotiated_topic_string(secret: &[u8; 32]) -> String {
    hex::encode(secret)
}

/// Negotiated topic (symmetric, see [`negotiated_key`]).
pub fn negotiated_topic(secret: &[u8; 32]) -> Topic {
    topic_from_string(&negotiated_topic_string(secret))
}

/// Whisper symmetric key of the negotiated topic: PBKDF2 of the hex string [SG-tr
/// `addSymmetric`].
pub fn negotiated_key(secret: &[u8; 32]) -> [u8; 32] {
    sym_key_from_password(negotiated_topic_string(secret).as_bytes())
}

#[cfg(test)]
mod tests;
