//! The node's chat-layer rooms: public-chat input of both payload eras (and status-go
//! v0.36.0's public `ProtocolMessage`, whose bundles go to the security layer), the drop counters
//! by reason, and the per-chat payload-form command (module docs of [`super`]).

use super::*;

impl Node {
    /// [`Command::SetChatFormat`]: resolves the chat, then records the override.
    pub(super) fn set_chat_format(
        &mut self,
        chat: &ChatTarget,
        format: Option<FormatSetting>,
    ) -> Result<(), NodeError> {
        let (kind, id) = match chat {
            ChatTarget::Public(name) => {
                if !self.chats.is_joined(name) {
                    return Err(NodeError::UnknownChat(name.clone()));
                }
                (ChatKind::Public, name.clone())
            }
            ChatTarget::Direct(key) => (
                ChatKind::Direct,
                crate::chat::group::member_id(&contact_key(key)?),
            ),
            ChatTarget::Group(g) => {
                let c = &self.conversations;
                let id = if c.group(g).is_some() {
                    g.clone()
                } else {
                    let named: Vec<&str> = c
                        .groups()
                        .filter(|s| s.name() == g.as_str())
                        .map(|s| s.chat_id())
                        .collect();
                    match named.as_slice() {
                        [one] => one.to_string(),
                        _ => return Err(NodeError::UnknownChat(g.clone())),
                    }
                };
                (ChatKind::Group, id)
            }
        };
        self.conversations
            .set_chat_format(kind, &id, format)
            .map_err(NodeError::from)
    }

    /// The form of a chat (`transit`/`protobuf`) and the setting it comes from
    /// (`transit`/`protobuf`/`auto`); for `/chats`-like listings.
    pub fn chat_format(&self, chat: &ChatTarget) -> Option<(PayloadFormat, FormatSetting)> {
        let (kind, id) = match chat {
            ChatTarget::Public(name) => (ChatKind::Public, name.clone()),
            ChatTarget::Direct(key) => (
                ChatKind::Direct,
                crate::chat::group::member_id(&contact_key(key).ok()?),
            ),
            ChatTarget::Group(g) => (ChatKind::Group, g.clone()),
        };
        let c = &self.conversations;
        Some((c.payload_format(kind, &id), c.format_setting(kind, &id)))
    }

    /// A payload Whisper decrypted with the key of public chat `chat`: bare or wrapped
    /// application bytes of either era, or (status-go v0.36.0 `Messenger.Send`) a
    /// ProtocolMessage whose `public_message` holds them and whose bundles go to the security
    /// layer as a contact code's do. Every refusal is counted by reason (`public_*`).
    pub(super) fn receive_public(
        &mut self,
        now: Time,
        chat: &str,
        message: &whisper::ReceivedMessage,
    ) {
        let hash = message.envelope_hash;
        let Some(signer) = message.signer else {
            self.reject_public(&Rejected::Unsigned, &hash);
            return;
        };
        let wrapped = <ProtocolMessage as prost::Message>::decode(message.payload.as_slice())
            .ok()
            .filter(|pm| !pm.public_message.is_empty());
        let payload = match wrapped {
            Some(pm) => {
                let result = self
                    .conversations
                    .handle_public_protocol_message(now, &signer, &pm);
                // Its bundle records leave before anything that depends on them.
                self.drain_conversations(now);
                match result {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        self.stats.public_bundles_rejected += 1;
                        self.stats.messages_rejected += 1;
                        crate::log_drop!("chat", "public_bundles_rejected", Hex(&hash));
                        return;
                    }
                }
            }
            None => message.payload.clone(),
        };
        match self.chats.receive_payload(now, chat, &signer, &payload) {
            Ok((msg, format)) => {
                self.stats.messages_received += 1;
                if msg.from != self.chats.author() {
                    self.conversations.observe_public_format(chat, format);
                    self.drain_conversations(now);
                }
                self.actions
                    .push_back(Action::Persist(Persist::ChatMessage(msg.clone())));
                self.actions
                    .push_back(Action::Event(Event::MessageReceived(msg)));
            }
            Err(e) => self.reject_public(&e, &hash),
        }
    }

    /// Counts (by reason) and logs a public-chat payload that was not accepted.
    pub(super) fn reject_public(&mut self, e: &Rejected, envelope_hash: &[u8; 32]) {
        let s = &mut self.stats;
        let (counter, reason) = match e {
            Rejected::Duplicate => (&mut s.duplicates_dropped, "duplicate"),
            Rejected::Unsigned => (&mut s.public_unsigned, "public_unsigned"),
            Rejected::Decode(ChatError::BadSignature) => (
                &mut s.public_bad_wrapper_signature,
                "public_bad_wrapper_signature",
            ),
            Rejected::Decode(ChatError::Protobuf(_)) => (
                &mut s.public_undecodable_protobuf,
                "public_undecodable_protobuf",
            ),
            Rejected::Decode(_) => (&mut s.public_undecodable, "public_undecodable"),
            Rejected::NotAMessage => (&mut s.public_not_a_message, "public_not_a_message"),
            Rejected::WrongChat(_) => (&mut s.public_wrong_chat, "public_wrong_chat"),
            Rejected::UnsafeClock(_) => (&mut s.public_unsafe_clock, "public_unsafe_clock"),
            Rejected::NotJoined => (&mut s.public_not_joined, "public_not_joined"),
        };
        *counter += 1;
        // Duplicates are normal with gossip and counted apart from the rejections.
        if !matches!(e, Rejected::Duplicate) {
            s.messages_rejected += 1;
        }
        crate::log_drop!("chat", reason, Hex(envelope_hash));
    }
}
