//! Group messages that arrive before the membership update that makes them acceptable.
//!
//! A group message and the `g5` that adds its author (or that tells us of the group) are
//! separate Whisper envelopes, each sent pairwise: nothing orders them. A message for a group
//! we do not know yet, or from an author the group does not list yet, is held — at most
//! [`super::super::direct::ConversationsConfig::max_held_group_messages`], each for
//! `held_group_message_ttl_ms` — and handed to the normal acceptance path as soon as a
//! change of that group arrives. One that outlives its hold, or is pushed out by a newer one,
//! is dropped, counted (`group_held_dropped`) and logged with its message id. status-go drops
//! such a message at once (`matchMessage`); holding it loses nothing status-go would deliver.

use std::collections::VecDeque;

#[cfg(test)]
mod tests;

use secp256k1::PublicKey;

use super::super::app::PayloadFormat;
use super::super::direct::{Action, Batch, ChatEvent, Conversations, MessageId};
use super::super::format::ChatKind;
use super::super::group::member_id;
use super::super::transit::C4Message;
use crate::stats::Hex;
use crate::Time;

/// Group messages held at most (the oldest is dropped first).
pub const DEFAULT_MAX_HELD_GROUP_MESSAGES: usize = 1_000;
/// How long a group message waits for its group or its author's membership, ms. One hour
/// covers a membership update fetched late from a mailserver.
pub const DEFAULT_HELD_GROUP_MESSAGE_TTL_MS: u64 = 60 * 60 * 1000;

/// Why a message waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoldReason {
    /// No group with the message's chat id is known.
    UnknownGroup,
    /// The group does not list the author (yet).
    AuthorNotMember,
}

impl HoldReason {
    fn name(self) -> &'static str {
        match self {
            HoldReason::UnknownGroup => "group_held_unknown_group",
            HoldReason::AuthorNotMember => "group_held_author_not_member",
        }
    }
}

/// One held message, with what acceptance needs.
#[derive(Clone, Debug)]
pub(crate) struct HeldGroupMessage {
    pub(crate) until: Time,
    pub(crate) author: PublicKey,
    pub(crate) id: MessageId,
    pub(crate) format: PayloadFormat,
    pub(crate) c4: C4Message,
    pub(crate) reason: HoldReason,
}

/// Held messages, oldest first (the TTL is fixed, so also earliest expiry first).
#[derive(Clone, Debug, Default)]
pub(crate) struct HeldGroupMessages {
    queue: VecDeque<HeldGroupMessage>,
}

impl HeldGroupMessages {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.queue.iter().any(|m| m.id == *id)
    }

    pub(crate) fn next_expiry(&self) -> Option<Time> {
        self.queue.front().map(|m| m.until)
    }
}

/// What [`Conversations::group_message_verdict`] decided.
enum Verdict {
    Accept,
    Hold(HoldReason),
    /// We are not (or no longer) a member: nothing to wait for.
    NotForUs,
}

impl Conversations {
    fn group_message_verdict(&self, chat_id: &str, author: &PublicKey) -> Verdict {
        if !self.groups.contains_key(chat_id) {
            Verdict::Hold(HoldReason::UnknownGroup)
        } else if !self.is_group_member(chat_id, &self.own_id) {
            Verdict::NotForUs
        } else if !self.is_group_member(chat_id, &member_id(author)) {
            Verdict::Hold(HoldReason::AuthorNotMember)
        } else {
            Verdict::Accept
        }
    }

    /// A `group-user-message` (bare, or carried by a `g5` whose updates are merged already):
    /// accepted, held until its group or its author's membership arrives, or dropped.
    pub(in crate::chat) fn receive_group_message(
        &mut self,
        now: Time,
        author: &PublicKey,
        id: MessageId,
        format: PayloadFormat,
        c4: C4Message,
        b: &mut Batch,
    ) {
        match self.group_message_verdict(&c4.content.chat_id, author) {
            Verdict::Accept => self.accept_group_message(now, author, id, format, c4, b),
            Verdict::NotForUs => self.stats.group_not_member += 1,
            Verdict::Hold(reason) => {
                if self.held.contains(&id) {
                    self.stats.duplicates += 1;
                    return;
                }
                if self.config.max_held_group_messages == 0 {
                    self.drop_held(id, reason);
                    return;
                }
                while self.held.len() >= self.config.max_held_group_messages {
                    if let Some(old) = self.held.queue.pop_front() {
                        self.drop_held(old.id, old.reason);
                    }
                }
                self.stats.group_held += 1;
                self.held.queue.push_back(HeldGroupMessage {
                    until: now.plus_millis(self.config.held_group_message_ttl_ms),
                    author: *author,
                    id,
                    format,
                    c4,
                    reason,
                });
            }
        }
    }

    fn accept_group_message(
        &mut self,
        now: Time,
        author: &PublicKey,
        id: MessageId,
        format: PayloadFormat,
        c4: C4Message,
        b: &mut Batch,
    ) {
        let group = c4.content.chat_id.clone();
        if let Some(m) = self.accept(now, &group, true, author, id, &c4, b) {
            if *author != self.own {
                self.observe_format(ChatKind::Group, &group, format, b);
            }
            b.out.push(Action::Deliver(ChatEvent::Group {
                group_id: group,
                message: m,
            }));
        }
    }

    /// `chat_id` changed: its held messages that are acceptable now are accepted (after the
    /// change's own event, which the caller pushed first); the others keep waiting.
    pub(in crate::chat) fn release_held(&mut self, now: Time, chat_id: &str, b: &mut Batch) {
        if !self
            .held
            .queue
            .iter()
            .any(|m| m.c4.content.chat_id == chat_id)
        {
            return;
        }
        let (mine, mut rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.held.queue)
            .into_iter()
            .partition(|m| m.c4.content.chat_id == chat_id);
        for m in mine {
            match self.group_message_verdict(chat_id, &m.author) {
                Verdict::Accept => {
                    self.stats.group_released += 1;
                    self.accept_group_message(now, &m.author, m.id, m.format, m.c4, b);
                }
                Verdict::NotForUs => self.drop_held(m.id, m.reason),
                Verdict::Hold(reason) => rest.push_back(HeldGroupMessage { reason, ..m }),
            }
        }
        rest.make_contiguous().sort_by_key(|m| m.until);
        self.held.queue = rest;
    }

    /// Drops held messages whose hold ended by `now`.
    pub(in crate::chat) fn expire_held(&mut self, now: Time) {
        while self.held.queue.front().is_some_and(|m| m.until <= now) {
            if let Some(m) = self.held.queue.pop_front() {
                self.drop_held(m.id, m.reason);
            }
        }
    }

    fn drop_held(&mut self, id: MessageId, reason: HoldReason) {
        self.stats.group_held_dropped += 1;
        crate::log_drop!("chat", reason.name(), Hex(&id));
    }
}
