//! 1:1 and group traffic, and what the runner keeps of each node between crashes.
//!
//! Contract:
//! - [`Tracked`] wraps every host the runner builds. It passes every call through unchanged
//!   and, as the actions leave the host, copies into the shared [`Journal`]: the node's
//!   `Persist::Conversation` records and `Persist::ChatMessage`s (only when the scenario has
//!   `kept` crashes, which replay them: this is the simulator's copy of the driver's
//!   database), and the conversation events `Direct`, `Group`, `GroupUpdated`. It also sees
//!   the result of each `SendDirect`/`SendGroup` command: `Ok` means the node accepted the
//!   message (its records were emitted in the same drain), which is when the message counts
//!   as sent. A crashed host is inert: its timers are not run (a dead process does nothing).
//!   After a `kept` restart the wrapper replays the node's persisted public messages into the
//!   new host right after each chat's join ([`Host::restore_public_message`]).
//! - Messages are identified by their text, unique per planned message (`dm <pair>.<i> …`,
//!   `group <g>.<i> …`); the recipient's event gives the Status message id, reported in
//!   `messages.csv`.
//! - Expected recipients: a 1:1 message's other end; a group message's members (as the group's
//!   creator, its admin, last reported them in `GroupUpdated`) at the moment the author's node
//!   accepted it, except the author. A delivery anywhere else is a `non_recipient_delivery`
//!   (a privacy or correctness failure: it must be 0); a second delivery of one message at one
//!   node is a duplicate, unless the node lost its state in a restart since the first
//!   (`redeliveries_after_restart`).
//! - Latency: from acceptance at the author to the event at the recipient.

use crate::host::{Host, HostStats};
use crate::metrics::percentile_nearest_rank;
use hush_core::chat::direct::Record;
use hush_core::node::{
    Action, ChatMessage, Command, ConnId, Direction, Event, NodeError, NodePublicKey, Persist,
};
use hush_core::Time;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficKind {
    /// Public chat.
    Public,
    /// 1:1 message.
    Dm,
    /// Private-group message.
    Group,
}

impl TrafficKind {
    /// The name used in `summary.json` and `messages.csv`.
    pub fn name(self) -> &'static str {
        match self {
            TrafficKind::Public => "public",
            TrafficKind::Dm => "dm",
            TrafficKind::Group => "group",
        }
    }
}

/// One planned 1:1 or group message and its fate (a row of `messages.csv`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConversationRecord {
    /// 1:1 or group.
    pub kind: TrafficKind,
    /// The text (unique per planned message).
    pub text: String,
    /// The Status message id (hex), as the first recipient reported it.
    pub message_id: Option<String>,
    /// Author node.
    pub author: usize,
    /// `dm:<a>-<b>` (the pair, lower index first) or the group's name `group-<g>`.
    pub chat: String,
    /// Sent through MVDS.
    pub mvds: bool,
    /// Planned send time, ms since the start.
    pub planned_ms: u64,
    /// When the author's node accepted it (`None`: skipped or refused).
    pub sent_ms: Option<u64>,
    /// Expected recipients (set at acceptance).
    pub expected: Vec<usize>,
    /// Recipients reached, with the latency of each, in arrival order.
    pub received: Vec<(usize, u64)>,
    /// For 1:1: the other end.
    #[serde(skip)]
    recipient: Option<usize>,
    /// For groups: the group's index.
    #[serde(skip)]
    group: Option<usize>,
    /// Per receiving node: its lost-state restarts when it received the message.
    #[serde(skip)]
    received_in: BTreeMap<usize, u32>,
}

impl ConversationRecord {
    /// For 1:1: the recipient.
    pub fn recipient(&self) -> Option<usize> {
        self.recipient
    }
    /// For groups: the group's index (its name is `chat`).
    pub fn group_index(&self) -> Option<usize> {
        self.group
    }
    /// Mean latency over the recipients reached.
    pub fn latency_mean_ms(&self) -> Option<f64> {
        (!self.received.is_empty()).then(|| {
            self.received.iter().map(|&(_, l)| l as f64).sum::<f64>() / self.received.len() as f64
        })
    }
    /// Largest latency.
    pub fn latency_max_ms(&self) -> Option<u64> {
        self.received.iter().map(|&(_, l)| l).max()
    }
}

