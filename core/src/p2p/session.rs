//! One devp2p connection as a pure state machine: the RLPx handshake, the framed base protocol
//! ("p2p" capability v5: Hello, Disconnect, Ping, Pong), snappy compression and capability
//! multiplexing (rlpx.md §3–§7, [G-rlpx], [G-peer]).
//!
//! Contract:
//! - Inputs: raw TCP bytes in any chunking ([`Session::handle_input`]), application sends
//!   ([`Session::send`], [`Session::disconnect`]) and time ([`Session::handle_timeout`]). Every
//!   call takes `now`; `now` must not go backwards.
//! - Outputs: after every `handle_*`/`send`/`disconnect` call, drain [`Session::poll_action`]
//!   until `None`, then re-arm a timer from [`Session::poll_timeout`]. `Transmit` bytes go to
//!   the socket in order; `Close` means: write what came before it, then close the socket.
//! - Events: at most one `Established`, then `Message`s, and always exactly one final
//!   `Disconnected` (even when the handshake never completed). After it the session ignores
//!   all input.
//! - Peer faults never panic and never return errors: they become `Disconnected` + a
//!   best-effort Disconnect message (once frames are up) + `Close`. Caller misuse (sending
//!   before `Established`, unknown capability, code out of range, oversize) returns
//!   [`SessionError`].
//! - Snappy (EIP-706): our Hello is never compressed; every frame after the remote's Hello
//!   is, both ways, iff that Hello announces version ≥ 5, including the Disconnect for a
//!   Hello that fails a check (identity, capabilities) — geth 1.9 already reads everything
//!   after our v5 Hello through snappy. A Disconnect sent before any remote Hello was read
//!   goes out plain, as geth's own pre-Hello ones do.
//! - Buffering is bounded: input is processed as soon as it arrives, so at most one
//!   incomplete handshake packet ([`MAX_HANDSHAKE_PACKET_BYTES`]) or one incomplete frame (its
//!   size checked against the limit from its header) is held.
//! - Deterministic: all randomness (ephemeral keys, nonces, padding, ECIES) comes from the
//!   seed given to [`Session::new`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use secp256k1::{PublicKey, SecretKey};
use thiserror::Error;

use super::rlpx::frame::{FrameCodec, FrameError, MAX_FRAME_SIZE_BYTES};
use super::rlpx::handshake::{
    HandshakeError, Initiator, PacketFormat, Responder, MAX_HANDSHAKE_PACKET_BYTES,
};
use crate::ecies;
use crate::rlp::{Encoder, Rlp, RlpError};
use crate::rng::{rng_from_seed, Rng, Seed};
use crate::time::earliest;
use crate::Time;

/// Version of the base protocol we speak and announce (`baseProtocolVersion`).
pub const BASE_PROTOCOL_VERSION: u64 = 5;
/// Message ids 0x00–0x0f belong to the base protocol; capabilities start at 0x10
/// (`baseProtocolLength`).
pub const BASE_PROTOCOL_LENGTH: u64 = 16;
/// A Hello larger than this is refused ("message too big", `baseProtocolMaxMsgSize`).
pub const MAX_HELLO_BYTES: usize = 2 * 1024;
/// Snappy is used iff the remote Hello announces at least this version (EIP-706).
pub const SNAPPY_PROTOCOL_VERSION: u64 = 5;
/// Largest (uncompressed) message payload: geth refuses anything ≥ 16 MiB (`maxUint24`).
pub const MAX_MESSAGE_SIZE_BYTES: usize = 0xFF_FFFF;
/// geth sends a Ping every 15 s (`pingInterval`).
pub const DEFAULT_PING_INTERVAL_MS: u64 = 15_000;
/// How long a Ping may stay unanswered; geth has no Pong timer but drops a connection after
/// 30 s without a frame (`frameReadTimeout`), which we mirror.
pub const DEFAULT_PONG_TIMEOUT_MS: u64 = 30_000;
/// Budget for the encryption handshake plus Hello (geth `handshakeTimeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Lowest base protocol version we accept in a remote Hello. geth 1.9 checks none; hush
/// refuses versions before 4 (devp2p as deployed since 2015, rlpx.md §7) with
/// `IncompatibleVersion`. Version 4 peers get no snappy (EIP-706).
pub const DEFAULT_MIN_REMOTE_PROTOCOL_VERSION: u64 = 4;
/// Bytes the session may hold in its action queue (not yet taken by `poll_action`) before
/// [`Session::send`] refuses more with [`SessionError::OutputQueueFull`]: one maximum message
/// plus room for the base protocol's own frames.
pub const DEFAULT_MAX_QUEUED_OUTPUT_BYTES: usize = MAX_MESSAGE_SIZE_BYTES + 64 * 1024;
/// Largest RLP encoding of a message code (a `u64`: 1 prefix byte + 8).
const MAX_CODE_BYTES: usize = 9;

/// Base protocol message ids (rlpx.md §7).
const HELLO: u64 = 0x00;
const DISCONNECT: u64 = 0x01;
const PING: u64 = 0x02;
const PONG: u64 = 0x03;

/// A sub-protocol this node runs (or shares with a peer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability {
    /// Protocol name, e.g. `"shh"`. Shared, not owned: every [`Event::Message`] received on
    /// the capability carries it, and a clone is a reference count rather than an allocation
    /// and copy per message.
    pub name: Arc<str>,
    /// Protocol version, e.g. 6.
    pub version: u32,
    /// Number of message codes it uses (Whisper v6: 128).
    pub length: u64,
}

