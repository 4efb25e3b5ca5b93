//! The [`Mvds`] state machine (mvds.md §2–§6).
//!
//! Contract: see the module docs of [`crate::mvds`]. Behaviour follows vacp2p/mvds
//! (`node/node.go`) with these documented differences, each needed for "every message delivered
//! exactly once, and retransmission stops":
//! - a received duplicate MESSAGE is acked again but not delivered again;
//! - an OFFER for a message we already hold is answered with an ACK (Go ignores it, so the
//!   offerer would offer forever — the `@todo maybe ack?` in `onOffer`);
//! - when a message arrives, REQUEST records for it towards every peer are dropped (Go drops
//!   only the one towards the sender);
//! - an ephemeral message is sent once, not retransmitted (HEAD builds the removal list but never
//!   applies it), and receivers deliver it at most once (bounded memory of seen ids);
//! - consistent resolution resolves dependency chains of any depth (HEAD: one level).
//!
//! Epochs: the epoch is a counter, persisted, advanced by one per tick of
//! `Config::epoch_interval_ms` (status-go: 300 ms). At a tick, records with
//! `send_epoch ≤ epoch` are sent, then the epoch increments (Go `Start`). While nothing is due
//! no timer is armed; the epoch still advances with time (caught up at the next call).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::payload::{
    encode_payload, id_entry_len, message_entry_len, GroupId, Message, MessageId, Metadata,
    Numbering, Payload,
};
use super::MvdsError;
use crate::stats::Hex;
use crate::Time;

/// Length of a Status peer id (uncompressed secp256k1 public key, `0x04 ‖ X ‖ Y`).
pub const PEER_ID_LEN: usize = 65;
/// Epoch length used by status-go (`ds.Start(300 * time.Millisecond)`).
pub const DEFAULT_EPOCH_INTERVAL_MS: u64 = 300;
/// Largest payload we emit (bytes); larger batches are split. Leaves room under Whisper's
/// 1 MiB message limit for encryption and envelope overhead.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Largest payload we accept: what a status-go v0.36.0 / vacp2p/mvds v0.0.23 peer may send
/// ([`super::MAX_STATUS_GO_PAYLOAD_BYTES`], 10 MiB; it puts every due message into one payload).
pub const DEFAULT_MAX_INCOMING_PAYLOAD_BYTES: usize = super::payload::MAX_STATUS_GO_PAYLOAD_BYTES;
/// Sync records (one per message × peer) held at most.
pub const DEFAULT_MAX_SYNC_STATES: usize = 100_000;
/// Messages held in the store at most.
pub const DEFAULT_MAX_STORED_MESSAGES: usize = 100_000;
/// Messages buffered awaiting parents (consistent mode) at most.
pub const DEFAULT_MAX_PENDING_MESSAGES: usize = 10_000;
/// Parents per appended message at most (automatic parents are truncated to this).
pub const DEFAULT_MAX_PARENTS: usize = 32;
/// Ids of received ephemeral messages remembered for duplicate suppression.
pub const DEFAULT_MAX_SEEN_EPHEMERAL: usize = 10_000;
/// Ephemeral (message, peer) pairs waiting for the next tick at most.
pub const DEFAULT_MAX_EPHEMERAL_OUTBOX: usize = 10_000;
/// Peers per group at most.
pub const DEFAULT_MAX_PEERS_PER_GROUP: usize = 1_000;

/// An opaque peer identifier. Status uses the 65-byte uncompressed public key
/// (status-go `PublicKeyToPeerID`); any injective 65-byte encoding works, MVDS never inspects it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub [u8; PEER_ID_LEN]);

impl std::fmt::Debug for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerId({}…)", hex::encode(&self.0[..5]))
    }
}

/// Synchronisation mode (RFC 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// MESSAGE + ACK (what status-go uses).
    #[default]
    Batch,
    /// OFFER → REQUEST → MESSAGE → ACK.
    Interactive,
}

/// MDF dependency resolution (RFC 4, HEAD `ResolutionMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    /// Deliver on arrival; request missing parents.
    #[default]
    Eventual,
    /// Deliver only after every parent has been delivered; buffer (bounded) until then.
    Consistent,
}

/// How `send_epoch` is recomputed after each send. A pure function of
/// `(send_count after increment, current epoch, previous send_epoch)`.
#[derive(Clone, Copy, Debug, Default)]
pub enum Retransmission {
    /// status-go with vacp2p/mvds v0.0.23: `send_epoch += epoch + 2·count` (cumulative,
    /// `CalculateSendTime` applied by `updateSendEpoch`; grows very fast).
    #[default]
    StatusGo,
    /// vacp2p/mvds HEAD: `send_epoch = epoch + 2·count`.
    Linear,
    /// Exponential back-off: `send_epoch = epoch + min(base · 2^(count-1), cap)` (RFC 2
    /// "SHOULD increase exponentially until a bound").
    Exponential {
        /// Epochs to wait after the first send (≥ 1).
        base_epochs: u64,
        /// Largest wait in epochs.
        cap_epochs: u64,
    },
    /// Any pure function `(count, epoch, previous send_epoch) -> next send_epoch`.
    Custom(fn(u64, u64, u64) -> u64),
}

