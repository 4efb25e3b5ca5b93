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
//! - `now` never goes backwards.

use crate::rng::Seed;
use crate::time::Time;
use thiserror::Error;

/// A driver-assigned connection identifier, unique for the node's lifetime.
pub type ConnId = u64;

/// A node's public key in wire form: X‖Y of the uncompressed secp256k1 point.
pub type NodePublicKey = [u8; 64];

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
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig { client_id: format!("hush/v{}", env!("CARGO_PKG_VERSION")), listen_port: 0 }
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
}

/// A chat message, sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Chat name.
    pub chat: String,
    /// The author: the 65-byte uncompressed public key recovered from the envelope signature.
    pub from: [u8; 65],
    /// Message text.
    pub text: String,
    /// Lamport clock value.
    pub clock: u64,
    /// Sender's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Status message id: keccak256(author key ‖ payload).
    pub message_id: [u8; 32],
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
    /// The chat name is empty or too long.
    #[error("invalid chat name {0:?}")]
    InvalidChatName(String),
}

/// The whole stack for one node.
pub struct Node {
    _private: (),
}

impl Node {
    /// A node with identity `secret_key`, seeded with `seed`, starting at `now`.
    pub fn new(config: NodeConfig, secret_key: [u8; 32], seed: Seed, now: Time) -> Result<Node, NodeError> {
        let _ = (config, secret_key, seed, now);
        unimplemented!("stub: the lead is wiring core::node")
    }

    /// Our public key in wire form.
    pub fn public_key(&self) -> NodePublicKey {
        unimplemented!()
    }

    /// A new connection.
    pub fn handle_connection(&mut self, now: Time, conn: ConnId, direction: Direction) -> Result<(), NodeError> {
        let _ = (now, conn, direction);
        unimplemented!()
    }

    /// Bytes received on a connection.
    pub fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        let _ = (now, conn, bytes);
        unimplemented!()
    }

    /// The socket of a connection closed (by the remote or after our `Close`).
    pub fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        let _ = (now, conn);
        unimplemented!()
    }

    /// An application command.
    pub fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        let _ = (now, command);
        unimplemented!()
    }

    /// Timers; harmless when called early or twice.
    pub fn handle_timeout(&mut self, now: Time) {
        let _ = now;
        unimplemented!()
    }

    /// The next output.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        unimplemented!()
    }

    /// The next deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        unimplemented!()
    }
}
