//! Running a scenario: seeds, roles, topology, faults, traffic, and the [`Summary`].
//!
//! Contract: [`run_scenario_full`] derives everything from the master `seed`, each part from
//! its own ChaCha20 stream drawn from the master one, in this order: node identities (per node
//! a 32-byte node seed, then secret keys drawn until the host accepts one), the topology, the
//! network (link latencies and per-chunk draws), dial times, traffic (members, authors, Poisson
//! gaps), roles (then mailserver clients), faults (partition sides, churn sessions, crashed
//! nodes, offline windows, restart identities) and spies. Node identities are drawn for the
//! mailservers first, then the other nodes, each group in index order. It builds a [`Sim`],
//! then plays a schedule of *controls* between engine events:
//!
//! - joins (members join their chats at `join_at_ms`) and sends (skipped and counted while the
//!   author is offline or crashed: a user who is away does not type);
//! - dials: each edge `(a, b)`, `a < b`, is dialed by `a` at a random time in the connect
//!   window, and redialed `redial_delay_ms` after it becomes possible again;
//! - partitions ([`crate::scenario::PartitionMode::Close`]): crossing links are closed at both
//!   ends at once; at the heal they are redialed;
//! - churn: an offline node's links are closed; it keeps running (timers, pool) and redials
//!   its edges when it comes back;
//! - offline windows (`[[offline]]`): like churn, at fixed times; windows and churn nest (a
//!   node is online when none of them holds it offline);
//! - crashes: the node's links are closed and it is inert (no timers) until its restart,
//!   which replaces the host: `kept` rebuilds it as a driver does from its database, with the
//!   same identity key, `Node::restore` from its `Persist::Conversation` records, the public
//!   messages it accepted (`Persist::ChatMessage`, replayed after the joins), its own posts not
//!   yet expired (`Persist::OwnEnvelope`, pooled again) and, for a mailserver, its archive (the envelopes it persisted) with `restore_archived`; `lost`
//!   keeps the key only (fresh state, empty archive); `new-key` starts with a new key too (a
//!   mailserver's clients do not trust it); each restart takes a fresh node seed; either way
//!   it rejoins its chats and redials;
//! - conversations (`[[traffic.one_to_one]]`, `[[traffic.groups]]`, drawn from their own
//!   stream after the spies' one, before the nodes are built since MVDS is a node setting):
//!   see [`conversations`] for what is measured. Pairs and groups are drawn among the
//!   non-mailserver nodes; participants of MVDS and non-MVDS conversations are disjoint (an
//!   error if there are not enough nodes). A group's creator creates it at `create_at_ms`
//!   and adds the late members at `late_at_ms` (each retried every [`GROUP_RETRY_MS`] while
//!   the creator is down or has no group id yet); sends are skipped while the author is down
//!   (`messages_skipped_offline`) or the group has no id (`messages_skipped_no_group`);
//! - mailservers (`[history]`, [`crate::scenario::HistorySpec`]): mailserver nodes are spawned
//!   first (so clients can be configured with their keys), are no default chat members and do
//!   not churn by default; with `use_mailserver`, each client gets an extra edge to every
//!   mailserver (the client dials) and, each time it comes back up (online again, or
//!   restarted while online), a history request for each joined chat, since the moment it went
//!   down − `margin_ms`, retried while no mailserver is connected. A return whose request was
//!   still outstanding when the node went down again asks again from the older start.
//!
//! A link is *allowed* when both ends are up (online, not crashed) and no active partition
//! separates them. Links closed by the nodes themselves (a protocol error, light↔light refusal)
//! are not redialed: the simulator plays the network and the dialer, not a peer manager.

use crate::engine::{EngineError, EventQueue, NodeIndex, RunOutcome, Sim};
use crate::host::{Host, HostStats};
use crate::host::{TOPIC_CLASS_CONTACT_CODE, TOPIC_CLASS_PUBLIC};
use crate::metrics::{percentile_nearest_rank, MessageRecord, Metrics, NodeTraffic, Summary};
use crate::model::whisper_scalability;
use crate::net::{LinkId, LinkModel, Network};
use crate::scenario::{
    ContactCodeStart, CrashState, ModelSpec, NodeSelect, PublicChatSpec, Role, Scenario,
    ScenarioError, Schedule, DEFAULT_RTO_MS,
};
use crate::topology::{build, TopologyError};
use hush_core::chat::direct::Record;
use hush_core::chat::format::FormatSetting;
use hush_core::node::NodePublicKey;
use hush_core::node::{Command, Node, NodeConfig, NodeError};
use hush_core::rng::{child_seed, rng_from_seed, seed_from_u64, Rng, Seed};
use hush_core::whisper::MailserverConfig;
use hush_core::whisper::TopicClasses;
use hush_core::Time;
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use serde::Serialize;
use thiserror::Error;

/// Secret keys tried per node before giving up. A uniformly random 32-byte string is a valid
/// secp256k1 scalar with probability ≈ 1 − 2⁻¹²⁸, so more than one try never happens in practice.
pub const MAX_KEY_ATTEMPTS: u32 = 64;

/// Connections a mailserver accepts (inbound, and in total): it serves every client of the
/// scenario, as a Status mailserver served thousands, far above a node's default peer limits.
pub const MAILSERVER_MAX_PEERS: usize = 10_000;

/// Progress callbacks per run (the run is cut into this many slices of simulated time).
pub const PROGRESS_STEPS: u64 = 200;

/// A group's creator that is down (or has no group id yet) when it should create the group or
/// add its late members tries again this much later.
pub const GROUP_RETRY_MS: u64 = 1_000;

/// Random pair draws per requested 1:1 pair before the runner enumerates the candidates
/// instead (only near-complete pair sets need it).
const PAIR_DRAW_ATTEMPTS: usize = 64;

pub mod conversations;
pub use conversations::{ConversationRecord, KindSummary, TrafficKind};
use conversations::{GroupState, Journal, Tracked};
use std::cell::RefCell;
use std::rc::Rc;

/// Why a run could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// Invalid scenario parameters, or a feature the node does not have yet.
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

/// What a host factory is asked to build.
#[derive(Clone, Debug)]
pub struct Spawn {
    /// Node index.
    pub index: NodeIndex,
    /// The node's role.
    pub role: Role,
    /// Identity key candidate.
    pub secret_key: [u8; 32],
    /// The node's RNG seed.
    pub seed: Seed,
    /// Creation time.
    pub now: Time,
    /// Trusted mailservers' keys (`NodeConfig::mailservers`): set for history clients.
    pub mailservers: Vec<NodePublicKey>,
    /// Send 1:1 and group messages through MVDS (`conversations.datasync`).
    pub datasync: bool,
    /// Contact-code publication (scenario `[node]`).
    pub contact_codes: ContactCodes,
    /// Application-layer form sent in chats (`conversations.payload_format`, scenario
    /// `[node] payload_format`).
    pub payload_format: FormatSetting,
    /// A `kept` restart: the `Persist::Conversation` records the node emitted, in order, to
    /// rebuild it with `Node::restore`; `None` for a fresh node.
    pub records: Option<Vec<Record>>,
}

