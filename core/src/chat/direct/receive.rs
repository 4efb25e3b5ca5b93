//! [`Conversations`]' transport input: status-go's receive pipeline (ProtocolMessage → MVDS →
//! application payload of either era → `c4`/`ChatMessage` or `g5`), acceptance (dedup, clock,
//! history) and the drop counters (module docs of [`super`]).

use super::*;

impl Conversations {
    // -----------------------------------------------------------------------------------------
    // Transport input.

    /// A payload Whisper decrypted on one of [`Self::listen_topics`]; `from` is the envelope's
    /// signer (unsigned envelopes are not passed: status-go requires the signature). Never
    /// fails: refused input is counted in [`Stats`].
    pub fn handle_incoming(&mut self, now: Time, from: &PublicKey, payload: &[u8], via: Via) {
        let mut b = Batch::default();
        self.incoming(now, from, payload, via, &mut b);
        self.flush(b);
    }

    pub(super) fn incoming(
        &mut self,
        now: Time,
        from: &PublicKey,
        payload: &[u8],
        via: Via,
        b: &mut Batch,
    ) {
        if payload.len() > self.config.max_incoming_bytes {
            self.stats.oversized += 1;
            return;
        }
        let pm = ProtocolMessage::decode(payload).ok().filter(|m| {
            m.bundle.is_some()
                || !m.bundles.is_empty()
                || !m.direct_message.is_empty()
                || !m.public_message.is_empty()
        });
        let Some(pm) = pm else {
            // status-go keeps the raw bytes when they are not a ProtocolMessage.
            if via == Via::ContactCode {
                self.stats.raw_on_contact_code += 1;
            } else {
                self.receive_plain(now, from, payload, b);
            }
            return;
        };
        let (persist, result) = self.security.decrypt(now, &mut self.rng, from, &pm);
        b.persists.extend(persist.into_iter().map(Record::Security));
        match result {
            Ok(Received::Direct(d)) => {
                if via == Via::ContactCode {
                    self.stats.ignored += 1;
                    return;
                }
                if let Some(_secret) = d.negotiated_secret {
                    self.note_negotiated(from, &d.installation_id, b);
                }
                if !d.plaintext.is_empty() {
                    self.receive_plain(now, from, &d.plaintext, b);
                }
            }
            Ok(Received::BundlesOnly) => {}
            Ok(Received::Public(_)) => self.stats.ignored += 1,
            Ok(Received::NotForThisDevice { reply }) => {
                self.stats.not_for_this_device += 1;
                if let Some(reply) = reply {
                    b.out.push(Action::Post {
                        topic: topics::partitioned_topic(from),
                        encryption: Encryption::Asymmetric { to: *from },
                        payload: reply.encode_to_vec(),
                    });
                }
            }
            Err(_) => self.stats.security_rejected += 1,
        }
    }

    /// Decrypted (or raw) bytes: an MVDS payload, else app bytes.
    pub(super) fn receive_plain(
        &mut self,
        now: Time,
        from: &PublicKey,
        bytes: &[u8],
        b: &mut Batch,
    ) {
        if let Ok(p) = mvds::decode_payload(bytes, self.config.mvds.numbering) {
            // MVDS ids are 32 bytes: an application wrapper read with the field numbers of
            // mvds ≥ v0.0.24 (1–4) would look like acks and offers of other lengths.
            let ids_ok = p
                .acks
                .iter()
                .chain(&p.offers)
                .chain(&p.requests)
                .all(|id| id.len() == 32);
            if p.is_valid() && ids_ok {
                self.mvds
                    .handle_decoded(now, peer_id_from_public_key(from), p);
                self.drain_mvds(now, b);
                return;
            }
        }
        self.receive_app(now, from, bytes, b);
    }

    /// Counts an application payload that did not decode, by reason.
    pub(in crate::chat) fn count_undecodable(&mut self, e: &ChatError) {
        match e {
            ChatError::BadSignature => self.stats.bad_wrapper_signature += 1,
            ChatError::Protobuf(_) => self.stats.undecodable_protobuf += 1,
            _ => self.stats.undecodable += 1,
        }
    }

