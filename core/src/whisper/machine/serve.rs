//! Direct (P2P) messages and the mailserver (whisper-v6.md §10): serving history requests from
//! the archive, and the client side (requests, trusted peers, code 127/125).
//!
//! Contract: a mailserver answers a code-126 request (envelope or list form) with code-127
//! packets and a code-125 completion (an `ERROR=` completion if the request is refused).
//! A client trusts the peer it asked; code 127/125 from untrusted peers are counted and ignored;
//! direct envelopes skip the expiry and PoW checks (Go `postP2P`) and are deduplicated.

use super::*;

impl Whisper {
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

    pub(super) fn handle_p2p_messages(&mut self, peer: PeerKey, payload: &[u8]) {
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
            if self.pool.find_hash(&hash).is_some() || !self.p2p_seen.insert(hash) {
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
            self.deliver(env.view(), hash, pow, pow, true);
        }
    }

    /// Mailserver: a code-126 request (envelope form, then list form).
    pub(super) fn handle_p2p_request(&mut self, peer: PeerKey, payload: &[u8]) {
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
    pub(super) fn open_request(&self, env: &Envelope) -> Result<RequestPayload, WhisperError> {
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
    pub(super) fn serve(&mut self, peer: PeerKey, id: [u8; 32], req: RequestPayload) {
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

    pub(super) fn push_bundle(&mut self, peer: PeerKey, body: Encoder) {
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

    /// Mailserver restart: replays one persisted envelope (its RLP) into the archive without
    /// re-emitting [`Action::Archive`]. `Ok(false)` if already held.
    pub fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, WhisperError> {
        let archive = self.archive.as_mut().ok_or(WhisperError::NotMailserver)?;
        archive.insert_raw(raw)
    }
}

impl Whisper {
    /// Seals a message and sends it straight to `peer` as a P2P message (code 127), without
    /// pooling it and without our PoW check (Go `shh_post` with `targetPeer`). Returns the
    /// envelope hash.
    pub fn post_p2p(
        &mut self,
        now: Time,
        peer: PeerKey,
        params: &MessageParams,
        encryption: &Encryption,
    ) -> Result<[u8; 32], WhisperError> {
        self.advance(now);
        if !self.peers.contains_key(&peer) {
            return Err(WhisperError::UnknownPeer);
        }
        let env = self.seal(params, encryption)?;
        let hash = env.hash();
        self.send_p2p(now, peer, &env)?;
        Ok(hash)
    }
}
