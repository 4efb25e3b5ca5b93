//! The node's `shh_` API (geth 1.9 / status-im/whisper 1.6 `whisperv6/api.go`): typed
//! requests ([`ShhRequest`]) answered at once ([`ShhResponse`]) from the node's
//! [`ShhApi`] key store and filters and its Whisper machine. The JSON-RPC encoding is the
//! driver's (drivers/src/rpc/); nothing here knows JSON.
//!
//! Contract: checks and error texts follow Go's `PublicWhisperAPI` (`ErrSymAsym`, `ErrNoTopics`,
//! `ErrTooLowPoW`, ...). API filters are Whisper filters whose deliveries go to the API, never
//! to the chat layer; a subscription's messages leave as [`Event::ShhMessage`].

use secp256k1::PublicKey;

use super::*;
use crate::ecies::pubkey_from_wire;
use crate::whisper::api::{ApiError, ApiMessage, FilterMode, ShhApi};
use crate::whisper::{Bloom, Encryption, MessageParams, Topic, BLOOM_LEN};

/// Protocol version string `shh_version` returns (Go `ProtocolVersionStr`).
pub const SHH_VERSION: &str = "6.0";

/// Domain separator deriving the API's RNG seed (key and filter ids, new keys) from the node
/// seed, leaving the other machines' seeds as they were.
pub(super) const SHH_API_SEED_LABEL: &[u8] = b"hush/node/shh-api";

/// A message to post (Go `NewMessage`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewMessage {
    /// Id of the symmetric key to encrypt with.
    pub sym_key_id: Option<String>,
    /// Public key (65 or 64 bytes) to encrypt to.
    pub pub_key: Option<Vec<u8>>,
    /// Id of the key pair to sign with.
    pub sig: Option<String>,
    /// TTL, seconds (0 = the Whisper default).
    pub ttl_secs: u32,
    /// Topic (required with a symmetric key).
    pub topic: Topic,
    /// Payload.
    pub payload: Vec<u8>,
    /// Explicit padding (empty = random).
    pub padding: Vec<u8>,
    /// Go's PoW search time; hush seals until `pow_target` is reached (bounded by the
    /// Whisper nonce budget), so it is accepted and not used.
    pub pow_time_secs: u32,
    /// PoW target.
    pub pow_target: f64,
    /// Send to this connected peer only, as a P2P message (code 127), not gossiped.
    pub target_peer: Option<NodePublicKey>,
}

/// A filter's criteria (Go `Criteria`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Criteria {
    /// Id of the symmetric key to try.
    pub sym_key_id: Option<String>,
    /// Id of the key pair whose private key opens asymmetric messages.
    pub private_key_id: Option<String>,
    /// Only messages signed by this public key (65 or 64 bytes).
    pub sig: Option<Vec<u8>>,
    /// Minimum PoW.
    pub min_pow: f64,
    /// Topics (required with a symmetric key; empty = every topic).
    pub topics: Vec<Topic>,
    /// Also messages that came as direct P2P messages.
    pub allow_p2p: bool,
}

/// A `shh_` call.
#[derive(Clone, Debug, PartialEq)]
pub enum ShhRequest {
    /// `shh_version`.
    Version,
    /// `shh_info`.
    Info,
    /// `shh_setMaxMessageSize`.
    SetMaxMessageSize(u32),
    /// `shh_setMinPoW`.
    SetMinPow(f64),
    /// `shh_setBloomFilter`.
    SetBloomFilter(Vec<u8>),
    /// `shh_markTrustedPeer` (the enode's key).
    MarkTrustedPeer(NodePublicKey),
    /// `shh_newKeyPair`.
    NewKeyPair,
    /// `shh_addPrivateKey`.
    AddPrivateKey(Vec<u8>),
    /// `shh_deleteKeyPair`.
    DeleteKeyPair(String),
    /// `shh_hasKeyPair`.
    HasKeyPair(String),
    /// `shh_getPublicKey`.
    GetPublicKey(String),
    /// `shh_getPrivateKey`.
    GetPrivateKey(String),
    /// `shh_newSymKey`.
    NewSymKey,
    /// `shh_addSymKey`.
    AddSymKey(Vec<u8>),
    /// `shh_generateSymKeyFromPassword`.
    GenerateSymKeyFromPassword(String),
    /// `shh_hasSymKey`.
    HasSymKey(String),
    /// `shh_getSymKey`.
    GetSymKey(String),
    /// `shh_deleteSymKey`.
    DeleteSymKey(String),
    /// `shh_post`.
    Post(NewMessage),
    /// `shh_newMessageFilter`.
    NewMessageFilter(Criteria),
    /// `shh_getFilterMessages`.
    GetFilterMessages(String),
    /// `shh_deleteMessageFilter`.
    DeleteMessageFilter(String),
    /// `shh_subscribe("messages", criteria)`: messages leave as [`Event::ShhMessage`].
    Subscribe(Criteria),
    /// `shh_unsubscribe`.
    Unsubscribe(String),
}

