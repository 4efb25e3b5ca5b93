//! MVDS wire format (mvds.md §1): the `Payload` protobuf in both field numberings, the message
//! id (§1.1) and a varint-delimited byte-stream framing.
//!
//! Contract: [`decode_payload`] is total: any byte string gives a [`Payload`] or an
//! [`MvdsError`], never a panic. The empty byte string is a valid, empty payload (protobuf v3
//! encodes "all fields default" as zero bytes). Ids and group ids must be exactly 32 bytes
//! (the Go code copies into `[32]byte`; we reject instead of silently padding).
//! [`encode_payload`] emits fields in ascending tag order, as Go's `proto.Marshal` does.

use prost::Message as _;
use sha2::{Digest, Sha256};

use super::MvdsError;

/// Length of a message id (SHA-256 output).
pub const MESSAGE_ID_LEN: usize = 32;
/// Length of a group id (status-go: keccak256 output; mvds: `[32]byte`).
pub const GROUP_ID_LEN: usize = 32;
/// Domain prefix hashed before the message fields [M23/MH `protobuf/messageid.go`].
pub const MESSAGE_ID_PREFIX: &[u8; 10] = b"MESSAGE_ID";
/// The largest MVDS payload a status-go v0.36.0 peer can send us: 10 MiB, whisperv6's
/// `MaxMessageSize` (docs/mvds.md §3). vacp2p/mvds v0.0.23 caps nothing itself — every message
/// due for a peer goes into one `Payload` (`payloads.AddMessages`, `MapAndClear`) — and
/// status-go sends each payload as one Whisper message (`sendDataSync` → `shh.Post`), which
/// Whisper refuses above the node's `MaxMessageSize` ("huge messages are not allowed"):
/// status-go's default is 1 MiB (`WhisperConfig.MaxMessageSize` = `DefaultMaxMessageSize`),
/// raised at most to this value (`SetMaxMessageSize` refuses more). A Go node on a byte stream
/// (no Whisper) is held to the same bound by hush.
pub const MAX_STATUS_GO_PAYLOAD_BYTES: usize = 10 << 20;
/// Largest length prefix [`FrameDecoder`] accepts by default: [`MAX_STATUS_GO_PAYLOAD_BYTES`],
/// so anything a Go peer may send is read; also the bound on the buffer a byte-stream peer can
/// make us hold.
pub const DEFAULT_MAX_FRAME_BYTES: usize = MAX_STATUS_GO_PAYLOAD_BYTES;
/// Longest unsigned varint (u64) in bytes.
const MAX_VARINT_BYTES: usize = 10;

/// A 32-byte message id.
pub type MessageId = [u8; MESSAGE_ID_LEN];
/// A 32-byte group id.
pub type GroupId = [u8; GROUP_ID_LEN];

/// Which protobuf field numbering to speak (mvds.md §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Numbering {
    /// vacp2p/mvds ≤ v0.0.23 as used by status-go 2019: Payload 5001–5004, Message 6001–6003,
    /// plus MDF `metadata = 6004` (RFC 4 after the 2021 revert), emitted only when non-empty
    /// so that a v0.0.23 peer sees exactly the bytes it knows.
    #[default]
    Status2019,
    /// vacp2p/mvds ≥ v0.0.24 (HEAD): Payload 1–4, Message 1–4, Metadata {parents 1, ephemeral 2}.
    VacHead,
}

/// MDF metadata (RFC 4): DAG parents and the ephemeral flag.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Metadata {
    /// Ids of the messages this one depends on.
    pub parents: Vec<MessageId>,
    /// Receivers SHOULD NOT ack or store it.
    pub ephemeral: bool,
}

impl Metadata {
    /// True when the metadata carries nothing (no parents, not ephemeral).
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty() && !self.ephemeral
    }
}

/// One MVDS message.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message {
    /// Group (chat) the message belongs to.
    pub group_id: GroupId,
    /// Unix seconds at append time (`time.Now().Unix()`); signed as on the wire.
    pub timestamp: i64,
    /// Opaque application bytes.
    pub body: Vec<u8>,
    /// MDF metadata; `None` when absent on the wire.
    pub metadata: Option<Metadata>,
}

impl Message {
    /// The message id (§1.1); metadata is not hashed.
    pub fn id(&self) -> MessageId {
        message_id(&self.group_id, self.timestamp, &self.body)
    }

    /// True if the metadata marks the message ephemeral.
    pub fn is_ephemeral(&self) -> bool {
        self.metadata.as_ref().is_some_and(|m| m.ephemeral)
    }

    /// The parents named in the metadata (empty without metadata).
    pub fn parents(&self) -> &[MessageId] {
        self.metadata.as_ref().map_or(&[], |m| &m.parents)
    }
}

