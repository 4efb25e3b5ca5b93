//! The [`Host`] trait: the state-machine surface the engine drives.
//!
//! Contract: it mirrors [`hush_core::node::Node`] exactly (see that module's docs for call
//! order), so the engine can run the real node or a test double. After every `handle_*` call the
//! engine drains [`Host::poll_action`] until `None`, then re-arms one timer from
//! [`Host::poll_timeout`]. `now` never goes backwards.

use hush_core::node::{
    Action, ChatMessage, Command, ConnId, Direction, Node, NodeError, NodePublicKey,
};
use hush_core::whisper::{TopicClasses, WhisperError};
use hush_core::Time;

/// A node as the simulator sees it.
pub trait Host {
    /// Our public key in wire form (used as the `remote` of outbound dials to us).
    fn public_key(&self) -> NodePublicKey;
    /// A new connection.
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError>;
    /// Bytes received on a connection.
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]);
    /// The connection closed (by the remote, or after our own `Close`).
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId);
    /// An application command.
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError>;
    /// Timers; harmless when called early or twice.
    fn handle_timeout(&mut self, now: Time);
    /// The next output.
    fn poll_action(&mut self) -> Option<Action>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Time>;
    /// The application asks a mailserver for a public chat's history since `since_secs`
    /// (Unix seconds), as [`Node::request_history`] does with the first connected trusted
    /// mailserver. Hosts without a mailserver client refuse (the default):
    /// [`NodeError::NoMailserver`].
    fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
    ) -> Result<(), NodeError> {
        let _ = (now, chat, since_secs);
        Err(NodeError::NoMailserver)
    }
    /// A restarted mailserver replays one envelope it persisted ([`Node::restore_archived`];
    /// `Ok(false)`: already archived or expired). Hosts that cannot archive refuse (the
    /// default): `NodeError::Whisper(WhisperError::NotMailserver)`.
    fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, NodeError> {
        let _ = raw;
        Err(NodeError::Whisper(WhisperError::NotMailserver))
    }
    /// Counts Whisper traffic per class of topics ([`TopicClasses`]; [`TOPIC_CLASS_PUBLIC`],
    /// [`TOPIC_CLASS_CONTACT_CODE`]) from now on. Hosts without Whisper ignore it (the
    /// default).
    fn set_topic_classes(&mut self, classes: TopicClasses) {
        let _ = classes;
    }
    /// Protocol counters, where the host has them (the default: none).
    fn stats(&self) -> HostStats {
        HostStats::default()
    }
    /// A restarted node reloads a public-chat message it had accepted
    /// ([`Node::restore_public_message`], called after the chat's join). Hosts without chat
    /// state ignore it (the default).
    fn restore_public_message(&mut self, message: &ChatMessage) {
        let _ = message;
    }
    /// A restarted node pools again one of its own posts it had persisted before gossiping it
    /// ([`Node::restore_own_envelope`]). Hosts without a pool ignore it (the default).
    fn restore_own_envelope(&mut self, now: Time, raw: &[u8]) -> Result<bool, NodeError> {
        let _ = (now, raw);
        Ok(false)
    }
}

/// Protocol counters read from a host at the end of a run (or before a restart discards it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostStats {
    /// Whisper envelopes received from peers (every copy).
    pub envelopes_received: u64,
    /// Of those, envelopes new to the node (entered its pool): the useful receptions.
    pub envelopes_pooled: u64,
    /// Of those, copies of envelopes already seen (gossip redundancy).
    pub envelope_duplicates: u64,
    /// Envelopes sent to peers.
    pub envelopes_sent: u64,
    /// Envelopes dropped by the topic bloom (light-node filtering at the sender).
    pub dropped_bloom: u64,
    /// Chat payloads rejected as duplicates by the chat layer.
    pub chat_duplicates: u64,
    /// Envelope copies received on public-chat topics ([`TOPIC_CLASS_PUBLIC`]).
    pub public_received: u64,
    /// Public-chat envelopes new to the node.
    pub public_pooled: u64,
    /// Envelope copies received on contact-code topics ([`TOPIC_CLASS_CONTACT_CODE`]).
    pub contact_code_received: u64,
    /// Contact-code envelopes new to the node.
    pub contact_code_pooled: u64,
}

/// Topic class of public chats' topics.
pub const TOPIC_CLASS_PUBLIC: u8 = 0;
/// Topic class of contact-code topics.
pub const TOPIC_CLASS_CONTACT_CODE: u8 = 1;

impl HostStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &HostStats) {
        self.envelopes_received += other.envelopes_received;
        self.envelopes_pooled += other.envelopes_pooled;
        self.envelope_duplicates += other.envelope_duplicates;
        self.envelopes_sent += other.envelopes_sent;
        self.dropped_bloom += other.dropped_bloom;
        self.chat_duplicates += other.chat_duplicates;
        self.public_received += other.public_received;
        self.public_pooled += other.public_pooled;
        self.contact_code_received += other.contact_code_received;
        self.contact_code_pooled += other.contact_code_pooled;
    }
}

/// Plain delegation to the node's inherent methods.
impl Host for Node {
    fn public_key(&self) -> NodePublicKey {
        Node::public_key(self)
    }
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError> {
        Node::handle_connection(self, now, conn, direction)
    }
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        Node::handle_bytes(self, now, conn, bytes)
    }
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        Node::handle_connection_closed(self, now, conn)
    }
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        Node::handle_command(self, now, command)
    }
    fn handle_timeout(&mut self, now: Time) {
        Node::handle_timeout(self, now)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Node::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Time> {
        Node::poll_timeout(self)
    }
    fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
    ) -> Result<(), NodeError> {
        Node::request_history(self, now, chat, since_secs, None)
    }
    fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, NodeError> {
        Node::restore_archived(self, raw)
    }
    fn restore_public_message(&mut self, message: &ChatMessage) {
        Node::restore_public_message(self, message)
    }
    fn restore_own_envelope(&mut self, now: Time, raw: &[u8]) -> Result<bool, NodeError> {
        Node::restore_own_envelope(self, now, raw)
    }
    fn set_topic_classes(&mut self, classes: TopicClasses) {
        Node::set_topic_classes(self, classes)
    }
    fn stats(&self) -> HostStats {
        let w = self.whisper().stats();
        let class = |c: u8| {
            self.whisper()
                .class_counts()
                .get(usize::from(c))
                .copied()
                .unwrap_or_default()
        };
        let (public, codes) = (class(TOPIC_CLASS_PUBLIC), class(TOPIC_CLASS_CONTACT_CODE));
        HostStats {
            public_received: public.received,
            public_pooled: public.pooled,
            contact_code_received: codes.received,
            contact_code_pooled: codes.pooled,
            envelopes_received: w.envelopes_received,
            envelopes_pooled: w.envelopes_pooled,
            envelope_duplicates: w.duplicates,
            envelopes_sent: w.envelopes_sent,
            dropped_bloom: w.dropped_bloom,
            chat_duplicates: self.stats().duplicates_dropped,
        }
    }
}
