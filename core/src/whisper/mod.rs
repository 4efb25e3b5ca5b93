//! Whisper v6 ("shh"/6) with the 2019 Status extensions (whisper-v6.md).
//!
//! Contract:
//! - Codecs: [`Envelope`] (§3), PoW (§4, both formulas), [`Topic`]/[`Bloom`] (§5), message
//!   plaintext, signature and AES-256-GCM (§6–§7), PBKDF2 keys (§8), [`StatusPacket`] (§2).
//!   Every decoder is total and returns a [`WhisperError`].
//! - [`Whisper`] is the transport-agnostic machine for many peers. The node assigns each
//!   connection a [`PeerKey`] and feeds it sub-protocol packets (code relative to the `shh`
//!   offset, payload = RLP body). Call order: `handle_*` mutates; then drain
//!   [`Whisper::poll_action`] until `None`; then arm a timer at [`Whisper::poll_timeout`] and
//!   call [`Whisper::handle_timeout`] when it fires (calling it early or twice does nothing).
//! - [`mailserver`]: history request/response formats and the archive index (§10), and the
//!   confirmation packets 11/12.
//! - Time is the `now` argument only; nonces, padding and AES nonces come from the machine's
//!   ChaCha20 RNG seeded in [`Whisper::new`].

pub mod api;
mod bloom;
mod counters;
mod envelope;
mod machine;
pub mod mailserver;
mod message;
mod messages;
mod status;

pub use bloom::{bloom_match, topic_to_bloom, Bloom, Topic, BLOOM_LEN, TOPIC_LEN};
pub use envelope::{
    Envelope, EnvelopeFields, EnvelopeView, PowFormula, PowHasher, DEFAULT_TTL_SECS,
    ENVELOPE_HEADER_LEN,
};
pub use machine::{
    Action, ClassCount, Config, Filter, FilterId, FilterKey, MailserverConfig, PeerFault, PeerKey,
    RateLimitConfig, Stats, TopicClasses, Whisper, BROADCAST_INTERVAL_MS, DEFAULT_MAX_POOL_BYTES,
    EARLY_BROADCAST_BYTES, EXPIRY_CHECK_INTERVAL_MS, MAX_KNOWN_UNPOOLED, MAX_MESSAGE_SIZE_BYTES,
    MAX_P2P_SEEN, MAX_SETTABLE_MESSAGE_SIZE_BYTES, MAX_TOPIC_BUCKETS_PER_PEER, MAX_TOPIC_CLASSES,
    QUIET_BROADCAST_MS, SYNC_ALLOWANCE_SECS,
};
pub use mailserver::{
    Archive, EnvelopeError, MessageResponse, MessagesRequest, RequestCompletion, RequestPayload,
    STATUS_MAILSERVER_PASSWORD,
};
pub use message::{
    build_plaintext, decrypt_asymmetric, decrypt_symmetric, encrypt_asymmetric, encrypt_symmetric,
    open_asymmetric, open_asymmetric_fields, open_symmetric, parse_plaintext, recover_signer,
    sign_recoverable, sym_key_from_password, wrap, wrap_symmetric, Encryption, MessageParams,
    ParsedMessage, ReceivedMessage, SymmetricOpener, AES_KEY_LEN, AES_NONCE_LEN, FLAGS_LEN,
    MAX_PAYLOAD_LEN, PAD_SIZE_LIMIT, PBKDF2_ITERATIONS, SIGNATURE_FLAG, SIGNATURE_LEN, SIZE_MASK,
};
pub use messages::{decode_messages, decode_messages_hashed, encode_messages};
pub use status::{
    decode_bloom_filter, decode_pow_requirement, decode_rate_limits_packet, encode_bloom_filter,
    encode_pow_requirement, encode_rate_limits_packet, RateLimits, StatusPacket, PROTOCOL_VERSION,
};

use crate::rlp::RlpError;

/// devp2p capability name.
pub const CAPABILITY_NAME: &str = "shh";
/// devp2p capability version.
pub const CAPABILITY_VERSION: u64 = 6;
/// Number of message codes the capability reserves (`NumberOfMessageCodes`).
pub const NUMBER_OF_MESSAGE_CODES: u64 = 128;

