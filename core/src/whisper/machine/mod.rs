//! The Whisper machine: handshake, envelope pool, validation, gossip and local delivery
//! (whisper-v6.md §2, §5, §9).
//!
//! Rooms: this file holds the type, its doors (`handle_*`, `poll_*`, posting) and the peer
//! handshake; [`config`] the configuration and constants; `pool` validation, dedup, expiry
//! and eviction; `pooled` the storage of pooled envelopes and its indexes; `gossip` per-peer
//! queues, the broadcast and what we advertise; `limits` rate limits; `filters` local filters
//! and delivery; `serve` direct messages and the mailserver.
//! The Messages packet codec shared with the mailserver code is `super::messages`.
//!
//! Behaviour (follows status-im/whisper's `whisper.go`/`peer.go`):
//! - On connect we queue our Status packet; the first packet from a peer must be Status
//!   (code 0), else the peer is disconnected. Later Status packets are ignored.
//! - Each envelope of a Messages packet (code 1) is validated as in §9: from the future beyond
//!   [`Config::max_future_drift_secs`] or older than twice that past expiry → dropped and counted,
//!   peer kept (status-im behaviour); merely expired → dropped silently; too large, PoW below
//!   [`Config::min_pow`] or not matching our bloom → the peer is disconnected once the whole
//!   packet has been processed. Valid envelopes are deduplicated by hash, pooled, offered to
//!   local filters (try-decrypt only on topic match) and marked known for the sender.
//! - Gossip is batched like Go's 300 ms `transmissionCycle`: when something new may be sent,
//!   [`Whisper::poll_timeout`] reports a broadcast deadline; at it every handshaken peer gets one
//!   (or more, split at `max_message_size`) Messages packet with every pooled envelope it does
//!   not know, whose PoW ≥ its requirement and whose bloom its filter covers. A peer never
//!   receives an envelope twice, nor the envelope back from the peer that sent it. Once
//!   [`Config::early_broadcast_bytes`] of new envelopes wait, the broadcast is due at once (a
//!   full batch gains nothing by waiting), and once no new envelope came for
//!   [`Config::quiet_broadcast_ms`] it is due too (a burst's tail and a lone message do not
//!   wait out the cycle); a peer's advertised packet limits still count per cycle.
//! - Expired envelopes leave the pool at the next expiry check (at most every
//!   [`Config::expiry_check_interval_ms`]).
//! - Per-peer gossip state (Go's `peer.known` set, kept as its complement): each peer has a
//!   queue of the pooled envelopes it is not known to have, in hash order (the order a pool
//!   walk would find them). A newly pooled envelope joins the queue of every peer except the
//!   one it came from; a peer that sends us a pooled envelope, or is sent it, leaves its
//!   queue; an envelope leaving the pool leaves every queue (Go `peer.expire`). A broadcast
//!   sends each peer its queue's eligible envelopes (PoW, bloom, not expired), so its cost
//!   follows what is new, not the pool size. An envelope whose sender is recorded while the
//!   pool refuses it (full) is not remembered: if it is pooled later from another peer it may
//!   be offered back to that sender, a duplicate it ignores.
//! - Duplicates are recognised by their exact bytes before any hashing or decoding (a pooled
//!   envelope keeps the RLP it arrived as): same bytes, same hash. A new envelope is read in
//!   place; its hash and PoW are computed from the received bytes and the pool keeps one copy
//!   of them (`pooled`: about the RLP plus 100 bytes per envelope).
//! - Pool eviction rule when [`Config::max_envelopes`] is reached: the envelope that expires
//!   soonest is evicted (ties: smallest hash; among envelopes whose hashes share their first
//!   8 bytes, the one pooled in the lower slot); if the newcomer expires no later than it, the
//!   newcomer is dropped instead. Both count in [`Stats::pool_evictions`].
//!   The pool is also bounded by [`Config::max_pool_bytes`] (sum of envelope `size()`): the same
//!   rule evicts soonest-expiring envelopes until both bounds hold, or drops the newcomer if it
//!   would have to evict an envelope expiring later than itself (nothing is evicted then).
//! - Own posts ([`Whisper::post`], [`Whisper::post_with`], [`Whisper::repost_raw`]) are sealed,
//!   pooled and gossiped like any other envelope, but not offered to our own filters (Go's
//!   `Send` → `add` → filters would decrypt them): the poster already knows what it posted, and
//!   the node reports its own messages when it sends them. [`Stats::decrypt_attempts`] counts
//!   filter tries.
//! - Filters ([`Filter`]) hold topics, a symmetric or asymmetric key ([`FilterKey`]), a minimum
//!   PoW (checked before decrypting) and `allow_p2p`. Only filters whose topics match are tried.
//!   Envelopes that arrive as direct P2P messages (code 127 from a trusted peer), and, on a
//!   light node, envelopes from gossip, reach only filters with `allow_p2p` (Go `postEvent(.., isP2P)`).
//! - Changing our PoW requirement or bloom ([`Whisper::set_min_pow`], [`Whisper::set_bloom`],
//!   filter growth) sends code 2 / 3 to every peer; the previous value stays tolerated for
//!   [`Config::tolerance_ms`] (Go `DefaultSyncAllowance`, 10 s).
//! - Rate limits ([`RateLimitConfig`]): token buckets per peer and per IP (packets/s, every
//!   packet after the handshake; trusted mailserver peers are exempt) and per (peer, topic)
//!   (envelopes/s). An over-limit packet is
//!   dropped unprocessed; an over-limit envelope is dropped; after
//!   `disconnect_after_violations` violations the peer is disconnected. Our limits are
//!   advertised in the 2020 six-field Status when `advertise_rate_limits`; a peer's advertised
//!   limits (Status 6th field or code 20) cap how many Messages packets it gets per gossip
//!   cycle (the rest waits for the next cycle).
//! - Confirmations (when [`Config::confirmations_enabled`]): after each Messages packet we send
//!   a message response (12) listing refused envelopes and a batch ack (11), both carrying
//!   keccak256 of the packet payload. Received 11/12 become [`Action::BatchAcknowledged`] /
//!   [`Action::MessageResponse`].
//! - Mailserver role ([`Config::mailserver`]): every newly pooled envelope is added to the
//!   bounded [`Archive`] and emitted as [`Action::Archive`] for durable storage; requests
//!   (code 126, envelope or list form) are answered with code-127 packets and a code-125
//!   completion (see [`super::mailserver`]). Client side: [`Whisper::request_history`] sends a
//!   signed, encrypted request and marks the peer trusted; code 127/125 from untrusted peers are
//!   ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use rand_core::RngCore;
use secp256k1::SecretKey;

