//! The node: every layer wired into the one state machine both drivers run.
//!
//! Contract:
//! - The driver owns sockets and assigns each TCP connection a [`ConnId`]. It reports a new
//!   connection with [`Node::handle_connection`] (for an outbound one it says which node it
//!   dialed, so the RLPx initiator knows the remote key), every chunk of received bytes with
//!   [`Node::handle_bytes`], and a closed socket with [`Node::handle_connection_closed`].
//! - The application (CLI, simulator traffic generator) speaks through [`Node::handle_command`].
//! - After each `handle_*` call the driver drains [`Node::poll_action`] until `None` and performs
//!   each action in order: write [`Action::Send`] bytes to the connection, close on
//!   [`Action::Close`] (after the bytes queued before it), commit [`Action::Persist`] before the
//!   next action, surface [`Action::Event`]s. Then it arms a timer for [`Node::poll_timeout`] and
//!   calls [`Node::handle_timeout`] when it fires (early or repeated calls are harmless).
//! - Dialing: [`Command::AddStaticPeer`] makes the node own a peer's connection. It emits
//!   [`Action::Dial`] with a connection id it chose (from
//!   [`crate::p2p::peers::DIAL_CONN_ID_BASE`] up; driver-assigned ids must stay below it); the
//!   driver opens TCP to the enode's address and reports success with
//!   [`Node::handle_connection`] (`Direction::Outbound` with the enode's key, same id) or
//!   failure with [`Node::handle_dial_failed`]. The node redials with backoff when the dial
//!   fails or the connection ends. Driver-initiated connections work as before.
//! - Peer limits, duplicate and self connections are decided by [`crate::p2p::peers`]; every
//!   session end is counted by reason (and by fault when the peer misbehaved) in [`NodeStats`].
//! - `now` never goes backwards.
//! - Mailserver (whisper-v6.md §10). Role: with `config.whisper.mailserver` set, every envelope
//!   the node pools is archived in Whisper's bounded in-memory index and emitted as
//!   [`Persist::Envelope`]; the driver stores it (SQLite) and, at start, replays its rows with
//!   [`Node::restore_archived`] before connecting, so the archive survives restarts. Requests
//!   are answered from the in-memory index (no query round-trip through the driver).
//!   Client: [`Node::request_history`] sends a signed request, encrypted with
//!   PBKDF2([`NodeConfig::mailserver_password`]) (or ECIES to the mailserver's key when that is
//!   `None`), to a connected mailserver from [`NodeConfig::mailservers`] (trusted on connect);
//!   returned envelopes reach joined chats like live ones (deduplicated by message id); a page
//!   ending with a cursor is followed automatically up to [`NodeConfig::max_history_pages`];
//!   each completion is reported as [`Event::HistoryRequestCompleted`].
//! - 1:1 and private groups (status-chat.md §1–§3): the node owns one
//!   [`Conversations`] machine (identity = node key, installation id from
//!   [`NodeConfig::installation_id`]). Its [`Conversations::listen_topics`] become Whisper
//!   filters (asymmetric → our identity key, symmetric → its key), re-synced on
//!   `ListenChanged`; signed payloads delivered to them go to
//!   [`Conversations::handle_incoming`] (unsigned ones are counted and dropped, §1: every
//!   Status message is signed). Its outputs keep their order: `Persist(r)` becomes
//!   [`Persist::Conversation`] queued before the bytes of the posts that follow it (posts are
//!   signed with the identity key, TTL/PoW from [`NodeConfig::chat`]); deliveries become
//!   [`Event::Direct`], [`Event::Group`], [`Event::GroupUpdated`].
//! - Public chats take the application payload of either era (`chat::app`) and, from status-go
//!   v0.36.0's `Messenger.Send`, a `ProtocolMessage` with `public_message`: its bundles go to
//!   [`Conversations::handle_public_protocol_message`] (stored as a contact code's) before its
//!   Transit is read. Every refusal is counted by reason (`NodeStats::public_*`). Posts use the
//!   chat's payload form ([`Command::SetChatFormat`], `conversations.payload_format`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use secp256k1::SecretKey;
use thiserror::Error;

use crate::chat::app::PayloadFormat;
use crate::chat::direct::{
    self as conv, ChatEvent, ConversationError, Conversations, ConversationsConfig, Listen,
    ListenKind, Record, Via,
};
use crate::chat::format::{ChatKind, FormatSetting};
use crate::chat::service::{ChatConfig, ChatServiceError, PublicChats, Rejected};
use crate::chat::ChatError;
use crate::ecies::{pubkey_from_wire, pubkey_to_wire, public_key};
use crate::keccak::keccak256_concat;
use crate::p2p::enode::Enode;
use crate::p2p::peers::{self, Admission, PeerStats, Peers, PeersError};
use crate::p2p::session::{self, Capability, DisconnectReason, Fault, Role, Session, SessionError};
use crate::rng::{child_seed, rng_from_seed, Rng, Seed};
use crate::security::proto::ProtocolMessage;
use crate::stats::Hex;
use crate::time::{earliest, Time};
use crate::whisper::mailserver::RequestPayload;
use crate::whisper::{self, FilterId, Whisper};

pub use crate::chat::service::ChatMessage;

/// A driver-assigned connection identifier, unique for the node's lifetime.
pub type ConnId = u64;

/// A node's public key in wire form: X‖Y of the uncompressed secp256k1 point.
pub type NodePublicKey = [u8; 64];

/// The capability Whisper runs under: `shh` version 6 (EIP-627).
pub const WHISPER_CAPABILITY: &str = "shh";
/// Whisper protocol version.
pub const WHISPER_VERSION: u32 = 6;
/// Message codes reserved by `shh`/6: geth's `NumberOfMessageCodes` = 128.
pub const WHISPER_CODE_COUNT: u64 = 128;
/// Default page size of history requests (status-go v0.38 asks for 100 per page... and the
/// server caps it); we ask for more to need fewer round trips.
pub const DEFAULT_HISTORY_LIMIT: u32 = 1000;
/// Default number of cursor pages followed per history request.
pub const DEFAULT_MAX_HISTORY_PAGES: u32 = 20;
/// History requests awaiting their completion at most (beyond it the lowest request id is
/// forgotten, so its cursor is no longer followed).
pub const MAX_PENDING_HISTORY_REQUESTS: usize = 64;
/// Default history window when `since` is not given: 24 h (status-go's default range).
pub const DEFAULT_HISTORY_WINDOW_SECS: u64 = 24 * 3600;

/// Default installation id of a node's device (status-chat.md §5: device pairing).
pub const DEFAULT_INSTALLATION_ID: &str = "hush-1";

/// Domain separator deriving the conversations' RNG seed from the node seed (so that the
/// other machines' seeds are unchanged by its presence).
const CONVERSATIONS_SEED_LABEL: &[u8] = b"hush/node/conversations";

/// Connections (handshaking or established) a node holds at most; geth's default `MaxPeers`
/// is 25 and Status fleet nodes ran with more, so leave room.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We dialed `remote`.
    Outbound {
        /// The key of the node we dialed (from its enode URL).
        remote: NodePublicKey,
    },
    /// The remote dialed us.
    Inbound,
}

