//! The application layer of both late-2019 eras, as one codec: what a decrypted (or
//! public-chat) payload is, who wrote it, its message id, and the bytes hush sends in the form
//! a chat is set to.
//!
//! | era | status-go | payload forms | message id over |
//! |---|---|---|---|
//! | Transit | ≤ v0.36.0 | bare Transit `c4`/`g5`; or StatusProtocolMessage `{4001 signature, 4002 payload}` | the bytes as carried |
//! | protobuf | ≥ 0.36.2 (4c0d8de) | `ApplicationMetadataMessage {1 signature, 2 payload, 3 type}` around a protobuf `ChatMessage`, or around `g5` Transit for membership updates | the `ApplicationMetadataMessage` bytes |
//!
//! Contract:
//! - [`decode_app`] accepts every form of both eras (status-chat.md §4; status-go v0.36.0
//!   `HandleApplicationMetadata`/`HandleApplication`, 4c0d8de the same with its protobufs): bytes
//!   whose first non-blank byte is `[` are bare Transit; anything else must be a protobuf
//!   wrapper with a non-empty payload — field 4002 makes it the v0.36 StatusProtocolMessage
//!   (payload: Transit), field 2 the protobuf-era `ApplicationMetadataMessage` (payload: Transit
//!   when it starts with `[`, else a protobuf `ChatMessage`). A wrapper signature, when
//!   present, must recover a key (else [`ChatError::BadSignature`]); that key is the author,
//!   otherwise the Whisper signer is. Message id = `keccak256(author 65 B ‖ bytes as
//!   received)` in both eras. Total: any bytes give an [`AppPayload`] or a typed error.
//! - [`encode_message`] / [`encode_membership`] write what each era's status-go writes: Transit
//!   (bare, or signed StatusProtocolMessage when `wrap_v1`) or a signed
//!   `ApplicationMetadataMessage` (`message_type` left 0, as 4c0d8de leaves it, also around
//!   `g5`).

use prost::Message as _;
use secp256k1::{PublicKey, SecretKey};

use super::group::MembershipUpdateMessage;
use super::proto::{ApplicationMetadataMessage, ChatMessage};
use super::public::message_id;
use super::transit::{decode_top, C4Message, Tv, C4_TAG};
use super::wrapper::wrap_payload;
use super::ChatError;
use crate::keccak::keccak256;
use crate::whisper::{recover_signer, sign_recoverable, SIGNATURE_LEN};

/// The application-layer form of a payload: which era's status-go reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayloadFormat {
    /// Transit records, bare or in a StatusProtocolMessage (status-go ≤ v0.36.0, status-react
    /// of 2019). status-go 4c0d8de and later drop it.
    #[default]
    Transit,
    /// A signed `ApplicationMetadataMessage` around protobuf `ChatMessage` (status-go ≥ 0.36.2,
    /// the Status v1 app of early 2020). status-go v0.36.0 and earlier drop it.
    Protobuf,
}

impl PayloadFormat {
    /// `transit` or `protobuf`.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Transit => "transit",
            PayloadFormat::Protobuf => "protobuf",
        }
    }
}

/// The wrapper a payload arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// Bare Transit.
    Bare,
    /// v0.36 StatusProtocolMessage (fields 4001/4002).
    StatusProtocolMessage,
    /// protobuf-era `ApplicationMetadataMessage` (fields 1/2/3).
    ApplicationMetadata,
}

/// The record inside a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRecord {
    /// A chat message: a Transit `c4`, or a protobuf `ChatMessage` seen as one
    /// ([`ChatMessage::to_c4`]).
    Message(C4Message),
    /// A `g5` membership update (with its optional `c4`).
    Membership(MembershipUpdateMessage),
    /// A Transit record of another tag (`p1`, `p2`, `c2`…): not handled by hush.
    OtherTransit(String),
}

/// A decoded application payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPayload {
    /// Which era's form it was in.
    pub format: PayloadFormat,
    /// The wrapper it came in.
    pub wrapper: Wrapper,
    /// The author: the wrapper signer, else the Whisper signer.
    pub author: PublicKey,
    /// `keccak256(author ‖ bytes as received)`.
    pub id: [u8; 32],
    /// The record.
    pub record: AppRecord,
}

/// The wrapper fields of both eras in one message, so that one decode tells them apart
/// (each era's decoder skips the other's fields as unknown).
#[derive(Clone, PartialEq, Eq, prost::Message)]
struct AnyWrapper {
    #[prost(bytes = "vec", tag = "1")]
    signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    payload: Vec<u8>,
    #[prost(int32, tag = "3")]
    message_type: i32,
    #[prost(bytes = "vec", tag = "4001")]
    v1_signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "4002")]
    v1_payload: Vec<u8>,
}

/// True if the bytes are JSON text starting with an array (Transit), judged by the first
/// non-blank byte; no protobuf status-go writes starts that way (it would be a group, field 11).
fn is_transit(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .is_some_and(|b| *b == b'[')
}

/// Recovers the signer of `keccak256(payload)`; an empty signature means "none".
fn wrapper_author(signature: &[u8], payload: &[u8]) -> Result<Option<PublicKey>, ChatError> {
    if signature.is_empty() {
        return Ok(None);
    }
    let sig: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| ChatError::BadSignature)?;
    recover_signer(&sig, &keccak256(payload))
        .map(Some)
        .map_err(|_| ChatError::BadSignature)
}

