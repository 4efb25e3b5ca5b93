//! The state behind geth's `shh_` JSON-RPC API (go-ethereum 1.9 / status-im/whisper 1.6
//! `whisperv6/api.go`): a key store (ids → key pairs and symmetric keys) and API message
//! filters with bounded polling buffers. The node ([`crate::node`]) owns one and routes the
//! Whisper deliveries of API filters to it instead of to the chat layer.
//!
//! Contract:
//! - Ids are 32 random bytes as 64 lowercase hex characters without `0x`, like Go's
//!   `GenerateRandomID`, drawn from the machine's own seeded RNG; an id is never reused while
//!   its key or filter exists. Key pairs, symmetric keys and filters each have a limit
//!   ([`ApiConfig`]); past it a new one is refused ([`ApiError::TooMany`]).
//! - A polled filter keeps at most [`ApiConfig::max_filter_messages`] undelivered messages
//!   (Go's `Filter.Messages` map has no bound): past it the oldest is dropped and counted
//!   ([`ApiStats::filter_messages_dropped`]). A pushed filter (`shh_subscribe`) keeps nothing:
//!   each message goes out at once as a [`PushedMessage`]; the driver bounds its own queue.
//! - A filter with a signer (`Criteria.sig`) drops messages not signed by that key (Go
//!   `Filter.MatchMessage`), counted in [`ApiStats::signer_mismatches`].
//! - Secret keys never appear in `Debug` output.

use std::collections::{BTreeMap, VecDeque};

use rand_core::RngCore;
use secp256k1::{PublicKey, SecretKey};

use super::{sym_key_from_password, FilterId, ReceivedMessage, Topic, AES_KEY_LEN};
use crate::ecies::random_secret_key;
use crate::rng::{rng_from_seed, Rng, Seed};

/// Bytes of randomness in a key or filter id (Go `keyIDSize`).
pub const API_ID_BYTES: usize = 32;
/// Key pairs held at most by default.
pub const DEFAULT_MAX_API_KEY_PAIRS: usize = 1024;
/// Symmetric keys held at most by default.
pub const DEFAULT_MAX_API_SYM_KEYS: usize = 1024;
/// API filters (polled and pushed) held at most by default; each is also a Whisper filter, so
/// the Whisper filter table's own limit applies too.
pub const DEFAULT_MAX_API_FILTERS: usize = 256;
/// Undelivered messages one polled filter keeps at most by default (oldest dropped first).
pub const DEFAULT_MAX_FILTER_MESSAGES: usize = 1024;

/// Limits of the API state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// Key pairs held at most.
    pub max_key_pairs: usize,
    /// Symmetric keys held at most.
    pub max_sym_keys: usize,
    /// Filters held at most.
    pub max_filters: usize,
    /// Undelivered messages a polled filter keeps at most.
    pub max_filter_messages: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_key_pairs: DEFAULT_MAX_API_KEY_PAIRS,
            max_sym_keys: DEFAULT_MAX_API_SYM_KEYS,
            max_filters: DEFAULT_MAX_API_FILTERS,
            max_filter_messages: DEFAULT_MAX_FILTER_MESSAGES,
        }
    }
}

/// Refusals of the API state (texts follow Go's where Go has one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No key (pair or symmetric) with this id.
    #[error("non-existent key ID")]
    UnknownKey,
    /// No filter with this id.
    #[error("filter not found")]
    UnknownFilter,
    /// A limit of [`ApiConfig`] is reached.
    #[error("too many {what} (at most {max})")]
    TooMany {
        /// What.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not a valid secp256k1 secret key.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// A symmetric key that is not 32 bytes or is all zero (Go `validateDataIntegrity`).
    #[error("invalid symmetric key")]
    InvalidSymmetricKey,
}

/// A message as the API reports it (Go `whisperv6.Message`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiMessage {
    /// The signer's public key (65 bytes, `0x04`‖X‖Y), if signed.
    pub sig: Option<[u8; 65]>,
    /// Envelope TTL, seconds.
    pub ttl_secs: u32,
    /// `Expiry - TTL`, Unix seconds.
    pub timestamp_secs: u32,
    /// Envelope topic.
    pub topic: Topic,
    /// Payload.
    pub payload: Vec<u8>,
    /// Padding.
    pub padding: Vec<u8>,
    /// PoW as computed by this node.
    pub pow: f64,
    /// Envelope hash.
    pub hash: [u8; 32],
    /// The recipient's public key (65 bytes) of an asymmetric message.
    pub recipient: Option<[u8; 65]>,
}

impl ApiMessage {
    fn from_received(m: &ReceivedMessage, recipient: Option<&PublicKey>) -> ApiMessage {
        ApiMessage {
            sig: m.signer.map(|k| k.serialize_uncompressed()),
            ttl_secs: m.ttl_secs,
            timestamp_secs: m.sent_secs,
            topic: m.topic,
            payload: m.payload.clone(),
            padding: m.padding.clone(),
            pow: m.pow,
            hash: m.envelope_hash,
            recipient: recipient.map(PublicKey::serialize_uncompressed),
        }
    }
}