impl Retransmission {
    /// The next send epoch, never earlier than `epoch + 1` (a record is sent at most once per
    /// epoch).
    pub fn next_send_epoch(&self, count: u64, epoch: u64, previous: u64) -> u64 {
        let linear = epoch.saturating_add(count.saturating_mul(2));
        let next = match *self {
            Retransmission::StatusGo => previous.saturating_add(linear),
            Retransmission::Linear => linear,
            Retransmission::Exponential {
                base_epochs,
                cap_epochs,
            } => {
                let shift = u32::try_from(count.saturating_sub(1)).unwrap_or(u32::MAX);
                let wait = base_epochs
                    .max(1)
                    .checked_shl(shift)
                    .filter(|w| (*w >> shift) == base_epochs.max(1))
                    .unwrap_or(u64::MAX)
                    .min(cap_epochs.max(1));
                epoch.saturating_add(wait)
            }
            Retransmission::Custom(f) => f(count, epoch, previous),
        };
        next.max(epoch.saturating_add(1))
    }
}

/// Configuration; every limit of the machine is here.
#[derive(Clone, Debug)]
pub struct Config {
    /// Wire numbering.
    pub numbering: Numbering,
    /// Batch or interactive.
    pub mode: Mode,
    /// MDF resolution.
    pub resolution: Resolution,
    /// Back-off function.
    pub retransmission: Retransmission,
    /// Epoch length.
    pub epoch_interval_ms: u64,
    /// Largest payload emitted; a tick's items for a peer are split across payloads.
    pub max_payload_bytes: usize,
    /// Larger incoming payloads are rejected before decoding.
    pub max_incoming_payload_bytes: usize,
    /// Sync records held at most.
    pub max_sync_states: usize,
    /// Messages stored at most.
    pub max_stored_messages: usize,
    /// Messages awaiting parents (consistent mode) at most.
    pub max_pending_messages: usize,
    /// Parents per message at most (ours; received messages are bounded by payload size).
    pub max_parents: usize,
    /// Remembered ephemeral ids.
    pub max_seen_ephemeral: usize,
    /// Ephemeral sends queued at most.
    pub max_ephemeral_outbox: usize,
    /// Peers per group at most.
    pub max_peers_per_group: usize,
    /// Re-share a received message with the group's other peers (RFC 2; vacp2p/mvds does).
    pub relay: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            numbering: Numbering::default(),
            mode: Mode::default(),
            resolution: Resolution::default(),
            retransmission: Retransmission::default(),
            epoch_interval_ms: DEFAULT_EPOCH_INTERVAL_MS,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_incoming_payload_bytes: DEFAULT_MAX_INCOMING_PAYLOAD_BYTES,
            max_sync_states: DEFAULT_MAX_SYNC_STATES,
            max_stored_messages: DEFAULT_MAX_STORED_MESSAGES,
            max_pending_messages: DEFAULT_MAX_PENDING_MESSAGES,
            max_parents: DEFAULT_MAX_PARENTS,
            max_seen_ephemeral: DEFAULT_MAX_SEEN_EPHEMERAL,
            max_ephemeral_outbox: DEFAULT_MAX_EPHEMERAL_OUTBOX,
            max_peers_per_group: DEFAULT_MAX_PEERS_PER_GROUP,
            relay: true,
        }
    }
}

impl Config {
    fn validate(&self) -> Result<(), MvdsError> {
        if self.epoch_interval_ms == 0 {
            return Err(MvdsError::InvalidConfig("epoch_interval_ms must be > 0"));
        }
        // The smallest useful payload carries one id.
        if self.max_payload_bytes < id_entry_len(self.numbering, 0) {
            return Err(MvdsError::InvalidConfig("max_payload_bytes too small"));
        }
        Ok(())
    }
}

/// Kind of a sync record (Go `state.RecordType`, iota order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// Offer the id (interactive).
    Offer = 0,
    /// Request the id.
    Request = 1,
    /// Send the message.
    Message = 2,
}

/// Per (peer, message) sync record (mvds.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncState {
    /// What to send.
    pub kind: RecordKind,
    /// The group, when known (a REQUEST created from an OFFER has none).
    pub group: Option<GroupId>,
    /// Times sent so far.
    pub send_count: u64,
    /// Epoch at or after which it is (re)sent.
    pub send_epoch: u64,
}

