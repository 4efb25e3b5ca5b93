//! Measurements: delivery, latency, traffic, and the run [`Summary`].
//!
//! Contract: [`Metrics`] sees every application [`Event`] the hosts emit and every byte the
//! engine moves. A message's send time is the time of its author's `MessageSent`; each
//! `MessageReceived` of that id at another node counts one delivery with latency `now − send
//! time`; a second `MessageReceived` of the same id at the same node counts as a duplicate (the
//! node promises exactly-once) and not as a delivery. Percentiles use the nearest-rank method.
//!
//! Per message ([`MessageRecord`]): author, chat, send time, expected receivers (the chat's
//! members other than the author, from [`Metrics::set_chat_members`]), receivers, latency
//! sum and maximum, and the first-spy estimate. After [`Metrics::on_restart`], a node that
//! receives again a message it had before its crash counts a `redelivery_after_restart`
//! (its persisted chat messages cannot be loaded back into the node yet), not a duplicate.
//!
//! History vs live (mailservers): a delivery counts as *history* when the receiving node has a
//! history request outstanding (between its `HistoryRequestSent` and the matching
//! `HistoryRequestCompleted`) **and** the bytes that produced it came from a mailserver
//! ([`Metrics::set_mailservers`]); every other delivery is *live*. A mailserver also relays
//! live gossip to its clients, so a live envelope it relays inside that short window is
//! counted as history; the window is one request round trip per return.
//!
//! First-spy estimator (privacy): the adversary holds the nodes marked by
//! [`Metrics::set_spies`]. For each message, the first spy to receive it (earliest
//! `MessageReceived`, ties by processing order) names as originator the neighbour whose
//! connection delivered the bytes that produced the event (the engine passes it as `source`).
//! Precision = correct guesses / messages guessed, over messages whose author is not a spy.

use hush_core::node::Event;
use hush_core::Time;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Width of one bucket of the delivery-over-time series.
pub const DELIVERY_BUCKET_MS: u64 = 1_000;

/// What the adversary concluded about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FirstSpy {
    /// The spy that received the message first.
    pub spy: usize,
    /// The neighbour it names as originator (`None`: the event had no delivering connection).
    pub guess: Option<usize>,
    /// When, ms since the start.
    pub at_ms: u64,
}

/// One message's fate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageRecord {
    /// Message id, hex.
    pub id: String,
    /// Author node.
    pub author: usize,
    /// Chat name.
    pub chat: String,
    /// Send time, ms since the start.
    pub sent_ms: u64,
    /// Members other than the author.
    pub expected: u64,
    /// Distinct members (other than the author) that received it.
    pub received: u64,
    /// Sum of delivery latencies, ms.
    pub latency_sum_ms: u64,
    /// Largest delivery latency, ms.
    pub latency_max_ms: Option<u64>,
    /// The adversary's conclusion, if a spy received it.
    pub first_spy: Option<FirstSpy>,
    /// Receivers so far, one bit per node.
    #[serde(skip)]
    receivers: Vec<u64>,
}

impl MessageRecord {
    fn has(&self, node: usize) -> bool {
        self.receivers
            .get(node / 64)
            .is_some_and(|w| w & (1 << (node % 64)) != 0)
    }
    fn set(&mut self, node: usize) {
        if let Some(w) = self.receivers.get_mut(node / 64) {
            *w |= 1 << (node % 64);
        }
    }
}

/// A message id (Status: keccak256(author key ‖ payload)).
pub type MessageId = [u8; 32];

/// Bytes one node wrote and read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeTraffic {
    /// Sum of the node's `Action::Send` lengths.
    pub bytes_up: u64,
    /// Bytes delivered to the node by `handle_bytes`.
    pub bytes_down: u64,
}

