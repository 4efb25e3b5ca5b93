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
        let Some(signer) = message.signer else {
            self.reject_public(&Rejected::Unsigned);
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
            Err(Rejected::Duplicate) => self.stats.duplicates_dropped += 1,
            Err(e) => self.reject_public(&e),
        }
    }

    pub(super) fn reject_public(&mut self, e: &Rejected) {
        let s = &mut self.stats;
        s.messages_rejected += 1;
        match e {
            Rejected::Unsigned => s.public_unsigned += 1,
            Rejected::Decode(ChatError::BadSignature) => s.public_bad_wrapper_signature += 1,
            Rejected::Decode(ChatError::Protobuf(_)) => s.public_undecodable_protobuf += 1,
            Rejected::Decode(_) => s.public_undecodable += 1,
            Rejected::NotAMessage => s.public_not_a_message += 1,
            Rejected::WrongChat(_) => s.public_wrong_chat += 1,
            Rejected::UnsafeClock(_) => s.public_unsafe_clock += 1,
            Rejected::NotJoined => s.public_not_joined += 1,
            // Counted apart (duplicates_dropped); unreachable here.
            Rejected::Duplicate => s.duplicates_dropped += 1,
        }
    }
}
