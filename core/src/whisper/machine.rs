//! The Whisper machine: handshake, envelope pool, validation, gossip and local delivery
//! (whisper-v6.md §2, §5, §9).
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
//!   receives an envelope twice, nor the envelope back from the peer that sent it.
//! - Expired envelopes leave the pool at the next expiry check (at most every
//!   [`Config::expiry_check_interval_ms`]); per-peer known sets then forget hashes no longer
//!   pooled (Go `peer.expire`) and are bounded by [`Config::max_known_per_peer`].
//! - Pool eviction rule when [`Config::max_envelopes`] is reached: the envelope that expires
//!   soonest is evicted (ties: smallest hash); if the newcomer expires no later than it, the
//!   newcomer is dropped instead. Both count in [`Stats::pool_evictions`].
//! - Own posts ([`Whisper::post`]) are sealed, pooled, delivered to matching local filters
//!   (Go's `Send` → `add` → filters) and gossiped like any other envelope.
//! - Not implemented: confirmations (codes 11/12 are ignored; we advertise
//!   `confirmationsEnabled` per config but never send them), mailserver codes 123–127
//!   (ignored), asymmetric filters, the 10 s tolerance for changed PoW/bloom values.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_core::RngCore;

use super::bloom::{Bloom, Topic};
use super::envelope::{Envelope, PowFormula};
use super::message::{open_symmetric, wrap_symmetric, MessageParams, ReceivedMessage, AES_KEY_LEN};
use super::status::{
    decode_bloom_filter, decode_pow_requirement, encode_bloom_filter, StatusPacket,
    PROTOCOL_VERSION,
};
use super::{codes, WhisperError};
use crate::rlp::{Encoder, Rlp};
use crate::rng::{rng_from_seed, Rng, Seed};
use crate::time::Time;

/// A connection, as numbered by the node.
pub type PeerKey = u64;
/// A local filter's id (assigned by [`Whisper::add_filter`], never reused).
pub type FilterId = u64;

/// `DefaultSyncAllowance` [W-doc]: tolerated clock skew, seconds.
pub const SYNC_ALLOWANCE_SECS: u32 = 10;
/// `transmissionCycle` [W-doc]: gossip batching period.
pub const BROADCAST_INTERVAL_MS: u64 = 300;
/// `expirationCycle` [W-doc]: how often expired envelopes are purged.
pub const EXPIRY_CHECK_INTERVAL_MS: u64 = 1000;
/// `DefaultMaxMessageSize` [W-doc]: 1 MiB, also status-go's value.
pub const MAX_MESSAGE_SIZE_BYTES: u32 = 1 << 20;

/// Configuration of a [`Whisper`] machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// Minimum PoW we accept and advertise. status-go nodes run with 0.001
    /// (`params.WhisperMinimumPoW`) while posting with target 0.002 (whisper-v6.md §4.3).
    pub min_pow: f64,
    /// Which PoW formula this node computes (default: current, status-go ≥ v0.34).
    pub pow_formula: PowFormula,
    /// Largest packet and envelope (`size()`) accepted, bytes.
    pub max_message_size: u32,
    /// Pool capacity in envelopes (eviction rule in the module docs).
    pub max_envelopes: usize,
    /// Per-peer known-hash set capacity; the oldest entries are forgotten beyond it.
    pub max_known_per_peer: usize,
    /// Maximum simultaneously handled peers; more are disconnected.
    pub max_peers: usize,
    /// Maximum local filters.
    pub max_filters: usize,
    /// Period of the expiry purge, ms.
    pub expiry_check_interval_ms: u64,
    /// Gossip batching period, ms.
    pub broadcast_interval_ms: u64,
    /// Tolerated future drift of a sent time, and half the "very old" tolerance, seconds.
    pub max_future_drift_secs: u32,
    /// Advertise `isLightNode` (and refuse light↔light connections, Go's default).
    pub light_node: bool,
    /// Advertise `confirmationsEnabled`.
    pub confirmations_enabled: bool,
    /// `true`: start from an all-zero bloom and advertise the union of our filters' topics
    /// (status-go's light client); `false`: full node (nil bloom, accept every topic).
    pub topic_bloom: bool,
    /// Nonces tried at most when sealing a post (stands in for Go's `WorkTime`). 2^20 reaches
    /// a 0.002 target for messages up to several kB with overwhelming probability.
    pub max_seal_iterations: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_pow: 0.001,
            pow_formula: PowFormula::Current,
            max_message_size: MAX_MESSAGE_SIZE_BYTES,
            max_envelopes: 10_000,
            max_known_per_peer: 20_000,
            max_peers: 64,
            max_filters: 1024,
            expiry_check_interval_ms: EXPIRY_CHECK_INTERVAL_MS,
            broadcast_interval_ms: BROADCAST_INTERVAL_MS,
            max_future_drift_secs: SYNC_ALLOWANCE_SECS,
            light_node: false,
            confirmations_enabled: false,
            topic_bloom: false,
            max_seal_iterations: 1 << 20,
        }
    }
}