    /// An application payload of either era (module [`crate::chat::app`]) from `signer`.
    pub(super) fn receive_app(
        &mut self,
        now: Time,
        signer: &PublicKey,
        bytes: &[u8],
        b: &mut Batch,
    ) {
        let app = match decode_app(bytes, signer) {
            Ok(app) => app,
            Err(e) => {
                self.count_undecodable(&e);
                return;
            }
        };
        if self.seen.contains(&app.id) {
            self.stats.duplicates += 1;
            return;
        }
        match app.record {
            AppRecord::Message(c4) => self.receive_c4(now, &app.author, app.id, app.format, c4, b),
            AppRecord::Membership(g5) => {
                self.receive_g5(now, &app.author, app.id, app.format, g5, b)
            }
            AppRecord::OtherTransit(_) => self.stats.ignored += 1,
        }
    }

    /// Notes the form a chat was just written in (`auto` answers in it).
    pub(in crate::chat) fn observe_format(
        &mut self,
        kind: ChatKind,
        chat: &str,
        format: PayloadFormat,
        b: &mut Batch,
    ) {
        if let Some(r) = self.formats.observe(kind, chat, format) {
            b.first.push(Record::ChatFormat(r));
        }
    }

    pub(super) fn receive_c4(
        &mut self,
        now: Time,
        author: &PublicKey,
        id: MessageId,
        format: PayloadFormat,
        c4: C4Message,
        b: &mut Batch,
    ) {
        match c4.message_type {
            MessageType::UserMessage => {
                // status-chat.md §3: incoming chat id = the signer; our own synced messages
                // name the recipient in content.chat-id.
                let chat = if *author == self.own {
                    match crate::chat::group::parse_member_id(&c4.content.chat_id) {
                        Ok(k) if k != self.own => c4.content.chat_id.clone(),
                        _ => {
                            self.stats.undecodable += 1;
                            return;
                        }
                    }
                } else {
                    crate::chat::group::member_id(author)
                };
                if let Some(m) = self.accept(now, &chat, false, author, id, &c4, b) {
                    if *author != self.own {
                        self.observe_format(ChatKind::Direct, &chat, format, b);
                    }
                    b.out.push(Action::Deliver(ChatEvent::Direct(m)));
                }
            }
            MessageType::GroupUserMessage => {
                self.receive_group_message(now, author, id, format, c4, b)
            }
            _ => self.stats.ignored += 1,
        }
    }

    /// Clock check, dedup, clock merge, history record. Returns the message to deliver.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::chat) fn accept(
        &mut self,
        now: Time,
        chat: &str,
        group: bool,
        author: &PublicKey,
        id: MessageId,
        c4: &C4Message,
        b: &mut Batch,
    ) -> Option<ChatMessage> {
        if self.seen.contains(&id) {
            self.stats.duplicates += 1;
            return None;
        }
        if !LamportClock::is_safe(c4.clock, now) {
            self.stats.unsafe_clock += 1;
            return None;
        }
        self.remember(id);
        if let Some(k) = self.clock_mut(chat) {
            k.observe(c4.clock, now);
        }
        let text = if c4.content.text.is_empty() {
            c4.text.clone()
        } else {
            c4.content.text.clone()
        };
        let message = ChatMessage {
            chat: chat.to_string(),
            from: author.serialize_uncompressed(),
            text,
            clock: c4.clock,
            timestamp_ms: c4.timestamp_ms,
            message_id: id,
        };
        b.first.push(Record::Message(StoredMessage {
            group,
            message: message.clone(),
        }));
        Some(message)
    }

    /// Records one of our own messages (history, dedup of its echo).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::chat) fn accept_own(
        &mut self,
        chat: &str,
        group: bool,
        text: &str,
        clock: u64,
        now: Time,
        id: MessageId,
        b: &mut Batch,
    ) {
        self.remember(id);
        b.first.push(Record::Message(StoredMessage {
            group,
            message: ChatMessage {
                chat: chat.to_string(),
                from: self.own.serialize_uncompressed(),
                text: text.to_string(),
                clock,
                timestamp_ms: now.as_millis(),
                message_id: id,
            },
        }));
    }
}