/// A message for a pushed filter (`shh_subscribe`), to go out at once.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedMessage {
    /// The filter (subscription) id.
    pub filter: String,
    /// The message.
    pub message: ApiMessage,
}

/// How an API filter hands out its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// Kept until `shh_getFilterMessages` (bounded).
    Polled,
    /// Pushed at once (`shh_subscribe`).
    Pushed,
}

/// Counters of the API state (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Messages dropped from a full polled filter (oldest first).
    pub filter_messages_dropped: u64,
    /// Messages a filter with a signer refused (other or no signer).
    pub signer_mismatches: u64,
    /// Messages delivered to API filters (polled or pushed).
    pub messages_delivered: u64,
    /// New keys or filters refused at a limit.
    pub limit_refusals: u64,
}

struct ApiFilter {
    whisper: FilterId,
    signer: Option<PublicKey>,
    /// Public key of the filter's private key (asymmetric filters): reported as the recipient.
    recipient: Option<PublicKey>,
    mode: FilterMode,
    buffer: VecDeque<ApiMessage>,
}

/// The key store and API filters.
pub struct ShhApi {
    config: ApiConfig,
    rng: Rng,
    key_pairs: BTreeMap<String, SecretKey>,
    sym_keys: BTreeMap<String, [u8; AES_KEY_LEN]>,
    filters: BTreeMap<String, ApiFilter>,
    by_whisper: BTreeMap<FilterId, String>,
    stats: ApiStats,
}

