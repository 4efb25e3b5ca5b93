//! Private group chats on [`Conversations`] (status-chat.md §3, §7): creating a group, adding
//! members, sending, and receiving `g5` records.
//!
//! Contract:
//! - A group is the union of its signed membership updates, folded by
//!   [`GroupState::fold`] (admin rules, signatures). Commands build a signed update with our
//!   identity and refuse (typed error, nothing changed) when the fold rejects it — e.g.
//!   [`GroupError::NotAdmin`].
//! - A membership change is a `g5` carrying **all** known updates and no message (status-go
//!   v0.36 `SendMembershipUpdate`; a member added later learns the whole history from it),
//!   sent to every member, including members it removes. A group text message is a bare
//!   `group-user-message` (Transit `c4`, or protobuf `ChatMessage` `PRIVATE_GROUP`) whose chat
//!   id is the group id, as status-go's `Messenger.Send`/`SendChatMessage` send it: v0.36.0
//!   cannot decode a `g5` that carries a message (its own encoder's output fails its
//!   decoder). Both go pairwise through the security layer to every member except us (our
//!   paired devices get their part of each 1:1 message), in the group's payload form
//!   ([`super::format`]; `g5` stays Transit, inside an `ApplicationMetadataMessage` in the
//!   protobuf form, as 4c0d8de sends it). Only members at sending time receive a message: a
//!   late joiner never gets earlier messages.
//! - Receiving: updates from a `g5` are merged into the known ones and folded; a group in
//!   which we are not a member is not stored; a `c4` carried by a `g5` from a non-member (of
//!   the merged state), with another chat id, or not a `group-user-message` is dropped. A bare
//!   `group-user-message` (either era) for a known group from a member is accepted; one for a
//!   group not known yet, or from an author the group does not list yet, is held until the
//!   update that makes it acceptable arrives (bounded, [`held`]). Membership
//!   changes are persisted ([`Record::Group`]) and delivered as [`ChatEvent::GroupUpdated`]
//!   before the message that depends on them. Every refusal is counted by reason in
//!   [`super::direct::Stats`] (`group_*`), including each event the fold skips.

pub mod held;
#[cfg(test)]
mod tests;

use secp256k1::PublicKey;

use super::app::{encode_membership, PayloadFormat};
use super::direct::{
    Action, Batch, ChatEvent, ConversationError, Conversations, MessageId, Record,
};
use super::format::ChatKind;
use super::group::{
    member_id, new_chat_id, GroupError, GroupEvent, GroupEventKind, GroupLimits, GroupState,
    MembershipUpdate, MembershipUpdateMessage,
};
use super::message_id;
use super::service::CONTENT_TYPE_TEXT;
use super::transit::{C4Content, C4Message, MessageType};
use crate::Time;

/// One group: its updates (deduplicated) and their fold.
#[derive(Clone, Debug)]
pub(crate) struct GroupChat {
    pub(crate) updates: Vec<MembershipUpdate>,
    pub(crate) state: GroupState,
    /// Events the fold skipped for a missing or malformed signature.
    pub(crate) bad_signatures: usize,
    /// Events the fold skipped for another reason.
    pub(crate) rejected: usize,
}

impl GroupChat {
    /// Folds `updates` (duplicates removed).
    pub(crate) fn fold(
        chat_id: &str,
        updates: Vec<MembershipUpdate>,
        limits: GroupLimits,
    ) -> Result<GroupChat, GroupError> {
        let mut unique: Vec<MembershipUpdate> = Vec::with_capacity(updates.len());
        for u in updates {
            if !unique.contains(&u) {
                unique.push(u);
            }
        }
        let folded = GroupState::fold(chat_id, &unique, limits)?;
        let bad_signatures = folded
            .rejected
            .iter()
            .filter(|r| matches!(r.error, GroupError::Unsigned | GroupError::BadSignature))
            .count();
        Ok(GroupChat {
            updates: unique,
            state: folded.state,
            rejected: folded.rejected.len() - bad_signatures,
            bad_signatures,
        })
    }

    fn g5(&self, message: Option<C4Message>) -> MembershipUpdateMessage {
        MembershipUpdateMessage {
            chat_id: self.state.chat_id().to_string(),
            updates: self.updates.clone(),
            message,
        }
    }

    fn record(&self) -> Record {
        Record::Group {
            chat_id: self.state.chat_id().to_string(),
            g5: self.g5(None).encode(),
        }
    }

    fn event(&self) -> ChatEvent {
        ChatEvent::GroupUpdated {
            group_id: self.state.chat_id().to_string(),
            members: self.state.members().iter().cloned().collect(),
            admins: self.state.admin_members().into_iter().collect(),
            name: self.state.name().to_string(),
        }
    }

