//! The node's public vocabulary: what the application sends it ([`Command`]), what it
//! emits ([`Action`], [`Event`], [`Persist`]), its configuration, errors and counters.

use super::*;

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
    /// Limits of the `shh_` API's key store and filters.
    pub shh_api: whisper::api::ApiConfig,
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
            shh_api: whisper::api::ApiConfig::default(),
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
    /// A message for a `shh_subscribe` subscription (its id is the filter id).
    ShhMessage(Box<whisper::api::PushedMessage>),
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
