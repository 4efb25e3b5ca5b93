//! The memory a scenario needs, estimated before anything is allocated.
//!
//! Contract: [`estimate`] is a pure function of the scenario (no allocation proportional to
//! nodes or messages). [`check`] refuses a scenario whose estimate exceeds a limit with
//! [`ScenarioError::TooMuchMemory`], naming both; `hush sim` calls it before building anything
//! (limit: [`default_limit_bytes`], or `--max-memory-gb`). Without it `hush sim --nodes
//! 10000000` aborted on a 57 GB allocation (exit 134) and `messages = 1000000000` with
//! `message_interval_ms = 0` allocated 4.7 GB and then aborted.
//!
//! The model: peak bytes ≈ [`FIXED_BYTES`] + nodes × [`PER_NODE_BYTES`] + links ×
//! [`PER_LINK_BYTES`] + planned messages × ([`PER_PLANNED_MESSAGE_BYTES`] + one receiver bit per
//! node) + deliveries × [`PER_DELIVERY_BYTES`] + nodes × envelopes each node pools at once ×
//! [`PER_POOLED_ENVELOPE_BYTES`]. The figures were fitted to the peak RSS of measured runs
//! (`docs/scaling.md` § "Memory estimate") and rounded down: the estimate is meant to catch
//! scenarios that cannot fit by orders of magnitude without refusing any that can, so it
//! undershoots a burst of messages (by up to 4× in the runs measured) rather than overshoot.

use crate::scenario::{Scenario, ScenarioError, Schedule, TopologySpec};

/// Memory of a run with (almost) no nodes: the binary, the allocator, the report buffers.
pub const FIXED_BYTES: u64 = 16 << 20;

/// Per node: its keys, Whisper, security and chat state, its host slot in the simulator and
/// its per-node metrics, before any traffic (measured: 109 KiB, 200 → 800 nodes).
pub const PER_NODE_BYTES: u64 = 100 << 10;

/// Per overlay link: two RLPx sessions (cipher state, buffers) and the simulator's link state
/// (measured with the nodes: within the per-node figure's noise; a floor).
pub const PER_LINK_BYTES: u64 = 8 << 10;

/// Per planned message, allocated when the run is set up: its event in the control queue
/// (measured: 45 B per message between 100,000 and 1,000,000 messages at once).
pub const PER_PLANNED_MESSAGE_BYTES: u64 = 48;

/// Per message delivered to a node, kept to the end: the node's dedup and chat state and the
/// metrics (measured: 91 B, 100 nodes × 2,000 messages spread over 200 s).
pub const PER_DELIVERY_BYTES: u64 = 64;

/// Per envelope copy in one node's Whisper pool while it lives (the envelope, its hash and
/// index entries; measured: 1.0 KiB for contact codes, 800 nodes, and 2.2 KiB for a burst of
/// chat messages, which also sit in gossip queues and on the links).
pub const PER_POOLED_ENVELOPE_BYTES: u64 = 1 << 10;

/// Envelopes one node's pool holds at most (`hush_core::whisper` default `max_envelopes`).
pub const POOL_MAX_ENVELOPES: u64 = 10_000;

/// Share of physical memory a scenario may take by default: the rest is left to the system
/// and whatever else runs.
pub const DEFAULT_MEMORY_FRACTION: f64 = 0.75;

/// The limit when physical memory cannot be read (not Linux, no `/proc`): 8 GiB.
pub const FALLBACK_LIMIT_BYTES: u64 = 8 << 30;

/// What [`estimate`] found, in parts (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Nodes, links and the fixed part.
    pub nodes_bytes: u64,
    /// Planned messages (events and metrics records) and their deliveries.
    pub messages_bytes: u64,
    /// Envelope copies in the nodes' pools at the busiest moment.
    pub pools_bytes: u64,
    /// Messages planned within the run.
    pub planned_messages: u64,
}

impl MemoryEstimate {
    /// The whole estimate, bytes.
    pub fn total_bytes(&self) -> u64 {
        self.nodes_bytes
            .saturating_add(self.messages_bytes)
            .saturating_add(self.pools_bytes)
    }
}

/// Messages of `s` sent before `end_ms`, and how many of them are alive (within `ttl_ms` of
/// each other) at once, without drawing them.
fn schedule_counts(s: &Schedule, end_ms: u64, ttl_ms: u64) -> (u64, u64) {
    let messages = u64::from(s.messages);
    if s.first_at_ms > end_ms || messages == 0 {
        return (0, 0);
    }
    if s.interval_ms == 0 {
        return (messages, messages);
    }
    // Poisson gaps have the same mean: the count is the same on average.
    let planned = messages.min((end_ms - s.first_at_ms) / s.interval_ms + 1);
    let alive = planned.min(ttl_ms / s.interval_ms + 1);
    (planned, alive)
}

