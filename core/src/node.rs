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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use secp256k1::SecretKey;
use thiserror::Error;

use crate::chat::service::{ChatConfig, ChatServiceError, PublicChats, Rejected};
use crate::ecies::{pubkey_from_wire, pubkey_to_wire, public_key};
use crate::p2p::enode::Enode;
use crate::p2p::peers::{self, Admission, PeerStats, Peers, PeersError};
use crate::p2p::session::{self, Capability, DisconnectReason, Fault, Role, Session, SessionError};
use crate::rng::{child_seed, rng_from_seed, Rng, Seed};
use crate::time::{earliest, Time};
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
}

/// State that must be committed before the actions that follow it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Persist {
    /// A chat message was accepted (sent or received).
    ChatMessage(ChatMessage),
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
    /// Chat payloads rejected for another reason (undecodable, unsigned, unsafe clock...).
    pub messages_rejected: u64,
    /// Whisper packets for a connection that had already gone.
    pub sends_to_gone_peers: u64,
    /// Sessions we ended, by the reason we sent.
    pub disconnects_sent: BTreeMap<DisconnectReason, u64>,
    /// Sessions the peer ended, by the reason it sent.
    pub disconnects_received: BTreeMap<DisconnectReason, u64>,
    /// Sessions we ended because the peer misbehaved (or went silent), by fault.
    pub peer_faults: BTreeMap<Fault, u64>,
    /// New connections closed unanswered (connection or handshake limits).
    pub connections_refused: u64,
    /// Peer manager counters (dials, limits, duplicates, self connections).
    pub peers: PeerStats,
}

struct Peer {
    session: Session,
    /// Whisper knows this peer (the session is established and Whisper was told).
    whisper_attached: bool,
    /// We have emitted `Close` for it.
    closed: bool,
}

/// The whole stack for one node.
pub struct Node {
    config: NodeConfig,
    p2p_config: Arc<session::Config>,
    secret: SecretKey,
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
}

impl Node {
    /// A node with identity `secret_key`, seeded with `seed`, starting at `now`.
    pub fn new(
        config: NodeConfig,
        secret_key: [u8; 32],
        seed: Seed,
        now: Time,
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
                .filter(|c| c.name != WHISPER_CAPABILITY)
                .cloned(),
        );
        let manager = Peers::new(config.peers.clone(), public);
        let whisper = Whisper::new(config.whisper.clone(), child_seed(&mut rng), now);
        let chats = PublicChats::new(config.chat.clone(), secret);
        Ok(Node {
            p2p_config: Arc::new(p2p),
            config,
            secret,
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
        })
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
                whisper_attached: false,
                closed: false,
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
        let Some(peer) = self.peers.remove(&conn) else {
            self.sync_stats();
            return;
        };
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
        };
        self.pump(now);
        result
    }

    /// Timers; harmless when called early or twice.
    pub fn handle_timeout(&mut self, now: Time) {
        self.observe(now);
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.session.handle_timeout(now);
            }
            self.pump_session(now, conn);
        }
        self.manager.handle_timeout(now);
        self.pump_peers(now);
        self.whisper.handle_timeout(now);
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
        self.peers.values().filter(|p| !p.closed).fold(
            earliest(self.whisper.poll_timeout(), self.manager.poll_timeout()),
            |acc, p| earliest(acc, p.session.poll_timeout()),
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
            let filter = whisper::Filter {
                topics: vec![sub.topic],
                sym_key: sub.key,
                min_pow: 0.0,
            };
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

    fn send_public(&mut self, now: Time, chat: &str, text: &str) -> Result<(), NodeError> {
        self.join(chat)?;
        let out = self.chats.prepare_send(now, chat, text)?;
        self.whisper
            .post(now, out.params, &out.key)
            .map_err(|e| NodeError::Post(e.to_string()))?;
        self.actions
            .push_back(Action::Persist(Persist::ChatMessage(out.message.clone())));
        self.actions
            .push_back(Action::Event(Event::MessageSent(out.message)));
        Ok(())
    }

    /// Moves one session's outputs into node actions and Whisper inputs.
    fn pump_session(&mut self, now: Time, conn: ConnId) {
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
                            self.whisper.handle_peer_connected(now, conn);
                            self.actions.push_back(Action::Event(Event::PeerConnected {
                                conn,
                                remote,
                                client_id,
                            }));
                        }
                        Admission::Reject(reason) => {
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
                    if capability == WHISPER_CAPABILITY {
                        self.whisper.handle_peer_message(now, conn, code, &payload);
                    } else {
                        self.actions
                            .push_back(Action::Event(Event::CapabilityMessage {
                                conn,
                                capability,
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
                    }
                    if was_attached {
                        self.whisper.handle_peer_disconnected(now, conn);
                    }
                    self.manager.handle_closed(now, conn);
                    self.sync_stats();
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
        while let Some(action) = self.whisper.poll_action() {
            match action {
                whisper::Action::Send {
                    peer,
                    code,
                    payload,
                } => {
                    let Some(p) = self.peers.get_mut(&peer) else {
                        self.stats.sends_to_gone_peers += 1;
                        continue;
                    };
                    // Err only if the session is closing or the packet exceeds the frame limit,
                    // which Whisper's own size limit (below p2p's) rules out.
                    if p.session
                        .send(now, WHISPER_CAPABILITY, code, &payload)
                        .is_err()
                    {
                        self.stats.sends_to_gone_peers += 1;
                    }
                    self.pump_session(now, peer);
                }
                whisper::Action::Deliver { filter, message } => {
                    let Some(chat) = self.filters.get(&filter).cloned() else {
                        continue;
                    };
                    match self.chats.receive(now, &chat, &message) {
                        Ok(msg) => {
                            self.stats.messages_received += 1;
                            self.actions
                                .push_back(Action::Persist(Persist::ChatMessage(msg.clone())));
                            self.actions
                                .push_back(Action::Event(Event::MessageReceived(msg)));
                        }
                        Err(Rejected::Duplicate) => self.stats.duplicates_dropped += 1,
                        Err(_) => self.stats.messages_rejected += 1,
                    }
                }
                whisper::Action::DisconnectPeer { peer, .. } => {
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
}

#[cfg(test)]
mod tests;