/// Counters and samples gathered during a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Author node and send time of every `MessageSent`, by id.
    sent: BTreeMap<MessageId, (usize, Time)>,
    /// One latency sample per delivery, in ms.
    pub latencies_ms: Vec<u64>,
    /// Count of `MessageSent` events.
    pub messages_sent: u64,
    /// `MessageReceived` at a node other than the author, first time for that node.
    pub deliveries: u64,
    /// `MessageReceived` for an id the node had already received.
    pub duplicate_deliveries: u64,
    /// `MessageReceived` at the author itself.
    pub self_deliveries: u64,
    /// `MessageReceived` of an id no node reported sending.
    pub unknown_deliveries: u64,
    /// `PeerConnected` events.
    pub peers_connected: u64,
    /// `PeerDisconnected` events.
    pub peers_disconnected: u64,
    /// Sum of all `Action::Send` lengths.
    pub bytes_sent_total: u64,
    /// Per node traffic, by node index.
    pub per_node: Vec<NodeTraffic>,
    /// Receptions, after a restart, of messages the node had received before it.
    pub redeliveries_after_restart: u64,
    /// Deliveries per [`DELIVERY_BUCKET_MS`] since the start.
    pub deliveries_per_bucket: Vec<u64>,
    /// Every message, in send order.
    pub messages: Vec<MessageRecord>,
    /// Index into `messages` by id.
    index: BTreeMap<MessageId, usize>,
    start: Time,
    chat_members: BTreeMap<String, u64>,
    spies: Vec<bool>,
    /// For restarted nodes: messages received in the current incarnation.
    since_restart: BTreeMap<usize, BTreeSet<usize>>,
    /// Deliveries counted as live (see the module docs).
    pub deliveries_live: u64,
    /// Deliveries counted as history (through a mailserver's response).
    pub deliveries_history: u64,
    /// `HistoryRequestSent` events (one per page requested).
    pub history_requests_sent: u64,
    /// `HistoryRequestCompleted` events.
    pub history_pages_completed: u64,
    /// `HistoryRequestCompleted` events carrying an error (the mailserver refused).
    pub history_requests_refused: u64,
    mailservers: Vec<bool>,
    /// Per node: request ids sent and not yet completed.
    history_outstanding: BTreeMap<usize, BTreeSet<[u8; 32]>>,
}

impl Metrics {
    /// Metrics for `nodes` nodes.
    pub fn new(nodes: usize) -> Metrics {
        Metrics {
            per_node: vec![NodeTraffic::default(); nodes],
            spies: vec![false; nodes],
            mailservers: vec![false; nodes],
            ..Metrics::default()
        }
    }

    /// The simulation start (delivery-over-time buckets and record times are relative to it).
    pub fn set_start(&mut self, start: Time) {
        self.start = start;
    }

    /// Chat `chat` has `members` members (expected receivers = members − 1 per message).
    pub fn set_chat_members(&mut self, chat: &str, members: u64) {
        self.chat_members.insert(chat.to_string(), members);
    }

    /// Marks the adversary's nodes.
    pub fn set_spies(&mut self, spies: &[usize]) {
        for &s in spies {
            if let Some(v) = self.spies.get_mut(s) {
                *v = true;
            }
        }
    }

    /// Marks the mailservers (deliveries whose bytes come from one may count as history).
    pub fn set_mailservers(&mut self, mailservers: &[usize]) {
        for &m in mailservers {
            if let Some(v) = self.mailservers.get_mut(m) {
                *v = true;
            }
        }
    }

    /// History requests `node` sent that have not completed yet.
    pub fn history_outstanding(&self, node: usize) -> usize {
        self.history_outstanding.get(&node).map_or(0, BTreeSet::len)
    }

    /// Whether `node` is a spy.
    pub fn is_spy(&self, node: usize) -> bool {
        self.spies.get(node).copied().unwrap_or(false)
    }

    /// `node` restarted after a crash.
    pub fn on_restart(&mut self, node: usize) {
        self.since_restart.insert(node, BTreeSet::new());
        // The new incarnation has no requests in flight.
        self.history_outstanding.remove(&node);
    }

    /// Node `node` emitted `event` at `now` (no delivering connection).
    pub fn on_event(&mut self, now: Time, node: usize, event: &Event) {
        self.on_event_from(now, node, event, None)
    }