use super::bloom::topic_to_bloom;
use super::bloom::{Bloom, Topic};
use super::envelope::{Envelope, EnvelopeFields, EnvelopeView, PowFormula, DEFAULT_TTL_SECS};
use super::mailserver::{
    batch_hash, decode_batch_ack, decode_p2p_messages, encode_batch_ack, Archive, EnvelopeError,
    MessageResponse, MessagesRequest, RequestCompletion, RequestPayload, DEFAULT_REQUEST_LIMIT,
    ENVELOPE_OTHER_ERROR, ENVELOPE_TIME_NOT_SYNCED, HASH_LEN, OPEN_UPPER_BOUND_SECS,
};
use super::message::{
    decrypt_asymmetric, decrypt_symmetric, open_asymmetric_fields, parse_plaintext,
    sym_key_from_password, wrap, Encryption, MessageParams, ReceivedMessage, SymmetricOpener,
    AES_KEY_LEN,
};
use super::status::{
    decode_bloom_filter, decode_pow_requirement, encode_bloom_filter, encode_pow_requirement,
    RateLimits, StatusPacket, PROTOCOL_VERSION,
};
use super::{codes, WhisperError};
use crate::keccak::keccak256;
use crate::rlp::{Encoder, Rlp};
use crate::rng::{rng_from_seed, Rng, Seed};
use crate::stats::Hex;
use crate::time::Time;

mod classes;
mod config;
mod filters;
mod gossip;
mod limits;
mod pool;
mod pooled;
mod serve;

pub use classes::{ClassCount, TopicClasses, MAX_TOPIC_CLASSES};
pub use config::*;
pub use filters::{Filter, FilterKey};

use limits::Bucket;
use pool::Added;
use pooled::{hash_prefix, Fingerprint, Pooled, PooledSet, Slot, SlotSet};

