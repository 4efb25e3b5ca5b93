//! RLPx v5 (rlpx.md §3–§5): the ECIES-based authenticated key exchange ([`handshake`], EIP-8
//! and legacy packets) and the encrypted, MAC-protected frame codec ([`frame`]).
//!
//! Contract: both halves are pure codecs. [`handshake`] turns keys, nonces and packet bytes
//! into [`Secrets`]; [`frame::FrameCodec`] turns `Secrets` into a bidirectional message codec.
//! Neither does IO or reads a clock; randomness (ephemeral keys, nonces, EIP-8 padding, ECIES
//! IVs) is drawn from an RNG passed in.

pub mod frame;
pub mod handshake;

pub use frame::{FrameCodec, FrameError, MAX_FRAME_SIZE_BYTES};
pub use handshake::{
    derive_secrets, AckMessage, AuthMessage, HandshakeError, Initiator, PacketFormat, Responder,
    Secrets,
};
