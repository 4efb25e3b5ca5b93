//! `mvds-offline`: MVDS group members that are offline a fraction of the time.
//!
//! Contract: [`run_mvds_offline`] runs `nodes` [`Mvds`] machines, all members of one group, in
//! virtual time. The first `communicating` nodes each append `messages_per_node` messages, one
//! every `message_interval_ms`. A payload is carried with a uniform link latency unless the
//! offline model drops it:
//! - [`OfflineModel::Drop`] — vacp2p/mvds `simulation/` and `ChannelTransport`: every payload is
//!   lost with probability `offline_pct` % ("percentage of time a node is offline", 90 in the
//!   published runs);
//! - [`OfflineModel::Churn`] — every node is offline for whole periods of `churn_period_ms`,
//!   each independently with probability `offline_pct` %; a payload arrives only if its sender
//!   is online when sending and its receiver online when it arrives.
//!
//! Reported ([`MvdsOfflineSummary`]): delivery ratio (deliveries / (messages × (nodes − 1))),
//! latency from append to delivery, and the bandwidth multiplier: payload bytes sent divided by
//! the bytes an ideal lossless exchange needs (each message's one-message payload sent once to
//! each other member, with no acks). Everything derives from the seed; no wall clock.

use std::collections::BTreeMap;

use hush_core::mvds::{
    message_entry_len, Action, Config, Message, Mode, Mvds, MvdsError, Numbering, PeerId,
    Retransmission, SendOptions, PEER_ID_LEN,
};
use hush_core::rng::{rng_from_seed, seed_from_u64, Rng};
use hush_core::Time;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::metrics::percentile_nearest_rank;
use crate::scenario::DEFAULT_START_MS;

/// How "offline" is modelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineModel {
    /// Each payload is dropped with probability `offline_pct` (the vacp2p/mvds simulation).
    #[default]
    Drop,
    /// Nodes go offline for whole periods.
    Churn,
}

/// Retransmission function by name (scenario files are data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackoffKind {
    /// status-go / mvds v0.0.23 cumulative `epoch + 2·count`.
    #[default]
    StatusGo,
    /// mvds HEAD `epoch + 2·count`.
    Linear,
    /// `epoch + min(base·2^(count−1), cap)` with `backoff_base_epochs`, `backoff_cap_epochs`.
    Exponential,
}

/// The scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MvdsOfflineScenario {
    /// Simulated wall-clock start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Group members.
    pub nodes: usize,
    /// The first this many members send.
    pub communicating: usize,
    /// Messages per sending member.
    pub messages_per_node: u32,
    /// Gap between a member's messages (≥ 1000: ids include the second).
    pub message_interval_ms: u64,
    /// Percentage of time offline (0–100).
    pub offline_pct: u32,
    /// Offline model.
    pub offline_model: OfflineModel,
    /// Churn period.
    pub churn_period_ms: u64,
    /// Smallest one-way latency.
    pub latency_min_ms: u64,
    /// Largest one-way latency.
    pub latency_max_ms: u64,
    /// Interactive instead of batch mode.
    pub interactive: bool,
    /// Retransmission function.
    pub backoff: BackoffKind,
    /// `Exponential` base.
    pub backoff_base_epochs: u64,
    /// `Exponential` cap.
    pub backoff_cap_epochs: u64,
    /// MVDS epoch length.
    pub epoch_interval_ms: u64,
    /// Simulated run length from the start.
    pub duration_ms: u64,
    /// Cap on processed events (liveness guard).
    pub max_events: u64,
}

impl Default for MvdsOfflineScenario {
    /// The published case: 3 nodes, 2 communicating, a message every 5 s, 90 % offline.
    fn default() -> Self {
        MvdsOfflineScenario {
            start_ms: DEFAULT_START_MS,
            nodes: 3,
            communicating: 2,
            messages_per_node: 10,
            message_interval_ms: 5_000,
            offline_pct: 90,
            offline_model: OfflineModel::Drop,
            churn_period_ms: 60_000,
            latency_min_ms: 20,
            latency_max_ms: 100,
            interactive: false,
            backoff: BackoffKind::StatusGo,
            backoff_base_epochs: 1,
            backoff_cap_epochs: 100,
            epoch_interval_ms: 300,
            duration_ms: 3_600_000,
            max_events: 10_000_000,
        }
    }
}