/// Delivery figures of one kind of traffic (`summary.json` `by_kind`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KindSummary {
    /// Messages the traffic generator planned.
    pub messages_planned: u64,
    /// Skipped because the author was offline or crashed.
    pub messages_skipped_offline: u64,
    /// Groups only: skipped because the group had not been created (its creator was down).
    pub messages_skipped_no_group: u64,
    /// Refused by the author's node (`handle_command` returned an error, e.g. a member that
    /// has not learned of its group yet).
    pub messages_refused: u64,
    /// Accepted by the author's node.
    pub messages_sent: u64,
    /// Σ over accepted messages of their expected recipients.
    pub deliveries_expected: u64,
    /// First receptions at expected recipients.
    pub deliveries: u64,
    /// `deliveries / deliveries_expected` (1 when nothing was expected).
    pub delivery_ratio: f64,
    /// A second reception of one message at one node (must be 0).
    pub duplicate_deliveries: u64,
    /// Receptions again after a restart that lost the node's state (public: after any restart
    /// whose node had no record of it).
    pub redeliveries_after_restart: u64,
    /// Receptions at a node that is not an expected recipient (must be 0; `null` for public
    /// chats, whose key anyone can derive from the name).
    pub non_recipient_deliveries: Option<u64>,
    /// Receptions of a text or id no planned message has.
    pub unknown_deliveries: u64,
    /// Median latency (nearest rank).
    pub latency_ms_p50: Option<u64>,
    /// 90th percentile latency.
    pub latency_ms_p90: Option<u64>,
    /// 99th percentile latency.
    pub latency_ms_p99: Option<u64>,
    /// Largest latency.
    pub latency_ms_max: Option<u64>,
}

impl KindSummary {
    /// Fills the ratio and the percentiles from the counts and `sorted` latencies.
    pub fn finish(&mut self, sorted: &[u64]) {
        self.delivery_ratio = if self.deliveries_expected == 0 {
            1.0
        } else {
            self.deliveries as f64 / self.deliveries_expected as f64
        };
        self.latency_ms_p50 = percentile_nearest_rank(sorted, 50);
        self.latency_ms_p90 = percentile_nearest_rank(sorted, 90);
        self.latency_ms_p99 = percentile_nearest_rank(sorted, 99);
        self.latency_ms_max = sorted.last().copied();
    }
}

/// A private group's state as the runner knows it.
#[derive(Clone, Debug)]
pub(crate) struct GroupState {
    pub name: String,
    pub creator: usize,
    /// Members at creation, creator first.
    pub initial: Vec<usize>,
    pub late: Vec<usize>,
    /// The id, from the creator's `GroupUpdated`.
    pub id: Option<String>,
    /// Members as the creator last reported them.
    pub members: Vec<usize>,
}

/// Everything the runner learns from the hosts beyond the engine's metrics.
#[derive(Default)]
pub(crate) struct Journal {
    start: Time,
    /// Keep `Persist::Conversation`/`ChatMessage` (the scenario has `kept` crashes).
    keep_persisted: bool,
    pub crashed: Vec<bool>,
    pub records: Vec<Vec<Record>>,
    pub public: Vec<Vec<ChatMessage>>,
    /// `Persist::OwnEnvelope`s per node: (expiry, raw), pooled again at a kept restart.
    pub own_envelopes: Vec<Vec<(u32, Vec<u8>)>>,
    /// Lost-state restarts per node.
    pub lost_restarts: Vec<u32>,
    key_index: BTreeMap<NodePublicKey, usize>,
    pub messages: Vec<ConversationRecord>,
    by_text: BTreeMap<String, usize>,
    pub groups: Vec<GroupState>,
    group_by_name: BTreeMap<String, usize>,
    dm: KindSummary,
    group: KindSummary,
    /// `GroupUpdated` events at nodes other than the creator.
    pub group_updates_received: u64,
}

/// The node key in a conversation id: `0x` + hex of the 65-byte (or 64-byte) public key.
fn key_of_id(id: &str) -> Option<NodePublicKey> {
    let hex_part = id.strip_prefix("0x").unwrap_or(id);
    let bytes = hex::decode(hex_part).ok()?;
    let raw: &[u8] = match bytes.len() {
        65 if bytes.first() == Some(&4) => bytes.get(1..)?,
        64 => &bytes,
        _ => return None,
    };
    raw.try_into().ok()
}

