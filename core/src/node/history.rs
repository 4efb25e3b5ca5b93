//! Mailserver history requests (whisper-v6.md §10): sending one to a connected mailserver,
//! and following its cursor page by page until it ends or `max_history_pages` is reached.

use super::*;

impl Node {
    /// Asks a mailserver for a public chat's history (joining the chat first if needed):
    /// envelopes sent since `since_secs` (default: now − `history_window_secs`) up to now, from
    /// `mailserver` (default: the first connected one of [`NodeConfig::mailservers`]). The
    /// messages arrive as [`Event::MessageReceived`]; each page ends with
    /// [`Event::HistoryRequestCompleted`]. (A method rather than a [`Command`] variant so that
    /// exhaustive matches on `Command` elsewhere keep compiling.)
    pub fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
        mailserver: Option<NodePublicKey>,
    ) -> Result<(), NodeError> {
        self.observe(now);
        let result = self.request_history_inner(now, chat, since_secs, mailserver);
        self.pump(now);
        result
    }

    pub(super) fn request_history_inner(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
        mailserver: Option<NodePublicKey>,
    ) -> Result<(), NodeError> {
        self.join(chat)?;
        let conn = match mailserver {
            Some(key) => self.connection_of(&key),
            None => self
                .remotes
                .iter()
                .find(|(_, r)| self.config.mailservers.contains(r))
                .map(|(c, _)| *c),
        }
        .ok_or(NodeError::NoMailserver)?;
        let now_secs = now.as_secs();
        let lower = since_secs.unwrap_or(now_secs.saturating_sub(self.config.history_window_secs));
        let clamp = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        let request = RequestPayload {
            lower: clamp(lower),
            upper: clamp(now_secs),
            bloom: PublicChats::subscription(chat).topic.bloom(),
            limit: self.config.history_limit,
            cursor: Vec::new(),
            batch: true,
        };
        self.send_history_request(now, conn, request, 1)
    }

    pub(super) fn send_history_request(
        &mut self,
        now: Time,
        conn: ConnId,
        request: RequestPayload,
        pages: u32,
    ) -> Result<(), NodeError> {
        let encryption = match &self.config.mailserver_password {
            Some(pw) => {
                let key = *self
                    .mailserver_key
                    .get_or_insert_with(|| whisper::sym_key_from_password(pw.as_bytes()));
                whisper::Encryption::Symmetric(key)
            }
            None => {
                let remote = self.remotes.get(&conn).ok_or(NodeError::NoMailserver)?;
                let key = pubkey_from_wire(remote).map_err(|_| NodeError::InvalidRemoteKey)?;
                whisper::Encryption::Asymmetric(key)
            }
        };
        let request_id = self
            .whisper
            .request_history(now, conn, &request, &encryption)?;
        // Bound requests a silent mailserver never completes: forget the lowest request id.
        while self.history.len() >= MAX_PENDING_HISTORY_REQUESTS {
            self.history.pop_first();
        }
        self.history.insert(
            request_id,
            PendingHistory {
                conn,
                request,
                pages,
            },
        );
        self.actions
            .push_back(Action::Event(Event::HistoryRequestSent {
                conn,
                request_id,
            }));
        Ok(())
    }

    pub(super) fn history_completed(
        &mut self,
        now: Time,
        conn: ConnId,
        c: whisper::RequestCompletion,
    ) {
        self.stats.history_pages_completed += 1;
        let pending = self.history.remove(&c.request_id);
        let mut more = false;
        if let Some(p) = pending {
            if c.error.is_none() && !c.cursor.is_empty() && p.pages < self.config.max_history_pages
            {
                let mut next = p.request;
                next.cursor = c.cursor.clone();
                more = self
                    .send_history_request(now, p.conn, next, p.pages + 1)
                    .is_ok();
            }
        }
        self.actions
            .push_back(Action::Event(Event::HistoryRequestCompleted {
                conn,
                request_id: c.request_id,
                error: c.error,
                more,
            }));
    }
}