/// A node's contact-code publication settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactCodes {
    /// Publish at all (`conversations.publish_contact_code`, `[node] contact_codes`).
    pub publish: bool,
    /// Period, ms (`conversations.contact_code_interval_ms`).
    pub interval_ms: u64,
    /// Last publication before the node's creation, Unix ms
    /// (`conversations.contact_code_last_published_ms`); `None`: publish at once.
    pub last_published_ms: Option<u64>,
}

/// Public chats' topics ([`TOPIC_CLASS_PUBLIC`]) and the contact-code topics of `keys`
/// ([`TOPIC_CLASS_CONTACT_CODE`]; a node's chat identity is its node key in the simulator).
pub fn topic_classes(chats: &[PublicChatSpec], keys: &[NodePublicKey]) -> TopicClasses {
    let public = chats.iter().map(|c| {
        (
            hush_core::chat::public::public_chat_topic(&c.chat),
            TOPIC_CLASS_PUBLIC,
        )
    });
    let codes = keys.iter().filter_map(|k| {
        let key = hush_core::ecies::pubkey_from_wire(k).ok()?;
        Some((
            hush_core::chat::topics::contact_code_topic(&key),
            TOPIC_CLASS_CONTACT_CODE,
        ))
    });
    TopicClasses::new(public.chain(codes))
}

/// The real node's configuration for a role.
pub fn node_config(index: NodeIndex, role: Role) -> NodeConfig {
    let mut config = NodeConfig {
        client_id: format!("hush-sim/{index}"),
        ..NodeConfig::default()
    };
    match role {
        Role::Full => {}
        Role::Light => {
            config.whisper.light_node = true;
            config.whisper.topic_bloom = true;
        }
        Role::Mailserver => {
            // Requests are encrypted with PBKDF2 of the default `mailserver_password`
            // (Status's "status-offline-inbox"), which clients use too.
            config.whisper.mailserver = Some(MailserverConfig::default());
            config.max_connections = MAILSERVER_MAX_PEERS;
            config.peers.max_inbound = MAILSERVER_MAX_PEERS;
        }
    }
    config
}

/// The real node's configuration for `spawn`: [`node_config`] plus the trusted mailservers,
/// MVDS and contact-code publication.
pub fn spawn_config(spawn: &Spawn) -> NodeConfig {
    let mut config = node_config(spawn.index, spawn.role);
    config.mailservers = spawn.mailservers.clone();
    config.conversations.datasync = spawn.datasync;
    config.conversations.publish_contact_code = spawn.contact_codes.publish;
    config.conversations.contact_code_interval_ms = spawn.contact_codes.interval_ms;
    config.conversations.contact_code_last_published_ms = spawn.contact_codes.last_published_ms;
    config.conversations.payload_format = spawn.payload_format;
    config
}

/// Builds a real [`Node`] for `spawn`: `Node::restore` from its records after a `kept` crash,
/// else `Node::new`.
pub fn spawn_node(spawn: Spawn) -> Result<Node, NodeError> {
    let config = spawn_config(&spawn);
    match spawn.records {
        Some(records) => Node::restore(config, spawn.secret_key, spawn.seed, spawn.now, records),
        None => Node::new(config, spawn.secret_key, spawn.seed, spawn.now),
    }
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The summary (`summary.json`).
    pub summary: Summary,
    /// Every message's record (`messages.csv`).
    pub messages: Vec<MessageRecord>,
    /// Delivery latencies, sorted (the latency CDF).
    pub latencies_ms: Vec<u64>,
    /// Deliveries per second since the start.
    pub deliveries_per_bucket: Vec<u64>,
    /// Every planned 1:1 and group message (`messages.csv` rows of kind `dm` and `group`).
    pub conversation_messages: Vec<ConversationRecord>,
    /// The scenario's partitions, offline windows, churn and crashes (marked on plots).
    pub fault_windows: Vec<crate::scenario::FaultWindow>,
}

/// Runs `scenario` with real [`Node`]s.
pub fn run_scenario(scenario: &Scenario, seed: u64) -> Result<Summary, SimError> {
    run_scenario_full(scenario, seed, spawn_node, &mut |_| {}).map(|o| o.summary)
}

/// Runs `scenario` with hosts built by `make(index, secret_key, node_seed, start)` (roles are
/// not passed; use [`run_scenario_full`] for that). A `NodeError::InvalidSecretKey` makes the
/// runner draw another key; other errors abort.
pub fn run_scenario_with<H, F>(
    scenario: &Scenario,
    seed: u64,
    mut make: F,
) -> Result<Summary, SimError>
where
    H: Host,
    F: FnMut(NodeIndex, [u8; 32], Seed, Time) -> Result<H, NodeError>,
{
    run_scenario_full(
        scenario,
        seed,
        |s: Spawn| make(s.index, s.secret_key, s.seed, s.now),
        &mut |_| {},
    )
    .map(|o| o.summary)
}

/// What the runner does between engine events.
#[derive(Clone, Debug)]
enum Control {
    Join {
        node: NodeIndex,
        chat: usize,
    },
    Send {
        node: NodeIndex,
        chat: usize,
        n: u32,
    },
    Dial {
        edge: usize,
    },
    PartitionStart {
        p: usize,
    },
    PartitionHeal {
        p: usize,
    },
    Offline {
        node: NodeIndex,
    },
    Online {
        node: NodeIndex,
    },
    Crash {
        node: NodeIndex,
    },
    Restart {
        node: NodeIndex,
        state: CrashState,
    },
    /// A client asks its mailserver for history (stale unless `epoch` is the node's current).
    RequestHistory {
        node: NodeIndex,
        epoch: u64,
        attempt: u32,
    },
    /// Group `g`'s creator creates it.
    CreateGroup {
        g: usize,
    },
    /// Group `g`'s creator adds the late members.
    AddLateMembers {
        g: usize,
    },
    /// Planned 1:1 or group message `m` (index in the journal).
    SendConversation {
        m: usize,
    },
    Snapshot,
    Tick,
}

