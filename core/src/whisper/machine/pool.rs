//! The envelope pool: validation of received envelopes (whisper-v6.md §9), deduplication,
//! expiry and eviction.
//!
//! Contract:
//! - Each envelope of a Messages packet is checked in Go's order: clock (from the future beyond
//!   the drift, or very old → dropped, peer kept; merely expired → dropped), size, then PoW and
//!   bloom (→ the peer is disconnected after the whole packet). Every drop is counted in
//!   [`Stats`].
//! - Duplicates are recognised by their exact bytes before any hashing or decoding. A new
//!   envelope is read in place ([`EnvelopeView`]); its hash and PoW are computed from the
//!   received bytes, and the pool keeps one copy of them (no other copy of the data is made).
//! - Eviction when a bound ([`Config::max_envelopes`], [`Config::max_pool_bytes`]) is reached:
//!   the envelope expiring soonest goes first, except our own post while a peer still awaits
//!   it (not yet sent to a peer that can take it: evicting it would lose it); a newcomer that
//!   expires no later than every candidate is refused instead (nothing is evicted then). A
//!   refused received envelope is still delivered to the local filters (not forwarded); a
//!   refused own post is [`WhisperError::PoolFull`], for the caller to retry.
//! - Expired envelopes leave the pool at the next expiry check, and with it every gossip queue.

use super::*;

/// Pooled envelopes [`Whisper::make_room`] looks at, at most, for victims (it skips our own
/// posts a peer still awaits): bounds the work of one arrival into a full pool.
pub const MAX_EVICTION_SCAN: usize = 256;

