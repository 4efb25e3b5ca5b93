//! Scenarios: what to simulate.
//!
//! Contract: a [`Scenario`] is plain data, parsed from TOML (`docs/scenarios.md` documents
//! every field; `scenarios/*.toml` are examples). [`Scenario::default`] is the built-in default
//! (50 nodes, degree 4, 20–100 ms links, everyone in public chat `hush-sim`, 10 messages one
//! every 2 s from t = 5 s, 30 s to drain); `scenarios/default.toml` spells the same values out.
//!
//! Two layers of fields: the flat "simple" fields (`degree`, `latency_*`, `chat`, `messages`,
//! …) describe a random regular overlay with one public chat everyone joins; the optional
//! sections (`[topology]`, `[[roles]]`, `[link]`, `[[partitions]]`, `[churn]`, `[[crashes]]`,
//! `[[traffic.public]]`, `[[traffic.one_to_one]]`, `[[traffic.groups]]`, `[privacy]`,
//! `[model]`) override or extend them. Missing fields take the defaults, unknown fields are an
//! error. All times are ms relative to `start_ms` unless named otherwise.
//!
//! [`Scenario::validate`] rejects what cannot run with a typed [`ScenarioError`].
//! [`Scenario::unsupported`] names features the node does not have yet (none at the moment:
//! 1:1 pairs, private groups and MVDS run since the node gained them); it stays so that a
//! scenario file written for a future feature parses today and is refused with a clear error.
//!
//! Conversations (`[[traffic.one_to_one]]`, `[[traffic.groups]]`): see [`OneToOneSpec`] and
//! [`GroupSpec`]. MVDS (`mvds = true`) is a node setting (`ConversationsConfig::datasync`), so
//! the runner draws the participants of MVDS and non-MVDS conversations from disjoint sets of
//! nodes. `[node]` ([`NodeSpec`]) holds per-node application settings such as contact-code
//! publication.
//!
//! Mailservers: `[[roles]] role = "mailserver"` makes nodes archive every envelope and answer
//! history requests; `[history] use_mailserver = true` makes the clients (default: every node
//! that is not a mailserver) link to every mailserver and, each time they come back from being
//! offline, ask for the history they missed ([`HistorySpec`]).

use serde::{Deserialize, Serialize};

/// 2019-12-01T00:00:00Z in ms since the Unix epoch: the era of the protocol we simulate.
pub const DEFAULT_START_MS: u64 = 1_575_158_400_000;

/// Linux's minimum TCP retransmission timeout (`TCP_RTO_MIN`, 200 ms): the default cost of
/// one lost segment in the loss model.
pub const DEFAULT_RTO_MS: u64 = 200;

/// How long after a link becomes possible again (heal, return from churn, restart) its dialer
/// redials: a driver's reconnect back-off.
pub const DEFAULT_REDIAL_DELAY_MS: u64 = 1_000;

