//! Public chats: the state a node keeps per joined chat and the rules for sending and
//! accepting messages (status-chat.md §1–§6).
//!
//! Contract:
//! - [`PublicChats::join`] gives the Whisper subscription (topic = keccak256(name)[:4], key =
//!   PBKDF2(name)) the node must install; [`PublicChats::prepare_send`] gives the Whisper post
//!   (whisper-signed by the identity key) in the payload form asked for: bare Transit `c4`
//!   (status-go `SendPublicRaw`, status-react's default) or a signed
//!   `ApplicationMetadataMessage` around a protobuf `ChatMessage` (status-go ≥ 0.36.2), and
//!   the [`ChatMessage`] it carries; [`PublicChats::receive_payload`] turns the application
//!   bytes of a decrypted Whisper message (either era, any wrapper: [`super::app`]) into a
//!   [`ChatMessage`] and the form it came in, or a typed [`Rejected`] reason. (The v0.36.0
//!   `ProtocolMessage` around a public message is unwrapped by the node, which hands its
//!   bundles to the security layer.)
//! - A message is accepted at most once per message id (`keccak256(author ‖ payload)`), own
//!   messages included; the set of seen ids is bounded by [`ChatConfig::max_seen_ids`] and
//!   forgets the oldest first (a replay older than that is stopped by Whisper's expiry).
//! - Lamport clocks follow status-react (see [`super::clock`]); a message whose clock is more
//!   than 31 days ahead is rejected.
//! - No clock or randomness here: `now` is an argument and the Whisper layer pads and seals.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use secp256k1::{PublicKey, SecretKey};

use super::app::{decode_app, encode_message, AppRecord, PayloadFormat};
use super::clock::LamportClock;
use super::public::{message_id, public_chat_key, public_chat_topic};
use super::transit::{C4Content, C4Message, MessageType};
use super::ChatError;
use crate::time::Time;
use crate::whisper::{MessageParams, ReceivedMessage, Topic};

/// status-react posts with a 10 s TTL (status-chat.md §2, "Whisper parameters").
pub const DEFAULT_TTL_SECS: u32 = 10;
/// status-react and status-go post with PoW target 0.002 (status-chat.md §2).
pub const DEFAULT_POW_TARGET: f64 = 0.002;
/// Content type of text messages (`c4` index 1; status-chat.md §6.1 "MUST").
pub const CONTENT_TYPE_TEXT: &str = "text/plain";
/// Chats one node may join; each costs a Whisper filter and a try-decrypt per matching
/// envelope.
pub const DEFAULT_MAX_CHATS: usize = 256;
/// Message ids remembered for deduplication. At Status' TTL of 10 s this covers far more than
/// the window in which Whisper could deliver a message twice.
pub const DEFAULT_MAX_SEEN_IDS: usize = 100_000;
/// Longest chat name accepted (Status limits names to 24 characters in the UI; topic strings of
/// 1:1 chats are 130+ characters, so allow generous room).
pub const MAX_CHAT_NAME_BYTES: usize = 256;
/// Longest text accepted for sending; the Whisper size limit is the hard bound below it.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 64 * 1024;

/// Configuration of the chat layer.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// TTL of posted envelopes, seconds.
    pub ttl_secs: u32,
    /// PoW target of posted envelopes.
    pub pow_target: f64,
    /// Maximum joined chats.
    pub max_chats: usize,
    /// Message ids remembered for deduplication.
    pub max_seen_ids: usize,
    /// Maximum text length for sending, bytes.
    pub max_text_bytes: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            ttl_secs: DEFAULT_TTL_SECS,
            pow_target: DEFAULT_POW_TARGET,
            max_chats: DEFAULT_MAX_CHATS,
            max_seen_ids: DEFAULT_MAX_SEEN_IDS,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// A chat message, sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Chat name.
    pub chat: String,
    /// The author: the 65-byte uncompressed public key (wrapper signer, else Whisper signer).
    pub from: [u8; 65],
    /// Message text.
    pub text: String,
    /// Lamport clock value.
    pub clock: u64,
    /// Sender's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Status message id: keccak256(author key ‖ payload as received).
    pub message_id: [u8; 32],
}

/// The Whisper subscription for a joined chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Envelope topic.
    pub topic: Topic,
    /// Symmetric key.
    pub key: [u8; 32],
}

