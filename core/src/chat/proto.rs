//! The protobuf application layer of status-go ≥ 0.36.2 (first in 4c0d8de, 2019-12-09):
//! `protocol/protobuf/message.proto` of that tree, as `prost` derives (no protoc), plus the
//! conversion between its `ChatMessage` and hush's [`C4Message`] view of a chat message.
//!
//! Contract:
//! - Field numbers, types and enum values are exactly 4c0d8de's (status-chat.md §4
//!   "Successor"; later status-go versions renumbered the enums — the vectors of
//!   `testdata/vectors/go-generated/chat/status-go-4c0d8de.json` pin these). Decoding
//!   (`prost::Message::decode`) is total: any bytes give a value or a `prost::DecodeError`.
//! - [`ChatMessage::to_c4`] maps every field hush uses onto a [`C4Message`] so that one
//!   receive path serves both eras; [`ChatMessage::from_c4`] is its inverse for the fields
//!   status-go's `Messenger.SendChatMessage` sets (clock, timestamp, text, chat_id,
//!   message_type, content_type; response_to and ens_name when present).

use super::transit::{C4Content, C4Message, MessageType};

/// `ApplicationMetadataMessage`: the signed envelope of every protobuf-era payload.
///
/// ```protobuf
/// message ApplicationMetadataMessage {
///   bytes signature = 1;   // Sign(keccak256(payload)), 65 B R‖S‖V, V ∈ {0,1}
///   bytes payload = 2;     // ChatMessage (or g5 Transit for membership updates)
///   MessageType message_type = 3;
/// }
/// ```
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ApplicationMetadataMessage {
    /// 65-byte `Sign(keccak256(payload))`; may be empty (then the Whisper signer is the author).
    #[prost(bytes = "vec", tag = "1")]
    pub signature: Vec<u8>,
    /// The application record.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    /// [`ApplicationMessageType`]; 4c0d8de never sets it (0), membership updates included.
    #[prost(enumeration = "ApplicationMessageType", tag = "3")]
    pub message_type: i32,
}

/// `ApplicationMetadataMessage.MessageType` of 4c0d8de.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ApplicationMessageType {
    /// `TEXT_MESSAGE`.
    TextMessage = 0,
    /// `CONTACT_REQUEST`.
    ContactRequest = 1,
    /// `MEMBERSHIP_UPDATE`.
    MembershipUpdate = 2,
    /// `PAIR_INSTALLATION`.
    PairInstallation = 3,
    /// `SYNC_INSTALLATION`.
    SyncInstallation = 4,
}

/// `StickerMessage` (the `sticker` member of `ChatMessage.payload`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StickerMessage {
    /// Content hash of the sticker.
    #[prost(string, tag = "1")]
    pub hash: String,
    /// Sticker pack id.
    #[prost(int32, tag = "2")]
    pub pack: i32,
}

/// `ChatMessage.payload` (a `oneof`).
#[derive(Clone, PartialEq, Eq, prost::Oneof)]
pub enum ChatPayload {
    /// `StickerMessage sticker = 9`.
    #[prost(message, tag = "9")]
    Sticker(StickerMessage),
}

/// `ChatMessage` of 4c0d8de.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ChatMessage {
    /// Lamport clock.
    #[prost(uint64, tag = "1")]
    pub clock: u64,
    /// Creation time, Unix ms.
    #[prost(uint64, tag = "2")]
    pub timestamp: u64,
    /// The text.
    #[prost(string, tag = "3")]
    pub text: String,
    /// Id of the message replied to.
    #[prost(string, tag = "4")]
    pub response_to: String,
    /// ENS name of the sender.
    #[prost(string, tag = "5")]
    pub ens_name: String,
    /// Public chat name, `"0x" + pubhex` of the recipient (1:1), or group id.
    #[prost(string, tag = "6")]
    pub chat_id: String,
    /// [`ProtoMessageType`].
    #[prost(enumeration = "ProtoMessageType", tag = "7")]
    pub message_type: i32,
    /// [`ProtoContentType`].
    #[prost(enumeration = "ProtoContentType", tag = "8")]
    pub content_type: i32,
    /// Sticker, when `content_type` is `STICKER`.
    #[prost(oneof = "ChatPayload", tags = "9")]
    pub payload: Option<ChatPayload>,
}

