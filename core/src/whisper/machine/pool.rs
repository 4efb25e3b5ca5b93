//! The envelope pool: validation of received envelopes (whisper-v6.md §9), deduplication,
//! expiry and eviction.
//!
//! Contract:
//! - Each envelope of a Messages packet is checked in Go's order: clock (from the future beyond
//!   the drift, or very old → dropped, peer kept; merely expired → dropped), size, then PoW and
//!   bloom (→ the peer is disconnected after the whole packet). Every drop is counted in
//!   [`Stats`].
//! - Duplicates are recognised by their exact bytes before any hashing or decoding.
//! - Eviction when a bound ([`Config::max_envelopes`], [`Config::max_pool_bytes`]) is reached:
//!   the envelope expiring soonest goes first; a newcomer that expires no later than it is
//!   dropped instead (nothing is evicted then).
//! - Expired envelopes leave the pool at the next expiry check, and with it every gossip queue.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct Pooled {
    pub(super) env: Envelope,
    /// The envelope's RLP (as received, or our post's encoding); gossip copies it instead of
    /// re-encoding per peer, and duplicates are compared with it.
    pub(super) raw: Box<[u8]>,
    pub(super) pow: f64,
    pub(super) bloom: Bloom,
}

/// One envelope of a Messages packet.
pub(super) enum Incoming<'a> {
    /// Byte-identical to this pooled envelope.
    Pooled([u8; 32]),
    /// Not pooled: decoded, with its hash and bytes.
    New(Envelope, [u8; 32], &'a [u8]),
}

/// Cheap fingerprint of an envelope's RLP for duplicate lookup: its last 8 bytes, the end of
/// the nonce (a sealed nonce starts at a random value). Colliding envelopes (a peer may craft
/// equal nonces) are told apart by comparing bytes, so a collision costs time, never accuracy.
pub(super) fn raw_fingerprint(raw: &[u8]) -> u64 {
    let tail = raw.get(raw.len().saturating_sub(8)..).unwrap_or_default();
    tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// What happened to one envelope offered to the pool.
pub(super) enum Added {
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

impl Whisper {
    /// Splits a Messages packet into envelopes already pooled (found by their bytes) and new
    /// ones (decoded and hashed). Any undecodable item fails the whole packet, as before.
    pub(super) fn decode_packet<'a>(
        &self,
        payload: &'a [u8],
    ) -> Result<Vec<Incoming<'a>>, WhisperError> {
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
    pub(super) fn pooled_hash_of(&self, raw: &[u8]) -> Option<[u8; 32]> {
        let fp = raw_fingerprint(raw);
        self.by_fingerprint
            .range((fp, [0u8; 32])..=(fp, [0xff; 32]))
            .find(|(_, h)| self.pool.get(h).is_some_and(|p| *p.raw == *raw))
            .map(|(_, h)| *h)
    }

    pub(super) fn handle_messages(&mut self, peer: PeerKey, payload: &[u8]) {
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
                    None => continue,
                },
            };
            if self.config.rate_limits.topic_envelopes_per_sec > 0 && !self.admit_topic(peer, topic)
            {
                if !self.peers.contains_key(&peer) {
                    return; // disconnected for too many violations
                }
                continue;
            }
            let added = match incoming {
                Incoming::New(env, hash, raw) => self.add(env, hash, raw, Some(peer)),
                Incoming::Pooled(hash) => self.add_pooled(hash, peer),
            };
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

    pub(super) fn pow_accepted(&self, pow: f64) -> bool {
        if pow >= self.config.min_pow {
            return true;
        }
        matches!(self.pow_tolerance, Some((old, until)) if self.now < until && pow >= old)
    }

    pub(super) fn bloom_accepted(&self, sample: &Bloom) -> bool {
        if crate::whisper::bloom::bloom_match(self.bloom.as_ref(), sample) {
            return true;
        }
        matches!(&self.bloom_tolerance, Some((old, until))
            if self.now < *until && crate::whisper::bloom::bloom_match(old.as_ref(), sample))
    }

    /// Go `add`'s clock checks: `Some` if the envelope is from the future or expired.
    pub(super) fn clock_check(&mut self, sent: u32, expiry: u32, hash: [u8; 32]) -> Option<Added> {
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
    pub(super) fn add_pooled(&mut self, hash: [u8; 32], from: PeerKey) -> Added {
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
    pub(super) fn add(
        &mut self,
        env: Envelope,
        hash: [u8; 32],
        raw: &[u8],
        from: Option<PeerKey>,
    ) -> Added {
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
    pub(super) fn remove_pooled(&mut self, expiry: u32, hash: &[u8; 32]) {
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
    pub(super) fn make_room(&mut self, env: &Envelope, hash: [u8; 32]) -> bool {
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

    pub(super) fn expiry_deadline(&self) -> Option<Time> {
        let (exp, _) = self.by_expiry.first()?;
        // An envelope is expired once now_secs > expiry, i.e. from (expiry + 1) s.
        let due = Time::from_secs(u64::from(*exp) + 1);
        let earliest = self
            .last_expiry_check
            .plus_millis(self.config.expiry_check_interval_ms);
        Some(due.max(earliest))
    }

    pub(super) fn expire(&mut self) {
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
}