/// A message ready to be posted through Whisper.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Whisper parameters (payload, topic, signing key, TTL, PoW).
    pub params: MessageParams,
    /// Symmetric key of the chat.
    pub key: [u8; 32],
    /// The message as the application sees it.
    pub message: ChatMessage,
}

/// Caller misuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatServiceError {
    /// Empty or too long chat name.
    #[error("invalid chat name {0:?}")]
    InvalidName(String),
    /// Too many joined chats.
    #[error("cannot join more than {max} chats")]
    TooManyChats {
        /// The limit.
        max: usize,
    },
    /// Text too long.
    #[error("text of {len} bytes exceeds {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The chat is not joined.
    #[error("not in chat {0:?}")]
    NotJoined(String),
}

/// Why a received message was not accepted (not an error of ours; counted by the node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// No Whisper signature (status-go `HandleTransport` requires one).
    #[error("unsigned")]
    Unsigned,
    /// Payload did not decode (the [`ChatError`] says how: Transit, protobuf, wrapper
    /// signature).
    #[error("undecodable: {0}")]
    Decode(ChatError),
    /// A record that is not a chat message (a `g5`, a `p2`...) on a public topic.
    #[error("not a chat message")]
    NotAMessage,
    /// Not a public-chat message, or for another chat.
    #[error("not a message of chat {0:?}")]
    WrongChat(String),
    /// Clock more than 31 days ahead.
    #[error("clock {0} too far ahead")]
    UnsafeClock(u64),
    /// Seen before.
    #[error("duplicate")]
    Duplicate,
    /// Arrived for a chat we do not (or no longer) follow.
    #[error("chat not joined")]
    NotJoined,
}

#[derive(Clone, Debug)]
struct JoinedChat {
    clock: LamportClock,
}

/// Public chats of one identity.
#[derive(Debug)]
pub struct PublicChats {
    config: ChatConfig,
    identity: SecretKey,
    author_key: PublicKey,
    author: [u8; 65],
    chats: BTreeMap<String, JoinedChat>,
    seen: BTreeSet<[u8; 32]>,
    seen_order: VecDeque<[u8; 32]>,
}