/// A scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A one-line description, printed at start.
    pub description: String,
    /// The master seed used when the command line gives none.
    pub seed: Option<u64>,
    /// Simulated wall-clock time at the start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Degree of the random regular topology (`nodes × degree` must be even), used when there
    /// is no `[topology]` section.
    pub degree: usize,
    /// Smallest one-way link latency (uniform), used when `[link].latency` is absent.
    pub latency_min_ms: u64,
    /// Largest one-way link latency (inclusive).
    pub latency_max_ms: u64,
    /// Dials happen at uniformly random times in `[0, connect_window_ms]`.
    pub connect_window_ms: u64,
    /// The public chat every node joins, used when there is no `[[traffic.public]]`.
    pub chat: String,
    /// When members join their chats.
    pub join_at_ms: u64,
    /// Number of messages in `chat`, each from a uniformly random member.
    pub messages: u32,
    /// When the first message is sent.
    pub first_message_at_ms: u64,
    /// Gap between consecutive messages.
    pub message_interval_ms: u64,
    /// How long to keep running after the last message.
    pub drain_ms: u64,
    /// Total simulated run length; if absent, last message + `drain_ms`.
    pub duration_ms: Option<u64>,
    /// Cap on processed events; hitting it is reported as a liveness failure.
    pub max_events: u64,
    /// Delay before a link that became possible again is redialed.
    pub redial_delay_ms: u64,
    /// Overlay shape (default: random regular of `degree`).
    pub topology: Option<TopologySpec>,
    /// Node roles; nodes not assigned are full nodes.
    pub roles: Vec<RoleSpec>,
    /// Link model.
    pub link: LinkSpec,
    /// Partitions and their heals.
    pub partitions: Vec<PartitionSpec>,
    /// Nodes going offline and back.
    pub churn: Option<ChurnSpec>,
    /// Crashes and restarts.
    pub crashes: Vec<CrashSpec>,
    /// Scheduled offline windows (churn at fixed times).
    pub offline: Vec<OfflineSpec>,
    /// How clients use mailservers.
    pub history: HistorySpec,
    /// Traffic (default: the flat `chat`/`messages` fields).
    pub traffic: TrafficSpec,
    /// The adversary for the privacy metric.
    pub privacy: PrivacySpec,
    /// Application settings of every node.
    pub node: NodeSpec,
    /// An analytical model to print beside the measurement.
    pub model: Option<ModelSpec>,
}

/// The overlay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TopologySpec {
    /// Random simple connected `degree`-regular graph.
    RandomRegular {
        /// Neighbours per node.
        degree: usize,
    },
    /// Erdős–Rényi G(n, p), redrawn until connected.
    ErdosRenyi {
        /// Probability of each edge.
        p: f64,
    },
    /// Barabási–Albert preferential attachment: each new node links to `m` existing ones.
    BarabasiAlbert {
        /// Edges per new node.
        m: usize,
    },
    /// An explicit edge list of node indices; the lower index dials.
    Edges {
        /// `[a, b]` pairs.
        edges: Vec<[usize; 2]>,
    },
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Relays every envelope (Whisper full node).
    Full,
    /// Whisper light node: advertises a topic bloom, does not relay (`whisper.light_node` +
    /// `whisper.topic_bloom`); Go refuses light↔light links, so do we.
    Light,
    /// A mailserver: a full node that also archives every envelope it pools and answers
    /// history requests from its clients (Whisper codes 125–127; `whisper.mailserver` set).
    /// It is not a chat member unless a chat's `members` names it, and it does not churn
    /// unless `[churn]` names it.
    Mailserver,
}

/// Which nodes: explicit indices, a count or a fraction of the nodes (drawn by the seed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSelect {
    /// Explicit node indices.
    pub nodes: Vec<usize>,
    /// This many more nodes, drawn at random.
    pub count: Option<usize>,
    /// This fraction of all nodes (rounded down), drawn at random.
    pub fraction: Option<f64>,
}

impl NodeSelect {
    /// Whether nothing at all is selected.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.count.is_none() && self.fraction.is_none()
    }
}

/// A role for some nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]

pub struct RoleSpec {
    /// The role.
    pub role: Role,
    /// Which nodes.
    #[serde(flatten)]
    pub select: NodeSelect,
}

/// A one-way latency distribution, drawn once per link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum LatencyDist {
    /// Always `ms`.
    Constant {
        /// Latency.
        ms: u64,
    },
    /// Uniform in `[min_ms, max_ms]`.
    Uniform {
        /// Lower bound.
        min_ms: u64,
        /// Upper bound (inclusive).
        max_ms: u64,
    },
    /// Normal, clamped to at least 0 ms.
    Normal {
        /// Mean.
        mean_ms: f64,
        /// Standard deviation.
        sd_ms: f64,
    },
    /// Log-normal: `exp(N(ln median_ms, sigma²))`.
    Lognormal {
        /// Median.
        median_ms: f64,
        /// Shape (standard deviation of the log).
        sigma: f64,
    },
}

