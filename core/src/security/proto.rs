//! The encryption-layer protobufs of status-go v0.38 (`protocol/encryption/protocol_message.proto`,
//! status-chat.md §8), as `prost` derives, plus hush's extension fields.
//!
//! Contract:
//! - Field numbers and types are exactly status-go's, so bytes we emit decode in status-go and
//!   the reverse. Decoding (`prost::Message::decode`) is total: any byte string gives a value
//!   or a `prost::DecodeError`.
//! - hush extensions use field numbers ≥ 1001, which status-go's proto3 decoder skips as unknown
//!   fields (they are neither signed by status-go's bundle signature nor read by it). They carry
//!   the modern suite's advertisement (`Bundle.hush_pre_keys`, `Bundle.hush_signature`) and its
//!   per-message data (`X3dhHeader.hush_x25519_key`, `DirectMessageProtocol.hush_suite`);
//!   docs/security.md §7 describes them.
//! - The deprecated `ProtocolMessage.bundle = 1` of mid-2019 status-go is accepted on input and
//!   treated as one more entry of `bundles` (status-chat.md §8 note).

use std::collections::BTreeMap;

/// One installation's signed prekey (`SignedPreKey`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SignedPreKey {
    /// 33-byte compressed secp256k1 signed prekey (= bundle id).
    #[prost(bytes = "vec", tag = "1")]
    pub signed_pre_key: Vec<u8>,
    /// Bundle version: 1 for the first prekey, +1 on each rotation.
    #[prost(uint32, tag = "2")]
    pub version: u32,
    /// 1 in late 2019 (enables partitioned topics and secret negotiation). Not signed.
    #[prost(uint32, tag = "3")]
    pub protocol_version: u32,
}

/// hush extension: one installation's modern-suite prekey (`Bundle.hush_pre_keys` values).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HushPreKey {
    /// 32-byte X25519 signed prekey.
    #[prost(bytes = "vec", tag = "1")]
    pub x25519_pre_key: Vec<u8>,
    /// Bit set of offered hush suites; bit 0 = [`crate::security::Suite::Modern`] v1.
    #[prost(uint32, tag = "2")]
    pub suites: u32,
}

/// X3DH prekey bundle (`Bundle`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Bundle {
    /// 33-byte compressed identity key.
    #[prost(bytes = "vec", tag = "1")]
    pub identity: Vec<u8>,
    /// installation id → signed prekey.
    #[prost(btree_map = "string, message", tag = "2")]
    pub signed_pre_keys: BTreeMap<String, SignedPreKey>,
    /// 65-byte `R ‖ S ‖ V` signature (security.md §1).
    #[prost(bytes = "vec", tag = "4")]
    pub signature: Vec<u8>,
    /// Creation time, Unix nanoseconds.
    #[prost(int64, tag = "5")]
    pub timestamp: i64,
    /// hush extension: installation id → modern-suite prekey. Ignored by status-go.
    #[prost(btree_map = "string, message", tag = "1001")]
    pub hush_pre_keys: BTreeMap<String, HushPreKey>,
    /// hush extension: signature over the status material plus `hush_pre_keys`
    /// (docs/security.md §7). Empty when `hush_pre_keys` is empty.
    #[prost(bytes = "vec", tag = "1002")]
    pub hush_signature: Vec<u8>,
}

/// Local storage form of our own bundle (`BundleContainer`); kept for compatibility with
/// status-go's storage layout, hush persists [`crate::security::OwnPreKeyRecord`] instead.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct BundleContainer {
    /// The public bundle.
    #[prost(message, optional, tag = "1")]
    pub bundle: Option<Bundle>,
    /// 32 raw bytes of the signed prekey's secret.
    #[prost(bytes = "vec", tag = "2")]
    pub private_signed_pre_key: Vec<u8>,
}

/// Double Ratchet header (`DRHeader`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DrHeader {
    /// Sender's current ratchet public key (33 B compressed secp256k1; 32 B X25519 in the
    /// modern suite).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Message number in the sending chain.
    #[prost(uint32, tag = "2")]
    pub n: u32,
    /// Length of the previous sending chain.
    #[prost(uint32, tag = "3")]
    pub pn: u32,
    /// Bundle id (the X3DH responder's signed prekey, 33 B), in both directions.
    #[prost(bytes = "vec", tag = "4")]
    pub id: Vec<u8>,
}

/// DH-only header (`DHHeader`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DhHeader {
    /// Sender's ephemeral public key, 33 B compressed.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// X3DH header (`X3DHHeader`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct X3dhHeader {
    /// Sender's X3DH ephemeral public key, 33 B compressed.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Recipient's signed prekey used (= bundle id).
    #[prost(bytes = "vec", tag = "4")]
    pub id: Vec<u8>,
    /// hush extension (modern suite only): the sender's X25519 X3DH ephemeral key, 32 B.
    #[prost(bytes = "vec", tag = "1001")]
    pub hush_x25519_key: Vec<u8>,
}

/// One recipient installation's part of a message (`DirectMessageProtocol`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DirectMessageProtocol {
    /// Present until the session is confirmed by a reply.
    #[prost(message, optional, tag = "1")]
    pub x3dh_header: Option<X3dhHeader>,
    /// Double Ratchet header.
    #[prost(message, optional, tag = "2")]
    pub dr_header: Option<DrHeader>,
    /// DH-only header (no forward secrecy).
    #[prost(message, optional, tag = "101")]
    pub dh_header: Option<DhHeader>,
    /// Ciphertext.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// hush extension: ratchet suite (0 = status-go, 1 = modern). Absent = 0.
    #[prost(uint32, tag = "1001")]
    pub hush_suite: u32,
}

/// The encryption layer's envelope (`ProtocolMessage`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ProtocolMessage {
    /// Deprecated single bundle (mid-2019); accepted on input, never emitted.
    #[prost(message, optional, tag = "1")]
    pub bundle: Option<Bundle>,
    /// Sender's installation (device) id.
    #[prost(string, tag = "2")]
    pub installation_id: String,
    /// Sender's bundles (hush and status-go attach exactly one, freshly signed).
    #[prost(message, repeated, tag = "3")]
    pub bundles: Vec<Bundle>,
    /// Recipient installation id (or `"none"`) → per-device message.
    #[prost(btree_map = "string, message", tag = "101")]
    pub direct_message: BTreeMap<String, DirectMessageProtocol>,
    /// Unencrypted payload of a public-chat message.
    #[prost(bytes = "vec", tag = "102")]
    pub public_message: Vec<u8>,
}