/// One envelope of a Messages packet.
pub(super) enum Incoming<'a> {
    /// Byte-identical to the envelope pooled in this slot (when the packet was decoded).
    Pooled(Slot, &'a [u8]),
    /// Not pooled: decoded in place, with the fingerprint of its bytes and its digests.
    New(EnvelopeView<'a>, Fingerprint, Digests),
}

/// The two Keccaks of a received envelope, computed for a whole packet at once
/// ([`crate::keccak::keccak256_each`]: eight at a time where the CPU allows).
#[derive(Clone, Copy, Debug)]
pub(super) struct Digests {
    /// keccak256 of the envelope's bytes (its hash).
    pub(super) hash: [u8; 32],
    /// The PoW digest under [`PowFormula::Current`] (the legacy formula's is computed when
    /// needed: it hashes a hash first).
    pub(super) pow: Option<[u8; 32]>,
}

/// What happened to one envelope offered to the pool.
pub(super) enum Added {
    /// New and pooled.
    Pooled([u8; 32]),
    /// Already pooled.
    Duplicate([u8; 32]),
    /// Dropped without blame (expired, pool full), with the reason counted.
    Dropped([u8; 32], &'static str),
    /// Dropped for a clock disagreement (peer kept; Go `TimeSyncError`).
    TimeSync([u8; 32], &'static str),
    /// The sender misbehaved.
    Fault([u8; 32], PeerFault),
}

impl Whisper {
    /// Splits a Messages packet into envelopes already pooled (found by their bytes) and new
    /// ones (decoded in place). Any undecodable item fails the whole packet, as before.
    pub(super) fn decode_packet<'a>(
        &self,
        payload: &'a [u8],
    ) -> Result<Vec<Incoming<'a>>, WhisperError> {
        let item = Rlp::new(payload)?;
        let mut l = item.list()?;
        // Sized once (a malformed item is reported by the loop below, in order).
        let mut found = Vec::with_capacity(l.clone().count().unwrap_or(0));
        while let Some(e) = l.next_item()? {
            let raw = e.raw();
            found.push(match self.pool.find_bytes(raw) {
                Ok(slot) => Ok((slot, raw)),
                Err(fp) => Err((EnvelopeView::from_rlp(&e)?, fp)),
            });
        }
        // Every new envelope's hash (and PoW digest) in one batch: they do not depend on what
        // the pool decides about the others.
        let current = self.config.pow_formula == PowFormula::Current;
        let pow_inputs: Vec<_> = found
            .iter()
            .filter_map(|f| f.as_ref().err())
            .filter(|_| current)
            .map(|(view, _)| view.pow_input())
            .collect();
        let mut inputs: Vec<[&[u8]; 3]> = found
            .iter()
            .filter_map(|f| f.as_ref().err())
            .map(|(view, _)| [view.raw(), &[][..], &[][..]])
            .collect();
        let new = inputs.len();
        inputs.extend(pow_inputs.iter().map(|((header, len), items, nonce)| {
            [header.get(..*len).unwrap_or_default(), *items, &nonce[..]]
        }));
        let digests = crate::keccak::keccak256_each(&inputs);
        let (hashes, pows) = digests.split_at(new.min(digests.len()));
        let (mut hashes, mut pows) = (hashes.iter(), pows.iter());
        Ok(found
            .into_iter()
            .map(|f| match f {
                Ok((slot, raw)) => Incoming::Pooled(slot, raw),
                Err((view, fp)) => {
                    let digests = Digests {
                        hash: hashes.next().copied().unwrap_or_else(|| view.hash()),
                        pow: pows.next().copied(),
                    };
                    Incoming::New(view, fp, digests)
                }
            })
            .collect())
    }

    /// The slot still holding exactly `raw`, found when `removals` envelopes had been removed
    /// (an earlier envelope of the same packet may have evicted it since, and its slot may
    /// hold another envelope now).
    fn still_pooled(&self, slot: Slot, raw: &[u8], removals: u64) -> Option<&Pooled> {
        let p = self.pool.get(slot)?;
        (self.pool.removals() == removals || *p.raw == *raw).then_some(p)
    }

    pub(super) fn handle_messages(&mut self, peer: PeerKey, payload: &[u8]) {
        let removals = self.pool.removals();
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
                Incoming::New(view, _, _) => view.fields().topic,
                Incoming::Pooled(slot, raw) => match self.still_pooled(*slot, raw, removals) {
                    Some(p) => p.topic,
                    // Evicted by an earlier envelope of this packet: nothing left to learn.
                    None => {
                        self.stats.evicted_in_packet += 1;
                        // The hash is computed only when the drop log is on.
                        crate::log_drop!("whisper", "evicted_in_packet", Hex(&keccak256(raw)));
                        continue;
                    }
                },
            };
            self.count_class_received(&topic);
            if self.config.rate_limits.topic_envelopes_per_sec > 0 && !self.admit_topic(peer, topic)
            {
                if !self.peers.contains_key(&peer) {
                    return; // disconnected for too many violations
                }
                continue;
            }
            let added = match incoming {
                Incoming::New(view, fp, digests) => {
                    self.add(&view, Some(fp), Some(digests), Some(peer))
                }
                Incoming::Pooled(slot, raw) => self.add_pooled(slot, raw, peer),
            };
            // Each drop is counted where it is decided (`clock_check`, `add`); logged here.
            let dropped = match &added {
                Added::Pooled(_) => None,
                Added::Duplicate(hash) => Some(("duplicate", *hash)),
                Added::Dropped(hash, why) => Some((*why, *hash)),
                Added::TimeSync(hash, why) => Some((*why, *hash)),
                Added::Fault(hash, f) => Some((f.label(), *hash)),
            };
            if let Some((reason, hash)) = dropped {
                crate::log_drop!("whisper", reason, Hex(&hash));
            }
            match added {
                Added::Pooled(_) | Added::Duplicate(_) | Added::Dropped(..) => {}
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
            return Some(Added::Dropped(hash, "expired"));
        }
        None
    }

    /// [`Self::add`] for an envelope found pooled by its bytes: the same checks in the same
    /// order (a pooled envelope passed the size check; its clock checks may now fail).
    pub(super) fn add_pooled(&mut self, slot: Slot, raw: &[u8], from: PeerKey) -> Added {
        let Some((hash, expiry, sent)) = self.pool.get(slot).map(|p| (p.hash, p.expiry, p.sent))
        else {
            // Gone since it was found (callers check just before): a copy of a removed
            // envelope, counted as the duplicate it was.
            self.stats.duplicates += 1;
            return Added::Duplicate(keccak256(raw));
        };
        if let Some(verdict) = self.clock_check(sent, expiry, hash) {
            return verdict;
        }
        self.mark_known(from, slot);
        self.stats.duplicates += 1;
        Added::Duplicate(hash)
    }

    /// Validates and pools an envelope (Go `add`), read in place from its RLP (`fp`: the
    /// fingerprint of its bytes, `digests` its Keccaks, if already computed).
    pub(super) fn add(
        &mut self,
        view: &EnvelopeView<'_>,
        fp: Option<Fingerprint>,
        digests: Option<Digests>,
        from: Option<PeerKey>,
    ) -> Added {
        let hash = digests.map_or_else(|| view.hash(), |d| d.hash);
        let env = view.fields();
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
        // (Received envelopes were looked up by their bytes already; this catches a second
        // copy within one packet, and our own posts.)
        if let Some(slot) = self.pool.find_hash(&hash) {
            if let Some(p) = from {
                self.mark_known(p, slot);
            }
            self.stats.duplicates += 1;
            return Added::Duplicate(hash);
        }
        let diff = if sent > now { sent - now + 1 } else { 0 };
        let formula = self.config.pow_formula;
        let pow = match digests.and_then(|d| d.pow) {
            Some(digest) if formula == PowFormula::Current => {
                view.pow_from_digest(formula, &digest, diff)
            }
            _ => view.pow(formula, diff),
        };
        if !self.pow_accepted(pow) {
            self.stats.dropped_low_pow += 1;
            return Added::Fault(hash, PeerFault::LowPow);
        }
        // A full node (no bloom) with no previous bloom tolerated accepts every topic.
        let full = self.bloom.is_none() && self.bloom_tolerance.is_none();
        if from.is_some() && !full && !self.bloom_accepted(&env.bloom()) {
            self.stats.dropped_bloom += 1;
            return Added::Fault(hash, PeerFault::BloomMismatch);
        }
        if !self.make_room(env.expiry, env.size(), &hash) {
            // Valid, but the pool keeps nothing more now: not forwarded, yet still ours to
            // read (a burst larger than the pool must not lose what was sent to us).
            if let Some(peer) = from {
                self.deliver_received(view, hash, pow, diff);
                self.remember_known(hash, peer);
            }
            self.stats.pool_evictions += 1;
            return Added::Dropped(hash, "pool_full");
        }
        self.stats.envelopes_pooled += 1;
        self.count_class_pooled(&env.topic);
        let raw = view.raw();
        // Archive first: the driver commits the envelope before it reports the delivery.
        if let Some(archive) = self.archive.as_mut() {
            let raw = raw.to_vec();
            if archive.insert(env, hash, raw.clone()) {
                self.stats.archived += 1;
                self.actions.push_back(Action::Archive {
                    hash,
                    sent_secs: sent,
                    topic: env.topic,
                    raw,
                });
            }
        }
        // Our own posts are not offered to our own filters: the poster knows what it posted
        // (issue 14 item 5; the node reports its own messages as it sends them).
        if from.is_some() {
            self.deliver_received(view, hash, pow, diff);
        }
        let slot = self.pool.insert(
            Pooled {
                raw: raw.into(),
                hash,
                pow,
                expiry: env.expiry,
                sent,
                topic: env.topic,
                size: u32::try_from(env.size()).unwrap_or(u32::MAX),
                own: from.is_none(),
            },
            fp,
        );
        // Every peer but the sender is to be offered it.
        for (key, p) in self.peers.iter_mut() {
            if Some(*key) != from {
                p.pending.insert(slot);
            }
        }
        // Nor a peer known to have it from before (refused while full, or evicted since).
        if !self.known_unpooled.is_empty() {
            if let Some(senders) = self.known_unpooled.remove(&hash) {
                for peer in senders {
                    self.mark_known(peer, slot);
                }
            }
        }
        self.schedule_broadcast();
        self.note_new_bytes(env.size());
        Added::Pooled(hash)
    }

    /// `peer` has `hash`, which the pool does not hold: should it be pooled later, `peer` is
    /// not offered it.
    fn remember_known(&mut self, hash: [u8; 32], peer: PeerKey) {
        let senders = self.known_unpooled.entry(hash).or_default();
        if senders.is_empty() {
            self.known_unpooled_order.push_back(hash);
        }
        if !senders.contains(&peer) {
            senders.push(peer);
        }
        while self.known_unpooled_order.len() > MAX_KNOWN_UNPOOLED {
            if let Some(old) = self.known_unpooled_order.pop_front() {
                self.known_unpooled.remove(&old);
            }
        }
    }

    /// Offers a received envelope to the local filters (`diff`: the sent-time allowance its
    /// `pow` was computed with).
    fn deliver_received(&mut self, view: &EnvelopeView<'_>, hash: [u8; 32], pow: f64, diff: u32) {
        let p2p = self.config.light_node;
        let pow_no_allowance = if diff == 0 {
            pow
        } else {
            view.pow(self.config.pow_formula, 0)
        };
        self.deliver(view.fields(), hash, pow, pow_no_allowance, p2p);
    }

    /// True if `slot` is our own post waiting in the gossip queue of a peer that can take it:
    /// a peer still shaking hands, or one whose PoW requirement and bloom it meets (what the
    /// next broadcast sends). Such a post is not evicted: it would be lost to that peer.
    /// (Relayed envelopes may be: their author's node still has them.)
    fn awaits_gossip(&self, slot: Slot) -> bool {
        let Some(e) = self.pool.get(slot).filter(|e| e.own) else {
            return false;
        };
        let now = secs(self.now);
        self.peers.values().any(|p| {
            p.pending.contains(&slot)
                && (!p.handshaken
                    || (e.expiry >= now
                        && e.pow >= p.pow_requirement
                        && (p.full_node || p.bloom.matches(&topic_to_bloom(e.topic)))))
        })
    }

    /// Removes a pooled envelope from the pool, its indexes and every gossip queue.
    pub(super) fn remove_pooled(&mut self, slot: Slot) {
        self.pool.remove(slot);
        for p in self.peers.values_mut() {
            p.pending.remove(&slot);
        }
    }

    /// Evicts soonest-expiring envelopes until an envelope of `size` expiring at `expiry`
    /// fits both bounds; false (and nothing evicted) if that would evict an envelope expiring
    /// no earlier than it (ties: smaller hash first). Own posts a peer still awaits
    /// ([`Self::awaits_gossip`]) are skipped; at most [`MAX_EVICTION_SCAN`] are looked at.
    pub(super) fn make_room(&mut self, expiry: u32, size: usize, hash: &[u8; 32]) -> bool {
        if size > self.config.max_pool_bytes || self.config.max_envelopes == 0 {
            return false;
        }
        let mut count = self.pool.len();
        let mut bytes = self.pool.bytes();
        let mut victims = Vec::new();
        let mut it = self.pool.by_expiry();
        let key = (expiry, hash_prefix(hash));
        let mut scanned = 0usize;
        while count >= self.config.max_envelopes || bytes + size > self.config.max_pool_bytes {
            let Some((exp, prefix, slot)) = it.next() else {
                return false;
            };
            scanned += 1;
            if scanned > MAX_EVICTION_SCAN {
                return false;
            }
            let Some(victim) = self.pool.get(slot) else {
                return false;
            };
            let earlier = match (exp, prefix).cmp(&key) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => victim.hash < *hash,
            };
            if !earlier {
                return false;
            }
            if self.awaits_gossip(slot) {
                continue;
            }
            count -= 1;
            bytes -= victim.size as usize;
            victims.push(slot);
        }
        drop(it);
        for slot in victims {
            // Who has it (sent it to us, or was sent it) must not be offered it again.
            if let Some(hash) = self.pool.get(slot).map(|e| e.hash) {
                let knowers: Vec<PeerKey> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| !p.pending.contains(&slot))
                    .map(|(k, _)| *k)
                    .collect();
                for peer in knowers {
                    self.remember_known(hash, peer);
                }
            }
            self.remove_pooled(slot);
            self.stats.pool_evictions += 1;
        }
        true
    }

    /// The RLP and expiry (Unix seconds) of a pooled envelope (e.g. to persist our own post
    /// before it is gossiped).
    pub fn pooled_raw(&self, hash: &[u8; 32]) -> Option<(&[u8], u32)> {
        let p = self.pool.get(self.pool.find_hash(hash)?)?;
        Some((&p.raw, p.expiry))
    }

    /// Restart: pools again one of our own posts (its RLP, persisted before it was gossiped),
    /// to be gossiped like a new post. `Ok(false)` if expired or already pooled; an envelope
    /// the pool refuses (too large, PoW too low, full) is an error. No key is used again: the
    /// bytes are the ones sealed before the restart.
    pub fn repost_raw(&mut self, now: Time, raw: &[u8]) -> Result<bool, WhisperError> {
        self.advance(now);
        let view = EnvelopeView::decode(raw)?;
        if view.fields().expiry < secs(self.now) {
            return Ok(false);
        }
        match self.add(&view, None, None, None) {
            Added::Pooled(_) => Ok(true),
            Added::Duplicate(_) => Ok(false),
            Added::Fault(_, f) => Err(WhisperError::Rejected(Box::new(f))),
            Added::Dropped(_, "pool_full") => Err(WhisperError::PoolFull),
            Added::TimeSync(..) | Added::Dropped(..) => Err(WhisperError::Dropped),
        }
    }

    pub(super) fn expiry_deadline(&self) -> Option<Time> {
        let exp = self.pool.first_expiry()?;
        // An envelope is expired once now_secs > expiry, i.e. from (expiry + 1) s.
        let due = Time::from_secs(u64::from(exp) + 1);
        let earliest = self
            .last_expiry_check
            .plus_millis(self.config.expiry_check_interval_ms);
        Some(due.max(earliest))
    }

    pub(super) fn expire(&mut self) {
        self.last_expiry_check = self.now;
        let now = secs(self.now);
        while let Some((exp, _, slot)) = self.pool.soonest() {
            if exp >= now {
                break;
            }
            // Also leaves every gossip queue (Go `peer.expire`).
            self.remove_pooled(slot);
            self.stats.expired_from_pool += 1;
        }
    }
}