/// Configuration of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Client name sent in the devp2p Hello.
    pub client_id: String,
    /// TCP port we listen on (advertised in the Hello; 0 if not listening).
    pub listen_port: u16,
    /// Connections held at most; more are refused with `TooManyPeers`.
    pub max_connections: usize,
    /// devp2p session timings and limits (`client_id`, `listen_port` and the capability list
    /// are filled in from this config).
    pub p2p: session::Config,
    /// Peer limits, static-peer redial backoff.
    pub peers: peers::Config,
    /// Capabilities run beside `shh`/6; their messages surface as
    /// [`Event::CapabilityMessage`] and are sent with [`Command::SendCapabilityMessage`].
    pub extra_capabilities: Vec<Capability>,
    /// Whisper node settings.
    pub whisper: whisper::Config,
    /// Chat settings.
    pub chat: ChatConfig,
    /// Mailservers we trust (their 127/125 packets are accepted) and send history requests to.
    pub mailservers: Vec<NodePublicKey>,
    /// Password whose PBKDF2 key encrypts history requests (Status: `status-offline-inbox`);
    /// `None` = ECIES to the mailserver's node key. A mailserver node without an explicit
    /// `whisper.mailserver.sym_key` derives its key from this too.
    pub mailserver_password: Option<String>,
    /// Envelopes asked per history page.
    pub history_limit: u32,
    /// Cursor pages followed at most per history request.
    pub max_history_pages: u32,
    /// History window when a request gives no start, seconds.
    pub history_window_secs: u64,
    /// This device's installation id (security layer, device pairing).
    pub installation_id: String,
    /// 1:1 and group conversation settings (security, MVDS, limits).
    pub conversations: ConversationsConfig,
    /// The chat identity (Status: the account key) when it is not the node key. Devices of
    /// one account share the chat identity but each needs its own devp2p node key (peers
    /// keep one connection per node key), so multi-device setups set this. `None` = the node
    /// key is also the chat identity.
    pub chat_identity: Option<[u8; 32]>,
    /// Public posts kept, in order, while the Whisper pool has no room for them
    /// ([`deferred`]); a `/send` beyond it is refused with [`NodeError::Busy`].
    pub max_deferred_posts: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            client_id: format!("hush/v{}", env!("CARGO_PKG_VERSION")),
            listen_port: 0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            p2p: session::Config::default(),
            peers: peers::Config::default(),
            extra_capabilities: Vec::new(),
            whisper: whisper::Config::default(),
            chat: ChatConfig::default(),
            mailservers: Vec::new(),
            mailserver_password: Some(whisper::STATUS_MAILSERVER_PASSWORD.to_string()),
            history_limit: DEFAULT_HISTORY_LIMIT,
            max_history_pages: DEFAULT_MAX_HISTORY_PAGES,
            history_window_secs: DEFAULT_HISTORY_WINDOW_SECS,
            installation_id: DEFAULT_INSTALLATION_ID.to_string(),
            conversations: ConversationsConfig::default(),
            chat_identity: None,
            max_deferred_posts: deferred::DEFAULT_MAX_DEFERRED_POSTS,
        }
    }
}

/// What the application asks of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start receiving a public chat (idempotent).
    JoinPublicChat {
        /// Chat name, e.g. `status`.
        name: String,
    },
    /// Stop receiving a public chat.
    LeavePublicChat {
        /// Chat name.
        name: String,
    },
    /// Send a text message to a public chat (joining it first if needed).
    SendPublicMessage {
        /// Chat name.
        chat: String,
        /// Message text.
        text: String,
    },
    /// Keep a connection to this node: dial it now and redial with backoff whenever it is
    /// lost (see [`Action::Dial`]). Updating the address of a known static peer is allowed.
    AddStaticPeer(Enode),
    /// Stop redialing a static peer (an open connection stays).
    RemoveStaticPeer(NodePublicKey),
    /// Send a message of an extra capability ([`NodeConfig::extra_capabilities`]) to a peer.
    SendCapabilityMessage {
        /// The peer's connection.
        conn: ConnId,
        /// Capability name.
        capability: String,
        /// Code relative to the capability.
        code: u64,
        /// Payload (uncompressed).
        payload: Vec<u8>,
    },
    /// Send a 1:1 message (status-chat.md §2).
    SendDirect {
        /// The recipient's public key (X‖Y).
        to: NodePublicKey,
        /// Message text.
        text: String,
    },
    /// Create a private group with us as admin; its id arrives in [`Event::GroupUpdated`].
    CreateGroup {
        /// Group name.
        name: String,
        /// Members besides us.
        members: Vec<NodePublicKey>,
    },
    /// Add a member to a group we administer.
    AddGroupMember {
        /// Group chat id.
        group: String,
        /// The new member's key.
        member: NodePublicKey,
    },
    /// Rename a group we administer.
    RenameGroup {
        /// Group chat id.
        group: String,
        /// New name.
        name: String,
    },
    /// Remove a (non-admin) member from a group we administer.
    RemoveGroupMember {
        /// Group chat id.
        group: String,
        /// The member's key.
        member: NodePublicKey,
    },
    /// Make members of a group we administer admins.
    AddGroupAdmins {
        /// Group chat id.
        group: String,
        /// Their keys.
        members: Vec<NodePublicKey>,
    },
    /// Accept an invitation to a group (`member-joined`; status-go `ConfirmJoiningGroup`).
    JoinGroup {
        /// Group chat id.
        group: String,
    },
    /// Leave a group (an admin gives up its rights first; the last admin of a group with other
    /// members cannot leave).
    LeaveGroup {
        /// Group chat id.
        group: String,
    },
    /// Pair (or unpair) one of our own other devices: messages we send and receive are
    /// synced to it (status-chat.md §5; at most `max_active_installations` devices).
    PairDevice {
        /// Its installation id (see [`Node::own_devices`]).
        installation_id: String,
        /// `true` to pair, `false` to unpair.
        enabled: bool,
    },
    /// Send a text message to a private group.
    SendGroup {
        /// Group chat id.
        group: String,
        /// Message text.
        text: String,
    },
    /// Choose the application-layer form sent in one chat (`chat::format`), overriding
    /// `conversations.payload_format`; `None` removes the override.
    SetChatFormat {
        /// The chat.
        chat: ChatTarget,
        /// `transit`, `protobuf` or `auto`; `None` = the node-wide setting.
        format: Option<FormatSetting>,
    },
}

/// A chat named by a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTarget {
    /// A public chat, by name.
    Public(String),
    /// A 1:1 chat, by the other party's key.
    Direct(NodePublicKey),
    /// A private group, by id, or by name when exactly one of our groups has it.
    Group(String),
}