/// The link model (see `crate::net` for the semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSpec {
    /// Per-link one-way latency (default: uniform `latency_min_ms..=latency_max_ms`).
    pub latency: Option<LatencyDist>,
    /// Per-direction bandwidth in kbit/s (serialisation delay, queued); absent = unlimited.
    pub bandwidth_kbps: Option<u64>,
    /// Probability that a chunk is lost once and retransmitted after `rto_ms` (repeatable).
    pub loss: f64,
    /// Retransmission timeout charged per loss (default [`DEFAULT_RTO_MS`]).
    pub rto_ms: Option<u64>,
    /// Probability that a chunk is sent twice (the copy costs bandwidth; TCP drops it).
    pub duplication: f64,
    /// Per-chunk extra delay, uniform in `[0, jitter_ms]`, still in order per direction: the
    /// only reordering a TCP stream shows is across connections.
    pub jitter_ms: u64,
}

/// How a partition treats the links crossing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionMode {
    /// Crossing links are closed at `at_ms` (both ends told) and redialed after the heal.
    #[default]
    Close,
}

/// A partition: the selected nodes are cut off from the rest between `at_ms` and `heal_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]

pub struct PartitionSpec {
    /// When it starts.
    pub at_ms: u64,
    /// When it heals (never, if absent).
    pub heal_ms: Option<u64>,
    /// What happens to crossing links.
    #[serde(default)]
    pub mode: PartitionMode,
    /// One side of the cut.
    #[serde(flatten)]
    pub side: NodeSelect,
}

/// Churn: nodes alternate online and offline sessions with exponential lengths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]

pub struct ChurnSpec {
    /// Long-run fraction of time a churning node is offline, in `[0, 1)`.
    pub offline_fraction: f64,
    /// Mean online session length.
    pub mean_online_ms: u64,
    /// Churn starts here (before, everyone is online).
    #[serde(default)]
    pub start_ms: u64,
    /// Which nodes churn (default: all but spies).
    #[serde(default, flatten)]
    pub select: NodeSelect,
}

/// What survives a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashState {
    /// Rebuild from what the node persisted, as the driver does from its database: the same
    /// identity key, `Node::restore` from its `Persist::Conversation` records (sessions, MVDS
    /// state, groups, seen ids, unposted messages), its public-chat memberships and the
    /// public messages it accepted (`Persist::ChatMessage`, replayed with
    /// `Node::restore_public_message` after the joins), a mailserver's archive.
    #[default]
    Kept,
    /// The disk is gone but the key survived (a reinstall with the same account): same
    /// identity key, fresh state; it rejoins its public chats.
    Lost,
    /// Start afresh with a new identity key (another user, as far as the network can tell).
    NewKey,
}

/// Crashes: the selected nodes stop at `at_ms` (links closed, state gone) and restart later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]

pub struct CrashSpec {
    /// When.
    pub at_ms: u64,
    /// Down time before the restart (never restarts, if absent).
    pub restart_after_ms: Option<u64>,
    /// What survives.
    #[serde(default)]
    pub state: CrashState,
    /// Which nodes.
    #[serde(flatten)]
    pub select: NodeSelect,
}

/// A scheduled offline window: the selected nodes go offline at `at_ms` (their links are
/// closed; the node keeps running) and come back `duration_ms` later, as churn does, but at
/// fixed times. Overlapping windows (and churn) nest: a node is back when all have ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineSpec {
    /// When the nodes go offline.
    pub at_ms: u64,
    /// How long they stay offline (> 0).
    pub duration_ms: u64,
    /// Which nodes.
    #[serde(flatten)]
    pub select: NodeSelect,
}

/// After coming back online, a client waits this long before asking for history: the
/// redial delay plus the RLPx and Whisper handshakes to the mailserver.
pub const DEFAULT_HISTORY_REQUEST_DELAY_MS: u64 = 2_000;