/// `ChatMessage.MessageType` of 4c0d8de.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ProtoMessageType {
    /// `ONE_TO_ONE`.
    OneToOne = 0,
    /// `PUBLIC_GROUP`.
    PublicGroup = 1,
    /// `PRIVATE_GROUP`.
    PrivateGroup = 2,
    /// `SYSTEM_MESSAGE_PRIVATE_GROUP` ("only local": never meant for the wire).
    SystemMessagePrivateGroup = 3,
}

/// `ChatMessage.ContentType` of 4c0d8de.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ProtoContentType {
    /// `TEXT_PLAIN`.
    TextPlain = 0,
    /// `STICKER`.
    Sticker = 1,
    /// `STATUS`.
    Status = 2,
    /// `EMOJI`.
    Emoji = 3,
    /// `COMMAND`.
    Command = 4,
    /// `COMMAND_REQUEST`.
    CommandRequest = 5,
}

/// The Transit-era content-type string of a protobuf content type (status-chat.md §6.1).
fn content_type_name(v: i32) -> String {
    match ProtoContentType::try_from(v) {
        Ok(ProtoContentType::TextPlain) => "text/plain".into(),
        Ok(ProtoContentType::Sticker) => "sticker".into(),
        Ok(ProtoContentType::Status) => "status".into(),
        Ok(ProtoContentType::Emoji) => "emoji".into(),
        Ok(ProtoContentType::Command) => "command".into(),
        Ok(ProtoContentType::CommandRequest) => "command-request".into(),
        Err(_) => format!("protobuf-content-type-{v}"),
    }
}

fn content_type_value(name: &str) -> ProtoContentType {
    match name {
        "sticker" => ProtoContentType::Sticker,
        "status" => ProtoContentType::Status,
        "emoji" => ProtoContentType::Emoji,
        "command" => ProtoContentType::Command,
        "command-request" => ProtoContentType::CommandRequest,
        _ => ProtoContentType::TextPlain,
    }
}

impl ChatMessage {
    /// hush's view of the message (see the module contract).
    pub fn to_c4(&self) -> C4Message {
        let message_type = match ProtoMessageType::try_from(self.message_type) {
            Ok(ProtoMessageType::OneToOne) => MessageType::UserMessage,
            Ok(ProtoMessageType::PublicGroup) => MessageType::PublicGroupUserMessage,
            Ok(ProtoMessageType::PrivateGroup) => MessageType::GroupUserMessage,
            Ok(ProtoMessageType::SystemMessagePrivateGroup) => {
                MessageType::Other("system-message-private-group".into())
            }
            Err(_) => MessageType::Other(format!("protobuf-message-type-{}", self.message_type)),
        };
        let mut content = C4Content {
            chat_id: self.chat_id.clone(),
            text: self.text.clone(),
            response_to: (!self.response_to.is_empty()).then(|| self.response_to.clone()),
            name: (!self.ens_name.is_empty()).then(|| self.ens_name.clone()),
            ..Default::default()
        };
        if let Some(ChatPayload::Sticker(s)) = &self.payload {
            content.extra.insert("sticker-hash".into(), s.hash.clone());
            content
                .extra
                .insert("sticker-pack".into(), s.pack.to_string());
        }
        C4Message {
            text: self.text.clone(),
            content_type: content_type_name(self.content_type),
            message_type,
            clock: self.clock,
            timestamp_ms: self.timestamp,
            content,
        }
    }

    /// The protobuf form of a text message hush sends (see the module contract). A message
    /// type with no protobuf equivalent is sent as `ONE_TO_ONE` (0, the default).
    pub fn from_c4(c4: &C4Message) -> ChatMessage {
        let message_type = match c4.message_type {
            MessageType::PublicGroupUserMessage => ProtoMessageType::PublicGroup,
            MessageType::GroupUserMessage => ProtoMessageType::PrivateGroup,
            MessageType::UserMessage | MessageType::Other(_) => ProtoMessageType::OneToOne,
        };
        let text = if c4.content.text.is_empty() {
            c4.text.clone()
        } else {
            c4.content.text.clone()
        };
        ChatMessage {
            clock: c4.clock,
            timestamp: c4.timestamp_ms,
            text,
            response_to: c4.content.response_to.clone().unwrap_or_default(),
            ens_name: c4.content.name.clone().unwrap_or_default(),
            chat_id: c4.content.chat_id.clone(),
            message_type: message_type as i32,
            content_type: content_type_value(&c4.content_type) as i32,
            payload: None,
        }
    }
}
