//! Rate limits on what peers send us ([`RateLimitConfig`], status-go `PeerRateLimiter`).
//!
//! Contract: token buckets per peer and per IP (packets/s, every packet after the handshake;
//! trusted mailserver peers are exempt) and per (peer, topic) (envelopes/s). An over-limit
//! packet is dropped unprocessed, an over-limit envelope is dropped; every drop is a
//! violation, counted in [`Stats::rate_limited`], and after `disconnect_after_violations`
//! the peer is disconnected.

use super::*;

/// A token bucket in milli-tokens: `rate` tokens per second, capacity `rate`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    pub(super) milli_tokens: u64,
    pub(super) last: Time,
}

impl Bucket {
    pub(super) fn full(rate: u64, now: Time) -> Bucket {
        Bucket {
            milli_tokens: rate.saturating_mul(1000),
            last: now,
        }
    }

    /// Takes one token if available.
    pub(super) fn allow(&mut self, rate: u64, now: Time) -> bool {
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

    pub(super) fn is_full(&self, rate: u64, now: Time) -> bool {
        let refill = now.millis_since(self.last).saturating_mul(rate);
        self.milli_tokens.saturating_add(refill) >= rate.saturating_mul(1000)
    }
}

impl Whisper {
    /// Per-peer and per-IP packet limits; false = drop the packet (and maybe the peer).
    pub(super) fn admit_packet(&mut self, peer: PeerKey) -> bool {
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

    pub(super) fn violation(&mut self, peer: PeerKey, what: &'static str) {
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
    pub(super) fn admit_topic(&mut self, peer: PeerKey, topic: Topic) -> bool {
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
            let payload = crate::whisper::status::encode_rate_limits_packet(&limits.advertised());
            self.config.rate_limits = limits;
            self.send_to_handshaken(codes::RATE_LIMITS, &payload);
        } else {
            self.config.rate_limits = limits;
        }
    }
}
