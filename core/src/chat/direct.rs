//! 1:1 conversations as a pure state machine: [`Conversations`] (one identity, one
//! installation) turns app commands and decrypted Whisper payloads into [`Action`]s
//! (status-chat.md §1–§3, §6; security.md; mvds.md). Private groups ([`super::groups`]) are
//! methods of the same machine because they ride on the same pairwise sessions.
//!
//! Contract:
//! - Sending 1:1: a `user-message` (chat id = `"0x" + pubhex(recipient)`) in the chat's payload
//!   form ([`super::format`]: Transit `c4`, optionally wrapped in a signed StatusProtocolMessage
//!   ([`ConversationsConfig::wrap_messages`]), or a protobuf `ChatMessage` in a signed
//!   `ApplicationMetadataMessage`); with
//!   [`ConversationsConfig::datasync`] the wrapped bytes travel as MVDS messages (batch mode,
//!   group id = `one_to_one_group_id`) and the MVDS payload bytes are what the security layer
//!   encrypts; the [`SecurityService`] builds the ProtocolMessage (DH-only on first contact,
//!   X3DH then Double Ratchet; our own paired devices get their part too). Topic
//!   (status-chat.md §2 "Choice of 1:1 topic"): the negotiated topic (symmetric) once every
//!   targeted installation of the peer has sent us a direct message carrying the secret; else
//!   the recipient's partitioned topic (asymmetric), or the generic discovery topic when it is
//!   enabled and the targets do not advertise protocol version ≥ 1. A copy goes to our own
//!   partitioned topic when we have other paired devices.
//! - Receiving ([`Conversations::handle_incoming`], status-go's pipeline, §1): ProtocolMessage
//!   → decrypt (bundles stored, negotiated secret noted, bundle-advertisement replies posted);
//!   bytes that are not a ProtocolMessage are processed raw (bare fallback, except on the
//!   contact-code topic); an MVDS payload goes through [`Mvds`]; then the application payload
//!   of either era ([`super::app::decode_app`]: bare or wrapped Transit `c4`/`g5`, or protobuf
//!   `ChatMessage`/wrapped `g5`). Messages are accepted once per message id (bounded memory),
//!   their clock must be safe (§6.2) and the chat's Lamport clock follows them; `auto` chats
//!   note the form they came in. Every refusal is counted by reason in [`Stats`].
//! - Durability: the records of one call leave as ONE [`Action::Persist`] (a
//!   [`Record::Batch`] when there are several, to be committed atomically) before any
//!   [`Action::Post`] or [`Action::Deliver`] of that call. A crash before the commit leaves no
//!   trace of the call (the message was not accepted, its ratchet step not taken); after it,
//!   nothing accepted is lost and no message key is reused (a ratchet state is committed
//!   before the ciphertext made with it leaves). Inside a batch, accepted-message and chat
//!   records come first, then security and MVDS records. With datasync off, outgoing
//!   plaintexts are kept as [`Record::Outgoing`] until [`Record::Posted`] (persisted after the
//!   posts) and re-encrypted with fresh keys by [`Conversations::restore`]; receivers drop the
//!   duplicate by message id.
//! - Randomness: a ChaCha20 RNG from the seed. The seed given to [`Conversations::restore`]
//!   MUST be fresh (the driver draws it from the OS): replaying an RNG stream would repeat
//!   ephemeral keys.

mod counters;
mod forms;
mod receive;
mod record;
mod snapshot;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use prost::Message as _;
use secp256k1::{PublicKey, SecretKey};

use super::app::{decode_app, encode_message, AppRecord, PayloadFormat};
use super::clock::LamportClock;
use super::format::{ChatFormat, ChatKind, FormatPolicy, FormatSetting};
use super::group::{GroupError, GroupLimits, MembershipUpdateMessage};
use super::groups::held::{
    HeldGroupMessages, DEFAULT_HELD_GROUP_MESSAGE_TTL_MS, DEFAULT_MAX_HELD_GROUP_MESSAGES,
};
use super::groups::GroupChat;
use super::service::{ChatMessage, CONTENT_TYPE_TEXT, DEFAULT_MAX_TEXT_BYTES};
use super::topics;
use super::transit::{C4Content, C4Message, MessageType};
use super::{message_id, ChatError};
use crate::ecies::public_key;
use crate::mvds::{
    self, one_to_one_group_id, peer_id_from_public_key, Mvds, MvdsError, PeerId, SendOptions,
};
use crate::rng::{rng_from_seed, Rng, Seed};
use crate::security::proto::ProtocolMessage;
use crate::security::{Received, SecurityConfig, SecurityError, SecurityService};
use crate::whisper::Topic;
use crate::Time;

pub use record::{Record, RecordError, StoredMessage};
pub use snapshot::{compact, decode_snapshot, encode_snapshot, SnapshotError, SNAPSHOT_VERSION};

/// A Status message id: `keccak256(author ‖ wrapped bytes)` (status-chat.md §4).
pub type MessageId = [u8; 32];