/// A connection, as numbered by the node.
pub type PeerKey = u64;

/// A local filter's id (assigned by [`Whisper::add_filter`], never reused).
pub type FilterId = u64;

/// Why a peer was disconnected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFault {
    /// First packet was not Status.
    #[error("sent packet {code:#x} before status packet")]
    NoStatusFirst {
        /// The code received.
        code: u64,
    },
    /// Status packet did not decode or was invalid.
    #[error("bad status message: {0}")]
    BadStatus(WhisperError),
    /// Both sides are light nodes (Go `RestrictConnectionBetweenLightClients`).
    #[error("two light client communication restricted")]
    LightClientsRestricted,
    /// A packet larger than our `max_message_size`.
    #[error("packet of {size} bytes exceeds {max}")]
    PacketTooLarge {
        /// Packet size.
        size: usize,
        /// Limit.
        max: u32,
    },
    /// A Messages / PoW / bloom packet that does not decode.
    #[error("malformed packet (code {code}): {error}")]
    Malformed {
        /// Packet code.
        code: u64,
        /// Decode error.
        error: WhisperError,
    },
    /// An envelope whose `size()` exceeds `max_message_size`.
    #[error("huge envelope")]
    EnvelopeTooLarge,
    /// An envelope with PoW below our minimum.
    #[error("envelope with low PoW")]
    LowPow,
    /// An envelope whose topic bloom our filter does not cover.
    #[error("envelope does not match bloom filter")]
    BloomMismatch,
    /// Too many peers.
    #[error("too many peers")]
    TooManyPeers,
    /// Rate limits exceeded too often.
    #[error("rate limit exceeded ({what})")]
    RateLimited {
        /// Which limit.
        what: &'static str,
    },
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a packet (`code` relative to the `shh` offset; `payload` = RLP body).
    Send {
        /// Destination.
        peer: PeerKey,
        /// Packet code ([`super::codes`]).
        code: u64,
        /// RLP body.
        payload: Vec<u8>,
    },
    /// A message decrypted by a local filter.
    Deliver {
        /// The filter.
        filter: FilterId,
        /// The message.
        message: ReceivedMessage,
    },
    /// Drop the connection. The machine has already forgotten the peer.
    DisconnectPeer {
        /// The peer.
        peer: PeerKey,
        /// Why.
        reason: PeerFault,
    },
    /// Mailserver: store this newly archived envelope durably (replay it with
    /// [`Whisper::restore_archived`] at start).
    Archive {
        /// Envelope hash.
        hash: [u8; 32],
        /// `Expiry - TTL`, Unix seconds (the archive's sort key).
        sent_secs: u32,
        /// Envelope topic.
        topic: Topic,
        /// The envelope's RLP encoding.
        raw: Vec<u8>,
    },
    /// A peer acknowledged a Messages packet we sent (code 11).
    BatchAcknowledged {
        /// The peer.
        peer: PeerKey,
        /// keccak256 of the packet payload.
        batch_hash: [u8; 32],
    },
    /// A peer's per-envelope verdict on a Messages packet we sent (code 12).
    MessageResponse {
        /// The peer.
        peer: PeerKey,
        /// The response.
        response: MessageResponse,
    },
    /// A trusted mailserver finished (or refused) a history request (code 125).
    RequestComplete {
        /// The mailserver.
        peer: PeerKey,
        /// Its answer.
        completion: RequestCompletion,
    },
}