    fn same_membership(&self, other: &GroupChat) -> bool {
        self.state.members() == other.state.members()
            && self.state.admin_members() == other.state.admin_members()
            && self.state.name() == other.state.name()
    }
}

impl Conversations {
    /// Groups we are in, by chat id.
    pub fn groups(&self) -> impl Iterator<Item = &GroupState> {
        self.groups.values().map(|g| &g.state)
    }

    /// One group.
    pub fn group(&self, chat_id: &str) -> Option<&GroupState> {
        self.groups.get(chat_id).map(|g| &g.state)
    }

    pub(super) fn is_group_member(&self, chat_id: &str, member: &str) -> bool {
        self.groups
            .get(chat_id)
            .is_some_and(|g| g.state.is_member(member))
    }

    /// Creates a group named `name` with us as admin and `members` added, and announces it to
    /// them. Returns the chat id (`uuid + "-0x" + pubhex(us)`, status-go's form).
    pub fn create_group(
        &mut self,
        now: Time,
        name: &str,
        members: &[PublicKey],
    ) -> Result<String, ConversationError> {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(ConversationError::InvalidName(name.to_string()));
        }
        if self.groups.len() >= self.config.max_groups {
            return Err(ConversationError::LimitReached("groups"));
        }
        let chat_id = new_chat_id(&mut self.rng, &self.own);
        let mut ids: Vec<String> = members
            .iter()
            .filter(|m| **m != self.own)
            .map(member_id)
            .collect();
        ids.sort();
        ids.dedup();
        let created = self.tick(now, &chat_id);
        let mut events = vec![
            GroupEvent {
                clock: created,
                // status-go v0.36 reads the admin from `member` (and signs it): always set it.
                kind: GroupEventKind::ChatCreated {
                    name: name.to_string(),
                    member: self.own_id.clone(),
                },
            },
            // The creator joins explicitly: status-go 4c0d8de delivers a group message only
            // when its sender has a `member-joined` event (v0.36.0 accepts the event too).
            GroupEvent {
                clock: self.tick(now, &chat_id),
                kind: GroupEventKind::MemberJoined {
                    member: self.own_id.clone(),
                },
            },
        ];
        if !ids.is_empty() {
            events.push(GroupEvent {
                clock: self.tick(now, &chat_id),
                kind: GroupEventKind::MembersAdded { members: ids },
            });
        }
        let update = MembershipUpdate::sign(&chat_id, events, &self.identity);
        let chat = self.checked_fold(&chat_id, vec![update])?;
        let mut b = Batch::default();
        self.install_group(now, chat, &mut b);
        // The group exists even if the announcement could not be queued: keep it.
        let sent = self.post_membership(now, &chat_id, &[], &mut b);
        self.flush(b);
        sent.map(|_| chat_id)
    }

    /// Adds `member` to `group` (we must be an admin) and sends the whole membership history to
    /// every member, the new one included.
    pub fn add_member(
        &mut self,
        now: Time,
        group: &str,
        member: &PublicKey,
    ) -> Result<(), ConversationError> {
        self.change_group(
            now,
            group,
            GroupEventKind::MembersAdded {
                members: vec![member_id(member)],
            },
        )
    }

    /// Renames `group` (admin only).
    pub fn rename_group(
        &mut self,
        now: Time,
        group: &str,
        name: &str,
    ) -> Result<(), ConversationError> {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(ConversationError::InvalidName(name.to_string()));
        }
        self.change_group(
            now,
            group,
            GroupEventKind::NameChanged {
                name: name.to_string(),
            },
        )
    }

    /// Removes `member` from `group` (an admin removing a non-admin).
    pub fn remove_member(
        &mut self,
        now: Time,
        group: &str,
        member: &PublicKey,
    ) -> Result<(), ConversationError> {
        self.change_group(
            now,
            group,
            GroupEventKind::MemberRemoved {
                member: member_id(member),
            },
        )
    }

    /// Makes members admins (admin only).
    pub fn add_admins(
        &mut self,
        now: Time,
        group: &str,
        members: &[PublicKey],
    ) -> Result<(), ConversationError> {
        self.change_group(
            now,
            group,
            GroupEventKind::AdminsAdded {
                members: members.iter().map(member_id).collect(),
            },
        )
    }

    /// Leaves `group`: an admin first drops its admin rights (`admin-removed`; refused with
    /// [`GroupError::LastAdmin`] if it is the last admin and others remain), then
    /// `member-removed` of ourselves, in one signed update sent to every member.
    pub fn leave_group(&mut self, now: Time, group: &str) -> Result<(), ConversationError> {
        let state = &self
            .groups
            .get(group)
            .ok_or_else(|| ConversationError::UnknownGroup(group.to_string()))?
            .state;
        let admin = state.is_admin(&self.own_id);
        // status-go's rules let the last admin go; we refuse, so that a group is not orphaned
        // by our own hand.
        if admin && state.admin_members().len() <= 1 && state.members().len() > 1 {
            return Err(GroupError::LastAdmin.into());
        }
        let me = self.own_id.clone();
        let mut kinds = Vec::new();
        if admin {
            kinds.push(GroupEventKind::AdminRemoved { member: me.clone() });
        }
        kinds.push(GroupEventKind::MemberRemoved { member: me });
        self.change_group_events(now, group, kinds)
    }

    /// Accepts an invitation to `group` (status-go `ConfirmJoiningGroup`): a `member-joined`
    /// event signed by us, sent to every member. status-go 4c0d8de delivers group messages only
    /// between members who have joined; v0.36.0 does not need it. Joining twice sends nothing.
    pub fn join_group(&mut self, now: Time, group: &str) -> Result<(), ConversationError> {
        let state = &self
            .groups
            .get(group)
            .ok_or_else(|| ConversationError::UnknownGroup(group.to_string()))?
            .state;
        if state.join_events().contains(&self.own_id) && state.is_member(&self.own_id) {
            return Ok(());
        }
        let member = self.own_id.clone();
        self.change_group(now, group, GroupEventKind::MemberJoined { member })
    }

    fn change_group(
        &mut self,
        now: Time,
        group: &str,
        kind: GroupEventKind,
    ) -> Result<(), ConversationError> {
        self.change_group_events(now, group, vec![kind])
    }

    fn change_group_events(
        &mut self,
        now: Time,
        group: &str,
        kinds: Vec<GroupEventKind>,
    ) -> Result<(), ConversationError> {
        let current = self
            .groups
            .get(group)
            .ok_or_else(|| ConversationError::UnknownGroup(group.to_string()))?;
        if current.updates.len() >= self.config.max_group_updates {
            return Err(ConversationError::LimitReached("group updates"));
        }
        let mut updates = current.updates.clone();
        let before_members = current.state.members().clone();
        let last_clock = current.state.last_clock();
        let mut events = Vec::with_capacity(kinds.len());
        let mut floor = last_clock;
        for kind in kinds {
            let clock = self.tick(now, group).max(floor.saturating_add(1));
            floor = clock;
            events.push(GroupEvent { clock, kind });
        }
        updates.push(MembershipUpdate::sign(group, events, &self.identity));
        let chat = self.checked_fold(group, updates)?;
        let mut b = Batch::default();
        self.install_group(now, chat, &mut b);
        // Removed members still learn of their removal.
        let extra: Vec<String> = before_members.into_iter().collect();
        let sent = self.post_membership(now, group, &extra, &mut b);
        self.flush(b);
        sent.map(|_| ())
    }

    /// Sends `text` to every member of `group`.
    pub fn send_group(
        &mut self,
        now: Time,
        group: &str,
        text: &str,
    ) -> Result<MessageId, ConversationError> {
        self.check_text(text)?;
        let chat = self
            .groups
            .get(group)
            .ok_or_else(|| ConversationError::UnknownGroup(group.to_string()))?;
        if !chat.state.is_member(&self.own_id) {
            return Err(ConversationError::NotMember(group.to_string()));
        }
        let clock = self.tick(now, group);
        let c4 = C4Message {
            text: text.to_string(),
            content_type: CONTENT_TYPE_TEXT.to_string(),
            message_type: MessageType::GroupUserMessage,
            clock,
            timestamp_ms: now.as_millis(),
            content: C4Content {
                chat_id: group.to_string(),
                text: text.to_string(),
                ..Default::default()
            },
        };
        let bytes = self.message_bytes(ChatKind::Group, group, &c4);
        let id = message_id(&self.own, &bytes);
        let to = self.group_recipients(group, &[]);
        let mut b = Batch::default();
        self.accept_own(group, true, text, clock, now, id, &mut b);
        let sent = self.post_to(now, id, to, bytes, &mut b);
        self.flush(b);
        sent.map(|()| id)
    }

    /// Fold that must accept every event (our own commands).
    fn checked_fold(
        &self,
        chat_id: &str,
        updates: Vec<MembershipUpdate>,
    ) -> Result<GroupChat, ConversationError> {
        let unique_len = updates.len();
        let folded = GroupState::fold(chat_id, &updates, self.config.group_limits)?;
        if let Some(r) = folded.rejected.into_iter().next() {
            return Err(r.error.into());
        }
        debug_assert!(unique_len == updates.len());
        Ok(GroupChat {
            updates,
            state: folded.state,
            bad_signatures: 0,
            rejected: 0,
        })
    }

    fn install_group(&mut self, now: Time, chat: GroupChat, b: &mut Batch) {
        b.first.push(chat.record());
        b.out.push(Action::Deliver(chat.event()));
        let chat_id = chat.state.chat_id().to_string();
        self.groups.insert(chat_id.clone(), chat);
        self.release_held(now, &chat_id, b);
    }

    /// Members of `group` and `extra` member ids, except us, as keys.
    fn group_recipients(&self, group: &str, extra: &[String]) -> Vec<PublicKey> {
        let mut to: Vec<PublicKey> = Vec::new();
        let Some(chat) = self.groups.get(group) else {
            return to;
        };
        for m in chat.state.members().iter().chain(extra) {
            if *m == self.own_id {
                continue;
            }
            if let Ok(k) = super::group::parse_member_id(m) {
                if !to.contains(&k) {
                    to.push(k);
                }
            }
        }
        to
    }

    /// Encodes the `g5` with all known updates (no message) in the group's form and
    /// dispatches it to every member and to `extra` member ids, except us.
    fn post_membership(
        &mut self,
        now: Time,
        group: &str,
        extra: &[String],
        b: &mut Batch,
    ) -> Result<MessageId, ConversationError> {
        let chat = self
            .groups
            .get(group)
            .ok_or_else(|| ConversationError::UnknownGroup(group.to_string()))?;
        let bytes = encode_membership(
            self.formats.format(ChatKind::Group, group),
            &chat.g5(None),
            &self.identity,
            self.config.wrap_messages,
        );
        let id = message_id(&self.own, &bytes);
        let to = self.group_recipients(group, extra);
        self.remember(id);
        self.post_to(now, id, to, bytes, b)?;
        Ok(id)
    }

    /// Dispatches one payload pairwise to `to` (listening on each negotiated topic first).
    fn post_to(
        &mut self,
        now: Time,
        id: MessageId,
        to: Vec<PublicKey>,
        bytes: Vec<u8>,
        b: &mut Batch,
    ) -> Result<(), ConversationError> {
        for k in &to {
            self.ensure_negotiated(k, b);
        }
        if to.is_empty() {
            return Ok(());
        }
        self.dispatch(now, id, to, bytes, b)
    }

    /// A received `g5` from `author` with message id `id`, in payload form `format`.
    pub(super) fn receive_g5(
        &mut self,
        now: Time,
        author: &PublicKey,
        id: MessageId,
        format: PayloadFormat,
        g5: MembershipUpdateMessage,
        b: &mut Batch,
    ) {
        let chat_id = g5.chat_id.clone();
        let existing = self.groups.get(&chat_id).cloned();
        let mut updates = existing
            .as_ref()
            .map(|g| g.updates.clone())
            .unwrap_or_default();
        let before = updates.len();
        for u in g5.updates {
            if !updates.contains(&u) {
                updates.push(u);
            }
        }
        let changed = updates.len() != before;
        let merged = if changed {
            if updates.len() > self.config.max_group_updates {
                self.stats.group_limit += 1;
                return;
            }
            match GroupChat::fold(&chat_id, updates, self.config.group_limits) {
                Ok(g) => g,
                Err(_) => {
                    self.stats.group_no_creator += 1;
                    return;
                }
            }
        } else {
            match existing.clone() {
                Some(g) => g,
                None => {
                    // No updates and no known group: nothing to fold.
                    self.stats.group_no_creator += 1;
                    return;
                }
            }
        };
        let known = existing.is_some();
        if !known && !merged.state.is_member(&self.own_id) {
            // Not our group: nothing stored.
            self.stats.group_unknown += 1;
            return;
        }
        if !known && self.groups.len() >= self.config.max_groups {
            self.stats.group_limit += 1;
            return;
        }
        if changed {
            // Count the events this message made the fold skip (not those skipped before).
            let (old_bad, old_rejected) = existing
                .as_ref()
                .map_or((0, 0), |e| (e.bad_signatures, e.rejected));
            self.stats.group_bad_signature += merged.bad_signatures.saturating_sub(old_bad) as u64;
            self.stats.group_events_rejected += merged.rejected.saturating_sub(old_rejected) as u64;
            b.first.push(merged.record());
            let announce = existing
                .as_ref()
                .is_none_or(|e| !e.same_membership(&merged));
            if announce {
                b.out.push(Action::Deliver(merged.event()));
            }
            self.groups.insert(chat_id.clone(), merged);
            self.release_held(now, &chat_id, b);
        }
        let author_id = member_id(author);
        if *author != self.own && self.is_group_member(&chat_id, &author_id) {
            self.observe_format(ChatKind::Group, &chat_id, format, b);
        }
        let Some(c4) = g5.message else {
            self.remember(id);
            return;
        };
        if c4.message_type != MessageType::GroupUserMessage || c4.content.chat_id != chat_id {
            self.stats.group_wrong_chat += 1;
            return;
        }
        self.receive_group_message(now, author, id, format, c4, b);
    }
}