/// Decodes one Transit value as a `c4`, a `g5` or another record.
pub fn decode_transit_record(bytes: &[u8]) -> Result<AppRecord, ChatError> {
    let tv = decode_top(bytes)?;
    let tag = match &tv {
        Tv::Tagged(tag, _) => tag.clone(),
        _ => return Err(ChatError::Transit("not a tagged value")),
    };
    match tag.as_str() {
        C4_TAG => C4Message::from_tv(tv).map(AppRecord::Message),
        super::group::G5_TAG => MembershipUpdateMessage::from_tv(tv)
            .map(AppRecord::Membership)
            .map_err(ChatError::from),
        _ => Ok(AppRecord::OtherTransit(tag)),
    }
}

/// Decodes an application payload of either era (see the module contract).
pub fn decode_app(bytes: &[u8], whisper_signer: &PublicKey) -> Result<AppPayload, ChatError> {
    let (format, wrapper, author, record) = if is_transit(bytes) {
        let record = decode_transit_record(bytes)?;
        (PayloadFormat::Transit, Wrapper::Bare, None, record)
    } else {
        let w = AnyWrapper::decode(bytes).map_err(|e| ChatError::Protobuf(e.to_string()))?;
        if !w.v1_payload.is_empty() {
            let author = wrapper_author(&w.v1_signature, &w.v1_payload)?;
            let record = decode_transit_record(&w.v1_payload)?;
            (
                PayloadFormat::Transit,
                Wrapper::StatusProtocolMessage,
                author,
                record,
            )
        } else if !w.payload.is_empty() {
            let author = wrapper_author(&w.signature, &w.payload)?;
            let record = if is_transit(&w.payload) {
                decode_transit_record(&w.payload)?
            } else {
                let m = ChatMessage::decode(w.payload.as_slice())
                    .map_err(|e| ChatError::Protobuf(e.to_string()))?;
                AppRecord::Message(m.to_c4())
            };
            (
                PayloadFormat::Protobuf,
                Wrapper::ApplicationMetadata,
                author,
                record,
            )
        } else {
            return Err(ChatError::Protobuf("wrapper without payload".into()));
        }
    };
    let author = author.unwrap_or(*whisper_signer);
    Ok(AppPayload {
        format,
        wrapper,
        id: message_id(&author, bytes),
        author,
        record,
    })
}

/// Wraps `payload` in a signed `ApplicationMetadataMessage` (4c0d8de `WrapMessageV1`).
pub fn wrap_application_metadata(payload: &[u8], identity: &SecretKey) -> Vec<u8> {
    ApplicationMetadataMessage {
        signature: sign_recoverable(identity, &keccak256(payload)).to_vec(),
        payload: payload.to_vec(),
        message_type: 0,
    }
    .encode_to_vec()
}

/// The one text that crashes status-go v0.36.0's Transit decoder when it is the first element
/// of an array (its `^ ` map marker, once the `~^` escape is undone).
pub const GO_TRANSIT_PANIC_TEXT: &str = "^ ";

/// The bytes of a chat message in `format`: Transit `c4` (bare, or a signed
/// StatusProtocolMessage when `wrap_v1`), or a signed `ApplicationMetadataMessage` around the
/// protobuf `ChatMessage`. A Transit text equal to [`GO_TRANSIT_PANIC_TEXT`] is written in the
/// content map only (index 0 empty), so that v0.36.0 peers do not crash on it.
pub fn encode_message(
    format: PayloadFormat,
    c4: &C4Message,
    identity: &SecretKey,
    wrap_v1: bool,
) -> Vec<u8> {
    match format {
        PayloadFormat::Transit if c4.text == GO_TRANSIT_PANIC_TEXT => {
            // status-go v0.36.0's Transit decoder reads "^ " at index 0 of the c4 array as
            // the map marker and panics (index out of range). Readers take the text from the
            // content map, so index 0 stays empty for this one text.
            let c4 = C4Message {
                text: String::new(),
                ..c4.clone()
            };
            transit_bytes(&c4.encode(), identity, wrap_v1)
        }
        PayloadFormat::Transit => transit_bytes(&c4.encode(), identity, wrap_v1),
        PayloadFormat::Protobuf => {
            wrap_application_metadata(&ChatMessage::from_c4(c4).encode_to_vec(), identity)
        }
    }
}

/// The bytes of a membership update in `format`: `g5` Transit in both eras, bare (or in a
/// signed StatusProtocolMessage when `wrap_v1`) or in a signed `ApplicationMetadataMessage`.
pub fn encode_membership(
    format: PayloadFormat,
    g5: &MembershipUpdateMessage,
    identity: &SecretKey,
    wrap_v1: bool,
) -> Vec<u8> {
    let transit = g5.encode();
    match format {
        PayloadFormat::Transit => transit_bytes(&transit, identity, wrap_v1),
        PayloadFormat::Protobuf => wrap_application_metadata(&transit, identity),
    }
}

fn transit_bytes(transit: &[u8], identity: &SecretKey, wrap_v1: bool) -> Vec<u8> {
    if wrap_v1 {
        wrap_payload(transit, Some(identity))
    } else {
        transit.to_vec()
    }
}

#[cfg(test)]
mod tests;