/// Counters (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Envelopes received from peers.
    pub envelopes_received: u64,
    /// Envelopes newly added to the pool (including own posts).
    pub envelopes_pooled: u64,
    /// Envelopes already in the pool.
    pub duplicates: u64,
    /// Copies of a pooled envelope that an earlier envelope of the same packet evicted.
    pub evicted_in_packet: u64,
    /// Dropped: expired (within tolerance).
    pub dropped_expired: u64,
    /// Dropped: sent time too far in the future (peer kept).
    pub dropped_future: u64,
    /// Dropped: expired long ago (peer kept).
    pub dropped_very_old: u64,
    /// Dropped: PoW too low (peer dropped).
    pub dropped_low_pow: u64,
    /// Dropped: too large (peer dropped).
    pub dropped_too_large: u64,
    /// Dropped: bloom mismatch (peer dropped).
    pub dropped_bloom: u64,
    /// Envelopes evicted or refused because the pool was full.
    pub pool_evictions: u64,
    /// Envelopes removed at expiry.
    pub expired_from_pool: u64,
    /// Known-hash entries forgotten because a per-peer set was full. Always 0 since per-peer
    /// state became gossip queues bounded by the pool ([`Config::max_known_per_peer`]).
    pub known_evictions: u64,
    /// Messages delivered to filters.
    pub delivered: u64,
    /// Envelopes sent to peers (counted per peer).
    pub envelopes_sent: u64,
    /// Peers disconnected for a fault.
    pub peer_faults: u64,
    /// Packets from unknown peers or with ignored codes.
    pub ignored_packets: u64,
    /// Packets or envelopes dropped by a rate limit.
    pub rate_limited: u64,
    /// Direct (code 127) envelopes delivered to P2P filters.
    pub p2p_envelopes_received: u64,
    /// Direct (code 127) envelopes dropped as already pooled or seen.
    pub p2p_duplicates: u64,
    /// Code 127 / 125 packets ignored because the peer is not trusted.
    pub untrusted_ignored: u64,
    /// Envelopes archived (mailserver).
    pub archived: u64,
    /// History requests answered successfully (mailserver).
    pub requests_served: u64,
    /// History requests refused with an `ERROR=` completion (mailserver).
    pub requests_failed: u64,
    /// Envelopes sent in answer to history requests (mailserver).
    pub envelopes_served: u64,
    /// Confirmation pairs (12 + 11) sent.
    pub confirmations_sent: u64,
    /// Envelopes tried against a filter's key (a decryption attempt each; own posts are never
    /// tried).
    pub decrypt_attempts: u64,
}

#[derive(Clone, Debug)]
struct PeerState {
    handshaken: bool,
    pow_requirement: f64,
    bloom: Bloom,
    full_node: bool,
    /// Gossip queue: pooled envelopes this peer is not known to have (sent us, or been sent),
    /// by slot, unordered (a broadcast sorts by hash). Bounded by the pool.
    pending: SlotSet,
    ip: Option<IpAddr>,
    trusted: bool,
    bucket: Option<Bucket>,
    topic_buckets: BTreeMap<Topic, Bucket>,
    violations: u32,
    advertised_limits: Option<RateLimits>,
    /// Start of this peer's current broadcast cycle and the Messages packets sent in it (its
    /// advertised limits are a budget per cycle, early broadcasts included).
    cycle_started: Time,
    cycle_packets: usize,
}

/// The Whisper machine (see the module docs for behaviour and call order).
#[derive(Debug)]
pub struct Whisper {
    config: Config,
    rng: Rng,
    now: Time,
    peers: BTreeMap<PeerKey, PeerState>,
    /// The pooled envelopes and their indexes.
    pool: PooledSet,
    filters: BTreeMap<FilterId, Filter>,
    /// Prepared AES key schedules of symmetric filters.
    openers: BTreeMap<FilterId, SymmetricOpener>,
    next_filter_id: FilterId,
    bloom: Option<Bloom>,
    /// Previous PoW requirement, tolerated until the time given.
    pow_tolerance: Option<(f64, Time)>,
    /// Previous bloom (`None` inside = full), tolerated until the time given.
    bloom_tolerance: Option<(Option<Bloom>, Time)>,
    ip_buckets: BTreeMap<IpAddr, Bucket>,
    identity: Option<SecretKey>,
    archive: Option<Archive>,
    p2p_seen: BTreeSet<[u8; 32]>,
    p2p_seen_order: VecDeque<[u8; 32]>,
    /// Envelopes not pooled (refused, evicted) with the peers known to have them
    /// ([`MAX_KNOWN_UNPOOLED`]).
    known_unpooled: BTreeMap<[u8; 32], Vec<PeerKey>>,
    known_unpooled_order: VecDeque<[u8; 32]>,
    actions: VecDeque<Action>,
    broadcast_at: Option<Time>,
    /// When the input has been quiet long enough for what is new to go ([`Config::quiet_broadcast_ms`]).
    quiet_broadcast_at: Option<Time>,
    /// Bytes (`size()`) of envelopes pooled since the last broadcast.
    new_bytes_since_broadcast: usize,
    last_expiry_check: Time,
    stats: Stats,
    /// Measurement: which topics belong to which class ([`classes`]).
    topic_classes: TopicClasses,
    class_counts: [ClassCount; MAX_TOPIC_CLASSES],
}

