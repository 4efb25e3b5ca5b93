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
//!   envelope keeps the RLP it arrived as): same bytes, same hash.
//! - Pool eviction rule when [`Config::max_envelopes`] is reached: the envelope that expires
//!   soonest is evicted (ties: smallest hash); if the newcomer expires no later than it, the
//!   newcomer is dropped instead. Both count in [`Stats::pool_evictions`].
//!   The pool is also bounded by [`Config::max_pool_bytes`] (sum of envelope `size()`): the same
//!   rule evicts soonest-expiring envelopes until both bounds hold, or drops the newcomer if it
//!   would have to evict an envelope expiring later than itself (nothing is evicted then).
//! - Own posts ([`Whisper::post`], [`Whisper::post_with`]) are sealed, pooled, delivered to
//!   matching local filters (Go's `Send` → `add` → filters) and gossiped like any other envelope.
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

use super::bloom::{Bloom, Topic};
use super::envelope::{Envelope, PowFormula, DEFAULT_TTL_SECS};
use super::mailserver::{
    batch_hash, decode_batch_ack, decode_p2p_messages, encode_batch_ack, Archive, EnvelopeError,
    MessageResponse, MessagesRequest, RequestCompletion, RequestPayload, DEFAULT_REQUEST_LIMIT,
    ENVELOPE_OTHER_ERROR, ENVELOPE_TIME_NOT_SYNCED, HASH_LEN, OPEN_UPPER_BOUND_SECS,
};
use super::message::{
    decrypt_asymmetric, decrypt_symmetric, open_asymmetric, parse_plaintext, sym_key_from_password,
    wrap, Encryption, MessageParams, ReceivedMessage, SymmetricOpener, AES_KEY_LEN,
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

/// Default pool byte budget (sum of envelope `size()`): 256 MiB. Go has no byte bound; with
/// the 10 000-envelope default this only bites for envelopes averaging more than 26 kB.
pub const DEFAULT_MAX_POOL_BYTES: usize = 256 << 20;
/// Bound on remembered hashes of directly received (code 127) envelopes, for dedup.
pub const MAX_P2P_SEEN: usize = 20_000;
/// Bound on per-peer topic buckets; idle buckets are pruned beyond it.
pub const MAX_TOPIC_BUCKETS_PER_PEER: usize = 1024;

/// Token-bucket rate limits on what peers send us (status-go whisper `PeerRateLimiter`).
/// A value of 0 disables that limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Packets per second from all peers sharing one IP (Go default when enabled: 10).
    pub ip_packets_per_sec: u64,
    /// Packets per second from one peer (Go default when enabled: 5).
    pub peer_packets_per_sec: u64,
    /// Envelopes per second of one topic from one peer.
    pub topic_envelopes_per_sec: u64,
    /// Violations after which the peer is disconnected (0 = never, only drop).
    pub disconnect_after_violations: u32,
    /// Send the 2020 six-field Status (with `[ip, peer, topic]` limits) and code 20.
    pub advertise_rate_limits: bool,
}

impl RateLimitConfig {
    /// status-go's values when rate limiting is on: 10 packets/s per IP, 5 per peer id; we add
    /// 10 envelopes/s per topic and disconnect after 10 violations.
    pub fn status_defaults() -> RateLimitConfig {
        RateLimitConfig {
            ip_packets_per_sec: 10,
            peer_packets_per_sec: 5,
            topic_envelopes_per_sec: 10,
            disconnect_after_violations: 10,
            advertise_rate_limits: true,
        }
    }

    fn advertised(&self) -> RateLimits {
        RateLimits {
            ip_limit: self.ip_packets_per_sec,
            peer_id_limit: self.peer_packets_per_sec,
            topic_limit: self.topic_envelopes_per_sec,
        }
    }
}

/// The mailserver role (whisper-v6.md §10).
#[derive(Clone, Debug)]
pub struct MailserverConfig {
    /// Symmetric key requests are encrypted with (Status: PBKDF2 of
    /// [`super::STATUS_MAILSERVER_PASSWORD`]); `None` = asymmetric to our identity key.
    pub sym_key: Option<[u8; AES_KEY_LEN]>,
    /// Minimum PoW of a request envelope (0 = none; status-go's `MailServerPoW` default 0).
    pub min_request_pow: f64,
    /// Archive capacity in envelopes.
    pub max_archive_envelopes: usize,
    /// Archive capacity in raw envelope bytes.
    pub max_archive_bytes: usize,
    /// Envelopes per page when a request says 0.
    pub default_limit: u32,
    /// Largest page served, whatever the request asks.
    pub max_limit: u32,
}