/// Results of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MvdsOfflineSummary {
    /// Master seed.
    pub seed: u64,
    /// Messages appended.
    pub messages: u64,
    /// messages × (nodes − 1).
    pub expected_deliveries: u64,
    /// Distinct (message, recipient) deliveries.
    pub deliveries: u64,
    /// Deliveries of a message a node already had (must be 0).
    pub duplicate_deliveries: u64,
    /// deliveries / expected.
    pub delivery_ratio: f64,
    /// Mean append-to-delivery latency.
    pub latency_mean_ms: Option<f64>,
    /// Median latency.
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile latency.
    pub latency_p95_ms: Option<u64>,
    /// Largest latency.
    pub latency_max_ms: Option<u64>,
    /// Payloads handed to the network.
    pub payloads_sent: u64,
    /// Payload bytes handed to the network.
    pub bytes_sent: u64,
    /// Bytes of the ideal exchange.
    pub ideal_bytes: u64,
    /// bytes_sent / ideal_bytes.
    pub bandwidth_multiplier: f64,
    /// Payloads that reached their receiver.
    pub payloads_arrived: u64,
    /// Sync records left at the end (outstanding retransmissions).
    pub final_sync_states: u64,
    /// Events processed.
    pub events: u64,
    /// The run stopped at `max_events`.
    pub hit_event_cap: bool,
}

