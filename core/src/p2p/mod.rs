//! devp2p: the RLPx v5 transport ([`rlpx`]: EIP-8 handshake and frame codec) and the
//! per-connection devp2p session ([`session`]: Hello, Ping/Pong, Disconnect, snappy and
//! capability multiplexing). Wire reference: `shared/protocol/rlpx.md`, go-ethereum v1.9.0
//! `p2p/rlpx.go` and `p2p/peer.go`.
//!
//! [`peers`] is the peer manager (limits, static peers and redial, duplicates, self-dial)
//! that `core::node` consults for every connection.
//!
//! Contract: everything here is pure. A [`session::Session`] takes raw TCP bytes and time as
//! inputs and yields bytes to write, events and a close request as [`session::Action`]s.

pub mod enode;
pub mod peers;
pub mod rlpx;
pub mod session;

pub use session::{
    Action, Capability, Config, DisconnectReason, Event, Fault, Role, Session, SessionError,
};