/// Diagnostic information (Go `Info`).
#[derive(Clone, Debug, PartialEq)]
pub struct ShhInfo {
    /// Bytes of pooled envelopes.
    pub memory_bytes: u64,
    /// Pooled envelopes (Go counts its incoming queues, almost always empty).
    pub messages: u64,
    /// Our minimum PoW.
    pub min_pow: f64,
    /// Our maximum message size, bytes.
    pub max_message_size: u32,
}

/// The answer to a `shh_` call.
#[derive(Clone, Debug, PartialEq)]
pub enum ShhResponse {
    /// A boolean.
    Bool(bool),
    /// A string (an id, the version).
    Text(String),
    /// Bytes (keys, a hash), hex-encoded by the driver.
    Bytes(Vec<u8>),
    /// `shh_info`.
    Info(ShhInfo),
    /// `shh_getFilterMessages`.
    Messages(Vec<ApiMessage>),
}

/// A refused `shh_` call (texts follow Go's).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ShhError {
    /// Go `ErrSymAsym`.
    #[error("specify either a symmetric or an asymmetric key")]
    SymAsym,
    /// Go `ErrNoTopics`.
    #[error("missing topic(s)")]
    NoTopics,
    /// Go `ErrTooLowPoW`.
    #[error("message rejected, PoW too low")]
    TooLowPow,
    /// Go `ErrInvalidPublicKey`.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// Go `ErrInvalidSigningPubKey`.
    #[error("invalid signing public key")]
    InvalidSigningPublicKey,
    /// Go: a bloom filter that is not 64 bytes.
    #[error("invalid bloom filter size {0} (want {BLOOM_LEN})")]
    BadBloomSize(usize),
    /// `shh_deleteKeyPair` of an unknown id (Go: "key pair ID not found").
    #[error("key pair {0} not found")]
    KeyPairNotFound(String),
    /// `shh_markTrustedPeer` or `targetPeer` names a node we are not connected to.
    #[error("could not find peer with ID: {0}")]
    PeerNotConnected(String),
    /// The key store or filters refused.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The node cannot answer (it is stopping, or its stack has no `shh_` API).
    #[error("the shh API is not available")]
    Unavailable,
    /// Whisper refused (posting, PoW, sizes, filter table).
    #[error("{0}")]
    Whisper(#[from] whisper::WhisperError),
}

impl Node {
    /// The `shh_` API state (counters, tests).
    pub fn shh_api(&self) -> &ShhApi {
        &self.shh
    }

    /// Answers one `shh_` call.
    pub fn handle_shh(&mut self, now: Time, request: ShhRequest) -> Result<ShhResponse, ShhError> {
        self.observe(now);
        let result = self.shh_call(now, request);
        self.pump(now);
        result
    }