/// History is asked from this long before the moment the node went offline: it covers
/// envelopes that were in flight when the links closed and Whisper's one-second timestamp
/// granularity. Messages already received in that margin are dropped by the node's dedup.
pub const DEFAULT_HISTORY_MARGIN_MS: u64 = 10_000;

/// Gap between attempts when no mailserver is connected yet.
pub const DEFAULT_HISTORY_RETRY_INTERVAL_MS: u64 = 1_000;

/// Attempts per return before the client gives up until its next return.
pub const DEFAULT_HISTORY_MAX_ATTEMPTS: u32 = 30;

/// The client side of mailservers (`[history]`): Status's "on reconnect, ask the mailserver".
///
/// This is application behaviour, driven by the runner: with `use_mailserver`, each client
/// gets an extra link to every mailserver (the client dials; Status clients keep a connection
/// to their mailserver), is configured to trust them (`NodeConfig::mailservers`), and each
/// time it comes back from being offline (churn, an `[[offline]]` window, a crash restart) it
/// calls `request_history(chat, since)` for every chat it joined, `request_delay_ms` after
/// coming back, with `since` = the moment it went offline − `margin_ms` (whole seconds).
/// While no mailserver is connected the call fails and is retried every `retry_interval_ms`,
/// at most `max_attempts` times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistorySpec {
    /// Clients link to the mailservers and ask them for history (default false: the
    /// mailservers only relay and archive).
    pub use_mailserver: bool,
    /// Which nodes are clients (default: every node that is not a mailserver).
    #[serde(flatten)]
    pub clients: NodeSelect,
    /// Delay between coming back and the first request.
    pub request_delay_ms: u64,
    /// History starts this long before the node went offline.
    pub margin_ms: u64,
    /// Gap between attempts while no mailserver is connected.
    pub retry_interval_ms: u64,
    /// Attempts per return (≥ 1).
    pub max_attempts: u32,
}

impl Default for HistorySpec {
    fn default() -> Self {
        HistorySpec {
            use_mailserver: false,
            clients: NodeSelect::default(),
            request_delay_ms: DEFAULT_HISTORY_REQUEST_DELAY_MS,
            margin_ms: DEFAULT_HISTORY_MARGIN_MS,
            retry_interval_ms: DEFAULT_HISTORY_RETRY_INTERVAL_MS,
            max_attempts: DEFAULT_HISTORY_MAX_ATTEMPTS,
        }
    }
}

/// All traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficSpec {
    /// Public chats (when empty: the flat `chat`/`messages` fields, everyone a member).
    pub public: Vec<PublicChatSpec>,
    /// 1:1 conversations (needs 1:1 chat in core, issue 8).
    pub one_to_one: Vec<OneToOneSpec>,
    /// Private group chats (needs group chat in core).
    pub groups: Vec<GroupSpec>,
}

/// Message timing within a chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedule {
    /// Number of messages.
    pub messages: u32,
    /// First message time.
    pub first_at_ms: u64,
    /// Mean gap between messages.
    pub interval_ms: u64,
    /// Exponential gaps (a Poisson process) instead of a fixed interval.
    pub poisson: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            messages: 10,
            first_at_ms: 5_000,
            interval_ms: 2_000,
            poisson: false,
        }
    }
}

/// A public chat with members and a message rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]

pub struct PublicChatSpec {
    /// Chat name.
    pub chat: String,
    /// Members (default: every node). Authors are drawn among members.
    #[serde(default)]
    pub members: NodeSelect,
    /// Message timing.
    #[serde(default, flatten)]
    pub schedule: Schedule,
}