impl PublicChats {
    /// Public chats for the identity `identity`.
    pub fn new(config: ChatConfig, identity: SecretKey) -> Self {
        let author_key = PublicKey::from_secret_key(crate::ecies::secp(), &identity);
        PublicChats {
            config,
            identity,
            author_key,
            author: author_key.serialize_uncompressed(),
            chats: BTreeMap::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Our 65-byte author key.
    pub fn author(&self) -> [u8; 65] {
        self.author
    }

    /// Joined chat names, sorted.
    pub fn joined(&self) -> impl Iterator<Item = &str> {
        self.chats.keys().map(String::as_str)
    }

    /// True if `name` is joined.
    pub fn is_joined(&self, name: &str) -> bool {
        self.chats.contains_key(name)
    }

    /// Joins `name`. Returns the subscription to install if the chat is new, `None` if it was
    /// already joined.
    pub fn join(&mut self, name: &str) -> Result<Option<Subscription>, ChatServiceError> {
        validate_name(name)?;
        if self.chats.contains_key(name) {
            return Ok(None);
        }
        if self.chats.len() >= self.config.max_chats {
            return Err(ChatServiceError::TooManyChats {
                max: self.config.max_chats,
            });
        }
        self.chats.insert(
            name.to_string(),
            JoinedChat {
                clock: LamportClock::default(),
            },
        );
        Ok(Some(Self::subscription(name)))
    }

    /// The subscription (topic and key) of a chat name; a pure function of the name.
    pub fn subscription(name: &str) -> Subscription {
        Subscription {
            topic: public_chat_topic(name),
            key: public_chat_key(name),
        }
    }

    /// Leaves `name`; true if it was joined.
    pub fn leave(&mut self, name: &str) -> bool {
        self.chats.remove(name).is_some()
    }

    /// Builds the post for `text` in chat `name` at `now` and records its id as seen, so the
    /// copy Whisper hands back to our own filter is not delivered again.
    pub fn prepare_send(
        &mut self,
        now: Time,
        name: &str,
        text: &str,
        format: PayloadFormat,
    ) -> Result<Outgoing, ChatServiceError> {
        if text.len() > self.config.max_text_bytes {
            return Err(ChatServiceError::TextTooLong {
                len: text.len(),
                max: self.config.max_text_bytes,
            });
        }
        let chat = self
            .chats
            .get_mut(name)
            .ok_or_else(|| ChatServiceError::NotJoined(name.to_string()))?;
        let clock = chat.clock.tick(now);
        let record = C4Message {
            text: text.to_string(),
            content_type: CONTENT_TYPE_TEXT.to_string(),
            message_type: MessageType::PublicGroupUserMessage,
            clock,
            timestamp_ms: now.as_millis(),
            content: C4Content {
                chat_id: name.to_string(),
                text: text.to_string(),
                ..Default::default()
            },
        };
        let payload = encode_message(format, &record, &self.identity, false);
        let message_id = message_id(&self.author_key, &payload);
        self.remember(message_id);
        let Subscription { topic, key } = Self::subscription(name);
        let message = ChatMessage {
            chat: name.to_string(),
            from: self.author,
            text: text.to_string(),
            clock,
            timestamp_ms: record.timestamp_ms,
            message_id,
        };
        let params = MessageParams {
            payload,
            padding: None,
            sign_with: Some(self.identity),
            topic,
            ttl_secs: self.config.ttl_secs,
            pow_target: self.config.pow_target,
        };
        Ok(Outgoing {
            params,
            key,
            message,
        })
    }

    /// Accepts (or rejects) a message Whisper decrypted with the key of chat `name`.
    pub fn receive(
        &mut self,
        now: Time,
        name: &str,
        received: &ReceivedMessage,
    ) -> Result<(ChatMessage, PayloadFormat), Rejected> {
        let signer = received.signer.ok_or(Rejected::Unsigned)?;
        self.receive_payload(now, name, &signer, &received.payload)
    }

    /// Accepts (or rejects) the application bytes of a message signed by `signer` on the topic
    /// of chat `name`; gives the message and the form it came in.
    pub fn receive_payload(
        &mut self,
        now: Time,
        name: &str,
        signer: &PublicKey,
        payload: &[u8],
    ) -> Result<(ChatMessage, PayloadFormat), Rejected> {
        if !self.chats.contains_key(name) {
            return Err(Rejected::NotJoined);
        }
        let app = decode_app(payload, signer).map_err(Rejected::Decode)?;
        if self.seen.contains(&app.id) {
            return Err(Rejected::Duplicate);
        }
        let AppRecord::Message(record) = app.record else {
            return Err(Rejected::NotAMessage);
        };
        // status-chat.md §3: a public message's chat id is its channel name.
        if record.message_type != MessageType::PublicGroupUserMessage
            || record.content.chat_id != name
        {
            return Err(Rejected::WrongChat(name.to_string()));
        }
        if !LamportClock::is_safe(record.clock, now) {
            return Err(Rejected::UnsafeClock(record.clock));
        }
        self.remember(app.id);
        if let Some(chat) = self.chats.get_mut(name) {
            chat.clock.observe(record.clock, now);
        }
        // status-react reads the text from the content map when present (§6.1).
        let text = if record.content.text.is_empty() {
            record.text
        } else {
            record.content.text
        };
        let message = ChatMessage {
            chat: name.to_string(),
            from: app.author.serialize_uncompressed(),
            text,
            clock: record.clock,
            timestamp_ms: record.timestamp_ms,
            message_id: app.id,
        };
        Ok((message, app.format))
    }

    /// Restores an accepted message after a restart (from `Persist::ChatMessage`): its id is
    /// seen again (a copy from gossip or a mailserver is a duplicate) and, if the chat is
    /// joined, its Lamport clock follows it. Call after the joins.
    pub fn restore_message(&mut self, message: &ChatMessage) {
        self.remember(message.message_id);
        if let Some(chat) = self.chats.get_mut(&message.chat) {
            chat.clock.value = chat.clock.value.max(message.clock);
        }
    }

    fn remember(&mut self, id: [u8; 32]) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > self.config.max_seen_ids {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

fn validate_name(name: &str) -> Result<(), ChatServiceError> {
    if name.is_empty() || name.len() > MAX_CHAT_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ChatServiceError::InvalidName(name.to_string()));
    }
    Ok(())
}
