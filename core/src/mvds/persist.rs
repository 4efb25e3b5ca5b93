//! Byte encoding of [`PersistRecord`] for drivers that store records (hush's own format, not a
//! vacp2p/mvds one; see docs/mvds.md "Persisted records").
//!
//! Contract: `PersistRecord::decode(&r.encode()) == Ok(r)`; decoding is total.
//! Layout: an RLP list whose first item is a tag:
//! - 0 `[0, epoch]`
//! - 1 `[1, group(32), peer(65)]`
//! - 2 `[2, message, from(0|65), delivered]` — `message` is a one-message `Payload` in the
//!   HEAD numbering (so metadata survives)
//! - 3 `[3, id(32)]`
//! - 4 `[4, peer(65), id(32), kind, group(0|32), send_count, send_epoch]`
//! - 5 `[5, peer(65), id(32)]`

use super::payload::{decode_payload, encode_payload, Numbering, Payload};
use super::sync::{PeerId, PersistRecord, RecordKind, SyncState, PEER_ID_LEN};
use super::MvdsError;
use crate::rlp::{Encoder, Rlp, RlpError};

const TAG_EPOCH: u64 = 0;
const TAG_PEER_ADDED: u64 = 1;
const TAG_MESSAGE: u64 = 2;
const TAG_DELIVERED: u64 = 3;
const TAG_STATE: u64 = 4;
const TAG_STATE_REMOVED: u64 = 5;

fn rlp_err(_: RlpError) -> MvdsError {
    MvdsError::BadRecord("malformed rlp")
}

impl PersistRecord {
    /// Encodes the record (layout in the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.list(|e| match self {
            PersistRecord::Epoch(epoch) => {
                e.u64(TAG_EPOCH).u64(*epoch);
            }
            PersistRecord::PeerAdded { group, peer } => {
                e.u64(TAG_PEER_ADDED).bytes(group).bytes(&peer.0);
            }
            PersistRecord::Message {
                message,
                from,
                delivered,
            } => {
                let payload = Payload {
                    messages: vec![message.clone()],
                    ..Payload::default()
                };
                e.u64(TAG_MESSAGE)
                    .bytes(&encode_payload(&payload, Numbering::VacHead))
                    .bytes(from.as_ref().map_or(&[][..], |p| &p.0[..]))
                    .bool(*delivered);
            }
            PersistRecord::Delivered { id } => {
                e.u64(TAG_DELIVERED).bytes(id);
            }
            PersistRecord::State { peer, id, state } => {
                e.u64(TAG_STATE)
                    .bytes(&peer.0)
                    .bytes(id)
                    .u64(state.kind as u64)
                    .bytes(state.group.as_ref().map_or(&[][..], |g| &g[..]))
                    .u64(state.send_count)
                    .u64(state.send_epoch);
            }
            PersistRecord::StateRemoved { peer, id } => {
                e.u64(TAG_STATE_REMOVED).bytes(&peer.0).bytes(id);
            }
        });
        e.finish()
    }

    /// Decodes a record written by [`PersistRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<PersistRecord, MvdsError> {
        let rlp = Rlp::new(bytes).map_err(rlp_err)?;
        let mut l = rlp.list().map_err(rlp_err)?;
        let tag = l.item().and_then(|i| i.u64()).map_err(rlp_err)?;
        let peer = |r: Rlp<'_>| -> Result<PeerId, MvdsError> {
            r.fixed::<PEER_ID_LEN>().map(PeerId).map_err(rlp_err)
        };
        let id32 = |r: Rlp<'_>| -> Result<[u8; 32], MvdsError> { r.fixed::<32>().map_err(rlp_err) };
        let record = match tag {
            TAG_EPOCH => PersistRecord::Epoch(l.item().and_then(|i| i.u64()).map_err(rlp_err)?),
            TAG_PEER_ADDED => PersistRecord::PeerAdded {
                group: id32(l.item().map_err(rlp_err)?)?,
                peer: peer(l.item().map_err(rlp_err)?)?,
            },
            TAG_MESSAGE => {
                let raw = l.item().and_then(|i| i.bytes()).map_err(rlp_err)?;
                let payload = decode_payload(raw, Numbering::VacHead)?;
                let [message]: [_; 1] = payload
                    .messages
                    .try_into()
                    .map_err(|_| MvdsError::BadRecord("expected exactly one message"))?;
                let from_raw = l.item().and_then(|i| i.bytes()).map_err(rlp_err)?;
                let from = match from_raw.len() {
                    0 => None,
                    _ => Some(PeerId(
                        from_raw
                            .try_into()
                            .map_err(|_| MvdsError::BadRecord("peer id length"))?,
                    )),
                };
                let delivered = l.item().and_then(|i| i.bool()).map_err(rlp_err)?;
                PersistRecord::Message {
                    message,
                    from,
                    delivered,
                }
            }
            TAG_DELIVERED => PersistRecord::Delivered {
                id: id32(l.item().map_err(rlp_err)?)?,
            },
            TAG_STATE => {
                let p = peer(l.item().map_err(rlp_err)?)?;
                let id = id32(l.item().map_err(rlp_err)?)?;
                let kind = match l.item().and_then(|i| i.u64()).map_err(rlp_err)? {
                    0 => RecordKind::Offer,
                    1 => RecordKind::Request,
                    2 => RecordKind::Message,
                    _ => return Err(MvdsError::BadRecord("unknown record kind")),
                };
                let g = l.item().and_then(|i| i.bytes()).map_err(rlp_err)?;
                let group = match g.len() {
                    0 => None,
                    _ => Some(
                        <[u8; 32]>::try_from(g)
                            .map_err(|_| MvdsError::BadRecord("group id length"))?,
                    ),
                };
                let send_count = l.item().and_then(|i| i.u64()).map_err(rlp_err)?;
                let send_epoch = l.item().and_then(|i| i.u64()).map_err(rlp_err)?;
                PersistRecord::State {
                    peer: p,
                    id,
                    state: SyncState {
                        kind,
                        group,
                        send_count,
                        send_epoch,
                    },
                }
            }
            TAG_STATE_REMOVED => PersistRecord::StateRemoved {
                peer: peer(l.item().map_err(rlp_err)?)?,
                id: id32(l.item().map_err(rlp_err)?)?,
            },
            _ => return Err(MvdsError::BadRecord("unknown record tag")),
        };
        l.finish().map_err(rlp_err)?;
        Ok(record)
    }
}