/// `sel` drawn from `pool` (explicit nodes first, then `count` and `fraction × nodes` more at
/// random among the rest of the pool), sorted.
fn select(sel: &NodeSelect, nodes: usize, pool: &[usize], rng: &mut Rng) -> Vec<usize> {
    let mut out: Vec<usize> = sel.nodes.iter().copied().filter(|&v| v < nodes).collect();
    let extra = sel.count.unwrap_or(0)
        + sel
            .fraction
            .map_or(0, |f| (f.clamp(0.0, 1.0) * nodes as f64).floor() as usize);
    if extra > 0 {
        let mut rest: Vec<usize> = pool.iter().copied().filter(|v| !out.contains(v)).collect();
        rest.shuffle(rng);
        out.extend(rest.into_iter().take(extra));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Exponential sample with mean `mean_ms` (at least 1 ms).
fn exp_ms(mean_ms: f64, rng: &mut Rng) -> u64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    ((-u.ln() * mean_ms).round() as u64).max(1)
}

/// Send times (relative to the start) of `schedule`'s messages up to `end_ms`, with their
/// numbers; Poisson gaps come from `rng`.
fn schedule_times(schedule: &Schedule, end_ms: u64, rng: &mut Rng) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut t = schedule.first_at_ms;
    for i in 0..schedule.messages {
        if t > end_ms {
            break;
        }
        out.push((i, t));
        t = t.saturating_add(if schedule.poisson {
            exp_ms(schedule.interval_ms as f64, rng)
        } else {
            schedule.interval_ms
        });
    }
    out
}

/// The conversations of a scenario, drawn before the nodes are built (MVDS is a node setting).
struct ConversationPlan {
    /// Per node: send through MVDS.
    datasync: Vec<bool>,
    /// Controls to schedule, at times relative to the start.
    controls: Vec<(u64, Control)>,
}

/// Draws the pairs, groups and their messages into `journal` (see the module docs).
fn plan_conversations(
    scenario: &Scenario,
    n: usize,
    non_ms: &[usize],
    end_ms: u64,
    rng: &mut Rng,
    journal: &mut Journal,
) -> Result<ConversationPlan, ScenarioError> {
    let mut assigned: Vec<Option<bool>> = vec![None; n];
    let mut controls = Vec::new();
    let compatible =
        |assigned: &[Option<bool>], v: usize, mvds: bool| assigned[v].is_none_or(|a| a == mvds);
    let pool_for = |assigned: &[Option<bool>], mvds: bool| -> Vec<usize> {
        non_ms
            .iter()
            .copied()
            .filter(|&v| compatible(assigned, v, mvds))
            .collect()
    };
    let mut used_pairs: std::collections::BTreeSet<(usize, usize)> = Default::default();
    let mut pair_index = 0usize;
    for spec in &scenario.traffic.one_to_one {
        let mvds = spec.mvds;
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for &[a, b] in &spec.explicit {
            for v in [a, b] {
                if !compatible(&assigned, v, mvds) {
                    return Err(ScenarioError::Invalid {
                        field: "traffic.one_to_one.explicit",
                        reason: format!(
                            "node {v} is in MVDS and non-MVDS conversations; MVDS is a node \
                             setting (conversations.datasync)"
                        ),
                    });
                }
                assigned[v] = Some(mvds);
            }
            used_pairs.insert((a.min(b), a.max(b)));
            pairs.push((a, b));
        }
        let pool = pool_for(&assigned, mvds);
        let mut drawn = 0;
        let mut attempts = 0;
        while drawn < spec.pairs && attempts < spec.pairs * PAIR_DRAW_ATTEMPTS && pool.len() >= 2 {
            attempts += 1;
            let a = pool[rng.gen_range(0..pool.len())];
            let b = pool[rng.gen_range(0..pool.len())];
            if a != b && used_pairs.insert((a.min(b), a.max(b))) {
                pairs.push((a, b));
                drawn += 1;
            }
        }
        if drawn < spec.pairs {
            // Nearly every pair is wanted: enumerate what is left.
            let mut rest: Vec<(usize, usize)> = Vec::new();
            for (i, &a) in pool.iter().enumerate() {
                for &b in &pool[i + 1..] {
                    if !used_pairs.contains(&(a.min(b), a.max(b))) {
                        rest.push((a, b));
                    }
                }
            }
            if rest.len() < spec.pairs - drawn {
                return Err(ScenarioError::TooManySelected {
                    field: "traffic.one_to_one.pairs",
                    wanted: spec.pairs,
                    nodes: pool.len(),
                });
            }
            rest.shuffle(rng);
            for (a, b) in rest.into_iter().take(spec.pairs - drawn) {
                used_pairs.insert((a.min(b), a.max(b)));
                pairs.push((a, b));
            }
        }
        for &(a, b) in &pairs {
            assigned[a] = Some(mvds);
            assigned[b] = Some(mvds);
        }
        for (a, b) in pairs {
            let p = pair_index;
            pair_index += 1;
            let chat = format!("dm:{}-{}", a.min(b), a.max(b));
            for (i, t) in schedule_times(&spec.schedule, end_ms, rng) {
                let (author, to) = if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
                let m = journal.plan(
                    TrafficKind::Dm,
                    format!("dm {p}.{i} {author}->{to}"),
                    author,
                    chat.clone(),
                    mvds,
                    t,
                    Some(to),
                    None,
                );
                controls.push((t, Control::SendConversation { m }));
            }
        }
    }
    for spec in &scenario.traffic.groups {
        let mvds = spec.mvds;
        let need = spec.size + spec.late_members;
        let among = if spec.among.is_empty() {
            non_ms.to_vec()
        } else {
            select(&spec.among, n, non_ms, rng)
        };
        for _ in 0..spec.groups {
            let mut pool: Vec<usize> = pool_for(&assigned, mvds)
                .into_iter()
                .filter(|v| among.contains(v))
                .collect();
            if pool.len() < need {
                return Err(ScenarioError::TooManySelected {
                    field: "traffic.groups",
                    wanted: need,
                    nodes: pool.len(),
                });
            }
            pool.shuffle(rng);
            pool.truncate(need);
            for &v in &pool {
                assigned[v] = Some(mvds);
            }
            let late = pool.split_off(spec.size);
            let g = journal.groups.len();
            let name = format!("group-{g}");
            let late_at = spec.late_at_ms.unwrap_or(u64::MAX);
            controls.push((spec.create_at_ms, Control::CreateGroup { g }));
            if !late.is_empty() {
                controls.push((late_at, Control::AddLateMembers { g }));
            }
            journal.add_group(GroupState {
                name: name.clone(),
                creator: pool[0],
                initial: pool.clone(),
                late: late.clone(),
                id: None,
                members: Vec::new(),
            });
            for (i, t) in schedule_times(&spec.schedule, end_ms, rng) {
                let mut candidates = pool.clone();
                if t >= late_at {
                    candidates.extend(&late);
                }
                let author = candidates[rng.gen_range(0..candidates.len())];
                let m = journal.plan(
                    TrafficKind::Group,
                    format!("group {g}.{i} from {author}"),
                    author,
                    name.clone(),
                    mvds,
                    t,
                    None,
                    Some(g),
                );
                controls.push((t, Control::SendConversation { m }));
            }
        }
    }
    Ok(ConversationPlan {
        datasync: assigned.iter().map(|a| *a == Some(true)).collect(),
        controls,
    })
}

