//! Gossip: per-peer queues of what each peer does not have yet, the batched broadcast, and
//! what we tell peers about ourselves (PoW requirement, bloom).
//!
//! Contract: a newly pooled envelope joins the queue of every peer except its sender; a peer
//! that sends us a pooled envelope, or is sent it, leaves its queue. A broadcast (one per
//! [`Config::broadcast_interval_ms`] when something is new, at once when
//! [`Config::early_broadcast_bytes`] of new envelopes wait, or when no new envelope came for
//! [`Config::quiet_broadcast_ms`]) sends each handshaken peer its
//! queue's eligible envelopes (PoW ≥ its requirement, bloom covered, not expired) in hash order,
//! within its advertised packet budget per cycle; what is not eligible stays queued, and what
//! the budget holds back goes at the next cycle. A peer never receives an envelope twice, nor
//! the envelope back from the peer that sent it.

use super::*;

impl Whisper {
    /// `peer` has the pooled envelope in `slot`: it leaves the peer's gossip queue.
    pub(super) fn mark_known(&mut self, peer: PeerKey, slot: Slot) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.pending.remove(&slot);
        }
    }

    pub(super) fn schedule_broadcast(&mut self) {
        if self.broadcast_at.is_none() {
            self.broadcast_at = Some(self.now.plus_millis(self.config.broadcast_interval_ms));
        }
    }

    /// `size` more bytes were pooled: a batch that is full enough goes now, and any batch goes
    /// once no new envelope came for [`Config::quiet_broadcast_ms`].
    pub(super) fn note_new_bytes(&mut self, size: usize) {
        self.new_bytes_since_broadcast = self.new_bytes_since_broadcast.saturating_add(size);
        let early = self.config.early_broadcast_bytes;
        if early > 0 && self.new_bytes_since_broadcast >= early {
            self.broadcast_at = Some(self.now);
        }
        let quiet = self.config.quiet_broadcast_ms;
        if quiet > 0 {
            self.quiet_broadcast_at = Some(self.now.plus_millis(quiet));
        }
    }

    pub(super) fn broadcast(&mut self) {
        let max = self.config.max_message_size as usize;
        let now = secs(self.now);
        let interval_ms = self.config.broadcast_interval_ms;
        let mut sends = Vec::new();
        let mut held_back = false;
        self.new_bytes_since_broadcast = 0;
        for (peer, p) in self.peers.iter_mut() {
            if !p.handshaken {
                continue;
            }
            if self.now >= p.cycle_started.plus_millis(interval_ms) {
                p.cycle_started = self.now;
                p.cycle_packets = 0;
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
                .unwrap_or(usize::MAX)
                .saturating_sub(p.cycle_packets);
            if budget == 0 {
                held_back |= !p.pending.is_empty();
                continue;
            }
            let mut packets = 0usize;
            let mut body = Encoder::new();
            let mut count = 0usize;
            let mut sent = Vec::new();
            // What the peer can take now; the rest stays queued.
            let mut eligible: Vec<(u64, Slot)> = p
                .pending
                .iter()
                .filter_map(|&slot| {
                    let e = self.pool.get(slot)?;
                    let ok = e.expiry >= now
                        && e.pow >= p.pow_requirement
                        && (p.full_node || p.bloom.matches(&topic_to_bloom(e.topic)));
                    ok.then(|| (hash_prefix(&e.hash), slot))
                })
                .collect();
            // In hash order, as a pool walk would find them (full hashes settle equal prefixes).
            let pool = &self.pool;
            eligible.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    let hash = |s| pool.get(s).map(|e| e.hash);
                    hash(a.1).cmp(&hash(b.1))
                })
            });
            for (_, slot) in eligible {
                let Some(e) = self.pool.get(slot) else {
                    continue;
                };
                if count > 0 && body.as_slice().len() + e.raw.len() + 9 > max {
                    sends.push((*peer, std::mem::take(&mut body)));
                    packets += 1;
                    count = 0;
                }
                if packets >= budget {
                    held_back = true;
                    break;
                }
                body.raw(&e.raw);
                count += 1;
                sent.push(slot);
                self.stats.envelopes_sent += 1;
            }
            // Sent = known to the peer: never offered again.
            for slot in &sent {
                p.pending.remove(slot);
            }
            if count > 0 {
                sends.push((*peer, body));
                packets += 1;
            }
            p.cycle_packets += packets;
        }
        // What a peer's budget held back goes when its cycle allows more.
        if held_back && self.broadcast_at.is_none() {
            self.broadcast_at = Some(self.now.plus_millis(interval_ms));
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

    pub(super) fn send_to_handshaken(&mut self, code: u64, payload: &[u8]) {
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

    /// Changes the largest envelope we accept and send (Go `SetMaxMessageSize`: at most
    /// [`MAX_SETTABLE_MESSAGE_SIZE_BYTES`]). Peers are not told: Whisper v6 has no packet for it.
    pub fn set_max_message_size(&mut self, size: u32) -> Result<(), WhisperError> {
        if size > MAX_SETTABLE_MESSAGE_SIZE_BYTES {
            return Err(WhisperError::MessageSizeTooLarge {
                size,
                max: MAX_SETTABLE_MESSAGE_SIZE_BYTES,
            });
        }
        self.config.max_message_size = size;
        Ok(())
    }

    /// Replaces our bloom (`None` = full node): tells every peer (code 3); the previous bloom
    /// stays accepted for [`Config::tolerance_ms`] (Go `SetBloomFilter`).
    pub fn set_bloom(&mut self, now: Time, bloom: Option<Bloom>) {
        self.advance(now);
        self.change_bloom(bloom);
    }

    pub(super) fn change_bloom(&mut self, bloom: Option<Bloom>) {
        if bloom == self.bloom {
            return;
        }
        let until = self.now.plus_millis(self.config.tolerance_ms);
        self.bloom_tolerance = Some((self.bloom, until));
        self.bloom = bloom;
        let payload = encode_bloom_filter(&bloom.unwrap_or(Bloom::FULL));
        self.send_to_handshaken(codes::BLOOM_FILTER, &payload);
    }
}