/// 1:1 conversations: `pairs` random pairs of distinct nodes (drawn by the seed among the
/// non-mailserver nodes, no pair twice) plus the `explicit` ones. Each pair runs its own
/// `schedule`; each message's author is a uniformly random end of its pair, the recipient the
/// other end (`Command::SendDirect`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OneToOneSpec {
    /// Number of random pairs.
    #[serde(default)]
    pub pairs: usize,
    /// Explicit pairs `[a, b]` (node indices), in addition to the random ones.
    #[serde(default)]
    pub explicit: Vec<[usize; 2]>,
    /// Reliable delivery through MVDS: sets `conversations.datasync` on both ends.
    #[serde(default)]
    pub mvds: bool,
    /// Message timing per pair.
    #[serde(default, flatten)]
    pub schedule: Schedule,
}

/// Default time a group's creator creates it: after the initial dials and handshakes, so
/// that the invitations do not wait in the pool for the first peer.
pub const DEFAULT_GROUP_CREATE_AT_MS: u64 = 2_000;

/// Private group chats: `groups` groups of `size` members each (the creator included), drawn
/// by the seed among the non-mailserver nodes (or the `among` selection of them). The creator (the first drawn) creates the group
/// at `create_at_ms` (`Command::CreateGroup`); `late_members` more nodes are added by the
/// creator at `late_at_ms` (`Command::AddGroupMember`). Each message's author is a random
/// member at its send time (late members from `late_at_ms` on); its expected recipients are
/// the group's members, as the creator (the admin) knows them at the send time, except the
/// author.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Number of groups.
    pub groups: usize,
    /// Members per group at creation, creator included (≥ 2).
    pub size: usize,
    /// Reliable delivery through MVDS: sets `conversations.datasync` on every member.
    #[serde(default)]
    pub mvds: bool,
    /// When the creator creates the group.
    #[serde(default = "default_group_create_at_ms")]
    pub create_at_ms: u64,
    /// Members added later, per group.
    #[serde(default)]
    pub late_members: usize,
    /// When the late members are added (required when `late_members > 0`).
    #[serde(default)]
    pub late_at_ms: Option<u64>,
    /// The nodes members are drawn from (default: every non-mailserver node).
    #[serde(default)]
    pub among: NodeSelect,
    /// Message timing per group.
    #[serde(default, flatten)]
    pub schedule: Schedule,
}

fn default_group_create_at_ms() -> u64 {
    DEFAULT_GROUP_CREATE_AT_MS
}

/// What kind of fault a [`FaultWindow`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `[[partitions]]`.
    Partition,
    /// `[[offline]]`.
    Offline,
    /// `[churn]` (from its start to the end of the run).
    Churn,
    /// `[[crashes]]` (until the restart, or the end).
    Crash,
}

/// One fault over time, ms since the start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// Kind.
    pub kind: FaultKind,
    /// Legend text.
    pub label: String,
    /// Start.
    pub from_ms: u64,
    /// End (the run's end if it never ends).
    pub to_ms: u64,
}

/// Application settings of every node (`[node]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSpec {
    /// Publish the contact code (`ConversationsConfig::publish_contact_code`; default true):
    /// status-go's publisher checks every 120 s and publishes when the last publication is at
    /// least 6 h old (status-chat.md §2, [SG-pub]).
    pub contact_codes: bool,
    /// Publication period (`ConversationsConfig::contact_code_interval_ms`; status-go's
    /// `publishInterval`, 21,600 s).
    pub contact_code_interval_ms: u64,
    /// When each node last published before the start: `"steady-state"` (default) draws a
    /// uniform time in the period before the start, as in a network that has run for longer
    /// than a period, so about run length / period of the nodes publish during the run;
    /// `"fresh"`: nobody ever published, every node publishes at once (a launch: N envelopes
    /// flooded to N nodes at the start).
    pub contact_code_start: ContactCodeStart,
    /// Application-layer form the nodes send (`ConversationsConfig::payload_format`):
    /// `"transit"` (status-go ≤ v0.36.0), `"protobuf"` (≥ 0.36.2) or `"auto"` (default: each
    /// chat in the form last received in it, Transit first). Every node receives both.
    pub payload_format: PayloadFormatSpec,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            contact_codes: true,
            contact_code_interval_ms: hush_core::chat::direct::DEFAULT_CONTACT_CODE_INTERVAL_MS,
            contact_code_start: ContactCodeStart::SteadyState,
            payload_format: PayloadFormatSpec::Auto,
        }
    }
}

