//! [`Conversations`]' payload-form API (module [`crate::chat::format`]) and the public-chat
//! ProtocolMessage of status-go v0.36.0 `Messenger.Send`.

use super::*;

impl Conversations {
    // -----------------------------------------------------------------------------------------
    // Payload forms (module [`crate::chat::format`]) and the public-chat ProtocolMessage.

    /// The application-layer form sent in a chat now.
    pub fn payload_format(&self, kind: ChatKind, chat: &str) -> PayloadFormat {
        self.formats.format(kind, chat)
    }

    /// The form setting in force for a chat (its override, else the node-wide one).
    pub fn format_setting(&self, kind: ChatKind, chat: &str) -> FormatSetting {
        self.formats.setting(kind, chat)
    }

    /// Overrides (or with `None` clears the override of) the form sent in a chat. Persisted.
    pub fn set_chat_format(
        &mut self,
        kind: ChatKind,
        chat: &str,
        setting: Option<FormatSetting>,
    ) -> Result<(), ConversationError> {
        let r: ChatFormat = self
            .formats
            .set_override(kind, chat, setting)
            .map_err(|_| ConversationError::LimitReached("chat formats"))?;
        let mut b = Batch::default();
        b.first.push(Record::ChatFormat(r));
        self.flush(b);
        Ok(())
    }

    /// A public-chat message written by someone else was accepted in `format`: `auto` answers
    /// the chat in it. Persisted when it changes what is known.
    pub fn observe_public_format(&mut self, chat: &str, format: PayloadFormat) {
        let mut b = Batch::default();
        self.observe_format(ChatKind::Public, chat, format, &mut b);
        self.flush(b);
    }

    /// A ProtocolMessage with a `public_message` received on a public-chat topic (status-go
    /// v0.36.0 `Messenger.Send`: `BuildPublicMessage` adds the installation id and the sender's
    /// bundle). Its bundles are verified and stored exactly as a contact code's are (status-go
    /// `HandleMessage` processes the bundles of every ProtocolMessage); returns the
    /// `public_message` bytes, or the security layer's refusal (a bad bundle refuses the whole
    /// message, as in status-go).
    pub fn handle_public_protocol_message(
        &mut self,
        now: Time,
        from: &PublicKey,
        pm: &ProtocolMessage,
    ) -> Result<Vec<u8>, SecurityError> {
        let (persist, result) = self.security.decrypt(now, &mut self.rng, from, pm);
        let mut b = Batch::default();
        b.persists.extend(persist.into_iter().map(Record::Security));
        self.flush(b);
        match result? {
            Received::Public(bytes) => Ok(bytes),
            _ => Err(SecurityError::NoKeySpecified),
        }
    }
}