/// The seed of the pool's byte fingerprints, derived from the machine's seed without drawing
/// from its RNG (so nonces and padding stay what they were for a given seed).
fn fingerprint_seed(seed: &Seed) -> u64 {
    let h = crate::keccak::keccak256_concat(&[b"hush/whisper/pool-fingerprint", seed]);
    hash_prefix(&h)
}

fn secs(now: Time) -> u32 {
    u32::try_from(now.as_secs()).unwrap_or(u32::MAX)
}

impl Whisper {
    /// A machine with no peers, filters or envelopes.
    pub fn new(config: Config, seed: Seed, now: Time) -> Self {
        let bloom = if config.topic_bloom {
            Some(Bloom::EMPTY)
        } else {
            None
        };
        let archive = config
            .mailserver
            .as_ref()
            .map(|m| Archive::new(m.max_archive_envelopes, m.max_archive_bytes));
        let pool = PooledSet::new(fingerprint_seed(&seed), config.max_envelopes);
        Whisper {
            config,
            rng: rng_from_seed(seed),
            now,
            peers: BTreeMap::new(),
            pool,
            filters: BTreeMap::new(),
            openers: BTreeMap::new(),
            next_filter_id: 1,
            bloom,
            pow_tolerance: None,
            bloom_tolerance: None,
            ip_buckets: BTreeMap::new(),
            identity: None,
            archive,
            p2p_seen: BTreeSet::new(),
            p2p_seen_order: VecDeque::new(),
            known_unpooled: BTreeMap::new(),
            known_unpooled_order: VecDeque::new(),
            actions: VecDeque::new(),
            broadcast_at: None,
            quiet_broadcast_at: None,
            new_bytes_since_broadcast: 0,
            last_expiry_check: now,
            stats: Stats::default(),
            topic_classes: TopicClasses::default(),
            class_counts: [ClassCount::default(); MAX_TOPIC_CLASSES],
        }
    }

    /// Sets the node identity: signs history requests and decrypts asymmetric requests sent
    /// to a mailserver.
    pub fn set_identity(&mut self, key: SecretKey) {
        self.identity = Some(key);
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of pooled envelopes.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Sum of pooled envelopes' `size()`, bytes.
    pub fn pool_bytes(&self) -> usize {
        self.pool.bytes()
    }

    /// True if an envelope with this hash is pooled.
    pub fn has_envelope(&self, hash: &[u8; 32]) -> bool {
        self.pool.find_hash(hash).is_some()
    }

    /// The mailserver archive, if this node is a mailserver.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_ref()
    }

    /// Peers that completed the handshake.
    pub fn handshaken_peers(&self) -> Vec<PeerKey> {
        self.peers
            .iter()
            .filter(|(_, p)| p.handshaken)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Rate limits a peer advertised (Status 6th field or code 20).
    pub fn peer_rate_limits(&self, peer: PeerKey) -> Option<RateLimits> {
        self.peers.get(&peer).and_then(|p| p.advertised_limits)
    }

    /// Our advertised bloom (`None` = full node).
    pub fn bloom(&self) -> Option<Bloom> {
        self.bloom
    }

    pub(super) fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards");
        if now > self.now {
            self.now = now;
        }
    }

    pub(super) fn status_packet(&self) -> StatusPacket {
        let rl = &self.config.rate_limits;
        StatusPacket {
            version: PROTOCOL_VERSION,
            min_pow: self.config.min_pow,
            bloom: self.bloom,
            light_node: self.config.light_node,
            confirmations_enabled: self.config.confirmations_enabled,
            rate_limits: rl.advertise_rate_limits.then(|| rl.advertised()),
        }
    }

    /// A connection to `peer` is up: queues our Status packet. A known `peer` is ignored.
    pub fn handle_peer_connected(&mut self, now: Time, peer: PeerKey) {
        self.handle_peer_connected_from(now, peer, None);
    }