struct State {
    edges: Vec<(usize, usize)>,
    edge_link: Vec<Option<LinkId>>,
    incident: Vec<Vec<usize>>,
    /// How many offline periods (churn, windows) hold each node offline.
    offline: Vec<u32>,
    crashed: Vec<bool>,
    /// Per node: bumped each time it goes down (stales its pending history controls).
    epoch: Vec<u64>,
    /// Per node: when it went down, if no history request has covered that since.
    uncovered_since: Vec<Option<Time>>,
    /// Per node: the start (before the margin) of its last history request.
    requested_since: Vec<Option<Time>>,
    /// Per partition: active, and which nodes are on the cut-off side.
    partitions: Vec<(bool, Vec<bool>)>,
    joined: Vec<Vec<usize>>,
    redial_delay_ms: u64,
}

impl State {
    fn up(&self, v: usize) -> bool {
        self.offline[v] == 0 && !self.crashed[v]
    }
    fn allowed(&self, e: usize) -> bool {
        let (a, b) = self.edges[e];
        self.up(a)
            && self.up(b)
            && !self
                .partitions
                .iter()
                .any(|(active, side)| *active && side[a] != side[b])
    }
}

/// How far a run is, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Simulated time covered, ms since the start.
    pub simulated_ms: u64,
    /// The run's length, ms.
    pub end_ms: u64,
    /// Events processed so far.
    pub events: u64,
}