/// A scenario that cannot run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MvdsOfflineError {
    /// Bad parameters.
    #[error("mvds-offline: {0}")]
    Invalid(&'static str),
    /// The MVDS machine refused the configuration or a send.
    #[error(transparent)]
    Mvds(#[from] MvdsError),
}

const GROUP: [u8; 32] = [0x6d; 32];

fn peer_id(i: usize) -> PeerId {
    let mut p = [0u8; PEER_ID_LEN];
    p[0] = 4;
    p[1..9].copy_from_slice(&(i as u64).to_be_bytes());
    PeerId(p)
}

enum Event {
    Append {
        node: usize,
        k: u32,
    },
    Arrive {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
}

/// Runs the scenario.
pub fn run_mvds_offline(
    s: &MvdsOfflineScenario,
    seed: u64,
) -> Result<MvdsOfflineSummary, MvdsOfflineError> {
    if s.nodes < 2 || s.communicating > s.nodes {
        return Err(MvdsOfflineError::Invalid(
            "need nodes ≥ 2 and communicating ≤ nodes",
        ));
    }
    if s.offline_pct > 100 || s.latency_min_ms > s.latency_max_ms {
        return Err(MvdsOfflineError::Invalid(
            "offline_pct ≤ 100, latency_min ≤ latency_max",
        ));
    }
    if s.message_interval_ms < 1000 || s.churn_period_ms == 0 {
        return Err(MvdsOfflineError::Invalid(
            "message_interval_ms ≥ 1000 and churn_period_ms > 0",
        ));
    }
    let config = Config {
        numbering: Numbering::Status2019,
        mode: if s.interactive {
            Mode::Interactive
        } else {
            Mode::Batch
        },
        retransmission: match s.backoff {
            BackoffKind::StatusGo => Retransmission::StatusGo,
            BackoffKind::Linear => Retransmission::Linear,
            BackoffKind::Exponential => Retransmission::Exponential {
                base_epochs: s.backoff_base_epochs,
                cap_epochs: s.backoff_cap_epochs,
            },
        },
        epoch_interval_ms: s.epoch_interval_ms,
        ..Config::default()
    };
    let start = Time(s.start_ms);
    let end = start.plus_millis(s.duration_ms);
    let mut rng: Rng = rng_from_seed(seed_from_u64(seed));
    let ids: Vec<PeerId> = (0..s.nodes).map(peer_id).collect();
    let mut nodes = Vec::with_capacity(s.nodes);
    for i in 0..s.nodes {
        let mut m = Mvds::new(config.clone(), start)?;
        for (j, p) in ids.iter().enumerate() {
            if i != j {
                m.add_peer(start, GROUP, *p)?;
            }
        }
        while m.poll_action().is_some() {}
        nodes.push(m);
    }
    // Churn schedule: online[node][period].
    let periods = usize::try_from(s.duration_ms / s.churn_period_ms + 2).unwrap_or(usize::MAX);
    let online: Vec<Vec<bool>> = (0..s.nodes)
        .map(|_| {
            (0..periods)
                .map(|_| rng.gen_range(0..100) >= s.offline_pct)
                .collect()
        })
        .collect();
    let is_online = |node: usize, t: Time| -> bool {
        if s.offline_model != OfflineModel::Churn {
            return true;
        }
        let period = usize::try_from(t.millis_since(start) / s.churn_period_ms).unwrap_or(0);
        online
            .get(node)
            .and_then(|v| v.get(period))
            .copied()
            .unwrap_or(true)
    };

    let mut queue: BTreeMap<(Time, u64), Event> = BTreeMap::new();
    let mut seq = 0u64;
    for node in 0..s.communicating {
        for k in 0..s.messages_per_node {
            seq += 1;
            // Stagger senders by a few ms so events are not simultaneous.
            let at =
                start.plus_millis(1_000 + u64::from(k) * s.message_interval_ms + node as u64 * 7);
            queue.insert((at, seq), Event::Append { node, k });
        }
    }

    let mut appended: BTreeMap<[u8; 32], (usize, Time)> = BTreeMap::new();
    let mut delivered: BTreeMap<([u8; 32], usize), Time> = BTreeMap::new();
    let mut duplicates = 0u64;
    let mut ideal_bytes = 0u64;
    let mut payloads_sent = 0u64;
    let mut bytes_sent = 0u64;
    let mut payloads_arrived = 0u64;
    let mut events = 0u64;
    let mut hit_cap = false;
    let mut now = start;

    loop {
        let timer = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.poll_timeout().map(|t| (t, i)))
            .min();
        let next_event = queue.keys().next().map(|k| k.0);
        let t = match (timer.map(|x| x.0), next_event) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        if t > end {
            break;
        }
        if events >= s.max_events {
            hit_cap = true;
            break;
        }
        events += 1;
        now = now.max(t);
        let mut touched: Vec<usize> = Vec::new();
        if next_event == Some(t) {
            let Some((_, ev)) = queue.pop_first() else {
                break;
            };
            match ev {
                Event::Append { node, k } => {
                    let body = format!("node {node} message {k}").into_bytes();
                    let ideal = Message {
                        group_id: GROUP,
                        timestamp: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                        body: body.clone(),
                        metadata: None,
                    };
                    ideal_bytes += message_entry_len(&ideal, Numbering::Status2019) as u64
                        * (s.nodes as u64 - 1);
                    let id = nodes[node].send(now, GROUP, body, SendOptions::default())?;
                    appended.insert(id, (node, now));
                    touched.push(node);
                }
                Event::Arrive { to, from, bytes } => {
                    payloads_arrived += 1;
                    // Payloads we produced always decode; an error here would be a bug, which
                    // the delivery ratio would show, so it is not fatal.
                    let _ = nodes[to].handle_payload(now, ids[from], &bytes);
                    touched.push(to);
                }
            }
        } else if let Some((_, i)) = timer {
            nodes[i].handle_timeout(now);
            touched.push(i);
        }
        for i in touched {
            while let Some(action) = nodes[i].poll_action() {
                match action {
                    Action::Persist(_) => {}
                    Action::Deliver { id, .. } => match delivered.entry((id, i)) {
                        std::collections::btree_map::Entry::Occupied(_) => duplicates += 1,
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(now);
                        }
                    },
                    Action::Send { peer, bytes } => {
                        payloads_sent += 1;
                        bytes_sent += bytes.len() as u64;
                        let Some(to) = ids.iter().position(|p| *p == peer) else {
                            continue;
                        };
                        let latency = rng.gen_range(s.latency_min_ms..=s.latency_max_ms);
                        let arrive = now.plus_millis(latency);
                        let lost = match s.offline_model {
                            OfflineModel::Drop => rng.gen_range(0..100) < s.offline_pct,
                            OfflineModel::Churn => !(is_online(i, now) && is_online(to, arrive)),
                        };
                        if !lost {
                            seq += 1;
                            queue.insert((arrive, seq), Event::Arrive { to, from: i, bytes });
                        }
                    }
                }
            }
        }
    }

    let messages = appended.len() as u64;
    let others = s.nodes as u64 - 1;
    let expected = messages * others;
    let mut latencies: Vec<u64> = delivered
        .iter()
        .filter_map(|((id, _), at)| appended.get(id).map(|(_, sent)| at.millis_since(*sent)))
        .collect();
    latencies.sort_unstable();
    let mean = if latencies.is_empty() {
        None
    } else {
        Some(latencies.iter().sum::<u64>() as f64 / latencies.len() as f64)
    };
    Ok(MvdsOfflineSummary {
        seed,
        messages,
        expected_deliveries: expected,
        deliveries: delivered.len() as u64,
        duplicate_deliveries: duplicates,
        delivery_ratio: if expected == 0 {
            1.0
        } else {
            delivered.len() as f64 / expected as f64
        },
        latency_mean_ms: mean,
        latency_p50_ms: percentile_nearest_rank(&latencies, 50),
        latency_p95_ms: percentile_nearest_rank(&latencies, 95),
        latency_max_ms: latencies.last().copied(),
        payloads_sent,
        bytes_sent,
        ideal_bytes,
        bandwidth_multiplier: if ideal_bytes == 0 {
            0.0
        } else {
            bytes_sent as f64 / ideal_bytes as f64
        },
        payloads_arrived,
        final_sync_states: nodes.iter().map(|n| n.state_len() as u64).sum(),
        events,
        hit_event_cap: hit_cap,
    })
}

#[cfg(test)]
mod tests;