/// Things that happened, for the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the RLPx and Whisper handshakes.
    PeerConnected {
        /// Its connection.
        conn: ConnId,
        /// Its node key.
        remote: NodePublicKey,
        /// The client id from its Hello.
        client_id: String,
    },
    /// A connection ended (after which the node emits a `Close` for it if it has not already).
    PeerDisconnected {
        /// Its connection.
        conn: ConnId,
        /// Why, in words.
        reason: String,
    },
    /// A message of an extra capability arrived.
    CapabilityMessage {
        /// The peer's connection.
        conn: ConnId,
        /// Capability name.
        capability: String,
        /// Code relative to the capability.
        code: u64,
        /// Payload (uncompressed).
        payload: Vec<u8>,
    },
    /// A message we sent was accepted and posted.
    MessageSent(ChatMessage),
    /// A message arrived in a joined chat (exactly once per message id).
    MessageReceived(ChatMessage),
    /// A history request was sent to a mailserver.
    HistoryRequestSent {
        /// The mailserver's connection.
        conn: ConnId,
        /// The request id (request envelope hash).
        request_id: [u8; 32],
    },
    /// A mailserver finished a history request page (or refused it).
    HistoryRequestCompleted {
        /// The mailserver's connection.
        conn: ConnId,
        /// The request id.
        request_id: [u8; 32],
        /// `Some(reason)` if the mailserver refused the request.
        error: Option<String>,
        /// A follow-up page was requested (the mailserver returned a cursor).
        more: bool,
    },
    /// A 1:1 message arrived (`chat` = `"0x" + pubhex` of the sender), exactly once.
    Direct(ChatMessage),
    /// A private-group message arrived, exactly once.
    Group {
        /// Group chat id.
        group_id: String,
        /// The message.
        message: ChatMessage,
    },
    /// A group's membership or name changed (or we learned of, or created, the group).
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

/// State that must be committed before the actions that follow it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Persist {
    /// A chat message was accepted (sent or received).
    ChatMessage(ChatMessage),
    /// Mailserver: an envelope to archive durably (replay with [`Node::restore_archived`]).
    Envelope {
        /// Envelope hash.
        hash: [u8; 32],
        /// Sent time (`Expiry - TTL`), Unix seconds.
        sent_secs: u32,
        /// Topic.
        topic: [u8; 4],
        /// The envelope's RLP encoding.
        raw: Vec<u8>,
    },
    /// A 1:1/group conversation record (replay with [`Conversations::restore`]).
    Conversation(Record),
    /// One of our own posts, sealed and pooled but not yet gossiped: keep it until `expiry_secs`
    /// and give it back with [`Node::restore_own_envelope`] after a restart, so that a crash
    /// between accepting a message and the next gossip round (300 ms) loses nothing.
    OwnEnvelope {
        /// Envelope hash.
        hash: [u8; 32],
        /// Expiry, Unix seconds (drop the record after it).
        expiry_secs: u32,
        /// The envelope's RLP.
        raw: Vec<u8>,
    },
}

/// One output of the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write these bytes to the connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// Bytes, in order.
        bytes: Vec<u8>,
    },
    /// Close the connection after writing what was queued before.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Open a TCP connection to `enode.addr` for connection id `conn`, then report it with
    /// [`Node::handle_connection`] (outbound to `enode.public_key`) or
    /// [`Node::handle_dial_failed`].
    Dial {
        /// The id the connection gets (≥ [`crate::p2p::peers::DIAL_CONN_ID_BASE`]).
        conn: ConnId,
        /// Whom to dial.
        enode: Enode,
    },
    /// Commit before performing the next action.
    Persist(Persist),
    /// For the application.
    Event(Event),
}

/// Caller misuse and invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The secret key is not a valid secp256k1 scalar.
    #[error("invalid node secret key")]
    InvalidSecretKey,
    /// The connection id is already in use.
    #[error("connection {0} already exists")]
    DuplicateConnection(ConnId),
    /// The remote key of an outbound connection is not a curve point.
    #[error("invalid remote node key")]
    InvalidRemoteKey,
    /// Too many connections.
    #[error("connection limit {max} reached")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// A chat command was refused.
    #[error(transparent)]
    Chat(#[from] ChatServiceError),
    /// Whisper refused a post (too large, could not seal, pool full).
    #[error("whisper refused the post: {0}")]
    Post(String),
    /// Public posts are waiting for room in the Whisper pool and their queue is full
    /// ([`NodeConfig::max_deferred_posts`]): try again later.
    #[error("busy: {max} posts already wait for room in the Whisper pool")]
    Busy {
        /// The queue's bound.
        max: usize,
    },
    /// No connected mailserver to send a history request to.
    #[error("no connected mailserver (configure one and wait for the connection)")]
    NoMailserver,
    /// Whisper refused an operation (history request, archive replay).
    #[error(transparent)]
    Whisper(#[from] whisper::WhisperError),
    /// Asked to dial our own key.
    #[error("refusing to dial our own node key")]
    SelfDial,
    /// A peer-management request was refused (limits, unknown dial id).
    #[error(transparent)]
    Peers(PeersError),
    /// No such connection.
    #[error("no connection {0}")]
    UnknownConnection(ConnId),
    /// The session refused a send (not established, unknown capability, too large, queue
    /// full).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A 1:1 or group command was refused.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// No chat of that kind and name (or several groups share the name).
    #[error("unknown chat {0:?}")]
    UnknownChat(String),
    /// A contact or member key is not a secp256k1 point.
    #[error("invalid contact public key")]
    InvalidContactKey,
}

impl From<PeersError> for NodeError {
    fn from(e: PeersError) -> Self {
        match e {
            PeersError::SelfDial => NodeError::SelfDial,
            e => NodeError::Peers(e),
        }
    }
}

/// Counters of things a peer or the network did to us (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Sessions that ended, by any cause.
    pub sessions_closed: u64,
    /// Chat messages accepted from the network.
    pub messages_received: u64,
    /// Chat payloads rejected: duplicates (normal with gossip, counted apart).
    pub duplicates_dropped: u64,
    /// Chat payloads rejected for another reason: the sum of the `public_*` reasons below.
    pub messages_rejected: u64,
    /// Public-chat payloads without a Whisper signature.
    pub public_unsigned: u64,
    /// Public-chat payloads whose Transit did not decode.
    pub public_undecodable: u64,
    /// Public-chat payloads that are protobuf of neither era's wrapper, or a bad `ChatMessage`.
    pub public_undecodable_protobuf: u64,
    /// Public-chat payloads whose wrapper signature does not recover a key.
    pub public_bad_wrapper_signature: u64,
    /// Public-chat ProtocolMessages (v0.36.0 `Messenger.Send`) whose bundles the security
    /// layer refused (status-go drops the whole message too).
    pub public_bundles_rejected: u64,
    /// Records on a public topic that are not chat messages (`g5`, `p2`...).
    pub public_not_a_message: u64,
    /// Messages of another chat or not `public-group-user-message`.
    pub public_wrong_chat: u64,
    /// Messages with a clock more than 31 days ahead.
    pub public_unsafe_clock: u64,
    /// Messages for a chat no longer joined.
    pub public_not_joined: u64,
    /// Whisper packets for a connection that had already gone.
    pub sends_to_gone_peers: u64,
    /// Sessions we ended, by the reason we sent.
    pub disconnects_sent: BTreeMap<DisconnectReason, u64>,
    /// Sessions the peer ended, by the reason it sent.
    pub disconnects_received: BTreeMap<DisconnectReason, u64>,
    /// Sessions we ended because the peer misbehaved (or went silent), by fault.
    pub peer_faults: BTreeMap<Fault, u64>,
    /// Base-protocol messages sessions read and discarded (a second Hello, reserved codes).
    pub base_messages_ignored: u64,
    /// Peers Whisper disconnected for a fault, by fault (`PeerFault` labels).
    pub whisper_peer_faults: BTreeMap<&'static str, u64>,
    /// Bytes reported for a connection the node does not know (dropped).
    pub bytes_for_unknown_connections: u64,
    /// Messages Whisper delivered to a filter removed in the meantime (dropped).
    pub deliveries_for_removed_filters: u64,
    /// New connections closed unanswered (connection or handshake limits).
    pub connections_refused: u64,
    /// Peer manager counters (dials, limits, duplicates, self connections).
    pub peers: PeerStats,
    /// Batch acknowledgements (code 11) received.
    pub batches_acknowledged: u64,
    /// History pages completed by mailservers (including refusals).
    pub history_pages_completed: u64,
    /// Payloads on conversation topics dropped because they were not signed.
    pub unsigned_dropped: u64,
    /// Conversation posts Whisper refused (too large, pool full).
    pub conversation_posts_failed: u64,
    /// 1:1 and group events delivered to the application.
    pub conversation_events: u64,
    /// Conversation topic changes Whisper could not follow (filter table full).
    pub conversation_filters_failed: u64,
    /// Public sends queued because the Whisper pool had no room (not a drop: see
    /// [`deferred`]).
    pub posts_deferred: u64,
    /// Queued public sends that failed when retried (e.g. the chat's key is gone).
    pub deferred_posts_failed: u64,
}