    /// Node `node` emitted `event` at `now` while handling bytes from `source`.
    pub fn on_event_from(&mut self, now: Time, node: usize, event: &Event, source: Option<usize>) {
        match event {
            Event::MessageSent(m) => {
                self.messages_sent += 1;
                self.sent.entry(m.message_id).or_insert((node, now));
                if !self.index.contains_key(&m.message_id) {
                    let members = self.chat_members.get(&m.chat).copied().unwrap_or(0);
                    self.index.insert(m.message_id, self.messages.len());
                    self.messages.push(MessageRecord {
                        id: hex::encode(m.message_id),
                        author: node,
                        chat: m.chat.clone(),
                        sent_ms: now.millis_since(self.start),
                        expected: members.saturating_sub(1),
                        received: 0,
                        latency_sum_ms: 0,
                        latency_max_ms: None,
                        first_spy: None,
                        receivers: vec![0; self.per_node.len().div_ceil(64)],
                    });
                }
            }
            Event::MessageReceived(m) => match self.sent.get(&m.message_id) {
                None => self.unknown_deliveries += 1,
                Some(&(author, _)) if author == node => self.self_deliveries += 1,
                Some(&(author, sent_at)) => {
                    let Some(&i) = self.index.get(&m.message_id) else {
                        self.unknown_deliveries += 1;
                        return;
                    };
                    let rel_ms = now.millis_since(self.start);
                    let spy = self.is_spy(node) && !self.is_spy(author);
                    let Some(rec) = self.messages.get_mut(i) else {
                        return;
                    };
                    if spy && rec.first_spy.is_none() {
                        rec.first_spy = Some(FirstSpy {
                            spy: node,
                            guess: source,
                            at_ms: rel_ms,
                        });
                    }
                    let restarted = self.since_restart.get_mut(&node);
                    if !rec.has(node) {
                        rec.set(node);
                        if let Some(set) = restarted {
                            set.insert(i);
                        }
                        let latency = now.millis_since(sent_at);
                        rec.received += 1;
                        rec.latency_sum_ms += latency;
                        rec.latency_max_ms = Some(rec.latency_max_ms.unwrap_or(0).max(latency));
                        self.deliveries += 1;
                        let via_mailserver = source
                            .is_some_and(|s| self.mailservers.get(s).copied().unwrap_or(false));
                        let requesting = self
                            .history_outstanding
                            .get(&node)
                            .is_some_and(|r| !r.is_empty());
                        if via_mailserver && requesting {
                            self.deliveries_history += 1;
                        } else {
                            self.deliveries_live += 1;
                        }
                        self.latencies_ms.push(latency);
                        let bucket = usize::try_from(rel_ms / DELIVERY_BUCKET_MS).unwrap_or(0);
                        if self.deliveries_per_bucket.len() <= bucket {
                            self.deliveries_per_bucket.resize(bucket + 1, 0);
                        }
                        self.deliveries_per_bucket[bucket] += 1;
                    } else if let Some(set) = restarted.filter(|s| !s.contains(&i)) {
                        set.insert(i);
                        self.redeliveries_after_restart += 1;
                    } else {
                        self.duplicate_deliveries += 1;
                    }
                }
            },
            Event::HistoryRequestSent { request_id, .. } => {
                self.history_requests_sent += 1;
                self.history_outstanding
                    .entry(node)
                    .or_default()
                    .insert(*request_id);
            }
            Event::HistoryRequestCompleted {
                request_id, error, ..
            } => {
                self.history_pages_completed += 1;
                if error.is_some() {
                    self.history_requests_refused += 1;
                }
                if let Some(r) = self.history_outstanding.get_mut(&node) {
                    r.remove(request_id);
                }
            }
            Event::PeerConnected { .. } => self.peers_connected += 1,
            Event::PeerDisconnected { .. } => self.peers_disconnected += 1,
            _ => {}
        }
    }

    /// Node `node` wrote `len` bytes.
    pub fn on_send(&mut self, node: usize, len: usize) {
        self.bytes_sent_total += len as u64;
        if let Some(t) = self.per_node.get_mut(node) {
            t.bytes_up += len as u64;
        }
    }

    /// Node `node` was handed `len` bytes.
    pub fn on_receive(&mut self, node: usize, len: usize) {
        if let Some(t) = self.per_node.get_mut(node) {
            t.bytes_down += len as u64;
        }
    }

    /// First-spy estimator: `(messages guessed, correct guesses)` over messages not authored by
    /// a spy.
    pub fn first_spy_score(&self) -> (u64, u64) {
        self.messages
            .iter()
            .filter_map(|r| r.first_spy.map(|f| f.guess == Some(r.author)))
            .fold((0, 0), |(n, k), ok| (n + 1, k + u64::from(ok)))
    }

    /// Messages authored by a non-spy (those the adversary tries to attribute).
    pub fn messages_by_honest(&self) -> u64 {
        self.messages
            .iter()
            .filter(|r| !self.is_spy(r.author))
            .count() as u64
    }

    /// The latency samples, sorted ascending.
    pub fn sorted_latencies_ms(&self) -> Vec<u64> {
        let mut v = self.latencies_ms.clone();
        v.sort_unstable();
        v
    }
}