/// One MVDS payload: what one peer sends another in one transport message.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Payload {
    /// Ids of MESSAGEs received.
    pub acks: Vec<MessageId>,
    /// Ids offered (interactive mode).
    pub offers: Vec<MessageId>,
    /// Ids requested.
    pub requests: Vec<MessageId>,
    /// Full messages.
    pub messages: Vec<Message>,
}

impl Payload {
    /// status-go's `IsValid`: at least one of the four lists is non-empty. A decrypted 1:1
    /// payload is treated as MVDS only if it decodes and this holds [SG-ds `Handle`].
    pub fn is_valid(&self) -> bool {
        !(self.acks.is_empty()
            && self.offers.is_empty()
            && self.requests.is_empty()
            && self.messages.is_empty())
    }
}

/// `SHA-256("MESSAGE_ID" ‖ group_id ‖ int64 LE timestamp ‖ body)` [M23/MH `messageid.go`].
pub fn message_id(group_id: &[u8], timestamp: i64, body: &[u8]) -> MessageId {
    let mut h = Sha256::new();
    h.update(MESSAGE_ID_PREFIX);
    h.update(group_id);
    h.update(timestamp.to_le_bytes());
    h.update(body);
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------------
// prost types, one set per numbering. Private: the neutral types above are the API.

/// `mvds.Payload` as in vacp2p/mvds v0.0.23 `protobuf/sync.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct PayloadStatus {
    #[prost(bytes = "vec", repeated, tag = "5001")]
    acks: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "5002")]
    offers: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "5003")]
    requests: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "5004")]
    messages: Vec<MessageStatus>,
}

/// `mvds.Message` (v0.0.23) + RFC 4 `metadata = 6004`.
#[derive(Clone, PartialEq, prost::Message)]
struct MessageStatus {
    #[prost(bytes = "vec", tag = "6001")]
    group_id: Vec<u8>,
    #[prost(int64, tag = "6002")]
    timestamp: i64,
    #[prost(bytes = "vec", tag = "6003")]
    body: Vec<u8>,
    #[prost(message, optional, tag = "6004")]
    metadata: Option<MetadataPb>,
}

/// `vac.mvds.Payload` as in vacp2p/mvds HEAD `protobuf/sync.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct PayloadHead {
    #[prost(bytes = "vec", repeated, tag = "1")]
    acks: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    offers: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    requests: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "4")]
    messages: Vec<MessageHead>,
}

/// `vac.mvds.Message` (HEAD).
#[derive(Clone, PartialEq, prost::Message)]
struct MessageHead {
    #[prost(bytes = "vec", tag = "1")]
    group_id: Vec<u8>,
    #[prost(int64, tag = "2")]
    timestamp: i64,
    #[prost(bytes = "vec", tag = "3")]
    body: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    metadata: Option<MetadataPb>,
}

/// `vac.mvds.Metadata` (same numbering in both layouts).
#[derive(Clone, PartialEq, prost::Message)]
struct MetadataPb {
    #[prost(bytes = "vec", repeated, tag = "1")]
    parents: Vec<Vec<u8>>,
    #[prost(bool, tag = "2")]
    ephemeral: bool,
}

fn id32(raw: &[u8], what: &'static str) -> Result<[u8; 32], MvdsError> {
    <[u8; 32]>::try_from(raw).map_err(|_| MvdsError::BadIdLength {
        what,
        len: raw.len(),
    })
}

fn ids(raw: Vec<Vec<u8>>, what: &'static str) -> Result<Vec<MessageId>, MvdsError> {
    raw.iter().map(|r| id32(r, what)).collect()
}

fn meta_from_pb(m: Option<MetadataPb>) -> Result<Option<Metadata>, MvdsError> {
    m.map(|m| {
        Ok(Metadata {
            parents: ids(m.parents, "parent")?,
            ephemeral: m.ephemeral,
        })
    })
    .transpose()
}

fn meta_to_pb(m: &Option<Metadata>, numbering: Numbering) -> Option<MetadataPb> {
    match (m, numbering) {
        // v0.0.23 has no field 6004: keep its bytes identical when there is nothing to say.
        (Some(m), Numbering::Status2019) if m.is_empty() => None,
        (Some(m), _) => Some(MetadataPb {
            parents: m.parents.iter().map(|p| p.to_vec()).collect(),
            ephemeral: m.ephemeral,
        }),
        (None, _) => None,
    }
}

fn to_vecs(ids: &[MessageId]) -> Vec<Vec<u8>> {
    ids.iter().map(|i| i.to_vec()).collect()
}