impl Journal {
    pub fn new(start: Time, nodes: usize, keep_persisted: bool) -> Journal {
        Journal {
            start,
            keep_persisted,
            crashed: vec![false; nodes],
            records: vec![Vec::new(); nodes],
            public: vec![Vec::new(); nodes],
            own_envelopes: vec![Vec::new(); nodes],
            lost_restarts: vec![0; nodes],
            ..Journal::default()
        }
    }

    /// `node`'s identity key is `key` (at spawn, and after a restart with a new key).
    pub fn set_key(&mut self, node: usize, key: NodePublicKey) {
        self.key_index.retain(|_, v| *v != node);
        self.key_index.insert(key, node);
    }

    /// Registers a group; returns its index.
    pub fn add_group(&mut self, g: GroupState) -> usize {
        let i = self.groups.len();
        self.group_by_name.insert(g.name.clone(), i);
        self.groups.push(g);
        i
    }

    /// Registers a planned message; returns its index.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        kind: TrafficKind,
        text: String,
        author: usize,
        chat: String,
        mvds: bool,
        planned_ms: u64,
        recipient: Option<usize>,
        group: Option<usize>,
    ) -> usize {
        let i = self.messages.len();
        self.by_text.insert(text.clone(), i);
        self.messages.push(ConversationRecord {
            kind,
            text,
            message_id: None,
            author,
            chat,
            mvds,
            planned_ms,
            sent_ms: None,
            expected: Vec::new(),
            received: Vec::new(),
            recipient,
            group,
            received_in: BTreeMap::new(),
        });
        self.counts(kind).messages_planned += 1;
        i
    }

    fn counts(&mut self, kind: TrafficKind) -> &mut KindSummary {
        match kind {
            TrafficKind::Group => &mut self.group,
            _ => &mut self.dm,
        }
    }

    /// Message `m` was not sent because its author was down.
    pub fn skipped_offline(&mut self, m: usize) {
        if let Some(kind) = self.messages.get(m).map(|r| r.kind) {
            self.counts(kind).messages_skipped_offline += 1;
        }
    }

    /// Group message `m` was not sent because its group has no id yet.
    pub fn skipped_no_group(&mut self, m: usize) {
        if let Some(kind) = self.messages.get(m).map(|r| r.kind) {
            self.counts(kind).messages_skipped_no_group += 1;
        }
    }

    /// `node`'s answer to a send command of `text` at `now`.
    fn on_send_result(&mut self, node: usize, now: Time, text: &str, accepted: bool) {
        let Some(&i) = self.by_text.get(text) else {
            return;
        };
        let Some(rec) = self.messages.get(i) else {
            return;
        };
        if rec.author != node {
            return;
        }
        let kind = rec.kind;
        if !accepted {
            self.counts(kind).messages_refused += 1;
            return;
        }
        let expected: Vec<usize> = match (rec.recipient, rec.group) {
            (Some(r), _) => vec![r],
            (None, Some(g)) => self
                .groups
                .get(g)
                .map(|g| g.members.iter().copied().filter(|&v| v != node).collect())
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let n = expected.len() as u64;
        let sent_ms = now.millis_since(self.start);
        if let Some(rec) = self.messages.get_mut(i) {
            rec.sent_ms = Some(sent_ms);
            rec.expected = expected;
        }
        let c = self.counts(kind);
        c.messages_sent += 1;
        c.deliveries_expected += n;
    }

    /// `node` delivered `message` (1:1 when `group_id` is `None`) at `now`.
    fn on_delivery(
        &mut self,
        now: Time,
        node: usize,
        group_id: Option<&str>,
        message: &ChatMessage,
    ) {
        let kind = if group_id.is_some() {
            TrafficKind::Group
        } else {
            TrafficKind::Dm
        };
        let Some(&i) = self.by_text.get(&message.text) else {
            self.counts(kind).unknown_deliveries += 1;
            return;
        };
        let lost = self.lost_restarts.get(node).copied().unwrap_or(0);
        let start = self.start;
        let Some(rec) = self.messages.get(i) else {
            return;
        };
        let group_ok = match (rec.group, group_id) {
            (None, None) => true,
            (Some(g), Some(id)) => self.groups.get(g).and_then(|g| g.id.as_deref()) == Some(id),
            _ => false,
        };
        let Some(sent_ms) = rec.sent_ms.filter(|_| group_ok && rec.kind == kind) else {
            // A message nobody accepted, or in the wrong conversation.
            self.counts(kind).unknown_deliveries += 1;
            return;
        };
        if !rec.expected.contains(&node) {
            let c = self.counts(kind);
            c.non_recipient_deliveries = Some(c.non_recipient_deliveries.unwrap_or(0) + 1);
            return;
        }
        let latency = now.millis_since(start).saturating_sub(sent_ms);
        let Some(rec) = self.messages.get_mut(i) else {
            return;
        };
        match rec.received_in.get(&node).copied() {
            None => {
                rec.received_in.insert(node, lost);
                rec.received.push((node, latency));
                if rec.message_id.is_none() {
                    rec.message_id = Some(hex::encode(message.message_id));
                }
                self.counts(kind).deliveries += 1;
            }
            Some(then) if then < lost => {
                rec.received_in.insert(node, lost);
                self.counts(kind).redeliveries_after_restart += 1;
            }
            Some(_) => self.counts(kind).duplicate_deliveries += 1,
        }
    }

    fn on_group_updated(&mut self, node: usize, group_id: &str, name: &str, members: &[String]) {
        let Some(&g) = self.group_by_name.get(name) else {
            return;
        };
        let idx: Vec<usize> = members
            .iter()
            .filter_map(|m| key_of_id(m).and_then(|k| self.key_index.get(&k).copied()))
            .collect();
        let Some(state) = self.groups.get_mut(g) else {
            return;
        };
        if node != state.creator {
            self.group_updates_received += 1;
            return;
        }
        if state.id.is_none() {
            state.id = Some(group_id.to_string());
        }
        if state.id.as_deref() == Some(group_id) {
            let mut idx = idx;
            idx.sort_unstable();
            idx.dedup();
            state.members = idx;
        }
    }

    /// The 1:1 and group summaries (only kinds the scenario has).
    pub fn summaries(&self) -> Vec<(TrafficKind, KindSummary)> {
        let mut out = Vec::new();
        for (kind, counts) in [
            (TrafficKind::Dm, &self.dm),
            (TrafficKind::Group, &self.group),
        ] {
            if counts.messages_planned == 0 && !self.messages.iter().any(|m| m.kind == kind) {
                continue;
            }
            let mut lat: Vec<u64> = self
                .messages
                .iter()
                .filter(|m| m.kind == kind)
                .flat_map(|m| m.received.iter().map(|&(_, l)| l))
                .collect();
            lat.sort_unstable();
            let mut s = counts.clone();
            s.non_recipient_deliveries = Some(s.non_recipient_deliveries.unwrap_or(0));
            s.finish(&lat);
            out.push((kind, s));
        }
        out
    }
}

