//! MVDS — Minimal Viable Data Sync (vacp2p RFC 2) with MDF metadata (RFC 4), interoperable
//! with vacp2p/mvds v0.0.23 (status-go 2019) and HEAD (mvds.md).
//!
//! Contract:
//! - Codec (`payload.rs`): [`Payload`] in both field numberings ([`Numbering`], status-go's
//!   5001/6001 by default), [`message_id`], and a varint-delimited stream framing
//!   ([`encode_frame`], [`FrameDecoder`]) for byte-stream transports. Decoders are total.
//! - Status ids: [`one_to_one_group_id`], [`peer_id_from_public_key`].
//! - Machine ([`Mvds`]): transport-agnostic. Peers are opaque [`PeerId`]s (Status uses the
//!   65-byte uncompressed public key, status-go `PublicKeyToPeerID`); the caller moves
//!   [`Action::Send`] bytes to that peer by any means (Whisper 1:1, TCP, memory) and feeds what
//!   arrives from a peer to [`Mvds::handle_payload`]. Call order: `handle_*`/`send` mutate; then
//!   drain [`Mvds::poll_action`] until `None`; then arm a timer at [`Mvds::poll_timeout`] and call
//!   [`Mvds::handle_timeout`] when it fires (early or repeated calls do nothing). Time is the
//!   `now` argument only; the machine uses no randomness.
//! - Durability: every change to sync state (epoch, membership, stored messages, per-peer
//!   records) leaves as [`Action::Persist`] before any [`Action::Send`] or [`Action::Deliver`]
//!   that depends on it. [`Mvds::restore`] rebuilds a machine from those records, in order,
//!   and it resumes retransmission where it stopped.
//! - Limits: every queue and table is bounded by a [`Config`] field. Caller misuse (`send` on a
//!   full table, a body that cannot fit a payload) returns an [`MvdsError`]; input from peers
//!   that would exceed a bound is dropped, unacknowledged (so the sender retries later), and
//!   counted in [`Stats`].

mod payload;
mod persist;
mod status;
mod sync;

pub use payload::{
    decode_payload, encode_frame, encode_payload, message_entry_len, message_id, FrameDecoder,
    GroupId, Message, MessageId, Metadata, Numbering, Payload, DEFAULT_MAX_FRAME_BYTES,
    GROUP_ID_LEN, MAX_STATUS_GO_PAYLOAD_BYTES, MESSAGE_ID_LEN, MESSAGE_ID_PREFIX,
};
pub use status::{one_to_one_group_id, peer_id_from_public_key};
pub use sync::{
    Action, Config, Mode, Mvds, Parents, PeerId, PersistRecord, RecordKind, Resolution,
    Retransmission, SendOptions, Stats, SyncState, DEFAULT_EPOCH_INTERVAL_MS,
    DEFAULT_MAX_EPHEMERAL_OUTBOX, DEFAULT_MAX_INCOMING_PAYLOAD_BYTES, DEFAULT_MAX_PARENTS,
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_PEERS_PER_GROUP, DEFAULT_MAX_PENDING_MESSAGES,
    DEFAULT_MAX_SEEN_EPHEMERAL, DEFAULT_MAX_STORED_MESSAGES, DEFAULT_MAX_SYNC_STATES, PEER_ID_LEN,
};

/// Errors of the MVDS layer: decode errors and caller misuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MvdsError {
    /// The bytes are not a protobuf `Payload` of the configured numbering.
    #[error("mvds: protobuf: {0}")]
    Protobuf(String),
    /// An id, parent or group id that is not 32 bytes long.
    #[error("mvds: {what} id of {len} bytes, expected 32")]
    BadIdLength {
        /// Which field ("ack", "offer", "request", "parent", "group").
        what: &'static str,
        /// Length found.
        len: usize,
    },
    /// An incoming payload larger than `Config::max_incoming_payload_bytes`.
    #[error("mvds: payload of {size} bytes exceeds {max}")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// A message that would not fit in one payload of `Config::max_payload_bytes`.
    #[error("mvds: message needs {size} bytes, a payload may carry {max}")]
    BodyTooLarge {
        /// Encoded size of a payload holding only this message.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// A malformed varint length prefix in a byte stream.
    #[error("mvds: malformed frame length")]
    BadFrameLength,
    /// A frame length above the decoder's limit.
    #[error("mvds: frame of {size} bytes exceeds {max}")]
    FrameTooLarge {
        /// Announced size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// `send` to a group that has no peers and no explicit recipients.
    #[error("mvds: unknown group")]
    UnknownGroup,
    /// The message store holds `Config::max_stored_messages` messages.
    #[error("mvds: message store full ({max})")]
    StoreFull {
        /// Limit.
        max: usize,
    },
    /// The sync-state table holds `Config::max_sync_states` records.
    #[error("mvds: sync state full ({max})")]
    StateFull {
        /// Limit.
        max: usize,
    },
    /// A group already has `Config::max_peers_per_group` peers.
    #[error("mvds: group full ({max} peers)")]
    GroupFull {
        /// Limit.
        max: usize,
    },
    /// The ephemeral outbox holds `Config::max_ephemeral_outbox` messages.
    #[error("mvds: ephemeral outbox full ({max})")]
    OutboxFull {
        /// Limit.
        max: usize,
    },
    /// More parents than `Config::max_parents`.
    #[error("mvds: {count} parents exceed {max}")]
    TooManyParents {
        /// Parents given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// Ephemeral messages have no parents (RFC 4).
    #[error("mvds: an ephemeral message cannot have parents")]
    EphemeralWithParents,
    /// The same (group, second, body) was already appended: its id exists.
    #[error("mvds: message {} already exists", hex::encode(.0))]
    DuplicateMessage(MessageId),
    /// A persisted record that contradicts the records before it, or a malformed record.
    #[error("mvds: bad persisted record: {0}")]
    BadRecord(&'static str),
    /// `Config` values that cannot work (zero interval, zero payload size).
    #[error("mvds: invalid config: {0}")]
    InvalidConfig(&'static str),
}

#[cfg(test)]
mod tests;