/// One durable change. Replaying every record in emission order through [`Mvds::restore`]
/// rebuilds the machine. Encode with [`PersistRecord::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistRecord {
    /// The epoch counter reached this value.
    Epoch(u64),
    /// `peer` joined `group`.
    PeerAdded {
        /// Group.
        group: GroupId,
        /// Peer.
        peer: PeerId,
    },
    /// A message entered the store (ours or received).
    Message {
        /// The message (its id is `message.id()`).
        message: Message,
        /// Who sent it to us (`None` for our own).
        from: Option<PeerId>,
        /// Already delivered to the application (or ours).
        delivered: bool,
    },
    /// A stored message was delivered (consistent mode, after its parents).
    Delivered {
        /// Message id.
        id: MessageId,
    },
    /// Sync record inserted or updated.
    State {
        /// Peer.
        peer: PeerId,
        /// Message.
        id: MessageId,
        /// New value.
        state: SyncState,
    },
    /// Sync record removed (acked, answered or obsolete).
    StateRemoved {
        /// Peer.
        peer: PeerId,
        /// Message.
        id: MessageId,
    },
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Commit this record durably before performing the actions after it.
    Persist(PersistRecord),
    /// Send these payload bytes (one encoded [`Payload`]) to `peer`.
    Send {
        /// Destination.
        peer: PeerId,
        /// Encoded payload (not framed; see [`super::encode_frame`] for byte streams).
        bytes: Vec<u8>,
    },
    /// A message for the application, exactly once per id.
    Deliver {
        /// Group.
        group: GroupId,
        /// Id.
        id: MessageId,
        /// The peer it arrived from.
        from: PeerId,
        /// The message (body, timestamp, metadata).
        message: Message,
    },
}

/// Which parents to attach when sending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Parents {
    /// No metadata parents (status-go 2019 behaviour).
    #[default]
    None,
    /// The group's current heads (messages without children), as HEAD `AppendMessage`.
    Auto,
    /// These ids.
    Explicit(Vec<MessageId>),
}

/// Options of [`Mvds::send`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Send to these peers (added to the group if new) instead of all group members.
    pub recipients: Option<Vec<PeerId>>,
    /// Ephemeral: sent once as MESSAGE, not stored, not acked (RFC 4).
    pub ephemeral: bool,
    /// MDF parents.
    pub parents: Parents,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payloads emitted.
    pub payloads_sent: u64,
    /// Bytes emitted (payload bytes).
    pub bytes_sent: u64,
    /// Payloads accepted.
    pub payloads_received: u64,
    /// Payloads dropped: larger than `max_incoming_payload_bytes`.
    pub payloads_too_large: u64,
    /// Payloads dropped: not a `Payload` of the configured numbering (or a bad id length).
    pub payloads_undecodable: u64,
    /// MESSAGE entries emitted (first sends and retransmissions).
    pub messages_sent: u64,
    /// MESSAGE/OFFER/REQUEST entries emitted with `send_count > 0` before the send.
    pub retransmissions: u64,
    /// ACK entries emitted.
    pub acks_sent: u64,
    /// OFFER entries emitted.
    pub offers_sent: u64,
    /// REQUEST entries emitted.
    pub requests_sent: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// MESSAGEs received that were already stored (or ephemeral ones already delivered):
    /// acked again, not delivered again.
    pub duplicates: u64,
    /// Received messages dropped unacked because the store held `max_stored_messages`.
    pub dropped_store_full: u64,
    /// Received messages dropped unacked because `max_pending_messages` awaited parents.
    pub dropped_pending_full: u64,
    /// Sync records not created because the table held `max_sync_states`.
    pub states_dropped: u64,
    /// REQUESTs refused: the message is not in our store.
    pub requests_unknown_message: u64,
    /// REQUESTs refused: the requester is not a peer of the message's group.
    pub requests_not_member: u64,
}

impl Stats {
    /// Every counter as `(name, value)` (see [`crate::stats`]).
    pub fn counters(&self) -> crate::stats::Counters {
        crate::stats::list([
            ("payloads_sent", self.payloads_sent),
            ("bytes_sent", self.bytes_sent),
            ("payloads_received", self.payloads_received),
            ("payloads_too_large", self.payloads_too_large),
            ("payloads_undecodable", self.payloads_undecodable),
            ("messages_sent", self.messages_sent),
            ("retransmissions", self.retransmissions),
            ("acks_sent", self.acks_sent),
            ("offers_sent", self.offers_sent),
            ("requests_sent", self.requests_sent),
            ("delivered", self.delivered),
            ("duplicates", self.duplicates),
            ("dropped_store_full", self.dropped_store_full),
            ("dropped_pending_full", self.dropped_pending_full),
            ("states_dropped", self.states_dropped),
            ("requests_unknown_message", self.requests_unknown_message),
            ("requests_not_member", self.requests_not_member),
        ])
    }
}

#[derive(Clone, Debug)]
struct Stored {
    message: Message,
    from: Option<PeerId>,
    delivered: bool,
}

/// Accumulates one peer's payloads for a tick, splitting at the byte limit.
struct Builder {
    payloads: Vec<(Payload, usize)>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            payloads: Vec::new(),
        }
    }

    /// Appends an item of `len` encoded bytes (written by `put`) to the last payload if it
    /// stays within `max`, else to a new one (an item alone always fits: `send` checks
    /// messages, `Config::validate` checks ids).
    fn add(&mut self, len: usize, max: usize, put: impl FnOnce(&mut Payload)) {
        match self.payloads.last_mut() {
            Some((payload, size)) if size.saturating_add(len) <= max => {
                *size = size.saturating_add(len);
                put(payload);
            }
            _ => {
                let mut payload = Payload::default();
                put(&mut payload);
                self.payloads.push((payload, len));
            }
        }
    }
}

