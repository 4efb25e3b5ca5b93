//! Running a scenario: seeds, topology, traffic, and the [`Summary`].
//!
//! Contract: [`run_scenario_with`] derives everything from the master `seed`, in this order,
//! each from its own ChaCha20 stream drawn from the master one: node identities (per node a
//! 32-byte node seed, then secret keys drawn until the host accepts one), the topology, the
//! network (link latencies), dial times, and traffic (message authors). It then builds a
//! [`Sim`], schedules the joins, the dials (for each edge `(a, b)`, `a < b`, `a` dials `b`),
//! and the messages, runs to the scenario's end and summarises.

use crate::engine::{EngineError, NodeIndex, RunOutcome, Sim};
use crate::host::Host;
use crate::metrics::{percentile_nearest_rank, Summary};
use crate::net::{NetConfig, Network};
use crate::scenario::{Scenario, ScenarioError};
use crate::topology::{random_regular, TopologyError};
use hush_core::node::{Command, Node, NodeConfig, NodeError};
use hush_core::rng::{child_seed, rng_from_seed, seed_from_u64, Seed};
use hush_core::Time;
use rand::Rng as _;
use thiserror::Error;

/// Secret keys tried per node before giving up. A uniformly random 32-byte string is a valid
/// secp256k1 scalar with probability ≈ 1 − 2⁻¹²⁸, so more than one try never happens in practice.
pub const MAX_KEY_ATTEMPTS: u32 = 64;

/// Why a run could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// Invalid scenario parameters.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// No topology with those parameters.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Scheduling failed (a bug in the runner).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A host could not be created.
    #[error("node {node}: {source}")]
    Host {
        /// Node index.
        node: NodeIndex,
        /// The host's error.
        source: NodeError,
    },
}

/// Runs `scenario` with real [`Node`]s.
pub fn run_scenario(scenario: &Scenario, seed: u64) -> Result<Summary, SimError> {
    run_scenario_with(scenario, seed, |i, secret_key, node_seed, now| {
        let config = NodeConfig {
            client_id: format!("hush-sim/{i}"),
            ..NodeConfig::default()
        };
        Node::new(config, secret_key, node_seed, now)
    })
}

/// Runs `scenario` with hosts built by `make(index, secret_key, node_seed, start)`. A
/// `NodeError::InvalidSecretKey` makes the runner draw another key; other errors abort.
pub fn run_scenario_with<H, F>(
    scenario: &Scenario,
    seed: u64,
    mut make: F,
) -> Result<Summary, SimError>
where
    H: Host,
    F: FnMut(NodeIndex, [u8; 32], Seed, Time) -> Result<H, NodeError>,
{
    // Measures the host program, not the simulation: wall time never enters the trace.
    let wall_start = std::time::Instant::now();
    scenario.validate()?;
    let start = Time::from_millis(scenario.start_ms);

    let mut master = rng_from_seed(seed_from_u64(seed));
    let mut keys_rng = rng_from_seed(child_seed(&mut master));
    let mut topology_rng = rng_from_seed(child_seed(&mut master));
    let net_seed = child_seed(&mut master);
    let mut dial_rng = rng_from_seed(child_seed(&mut master));
    let mut traffic_rng = rng_from_seed(child_seed(&mut master));

    let mut hosts = Vec::with_capacity(scenario.nodes);
    for i in 0..scenario.nodes {
        let node_seed = child_seed(&mut keys_rng);
        let mut attempt = 0;
        let host = loop {
            let secret_key = child_seed(&mut keys_rng);
            match make(i, secret_key, node_seed, start) {
                Ok(h) => break h,
                Err(NodeError::InvalidSecretKey) if attempt + 1 < MAX_KEY_ATTEMPTS => attempt += 1,
                Err(source) => return Err(SimError::Host { node: i, source }),
            }
        };
        hosts.push(host);
    }

    let edges = random_regular(scenario.nodes, scenario.degree, &mut topology_rng)?;
    let net = Network::new(
        NetConfig {
            latency_min_ms: scenario.latency_min_ms,
            latency_max_ms: scenario.latency_max_ms,
        },
        net_seed,
    );
    let mut sim = Sim::new(start, hosts, net);

    let join_at = start.plus_millis(scenario.join_at_ms);
    for node in 0..scenario.nodes {
        sim.schedule_command(
            join_at,
            node,
            Command::JoinPublicChat {
                name: scenario.chat.clone(),
            },
        )?;
    }
    for &(a, b) in &edges {
        let at = start.plus_millis(dial_rng.gen_range(0..=scenario.connect_window_ms));
        sim.connect(at, a, b)?;
    }
    for i in 0..scenario.messages {
        let author = traffic_rng.gen_range(0..scenario.nodes);
        let text = format!("message {i} from node {author}");
        let at = start.plus_millis(scenario.message_at_ms(i));
        sim.schedule_command(
            at,
            author,
            Command::SendPublicMessage {
                chat: scenario.chat.clone(),
                text,
            },
        )?;
    }

    let end = start.plus_millis(scenario.end_ms());
    let outcome = sim.run_until(end, scenario.max_events);

    let m = sim.metrics();
    let c = sim.counters();
    let members = scenario.nodes;
    let deliveries_expected = m
        .messages_sent
        .saturating_mul(members.saturating_sub(1) as u64);
    let delivery_ratio = if deliveries_expected == 0 {
        1.0
    } else {
        m.deliveries as f64 / deliveries_expected as f64
    };
    let lat = m.sorted_latencies_ms();
    Ok(Summary {
        seed,
        nodes: scenario.nodes,
        degree: scenario.degree,
        links: edges.len(),
        members,
        messages_requested: u64::from(scenario.messages),
        messages_sent: m.messages_sent,
        deliveries_expected,
        deliveries: m.deliveries,
        delivery_ratio,
        duplicate_deliveries: m.duplicate_deliveries,
        self_deliveries: m.self_deliveries,
        unknown_deliveries: m.unknown_deliveries,
        latency_ms_p50: percentile_nearest_rank(&lat, 50),
        latency_ms_p99: percentile_nearest_rank(&lat, 99),
        latency_ms_max: lat.last().copied(),
        peers_connected: m.peers_connected,
        peers_disconnected: m.peers_disconnected,
        bytes_sent_total: m.bytes_sent_total,
        bytes_dropped: c.bytes_dropped,
        events: sim.events(),
        host_errors: c.host_errors,
        invalid_actions: c.invalid_actions,
        hit_event_cap: outcome == RunOutcome::EventCap,
        sim_duration_ms: sim.now().millis_since(start),
        trace_hash: sim.trace_hash(),
        wall_ms: u64::try_from(wall_start.elapsed().as_millis()).unwrap_or(u64::MAX),
        per_node: m.per_node.clone(),
    })
}

#[cfg(test)]
mod tests;
