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
use crate::p2p::peers::{self, Admission, InboundVerdict, PeerStats, Peers, PeersError};
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

pub use api::*;
pub use shh::{Criteria, NewMessage, ShhError, ShhInfo, ShhRequest, ShhResponse, SHH_VERSION};

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
    /// The `shh_` API's key store and filters ([`shh`]).
    shh: whisper::api::ShhApi,
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
        let config_shh_api = config.shh_api.clone();
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
            shh: whisper::api::ShhApi::new(
                config_shh_api,
                keccak256_concat(&[shh::SHH_API_SEED_LABEL, &seed]),
            ),
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

    /// Counts Whisper traffic per class of topics from now on ([`whisper::TopicClasses`]; a
    /// measurement aid: read the counts with `whisper().class_counts()`).
    pub fn set_topic_classes(&mut self, classes: whisper::TopicClasses) {
        self.whisper.set_topic_classes(classes);
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
        let connections_full = !own_dial && self.connection_count() >= self.config.max_connections;
        let refusal = match direction {
            Direction::Outbound { remote } => {
                if connections_full {
                    // The caller dialed past its budget.
                    return Err(NodeError::TooManyConnections {
                        max: self.config.max_connections,
                    });
                }
                match self.manager.handle_outbound(now, conn, &remote)? {
                    Admission::Accept => None,
                    Admission::Reject(_) => Some("max_pending_handshakes"),
                }
            }
            Direction::Inbound => {
                // The peer manager bounds handshakes per address and, when full, evicts the
                // oldest pending inbound one for this newcomer (so idle sockets cannot lock
                // the node out); the eviction is performed by `pump_peers` below.
                let ip = self.conn_ips.get(&conn).copied();
                let verdict = self
                    .manager
                    .handle_inbound(now, conn, ip, connections_full)?;
                self.pump_peers(now);
                match verdict {
                    InboundVerdict::Accept => None,
                    InboundVerdict::Refuse(why) => Some(why.label()),
                }
            }
        };
        if let Some(reason) = refusal {
            // Answer nothing and close, without spending any crypto on it.
            self.stats.connections_refused += 1;
            crate::log_drop!("p2p", reason, conn);
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
                    if self.shh.owns(filter) {
                        self.shh_deliver(filter, &message);
                        continue;
                    }
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

mod api;
mod chat;
mod counters;
pub mod deferred;
mod history;
mod sessions;
mod shh;
#[cfg(test)]
mod tests;