impl Default for MailserverConfig {
    fn default() -> Self {
        MailserverConfig {
            sym_key: None,
            min_request_pow: 0.0,
            max_archive_envelopes: 1_000_000,
            max_archive_bytes: 1 << 30,
            default_limit: DEFAULT_REQUEST_LIMIT,
            max_limit: 10_000,
        }
    }
}

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
    /// Pool capacity in bytes (sum of envelope `size()`).
    pub max_pool_bytes: usize,
    /// Formerly the per-peer known-hash set capacity. Kept for compatibility but no longer
    /// consulted: per-peer gossip state is now a queue of pooled envelopes (see the module
    /// docs), so it is bounded by the pool ([`Config::max_envelopes`]) and nothing is ever
    /// forgotten (forgetting a known hash used to mean sending that envelope to the peer again).
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
    /// How long the previous PoW requirement / bloom stay tolerated after a change, ms.
    pub tolerance_ms: u64,
    /// Advertise `isLightNode`, refuse light↔light connections (Go's default) and deliver
    /// gossiped envelopes only to `allow_p2p` filters (Go `add(env, isP2P = LightClientMode)`).
    pub light_node: bool,
    /// Advertise `confirmationsEnabled` and send codes 12 + 11 after each Messages packet.
    pub confirmations_enabled: bool,
    /// `true`: start from an all-zero bloom and advertise the union of our filters' topics
    /// (status-go's light client); `false`: full node (nil bloom, accept every topic).
    pub topic_bloom: bool,
    /// Nonces tried at most when sealing a post (stands in for Go's `WorkTime`). 2^20 reaches
    /// a 0.002 target for messages up to several kB with overwhelming probability.
    pub max_seal_iterations: u64,
    /// Rate limits on peers (all off by default).
    pub rate_limits: RateLimitConfig,
    /// `Some`: this node is a mailserver.
    pub mailserver: Option<MailserverConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_pow: 0.001,
            pow_formula: PowFormula::Current,
            max_message_size: MAX_MESSAGE_SIZE_BYTES,
            max_envelopes: 10_000,
            max_pool_bytes: DEFAULT_MAX_POOL_BYTES,
            max_known_per_peer: 20_000,
            max_peers: 64,
            max_filters: 1024,
            expiry_check_interval_ms: EXPIRY_CHECK_INTERVAL_MS,
            broadcast_interval_ms: BROADCAST_INTERVAL_MS,
            max_future_drift_secs: SYNC_ALLOWANCE_SECS,
            tolerance_ms: u64::from(SYNC_ALLOWANCE_SECS) * 1000,
            light_node: false,
            confirmations_enabled: false,
            topic_bloom: false,
            max_seal_iterations: 1 << 20,
            rate_limits: RateLimitConfig::default(),
            mailserver: None,
        }
    }
}

/// The key a filter tries (Go filters hold exactly one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterKey {
    /// AES-256-GCM key.
    Symmetric([u8; AES_KEY_LEN]),
    /// AES-256-GCM key `PBKDF2(password)` ([`sym_key_from_password`], whisper-v6.md §8),
    /// derived the first time an envelope on the filter's topics is tried rather than when the
    /// filter is installed: PBKDF2 takes 65,356 HMAC rounds (≈ 7 ms) and many such filters
    /// (a node's own contact-code topic) never see an envelope. Same deliveries as
    /// `Symmetric(sym_key_from_password(password))`.
    SymmetricPassword(Vec<u8>),
    /// Our secp256k1 key for ECIES.
    Asymmetric(SecretKey),
}

/// A local subscription: envelopes on one of `topics` (all topics if empty) with PoW ≥
/// `min_pow` that decrypt with `key` are delivered.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Topics of interest (empty = every topic).
    pub topics: Vec<Topic>,
    /// The key tried.
    pub key: FilterKey,
    /// Minimum PoW of delivered messages (0 = any); checked before decrypting.
    pub min_pow: f64,
    /// Also receive direct P2P (mailserver) envelopes (Go `AllowP2P`).
    pub allow_p2p: bool,
}

