//! [`FloodHost`]: a tiny flooding host for testing the simulator without the real node.
//!
//! Contract: it implements [`Host`] with a toy protocol over the simulated byte streams (it is
//! NOT the hush protocol). On a connection it sends a hello frame with its key; on a hello it
//! emits `PeerConnected`. `SendPublicMessage` emits `MessageSent` and floods a message frame to
//! every connection; an unseen message frame is re-flooded to every other connection and, if
//! its chat was joined, emitted as `MessageReceived` (once per id). With a ping interval it
//! also arms a timer and pings every connection on it. Malformed input closes the connection.
//!
//! Frame: `kind (1) ‖ body length (2, big-endian) ‖ body`.

use crate::host::Host;
use hush_core::keccak::{keccak256, keccak256_concat};
use hush_core::node::{
    Action, ChatMessage, Command, ConnId, Direction, Event, NodeError, NodePublicKey,
};
use hush_core::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Largest frame body accepted; anything longer is a protocol violation of the toy protocol.
pub const MAX_FRAME_BODY_BYTES: usize = 4096;

const KIND_HELLO: u8 = 1;
const KIND_MESSAGE: u8 = 2;
const KIND_PING: u8 = 3;
const HEADER_BYTES: usize = 3;

/// Options of the fake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodConfig {
    /// Ping every connection this often (exercises timers); `None` for no timer.
    pub ping_interval_ms: Option<u64>,
}

#[derive(Default)]
struct FloodConn {
    buf: Vec<u8>,
}

/// The flooding fake host.
pub struct FloodHost {
    public_key: NodePublicKey,
    config: FloodConfig,
    conns: BTreeMap<ConnId, FloodConn>,
    joined: BTreeSet<String>,
    seen: BTreeSet<[u8; 32]>,
    actions: VecDeque<Action>,
    next_ping: Option<Time>,
    sent: u64,
}

impl FloodHost {
    /// A fake host whose key derives from `secret_key`. Like the real node it rejects some
    /// keys (those starting with a zero byte) so that callers' retry path is exercised.
    pub fn new(
        config: FloodConfig,
        secret_key: [u8; 32],
        now: Time,
    ) -> Result<FloodHost, NodeError> {
        if secret_key[0] == 0 {
            return Err(NodeError::InvalidSecretKey);
        }
        let x = keccak256(&secret_key);
        let y = keccak256(&x);
        let mut public_key = [0u8; 64];
        public_key[..32].copy_from_slice(&x);
        public_key[32..].copy_from_slice(&y);
        Ok(FloodHost {
            public_key,
            config,
            conns: BTreeMap::new(),
            joined: BTreeSet::new(),
            seen: BTreeSet::new(),
            actions: VecDeque::new(),
            next_ping: config.ping_interval_ms.map(|ms| now.plus_millis(ms)),
            sent: 0,
        })
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
        out.push(kind);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn send_to_all(&mut self, except: Option<ConnId>, bytes: &[u8]) {
        for &conn in self.conns.keys() {
            if Some(conn) != except {
                self.actions.push_back(Action::Send {
                    conn,
                    bytes: bytes.to_vec(),
                });
            }
        }
    }

    fn author_key(&self) -> [u8; 65] {
        let mut from = [4u8; 65];
        from[1..].copy_from_slice(&self.public_key);
        from
    }

    /// Message body: `id (32) ‖ author (65) ‖ timestamp (8) ‖ chat length (1) ‖ chat ‖ text`.
    fn encode_message(m: &ChatMessage) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&m.message_id);
        body.extend_from_slice(&m.from);
        body.extend_from_slice(&m.timestamp_ms.to_be_bytes());
        body.push(u8::try_from(m.chat.len()).unwrap_or(u8::MAX));
        body.extend_from_slice(m.chat.as_bytes());
        body.extend_from_slice(m.text.as_bytes());
        body
    }

    fn decode_message(body: &[u8]) -> Option<ChatMessage> {
        let message_id: [u8; 32] = body.get(..32)?.try_into().ok()?;
        let from: [u8; 65] = body.get(32..97)?.try_into().ok()?;
        let timestamp_ms = u64::from_be_bytes(body.get(97..105)?.try_into().ok()?);
        let chat_len = usize::from(*body.get(105)?);
        let chat = String::from_utf8(body.get(106..106 + chat_len)?.to_vec()).ok()?;
        let text = String::from_utf8(body.get(106 + chat_len..)?.to_vec()).ok()?;
        Some(ChatMessage {
            chat,
            from,
            text,
            clock: 0,
            timestamp_ms,
            message_id,
        })
    }

    /// Handles one complete frame; `false` if it is malformed.
    fn on_frame(&mut self, conn: ConnId, kind: u8, body: &[u8]) -> bool {
        match kind {
            KIND_HELLO => {
                let Ok(remote) = <[u8; 64]>::try_from(body) else {
                    return false;
                };
                self.actions.push_back(Action::Event(Event::PeerConnected {
                    conn,
                    remote,
                    client_id: "flood".into(),
                }));
                true
            }
            KIND_MESSAGE => {
                let Some(m) = Self::decode_message(body) else {
                    return false;
                };
                if self.seen.insert(m.message_id) {
                    let bytes = Self::frame(KIND_MESSAGE, body);
                    self.send_to_all(Some(conn), &bytes);
                    if self.joined.contains(&m.chat) {
                        self.actions
                            .push_back(Action::Event(Event::MessageReceived(m)));
                    }
                }
                true
            }
            KIND_PING => body.is_empty(),
            _ => false,
        }
    }
}

