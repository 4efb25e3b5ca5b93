//! Conversational security: X3DH prekey bundles, the Double Ratchet and multi-device sessions,
//! byte-compatible with status-go v0.38's `protocol/encryption` package (security.md).
//!
//! Contract:
//! - Pure and deterministic: randomness is an argument (`&mut (impl RngCore + CryptoRng)`),
//!   time is [`Time`]; no IO, no clock.
//! - [`bundle`]: create, sign, verify bundles (the exact status-go signature input), base64
//!   contact-code encoding. [`x3dh`]: the status-go X3DH on secp256k1, the modern X3DH variant and
//!   the DH-only (no forward secrecy) path. [`ratchet`]: the Double Ratchet with two suites,
//!   [`Suite::Status`] (status-go's exact derivations) and [`Suite::Modern`] (X25519 + HKDF +
//!   ChaCha20-Poly1305, chosen only when both peers advertise it). [`service`]: the
//!   [`SecurityService`] that owns bundles, installations and sessions and builds/reads
//!   [`proto::ProtocolMessage`]s.
//! - Durability: every state change leaves [`SecurityService`] as a [`Persist`] value, returned
//!   *before* (in the same tuple, first element) the ciphertext or plaintext that depends on it.
//!   The caller must commit all `Persist`s before sending the ciphertext / acting on the
//!   plaintext. [`SecurityService::restore`] rebuilds the service from the persisted records.
//! - Deviation from status-go, on purpose: a message key is deleted as soon as it has decrypted
//!   a message (status-go keeps it until the app confirms processing), so a replay is rejected
//!   with [`SecurityError::Replay`] and the persisted state cannot derive a used key again.
//! - Every decoder is total; every bound is a field of [`SecurityConfig`].

pub mod bundle;
pub mod proto;
pub mod ratchet;
pub mod service;
pub mod stats;
pub mod x3dh;

#[cfg(test)]
mod go_vectors;
#[cfg(test)]
mod tests;

use thiserror::Error;

pub use bundle::{BundleError, VerifiedBundle};
pub use ratchet::{RatchetError, RatchetLimits, RatchetState, Suite};
pub use service::{
    Decrypted, InstallationRecord, OwnPreKeyRecord, Persist, Received, SecurityService, SessionKey,
    SessionRecord,
};
pub use stats::Stats;

use crate::Duration;

/// Map key of `ProtocolMessage.direct_message` for DH-only messages readable by any device
/// (status-go `noInstallationID`).
pub const NO_INSTALLATION_ID: &str = "none";

/// `SignedPreKey.protocol_version` hush advertises: 1 = partitioned topics + negotiated secret
/// (status-chat.md §2, status-go `sharedSecretNegotiationVersion`).
pub const PROTOCOL_VERSION: u32 = 1;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Bounds and timers of the security layer. Defaults are status-go v0.38's values where it has
/// one (security.md §4 "Limits", §6) and the 2019 spec's otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Most message keys one received message may make us skip in one chain (status-go
    /// `MaxSkip` 1000). Beyond → [`SecurityError::TooManySkipped`].
    pub max_skip: u32,
    /// Most skipped message keys stored per session; the oldest are evicted (status-go
    /// `MaxMessageKeysPerSession` 2000).
    pub max_skipped_keys_per_session: u32,
    /// Most previous remote ratchet keys remembered per session, so a replay of a message from
    /// an old chain is recognised as a replay instead of triggering a DH step.
    pub max_previous_chains: u32,
    /// Installations of one identity we send to, by last activity (status-go and spec: 3;
    /// counts our own device for our own identity).
    pub max_active_installations: usize,
    /// Installations stored per identity (active or not); the least recently active beyond
    /// this are forgotten.
    pub max_installations_per_identity: usize,
    /// Sessions stored per (identity, installation), expired ones included; the oldest expired
    /// (then least recently used) beyond this are deleted.
    pub max_sessions_per_installation: usize,
    /// Peer identities whose installations we store; the least recently active beyond this are
    /// forgotten with their sessions.
    pub max_identities: usize,
    /// A new signed prekey is generated when the current one is older than this (status-go
    /// `BundleRefreshInterval`, 24 h).
    pub bundle_refresh_interval: Duration,
    /// Expired sessions and expired own prekeys are kept this long for late messages, then
    /// deleted (spec: 14 days).
    pub expired_retention: Duration,
    /// An installation not listed in any bundle of its identity for this long is stale and no
    /// longer sent to (spec: 7 days).
    pub stale_installation_after: Duration,
    /// At most one bundle-advertisement reply per identity in this window (status-go publisher
    /// cooldown, 7200 s).
    pub advertise_cooldown: Duration,
    /// Bundles accepted in one ProtocolMessage (status-go sends 1).
    pub max_bundles_per_message: usize,
    /// Signed prekeys accepted in one bundle (status-go sends at most 3).
    pub max_prekeys_per_bundle: usize,
    /// Installation ids longer than this (bytes) are rejected.
    pub max_installation_id_bytes: usize,
    /// Offer the modern suite in our bundle; it is used only with peers that offer it too.
    /// Default `false`: the status-go suite stays the default.
    pub offer_modern_suite: bool,
    /// Our own newly discovered installations are used only after [`SecurityService::
    /// set_installation_enabled`] (spec: own devices are paired manually). `true` pairs them
    /// automatically.
    pub auto_enable_own_installations: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            max_skip: 1000,
            max_skipped_keys_per_session: 2000,
            max_previous_chains: 64,
            max_active_installations: 3,
            max_installations_per_identity: 16,
            max_sessions_per_installation: 8,
            max_identities: 100_000,
            bundle_refresh_interval: Duration(DAY_MS),
            expired_retention: Duration(14 * DAY_MS),
            stale_installation_after: Duration(7 * DAY_MS),
            advertise_cooldown: Duration::from_secs(7200),
            max_bundles_per_message: 8,
            max_prekeys_per_bundle: 16,
            max_installation_id_bytes: 256,
            offer_modern_suite: false,
            auto_enable_own_installations: false,
        }
    }
}