/// `[node] contact_code_start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContactCodeStart {
    /// Last publications spread uniformly over the period before the start.
    #[default]
    SteadyState,
    /// Nobody published yet: everyone publishes at the start.
    Fresh,
}

/// `[node] payload_format` (hush_core's `chat::format::FormatSetting`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormatSpec {
    /// Transit records.
    Transit,
    /// protobuf `ApplicationMetadataMessage`/`ChatMessage`.
    Protobuf,
    /// The form last received in each chat.
    #[default]
    Auto,
}

impl PayloadFormatSpec {
    /// The node setting.
    pub fn setting(self) -> hush_core::chat::format::FormatSetting {
        use hush_core::chat::format::FormatSetting;
        match self {
            PayloadFormatSpec::Transit => FormatSetting::Transit,
            PayloadFormatSpec::Protobuf => FormatSetting::Protobuf,
            PayloadFormatSpec::Auto => FormatSetting::Auto,
        }
    }
}

/// The privacy adversary: a fraction of nodes are spies running the first-spy estimator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySpec {
    /// Fraction of nodes the adversary holds (0 disables the metric).
    pub spy_fraction: f64,
}

/// An analytical model printed beside the measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    /// vacp2p/research `whisper_scalability/whisper.py` (2019): receive bandwidth per user
    /// per day, cases 1, 2 and 6, for `users` users, beside the measured figure extrapolated to
    /// `received_messages_per_day` messages per user per day.
    WhisperScalability {
        /// Users in the model (default: the node count).
        users: Option<u64>,
        /// The model's `received_messages_per_day` (100).
        #[serde(default = "default_msgs_per_day")]
        received_messages_per_day: u64,
    },
}

fn default_msgs_per_day() -> u64 {
    100
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            description: String::new(),
            seed: None,
            start_ms: DEFAULT_START_MS,
            nodes: 50,
            degree: 4,
            latency_min_ms: 20,
            latency_max_ms: 100,
            connect_window_ms: 1_000,
            chat: "hush-sim".into(),
            join_at_ms: 0,
            messages: 10,
            first_message_at_ms: 5_000,
            message_interval_ms: 2_000,
            drain_ms: 30_000,
            duration_ms: None,
            // Generous: the default run needs a few hundred thousand events at most.
            max_events: 50_000_000,
            redial_delay_ms: DEFAULT_REDIAL_DELAY_MS,
            topology: None,
            roles: Vec::new(),
            link: LinkSpec::default(),
            partitions: Vec::new(),
            churn: None,
            crashes: Vec::new(),
            offline: Vec::new(),
            history: HistorySpec::default(),
            traffic: TrafficSpec::default(),
            privacy: PrivacySpec::default(),
            node: NodeSpec::default(),
            model: None,
        }
    }
}

impl Scenario {
    /// The first feature this scenario needs that the node does not have yet, as an error.
    /// Every feature the scenario format names runs today, so this is `Ok`; it is kept as the
    /// place where a format extension ahead of the node is refused.
    pub fn unsupported(&self) -> Result<(), ScenarioError> {
        Ok(())
    }

    /// Whether the scenario has 1:1 or group traffic.
    pub fn has_conversations(&self) -> bool {
        !self.traffic.one_to_one.is_empty() || !self.traffic.groups.is_empty()
    }