impl std::fmt::Debug for ShhApi {
    // Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShhApi")
            .field("key_pairs", &self.key_pairs.len())
            .field("sym_keys", &self.sym_keys.len())
            .field("filters", &self.filters.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// True for a key Go's `validateDataIntegrity(k, 32)` accepts: 32 bytes, not all zero.
pub fn valid_sym_key(key: &[u8]) -> bool {
    key.len() == AES_KEY_LEN && key.iter().any(|&b| b != 0)
}

impl ShhApi {
    /// Empty state; ids and keys come from an RNG seeded with `seed`.
    pub fn new(config: ApiConfig, seed: Seed) -> ShhApi {
        ShhApi {
            config,
            rng: rng_from_seed(seed),
            key_pairs: BTreeMap::new(),
            sym_keys: BTreeMap::new(),
            filters: BTreeMap::new(),
            by_whisper: BTreeMap::new(),
            stats: ApiStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ApiStats {
        &self.stats
    }

    /// A fresh id not used by any key or filter.
    fn new_id(&mut self) -> String {
        loop {
            let mut b = [0u8; API_ID_BYTES];
            self.rng.fill_bytes(&mut b);
            let id = hex::encode(b);
            if !self.key_pairs.contains_key(&id)
                && !self.sym_keys.contains_key(&id)
                && !self.filters.contains_key(&id)
            {
                return id;
            }
        }
    }

    fn refuse(&mut self, what: &'static str, max: usize) -> ApiError {
        self.stats.limit_refusals += 1;
        ApiError::TooMany { what, max }
    }

    /// Draws a new key pair (`shh_newKeyPair`).
    pub fn new_key_pair(&mut self) -> Result<String, ApiError> {
        let key = random_secret_key(&mut self.rng);
        self.add_key_pair(key)
    }

    /// Imports a secret key (`shh_addPrivateKey`).
    pub fn add_private_key(&mut self, secret: &[u8]) -> Result<String, ApiError> {
        let bytes: [u8; 32] = secret.try_into().map_err(|_| ApiError::InvalidPrivateKey)?;
        let key = SecretKey::from_byte_array(&bytes).map_err(|_| ApiError::InvalidPrivateKey)?;
        self.add_key_pair(key)
    }

    fn add_key_pair(&mut self, key: SecretKey) -> Result<String, ApiError> {
        if self.key_pairs.len() >= self.config.max_key_pairs {
            return Err(self.refuse("key pairs", self.config.max_key_pairs));
        }
        let id = self.new_id();
        self.key_pairs.insert(id.clone(), key);
        Ok(id)
    }

    /// The secret key of a key pair.
    pub fn key_pair(&self, id: &str) -> Result<&SecretKey, ApiError> {
        self.key_pairs.get(id).ok_or(ApiError::UnknownKey)
    }

    /// Whether a key pair exists.
    pub fn has_key_pair(&self, id: &str) -> bool {
        self.key_pairs.contains_key(id)
    }

    /// Deletes a key pair; false if there was none.
    pub fn delete_key_pair(&mut self, id: &str) -> bool {
        self.key_pairs.remove(id).is_some()
    }

    /// Draws a new symmetric key (`shh_newSymKey`).
    pub fn new_sym_key(&mut self) -> Result<String, ApiError> {
        let mut key = [0u8; AES_KEY_LEN];
        while !valid_sym_key(&key) {
            self.rng.fill_bytes(&mut key);
        }
        self.insert_sym_key(key)
    }

    /// Imports a symmetric key (`shh_addSymKey`).
    pub fn add_sym_key(&mut self, key: &[u8]) -> Result<String, ApiError> {
        if !valid_sym_key(key) {
            return Err(ApiError::InvalidSymmetricKey);
        }
        let mut k = [0u8; AES_KEY_LEN];
        k.copy_from_slice(key);
        self.insert_sym_key(k)
    }

    /// Derives a symmetric key from a password (PBKDF2, whisper-v6.md §8) and stores it
    /// (`shh_generateSymKeyFromPassword`).
    pub fn add_sym_key_from_password(&mut self, password: &[u8]) -> Result<String, ApiError> {
        if self.sym_keys.len() >= self.config.max_sym_keys {
            return Err(self.refuse("symmetric keys", self.config.max_sym_keys));
        }
        let key = sym_key_from_password(password);
        self.insert_sym_key(key)
    }

    fn insert_sym_key(&mut self, key: [u8; AES_KEY_LEN]) -> Result<String, ApiError> {
        if self.sym_keys.len() >= self.config.max_sym_keys {
            return Err(self.refuse("symmetric keys", self.config.max_sym_keys));
        }
        let id = self.new_id();
        self.sym_keys.insert(id.clone(), key);
        Ok(id)
    }

    /// A symmetric key.
    pub fn sym_key(&self, id: &str) -> Result<&[u8; AES_KEY_LEN], ApiError> {
        self.sym_keys.get(id).ok_or(ApiError::UnknownKey)
    }

    /// Whether a symmetric key exists.
    pub fn has_sym_key(&self, id: &str) -> bool {
        self.sym_keys.contains_key(id)
    }

    /// Deletes a symmetric key; false if there was none.
    pub fn delete_sym_key(&mut self, id: &str) -> bool {
        self.sym_keys.remove(id).is_some()
    }

    /// True when one more filter may be added.
    pub fn filter_room(&mut self) -> Result<(), ApiError> {
        if self.filters.len() >= self.config.max_filters {
            return Err(self.refuse("filters", self.config.max_filters));
        }
        Ok(())
    }

    /// Records an API filter installed in Whisper as `whisper`; returns its id. `signer`:
    /// only messages signed by it are kept; `recipient`: the public key of an asymmetric
    /// filter's key.
    pub fn add_filter(
        &mut self,
        whisper: FilterId,
        signer: Option<PublicKey>,
        recipient: Option<PublicKey>,
        mode: FilterMode,
    ) -> Result<String, ApiError> {
        self.filter_room()?;
        let id = self.new_id();
        self.filters.insert(
            id.clone(),
            ApiFilter {
                whisper,
                signer,
                recipient,
                mode,
                buffer: VecDeque::new(),
            },
        );
        self.by_whisper.insert(whisper, id.clone());
        Ok(id)
    }

    /// Removes a filter of the given mode; returns the Whisper filter to remove with it.
    pub fn remove_filter(&mut self, id: &str, mode: FilterMode) -> Result<FilterId, ApiError> {
        match self.filters.get(id) {
            Some(f) if f.mode == mode => {}
            _ => return Err(ApiError::UnknownFilter),
        }
        let f = self.filters.remove(id).ok_or(ApiError::UnknownFilter)?;
        self.by_whisper.remove(&f.whisper);
        Ok(f.whisper)
    }

    /// Whether a Whisper filter belongs to the API.
    pub fn owns(&self, whisper: FilterId) -> bool {
        self.by_whisper.contains_key(&whisper)
    }

    /// Takes the messages a polled filter kept, oldest first (`shh_getFilterMessages`).
    pub fn take_messages(&mut self, id: &str) -> Result<Vec<ApiMessage>, ApiError> {
        match self.filters.get_mut(id) {
            Some(f) if f.mode == FilterMode::Polled => Ok(f.buffer.drain(..).collect()),
            _ => Err(ApiError::UnknownFilter),
        }
    }

    /// A Whisper delivery to an API filter: kept (polled) or returned to push.
    pub fn deliver(&mut self, whisper: FilterId, m: &ReceivedMessage) -> Option<PushedMessage> {
        let id = self.by_whisper.get(&whisper)?;
        let f = self.filters.get_mut(id)?;
        if f.signer.is_some() && f.signer != m.signer {
            self.stats.signer_mismatches += 1;
            return None;
        }
        self.stats.messages_delivered += 1;
        let message = ApiMessage::from_received(m, f.recipient.as_ref());
        match f.mode {
            FilterMode::Pushed => Some(PushedMessage {
                filter: id.clone(),
                message,
            }),
            FilterMode::Polled => {
                if f.buffer.len() >= self.config.max_filter_messages {
                    f.buffer.pop_front();
                    self.stats.filter_messages_dropped += 1;
                }
                f.buffer.push_back(message);
                None
            }
        }
    }

    /// Counters as `(name, value)` for `/stats`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("key_pairs", self.key_pairs.len() as u64),
            ("sym_keys", self.sym_keys.len() as u64),
            ("filters", self.filters.len() as u64),
            ("messages_delivered", self.stats.messages_delivered),
            (
                "filter_messages_dropped",
                self.stats.filter_messages_dropped,
            ),
            ("signer_mismatches", self.stats.signer_mismatches),
            ("limit_refusals", self.stats.limit_refusals),
        ]
    }
}

#[cfg(test)]
mod tests;
