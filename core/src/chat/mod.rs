//! Status chat codec pieces (status-chat.md): Transit `c4` messages, the protobuf
//! `ChatMessage` of status-go ≥ 0.36.2 ([`proto`]), both eras' wrappers and message ids
//! ([`app`]), public-chat topic/key and the Lamport clock.
//!
//! Contract: pure functions and small value types; every decoder is total and returns a
//! [`ChatError`]. [`service::PublicChats`] keeps the per-chat state (clocks, dedup) and is
//! wired to Whisper by `crate::node`.

pub mod app;
pub mod clock;
pub mod direct;
pub mod format;
pub mod group;
pub mod groups;
pub mod proto;
pub mod public;
pub mod service;
pub mod topics;
pub mod transit;
pub mod wrapper;

pub use clock::LamportClock;
pub use public::{message_id, public_chat_key, public_chat_topic};
pub use service::{ChatConfig, ChatMessage, ChatServiceError, PublicChats, Rejected};
pub use transit::{C4Content, C4Message, MessageType};
pub use wrapper::{unwrap_payload, wrap_payload, StatusProtocolMessage, Unwrapped};

/// Errors of the chat codecs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// Not UTF-8 JSON.
    #[error("chat: invalid json: {0}")]
    Json(String),
    /// JSON, but not the Transit structure expected.
    #[error("chat: invalid transit: {0}")]
    Transit(&'static str),
    /// A tagged value with a tag other than the one expected.
    #[error("chat: unexpected transit tag {0:?}")]
    UnexpectedTag(String),
    /// A `^` cache reference to an entry that does not exist.
    #[error("chat: bad transit cache reference {0:?}")]
    BadCacheRef(String),
    /// Protobuf wrapper did not decode.
    #[error("chat: protobuf: {0}")]
    Protobuf(String),
    /// A wrapper signature that does not recover a key.
    #[error("chat: bad wrapper signature")]
    BadSignature,
    /// A `g5` event whose `type` is not one of the seven 2019 event types.
    #[error("chat: unknown group event type {0:?}")]
    UnknownGroupEvent(String),
}

impl From<group::GroupError> for ChatError {
    fn from(e: group::GroupError) -> Self {
        match e {
            group::GroupError::Decode(e) => e,
            group::GroupError::UnknownEventType(t) => ChatError::UnknownGroupEvent(t),
            // Only the two above come out of decoding.
            _ => ChatError::Transit("g5"),
        }
    }
}

#[cfg(test)]
mod go_vectors;
#[cfg(test)]
mod tests;
