//! Configuration of the Whisper machine: [`Config`], its rate limits and mailserver role, and
//! the protocol constants they default to (Go's values, [W-doc]).

use super::*;

/// `DefaultSyncAllowance` [W-doc]: tolerated clock skew, seconds.
pub const SYNC_ALLOWANCE_SECS: u32 = 10;
/// `transmissionCycle` [W-doc]: gossip batching period.
pub const BROADCAST_INTERVAL_MS: u64 = 300;
/// New envelope bytes (sum of `size()` pooled since the last broadcast) that make the broadcast
/// due at once instead of at the end of the cycle. The cycle batches envelopes so that each
/// packet carries many; once a batch is this large, waiting longer only adds latency (a node
/// fed faster than one cycle's worth would otherwise be capped at one batch per 300 ms). Well
/// under [`MAX_MESSAGE_SIZE_BYTES`], so an early batch is still one packet per peer.
pub const EARLY_BROADCAST_BYTES: usize = 64 << 10;
/// Quiet time after the last new envelope that ends a batch early, ms: when input pauses this
/// long, what was pooled goes without waiting for the rest of the cycle. Under steady load new
/// envelopes keep arriving and the cycle (or [`EARLY_BROADCAST_BYTES`]) still sets the batch;
/// a burst's last envelopes, and a lone message, wait this long instead of up to 300 ms per
/// hop.
pub const QUIET_BROADCAST_MS: u64 = 20;
/// Envelopes the pool does not hold (refused while full, or evicted) remembered with the peers
/// known to have them: if one is pooled again later (another peer sends it), those peers are
/// not offered it back.
pub const MAX_KNOWN_UNPOOLED: usize = 1024;
/// `expirationCycle` [W-doc]: how often expired envelopes are purged.
pub const EXPIRY_CHECK_INTERVAL_MS: u64 = 1000;
/// `DefaultMaxMessageSize` [W-doc]: 1 MiB, also status-go's value.
pub const MAX_MESSAGE_SIZE_BYTES: u32 = 1 << 20;
/// `MaxMessageSize` [W-doc]: the largest value `set_max_message_size` (`shh_setMaxMessageSize`)
/// accepts, 10 MiB.
pub const MAX_SETTABLE_MESSAGE_SIZE_BYTES: u32 = 10 << 20;

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

    pub(super) fn advertised(&self) -> RateLimits {
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
    /// [`crate::whisper::STATUS_MAILSERVER_PASSWORD`]); `None` = asymmetric to our identity key.
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
    /// New envelope bytes that make a broadcast due before the period ends (0 = never; see
    /// [`EARLY_BROADCAST_BYTES`]). A peer's advertised packet limits still hold per period.
    pub early_broadcast_bytes: usize,
    /// Quiet time after the last new envelope that makes the broadcast due, ms (0 = never; see
    /// [`QUIET_BROADCAST_MS`]).
    pub quiet_broadcast_ms: u64,
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
            early_broadcast_bytes: EARLY_BROADCAST_BYTES,
            quiet_broadcast_ms: QUIET_BROADCAST_MS,
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