/// The MVDS node for many groups and peers. See the module docs for the call order.
#[derive(Debug)]
pub struct Mvds {
    config: Config,
    epoch: u64,
    next_tick_at: Time,
    groups: BTreeMap<GroupId, BTreeSet<PeerId>>,
    store: BTreeMap<MessageId, Stored>,
    heads: BTreeMap<GroupId, BTreeSet<MessageId>>,
    has_child: BTreeSet<MessageId>,
    states: BTreeMap<(PeerId, MessageId), SyncState>,
    due: BTreeSet<(u64, PeerId, MessageId)>,
    pending_acks: BTreeMap<PeerId, BTreeSet<MessageId>>,
    ephemeral_out: BTreeMap<PeerId, Vec<Message>>,
    ephemeral_out_len: usize,
    seen_ephemeral: BTreeSet<MessageId>,
    seen_ephemeral_order: VecDeque<MessageId>,
    /// Consistent mode: message → parents not yet delivered.
    waiting: BTreeMap<MessageId, BTreeSet<MessageId>>,
    /// Consistent mode: parent → messages waiting for it.
    dependants: BTreeMap<MessageId, BTreeSet<MessageId>>,
    actions: VecDeque<Action>,
    stats: Stats,
}

impl Mvds {
    /// A fresh machine at epoch 0.
    pub fn new(config: Config, now: Time) -> Result<Mvds, MvdsError> {
        config.validate()?;
        let next_tick_at = now.plus_millis(config.epoch_interval_ms);
        Ok(Mvds {
            config,
            epoch: 0,
            next_tick_at,
            groups: BTreeMap::new(),
            store: BTreeMap::new(),
            heads: BTreeMap::new(),
            has_child: BTreeSet::new(),
            states: BTreeMap::new(),
            due: BTreeSet::new(),
            pending_acks: BTreeMap::new(),
            ephemeral_out: BTreeMap::new(),
            ephemeral_out_len: 0,
            seen_ephemeral: BTreeSet::new(),
            seen_ephemeral_order: VecDeque::new(),
            waiting: BTreeMap::new(),
            dependants: BTreeMap::new(),
            actions: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// Rebuilds a machine from its persisted records (in emission order). Messages that were
    /// stored but not yet delivered are delivered now if their parents allow (their `Deliver`
    /// actions are queued); due records are retransmitted from the next tick on.
    pub fn restore(
        config: Config,
        now: Time,
        records: impl IntoIterator<Item = PersistRecord>,
    ) -> Result<Mvds, MvdsError> {
        let mut m = Mvds::new(config, now)?;
        for record in records {
            m.apply(record)?;
        }
        // Derived indexes.
        let ids: Vec<MessageId> = m.store.keys().copied().collect();
        for id in &ids {
            m.index_heads(id);
        }
        let undelivered: Vec<MessageId> = m
            .store
            .iter()
            .filter(|(_, s)| !s.delivered)
            .map(|(id, _)| *id)
            .collect();
        for id in &undelivered {
            m.register_waiting(id);
        }
        for id in undelivered {
            m.try_deliver(id);
        }
        Ok(m)
    }

    fn apply(&mut self, record: PersistRecord) -> Result<(), MvdsError> {
        match record {
            PersistRecord::Epoch(e) => self.epoch = e,
            PersistRecord::PeerAdded { group, peer } => {
                let peers = self.groups.entry(group).or_default();
                if !peers.contains(&peer) && peers.len() >= self.config.max_peers_per_group {
                    return Err(MvdsError::GroupFull {
                        max: self.config.max_peers_per_group,
                    });
                }
                peers.insert(peer);
            }
            PersistRecord::Message {
                message,
                from,
                delivered,
            } => {
                let id = message.id();
                if !self.store.contains_key(&id)
                    && self.store.len() >= self.config.max_stored_messages
                {
                    return Err(MvdsError::StoreFull {
                        max: self.config.max_stored_messages,
                    });
                }
                self.store.insert(
                    id,
                    Stored {
                        message,
                        from,
                        delivered,
                    },
                );
            }
            PersistRecord::Delivered { id } => {
                self.store
                    .get_mut(&id)
                    .ok_or(MvdsError::BadRecord("delivered message not stored"))?
                    .delivered = true;
            }
            PersistRecord::State { peer, id, state } => {
                if !self.states.contains_key(&(peer, id))
                    && self.states.len() >= self.config.max_sync_states
                {
                    return Err(MvdsError::StateFull {
                        max: self.config.max_sync_states,
                    });
                }
                self.set_state_raw(peer, id, state);
            }
            PersistRecord::StateRemoved { peer, id } => {
                self.remove_state_raw(peer, id);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Accessors.

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// Number of sync records.
    pub fn state_len(&self) -> usize {
        self.states.len()
    }
    /// The sync record for (peer, message), if any.
    pub fn state(&self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        self.states.get(&(*peer, *id)).copied()
    }
    /// Number of stored messages.
    pub fn store_len(&self) -> usize {
        self.store.len()
    }
    /// True if the message is stored.
    pub fn has_message(&self, id: &MessageId) -> bool {
        self.store.contains_key(id)
    }
    /// True if the message is stored and was delivered (or is ours).
    pub fn is_delivered(&self, id: &MessageId) -> bool {
        self.store.get(id).is_some_and(|s| s.delivered)
    }
    /// Messages buffered awaiting parents (consistent mode).
    pub fn pending_len(&self) -> usize {
        self.waiting.len()
    }
    /// Peers of a group.
    pub fn peers(&self, group: &GroupId) -> Vec<PeerId> {
        self.groups
            .get(group)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }
    /// The group's current heads (stored, non-ephemeral messages without known children).
    pub fn heads(&self, group: &GroupId) -> Vec<MessageId> {
        self.heads
            .get(group)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    // -----------------------------------------------------------------------------------------
    // Commands.

    /// Adds `peer` to `group` (idempotent). Persisted.
    pub fn add_peer(&mut self, now: Time, group: GroupId, peer: PeerId) -> Result<(), MvdsError> {
        self.handle_timeout(now);
        self.add_peer_inner(group, peer)
    }

    fn add_peer_inner(&mut self, group: GroupId, peer: PeerId) -> Result<(), MvdsError> {
        let peers = self.groups.entry(group).or_default();
        if peers.contains(&peer) {
            return Ok(());
        }
        if peers.len() >= self.config.max_peers_per_group {
            return Err(MvdsError::GroupFull {
                max: self.config.max_peers_per_group,
            });
        }
        peers.insert(peer);
        self.persist(PersistRecord::PeerAdded { group, peer });
        Ok(())
    }

    /// Appends a message to `group` for its peers (or `options.recipients`). The message is
    /// stored and one sync record per recipient is created (persisted before any send); the
    /// first transmission happens at the next due tick. Timestamp = `now` in Unix seconds.
    pub fn send(
        &mut self,
        now: Time,
        group: GroupId,
        body: Vec<u8>,
        options: SendOptions,
    ) -> Result<MessageId, MvdsError> {
        self.handle_timeout(now);
        let recipients: Vec<PeerId> = match &options.recipients {
            Some(r) => r.clone(),
            None => self
                .groups
                .get(&group)
                .ok_or(MvdsError::UnknownGroup)?
                .iter()
                .copied()
                .collect(),
        };
        let parents = match (&options.parents, options.ephemeral) {
            (Parents::None, _) => Vec::new(),
            (_, true) => return Err(MvdsError::EphemeralWithParents),
            (Parents::Auto, false) => {
                let mut heads = self.heads(&group);
                heads.truncate(self.config.max_parents);
                heads
            }
            (Parents::Explicit(p), false) => {
                if p.len() > self.config.max_parents {
                    return Err(MvdsError::TooManyParents {
                        count: p.len(),
                        max: self.config.max_parents,
                    });
                }
                p.clone()
            }
        };
        let metadata = if options.ephemeral || !parents.is_empty() {
            Some(Metadata {
                parents,
                ephemeral: options.ephemeral,
            })
        } else {
            None
        };
        let message = Message {
            group_id: group,
            timestamp: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            body,
            metadata,
        };
        let size = message_entry_len(&message, self.config.numbering);
        if size > self.config.max_payload_bytes {
            return Err(MvdsError::BodyTooLarge {
                size,
                max: self.config.max_payload_bytes,
            });
        }
        let id = message.id();
        if self.store.contains_key(&id) {
            return Err(MvdsError::DuplicateMessage(id));
        }
        // Check every bound before mutating anything.
        let existing = self.groups.get(&group);
        let new_members = recipients
            .iter()
            .filter(|p| !existing.is_some_and(|g| g.contains(p)))
            .collect::<BTreeSet<_>>()
            .len();
        if existing.map_or(0, BTreeSet::len) + new_members > self.config.max_peers_per_group {
            return Err(MvdsError::GroupFull {
                max: self.config.max_peers_per_group,
            });
        }
        let distinct: BTreeSet<PeerId> = recipients.iter().copied().collect();
        if options.ephemeral {
            if self.ephemeral_out_len + distinct.len() > self.config.max_ephemeral_outbox {
                return Err(MvdsError::OutboxFull {
                    max: self.config.max_ephemeral_outbox,
                });
            }
        } else {
            if self.store.len() >= self.config.max_stored_messages {
                return Err(MvdsError::StoreFull {
                    max: self.config.max_stored_messages,
                });
            }
            if self.states.len() + distinct.len() > self.config.max_sync_states {
                return Err(MvdsError::StateFull {
                    max: self.config.max_sync_states,
                });
            }
        }
        for p in &distinct {
            self.add_peer_inner(group, *p)?;
        }
        if options.ephemeral {
            for p in distinct {
                self.ephemeral_out
                    .entry(p)
                    .or_default()
                    .push(message.clone());
                self.ephemeral_out_len += 1;
            }
            return Ok(id);
        }
        self.store_message(id, message, None, true);
        let kind = match self.config.mode {
            Mode::Batch => RecordKind::Message,
            Mode::Interactive => RecordKind::Offer,
        };
        for p in distinct {
            self.insert_state(p, id, kind, Some(group));
        }
        Ok(id)
    }

    /// Processes one payload received from `from`. Decode failures are returned (status-go
    /// then treats the bytes as a non-MVDS payload); an empty payload is accepted and does
    /// nothing.
    pub fn handle_payload(
        &mut self,
        now: Time,
        from: PeerId,
        bytes: &[u8],
    ) -> Result<(), MvdsError> {
        if bytes.len() > self.config.max_incoming_payload_bytes {
            self.stats.payloads_too_large += 1;
            crate::log_drop!("mvds", "payload_too_large", bytes.len());
            return Err(MvdsError::PayloadTooLarge {
                size: bytes.len(),
                max: self.config.max_incoming_payload_bytes,
            });
        }
        let payload = match super::decode_payload(bytes, self.config.numbering) {
            Ok(p) => p,
            Err(e) => {
                self.stats.payloads_undecodable += 1;
                crate::log_drop!("mvds", "payload_undecodable", bytes.len());
                return Err(e);
            }
        };
        self.handle_decoded(now, from, payload);
        Ok(())
    }

    /// Processes an already decoded payload (order: acks, requests, offers, messages — Go
    /// `onPayload`).
    pub fn handle_decoded(&mut self, now: Time, from: PeerId, payload: Payload) {
        self.handle_timeout(now);
        self.stats.payloads_received += 1;
        for id in payload.acks {
            if self.states.contains_key(&(from, id)) {
                self.remove_state(from, id);
            }
        }
        for id in payload.requests {
            self.on_request(from, id);
        }
        for id in payload.offers {
            self.on_offer(from, id);
        }
        for message in payload.messages {
            self.on_message(from, message);
        }
    }

    fn on_request(&mut self, from: PeerId, id: MessageId) {
        let Some(group) = self.store.get(&id).map(|s| s.message.group_id) else {
            self.stats.requests_unknown_message += 1;
            crate::log_drop!("mvds", "request_unknown_message", Hex(&id));
            return;
        };
        if !self.groups.get(&group).is_some_and(|g| g.contains(&from)) {
            self.stats.requests_not_member += 1;
            crate::log_drop!("mvds", "request_not_member", Hex(&id));
            return;
        }
        match self.states.get(&(from, id)) {
            // Already scheduled to send the message: keep its back-off.
            Some(s) if s.kind == RecordKind::Message => {}
            _ => self.insert_state(from, id, RecordKind::Message, Some(group)),
        }
    }

    fn on_offer(&mut self, from: PeerId, id: MessageId) {
        if self.store.contains_key(&id) {
            // Deviation from Go (which ignores it): tell the offerer we have it, so its OFFER
            // record is removed (Go's onAck removes a record of any kind).
            self.pending_acks.entry(from).or_default().insert(id);
            return;
        }
        if !self.states.contains_key(&(from, id)) {
            self.insert_state(from, id, RecordKind::Request, None);
        }
    }

    fn on_message(&mut self, from: PeerId, message: Message) {
        let id = message.id();
        let group = message.group_id;
        if message.is_ephemeral() {
            if self.seen_ephemeral.insert(id) {
                self.seen_ephemeral_order.push_back(id);
                while self.seen_ephemeral_order.len() > self.config.max_seen_ephemeral {
                    if let Some(old) = self.seen_ephemeral_order.pop_front() {
                        self.seen_ephemeral.remove(&old);
                    }
                }
                self.stats.delivered += 1;
                self.actions.push_back(Action::Deliver {
                    group,
                    id,
                    from,
                    message,
                });
            } else {
                self.stats.duplicates += 1;
                crate::log_drop!("mvds", "duplicate", Hex(&id));
            }
            return;
        }
        if self.states.contains_key(&(from, id)) {
            // The sender has it: stop offering/sending it there (Go onMessage).
            self.remove_state(from, id);
        }
        if self.store.contains_key(&id) {
            self.stats.duplicates += 1;
            crate::log_drop!("mvds", "duplicate", Hex(&id));
            self.pending_acks.entry(from).or_default().insert(id);
            return;
        }
        if self.store.len() >= self.config.max_stored_messages {
            self.stats.dropped_store_full += 1;
            crate::log_drop!("mvds", "store_full", Hex(&id));
            return;
        }
        let consistent = self.config.resolution == Resolution::Consistent;
        let undelivered_parents = message
            .parents()
            .iter()
            .any(|p| !self.store.get(p).is_some_and(|s| s.delivered));
        if consistent
            && undelivered_parents
            && self.waiting.len() >= self.config.max_pending_messages
        {
            self.stats.dropped_pending_full += 1;
            crate::log_drop!("mvds", "pending_full", Hex(&id));
            return;
        }
        let missing: Vec<MessageId> = message
            .parents()
            .iter()
            .filter(|p| !self.store.contains_key(*p))
            .copied()
            .collect();
        let deliver_now = !consistent || !undelivered_parents;
        self.store_message(id, message, Some(from), deliver_now);
        self.pending_acks.entry(from).or_default().insert(id);
        // Anyone we were asking for it need not answer any more.
        let requests: Vec<PeerId> = self
            .states
            .iter()
            .filter(|((_, i), s)| *i == id && s.kind == RecordKind::Request)
            .map(|((p, _), _)| *p)
            .collect();
        for p in requests {
            self.remove_state(p, id);
        }
        if self.config.relay {
            let others: Vec<PeerId> = self
                .groups
                .get(&group)
                .map(|g| g.iter().filter(|p| **p != from).copied().collect())
                .unwrap_or_default();
            let kind = match self.config.mode {
                Mode::Batch => RecordKind::Message,
                Mode::Interactive => RecordKind::Offer,
            };
            for p in others {
                if !self.states.contains_key(&(p, id)) {
                    self.insert_state(p, id, kind, Some(group));
                }
            }
        }
        for parent in missing {
            if !self.states.contains_key(&(from, parent)) {
                self.insert_state(from, parent, RecordKind::Request, Some(group));
            }
        }
        if deliver_now {
            self.emit_deliver(id);
            if consistent {
                self.release_dependants(id);
            }
        } else {
            self.register_waiting(&id);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Store, dependencies, delivery.

    fn store_message(
        &mut self,
        id: MessageId,
        message: Message,
        from: Option<PeerId>,
        delivered: bool,
    ) {
        self.persist(PersistRecord::Message {
            message: message.clone(),
            from,
            delivered,
        });
        self.store.insert(
            id,
            Stored {
                message,
                from,
                delivered,
            },
        );
        self.index_heads(&id);
    }

    fn index_heads(&mut self, id: &MessageId) {
        let Some(stored) = self.store.get(id) else {
            return;
        };
        let group = stored.message.group_id;
        let parents = stored.message.parents().to_vec();
        let heads = self.heads.entry(group).or_default();
        for p in &parents {
            heads.remove(p);
        }
        if !self.has_child.contains(id) {
            heads.insert(*id);
        }
        self.has_child.extend(parents);
    }

    fn register_waiting(&mut self, id: &MessageId) {
        if self.config.resolution != Resolution::Consistent {
            return;
        }
        let Some(stored) = self.store.get(id) else {
            return;
        };
        let missing: BTreeSet<MessageId> = stored
            .message
            .parents()
            .iter()
            .filter(|p| !self.store.get(*p).is_some_and(|s| s.delivered))
            .copied()
            .collect();
        for p in &missing {
            self.dependants.entry(*p).or_default().insert(*id);
        }
        if !missing.is_empty() {
            self.waiting.insert(*id, missing);
        }
    }

    /// Delivers a stored, undelivered message if its parents allow it (restore path).
    fn try_deliver(&mut self, id: MessageId) {
        let Some(stored) = self.store.get(&id) else {
            return;
        };
        if stored.delivered || self.waiting.contains_key(&id) {
            return;
        }
        self.persist(PersistRecord::Delivered { id });
        self.emit_deliver(id);
        self.release_dependants(id);
    }

    fn emit_deliver(&mut self, id: MessageId) {
        let Some(stored) = self.store.get_mut(&id) else {
            return;
        };
        stored.delivered = true;
        let from = stored.from.unwrap_or(PeerId([0; PEER_ID_LEN]));
        let message = stored.message.clone();
        self.stats.delivered += 1;
        self.actions.push_back(Action::Deliver {
            group: message.group_id,
            id,
            from,
            message,
        });
    }

    /// After `id` was delivered, delivers every (transitive) dependant now complete.
    fn release_dependants(&mut self, id: MessageId) {
        let mut work = vec![id];
        while let Some(parent) = work.pop() {
            let Some(children) = self.dependants.remove(&parent) else {
                continue;
            };
            for child in children {
                let done = match self.waiting.get_mut(&child) {
                    Some(missing) => {
                        missing.remove(&parent);
                        missing.is_empty()
                    }
                    None => false,
                };
                if done {
                    self.waiting.remove(&child);
                    if self.store.get(&child).is_some_and(|s| !s.delivered) {
                        self.persist(PersistRecord::Delivered { id: child });
                        self.emit_deliver(child);
                        work.push(child);
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Sync records.

    fn persist(&mut self, record: PersistRecord) {
        self.actions.push_back(Action::Persist(record));
    }

    fn set_state_raw(&mut self, peer: PeerId, id: MessageId, state: SyncState) {
        if let Some(old) = self.states.insert((peer, id), state) {
            self.due.remove(&(old.send_epoch, peer, id));
        }
        self.due.insert((state.send_epoch, peer, id));
    }

    fn remove_state_raw(&mut self, peer: PeerId, id: MessageId) -> bool {
        match self.states.remove(&(peer, id)) {
            Some(old) => {
                self.due.remove(&(old.send_epoch, peer, id));
                true
            }
            None => false,
        }
    }

    fn remove_state(&mut self, peer: PeerId, id: MessageId) {
        if self.remove_state_raw(peer, id) {
            self.persist(PersistRecord::StateRemoved { peer, id });
        }
    }

    /// New record, first sent at `epoch + 1` (Go `insertSyncState`); replaces an existing one.
    fn insert_state(
        &mut self,
        peer: PeerId,
        id: MessageId,
        kind: RecordKind,
        group: Option<GroupId>,
    ) {
        if !self.states.contains_key(&(peer, id))
            && self.states.len() >= self.config.max_sync_states
        {
            self.stats.states_dropped += 1;
            crate::log_drop!("mvds", "sync_state_table_full", Hex(&id));
            return;
        }
        let state = SyncState {
            kind,
            group,
            send_count: 0,
            send_epoch: self.epoch.saturating_add(1),
        };
        self.set_state_raw(peer, id, state);
        self.persist(PersistRecord::State { peer, id, state });
    }

    // -----------------------------------------------------------------------------------------
    // Time.

    /// Runs the epoch ticks that are due at `now`: sends every due record, pending acks and
    /// ephemeral messages (one or more payloads per peer, split at `max_payload_bytes`), updates
    /// send counts and epochs (persisted first), then advances the epoch. Idempotent.
    pub fn handle_timeout(&mut self, now: Time) {
        if now < self.next_tick_at {
            return;
        }
        let interval = self.config.epoch_interval_ms;
        // Ticks missed while idle (or while the driver was late) only advance the epoch.
        let skipped = now.millis_since(self.next_tick_at) / interval;
        self.epoch = self.epoch.saturating_add(skipped);
        let sent = self.send_round();
        self.epoch = self.epoch.saturating_add(1);
        self.next_tick_at = self
            .next_tick_at
            .plus_millis(skipped.saturating_add(1).saturating_mul(interval));
        if !sent.is_empty() {
            self.persist(PersistRecord::Epoch(self.epoch));
        }
        for (peer, bytes) in sent {
            self.stats.payloads_sent += 1;
            self.stats.bytes_sent += bytes.len() as u64;
            self.actions.push_back(Action::Send { peer, bytes });
        }
    }

    /// Builds this tick's payloads; returns them encoded, after queuing the Persist records.
    fn send_round(&mut self) -> Vec<(PeerId, Vec<u8>)> {
        let numbering = self.config.numbering;
        let max = self.config.max_payload_bytes;
        let epoch = self.epoch;
        let mut builders: BTreeMap<PeerId, Builder> = BTreeMap::new();
        let due: Vec<(PeerId, MessageId)> = self
            .due
            .iter()
            .take_while(|(e, _, _)| *e <= epoch)
            .map(|(_, p, i)| (*p, *i))
            .collect();
        for (peer, id) in due {
            let Some(state) = self.states.get(&(peer, id)).copied() else {
                continue;
            };
            let b = builders.entry(peer).or_insert_with(Builder::new);
            match state.kind {
                RecordKind::Offer => {
                    b.add(id_entry_len(numbering, 1), max, |p| p.offers.push(id));
                    self.stats.offers_sent += 1;
                }
                RecordKind::Request => {
                    b.add(id_entry_len(numbering, 2), max, |p| p.requests.push(id));
                    self.stats.requests_sent += 1;
                }
                RecordKind::Message => {
                    let msg = self.store.get(&id).map(|s| s.message.clone());
                    let member = msg.as_ref().is_some_and(|m| {
                        self.groups
                            .get(&m.group_id)
                            .is_some_and(|g| g.contains(&peer))
                    });
                    let Some(msg) = msg.filter(|_| member) else {
                        // Nothing to send any more: drop the record rather than re-examining it
                        // every tick (Go leaves it in place).
                        self.remove_state(peer, id);
                        continue;
                    };
                    let len = message_entry_len(&msg, numbering);
                    b.add(len, max, |p| p.messages.push(msg));
                    self.stats.messages_sent += 1;
                }
            }
            if state.send_count > 0 {
                self.stats.retransmissions += 1;
            }
            let count = state.send_count.saturating_add(1);
            let next = SyncState {
                send_count: count,
                send_epoch: self.config.retransmission.next_send_epoch(
                    count,
                    epoch,
                    state.send_epoch,
                ),
                ..state
            };
            self.set_state_raw(peer, id, next);
            self.persist(PersistRecord::State {
                peer,
                id,
                state: next,
            });
        }
        for (peer, messages) in std::mem::take(&mut self.ephemeral_out) {
            let b = builders.entry(peer).or_insert_with(Builder::new);
            for msg in messages {
                let len = message_entry_len(&msg, numbering);
                b.add(len, max, |p| p.messages.push(msg));
                self.stats.messages_sent += 1;
            }
        }
        self.ephemeral_out_len = 0;
        for (peer, acks) in std::mem::take(&mut self.pending_acks) {
            let b = builders.entry(peer).or_insert_with(Builder::new);
            for id in acks {
                b.add(id_entry_len(numbering, 0), max, |p| p.acks.push(id));
                self.stats.acks_sent += 1;
            }
        }
        let mut out = Vec::new();
        for (peer, b) in builders {
            for (payload, _) in b.payloads {
                out.push((peer, encode_payload(&payload, numbering)));
            }
        }
        out
    }

    /// The next output, in order. Drain until `None` after every call that mutates.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next tick at which something is due; `None` when idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        if !self.pending_acks.is_empty() || !self.ephemeral_out.is_empty() {
            return Some(self.next_tick_at);
        }
        let (first, _, _) = self.due.first()?;
        let ahead = first.saturating_sub(self.epoch);
        Some(
            self.next_tick_at
                .plus_millis(ahead.saturating_mul(self.config.epoch_interval_ms)),
        )
    }
}