/// Runs `scenario` with hosts from `make`, calling `progress` as it goes ([`PROGRESS_STEPS`]
/// times over the simulated span, and at the end).
pub fn run_scenario_full<H, F>(
    scenario: &Scenario,
    seed: u64,
    mut make: F,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutput, SimError>
where
    H: Host,
    F: FnMut(Spawn) -> Result<H, NodeError>,
{
    // Measures the host program, not the simulation: wall time never enters the trace.
    let wall_start = std::time::Instant::now();
    scenario.validate()?;
    scenario.unsupported()?;
    let n = scenario.nodes;
    let start = Time::from_millis(scenario.start_ms);
    let end_ms = scenario.end_ms();
    let end = start.plus_millis(end_ms);

    let mut master = rng_from_seed(seed_from_u64(seed));
    let mut keys_rng = rng_from_seed(child_seed(&mut master));
    let mut topology_rng = rng_from_seed(child_seed(&mut master));
    let net_seed = child_seed(&mut master);
    let mut dial_rng = rng_from_seed(child_seed(&mut master));
    let mut traffic_rng = rng_from_seed(child_seed(&mut master));
    let mut role_rng = rng_from_seed(child_seed(&mut master));
    let mut fault_rng = rng_from_seed(child_seed(&mut master));
    let mut spy_rng = rng_from_seed(child_seed(&mut master));
    // Drawn last so that scenarios without conversations keep every other stream.
    let mut conversation_rng = rng_from_seed(child_seed(&mut master));

    let all: Vec<usize> = (0..n).collect();
    let mut roles = vec![Role::Full; n];
    for spec in &scenario.roles {
        let pool: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&v| roles[v] == Role::Full)
            .collect();
        for v in select(&spec.select, n, &pool, &mut role_rng) {
            roles[v] = spec.role;
        }
    }

    let mailservers: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&v| roles[v] == Role::Mailserver)
        .collect();
    // Infrastructure: default pools for members, churn and clients leave mailservers out.
    let non_ms: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&v| roles[v] != Role::Mailserver)
        .collect();
    let history = &scenario.history;
    let mut is_client = vec![false; n];
    if history.use_mailserver {
        if mailservers.is_empty() {
            return Err(ScenarioError::NoMailserver.into());
        }
        let clients = if history.clients.is_empty() {
            non_ms.clone()
        } else {
            select(&history.clients, n, &non_ms, &mut role_rng)
        };
        for v in clients {
            is_client[v] = roles[v] != Role::Mailserver;
        }
    }

    // Conversations: drawn before the nodes are built, since MVDS is a node setting.
    let keep_persisted = scenario
        .crashes
        .iter()
        .any(|c| c.state == CrashState::Kept && c.restart_after_ms.is_some());
    let mut journal = Journal::new(start, n, keep_persisted);
    let plan = plan_conversations(
        scenario,
        n,
        &non_ms,
        end_ms,
        &mut conversation_rng,
        &mut journal,
    )?;
    let datasync = plan.datasync;
    // Steady state: each node last published its code at a uniform time in the period before
    // the start, as in a network that has been running longer than one period (a stream of
    // its own, so that every other draw is unchanged).
    let codes_seed = child_seed(&mut master);
    let contact_codes: Vec<ContactCodes> = {
        let mut rng = rng_from_seed(codes_seed);
        let interval_ms = scenario.node.contact_code_interval_ms;
        (0..n)
            .map(|_| ContactCodes {
                publish: scenario.node.contact_codes,
                interval_ms,
                last_published_ms: match scenario.node.contact_code_start {
                    ContactCodeStart::SteadyState => Some(
                        start
                            .as_millis()
                            .saturating_sub(rng.gen_range(0..interval_ms.max(1))),
                    ),
                    ContactCodeStart::Fresh => None,
                },
            })
            .collect()
    };
    let payload_format = scenario.node.payload_format.setting();

    #[allow(clippy::too_many_arguments)]
    fn spawn<H, F: FnMut(Spawn) -> Result<H, NodeError>>(
        make: &mut F,
        index: usize,
        role: Role,
        mailservers: &[NodePublicKey],
        keys: &mut Rng,
        now: Time,
        datasync: bool,
        contact_codes: ContactCodes,
        payload_format: FormatSetting,
    ) -> Result<(H, [u8; 32]), SimError> {
        let node_seed = child_seed(keys);
        let mut attempt = 0;
        loop {
            let secret_key = child_seed(keys);
            let s = Spawn {
                index,
                role,
                secret_key,
                seed: node_seed,
                now,
                mailservers: mailservers.to_vec(),
                datasync,
                contact_codes,
                payload_format,
                records: None,
            };
            match make(s) {
                Ok(h) => return Ok((h, secret_key)),
                Err(NodeError::InvalidSecretKey) if attempt + 1 < MAX_KEY_ATTEMPTS => attempt += 1,
                Err(source) => {
                    return Err(SimError::Host {
                        node: index,
                        source,
                    })
                }
            }
        }
    }
    // Mailservers first, so that their clients can be configured with their keys; without
    // mailservers this is index order.
    let mut spawned: Vec<Option<(H, [u8; 32])>> = (0..n).map(|_| None).collect();
    let mut mailserver_keys: Vec<NodePublicKey> = Vec::new();
    for &i in mailservers.iter().chain(&non_ms) {
        let trusted: &[NodePublicKey] = if is_client[i] { &mailserver_keys } else { &[] };
        let (h, sk) = spawn(
            &mut make,
            i,
            roles[i],
            trusted,
            &mut keys_rng,
            start,
            datasync[i],
            contact_codes[i],
            payload_format,
        )?;
        if roles[i] == Role::Mailserver {
            mailserver_keys.push(h.public_key());
        }
        spawned[i] = Some((h, sk));
    }
    let (hosts, mut secret_keys): (Vec<H>, Vec<[u8; 32]>) = spawned.into_iter().flatten().unzip();
    // The contact keys users exchanged: a restart with a new key does not change them.
    let contact_keys: Vec<NodePublicKey> = hosts.iter().map(|h| h.public_key()).collect();
    for (i, k) in contact_keys.iter().enumerate() {
        journal.set_key(i, *k);
    }
    let journal = Rc::new(RefCell::new(journal));
    // Which topics are public chats and which contact codes, for the duplicate factor per kind
    // (a relay cannot tell; the simulator knows every chat and key).
    let topic_classes = topic_classes(&scenario.public_chats(), &contact_keys);
    let hosts: Vec<Tracked<H>> = hosts
        .into_iter()
        .map(|mut h| {
            h.set_topic_classes(topic_classes.clone());
            h
        })
        .enumerate()
        .map(|(i, h)| Tracked::new(h, i, journal.clone(), start))
        .collect();

    let topology = scenario.topology_spec();
    let mut edges = build(&topology, n, &mut topology_rng)?;
    // Each client's own link to each mailserver (the client dials), unless the overlay has it.
    if is_client.iter().any(|&c| c) {
        let mut present: std::collections::BTreeSet<(usize, usize)> =
            edges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
        for c in (0..n).filter(|&v| is_client[v]) {
            for &m in &mailservers {
                if present.insert((c.min(m), c.max(m))) {
                    edges.push((c, m));
                }
            }
        }
    }
    let model = LinkModel {
        latency: scenario.latency_dist(),
        bandwidth_kbps: scenario.link.bandwidth_kbps,
        loss: scenario.link.loss,
        rto_ms: scenario.link.rto_ms.unwrap_or(DEFAULT_RTO_MS),
        duplication: scenario.link.duplication,
        jitter_ms: scenario.link.jitter_ms,
    };
    let mut sim = Sim::new(start, hosts, Network::with_model(model, net_seed));
    let mut controls: EventQueue<Control> = EventQueue::new();

    // Dials.
    for e in 0..edges.len() {
        let at = start.plus_millis(dial_rng.gen_range(0..=scenario.connect_window_ms));
        controls.push(at, Control::Dial { edge: e });
    }

    // Traffic.
    let chats = scenario.public_chats();
    let mut members_of = Vec::with_capacity(chats.len());
    let mut first_message_ms = u64::MAX;
    let mut members_total = 0;
    let mut public_planned = 0u64;
    for (c, chat) in chats.iter().enumerate() {
        let members = if chat.members.is_empty() {
            non_ms.clone()
        } else {
            select(&chat.members, n, &non_ms, &mut traffic_rng)
        };
        sim.metrics_mut()
            .set_chat_members(&chat.chat, members.len() as u64);
        members_total = members_total.max(members.len());
        for &v in &members {
            controls.push(
                start.plus_millis(scenario.join_at_ms),
                Control::Join { node: v, chat: c },
            );
        }
        let s = &chat.schedule;
        let mut t = s.first_at_ms;
        for i in 0..s.messages {
            if members.is_empty() || t > end_ms {
                break;
            }
            first_message_ms = first_message_ms.min(t);
            public_planned += 1;
            let author = members[traffic_rng.gen_range(0..members.len())];
            controls.push(
                start.plus_millis(t),
                Control::Send {
                    node: author,
                    chat: c,
                    n: i,
                },
            );
            t = t.saturating_add(if s.poisson {
                exp_ms(s.interval_ms as f64, &mut traffic_rng)
            } else {
                s.interval_ms
            });
        }
        members_of.push(members);
    }
    for (t, c) in plan.controls {
        if t <= end_ms {
            controls.push(start.plus_millis(t), c);
        }
    }
    if first_message_ms != u64::MAX {
        controls.push(start.plus_millis(first_message_ms), Control::Snapshot);
    }

    // Faults.
    let mut partitions = Vec::new();
    for (p, spec) in scenario.partitions.iter().enumerate() {
        let side_nodes = select(&spec.side, n, &all, &mut fault_rng);
        let mut side = vec![false; n];
        for v in side_nodes {
            side[v] = true;
        }
        partitions.push((false, side));
        controls.push(start.plus_millis(spec.at_ms), Control::PartitionStart { p });
        if let Some(h) = spec.heal_ms {
            controls.push(start.plus_millis(h), Control::PartitionHeal { p });
        }
    }
    let spies = select(
        &NodeSelect {
            fraction: Some(scenario.privacy.spy_fraction),
            ..NodeSelect::default()
        },
        n,
        &all,
        &mut spy_rng,
    );
    sim.metrics_mut().set_spies(&spies);
    sim.metrics_mut().set_mailservers(&mailservers);
    if let Some(churn) = &scenario.churn {
        let pool: Vec<usize> = non_ms
            .iter()
            .copied()
            .filter(|v| !spies.contains(v))
            .collect();
        let churners = if churn.select.is_empty() {
            pool
        } else {
            select(&churn.select, n, &pool, &mut fault_rng)
        };
        let f = churn.offline_fraction;
        let on_mean = churn.mean_online_ms as f64;
        let off_mean = on_mean * f / (1.0 - f);
        if f > 0.0 {
            for v in churners {
                // Start in the stationary state: offline with probability f.
                let mut offline = fault_rng.gen_bool(f);
                let mut t = churn.start_ms;
                if offline {
                    controls.push(start.plus_millis(t), Control::Offline { node: v });
                }
                while t < end_ms {
                    t = t.saturating_add(exp_ms(
                        if offline { off_mean } else { on_mean },
                        &mut fault_rng,
                    ));
                    offline = !offline;
                    if t < end_ms {
                        let c = if offline {
                            Control::Offline { node: v }
                        } else {
                            Control::Online { node: v }
                        };
                        controls.push(start.plus_millis(t), c);
                    }
                }
            }
        }
    }
    for spec in &scenario.crashes {
        for v in select(&spec.select, n, &all, &mut fault_rng) {
            controls.push(start.plus_millis(spec.at_ms), Control::Crash { node: v });
            if let Some(after) = spec.restart_after_ms {
                controls.push(
                    start.plus_millis(spec.at_ms.saturating_add(after)),
                    Control::Restart {
                        node: v,
                        state: spec.state,
                    },
                );
            }
        }
    }
    for spec in &scenario.offline {
        for v in select(&spec.select, n, &non_ms, &mut fault_rng) {
            controls.push(start.plus_millis(spec.at_ms), Control::Offline { node: v });
            controls.push(
                start.plus_millis(spec.at_ms.saturating_add(spec.duration_ms)),
                Control::Online { node: v },
            );
        }
    }
    let step = (end_ms / PROGRESS_STEPS).max(1);
    let mut t = step;
    while t < end_ms {
        controls.push(start.plus_millis(t), Control::Tick);
        t += step;
    }

    let mut incident = vec![Vec::new(); n];
    for (e, &(a, b)) in edges.iter().enumerate() {
        incident[a].push(e);
        incident[b].push(e);
    }
    let mut st = State {
        edge_link: vec![None; edges.len()],
        edges: edges.clone(),
        incident,
        offline: vec![0; n],
        crashed: vec![false; n],
        epoch: vec![0; n],
        uncovered_since: vec![None; n],
        requested_since: vec![None; n],
        partitions,
        joined: vec![Vec::new(); n],
        redial_delay_ms: scenario.redial_delay_ms,
    };
    let mut retired_stats = HostStats::default();
    let mut messages_skipped = 0u64;
    let mut public_send_commands = 0u64;
    let mut restarts = 0u64;
    let mut history_retries = 0u64;
    let mut history_abandoned = 0u64;
    let mut archive_restored = 0u64;
    let mut snapshot: Option<Vec<NodeTraffic>> = None;

    let mut outcome = RunOutcome::ReachedEnd;
    while let Some(at) = controls.peek_time() {
        if at > end {
            break;
        }
        outcome = sim.run_until(at, scenario.max_events);
        if outcome == RunOutcome::EventCap {
            break;
        }
        let Some((now, _, control)) = controls.pop() else {
            break;
        };
        let dial_later = |st: &State, e: usize, controls: &mut EventQueue<Control>| {
            if st.allowed(e) {
                controls.push(
                    now.plus_millis(st.redial_delay_ms),
                    Control::Dial { edge: e },
                );
            }
        };
        match control {
            Control::Join { node, chat } => {
                if !st.joined[node].contains(&chat) {
                    st.joined[node].push(chat);
                }
                if !st.crashed[node] {
                    let name = chats[chat].chat.clone();
                    sim.schedule_command(now, node, Command::JoinPublicChat { name })?;
                }
            }
            Control::Send { node, chat, n: i } => {
                if st.up(node) {
                    public_send_commands += 1;
                    let text = format!("message {i} in {} from node {node}", chats[chat].chat);
                    sim.schedule_command(
                        now,
                        node,
                        Command::SendPublicMessage {
                            chat: chats[chat].chat.clone(),
                            text,
                        },
                    )?;
                } else {
                    messages_skipped += 1;
                }
            }
            Control::Dial { edge } => {
                let alive = st.edge_link[edge].is_some_and(|l| sim.link_alive(l));
                if st.allowed(edge) && !alive {
                    let (a, b) = st.edges[edge];
                    st.edge_link[edge] = Some(sim.connect(now, a, b)?);
                }
            }
            Control::PartitionStart { p } => {
                st.partitions[p].0 = true;
                for e in 0..st.edges.len() {
                    if !st.allowed(e) {
                        if let Some(l) = st.edge_link[e] {
                            sim.close_link(l);
                        }
                    }
                }
            }
            Control::PartitionHeal { p } => {
                st.partitions[p].0 = false;
                let side = &st.partitions[p].1;
                let crossing: Vec<usize> = (0..st.edges.len())
                    .filter(|&e| {
                        let (a, b) = st.edges[e];
                        side[a] != side[b]
                    })
                    .collect();
                for e in crossing {
                    dial_later(&st, e, &mut controls);
                }
            }
            Control::Offline { node } | Control::Crash { node } => {
                let was_up = st.up(node);
                if matches!(control, Control::Crash { .. }) {
                    st.crashed[node] = true;
                    if let Some(c) = journal.borrow_mut().crashed.get_mut(node) {
                        *c = true;
                    }
                    if let Some(h) = sim.host(node) {
                        retired_stats.add(&h.stats());
                    }
                } else {
                    st.offline[node] += 1;
                }
                if was_up {
                    went_down(&mut st, node, now, is_client[node], sim.metrics());
                }
                for &e in &st.incident[node] {
                    if let Some(l) = st.edge_link[e] {
                        sim.close_link(l);
                    }
                }
            }
            Control::Online { node } => {
                let was_up = st.up(node);
                st.offline[node] = st.offline[node].saturating_sub(1);
                for &e in &st.incident[node] {
                    dial_later(&st, e, &mut controls);
                }
                if !was_up && st.up(node) && is_client[node] {
                    came_up(&st, node, now, history, &mut controls);
                }
            }
            Control::Restart { node, state } => {
                let trusted: &[NodePublicKey] = if is_client[node] {
                    &mailserver_keys
                } else {
                    &[]
                };
                let (records, public, own) = if state == CrashState::Kept {
                    conversations::restore_parts(&journal.borrow(), node)
                } else {
                    let mut j = journal.borrow_mut();
                    j.records[node].clear();
                    j.public[node].clear();
                    j.own_envelopes[node].clear();
                    j.lost_restarts[node] += 1;
                    (Vec::new(), Vec::new(), Vec::new())
                };
                let (host, sk) = match state {
                    CrashState::Kept | CrashState::Lost => {
                        let kept = state == CrashState::Kept;
                        if !kept {
                            sim.clear_archive(node);
                        }
                        let s = Spawn {
                            index: node,
                            role: roles[node],
                            secret_key: secret_keys[node],
                            seed: child_seed(&mut fault_rng),
                            now,
                            mailservers: trusted.to_vec(),
                            datasync: datasync[node],
                            // A kept node remembers when it last published (its records say
                            // so if it published during the run); a lost one starts afresh.
                            contact_codes: ContactCodes {
                                last_published_ms: contact_codes[node]
                                    .last_published_ms
                                    .filter(|_| kept),
                                ..contact_codes[node]
                            },
                            payload_format,
                            records: kept.then_some(records),
                        };
                        let mut h = make(s).map_err(|source| SimError::Host { node, source })?;
                        if kept && roles[node] == Role::Mailserver {
                            // What the driver does at start: replay the archive table.
                            for raw in sim.archived(node) {
                                if h.restore_archived(raw)
                                    .map_err(|source| SimError::Host { node, source })?
                                {
                                    archive_restored += 1;
                                }
                            }
                        }
                        if kept {
                            // What the driver does at start: pool again our own posts that had
                            // not been gossiped (expired ones are refused, as in the driver).
                            for raw in &own {
                                h.restore_own_envelope(now, raw)
                                    .map_err(|source| SimError::Host { node, source })?;
                            }
                        }
                        (h, secret_keys[node])
                    }
                    CrashState::NewKey => {
                        sim.clear_archive(node);
                        spawn(
                            &mut make,
                            node,
                            roles[node],
                            trusted,
                            &mut fault_rng,
                            now,
                            datasync[node],
                            ContactCodes {
                                last_published_ms: None,
                                ..contact_codes[node]
                            },
                            payload_format,
                        )?
                    }
                };
                secret_keys[node] = sk;
                {
                    let mut j = journal.borrow_mut();
                    j.set_key(node, host.public_key());
                    j.crashed[node] = false;
                }
                let mut host = host;
                host.set_topic_classes(topic_classes.clone());
                let host = Tracked::new(host, node, journal.clone(), now).with_public(public);
                sim.replace_host(node, host)?;
                sim.metrics_mut().on_restart(node);
                restarts += 1;
                st.crashed[node] = false;
                for &chat in &st.joined[node] {
                    let name = chats[chat].chat.clone();
                    sim.schedule_command(now, node, Command::JoinPublicChat { name })?;
                }
                for &e in &st.incident[node] {
                    dial_later(&st, e, &mut controls);
                }
                if st.up(node) && is_client[node] {
                    came_up(&st, node, now, history, &mut controls);
                }
            }
            Control::RequestHistory {
                node,
                epoch,
                attempt,
            } => {
                let Some(down_at) = st.uncovered_since[node] else {
                    continue;
                };
                if st.epoch[node] != epoch || !st.up(node) {
                    continue;
                }
                let since_secs = down_at.as_millis().saturating_sub(history.margin_ms) / 1_000;
                let mut failed = false;
                for &chat in &st.joined[node] {
                    match sim.request_history(node, &chats[chat].chat, Some(since_secs)) {
                        Ok(()) => {}
                        Err(EngineError::Host { .. }) => failed = true,
                        Err(e) => return Err(e.into()),
                    }
                }
                if !failed {
                    st.requested_since[node] = Some(down_at);
                    st.uncovered_since[node] = None;
                } else if attempt < history.max_attempts {
                    history_retries += 1;
                    controls.push(
                        now.plus_millis(history.retry_interval_ms),
                        Control::RequestHistory {
                            node,
                            epoch,
                            attempt: attempt + 1,
                        },
                    );
                } else {
                    // Still uncovered: the next return asks from the same start.
                    history_abandoned += 1;
                }
            }
            Control::CreateGroup { g } => {
                let (creator, name, others) = {
                    let j = journal.borrow();
                    let group = &j.groups[g];
                    (
                        group.creator,
                        group.name.clone(),
                        group.initial[1..].to_vec(),
                    )
                };
                if st.up(creator) {
                    let members = others.iter().map(|&v| contact_keys[v]).collect();
                    sim.schedule_command(now, creator, Command::CreateGroup { name, members })?;
                } else {
                    controls.push(now.plus_millis(GROUP_RETRY_MS), control);
                }
            }
            Control::AddLateMembers { g } => {
                let (creator, id, late) = {
                    let j = journal.borrow();
                    let group = &j.groups[g];
                    (group.creator, group.id.clone(), group.late.clone())
                };
                match id {
                    Some(group) if st.up(creator) => {
                        for v in late {
                            sim.schedule_command(
                                now,
                                creator,
                                Command::AddGroupMember {
                                    group: group.clone(),
                                    member: contact_keys[v],
                                },
                            )?;
                        }
                    }
                    _ => {
                        controls.push(now.plus_millis(GROUP_RETRY_MS), control);
                    }
                }
            }
            Control::SendConversation { m } => {
                let (author, text, recipient, group) = {
                    let j = journal.borrow();
                    let r = &j.messages[m];
                    let group = r.group_index().map(|g| j.groups[g].id.clone());
                    (r.author, r.text.clone(), r.recipient(), group)
                };
                if !st.up(author) {
                    journal.borrow_mut().skipped_offline(m);
                    continue;
                }
                let command = match (recipient, group) {
                    (Some(to), _) => Command::SendDirect {
                        to: contact_keys[to],
                        text,
                    },
                    (None, Some(Some(group))) => Command::SendGroup { group, text },
                    _ => {
                        journal.borrow_mut().skipped_no_group(m);
                        continue;
                    }
                };
                sim.schedule_command(now, author, command)?;
            }
            Control::Snapshot => snapshot = Some(sim.metrics().per_node.clone()),
            Control::Tick => progress(Progress {
                simulated_ms: now.millis_since(start),
                end_ms,
                events: sim.events(),
            }),
        }
    }
    if outcome != RunOutcome::EventCap {
        outcome = sim.run_until(end, scenario.max_events);
    }
    progress(Progress {
        simulated_ms: sim.now().millis_since(start),
        end_ms,
        events: sim.events(),
    });

    let m = sim.metrics();
    let c = sim.counters();
    let deliveries_expected: u64 = m.messages.iter().map(|r| r.expected).sum();
    let delivery_ratio = if deliveries_expected == 0 {
        1.0
    } else {
        m.deliveries as f64 / deliveries_expected as f64
    };
    let lat = m.sorted_latencies_ms();
    let mut host_stats = retired_stats;
    for h in sim.hosts() {
        host_stats.add(&h.stats());
    }
    let (guessed, correct) = m.first_spy_score();
    let honest = n - spies.len();
    let privacy = (!spies.is_empty()).then(|| PrivacySummary {
        spies: spies.len(),
        messages_by_honest: m.messages_by_honest(),
        messages_seen_by_spies: guessed,
        correct_guesses: correct,
        precision: if guessed == 0 {
            None
        } else {
            Some(correct as f64 / guessed as f64)
        },
        random_guess_baseline: if honest == 0 {
            0.0
        } else {
            1.0 / honest as f64
        },
    });
    let mut ups: Vec<u64> = m.per_node.iter().map(|t| t.bytes_up).collect();
    let mut downs: Vec<u64> = m.per_node.iter().map(|t| t.bytes_down).collect();
    ups.sort_unstable();
    downs.sort_unstable();
    let amplification = (host_stats.envelopes_pooled > 0)
        .then(|| host_stats.envelopes_received as f64 / host_stats.envelopes_pooled as f64);
    // Traffic during the message phase only: from the first message to the end.
    let phase_down: u64 = match &snapshot {
        Some(snap) => m
            .per_node
            .iter()
            .zip(snap)
            .map(|(now, then)| now.bytes_down - then.bytes_down)
            .sum(),
        None => 0,
    };
    let duplicate_factor = crate::metrics::DuplicateFactors::new(&host_stats, n, edges.len());
    let model = scenario.model.as_ref().map(|spec| match spec {
        ModelSpec::WhisperScalability {
            users,
            received_messages_per_day,
        } => whisper_scalability(
            users.unwrap_or(n as u64),
            *received_messages_per_day,
            n as u64,
            m.messages_sent,
            phase_down,
            // On chat envelopes alone: contact codes are not the model's traffic.
            duplicate_factor.public.factor,
        ),
    });
    let mut by_kind = std::collections::BTreeMap::new();
    let mut public = KindSummary {
        messages_planned: public_planned,
        messages_skipped_offline: messages_skipped,
        messages_refused: public_send_commands.saturating_sub(m.messages_sent),
        messages_sent: m.messages_sent,
        deliveries_expected,
        deliveries: m.deliveries,
        duplicate_deliveries: m.duplicate_deliveries,
        redeliveries_after_restart: m.redeliveries_after_restart,
        unknown_deliveries: m.unknown_deliveries,
        ..KindSummary::default()
    };
    public.finish(&lat);
    by_kind.insert(TrafficKind::Public.name().to_string(), public);
    let j = journal.borrow();
    for (kind, k) in j.summaries() {
        by_kind.insert(kind.name().to_string(), k);
    }
    let mut role_counts = std::collections::BTreeMap::new();
    for r in &roles {
        *role_counts
            .entry(format!("{r:?}").to_lowercase())
            .or_insert(0usize) += 1;
    }
    let summary = Summary {
        description: scenario.description.clone(),
        seed,
        nodes: n,
        degree: scenario.degree,
        topology: format!("{topology:?}"),
        roles: role_counts,
        links: edges.len(),
        members: members_total,
        messages_requested: chats.iter().map(|c| u64::from(c.schedule.messages)).sum(),
        messages_skipped_offline: messages_skipped,
        messages_sent: m.messages_sent,
        deliveries_expected,
        deliveries: m.deliveries,
        delivery_ratio,
        duplicate_deliveries: m.duplicate_deliveries,
        redeliveries_after_restart: m.redeliveries_after_restart,
        deliveries_live: m.deliveries_live,
        deliveries_history: m.deliveries_history,
        delivery_ratio_live: if deliveries_expected == 0 {
            1.0
        } else {
            m.deliveries_live as f64 / deliveries_expected as f64
        },
        history_requests_sent: m.history_requests_sent,
        history_pages_completed: m.history_pages_completed,
        history_requests_refused: m.history_requests_refused,
        history_request_retries: history_retries,
        history_requests_abandoned: history_abandoned,
        archived_envelopes: sim.archived_envelopes(),
        archive_restored,
        self_deliveries: m.self_deliveries,
        unknown_deliveries: m.unknown_deliveries,
        latency_ms_p50: percentile_nearest_rank(&lat, 50),
        latency_ms_p90: percentile_nearest_rank(&lat, 90),
        latency_ms_p99: percentile_nearest_rank(&lat, 99),
        latency_ms_max: lat.last().copied(),
        peers_connected: m.peers_connected,
        peers_disconnected: m.peers_disconnected,
        bytes_sent_total: m.bytes_sent_total,
        bytes_dropped: c.bytes_dropped,
        wire_bytes: c.wire_bytes,
        retransmits: c.retransmits,
        duplicated_chunks: c.duplicated_chunks,
        links_cut: c.links_cut,
        restarts,
        node_bytes_up_p50: percentile_nearest_rank(&ups, 50),
        node_bytes_up_max: ups.last().copied(),
        node_bytes_down_p50: percentile_nearest_rank(&downs, 50),
        node_bytes_down_max: downs.last().copied(),
        message_phase_bytes_down: phase_down,
        envelopes: host_stats,
        amplification,
        duplicate_factor,
        privacy,
        host_times: sim.host_times(),
        model,
        events: sim.events(),
        host_errors: c.host_errors,
        invalid_actions: c.invalid_actions,
        hit_event_cap: outcome == RunOutcome::EventCap,
        sim_duration_ms: sim.now().millis_since(start),
        trace_hash: sim.trace_hash(),
        wall_ms: u64::try_from(wall_start.elapsed().as_millis()).unwrap_or(u64::MAX),
        per_node: m.per_node.clone(),
        by_kind,
    };
    Ok(RunOutput {
        summary,
        messages: m.messages.clone(),
        latencies_ms: lat,
        deliveries_per_bucket: m.deliveries_per_bucket.clone(),
        conversation_messages: j.messages.clone(),
        fault_windows: scenario.fault_windows(),
    })
}

