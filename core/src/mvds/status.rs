//! Status identifiers for MVDS (mvds.md §1.2, status-go v0.38 `protocol/datasync`).
//!
//! Contract: pure functions from public keys to the ids status-go derives; no state.

use secp256k1::PublicKey;

use super::payload::GroupId;
use super::sync::PeerId;
use crate::keccak::keccak256_concat;

/// status-go `PublicKeyToPeerID`: the 65-byte uncompressed key `0x04 ‖ X ‖ Y`.
pub fn peer_id_from_public_key(key: &PublicKey) -> PeerId {
    PeerId(key.serialize_uncompressed())
}

/// status-go `ToOneToOneGroupID`: `keccak256(C(K1) ‖ C(K2))`, C = 33-byte compressed key, K1 the
/// key with the smaller X coordinate (`key1.X.Cmp(key2.X) == -1` decides; on a tie `b` first).
/// Symmetric: both parties compute the same id.
pub fn one_to_one_group_id(a: &PublicKey, b: &PublicKey) -> GroupId {
    let (ua, ub) = (a.serialize_uncompressed(), b.serialize_uncompressed());
    // X is bytes 1..33 big-endian: byte order = numeric order.
    let (first, second) = if ua.get(1..33) < ub.get(1..33) {
        (a, b)
    } else {
        (b, a)
    };
    keccak256_concat(&[&first.serialize(), &second.serialize()])
}