/// Serializes a payload in the given numbering.
pub fn encode_payload(payload: &Payload, numbering: Numbering) -> Vec<u8> {
    match numbering {
        Numbering::Status2019 => PayloadStatus {
            acks: to_vecs(&payload.acks),
            offers: to_vecs(&payload.offers),
            requests: to_vecs(&payload.requests),
            messages: payload
                .messages
                .iter()
                .map(|m| MessageStatus {
                    group_id: m.group_id.to_vec(),
                    timestamp: m.timestamp,
                    body: m.body.clone(),
                    metadata: meta_to_pb(&m.metadata, numbering),
                })
                .collect(),
        }
        .encode_to_vec(),
        Numbering::VacHead => PayloadHead {
            acks: to_vecs(&payload.acks),
            offers: to_vecs(&payload.offers),
            requests: to_vecs(&payload.requests),
            messages: payload
                .messages
                .iter()
                .map(|m| MessageHead {
                    group_id: m.group_id.to_vec(),
                    timestamp: m.timestamp,
                    body: m.body.clone(),
                    metadata: meta_to_pb(&m.metadata, numbering),
                })
                .collect(),
        }
        .encode_to_vec(),
    }
}

/// Parses a payload in the given numbering. Fields of the other numbering are unknown fields
/// and are skipped, as protobuf requires; so a payload in the wrong numbering decodes as empty.
pub fn decode_payload(bytes: &[u8], numbering: Numbering) -> Result<Payload, MvdsError> {
    let (acks, offers, requests, raw_messages) = match numbering {
        Numbering::Status2019 => {
            let p = PayloadStatus::decode(bytes).map_err(|e| MvdsError::Protobuf(e.to_string()))?;
            let msgs: Vec<_> = p
                .messages
                .into_iter()
                .map(|m| (m.group_id, m.timestamp, m.body, m.metadata))
                .collect();
            (p.acks, p.offers, p.requests, msgs)
        }
        Numbering::VacHead => {
            let p = PayloadHead::decode(bytes).map_err(|e| MvdsError::Protobuf(e.to_string()))?;
            let msgs: Vec<_> = p
                .messages
                .into_iter()
                .map(|m| (m.group_id, m.timestamp, m.body, m.metadata))
                .collect();
            (p.acks, p.offers, p.requests, msgs)
        }
    };
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (group_id, timestamp, body, metadata) in raw_messages {
        messages.push(Message {
            group_id: id32(&group_id, "group")?,
            timestamp,
            body,
            metadata: meta_from_pb(metadata)?,
        });
    }
    Ok(Payload {
        acks: ids(acks, "ack")?,
        offers: ids(offers, "offer")?,
        requests: ids(requests, "request")?,
        messages,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoded-size accounting, used to split outgoing payloads at a byte limit without re-encoding.

/// Field tags of the four payload lists and of the message fields, per numbering.
fn payload_tags(numbering: Numbering) -> [u32; 4] {
    match numbering {
        Numbering::Status2019 => [5001, 5002, 5003, 5004],
        Numbering::VacHead => [1, 2, 3, 4],
    }
}

fn len_delimited_field(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Bytes one id adds to an encoded payload in list `list` (0 acks, 1 offers, 2 requests).
pub(crate) fn id_entry_len(numbering: Numbering, list: usize) -> usize {
    let tag = payload_tags(numbering).get(list).copied().unwrap_or(1);
    len_delimited_field(tag, MESSAGE_ID_LEN)
}

/// Bytes one message adds to an encoded payload.
pub fn message_entry_len(message: &Message, numbering: Numbering) -> usize {
    let one = Payload {
        messages: vec![message.clone()],
        ..Payload::default()
    };
    encode_payload(&one, numbering).len()
}

// ---------------------------------------------------------------------------------------------
// Byte-stream framing.

/// Prefixes `payload` with its length as an unsigned LEB128 varint: protobuf's standard
/// "delimited" stream format (Go `gogo/protobuf/io.NewDelimitedWriter`, Java
/// `writeDelimitedTo`). See docs/mvds.md.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + MAX_VARINT_BYTES);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder for a stream of [`encode_frame`] frames.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder rejecting frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            max_frame_bytes,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed, or an error for a
    /// malformed or oversized length (the stream cannot be resynchronised: close it).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, MvdsError> {
        let mut len: u64 = 0;
        let mut header = 0usize;
        loop {
            let Some(&b) = self.buf.get(header) else {
                if header >= MAX_VARINT_BYTES {
                    return Err(MvdsError::BadFrameLength);
                }
                return Ok(None);
            };
            if header >= MAX_VARINT_BYTES {
                return Err(MvdsError::BadFrameLength);
            }
            len |= u64::from(b & 0x7f)
                .checked_shl(7 * header as u32)
                .unwrap_or(0);
            header += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let len = usize::try_from(len).map_err(|_| MvdsError::BadFrameLength)?;
        if len > self.max_frame_bytes {
            return Err(MvdsError::FrameTooLarge {
                size: len,
                max: self.max_frame_bytes,
            });
        }
        let end = header.checked_add(len).ok_or(MvdsError::BadFrameLength)?;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf.get(header..end).map(<[u8]>::to_vec);
        self.buf.drain(..end);
        Ok(body)
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}