/// Message ids remembered for deduplication (oldest forgotten first).
pub const DEFAULT_MAX_SEEN_IDS: usize = 100_000;
/// Contact-code publication interval: status-go publishes at most every 21600 s
/// (status-chat.md §2, [SG-pub]).
pub const DEFAULT_CONTACT_CODE_INTERVAL_MS: u64 = 21_600 * 1000;
/// Private groups one node keeps.
pub const DEFAULT_MAX_GROUPS: usize = 256;
/// Contacts whose contact-code topic we listen to.
pub const DEFAULT_MAX_CONTACTS: usize = 10_000;
/// Peers with a negotiated topic we listen to (each costs a Whisper filter).
pub const DEFAULT_MAX_NEGOTIATED: usize = 10_000;
/// Chats whose Lamport clock is kept.
pub const DEFAULT_MAX_CLOCKS: usize = 100_000;
/// Outgoing messages awaiting their post (datasync off).
pub const DEFAULT_MAX_OUTBOX: usize = 10_000;
/// Larger incoming payloads are dropped before decoding (Whisper's own limit is 1 MiB
/// envelopes, status-go's default 1 MiB `MaxMessageSize`).
pub const DEFAULT_MAX_INCOMING_BYTES: usize = 1 << 20;
/// Membership updates kept per group; a group whose history would exceed it stops accepting
/// updates (each update is re-sent with every membership change).
pub const DEFAULT_MAX_GROUP_UPDATES: usize = 256;
/// Chats whose payload form (override or last received form) is remembered.
pub const DEFAULT_MAX_CHAT_FORMATS: usize = 100_000;

/// Configuration of [`Conversations`]; every limit is here.
#[derive(Clone, Debug)]
pub struct ConversationsConfig {
    /// Security-layer bounds and timers.
    pub security: SecurityConfig,
    /// MVDS configuration (used for incoming MVDS payloads always, for sending when
    /// `datasync`).
    pub mvds: mvds::Config,
    /// Send through MVDS (status-go `DataSyncEnabled`; off by default as 2019 mobile clients).
    pub datasync: bool,
    /// Use the generic discovery topic for peers that do not advertise protocol version ≥ 1,
    /// and listen to it (status-go `!DisableGenericDiscoveryTopic`). Default off: hush's first
    /// contact goes to the recipient's partitioned topic.
    pub generic_discovery: bool,
    /// Wrap Transit in a signed StatusProtocolMessage (status-go `SendV1Messages`; default
    /// off as 2019 mobile clients). Only for chats sent in [`PayloadFormat::Transit`].
    pub wrap_messages: bool,
    /// Application-layer form sent in 1:1, group and public chats unless a chat overrides it
    /// (module [`super::format`]; default `auto`). Both forms are always received.
    pub payload_format: FormatSetting,
    /// Chats whose payload form is remembered.
    pub max_chat_formats: usize,
    /// Contact-code publication interval, ms.
    pub contact_code_interval_ms: u64,
    /// When our contact code was last published before this machine was created, Unix ms
    /// (status-go keeps it in its database as the publisher's `lastPublished`); `None`: never,
    /// so the first [`Conversations::handle_timeout`] publishes. A simulation of a network
    /// already running gives each node a time in the interval before its start.
    pub contact_code_last_published_ms: Option<u64>,
    /// Publish our contact code at all (status-go always does; simulations of public-chat
    /// traffic alone turn it off so that N nodes do not flood N extra envelopes at start).
    pub publish_contact_code: bool,
    /// Message ids remembered for deduplication.
    pub max_seen_ids: usize,
    /// Longest text accepted for sending, bytes.
    pub max_text_bytes: usize,
    /// Private groups kept.
    pub max_groups: usize,
    /// Membership updates kept per group.
    pub max_group_updates: usize,
    /// Contacts.
    pub max_contacts: usize,
    /// Peers with a negotiated topic.
    pub max_negotiated: usize,
    /// Chats with a Lamport clock.
    pub max_clocks: usize,
    /// Outgoing messages awaiting their post.
    pub max_outbox: usize,
    /// Largest incoming payload, bytes.
    pub max_incoming_bytes: usize,
    /// Group fold limits.
    pub group_limits: GroupLimits,
    /// Group messages held for their group or their author's membership
    /// ([`super::groups::held`]); 0 drops them at once.
    pub max_held_group_messages: usize,
    /// How long a held group message waits, ms.
    pub held_group_message_ttl_ms: u64,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        ConversationsConfig {
            security: SecurityConfig::default(),
            mvds: mvds::Config::default(),
            datasync: false,
            generic_discovery: false,
            wrap_messages: false,
            payload_format: FormatSetting::Auto,
            max_chat_formats: DEFAULT_MAX_CHAT_FORMATS,
            contact_code_interval_ms: DEFAULT_CONTACT_CODE_INTERVAL_MS,
            contact_code_last_published_ms: None,
            publish_contact_code: true,
            max_seen_ids: DEFAULT_MAX_SEEN_IDS,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            max_groups: DEFAULT_MAX_GROUPS,
            max_group_updates: DEFAULT_MAX_GROUP_UPDATES,
            max_contacts: DEFAULT_MAX_CONTACTS,
            max_negotiated: DEFAULT_MAX_NEGOTIATED,
            max_clocks: DEFAULT_MAX_CLOCKS,
            max_outbox: DEFAULT_MAX_OUTBOX,
            max_incoming_bytes: DEFAULT_MAX_INCOMING_BYTES,
            group_limits: GroupLimits::default(),
            max_held_group_messages: DEFAULT_MAX_HELD_GROUP_MESSAGES,
            held_group_message_ttl_ms: DEFAULT_HELD_GROUP_MESSAGE_TTL_MS,
        }
    }
}