impl Filter {
    /// A symmetric filter with no PoW minimum that accepts P2P envelopes (Status's settings).
    pub fn symmetric(topics: Vec<Topic>, key: [u8; AES_KEY_LEN]) -> Filter {
        Filter {
            topics,
            key: FilterKey::Symmetric(key),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    /// [`Filter::symmetric`] with the key `PBKDF2(password)`, derived on first use
    /// ([`FilterKey::SymmetricPassword`]).
    pub fn symmetric_password(topics: Vec<Topic>, password: Vec<u8>) -> Filter {
        Filter {
            topics,
            key: FilterKey::SymmetricPassword(password),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    /// An asymmetric filter with no PoW minimum that accepts P2P envelopes.
    pub fn asymmetric(topics: Vec<Topic>, key: SecretKey) -> Filter {
        Filter {
            topics,
            key: FilterKey::Asymmetric(key),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    fn matches_topic(&self, t: &Topic) -> bool {
        self.topics.is_empty() || self.topics.contains(t)
    }
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
}

/// A token bucket in milli-tokens: `rate` tokens per second, capacity `rate`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli_tokens: u64,
    last: Time,
}

impl Bucket {
    fn full(rate: u64, now: Time) -> Bucket {
        Bucket {
            milli_tokens: rate.saturating_mul(1000),
            last: now,
        }
    }

    /// Takes one token if available.
    fn allow(&mut self, rate: u64, now: Time) -> bool {
        let cap = rate.saturating_mul(1000);
        let elapsed = now.millis_since(self.last);
        self.last = self.last.max(now);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    fn is_full(&self, rate: u64, now: Time) -> bool {
        let refill = now.millis_since(self.last).saturating_mul(rate);
        self.milli_tokens.saturating_add(refill) >= rate.saturating_mul(1000)
    }
}

#[derive(Clone, Debug)]
struct PeerState {
    handshaken: bool,
    pow_requirement: f64,
    bloom: Bloom,
    full_node: bool,
    /// Gossip queue: pooled envelopes this peer is not known to have (sent us, or been sent),
    /// by hash. Bounded by the pool.
    pending: BTreeSet<[u8; 32]>,
    ip: Option<IpAddr>,
    trusted: bool,
    bucket: Option<Bucket>,
    topic_buckets: BTreeMap<Topic, Bucket>,
    violations: u32,
    advertised_limits: Option<RateLimits>,
}

#[derive(Clone, Debug)]
struct Pooled {
    env: Envelope,
    /// The envelope's RLP (as received, or our post's encoding); gossip copies it instead of
    /// re-encoding per peer, and duplicates are compared with it.
    raw: Box<[u8]>,
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
    /// Pooled hashes by [`raw_fingerprint`] of their bytes: a duplicate is found by comparing
    /// bytes with the few pooled envelopes sharing its fingerprint, without hashing.
    by_fingerprint: BTreeSet<(u64, [u8; 32])>,
    by_expiry: BTreeSet<(u32, [u8; 32])>,
    filters: BTreeMap<FilterId, Filter>,
    /// Prepared AES key schedules of symmetric filters.
    openers: BTreeMap<FilterId, SymmetricOpener>,
    next_filter_id: FilterId,
    bloom: Option<Bloom>,
    /// Previous PoW requirement, tolerated until the time given.
    pow_tolerance: Option<(f64, Time)>,
    /// Previous bloom (`None` inside = full), tolerated until the time given.
    bloom_tolerance: Option<(Option<Bloom>, Time)>,
    pool_bytes: usize,
    ip_buckets: BTreeMap<IpAddr, Bucket>,
    identity: Option<SecretKey>,
    archive: Option<Archive>,
    p2p_seen: BTreeSet<[u8; 32]>,
    p2p_seen_order: VecDeque<[u8; 32]>,
    actions: VecDeque<Action>,
    broadcast_at: Option<Time>,
    last_expiry_check: Time,
    stats: Stats,
}

/// One envelope of a Messages packet.
enum Incoming<'a> {
    /// Byte-identical to this pooled envelope.
    Pooled([u8; 32]),
    /// Not pooled: decoded, with its hash and bytes.
    New(Envelope, [u8; 32], &'a [u8]),
}

/// Cheap fingerprint of an envelope's RLP for duplicate lookup: its last 8 bytes, the end of
/// the nonce (a sealed nonce starts at a random value). Colliding envelopes (a peer may craft
/// equal nonces) are told apart by comparing bytes, so a collision costs time, never accuracy.
fn raw_fingerprint(raw: &[u8]) -> u64 {
    let tail = raw.get(raw.len().saturating_sub(8)..).unwrap_or_default();
    tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// What happened to one envelope offered to the pool.
enum Added {
    /// New and pooled.
    Pooled([u8; 32]),
    /// Already pooled.
    Duplicate([u8; 32]),
    /// Dropped without blame (expired, pool full, rate limited).
    Dropped,
    /// Dropped for a clock disagreement (peer kept; Go `TimeSyncError`).
    TimeSync([u8; 32], &'static str),
    /// The sender misbehaved.
    Fault([u8; 32], PeerFault),
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
        Whisper {
            config,
            rng: rng_from_seed(seed),
            now,
            peers: BTreeMap::new(),
            pool: BTreeMap::new(),
            by_fingerprint: BTreeSet::new(),
            by_expiry: BTreeSet::new(),
            filters: BTreeMap::new(),
            openers: BTreeMap::new(),
            next_filter_id: 1,
            bloom,
            pow_tolerance: None,
            bloom_tolerance: None,
            pool_bytes: 0,
            ip_buckets: BTreeMap::new(),
            identity: None,
            archive,
            p2p_seen: BTreeSet::new(),
            p2p_seen_order: VecDeque::new(),
            actions: VecDeque::new(),
            broadcast_at: None,
            last_expiry_check: now,
            stats: Stats::default(),
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
        self.pool_bytes
    }

    /// True if an envelope with this hash is pooled.
    pub fn has_envelope(&self, hash: &[u8; 32]) -> bool {
        self.pool.contains_key(hash)
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

    fn advance(&mut self, now: Time) {
        debug_assert!(now >= self.now, "time went backwards");
        if now > self.now {
            self.now = now;
        }
    }

    fn status_packet(&self) -> StatusPacket {
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
                pending: self.pool.keys().copied().collect(),
                ip,
                trusted: false,
                bucket: (rate > 0).then(|| Bucket::full(rate, now)),
                topic_buckets: BTreeMap::new(),
                violations: 0,
                advertised_limits: None,
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

    fn forget_peer(&mut self, peer: PeerKey) {
        if let Some(p) = self.peers.remove(&peer) {
            if let Some(ip) = p.ip {
                if !self.peers.values().any(|q| q.ip == Some(ip)) {
                    self.ip_buckets.remove(&ip);
                }
            }
        }
    }

    fn fault(&mut self, peer: PeerKey, reason: PeerFault) {
        crate::log_drop!("whisper", reason.label(), peer);
        self.forget_peer(peer);
        self.stats.peer_faults += 1;
        self.actions
            .push_back(Action::DisconnectPeer { peer, reason });
    }

    /// Per-peer and per-IP packet limits; false = drop the packet (and maybe the peer).
    fn admit_packet(&mut self, peer: PeerKey) -> bool {
        let rl = &self.config.rate_limits;
        let (peer_rate, ip_rate) = (rl.peer_packets_per_sec, rl.ip_packets_per_sec);
        let now = self.now;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        // Trusted mailservers answer a request with bursts of code-127 packets: exempt.
        if p.trusted {
            return true;
        }
        let mut ok = true;
        let mut what = "";
        if let Some(b) = p.bucket.as_mut() {
            if !b.allow(peer_rate, now) {
                ok = false;
                what = "peer";
            }
        }
        if ok && ip_rate > 0 {
            if let Some(ip) = p.ip {
                let b = self
                    .ip_buckets
                    .entry(ip)
                    .or_insert_with(|| Bucket::full(ip_rate, now));
                if !b.allow(ip_rate, now) {
                    ok = false;
                    what = "ip";
                }
            }
        }
        if !ok {
            self.violation(peer, what);
        }
        ok
    }

    fn violation(&mut self, peer: PeerKey, what: &'static str) {
        self.stats.rate_limited += 1;
        let limit = self.config.rate_limits.disconnect_after_violations;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.violations = p.violations.saturating_add(1);
        if limit > 0 && p.violations >= limit {
            self.fault(peer, PeerFault::RateLimited { what });
        }
    }

    /// Per-(peer, topic) envelope limit.
    fn admit_topic(&mut self, peer: PeerKey, topic: Topic) -> bool {
        let rate = self.config.rate_limits.topic_envelopes_per_sec;
        if rate == 0 {
            return true;
        }
        let now = self.now;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        if p.topic_buckets.len() >= MAX_TOPIC_BUCKETS_PER_PEER
            && !p.topic_buckets.contains_key(&topic)
        {
            p.topic_buckets.retain(|_, b| !b.is_full(rate, now));
        }
        let ok = p
            .topic_buckets
            .entry(topic)
            .or_insert_with(|| Bucket::full(rate, now))
            .allow(rate, now);
        if !ok {
            self.violation(peer, "topic");
        }
        ok
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
            p.advertised_limits = status.rate_limits;
        }
        self.schedule_broadcast();
    }

    /// Splits a Messages packet into envelopes already pooled (found by their bytes) and new
    /// ones (decoded and hashed). Any undecodable item fails the whole packet, as before.
    fn decode_packet<'a>(&self, payload: &'a [u8]) -> Result<Vec<Incoming<'a>>, WhisperError> {
        let item = Rlp::new(payload)?;
        let mut l = item.list()?;
        let mut out = Vec::new();
        while let Some(e) = l.next_item()? {
            let raw = e.raw();
            match self.pooled_hash_of(raw) {
                Some(hash) => out.push(Incoming::Pooled(hash)),
                None => {
                    let env = Envelope::from_rlp(&e)?;
                    out.push(Incoming::New(env, keccak256(raw), raw));
                }
            }
        }
        Ok(out)
    }

    /// The hash of the pooled envelope whose RLP is exactly `raw`, if any.
    fn pooled_hash_of(&self, raw: &[u8]) -> Option<[u8; 32]> {
        let fp = raw_fingerprint(raw);
        self.by_fingerprint
            .range((fp, [0u8; 32])..=(fp, [0xff; 32]))
            .find(|(_, h)| self.pool.get(h).is_some_and(|p| *p.raw == *raw))
            .map(|(_, h)| *h)
    }

    fn handle_messages(&mut self, peer: PeerKey, payload: &[u8]) {
        let envelopes = match self.decode_packet(payload) {
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
        let mut errors = Vec::new();
        for incoming in envelopes {
            self.stats.envelopes_received += 1;
            let topic = match &incoming {
                Incoming::New(env, ..) => env.topic,
                Incoming::Pooled(hash) => match self.pool.get(hash) {
                    Some(p) => p.env.topic,
                    // Evicted by an earlier envelope of this packet: nothing left to learn.
                    None => {
                        self.stats.duplicates += 1;
                        crate::log_drop!("whisper", "duplicate", Hex(hash));
                        continue;
                    }
                },
            };
            if self.config.rate_limits.topic_envelopes_per_sec > 0 && !self.admit_topic(peer, topic)
            {
                if !self.peers.contains_key(&peer) {
                    return; // disconnected for too many violations
                }
                continue;
            }
            let (added, hash) = match incoming {
                Incoming::New(env, hash, raw) => (self.add(env, hash, raw, Some(peer)), hash),
                Incoming::Pooled(hash) => (self.add_pooled(hash, peer), hash),
            };
            // Each drop is counted where it is decided (`clock_check`, `add`); logged here.
            let dropped = match &added {
                Added::Pooled(_) => None,
                Added::Duplicate(_) => Some("duplicate"),
                Added::Dropped => Some("expired_or_pool_full"),
                Added::TimeSync(_, why) => Some(*why),
                Added::Fault(_, f) => Some(f.label()),
            };
            if let Some(reason) = dropped {
                crate::log_drop!("whisper", reason, Hex(&hash));
            }
            match added {
                Added::Pooled(_) | Added::Duplicate(_) | Added::Dropped => {}
                Added::TimeSync(hash, why) => errors.push(EnvelopeError {
                    hash,
                    code: ENVELOPE_TIME_NOT_SYNCED,
                    description: why.to_string(),
                }),
                Added::Fault(hash, f) => {
                    errors.push(EnvelopeError {
                        hash,
                        code: ENVELOPE_OTHER_ERROR,
                        description: f.to_string(),
                    });
                    fault.get_or_insert(f);
                }
            }
        }
        if self.config.confirmations_enabled {
            // [W-wh `sendConfirmation`]: message response first, then the batch ack.
            let batch = batch_hash(payload);
            let response = MessageResponse {
                batch_hash: batch,
                errors,
            };
            self.actions.push_back(Action::Send {
                peer,
                code: codes::MESSAGE_RESPONSE,
                payload: response.encode(),
            });
            self.actions.push_back(Action::Send {
                peer,
                code: codes::BATCH_ACK,
                payload: encode_batch_ack(&batch),
            });
            self.stats.confirmations_sent += 1;
        }
        // "Any non-TimeSync error in a packet drops the peer after the whole packet is processed."
        if let Some(f) = fault {
            self.fault(peer, f);
        }
    }

    fn pow_accepted(&self, pow: f64) -> bool {
        if pow >= self.config.min_pow {
            return true;
        }
        matches!(self.pow_tolerance, Some((old, until)) if self.now < until && pow >= old)
    }

    fn bloom_accepted(&self, sample: &Bloom) -> bool {
        if super::bloom::bloom_match(self.bloom.as_ref(), sample) {
            return true;
        }
        matches!(&self.bloom_tolerance, Some((old, until))
            if self.now < *until && super::bloom::bloom_match(old.as_ref(), sample))
    }

    /// Go `add`'s clock checks: `Some` if the envelope is from the future or expired.
    fn clock_check(&mut self, sent: u32, expiry: u32, hash: [u8; 32]) -> Option<Added> {
        let now = secs(self.now);
        let allowance = self.config.max_future_drift_secs;
        if sent > now.saturating_add(allowance) {
            self.stats.dropped_future += 1;
            return Some(Added::TimeSync(hash, "envelope from future"));
        }
        if expiry < now {
            if expiry.saturating_add(allowance.saturating_mul(2)) < now {
                self.stats.dropped_very_old += 1;
                return Some(Added::TimeSync(hash, "very old envelope"));
            }
            self.stats.dropped_expired += 1;
            return Some(Added::Dropped);
        }
        None
    }

    /// [`Self::add`] for an envelope found pooled by its bytes: the same checks in the same
    /// order (a pooled envelope passed the size check; its clock checks may now fail).
    fn add_pooled(&mut self, hash: [u8; 32], from: PeerKey) -> Added {
        let Some((sent, expiry)) = self
            .pool
            .get(&hash)
            .map(|p| (p.env.sent_secs(), p.env.expiry))
        else {
            return Added::Dropped;
        };
        if let Some(verdict) = self.clock_check(sent, expiry, hash) {
            return verdict;
        }
        self.mark_known(from, hash);
        self.stats.duplicates += 1;
        Added::Duplicate(hash)
    }

    /// Validates and pools an envelope (Go `add`); `hash` is its hash and `raw` its bytes.
    fn add(&mut self, env: Envelope, hash: [u8; 32], raw: &[u8], from: Option<PeerKey>) -> Added {
        let now = secs(self.now);
        let sent = env.sent_secs();
        if let Some(verdict) = self.clock_check(sent, env.expiry, hash) {
            return verdict;
        }
        if env.size() > self.config.max_message_size as usize {
            self.stats.dropped_too_large += 1;
            return Added::Fault(hash, PeerFault::EnvelopeTooLarge);
        }
        // Dedup before the PoW: a pooled envelope (same hash = same bytes) already passed it.
        if self.pool.contains_key(&hash) {
            if let Some(p) = from {
                self.mark_known(p, hash);
            }
            self.stats.duplicates += 1;
            return Added::Duplicate(hash);
        }
        let diff = if sent > now { sent - now + 1 } else { 0 };
        let pow = env.pow(self.config.pow_formula, diff);
        if !self.pow_accepted(pow) {
            self.stats.dropped_low_pow += 1;
            return Added::Fault(hash, PeerFault::LowPow);
        }
        let bloom = env.bloom();
        if from.is_some() && !self.bloom_accepted(&bloom) {
            self.stats.dropped_bloom += 1;
            return Added::Fault(hash, PeerFault::BloomMismatch);
        }
        if !self.make_room(&env, hash) {
            self.stats.pool_evictions += 1;
            return Added::Dropped;
        }
        self.stats.envelopes_pooled += 1;
        // Archive first: the driver commits the envelope before it reports the delivery.
        if let Some(archive) = self.archive.as_mut() {
            let raw = raw.to_vec();
            if archive.insert(&env, hash, raw.clone()) {
                self.stats.archived += 1;
                self.actions.push_back(Action::Archive {
                    hash,
                    sent_secs: sent,
                    topic: env.topic,
                    raw,
                });
            }
        }
        let p2p = from.is_some() && self.config.light_node;
        self.deliver(&env, hash, pow, p2p);
        self.pool_bytes += env.size();
        self.by_expiry.insert((env.expiry, hash));
        // Every peer but the sender is to be offered it.
        for (key, p) in self.peers.iter_mut() {
            if Some(*key) != from {
                p.pending.insert(hash);
            }
        }
        self.by_fingerprint.insert((raw_fingerprint(raw), hash));
        self.pool.insert(
            hash,
            Pooled {
                bloom: env.bloom(),
                env,
                raw: raw.into(),
                pow,
            },
        );
        self.schedule_broadcast();
        Added::Pooled(hash)
    }

    /// Removes a pooled envelope from the pool, its indexes and every gossip queue.
    fn remove_pooled(&mut self, expiry: u32, hash: &[u8; 32]) {
        self.by_expiry.remove(&(expiry, *hash));
        if let Some(p) = self.pool.remove(hash) {
            self.pool_bytes -= p.env.size();
            self.by_fingerprint
                .remove(&(raw_fingerprint(&p.raw), *hash));
        }
        for p in self.peers.values_mut() {
            p.pending.remove(hash);
        }
    }

    /// Evicts soonest-expiring envelopes until `env` fits both bounds; false (and nothing
    /// evicted) if that would evict an envelope expiring no earlier than `env`.
    fn make_room(&mut self, env: &Envelope, hash: [u8; 32]) -> bool {
        let size = env.size();
        if size > self.config.max_pool_bytes || self.config.max_envelopes == 0 {
            return false;
        }
        let mut count = self.pool.len();
        let mut bytes = self.pool_bytes;
        let mut victims = Vec::new();
        let mut it = self.by_expiry.iter();
        while count >= self.config.max_envelopes || bytes + size > self.config.max_pool_bytes {
            match it.next() {
                Some(&(exp, h)) if (exp, h) < (env.expiry, hash) => {
                    count -= 1;
                    bytes -= self.pool.get(&h).map_or(0, |p| p.env.size());
                    victims.push((exp, h));
                }
                _ => return false,
            }
        }
        for (exp, h) in victims {
            self.remove_pooled(exp, &h);
            self.stats.pool_evictions += 1;
        }
        true
    }

    /// `peer` has the pooled envelope `hash`: it leaves the peer's gossip queue.
    fn mark_known(&mut self, peer: PeerKey, hash: [u8; 32]) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.pending.remove(&hash);
        }
    }

    /// Offers an envelope to local filters (`p2p`: only `allow_p2p` filters).
    fn deliver(&mut self, env: &Envelope, hash: [u8; 32], pow: f64, p2p: bool) {
        let formula = self.config.pow_formula;
        for (id, f) in &self.filters {
            if !f.matches_topic(&env.topic) || (p2p && !f.allow_p2p) {
                continue;
            }
            if f.min_pow > 0.0 && pow < f.min_pow {
                continue;
            }
            let opened = match &f.key {
                FilterKey::Symmetric(k) => match self.openers.get(id) {
                    Some(o) => o.open(env, hash, pow),
                    None => SymmetricOpener::new(k).open(env, hash, pow),
                },
                FilterKey::SymmetricPassword(password) => self
                    .openers
                    .entry(*id)
                    .or_insert_with(|| SymmetricOpener::new(&sym_key_from_password(password)))
                    .open(env, hash, pow),
                FilterKey::Asymmetric(k) => open_asymmetric(env, hash, k, formula),
            };
            if let Ok(message) = opened {
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

    fn send_to_handshaken(&mut self, code: u64, payload: &[u8]) {
        for (peer, p) in &self.peers {
            if p.handshaken {
                self.actions.push_back(Action::Send {
                    peer: *peer,
                    code,
                    payload: payload.to_vec(),
                });
            }
        }
    }

    /// Replaces our rate limits; when advertised, tells every peer (code 20, status-go
    /// whisper ≥ v6.1.0).
    pub fn set_rate_limits(&mut self, now: Time, limits: RateLimitConfig) {
        self.advance(now);
        let rate = limits.peer_packets_per_sec;
        for p in self.peers.values_mut() {
            p.bucket = (rate > 0).then(|| Bucket::full(rate, now));
            p.topic_buckets.clear();
        }
        self.ip_buckets.clear();
        if limits.advertise_rate_limits {
            let payload = super::status::encode_rate_limits_packet(&limits.advertised());
            self.config.rate_limits = limits;
            self.send_to_handshaken(codes::RATE_LIMITS, &payload);
        } else {
            self.config.rate_limits = limits;
        }
    }

    /// Changes our minimum PoW: tells every peer (code 2); the previous value stays accepted
    /// for [`Config::tolerance_ms`] (Go `SetMinimumPoW(val, tolerate = true)`).
    pub fn set_min_pow(&mut self, now: Time, pow: f64) -> Result<(), WhisperError> {
        self.advance(now);
        if !pow.is_finite() || pow < 0.0 {
            return Err(WhisperError::InvalidPow);
        }
        let until = self.now.plus_millis(self.config.tolerance_ms);
        self.pow_tolerance = Some((self.config.min_pow, until));
        self.config.min_pow = pow;
        self.send_to_handshaken(codes::POW_REQUIREMENT, &encode_pow_requirement(pow));
        Ok(())
    }

    /// Replaces our bloom (`None` = full node): tells every peer (code 3); the previous bloom
    /// stays accepted for [`Config::tolerance_ms`] (Go `SetBloomFilter`).
    pub fn set_bloom(&mut self, now: Time, bloom: Option<Bloom>) {
        self.advance(now);
        self.change_bloom(bloom);
    }

    fn change_bloom(&mut self, bloom: Option<Bloom>) {
        if bloom == self.bloom {
            return;
        }
        let until = self.now.plus_millis(self.config.tolerance_ms);
        self.bloom_tolerance = Some((self.bloom, until));
        self.bloom = bloom;
        let payload = encode_bloom_filter(&bloom.unwrap_or(Bloom::FULL));
        self.send_to_handshaken(codes::BLOOM_FILTER, &payload);
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
                self.change_bloom(Some(grown));
            }
        }
        let id = self.next_filter_id;
        self.next_filter_id += 1;
        if let FilterKey::Symmetric(k) = &filter.key {
            self.openers.insert(id, SymmetricOpener::new(k));
        }
        self.filters.insert(id, filter);
        Ok(id)
    }

    /// Removes a filter; true if it existed. (The bloom is not shrunk, as in Go.)
    pub fn remove_filter(&mut self, id: FilterId) -> bool {
        self.openers.remove(&id);
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
        let hash = keccak256(&raw);
        match self.add(env, hash, &raw, None) {
            Added::Pooled(h) | Added::Duplicate(h) => Ok(h),
            Added::Fault(_, f) => Err(WhisperError::Rejected(Box::new(f))),
            Added::TimeSync(..) | Added::Dropped => Err(WhisperError::Dropped),
        }
    }

    fn seal(
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

    /// Sends one envelope directly to a peer as a P2P message (code 127), bypassing the pool
    /// (Go `SendP2PMessage`).
    pub fn send_p2p(
        &mut self,
        now: Time,
        peer: PeerKey,
        env: &Envelope,
    ) -> Result<(), WhisperError> {
        self.advance(now);
        // A connected peer suffices: our Status was queued at connect, so it precedes this
        // packet on the wire, and the peer's Status precedes its answers.
        if !self.peers.contains_key(&peer) {
            return Err(WhisperError::UnknownPeer);
        }
        self.actions.push_back(Action::Send {
            peer,
            code: codes::P2P_MESSAGE,
            payload: env.encode(),
        });
        Ok(())
    }

    /// Client side of §10.1: wraps `request` (signed with our identity, encrypted as given —
    /// Status: symmetric PBKDF2("status-offline-inbox")), sends it to `peer` as code 126 and
    /// marks the peer trusted. Returns the request id (the request envelope's hash), which the
    /// [`Action::RequestComplete`] will carry.
    pub fn request_history(
        &mut self,
        now: Time,
        peer: PeerKey,
        request: &RequestPayload,
        encryption: &Encryption,
    ) -> Result<[u8; 32], WhisperError> {
        self.advance(now);
        let identity = self.identity.ok_or(WhisperError::NoIdentity)?;
        // A connected peer suffices: our Status was queued at connect, so it precedes this
        // packet on the wire, and the peer's Status precedes its answers.
        if !self.peers.contains_key(&peer) {
            return Err(WhisperError::UnknownPeer);
        }
        let params = MessageParams {
            payload: request.encode(),
            padding: None,
            sign_with: Some(identity),
            topic: Topic([0; 4]),
            ttl_secs: DEFAULT_TTL_SECS,
            pow_target: self.config.min_pow,
        };
        let env = self.seal(&params, encryption)?;
        let raw = env.encode();
        let id = keccak256(&raw);
        self.set_trusted(peer, true);
        self.actions.push_back(Action::Send {
            peer,
            code: codes::P2P_REQUEST,
            payload: raw,
        });
        Ok(id)
    }

    /// Client side of §10.2: sends the unencrypted list-form request and trusts the peer.
    pub fn request_history_list(
        &mut self,
        now: Time,
        peer: PeerKey,
        request: &MessagesRequest,
    ) -> Result<(), WhisperError> {
        self.advance(now);
        request.validate()?;
        // A connected peer suffices: our Status was queued at connect, so it precedes this
        // packet on the wire, and the peer's Status precedes its answers.
        if !self.peers.contains_key(&peer) {
            return Err(WhisperError::UnknownPeer);
        }
        self.set_trusted(peer, true);
        self.actions.push_back(Action::Send {
            peer,
            code: codes::P2P_REQUEST,
            payload: request.encode(),
        });
        Ok(())
    }

    fn handle_p2p_messages(&mut self, peer: PeerKey, payload: &[u8]) {
        if !self.is_trusted(peer) {
            self.stats.untrusted_ignored += 1;
            return;
        }
        let envelopes = match decode_p2p_messages(payload) {
            Ok(e) => e,
            Err(error) => {
                return self.fault(
                    peer,
                    PeerFault::Malformed {
                        code: codes::P2P_MESSAGE,
                        error,
                    },
                )
            }
        };
        for env in envelopes {
            let hash = env.hash();
            // Already delivered through gossip or an earlier page: skip (the chat layer would
            // drop it as a duplicate anyway; this saves the decryption).
            if self.pool.contains_key(&hash) || !self.p2p_seen.insert(hash) {
                self.stats.p2p_duplicates += 1;
                crate::log_drop!("whisper", "p2p_duplicate", Hex(&hash));
                continue;
            }
            self.p2p_seen_order.push_back(hash);
            while self.p2p_seen.len() > MAX_P2P_SEEN {
                match self.p2p_seen_order.pop_front() {
                    Some(old) => {
                        self.p2p_seen.remove(&old);
                    }
                    None => break,
                }
            }
            self.stats.p2p_envelopes_received += 1;
            // [W-wh `postP2P`]: no expiry or PoW checks for direct messages.
            let pow = env.pow(self.config.pow_formula, 0);
            self.deliver(&env, hash, pow, true);
        }
    }

    /// Mailserver: a code-126 request (envelope form, then list form).
    fn handle_p2p_request(&mut self, peer: PeerKey, payload: &[u8]) {
        let parsed = match Envelope::decode(payload) {
            Ok(env) => {
                let id = keccak256(payload);
                self.open_request(&env)
                    .map(|req| (id, req))
                    .map_err(|e| (id, e))
            }
            Err(_) => match MessagesRequest::decode(payload) {
                Ok(list) => {
                    let mut id = [0u8; HASH_LEN];
                    let n = list.id.len().min(HASH_LEN);
                    id[..n].copy_from_slice(&list.id[..n]);
                    list.validate()
                        .and_then(|_| {
                            let bloom = Bloom(list.bloom.as_slice().try_into().map_err(|_| {
                                WhisperError::BadBloomLength {
                                    found: list.bloom.len(),
                                }
                            })?);
                            Ok(RequestPayload {
                                lower: list.from,
                                upper: list.to,
                                bloom,
                                limit: list.limit,
                                cursor: list.cursor.clone(),
                                batch: true,
                            })
                        })
                        .map(|req| (id, req))
                        .map_err(|e| (id, e))
                }
                Err(error) => {
                    return self.fault(
                        peer,
                        PeerFault::Malformed {
                            code: codes::P2P_REQUEST,
                            error,
                        },
                    )
                }
            },
        };
        match parsed {
            Ok((id, req)) => self.serve(peer, id, req),
            Err((id, e)) => {
                self.stats.requests_failed += 1;
                let completion = RequestCompletion {
                    request_id: id,
                    last_envelope_hash: [0; HASH_LEN],
                    cursor: Vec::new(),
                    error: Some(e.to_string()),
                };
                self.actions.push_back(Action::Send {
                    peer,
                    code: codes::P2P_REQUEST_COMPLETE,
                    payload: completion.encode(),
                });
            }
        }
    }

    /// [SG-ms `validateRequest`, `decodeRequest`]: PoW, decrypt, signed, 6-field payload,
    /// upper 0 → now + 60, upper ≥ lower.
    fn open_request(&self, env: &Envelope) -> Result<RequestPayload, WhisperError> {
        let ms = self
            .config
            .mailserver
            .as_ref()
            .ok_or(WhisperError::NotMailserver)?;
        if ms.min_request_pow > 0.0 && env.pow(self.config.pow_formula, 0) < ms.min_request_pow {
            return Err(WhisperError::InvalidRequest("PoW too low"));
        }
        let plain = match (&ms.sym_key, &self.identity) {
            (Some(k), _) => decrypt_symmetric(&env.data, k)?,
            (None, Some(k)) => decrypt_asymmetric(&env.data, k)?,
            (None, None) => return Err(WhisperError::NoIdentity),
        };
        let msg = parse_plaintext(&plain)?;
        if msg.signer.is_none() {
            return Err(WhisperError::InvalidRequest("request is not signed"));
        }
        let mut req = RequestPayload::decode(&msg.payload)?;
        if req.upper == 0 {
            req.upper = secs(self.now).saturating_add(OPEN_UPPER_BOUND_SECS);
        }
        if req.upper < req.lower {
            return Err(WhisperError::InvalidRequest(
                "query range is invalid: lower > upper",
            ));
        }
        Ok(req)
    }

    /// Answers a valid request: 127 packets (lists below `max_message_size` when `batch`,
    /// else one envelope each), then the 125 completion with the cursor.
    fn serve(&mut self, peer: PeerKey, id: [u8; 32], req: RequestPayload) {
        let (Some(ms), Some(archive)) = (self.config.mailserver.as_ref(), self.archive.as_ref())
        else {
            return;
        };
        let limit = if req.limit == 0 {
            ms.default_limit
        } else {
            req.limit
        }
        .min(ms.max_limit)
        .max(1);
        let page = archive.query(req.lower, req.upper, &req.bloom, limit, &req.cursor);
        let max = self.config.max_message_size as usize;
        self.stats.requests_served += 1;
        self.stats.envelopes_served += page.envelopes.len() as u64;
        if req.batch {
            let mut bundle = Encoder::new();
            for raw in &page.envelopes {
                // [SG-ms `processRequestInBundles`]: flush when adding would exceed the limit.
                if !bundle.as_slice().is_empty() && bundle.as_slice().len() + raw.len() + 9 > max {
                    self.push_bundle(peer, std::mem::take(&mut bundle));
                }
                bundle.raw(raw);
            }
            if !bundle.as_slice().is_empty() {
                self.push_bundle(peer, bundle);
            }
        } else {
            for raw in &page.envelopes {
                self.actions.push_back(Action::Send {
                    peer,
                    code: codes::P2P_MESSAGE,
                    payload: raw.clone(),
                });
            }
        }
        let completion = RequestCompletion {
            request_id: id,
            last_envelope_hash: page.last_envelope_hash,
            cursor: page.cursor,
            error: None,
        };
        self.actions.push_back(Action::Send {
            peer,
            code: codes::P2P_REQUEST_COMPLETE,
            payload: completion.encode(),
        });
    }

    fn push_bundle(&mut self, peer: PeerKey, body: Encoder) {
        let mut e = Encoder::with_capacity(body.as_slice().len() + 9);
        e.list(|e| {
            e.raw(body.as_slice());
        });
        self.actions.push_back(Action::Send {
            peer,
            code: codes::P2P_MESSAGE,
            payload: e.finish(),
        });
    }

    /// The RLP and expiry (Unix seconds) of a pooled envelope (e.g. to persist our own post
    /// before it is gossiped).
    pub fn pooled_raw(&self, hash: &[u8; 32]) -> Option<(&[u8], u32)> {
        self.pool.get(hash).map(|p| (p.raw.as_ref(), p.env.expiry))
    }

    /// Restart: pools again one of our own posts (its RLP, persisted before it was gossiped),
    /// to be gossiped like a new post. `Ok(false)` if expired or already pooled; an envelope
    /// the pool refuses (too large, PoW too low, full) is an error. No key is used again: the
    /// bytes are the ones sealed before the restart.
    pub fn repost_raw(&mut self, now: Time, raw: &[u8]) -> Result<bool, WhisperError> {
        self.advance(now);
        let env = Envelope::decode(raw)?;
        if env.expiry < secs(self.now) {
            return Ok(false);
        }
        let hash = keccak256(raw);
        match self.add(env, hash, raw, None) {
            Added::Pooled(_) => Ok(true),
            Added::Duplicate(_) => Ok(false),
            Added::Fault(_, f) => Err(WhisperError::Rejected(Box::new(f))),
            Added::TimeSync(..) | Added::Dropped => Err(WhisperError::Dropped),
        }
    }

    /// Mailserver restart: replays one persisted envelope (its RLP) into the archive without
    /// re-emitting [`Action::Archive`]. `Ok(false)` if already held.
    pub fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, WhisperError> {
        let archive = self.archive.as_mut().ok_or(WhisperError::NotMailserver)?;
        archive.insert_raw(raw)
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
            // Also leaves every gossip queue (Go `peer.expire`).
            self.remove_pooled(exp, &h);
            self.stats.expired_from_pool += 1;
        }
    }

    fn broadcast(&mut self) {
        let max = self.config.max_message_size as usize;
        let now = secs(self.now);
        let interval_ms = self.config.broadcast_interval_ms;
        let mut sends = Vec::new();
        for (peer, p) in self.peers.iter_mut() {
            if !p.handshaken {
                continue;
            }
            // Honour the peer's advertised packet limits: at most this many Messages packets
            // per cycle; what does not fit waits (it is not marked known).
            let budget = p
                .advertised_limits
                .map(|l| {
                    [l.peer_id_limit, l.ip_limit]
                        .into_iter()
                        .filter(|&x| x > 0)
                        .min()
                        .map_or(usize::MAX, |x| {
                            usize::try_from((x.saturating_mul(interval_ms) / 1000).max(1))
                                .unwrap_or(usize::MAX)
                        })
                })
                .unwrap_or(usize::MAX);
            let mut packets = 0usize;
            let mut body = Encoder::new();
            let mut count = 0usize;
            let mut sent = Vec::new();
            // The queue is in hash order, as a pool walk would find them.
            for h in &p.pending {
                let Some(e) = self.pool.get(h) else { continue };
                if e.env.expiry < now || e.pow < p.pow_requirement {
                    continue;
                }
                if !p.full_node && !p.bloom.matches(&e.bloom) {
                    continue;
                }
                if count > 0 && body.as_slice().len() + e.raw.len() + 9 > max {
                    sends.push((*peer, std::mem::take(&mut body)));
                    packets += 1;
                    count = 0;
                }
                if packets >= budget {
                    break;
                }
                body.raw(&e.raw);
                count += 1;
                sent.push(*h);
                self.stats.envelopes_sent += 1;
            }
            // Sent = known to the peer: never offered again.
            for h in &sent {
                p.pending.remove(h);
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

/// Decodes a Messages packet body into envelopes with their hashes (keccak256 of each raw
/// item, which equals Go's hash because decoding is strict).
pub fn decode_messages_hashed(payload: &[u8]) -> Result<Vec<(Envelope, [u8; 32])>, WhisperError> {
    let item = Rlp::new(payload)?;
    let mut l = item.list()?;
    let mut out = Vec::new();
    while let Some(e) = l.next_item()? {
        out.push((Envelope::from_rlp(&e)?, keccak256(e.raw())));
    }
    Ok(out)
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