    fn shh_call(&mut self, now: Time, request: ShhRequest) -> Result<ShhResponse, ShhError> {
        use ShhResponse::{Bool, Bytes, Text};
        Ok(match request {
            ShhRequest::Version => Text(SHH_VERSION.to_string()),
            ShhRequest::Info => ShhResponse::Info(ShhInfo {
                memory_bytes: self.whisper.pool_bytes() as u64,
                messages: self.whisper.pool_len() as u64,
                min_pow: self.whisper.config().min_pow,
                max_message_size: self.whisper.config().max_message_size,
            }),
            ShhRequest::SetMaxMessageSize(size) => {
                self.whisper.set_max_message_size(size)?;
                Bool(true)
            }
            ShhRequest::SetMinPow(pow) => {
                self.whisper.set_min_pow(now, pow)?;
                Bool(true)
            }
            ShhRequest::SetBloomFilter(bytes) => {
                let bloom: [u8; BLOOM_LEN] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| ShhError::BadBloomSize(bytes.len()))?;
                self.whisper.set_bloom(now, Some(Bloom(bloom)));
                Bool(true)
            }
            ShhRequest::MarkTrustedPeer(remote) => {
                let conn = self.connected_peer(&remote)?;
                Bool(self.whisper.set_trusted(conn, true))
            }
            ShhRequest::NewKeyPair => Text(self.shh.new_key_pair()?),
            ShhRequest::AddPrivateKey(bytes) => Text(self.shh.add_private_key(&bytes)?),
            ShhRequest::DeleteKeyPair(id) => {
                if !self.shh.delete_key_pair(&id) {
                    return Err(ShhError::KeyPairNotFound(id));
                }
                Bool(true)
            }
            ShhRequest::HasKeyPair(id) => Bool(self.shh.has_key_pair(&id)),
            ShhRequest::GetPublicKey(id) => Bytes(
                public_key(self.shh.key_pair(&id)?)
                    .serialize_uncompressed()
                    .to_vec(),
            ),
            ShhRequest::GetPrivateKey(id) => Bytes(self.shh.key_pair(&id)?.secret_bytes().to_vec()),
            ShhRequest::NewSymKey => Text(self.shh.new_sym_key()?),
            ShhRequest::AddSymKey(key) => Text(self.shh.add_sym_key(&key)?),
            ShhRequest::GenerateSymKeyFromPassword(password) => {
                Text(self.shh.add_sym_key_from_password(password.as_bytes())?)
            }
            ShhRequest::HasSymKey(id) => Bool(self.shh.has_sym_key(&id)),
            ShhRequest::GetSymKey(id) => Bytes(self.shh.sym_key(&id)?.to_vec()),
            ShhRequest::DeleteSymKey(id) => Bool(self.shh.delete_sym_key(&id)),
            ShhRequest::Post(message) => Bytes(self.shh_post(now, message)?.to_vec()),
            ShhRequest::NewMessageFilter(criteria) => {
                Text(self.shh_add_filter(criteria, FilterMode::Polled)?)
            }
            ShhRequest::GetFilterMessages(id) => {
                ShhResponse::Messages(self.shh.take_messages(&id)?)
            }
            ShhRequest::DeleteMessageFilter(id) => {
                let filter = self.shh.remove_filter(&id, FilterMode::Polled)?;
                self.whisper.remove_filter(filter);
                Bool(true)
            }
            ShhRequest::Subscribe(criteria) => {
                Text(self.shh_add_filter(criteria, FilterMode::Pushed)?)
            }
            ShhRequest::Unsubscribe(id) => {
                let filter = self.shh.remove_filter(&id, FilterMode::Pushed)?;
                self.whisper.remove_filter(filter);
                Bool(true)
            }
        })
    }

    fn connected_peer(&self, remote: &NodePublicKey) -> Result<ConnId, ShhError> {
        self.connection_of(remote)
            .ok_or_else(|| ShhError::PeerNotConnected(crate::stats::Hex(&remote[..]).to_string()))
    }

    /// Go `PublicWhisperAPI.Post`.
    fn shh_post(&mut self, now: Time, m: NewMessage) -> Result<[u8; 32], ShhError> {
        let encryption = match (&m.sym_key_id, &m.pub_key) {
            (Some(id), None) => {
                if m.topic == Topic([0; 4]) {
                    return Err(ShhError::NoTopics);
                }
                Encryption::Symmetric(*self.shh.sym_key(id)?)
            }
            (None, Some(key)) => Encryption::Asymmetric(
                pubkey_from_wire(key).map_err(|_| ShhError::InvalidPublicKey)?,
            ),
            _ => return Err(ShhError::SymAsym),
        };
        let sign_with = match &m.sig {
            Some(id) => Some(*self.shh.key_pair(id)?),
            None => None,
        };
        let params = MessageParams {
            payload: m.payload,
            padding: (!m.padding.is_empty()).then_some(m.padding),
            sign_with,
            topic: m.topic,
            ttl_secs: m.ttl_secs,
            pow_target: m.pow_target,
        };
        if let Some(remote) = m.target_peer {
            let conn = self.connected_peer(&remote)?;
            return Ok(self.whisper.post_p2p(now, conn, &params, &encryption)?);
        }
        if m.pow_target < self.whisper.config().min_pow {
            return Err(ShhError::TooLowPow);
        }
        Ok(self.whisper.post_with(now, params, &encryption)?)
    }

    /// Go `NewMessageFilter` / `Messages`: checks the criteria, installs a Whisper filter and
    /// records it as the API's.
    fn shh_add_filter(&mut self, c: Criteria, mode: FilterMode) -> Result<String, ShhError> {
        let signer: Option<PublicKey> = match &c.sig {
            Some(key) => {
                Some(pubkey_from_wire(key).map_err(|_| ShhError::InvalidSigningPublicKey)?)
            }
            None => None,
        };
        let (key, recipient) = match (&c.sym_key_id, &c.private_key_id) {
            (Some(id), None) => {
                if c.topics.is_empty() {
                    return Err(ShhError::NoTopics);
                }
                (whisper::FilterKey::Symmetric(*self.shh.sym_key(id)?), None)
            }
            (None, Some(id)) => {
                let secret = *self.shh.key_pair(id)?;
                (
                    whisper::FilterKey::Asymmetric(secret),
                    Some(public_key(&secret)),
                )
            }
            _ => return Err(ShhError::SymAsym),
        };
        if !c.min_pow.is_finite() || c.min_pow < 0.0 {
            return Err(ShhError::Whisper(whisper::WhisperError::InvalidPow));
        }
        self.shh.filter_room()?;
        let filter = self.whisper.add_filter(whisper::Filter {
            topics: c.topics,
            key,
            min_pow: c.min_pow,
            allow_p2p: c.allow_p2p,
        })?;
        match self.shh.add_filter(filter, signer, recipient, mode) {
            Ok(id) => Ok(id),
            Err(e) => {
                self.whisper.remove_filter(filter);
                Err(e.into())
            }
        }
    }

    /// A Whisper delivery to an API filter: kept for polling, or pushed as an event.
    pub(super) fn shh_deliver(&mut self, filter: FilterId, message: &whisper::ReceivedMessage) {
        if let Some(pushed) = self.shh.deliver(filter, message) {
            self.actions
                .push_back(Action::Event(Event::ShhMessage(Box::new(pushed))));
        }
    }
}