/// Which kind of topic an incoming payload arrived on (the node knows from its filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// Our partitioned (or personal discovery) topic, asymmetric.
    Partitioned,
    /// A negotiated topic, symmetric.
    Negotiated,
    /// A contact-code topic, symmetric: only bundles are taken from it.
    ContactCode,
    /// The generic discovery topic, asymmetric.
    Discovery,
}

/// Whisper encryption of a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// ECIES to this key.
    Asymmetric {
        /// Recipient.
        to: PublicKey,
    },
    /// AES-GCM with this key.
    Symmetric {
        /// Whisper symmetric key.
        key: [u8; 32],
    },
}

/// How the node must decrypt a topic it listens to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenKind {
    /// With our identity key.
    Asymmetric,
    /// With this symmetric key.
    Symmetric {
        /// Whisper symmetric key.
        key: [u8; 32],
    },
    /// With the symmetric key `PBKDF2(password)` (whisper-v6.md §8), for the node to derive
    /// when an envelope on the topic first arrives
    /// ([`crate::whisper::FilterKey::SymmetricPassword`]). Only
    /// [`Conversations::listen_topics_deferred`] gives this kind.
    SymmetricPassword {
        /// The topic string the key is derived from.
        password: String,
    },
}

/// A Whisper subscription the node must hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listen {
    /// Topic.
    pub topic: Topic,
    /// Decryption.
    pub kind: ListenKind,
    /// What to pass to [`Conversations::handle_incoming`] for payloads from it.
    pub via: Via,
}

/// What the application sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// A 1:1 message (`chat` = `"0x" + pubhex` of the other party).
    Direct(ChatMessage),
    /// A private-group message.
    Group {
        /// Group chat id.
        group_id: String,
        /// The message (`chat` = group id).
        message: ChatMessage,
    },
    /// A group's membership or name changed (or we learned of the group).
    GroupUpdated {
        /// Group chat id.
        group_id: String,
        /// Member ids (`0x` + pubhex), sorted.
        members: Vec<String>,
        /// Admin ids, sorted.
        admins: Vec<String>,
        /// Group name.
        name: String,
    },
}

/// Output of [`Conversations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Post through Whisper, signed with the identity key.
    Post {
        /// Envelope topic.
        topic: Topic,
        /// Whisper encryption.
        encryption: Encryption,
        /// Whisper payload (an encoded ProtocolMessage).
        payload: Vec<u8>,
    },
    /// For the application.
    Deliver(ChatEvent),
    /// Commit durably before performing the actions after it.
    Persist(Record),
    /// [`Conversations::listen_topics`] changed.
    ListenChanged,
}

/// Caller misuse or a state that cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversationError {
    /// From the security layer.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// From MVDS.
    #[error(transparent)]
    Mvds(#[from] MvdsError),
    /// From the group rules.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// A persisted record that does not decode or apply.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Text longer than `max_text_bytes`.
    #[error("text of {len} bytes exceeds {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A 1:1 message to ourselves.
    #[error("cannot send a direct message to our own identity")]
    SendToSelf,
    /// No such group.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// We are not a member of the group.
    #[error("not a member of group {0:?}")]
    NotMember(String),
    /// Empty or control-character group name.
    #[error("invalid group name {0:?}")]
    InvalidName(String),
    /// A bound of [`ConversationsConfig`] is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
}

