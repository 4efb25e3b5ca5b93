//! Snapshots of the conversation machine's record log (issue 16 item 10: the log only grew).
//!
//! Contract:
//! - [`compact`] folds a record log into the shortest log that [`super::Conversations::restore`]
//!   rebuilds the same machine from: every upsert keeps only its latest value (sessions,
//!   prekeys, installations, MVDS messages and sync states, groups, chat forms, the contact
//!   code time), a deletion drops its key, an outgoing message already posted disappears, an
//!   MVDS `Delivered` is folded into its message, sets are deduplicated, batches are
//!   flattened. Keys come out in the order of their first write since their last deletion, so
//!   the bounded tables restore fills in order (chat forms, MVDS limits) fill the same way.
//!   Accepted messages (`Record::Message`) are all kept, in order: they feed the bounded dedup
//!   FIFO and the chat clocks, whose exact state depends on the whole sequence.
//!   Compaction is canonical: `compact(compact(a) ++ b) == compact(a ++ b)`, which is what
//!   makes "restart from snapshot + tail" equal "restart from the full log".
//! - [`encode_snapshot`] / [`decode_snapshot`]: `[SNAPSHOT_VERSION]` then, per record, its
//!   length (u32 big-endian) and its [`Record::encode`] bytes. Decoding is total: any bytes give
//!   the records or a [`SnapshotError`].

use std::collections::BTreeMap;

use super::record::{Record, StoredMessage};
use crate::mvds::PersistRecord;
use crate::security::Persist;

/// Version byte of the snapshot encoding.
pub const SNAPSHOT_VERSION: u8 = 1;

/// A snapshot that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// No bytes at all (not even the version).
    #[error("snapshot: empty")]
    Empty,
    /// A version this build does not know.
    #[error("snapshot: unknown version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a length or a record.
    #[error("snapshot: truncated at byte {0}")]
    Truncated(usize),
    /// Record `index` does not decode.
    #[error("snapshot: record {index}: {error}")]
    Record {
        /// Position of the record in the snapshot.
        index: usize,
        /// Why.
        error: super::RecordError,
    },
}

/// Encodes a compacted log (see the module contract).
pub fn encode_snapshot(records: &[Record]) -> Vec<u8> {
    let mut out = vec![SNAPSHOT_VERSION];
    for r in records {
        let bytes = r.encode();
        // A record is far below 4 GiB (a Whisper envelope is at most 10 MiB).
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes [`encode_snapshot`]'s bytes; total.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<Record>, SnapshotError> {
    let (&version, mut rest) = bytes.split_first().ok_or(SnapshotError::Empty)?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnknownVersion(version));
    }
    let mut records = Vec::new();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (len, body) = rest
            .split_first_chunk::<4>()
            .ok_or(SnapshotError::Truncated(at))?;
        let len = u32::from_be_bytes(*len) as usize;
        if body.len() < len {
            return Err(SnapshotError::Truncated(at));
        }
        let (record, tail) = body.split_at(len);
        let record = Record::decode(record).map_err(|error| SnapshotError::Record {
            index: records.len(),
            error,
        })?;
        records.push(record);
        rest = tail;
    }
    Ok(records)
}

/// A map that remembers the order in which its keys were (re)inserted.
struct Ordered<K, V> {
    next: u64,
    map: BTreeMap<K, (u64, V)>,
}

impl<K: Ord, V> Ordered<K, V> {
    fn new() -> Self {
        Ordered {
            next: 0,
            map: BTreeMap::new(),
        }
    }

    fn upsert(&mut self, key: K, value: V) {
        match self.map.get_mut(&key) {
            Some(e) => e.1 = value,
            None => {
                self.map.insert(key, (self.next, value));
                self.next += 1;
            }
        }
    }

