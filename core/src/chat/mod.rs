//! Status chat codec pieces (status-chat.md): Transit `c4` messages, public-chat topic/key,
//! the Lamport clock, the StatusProtocolMessage wrapper and the message id.
//!
//! Contract: pure functions and small value types; every decoder is total and returns a
//! [`ChatError`]. [`service::PublicChats`] keeps the per-chat state (clocks, dedup) and is
//! wired to Whisper by `crate::node`.

pub mod clock;
pub mod direct;
pub mod group;
pub mod groups;
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
}

#[cfg(test)]
mod tests;