/// Counters of dropped input (never errors: peers' input), one per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payloads larger than `max_incoming_bytes`.
    pub oversized: u64,
    /// ProtocolMessages the security layer refused (bad bundle, undecryptable, unknown
    /// session...).
    pub security_rejected: u64,
    /// Payloads on a contact-code topic that are not a ProtocolMessage.
    pub raw_on_contact_code: u64,
    /// Direct messages with no part for this installation (answered with a bundle
    /// advertisement unless one was sent recently).
    pub not_for_this_device: u64,
    /// Transit payloads that did not decode (JSON, Transit, `c4`/`g5` structure), and our own
    /// synced 1:1 messages naming no valid recipient.
    pub undecodable: u64,
    /// Protobuf payloads that did not decode (no wrapper of either era, or a bad
    /// `ChatMessage`).
    pub undecodable_protobuf: u64,
    /// Wrappers (StatusProtocolMessage or ApplicationMetadataMessage) whose signature does not
    /// recover a key.
    pub bad_wrapper_signature: u64,
    /// Messages already accepted.
    pub duplicates: u64,
    /// Messages with a clock more than 31 days ahead.
    pub unsafe_clock: u64,
    /// Group messages and updates for a group we do not know (and, for updates, do not
    /// belong to).
    pub group_unknown: u64,
    /// Group messages (or `g5` records) for a group of which we are not a member.
    pub group_not_member: u64,
    /// Group messages held for their group or their author's membership (not a drop).
    pub group_held: u64,
    /// Held group messages accepted once their group changed (not a drop).
    pub group_released: u64,
    /// Held group messages dropped: their hold ended, or newer ones pushed them out.
    pub group_held_dropped: u64,
    /// A `c4` inside a `g5` that is not a `group-user-message` of that group.
    pub group_wrong_chat: u64,
    /// `g5` records whose updates fold to no group (no valid `chat-created`).
    pub group_no_creator: u64,
    /// `g5` records refused by a limit (`max_group_updates`, `max_groups`).
    pub group_limit: u64,
    /// Updates whose signature is missing or malformed (their events are skipped).
    pub group_bad_signature: u64,
    /// Events skipped by the group fold (not admin, not a member, wrong chat...): status-go
    /// refuses the whole message instead.
    pub group_events_rejected: u64,
    /// Records of a type not handled here (public messages on 1:1 topics, Transit `p1`/`p2`…).
    pub ignored: u64,
    /// Sends that failed at the security layer (MVDS sends; counted, retried by MVDS).
    pub send_failed: u64,
}

/// What one call produced, flushed in the durable order of the module docs.
#[derive(Default)]
pub(super) struct Batch {
    /// Accepted messages and chat state.
    pub(super) first: Vec<Record>,
    /// Security and MVDS records.
    pub(super) persists: Vec<Record>,
    /// Posts, deliveries, post-markers.
    pub(super) out: Vec<Action>,
    /// Listen set changed.
    pub(super) listen_changed: bool,
}

#[derive(Clone, Debug)]
struct Negotiated {
    installations: BTreeSet<String>,
    /// Topic and key, derived once (PBKDF2 is deliberately slow).
    listen: Listen,
}

fn contact_listen(key: &PublicKey) -> Listen {
    Listen {
        topic: topics::contact_code_topic(key),
        kind: ListenKind::Symmetric {
            key: topics::contact_code_key(key),
        },
        via: Via::ContactCode,
    }
}

fn negotiated_listen(identity: &SecretKey, peer: &PublicKey) -> Listen {
    let secret = topics::negotiated_secret(identity, peer);
    Listen {
        topic: topics::negotiated_topic(&secret),
        kind: ListenKind::Symmetric {
            key: topics::negotiated_key(&secret),
        },
        via: Via::Negotiated,
    }
}

#[derive(Clone, Debug)]
struct Outgoing {
    to: Vec<PublicKey>,
    plaintext: Vec<u8>,
}

/// 1:1 and private-group conversations of one identity on one installation.
#[derive(Debug)]
pub struct Conversations {
    pub(super) config: ConversationsConfig,
    pub(super) identity: SecretKey,
    pub(super) own: PublicKey,
    pub(super) own_id: String,
    pub(super) rng: Rng,
    pub(super) security: SecurityService,
    pub(super) mvds: Mvds,
    pub(super) groups: BTreeMap<String, GroupChat>,
    pub(in crate::chat) held: HeldGroupMessages,
    pub(super) formats: FormatPolicy,
    clocks: BTreeMap<String, LamportClock>,
    seen: BTreeSet<MessageId>,
    seen_order: VecDeque<MessageId>,
    negotiated: BTreeMap<[u8; 65], Negotiated>,
    contacts: BTreeMap<[u8; 65], Listen>,
    /// Our contact-code topic.
    own_contact_code_topic: Topic,
    /// Its key, PBKDF2 (≈ 7 ms) derived on first use: a node that neither publishes its
    /// contact code nor is asked for [`Conversations::listen_topics`] never needs it.
    own_contact_code_key: OnceLock<[u8; 32]>,
    outbox: BTreeMap<MessageId, Outgoing>,
    next_contact_code_at: Time,
    actions: VecDeque<Action>,
    pub(super) stats: Stats,
}

impl Conversations {
    /// A fresh machine. The first [`Conversations::handle_timeout`] publishes our contact code.
    pub fn new(
        config: ConversationsConfig,
        identity: SecretKey,
        installation_id: &str,
        seed: Seed,
        now: Time,
    ) -> Result<Self, ConversationError> {
        let security = SecurityService::new(config.security.clone(), identity, installation_id)?;
        let mvds = Mvds::new(config.mvds.clone(), now)?;
        Ok(Self::assemble(config, identity, seed, now, security, mvds))
    }