impl Capability {
    /// A capability from its parts.
    pub fn new(name: &str, version: u32, length: u64) -> Self {
        Capability {
            name: Arc::from(name),
            version,
            length,
        }
    }
}

/// Session settings, shared by all sessions of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our client id string in Hello.
    pub client_id: String,
    /// Sub-protocols we run.
    pub capabilities: Vec<Capability>,
    /// Announced listening port (geth announces 0).
    pub listen_port: u16,
    /// Interval between our Pings once established.
    pub ping_interval_ms: u64,
    /// Time after an unanswered Ping before we disconnect with `ReadTimeout`.
    pub pong_timeout_ms: u64,
    /// Deadline for handshake + Hello from the session's creation.
    pub handshake_timeout_ms: u64,
    /// Largest uncompressed message payload sent or accepted (clamped to
    /// [`MAX_MESSAGE_SIZE_BYTES`]).
    pub max_message_size: usize,
    /// Format of the auth packet we send when dialing (geth: always EIP-8). As responder we
    /// answer in the format the initiator used.
    pub auth_format: PacketFormat,
    /// Remote Hellos announcing a lower base protocol version are refused with
    /// `IncompatibleVersion`.
    pub min_remote_protocol_version: u64,
    /// Bound on bytes queued in the session and not yet drained (see
    /// [`DEFAULT_MAX_QUEUED_OUTPUT_BYTES`]).
    pub max_queued_output_bytes: usize,
}

impl Default for Config {
    /// geth's timings, and Whisper v6 (`shh`/6, 128 codes) as the only capability.
    fn default() -> Self {
        Config {
            client_id: concat!("hush/v", env!("CARGO_PKG_VERSION")).to_string(),
            capabilities: vec![Capability::new("shh", 6, 128)],
            listen_port: 0,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            pong_timeout_ms: DEFAULT_PONG_TIMEOUT_MS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            max_message_size: MAX_MESSAGE_SIZE_BYTES,
            auth_format: PacketFormat::Eip8,
            min_remote_protocol_version: DEFAULT_MIN_REMOTE_PROTOCOL_VERSION,
            max_queued_output_bytes: DEFAULT_MAX_QUEUED_OUTPUT_BYTES,
        }
    }
}

/// Which side of the TCP connection we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// We dialed `remote`.
    Initiator {
        /// The static key we expect to talk to.
        remote: PublicKey,
    },
    /// We accepted the connection.
    Responder,
}

/// devp2p disconnect reasons ([G-perr]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum DisconnectReason {
    /// Disconnect requested.
    Requested = 0x00,
    /// TCP / network error.
    TcpError = 0x01,
    /// Breach of protocol (bad message, bad MAC, ...).
    ProtocolError = 0x02,
    /// No shared capability.
    UselessPeer = 0x03,
    /// Too many peers.
    TooManyPeers = 0x04,
    /// Already connected.
    AlreadyConnected = 0x05,
    /// Incompatible p2p protocol version.
    IncompatibleVersion = 0x06,
    /// Invalid node identity.
    InvalidIdentity = 0x07,
    /// Client quitting.
    Quitting = 0x08,
    /// Node identity differs from the one dialed / the handshake key.
    UnexpectedIdentity = 0x09,
    /// Connected to self.
    SelfConnect = 0x0a,
    /// Read timeout (includes unanswered Ping and handshake timeout).
    ReadTimeout = 0x0b,
    /// A sub-protocol failed.
    SubprotocolError = 0x10,
}

impl DisconnectReason {
    /// The reason for a wire code, if known.
    pub fn from_code(code: u64) -> Option<Self> {
        use DisconnectReason::*;
        Some(match code {
            0x00 => Requested,
            0x01 => TcpError,
            0x02 => ProtocolError,
            0x03 => UselessPeer,
            0x04 => TooManyPeers,
            0x05 => AlreadyConnected,
            0x06 => IncompatibleVersion,
            0x07 => InvalidIdentity,
            0x08 => Quitting,
            0x09 => UnexpectedIdentity,
            0x0a => SelfConnect,
            0x0b => ReadTimeout,
            0x10 => SubprotocolError,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl DisconnectReason {
    /// A snake_case name for counters and logs.
    pub fn label(self) -> &'static str {
        use DisconnectReason::*;
        match self {
            Requested => "requested",
            TcpError => "tcp_error",
            ProtocolError => "protocol_error",
            UselessPeer => "useless_peer",
            TooManyPeers => "too_many_peers",
            AlreadyConnected => "already_connected",
            IncompatibleVersion => "incompatible_version",
            InvalidIdentity => "invalid_identity",
            Quitting => "quitting",
            UnexpectedIdentity => "unexpected_identity",
            SelfConnect => "self_connect",
            ReadTimeout => "read_timeout",
            SubprotocolError => "subprotocol_error",
        }
    }
}

impl fmt::Display for DisconnectReason {
    /// geth's texts (`discReasonToString`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DisconnectReason::*;
        f.write_str(match self {
            Requested => "disconnect requested",
            TcpError => "network error",
            ProtocolError => "breach of protocol",
            UselessPeer => "useless peer",
            TooManyPeers => "too many peers",
            AlreadyConnected => "already connected",
            IncompatibleVersion => "incompatible p2p protocol version",
            InvalidIdentity => "invalid node identity",
            Quitting => "client quitting",
            UnexpectedIdentity => "unexpected identity",
            SelfConnect => "connected to self",
            ReadTimeout => "read timeout",
            SubprotocolError => "subprotocol error",
        })
    }
}

/// What the session reports upward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Handshake and Hello exchange done.
    Established {
        /// The remote static key (proved by the handshake).
        remote: PublicKey,
        /// The remote's client id string.
        client_id: String,
        /// Shared capabilities (our entries), in name order.
        capabilities: Vec<Capability>,
    },
    /// A sub-protocol message.
    Message {
        /// Capability name.
        capability: Arc<str>,
        /// Code relative to the capability.
        code: u64,
        /// Uncompressed payload.
        payload: Vec<u8>,
    },
    /// The session ended; always the last event.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// True if the peer sent a Disconnect, false if we ended the session.
        by_peer: bool,
    },
}