/// `node` stopped being up (offline or crashed) at `now`.
fn went_down(st: &mut State, node: NodeIndex, now: Time, client: bool, metrics: &Metrics) {
    st.epoch[node] += 1;
    if !client {
        return;
    }
    // A request still in flight was cut off: ask again from its start.
    if metrics.history_outstanding(node) > 0 {
        if let Some(r) = st.requested_since[node] {
            st.uncovered_since[node] = Some(st.uncovered_since[node].map_or(r, |u| u.min(r)));
        }
    }
    if st.uncovered_since[node].is_none() {
        st.uncovered_since[node] = Some(now);
    }
}

/// Client `node` is up again at `now`: schedule its history request.
fn came_up(
    st: &State,
    node: NodeIndex,
    now: Time,
    history: &crate::scenario::HistorySpec,
    controls: &mut EventQueue<Control>,
) {
    if history.use_mailserver && st.uncovered_since[node].is_some() {
        controls.push(
            now.plus_millis(history.request_delay_ms),
            Control::RequestHistory {
                node,
                epoch: st.epoch[node],
                attempt: 1,
            },
        );
    }
}

/// The first-spy estimator's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivacySummary {
    /// Nodes the adversary holds.
    pub spies: usize,
    /// Messages authored by honest nodes.
    pub messages_by_honest: u64,
    /// Of those, messages some spy received (the adversary guessed an originator).
    pub messages_seen_by_spies: u64,
    /// Guesses naming the true author.
    pub correct_guesses: u64,
    /// `correct_guesses / messages_seen_by_spies`.
    pub precision: Option<f64>,
    /// A uniform guess among honest nodes: `1 / honest nodes`.
    pub random_guess_baseline: f64,
}

#[cfg(test)]
mod tests;