/// Nearest-rank percentile of `sorted` (ascending): the smallest sample such that at least
/// `percent`% of samples are ≤ it, i.e. `sorted[ceil(percent/100 × N) − 1]` (rank at least 1).
/// `None` for no samples. `percent` above 100 is treated as 100.
pub fn percentile_nearest_rank(sorted: &[u64], percent: u32) -> Option<u64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let p = u64::from(percent.min(100));
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// The outcome of one run (written as `summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The scenario's description.
    pub description: String,
    /// The master seed.
    pub seed: u64,
    /// Node count.
    pub nodes: usize,
    /// The flat `degree` field (the topology is in `topology`).
    pub degree: usize,
    /// The topology, in words.
    pub topology: String,
    /// Nodes per role.
    pub roles: BTreeMap<String, usize>,
    /// Edges of the overlay.
    pub links: usize,
    /// Members of the largest chat.
    pub members: usize,
    /// Send commands the traffic generator planned.
    pub messages_requested: u64,
    /// Planned sends skipped because the author was offline or crashed.
    pub messages_skipped_offline: u64,
    /// `MessageSent` events the nodes emitted.
    pub messages_sent: u64,
    /// Σ over sent messages of (members of its chat − 1).
    pub deliveries_expected: u64,
    /// First-time receptions at non-authors.
    pub deliveries: u64,
    /// `deliveries / deliveries_expected` (1 when nothing was expected).
    pub delivery_ratio: f64,
    /// Deliveries that arrived live (gossip), see `metrics` module docs.
    pub deliveries_live: u64,
    /// Deliveries that arrived in a mailserver's history response.
    pub deliveries_history: u64,
    /// `deliveries_live / deliveries_expected`: what the run delivered without the history
    /// responses (a lower bound of a run without mailserver; 1 when nothing was expected).
    pub delivery_ratio_live: f64,
    /// History pages requested (`HistoryRequestSent`).
    pub history_requests_sent: u64,
    /// History pages completed (`HistoryRequestCompleted`).
    pub history_pages_completed: u64,
    /// Completions carrying a mailserver's refusal.
    pub history_requests_refused: u64,
    /// Request attempts that found no connected mailserver (retried later).
    pub history_request_retries: u64,
    /// Returns whose requests were given up after `history.max_attempts`.
    pub history_requests_abandoned: u64,
    /// Envelopes in the mailservers' archives (the simulator's copy of `Persist::Envelope`).
    pub archived_envelopes: u64,
    /// Envelopes replayed into restarted mailservers.
    pub archive_restored: u64,
    /// Repeated receptions of one id at one node (a bug in the node).
    pub duplicate_deliveries: u64,
    /// Receptions after a restart of messages received before the crash.
    pub redeliveries_after_restart: u64,
    /// Receptions at the author itself.
    pub self_deliveries: u64,
    /// Receptions of ids nobody reported sending.
    pub unknown_deliveries: u64,
    /// Median delivery latency (nearest rank), `null` without deliveries.
    pub latency_ms_p50: Option<u64>,
    /// 90th percentile delivery latency.
    pub latency_ms_p90: Option<u64>,
    /// 99th percentile delivery latency (nearest rank).
    pub latency_ms_p99: Option<u64>,
    /// Largest delivery latency.
    pub latency_ms_max: Option<u64>,
    /// `PeerConnected` events (two per fully established link).
    pub peers_connected: u64,
    /// `PeerDisconnected` events.
    pub peers_disconnected: u64,
    /// Sum of all `Action::Send` lengths (p2p-layer bytes: RLPx frames incl. handshakes).
    pub bytes_sent_total: u64,
    /// Bytes that could not be delivered (the receiving end had closed).
    pub bytes_dropped: u64,
    /// Bytes on the wire, counting retransmissions and duplicated segments.
    pub wire_bytes: u64,
    /// Chunk losses (each one a retransmission delay).
    pub retransmits: u64,
    /// Chunks duplicated on the wire.
    pub duplicated_chunks: u64,
    /// Links closed by partitions, churn and crashes.
    pub links_cut: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Median per-node bytes sent.
    pub node_bytes_up_p50: Option<u64>,
    /// Largest per-node bytes sent.
    pub node_bytes_up_max: Option<u64>,
    /// Median per-node bytes received.
    pub node_bytes_down_p50: Option<u64>,
    /// Largest per-node bytes received.
    pub node_bytes_down_max: Option<u64>,
    /// Bytes received by all nodes from the first message on (handshakes mostly excluded).
    pub message_phase_bytes_down: u64,
    /// Whisper envelope counters summed over all nodes (and incarnations).
    pub envelopes: crate::host::HostStats,
    /// Envelope copies received per useful (new) envelope: gossip amplification.
    pub amplification: Option<f64>,
    /// The same ratio per kind of envelope, beside the overlay's theoretical one.
    pub duplicate_factor: DuplicateFactors,
    /// First-spy estimator (absent without spies).
    pub privacy: Option<crate::run::PrivacySummary>,
    /// Wall time inside host calls by kind (crypto and PoW live there).
    pub host_times: crate::engine::HostTimes,
    /// Analytical model beside the measurement, if the scenario asks for one.
    pub model: Option<crate::model::ModelComparison>,
    /// Events processed (stale timers excluded).
    pub events: u64,
    /// Errors returned by hosts (`handle_connection`, `handle_command`).
    pub host_errors: u64,
    /// Actions naming a connection the node does not have.
    pub invalid_actions: u64,
    /// Whether the run stopped at the scenario's `max_events` cap (a liveness failure).
    pub hit_event_cap: bool,
    /// Simulated time covered: the scenario length, or less if the event cap stopped the run.
    pub sim_duration_ms: u64,
    /// SHA-256 of the canonical trace of processed events, hex ([`crate::trace`]).
    pub trace_hash: String,
    /// Wall-clock duration of the run; not part of the trace, varies between runs.
    pub wall_ms: u64,
    /// Traffic per node, by node index.
    pub per_node: Vec<NodeTraffic>,
    /// Delivery and latency per kind of traffic: `public` (the figures above), and `dm` and
    /// `group` when the scenario has them (`crate::run::conversations`).
    pub by_kind: BTreeMap<String, crate::run::KindSummary>,
}