/// The session's outputs, drained with [`Session::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the socket, in order.
    Transmit(Vec<u8>),
    /// Something to report upward.
    Event(Event),
    /// Close the socket after writing the `Transmit`s before this.
    Close,
}

/// Caller misuse of [`Session::send`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session is not (or no longer) established.
    #[error("session not established")]
    NotEstablished,
    /// The capability is not shared with this peer.
    #[error("capability {name:?} not shared with this peer")]
    UnknownCapability {
        /// The name asked for.
        name: String,
    },
    /// The code is outside the capability's range.
    #[error("message code {code} out of range (capability has {length} codes)")]
    CodeOutOfRange {
        /// Relative code asked for.
        code: u64,
        /// The capability's number of codes.
        length: u64,
    },
    /// The payload (or its framed form) exceeds the limit.
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The output queue holds `max_queued_output_bytes` already: drain `poll_action` first.
    #[error("output queue full ({queued} bytes queued, limit {max})")]
    OutputQueueFull {
        /// Bytes queued.
        queued: usize,
        /// The limit.
        max: usize,
    },
}

/// What a peer did wrong (or failed to do), recorded when the session ends because of it.
/// One fault maps to one [`DisconnectReason`]; the fault is the finer label for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The auth/ack did not decrypt (wrong key, tampering, not RLPx).
    HandshakeDecrypt,
    /// The EIP-8 size prefix is below the legacy packet size ("size underflow").
    HandshakeSizeUnderflow,
    /// The decrypted auth/ack body is malformed (RLP, public key).
    HandshakeBody,
    /// The auth signature does not recover a key.
    HandshakeSignature,
    /// Handshake plus Hello took longer than `handshake_timeout_ms`.
    HandshakeTimeout,
    /// Header MAC mismatch ("bad header MAC").
    BadHeaderMac,
    /// Frame MAC mismatch ("bad frame MAC").
    BadFrameMac,
    /// A frame header announced more than the frame limit.
    FrameTooLarge,
    /// A frame did not start with an RLP message code.
    BadMessageCode,
    /// The first message was neither Hello nor Disconnect ("expected handshake").
    ExpectedHello,
    /// The Hello is larger than [`MAX_HELLO_BYTES`] ("message too big").
    HelloTooLarge,
    /// The Hello does not decode.
    BadHello,
    /// The Hello announces a base protocol version below the minimum.
    IncompatibleVersion,
    /// The Hello node id is not 64 bytes or is all zero.
    InvalidIdentity,
    /// The Hello node id differs from the handshake key.
    UnexpectedIdentity,
    /// The remote is ourselves.
    SelfConnect,
    /// No capability in common.
    UselessPeer,
    /// A snappy payload does not decode.
    BadSnappy,
    /// A (decompressed) message exceeds `max_message_size`.
    MessageTooLarge,
    /// A message code outside every shared capability ("msg code out of range").
    CodeOutOfRange,
    /// A Ping stayed unanswered for `pong_timeout_ms`.
    PongTimeout,
}

impl Fault {
    /// A snake_case name for counters and logs.
    pub fn label(self) -> &'static str {
        use Fault::*;
        match self {
            HandshakeDecrypt => "handshake_decrypt",
            HandshakeSizeUnderflow => "handshake_size_underflow",
            HandshakeBody => "handshake_body",
            HandshakeSignature => "handshake_signature",
            HandshakeTimeout => "handshake_timeout",
            BadHeaderMac => "bad_header_mac",
            BadFrameMac => "bad_frame_mac",
            FrameTooLarge => "frame_too_large",
            BadMessageCode => "bad_message_code",
            ExpectedHello => "expected_hello",
            HelloTooLarge => "hello_too_large",
            BadHello => "bad_hello",
            IncompatibleVersion => "incompatible_version",
            InvalidIdentity => "invalid_identity",
            UnexpectedIdentity => "unexpected_identity",
            SelfConnect => "self_connect",
            UselessPeer => "useless_peer",
            BadSnappy => "bad_snappy",
            MessageTooLarge => "message_too_large",
            CodeOutOfRange => "code_out_of_range",
            PongTimeout => "pong_timeout",
        }
    }

    /// The Disconnect reason sent for this fault (geth `discReasonForError`, rlpx.md §7).
    pub fn reason(self) -> DisconnectReason {
        use Fault::*;
        match self {
            HandshakeTimeout | PongTimeout => DisconnectReason::ReadTimeout,
            IncompatibleVersion => DisconnectReason::IncompatibleVersion,
            InvalidIdentity => DisconnectReason::InvalidIdentity,
            UnexpectedIdentity => DisconnectReason::UnexpectedIdentity,
            SelfConnect => DisconnectReason::SelfConnect,
            UselessPeer => DisconnectReason::UselessPeer,
            HandshakeDecrypt
            | HandshakeSizeUnderflow
            | HandshakeBody
            | HandshakeSignature
            | BadHeaderMac
            | BadFrameMac
            | FrameTooLarge
            | BadMessageCode
            | ExpectedHello
            | HelloTooLarge
            | BadHello
            | BadSnappy
            | MessageTooLarge
            | CodeOutOfRange => DisconnectReason::ProtocolError,
        }
    }
}