/// A local subscription: envelopes on one of `topics` (all topics if empty) that decrypt
/// with `sym_key` are delivered.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Topics of interest (empty = every topic).
    pub topics: Vec<Topic>,
    /// Symmetric key (32 bytes, e.g. [`super::sym_key_from_password`]).
    pub sym_key: [u8; AES_KEY_LEN],
    /// Minimum PoW of delivered messages (0 = any).
    pub min_pow: f64,
}

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
    /// Known-hash entries forgotten because a per-peer set was full.
    pub known_evictions: u64,
    /// Messages delivered to filters.
    pub delivered: u64,
    /// Envelopes sent to peers (counted per peer).
    pub envelopes_sent: u64,
    /// Peers disconnected for a fault.
    pub peer_faults: u64,
    /// Packets from unknown peers or with ignored codes.
    pub ignored_packets: u64,
}

#[derive(Clone, Debug)]
struct PeerState {
    handshaken: bool,
    pow_requirement: f64,
    bloom: Bloom,
    full_node: bool,
    known: BTreeSet<[u8; 32]>,
    known_order: VecDeque<[u8; 32]>,
}

impl PeerState {
    fn knows(&self, h: &[u8; 32]) -> bool {
        self.known.contains(h)
    }
}

#[derive(Clone, Debug)]
struct Pooled {
    env: Envelope,
    pow: f64,
    bloom: Bloom,
}

/// The Whisper machine (see the module docs for behaviour and call order).
#[derive(Debug)]
pub struct Whisper {
    config: Config,
    rng: Rng,
    now: Time,
    peers: BTreeMap<PeerKey, PeerState>,
    pool: BTreeMap<[u8; 32], Pooled>,
    by_expiry: BTreeSet<(u32, [u8; 32])>,
    filters: BTreeMap<FilterId, Filter>,
    next_filter_id: FilterId,
    bloom: Option<Bloom>,
    actions: VecDeque<Action>,
    broadcast_at: Option<Time>,
    last_expiry_check: Time,
    stats: Stats,
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
        Whisper {
            config,
            rng: rng_from_seed(seed),
            now,
            peers: BTreeMap::new(),
            pool: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            filters: BTreeMap::new(),
            next_filter_id: 1,
            bloom,
            actions: VecDeque::new(),
            broadcast_at: None,
            last_expiry_check: now,
            stats: Stats::default(),
        }
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

    /// True if an envelope with this hash is pooled.
    pub fn has_envelope(&self, hash: &[u8; 32]) -> bool {
        self.pool.contains_key(hash)
    }

    /// Peers that completed the handshake.
    pub fn handshaken_peers(&self) -> Vec<PeerKey> {
        self.peers
            .iter()
            .filter(|(_, p)| p.handshaken)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Our advertised bloom (`None` = full node).
    pub fn bloom(&self) -> Option<Bloom> {
        self.bloom
    }

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards");
        if now > self.now {
            self.now = now;
        }
    }