/// Packet codes, relative to the capability offset (§1).
pub mod codes {
    /// Status handshake.
    pub const STATUS: u64 = 0;
    /// List of envelopes.
    pub const MESSAGES: u64 = 1;
    /// PoW requirement (bare integer: float64 bits).
    pub const POW_REQUIREMENT: u64 = 2;
    /// Bloom filter (bare 64-byte string).
    pub const BLOOM_FILTER: u64 = 3;
    /// Batch acknowledged (Status).
    pub const BATCH_ACK: u64 = 11;
    /// Message response (Status).
    pub const MESSAGE_RESPONSE: u64 = 12;
    /// Rate limits (status-go whisper ≥ v6.1.0 only).
    pub const RATE_LIMITS: u64 = 20;
    /// Mailserver sync request.
    pub const P2P_SYNC_REQUEST: u64 = 123;
    /// Mailserver sync response.
    pub const P2P_SYNC_RESPONSE: u64 = 124;
    /// Historic request complete.
    pub const P2P_REQUEST_COMPLETE: u64 = 125;
    /// Historic messages request.
    pub const P2P_REQUEST: u64 = 126;
    /// Direct P2P message(s).
    pub const P2P_MESSAGE: u64 = 127;
}

/// Errors of the Whisper layer: decode errors and caller misuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhisperError {
    /// The bytes are not the RLP structure expected.
    #[error("whisper: rlp: {0}")]
    Rlp(#[from] RlpError),
    /// Status packet with a version other than 6.
    #[error("whisper: protocol version mismatch: {version} != 6")]
    VersionMismatch {
        /// Version received.
        version: u64,
    },
    /// A PoW value that is NaN, infinite or negative.
    #[error("whisper: invalid pow")]
    InvalidPow,
    /// A bloom filter that is neither 0 nor 64 bytes (Status) or not 64 bytes (code 3).
    #[error("whisper: wrong bloom filter size {found}")]
    BadBloomLength {
        /// Length found.
        found: usize,
    },
    /// A plaintext that `ValidateAndParse` rejects.
    #[error("whisper: invalid message: {0}")]
    InvalidMessage(&'static str),
    /// A signature that does not recover a public key.
    #[error("whisper: bad signature")]
    BadSignature,
    /// AES-GCM authentication failed or the data is too short (not for this key).
    #[error("whisper: decryption failed")]
    DecryptFailed,
    /// A symmetric key that is all zero.
    #[error("whisper: invalid symmetric key")]
    InvalidKey,
    /// A payload too large for the 3-byte size field.
    #[error("whisper: payload of {size} bytes exceeds {max}")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// A PoW target that is NaN.
    #[error("whisper: invalid pow target")]
    InvalidPowTarget,
    /// Sealing tried its whole nonce budget without reaching the target.
    #[error("whisper: failed to reach the PoW target in {iterations} nonces")]
    PowTargetNotReached {
        /// Nonces tried.
        iterations: u64,
    },
    /// The RNG returned all-zero bytes repeatedly (Go rejects such randomness).
    #[error("whisper: random source produced all-zero data")]
    BadRandomness,
    /// Our own envelope fails the checks peers would apply.
    #[error("whisper: envelope rejected: {0}")]
    Rejected(Box<PeerFault>),
    /// Our own envelope was dropped (already expired).
    #[error("whisper: own envelope dropped")]
    Dropped,
    /// Our own envelope found no room: the pool is full of envelopes that outlive it or that
    /// peers still await. Retry after the next broadcast or expiry.
    #[error("whisper: pool full, own envelope not pooled")]
    PoolFull,
    /// Too many filters installed.
    #[error("whisper: too many filters (max {max})")]
    TooManyFilters {
        /// Limit.
        max: usize,
    },
    /// A history request that decodes but is not acceptable.
    #[error("whisper: invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A mailserver response (codes 12, 125) that is not acceptable.
    #[error("whisper: invalid response: {0}")]
    InvalidResponse(&'static str),
    /// The operation needs the node key ([`Whisper::set_identity`]).
    #[error("whisper: no identity key set")]
    NoIdentity,
    /// No connected peer with that key.
    #[error("whisper: unknown peer")]
    UnknownPeer,
    /// A maximum message size beyond what may be set.
    #[error("whisper: message size {size} too large (at most {max})")]
    MessageSizeTooLarge {
        /// Asked.
        size: u32,
        /// The limit.
        max: u32,
    },
    /// The operation needs the mailserver role.
    #[error("whisper: not a mailserver")]
    NotMailserver,
}

#[cfg(test)]
mod tests;