/// A history request in flight, to follow its cursor.
struct PendingHistory {
    conn: ConnId,
    request: RequestPayload,
    pages: u32,
}

struct Peer {
    session: Session,
    /// `session.ignored_base_messages()` already added to `NodeStats::base_messages_ignored`.
    ignored_base_messages_seen: u64,
    /// Whisper knows this peer (the session is established and Whisper was told).
    whisper_attached: bool,
    /// We have emitted `Close` for it.
    closed: bool,
    /// `session.poll_timeout()` as last seen (None once closed); mirrored in
    /// `Node::session_deadlines`.
    deadline: Option<Time>,
}

/// The whole stack for one node.
pub struct Node {
    config: NodeConfig,
    p2p_config: Arc<session::Config>,
    secret: SecretKey,
    /// The chat identity (signs chat posts, opens 1:1 envelopes); often `secret`.
    chat_secret: SecretKey,
    public: NodePublicKey,
    rng: Rng,
    peers: BTreeMap<ConnId, Peer>,
    manager: Peers,
    whisper: Whisper,
    chats: PublicChats,
    /// Whisper filter of each joined chat, and back.
    filters: BTreeMap<FilterId, String>,
    chat_filters: BTreeMap<String, FilterId>,
    actions: VecDeque<Action>,
    stats: NodeStats,
    last_now: Time,
    /// Remote node key of each established connection.
    remotes: BTreeMap<ConnId, NodePublicKey>,
    /// Remote IP of connections whose driver reported it (per-IP rate limits).
    conn_ips: BTreeMap<ConnId, IpAddr>,
    /// History requests in flight by request id.
    history: BTreeMap<[u8; 32], PendingHistory>,
    /// PBKDF2 of `mailserver_password`, computed on first use.
    mailserver_key: Option<[u8; 32]>,
    /// 1:1 and group conversations.
    conversations: Conversations,
    /// Whisper filter of each conversation topic, and back.
    conv_listens: BTreeMap<Listen, FilterId>,
    conv_filters: BTreeMap<FilterId, Via>,
    /// Every open session's next deadline, earliest first: refreshed whenever the node has
    /// touched that session (every call into a session is followed by `pump_session`), so
    /// `poll_timeout` and `handle_timeout` do not visit every session after every event.
    session_deadlines: BTreeSet<(Time, ConnId)>,
    /// Public posts waiting for room in the Whisper pool, oldest first.
    deferred_posts: VecDeque<deferred::DeferredPost>,
}

impl Node {
    /// A node with identity `secret_key`, seeded with `seed`, starting at `now`.
    pub fn new(
        config: NodeConfig,
        secret_key: [u8; 32],
        seed: Seed,
        now: Time,
    ) -> Result<Node, NodeError> {
        Self::build(config, secret_key, seed, now, None)
    }

    /// A node restarted from the [`Persist::Conversation`] records it emitted before (in
    /// emission order; see [`Conversations::restore`]): sessions, skipped keys, MVDS state,
    /// groups, contacts, seen message ids and clocks come back; outgoing messages never posted
    /// are re-encrypted with fresh keys and MVDS resumes retransmission. `seed` MUST be fresh
    /// (drawn anew for every start): replaying an RNG stream would repeat ephemeral keys.
    /// Public-chat history is restored with [`Node::restore_public_message`] after the joins.
    pub fn restore(
        config: NodeConfig,
        secret_key: [u8; 32],
        seed: Seed,
        now: Time,
        records: Vec<Record>,
    ) -> Result<Node, NodeError> {
        Self::build(config, secret_key, seed, now, Some(records))
    }

    /// Restores a public-chat message the node had accepted ([`Persist::ChatMessage`]): its id
    /// is a duplicate from now on and the chat's clock is at least its clock.
    pub fn restore_public_message(&mut self, message: &ChatMessage) {
        self.chats.restore_message(message);
    }

    fn build(
        config: NodeConfig,
        secret_key: [u8; 32],
        seed: Seed,
        now: Time,
        records: Option<Vec<Record>>,
    ) -> Result<Node, NodeError> {
        let secret =
            SecretKey::from_byte_array(&secret_key).map_err(|_| NodeError::InvalidSecretKey)?;
        let public = pubkey_to_wire(&public_key(&secret));
        let mut rng = rng_from_seed(seed);
        let mut p2p = config.p2p.clone();
        p2p.client_id = config.client_id.clone();
        p2p.listen_port = config.listen_port;
        p2p.capabilities = vec![Capability::new(
            WHISPER_CAPABILITY,
            WHISPER_VERSION,
            WHISPER_CODE_COUNT,
        )];
        p2p.capabilities.extend(
            config
                .extra_capabilities
                .iter()
                .filter(|c| &*c.name != WHISPER_CAPABILITY)
                .cloned(),
        );
        let manager = Peers::new(config.peers.clone(), public);
        let mut whisper_config = config.whisper.clone();
        let mut mailserver_key = None;
        if let (Some(ms), Some(pw)) = (
            whisper_config.mailserver.as_mut(),
            config.mailserver_password.as_ref(),
        ) {
            if ms.sym_key.is_none() {
                let key = whisper::sym_key_from_password(pw.as_bytes());
                ms.sym_key = Some(key);
                mailserver_key = Some(key);
            }
        }
        let mut whisper = Whisper::new(whisper_config, child_seed(&mut rng), now);
        whisper.set_identity(secret);
        let chat_secret = match &config.chat_identity {
            Some(k) => SecretKey::from_byte_array(k).map_err(|_| NodeError::InvalidSecretKey)?,
            None => secret,
        };
        let chats = PublicChats::new(config.chat.clone(), chat_secret);
        let conv_seed = keccak256_concat(&[CONVERSATIONS_SEED_LABEL, &seed]);
        let conversations = match records {
            None => Conversations::new(
                config.conversations.clone(),
                chat_secret,
                &config.installation_id,
                conv_seed,
                now,
            )?,
            Some(records) => Conversations::restore(
                config.conversations.clone(),
                chat_secret,
                &config.installation_id,
                conv_seed,
                now,
                records,
            )?,
        };
        let mut node = Node {
            p2p_config: Arc::new(p2p),
            config,
            secret,
            chat_secret,
            public,
            rng,
            peers: BTreeMap::new(),
            manager,
            whisper,
            chats,
            filters: BTreeMap::new(),
            chat_filters: BTreeMap::new(),
            actions: VecDeque::new(),
            stats: NodeStats::default(),
            last_now: now,
            remotes: BTreeMap::new(),
            conn_ips: BTreeMap::new(),
            history: BTreeMap::new(),
            deferred_posts: VecDeque::new(),
            mailserver_key,
            conversations,
            conv_listens: BTreeMap::new(),
            conv_filters: BTreeMap::new(),
            session_deadlines: BTreeSet::new(),
        };
        node.sync_conversation_filters()?;
        // A restore queues re-encrypted posts and their records.
        node.drain_conversations(now);
        Ok(node)
    }