    fn entry(&mut self, key: K, value: impl FnOnce() -> V) -> &mut V {
        let next = &mut self.next;
        &mut self
            .map
            .entry(key)
            .or_insert_with(|| {
                *next += 1;
                (*next - 1, value())
            })
            .1
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    fn into_values(self) -> impl Iterator<Item = V> {
        let mut v: Vec<(u64, V)> = self.map.into_values().collect();
        v.sort_by_key(|(order, _)| *order);
        v.into_iter().map(|(_, v)| v)
    }
}

/// Folds a record log (see the module contract).
pub fn compact(records: impl IntoIterator<Item = Record>) -> Vec<Record> {
    let mut prekeys = Ordered::new();
    let mut installations = Ordered::new();
    let mut sessions = Ordered::new();
    let mut epoch = None;
    let mut peers = Ordered::new();
    let mut mvds_messages = Ordered::new();
    // A `Delivered` for a message not stored: kept as is (restore refuses it, as before).
    let mut orphans = Vec::new();
    let mut states = Ordered::new();
    let mut messages: Vec<StoredMessage> = Vec::new();
    let mut groups = Ordered::new();
    let mut negotiated = Ordered::new();
    let mut contacts = Ordered::new();
    let mut outbox = Ordered::new();
    let mut contact_code = None;
    let mut formats = Ordered::new();
    for r in records.into_iter().flat_map(Record::flatten) {
        match r {
            Record::Security(p) => match p {
                Persist::OwnPreKey(r) => prekeys.upsert(r.version, Persist::OwnPreKey(r)),
                Persist::OwnPreKeyDeleted { version } => prekeys.remove(&version),
                Persist::Installation(r) => installations.upsert(
                    (r.identity.clone(), r.installation_id.clone()),
                    Persist::Installation(r),
                ),
                Persist::InstallationDeleted {
                    identity,
                    installation_id,
                } => installations.remove(&(identity, installation_id)),
                Persist::Session(r) => sessions.upsert(r.key(), Persist::Session(r)),
                Persist::SessionDeleted(k) => sessions.remove(&k),
            },
            Record::Mvds(m) => match m {
                PersistRecord::Epoch(e) => epoch = Some(e),
                PersistRecord::PeerAdded { group, peer } => {
                    peers.upsert((group, peer), PersistRecord::PeerAdded { group, peer })
                }
                PersistRecord::Message { ref message, .. } => mvds_messages.upsert(message.id(), m),
                PersistRecord::Delivered { id } => match mvds_messages.map.get_mut(&id) {
                    Some((_, PersistRecord::Message { delivered, .. })) => *delivered = true,
                    _ => orphans.push(PersistRecord::Delivered { id }),
                },
                PersistRecord::State { peer, id, .. } => states.upsert((peer, id), m),
                PersistRecord::StateRemoved { peer, id } => states.remove(&(peer, id)),
            },
            Record::Message(m) => messages.push(m),
            Record::Group { chat_id, g5 } => {
                groups.upsert(chat_id.clone(), Record::Group { chat_id, g5 })
            }
            Record::Negotiated {
                peer,
                installation_id,
            } => {
                let (_, installations) =
                    negotiated.entry(peer.serialize_uncompressed(), || (peer, Ordered::new()));
                if !installation_id.is_empty() {
                    installations.upsert(installation_id, ());
                }
            }
            Record::Contact(k) => contacts.upsert(k.serialize_uncompressed(), k),
            Record::Outgoing { id, to, plaintext } => {
                outbox.upsert(id, Record::Outgoing { id, to, plaintext })
            }
            Record::Posted { id } => outbox.remove(&id),
            Record::ContactCodePublished { at_ms } => contact_code = Some(at_ms),
            Record::ChatFormat(f) => formats.upsert((f.kind, f.chat.clone()), f),
            // Flattened above.
            Record::Batch(_) => {}
        }
    }
    let mut out: Vec<Record> = Vec::new();
    out.extend(prekeys.into_values().map(Record::Security));
    out.extend(installations.into_values().map(Record::Security));
    out.extend(sessions.into_values().map(Record::Security));
    out.extend(epoch.map(|e| Record::Mvds(PersistRecord::Epoch(e))));
    out.extend(peers.into_values().map(Record::Mvds));
    // Before the messages: still orphans when the snapshot is replayed or folded again.
    out.extend(orphans.into_iter().map(Record::Mvds));
    out.extend(mvds_messages.into_values().map(Record::Mvds));
    out.extend(states.into_values().map(Record::Mvds));
    out.extend(messages.into_iter().map(Record::Message));
    out.extend(groups.into_values());
    for (peer, installations) in negotiated.into_values() {
        let mut any = false;
        for (installation_id, ()) in installations.map.into_iter().map(|(k, (_, v))| (k, v)) {
            any = true;
            out.push(Record::Negotiated {
                peer,
                installation_id,
            });
        }
        if !any {
            out.push(Record::Negotiated {
                peer,
                installation_id: String::new(),
            });
        }
    }
    out.extend(contacts.into_values().map(Record::Contact));
    out.extend(outbox.into_values());
    out.extend(contact_code.map(|at_ms| Record::ContactCodePublished { at_ms }));
    out.extend(formats.into_values().map(Record::ChatFormat));
    out
}

#[cfg(test)]
mod tests;