    /// The public chats to simulate: `[[traffic.public]]`, or the flat fields.
    pub fn public_chats(&self) -> Vec<PublicChatSpec> {
        if !self.traffic.public.is_empty() {
            return self.traffic.public.clone();
        }
        vec![PublicChatSpec {
            chat: self.chat.clone(),
            members: NodeSelect::default(),
            schedule: Schedule {
                messages: self.messages,
                first_at_ms: self.first_message_at_ms,
                interval_ms: self.message_interval_ms,
                poisson: false,
            },
        }]
    }

    /// The topology: `[topology]`, or random regular of `degree`.
    pub fn topology_spec(&self) -> TopologySpec {
        self.topology
            .clone()
            .unwrap_or(TopologySpec::RandomRegular {
                degree: self.degree,
            })
    }

    /// The latency distribution: `[link].latency`, or uniform from the flat fields.
    pub fn latency_dist(&self) -> LatencyDist {
        self.link.latency.clone().unwrap_or(LatencyDist::Uniform {
            min_ms: self.latency_min_ms,
            max_ms: self.latency_max_ms,
        })
    }

    /// The scenario's faults as time windows (ms since the start, clipped to the run), in
    /// the order partitions, offline windows, churn, crashes: what plots over time mark.
    pub fn fault_windows(&self) -> Vec<FaultWindow> {
        let end = self.end_ms();
        let clip = |to: Option<u64>| to.map_or(end, |t| t.min(end));
        let mut out = Vec::new();
        for (i, p) in self.partitions.iter().enumerate() {
            out.push(FaultWindow {
                kind: FaultKind::Partition,
                label: format!("partition {i}"),
                from_ms: p.at_ms,
                to_ms: clip(p.heal_ms),
            });
        }
        for (i, o) in self.offline.iter().enumerate() {
            out.push(FaultWindow {
                kind: FaultKind::Offline,
                label: format!("offline {i}"),
                from_ms: o.at_ms,
                to_ms: clip(o.at_ms.checked_add(o.duration_ms)),
            });
        }
        if let Some(c) = &self.churn {
            out.push(FaultWindow {
                kind: FaultKind::Churn,
                label: format!("churn ({:.0} % offline)", c.offline_fraction * 100.0),
                from_ms: c.start_ms,
                to_ms: end,
            });
        }
        for (i, c) in self.crashes.iter().enumerate() {
            out.push(FaultWindow {
                kind: FaultKind::Crash,
                label: format!("crash {i}"),
                from_ms: c.at_ms,
                to_ms: clip(c.restart_after_ms.map(|r| c.at_ms.saturating_add(r))),
            });
        }
        out.retain(|w| w.from_ms < end);
        out
    }

    /// Time of message `i` (0-based) of the flat schedule, relative to the start.
    pub fn message_at_ms(&self, i: u32) -> u64 {
        self.first_message_at_ms
            .saturating_add(u64::from(i).saturating_mul(self.message_interval_ms))
    }

    /// Run length relative to the start: `duration_ms`, or the last scheduled (fixed-interval)
    /// message of any chat, pair or group (or the last group event) + `drain_ms`.
    pub fn end_ms(&self) -> u64 {
        self.duration_ms.unwrap_or_else(|| {
            let last_of = |s: &Schedule| {
                s.first_at_ms.saturating_add(
                    u64::from(s.messages.saturating_sub(1)).saturating_mul(s.interval_ms),
                )
            };
            let public = self.public_chats();
            let last = public
                .iter()
                .map(|c| last_of(&c.schedule))
                .chain(self.traffic.one_to_one.iter().map(|o| last_of(&o.schedule)))
                .chain(self.traffic.groups.iter().flat_map(|g| {
                    [
                        last_of(&g.schedule),
                        g.create_at_ms,
                        g.late_at_ms.unwrap_or(0),
                    ]
                }))
                .max()
                .unwrap_or(0);
            last.saturating_add(self.drain_ms)
        })
    }
}

mod validate;
pub use validate::ScenarioError;

#[cfg(test)]
mod tests;