    /// The 1:1/group machine, for inspection (groups, stats).
    pub fn conversations(&self) -> &Conversations {
        &self.conversations
    }

    /// Our other devices (installations of our identity learned from our contact-code
    /// topic): `(installation id, paired)`, by id. This device is not listed.
    pub fn own_devices(&self) -> Vec<(String, bool)> {
        let security = self.conversations.security();
        let own = self.conversations.identity_public();
        security
            .installations_of(&own)
            .filter(|r| r.installation_id != security.installation_id())
            .map(|r| (r.installation_id.clone(), r.enabled))
            .collect()
    }

    /// Our chat identity's public key in wire form (the node key unless
    /// [`NodeConfig::chat_identity`] is set): what contacts address 1:1 messages to.
    pub fn chat_public_key(&self) -> NodePublicKey {
        pubkey_to_wire(&public_key(&self.chat_secret))
    }

    /// Our public key in wire form.
    pub fn public_key(&self) -> NodePublicKey {
        self.public
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The Whisper machine, for inspection (pool size, counters).
    pub fn whisper(&self) -> &Whisper {
        &self.whisper
    }

    /// Connections currently held (handshaking or established).
    pub fn connection_count(&self) -> usize {
        self.peers.values().filter(|p| !p.closed).count()
    }

    /// Joined public chats, sorted by name.
    pub fn joined_chats(&self) -> Vec<String> {
        self.chats.joined().map(str::to_string).collect()
    }

    /// [`Self::handle_connection`] with the remote IP, used by Whisper's per-IP rate limit.
    pub fn handle_connection_from(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
        ip: IpAddr,
    ) -> Result<(), NodeError> {
        self.conn_ips.insert(conn, ip);
        let result = self.handle_connection(now, conn, direction);
        if result.is_err() || !self.peers.contains_key(&conn) {
            self.conn_ips.remove(&conn);
        }
        result
    }

    /// Mailserver restart: replays one persisted envelope (from [`Persist::Envelope`]) into
    /// the archive. `Ok(false)` if it was already there or is older than a full archive keeps.
    pub fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, NodeError> {
        Ok(self.whisper.restore_archived(raw)?)
    }

    /// Connection of a handshaken peer with this node key.
    pub fn connection_of(&self, remote: &NodePublicKey) -> Option<ConnId> {
        self.remotes
            .iter()
            .find(|(_, r)| *r == remote)
            .map(|(c, _)| *c)
    }

    /// A new connection.
    pub fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError> {
        self.observe(now);
        if self.peers.contains_key(&conn) {
            return Err(NodeError::DuplicateConnection(conn));
        }
        let role = match direction {
            Direction::Outbound { remote } => {
                if remote == self.public {
                    return Err(NodeError::SelfDial);
                }
                Role::Initiator {
                    remote: pubkey_from_wire(&remote).map_err(|_| NodeError::InvalidRemoteKey)?,
                }
            }
            Direction::Inbound => Role::Responder,
        };
        // Our own dials are bounded by the static peer limit, not by `max_connections`.
        let own_dial = conn >= peers::DIAL_CONN_ID_BASE;
        if !own_dial && self.connection_count() >= self.config.max_connections {
            // Inbound: answer nothing and close; outbound: the caller dialed past its budget.
            if matches!(direction, Direction::Outbound { .. }) {
                return Err(NodeError::TooManyConnections {
                    max: self.config.max_connections,
                });
            }
            self.stats.connections_refused += 1;
            crate::log_drop!("p2p", "max_connections", conn);
            self.actions.push_back(Action::Close { conn });
            return Ok(());
        }
        let admission = match direction {
            Direction::Outbound { remote } => self.manager.handle_outbound(now, conn, &remote)?,
            Direction::Inbound => self.manager.handle_inbound(now, conn)?,
        };
        if let Admission::Reject(_) = admission {
            // Too many handshakes in flight: close without spending any crypto on it.
            self.stats.connections_refused += 1;
            crate::log_drop!("p2p", "max_pending_handshakes", conn);
            self.actions.push_back(Action::Close { conn });
            self.sync_stats();
            return Ok(());
        }
        let session = Session::new(
            self.p2p_config.clone(),
            self.secret,
            role,
            child_seed(&mut self.rng),
            now,
        );
        self.peers.insert(
            conn,
            Peer {
                session,
                ignored_base_messages_seen: 0,
                whisper_attached: false,
                closed: false,
                deadline: None,
            },
        );
        self.pump_session(now, conn);
        self.pump(now);
        Ok(())
    }

    /// A dial from [`Action::Dial`] could not connect.
    pub fn handle_dial_failed(&mut self, now: Time, conn: ConnId) -> Result<(), NodeError> {
        self.observe(now);
        self.manager.handle_dial_failed(now, conn)?;
        self.sync_stats();
        Ok(())
    }

    /// Bytes received on a connection.
    pub fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        self.observe(now);
        let Some(peer) = self.peers.get_mut(&conn) else {
            self.stats.bytes_for_unknown_connections += 1;
            crate::log_drop!("node", "bytes_for_unknown_connection", conn);
            return;
        };
        peer.session.handle_input(now, bytes);
        self.pump_session(now, conn);
        self.pump(now);
    }