/// A host as the runner drives it: the real one inside, the journal beside it.
pub(crate) struct Tracked<H> {
    pub inner: H,
    node: usize,
    journal: Rc<RefCell<Journal>>,
    /// The time of the current `handle_*` call (the time of the actions it leaves).
    now: Time,
    /// Public messages to replay after each chat's join (a `kept` restart).
    pending_public: Vec<ChatMessage>,
}

impl<H: Host> Tracked<H> {
    pub fn new(inner: H, node: usize, journal: Rc<RefCell<Journal>>, now: Time) -> Tracked<H> {
        Tracked {
            inner,
            node,
            journal,
            now,
            pending_public: Vec::new(),
        }
    }

    /// Replay these public messages after the joins.
    pub fn with_public(mut self, messages: Vec<ChatMessage>) -> Tracked<H> {
        self.pending_public = messages;
        self
    }

    fn crashed(&self) -> bool {
        self.journal
            .borrow()
            .crashed
            .get(self.node)
            .copied()
            .unwrap_or(false)
    }
}

impl<H: Host> Host for Tracked<H> {
    fn public_key(&self) -> NodePublicKey {
        self.inner.public_key()
    }
    fn set_topic_classes(&mut self, classes: hush_core::whisper::TopicClasses) {
        self.inner.set_topic_classes(classes)
    }
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError> {
        self.now = now;
        self.inner.handle_connection(now, conn, direction)
    }
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        self.now = now;
        self.inner.handle_bytes(now, conn, bytes)
    }
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        self.now = now;
        self.inner.handle_connection_closed(now, conn)
    }
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        self.now = now;
        let (text, join) = match &command {
            Command::SendDirect { text, .. } | Command::SendGroup { text, .. } => {
                (Some(text.clone()), None)
            }
            Command::JoinPublicChat { name } if !self.pending_public.is_empty() => {
                (None, Some(name.clone()))
            }
            _ => (None, None),
        };
        let result = self.inner.handle_command(now, command);
        if let Some(text) = text {
            self.journal
                .borrow_mut()
                .on_send_result(self.node, now, &text, result.is_ok());
        }
        if let (Some(chat), true) = (join, result.is_ok()) {
            let (mine, rest): (Vec<ChatMessage>, Vec<ChatMessage>) =
                std::mem::take(&mut self.pending_public)
                    .into_iter()
                    .partition(|m| m.chat == chat);
            for m in &mine {
                self.inner.restore_public_message(m);
            }
            self.pending_public = rest;
        }
        result
    }
    fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        if !self.crashed() {
            self.inner.handle_timeout(now)
        }
    }
    fn poll_action(&mut self) -> Option<Action> {
        let action = self.inner.poll_action()?;
        match &action {
            Action::Persist(Persist::Conversation(r)) => {
                let mut j = self.journal.borrow_mut();
                if j.keep_persisted {
                    if let Some(v) = j.records.get_mut(self.node) {
                        v.push(r.clone());
                    }
                }
            }
            Action::Persist(Persist::OwnEnvelope {
                expiry_secs, raw, ..
            }) => {
                let mut j = self.journal.borrow_mut();
                if j.keep_persisted {
                    let now_secs = u32::try_from(self.now.as_millis() / 1000).unwrap_or(u32::MAX);
                    if let Some(v) = j.own_envelopes.get_mut(self.node) {
                        // What the driver's store does: forget what has expired.
                        v.retain(|(exp, _)| *exp >= now_secs);
                        v.push((*expiry_secs, raw.clone()));
                    }
                }
            }
            Action::Persist(Persist::ChatMessage(m)) => {
                let mut j = self.journal.borrow_mut();
                if j.keep_persisted {
                    if let Some(v) = j.public.get_mut(self.node) {
                        v.push(m.clone());
                    }
                }
            }
            Action::Event(Event::Direct(m)) => self
                .journal
                .borrow_mut()
                .on_delivery(self.now, self.node, None, m),
            Action::Event(Event::Group { group_id, message }) => self
                .journal
                .borrow_mut()
                .on_delivery(self.now, self.node, Some(group_id), message),
            Action::Event(Event::GroupUpdated {
                group_id,
                members,
                name,
                ..
            }) => self
                .journal
                .borrow_mut()
                .on_group_updated(self.node, group_id, name, members),
            _ => {}
        }
        Some(action)
    }
    fn poll_timeout(&self) -> Option<Time> {
        if self.crashed() {
            None
        } else {
            self.inner.poll_timeout()
        }
    }
    fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
    ) -> Result<(), NodeError> {
        self.now = now;
        self.inner.request_history(now, chat, since_secs)
    }
    fn restore_archived(&mut self, raw: &[u8]) -> Result<bool, NodeError> {
        self.inner.restore_archived(raw)
    }
    fn stats(&self) -> HostStats {
        self.inner.stats()
    }
    fn restore_public_message(&mut self, message: &ChatMessage) {
        self.inner.restore_public_message(message)
    }
    fn restore_own_envelope(&mut self, now: Time, raw: &[u8]) -> Result<bool, NodeError> {
        self.inner.restore_own_envelope(now, raw)
    }
}

/// What a restart must rebuild: the records for [`Spawn`], the public messages and our own
/// envelopes to give back after.
pub(crate) fn restore_parts(
    journal: &Journal,
    node: usize,
) -> (Vec<Record>, Vec<ChatMessage>, Vec<Vec<u8>>) {
    (
        journal.records.get(node).cloned().unwrap_or_default(),
        journal.public.get(node).cloned().unwrap_or_default(),
        journal
            .own_envelopes
            .get(node)
            .map(|v| v.iter().map(|(_, raw)| raw.clone()).collect())
            .unwrap_or_default(),
    )
}