    /// Like [`Self::handle_peer_connected`], with the peer's IP for the per-IP rate limit.
    pub fn handle_peer_connected_from(&mut self, now: Time, peer: PeerKey, ip: Option<IpAddr>) {
        self.advance(now);
        if self.peers.contains_key(&peer) {
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.fault(peer, PeerFault::TooManyPeers);
            return;
        }
        let rate = self.config.rate_limits.peer_packets_per_sec;
        self.peers.insert(
            peer,
            PeerState {
                handshaken: false,
                pow_requirement: 0.0,
                bloom: Bloom::FULL,
                full_node: true,
                // Nothing pooled is known to a new peer.
                pending: self.pool.slots().collect::<SlotSet>(),
                ip,
                trusted: false,
                bucket: (rate > 0).then(|| Bucket::full(rate, now)),
                topic_buckets: BTreeMap::new(),
                violations: 0,
                advertised_limits: None,
                cycle_started: now,
                cycle_packets: 0,
            },
        );
        let payload = self.status_packet().encode();
        self.actions.push_back(Action::Send {
            peer,
            code: codes::STATUS,
            payload,
        });
    }

    /// Marks a peer as a trusted mailserver (its code 127/125 packets are accepted) or not.
    /// Returns false for an unknown peer.
    pub fn set_trusted(&mut self, peer: PeerKey, trusted: bool) -> bool {
        match self.peers.get_mut(&peer) {
            Some(p) => {
                p.trusted = trusted;
                true
            }
            None => false,
        }
    }