impl From<&HandshakeError> for Fault {
    fn from(e: &HandshakeError) -> Fault {
        match e {
            HandshakeError::SizeUnderflow { .. } => Fault::HandshakeSizeUnderflow,
            HandshakeError::Rlp(_) | HandshakeError::InvalidPublicKey => Fault::HandshakeBody,
            HandshakeError::InvalidSignature => Fault::HandshakeSignature,
            _ => Fault::HandshakeDecrypt,
        }
    }
}

impl From<&FrameError> for Fault {
    fn from(e: &FrameError) -> Fault {
        match e {
            FrameError::BadHeaderMac => Fault::BadHeaderMac,
            FrameError::BadFrameMac => Fault::BadFrameMac,
            FrameError::FrameTooLarge { .. } => Fault::FrameTooLarge,
            _ => Fault::BadMessageCode,
        }
    }
}

/// A decoded Hello (rlpx.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Announced base protocol version.
    pub version: u64,
    /// Client id string (lossy UTF-8; geth does not validate it).
    pub client_id: String,
    /// `(name, version)` pairs as announced.
    pub capabilities: Vec<(String, u64)>,
    /// Announced listening port.
    pub listen_port: u64,
    /// Node id bytes (should be the 64-byte public key).
    pub node_id: Vec<u8>,
    /// Extra trailing list elements (tolerated, EIP-8).
    pub extra_elements: usize,
}

/// Encodes a Hello payload `[version, client-id, [[cap, version], ...], port, id]`.
pub fn encode_hello(hello: &Hello) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        e.u64(hello.version).bytes(hello.client_id.as_bytes());
        e.list(|e| {
            for (name, version) in &hello.capabilities {
                e.list(|e| {
                    e.bytes(name.as_bytes()).u64(*version);
                });
            }
        });
        e.u64(hello.listen_port).bytes(&hello.node_id);
    });
    e.finish()
}

/// Decodes a Hello payload, tolerating extra trailing elements (`rlp:"tail"`).
pub fn decode_hello(payload: &[u8]) -> Result<Hello, RlpError> {
    let item = Rlp::new(payload)?;
    let mut list = item.list()?;
    let version = list.item()?.u64()?;
    let client_id = String::from_utf8_lossy(list.item()?.bytes()?).into_owned();
    let mut caps_list = list.item()?.list()?;
    let mut capabilities = Vec::new();
    while let Some(cap) = caps_list.next_item()? {
        let mut cap = cap.list()?;
        let name = String::from_utf8_lossy(cap.item()?.bytes()?).into_owned();
        let version = cap.item()?.u64()?;
        cap.finish()?; // Go `Cap` has no tail
        capabilities.push((name, version));
    }
    let listen_port = list.item()?.u64()?;
    let node_id = list.item()?.bytes()?.to_vec();
    let extra_elements = list.count()?;
    Ok(Hello {
        version,
        client_id,
        capabilities,
        listen_port,
        node_id,
        extra_elements,
    })
}

/// Encodes a Disconnect payload `[reason]`.
pub fn encode_disconnect(reason: DisconnectReason) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        e.u64(u64::from(reason.code()));
    });
    e.finish()
}

/// Decodes a Disconnect payload: `[reason, ...]` or a bare integer. As geth (which ignores the
/// decode error and reads a zero reason), anything undecodable is `Requested`; an unknown code
/// is reported as `ProtocolError`.
pub fn decode_disconnect(payload: &[u8]) -> DisconnectReason {
    let code = (|| -> Result<u64, RlpError> {
        let (item, _) = Rlp::new_prefix(payload)?;
        if item.is_list() {
            match item.list()?.next_item()? {
                Some(first) => first.u64(),
                None => Ok(0),
            }
        } else {
            item.u64()
        }
    })();
    match code {
        Ok(code) => DisconnectReason::from_code(code).unwrap_or(DisconnectReason::ProtocolError),
        Err(_) => DisconnectReason::Requested,
    }
}

/// A capability shared with the peer and its message-id offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCapability {
    /// Our capability entry.
    pub capability: Capability,
    /// First absolute message id.
    pub offset: u64,
}

/// geth `matchProtocols`: sort the remote caps by (name, version); every cap we also run
/// (same name and version) gets the next offset from 0x10; a later (higher) version of a
/// name replaces the earlier one and takes back its range. Keyed by name.
pub fn match_capabilities(
    local: &[Capability],
    remote: &[(String, u64)],
) -> BTreeMap<String, SharedCapability> {
    let mut sorted: Vec<&(String, u64)> = remote.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    let mut offset = BASE_PROTOCOL_LENGTH;
    let mut result: BTreeMap<String, SharedCapability> = BTreeMap::new();
    for (name, version) in sorted {
        let Some(cap) = local
            .iter()
            .find(|c| *c.name == **name && u64::from(c.version) == *version)
        else {
            continue;
        };
        if let Some(old) = result.get(name) {
            offset = offset.saturating_sub(old.capability.length);
        }
        result.insert(
            name.clone(),
            SharedCapability {
                capability: cap.clone(),
                offset,
            },
        );
        offset = offset.saturating_add(cap.length);
    }
    result
}