/// Envelopes of one kind, summed over nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct KindFactor {
    /// Copies received from peers.
    pub received: u64,
    /// Envelopes new to a node (own posts included): one per envelope and node reached.
    pub pooled: u64,
    /// `received / pooled`; `null` when nothing of this kind was pooled.
    pub factor: Option<f64>,
}

impl KindFactor {
    /// The counts and their ratio.
    pub fn new(received: u64, pooled: u64) -> KindFactor {
        KindFactor {
            received,
            pooled,
            factor: (pooled > 0).then(|| received as f64 / pooled as f64),
        }
    }
}

/// Duplicate factor (envelope copies received per envelope new to a node) per kind, and what
/// the overlay allows.
///
/// Theory, for an envelope flooded over a connected overlay of `N` full nodes and `L` links
/// (mean degree `d = 2L/N`) before it expires: every node pools it once (`N` pooled), and every
/// link carries it at least once (a node sends each pooled envelope to every peer it did not
/// get it from) and at most twice (both ends send before either hears from the other, which
/// Whisper's 300 ms gossip batching makes common). So received / pooled ∈ [L/N, 2L/N] =
/// [d/2, d]. Light nodes (no relaying), churn, partitions and expiry lower it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DuplicateFactors {
    /// Public-chat envelopes: the chat traffic the model is about.
    pub public: KindFactor,
    /// Contact-code envelopes.
    pub contact_code: KindFactor,
    /// Everything else: 1:1 and group messages, history requests.
    pub other: KindFactor,
    /// Mean overlay degree `2 × links / nodes`.
    pub mean_degree: f64,
    /// Lower bound `d/2`: every link carries one copy.
    pub theory_min: f64,
    /// Upper bound `d`: every link carries a copy each way.
    pub theory_max: f64,
}

impl DuplicateFactors {
    /// From the summed host counters and the overlay's size.
    pub fn new(e: &crate::host::HostStats, nodes: usize, links: usize) -> DuplicateFactors {
        let mean_degree = if nodes == 0 {
            0.0
        } else {
            2.0 * links as f64 / nodes as f64
        };
        DuplicateFactors {
            public: KindFactor::new(e.public_received, e.public_pooled),
            contact_code: KindFactor::new(e.contact_code_received, e.contact_code_pooled),
            other: KindFactor::new(
                e.envelopes_received
                    .saturating_sub(e.public_received + e.contact_code_received),
                e.envelopes_pooled
                    .saturating_sub(e.public_pooled + e.contact_code_pooled),
            ),
            mean_degree,
            theory_min: mean_degree / 2.0,
            theory_max: mean_degree,
        }
    }
}

impl Summary {
    /// The summary without the fields that legitimately vary between identical runs (wall
    /// time, host CPU time), for determinism checks.
    pub fn deterministic_part(&self) -> Summary {
        Summary {
            wall_ms: 0,
            host_times: crate::engine::HostTimes::default(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests;