impl Host for FloodHost {
    fn public_key(&self) -> NodePublicKey {
        self.public_key
    }

    fn handle_connection(
        &mut self,
        _now: Time,
        conn: ConnId,
        _direction: Direction,
    ) -> Result<(), NodeError> {
        if self.conns.contains_key(&conn) {
            return Err(NodeError::DuplicateConnection(conn));
        }
        self.conns.insert(conn, FloodConn::default());
        let hello = Self::frame(KIND_HELLO, &self.public_key);
        self.actions.push_back(Action::Send { conn, bytes: hello });
        Ok(())
    }

    fn handle_bytes(&mut self, _now: Time, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.buf.extend_from_slice(bytes);
        let mut buf = std::mem::take(&mut c.buf);
        let mut used = 0;
        let mut ok = true;
        while let Some(header) = buf.get(used..used + HEADER_BYTES) {
            let kind = header[0];
            let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
            if len > MAX_FRAME_BODY_BYTES {
                ok = false;
                break;
            }
            let Some(body) = buf.get(used + HEADER_BYTES..used + HEADER_BYTES + len) else {
                break;
            };
            let body = body.to_vec();
            used += HEADER_BYTES + len;
            if !self.on_frame(conn, kind, &body) {
                ok = false;
                break;
            }
        }
        if !ok {
            self.actions.push_back(Action::Close { conn });
            return;
        }
        buf.drain(..used);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buf = buf;
        }
    }

    fn handle_connection_closed(&mut self, _now: Time, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            self.actions
                .push_back(Action::Event(Event::PeerDisconnected {
                    conn,
                    reason: "closed".into(),
                }));
        }
    }

    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        match command {
            Command::JoinPublicChat { name } => {
                self.joined.insert(name);
            }
            Command::LeavePublicChat { name } => {
                self.joined.remove(&name);
            }
            Command::AddStaticPeer(_)
            | Command::RemoveStaticPeer(_)
            | Command::SendCapabilityMessage { .. }
            // 1:1 and groups are not modelled by the fake node.
            | Command::SendDirect { .. }
            | Command::CreateGroup { .. }
            | Command::AddGroupMember { .. }
            | Command::RenameGroup { .. }
            | Command::RemoveGroupMember { .. }
            | Command::AddGroupAdmins { .. }
            | Command::JoinGroup { .. }
            | Command::LeaveGroup { .. }
            | Command::PairDevice { .. }
            | Command::SendGroup { .. }
            | Command::SetChatFormat { .. } => {}
            Command::SendPublicMessage { chat, text } => {
                if chat.is_empty() || chat.len() > usize::from(u8::MAX) {
                    return Err(NodeError::Chat(
                        hush_core::chat::ChatServiceError::InvalidName(chat),
                    ));
                }
                self.joined.insert(chat.clone());
                self.sent += 1;
                let from = self.author_key();
                let message_id =
                    keccak256_concat(&[&from, &self.sent.to_be_bytes(), text.as_bytes()]);
                let m = ChatMessage {
                    chat,
                    from,
                    text,
                    clock: self.sent,
                    timestamp_ms: now.as_millis(),
                    message_id,
                };
                self.seen.insert(message_id);
                let bytes = Self::frame(KIND_MESSAGE, &Self::encode_message(&m));
                self.actions.push_back(Action::Event(Event::MessageSent(m)));
                self.send_to_all(None, &bytes);
            }
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: Time) {
        let (Some(at), Some(interval)) = (self.next_ping, self.config.ping_interval_ms) else {
            return;
        };
        if now < at {
            return;
        }
        let ping = Self::frame(KIND_PING, &[]);
        self.send_to_all(None, &ping);
        self.next_ping = Some(now.plus_millis(interval.max(1)));
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.next_ping
    }
}

#[cfg(test)]
mod tests;