    fn status_packet(&self) -> StatusPacket {
        StatusPacket {
            version: PROTOCOL_VERSION,
            min_pow: self.config.min_pow,
            bloom: self.bloom,
            light_node: self.config.light_node,
            confirmations_enabled: self.config.confirmations_enabled,
            rate_limits: None,
        }
    }

    /// A connection to `peer` is up: queues our Status packet. A known `peer` is ignored.
    pub fn handle_peer_connected(&mut self, now: Time, peer: PeerKey) {
        self.advance(now);
        if self.peers.contains_key(&peer) {
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.fault(peer, PeerFault::TooManyPeers);
            return;
        }
        self.peers.insert(
            peer,
            PeerState {
                handshaken: false,
                pow_requirement: 0.0,
                bloom: Bloom::FULL,
                full_node: true,
                known: BTreeSet::new(),
                known_order: VecDeque::new(),
            },
        );
        let payload = self.status_packet().encode();
        self.actions.push_back(Action::Send {
            peer,
            code: codes::STATUS,
            payload,
        });
    }

    /// The connection to `peer` is gone.
    pub fn handle_peer_disconnected(&mut self, now: Time, peer: PeerKey) {
        self.advance(now);
        self.peers.remove(&peer);
    }

    fn fault(&mut self, peer: PeerKey, reason: PeerFault) {
        self.peers.remove(&peer);
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
            // Second Status packets, confirmations, mailserver and unknown codes are ignored.
            _ => self.stats.ignored_packets += 1,
        }
    }

    fn handle_status(&mut self, peer: PeerKey, payload: &[u8]) {
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
        }
        self.schedule_broadcast();
    }

    fn handle_messages(&mut self, peer: PeerKey, payload: &[u8]) {
        let envelopes = match decode_messages(payload) {
            Ok(e) => e,
            Err(error) => {
                return self.fault(
                    peer,
                    PeerFault::Malformed {
                        code: codes::MESSAGES,
                        error,
                    },
                )
            }
        };
        let mut fault = None;
        for env in envelopes {
            self.stats.envelopes_received += 1;
            match self.add(env, Some(peer)) {
                Ok(_) => {}
                Err(Some(f)) => {
                    fault.get_or_insert(f);
                }
                Err(None) => {}
            }
        }
        // "Any non-TimeSync error in a packet drops the peer after the whole packet is processed."
        if let Some(f) = fault {
            self.fault(peer, f);
        }
    }

    /// Validates and pools an envelope (Go `add`). `Ok(hash)` if pooled or already known;
    /// `Err(None)` dropped without fault; `Err(Some(fault))` the sender misbehaved.
    fn add(&mut self, env: Envelope, from: Option<PeerKey>) -> Result<[u8; 32], Option<PeerFault>> {
        let now = secs(self.now);
        let allowance = self.config.max_future_drift_secs;
        let sent = env.sent_secs();
        if sent > now.saturating_add(allowance) {
            self.stats.dropped_future += 1;
            return Err(None);
        }
        if env.expiry < now {
            if env.expiry.saturating_add(allowance.saturating_mul(2)) < now {
                self.stats.dropped_very_old += 1;
            } else {
                self.stats.dropped_expired += 1;
            }
            return Err(None);
        }
        if env.size() > self.config.max_message_size as usize {
            self.stats.dropped_too_large += 1;
            return Err(Some(PeerFault::EnvelopeTooLarge));
        }
        let diff = if sent > now { sent - now + 1 } else { 0 };
        let pow = env.pow(self.config.pow_formula, diff);
        if pow < self.config.min_pow {
            self.stats.dropped_low_pow += 1;
            return Err(Some(PeerFault::LowPow));
        }
        let bloom = env.bloom();
        if from.is_some() && !super::bloom::bloom_match(self.bloom.as_ref(), &bloom) {
            self.stats.dropped_bloom += 1;
            return Err(Some(PeerFault::BloomMismatch));
        }
        let hash = env.hash();
        if let Some(p) = from {
            self.mark_known(p, hash);
        }
        if self.pool.contains_key(&hash) {
            self.stats.duplicates += 1;
            return Ok(hash);
        }
        if self.pool.len() >= self.config.max_envelopes {
            let first = self.by_expiry.first().copied();
            match first {
                Some((exp, h)) if (exp, h) < (env.expiry, hash) => {
                    self.by_expiry.remove(&(exp, h));
                    self.pool.remove(&h);
                    self.stats.pool_evictions += 1;
                }
                _ => {
                    self.stats.pool_evictions += 1;
                    return Err(None);
                }
            }
        }
        self.stats.envelopes_pooled += 1;
        self.deliver(&env, hash);
        self.by_expiry.insert((env.expiry, hash));
        self.pool.insert(hash, Pooled { env, pow, bloom });
        self.schedule_broadcast();
        Ok(hash)
    }

    fn mark_known(&mut self, peer: PeerKey, hash: [u8; 32]) {
        let max = self.config.max_known_per_peer;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.known.insert(hash) {
            return;
        }
        p.known_order.push_back(hash);
        while p.known.len() > max {
            match p.known_order.pop_front() {
                Some(old) => {
                    p.known.remove(&old);
                    self.stats.known_evictions += 1;
                }
                None => break,
            }
        }
    }

    fn deliver(&mut self, env: &Envelope, hash: [u8; 32]) {
        let formula = self.config.pow_formula;
        for (id, f) in &self.filters {
            if !f.topics.is_empty() && !f.topics.contains(&env.topic) {
                continue;
            }
            if let Ok(message) = open_symmetric(env, hash, &f.sym_key, formula) {
                if f.min_pow > 0.0 && message.pow < f.min_pow {
                    continue;
                }
                self.stats.delivered += 1;
                self.actions.push_back(Action::Deliver {
                    filter: *id,
                    message,
                });
            }
        }
    }

    fn schedule_broadcast(&mut self) {
        if self.broadcast_at.is_none() {
            self.broadcast_at = Some(self.now.plus_millis(self.config.broadcast_interval_ms));
        }
    }

    /// Installs a filter. With `topic_bloom`, our bloom grows to cover its topics and the new
    /// bloom is sent to every handshaken peer (code 3).
    pub fn add_filter(&mut self, filter: Filter) -> Result<FilterId, WhisperError> {
        if self.filters.len() >= self.config.max_filters {
            return Err(WhisperError::TooManyFilters {
                max: self.config.max_filters,
            });
        }
        if let Some(current) = self.bloom {
            let mut grown = current;
            if filter.topics.is_empty() {
                grown = Bloom::FULL;
            }
            for t in &filter.topics {
                grown = grown.union(&t.bloom());
            }
            if grown != current {
                self.bloom = Some(grown);
                let payload = encode_bloom_filter(&grown);
                for (peer, p) in &self.peers {
                    if p.handshaken {
                        self.actions.push_back(Action::Send {
                            peer: *peer,
                            code: codes::BLOOM_FILTER,
                            payload: payload.clone(),
                        });
                    }
                }
            }
        }
        let id = self.next_filter_id;
        self.next_filter_id += 1;
        self.filters.insert(id, filter);
        Ok(id)
    }

    /// Removes a filter; true if it existed. (The bloom is not shrunk, as in Go.)
    pub fn remove_filter(&mut self, id: FilterId) -> bool {
        self.filters.remove(&id).is_some()
    }

    /// Builds, signs (if asked), encrypts with `key`, seals and pools a message; it is
    /// delivered to matching local filters now and gossiped at the next broadcast. Returns the
    /// envelope hash.
    pub fn post(
        &mut self,
        now: Time,
        params: MessageParams,
        key: &[u8; AES_KEY_LEN],
    ) -> Result<[u8; 32], WhisperError> {
        self.advance(now);
        let start_nonce = self.rng.next_u64();
        let env = wrap_symmetric(
            &params,
            key,
            secs(now),
            self.config.pow_formula,
            start_nonce,
            self.config.max_seal_iterations,
            &mut self.rng,
        )?;
        match self.add(env, None) {
            Ok(h) => Ok(h),
            Err(Some(f)) => Err(WhisperError::Rejected(Box::new(f))),
            Err(None) => Err(WhisperError::Dropped),
        }
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
        if let Some(at) = self.broadcast_at {
            if now >= at {
                self.broadcast_at = None;
                self.broadcast();
            }
        }
    }

    fn expiry_deadline(&self) -> Option<Time> {
        let (exp, _) = self.by_expiry.first()?;
        // An envelope is expired once now_secs > expiry, i.e. from (expiry + 1) s.
        let due = Time::from_secs(u64::from(*exp) + 1);
        let earliest = self
            .last_expiry_check
            .plus_millis(self.config.expiry_check_interval_ms);
        Some(due.max(earliest))
    }

    fn expire(&mut self) {
        self.last_expiry_check = self.now;
        let now = secs(self.now);
        while let Some(&(exp, h)) = self.by_expiry.first() {
            if exp >= now {
                break;
            }
            self.by_expiry.remove(&(exp, h));
            self.pool.remove(&h);
            self.stats.expired_from_pool += 1;
        }
        let pool = &self.pool;
        for p in self.peers.values_mut() {
            p.known.retain(|h| pool.contains_key(h));
            p.known_order.retain(|h| pool.contains_key(h));
        }
    }

    fn broadcast(&mut self) {
        let max = self.config.max_message_size as usize;
        let now = secs(self.now);
        let mut sends = Vec::new();
        for (peer, p) in self.peers.iter_mut() {
            if !p.handshaken {
                continue;
            }
            let mut batch: Vec<[u8; 32]> = Vec::new();
            for (h, e) in &self.pool {
                if e.env.expiry < now || p.knows(h) || e.pow < p.pow_requirement {
                    continue;
                }
                if !p.full_node && !p.bloom.matches(&e.bloom) {
                    continue;
                }
                batch.push(*h);
            }
            // Split into packets whose body stays within the peer-visible size limit.
            let mut body = Encoder::new();
            let mut count = 0usize;
            for h in batch {
                let Some(e) = self.pool.get(&h) else { continue };
                let enc = e.env.encode();
                if count > 0 && body.as_slice().len() + enc.len() + 9 > max {
                    sends.push((*peer, std::mem::take(&mut body)));
                    count = 0;
                }
                body.raw(&enc);
                count += 1;
                p.known.insert(h);
                p.known_order.push_back(h);
                self.stats.envelopes_sent += 1;
            }
            if count > 0 {
                sends.push((*peer, body));
            }
        }
        for (peer, body) in sends {
            let mut e = Encoder::with_capacity(body.as_slice().len() + 9);
            e.list(|e| {
                e.raw(body.as_slice());
            });
            self.actions.push_back(Action::Send {
                peer,
                code: codes::MESSAGES,
                payload: e.finish(),
            });
        }
        // Enforce the known-set bound after bulk marking.
        let max_known = self.config.max_known_per_peer;
        for p in self.peers.values_mut() {
            while p.known.len() > max_known {
                match p.known_order.pop_front() {
                    Some(old) => {
                        p.known.remove(&old);
                        self.stats.known_evictions += 1;
                    }
                    None => break,
                }
            }
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
        crate::time::earliest(self.broadcast_at, self.expiry_deadline())
    }
}

/// Decodes a Messages packet body: an RLP list of 5-field envelopes (possibly empty).
pub fn decode_messages(payload: &[u8]) -> Result<Vec<Envelope>, WhisperError> {
    let item = Rlp::new(payload)?;
    let mut l = item.list()?;
    let mut out = Vec::new();
    while let Some(e) = l.next_item()? {
        out.push(Envelope::from_rlp(&e)?);
    }
    Ok(out)
}

/// Encodes a Messages packet body.
pub fn encode_messages(envelopes: &[Envelope]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        for env in envelopes {
            env.encode_to(e);
        }
    });
    e.finish()
}