    fn assemble(
        config: ConversationsConfig,
        identity: SecretKey,
        seed: Seed,
        now: Time,
        security: SecurityService,
        mvds: Mvds,
    ) -> Self {
        let own = public_key(&identity);
        let next_contact_code_at = config.contact_code_last_published_ms.map_or(now, |at| {
            Time(at.saturating_add(config.contact_code_interval_ms))
        });
        Conversations {
            formats: FormatPolicy::new(config.payload_format, config.max_chat_formats),
            config,
            identity,
            own,
            own_id: super::group::member_id(&own),
            rng: rng_from_seed(seed),
            security,
            mvds,
            groups: BTreeMap::new(),
            held: HeldGroupMessages::default(),
            clocks: BTreeMap::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            negotiated: BTreeMap::new(),
            contacts: BTreeMap::new(),
            own_contact_code_topic: topics::contact_code_topic(&own),
            own_contact_code_key: OnceLock::new(),
            outbox: BTreeMap::new(),
            next_contact_code_at,
            actions: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Rebuilds the machine from its persisted records (in emission order). `seed` must be
    /// fresh. Outgoing messages that were never marked posted are re-encrypted and queued,
    /// MVDS resumes retransmission.
    pub fn restore(
        config: ConversationsConfig,
        identity: SecretKey,
        installation_id: &str,
        seed: Seed,
        now: Time,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self, ConversationError> {
        let mut sec = Vec::new();
        let mut mv = Vec::new();
        let mut rest = Vec::new();
        for r in records.into_iter().flat_map(Record::flatten) {
            match r {
                Record::Security(p) => sec.push(p),
                Record::Mvds(m) => mv.push(m),
                other => rest.push(other),
            }
        }
        let security =
            SecurityService::restore(config.security.clone(), identity, installation_id, sec)?;
        let mvds = Mvds::restore(config.mvds.clone(), now, mv)?;
        let mut c = Self::assemble(config, identity, seed, now, security, mvds);
        let mut last_code: Option<u64> = None;
        for r in rest {
            match r {
                Record::Message(m) => {
                    c.remember(m.message.message_id);
                    if let Some(k) = c.clock_mut(&m.message.chat) {
                        k.value = k.value.max(m.message.clock);
                    }
                }
                Record::Group { chat_id, g5 } => {
                    let decoded = MembershipUpdateMessage::decode(&g5)?;
                    let chat = GroupChat::fold(&chat_id, decoded.updates, c.config.group_limits)?;
                    c.groups.insert(chat_id, chat);
                }
                Record::Negotiated {
                    peer,
                    installation_id,
                } => {
                    let identity = c.identity;
                    let n = c
                        .negotiated
                        .entry(peer.serialize_uncompressed())
                        .or_insert_with(|| Negotiated {
                            installations: BTreeSet::new(),
                            listen: negotiated_listen(&identity, &peer),
                        });
                    if !installation_id.is_empty() {
                        n.installations.insert(installation_id);
                    }
                }
                Record::Contact(k) => {
                    // The listen key is a PBKDF2 (tens of ms): once per contact, not per record.
                    c.contacts
                        .entry(k.serialize_uncompressed())
                        .or_insert_with(|| contact_listen(&k));
                }
                Record::Outgoing { id, to, plaintext } => {
                    c.outbox.insert(id, Outgoing { to, plaintext });
                }
                Record::Posted { id } => {
                    c.outbox.remove(&id);
                }
                Record::ContactCodePublished { at_ms } => last_code = Some(at_ms),
                Record::ChatFormat(f) => c.formats.restore(&f),
                Record::Security(_) | Record::Mvds(_) | Record::Batch(_) => {}
            }
        }
        if let Some(at) = last_code {
            c.next_contact_code_at = Time(at.saturating_add(c.config.contact_code_interval_ms));
        }
        let mut b = Batch::default();
        // Undelivered MVDS messages queued by its restore.
        c.drain_mvds(now, &mut b);
        let pending: Vec<(MessageId, Outgoing)> =
            c.outbox.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (id, o) in pending {
            c.post_outgoing(now, id, &o, &mut b);
        }
        c.flush(b);
        Ok(c)
    }

    // -----------------------------------------------------------------------------------------
    // Accessors.

    /// Our identity public key.
    pub fn identity_public(&self) -> PublicKey {
        self.own
    }

    /// Our member / chat id: `"0x" + pubhex`.
    pub fn own_id(&self) -> &str {
        &self.own_id
    }

    /// The security layer (read-only: sessions, installations).
    pub fn security(&self) -> &SecurityService {
        &self.security
    }

    /// The MVDS machine (read-only).
    pub fn mvds(&self) -> &Mvds {
        &self.mvds
    }

    /// Drop counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True if the negotiated topic with `peer` is agreed for all its active installations.
    pub fn negotiated_agreed(&self, now: Time, peer: &PublicKey) -> bool {
        self.agreed(now, peer)
    }

    /// Every topic the node must subscribe to: our partitioned and personal discovery topics,
    /// the generic discovery topic when enabled, our and our contacts' contact-code topics, and
    /// the negotiated topics.
    pub fn listen_topics(&self) -> Vec<Listen> {
        self.listens(Listen {
            topic: self.own_contact_code_topic,
            kind: ListenKind::Symmetric {
                key: self.own_contact_code_key(),
            },
            via: Via::ContactCode,
        })
    }

    /// [`Conversations::listen_topics`], except that our own contact-code topic comes as
    /// [`ListenKind::SymmetricPassword`] until we derived its key (to publish), so that its
    /// PBKDF2 key is derived only if an envelope arrives on it, and never twice. Same topics,
    /// same decryption.
    pub fn listen_topics_deferred(&self) -> Vec<Listen> {
        let kind = match self.own_contact_code_key.get() {
            Some(key) => ListenKind::Symmetric { key: *key },
            None => ListenKind::SymmetricPassword {
                password: topics::contact_code_topic_string(&self.own),
            },
        };
        self.listens(Listen {
            topic: self.own_contact_code_topic,
            kind,
            via: Via::ContactCode,
        })
    }

    /// Our own contact-code key, derived once.
    fn own_contact_code_key(&self) -> [u8; 32] {
        *self
            .own_contact_code_key
            .get_or_init(|| topics::contact_code_key(&self.own))
    }

    fn listens(&self, own_contact_code: Listen) -> Vec<Listen> {
        let mut out = BTreeSet::new();
        out.insert(Listen {
            topic: topics::partitioned_topic(&self.own),
            kind: ListenKind::Asymmetric,
            via: Via::Partitioned,
        });
        out.insert(Listen {
            topic: topics::personal_discovery_topic(&self.own),
            kind: ListenKind::Asymmetric,
            via: Via::Partitioned,
        });
        if self.config.generic_discovery {
            out.insert(Listen {
                topic: topics::discovery_topic(),
                kind: ListenKind::Asymmetric,
                via: Via::Discovery,
            });
        }
        out.insert(own_contact_code);
        out.extend(self.contacts.values().cloned());
        out.extend(self.negotiated.values().map(|n| n.listen.clone()));
        out.into_iter().collect()
    }

    // -----------------------------------------------------------------------------------------
    // App commands.

    /// Adds a contact: we listen to its contact code (its bundles let the first message use
    /// X3DH instead of DH-only).
    pub fn add_contact(&mut self, _now: Time, key: &PublicKey) -> Result<(), ConversationError> {
        let mut b = Batch::default();
        self.add_contact_inner(key, &mut b)?;
        self.flush(b);
        Ok(())
    }

    fn add_contact_inner(
        &mut self,
        key: &PublicKey,
        b: &mut Batch,
    ) -> Result<(), ConversationError> {
        let k = key.serialize_uncompressed();
        if *key == self.own || self.contacts.contains_key(&k) {
            return Ok(());
        }
        if self.contacts.len() >= self.config.max_contacts {
            return Err(ConversationError::LimitReached("contacts"));
        }
        self.contacts.insert(k, contact_listen(key));
        b.first.push(Record::Contact(*key));
        b.listen_changed = true;
        Ok(())
    }

    /// Pairs (or unpairs) one of our own other installations: messages are synced to it.
    pub fn set_own_installation_enabled(
        &mut self,
        installation_id: &str,
        enabled: bool,
    ) -> Result<(), ConversationError> {
        let p = self
            .security
            .set_installation_enabled(&self.own, installation_id, enabled)?;
        let mut b = Batch::default();
        b.persists.extend(p.into_iter().map(Record::Security));
        self.flush(b);
        Ok(())
    }

    /// Sends a 1:1 text message to `to`. The message is recorded (history) before anything
    /// leaves.
    pub fn send_direct(
        &mut self,
        now: Time,
        to: &PublicKey,
        text: &str,
    ) -> Result<MessageId, ConversationError> {
        self.check_text(text)?;
        if *to == self.own {
            return Err(ConversationError::SendToSelf);
        }
        if !self.config.datasync && self.outbox.len() >= self.config.max_outbox {
            return Err(ConversationError::LimitReached("outbox"));
        }
        let chat = super::group::member_id(to);
        let clock = self.tick(now, &chat);
        let record = C4Message {
            text: text.to_string(),
            content_type: CONTENT_TYPE_TEXT.to_string(),
            message_type: MessageType::UserMessage,
            clock,
            timestamp_ms: now.as_millis(),
            content: C4Content {
                chat_id: chat.clone(),
                text: text.to_string(),
                ..Default::default()
            },
        };
        let bytes = self.message_bytes(ChatKind::Direct, &chat, &record);
        let id = message_id(&self.own, &bytes);
        let mut b = Batch::default();
        self.ensure_negotiated(to, &mut b);
        self.accept_own(&chat, false, text, clock, now, id, &mut b);
        let sent = self.dispatch(now, id, vec![*to], bytes, &mut b);
        self.flush(b);
        sent.map(|()| id)
    }

    /// Hands app bytes (wrapped or bare Transit) for `to` to MVDS or to the outbox + security
    /// layer.
    pub(super) fn dispatch(
        &mut self,
        now: Time,
        id: MessageId,
        to: Vec<PublicKey>,
        bytes: Vec<u8>,
        b: &mut Batch,
    ) -> Result<(), ConversationError> {
        if self.config.datasync {
            let mut result = Ok(());
            let mut accepted = false;
            for peer in &to {
                let group = one_to_one_group_id(&self.own, peer);
                let options = SendOptions {
                    recipients: Some(vec![peer_id_from_public_key(peer)]),
                    ..Default::default()
                };
                match self.mvds.send(now, group, bytes.clone(), options) {
                    Ok(_) => accepted = true,
                    Err(e) => {
                        result = Err(e.into());
                        break;
                    }
                }
            }
            // What MVDS accepted (possibly for some recipients only) is persisted and sent;
            // a message MVDS refused for everyone is not in the history either.
            self.drain_mvds(now, b);
            if !accepted {
                b.first
                    .retain(|r| !matches!(r, Record::Message(m) if m.message.message_id == id));
            }
            return result;
        }
        let o = Outgoing {
            to,
            plaintext: bytes,
        };
        b.first.push(Record::Outgoing {
            id,
            to: o.to.clone(),
            plaintext: o.plaintext.clone(),
        });
        self.outbox.insert(id, o.clone());
        self.post_outgoing(now, id, &o, b);
        Ok(())
    }

    /// Encrypts and posts an outbox entry to each recipient, then marks it posted.
    fn post_outgoing(&mut self, now: Time, id: MessageId, o: &Outgoing, b: &mut Batch) {
        for (i, to) in o.to.iter().enumerate() {
            if let Err(_e) = self.encrypt_and_post(now, to, &o.plaintext, i == 0, b) {
                // Left in the outbox: retried at the next restore.
                self.stats.send_failed += 1;
                return;
            }
        }
        self.outbox.remove(&id);
        b.out.push(Action::Persist(Record::Posted { id }));
    }

    /// Encrypts `plaintext` for `to` (and our paired devices) and queues the post on the topic
    /// chosen by status-chat.md §2; with `sync_own`, a copy goes to our own partitioned topic
    /// when we have other active devices.
    pub(super) fn encrypt_and_post(
        &mut self,
        now: Time,
        to: &PublicKey,
        plaintext: &[u8],
        sync_own: bool,
        b: &mut Batch,
    ) -> Result<(), ConversationError> {
        let (persist, msg) = self
            .security
            .encrypt_for(now, &mut self.rng, to, &[], plaintext)?;
        b.persists.extend(persist.into_iter().map(Record::Security));
        let payload = msg.encode_to_vec();
        let (topic, encryption) = self.topic_for(now, to);
        let own_devices: Vec<String> = self
            .security
            .active_installations(now, &self.own)
            .into_iter()
            .map(|r| r.installation_id)
            .collect();
        if sync_own && !own_devices.is_empty() && *to != self.own {
            // Our devices' parts ride in the same message, except on the DH-only path (no
            // installation of the peer known), where only the peer's key can read it: then
            // they get a message of their own.
            let own_payload = if own_devices
                .iter()
                .any(|i| msg.direct_message.contains_key(i))
            {
                payload.clone()
            } else {
                let (persist, own_msg) =
                    self.security
                        .encrypt_for(now, &mut self.rng, &self.own, &[], plaintext)?;
                b.persists.extend(persist.into_iter().map(Record::Security));
                own_msg.encode_to_vec()
            };
            b.out.push(Action::Post {
                topic: topics::partitioned_topic(&self.own),
                encryption: Encryption::Asymmetric { to: self.own },
                payload: own_payload,
            });
        }
        b.out.push(Action::Post {
            topic,
            encryption,
            payload,
        });
        Ok(())
    }

    fn agreed(&self, now: Time, to: &PublicKey) -> bool {
        let Some(n) = self.negotiated.get(&to.serialize_uncompressed()) else {
            return false;
        };
        let targets = self.security.active_installations(now, to);
        !targets.is_empty()
            && targets
                .iter()
                .all(|t| t.protocol_version >= 1 && n.installations.contains(&t.installation_id))
    }

    fn topic_for(&self, now: Time, to: &PublicKey) -> (Topic, Encryption) {
        if self.agreed(now, to) {
            if let Some(n) = self.negotiated.get(&to.serialize_uncompressed()) {
                if let ListenKind::Symmetric { key } = n.listen.kind {
                    return (n.listen.topic, Encryption::Symmetric { key });
                }
            }
        }
        let targets = self.security.active_installations(now, to);
        let min_version = targets
            .iter()
            .map(|t| t.protocol_version)
            .min()
            .unwrap_or(0);
        let topic = if min_version >= 1 || !self.config.generic_discovery {
            topics::partitioned_topic(to)
        } else {
            topics::discovery_topic()
        };
        (topic, Encryption::Asymmetric { to: *to })
    }

    /// Starts listening on the negotiated topic with `peer` (status-go generates the secret
    /// when sending, so the reply on it is heard).
    pub(super) fn ensure_negotiated(&mut self, peer: &PublicKey, b: &mut Batch) {
        self.note_negotiated(peer, "", b);
    }

    fn note_negotiated(&mut self, peer: &PublicKey, installation_id: &str, b: &mut Batch) {
        if *peer == self.own {
            return;
        }
        let k = peer.serialize_uncompressed();
        if !self.negotiated.contains_key(&k) {
            if self.negotiated.len() >= self.config.max_negotiated {
                return;
            }
            let listen = negotiated_listen(&self.identity, peer);
            self.negotiated.insert(
                k,
                Negotiated {
                    installations: BTreeSet::new(),
                    listen,
                },
            );
            b.first.push(Record::Negotiated {
                peer: *peer,
                installation_id: String::new(),
            });
            b.listen_changed = true;
        }
        if installation_id.is_empty() {
            return;
        }
        if let Some(n) = self.negotiated.get_mut(&k) {
            if n.installations.insert(installation_id.to_string()) {
                b.first.push(Record::Negotiated {
                    peer: *peer,
                    installation_id: installation_id.to_string(),
                });
            }
        }
    }

    pub(super) fn remember(&mut self, id: MessageId) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > self.config.max_seen_ids {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    fn clock_mut(&mut self, chat: &str) -> Option<&mut LamportClock> {
        if !self.clocks.contains_key(chat) && self.clocks.len() >= self.config.max_clocks {
            return None;
        }
        Some(self.clocks.entry(chat.to_string()).or_default())
    }

    /// The clock of a message we send in `chat`.
    pub(super) fn tick(&mut self, now: Time, chat: &str) -> u64 {
        match self.clock_mut(chat) {
            Some(k) => k.tick(now),
            None => LamportClock::default().tick(now),
        }
    }

    pub(super) fn check_text(&self, text: &str) -> Result<(), ConversationError> {
        if text.len() > self.config.max_text_bytes {
            return Err(ConversationError::TextTooLong {
                len: text.len(),
                max: self.config.max_text_bytes,
            });
        }
        Ok(())
    }

    /// The bytes of a chat message as sent in `kind`/`chat` (its payload form; Transit
    /// wrapped in a signed StatusProtocolMessage when `wrap_messages`).
    pub(super) fn message_bytes(&self, kind: ChatKind, chat: &str, c4: &C4Message) -> Vec<u8> {
        encode_message(
            self.formats.format(kind, chat),
            c4,
            &self.identity,
            self.config.wrap_messages,
        )
    }

    /// Drains MVDS: records to `persists`, sends encrypted and posted, deliveries processed as
    /// app bytes.
    pub(super) fn drain_mvds(&mut self, now: Time, b: &mut Batch) {
        while let Some(a) = self.mvds.poll_action() {
            match a {
                mvds::Action::Persist(r) => b.persists.push(Record::Mvds(r)),
                mvds::Action::Send { peer, bytes } => match peer_key(&peer) {
                    Some(pk) => {
                        // Our devices need the messages, not our acks to the peer.
                        let sync_own = mvds::decode_payload(&bytes, self.config.mvds.numbering)
                            .is_ok_and(|p| !p.messages.is_empty());
                        if self
                            .encrypt_and_post(now, &pk, &bytes, sync_own, b)
                            .is_err()
                        {
                            self.stats.send_failed += 1;
                        }
                    }
                    None => self.stats.send_failed += 1,
                },
                mvds::Action::Deliver { from, message, .. } => match peer_key(&from) {
                    Some(pk) => self.receive_app(now, &pk, &message.body, b),
                    None => self.stats.undecodable += 1,
                },
            }
        }
    }

    /// Queues a batch in the durable order.
    pub(super) fn flush(&mut self, b: Batch) {
        let mut records: Vec<Record> = b.first.into_iter().chain(b.persists).collect();
        match records.len() {
            0 => {}
            1 => self.actions.extend(records.pop().map(Action::Persist)),
            _ => self
                .actions
                .push_back(Action::Persist(Record::Batch(records))),
        }
        self.actions.extend(b.out);
        if b.listen_changed {
            self.actions.push_back(Action::ListenChanged);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Timers and output.

    /// Fires due timers: MVDS epochs, security-layer expiry, contact-code publication.
    /// Idempotent.
    pub fn handle_timeout(&mut self, now: Time) {
        let mut b = Batch::default();
        let p = self.security.handle_timeout(now);
        b.persists.extend(p.into_iter().map(Record::Security));
        self.mvds.handle_timeout(now);
        self.drain_mvds(now, &mut b);
        self.expire_held(now);
        if self.config.publish_contact_code && now >= self.next_contact_code_at {
            self.next_contact_code_at = now.plus_millis(self.config.contact_code_interval_ms);
            match self.security.contact_code_message(now, &mut self.rng) {
                Ok((p, msg)) => {
                    b.persists.extend(p.into_iter().map(Record::Security));
                    b.first.push(Record::ContactCodePublished {
                        at_ms: now.as_millis(),
                    });
                    if self.own_contact_code_key.get().is_none() {
                        // Derived now to publish: our own topic's filter takes the same key
                        // (before the post) instead of deriving it a second time.
                        self.own_contact_code_key();
                        b.out.push(Action::ListenChanged);
                    }
                    b.out.push(Action::Post {
                        topic: self.own_contact_code_topic,
                        encryption: Encryption::Symmetric {
                            key: self.own_contact_code_key(),
                        },
                        payload: msg.encode_to_vec(),
                    });
                }
                Err(_) => self.stats.send_failed += 1,
            }
        }
        self.flush(b);
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.security.poll_timeout(),
            self.mvds.poll_timeout(),
            self.held.next_expiry(),
            self.config
                .publish_contact_code
                .then_some(self.next_contact_code_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    PublicKey::from_slice(&peer.0).ok()
}