    /// The socket of a connection closed (by the remote or after our `Close`).
    pub fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        self.observe(now);
        self.manager.handle_closed(now, conn);
        self.remotes.remove(&conn);
        self.conn_ips.remove(&conn);
        let Some(peer) = self.peers.remove(&conn) else {
            self.sync_stats();
            return;
        };
        if let Some(t) = peer.deadline {
            self.session_deadlines.remove(&(t, conn));
        }
        if !peer.closed {
            self.stats.sessions_closed += 1;
            self.actions
                .push_back(Action::Event(Event::PeerDisconnected {
                    conn,
                    reason: DisconnectReason::TcpError.to_string(),
                }));
        }
        if peer.whisper_attached {
            self.whisper.handle_peer_disconnected(now, conn);
        }
        self.pump(now);
    }

    /// Ends every session for an application that is stopping: each established session sends
    /// Disconnect(`reason`) (devp2p 0x08 `Quitting` on `/quit` or a signal; framed and
    /// compressed as that session's frames are), one still in its handshake just closes; then
    /// each emits `Close`. Static peers are forgotten so that nothing is redialed. The driver
    /// performs the actions and lets the writers flush (for a bounded time) before it exits.
    /// (A method rather than a [`Command`] variant, like [`Node::request_history`].)
    pub fn disconnect_all(&mut self, now: Time, reason: DisconnectReason) {
        self.observe(now);
        for enode in self.manager.static_peers() {
            self.manager.remove_static(&enode.public_key);
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            if let Some(peer) = self.peers.get_mut(&conn) {
                if !peer.closed {
                    peer.session.disconnect(now, reason);
                }
            }
            self.pump_session(now, conn);
        }
        self.pump(now);
    }

    /// An application command.
    pub fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        self.observe(now);
        let result = match command {
            Command::JoinPublicChat { name } => self.join(&name),
            Command::LeavePublicChat { name } => {
                self.chats.leave(&name);
                if let Some(filter) = self.chat_filters.remove(&name) {
                    self.filters.remove(&filter);
                    self.whisper.remove_filter(filter);
                }
                Ok(())
            }
            Command::SendPublicMessage { chat, text } => self.send_public(now, &chat, &text),
            Command::AddStaticPeer(enode) => self
                .manager
                .add_static(now, enode)
                .map_err(NodeError::from)
                .map(|()| self.pump_peers(now)),
            Command::RemoveStaticPeer(key) => {
                self.manager.remove_static(&key);
                Ok(())
            }
            Command::SendCapabilityMessage {
                conn,
                capability,
                code,
                payload,
            } => match self.peers.get_mut(&conn) {
                Some(p) if !p.closed => {
                    let sent = p.session.send(now, &capability, code, &payload);
                    self.pump_session(now, conn);
                    sent.map_err(NodeError::from)
                }
                _ => Err(NodeError::UnknownConnection(conn)),
            },
            Command::SendDirect { to, text } => contact_key(&to).and_then(|to| {
                self.conversations
                    .send_direct(now, &to, &text)
                    .map(drop)
                    .map_err(NodeError::from)
            }),
            Command::CreateGroup { name, members } => members
                .iter()
                .map(contact_key)
                .collect::<Result<Vec<_>, _>>()
                .and_then(|members| {
                    self.conversations
                        .create_group(now, &name, &members)
                        .map(drop)
                        .map_err(NodeError::from)
                }),
            Command::AddGroupMember { group, member } => contact_key(&member).and_then(|m| {
                self.conversations
                    .add_member(now, &group, &m)
                    .map_err(NodeError::from)
            }),
            Command::RenameGroup { group, name } => self
                .conversations
                .rename_group(now, &group, &name)
                .map_err(NodeError::from),
            Command::RemoveGroupMember { group, member } => contact_key(&member).and_then(|m| {
                self.conversations
                    .remove_member(now, &group, &m)
                    .map_err(NodeError::from)
            }),
            Command::AddGroupAdmins { group, members } => members
                .iter()
                .map(contact_key)
                .collect::<Result<Vec<_>, _>>()
                .and_then(|keys| {
                    self.conversations
                        .add_admins(now, &group, &keys)
                        .map_err(NodeError::from)
                }),
            Command::JoinGroup { group } => self
                .conversations
                .join_group(now, &group)
                .map_err(NodeError::from),
            Command::LeaveGroup { group } => self
                .conversations
                .leave_group(now, &group)
                .map_err(NodeError::from),
            Command::PairDevice {
                installation_id,
                enabled,
            } => self
                .conversations
                .set_own_installation_enabled(&installation_id, enabled)
                .map_err(NodeError::from),
            Command::SendGroup { group, text } => self
                .conversations
                .send_group(now, &group, &text)
                .map(drop)
                .map_err(NodeError::from),
            Command::SetChatFormat { chat, format } => self.set_chat_format(&chat, format),
        };
        self.pump(now);
        result
    }

    /// Timers; harmless when called early or twice.
    pub fn handle_timeout(&mut self, now: Time) {
        self.observe(now);
        // Only sessions with a deadline due can act (Session::handle_timeout is a no-op
        // otherwise, and no session has unpumped output); in connection order, as before.
        let mut conns: Vec<ConnId> = self
            .session_deadlines
            .range(..=(now, ConnId::MAX))
            .map(|&(_, conn)| conn)
            .collect();
        conns.sort_unstable();
        for conn in conns {
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.session.handle_timeout(now);
            }
            self.pump_session(now, conn);
        }
        self.manager.handle_timeout(now);
        self.pump_peers(now);
        self.whisper.handle_timeout(now);
        self.retry_deferred_posts(now);
        self.conversations.handle_timeout(now);
        self.pump(now);
    }

    /// The next output.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let sessions = self.session_deadlines.first().map(|&(t, _)| t);
        debug_assert_eq!(
            sessions,
            self.peers
                .values()
                .filter(|p| !p.closed)
                .fold(None, |acc, p| earliest(acc, p.session.poll_timeout())),
            "cached session deadlines out of date"
        );
        earliest(
            earliest(self.whisper.poll_timeout(), self.manager.poll_timeout()),
            earliest(self.conversations.poll_timeout(), sessions),
        )
    }

    fn observe(&mut self, now: Time) {
        debug_assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = self.last_now.max(now);
    }

    fn join(&mut self, name: &str) -> Result<(), NodeError> {
        if let Some(sub) = self.chats.join(name)? {
            // allow_p2p: mailserver (code 127) envelopes reach the chat too, as in status-go.
            let filter = whisper::Filter::symmetric(vec![sub.topic], sub.key);
            match self.whisper.add_filter(filter) {
                Ok(id) => {
                    self.filters.insert(id, name.to_string());
                    self.chat_filters.insert(name.to_string(), id);
                }
                Err(e) => {
                    self.chats.leave(name);
                    return Err(NodeError::Post(e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Asks a mailserver for a public chat's history (joining the chat first if needed):
    /// envelopes sent since `since_secs` (default: now − `history_window_secs`) up to now, from
    /// `mailserver` (default: the first connected one of [`NodeConfig::mailservers`]). The
    /// messages arrive as [`Event::MessageReceived`]; each page ends with
    /// [`Event::HistoryRequestCompleted`]. (A method rather than a [`Command`] variant so that
    /// exhaustive matches on `Command` elsewhere keep compiling.)
    pub fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
        mailserver: Option<NodePublicKey>,
    ) -> Result<(), NodeError> {
        self.observe(now);
        let result = self.request_history_inner(now, chat, since_secs, mailserver);
        self.pump(now);
        result
    }

    fn request_history_inner(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
        mailserver: Option<NodePublicKey>,
    ) -> Result<(), NodeError> {
        self.join(chat)?;
        let conn = match mailserver {
            Some(key) => self.connection_of(&key),
            None => self
                .remotes
                .iter()
                .find(|(_, r)| self.config.mailservers.contains(r))
                .map(|(c, _)| *c),
        }
        .ok_or(NodeError::NoMailserver)?;
        let now_secs = now.as_secs();
        let lower = since_secs.unwrap_or(now_secs.saturating_sub(self.config.history_window_secs));
        let clamp = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        let request = RequestPayload {
            lower: clamp(lower),
            upper: clamp(now_secs),
            bloom: PublicChats::subscription(chat).topic.bloom(),
            limit: self.config.history_limit,
            cursor: Vec::new(),
            batch: true,
        };
        self.send_history_request(now, conn, request, 1)
    }

    fn send_history_request(
        &mut self,
        now: Time,
        conn: ConnId,
        request: RequestPayload,
        pages: u32,
    ) -> Result<(), NodeError> {
        let encryption = match &self.config.mailserver_password {
            Some(pw) => {
                let key = *self
                    .mailserver_key
                    .get_or_insert_with(|| whisper::sym_key_from_password(pw.as_bytes()));
                whisper::Encryption::Symmetric(key)
            }
            None => {
                let remote = self.remotes.get(&conn).ok_or(NodeError::NoMailserver)?;
                let key = pubkey_from_wire(remote).map_err(|_| NodeError::InvalidRemoteKey)?;
                whisper::Encryption::Asymmetric(key)
            }
        };
        let request_id = self
            .whisper
            .request_history(now, conn, &request, &encryption)?;
        // Bound requests a silent mailserver never completes: forget the lowest request id.
        while self.history.len() >= MAX_PENDING_HISTORY_REQUESTS {
            self.history.pop_first();
        }
        self.history.insert(
            request_id,
            PendingHistory {
                conn,
                request,
                pages,
            },
        );
        self.actions
            .push_back(Action::Event(Event::HistoryRequestSent {
                conn,
                request_id,
            }));
        Ok(())
    }

    fn history_completed(&mut self, now: Time, conn: ConnId, c: whisper::RequestCompletion) {
        self.stats.history_pages_completed += 1;
        let pending = self.history.remove(&c.request_id);
        let mut more = false;
        if let Some(p) = pending {
            if c.error.is_none() && !c.cursor.is_empty() && p.pages < self.config.max_history_pages
            {
                let mut next = p.request;
                next.cursor = c.cursor.clone();
                more = self
                    .send_history_request(now, p.conn, next, p.pages + 1)
                    .is_ok();
            }
        }
        self.actions
            .push_back(Action::Event(Event::HistoryRequestCompleted {
                conn,
                request_id: c.request_id,
                error: c.error,
                more,
            }));
    }

    /// Posts one public message now (see [`Self::send_public`] for the queue in front).
    fn post_public(&mut self, now: Time, chat: &str, text: &str) -> Result<(), NodeError> {
        self.join(chat)?;
        let format = self.conversations.payload_format(ChatKind::Public, chat);
        let out = self.chats.prepare_send(now, chat, text, format)?;
        let hash = self
            .whisper
            .post(now, out.params, &out.key)
            .map_err(|e| match e {
                whisper::WhisperError::PoolFull => NodeError::Whisper(e),
                e => NodeError::Post(e.to_string()),
            })?;
        self.actions
            .push_back(Action::Persist(Persist::ChatMessage(out.message.clone())));
        self.keep_own_post(&hash);
        self.actions
            .push_back(Action::Event(Event::MessageSent(out.message)));
        Ok(())
    }

    /// Persists our own freshly pooled envelope before gossip can send it (see
    /// [`Persist::OwnEnvelope`]).
    fn keep_own_post(&mut self, hash: &[u8; 32]) {
        if let Some((raw, expiry_secs)) = self.whisper.pooled_raw(hash) {
            self.actions
                .push_back(Action::Persist(Persist::OwnEnvelope {
                    hash: *hash,
                    expiry_secs,
                    raw: raw.to_vec(),
                }));
        }
    }

    /// Restart: pools again one of our own envelopes ([`Persist::OwnEnvelope`]) to be gossiped.
    /// `Ok(false)` if it has expired or is already pooled.
    pub fn restore_own_envelope(&mut self, now: Time, raw: &[u8]) -> Result<bool, NodeError> {
        Ok(self.whisper.repost_raw(now, raw)?)
    }

    /// Moves one session's outputs into node actions and Whisper inputs, then refreshes its
    /// cached deadline.
    fn pump_session(&mut self, now: Time, conn: ConnId) {
        self.drain_session(now, conn);
        self.refresh_session_deadline(conn);
    }

    /// Re-reads one session's deadline into `session_deadlines`.
    fn refresh_session_deadline(&mut self, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let now_due = if peer.closed {
            None
        } else {
            peer.session.poll_timeout()
        };
        if now_due == peer.deadline {
            return;
        }
        if let Some(t) = std::mem::replace(&mut peer.deadline, now_due) {
            self.session_deadlines.remove(&(t, conn));
        }
        if let Some(t) = now_due {
            self.session_deadlines.insert((t, conn));
        }
    }

    fn drain_session(&mut self, now: Time, conn: ConnId) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            let ignored = peer.session.ignored_base_messages();
            let new = ignored.saturating_sub(peer.ignored_base_messages_seen);
            peer.ignored_base_messages_seen = ignored;
            self.stats.base_messages_ignored += new;
        }
        loop {
            let Some(peer) = self.peers.get_mut(&conn) else {
                return;
            };
            let Some(action) = peer.session.poll_action() else {
                return;
            };
            match action {
                session::Action::Transmit(bytes) => {
                    self.actions.push_back(Action::Send { conn, bytes })
                }
                session::Action::Close => {
                    if !peer.closed {
                        peer.closed = true;
                        self.actions.push_back(Action::Close { conn });
                    }
                }
                session::Action::Event(session::Event::Established {
                    remote, client_id, ..
                }) => {
                    let remote = pubkey_to_wire(&remote);
                    match self.manager.handle_established(now, conn, &remote) {
                        Admission::Accept => {
                            if let Some(peer) = self.peers.get_mut(&conn) {
                                peer.whisper_attached = true;
                            }
                            self.remotes.insert(conn, remote);
                            let ip = self.conn_ips.get(&conn).copied();
                            self.whisper.handle_peer_connected_from(now, conn, ip);
                            if self.config.mailservers.contains(&remote) {
                                self.whisper.set_trusted(conn, true);
                            }
                            self.actions.push_back(Action::Event(Event::PeerConnected {
                                conn,
                                remote,
                                client_id,
                            }));
                        }
                        Admission::Reject(reason) => {
                            // Counted by the peer manager and as a Disconnect sent.
                            crate::log_drop!("p2p", reason.label(), conn);
                            if let Some(peer) = self.peers.get_mut(&conn) {
                                peer.session.disconnect(now, reason);
                            }
                        }
                    }
                    // A duplicate contest may have ended another connection.
                    self.pump_peers(now);
                }
                session::Action::Event(session::Event::Message {
                    capability,
                    code,
                    payload,
                }) => {
                    if *capability == *WHISPER_CAPABILITY {
                        self.whisper.handle_peer_message(now, conn, code, &payload);
                    } else {
                        self.actions
                            .push_back(Action::Event(Event::CapabilityMessage {
                                conn,
                                capability: capability.to_string(),
                                code,
                                payload,
                            }));
                    }
                }
                session::Action::Event(session::Event::Disconnected { reason, by_peer }) => {
                    let fault = peer.session.fault();
                    let was_attached = std::mem::replace(&mut peer.whisper_attached, false);
                    self.stats.sessions_closed += 1;
                    let by_reason = if by_peer {
                        &mut self.stats.disconnects_received
                    } else {
                        &mut self.stats.disconnects_sent
                    };
                    *by_reason.entry(reason).or_default() += 1;
                    if let Some(fault) = fault {
                        *self.stats.peer_faults.entry(fault).or_default() += 1;
                        crate::log_drop!("p2p", fault.label(), conn);
                    }
                    if was_attached {
                        self.whisper.handle_peer_disconnected(now, conn);
                    }
                    self.manager.handle_closed(now, conn);
                    self.sync_stats();
                    self.remotes.remove(&conn);
                    let who = if by_peer { "by peer" } else { "by us" };
                    self.actions
                        .push_back(Action::Event(Event::PeerDisconnected {
                            conn,
                            reason: format!("{reason} ({who})"),
                        }));
                }
            }
        }
    }

    /// Performs the peer manager's requests: dials become [`Action::Dial`], duplicate losers
    /// are disconnected.
    fn pump_peers(&mut self, now: Time) {
        while let Some(action) = self.manager.poll_action() {
            match action {
                peers::Action::Dial { conn, enode } => {
                    self.actions.push_back(Action::Dial { conn, enode })
                }
                peers::Action::Disconnect { conn, reason } => {
                    if let Some(p) = self.peers.get_mut(&conn) {
                        p.session.disconnect(now, reason);
                    }
                    self.pump_session(now, conn);
                }
            }
        }
        self.sync_stats();
    }

    fn sync_stats(&mut self) {
        if self.stats.peers != *self.manager.stats() {
            self.stats.peers = self.manager.stats().clone();
        }
    }

    /// Drains Whisper (whose sends feed sessions, whose events may feed Whisper again) until
    /// both are quiet.
    fn pump(&mut self, now: Time) {
        loop {
            self.drain_conversations(now);
            let Some(action) = self.whisper.poll_action() else {
                return;
            };
            match action {
                whisper::Action::Send {
                    peer,
                    code,
                    payload,
                } => {
                    let Some(p) = self.peers.get_mut(&peer) else {
                        self.stats.sends_to_gone_peers += 1;
                        crate::log_drop!("node", "send_to_gone_peer", peer);
                        continue;
                    };
                    // Err only if the session is closing or the packet exceeds the frame limit,
                    // which Whisper's own size limit (below p2p's) rules out.
                    if p.session
                        .send(now, WHISPER_CAPABILITY, code, &payload)
                        .is_err()
                    {
                        self.stats.sends_to_gone_peers += 1;
                        crate::log_drop!("node", "send_to_closing_session", peer);
                    }
                    self.pump_session(now, peer);
                }
                whisper::Action::Deliver { filter, message } => {
                    if let Some(&via) = self.conv_filters.get(&filter) {
                        // §1: every Status message is signed; the signer is the sender.
                        match message.signer {
                            Some(signer) => self.conversation_incoming(now, &signer, &message, via),
                            None => {
                                self.stats.unsigned_dropped += 1;
                                crate::log_drop!("node", "unsigned", Hex(&message.envelope_hash));
                            }
                        }
                        continue;
                    }
                    let Some(chat) = self.filters.get(&filter).cloned() else {
                        self.stats.deliveries_for_removed_filters += 1;
                        crate::log_drop!(
                            "node",
                            "delivery_for_removed_filter",
                            Hex(&message.envelope_hash)
                        );
                        continue;
                    };
                    self.receive_public(now, &chat, &message);
                }
                whisper::Action::Archive {
                    hash,
                    sent_secs,
                    topic,
                    raw,
                } => self.actions.push_back(Action::Persist(Persist::Envelope {
                    hash,
                    sent_secs,
                    topic: topic.0,
                    raw,
                })),
                whisper::Action::BatchAcknowledged { .. } => self.stats.batches_acknowledged += 1,
                whisper::Action::MessageResponse { .. } => {}
                whisper::Action::RequestComplete { peer, completion } => {
                    self.history_completed(now, peer, completion)
                }
                whisper::Action::DisconnectPeer { peer, reason } => {
                    *self
                        .stats
                        .whisper_peer_faults
                        .entry(reason.label())
                        .or_default() += 1;
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.whisper_attached = false;
                        p.session
                            .disconnect(now, DisconnectReason::SubprotocolError);
                    }
                    self.pump_session(now, peer);
                }
            }
        }
    }

    /// Performs the conversations' outputs in their order (status-chat.md §1 durability: a
    /// record is committed before the posts made with the state it describes).
    fn drain_conversations(&mut self, now: Time) {
        while let Some(action) = self.conversations.poll_action() {
            match action {
                conv::Action::Post {
                    topic,
                    encryption,
                    payload,
                } => {
                    let params = whisper::MessageParams {
                        payload,
                        padding: None,
                        sign_with: Some(self.chat_secret),
                        topic,
                        ttl_secs: self.config.chat.ttl_secs,
                        pow_target: self.config.chat.pow_target,
                    };
                    let encryption = match encryption {
                        conv::Encryption::Asymmetric { to } => whisper::Encryption::Asymmetric(to),
                        conv::Encryption::Symmetric { key } => whisper::Encryption::Symmetric(key),
                    };
                    match self.whisper.post_with(now, params, &encryption) {
                        Ok(hash) => self.keep_own_post(&hash),
                        Err(e) => {
                            self.stats.conversation_posts_failed += 1;
                            crate::log_drop!("node", "conversation_post_failed", e);
                        }
                    }
                }
                conv::Action::Persist(record) => self
                    .actions
                    .push_back(Action::Persist(Persist::Conversation(record))),
                conv::Action::Deliver(event) => {
                    self.stats.conversation_events += 1;
                    let event = match event {
                        ChatEvent::Direct(m) => Event::Direct(m),
                        ChatEvent::Group { group_id, message } => {
                            Event::Group { group_id, message }
                        }
                        ChatEvent::GroupUpdated {
                            group_id,
                            members,
                            admins,
                            name,
                        } => Event::GroupUpdated {
                            group_id,
                            members,
                            admins,
                            name,
                        },
                    };
                    self.actions.push_back(Action::Event(event));
                }
                conv::Action::ListenChanged => {
                    // Only a full filter table fails; the topics stay wanted and are retried
                    // at the next change.
                    if let Err(e) = self.sync_conversation_filters() {
                        self.stats.conversation_filters_failed += 1;
                        crate::log_drop!("node", "conversation_filter_failed", e);
                    }
                }
            }
        }
    }

    /// Makes the Whisper filters match [`Conversations::listen_topics_deferred`] (our own
    /// contact-code key is derived by Whisper on first use): adds missing ones,
    /// removes stale ones.
    fn sync_conversation_filters(&mut self) -> Result<(), NodeError> {
        let wanted: std::collections::BTreeSet<Listen> = self
            .conversations
            .listen_topics_deferred()
            .into_iter()
            .collect();
        let stale: Vec<Listen> = self
            .conv_listens
            .keys()
            .filter(|l| !wanted.contains(*l))
            .cloned()
            .collect();
        for listen in stale {
            if let Some(id) = self.conv_listens.remove(&listen) {
                self.conv_filters.remove(&id);
                self.whisper.remove_filter(id);
            }
        }
        for listen in wanted {
            if self.conv_listens.contains_key(&listen) {
                continue;
            }
            let filter = match &listen.kind {
                ListenKind::Asymmetric => {
                    whisper::Filter::asymmetric(vec![listen.topic], self.chat_secret)
                }
                ListenKind::Symmetric { key } => {
                    whisper::Filter::symmetric(vec![listen.topic], *key)
                }
                ListenKind::SymmetricPassword { password } => whisper::Filter::symmetric_password(
                    vec![listen.topic],
                    password.clone().into_bytes(),
                ),
            };
            let id = self.whisper.add_filter(filter)?;
            self.conv_filters.insert(id, listen.via);
            self.conv_listens.insert(listen, id);
        }
        Ok(())
    }
}

/// A contact key in wire form (X‖Y) as a curve point.
fn contact_key(key: &NodePublicKey) -> Result<secp256k1::PublicKey, NodeError> {
    pubkey_from_wire(key).map_err(|_| NodeError::InvalidContactKey)
}

mod chat;
mod counters;
pub mod deferred;
#[cfg(test)]
mod tests;
