//! Measurements: delivery, latency, traffic, and the run [`Summary`].
//!
//! Contract: [`Metrics`] sees every application [`Event`] the hosts emit and every byte the
//! engine moves. A message's send time is the time of its author's `MessageSent`; each
//! `MessageReceived` of that id at another node counts one delivery with latency `now − send
//! time`; a second `MessageReceived` of the same id at the same node counts as a duplicate (the
//! node promises exactly-once) and not as a delivery. Percentiles use the nearest-rank method.

use hush_core::node::Event;
use hush_core::Time;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
    /// `(node, id)` pairs already received.
    received: BTreeSet<(usize, MessageId)>,
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
}

impl Metrics {
    /// Metrics for `nodes` nodes.
    pub fn new(nodes: usize) -> Metrics {
        Metrics {
            per_node: vec![NodeTraffic::default(); nodes],
            ..Metrics::default()
        }
    }

    /// Node `node` emitted `event` at `now`.
    pub fn on_event(&mut self, now: Time, node: usize, event: &Event) {
        match event {
            Event::MessageSent(m) => {
                self.messages_sent += 1;
                self.sent.entry(m.message_id).or_insert((node, now));
            }
            Event::MessageReceived(m) => match self.sent.get(&m.message_id) {
                None => self.unknown_deliveries += 1,
                Some(&(author, _)) if author == node => self.self_deliveries += 1,
                Some(&(_, sent_at)) => {
                    if self.received.insert((node, m.message_id)) {
                        self.deliveries += 1;
                        self.latencies_ms.push(now.millis_since(sent_at));
                    } else {
                        self.duplicate_deliveries += 1;
                    }
                }
            },
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
    /// The master seed.
    pub seed: u64,
    /// Node count.
    pub nodes: usize,
    /// Degree of the random regular topology.
    pub degree: usize,
    /// Links created.
    pub links: usize,
    /// Nodes that joined the chat.
    pub members: usize,
    /// `SendPublicMessage` commands issued by the traffic generator.
    pub messages_requested: u64,
    /// `MessageSent` events the nodes emitted.
    pub messages_sent: u64,
    /// `messages_sent × (members − 1)`.
    pub deliveries_expected: u64,
    /// First-time receptions at non-authors.
    pub deliveries: u64,
    /// `deliveries / deliveries_expected` (1 when nothing was expected).
    pub delivery_ratio: f64,
    /// Repeated receptions of one id at one node (a bug in the node).
    pub duplicate_deliveries: u64,
    /// Receptions at the author itself.
    pub self_deliveries: u64,
    /// Receptions of ids nobody reported sending.
    pub unknown_deliveries: u64,
    /// Median delivery latency (nearest rank), `null` without deliveries.
    pub latency_ms_p50: Option<u64>,
    /// 99th percentile delivery latency (nearest rank).
    pub latency_ms_p99: Option<u64>,
    /// Largest delivery latency.
    pub latency_ms_max: Option<u64>,
    /// `PeerConnected` events (two per fully established link).
    pub peers_connected: u64,
    /// `PeerDisconnected` events.
    pub peers_disconnected: u64,
    /// Sum of all `Action::Send` lengths.
    pub bytes_sent_total: u64,
    /// Bytes that could not be delivered (the receiving end had closed).
    pub bytes_dropped: u64,
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
    /// Keccak-256 of the canonical trace of processed events, hex.
    pub trace_hash: String,
    /// Wall-clock duration of the run; not part of the trace, varies between runs.
    pub wall_ms: u64,
    /// Traffic per node, by node index.
    pub per_node: Vec<NodeTraffic>,
}

#[cfg(test)]
mod tests;