    /// True if `peer` is trusted.
    pub fn is_trusted(&self, peer: PeerKey) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.trusted)
    }

    /// The connection to `peer` is gone.
    pub fn handle_peer_disconnected(&mut self, now: Time, peer: PeerKey) {
        self.advance(now);
        self.forget_peer(peer);
    }

    pub(super) fn forget_peer(&mut self, peer: PeerKey) {
        if let Some(p) = self.peers.remove(&peer) {
            if let Some(ip) = p.ip {
                if !self.peers.values().any(|q| q.ip == Some(ip)) {
                    self.ip_buckets.remove(&ip);
                }
            }
        }
    }

    pub(super) fn fault(&mut self, peer: PeerKey, reason: PeerFault) {
        crate::log_drop!("whisper", reason.label(), peer);
        self.forget_peer(peer);
        self.stats.peer_faults += 1;
        self.actions
            .push_back(Action::DisconnectPeer { peer, reason });
    }

    /// A packet from `peer` (code relative to the `shh` offset, payload = RLP body).
    pub fn handle_peer_message(&mut self, now: Time, peer: PeerKey, code: u64, payload: &[u8]) {
        self.advance(now);
        let Some(state) = self.peers.get(&peer) else {
            self.stats.ignored_packets += 1;
            return;
        };
        if payload.len() > self.config.max_message_size as usize {
            let max = self.config.max_message_size;
            self.fault(
                peer,
                PeerFault::PacketTooLarge {
                    size: payload.len(),
                    max,
                },
            );
            return;
        }
        if !state.handshaken {
            if code != codes::STATUS {
                self.fault(peer, PeerFault::NoStatusFirst { code });
                return;
            }
            self.handle_status(peer, payload);
            return;
        }
        if !self.admit_packet(peer) {
            return;
        }
        match code {
            codes::MESSAGES => self.handle_messages(peer, payload),
            codes::POW_REQUIREMENT => match decode_pow_requirement(payload) {
                Ok(pow) => {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.pow_requirement = pow;
                    }
                }
                Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
            },
            codes::BLOOM_FILTER => match decode_bloom_filter(payload) {
                Ok(bloom) => {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.full_node = bloom.is_full();
                        p.bloom = bloom;
                    }
                    self.schedule_broadcast();
                }
                Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
            },
            codes::RATE_LIMITS => match super::status::decode_rate_limits_packet(payload) {
                Ok(limits) => {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.advertised_limits = Some(limits);
                    }
                }
                Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
            },
            codes::BATCH_ACK => match decode_batch_ack(payload) {
                Ok(batch_hash) => self
                    .actions
                    .push_back(Action::BatchAcknowledged { peer, batch_hash }),
                Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
            },
            codes::MESSAGE_RESPONSE => match MessageResponse::decode(payload) {
                Ok(response) => self
                    .actions
                    .push_back(Action::MessageResponse { peer, response }),
                Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
            },
            codes::P2P_MESSAGE => self.handle_p2p_messages(peer, payload),
            codes::P2P_REQUEST_COMPLETE => {
                if !self.is_trusted(peer) {
                    self.stats.untrusted_ignored += 1;
                    return;
                }
                match RequestCompletion::decode(payload) {
                    Ok(completion) => self
                        .actions
                        .push_back(Action::RequestComplete { peer, completion }),
                    Err(error) => self.fault(peer, PeerFault::Malformed { code, error }),
                }
            }
            codes::P2P_REQUEST if self.archive.is_some() => self.handle_p2p_request(peer, payload),
            // Second Status packets, mailserver sync (123/124), requests to a non-mailserver
            // and unknown codes are ignored (Go discards them).
            _ => self.stats.ignored_packets += 1,
        }
    }

    pub(super) fn handle_status(&mut self, peer: PeerKey, payload: &[u8]) {
        let status = match StatusPacket::decode(payload) {
            Ok(s) => s,
            Err(e) => return self.fault(peer, PeerFault::BadStatus(e)),
        };
        if status.light_node && self.config.light_node {
            return self.fault(peer, PeerFault::LightClientsRestricted);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.handshaken = true;
            p.pow_requirement = status.min_pow;
            // An empty received bloom means "full node" (Go `setBloomFilter`).
            p.bloom = status.bloom.unwrap_or(Bloom::FULL);
            p.full_node = p.bloom.is_full();
            p.advertised_limits = status.rate_limits;
        }
        self.schedule_broadcast();
    }

    /// Builds, signs (if asked), encrypts with `key`, seals and pools a message; it is
    /// gossiped at the next broadcast (and not offered to our own filters). Returns the
    /// envelope hash.
    pub fn post(
        &mut self,
        now: Time,
        params: MessageParams,
        key: &[u8; AES_KEY_LEN],
    ) -> Result<[u8; 32], WhisperError> {
        self.post_with(now, params, &Encryption::Symmetric(*key))
    }

    /// [`Self::post`] with either key kind (asymmetric = ECIES to a public key).
    pub fn post_with(
        &mut self,
        now: Time,
        params: MessageParams,
        encryption: &Encryption,
    ) -> Result<[u8; 32], WhisperError> {
        self.advance(now);
        let env = self.seal(&params, encryption)?;
        if env.size() > self.config.max_message_size as usize {
            return Err(WhisperError::Rejected(Box::new(
                PeerFault::EnvelopeTooLarge,
            )));
        }
        let raw = env.encode();
        let view = EnvelopeView::decode(&raw)?;
        match self.add(&view, None, None, None) {
            Added::Pooled(h) | Added::Duplicate(h) => Ok(h),
            Added::Fault(_, f) => Err(WhisperError::Rejected(Box::new(f))),
            Added::Dropped(_, "pool_full") => Err(WhisperError::PoolFull),
            Added::TimeSync(..) | Added::Dropped(..) => Err(WhisperError::Dropped),
        }
    }

    pub(super) fn seal(
        &mut self,
        params: &MessageParams,
        encryption: &Encryption,
    ) -> Result<Envelope, WhisperError> {
        let start_nonce = self.rng.next_u64();
        wrap(
            params,
            encryption,
            secs(self.now),
            self.config.pow_formula,
            start_nonce,
            self.config.max_seal_iterations,
            &mut self.rng,
        )
    }

    /// Fires due work: gossip at the broadcast deadline, expiry purge at the expiry deadline.
    /// Idempotent; calling early does nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        if let Some(at) = self.expiry_deadline() {
            if now >= at {
                self.expire();
            }
        }
        let due = |at: Option<Time>| at.is_some_and(|at| now >= at);
        if due(self.broadcast_at) || due(self.quiet_broadcast_at) {
            self.broadcast_at = None;
            self.quiet_broadcast_at = None;
            self.broadcast();
        }
    }

    /// Drains one output.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next deadline at which [`Self::handle_timeout`] has work, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        crate::time::earliest(
            crate::time::earliest(self.broadcast_at, self.quiet_broadcast_at),
            self.expiry_deadline(),
        )
    }
}