enum Phase {
    AwaitAck(Box<Initiator>),
    AwaitAuth(Box<Responder>),
    /// Frames are up and our Hello is sent; waiting for theirs.
    AwaitHello,
    Established,
    Closed,
}

/// Per-thread snappy scratch (see [`Session::send_frame`]).
struct Snappy {
    encoder: snap::raw::Encoder,
    buf: Vec<u8>,
}

thread_local! {
    static SNAPPY: std::cell::RefCell<Snappy> = std::cell::RefCell::new(Snappy {
        encoder: snap::raw::Encoder::new(),
        buf: Vec::new(),
    });
}

/// Seals one frame straight onto the last queued `Transmit` (consecutive frames go out as one
/// write, as [`Session::push_transmit`] merges them), or a new one. Returns the bytes added.
fn seal_onto(
    actions: &mut VecDeque<Action>,
    codec: &mut FrameCodec,
    code: u64,
    body: &[u8],
) -> Result<usize, FrameError> {
    if let Some(Action::Transmit(last)) = actions.back_mut() {
        let before = last.len();
        codec.seal(code, body, last)?;
        return Ok(last.len() - before);
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    codec.seal(code, body, &mut out)?;
    let n = out.len();
    actions.push_back(Action::Transmit(out));
    Ok(n)
}

/// One devp2p connection. See the module docs for the contract.
pub struct Session {
    config: Arc<Config>,
    local: SecretKey,
    rng: Rng,
    phase: Phase,
    codec: Option<FrameCodec>,
    remote: Option<PublicKey>,
    snappy: bool,
    shared: BTreeMap<String, SharedCapability>,
    /// Received bytes; those before `inpos` are consumed.
    inbuf: Vec<u8>,
    /// Read offset of the frame reader into `inbuf`: frames are opened in place and skipped,
    /// and the buffer is compacted once per input chunk (only a partial frame's bytes move)
    /// rather than shifted after every frame. Zero during the handshake.
    inpos: usize,
    actions: VecDeque<Action>,
    handshake_deadline: Time,
    next_ping: Option<Time>,
    pong_deadline: Option<Time>,
    last_now: Time,
    /// Bytes of `Transmit` actions not yet drained.
    queued_output: usize,
    /// Why the peer was dropped, if it was its fault.
    fault: Option<Fault>,
    /// Base-protocol messages read and discarded (a second Hello, reserved codes).
    ignored_base_messages: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote)
            .field("established", &self.is_established())
            .field("buffered", &(self.inbuf.len() - self.inpos))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session. An initiator queues its auth packet at once; dialing our own key ends
    /// the session at once with `SelfConnect` (nothing is sent).
    pub fn new(config: Arc<Config>, local: SecretKey, role: Role, seed: Seed, now: Time) -> Self {
        let mut rng = rng_from_seed(seed);
        let mut actions = VecDeque::new();
        let mut self_dial = false;
        let (phase, remote) = match role {
            Role::Initiator { remote } if remote == ecies::public_key(&local) => {
                self_dial = true;
                (Phase::AwaitHello, Some(remote))
            }
            Role::Initiator { remote } => {
                let init = Initiator::new_with_format(&mut rng, local, remote, config.auth_format);
                actions.push_back(Action::Transmit(init.auth_packet().to_vec()));
                (Phase::AwaitAck(Box::new(init)), Some(remote))
            }
            Role::Responder => (
                Phase::AwaitAuth(Box::new(Responder::new(&mut rng, local))),
                None,
            ),
        };
        let mut session = Session {
            handshake_deadline: now.plus_millis(config.handshake_timeout_ms),
            config,
            local,
            rng,
            phase,
            codec: None,
            remote,
            snappy: false,
            shared: BTreeMap::new(),
            inbuf: Vec::new(),
            inpos: 0,
            actions,
            next_ping: None,
            pong_deadline: None,
            last_now: now,
            queued_output: 0,
            fault: None,
            ignored_base_messages: 0,
        };
        session.queued_output = session
            .actions
            .iter()
            .map(|a| match a {
                Action::Transmit(b) => b.len(),
                _ => 0,
            })
            .sum();
        if self_dial {
            session.fail(Fault::SelfConnect);
        }
        session
    }

    /// The peer fault that ended the session, if it ended because of one.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Base-protocol messages read and discarded so far (a second Hello, the reserved codes
    /// 0x04–0x0f), as geth does.
    pub fn ignored_base_messages(&self) -> u64 {
        self.ignored_base_messages
    }

    /// Bytes of `Transmit` actions queued and not yet drained.
    pub fn queued_output_bytes(&self) -> usize {
        self.queued_output
    }

    /// The remote static key, once known (at once when dialing, after the auth otherwise).
    pub fn remote_public_key(&self) -> Option<PublicKey> {
        self.remote
    }

    /// True between `Established` and `Disconnected`.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// Shared capabilities and their offsets (empty until established).
    pub fn shared_capabilities(&self) -> &BTreeMap<String, SharedCapability> {
        &self.shared
    }

    /// Raw bytes from the socket, in any chunking.
    pub fn handle_input(&mut self, now: Time, bytes: &[u8]) {
        self.observe(now);
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.inbuf.extend_from_slice(bytes);
        self.process();
    }

    /// Sends a sub-protocol message; `code` is relative to the capability.
    pub fn send(
        &mut self,
        now: Time,
        capability: &str,
        code: u64,
        payload: &[u8],
    ) -> Result<(), SessionError> {
        self.observe(now);
        if !self.is_established() {
            return Err(SessionError::NotEstablished);
        }
        let shared =
            self.shared
                .get(capability)
                .ok_or_else(|| SessionError::UnknownCapability {
                    name: capability.to_string(),
                })?;
        if code >= shared.capability.length {
            return Err(SessionError::CodeOutOfRange {
                code,
                length: shared.capability.length,
            });
        }
        let absolute = shared.offset.saturating_add(code);
        if self.queued_output >= self.config.max_queued_output_bytes {
            return Err(SessionError::OutputQueueFull {
                queued: self.queued_output,
                max: self.config.max_queued_output_bytes,
            });
        }
        let max = self.max_message_size();
        if payload.len() > max {
            return Err(SessionError::MessageTooLarge {
                size: payload.len(),
                max,
            });
        }
        self.send_frame(absolute, payload)
            .map_err(|_| SessionError::MessageTooLarge {
                size: payload.len(),
                max,
            })
    }

    /// Ends the session: a Disconnect message (once frames are up), the event, then Close.
    pub fn disconnect(&mut self, now: Time, reason: DisconnectReason) {
        self.observe(now);
        self.close(reason, false);
    }

    /// Fires due timers (handshake deadline, Ping, Pong deadline). Idempotent.
    pub fn handle_timeout(&mut self, now: Time) {
        self.observe(now);
        match self.phase {
            Phase::Closed => {}
            Phase::Established => {
                if self.pong_deadline.is_some_and(|d| now >= d) {
                    self.fail(Fault::PongTimeout);
                    return;
                }
                if self.next_ping.is_some_and(|t| now >= t) {
                    // A Ping's payload is the empty list (rlpx.md §7).
                    if self.send_frame(PING, &[0xc0]).is_err() {
                        self.close(DisconnectReason::ProtocolError, false);
                        return;
                    }
                    self.next_ping = Some(now.plus_millis(self.config.ping_interval_ms));
                    if self.pong_deadline.is_none() {
                        self.pong_deadline = Some(now.plus_millis(self.config.pong_timeout_ms));
                    }
                }
            }
            _ => {
                if now >= self.handshake_deadline {
                    self.fail(Fault::HandshakeTimeout);
                }
            }
        }
    }

    /// The next output, if any. Drain until `None` after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if let Some(Action::Transmit(bytes)) = &action {
            self.queued_output = self.queued_output.saturating_sub(bytes.len());
        }
        action
    }

    /// The next deadline at which [`Session::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.phase {
            Phase::Closed => None,
            Phase::Established => earliest(self.next_ping, self.pong_deadline),
            _ => Some(self.handshake_deadline),
        }
    }

    fn observe(&mut self, now: Time) {
        debug_assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = self.last_now.max(now);
    }

    fn max_message_size(&self) -> usize {
        self.config.max_message_size.min(MAX_MESSAGE_SIZE_BYTES)
    }

    /// Frame limit: the largest compressed message plus its RLP code (≤ 9 bytes).
    fn max_frame_size(&self) -> usize {
        snap::raw::max_compress_len(self.max_message_size())
            .saturating_add(9)
            .min(MAX_FRAME_SIZE_BYTES)
    }

    /// Queues bytes for the socket, merging with a preceding `Transmit`.
    fn push_transmit(&mut self, bytes: Vec<u8>) {
        self.queued_output = self.queued_output.saturating_add(bytes.len());
        if let Some(Action::Transmit(last)) = self.actions.back_mut() {
            last.extend_from_slice(&bytes);
        } else {
            self.actions.push_back(Action::Transmit(bytes));
        }
    }

    fn send_frame(&mut self, code: u64, payload: &[u8]) -> Result<(), FrameError> {
        let Some(codec) = self.codec.as_mut() else {
            return Err(FrameError::FrameTooLarge {
                size: payload.len(),
                max: 0,
            });
        };
        let sealed = if self.snappy {
            // One encoder and output buffer per thread: a snappy encoder owns a hash table
            // (allocated and zeroed per call otherwise); the output is the same either way.
            SNAPPY.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let Snappy { encoder, buf } = &mut *scratch;
                buf.resize(snap::raw::max_compress_len(payload.len()), 0);
                let n = encoder
                    .compress(payload, buf)
                    .map_err(|_| FrameError::FrameTooLarge {
                        size: payload.len(),
                        max: MAX_FRAME_SIZE_BYTES,
                    })?;
                seal_onto(
                    &mut self.actions,
                    codec,
                    code,
                    buf.get(..n).unwrap_or_default(),
                )
            })
        } else {
            seal_onto(&mut self.actions, codec, code, payload)
        }?;
        self.queued_output = self.queued_output.saturating_add(sealed);
        Ok(())
    }

    /// Ends the session because of a peer fault, recording it.
    fn fail(&mut self, fault: Fault) {
        if !matches!(self.phase, Phase::Closed) && self.fault.is_none() {
            self.fault = Some(fault);
        }
        self.close(fault.reason(), false);
    }

    /// Ends the session once: best-effort Disconnect, the final event, Close.
    fn close(&mut self, reason: DisconnectReason, by_peer: bool) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if !by_peer && self.codec.is_some() {
            // Best effort; a Disconnect payload is 2-3 bytes and cannot exceed the limit.
            let _ = self.send_frame(DISCONNECT, &encode_disconnect(reason));
        }
        self.phase = Phase::Closed;
        self.codec = None;
        self.inbuf = Vec::new();
        self.inpos = 0;
        self.next_ping = None;
        self.pong_deadline = None;
        self.actions
            .push_back(Action::Event(Event::Disconnected { reason, by_peer }));
        self.actions.push_back(Action::Close);
    }

    /// Consumes as much buffered input as possible.
    fn process(&mut self) {
        loop {
            let progressed = match self.phase {
                Phase::Closed => return,
                Phase::AwaitAck(_) | Phase::AwaitAuth(_) => self.advance_handshake(),
                Phase::AwaitHello | Phase::Established => self.read_frame(),
            };
            if !progressed {
                self.compact_input();
                debug_assert!(
                    self.inbuf.len() <= MAX_HANDSHAKE_PACKET_BYTES.max(self.max_frame_size() + 64),
                    "input buffer exceeds its bound"
                );
                return;
            }
        }
    }

    /// Drops the consumed bytes before `inpos` (a clear when everything was read, else one
    /// move of the incomplete frame's bytes).
    fn compact_input(&mut self) {
        if self.inpos == 0 {
            return;
        }
        if self.inpos >= self.inbuf.len() {
            self.inbuf.clear();
        } else {
            self.inbuf.drain(..self.inpos);
        }
        self.inpos = 0;
    }

    /// Returns true if a handshake packet was consumed (or the session closed).
    fn advance_handshake(&mut self) -> bool {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        match phase {
            Phase::AwaitAck(init) => match init.read_ack(&self.inbuf) {
                Ok(None) => {
                    self.phase = Phase::AwaitAck(init);
                    false
                }
                Ok(Some((ack, _format, used))) => {
                    let ack_packet: Vec<u8> = self.inbuf.drain(..used).collect();
                    let secrets = init.finish(&ack, &ack_packet);
                    self.start_frames(secrets);
                    true
                }
                Err(e) => {
                    self.phase = Phase::AwaitAck(init);
                    self.fail(Fault::from(&e));
                    true
                }
            },
            Phase::AwaitAuth(resp) => match resp.read_auth(&self.inbuf) {
                Ok(None) => {
                    self.phase = Phase::AwaitAuth(resp);
                    false
                }
                Ok(Some((auth, _, _)))
                    if auth.initiator_pubkey == ecies::public_key(&self.local) =>
                {
                    // Our own auth came back (we dialed our own address): geth `DiscSelf`.
                    self.phase = Phase::AwaitAuth(resp);
                    self.fail(Fault::SelfConnect);
                    true
                }
                Ok(Some((auth, format, used))) => {
                    let auth_packet: Vec<u8> = self.inbuf.drain(..used).collect();
                    let ack_packet = resp.ack_packet(&mut self.rng, &auth, format);
                    match resp.finish(&auth, &auth_packet, &ack_packet) {
                        Ok(secrets) => {
                            self.remote = Some(auth.initiator_pubkey);
                            self.push_transmit(ack_packet);
                            self.start_frames(secrets);
                        }
                        Err(e) => {
                            self.phase = Phase::AwaitHello; // any non-closed phase
                            self.fail(Fault::from(&e));
                        }
                    }
                    true
                }
                Err(e) => {
                    self.phase = Phase::AwaitAuth(resp);
                    self.fail(Fault::from(&e));
                    true
                }
            },
            other => {
                self.phase = other;
                false
            }
        }
    }

    /// Frames are up: send our Hello (never compressed) and wait for theirs.
    fn start_frames(&mut self, secrets: super::rlpx::Secrets) {
        self.codec = Some(FrameCodec::new(secrets, self.max_frame_size()));
        self.phase = Phase::AwaitHello;
        let hello = Hello {
            version: BASE_PROTOCOL_VERSION,
            client_id: self.config.client_id.clone(),
            capabilities: self
                .config
                .capabilities
                .iter()
                .map(|c| (c.name.to_string(), u64::from(c.version)))
                .collect(),
            listen_port: u64::from(self.config.listen_port),
            node_id: ecies::pubkey_to_wire(&ecies::public_key(&self.local)).to_vec(),
            extra_elements: 0,
        };
        if self.send_frame(HELLO, &encode_hello(&hello)).is_err() {
            // Our own Hello too large for the frame limit: a configuration problem.
            self.close(DisconnectReason::ProtocolError, false);
            return;
        }
        // Until the Hello is in, the frame limit is the Hello limit ([G-rlpx]
        // `baseProtocolMaxMsgSize`), so a peer cannot make us buffer 16 MiB before it is known.
        if let Some(codec) = self.codec.as_mut() {
            codec.set_max_frame_size(MAX_HELLO_BYTES + MAX_CODE_BYTES);
        }
    }

    /// Returns true if a frame was consumed (or the session closed).
    fn read_frame(&mut self) -> bool {
        let Some(codec) = self.codec.as_mut() else {
            return false;
        };
        let rest = self.inbuf.get_mut(self.inpos..).unwrap_or_default();
        match codec.open_prefix(rest) {
            Ok((used, None)) => {
                self.inpos += used;
                false
            }
            Ok((used, Some((code, data)))) => {
                self.inpos += used;
                self.handle_message(code, data);
                true
            }
            Err(e) => {
                let fault = match (&e, &self.phase) {
                    (FrameError::FrameTooLarge { .. }, Phase::AwaitHello) => Fault::HelloTooLarge,
                    _ => Fault::from(&e),
                };
                self.fail(fault);
                true
            }
        }
    }

    fn handle_message(&mut self, code: u64, data: Vec<u8>) {
        if matches!(self.phase, Phase::AwaitHello) {
            match code {
                HELLO => self.handle_hello(&data),
                DISCONNECT => self.close(decode_disconnect(&data), true),
                // geth: "expected handshake, got <code>"
                _ => self.fail(Fault::ExpectedHello),
            }
            return;
        }
        let payload = if self.snappy {
            match self.decompress(&data) {
                Ok(p) => p,
                // A Disconnect that is not snappy is read plain: geth sends the ones decided
                // while reading our Hello (`DiscInvalidIdentity`) before it switches snappy on,
                // and earlier hush versions sent every post-Hello Disconnect plain. The session ends
                // either way; this keeps the peer's reason instead of a snappy fault.
                Err(_) if code == DISCONNECT => data,
                Err(fault) => return self.fail(fault),
            }
        } else {
            data
        };
        match code {
            DISCONNECT => self.close(decode_disconnect(&payload), true),
            PING => {
                if self.send_frame(PONG, &[0xc0]).is_err() {
                    self.close(DisconnectReason::ProtocolError, false);
                }
            }
            PONG => self.pong_deadline = None,
            // Hello again and the reserved codes 0x04–0x0f are read and discarded (geth).
            c if c < BASE_PROTOCOL_LENGTH => {
                self.ignored_base_messages += 1;
                crate::log_drop!("p2p", "ignored_base_message", c);
            }
            c => {
                let found = self
                    .shared
                    .values()
                    .find(|s| c >= s.offset && c - s.offset < s.capability.length);
                match found {
                    Some(s) => {
                        let event = Event::Message {
                            capability: Arc::clone(&s.capability.name),
                            code: c - s.offset,
                            payload,
                        };
                        self.actions.push_back(Action::Event(event));
                    }
                    // geth: "msg code out of range" → errInvalidMsgCode → DiscProtocolError
                    None => self.fail(Fault::CodeOutOfRange),
                }
            }
        }
    }

    /// Snappy-decodes a payload, checking the announced length against the limit first
    /// (rlpx.md §6: geth refuses before inflating).
    fn decompress(&self, data: &[u8]) -> Result<Vec<u8>, Fault> {
        let len = snap::raw::decompress_len(data).map_err(|_| Fault::BadSnappy)?;
        if len > self.max_message_size() {
            return Err(Fault::MessageTooLarge);
        }
        snap::raw::Decoder::new()
            .decompress_vec(data)
            .map_err(|_| Fault::BadSnappy)
    }

    fn handle_hello(&mut self, data: &[u8]) {
        if data.len() > MAX_HELLO_BYTES {
            return self.fail(Fault::HelloTooLarge);
        }
        let hello = match decode_hello(data) {
            Ok(h) => h,
            Err(_) => return self.fail(Fault::BadHello),
        };
        // Snappy goes on as soon as the remote's version is known, before any check below can
        // end the session: geth 1.9 reads every frame after our (v5) Hello through snappy
        // ([G-rlpx] `doProtoHandshake` sets `rw.snappy` once the Hellos are exchanged, and
        // `WriteMsg`/`ReadMsg` then compress every message, Disconnect included), so a plain
        // Disconnect (`c1 03`) would reach it as "snappy: corrupt input" instead of its reason.
        self.snappy = hello.version >= SNAPPY_PROTOCOL_VERSION;
        if hello.version < self.config.min_remote_protocol_version {
            return self.fail(Fault::IncompatibleVersion);
        }
        if hello.node_id.len() != ecies::WIRE_PUBKEY_BYTES || hello.node_id.iter().all(|&b| b == 0)
        {
            return self.fail(Fault::InvalidIdentity);
        }
        let Some(remote) = self.remote else {
            return self.close(DisconnectReason::ProtocolError, false);
        };
        if hello.node_id[..] != ecies::pubkey_to_wire(&remote)[..] {
            return self.fail(Fault::UnexpectedIdentity);
        }
        let shared = match_capabilities(&self.config.capabilities, &hello.capabilities);
        if shared.is_empty() {
            return self.fail(Fault::UselessPeer);
        }
        let max_frame = self.max_frame_size();
        if let Some(codec) = self.codec.as_mut() {
            codec.set_max_frame_size(max_frame);
        }
        self.shared = shared;
        self.phase = Phase::Established;
        self.next_ping = Some(self.last_now.plus_millis(self.config.ping_interval_ms));
        let capabilities = self.shared.values().map(|s| s.capability.clone()).collect();
        self.actions.push_back(Action::Event(Event::Established {
            remote,
            client_id: hello.client_id,
            capabilities,
        }));
    }
}

#[cfg(test)]
mod tests;