/// Overlay links the topology will have, from its parameters alone.
fn links(scenario: &Scenario) -> u64 {
    let n = scenario.nodes as u64;
    match scenario.topology_spec() {
        TopologySpec::RandomRegular { degree } => n.saturating_mul(degree as u64) / 2,
        TopologySpec::ErdosRenyi { p } => {
            let pairs = n.saturating_mul(n.saturating_sub(1)) / 2;
            (pairs as f64 * p.clamp(0.0, 1.0)) as u64
        }
        TopologySpec::BarabasiAlbert { m } => n.saturating_mul(m as u64),
        TopologySpec::Edges { edges } => edges.len() as u64,
    }
}

/// The memory `scenario` needs at its peak, estimated from its parameters (see the module
/// docs); allocates nothing proportional to nodes or messages.
pub fn estimate(scenario: &Scenario) -> MemoryEstimate {
    let n = scenario.nodes as u64;
    let end_ms = scenario.end_ms();
    let ttl_ms = u64::from(hush_core::chat::service::DEFAULT_TTL_SECS) * 1000;
    let mut planned = 0u64;
    let mut alive = 0u64;
    let mut deliveries = 0u64;
    let mut add = |s: &Schedule, times: u64, receivers: u64| {
        let (p, a) = schedule_counts(s, end_ms, ttl_ms);
        let p = p.saturating_mul(times);
        planned = planned.saturating_add(p);
        alive = alive.saturating_add(a.saturating_mul(times));
        deliveries = deliveries.saturating_add(p.saturating_mul(receivers));
    };
    for chat in scenario.public_chats() {
        // Members default to every node; an explicit selection is at most that.
        add(&chat.schedule, 1, n);
    }
    for o in &scenario.traffic.one_to_one {
        add(&o.schedule, (o.pairs + o.explicit.len()) as u64, 2);
    }
    for g in &scenario.traffic.groups {
        add(
            &g.schedule,
            g.groups as u64,
            (g.size + g.late_members) as u64,
        );
    }
    // Every envelope floods to every node's pool. Contact codes: one per node at the start
    // when nobody published before ("fresh"); in the steady state a node publishes once per
    // period at a uniform time, so about n × TTL / period are alive at once (at least one).
    let contact_codes = match (
        scenario.node.contact_codes,
        scenario.node.contact_code_start,
    ) {
        (false, _) => 0,
        (true, crate::scenario::ContactCodeStart::Fresh) => n,
        (true, crate::scenario::ContactCodeStart::SteadyState) => n
            .saturating_mul(ttl_ms)
            .div_ceil(scenario.node.contact_code_interval_ms.max(1))
            .max(1),
    };
    let pooled_per_node = alive.saturating_add(contact_codes).min(POOL_MAX_ENVELOPES);
    let receiver_bitmap_bytes = n.div_ceil(64) * 8;
    MemoryEstimate {
        nodes_bytes: FIXED_BYTES
            .saturating_add(n.saturating_mul(PER_NODE_BYTES))
            .saturating_add(links(scenario).saturating_mul(PER_LINK_BYTES)),
        messages_bytes: planned
            .saturating_mul(PER_PLANNED_MESSAGE_BYTES.saturating_add(receiver_bitmap_bytes))
            .saturating_add(deliveries.saturating_mul(PER_DELIVERY_BYTES)),
        pools_bytes: n
            .saturating_mul(pooled_per_node)
            .saturating_mul(PER_POOLED_ENVELOPE_BYTES),
        planned_messages: planned,
    }
}

/// Refuses `scenario` when its [`estimate`] exceeds `limit_bytes`.
pub fn check(scenario: &Scenario, limit_bytes: u64) -> Result<MemoryEstimate, ScenarioError> {
    let e = estimate(scenario);
    if e.total_bytes() > limit_bytes {
        return Err(ScenarioError::TooMuchMemory {
            estimate_bytes: e.total_bytes(),
            limit_bytes,
            nodes: scenario.nodes,
            planned_messages: e.planned_messages,
        });
    }
    Ok(e)
}

/// Physical memory in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The default limit: [`DEFAULT_MEMORY_FRACTION`] of physical memory, else
/// [`FALLBACK_LIMIT_BYTES`].
pub fn default_limit_bytes() -> u64 {
    physical_memory_bytes().map_or(FALLBACK_LIMIT_BYTES, |b| {
        (b as f64 * DEFAULT_MEMORY_FRACTION) as u64
    })
}

/// Bytes as GB (10⁹) with one decimal, for messages.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests;
