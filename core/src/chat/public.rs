//! Public chats: topic, symmetric key and message id (status-chat.md §2, §4).

use secp256k1::PublicKey;

use crate::keccak::{keccak256, keccak256_concat};
use crate::whisper::{sym_key_from_password, Topic};

/// Topic of public chat `name`: `keccak256(utf8(name))[0..4]` [SG-tr `toTopic`].
pub fn public_chat_topic(name: &str) -> Topic {
    Topic::from_bytes(&keccak256(name.as_bytes()))
}

/// Whisper symmetric key of public chat `name`: PBKDF2 of the name (whisper-v6.md §8).
pub fn public_chat_key(name: &str) -> [u8; 32] {
    sym_key_from_password(name.as_bytes())
}

/// Message id = `keccak256(author pubkey, 65-byte uncompressed ‖ wrapped bytes)`, where
/// `wrapped` is the serialized StatusProtocolMessage if the payload was wrapped, else the raw
/// Transit bytes, and `author` is the key recovered from the wrapper signature, else the
/// Whisper signer [SG36-v1 `MessageID`].
pub fn message_id(author: &PublicKey, wrapped: &[u8]) -> [u8; 32] {
    keccak256_concat(&[&author.serialize_uncompressed(), wrapped])
}