impl SecurityConfig {
    /// The ratchet's share of the limits.
    pub fn ratchet_limits(&self) -> RatchetLimits {
        RatchetLimits {
            max_skip: self.max_skip,
            max_skipped_keys: self.max_skipped_keys_per_session,
            max_previous_chains: self.max_previous_chains,
        }
    }
}

/// Why the security layer refused a message or a call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The bytes are not a valid protobuf of the expected message.
    #[error("security: protobuf decode: {0}")]
    Decode(String),
    /// A bundle in the message failed verification; the whole message is rejected (status-go
    /// `HandleMessage`).
    #[error("security: {0}")]
    Bundle(#[from] BundleError),
    /// A ratchet operation failed (tamper, replay, too many skipped, bad key...).
    #[error("security: {0}")]
    Ratchet(#[from] RatchetError),
    /// Alias kept at the service level: a message key was already used or deleted.
    #[error("security: replayed message (message key already used or deleted)")]
    Replay,
    /// The message would require skipping more than `max_skip` keys.
    #[error("security: message needs {needed} skipped keys, limit {limit}")]
    TooManySkipped {
        /// Keys that would be skipped.
        needed: u64,
        /// `max_skip`.
        limit: u32,
    },
    /// Authentication tag mismatch: the ciphertext, header or key was altered.
    #[error("security: authentication failed (tampered message or wrong key)")]
    Tampered,
    /// An X3DH or DR header names a bundle / session we do not have (status-go `session not
    /// found`).
    #[error("security: session not found")]
    SessionNotFound,
    /// A message from our own identity without a part for this device (status-go
    /// `ErrNotPairedDevice`).
    #[error("security: message from own identity not addressed to this device (not paired)")]
    NotPairedDevice,
    /// A direct message without X3DH, DR or DH header (status-go "no key specified").
    #[error("security: direct message has no key header")]
    NoKeySpecified,
    /// A header key has the wrong length or is not a valid curve point.
    #[error("security: invalid public key in header")]
    InvalidKey,
    /// The message uses a suite we do not offer.
    #[error("security: unsupported ratchet suite {0}")]
    UnsupportedSuite(u32),
    /// The message exceeds a [`SecurityConfig`] bound.
    #[error("security: limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// Caller misuse (empty installation id, invalid recipient key...).
    #[error("security: invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A persisted record does not decode into a usable state.
    #[error("security: corrupt persisted state: {0}")]
    CorruptState(&'static str),
}

impl From<prost::DecodeError> for SecurityError {
    fn from(e: prost::DecodeError) -> Self {
        SecurityError::Decode(e.to_string())
    }
}

impl SecurityError {
    /// Maps ratchet errors onto the service-level variants callers match on.
    pub(crate) fn flatten(self) -> Self {
        match self {
            SecurityError::Ratchet(RatchetError::Replay) => SecurityError::Replay,
            SecurityError::Ratchet(RatchetError::BadTag) => SecurityError::Tampered,
            SecurityError::Ratchet(RatchetError::TooManySkipped { needed, limit }) => {
                SecurityError::TooManySkipped { needed, limit }
            }
            SecurityError::Ratchet(RatchetError::InvalidKey) => SecurityError::InvalidKey,
            other => other,
        }
    }
}
