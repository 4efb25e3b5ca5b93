//! Public chats: topic, symmetric key and message id (status-chat.md §2, §4).

use std::collections::BTreeMap;
use std::sync::Mutex;

use secp256k1::PublicKey;

use crate::keccak::{keccak256, keccak256_concat};
use crate::whisper::{sym_key_from_password, Topic};

/// Topic of public chat `name`: `keccak256(utf8(name))[0..4]` [SG-tr `toTopic`].
pub fn public_chat_topic(name: &str) -> Topic {
    Topic::from_bytes(&keccak256(name.as_bytes()))
}

/// Public-chat keys remembered per process. PBKDF2 with 65356 iterations costs ~20 ms; a
/// simulator joining 10,000 nodes to one chat, or a node re-joining, would redo the same
/// work. Names are public and so are their keys, so sharing them costs no secrecy.
pub const PUBLIC_KEY_CACHE_ENTRIES: usize = 1024;

/// Whisper symmetric key of public chat `name`: PBKDF2 of the name (whisper-v6.md §8).
///
/// A pure function, memoised process-wide (bounded by [`PUBLIC_KEY_CACHE_ENTRIES`]; the cache
/// is cleared when full). Only public-chat keys are cached: keys derived from secrets
/// (negotiated topics) never enter it.
pub fn public_chat_key(name: &str) -> [u8; 32] {
    static CACHE: Mutex<BTreeMap<String, [u8; 32]>> = Mutex::new(BTreeMap::new());
    if let Ok(cache) = CACHE.lock() {
        if let Some(key) = cache.get(name) {
            return *key;
        }
    }
    let key = sym_key_from_password(name.as_bytes());
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= PUBLIC_KEY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(name.to_string(), key);
    }
    key
}

/// Message id = `keccak256(author pubkey, 65-byte uncompressed ‖ wrapped bytes)`, where
/// `wrapped` is the serialized StatusProtocolMessage if the payload was wrapped, else the raw
/// Transit bytes, and `author` is the key recovered from the wrapper signature, else the
/// Whisper signer [SG36-v1 `MessageID`].
pub fn message_id(author: &PublicKey, wrapped: &[u8]) -> [u8; 32] {
    keccak256_concat(&[&author.serialize_uncompressed(), wrapped])
}
